"""Shared state: a replica's start time with 1k / 10k / 100k operations of history, replay vs snapshot + tail.

A new or restarted worker (``serve --workers N``) builds its simulators' states from the PostgreSQL state log
(``harness.core.state``). Before snapshots it applied every operation of every stream from the start; now it
restores the stream's latest snapshot and applies only the operations after it.

For each workload and history size N, two schemas of one fresh database (random name, dropped at the end) on
``SOCLE_TEST_POSTGRES`` (default ``postgresql://127.0.0.1:5432/postgres``) get the same generated operations,
bulk-copied into ``socle_state_op``, on two streams:

  growing  the worst case for snapshots, a state as large as its history: ``mssante.mailboxes`` (50 mailboxes; N
           deliveries, one in five followed by a flag change, bodies by digest as in production) and
           ``bench.fhir`` (N/2 FHIR resources created, a Patient and Observations referencing it, one in four
           then updated);
  churn    a platform's usual life, a state that stays small: mailboxes whose messages are delivered, read and
           expunged (N operations; only the IMAP change log grows) and the fault board (N/2 faults injected and
           consumed).

Two logs per size:

  replay     (the baseline) the log as it was: every operation kept, no snapshot;
  snapshot   the policy's state at a random point: the streams checkpointed (snapshot written, earlier
             operations deleted) :data:`TAIL` operations before the end, then those :data:`TAIL` operations.

Figure: the time a fresh replica takes to be usable (the store built and caught up: ``Replica.sync``), the median
of ``--repeat`` starts, for each size, replay vs snapshot + tail, in the same run; also what writing the
snapshot costs: ``checkpoint`` (on demand: ``StateHub.checkpoint_all`` on a caught-up process, under each stream's
lock: capture, encode, write, delete), ``capture`` (``Replica.capture``: what the operation reaching the count
does under the replica's lock — a store's whole ``snapshot()``, or the cheap copy of a ``Deferred``, the mailboxes')
and ``encode`` (the ``Deferred`` built, JSON + zlib, done after, outside the locks); and the compressed size. Exactness is checked: both starts reach the same state (``snapshot()`` equal).

Run from the repository root:  nice python benchmarks/bench_state.py [--sizes 1000,10000,100000] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from harness.core.journal_pg import PostgreSQLJournal
from harness.core.state import StateHub, encode_snapshot, gc_paused, state_log_for
from harness.fhir.store import ResourceStore
from harness.host.simulator import FAULTS_STREAM, FaultBoard
from mock_services.mssante.store import STREAM as MAIL_STREAM
from mock_services.mssante.store import BodyStore, MailStore

ADMIN = os.environ.get("SOCLE_TEST_POSTGRES", "postgresql://127.0.0.1:5432/postgres")
FHIR_STREAM = "bench.fhir"
TAIL = 500  # operations after the snapshot (the policy snapshots every 1,000: half an interval on average)
BOXES = 50


def mail_ops(n: int) -> Iterator[dict[str, Any]]:
    """``ensure`` of the mailboxes, then deliveries (one in five flagged afterwards): n operations in all."""
    boxes = [f"box{i}@ehpad.mssante.fr" for i in range(BOXES)]
    yield {
        "op": "ensure",
        "folders": [[b, name, uuid.uuid4().hex[:16]] for b in boxes for name in ("INBOX", "Sent", "Trash")],
        "floor": 1_700_000_000,
    }
    start = datetime(2026, 1, 1, tzinfo=UTC)
    uids: dict[str, int] = {}
    for i in range(1, n):
        box = boxes[i % BOXES]
        if i % 5 == 0 and uids.get(box):
            yield {"op": "flags", "box": box, "folder": "INBOX", "uid": uids[box], "flags": ["\\Seen"]}
            continue
        uids[box] = uids.get(box, 0) + 1
        yield {
            "op": "deliver",
            "box": box,
            "folder": "INBOX",
            "digest": f"{i:064x}",
            "size": 40_000 + i % 997,
            "prefix": f"Received: from dui ({i}) by mssante.test\r\n",
            "flags": [],
            "when": (start + timedelta(seconds=i)).isoformat(),
            "recent": True,
            "email_id": f"e{i:023d}",
            "message_id": f"<{i}@dui.example>",
            "exchange_id": f"x{i}",
        }


def fhir_ops(n: int) -> Iterator[dict[str, Any]]:
    """One Patient, then Observations referencing it (one in four updated later): n operations in all."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    patient = {"resourceType": "Patient", "id": "p0", "name": [{"family": "DUPONT"}]}
    yield {
        "op": "commit",
        "versions": [["Patient", "p0", 1, at.isoformat(), patient]],
        "expected": [["Patient", "p0", 0]],
    }
    created = 0
    for i in range(1, n):
        when = (at + timedelta(seconds=i)).isoformat()
        if i % 4 == 0 and created:
            rid = f"o{created - 1}"
            body = {
                "resourceType": "Observation",
                "id": rid,
                "status": "amended",
                "subject": {"reference": "Patient/p0"},
            }
            yield {
                "op": "commit",
                "versions": [["Observation", rid, 2, when, body]],
                "expected": [["Observation", rid, 1]],
            }
            continue
        rid = f"o{created}"
        created += 1
        body = {
            "resourceType": "Observation",
            "id": rid,
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "valueQuantity": {"value": 60 + i % 40, "unit": "/min"},
            "subject": {"reference": "Patient/p0"},
        }
        yield {"op": "commit", "versions": [["Observation", rid, 1, when, body]], "expected": [["Observation", rid, 0]]}


def mail_churn_ops(n: int) -> Iterator[dict[str, Any]]:
    """``ensure``, then per mailbox: a message delivered, read (``\\Seen``), expunged; n operations in all. The
    mailboxes stay nearly empty however long the history (only the IMAP change log grows)."""
    ops = mail_ops(1)
    yield next(ops)
    boxes = [f"box{i}@ehpad.mssante.fr" for i in range(BOXES)]
    uids: dict[str, int] = {}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(1, n):
        box, step = boxes[(i // 3) % BOXES], i % 3
        if step == 0 or box not in uids:
            uids[box] = uids.get(box, 0) + 1
            yield {
                "op": "deliver",
                "box": box,
                "folder": "INBOX",
                "digest": f"{i:064x}",
                "size": 40_000,
                "prefix": "",
                "flags": [],
                "when": (start + timedelta(seconds=i)).isoformat(),
                "recent": True,
                "email_id": f"e{i:023d}",
                "message_id": f"<{i}@dui.example>",
                "exchange_id": None,
            }
        elif step == 1:
            yield {"op": "flags", "box": box, "folder": "INBOX", "uid": uids[box], "flags": ["\\Seen"]}
        else:
            yield {"op": "expunge", "box": box, "folder": "INBOX", "uids": [uids[box]]}


def fault_churn_ops(n: int) -> Iterator[dict[str, Any]]:
    """Faults injected then consumed (the board ends empty): n operations in all."""
    for i in range(n):
        if i % 2 == 0:
            yield {"op": "inject", "service": "psc", "kind": "psc.down", "params": {"i": i}, "remaining": 1}
        else:
            yield {"op": "take", "service": "psc", "kind": "psc.down"}


# workload -> (stream, operations of a history of size n) for each of its two streams
WORKLOADS = {
    "growing": ((MAIL_STREAM, mail_ops), (FHIR_STREAM, lambda n: fhir_ops(n // 2))),
    "churn": ((MAIL_STREAM, mail_churn_ops), (FAULTS_STREAM, lambda n: fault_churn_ops(n // 2))),
}


def copy_ops(journal: PostgreSQLJournal, stream: str, ops: list[dict[str, Any]]) -> None:
    with (
        journal.connection() as conn,
        conn.cursor() as cur,
        cur.copy("COPY socle_state_op (stream, op) FROM STDIN") as copy,
    ):
        for op in ops:
            copy.write_row((stream, json.dumps(op, separators=(",", ":"))))


def stores(journal: PostgreSQLJournal, tmp: Path) -> tuple[StateHub, MailStore]:
    """A process's stores: mailboxes, a FHIR store, the fault board."""
    hub = StateHub(state_log_for(journal))
    mail = MailStore(bodies=BodyStore(tmp / uuid.uuid4().hex), state=hub)
    ResourceStore(state=hub, stream=FHIR_STREAM)
    FaultBoard(hub)
    return hub, mail


def timed_start(journal: PostgreSQLJournal, tmp: Path) -> tuple[float, dict[str, Any]]:
    """Seconds for a fresh process's replicas to be caught up; the states they reached."""
    begin = time.perf_counter()
    hub, mail = stores(journal, tmp)
    hub.sync_all()
    elapsed = time.perf_counter() - begin
    states = hub.states()
    mail.close()
    return elapsed, states


def schema_url(database: str, name: str) -> str:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    return f"{database}?options=-csearch_path%3D{name}&pool_max=4"


def measure(database: str, workload: str, n: int, repeat: int, tmp: Path) -> dict[str, Any]:
    streams = [(stream, list(generate(n))) for stream, generate in WORKLOADS[workload]]
    replay_journal = PostgreSQLJournal(schema_url(database, f"replay_{workload}_{n}"))
    snap_journal = PostgreSQLJournal(schema_url(database, f"snap_{workload}_{n}"))
    try:
        state_log_for(replay_journal)  # the state tables
        state_log_for(snap_journal)
        for stream, ops in streams:
            copy_ops(replay_journal, stream, ops)
            copy_ops(snap_journal, stream, ops[:-TAIL])
        hub, mail_store = stores(snap_journal, tmp)  # the appending process, caught up, snapshots
        hub.sync_all()
        with gc_paused():  # as Replica.do does both
            begin = time.perf_counter()
            captured = hub.captures()  # what the K-th operation does under the replica's lock: capture
            capture = time.perf_counter() - begin
            begin = time.perf_counter()
            for state in captured.values():  # then outside the locks: build (a Deferred), encode (and write)
                encode_snapshot(state)
            encode = time.perf_counter() - begin
        begin = time.perf_counter()
        written = hub.checkpoint_all()
        checkpoint = time.perf_counter() - begin
        mail_store.close()
        for stream, ops in streams:
            copy_ops(snap_journal, stream, ops[-TAIL:])
        with snap_journal.connection() as conn:
            size = conn.execute("SELECT sum(length(state)) FROM socle_state_snapshot").fetchone()[0]
            left = conn.execute("SELECT count(*) FROM socle_state_op").fetchone()[0]
        replay, snapshot = [], []
        reached: list[dict[str, Any]] = []
        for _ in range(repeat):  # alternated, so that a burst of load on the machine hits both
            seconds, state = timed_start(replay_journal, tmp)
            replay.append(seconds)
            reached.append(state)
            seconds, state = timed_start(snap_journal, tmp)
            snapshot.append(seconds)
            reached.append(state)
        if any(state != reached[0] for state in reached):
            raise SystemExit(f"{n}: replay and snapshot + tail reached different states")
        return {
            "workload": workload,
            "history": sum(len(ops) for _, ops in streams),
            "replay_s": statistics.median(replay),
            "snapshot_tail_s": statistics.median(snapshot),
            "speedup": statistics.median(replay) / statistics.median(snapshot),
            "checkpoint_s": checkpoint,
            "capture_s": capture,
            "encode_s": encode,
            "snapshot_bytes": int(size),
            "ops_left": int(left),
            "streams": sorted(written),
        }
    finally:
        replay_journal.close()
        snap_journal.close()


@contextmanager
def database() -> Iterator[str]:
    name = f"socle_bench_state_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="mail operations per history (FHIR: half)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workloads", default="growing,churn")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    rows = []
    with database() as url, tempfile.TemporaryDirectory(prefix="bench-state-") as tmp:
        for workload, n in ((w, n) for w in args.workloads.split(",") for n in sizes):
            rows.append(measure(url, workload, n, args.repeat, Path(tmp)))
            r = rows[-1]
            print(
                f"{workload:8} {r['history']:>7} ops: replay {r['replay_s'] * 1000:8.1f} ms | snapshot + {2 * TAIL} ops "
                f"{r['snapshot_tail_s'] * 1000:7.1f} ms | x{r['speedup']:5.1f} | checkpoint "
                f"{r['checkpoint_s'] * 1000:7.1f} ms (capture {r['capture_s'] * 1000:6.1f} + encode "
                f"{r['encode_s'] * 1000:6.1f}), {r['snapshot_bytes'] / 1024:8.1f} KiB"
            )
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "load": os.getloadavg()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
