"""Guided recette, the operator's side: the terminal prompt with its countdown, and the local web page.

Both read one :class:`GuidedState` (fed by the run's event stream) and post replies to the run's
:class:`~harness.runtime.guided.ReplyBox`. The web page is plain HTML refreshed every two seconds and is served on
loopback only. It tells the operator everything needed to configure the DUI (a connection panel: every
service's address, the test CA and the organisation certificates to download, the mailboxes and their passwords,
the Pro Santé Connect clients, the INSi IDAM to declare), the action to perform, then « en attente de
l'échange… » once the operator said it is done, and each step's verdict with its evidence as soon as the harness
judged it; at the end, the summary and the report.
"""

from __future__ import annotations

import asyncio
import html
import json
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import uvicorn
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.text import Text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from harness.core.config import HarnessConfig
from harness.core.events import (
    Event,
    OperatorPrompt,
    OperatorPromptClosed,
    RunFinished,
    RunStarted,
    ScenarioFinished,
    ScenarioStarted,
    StepFinished,
)
from harness.core.messages import bilingual
from harness.fields.pki import TestPKI
from harness.fields.testdata import MailboxType, load_testdata
from harness.runtime.guided import OperatorReply, ReplyBox

_STATUS_FR = {"passed": "réussi", "failed": "échoué", "error": "erreur", "skipped": "ignoré", "running": "en cours"}


@dataclass(frozen=True)
class Connection:
    """What a DUI is configured with, for the page's connection panel (files are offered for download)."""

    files: Mapping[str, Path] = field(default_factory=dict)  # download name -> file (CA, organisation certs)
    mailboxes: tuple[tuple[str, str, str], ...] = ()  # (address, type, password) of the establishments' mailboxes
    psc_clients: tuple[tuple[str, str, str], ...] = ()  # (client_id, secret, redirect URIs)
    insi_idam: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepVerdict:
    keyword: str
    text: str
    status: str
    message: str = ""
    evidence: tuple[str, ...] = ()  # labels of the evidence attached


@dataclass
class GuidedState:
    """What the operator needs to see, kept up to date from the event stream (thread-safe)."""

    box: ReplyBox
    connection: Connection = field(default_factory=Connection)
    report: Path | None = None  # the run's report.html, linked once this run wrote it (report_ready)
    report_ready: bool = False
    run_id: str = ""
    sut: str = ""
    endpoints: dict[str, dict[str, str]] = field(default_factory=dict)
    prompt: OperatorPrompt | None = None
    waiting: str = ""  # the prompt (id) whose exchange is awaited after the operator said « c'est fait »
    last_step: StepVerdict | None = None
    scenarios: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (name, status)
    counts: dict[str, int] = field(default_factory=dict)
    finished: bool = False
    closed: threading.Event = field(default_factory=threading.Event)  # the operator closed the page
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, event: Event) -> None:
        with self.lock:
            if isinstance(event, RunStarted):
                self.run_id, self.sut, self.endpoints = event.run_id, event.sut, dict(event.endpoints)
            elif isinstance(event, ScenarioStarted):
                self.scenarios[event.scenario_id] = (event.name, "running")
            elif isinstance(event, StepFinished):
                self.waiting = ""
                self.last_step = StepVerdict(
                    event.keyword,
                    event.text,
                    str(event.status),
                    event.message,
                    tuple(e.label for e in event.evidence),
                )
            elif isinstance(event, ScenarioFinished):
                self.scenarios[event.scenario_id] = (event.name, str(event.status))
            elif isinstance(event, OperatorPrompt):
                self.prompt, self.waiting = event, ""
            elif isinstance(event, OperatorPromptClosed) and self.prompt and self.prompt.prompt_id == event.prompt_id:
                self.prompt, self.waiting = None, ""
            elif isinstance(event, RunFinished):
                self.finished, self.prompt, self.waiting = True, None, ""
                self.counts = dict(event.counts)

    def close(self) -> None:
        return None

    def current(self) -> OperatorPrompt | None:
        with self.lock:
            return self.prompt

    def reply(self, prompt_id: str, answer: str, comment: str = "") -> bool:
        """Post a reply for the open prompt; False when that prompt is no longer open or the answer is invalid."""
        prompt = self.current()
        if prompt is None or prompt.prompt_id != prompt_id:
            return False
        allowed = {"blocked", "done", *prompt.choices}
        if answer not in allowed:
            return False
        self.box.post(OperatorReply(prompt_id, answer, comment.strip()[:2000], time.time()))
        if prompt.mode == "action" and answer == "done":
            with self.lock:
                self.waiting = prompt.prompt_id
        return True


def remaining(prompt: OperatorPrompt) -> int:
    return max(0, int(prompt.asked_at + prompt.timeout - time.time()))


class _Countdown:
    def __init__(self, prompt: OperatorPrompt) -> None:
        self.prompt = prompt

    def __rich__(self) -> Text:
        return Text(f"⏳ {remaining(self.prompt)} " + bilingual("s restantes", "seconds left"), style="bold yellow")


class GuidedConsole:
    """Terminal side: shows each prompt and its countdown; reads the operator's answers from stdin.

    Answers: Entrée = fait / done; ``o``/``oui``, ``n``/``non`` for questions; ``b <commentaire>`` = bloqué.
    """

    def __init__(self, state: GuidedState, console: Console, *, read_stdin: bool = True) -> None:
        self.state = state
        self.console = console
        self._live: Live | None = None
        if read_stdin:
            threading.Thread(target=self._read_stdin, name="socle-operator-stdin", daemon=True).start()

    def handle(self, event: Event) -> None:
        if isinstance(event, OperatorPrompt):
            self._stop_live()
            how = (
                "(o)ui / (n)on" if event.mode == "question" else "Entrée quand c'est fait"
            ) + " · b <commentaire> = bloquer"
            title = "Question à l'opérateur" if event.mode == "question" else "Action à réaliser dans le DUI"
            self.console.print(Panel(f"{event.text}\n\n[dim]{how}[/]", title=title, border_style="cyan"))
            self._live = Live(_Countdown(event), console=self.console, refresh_per_second=2, transient=True)
            self._live.start()
        elif isinstance(event, OperatorPromptClosed | RunFinished):
            self._stop_live()
            if isinstance(event, OperatorPromptClosed) and event.outcome in ("blocked", "timeout"):
                label = "bloquée" if event.outcome == "blocked" else bilingual("délai dépassé", "timed out")
                self.console.print(f"[magenta]Étape {label}[/] {event.comment}")

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def close(self) -> None:
        self._stop_live()

    def _read_stdin(self) -> None:
        for line in sys.stdin:
            word, _, comment = line.strip().partition(" ")
            # The answer may be typed before the prompt it answers reaches this process: retry briefly.
            deadline = time.monotonic() + 1.0
            while not self._apply(word.lower(), comment) and time.monotonic() < deadline:
                time.sleep(0.05)

    def _apply(self, word: str, comment: str) -> bool:
        prompt = self.state.current()
        if prompt is None:
            return False
        if word in ("b", "bloque", "bloqué", "blocked"):
            return self.state.reply(prompt.prompt_id, "blocked", comment)
        chosen = next((c for c in prompt.choices if prompt.mode == "question" and c.lower() == word), None)
        if chosen is not None:  # a question with its own choices (the identity document checked: CN, PA...)
            return self.state.reply(prompt.prompt_id, chosen, comment)
        if prompt.mode == "question" and word in ("o", "oui", "y", "yes"):
            return self.state.reply(prompt.prompt_id, "oui", comment)
        if prompt.mode == "question" and word in ("n", "non", "no"):
            return self.state.reply(prompt.prompt_id, "non", comment)
        if prompt.mode == "action" and word == "":
            return self.state.reply(prompt.prompt_id, "done", comment)
        return False


_PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8">{refresh}
<title>Recette guidée — socle-harness</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}
.prompt{{border:2px solid #0a58ca;border-radius:8px;padding:1rem;background:#eef4ff}}
.waiting{{border:2px dashed #0a58ca;border-radius:8px;padding:1rem}}
.countdown{{font-size:1.4rem;font-weight:bold;color:#b35900}} textarea{{width:100%}}
td,th{{padding:.2rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}}
code{{user-select:all;background:#f3f3f8;padding:0 .2rem}}
.passed{{color:#146c43}} .failed{{color:#b02a37}} .error{{color:#842029}} .running{{color:#0a58ca}}
.skipped{{color:#666}}</style></head>
<body><h1>Recette guidée <small>Guided acceptance test</small></h1>
<p>Exécution <code>{run_id}</code> — DUI sous test : <b>{sut}</b></p>{summary}{prompt}{verdict}
<h2>Scénarios</h2><table id="scenarios"><tr><th>Scénario</th><th>Statut</th></tr>{rows}</table>
<details id="connexion"{open_connection}><summary><b>Connexion du DUI</b> <small>DUI connection panel</small></summary>
{connection}</details>{script}</body></html>"""

# While a prompt is open the page must not reload under the operator's typing: a few lines of script tick the
# countdown and reload only when the comment box is empty and unfocused (without script: reload every 10 s).
_PROMPT_SCRIPT = """<script>
const deadline = Number(document.getElementById("countdown").dataset.deadline) * 1000;
const box = document.querySelector("textarea[name=comment]");
setInterval(() => {
  const left = Math.max(0, Math.floor((deadline - Date.now()) / 1000));
  document.getElementById("countdown").textContent = left + " s restantes";
}, 500);
setInterval(() => { if (!box.value && document.activeElement !== box) location.reload(); }, 2000);
</script>"""


def _prompt_html(prompt: OperatorPrompt | None, finished: bool, waiting: str) -> str:
    if prompt is not None and prompt.prompt_id == waiting:  # the operator said it is done: the harness looks
        block = (
            '<form method="post" action="/reply">'
            f'<input type="hidden" name="prompt_id" value="{html.escape(prompt.prompt_id)}">'
            '<input type="hidden" name="answer" value="blocked">'
            "<button>" + bilingual("Rien n'arrive : bloquer l'étape", "block") + "</button></form>"
        )
        return (
            '<div class="waiting" id="waiting"><h2>En attente de l\'échange… <small>waiting for the '
            f"exchange</small></h2><p>{html.escape(prompt.text)}</p>"
            f'<p class="countdown">encore {remaining(prompt)} s au plus</p>{block}</div>'
        )
    if prompt is None:
        return "" if finished else '<p id="idle">Aucune action demandée pour l\'instant. / Nothing to do yet.</p>'
    hidden = f'<input type="hidden" name="prompt_id" value="{html.escape(prompt.prompt_id)}">'
    comment = '<label>Commentaire / comment<br><textarea name="comment" rows="2"></textarea></label><br>'
    if prompt.mode == "question":
        buttons = "".join(
            f'<button name="answer" value="{html.escape(c)}">{html.escape(c.capitalize())}</button> '
            for c in prompt.choices
        )
    else:
        buttons = '<button name="answer" value="done">C\'est fait / done</button> '
    buttons += '<button name="answer" value="blocked">Bloquer l\'étape / block</button>'
    title = "Question" if prompt.mode == "question" else "Action à réaliser dans le DUI"
    return (
        f'<div class="prompt" id="prompt"><h2>{title}</h2><p id="instruction">{html.escape(prompt.text)}</p>'
        f'<p class="countdown" id="countdown" data-deadline="{prompt.asked_at + prompt.timeout:.0f}">{remaining(prompt)} s restantes</p>'
        f'<form method="post" action="/reply">{hidden}{comment}{buttons}</form></div>'
    )


def _verdict_html(step: StepVerdict | None) -> str:
    if step is None:
        return ""
    evidence = "".join(f"<li>{html.escape(label)}</li>" for label in step.evidence)
    message = f"<p>{html.escape(step.message)}</p>" if step.message else ""
    return (
        f'<div id="verdict"><h2>Dernière étape jugée <small>last judged step</small></h2>'
        f'<p><span class="{html.escape(step.status)}">{_STATUS_FR.get(step.status, step.status)}</span> — '
        f"<b>{html.escape(step.keyword)}</b> {html.escape(step.text)}</p>{message}"
        f"{'<ul>' + evidence + '</ul>' if evidence else ''}</div>"
    )


def _summary_html(state: GuidedState) -> str:
    if not state.finished:
        return ""
    counts = state.counts
    parts = ", ".join(
        f"{counts.get(key, 0)} {label}"
        for key, label in (("passed", "réussis"), ("failed", "échoués"), ("error", "erreurs"), ("skipped", "ignorés"))
    )
    report = (
        '<a id="report" href="/report">Ouvrir le rapport / open the report</a>'
        if state.report is not None and state.report_ready
        else bilingual("Rapport en cours d'écriture…", "writing the report…")
    )
    return (
        f'<div id="summary"><h2>Recette terminée <small>finished</small></h2><p>{parts}</p><p>{report}</p>'
        '<form method="post" action="/close"><button>Fermer la recette / close</button></form></div>'
    )


def _connection_html(state: GuidedState) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(service)}</td><td>{html.escape(name)}</td><td><code>{html.escape(value)}</code></td></tr>"
        for service, named in sorted(state.endpoints.items())
        for name, value in named.items()
    )
    conn = state.connection
    files = "".join(
        f'<li><a href="/files/{html.escape(name)}" download>{html.escape(name)}</a></li>' for name in sorted(conn.files)
    )
    boxes = "".join(
        f"<tr><td><code>{html.escape(a)}</code></td><td>{html.escape(t)}</td><td><code>{html.escape(pw)}</code></td></tr>"
        for a, t, pw in conn.mailboxes
    )
    clients = "".join(
        f"<tr><td><code>{html.escape(c)}</code></td><td><code>{html.escape(sec)}</code></td>"
        f"<td><code>{html.escape(uris)}</code></td></tr>"
        for c, sec, uris in conn.psc_clients
    )
    idam = ", ".join(f"<code>{html.escape(i)}</code>" for i in conn.insi_idam) or (
        "aucun déclaré : déclarez l'IDAM de votre DUI dans <code>[settings.insi] authorised_idam</code>"
    )
    return (
        "<h3>Points d'accès <small>endpoints</small></h3>"
        f"<table id='endpoints'><tr><th>service</th><th>point</th><th>adresse</th></tr>{rows}</table>"
        f"<h3>Certificats <small>certificates</small></h3><ul id='files'>{files}</ul>"
        "<h3>Boîtes MSSanté <small>mailboxes</small></h3>"
        f"<table id='mailboxes'><tr><th>adresse</th><th>type</th><th>mot de passe</th></tr>{boxes}</table>"
        "<h3>Clients Pro Santé Connect</h3>"
        f"<table id='psc'><tr><th>client_id</th><th>secret</th><th>redirect_uri</th></tr>{clients}</table>"
        f"<h3>INSi</h3><p>IDAM à déclarer dans le DUI / IDAM to declare: {idam}</p>"
    )


def guided_app(state: GuidedState) -> Starlette:
    async def page(request: Request) -> HTMLResponse:
        with state.lock:
            rows = "".join(
                f'<tr><td>{html.escape(name)}</td><td class="{status}">{_STATUS_FR.get(status, status)}</td></tr>'
                for name, status in state.scenarios.values()
            )
            run_id, sut, finished, waiting = state.run_id, state.sut, state.finished, state.waiting
            verdict = _verdict_html(state.last_step)
            summary = _summary_html(state)
            connection = _connection_html(state)
            started = bool(state.scenarios)
        prompt = state.current()
        answering = prompt is not None and prompt.prompt_id != waiting  # the operator has a form to fill
        refresh = (
            '<noscript><meta http-equiv="refresh" content="10"></noscript>'
            if answering
            else ("" if finished else '<meta http-equiv="refresh" content="1">')
        )
        body = _PAGE.format(
            run_id=html.escape(run_id),
            sut=html.escape(sut),
            summary=summary,
            prompt=_prompt_html(prompt, finished, waiting),
            verdict=verdict,
            rows=rows,
            refresh=refresh,
            connection=connection,
            open_connection="" if started else " open",
            script=_PROMPT_SCRIPT if answering else "",
        )
        return HTMLResponse(body)

    async def reply(request: Request) -> Response:
        raw = await request.body()
        if len(raw) > 10_000:
            return PlainTextResponse(bilingual("requête trop grande", "request too large"), status_code=413)
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if not state.reply(form.get("prompt_id", ""), form.get("answer", ""), form.get("comment", "")):
            return PlainTextResponse(
                bilingual("cette demande n'est plus ouverte", "this prompt is closed"), status_code=409
            )
        return RedirectResponse("/", status_code=303)

    async def download(request: Request) -> Response:
        path = state.connection.files.get(request.path_params["name"])
        if path is None or not path.is_file():
            return PlainTextResponse(bilingual("fichier inconnu", "unknown file"), status_code=404)
        return FileResponse(path, media_type="application/x-pem-file", filename=path.name)

    async def report(request: Request) -> Response:
        if state.report is None or not state.report_ready or not state.report.is_file():
            return PlainTextResponse(bilingual("rapport pas encore écrit", "report not written yet"), status_code=404)
        return FileResponse(state.report, media_type="text/html")

    async def close(request: Request) -> Response:
        state.closed.set()
        return HTMLResponse(
            "<!doctype html><meta charset='utf-8'><p>Recette fermée. Vous pouvez fermer cet onglet.</p>"
        )

    return Starlette(
        routes=[
            Route("/", page),
            Route("/reply", reply, methods=["POST"]),
            Route("/files/{name}", download),
            Route("/report", report),
            Route("/close", close, methods=["POST"]),
        ]
    )


class GuidedWebServer:
    """Serves :func:`guided_app` on 127.0.0.1 in a background thread."""

    def __init__(self, state: GuidedState, port: int = 0) -> None:
        self._sock = socket.socket()
        # the page's port can be reused right after a run (a closed connection's TIME_WAIT must not block it)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/"
        self._server = uvicorn.Server(
            uvicorn.Config(guided_app(state), log_level="warning", lifespan="off", access_log=False)
        )
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self._sock])), daemon=True
        )

    def start(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)


def connection_for(config: HarnessConfig) -> Connection:
    """The connection panel's content: the test PKI's CA and organisation certificates (with their keys: a
    throw-away test PKI), the establishments' mailboxes with their passwords, the PSC clients, the INSi IDAM."""
    pki = TestPKI.ensure(Path(config.pki_dir))
    files: dict[str, Path] = {"ca-bundle.pem": pki.ca_bundle_path}
    for _, issued in sorted(pki.clients.items()):
        files[issued.cert_path.name] = issued.cert_path
        files[issued.key_path.name] = issued.key_path
    testdata = load_testdata(Path(config.fixtures_dir))
    mailboxes = tuple(
        (m.address, str(m.type), m.password or "")
        for m in testdata.mailboxes
        if m.password and m.type in (MailboxType.ORG, MailboxType.APP)
    )
    clients: tuple[tuple[str, str, str], ...] = ()
    clients_file = Path(config.fixtures_dir) / "psc" / "clients.json"
    if clients_file.is_file():
        raw = json.loads(clients_file.read_text(encoding="utf-8"))
        clients = tuple(
            (c.get("client_id", ""), c.get("client_secret", ""), " ".join(c.get("redirect_uris", [])))
            for c in raw.get("clients", [])
        )
    from mock_services.insi.service import InsiSettings  # the INSi plugin's settings type

    idam = (
        InsiSettings.from_mapping(config.settings.get("insi", {})).authorised_idam if "insi" in config.settings else ()
    )
    return Connection(
        files=files,
        mailboxes=mailboxes,
        psc_clients=clients,
        insi_idam=idam,
    )
