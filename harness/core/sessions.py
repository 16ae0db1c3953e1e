"""Sessions of a shared platform (issue 19 item 4): one DUI under test with its test identities.

A :class:`Session` is one DUI under test and its *members*: the ESSMS it acts for (FINESS), its MSSanté mailboxes,
the patients it handles (INS) and its Pro Santé Connect client ids. A member belongs to at most one open session
(the journal refuses a session claiming a member another open session holds, :class:`SessionConflictError`, and its
database holds a unique index on the open members): so an exchange's identities name at most one session, and
each exchange is attributed to it (``Exchange.session_id``, :meth:`SessionBook.attribute`).

The registry lives in the journal's database (both backends implement :class:`SessionStore`); a serving process
reads it through a :class:`SessionBook`, a cache of the open sessions' members refreshed when the registry's
revision changes (checked at most every ``ttl`` seconds: a session created by another process is seen within that
delay; one created through the same book at once).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from harness.core.messages import bilingual

#: Kinds of member, in the order :meth:`SessionBook.attribute` tries an exchange's identities.
KINDS = ("client", "mailbox", "essms", "patient")
_KIND_WORDS = {"essms": "ESSMS", "mailbox": "boîte aux lettres", "patient": "patient (INS)", "client": "client PSC"}


def normalise(kind: str, value: str) -> str:
    """A member's value as stored and looked up: trimmed; a mailbox address in lower case (RFC 5321 local parts
    are case-sensitive in theory, MSSanté addresses are not in practice)."""
    if kind not in KINDS:
        raise ValueError(bilingual(f"type de membre inconnu « {kind} »", f"unknown member kind (one of {KINDS})"))
    value = value.strip()
    return value.lower() if kind == "mailbox" else value


@dataclass(frozen=True, slots=True)
class Members:
    """What a session claims: FINESS, mailbox addresses, INS, PSC client ids."""

    essms: tuple[str, ...] = ()
    mailboxes: tuple[str, ...] = ()
    patients: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()

    def pairs(self) -> list[tuple[str, str]]:
        """``(kind, value)`` of every member, normalised, without duplicates, sorted."""
        found = {
            (kind, normalise(kind, value))
            for kind, values in (
                ("essms", self.essms),
                ("mailbox", self.mailboxes),
                ("patient", self.patients),
                ("client", self.clients),
            )
            for value in values
            if value and value.strip()
        }
        return sorted(found)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Members:
        by_kind: dict[str, list[str]] = {kind: [] for kind in KINDS}
        for kind, value in sorted(pairs):
            by_kind[kind].append(value)
        return cls(
            essms=tuple(by_kind["essms"]),
            mailboxes=tuple(by_kind["mailbox"]),
            patients=tuple(by_kind["patient"]),
            clients=tuple(by_kind["client"]),
        )

    def __len__(self) -> int:
        return len(self.pairs())


@dataclass(frozen=True, slots=True)
class Session:
    """One DUI under test on the platform, from its creation to its closing."""

    id: str
    label: str
    dui: str
    created: datetime
    members: Members = field(default_factory=Members)
    closed: datetime | None = None

    @property
    def open(self) -> bool:
        return self.closed is None

    def summary(self) -> dict[str, Any]:
        """JSON-friendly view (CLI, reports)."""
        return {
            "id": self.id,
            "label": self.label,
            "dui": self.dui,
            "created": self.created.isoformat(),
            "closed": None if self.closed is None else self.closed.isoformat(),
            "essms": list(self.members.essms),
            "mailboxes": list(self.members.mailboxes),
            "patients": list(self.members.patients),
            "clients": list(self.members.clients),
        }


def new_session(dui: str, members: Members, *, label: str = "", now: datetime | None = None) -> Session:
    """A session to create (:meth:`SessionStore.create_session`): a fresh id, the label defaulting to the DUI."""
    if not dui.strip():
        raise ValueError(bilingual("une session nomme son DUI", "a session names its DUI"))
    if not members.pairs():
        raise ValueError(bilingual("une session a au moins un membre", "a session has at least one member"))
    return Session(
        id=uuid.uuid4().hex[:12],
        label=label.strip() or dui.strip(),
        dui=dui.strip(),
        created=now or datetime.now(UTC),
        members=Members.from_pairs(members.pairs()),
    )


def sessions_from_rows(
    rows: Iterable[tuple[str, str, str, Any, Any]],
    member_rows: Iterable[tuple[str, str, str]],
    to_time: Callable[[Any], datetime],
) -> list[Session]:
    """Sessions as a journal reads them back: ``(id, label, dui, created, closed)`` rows and ``(session_id, kind,
    value)`` member rows; ``to_time`` turns the backend's stored time into an aware UTC datetime."""
    members: dict[str, list[tuple[str, str]]] = {}
    for sid, kind, value in member_rows:
        members.setdefault(sid, []).append((kind, value))
    return [
        Session(
            id=sid,
            label=label,
            dui=dui,
            created=to_time(created),
            closed=None if closed is None else to_time(closed),
            members=Members.from_pairs(members.get(sid, [])),
        )
        for sid, label, dui, created, closed in rows
    ]


class SessionConflictError(ValueError):
    """A session claims members another open session holds."""


class UnknownSessionError(KeyError):
    """No session has this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def conflict_message(held: Iterable[tuple[str, str, Session]]) -> str:
    """The refusal of a session whose members (``kind, value``) other open sessions hold, naming each holder and
    how to free its members."""
    by_session: dict[str, tuple[Session, list[str]]] = {}
    for kind, value, holder in sorted(held, key=lambda h: (h[2].id, h[0], h[1])):
        by_session.setdefault(holder.id, (holder, []))[1].append(f"{_KIND_WORDS[kind]} {value}")
    parts = [
        f"la session « {holder.label} » ({holder.id}, DUI {holder.dui}) détient déjà {', '.join(names)}"
        for holder, names in by_session.values()
    ]
    closes = " ; ".join(f"socle-harness session close {sid}" for sid in by_session)
    return bilingual(
        "session refusée : " + " ; ".join(parts) + f". Fermez-la ({closes}) ou donnez à ce DUI d'autres données de "
        "test (un membre n'appartient qu'à une session ouverte)",
        "session refused: a member belongs to one open session at most",
    )


def unknown_message(session_id: str) -> str:
    return bilingual(
        f"session inconnue « {session_id} » (socle-harness session list)", f"unknown session {session_id!r}"
    )


def require_known(journal: Any, session_id: str | None) -> None:
    """Raise :class:`UnknownSessionError` when ``session_id`` names no session of ``journal`` (a filter by a
    mistyped id would otherwise show an empty journal)."""
    if session_id is None or not isinstance(journal, SessionStore):
        return
    if all(s.id != session_id for s in journal.sessions()):
        raise UnknownSessionError(unknown_message(session_id))


@runtime_checkable
class SessionStore(Protocol):
    """The session registry a journal keeps in its database (SQLite and PostgreSQL journals)."""

    def create_session(self, session: Session) -> Session:
        """Record an open session and claim its members, or raise :class:`SessionConflictError` (nothing
        written) when another open session holds one of them."""

    def close_session(self, session_id: str, at: datetime | None = None) -> Session:
        """Close a session, releasing its members (a closed session stays closed: closing it again changes
        nothing); :class:`UnknownSessionError` when no session has this id."""

    def sessions(self, *, open_only: bool = False) -> list[Session]:
        """Every session (or the open ones), oldest first."""

    def sessions_revision(self) -> int:
        """A number that changes whenever a session is created or closed (cheap: one indexed read)."""


class SessionBook:
    """A process's view of the open sessions of a journal: which session a member belongs to, by dictionary lookup.

    The member map is reloaded when the registry's revision changed, checked at most every ``ttl`` seconds
    (sessions created by other processes: ``socle-harness session create``, another ``serve``); creations and
    closings made through this book reload it at once. A journal that keeps no sessions gives an empty book."""

    def __init__(self, journal: Any, *, ttl: float = 0.5) -> None:
        self._store: SessionStore | None = journal if isinstance(journal, SessionStore) else None
        self._ttl = ttl
        self._lock = threading.Lock()
        self._revision: int | None = None
        self._checked = float("-inf")
        self._members: dict[tuple[str, str], str] = {}

    @property
    def store(self) -> SessionStore | None:
        return self._store

    def create(self, dui: str, members: Members, *, label: str = "") -> Session:
        if self._store is None:
            raise ValueError(bilingual("ce journal ne tient pas de sessions", "this journal keeps no sessions"))
        created = self._store.create_session(new_session(dui, members, label=label))
        self.invalidate()
        return created

    def close(self, session_id: str) -> Session:
        if self._store is None:
            raise UnknownSessionError(unknown_message(session_id))
        closed = self._store.close_session(session_id)
        self.invalidate()
        return closed

    def open_sessions(self) -> list[Session]:
        """The open sessions, read from the registry (not the cache)."""
        return [] if self._store is None else self._store.sessions(open_only=True)

    def invalidate(self) -> None:
        with self._lock:
            self._checked = float("-inf")
            self._revision = None

    def _current(self) -> Mapping[tuple[str, str], str]:
        if self._store is None:
            return self._members
        with self._lock:
            now = time.monotonic()
            if now - self._checked < self._ttl:
                return self._members
            revision = self._store.sessions_revision()
            if revision != self._revision:
                self._members = {
                    pair: session.id
                    for session in self._store.sessions(open_only=True)
                    for pair in session.members.pairs()
                }
                self._revision = revision
            self._checked = now
            return self._members

    def session_of(self, kind: str, value: str | None) -> str | None:
        """The open session holding the member ``(kind, value)``, or ``None``."""
        if not value:
            return None
        return self._current().get((kind, normalise(kind, value)))

    def attribute(
        self, *, actor: str | None, essms: str | None, person: str | None, client_id: Any = None
    ) -> str | None:
        """The session of an exchange from its identities, the caller's first: the PSC client id, the actor (a
        mailbox or a client id), the ESSMS, then the person (a patient's INS)."""
        members = self._current()
        if not members:
            return None
        candidates = (
            ("client", client_id if isinstance(client_id, str) else None),
            ("client", actor),
            ("mailbox", actor),
            ("essms", essms),
            ("patient", person),
        )
        for kind, value in candidates:
            if value:
                found = members.get((kind, normalise(kind, value)))
                if found is not None:
                    return found
        return None

    def cross_session(self, caller: tuple[str, str | None], owner: tuple[str, str | None]) -> str | None:
        """The refusal when ``caller`` (``(kind, value)``, who authenticated) and ``owner`` (whose data is asked
        for) belong to two different open sessions; ``None`` when the read is allowed (same session, or either of
        them in no session)."""
        mine = self.session_of(*caller)
        theirs = self.session_of(*owner)
        if mine is None or theirs is None or mine == theirs:
            return None
        return bilingual(
            f"{_KIND_WORDS[owner[0]]} {owner[1]} appartient à une autre session de test que "
            f"{_KIND_WORDS[caller[0]]} {caller[1]} (session {mine}) : ses données ne lui sont pas accessibles",
            "the data belongs to another test session",
        )
