"""The INSi decision on the event loop with the group commit of one loop turn (issue 18,
:class:`harness.core.group_commit.GroupCommit`) against the worker-thread path (a PostgreSQL journal keeps it): the
same answers and the same journal rows; the requests of one turn share one journal transaction; none is answered
before its row is committed; a row the journal refuses fails alone and is answered with the internal fault, itself
journaled (as on the worker-thread path)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.core.journal import Exchange, JournalFilter, SQLiteJournal
from harness.fields.testdata import load_testdata
from harness.host.simulator import FaultBoard, RunState, SimulatorContext
from harness.sut.base import InsiTraits
from harness.sut.insi_actions import REFERENCE_IDAM, build_request
from mock_services.insi.service import InsiCall, InsiService, InsiSettings, Reply

REPO = Path(__file__).resolve().parents[1]
TESTDATA = load_testdata(REPO / "fixtures")
ACTION = "urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecTraitsIdentite"
CONTENT_TYPE = f'application/soap+xml; charset=utf-8; action="{ACTION}"'
MARTIN = InsiTraits("MARTIN", ("JEANNE",), "F", "1938-04-12")
UNKNOWN = InsiTraits("PERSONNE", ("INCONNUE",), "M", "1901-01-01")


class CountingJournal(SQLiteJournal):
    """A SQLite journal that counts its transactions and refuses those holding a row of a given ``message_id``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.transactions: list[int] = []  # exchanges per record_many call
        self.refused: set[str] = set()

    def record_many(self, exchanges: Sequence[Exchange]) -> list[Exchange]:
        self.transactions.append(len(exchanges))
        if any(e.details.get("message_id") in self.refused for e in exchanges):
            raise sqlite3.IntegrityError("refused by the test")
        return super().record_many(exchanges)


def service(tmp_path: Path, name: str) -> tuple[InsiService, CountingJournal]:
    journal = CountingJournal(tmp_path / f"{name}.sqlite")
    ctx = SimulatorContext(
        name="insi",
        journal=journal,
        pki=None,  # type: ignore[arg-type]
        bind_host="127.0.0.1",
        ports={},
        http_base="https://127.0.0.1/insi",
        faults=FaultBoard(),
        run=RunState("run-insi"),
        testdata=TESTDATA,
    )
    return InsiService(ctx, InsiSettings(synthetic_identities=0)), journal


def call(message_id: str, traits: InsiTraits = MARTIN, **shape: Any) -> InsiCall:
    emitter = TESTDATA.person("P001").essms
    body = build_request(traits, emitter=emitter, idam=REFERENCE_IDAM, instance="i-1", message_id=message_id)
    fields: dict[str, Any] = {
        "body": body,
        "size": len(body),
        "too_large": False,
        "content_type": CONTENT_TYPE,
        "client_cn": "INSI-AUTO",
        "tls": True,
        **shape,
    }
    return InsiCall(**fields)


CALLS = (
    call("m-found"),
    call("m-unknown", UNKNOWN),
    call("m-media", content_type="text/xml"),
    call("m-not-soap", body=b"<not-soap/>", size=11),
    call("m-cert", client_cn="OTHER", body=b"", size=0, body_read=False),
)


def rows(journal: SQLiteJournal) -> list[dict[str, Any]]:
    """The journal rows without what differs between two runs of the same requests (ids, times)."""
    found = journal.query(JournalFilter(service="insi"))
    return [{k: v for k, v in e.summary().items() if k not in ("id", "ts", "month")} for e in found]


def shown(reply: Reply) -> tuple[int, bytes, str, dict[str, str], float]:
    return reply.status, reply.body, reply.media_type, reply.headers, reply.delay


async def on_loop(insi: InsiService, journal: SQLiteJournal, calls: Sequence[InsiCall]) -> list[Reply]:
    """The calls handled together on one loop; each reply checked to have its row committed when it is given."""
    assert insi.groups is not None
    await asyncio.to_thread(lambda: insi.base)  # built before, so that the calls reach the loop in the same turn

    async def one(c: InsiCall) -> Reply:
        reply = await insi.handle_on_loop(c, insi.groups)  # type: ignore[arg-type]
        committed = {e.id for e in journal.query(JournalFilter(service="insi"))}
        assert reply.exchange.id in committed, "answered before its row was committed"
        return reply

    return list(await asyncio.gather(*(one(c) for c in calls)))


def test_on_the_loop_the_answers_and_rows_are_those_of_the_worker_thread_in_one_transaction(tmp_path: Path) -> None:
    threaded, threaded_journal = service(tmp_path, "threaded")
    looped, looped_journal = service(tmp_path, "looped")
    expected = [shown(threaded.handle(c)) for c in CALLS]
    assert threaded_journal.transactions == [1] * len(CALLS)

    replies = asyncio.run(on_loop(looped, looped_journal, CALLS))

    assert [shown(r) for r in replies] == expected
    assert [r[0] for r in expected] == [200, 200, 415, 500, 500]
    assert looped_journal.transactions == [len(CALLS)]  # one journal transaction for the requests of the turn
    assert rows(looped_journal) == rows(threaded_journal)
    assert len(rows(looped_journal)) == len(CALLS)


@pytest.mark.parametrize("path", ["loop", "thread"])
def test_a_row_the_journal_refuses_fails_alone_and_gets_the_internal_fault(tmp_path: Path, path: str) -> None:
    insi, journal = service(tmp_path, path)
    journal.refused.add("uuid:m-unknown")  # the request's wsa:MessageID
    calls = (call("m-found"), call("m-unknown", UNKNOWN), call("m-found-2"))
    if path == "loop":
        replies = asyncio.run(on_loop(insi, journal, calls))
        assert journal.transactions[:4] == [3, 1, 1, 1]  # the group, then each alone
    else:
        replies = [insi.handle(c) for c in calls]
    assert [r.status for r in replies] == [200, 500, 200]
    assert b"INSI-ERREUR-INTERNE" in replies[1].body
    recorded = journal.query(JournalFilter(service="insi"))
    assert sorted(e.details.get("message_id") or "" for e in recorded) == ["", "uuid:m-found", "uuid:m-found-2"]
    [internal] = [e for e in recorded if e.error_code == "INSI-ERREUR-INTERNE"]
    assert "IntegrityError" in internal.details["internal_error"]
    assert internal.id == replies[1].exchange.id


def test_when_the_journal_refuses_even_the_internal_fault_the_request_fails(tmp_path: Path) -> None:
    insi, journal = service(tmp_path, "down")

    def down(exchanges: Sequence[Exchange]) -> list[Exchange]:
        raise sqlite3.OperationalError("disk I/O error")

    journal.record_many = down  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError):
        asyncio.run(on_loop(insi, journal, [call("m-found")]))
    assert journal.query(JournalFilter(service="insi")) == []
