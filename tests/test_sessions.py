"""Sessions (issue 19 item 4): the registry's contract on both journals, the member uniqueness that makes every
exchange attributable to one session, the session of an exchange, and the journal's session filter."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.core.journal import Direction, Exchange, JournalFilter, Outcome, SQLiteJournal, open_journal
from harness.core.sessions import (
    Members,
    Session,
    SessionBook,
    SessionConflictError,
    UnknownSessionError,
    new_session,
)

T0 = datetime(2026, 5, 10, 8, 0, tzinfo=UTC)
T1 = datetime(2026, 5, 10, 9, 0, tzinfo=UTC)


def session(sid: str, dui: str, members: Members, *, label: str = "", at: datetime = T0) -> Session:
    made = new_session(dui, members, label=label, now=at)
    return Session(id=sid, label=made.label, dui=made.dui, created=made.created, members=made.members)


ALPHA = Members(
    essms=("010000001",), mailboxes=("DUI@Alpha.mssante.fr",), patients=("111111111111111",), clients=("dui-alpha",)
)
BETA = Members(essms=("020000002",), mailboxes=("dui@beta.mssante.fr",), patients=("222222222222222",))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'j.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def journal(url: str) -> Iterator[SQLiteJournal]:
    j = open_journal(url)
    yield j  # type: ignore[misc]
    j.close()


def test_a_session_is_recorded_with_its_members_normalised(journal: SQLiteJournal) -> None:
    assert journal.sessions() == [] and journal.sessions_revision() == 0
    created = journal.create_session(session("s-alpha", "Logiciel Alpha 3.2", ALPHA, label="Alpha"))
    assert created.members.mailboxes == ("dui@alpha.mssante.fr",)  # addresses in lower case
    assert [s.summary() for s in journal.sessions()] == [
        {
            "id": "s-alpha",
            "label": "Alpha",
            "dui": "Logiciel Alpha 3.2",
            "created": "2026-05-10T08:00:00+00:00",
            "closed": None,
            "essms": ["010000001"],
            "mailboxes": ["dui@alpha.mssante.fr"],
            "patients": ["111111111111111"],
            "clients": ["dui-alpha"],
        }
    ]
    assert journal.sessions_revision() == 1


def test_a_member_of_an_open_session_is_refused_to_another(journal: SQLiteJournal) -> None:
    journal.create_session(session("s-alpha", "Alpha", ALPHA))
    journal.create_session(session("s-beta", "Beta", BETA, at=T1))
    claims = Members(essms=("030000003", "010000001"), mailboxes=("dui@beta.MSSANTE.fr",))
    with pytest.raises(SessionConflictError) as refused:
        journal.create_session(session("s-gamma", "Gamma", claims))
    assert str(refused.value) == (
        "session refusée : la session « Alpha » (s-alpha, DUI Alpha) détient déjà ESSMS 010000001 ; "
        "la session « Beta » (s-beta, DUI Beta) détient déjà boîte aux lettres dui@beta.mssante.fr. "
        "Fermez-la (socle-harness session close s-alpha ; socle-harness session close s-beta) ou donnez à ce DUI "
        "d'autres données de test (un membre n'appartient qu'à une session ouverte) / session refused: a member "
        "belongs to one open session at most"
    )
    assert [s.id for s in journal.sessions()] == ["s-alpha", "s-beta"]  # nothing of Gamma written
    assert journal.sessions_revision() == 2


def test_closing_releases_the_members_once(journal: SQLiteJournal) -> None:
    journal.create_session(session("s-alpha", "Alpha", ALPHA))
    closed = journal.close_session("s-alpha", at=T1)
    assert (closed.id, closed.closed, closed.open) == ("s-alpha", T1, False)
    assert journal.sessions_revision() == 2
    again = journal.close_session("s-alpha", at=datetime(2026, 6, 1, tzinfo=UTC))  # closing again changes nothing
    assert again.closed == T1 and journal.sessions_revision() == 2
    assert journal.sessions(open_only=True) == []
    journal.create_session(session("s-alpha-2", "Alpha", ALPHA, at=T1))  # its members are free again
    assert [(s.id, s.open) for s in journal.sessions()] == [("s-alpha", False), ("s-alpha-2", True)]
    assert [s.id for s in journal.sessions(open_only=True)] == ["s-alpha-2"]
    assert journal.sessions_revision() == 3


def test_closing_an_unknown_session(journal: SQLiteJournal) -> None:
    with pytest.raises(UnknownSessionError) as refused:
        journal.close_session("nope")
    assert str(refused.value) == "session inconnue « nope » (socle-harness session list) / unknown session 'nope'"


def test_a_session_needs_a_dui_and_members() -> None:
    with pytest.raises(ValueError, match="^une session nomme son DUI / a session names its DUI$"):
        new_session(" ", ALPHA)
    with pytest.raises(ValueError, match="^une session a au moins un membre / a session has at least one member$"):
        new_session("Alpha", Members(essms=(" ",)))
    made = new_session(" Alpha ", ALPHA)
    assert (made.label, made.dui, len(made.id), made.open) == ("Alpha", "Alpha", 12, True)


def test_exchanges_carry_their_session_and_are_filtered_by_it(journal: SQLiteJournal) -> None:
    base = dict(service="mssante", operation="smtp.submit", direction=Direction.FROM_DUI, outcome=Outcome.ACCEPTED)
    journal.record_many(
        [
            Exchange(**base, id="a1", session_id="s-alpha"),  # type: ignore[arg-type]
            Exchange(**base, id="n1"),  # type: ignore[arg-type]
            Exchange(**base, id="b1", session_id="s-beta"),  # type: ignore[arg-type]
            Exchange(**base, id="a2", session_id="s-alpha"),  # type: ignore[arg-type]
        ]
    )
    assert [(e.id, e.session_id) for e in journal.query()] == [
        ("a1", "s-alpha"),
        ("n1", None),
        ("b1", "s-beta"),
        ("a2", "s-alpha"),
    ]
    assert [e.id for e in journal.query(JournalFilter(session="s-alpha"))] == ["a1", "a2"]
    assert journal.count(JournalFilter(session="s-beta")) == 1
    assert journal.count(JournalFilter(session="s-gamma")) == 0


def test_the_book_attributes_an_exchange_by_its_caller_first(journal: SQLiteJournal) -> None:
    journal.create_session(session("s-alpha", "Alpha", ALPHA))
    journal.create_session(session("s-beta", "Beta", BETA))
    book = SessionBook(journal)
    assert book.attribute(actor="DUI@beta.mssante.fr", essms="010000001", person=None) == "s-beta"
    assert book.attribute(actor="dui-alpha", essms="020000002", person=None) == "s-alpha"  # a PSC client id
    assert book.attribute(actor="x", essms=None, person=None, client_id="dui-alpha") == "s-alpha"
    assert book.attribute(actor="CN=autre", essms="020000002", person="111111111111111") == "s-beta"
    assert book.attribute(actor=None, essms="999999999", person="111111111111111") == "s-alpha"
    assert book.attribute(actor="inconnu@x.fr", essms="999999999", person="333333333333333") is None
    assert book.session_of("essms", "010000001") == "s-alpha"
    assert book.session_of("mailbox", None) is None


def test_a_session_created_elsewhere_is_seen_after_the_ttl(url: str) -> None:
    """Two journals on one database stand for two processes: the book re-reads the registry once ``ttl`` passed
    and its revision changed; what it creates or closes itself it sees at once."""
    mine, other = open_journal(url), open_journal(url)
    try:
        patient = SessionBook(mine, ttl=3600)
        eager = SessionBook(mine, ttl=0)
        assert patient.session_of("essms", "010000001") is None
        other.create_session(session("s-alpha", "Alpha", ALPHA))
        assert patient.session_of("essms", "010000001") is None  # within its ttl: the cached map
        assert eager.session_of("essms", "010000001") == "s-alpha"
        created = patient.create("Beta", BETA)  # through the book: seen at once
        assert patient.session_of("essms", "020000002") == created.id
        assert patient.session_of("essms", "010000001") == "s-alpha"
        patient.close(created.id)
        assert patient.session_of("essms", "020000002") is None
        other.close_session("s-alpha")
        assert eager.session_of("essms", "010000001") is None
    finally:
        mine.close()
        other.close()


def test_the_cross_session_refusal(journal: SQLiteJournal) -> None:
    journal.create_session(session("s-alpha", "Alpha", ALPHA))
    journal.create_session(session("s-beta", "Beta", BETA))
    book = SessionBook(journal)
    assert book.cross_session(("essms", "010000001"), ("patient", "111111111111111")) is None  # same session
    assert book.cross_session(("essms", "030000003"), ("patient", "222222222222222")) is None  # caller in none
    assert book.cross_session(("essms", "010000001"), ("patient", "333333333333333")) is None  # owner in none
    assert book.cross_session(("essms", "010000001"), ("patient", "222222222222222")) == (
        "patient (INS) 222222222222222 appartient à une autre session de test que ESSMS 010000001 (session "
        "s-alpha) : ses données ne lui sont pas accessibles / the data belongs to another test session"
    )


def test_a_journal_without_sessions_gives_an_empty_book() -> None:
    class Bare:
        def record(self, exchange: Exchange) -> Exchange:
            return exchange

    book = SessionBook(Bare())
    assert book.store is None
    assert book.attribute(actor="dui@alpha.mssante.fr", essms="010000001", person=None) is None
    with pytest.raises(ValueError, match="^ce journal ne tient pas de sessions / this journal keeps no sessions$"):
        book.create("Alpha", ALPHA)


def test_a_layout_1_sqlite_journal_gets_its_session_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    SQLiteJournal(path).close()
    raw = sqlite3.connect(path)
    raw.execute("DROP INDEX ix_exchanges_session")
    raw.execute("ALTER TABLE exchanges DROP COLUMN session_id")
    raw.execute(
        "INSERT INTO exchanges (id, ts, month, service, operation, direction, outcome) VALUES "
        "('old', '2026-05-10T08:00:00+00:00', '2026-05', 'mssante', 'smtp.submit', 'from_dui', 'accepted')"
    )
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    reopened = SQLiteJournal(path)
    reopened.record(
        Exchange(
            service="dmp",
            operation="iti18.find",
            direction=Direction.FROM_DUI,
            outcome=Outcome.ACCEPTED,
            id="new",
            session_id="s1",
        )
    )
    assert [(e.id, e.session_id) for e in reopened.query()] == [("old", None), ("new", "s1")]
    reopened.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2


def test_the_database_itself_refuses_a_second_open_holder(tmp_path: Path) -> None:
    """The unique index on open members holds even for a writer that skipped the check."""
    journal = SQLiteJournal(tmp_path / "j.sqlite")
    journal.create_session(session("s-alpha", "Alpha", ALPHA))
    journal.close()
    raw = sqlite3.connect(tmp_path / "j.sqlite")
    raw.execute("INSERT INTO sessions VALUES ('s-x', 'X', 'X', '2026-05-10T08:00:00+00:00', NULL, 9)")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE constraint failed: session_members.kind"):
        raw.execute("INSERT INTO session_members VALUES ('s-x', 'essms', '010000001', 1)")
    raw.execute("INSERT INTO session_members VALUES ('s-x', 'essms', '010000001', 0)")  # inactive: allowed
    raw.close()


def test_the_simulator_context_stamps_each_exchange_with_its_session(journal: SQLiteJournal) -> None:
    from harness.host.simulator import FaultBoard, RunState, SimulatorContext

    journal.create_session(session("s-alpha", "Alpha", ALPHA))
    journal.create_session(session("s-beta", "Beta", BETA))
    ctx = SimulatorContext(
        name="mssante",
        journal=journal,
        pki=None,  # type: ignore[arg-type]
        bind_host="127.0.0.1",
        ports={},
        http_base="",
        faults=FaultBoard(),
        run=RunState("r1"),
        testdata=None,  # type: ignore[arg-type]
    )
    ctx.record("smtp.submit", Outcome.ACCEPTED, actor="dui@alpha.mssante.fr")
    ctx.record("smtp.submit", Outcome.ACCEPTED, essms="020000002", person="111111111111111")
    ctx.record("token", Outcome.ACCEPTED, actor="admin", details={"client_id": "dui-alpha"})
    ctx.record("smtp.submit", Outcome.REJECTED, actor="inconnu@x.fr")
    ctx.commit(ctx.exchange("iti18", Outcome.ACCEPTED, person="222222222222222"))
    ctx.record_many([ctx.exchange("fhir.create", Outcome.ACCEPTED, essms="010000001")])
    assert [e.session_id for e in journal.query()] == ["s-alpha", "s-beta", "s-alpha", None, "s-beta", "s-alpha"]
    assert ctx.session_of("patient", "222222222222222") == "s-beta"
    assert ctx.cross_session(("essms", "020000002"), ("essms", "020000002")) is None
