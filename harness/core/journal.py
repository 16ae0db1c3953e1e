"""The journal: the single record of every exchange any simulator sees.

One :class:`Exchange` per exchange (an SMTP submission, an ITI-41 request, an INSi call...). Simulators
acknowledge an exchange to the DUI only after :meth:`Journal.record` has returned, i.e. after the event is
committed. Payloads are kept as evidence, deduplicated by SHA-256 digest.

A journal is opened by URL with :func:`open_journal`. ``sqlite:///path`` (WAL mode) is built in; the other
backend, ``postgresql://`` (:mod:`harness.core.journal_pg`), implements the :class:`Journal` protocol and is
registered in ``_BACKENDS``: no simulator changes with the backend.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse
from zoneinfo import ZoneInfo

from harness.core.sessions import (
    Members,
    Session,
    SessionConflictError,
    UnknownSessionError,
    conflict_message,
    sessions_from_rows,
    unknown_message,
)

PARIS = ZoneInfo("Europe/Paris")  # the month of an exchange is a French calendar month (Exchange.month)


class Direction(StrEnum):
    """Who initiated the exchange, seen from the DUI under test."""

    FROM_DUI = "from_dui"  # the DUI called a socle service (SMTP submission, ITI-41...)
    TO_DUI = "to_dui"  # the socle service (or the harness playing a partner) reached the DUI


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One exchange observed by a simulator.

    ``operation`` is ``<protocol>.<transaction>`` (``smtp.submit``, ``iti41.provide_and_register``...).
    ``essms`` is the FINESS géographique of the establishment the DUI acted for, ``person`` the INS (15 digits)
    or a local identifier when no INS is known. ``details`` carries service-specific facts (recipients,
    findings...) as JSON-serialisable data. ``details["fact"]``, when present, is the business fact the exchange
    carries, with the producer's own dates: ``{"key", "date", "start", "end", "status"}`` (strings or null);
    the SQLite journal mirrors it into indexed columns (``fact_*``) for analytics (:mod:`harness.analytics.indicators`).
    ``session_id`` is the open test session one of its identities belongs to (:mod:`harness.core.sessions`).
    ``attachments`` are further evidence bodies committed with the exchange, in the same transaction, stored once
    per digest like ``payload`` (an answer the simulator sent: ``details`` names it by :func:`payload_digest`, e.g.
    ``details["response_digest"]``, and :meth:`Journal.payload` reads it back); they are not read back with the row.
    """

    service: str
    operation: str
    direction: Direction
    outcome: Outcome
    actor: str | None = None
    essms: str | None = None
    person: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    payload: bytes | None = field(default=None, repr=False)
    payload_type: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    scenario_id: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))
    digest: str | None = None
    session_id: str | None = None  # the test session of its identities (harness.core.sessions), None outside any
    attachments: tuple[bytes, ...] = field(default=(), repr=False, compare=False)

    @property
    def month(self) -> str:
        """The month of the exchange in French time (Europe/Paris): the months of the ESMS numérique indicators
        are calendar months in France (a message sent on 1 April at 00:30 in Paris is an April message)."""
        ts = self.ts
        if ts.tzinfo is UTC and (ts.day < 28 or ts.hour < 22):
            # Europe/Paris has always been UTC+0 to UTC+2 (LMT, WET, CET, CEST, WEMT): out of the last two hours of
            # a UTC month, its month is the UTC one — what the conversion below gives, without the zone lookup
            return f"{ts.year}-{ts.month:02d}"
        return ts.astimezone(PARIS).strftime("%Y-%m")

    def summary(self) -> dict[str, Any]:
        """JSON-friendly view without the payload bytes (for reports and the CLI)."""
        data = asdict(self)
        data.pop("payload")
        data.pop("attachments")
        data["ts"] = self.ts.isoformat()
        data["month"] = self.month
        data["direction"] = str(self.direction)
        data["outcome"] = str(self.outcome)
        return data


@dataclass(frozen=True, slots=True)
class JournalFilter:
    """Selection of exchanges; every field left ``None`` matches everything."""

    service: str | None = None
    services: tuple[str, ...] | None = None  # any of these services (one query where it would take one per service)
    operation: str | None = None
    outcome: Outcome | None = None
    essms: str | None = None
    person: str | None = None
    month: str | None = None  # YYYY-MM
    run_id: str | None = None
    scenario_id: str | None = None
    session: str | None = None  # Exchange.session_id
    since_seq: int | None = None  # exclusive
    until_seq: int | None = None  # inclusive (with since_seq: read what was journaled between two last_seq())
    ts_from: datetime | None = None  # recording time, inclusive (observe-only mode windows)
    ts_to: datetime | None = None  # exclusive
    limit: int | None = None

    def conditions(self) -> list[tuple[str, str, Any]]:
        """The filter as ``(column, operator, value)`` conditions, the same for every backend; each backend renders
        them in its own SQL (placeholder, text and time representation). Operator ``in``: the value is a tuple."""
        found: list[tuple[str, str, Any]] = []
        for column in ("service", "operation", "essms", "person", "month", "run_id", "scenario_id"):
            value = getattr(self, column)
            if value is not None:
                found.append((column, "=", value))
        if self.services is not None:
            found.append(("service", "in", tuple(self.services)))
        for column, operator, value in (
            ("session_id", "=", self.session),
            ("outcome", "=", None if self.outcome is None else str(self.outcome)),
            ("seq", ">", self.since_seq),
            ("seq", "<=", self.until_seq),
            ("ts", ">=", self.ts_from),
            ("ts", "<", self.ts_to),
        ):
            if value is not None:
                found.append((column, operator, value))
        return found


class Journal(Protocol):
    """What every journal backend provides. All methods are thread-safe."""

    url: str

    def record(self, exchange: Exchange) -> Exchange:
        """Commit one exchange (and its payload) durably; return it with ``digest`` set."""

    def record_many(self, exchanges: Sequence[Exchange]) -> list[Exchange]:
        """Commit several exchanges atomically (one transaction); return them with ``digest`` set."""

    def query(self, flt: JournalFilter = ...) -> list[Exchange]:
        """Exchanges in recording order (payloads loaded lazily: use :meth:`payload`)."""

    def count(self, flt: JournalFilter = ...) -> int: ...

    def payload(self, digest: str) -> bytes | None: ...

    def put_payload(self, data: bytes) -> str:
        """Store ``data`` as evidence without an exchange (a body that shared simulator state refers to); return
        its SHA-256 digest, which :meth:`payload` reads back (stored once per digest)."""

    def last_seq(self) -> int:
        """Sequence number of the newest exchange (0 when empty)."""

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS exchanges (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    ts            TEXT NOT NULL,
    month         TEXT NOT NULL,
    service       TEXT NOT NULL,
    operation     TEXT NOT NULL,
    direction     TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    actor         TEXT,
    essms         TEXT,
    person        TEXT,
    error_code    TEXT,
    error_message TEXT,
    digest        TEXT,
    payload_type  TEXT,
    details       TEXT NOT NULL DEFAULT '{}',
    run_id        TEXT,
    scenario_id   TEXT,
    fact_key      TEXT,
    fact_date     TEXT,
    fact_start    TEXT,
    fact_end      TEXT,
    fact_status   TEXT,
    message_id    TEXT,
    session_id    TEXT
);
CREATE TABLE IF NOT EXISTS evidence (
    digest TEXT PRIMARY KEY,
    size   INTEGER NOT NULL,
    data   BLOB NOT NULL
);
-- The session registry (harness.core.sessions): revision changes with every creation and closing.
CREATE TABLE IF NOT EXISTS sessions (
    id       TEXT PRIMARY KEY,
    label    TEXT NOT NULL,
    dui      TEXT NOT NULL,
    created  TEXT NOT NULL,
    closed   TEXT,
    revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS session_members (
    session_id TEXT NOT NULL REFERENCES sessions (id),
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (session_id, kind, value)
);
-- A member belongs to at most one open session.
CREATE UNIQUE INDEX IF NOT EXISTS ux_session_members_open ON session_members (kind, value) WHERE active = 1;
CREATE INDEX IF NOT EXISTS ix_sessions_revision ON sessions (revision);
"""

#: ``details["fact"]`` keys mirrored into the ``fact_*`` columns (see :class:`Exchange`).
FACT_KEYS = ("key", "date", "start", "end", "status")
#: ``details["message_id"]`` (an e-mail's Message-ID, RFC 5322) is mirrored into the indexed ``message_id`` column.
MESSAGE_ID = "message_id"
#: ``details["response_digest"]``: the answer the simulator sent, kept as evidence (an attachment of the exchange,
#: stored once per digest: the same answer twice costs one body), read back with :func:`response_of`.
RESPONSE_DIGEST = "response_digest"

_LAYOUT = 2  # PRAGMA user_version of the current journal layout (1: month in French time; 2: session_id)

_INDEXES = """
-- Each index costs a page write per exchange journaled (issue 18: WAL pages per exchange); each one here has a
-- reader, named. Journal filters: by run (steps), by person (RNIV status, CLI), by service and operation.
-- A person's exchanges, per run, establishment and service: the RNIV identity status a simulator reads for each
-- message (harness.fields.identity_status) is a lookup of a few rows whatever the size of the run.
CREATE INDEX IF NOT EXISTS ix_exchanges_identity ON exchanges (person, run_id, essms, service, outcome);
CREATE INDEX IF NOT EXISTS ix_exchanges_run ON exchanges (run_id, scenario_id);
-- Exchanges of one kind per month and establishment (the counted indicators of harness/analytics/indicators.py,
-- index-only in (month, essms) order); also the journal filters by service and operation.
CREATE INDEX IF NOT EXISTS ix_exchanges_counts ON exchanges (service, operation, outcome, month, essms);
-- Usage indicators (harness/analytics/indicators.py): persons per establishment and month for an MSSanté or DMP
-- exchange kind, read index-only in (essms, person) order; the other services' exchanges are not in it.
CREATE INDEX IF NOT EXISTS ix_exchanges_persons ON exchanges (service, operation, outcome, essms, person, month)
    WHERE service IN ('dmp', 'mssante');
-- MSSanté messages by Message-ID per establishment (harness/analytics/indicators.py counts a message journaled
-- twice, e.g. a retried submission, once), index-only.
CREATE INDEX IF NOT EXISTS ix_exchanges_message_ids ON exchanges
    (service, outcome, essms, message_id, month, operation)
    WHERE service = 'mssante';
-- Business facts (details.fact, e.g. the DUI's séjours, projets, events): versions of one fact by key, and
-- every fact of a person in (essms, person) order, both index-only.
CREATE INDEX IF NOT EXISTS ix_exchanges_fact_versions ON exchanges
    (service, outcome, operation, essms, person, fact_key, fact_date, seq, fact_start, fact_end, fact_status)
    WHERE fact_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS ix_exchanges_fact_person ON exchanges
    (service, outcome, essms, person, operation, fact_date, fact_start, fact_status, fact_key)
    WHERE fact_key IS NOT NULL;
-- A session's exchanges (journal --session, indicators --session); partial: an exchange outside any session (the
-- single-user default) writes no page of it.
CREATE INDEX IF NOT EXISTS ix_exchanges_session ON exchanges (session_id, seq) WHERE session_id IS NOT NULL;
"""
#: Indexes of earlier layouts, dropped on open: no query read them (month first, service and month) or a narrower
#: index replaced them (person and month: ix_exchanges_identity; usage of every service: ix_exchanges_persons).
_DROPPED_INDEXES = (
    "ix_exchanges_messages",
    "ix_exchanges_person",
    "ix_exchanges_month_essms",
    "ix_exchanges_service_month",
    "ix_exchanges_usage",
)

_COLUMNS = (
    "seq, id, ts, service, operation, direction, outcome, actor, essms, person, error_code, "
    "error_message, digest, payload_type, details, run_id, scenario_id, session_id"
)


class SQLiteJournal:
    """The embedded journal: one SQLite file in WAL mode.

    One connection guarded by a lock serves every thread (simulators run on an asyncio loop, steps on the
    pytest thread). ``synchronous=NORMAL`` in WAL mode survives a crash of the harness process; pass
    ``durable=True`` (``?synchronous=full`` in the URL) to survive a power loss too.
    """

    def __init__(self, path: str | Path, *, durable: bool = False) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # the connection: one statement, one transaction at a time
        self._pending_lock = threading.Lock()  # the batches waiting for the next group commit
        self._pending: list[_Batch] = []
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._db.executescript(_INDEXES)

    def _migrate(self) -> None:
        """Bring an older journal to the current layout: ``fact_*`` columns (filled from ``details.fact``),
        from layout 1 on ``month`` in French time (it was the UTC month), from layout 2 on ``session_id``."""
        self._migrate_facts()
        self._migrate_message_ids()
        layout = self._db.execute("PRAGMA user_version").fetchone()[0]
        if layout < 1:
            self._migrate_months()
        if layout < 2:
            with self._lock:
                present = {row[1] for row in self._db.execute("PRAGMA table_info(exchanges)")}
                if "session_id" not in present:  # one statement: no rewrite of the rows (a NULL default)
                    self._db.execute("ALTER TABLE exchanges ADD COLUMN session_id TEXT")
                self._db.execute(f"PRAGMA user_version = {_LAYOUT}")

    def _migrate_months(self) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # only the last hours of a UTC month can fall in the next month in Paris (UTC+1 / UTC+2)
                candidates = self._db.execute(
                    "SELECT seq, ts, month FROM exchanges WHERE substr(ts, 9, 2) >= '28' AND substr(ts, 12, 2) >= '22'"
                ).fetchall()
                changes = [
                    (m, seq)
                    for seq, ts, month in candidates
                    if (m := datetime.fromisoformat(ts).astimezone(PARIS).strftime("%Y-%m")) != month
                ]
                self._db.executemany("UPDATE exchanges SET month = ? WHERE seq = ?", changes)
                self._db.execute("PRAGMA user_version = 1")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _migrate_facts(self) -> None:
        present = {row[1] for row in self._db.execute("PRAGMA table_info(exchanges)")}
        missing = [k for k in FACT_KEYS if f"fact_{k}" not in present]
        if not missing:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for key in missing:
                    self._db.execute(f"ALTER TABLE exchanges ADD COLUMN fact_{key} TEXT")
                sets = ", ".join(f"fact_{k} = json_extract(details, '$.fact.{k}')" for k in FACT_KEYS)
                self._db.execute(f"UPDATE exchanges SET {sets} WHERE json_type(details, '$.fact') = 'object'")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _migrate_message_ids(self) -> None:
        """Journals from before the ``message_id`` column: add it, filled from ``details.message_id``; drop the
        expression index that preceded it (SQLite 3.40 re-reads ``details`` for every row of such an index)."""
        present = {row[1] for row in self._db.execute("PRAGMA table_info(exchanges)")}
        with self._lock:
            for name in _DROPPED_INDEXES:
                self._db.execute(f"DROP INDEX IF EXISTS {name}")
            if MESSAGE_ID in present:
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(f"ALTER TABLE exchanges ADD COLUMN {MESSAGE_ID} TEXT")
                self._db.execute(
                    f"UPDATE exchanges SET {MESSAGE_ID} = json_extract(details, '$.message_id') "
                    "WHERE json_type(details, '$.message_id') = 'text'"
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def record(self, exchange: Exchange) -> Exchange:
        return self.record_many([exchange])[0]

    def record_many(self, exchanges: Sequence[Exchange]) -> list[Exchange]:
        """Commit several exchanges in one transaction (all or none): a FHIR transaction's entries, a bulk load.

        Group commit: the calls that arrive while another thread is committing wait for it, then the first of them
        writes all of theirs in one transaction (one WAL sync for the group); each call returns only once its own
        exchanges are committed, and a call that fails (a duplicate id...) fails alone."""
        stamped = [replace(e, digest=payload_digest(e.payload)) if e.payload is not None else e for e in exchanges]
        batch = _Batch(stamped)
        with self._pending_lock:
            self._pending.append(batch)
        with self._lock:
            if not batch.done:  # nobody took it: this thread commits everything pending, its own batch included
                try:
                    self._commit_pending()
                except BaseException:
                    with self._pending_lock:  # the database refused the transaction: this call fails, and its
                        # exchanges must not be committed later by another thread's group
                        self._pending = [b for b in self._pending if b is not batch]
                    raise
        if batch.error is not None:
            raise batch.error
        return stamped

    def _commit_pending(self) -> None:
        """Write every pending batch (under ``_lock``): one transaction for all; if it fails, one per batch."""
        self._db.execute("BEGIN IMMEDIATE")  # taken first: the batches that queue meanwhile join this group
        with self._pending_lock:
            group, self._pending = self._pending, []
        try:
            for batch in group:
                self._insert(batch.exchanges)
            self._db.execute("COMMIT")
        except Exception as exc:
            self._rollback()
            if len(group) == 1:
                group[0].error = exc
            else:  # find the culprit(s): each batch alone, all or none
                for batch in group:
                    try:
                        self._db.execute("BEGIN IMMEDIATE")
                        self._insert(batch.exchanges)
                        self._db.execute("COMMIT")
                    except Exception as alone:
                        self._rollback()
                        batch.error = alone
        except BaseException as exc:  # interrupted: nothing of the group is committed
            self._rollback()
            for batch in group:
                batch.error = exc
            raise
        finally:
            for batch in group:
                batch.done = True

    def _insert(self, stamped: Sequence[Exchange]) -> None:
        evidence = evidence_of(stamped)
        if evidence:
            self._db.executemany(
                "INSERT OR IGNORE INTO evidence (digest, size, data) VALUES (?, ?, ?)",
                [(d, len(p), p) for d, p in evidence.items()],
            )
        self._db.executemany(_INSERT, [_row(e) for e in stamped])

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _where(self, flt: JournalFilter) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, operator, value in flt.conditions():
            if operator == "in":
                clauses.append(f"{column} IN ({', '.join('?' * len(value))})")
                params.extend(value)
            else:
                clauses.append(f"{column} {operator} ?")
                # ts is stored as UTC ISO 8601 text: the order of the text is the time order
                params.append(value.astimezone(UTC).isoformat() if column == "ts" else value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def query(self, flt: JournalFilter = JournalFilter()) -> list[Exchange]:
        where, params = self._where(flt)
        sql = f"SELECT {_COLUMNS} FROM exchanges{where} ORDER BY seq"
        if flt.limit is not None:
            sql += f" LIMIT {int(flt.limit)}"
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [_row_to_exchange(row) for row in rows]

    def count(self, flt: JournalFilter = JournalFilter()) -> int:
        where, params = self._where(flt)
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM exchanges{where}", params).fetchone()[0])

    def payload(self, digest: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM evidence WHERE digest = ?", (digest,)).fetchone()
        return bytes(row[0]) if row else None

    def put_payload(self, data: bytes) -> str:
        digest = payload_digest(data)
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO evidence (digest, size, data) VALUES (?, ?, ?)", (digest, len(data), data)
            )
        return digest

    def last_seq(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM exchanges").fetchone()[0])

    # ------------------------------------------------------------------ sessions (harness.core.sessions)
    def create_session(self, session: Session) -> Session:
        pairs = session.members.pairs()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                held = self._held(pairs)
                if held:
                    raise SessionConflictError(conflict_message(held))
                self._db.execute(
                    "INSERT INTO sessions (id, label, dui, created, closed, revision) VALUES (?, ?, ?, ?, NULL, "
                    "(SELECT COALESCE(MAX(revision), 0) + 1 FROM sessions))",
                    (session.id, session.label, session.dui, session.created.astimezone(UTC).isoformat()),
                )
                self._db.executemany(
                    "INSERT INTO session_members (session_id, kind, value, active) VALUES (?, ?, ?, 1)",
                    [(session.id, kind, value) for kind, value in pairs],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return replace(session, members=Members.from_pairs(pairs))

    def _held(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str, Session]]:
        """The members of ``pairs`` an open session holds, with their session (under ``_lock``)."""
        wanted = set(pairs)
        rows = self._db.execute("SELECT session_id, kind, value FROM session_members WHERE active = 1").fetchall()
        hits = [(kind, value, sid) for sid, kind, value in rows if (kind, value) in wanted]
        holders = {s.id: s for s in self._read_sessions({sid for _, _, sid in hits})}
        return [(kind, value, holders[sid]) for kind, value, sid in hits]

    def _read_sessions(self, ids: set[str] | None = None, *, open_only: bool = False) -> list[Session]:
        sql = "SELECT id, label, dui, created, closed FROM sessions"
        if open_only:
            sql += " WHERE closed IS NULL"
        rows = [r for r in self._db.execute(sql + " ORDER BY created, id").fetchall() if ids is None or r[0] in ids]
        members = self._db.execute("SELECT session_id, kind, value FROM session_members").fetchall()
        return sessions_from_rows(rows, members, datetime.fromisoformat)

    def close_session(self, session_id: str, at: datetime | None = None) -> Session:
        when = (at or datetime.now(UTC)).astimezone(UTC).isoformat()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                found = self._db.execute("SELECT closed FROM sessions WHERE id = ?", (session_id,)).fetchone()
                if found is None:
                    raise UnknownSessionError(unknown_message(session_id))
                if found[0] is None:
                    self._db.execute(
                        "UPDATE sessions SET closed = ?, revision = (SELECT MAX(revision) + 1 FROM sessions) "
                        "WHERE id = ?",
                        (when, session_id),
                    )
                    self._db.execute("UPDATE session_members SET active = 0 WHERE session_id = ?", (session_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            return self._read_sessions({session_id})[0]

    def sessions(self, *, open_only: bool = False) -> list[Session]:
        with self._lock:
            return self._read_sessions(open_only=open_only)

    def sessions_revision(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(revision), 0) FROM sessions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def payload_digest(data: bytes) -> str:
    """The key of an evidence body in every journal: its SHA-256, lowercase hexadecimal."""
    return hashlib.sha256(data).hexdigest()


def response_of(journal: Journal, exchange: Exchange) -> bytes | None:
    """The answer the simulator sent for ``exchange`` (``details["response_digest"]``), ``None`` if it kept none."""
    digest = exchange.details.get(RESPONSE_DIGEST)
    return journal.payload(digest) if isinstance(digest, str) else None


def evidence_of(exchanges: Sequence[Exchange]) -> dict[str, bytes]:
    """The evidence bodies a commit of ``exchanges`` (stamped: ``digest`` set) writes, by digest: each payload and
    each attachment, once."""
    evidence: dict[str, bytes] = {}
    for e in exchanges:
        if e.payload is not None and e.digest is not None:
            evidence[e.digest] = e.payload
        for attachment in e.attachments:
            evidence.setdefault(payload_digest(attachment), attachment)
    return evidence


@dataclass(slots=True, eq=False)
class _Batch:
    """One record_many() call waiting for a group commit: ``done`` once its group was written (or failed)."""

    exchanges: list[Exchange]
    done: bool = False
    error: BaseException | None = None


_INSERT = (
    "INSERT INTO exchanges (id, ts, month, service, operation, direction, outcome, actor, essms, person, error_code,"
    " error_message, digest, payload_type, details, run_id, scenario_id, fact_key, fact_date, fact_start, fact_end,"
    " fact_status, message_id, session_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


#: The ``details`` column's text: ``json.dumps(details, ensure_ascii=False, sort_keys=True, default=str)``, its
#: encoder built once rather than on every row (it holds only these options).
_DETAILS_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)


def _row(exchange: Exchange) -> tuple[Any, ...]:
    """The ``exchanges`` row of an exchange (``fact_*`` mirrored from ``details["fact"]``)."""
    fact = exchange.details.get("fact")
    facts = tuple(
        (None if (v := fact.get(k)) is None else str(v)) if isinstance(fact, dict) else None for k in FACT_KEYS
    )
    return (
        exchange.id,
        exchange.ts.astimezone(UTC).isoformat(),
        exchange.month,
        exchange.service,
        exchange.operation,
        str(exchange.direction),
        str(exchange.outcome),
        exchange.actor,
        exchange.essms,
        exchange.person,
        exchange.error_code,
        exchange.error_message,
        exchange.digest,
        exchange.payload_type,
        _DETAILS_JSON.encode(exchange.details),
        exchange.run_id,
        exchange.scenario_id,
        *facts,
        message_id if isinstance(message_id := exchange.details.get(MESSAGE_ID), str) else None,
        exchange.session_id,
    )


def _row_to_exchange(row: Sequence[Any]) -> Exchange:
    (
        _seq, id_, ts, service, operation, direction, outcome, actor, essms, person,
        error_code, error_message, digest, payload_type, details, run_id, scenario_id, session_id,
    ) = row  # fmt: skip
    return Exchange(
        id=id_,
        ts=datetime.fromisoformat(ts),
        service=service,
        operation=operation,
        direction=Direction(direction),
        outcome=Outcome(outcome),
        actor=actor,
        essms=essms,
        person=person,
        error_code=error_code,
        error_message=error_message,
        digest=digest,
        payload_type=payload_type,
        details=json.loads(details),
        run_id=run_id,
        scenario_id=scenario_id,
        session_id=session_id,
    )


def open_journal(url: str) -> Journal:
    """Open a journal by URL: ``sqlite:///relative/or/absolute.sqlite``, ``sqlite:///:memory:`` or
    ``postgresql://user@host:5432/base`` (:mod:`harness.core.journal_pg`).

    Options go in the query string: ``?synchronous=full`` for power-loss durability (SQLite); ``pool_max=N`` for
    the PostgreSQL connection pool.
    """
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        raw = unquote(parsed.path)
        path = raw[1:] if raw.startswith("/") else raw  # sqlite:///rel.db -> rel.db; sqlite:////abs -> /abs
        durable = "synchronous=full" in parsed.query.lower()
        return SQLiteJournal(path or ":memory:", durable=durable)
    backend = _BACKENDS.get(parsed.scheme)
    if backend is not None:
        module, _, function = backend.partition(":")
        opened: Journal = getattr(importlib.import_module(module), function)(url)
        return opened
    raise ValueError(
        f"unknown journal URL {url!r}: expected sqlite:///path/to/journal.sqlite or postgresql://host:5432/base"
    )


#: Journal backends other than the built-in SQLite one, by URL scheme: ``module:function(url) -> Journal``,
#: imported on first use (psycopg is only loaded for a PostgreSQL journal).
_BACKENDS: dict[str, str] = {
    "postgresql": "harness.core.journal_pg:open_postgresql",
    "postgres": "harness.core.journal_pg:open_postgresql",
}


def wait_for(
    journal: Journal, flt: JournalFilter, *, count: int = 1, timeout: float = 5.0, poll: float = 0.02
) -> list[Exchange]:
    """Wait until at least ``count`` exchanges match ``flt`` (the "wait for the DUI's request" primitive).

    Returns the matching exchanges (possibly fewer than ``count`` when the timeout expires).
    """
    deadline = time.monotonic() + timeout
    while True:
        found = journal.query(flt)
        if len(found) >= count or time.monotonic() >= deadline:
            return found
        time.sleep(poll)
