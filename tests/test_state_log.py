"""The shared simulator state's operation log (harness.core.state, issue 19 item 2).

Two :class:`Replica` objects on two PostgreSQL state logs stand for two serving processes on one database: what
one applies, the other sees after catching up, in the same order. Locally, operations are applied directly."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from harness.core.journal import SQLiteJournal
from harness.core.journal_pg import PostgreSQLJournal
from harness.core.state import (
    STATE_SCHEMA_VERSION,
    LocalStateLog,
    PostgreSQLStateLog,
    Replica,
    StateHub,
    StateSchemaTooNewError,
    apply_state_schema,
    state_log_for,
)


class Ledger:
    """A tiny state machine: named counters; ``take`` refuses (before any change) to go below zero."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.history: list[str] = []

    def apply(self, op: Any) -> int:
        name, delta = op["name"], op["delta"]
        value = self.counts.get(name, 0) + delta
        if value < 0:
            raise ValueError("below zero")
        self.counts[name] = value
        self.history.append(f"{name}{delta:+d}")
        return value

    def reset(self) -> None:
        self.counts.clear()
        self.history.clear()


def test_a_local_replica_applies_at_once_and_writes_nothing() -> None:
    ledger = Ledger()
    replica = Replica(LocalStateLog(), "ledger", ledger.apply, ledger.reset)
    assert replica.do({"name": "a", "delta": 2}) == 2
    assert replica.do({"name": "a", "delta": 3}) == 5
    with pytest.raises(ValueError):
        replica.do({"name": "a", "delta": -9})
    assert ledger.counts == {"a": 5}
    assert (replica.shared, replica.seq, replica.sync()) == (False, 0, 0)


def test_a_stream_is_registered_once_per_hub() -> None:
    hub = StateHub()
    ledger = Ledger()
    hub.replica("ledger", ledger.apply, ledger.reset)
    with pytest.raises(ValueError, match="ledger"):
        hub.replica("ledger", ledger.apply, ledger.reset)
    assert hub.shared is False and hub.sync_all() == 0


def test_an_sqlite_journal_keeps_the_state_local(tmp_path: Any) -> None:
    journal = SQLiteJournal(tmp_path / "j.db")
    try:
        assert isinstance(state_log_for(journal), LocalStateLog)
    finally:
        journal.close()


@pytest.fixture()
def pg_journals(pg_url: str) -> Any:
    first, second = PostgreSQLJournal(pg_url), PostgreSQLJournal(pg_url)
    yield first, second
    first.close()
    second.close()


def test_two_processes_see_each_others_operations_in_one_order(pg_journals: Any) -> None:
    logs = [state_log_for(journal) for journal in pg_journals]
    assert all(isinstance(log, PostgreSQLStateLog) for log in logs)
    ledgers = [Ledger(), Ledger()]
    a, b = (Replica(log, "ledger", ledger.apply, ledger.reset) for log, ledger in zip(logs, ledgers, strict=True))
    assert a.do({"name": "x", "delta": 1}) == 1
    # b has not looked yet: its own operation first applies a's, then its own, on the same state
    assert b.do({"name": "x", "delta": 10}) == 11
    assert ledgers[1].history == ["x+1", "x+10"]
    assert ledgers[0].history == ["x+1"]
    assert a.sync() == 1
    assert ledgers[0].history == ledgers[1].history and a.seq == b.seq > 0


def test_a_refused_operation_is_neither_applied_nor_appended(pg_journals: Any) -> None:
    logs = [state_log_for(journal) for journal in pg_journals]
    ledgers = [Ledger(), Ledger()]
    a, b = (Replica(log, "ledger", ledger.apply, ledger.reset) for log, ledger in zip(logs, ledgers, strict=True))
    a.do({"name": "x", "delta": 1})
    with pytest.raises(ValueError):
        b.do({"name": "x", "delta": -5})
    assert ledgers[1].counts == {"x": 1}  # it did catch up before refusing
    assert b.sync() == 0 and a.sync() == 0
    assert logs[0].read("ledger", 0) == [(a.seq, {"name": "x", "delta": 1})]


def test_concurrent_writers_of_two_processes_agree(pg_journals: Any) -> None:
    logs = [state_log_for(journal) for journal in pg_journals]
    ledgers = [Ledger(), Ledger()]
    replicas = [Replica(log, "ledger", ledger.apply, ledger.reset) for log, ledger in zip(logs, ledgers, strict=True)]

    def write(replica: Replica, name: str) -> None:
        for _ in range(25):
            replica.do({"name": name, "delta": 1})

    threads = [threading.Thread(target=write, args=(r, n)) for r in replicas for n in ("p", "q")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for replica in replicas:
        replica.sync()
    assert ledgers[0].counts == ledgers[1].counts == {"p": 50, "q": 50}
    assert ledgers[0].history == ledgers[1].history  # the same order everywhere


def test_streams_are_independent(pg_journals: Any) -> None:
    log = state_log_for(pg_journals[0])
    one, two = Ledger(), Ledger()
    r1 = Replica(log, "one", one.apply, one.reset)
    r2 = Replica(log, "two", two.apply, two.reset)
    r1.do({"name": "x", "delta": 1})
    assert r2.sync() == 0 and two.counts == {}


def test_a_failed_commit_rebuilds_the_replica_from_the_log(pg_journals: Any) -> None:
    log = state_log_for(pg_journals[0])
    ledger = Ledger()
    replica = Replica(log, "ledger", ledger.apply, ledger.reset)
    replica.do({"name": "x", "delta": 1})

    class BrokenAppend:
        shared = True

        def read(self, stream: str, after: int) -> Any:
            return log.read(stream, after)

        def transaction(self, stream: str) -> Any:
            import contextlib

            @contextlib.contextmanager
            def broken() -> Any:
                with log.transaction(stream) as tx:

                    class Tx:
                        since = tx.since

                        def append(self, op: Any, session: Any) -> int:
                            raise psycopg.OperationalError("connexion perdue")

                    yield Tx()

            return broken()

    replica.log = BrokenAppend()
    with pytest.raises(psycopg.OperationalError):
        replica.do({"name": "x", "delta": 5})
    assert ledger.counts == {"x": 1} and ledger.history == ["x+1"]  # rebuilt from what was committed


def test_a_newer_state_schema_is_refused(pg_url: str) -> None:
    journal = PostgreSQLJournal(pg_url)
    try:
        PostgreSQLStateLog(journal.connection)  # creates the state schema
        with journal.connection() as conn:
            conn.execute("UPDATE socle_schema SET version = %s WHERE component = 'state'", (STATE_SCHEMA_VERSION + 1,))
        with pytest.raises(StateSchemaTooNewError, match="plus récent"), journal.connection() as conn:
            apply_state_schema(conn)
    finally:
        journal.close()
