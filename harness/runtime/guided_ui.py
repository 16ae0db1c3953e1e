"""Guided recette, the operator's side: the terminal prompt with its countdown, and the local web page.

Both read one :class:`GuidedState` (fed by the run's event stream) and post replies to the run's
:class:`~harness.runtime.guided.ReplyBox`. The web page is plain HTML refreshed every two seconds (no JavaScript) and is
served on loopback only.
"""

from __future__ import annotations

import asyncio
import html
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import uvicorn
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.text import Text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from harness.core.events import (
    Event,
    OperatorPrompt,
    OperatorPromptClosed,
    RunFinished,
    RunStarted,
    ScenarioFinished,
    ScenarioStarted,
)
from harness.runtime.guided import OperatorReply, ReplyBox

_STATUS_FR = {"passed": "réussi", "failed": "échoué", "error": "erreur", "skipped": "ignoré", "running": "en cours"}


@dataclass
class GuidedState:
    """What the operator needs to see, kept up to date from the event stream (thread-safe)."""

    box: ReplyBox
    run_id: str = ""
    sut: str = ""
    prompt: OperatorPrompt | None = None
    scenarios: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (name, status)
    finished: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, event: Event) -> None:
        with self.lock:
            if isinstance(event, RunStarted):
                self.run_id, self.sut = event.run_id, event.sut
            elif isinstance(event, ScenarioStarted):
                self.scenarios[event.scenario_id] = (event.name, "running")
            elif isinstance(event, ScenarioFinished):
                self.scenarios[event.scenario_id] = (event.name, str(event.status))
            elif isinstance(event, OperatorPrompt):
                self.prompt = event
            elif isinstance(event, OperatorPromptClosed) and self.prompt and self.prompt.prompt_id == event.prompt_id:
                self.prompt = None
            elif isinstance(event, RunFinished):
                self.finished, self.prompt = True, None

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
        return True


def remaining(prompt: OperatorPrompt) -> int:
    return max(0, int(prompt.asked_at + prompt.timeout - time.time()))


class _Countdown:
    def __init__(self, prompt: OperatorPrompt) -> None:
        self.prompt = prompt

    def __rich__(self) -> Text:
        return Text(f"⏳ {remaining(self.prompt)} s restantes / seconds left", style="bold yellow")


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
                label = "bloquée" if event.outcome == "blocked" else "délai dépassé / timed out"
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
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}}
.prompt{{border:2px solid #0a58ca;border-radius:8px;padding:1rem;background:#eef4ff}}
.countdown{{font-size:1.4rem;font-weight:bold;color:#b35900}} textarea{{width:100%}}
td,th{{padding:.2rem .6rem;border-bottom:1px solid #ddd;text-align:left}}
.passed{{color:#146c43}} .failed{{color:#b02a37}} .error{{color:#842029}} .running{{color:#0a58ca}}</style></head>
<body><h1>Recette guidée <small>Guided acceptance test</small></h1>
<p>Exécution <code>{run_id}</code> — DUI sous test : <b>{sut}</b></p>{prompt}
<h2>Scénarios</h2><table><tr><th>Scénario</th><th>Statut</th></tr>{rows}</table>{script}</body></html>"""

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


def _prompt_html(prompt: OperatorPrompt | None, finished: bool) -> str:
    if prompt is None:
        return (
            "<p><b>Exécution terminée.</b></p>"
            if finished
            else "<p>Aucune action demandée pour l'instant. / Nothing to do yet.</p>"
        )
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


def guided_app(state: GuidedState) -> Starlette:
    async def page(request: Request) -> HTMLResponse:
        with state.lock:
            rows = "".join(
                f'<tr><td>{html.escape(name)}</td><td class="{status}">{_STATUS_FR.get(status, status)}</td></tr>'
                for name, status in state.scenarios.values()
            )
            run_id, sut, finished = state.run_id, state.sut, state.finished
        prompt = state.current()
        refresh = (
            '<noscript><meta http-equiv="refresh" content="10"></noscript>'
            if prompt
            else '<meta http-equiv="refresh" content="2">'
        )
        body = _PAGE.format(
            run_id=html.escape(run_id),
            sut=html.escape(sut),
            prompt=_prompt_html(prompt, finished),
            rows=rows,
            refresh=refresh,
            script=_PROMPT_SCRIPT if prompt else "",
        )
        return HTMLResponse(body)

    async def reply(request: Request) -> Response:
        raw = await request.body()
        if len(raw) > 10_000:
            return PlainTextResponse("requête trop grande / request too large", status_code=413)
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if not state.reply(form.get("prompt_id", ""), form.get("answer", ""), form.get("comment", "")):
            return PlainTextResponse("cette demande n'est plus ouverte / this prompt is closed", status_code=409)
        return RedirectResponse("/", status_code=303)

    return Starlette(routes=[Route("/", page), Route("/reply", reply, methods=["POST"])])


class GuidedWebServer:
    """Serves :func:`guided_app` on 127.0.0.1 in a background thread."""

    def __init__(self, state: GuidedState, port: int = 0) -> None:
        self._sock = socket.socket()
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
