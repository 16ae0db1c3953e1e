"""The journal: recording, filters, evidence, durability across reopen, URL parsing."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from harness.core.journal import Direction, Exchange, JournalFilter, Outcome, SQLiteJournal, open_journal, wait_for


def _exchange(**overrides: object) -> Exchange:
    base = dict(service="mssante", operation="smtp.submit", direction=Direction.FROM_DUI, outcome=Outcome.ACCEPTED)
    return Exchange(**{**base, **overrides})  # type: ignore[arg-type]


def test_record_and_query_with_filters(tmp_path: Path) -> None:
    journal = open_journal(f"sqlite:///{tmp_path}/j.sqlite")
    march = datetime(2026, 3, 31, 21, 30, tzinfo=UTC)  # 23:30 in Paris
    journal.record(_exchange(essms="990000016", person="238047505612394", ts=march, payload=b"hello"))
    journal.record(
        _exchange(essms="990000016", person="142036912304505", outcome=Outcome.REJECTED, error_code="550 5.1.1")
    )
    journal.record(_exchange(service="dmp", operation="iti41.provide_and_register", essms="990000024"))
    assert journal.count() == 3
    assert journal.count(JournalFilter(service="mssante")) == 2
    assert journal.count(JournalFilter(month="2026-03")) == 1
    assert journal.count(JournalFilter(essms="990000016", outcome=Outcome.ACCEPTED)) == 1
    [rejected] = journal.query(JournalFilter(outcome=Outcome.REJECTED))
    assert rejected.error_code == "550 5.1.1" and rejected.direction is Direction.FROM_DUI
    [first] = journal.query(JournalFilter(person="238047505612394"))
    assert first.month == "2026-03" and first.ts == march
    assert journal.payload(first.digest or "") == b"hello"
    assert journal.query(JournalFilter(limit=2))[-1].operation == "smtp.submit"


def test_the_month_is_the_french_calendar_month_and_older_journals_are_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "j.sqlite"
    journal = SQLiteJournal(path)
    late = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)  # 1 April, 01:30 in Paris
    summer = datetime(2026, 6, 30, 22, 15, tzinfo=UTC)  # 1 July, 00:15 in Paris (UTC+2)
    day = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
    for ts in (late, summer, day):
        journal.record(_exchange(ts=ts))
    assert [e.month for e in journal.query()] == ["2026-04", "2026-07", "2026-03"]
    journal.close()
    # a journal written before layout 1 stored the UTC month: reopening it fixes the months
    raw = sqlite3.connect(path)
    raw.execute("UPDATE exchanges SET month = substr(ts, 1, 7)")
    raw.execute("PRAGMA user_version = 0")
    raw.commit()
    raw.close()
    journal = SQLiteJournal(path)
    assert [e.month for e in journal.query()] == ["2026-04", "2026-07", "2026-03"]
    assert journal.count(JournalFilter(month="2026-04")) == 1
    journal.close()


def test_the_month_of_a_utc_time_is_its_paris_month_around_every_month_end() -> None:
    """:attr:`Exchange.month` skips the zone conversion out of the last two hours of a UTC month (issue 18): the
    same month as the conversion, at each month's end from 1890 to 2100, summer and winter time, other zones."""
    paris = ZoneInfo("Europe/Paris")
    for year in (*range(1890, 2101), 2, 999):
        for month in range(1, 13):
            start = datetime(year, month, 1, tzinfo=UTC)
            for hours in (-26, -2.5, -2, -1.5, -1, -1 / 3600, 0, 1, 2, 22, 24 * 27 + 21.99):
                ts = start + timedelta(hours=hours)
                assert _exchange(ts=ts).month == ts.astimezone(paris).strftime("%Y-%m"), ts
    plus_one = datetime(2026, 3, 31, 23, 30, tzinfo=timezone(timedelta(hours=1)))  # 1 April 00:30 in Paris
    assert (
        _exchange(ts=plus_one).month == "2026-04"
        and _exchange(ts=datetime(2026, 6, 30, 22, 15, tzinfo=UTC)).month == "2026-07"
    )


def test_evidence_is_deduplicated_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = SQLiteJournal(path)
    a = journal.record(_exchange(payload=b"same bytes", details={"k": "é"}))
    b = journal.record(_exchange(payload=b"same bytes"))
    assert a.digest == b.digest
    journal.close()
    reopened = SQLiteJournal(path)
    assert [e.id for e in reopened.query()] == [a.id, b.id]
    assert reopened.query()[0].details == {"k": "é"}
    assert reopened.payload(a.digest or "") == b"same bytes"


def test_since_seq_and_wait_for(tmp_path: Path) -> None:
    journal = open_journal(f"sqlite:///{tmp_path}/j.sqlite")
    journal.record(_exchange())
    mark = journal.last_seq()
    timer = threading.Timer(0.1, lambda: journal.record(_exchange(operation="later")))
    timer.start()
    found = wait_for(journal, JournalFilter(since_seq=mark), timeout=5)
    timer.join()
    assert [e.operation for e in found] == ["later"]
    assert wait_for(journal, JournalFilter(operation="never"), timeout=0.05) == []


def test_concurrent_writers(tmp_path: Path) -> None:
    journal = open_journal(f"sqlite:///{tmp_path}/j.sqlite")
    threads = [threading.Thread(target=lambda: [journal.record(_exchange()) for _ in range(50)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert journal.count() == 200


def _until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_a_group_commit_fails_only_the_batch_at_fault(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    journal = SQLiteJournal(path)
    journal.record(_exchange(id="dup"))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database: the first record waits
    results: dict[str, object] = {}

    def write(name: str, exchanges: list[Exchange]) -> None:
        try:
            results[name] = [e.id for e in journal.record_many(exchanges)]
        except sqlite3.IntegrityError as exc:
            results[name] = exc

    first = threading.Thread(target=write, args=("first", [_exchange(id="a")]))
    first.start()
    _until(lambda: journal._lock.locked() and len(journal._pending) == 1)  # it waits for the database
    queued = [
        threading.Thread(target=write, args=("good", [_exchange(id="b"), _exchange(id="c", payload=b"kept")])),
        threading.Thread(target=write, args=("bad", [_exchange(id="d", payload=b"lost"), _exchange(id="dup")])),
    ]
    for t in queued:
        t.start()
    _until(lambda: len(journal._pending) == 3)  # the calls that arrive meanwhile join its group
    assert results == {}  # nobody returns before its commit
    blocker.execute("COMMIT")
    for t in (first, *queued):
        t.join(10)
    assert results["first"] == ["a"] and results["good"] == ["b", "c"]
    assert isinstance(results["bad"], sqlite3.IntegrityError)
    assert [e.id for e in journal.query()] == ["dup", "a", "b", "c"]  # the bad batch: all or none
    assert journal.payload(hashlib.sha256(b"kept").hexdigest()) == b"kept"
    assert journal.payload(hashlib.sha256(b"lost").hexdigest()) is None
    journal.record(_exchange(id="e"))  # and the journal goes on
    assert journal.count() == 5
    blocker.close()
    journal.close()


def test_a_call_the_database_refuses_is_not_committed_later(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite"
    journal = SQLiteJournal(path)
    journal._db.execute("PRAGMA busy_timeout=50")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        journal.record(_exchange(id="refused"))  # the caller is told: nothing was recorded
    blocker.execute("COMMIT")
    journal.record(_exchange(id="next"))
    assert [e.id for e in journal.query()] == ["next"]
    blocker.close()
    journal.close()


@pytest.mark.parametrize("url", ["mysql://x", "sqlite", "nonsense"])
def test_unknown_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(ValueError, match="journal|sqlite"):
        open_journal(url)


def test_an_unreachable_postgresql_journal_is_reported_not_silently_ignored() -> None:
    with pytest.raises(ValueError, match="journal PostgreSQL injoignable"):
        open_journal("postgresql://127.0.0.1:1/test")
