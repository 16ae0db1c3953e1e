"""Guided recette: a person at the DUI follows the instructions (terminal and local web page).

The tests play the person: when the harness asks for an action, they perform it with the reference DUI (as a
person would in their DUI), then answer the harness's questions through stdin or through the web page in a
real headless Chromium driven by Playwright.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from processes import interruptible

from harness.core.config import package_root
from harness.core.events import OperatorPrompt
from harness.fields.testdata import load_testdata
from harness.runtime.drivers import make_driver
from harness.runtime.guided import ReplyBox
from harness.runtime.guided_ui import GuidedState, guided_app
from harness.sut import MssanteSend, SutEnvironment

UNKNOWN = "inconnu@nulle-part.mssante.fr"


class GuidedRun:
    def __init__(self, cwd: Path, *args: str) -> None:
        self.cwd = cwd
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.front.cli",
                "run",
                "--sut",
                "manual",
                "-k",
                "inconnue",
                "--step-timeout",
                "60",
                # ephemeral ports: the stable defaults (8443, 2587, ...) may be held by a serve or another run
                *("--https-port", "0", "--smtp-port", "0", "--imap-port", "0", "--mllp-port", "0"),
                *args,
            ],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "160"},
            preexec_fn=interruptible,  # test_ctrl_c_* stops it with SIGINT
        )

    def events(self) -> list[dict[str, Any]]:
        found = []
        for path in (self.cwd / ".socle").glob("events-*.jsonl"):
            found += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return found

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            matching = [e for e in self.events() if predicate(e)]
            if matching:
                return matching[-1]
            assert self.proc.poll() is None, self.proc.stdout.read() if self.proc.stdout else ""
            time.sleep(0.05)
        raise AssertionError("the guided run did not get there in time")

    def act_like_the_person(self) -> None:
        """Do in 'the DUI' what the instruction says: send the DLU to the unknown address."""
        started = self.wait(lambda e: e["kind"] == "run_started")
        data = load_testdata(package_root() / "fixtures")
        env = SutEnvironment(
            started["endpoints"],
            self.cwd / ".socle" / "pki" / "ca-bundle.pem",
            {},
            {m.address: m.password for m in data.mailboxes if m.password},
        )
        dui = make_driver("reference")
        dui.setup(env)
        person = data.person("Jeanne MARTIN")
        dui.send_mssante(MssanteSend(person, data.establishment(person.essms), "DLU", (UNKNOWN,)))

    def finish(self) -> tuple[int, str, dict[str, Any]]:
        out, _ = self.proc.communicate(timeout=120)
        results = json.loads((self.cwd / "reports" / "results.json").read_text(encoding="utf-8"))
        return self.proc.returncode, out, results


def test_terminal_guidance_action_then_question(tmp_path: Path) -> None:
    run = GuidedRun(tmp_path)
    action = run.wait(lambda e: e["kind"] == "operator_prompt" and e["mode"] == "action")
    assert "Jeanne MARTIN" in action["text"] and UNKNOWN in action["text"] and "238047505612394" in action["text"]
    run.act_like_the_person()
    run.wait(lambda e: e["kind"] == "operator_prompt" and e["mode"] == "question")
    assert run.proc.stdin is not None
    run.proc.stdin.write("n\n")
    run.proc.stdin.flush()
    code, out, results = run.finish()
    assert code == 0, out
    assert "Action à réaliser dans le DUI" in out and "restantes" not in out.split("Résumé")[-1]
    [scenario] = results["scenarios"]
    assert scenario["status"] == "passed"
    evidence = [e["label"] for step in scenario["steps"] for e in step["evidence"]]
    assert "Réponse de l'opérateur" in evidence


def test_operator_blocks_a_step_with_a_comment(tmp_path: Path) -> None:
    run = GuidedRun(tmp_path)
    run.wait(lambda e: e["kind"] == "operator_prompt" and e["mode"] == "action")
    assert run.proc.stdin is not None
    run.proc.stdin.write("b le poste du DUI est en panne\n")
    run.proc.stdin.flush()
    code, out, results = run.finish()
    assert code == 1
    [scenario] = results["scenarios"]
    assert scenario["status"] == "error" and "le poste du DUI est en panne" in scenario["message"]
    assert "le poste du DUI est en panne" in (tmp_path / "reports" / "report.html").read_text(encoding="utf-8")


def test_web_page_shows_the_prompt_and_takes_answers(tmp_path: Path) -> None:
    """The web app alone (no browser): page content, answers, closed prompts, oversized posts."""
    from starlette.testclient import TestClient

    state = GuidedState(ReplyBox(tmp_path / "replies.jsonl"))
    client = TestClient(guided_app(state))
    assert "Aucune action" in client.get("/").text
    state.handle(
        OperatorPrompt(
            "p1", "s1", "step", "question", "Le DUI affiche-t-il <b>l'échec</b> ?", 60, time.time(), ["oui", "non"]
        )
    )
    page = client.get("/").text
    assert "&lt;b&gt;l&#x27;échec&lt;/b&gt;" in page and 'value="non"' in page and "restantes" in page
    assert client.post("/reply", content="prompt_id=p1&answer=peut-etre").status_code == 409
    assert client.post("/reply", content="prompt_id=zzz&answer=non").status_code == 409
    assert client.post("/reply", content="x" * 20_000).status_code == 413
    response = client.post(
        "/reply", content="prompt_id=p1&answer=non&comment=vu+%C3%A0+l%27%C3%A9cran", follow_redirects=False
    )
    assert response.status_code == 303
    [reply] = state.box.replies("p1")
    assert (reply.answer, reply.comment) == ("non", "vu à l'écran")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium absent (Debian package 'chromium'): the browser test of the guided page is skipped",
)
def test_guided_page_in_headless_chromium(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (PyPI) absent: browser test skipped")
    run = GuidedRun(tmp_path, "--guide-port", "0", "--keep-open")
    action = run.wait(lambda e: e["kind"] == "operator_prompt" and e["mode"] == "action")
    url = _guide_url(run)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page()
        page.goto(url)
        assert action["text"] in page.inner_text("#instruction")
        assert "restantes" in page.inner_text("#countdown")
        # the connection panel tells the operator how to configure the DUI
        page.click("#connexion summary")  # folded once the scenarios started
        endpoints = page.inner_text("#endpoints")
        assert "mssante" in endpoints and "smtp" in endpoints
        assert page.get_attribute("a[href='/files/ca-bundle.pem']", "href") == "/files/ca-bundle.pem"
        assert "dui@ehpad-tilleuls.mssante.fr" in page.inner_text("#mailboxes")
        assert "dui-reference" in page.inner_text("#psc")
        # « C'est fait » before the exchange: the page says it waits for it, the countdown form is gone
        page.click("button[value=done]")
        page.wait_for_url(url)
        assert "En attente de l'échange" in page.inner_text("#waiting")
        assert page.query_selector("textarea[name=comment]") is None
        run.act_like_the_person()
        run.wait(lambda e: e["kind"] == "operator_prompt" and e["mode"] == "question")
        deadline = time.monotonic() + 30
        while "indique-t-il" not in page.content() and time.monotonic() < deadline:
            page.reload()
        # the step the exchange decided is shown with its verdict as soon as it is judged
        assert "réussi" in page.inner_text("#verdict")
        page.fill("textarea[name=comment]", "message d'erreur affiché")
        page.click("button[value=non]")
        page.wait_for_url(url)
        deadline = time.monotonic() + 60
        while page.query_selector("#summary #report") is None and time.monotonic() < deadline:
            time.sleep(0.5)
            page.reload()
        assert "1 réussis" in page.inner_text("#summary")
        report = browser.new_page()
        report.goto(url + "report")
        assert "Rapport de conformité" in report.content()
        page.click("#summary button")  # « Fermer la recette »: the run ends
        browser.close()
    code, out, results = run.finish()
    assert code == 0, out
    [scenario] = results["scenarios"]
    assert scenario["status"] == "passed"
    answers = [
        e["text"] for step in scenario["steps"] for e in step["evidence"] if e["label"] == "Réponse de l'opérateur"
    ]
    assert answers and "message d'erreur affiché" in answers[0]


def _guide_url(run: GuidedRun) -> str:
    """The page URL the run printed (read from its output as it goes)."""
    assert run.proc.stdout is not None
    buffer = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        buffer += run.proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/", buffer)
        if match:
            return match.group(0)
    raise AssertionError(f"no guide URL printed: {buffer}")


def test_manual_driver_outside_the_runner_says_how_to_use_it() -> None:
    with pytest.raises(RuntimeError, match="--sut manual"):
        make_driver("manual").setup(SutEnvironment({}, Path("ca.pem"), {}, {}))


def test_web_client_reaches_a_running_guide(tmp_path: Path) -> None:
    from harness.runtime.guided_ui import GuidedWebServer

    server = GuidedWebServer(GuidedState(ReplyBox(tmp_path / "r.jsonl")))
    url = server.start()
    try:
        assert "Recette guidée" in httpx.get(url).text
    finally:
        server.stop()


def test_manual_driver_gives_a_french_instruction_for_every_action_of_the_contract() -> None:
    from datetime import UTC, datetime

    from harness.fields.dui import DuiRecord
    from harness.runtime.guided import OperatorChannel
    from harness.sut import base
    from harness.sut.control_api import ACTIONS
    from harness.sut.insi_actions import traits_of_person
    from harness.sut.manual import ManualDriver

    data = load_testdata(package_root() / "fixtures")
    person = data.person("P001")
    where = data.establishment(person.essms)
    traits = traits_of_person(person)
    samples: dict[type, Any] = {
        base.MssanteSend: base.MssanteSend(person, where, "DLU", ("jean.dupont@medecin.mssante.fr",)),
        base.MssanteReceive: base.MssanteReceive(where, (person,)),
        base.MssanteRelay: base.MssanteRelay(person, where, "DLU", ("jean.dupont@medecin.mssante.fr",)),
        base.DirectoryLookup: base.DirectoryLookup("marie.curie"),
        base.PscLogin: base.PscLogin(where),
        base.InsiSearch: base.InsiSearch(traits, where),
        base.InsiVerify: base.InsiVerify(traits, person.ins.value, person.ins.oid, where),
        base.DmpFeed: base.DmpFeed(person, where, "DLU"),
        base.DmpQuery: base.DmpQuery(person, where, "2.25.1"),
        base.DmpUpdate: base.DmpUpdate(person, where, "2.25.1", "masquer"),
        base.TdduiExport: base.TdduiExport(where, (DuiRecord(person, "L1"),), datetime(2025, 4, 30, tzinfo=UTC)),
        base.EprescriptionImport: base.EprescriptionImport(person, where, "123456789012345678"),
        base.CdlNotePost: base.CdlNotePost(person, where, "OBS", "Nuit calme"),
        base.CdlNoteUpdate: base.CdlNoteUpdate(person, where, "n1", "Nuit agitée"),
        base.CdlNotesRead: base.CdlNotesRead(person, where),
    }
    driver = ManualDriver(OperatorChannel(lambda event: None, ReplyBox(Path("/nonexistent/replies")), timeout=1))
    for spec in ACTIONS:
        call = getattr(driver, spec.method)
        result = call() if spec.request is None else call(samples[spec.request])
        assert result.status.value == "delegated", spec.name
        assert result.detail.startswith(("Dans le DUI", "Si l'identité", "Déconnectez", "Restez", "Faites")), (
            spec.name,
            result.detail,
        )


def test_ctrl_c_writes_the_partial_report_marked_interrupted(tmp_path: Path) -> None:
    import signal

    run = GuidedRun(tmp_path)
    run.wait(lambda e: e["kind"] == "operator_prompt" and e["mode"] == "action")
    run.proc.send_signal(signal.SIGINT)
    out, _ = run.proc.communicate(timeout=60)
    assert run.proc.returncode == 130, out
    assert "interrompue" in out
    results = json.loads((tmp_path / "reports" / "results.json").read_text(encoding="utf-8"))
    assert results["run"]["interrupted"] is True
    assert "Exécution interrompue" in (tmp_path / "reports" / "report.html").read_text(encoding="utf-8")


def test_the_page_port_can_be_reused_right_after_a_run(tmp_path: Path) -> None:
    from harness.runtime.guided_ui import GuidedWebServer

    first = GuidedWebServer(GuidedState(ReplyBox(tmp_path / "a.jsonl")))
    url = first.start()
    port = int(url.rsplit(":", 1)[1].strip("/"))
    with httpx.Client() as client:  # a connection the server closes leaves its side in TIME_WAIT
        assert client.get(url).status_code == 200
    first.stop()
    second = GuidedWebServer(GuidedState(ReplyBox(tmp_path / "b.jsonl")), port)
    try:
        assert second.start() == url
        assert "Recette guidée" in httpx.get(url).text
    finally:
        second.stop()


def test_waiting_for_the_exchange_after_done_and_the_connection_panel(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from harness.core.events import RunFinished, RunStarted, StepFinished
    from harness.core.events import Status as S
    from harness.runtime.guided_ui import Connection

    ca = tmp_path / "ca-bundle.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    state = GuidedState(
        ReplyBox(tmp_path / "r.jsonl"),
        connection=Connection(
            files={"ca-bundle.pem": ca},
            mailboxes=(("dui@x.mssante.fr", "APP", "secret-1"),),
            psc_clients=(("dui-ref", "s3cret", "https://dui/cb"),),
            insi_idam=("IDAM-42",),
        ),
    )
    state.handle(RunStarted("r", "", "manual", "", "0.1", "", endpoints={"mssante": {"smtp": "h:2587"}}))
    state.handle(OperatorPrompt("p1", "s1", "Quand", "action", "Envoyez le DLU de Jeanne MARTIN", 60, time.time()))
    client = TestClient(guided_app(state))
    page = client.get("/").text
    assert "<code>h:2587</code>" in page and "secret-1" in page and "s3cret" in page and "IDAM-42" in page
    assert client.get("/files/ca-bundle.pem").text.startswith("-----BEGIN")
    assert client.get("/files/../etc/passwd").status_code == 404
    assert client.get("/report").status_code == 404
    assert client.post("/reply", content="prompt_id=p1&answer=done", follow_redirects=False).status_code == 303
    page = client.get("/").text
    assert "En attente de l'échange" in page and "<textarea" not in page  # no form to fill while it waits
    state.handle(StepFinished("s1", "Alors", "la messagerie refuse le message", S.PASSED, 0.1))
    assert "réussi</span> — <b>Alors</b> la messagerie refuse le message" in client.get("/").text
    state.handle(RunFinished("r", "", 1.0, {"passed": 1}))
    page = client.get("/").text
    assert "Recette terminée" in page and "Rapport en cours d'écriture" in page
    assert client.post("/close").status_code == 200 and state.closed.is_set()
