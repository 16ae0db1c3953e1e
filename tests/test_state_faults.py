"""The host's fault board as shared state (issue 19 item 2): two serving processes on one PostgreSQL database.

"A fault switched on through A applies on B": two ``SocleEnvironment`` s, each with its own PostgreSQL journal on
the same database, stand for two serving processes. Locally (SQLite) the board is the in-memory queue it was."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import replace
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


def test_a_fault_aimed_at_a_session_applies_to_that_session_only() -> None:
    """Issue 19 item 4: a fault with a session is taken by that session's exchanges only; one without, by all."""
    board = FaultBoard()
    board.inject("dmp", Fault("dmp.timeout", {"seconds": 1}, remaining=2, session="s-a"))
    assert board.take("dmp", "dmp.timeout") is None  # an exchange of no session
    assert board.take("dmp", "dmp.timeout", session="s-b") is None  # of another session
    assert board.take("dmp", "dmp.timeout", session=lambda: "s-a") == Fault(
        "dmp.timeout", {"seconds": 1}, remaining=2, session="s-a"
    )
    board.inject("dmp", Fault("dmp.soap_fault"))
    assert board.take("dmp", "dmp.soap_fault", session="s-b") == Fault("dmp.soap_fault")  # unscoped: everyone's
    assert board.take("dmp", "dmp.timeout", session="s-a") == Fault("dmp.timeout", {"seconds": 1}, session="s-a")
    assert board.take("dmp", "dmp.timeout", session="s-a") is None


def test_the_session_of_the_exchange_is_looked_up_only_for_a_fault_aimed_at_one() -> None:
    """Without sessions nothing changes, at the same cost: the exchange's session is not even computed."""
    board = FaultBoard()
    asked: list[str] = []

    def session() -> str | None:
        asked.append("asked")
        return None

    board.inject("psc", Fault("psc.down"))
    assert board.take("psc", "psc.down", session=session) == Fault("psc.down")
    assert board.take("psc", "psc.down", session=session) is None
    assert asked == []


def test_a_fault_whose_parameters_do_not_match_is_not_taken() -> None:
    """``take(..., match=...)``: a ``mailbox_full`` aimed at another recipient stays whole and in its place (it used
    to be taken and one occurrence put back at the end of the queue)."""
    board = FaultBoard()
    board.inject("mssante", Fault("mssante.mailbox_full", {"address": "a@x.fr"}, remaining=2))
    board.inject("mssante", Fault("mssante.mailbox_full", {"address": "b@x.fr"}))
    board.inject("mssante", Fault("mssante.mailbox_full"))  # any recipient
    assert board.take("mssante", "mssante.mailbox_full", match={"address": "B@X.fr"}) == Fault(
        "mssante.mailbox_full", {"address": "b@x.fr"}
    )
    assert board.take("mssante", "mssante.mailbox_full", match={"address": "c@x.fr"}) == Fault("mssante.mailbox_full")
    assert board.take("mssante", "mssante.mailbox_full", match={"address": "c@x.fr"}) is None
    taken = [board.take("mssante", "mssante.mailbox_full", match={"address": "a@x.fr"}) for _ in range(3)]
    assert [f.remaining if f else None for f in taken] == [2, 1, None]


def test_a_fault_that_does_not_apply_writes_nothing_to_the_shared_log(
    two_hosts: tuple[SocleEnvironment, SocleEnvironment],
) -> None:
    a, b = two_hosts
    a.host.faults.inject("psc", Fault("psc.down", {"address": "a@x.fr"}, remaining=2, session="s-a"))

    def ops() -> list[tuple[str, str | None]]:
        with a.journal.connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                "SELECT op->>'op', op->>'session' FROM socle_state_op WHERE stream = 'harness.faults' ORDER BY seq"
            ).fetchall()
        return [(str(op), session) for op, session in rows]

    assert b.host.faults.take("psc", "psc.down", session="s-b") is None
    assert b.host.faults.take("psc", "psc.down", session="s-a", match={"address": "z@x.fr"}) is None
    assert ops() == [("inject", "s-a")]
    taken = b.host.faults.take("psc", "psc.down", session="s-a", match={"address": "A@x.fr"})
    assert taken == Fault("psc.down", {"address": "a@x.fr"}, remaining=2, session="s-a")
    assert ops() == [("inject", "s-a"), ("take", "s-a")]
    assert a.host.faults.take("psc", "psc.down", session="s-a") == replace(taken, remaining=1)  # A sees B's take


def test_a_snapshot_keeps_the_session_a_fault_is_aimed_at() -> None:
    board = FaultBoard()
    board.inject("dmp", Fault("dmp.timeout", {"seconds": 1}, remaining=2, session="s-a"))
    board.inject("dmp", Fault("dmp.soap_fault"))
    snapshot = board.snapshot()
    assert snapshot == {"dmp": [["dmp.timeout", {"seconds": 1}, 2, "s-a"], ["dmp.soap_fault", {}, 1]]}
    restored = FaultBoard()
    restored.restore(snapshot)
    assert restored.take("dmp", "dmp.timeout", session="s-b") is None
    assert restored.take("dmp", "dmp.timeout", session="s-a") == Fault("dmp.timeout", {"seconds": 1}, 2, "s-a")
