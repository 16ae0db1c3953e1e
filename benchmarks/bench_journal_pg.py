"""The PostgreSQL journal beside the SQLite one (issue 19): indicators on a large journal, journal bytes per exchange.

1. **Indicators.** The journal of benchmarks/bench_indicators.py (``Loader``: N exchanges, 500 ESSMS, 12 months,
   shaped like a year of a big grappe) loaded into a SQLite journal file and into a PostgreSQL journal (the real
   schemas and indexes; SQLite by ``executemany``, PostgreSQL by ``COPY``, both then ``ANALYZE``). Measured, median
   of ``--repeat`` runs: ``compute`` of every indicator for the 10 periods of the year x 500 ESSMS + the grappe,
   on each backend (SQLite: the engine's worker processes; PostgreSQL: mask scans on pooled connections sharing
   one snapshot), and the PostgreSQL engine on one connection. Baselines, same run: on each backend ``SELECT
   service, month, COUNT(*) ... GROUP BY`` over every row; on PostgreSQL, the engine without the journal's
   incremental aggregates (``aggregates=False``: every measure from the exchanges, the engine before schema 4).
   The reports are checked equal. **Goal: <= 1 s at 1,000,000.**
   Write cost of the aggregates (schema 4's trigger): ``--writes`` of the journal's exchanges, each committed
   alone as ``Journal.record`` does, into a journal with the trigger and into one without (disabled), alternated
   by batches; and the COPY of the first 200,000 rows into each.
2. **Bytes per exchange.** Exchanges as the simulators journal them (an SMTP submission, an INSi
   ``rechercherInsAvecTraitsIdentite``, a FHIR create), taken from a SQLite journal of a catalogue run
   (``--source``: run ``socle-harness run -t "insi or mssante or eparcours"`` first), recorded ``--copies`` times
   each through ``Journal.record`` with distinct payloads (a counter appended: distinct messages are not
   deduplicated), plus a synthetic 1 MB SMTP message (a random 760 KB attachment: the worst case for compression).
   Bytes: SQLite file growth (after a WAL checkpoint) / copies; PostgreSQL ``pg_total_relation_size`` growth of
   ``exchanges`` and ``evidence`` (indexes and TOAST included) / copies.

Needs the PostgreSQL server (``--admin``, default postgresql://127.0.0.1:5432/postgres): a database of its own is
created and dropped.

Run from the repository root:
    python benchmarks/bench_journal_pg.py [--events N] [--essms K] [--repeat R] [--source sqlite:///…] [--copies C]
        [--writes W]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
from bench_indicators import MONTHS, Loader

from harness.analytics.indicators import IndicatorEngine, campaign_periods
from harness.analytics.indicators_pg import PostgresIndicatorEngine
from harness.core.journal import _INSERT as INSERT  # the SQLite journal's own row layout (Loader's rows)
from harness.core.journal import Exchange, JournalFilter, SQLiteJournal, open_journal
from harness.core.journal_pg import PostgreSQLJournal

GOAL_SECONDS = 1.0
_COPY_COLUMNS = (
    "id, ts, month, service, operation, direction, outcome, actor, essms, person, error_code, error_message, digest,"
    " payload_type, details, run_id, scenario_id, fact_key, fact_date, fact_start, fact_end, fact_status, message_id, session_id"
)


@contextmanager
def database(admin: str) -> Iterator[str]:
    """A PostgreSQL database of the benchmark's own (random name), dropped at the end."""
    name = f"socle_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def _backend_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the PostgreSQL server processes ``pids`` have used (/proc, same machine)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


def cpu_timed(fn: Callable[[], Any], pids: list[int]) -> float:
    """CPU seconds of one call: this process (the engine, and SQLite in it) plus the PostgreSQL backends ``pids``.
    On a loaded machine, wall time mostly measures waiting for a core; CPU time is what the work costs (a single
    connection: close to the wall time the same call takes on an idle core)."""
    cpu0, back0 = time.process_time(), _backend_cpu(pids)
    fn()
    return time.process_time() - cpu0 + _backend_cpu(pids) - back0


def indicators(args: argparse.Namespace, workdir: Path, url: str) -> dict[str, float]:
    t0 = time.perf_counter()
    loader = Loader(args.essms, args.places, args.seed)
    loader.build(args.events)
    t1 = time.perf_counter()
    lite = SQLiteJournal(workdir / "journal.sqlite")
    con = lite._db  # bulk load under the journal API, as bench_indicators.py does
    con.execute("BEGIN")
    con.executemany(INSERT, loader.rows)
    con.execute("COMMIT")
    con.execute("ANALYZE")
    t2 = time.perf_counter()
    pg = open_journal(f"{url}?pool_min=4&pool_max=4")
    assert isinstance(pg, PostgreSQLJournal)
    with pg.connection() as conn, conn.transaction(), conn.cursor() as cur:
        with cur.copy(f"COPY exchanges ({_COPY_COLUMNS}) FROM STDIN") as copy:
            for row in loader.rows:
                copy.write_row(row)
    with pg.connection() as conn:
        conn.execute("ANALYZE exchanges")
        conn.execute("VACUUM (ANALYZE) exchanges")  # the visibility map: index-only scans as after autovacuum
    t3 = time.perf_counter()
    total = lite.count()
    assert pg.count() == total
    print(
        f"journal: {total:,} exchanges, {args.essms} ESSMS, 12 months — generated in {t1 - t0:.1f} s; loaded into "
        f"SQLite in {t2 - t1:.1f} s, into PostgreSQL in {t3 - t2:.1f} s (COPY, indexes on, then VACUUM ANALYZE)"
    )
    if args.writes:
        write_cost(args, url, loader.rows)
    del loader
    periods = campaign_periods(MONTHS[0], MONTHS[-1])
    sqlite_engine, pg_engine = IndicatorEngine(lite), PostgresIndicatorEngine(pg)
    pg_single = PostgresIndicatorEngine(pg, workers=1)
    pg_plain, pg_plain_single = (
        PostgresIndicatorEngine(pg, aggregates=False),
        PostgresIndicatorEngine(pg, workers=1, aggregates=False),
    )
    baseline_sql = "SELECT service, month, COUNT(*) FROM exchanges GROUP BY service, month"

    def pg_baseline() -> None:
        with pg.connection() as conn:
            conn.execute(baseline_sql).fetchall()

    rows: dict[str, float] = {}
    rows["sqlite_baseline_s"] = statistics.median(
        timed(lambda: con.execute(baseline_sql).fetchall())[0] for _ in range(args.repeat)
    )
    rows["pg_baseline_s"] = statistics.median(timed(pg_baseline)[0] for _ in range(args.repeat))
    sqlite_runs = [timed(lambda: sqlite_engine.compute(periods)) for _ in range(args.repeat)]
    pg_runs, plain_runs = [], []
    for _ in range(args.repeat):  # alternated: the same minutes of load for both
        pg_runs.append(timed(lambda: pg_engine.compute(periods)))
        plain_runs.append(timed(lambda: pg_plain.compute(periods)))
    rows["sqlite_all_s"] = statistics.median(r[0] for r in sqlite_runs)
    rows["pg_all_s"] = statistics.median(r[0] for r in pg_runs)
    rows["pg_plain_all_s"] = statistics.median(r[0] for r in plain_runs)
    rows["pg_one_connection_s"] = statistics.median(timed(lambda: pg_single.compute(periods))[0] for _ in range(2))
    with pg.connection() as conn:  # the pool's server processes (pool_min = pool_max: all open from the start)
        pids = [p for (p,) in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]
    sqlite_single = IndicatorEngine(lite, workers=1)
    rows["sqlite_cpu_s"] = statistics.median(cpu_timed(lambda: sqlite_single.compute(periods), []) for _ in range(2))
    cpu, plain_cpu = [], []
    for _ in range(max(2, args.repeat)):
        cpu.append(cpu_timed(lambda: pg_single.compute(periods), pids))
        plain_cpu.append(cpu_timed(lambda: pg_plain_single.compute(periods), pids))
    rows["pg_cpu_s"], rows["pg_plain_cpu_s"] = statistics.median(cpu), statistics.median(plain_cpu)
    same = sqlite_runs[-1][1].to_dict() == pg_runs[-1][1].to_dict() == plain_runs[-1][1].to_dict()
    report = pg_runs[-1][1]
    print(
        f"\nall indicators, {len(periods)} periods x {len(report.essms)} ESSMS + grappe ({len(report.figures):,} "
        f"figures), median of {args.repeat}:"
    )
    print(f"  SQLite (worker processes):                         {rows['sqlite_all_s']:.3f} s")
    print(f"  PostgreSQL (pooled connections, one snapshot):     {rows['pg_all_s']:.3f} s")
    print(f"  PostgreSQL without the aggregates (3 connections): {rows['pg_plain_all_s']:.3f} s")
    print(f"  PostgreSQL, one connection:                        {rows['pg_one_connection_s']:.3f} s")
    print("  CPU time of one computation on one connection (this process + the PostgreSQL backends):")
    print(f"    SQLite (no worker process):                      {rows['sqlite_cpu_s']:.3f} s")
    print(f"    PostgreSQL:                                      {rows['pg_cpu_s']:.3f} s")
    print(f"    PostgreSQL without the aggregates:               {rows['pg_plain_cpu_s']:.3f} s")
    print(f"  baseline GROUP BY service, month — SQLite:         {rows['sqlite_baseline_s']:.3f} s")
    print(f"  baseline GROUP BY service, month — PostgreSQL:     {rows['pg_baseline_s']:.3f} s")
    print(f"  ratio PostgreSQL / its baseline:                   {rows['pg_all_s'] / rows['pg_baseline_s']:.2f}")
    print(f"  same report (SQLite, PostgreSQL with and without): {'yes' if same else 'NO'}")
    if total >= 1_000_000:
        verdict = "OK" if rows["pg_all_s"] <= GOAL_SECONDS else "ABOVE GOAL"
    else:
        verdict = "not judged (the goal is at 1,000,000 exchanges)"
    print(f"  goal <= {GOAL_SECONDS:.1f} s at 1,000,000 exchanges (here {total:,}), PostgreSQL: {verdict}")
    lite.close()
    pg.close()
    if not same:
        raise SystemExit("the PostgreSQL report differs from the SQLite one")
    return rows


def write_cost(args: argparse.Namespace, url: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert cost with and without schema 4's aggregate trigger (disabled in the second journal), same rows."""

    def journal(schema: str, trigger: bool) -> PostgreSQLJournal:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        opened = open_journal(f"{url}?options=-csearch_path%3D{schema}&pool_min=1&pool_max=1")
        assert isinstance(opened, PostgreSQLJournal)
        if not trigger:
            with opened.connection() as conn:
                conn.execute("ALTER TABLE exchanges DISABLE TRIGGER exchanges_indicator_aggregates")
        return opened

    journals = {"with": journal("w_with", True), "without": journal("w_without", False)}
    step = max(1, len(rows) // args.writes)
    sample = [rows[i] for i in range(0, len(rows), step)][: args.writes]  # every kind of exchange, spread out
    insert = f"INSERT INTO exchanges ({_COPY_COLUMNS}) VALUES ({', '.join(['%s'] * len(_COPY_COLUMNS.split(',')))})"
    spent = {name: [0.0, 0.0] for name in journals}  # wall, backend CPU
    for start in range(0, len(sample), 250):
        for name, opened in journals.items():
            with opened.connection() as conn:
                (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
                cpu0, t0 = _backend_cpu([pid]), time.perf_counter()
                for row in sample[start : start + 250]:
                    with conn.transaction():  # one exchange per commit, as Journal.record
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x50C1E_0002,))
                        conn.execute(insert, row)
                spent[name][0] += time.perf_counter() - t0
                spent[name][1] += _backend_cpu([pid]) - cpu0
    for opened in journals.values():
        opened.close()
    bulk = {}
    for name in journals:
        copied = journal(f"c_{name}", name == "with")
        with copied.connection() as conn, conn.transaction(), conn.cursor() as cur:
            t0 = time.perf_counter()
            with cur.copy(f"COPY exchanges ({_COPY_COLUMNS}) FROM STDIN") as copy:
                for row in rows[:200_000]:
                    copy.write_row(row)
            bulk[name] = time.perf_counter() - t0
        copied.close()
    n = len(sample)
    print(f"\nwrite cost of the aggregates ({n:,} exchanges, one commit each; then COPY of 200,000 rows):")
    for name in journals:
        wall, cpu = spent[name]
        print(
            f"  {name + ' the trigger':<20} {wall / n * 1e6:8.0f} us wall, {cpu / n * 1e6:8.0f} us server CPU per exchange;"
            f" COPY {bulk[name]:.1f} s"
        )


def _samples(source: str) -> dict[str, Exchange]:
    """One exchange of each kind, with its payload, from a catalogue run's journal."""
    journal = open_journal(source)
    wanted = {
        "SMTP submission": JournalFilter(service="mssante", operation="smtp.submit"),
        "INSi request": JournalFilter(service="insi", operation="soap.rechercherInsAvecTraitsIdentite"),
        "FHIR create": JournalFilter(service="eparcours", operation="fhir.create.Patient"),
    }
    found: dict[str, Exchange] = {}
    for label, flt in wanted.items():
        candidates = [e for e in journal.query(flt) if e.digest]
        if not candidates:
            raise SystemExit(f"{source}: no {label} with a payload — run the catalogue first (see --help)")
        sample = candidates[-1]
        found[label] = replace(sample, payload=journal.payload(sample.digest or ""))
    journal.close()
    attachment = base64.encodebytes(os.urandom(760 * 1024))
    big = found["SMTP submission"]
    found["SMTP message of 1 MB"] = replace(
        big,
        payload=(big.payload or b"")
        + b"\r\n--bench\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + attachment,
    )
    return found


def sqlite3_checkpoint(path: Path) -> int:
    """The SQLite journal file's size once its WAL is folded in."""
    with closing(sqlite3.connect(path)) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def _pg_bytes(journal: PostgreSQLJournal) -> int:
    with journal.connection() as conn:
        row = conn.execute("SELECT pg_total_relation_size('exchanges') + pg_total_relation_size('evidence')").fetchone()
    return int(row[0])


def bytes_per_exchange(args: argparse.Namespace, workdir: Path, url: str) -> dict[str, dict[str, float]]:
    samples = _samples(args.source)
    results: dict[str, dict[str, float]] = {}
    print(f"\njournal bytes per exchange ({args.copies} copies each, distinct payloads):")
    print(f"  {'exchange':<22} {'payload':>9} {'SQLite':>9} {'PostgreSQL':>11} {'PG/SQLite':>9}")
    for k, (label, sample) in enumerate(samples.items()):
        copies = args.copies if len(sample.payload or b"") < 100_000 else max(5, args.copies // 20)
        lite = SQLiteJournal(workdir / f"bytes{k}.sqlite")
        lite.record(replace(sample, id=uuid.uuid4().hex))  # the file exists, its pages allocated
        schema = f"b{k}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        pg = open_journal(f"{url}?options=-csearch_path%3D{schema}")
        assert isinstance(pg, PostgreSQLJournal)
        pg.record(replace(sample, id=uuid.uuid4().hex))
        before = (sqlite3_checkpoint(lite.path), _pg_bytes(pg))
        for i in range(copies):
            payload = (sample.payload or b"") + f"\r\n{i:08d}\r\n".encode()
            for journal in (lite, pg):
                journal.record(replace(sample, id=uuid.uuid4().hex, payload=payload, digest=None))
        after = (sqlite3_checkpoint(lite.path), _pg_bytes(pg))
        per = ((after[0] - before[0]) / copies, (after[1] - before[1]) / copies)
        size = len(sample.payload or b"")
        results[label] = {"payload": size, "sqlite": per[0], "postgresql": per[1]}
        print(f"  {label:<22} {size:>9,} {per[0]:>9,.0f} {per[1]:>11,.0f} {per[1] / per[0]:>9.2f}")
        lite.close()
        pg.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--essms", type=int, default=500)
    parser.add_argument("--places", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument(
        "--admin", default=os.environ.get("SOCLE_BENCH_POSTGRES", "postgresql://127.0.0.1:5432/postgres")
    )
    parser.add_argument("--source", default="sqlite:///.socle/journal.sqlite", help="a catalogue run's journal")
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--skip-indicators", action="store_true")
    parser.add_argument("--skip-bytes", action="store_true")
    parser.add_argument("--writes", type=int, default=5000, help="exchanges committed one by one (write cost)")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPU, load average {load:.1f} (figures under that load)")
    workdir = Path(tempfile.mkdtemp(prefix="socle-bench-pg-"))
    try:
        with database(args.admin) as url:
            if not args.skip_indicators:
                indicators(args, workdir, url)
            if not args.skip_bytes:
                bytes_per_exchange(args, workdir, url)
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
