"""The HTTP driver: the whole catalogue through the example control API, and broken DUIs give SUT errors.

The example DUI (tests/example_dui/) imports nothing from the harness: it is written from the published contract.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from example_dui import ExampleDUI
from example_dui.insi import IDAM as EXAMPLE_IDAM
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from harness.core.config import HarnessConfig, package_root
from harness.core.events import Status
from harness.fields.testdata import load_testdata
from harness.front.runner import RunResult, run_catalogue
from harness.runtime.selection import catalogue
from harness.sut.base import ActionResult, ActionStatus, MssanteSend
from harness.sut.control_api import to_payload
from harness.sut.http_driver import HttpDriver

CONTRACT_FILE = Path(__file__).resolve().parents[1] / "docs" / "control-api.openapi.json"


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # uvicorn < 0.29 name; harmless otherwise
        return None


@pytest.fixture
def serve_app() -> Iterator:
    """Start ASGI apps on ephemeral loopback ports, in a thread each; stop them at the end."""
    servers: list[tuple[_Server, threading.Thread]] = []

    def start(app: Starlette) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
        thread.start()
        while not server.started:
            threading.Event().wait(0.01)
        servers.append((server, thread))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


FEATURES = sorted(p.name for p in (package_root() / "scenarios").glob("*.feature"))


def _run(
    tmp_path: Path, sut: str, features: tuple[str, ...] = ("mssante_envoi.feature",), **config: object
) -> RunResult:
    config_file = tmp_path / "socle-harness.toml"
    # the example DUI is software of its own: its INSi authorisation number (IDAM) is declared to the simulator
    config_file.write_text(
        "".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items())
        + f"[settings.insi]\nauthorised_idam = [{json.dumps(EXAMPLE_IDAM)}]\n",
        encoding="utf-8",
    )
    cfg = HarnessConfig(run_dir=tmp_path / ".socle", journal=f"sqlite:///{tmp_path}/journal.sqlite", sut=sut)
    folder = tmp_path / "features"
    folder.mkdir(exist_ok=True)
    for name in features:
        shutil.copy(package_root() / "scenarios" / name, folder)
    cfg = cfg.with_overrides(scenarios_dir=folder)
    return run_catalogue(cfg, config_file=config_file, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("feature", FEATURES)
def test_catalogue_passes_through_the_example_control_api(feature: str, tmp_path: Path, serve_app) -> None:  # noqa: ANN001
    """The whole catalogue, one feature file at a time, against the example DUI over real HTTP."""
    url = serve_app(ExampleDUI().app())
    result = _run(tmp_path, f"http:{url}", (feature,))
    expected = (package_root() / "scenarios" / feature).read_text(encoding="utf-8").count("Scénario:")
    assert len(result.scenarios) == expected > 0, f"{len(result.scenarios)} scénario(s) exécuté(s) sur {expected}"
    failed = {s.name: (str(s.status), s.message[:400]) for s in result.scenarios if s.status is not Status.PASSED}
    assert not failed, failed


@pytest.mark.slow
def test_unreachable_dui_is_an_error_for_every_scenario_not_a_failure(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there any more
    result = _run(tmp_path, f"http:http://127.0.0.1:{port}", sut_retries=0, sut_timeout=2)
    expected = [s for s in catalogue(package_root() / "scenarios") if s.feature_file == "mssante_envoi.feature"]
    assert len(result.scenarios) == len(expected) > 0, "the run must go on with every scenario"
    assert {s.status for s in result.scenarios} == {Status.ERROR}
    assert all("injoignable" in s.message for s in result.scenarios)


@pytest.mark.slow
def test_server_errors_and_broken_json_are_sut_errors(tmp_path: Path, serve_app) -> None:  # noqa: ANN001
    async def session(request: Request) -> Response:
        return Response(status_code=204)

    async def broken(request: Request) -> Response:
        return PlainTextResponse("Internal Server Error", status_code=500)

    url = serve_app(
        Starlette(
            routes=[
                Route("/socle/v1/session", session, methods=["POST"]),
                Route("/socle/v1/actions/{a}", broken, methods=["POST"]),
            ]
        )
    )
    result = _run(tmp_path, f"http:{url}", sut_retries=0, sut_timeout=5)
    assert {s.status for s in result.scenarios} == {Status.ERROR}
    assert all("SUT" in s.message and "500" in s.message for s in result.scenarios)


def _driver(handler) -> HttpDriver:  # noqa: ANN001
    driver = HttpDriver("http://dui.test", retries=1, backoff=0.0, transport=httpx.MockTransport(handler))
    from harness.sut.base import SutEnvironment

    ca = Path(tempfile.mkdtemp()) / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n(test)\n-----END CERTIFICATE-----\n", encoding="ascii")
    driver.setup(SutEnvironment(endpoints={}, ca_bundle=ca, client_certificates={}, credentials={}))
    return driver


def _action() -> MssanteSend:
    data = load_testdata(package_root() / "fixtures")
    person = data.person("P001")
    return MssanteSend(person, data.establishment(person.essms), "DLU", ("jean.dupont@medecin.mssante.fr",))


@pytest.mark.parametrize(
    ("response", "status", "words"),
    [
        (httpx.Response(200, json={"status": "done", "detail": "ok"}), ActionStatus.DONE, "ok"),
        (httpx.Response(200, json={"status": "failed", "detail": "refusé"}), ActionStatus.FAILED, "refusé"),
        (httpx.Response(200, json={"status": "delegated"}), ActionStatus.DELEGATED, ""),
        (httpx.Response(200, text="<html>oops"), ActionStatus.ERROR, "JSON"),
        (httpx.Response(200, json={"status": "great"}), ActionStatus.ERROR, "hors contrat"),
        (httpx.Response(200, json={"status": "done", "data": []}), ActionStatus.ERROR, "hors contrat"),
        (httpx.Response(404), ActionStatus.ERROR, "n'implémente pas"),
        (httpx.Response(503, text="maintenance"), ActionStatus.ERROR, "503"),
    ],
)
def test_outcome_mapping(response: httpx.Response, status: ActionStatus, words: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204) if request.url.path.endswith("/session") else response

    result = _driver(handler).send_mssante(_action())
    assert result.status is status and words in result.detail
    action_request = seen[-1]
    assert action_request.headers["X-Socle-Contract"] == "1" and len(action_request.headers["Idempotency-Key"]) >= 8


def _answer(method: str, data: object, action: object = None) -> ActionResult:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/session"):
            return httpx.Response(204)
        return httpx.Response(200, json={"status": "done", "detail": "ok", "data": data})

    return getattr(_driver(handler), method)(*(() if action is None else (action,)))


def test_answer_data_outside_the_action_schema_is_a_sut_error_naming_where() -> None:
    wrong = _answer("send_mssante", {"message_id": 42}, _action())
    assert (wrong.status, wrong.detail) == (
        ActionStatus.ERROR,
        "réponse du DUI hors contrat (mssante-send) : data.message_id / answer outside the contract: "
        '42 is not of type "string"',
    )
    nested = _answer("dmp_find", {"documents": [{"entry_uuid": "urn:uuid:x"}]}, _action())
    assert nested.status is ActionStatus.ERROR
    assert nested.detail.startswith("réponse du DUI hors contrat (dmp-find) : data.documents[0] / ")
    no_session = _answer("psc_logout", {"sid": 7})
    assert no_session.status is ActionStatus.ERROR and "data.sid" in no_session.detail
    assert _answer("psc_logout", {"sid": None}).status is ActionStatus.DONE  # declared nullable
    # more keys than declared, or fewer, are the DUI's right; a declared key of the declared type passes
    fine = _answer("send_mssante", {"message_id": "<a@b>", "recipients": ["x"]}, _action())
    assert (fine.status, fine.data) == (ActionStatus.DONE, {"message_id": "<a@b>", "recipients": ["x"]})
    assert _answer("psc_refresh", {"anything": 1}).status is ActionStatus.DONE


def test_connect_errors_are_retried_then_unreachable_but_timeouts_are_not_retried() -> None:
    calls: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.ConnectError("refused", request=request)

    assert _driver(refuse).send_mssante(_action()).status is ActionStatus.UNREACHABLE
    assert len(calls) == 2  # 1 try + 1 retry

    calls.clear()

    def slow(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path.endswith("/session"):
            return httpx.Response(204)
        raise httpx.ReadTimeout("slow", request=request)

    result = _driver(slow).send_mssante(_action())
    assert result.status is ActionStatus.UNREACHABLE and "à temps" in result.detail
    assert calls.count("/socle/v1/actions/mssante-send") == 1  # never performed twice


def test_payloads_follow_the_published_contract() -> None:
    spec = json.loads(CONTRACT_FILE.read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    payload = to_payload(_action())
    for name in schemas["MssanteSend"]["required"]:
        assert name in payload
    for name in schemas["Person"]["required"]:
        assert name in payload["person"]
    for name in schemas["Establishment"]["required"]:
        assert name in payload["establishment"]
    assert "/socle/v1/actions/mssante-send" in spec["paths"] and "/socle/v1/session" in spec["paths"]


def test_published_contract_is_the_generated_one_and_covers_every_driver_action() -> None:
    from harness.sut.control_api import ACTIONS, openapi
    from harness.sut.plugins import dui_sides

    assert json.loads(CONTRACT_FILE.read_text(encoding="utf-8")) == openapi(), (
        "docs/control-api.openapi.json is stale: regenerate it with `socle-harness control-api -o docs/control-api.openapi.json`"
    )
    declared = [spec.name for side in dui_sides().values() for spec in side.actions]
    assert [spec.name for spec in ACTIONS] == declared and len(declared) == 20
    assert sorted(p.removeprefix("/socle/v1/actions/") for p in openapi()["paths"] if "/actions/" in p) == sorted(
        declared
    )
    driver = HttpDriver("http://dui.test")
    assert all(callable(getattr(driver, spec.method)) for spec in ACTIONS)
    with pytest.raises(AttributeError):
        driver.send_by_pigeon  # noqa: B018 - not an action of the contract


def test_the_example_dui_implements_every_action_of_the_contract_without_the_harness() -> None:
    from harness.sut.control_api import ACTIONS

    assert set(ExampleDUI().handlers) == {spec.name for spec in ACTIONS}
    import ast

    folder = Path(__file__).parent / "example_dui"
    for module in folder.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {m for m in imported if m.split(".")[0] in ("harness", "mock_services")}, module.name


def _session_driver(handler, tmp_path: Path):  # noqa: ANN001, ANN202
    """A driver whose environment carries the run's identities and a session registry (a SQLite journal)."""
    from harness.core.journal import SQLiteJournal
    from harness.core.sessions import Members, SessionBook
    from harness.sut.base import SutEnvironment

    journal = SQLiteJournal(tmp_path / "j.sqlite")
    book = SessionBook(journal)
    members = Members(essms=("010000001",), mailboxes=("dui@alpha.mssante.fr",), clients=("dui-alpha",))
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n(test)\n-----END CERTIFICATE-----\n", encoding="ascii")
    driver = HttpDriver("http://dui.test", retries=0, backoff=0.0, transport=httpx.MockTransport(handler))
    driver.setup(SutEnvironment({}, ca, {}, {}, members=members, sessions=book))
    return driver, journal, book


def test_the_driver_opens_the_dui_test_session_before_its_own_and_closes_it(tmp_path: Path) -> None:
    opened: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/session"):
            opened.append([s.id for s in journal.sessions(open_only=True)])  # already open when the DUI hears
            return httpx.Response(204)
        return httpx.Response(200, json={"status": "done"})

    driver, journal, book = _session_driver(handler, tmp_path)
    assert driver.send_mssante(_action()).status is ActionStatus.DONE
    assert driver.send_mssante(_action()).status is ActionStatus.DONE  # one session for the run
    [session] = journal.sessions()
    assert opened == [[session.id]] and driver.harness_session == session.id
    assert (session.dui, session.label, session.open) == ("http://dui.test", "http://dui.test", True)
    assert session.members.pairs() == [
        ("client", "dui-alpha"),
        ("essms", "010000001"),
        ("mailbox", "dui@alpha.mssante.fr"),
    ]
    assert book.session_of("mailbox", "DUI@alpha.mssante.fr") == session.id
    driver.close()
    assert [s.open for s in journal.sessions()] == [False] and driver.harness_session is None
    assert book.session_of("mailbox", "dui@alpha.mssante.fr") is None
    journal.close()


def test_a_dui_whose_identities_another_session_holds_is_not_started(tmp_path: Path) -> None:
    from harness.core.sessions import Members

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(204)

    driver, journal, book = _session_driver(handler, tmp_path)
    other = book.create("Autre DUI", Members(essms=("010000001",)), label="autre")
    result = driver.send_mssante(_action())
    assert result.status is ActionStatus.ERROR and seen == []  # the DUI was never told to start
    assert result.detail == (
        f"session refusée : la session « autre » ({other.id}, DUI Autre DUI) détient déjà ESSMS 010000001. "
        f"Fermez-la (socle-harness session close {other.id}) ou donnez à ce DUI d'autres données de test (un "
        "membre n'appartient qu'à une session ouverte) / session refused: a member belongs to one open session at "
        "most"
    )
    driver.close()  # nothing of its own to close
    assert [(s.id, s.open) for s in journal.sessions()] == [(other.id, True)]
    journal.close()


def test_a_run_through_the_http_driver_is_one_session_its_exchanges_carry(tmp_path: Path, serve_app) -> None:  # noqa: ANN001
    from harness.core.journal import JournalFilter, SQLiteJournal

    url = serve_app(ExampleDUI().app())
    result = _run(tmp_path, f"http:{url}", ("mssante_envoi.feature",))
    assert result.scenarios and all(s.status is Status.PASSED for s in result.scenarios)
    journal = SQLiteJournal(tmp_path / "journal.sqlite")
    [session] = journal.sessions()
    data = load_testdata(package_root() / "fixtures")
    assert (session.dui, session.open) == (url, False)  # closed at the end of the run
    assert session.members.essms == tuple(sorted(e.finess for e in data.establishments))
    assert session.members.patients == tuple(sorted(p.ins.value for p in data.persons))
    assert session.members.clients == ("dui-reference",)
    submitted = journal.query(JournalFilter(service="mssante", operation="smtp.submit"))
    assert submitted and {e.session_id for e in submitted} == {session.id}
    assert journal.count(JournalFilter(session=session.id)) >= len(submitted)
    journal.close()


def test_a_session_an_interrupted_run_of_the_same_dui_left_open_is_replaced(tmp_path: Path) -> None:
    from harness.core.sessions import Members

    def handler(request: httpx.Request) -> httpx.Response:
        return (
            httpx.Response(204)
            if request.url.path.endswith("/session")
            else httpx.Response(200, json={"status": "done"})
        )

    driver, journal, book = _session_driver(handler, tmp_path)
    stale = book.create("http://dui.test", Members(essms=("010000001",)))  # the same DUI's run, never closed
    assert driver.send_mssante(_action()).status is ActionStatus.DONE
    assert [(s.id, s.open) for s in journal.sessions()] == [(stale.id, False), (driver.harness_session, True)]
    driver.close()
    journal.close()
