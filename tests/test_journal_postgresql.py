"""The PostgreSQL journal (issue 19): parity with the SQLite journal, evidence stored once and compressed, the
versioned schema and its refusal, writers in several threads and processes, the command line.

Uses the PostgreSQL server on 127.0.0.1:5432 (``pg_url`` in tests/conftest.py: one database per session, one
schema per test); skips, saying so, when it is absent. The filter-by-filter contract runs on both backends in
tests/test_journal_contract.py."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import smtplib
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from harness.core import journal_pg as J
from harness.core.journal import (
    Direction,
    Exchange,
    JournalFilter,
    Outcome,
    SQLiteJournal,
    open_journal,
    wait_for,
)
from harness.core.journal_pg import SCHEMA_VERSION, PostgreSQLJournal, SchemaTooNewError, redact
from harness.front.cli import app

T0 = datetime(2026, 3, 31, 21, 30, tzinfo=UTC)  # 23:30 in Paris


def ex(**overrides: object) -> Exchange:
    base = dict(service="mssante", operation="smtp.submit", direction=Direction.FROM_DUI, outcome=Outcome.ACCEPTED)
    return Exchange(**{**base, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def pg(pg_url: str) -> Iterator[PostgreSQLJournal]:
    journal = open_journal(pg_url)
    assert isinstance(journal, PostgreSQLJournal)
    yield journal
    journal.close()


def _raw(url: str) -> psycopg.Connection:
    """A connection of the test's own on the journal's schema (reads what is committed, nothing else)."""
    base, _, query = url.partition("?")
    schema = query.split("search_path%3D")[1].split("&")[0]
    conn = psycopg.connect(base, autocommit=True)
    conn.execute(f"SET search_path = {schema}")
    return conn


SAMPLE = [
    ex(id="a", ts=T0, essms="990000016", person="238047505612394", payload=b"hello", payload_type="message/rfc822"),
    ex(
        id="b",
        ts=T0 + timedelta(hours=3),  # 1 April in Paris
        outcome=Outcome.REJECTED,
        error_code="550 5.1.1",
        error_message="destinataire inconnu é",
        details={"z": [1, {"b": 2, "a": None}], "a": "é", "fact": {"key": "k", "date": "2026-04-01", "end": 3}},
        run_id="r1",
        scenario_id="s1",
    ),
    ex(
        id="c",
        service="dmp",
        operation="iti41.provide_and_register",
        direction=Direction.TO_DUI,
        actor="10003",
        payload=b"hello",  # the same bytes: one piece of evidence
        details={"message_id": "<m@x>"},
    ),
    ex(id="d", ts=datetime(2026, 6, 30, 22, 15, tzinfo=UTC), essms="990000024", payload=b""),
]


def test_same_exchanges_same_answers_as_sqlite(pg: PostgreSQLJournal, tmp_path: Path) -> None:
    lite = SQLiteJournal(tmp_path / "j.sqlite")
    assert pg.last_seq() == lite.last_seq() == 0 and pg.count() == lite.count() == 0
    for journal in (lite, pg):
        assert journal.record(SAMPLE[0]).digest == hashlib.sha256(b"hello").hexdigest()
        assert [e.digest for e in journal.record_many(SAMPLE[1:])] == [
            None,
            hashlib.sha256(b"hello").hexdigest(),
            hashlib.sha256(b"").hexdigest(),
        ]
    filters = [
        JournalFilter(),
        JournalFilter(month="2026-04"),
        JournalFilter(month="2026-07"),
        JournalFilter(service="mssante", outcome=Outcome.REJECTED),
        JournalFilter(since_seq=2, limit=1),
        JournalFilter(ts_from=T0 + timedelta(hours=1), ts_to=datetime(2026, 7, 1, tzinfo=UTC)),
        JournalFilter(run_id="r1", scenario_id="s1"),
        JournalFilter(essms="990000024"),
    ]
    for flt in filters:
        mine, theirs = pg.query(flt), lite.query(flt)
        assert mine == theirs, flt  # every field, ts (aware, UTC) and details included
        assert [list(e.details) for e in mine] == [list(e.details) for e in theirs]  # keys in the same order
        assert pg.count(JournalFilter(**{**_fields(flt), "limit": None})) == lite.count(
            JournalFilter(**{**_fields(flt), "limit": None})
        )
    assert [e.id for e in pg.query(JournalFilter(since_seq=2, limit=1))] == ["c"]
    assert [e.month for e in pg.query()] == ["2026-03", "2026-04", pg.query()[2].month, "2026-07"]
    assert pg.last_seq() == lite.last_seq() == 4
    for digest in (hashlib.sha256(b"hello").hexdigest(), hashlib.sha256(b"").hexdigest(), "0" * 64):
        assert pg.payload(digest) == lite.payload(digest)
    with _raw(pg.url) as raw:
        assert raw.execute("SELECT count(*) FROM evidence").fetchone() == (2,)  # stored once per digest
        facts = raw.execute("SELECT fact_key, fact_date, fact_end, message_id FROM exchanges ORDER BY seq").fetchall()
    assert facts == [(None, None, None, None), ("k", "2026-04-01", "3", None), (None, None, None, "<m@x>")] + [
        (None, None, None, None)
    ]
    lite.close()


def _fields(flt: JournalFilter) -> dict[str, object]:
    return {name: getattr(flt, name) for name in JournalFilter.__slots__}  # type: ignore[attr-defined]


def test_nul_characters_come_back_exactly(pg: PostgreSQLJournal, tmp_path: Path) -> None:
    """PostgreSQL text refuses NUL: the journal still records such an exchange (hostile input) and returns it as
    it was given."""
    hostile = ex(id="n", person="12\x003", error_message="a\x00b", details={"header": "x\x00y"})
    pg.record(hostile)
    [back] = pg.query()
    assert back == hostile
    assert pg.count(JournalFilter(person="12\x003")) == 1  # the filter finds it by the same value
    with _raw(pg.url) as raw:
        assert raw.execute("SELECT person, error_message FROM exchanges").fetchone() == ("12\ufffd3", "a\ufffdb")


def test_payloads_are_compressed_when_it_pays(pg: PostgreSQLJournal) -> None:
    text = b"Subject: compte rendu\r\n\r\n" + b"Ligne de compte rendu de consultation.\r\n" * 2000
    noise = os.urandom(4096)
    small = b"tiny"
    stored = pg.record_many([ex(payload=text), ex(payload=noise), ex(payload=small), ex(payload=text)])
    assert [pg.payload(e.digest or "") for e in stored] == [text, noise, small, text]
    with _raw(pg.url) as raw:
        rows = dict(
            (size, (codec, length))
            for size, codec, length in raw.execute("SELECT size, codec, length(data) FROM evidence").fetchall()
        )
    assert set(rows) == {len(text), len(noise), len(small)}
    assert rows[len(text)][0] == "zlib" and rows[len(text)][1] < len(text) // 20
    assert rows[len(noise)] == ("identity", len(noise)) and rows[len(small)] == ("identity", len(small))


def test_an_exchange_is_committed_when_record_returns(pg: PostgreSQLJournal) -> None:
    with _raw(pg.url) as other:  # another session sees it at once: nothing left in a pending transaction
        pg.record(ex(id="seen"))
        assert other.execute("SELECT id FROM exchanges").fetchall() == [("seen",)]
        with pytest.raises(psycopg.errors.UniqueViolation):
            pg.record_many([ex(id="new", payload=b"gone"), ex(id="seen")])
        assert other.execute("SELECT id FROM exchanges").fetchall() == [("seen",)]
        assert other.execute("SELECT count(*) FROM evidence").fetchone() == (0,)  # all or nothing


def test_the_schema_is_versioned_and_a_newer_one_refused(pg_url: str) -> None:
    first = open_journal(pg_url)
    first.record(ex(id="kept"))
    first.close()
    again = open_journal(pg_url)  # opening again changes nothing
    assert isinstance(again, PostgreSQLJournal) and again.schema_version() == SCHEMA_VERSION == 6
    assert [e.id for e in again.query()] == ["kept"]
    again.close()
    with _raw(pg_url) as raw:
        raw.execute("UPDATE socle_schema SET version = 7 WHERE component = 'journal'")
    with pytest.raises(SchemaTooNewError) as refused:
        open_journal(pg_url)
    assert str(refused.value) == (
        f"le journal PostgreSQL {pg_url} a le schéma version 7, plus récent que celui que connaît cette version de "
        "socle-harness (6) : elle n'y écrira pas. Mettez socle-harness à jour (pip install -U socle-harness) sur "
        "toutes les machines de la plateforme, ou indiquez une autre base avec --journal. / journal schema newer "
        "than this socle-harness."
    )
    with _raw(pg_url) as raw:
        assert raw.execute("SELECT version FROM socle_schema").fetchall() == [(7,)]  # left as it was
        assert raw.execute("SELECT id FROM exchanges").fetchall() == [("kept",)]


def test_a_version_1_journal_is_migrated_at_start(pg_url: str) -> None:
    """Version 1 (the first PostgreSQL layout) had indexes no query read; version 2 has the SQLite journal's;
    version 3 the sessions; versions 4 to 6 the indicator engine's aggregates."""
    with _raw(pg_url) as raw:
        J._apply_schema(raw, pg_url, target=1)
        raw.execute(
            "INSERT INTO exchanges (id, ts, month, service, operation, direction, outcome, person, details)"
            " VALUES ('old', '2026-04-30T22:30:00+00:00', '2026-05', 'insi', 'soap.x', 'from_dui', 'accepted',"
            " '1', '{\"k\": 1}')"
        )
        assert raw.execute("SELECT version FROM socle_schema").fetchall() == [(1,)]
        assert "ix_exchanges_ts" in _indexes(raw)
    journal = open_journal(pg_url)
    [old] = journal.query()
    assert (old.id, old.month, old.person, old.details) == ("old", "2026-05", "1", {"k": 1})
    journal.record(ex(id="new"))
    journal.close()
    with _raw(pg_url) as raw:
        assert raw.execute("SELECT version FROM socle_schema").fetchall() == [(6,)]
        assert _indexes(raw) == {
            "exchanges_pkey",
            "exchanges_id_key",
            "evidence_pkey",
            "socle_schema_pkey",
            "ix_exchanges_identity",
            "ix_exchanges_run",
            "ix_exchanges_counts",
            "ix_exchanges_persons",
            "ix_exchanges_message_ids",
            "ix_exchanges_fact_versions",
            "ix_exchanges_fact_person",
            "ix_exchanges_session",
            "sessions_pkey",
            "ix_sessions_revision",
            "session_members_pkey",
            "ux_session_members_open",
            "indicator_person_months_pkey",
            "indicator_person_odd_months_pkey",
            "indicator_messages_pkey",
            "indicator_message_counts_pkey",
            "indicator_facts_pkey",
            "indicator_cdl_platform_notes_pkey",
            "indicator_cdl_receipts_pkey",
            "indicator_agenda_pkey",
        }


def _indexes(raw: psycopg.Connection) -> set[str]:
    return {name for (name,) in raw.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")}


def test_journals_opening_together_create_the_schema_once(pg_url: str) -> None:
    """Four journals (four pools, as four processes would) open an empty database at once: one creates the
    schema, the others wait for its lock and find it."""
    opened: list[object] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(open_journal(pg_url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(opened) == 4
    for journal in opened:
        journal.close()  # type: ignore[attr-defined]


def _write(url: str, prefix: str, n: int) -> None:
    journal = open_journal(url)
    for i in range(n):
        journal.record(ex(id=f"{prefix}-{i}", payload=f"{prefix}-{i % 3}".encode()))
    journal.close()


def test_concurrent_writers_in_threads_and_processes(pg: PostgreSQLJournal, pg_url: str) -> None:
    """Two other processes and three threads write at once while a reader follows ``since_seq``: every exchange
    recorded exactly once, and the reader, which never re-reads what it has seen, misses none (``seq`` is given
    in commit order)."""
    seen: list[str] = []
    done = threading.Event()

    def follow() -> None:
        mark = 0
        while True:
            finished = done.is_set()
            batch = pg.query(JournalFilter(since_seq=mark))
            seen.extend(e.id for e in batch)
            if batch:
                mark = _seq_of(pg, batch[-1].id)
            if finished:
                return

    reader = threading.Thread(target=follow)
    reader.start()
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write, args=(pg_url, f"p{k}", 40)) for k in range(2)]
    for p in processes:
        p.start()
    threads = [threading.Thread(target=_write, args=(pg_url, f"t{k}", 40)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in processes:
        p.join(timeout=120)
        assert p.exitcode == 0
    done.set()
    reader.join()
    expected = {f"{w}-{i}" for w in ("p0", "p1", "t0", "t1", "t2") for i in range(40)}
    assert pg.count() == 200 and {e.id for e in pg.query()} == expected
    assert sorted(seen) == sorted(expected)  # each seen once, none missed
    with _raw(pg.url) as raw:
        assert raw.execute("SELECT count(*) FROM evidence").fetchone() == (15,)  # 5 writers x 3 payloads


def _seq_of(journal: PostgreSQLJournal, exchange_id: str) -> int:
    with journal.connection() as conn:
        row = conn.execute("SELECT seq FROM exchanges WHERE id = %s", (exchange_id,)).fetchone()
    return int(row[0])


def test_wait_for_sees_what_another_process_records(pg: PostgreSQLJournal, pg_url: str) -> None:
    mark = pg.last_seq()
    timer = threading.Timer(0.2, _write, args=(pg_url, "late", 1))
    timer.start()
    found = wait_for(pg, JournalFilter(since_seq=mark), timeout=10)
    timer.join()
    assert [e.id for e in found] == ["late-0"]


def test_passwords_stay_out_of_messages() -> None:
    assert redact("postgresql://u:secret@h:5432/b?x=1") == "postgresql://u:***@h:5432/b?x=1"
    assert redact("postgresql://u@h/b") == "postgresql://u@h/b"


def test_pool_options_must_be_numbers() -> None:
    with pytest.raises(ValueError, match=r"^option pool_max='beaucoup' du journal PostgreSQL : nombre attendu$"):
        open_journal("postgresql://127.0.0.1:1/b?pool_max=beaucoup")


def test_the_journal_command_reads_a_postgresql_journal(pg: PostgreSQLJournal, pg_url: str) -> None:
    pg.record_many(SAMPLE)
    runner = CliRunner()
    as_json = runner.invoke(app, ["journal", "--journal", pg_url, "--format", "json", "--essms", "990000016"])
    assert as_json.exit_code == 0, as_json.output
    assert [(r["id"], r["person"], r["month"]) for r in json.loads(as_json.stdout)] == [
        ("a", "238047505612394", "2026-03")
    ]
    rejected = runner.invoke(app, ["journal", "--journal", pg_url, "--format", "csv", "--outcome", "rejected"])
    lines = rejected.stdout.strip().splitlines()
    assert rejected.exit_code == 0 and len(lines) == 2 and ",550 5.1.1," in lines[1]
    table = runner.invoke(app, ["journal", "--journal", pg_url], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "4 échange(s)" in table.stdout


def test_the_journal_command_says_when_the_server_is_unreachable() -> None:
    result = CliRunner().invoke(app, ["journal", "--journal", "postgresql://127.0.0.1:1/absente"])
    assert result.exit_code == 2
    assert "journal PostgreSQL injoignable / unreachable: postgresql://127.0.0.1:1/absente" in result.output


CLI = [sys.executable, "-m", "harness.front.cli"]


def test_serve_journals_into_postgresql(pg: PostgreSQLJournal, pg_url: str, tmp_path: Path) -> None:
    endpoints_file = tmp_path / "endpoints.json"
    proc = subprocess.Popen(
        [*CLI, "serve", "--ephemeral", "--journal", pg_url, "--endpoints-file", str(endpoints_file)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not endpoints_file.exists():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "serve did not write its endpoints file"
            time.sleep(0.05)
        host, _, port = json.loads(endpoints_file.read_text())["mssante"]["smtp"].rpartition(":")
        ca = tmp_path / ".socle" / "pki" / "ca-bundle.pem"
        with smtplib.SMTP(host, int(port), timeout=10) as smtp:
            smtp.starttls(context=ssl.create_default_context(cafile=str(ca)))
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                smtp.login("dui@ehpad-tilleuls.mssante.fr", "pas-le-bon")
            assert refused.value.smtp_code == 535
        # each refusal (smtplib tries PLAIN, then LOGIN) was journaled in PostgreSQL before its 535 was sent
        found = pg.query(JournalFilter(service="mssante", operation="smtp.auth"))
        assert [(e.outcome, e.error_code) for e in found] == [(Outcome.REJECTED, "535 5.7.8")] * 2
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out


@pytest.mark.slow
def test_run_journals_into_postgresql(pg: PostgreSQLJournal, pg_url: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CLI, "run", "--journal", pg_url, "-t", "exigence:MSS-ENVOI-PRO"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    submitted = pg.query(JournalFilter(service="mssante", operation="smtp.submit"))
    assert [e.outcome for e in submitted] == [Outcome.ACCEPTED] and submitted[0].run_id
    assert not (tmp_path / ".socle" / "journal.sqlite").exists()  # nothing went to the default SQLite journal


@pytest.mark.parametrize("command", [["serve", "--ephemeral"], ["run"], ["journal"]])
def test_commands_stop_before_starting_when_postgresql_is_unreachable(command: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [*command, "--journal", "postgresql://127.0.0.1:1/absente"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("journal PostgreSQL injoignable / unreachable: postgresql://127.0.0.1:1/absente")


@pytest.mark.parametrize("command", [["serve", "--ephemeral"], ["run"], ["journal"]])
def test_commands_refuse_a_newer_journal_schema_before_starting(
    command: list[str], pg: PostgreSQLJournal, pg_url: str
) -> None:
    with _raw(pg_url) as raw:
        raw.execute("UPDATE socle_schema SET version = %s", (SCHEMA_VERSION + 1,))
    result = CliRunner().invoke(app, [*command, "--journal", pg_url], env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    # the console may wrap the line anywhere, inside the URL too: compare without white space
    assert "".join(result.output.split()) == "".join(J._too_new(pg_url, SCHEMA_VERSION + 1).split())
    with _raw(pg_url) as raw:
        assert raw.execute("SELECT count(*) FROM exchanges").fetchone() == (0,)  # nothing written


def _aggregates(raw: psycopg.Connection) -> dict[str, list[tuple]]:
    return {
        "months": raw.execute("SELECT * FROM indicator_person_months ORDER BY 1, 2, 3").fetchall(),
        "odd": raw.execute("SELECT * FROM indicator_person_odd_months ORDER BY 1, 2, 3, 4").fetchall(),
        "messages": raw.execute("SELECT * FROM indicator_messages ORDER BY 1, 2").fetchall(),
        "counts": raw.execute("SELECT * FROM indicator_message_counts ORDER BY 1, 2").fetchall(),
        "facts": raw.execute(
            'SELECT operation, essms, person, fact_key, status, start, "end", first_date FROM indicator_facts'
            " ORDER BY 1, 2, 3, 4"
        ).fetchall(),
        "platform notes": raw.execute("SELECT * FROM indicator_cdl_platform_notes ORDER BY 1").fetchall(),
        "receipts": raw.execute("SELECT * FROM indicator_cdl_receipts ORDER BY 1, 2").fetchall(),
        "agenda": raw.execute("SELECT * FROM indicator_agenda ORDER BY 1, 2").fetchall(),
    }


def test_a_version_3_journal_gets_the_indicator_aggregates(pg_url: str) -> None:
    """Versions 4 to 6 add the indicator engine's aggregates (harness.analytics.indicators_pg): filled from the
    exchanges a version 3 journal holds when it is migrated, then kept by every insert."""

    def fact(op: str, key: str, date: str | None, ts: datetime, status: str = "finished", **kw: object) -> Exchange:
        fact = {"key": key, "date": date, "start": "2026-01-02", "end": None, "status": status}
        return ex(service="tddui", operation=op, essms="E1", person="P1", ts=ts, details={"fact": fact}, **kw)

    def cdl(op: str, ts: datetime, details: dict, **kw: object) -> Exchange:
        return ex(service="eparcours", operation=op, essms="E1", ts=ts, run_id="r", details=details, **kw)

    event = "fhir.create.evenement"
    before = [
        ex(service="dmp", operation="iti41.provide_and_register", essms="E1", person="P1", ts=T0),  # 2026-03
        ex(
            service="dmp",
            operation="iti41.provide_and_register",
            essms="E1",
            person="P1",
            ts=T0,
            outcome=Outcome.REJECTED,
        ),
        ex(essms="E1", person="P1", ts=T0 + timedelta(days=20), details={"message_id": "<m@x>"}),  # 2026-04
        fact(event, "ev1", "2026-02-10", T0),
        fact(event, "ev1", "2026-01-05", T0, status="cancelled"),  # an older version, recorded later
        fact("fhir.create.usager", "pat", "2025-13-01", T0),  # not a month
        cdl("cdl.read", T0, {"note": {"id": "n1"}}),  # read before the platform's note is journaled
        cdl("cdl.search", T0 + timedelta(days=20), {"notes": [{"id": "n2"}, {"id": "n1"}, {"x": 1}]}),
        cdl("cdl.search", T0, {"notes": {"id": "n3"}}),  # not a list: nothing received
    ]
    with _raw(pg_url) as raw:
        J._apply_schema(raw, pg_url, target=3)
        for exchange in before:
            raw.execute(J._INSERT, J._row(exchange))
        assert raw.execute("SELECT to_regclass('indicator_facts')").fetchone() == (None,)
    journal = open_journal(pg_url)
    with _raw(pg_url) as raw:
        assert raw.execute("SELECT version FROM socle_schema").fetchall() == [(6,)]
        assert _aggregates(raw) == {
            "months": [("E1", "P1", 2026, 1 << 3, 1 << 2, 1 << 1 | 1 << 0)],  # MSSanté April, DMP March, facts
            "odd": [("E1", "P1", "updated", "2025-13")],
            "messages": [("E1", "<m@x>", "2026-04")],
            "counts": [("E1", "2026-04", 1)],
            "facts": [(event, "E1", "P1", "ev1", "finished", "2026-01-02", None, "2026-01-05")],
            "platform notes": [],
            "receipts": [("E1", "r|n1", "2026-03"), ("E1", "r|n2", "2026-04")],
            "agenda": [("E1", "P1", "2026-01-05")],  # first recorded by its older (cancelled) version
        }
    journal.record_many(
        [
            ex(essms="E1", person="P1", ts=T0 - timedelta(days=40), details={"message_id": "<m@x>"}),  # February
            ex(essms="E1", person="P1", ts=T0 + timedelta(days=300), details={"message_id": "<n@x>"}),  # 2027-01
            fact(event, "ev1", "2026-02-11", T0, status="entered-in-error"),
            cdl("platform.note", T0, {"note": {"id": "n1"}}, outcome=Outcome.REJECTED),
            cdl("cdl.read", T0 - timedelta(days=40), {"note": {"id": "n2"}}),  # February
            cdl("cdl.read", T0 + timedelta(days=40), {"note": {"id": "n1"}}),  # May: n1 stays in March
            cdl("cdl.read", T0 - timedelta(days=40), {"note": {"id": "n2"}}, outcome=Outcome.REJECTED),
        ]
    )
    journal.close()
    with _raw(pg_url) as raw:
        assert _aggregates(raw) == {
            "months": [("E1", "P1", 2026, 1 << 3 | 1 << 1, 1 << 2, 1 << 1 | 1 << 0), ("E1", "P1", 2027, 1, 0, 0)],
            "odd": [("E1", "P1", "updated", "2025-13")],
            "messages": [("E1", "<m@x>", "2026-02"), ("E1", "<n@x>", "2027-01")],
            "counts": [("E1", "2026-02", 1), ("E1", "2026-04", 0), ("E1", "2027-01", 1)],
            "facts": [(event, "E1", "P1", "ev1", "entered-in-error", "2026-01-02", None, "2026-01-05")],
            "platform notes": [("r|n1",)],
            "receipts": [("E1", "r|n1", "2026-03"), ("E1", "r|n2", "2026-02")],
            "agenda": [("E1", "P1", None)],  # its only événement retracted
        }


def test_the_aggregates_follow_the_indicator_engine() -> None:
    """The aggregates' operations and version key are the engine's (they are written where psycopg is loaded)."""
    from harness.analytics import indicators, indicators_pg
    from harness.fields import dui

    assert J.USAGE_OPERATIONS == {"mssante": indicators.MSSANTE.operations, "dmp": indicators.DMP.operations}
    assert J.VERSIONED_FACTS == (str(dui.FactKind.SEJOUR), str(dui.FactKind.EVENEMENT))
    assert J.VERSION_KEY == indicators_pg._VERSION
    assert J.CDL_OPERATIONS == (indicators.CDL_READ, indicators.CDL_SEARCH, indicators.CDL_PLATFORM_NOTE)
    assert J.RETRACTED_EVENTS == dui.EVENT_STATUSES_NOT_COUNTED
