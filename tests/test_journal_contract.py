"""The journal's contract, field by field: every filter and its bound (inclusive / exclusive), the atomicity of
``record_many``, the ``fact_*`` mirror, the JSON summary, URL parsing, ``wait_for`` — what the mutation run of
:mod:`harness.core.journal` showed no test checked."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from harness.core import journal as J
from harness.core.journal import (
    Direction,
    Exchange,
    JournalFilter,
    Outcome,
    SQLiteJournal,
    open_journal,
    wait_for,
)
from harness.core.journal_pg import JournalUnavailableError

T0 = datetime(2026, 5, 10, 8, 0, tzinfo=UTC)


def ex(**overrides: object) -> Exchange:
    base = dict(service="mssante", operation="smtp.submit", direction=Direction.FROM_DUI, outcome=Outcome.ACCEPTED)
    return Exchange(**{**base, **overrides})  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteJournal]:
    """The same four exchanges in each backend: the contract holds for both (PostgreSQL: tests/conftest.py)."""
    if request.param == "sqlite":
        j: SQLiteJournal = SQLiteJournal(tmp_path / "j.sqlite")
    else:
        j = open_journal(request.getfixturevalue("pg_url"))  # type: ignore[assignment]
    j.record_many(
        [
            ex(ts=T0, essms="A", person="p1", run_id="r1", scenario_id="s1", id="e1"),
            ex(ts=T0 + timedelta(hours=1), essms="B", person="p2", run_id="r1", scenario_id="s2", id="e2"),
            ex(
                ts=T0 + timedelta(hours=2),
                service="dmp",
                operation="iti41.provide_and_register",
                outcome=Outcome.REJECTED,
                direction=Direction.TO_DUI,
                run_id="r2",
                id="e3",
            ),
            ex(ts=datetime(2026, 6, 1, 12, tzinfo=UTC), essms="A", person="p1", id="e4"),
        ]
    )
    yield j
    j.close()


def ids(found: list[Exchange]) -> list[str]:
    return [e.id for e in found]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (JournalFilter(), ["e1", "e2", "e3", "e4"]),
        (JournalFilter(service="dmp"), ["e3"]),
        (JournalFilter(services=("dmp", "none")), ["e3"]),  # any of them, in journal order
        (JournalFilter(services=("dmp", "mssante"), essms="A"), ["e1", "e4"]),
        (JournalFilter(services=("mssante", "dmp"), since_seq=1), ["e2", "e3", "e4"]),
        (JournalFilter(services=()), []),
        (JournalFilter(operation="smtp.submit"), ["e1", "e2", "e4"]),
        (JournalFilter(outcome=Outcome.REJECTED), ["e3"]),
        (JournalFilter(outcome=Outcome.ACCEPTED, essms="A"), ["e1", "e4"]),
        (JournalFilter(person="p2"), ["e2"]),
        (JournalFilter(month="2026-06"), ["e4"]),
        (JournalFilter(run_id="r1"), ["e1", "e2"]),
        (JournalFilter(run_id="r1", scenario_id="s2"), ["e2"]),
        (JournalFilter(since_seq=2), ["e3", "e4"]),  # exclusive
        (JournalFilter(until_seq=2), ["e1", "e2"]),  # inclusive
        (JournalFilter(since_seq=1, until_seq=3), ["e2", "e3"]),
        (JournalFilter(ts_from=T0 + timedelta(hours=1)), ["e2", "e3", "e4"]),  # inclusive
        (JournalFilter(ts_to=T0 + timedelta(hours=1)), ["e1"]),  # exclusive
        (JournalFilter(ts_from=(T0 + timedelta(hours=1)).astimezone(J.PARIS)), ["e2", "e3", "e4"]),  # any zone
        (JournalFilter(limit=2), ["e1", "e2"]),
        (JournalFilter(limit=0), []),
        (JournalFilter(service="none"), []),
    ],
)
def test_each_filter_and_its_bounds(journal: SQLiteJournal, flt: JournalFilter, expected: list[str]) -> None:
    assert ids(journal.query(flt)) == expected
    assert journal.count(JournalFilter(**{**_fields(flt), "limit": None})) == len(
        journal.query(JournalFilter(**{**_fields(flt), "limit": None}))
    )


def _fields(flt: JournalFilter) -> dict[str, object]:
    return {name: getattr(flt, name) for name in JournalFilter.__slots__}  # type: ignore[attr-defined]


def test_rows_come_back_as_recorded(journal: SQLiteJournal) -> None:
    [e3] = journal.query(JournalFilter(service="dmp"))
    assert (e3.direction, e3.outcome, e3.run_id, e3.scenario_id) == (Direction.TO_DUI, Outcome.REJECTED, "r2", None)
    assert e3.ts == T0 + timedelta(hours=2) and e3.payload is None and e3.digest is None
    assert journal.last_seq() == 4
    assert journal.count(JournalFilter(essms="A")) == 2


def test_last_seq_of_an_empty_journal(tmp_path: Path) -> None:
    assert SQLiteJournal(tmp_path / "e.sqlite").last_seq() == 0


def test_record_many_is_all_or_nothing(journal: SQLiteJournal) -> None:
    duplicate = sqlite3.IntegrityError if isinstance(journal, SQLiteJournal) else psycopg.errors.UniqueViolation
    with pytest.raises(duplicate):
        journal.record_many([ex(id="new", payload=b"p"), ex(id="e1")])  # e1 exists: the whole batch is refused
    assert journal.count() == 4 and ids(journal.query(JournalFilter(since_seq=4))) == []
    assert journal.payload(J.hashlib.sha256(b"p").hexdigest()) is None  # the evidence went with it
    [stamped] = journal.record_many([ex(id="after", payload=b"p")])  # and the journal still works
    assert stamped.digest == J.hashlib.sha256(b"p").hexdigest() and journal.payload(stamped.digest) == b"p"
    assert journal.record_many([]) == []


def test_payloads_are_evidence_by_digest(journal: SQLiteJournal) -> None:
    recorded = journal.record(ex(payload=b"\x00bin", payload_type="message/rfc822"))
    assert recorded.digest == J.hashlib.sha256(b"\x00bin").hexdigest()
    [back] = journal.query(JournalFilter(since_seq=4))
    assert (back.digest, back.payload_type, back.payload) == (recorded.digest, "message/rfc822", None)
    assert journal.payload(recorded.digest) == b"\x00bin" and journal.payload("0" * 64) is None
    empty = journal.record(ex(payload=b""))
    assert empty.digest == J.hashlib.sha256(b"").hexdigest() and journal.payload(empty.digest) == b""


def test_a_body_is_put_as_evidence_once_without_an_exchange(journal: SQLiteJournal) -> None:
    body = b"<ClinicalDocument/>" * 200  # compressible: the PostgreSQL journal stores it zlib-packed
    digest = journal.put_payload(body)
    assert digest == J.hashlib.sha256(body).hexdigest() and journal.payload(digest) == body
    assert journal.put_payload(body) == digest and journal.payload(digest) == body  # a second put is a no-op
    assert journal.count() == 4  # no exchange was recorded


def test_attachments_are_evidence_committed_with_their_exchange(journal: SQLiteJournal) -> None:
    answer, other = b"<RESULTAT>00</RESULTAT>" * 50, b"<Fault/>"
    digest = J.payload_digest(answer)
    assert digest == J.hashlib.sha256(answer).hexdigest()
    recorded = journal.record_many(
        [
            ex(id="a1", payload=b"req", details={J.RESPONSE_DIGEST: digest}, attachments=(answer,)),
            ex(id="a2", details={J.RESPONSE_DIGEST: digest}, attachments=(answer, other)),  # the same answer again
        ]
    )
    assert recorded[0].attachments == (answer,) and "attachments" not in recorded[0].summary()
    assert journal.payload(digest) == answer and journal.payload(J.payload_digest(other)) == other
    [a1, a2] = [e for e in journal.query() if e.id in {"a1", "a2"}]
    assert a1.attachments == () and J.response_of(journal, a1) == answer == J.response_of(journal, a2)
    assert J.response_of(journal, journal.query(JournalFilter(limit=1))[0]) is None  # no response_digest
    lost = b"<never stored/>"
    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.UniqueViolation)):
        journal.record(ex(id="a1", attachments=(lost,)))  # a duplicate id: nothing of it is committed
    assert journal.payload(J.payload_digest(lost)) is None


def test_facts_are_mirrored_into_columns(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite"
    journal = SQLiteJournal(path)
    journal.record_many(
        [
            ex(id="f1", details={"fact": {"key": "k1", "date": "2026-05-01", "start": None, "end": 7, "status": "x"}}),
            ex(id="f2", details={"fact": "not an object"}),
            ex(id="f3", details={"other": 1}),
        ]
    )
    journal.close()
    rows = (
        sqlite3.connect(path)
        .execute("SELECT id, fact_key, fact_date, fact_start, fact_end, fact_status FROM exchanges ORDER BY seq")
        .fetchall()
    )
    assert rows == [
        ("f1", "k1", "2026-05-01", None, "7", "x"),
        ("f2", None, None, None, None, None),
        ("f3", None, None, None, None, None),
    ]


def test_an_older_journal_gets_its_fact_columns_filled(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    SQLiteJournal(path).record(ex(id="o1", details={"fact": {"key": "k", "status": "actif"}}))
    raw = sqlite3.connect(path)
    raw.execute("DROP INDEX ix_exchanges_fact_versions")
    raw.execute("DROP INDEX ix_exchanges_fact_person")
    for column in ("fact_key", "fact_date", "fact_start", "fact_end", "fact_status"):
        raw.execute(f"ALTER TABLE exchanges DROP COLUMN {column}")
    raw.commit()
    raw.close()
    SQLiteJournal(path).close()
    assert sqlite3.connect(path).execute("SELECT fact_key, fact_status, fact_date FROM exchanges").fetchall() == [
        ("k", "actif", None)
    ]


def test_the_month_migration_only_touches_month_ends(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    journal = SQLiteJournal(path)
    journal.record_many(
        [
            ex(id="a", ts=datetime(2026, 4, 30, 22, 30, tzinfo=UTC)),  # 1 May in Paris
            ex(id="b", ts=datetime(2026, 4, 27, 23, 30, tzinfo=UTC)),  # 28 April in Paris: same month
            ex(id="c", ts=datetime(2026, 4, 30, 21, 30, tzinfo=UTC)),  # 23:30 in Paris: still April
        ]
    )
    journal.close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE exchanges SET month = substr(ts, 1, 7)")
    raw.execute("PRAGMA user_version = 0")
    raw.commit()
    raw.close()
    reopened = SQLiteJournal(path)
    assert [(e.id, e.month) for e in reopened.query()] == [("a", "2026-05"), ("b", "2026-04"), ("c", "2026-04")]
    reopened.record(ex(id="d", ts=datetime(2026, 6, 2, tzinfo=UTC)))  # the migration left no transaction open
    assert reopened.count(JournalFilter(month="2026-05")) == 1
    reopened.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2  # months (1), sessions (2)


def test_summary_is_json_friendly() -> None:
    e = ex(ts=datetime(2026, 3, 31, 23, 30, tzinfo=UTC), payload=b"x", details={"k": 1}, id="s1", essms="A")
    summary = e.summary()
    assert "payload" not in summary
    assert summary["ts"] == "2026-03-31T23:30:00+00:00" and summary["month"] == "2026-04"
    assert (summary["direction"], summary["outcome"]) == ("from_dui", "accepted")
    assert type(summary["direction"]) is str and type(summary["outcome"]) is str
    assert (summary["id"], summary["essms"], summary["details"], summary["digest"]) == ("s1", "A", {"k": 1}, None)


def test_stored_vocabulary() -> None:
    """The words written in every journal file and report: changing one orphans the journals already written."""
    assert [str(d) for d in Direction] == ["from_dui", "to_dui"]
    assert [str(o) for o in Outcome] == ["accepted", "rejected"]
    assert J.FACT_KEYS == ("key", "date", "start", "end", "status")


def test_exchange_defaults() -> None:
    a, b = ex(), ex()
    assert a.id != b.id and len(a.id) == 32 and a.ts.tzinfo is not None
    assert (a.details, a.payload, a.run_id) == ({}, None, None) and a.details is not b.details


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///rel/j.sqlite", "rel/j.sqlite"),
        ("sqlite:////abs/j.sqlite", "/abs/j.sqlite"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite://", ":memory:"),
        ("sqlite:///sp%20ace.sqlite", "sp ace.sqlite"),
    ],
)
def test_open_journal_paths(monkeypatch: pytest.MonkeyPatch, url: str, path: str) -> None:
    opened: list[tuple[str, bool]] = []
    monkeypatch.setattr(J, "SQLiteJournal", lambda p, durable=False: opened.append((p, durable)) or "journal")
    assert open_journal(url) == "journal" and opened == [(path, False)]


@pytest.mark.parametrize(("query", "durable"), [("", False), ("?synchronous=full", True), ("?Synchronous=FULL", True)])
def test_open_journal_durability_option(monkeypatch: pytest.MonkeyPatch, query: str, durable: bool) -> None:
    opened: list[bool] = []
    monkeypatch.setattr(J, "SQLiteJournal", lambda p, durable=False: opened.append(durable))
    open_journal(f"sqlite:///j.sqlite{query}")
    assert opened == [durable]


def test_durable_journal_syncs_fully(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    statements: list[str] = []
    real_connect = sqlite3.connect

    class Recorder(sqlite3.Connection):
        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:  # type: ignore[override]
            statements.append(sql)
            return super().execute(sql, *args)

    monkeypatch.setattr(J.sqlite3, "connect", lambda *a, **k: real_connect(*a, **k, factory=Recorder))
    SQLiteJournal(tmp_path / "d.sqlite", durable=True).close()
    SQLiteJournal(tmp_path / "n.sqlite").close()
    assert [s for s in statements if "synchronous" in s] == ["PRAGMA synchronous=FULL", "PRAGMA synchronous=NORMAL"]
    assert statements.count("PRAGMA busy_timeout=10000") == 2  # concurrent writers wait instead of failing
    assert statements.count("PRAGMA journal_mode=WAL") == 2


def test_url_and_memory_journal(tmp_path: Path) -> None:
    assert SQLiteJournal(tmp_path / "u.sqlite").url == f"sqlite:///{tmp_path}/u.sqlite"
    memory = open_journal("sqlite:///:memory:")
    memory.record(ex())
    assert memory.count() == 1 and not Path(":memory:").exists()


@pytest.mark.parametrize("url", ["postgres://127.0.0.1:1/db", "postgresql://127.0.0.1:1/db"])
def test_postgresql_urls_open_the_postgresql_journal(url: str) -> None:
    with pytest.raises(JournalUnavailableError, match=r"^journal PostgreSQL injoignable / unreachable: "):
        open_journal(url)  # nothing listens on port 1: the PostgreSQL backend says so, with libpq's reason


def test_wait_for_counts_and_times_out(journal: SQLiteJournal) -> None:
    assert ids(wait_for(journal, JournalFilter(essms="A"), count=2, timeout=0)) == ["e1", "e4"]
    started = datetime.now(UTC)
    found = wait_for(journal, JournalFilter(essms="A"), count=3, timeout=0.2, poll=0.01)
    assert ids(found) == ["e1", "e4"] and datetime.now(UTC) - started >= timedelta(seconds=0.2)


def test_payload_bytes_stay_out_of_repr() -> None:
    assert "secret" not in repr(ex(payload=b"secret")) and "smtp.submit" in repr(ex(payload=b"secret"))


def test_a_journal_in_a_folder_still_to_create(tmp_path: Path) -> None:
    deep = SQLiteJournal(tmp_path / "a" / "b" / "j.sqlite")
    deep.record(ex())
    assert deep.count() == 1 and (tmp_path / "a" / "b" / "j.sqlite").is_file()


def test_a_closed_journal_refuses_work(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "c.sqlite")
    journal.close()
    with pytest.raises(sqlite3.ProgrammingError):
        journal.count()


def test_details_are_stored_readable_and_sorted(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite"
    journal = SQLiteJournal(path)
    journal.record(ex(id="d1", details={"b": "é", "a": 1}))
    journal.close()
    [(text,)] = sqlite3.connect(path).execute("SELECT details FROM exchanges").fetchall()
    assert text == '{"a": 1, "b": "é"}'  # UTF-8 as is, keys sorted: the file reads as it was written


def test_message_ids_are_mirrored_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "mid.sqlite"
    journal = SQLiteJournal(path)
    journal.record_many([ex(id="m1", details={"message_id": "<a@b>"}), ex(id="m2", details={"message_id": 7})])
    journal.close()
    raw = sqlite3.connect(path)
    assert raw.execute(f"SELECT id, {J.MESSAGE_ID} FROM exchanges ORDER BY seq").fetchall() == [
        ("m1", "<a@b>"),
        ("m2", None),
    ]
    # a journal from before the column, with the expression index that preceded it
    raw.execute("DROP INDEX IF EXISTS ix_exchanges_message_id")
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql LIKE '%message_id%'"):
        raw.execute(f"DROP INDEX {name}")
    raw.execute("ALTER TABLE exchanges DROP COLUMN message_id")
    raw.execute("CREATE INDEX ix_exchanges_messages ON exchanges (json_extract(details, '$.message_id'))")
    raw.execute("DROP INDEX ix_exchanges_identity")
    raw.execute("CREATE INDEX ix_exchanges_person ON exchanges (person, month)")  # before ix_exchanges_identity
    raw.execute("CREATE INDEX ix_exchanges_month_essms ON exchanges (month, essms, service, operation, outcome)")
    raw.execute("CREATE INDEX ix_exchanges_service_month ON exchanges (service, operation, month)")
    raw.execute("PRAGMA user_version = 0")  # and from before the French month too: both migrations run in turn
    raw.commit()
    raw.close()
    reopened = SQLiteJournal(path)
    reopened.record(ex(id="m3"))  # the migration's transaction is closed: the journal takes new exchanges
    reopened.close()
    raw = sqlite3.connect(path)
    assert raw.execute(f"SELECT id, {J.MESSAGE_ID} FROM exchanges ORDER BY seq").fetchall() == [
        ("m1", "<a@b>"),
        ("m2", None),
        ("m3", None),
    ]
    indexes = {name for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "ix_exchanges_messages" not in indexes
    assert sorted(n for n in indexes if not n.startswith("sqlite_")) == [
        "ix_exchanges_counts",
        "ix_exchanges_fact_person",
        "ix_exchanges_fact_versions",
        "ix_exchanges_identity",
        "ix_exchanges_message_ids",
        "ix_exchanges_persons",
        "ix_exchanges_run",
        "ix_exchanges_session",
        "ix_sessions_revision",
        "ux_session_members_open",
    ]


class _Clock:
    """time.monotonic / time.sleep of the journal module, on a fake clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_for_defaults(journal: SQLiteJournal, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(J, "time", clock)
    assert ids(wait_for(journal, JournalFilter(person="p2"))) == ["e2"] and clock.sleeps == []  # one is enough
    assert ids(wait_for(journal, JournalFilter(essms="A"), count=2)) == ["e1", "e4"] and clock.sleeps == []
    assert wait_for(journal, JournalFilter(service="never")) == []
    assert set(clock.sleeps) == {0.02} and 5.0 <= clock.now < 5.0 + 0.021  # polls every 20 ms for 5 s


def _old_journal(path: Path, *, drop: tuple[str, ...], user_version: int, corrupt: str) -> None:
    """A journal of an older layout (``drop``: columns it did not have yet) with one row the migration chokes on."""
    SQLiteJournal(path).record(ex(id="x1", ts=datetime(2026, 4, 30, 22, 30, tzinfo=UTC)))
    raw = sqlite3.connect(path)
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").fetchall():
        raw.execute(f"DROP INDEX {name}")
    for column in drop:
        raw.execute(f"ALTER TABLE exchanges DROP COLUMN {column}")
    raw.execute(corrupt)
    raw.execute(f"PRAGMA user_version = {user_version}")
    raw.commit()
    raw.close()


FACTS = ("fact_key", "fact_date", "fact_start", "fact_end", "fact_status")


@pytest.mark.parametrize(
    ("drop", "user_version", "corrupt", "error"),
    [
        ((), 0, "UPDATE exchanges SET ts = '2026-04-30T22:xx'", ValueError),  # the month migration
        (FACTS, 1, "UPDATE exchanges SET details = '{pas du JSON'", sqlite3.OperationalError),  # the fact columns
        (("message_id",), 1, "UPDATE exchanges SET details = '{pas du JSON'", sqlite3.OperationalError),
    ],
    ids=["month", "facts", "message-id"],
)
def test_a_failed_migration_is_rolled_back_and_reported(
    tmp_path: Path, drop: tuple[str, ...], user_version: int, corrupt: str, error: type[Exception]
) -> None:
    path = tmp_path / "old.sqlite"
    _old_journal(path, drop=drop, user_version=user_version, corrupt=corrupt)
    before = sqlite3.connect(path).execute("PRAGMA table_info(exchanges)").fetchall()
    with pytest.raises(error, match="isoformat|malformed JSON") as failed:  # the migration's own error, not a later one
        SQLiteJournal(path)
    other = sqlite3.connect(path, timeout=0)  # the failed opening holds no write lock (its transaction is gone)
    other.execute("BEGIN IMMEDIATE")
    assert other.execute("PRAGMA table_info(exchanges)").fetchall() == before  # nothing half-migrated
    assert other.execute("PRAGMA user_version").fetchone()[0] == user_version
    other.execute("ROLLBACK")
    del failed
