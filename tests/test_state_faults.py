"""The host's fault board as shared state (issue 19 item 2): two serving processes on one PostgreSQL database.

"A fault switched on through A applies on B": two ``SocleEnvironment`` s, each with its own PostgreSQL journal on
the same database, stand for two serving processes. Locally (SQLite) the board is the in-memory queue it was."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from harness.core.config import HarnessConfig
from harness.host.admin import admin_headers
from harness.host.simulator import Fault, FaultBoard
from harness.runtime.environment import SocleEnvironment


def test_a_local_board_queues_and_consumes_in_order() -> None:
    board = FaultBoard()
    board.inject("psc", Fault("psc.down", {"a": 1}, remaining=2))
    board.inject("psc", Fault("psc.wrong-state"))
    assert board.take("psc", "psc.acr-not-met") is None
    assert board.take("psc", "psc.down") == Fault("psc.down", {"a": 1}, remaining=2)
    assert board.take("psc", "psc.down") == Fault("psc.down", {"a": 1}, remaining=1)
    assert board.take("psc", "psc.down") is None
    board.clear("psc")
    assert board.take("psc", "psc.wrong-state") is None


@pytest.fixture()
def two_hosts(
    pg_url: str, tmp_path: Path, start_environments: Callable[..., list[SocleEnvironment]]
) -> tuple[SocleEnvironment, SocleEnvironment]:
    a, b = start_environments(*(HarnessConfig(run_dir=tmp_path, journal=pg_url, services=("psc",)) for _ in range(2)))
    return a, b


def _http(env: SocleEnvironment) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(env.pki.ca_bundle_path)), timeout=15)


def test_a_fault_switched_on_through_a_applies_on_b(two_hosts: tuple[SocleEnvironment, SocleEnvironment]) -> None:
    a, b = two_hosts
    with _http(a) as http:
        injected = http.post(
            a.endpoints["harness"]["base"] + "/_harness/faults",
            json={"service": "psc", "kind": "psc.down", "count": 2},
            headers=admin_headers(a.admin_token),
        )
        assert injected.status_code == 201
        on_b = [http.get(b.endpoints["psc"]["discovery"]).status_code for _ in range(2)]
        on_a = http.get(a.endpoints["psc"]["discovery"]).status_code
    assert on_b == [503, 503] and on_a == 200  # B consumed both occurrences; A sees them gone


def _race(board: FaultBoard, barrier: threading.Barrier, taken: list[Fault | None]) -> None:
    barrier.wait()
    taken.append(board.take("psc", "psc.wrong-state"))


def test_the_last_occurrence_goes_to_exactly_one_process(two_hosts: tuple[SocleEnvironment, SocleEnvironment]) -> None:
    a, b = two_hosts
    for round_ in range(5):
        a.host.faults.inject("psc", Fault("psc.wrong-state", {"round": round_}, remaining=1))
        barrier = threading.Barrier(4)
        taken: list[Fault | None] = []

        threads = [threading.Thread(target=_race, args=(env.host.faults, barrier, taken)) for env in (a, b, a, b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [fault for fault in taken if fault is not None] == [Fault("psc.wrong-state", {"round": round_})]
    assert a.host.faults.take("psc", "psc.wrong-state") is None and b.host.faults.take("psc", "psc.wrong-state") is None


def test_a_cleared_board_is_cleared_everywhere(two_hosts: tuple[SocleEnvironment, SocleEnvironment]) -> None:
    a, b = two_hosts
    b.host.faults.inject("psc", Fault("psc.acr-not-met", remaining=3))
    a.host.faults.clear()
    assert b.host.faults.take("psc", "psc.acr-not-met") is None
