"""The service host: registry, ASGI mounts under /<name>, ephemeral ports, isolation between hosts."""

from __future__ import annotations

import ssl
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from harness.core.config import package_root
from harness.core.journal import Outcome, open_journal
from harness.fields.pki import TestPKI
from harness.fields.testdata import load_testdata
from harness.host.service_host import BackgroundHost, HostOptions, ServiceHost
from harness.host.simulator import RunState, Simulator, available_simulators


class EchoSimulator(Simulator):
    """A seventh service in a few lines: one HTTP route that journals each call."""

    name = "echo"
    title = "Echo"

    def http_app(self) -> Starlette:
        async def ping(request: Request) -> PlainTextResponse:
            self.ctx.record("http.ping", Outcome.ACCEPTED)
            return PlainTextResponse(f"pong {self.ctx.run.run_id}")

        return Starlette(routes=[Route("/ping", ping)])

    def http_endpoints(self) -> dict[str, str]:
        return {"ping": "/ping"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.ensure(tmp_path_factory.mktemp("pki"))


def _host(tmp_path: Path, pki: TestPKI, run_id: str) -> ServiceHost:
    journal = open_journal(f"sqlite:///{tmp_path}/{run_id}.sqlite")
    testdata = load_testdata(package_root() / "fixtures")
    return ServiceHost(
        journal,
        pki,
        testdata,
        HostOptions(),
        RunState(run_id),
        registry={"echo": EchoSimulator, **available_simulators()},
    )


def test_registry_lists_the_mssante_simulator() -> None:
    assert "mssante" in available_simulators()


def test_two_hosts_run_side_by_side_on_ephemeral_ports(tmp_path: Path, pki: TestPKI) -> None:
    a, b = _host(tmp_path, pki, "run-a"), _host(tmp_path, pki, "run-b")
    with BackgroundHost(a) as ends_a, BackgroundHost(b) as ends_b:
        assert ends_a["echo"]["base"] != ends_b["echo"]["base"]
        assert ends_a["mssante"]["smtp"] != ends_b["mssante"]["smtp"]
        context = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
        with httpx.Client(verify=context) as client:
            assert client.get(ends_a["echo"]["ping"]).text == "pong run-a"
            assert client.get(ends_b["echo"]["ping"]).text == "pong run-b"
            health = client.get(ends_a["harness"]["health"]).json()
            assert health == {"status": "ok", "services": sorted({"echo", *available_simulators()})}
            assert client.get(ends_a["harness"]["base"] + "/nothing").status_code == 404
    assert [e.operation for e in a.journal.query()] == ["http.ping"]
    assert a.journal.query()[0].service == "echo" and a.journal.query()[0].run_id == "run-a"
    assert b.journal.count() == 1


def test_stop_is_prompt_once_no_connection_is_open(tmp_path: Path, pki: TestPKI) -> None:
    """``stop`` wakes uvicorn at once and, with no connection left, does not wait out its 0.1 s tick and its 0.1 s
    grace (both idle at the end of every run, issue 18: uvicorn alone takes 0.1-0.2 s here). A client still
    connected gets uvicorn's own graceful shutdown, unchanged (an idle keep-alive TLS client: the 5 s bound)."""
    host = _host(tmp_path, pki, "stop")
    host.options = replace(host.options, services=("echo",))
    background = BackgroundHost(host)
    ends = background.start()
    with httpx.Client(verify=ssl.create_default_context(cafile=str(pki.ca_bundle_path))) as client:
        assert client.get(ends["echo"]["ping"]).text == "pong stop"
    started = time.monotonic()
    background.stop()
    assert time.monotonic() - started < 0.1
    assert host.journal.count() == 1


def test_unknown_service_is_refused(tmp_path: Path, pki: TestPKI) -> None:
    journal = open_journal(f"sqlite:///{tmp_path}/j.sqlite")
    host = ServiceHost(
        journal, pki, load_testdata(package_root() / "fixtures"), HostOptions(services=("nope",)), RunState("r")
    )
    with pytest.raises(ValueError, match="nope"):
        BackgroundHost(host).start()
