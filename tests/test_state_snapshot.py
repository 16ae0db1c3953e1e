"""Snapshots and compaction of the shared state's log (harness.core.state, issue 19 item 2).

A replica that starts restores the stream's latest snapshot and applies only the operations after it; writing a
snapshot deletes the operations up to the previous one (a checkpoint: up to itself), and a replica behind the
deleted range restores the snapshot instead of missing operations. Two :class:`Replica` objects on two PostgreSQL
state logs stand for two serving processes on one database."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.core.journal_pg import PostgreSQLJournal
from harness.core.state import (
    STATE_SCHEMA_VERSION,
    PostgreSQLStateLog,
    Replica,
    StateHub,
    apply_state_schema,
    decode_snapshot,
    encode_snapshot,
    state_log_for,
)


class Ledger:
    """Named counters and the history of every change: a state whose every operation leaves a trace."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.history: list[str] = []
        self.restored: list[int] = []  # len(history) of each snapshot restored (to tell restore from replay)

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

    def snapshot(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "history": list(self.history)}

    def restore(self, state: dict[str, Any]) -> None:
        self.counts, self.history = dict(state["counts"]), list(state["history"])
        self.restored.append(len(self.history))


@pytest.fixture()
def pg_journals(pg_url: str) -> Any:
    first, second = PostgreSQLJournal(pg_url), PostgreSQLJournal(pg_url)
    yield first, second
    first.close()
    second.close()


def _replica(journal: Any, ledger: Ledger, every: int = 1000) -> Replica:
    hub = StateHub(state_log_for(journal), snapshot_every=every)
    return hub.replica("ledger", ledger.apply, ledger.reset, ledger.snapshot, ledger.restore)


def _rows(journal: Any, sql: str) -> list[tuple[Any, ...]]:
    with journal.connection() as conn:
        return [tuple(row) for row in conn.execute(sql).fetchall()]


def _write(replica: Replica, count: int, name: str = "x") -> None:
    for _ in range(count):
        replica.do({"name": name, "delta": 1})


def test_a_snapshot_is_written_every_k_operations_and_compacts_up_to_the_previous(pg_journals: Any) -> None:
    first = pg_journals[0]
    a = _replica(first, Ledger(), every=4)
    _write(a, 3)
    assert _rows(first, "SELECT seq FROM socle_state_snapshot") == []
    seqs = [seq for (seq,) in _rows(first, "SELECT seq FROM socle_state_op ORDER BY seq")]
    _write(a, 1)  # the 4th operation writes the first snapshot, in its transaction
    [(at4,)] = _rows(first, "SELECT seq FROM socle_state_snapshot")
    assert at4 == a.seq
    _write(a, 4)  # the 8th: a second snapshot; operations up to the first one are deleted
    assert _rows(first, "SELECT seq FROM socle_state_snapshot") == [(a.seq,)]
    kept = [seq for (seq,) in _rows(first, "SELECT seq FROM socle_state_op ORDER BY seq")]
    assert len(kept) == 4 and min(kept) > at4 and seqs[0] < at4
    assert _rows(first, "SELECT stream, seq FROM socle_state_horizon") == [("ledger", at4)]
    [(fmt, data)] = _rows(first, "SELECT format, state FROM socle_state_snapshot")
    assert decode_snapshot(fmt, data) == {"counts": {"x": 8}, "history": ["x+1"] * 8}


def test_a_new_replica_restores_the_snapshot_then_applies_the_tail(pg_journals: Any) -> None:
    """Fails when the operations after the snapshot are skipped (or the snapshot is ignored)."""
    a = _replica(pg_journals[0], Ledger(), every=5)
    _write(a, 5, "x")  # snapshot at the 5th
    _write(a, 3, "y")  # the tail: after the snapshot
    late = Ledger()
    b = _replica(pg_journals[1], late, every=5)
    assert b.sync() == 1 + 3  # one snapshot restored, then three operations
    assert late.restored == [5]  # restored, not replayed from the start
    assert late.counts == {"x": 5, "y": 3}
    assert late.history == ["x+1"] * 5 + ["y+1"] * 3
    assert b.seq == a.seq
    assert b.do({"name": "y", "delta": 1}) == 4  # and it goes on from there


def test_a_replica_behind_a_compacted_range_restores_the_snapshot(pg_journals: Any) -> None:
    behind = Ledger()
    b = _replica(pg_journals[1], behind, every=3)
    a = _replica(pg_journals[0], Ledger(), every=3)
    _write(a, 1)
    assert b.sync() == 1 and behind.counts == {"x": 1}  # b started before any snapshot, at seq 1
    _write(a, 8, "y")  # snapshots at the 3rd, 6th and 9th operations: up to the 6th deleted
    assert _rows(pg_journals[0], "SELECT count(*) FROM socle_state_op") == [(3,)]
    assert b.sync() == 1  # the operations after seq 1 are gone: the latest snapshot (the 9th) instead
    assert behind.restored == [9]
    assert behind.counts == {"x": 1, "y": 8} and behind.history == ["x+1"] + ["y+1"] * 8
    assert b.seq == a.seq


def test_a_replica_behind_a_compacted_range_restores_inside_its_own_operation(pg_journals: Any) -> None:
    behind = Ledger()
    b = _replica(pg_journals[1], behind, every=2)
    a = _replica(pg_journals[0], Ledger(), every=2)
    _write(a, 1)
    b.sync()
    _write(a, 6)
    assert b.do({"name": "x", "delta": 1}) == 8  # caught up under the lock: restored, then its own operation
    assert behind.history == ["x+1"] * 8


def test_a_checkpoint_compacts_the_whole_stream_and_a_late_replica_sees_the_same_state(pg_journals: Any) -> None:
    ledger = Ledger()
    a = _replica(pg_journals[0], ledger)
    _write(a, 7)
    assert a.checkpoint() == a.seq
    assert _rows(pg_journals[0], "SELECT count(*) FROM socle_state_op") == [(0,)]
    late = Ledger()
    b = _replica(pg_journals[1], late)
    assert b.state() == a.state() == {"counts": {"x": 7}, "history": ["x+1"] * 7}
    assert late.restored == [7]


def test_a_process_that_appends_little_does_not_write_a_snapshot_another_just_wrote(pg_journals: Any) -> None:
    a = _replica(pg_journals[0], Ledger(), every=4)
    b = _replica(pg_journals[1], Ledger(), every=4)
    _write(a, 3)
    b.sync()  # b counts 3 since no snapshot
    _write(a, 1)  # a writes the snapshot (4)
    _write(b, 1)  # b's count reaches 4 but the log says 1 since a's snapshot: no snapshot
    assert len(_rows(pg_journals[0], "SELECT seq FROM socle_state_snapshot")) == 1
    _write(b, 2)
    _write(a, 1)  # the 4th since the snapshot: a second one (a applied b's 3 while catching up)
    assert [seq for (seq,) in _rows(pg_journals[0], "SELECT seq FROM socle_state_snapshot")] == [a.seq]


def test_a_replica_without_snapshot_functions_never_snapshots(pg_journals: Any) -> None:
    ledger = Ledger()
    replica = Replica(state_log_for(pg_journals[0]), "plain", ledger.apply, ledger.reset, snapshot_every=1)
    _write(replica, 3)
    assert replica.checkpoint() == 0 and replica.state() is None
    assert _rows(pg_journals[0], "SELECT count(*) FROM socle_state_snapshot") == [(0,)]
    with pytest.raises(ValueError, match="snapshot"):
        Replica(state_log_for(pg_journals[0]), "half", ledger.apply, ledger.reset, ledger.snapshot)


def test_the_snapshot_encoding_round_trips() -> None:
    state = {"é": [1, 2.5, None, True], "s": "\u2603"}
    assert decode_snapshot(1, encode_snapshot(state)) == state
    assert json.loads(json.dumps(state)) == state


def test_a_version_1_state_log_is_migrated_and_keeps_its_operations(pg_url: str) -> None:
    journal = PostgreSQLJournal(pg_url)
    try:
        with journal.connection() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS socle_schema (component text PRIMARY KEY, version integer NOT NULL)"
            )
            conn.execute(
                "CREATE TABLE socle_state_op (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                " stream text NOT NULL, session text, op jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now())"
            )
            conn.execute(
                "INSERT INTO socle_schema VALUES ('state', 1) ON CONFLICT (component) DO UPDATE SET version = 1"
            )
            conn.execute("""INSERT INTO socle_state_op (stream, op) VALUES ('ledger', '{"name": "x", "delta": 2}')""")
        log = PostgreSQLStateLog(journal.connection)
        assert _rows(journal, "SELECT version FROM socle_schema WHERE component = 'state'") == [(STATE_SCHEMA_VERSION,)]
        assert STATE_SCHEMA_VERSION == 2
        ledger = Ledger()
        replica = Replica(log, "ledger", ledger.apply, ledger.reset, ledger.snapshot, ledger.restore)
        assert replica.sync() == 1 and ledger.counts == {"x": 2}
        assert replica.checkpoint() == replica.seq  # the new tables are there
        with journal.connection() as conn:
            apply_state_schema(conn)  # again: nothing to do
    finally:
        journal.close()


# ------------------------------------------------------------------------------------ the interval, an option
def test_the_snapshot_interval_is_read_from_the_configuration(tmp_path: Any) -> None:
    from harness.core.config import HarnessConfig, load_config
    from harness.core.state import SNAPSHOT_EVERY

    assert HarnessConfig().state_snapshot_every == SNAPSHOT_EVERY == 1000
    (tmp_path / "a.toml").write_text("state_snapshot_every = 50\n", encoding="utf-8")
    assert load_config(tmp_path / "a.toml").state_snapshot_every == 50
    (tmp_path / "b.toml").write_text("state_snapshot_every = 0\n", encoding="utf-8")
    with pytest.raises(ValueError) as refused:
        load_config(tmp_path / "b.toml")
    assert str(refused.value) == (
        f"{tmp_path / 'b.toml'} : state_snapshot_every doit valoir au moins 1 (reçu 0) / "
        "state_snapshot_every must be at least 1"
    )


def test_serve_hands_its_snapshot_interval_option_to_the_environment(tmp_path: Any, monkeypatch: Any) -> None:
    """``serve --state-snapshot-every N`` overrides the configuration (0 is a usage error)."""
    from typer.testing import CliRunner

    import harness.runtime.environment as environment
    from harness.front.cli import app

    seen: list[int] = []

    class Stop(Exception):
        pass

    class Recording:
        def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
            seen.append(config.state_snapshot_every)
            raise Stop

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(environment, "SocleEnvironment", Recording)
    journal = f"sqlite:///{tmp_path}/j.sqlite"
    (tmp_path / "socle-harness.toml").write_text("state_snapshot_every = 40\n", encoding="utf-8")
    runner = CliRunner()
    for args, expected in (([], 40), (["--state-snapshot-every", "25"], 25)):
        result = runner.invoke(app, ["serve", "--ephemeral", "--journal", journal, *args])
        assert isinstance(result.exception, Stop), result.output
        assert seen[-1] == expected
    assert runner.invoke(app, ["serve", "--ephemeral", "--state-snapshot-every", "0"]).exit_code == 2
    assert seen == [40, 25]


def test_the_hosts_state_is_snapshotted_at_the_configured_interval(pg_url: str, tmp_path: Any) -> None:
    """The configured interval reaches the host's replicas: the fault board's stream (harness.faults) is
    snapshotted after 3 operations with ``state_snapshot_every = 3``, not with the default."""
    from harness.core.config import HarnessConfig
    from harness.host.simulator import FAULTS_STREAM, Fault
    from harness.runtime.environment import SocleEnvironment

    snapshots = f"SELECT count(*), max(seq) FROM socle_state_snapshot WHERE stream = '{FAULTS_STREAM}'"
    seen = []
    for every in (3, None):  # two hosts one after the other on one database: operations 1-4, then 5-8
        config = HarnessConfig(journal=pg_url, run_dir=tmp_path / "run")
        env = SocleEnvironment(config if every is None else config.with_overrides(state_snapshot_every=every))
        try:
            assert env.host.state.snapshot_every == (every or 1000)
            for _ in range(3):
                seen.append(_rows(env.journal, snapshots)[0])
                env.host.faults.inject("psc", Fault("psc.wrong-state"))
            env.host.faults.clear()
            seen.append(_rows(env.journal, snapshots)[0])
        finally:
            env.journal.close()
    # every 3: one snapshot after operation 3; the default (1000) writes none after 6 (where 3 would have)
    assert seen == [(0, None), (0, None), (0, None), (1, 3), (1, 3), (1, 3), (1, 3), (1, 3)]
