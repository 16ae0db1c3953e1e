"""Simulator state shared by several serving processes: one ordered log of state operations (issue 19 item 2).

Each simulator keeps its state in memory — mailboxes, the DMP registry, FHIR stores, PSC grants, injected faults —
and changes it only through *operations*: small JSON objects applied by a deterministic function of the state
(everything random or time-dependent — ids, UIDs, timestamps — is drawn *before* and carried in the operation).
That is state machine replication:

- **One process** (the default, whatever the journal): :class:`LocalStateLog`. An operation is applied at once,
  under the replica's lock; nothing is written anywhere. The single-process behaviour is exactly what it was.
- **Several processes on one PostgreSQL database** (``serve --workers N``, or several machines):
  :class:`PostgreSQLStateLog`. A process that changes the state opens a transaction, takes the stream's
  transaction-level advisory lock, first applies the operations other processes appended since it last looked,
  then applies its own and appends it to ``socle_state_op``; the commit releases the lock. Every process applies
  the same operations in the same order, so all states agree; a process reads after catching up
  (:meth:`Replica.sync`, one indexed query). An operation whose apply raises is not appended (the apply function
  must check before it changes anything); if the commit itself fails after a local apply, the replica is rebuilt
  from the log so that it never keeps what the others do not have.

Large bodies (messages, documents) are not in the log: they go to the journal's content-addressed, compressed
payload store (``evidence``), and operations carry their digest.

The log's schema is versioned in ``socle_schema`` (component ``state``) like the journal's.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

Operation = Mapping[str, Any]
ApplyFn = Callable[[Operation], Any]

STATE_SCHEMA_VERSION = 1
_STATE_SCHEMA_LOCK = 0x50C1E_0010
_DDL = (
    "CREATE TABLE IF NOT EXISTS socle_state_op ("
    " seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " stream text NOT NULL,"
    " session text,"
    " op jsonb NOT NULL,"
    " at timestamptz NOT NULL DEFAULT now())",
    "CREATE INDEX IF NOT EXISTS socle_state_op_stream ON socle_state_op (stream, seq)",
)


class StateSchemaTooNewError(RuntimeError):
    """The database's state log was written by a newer socle-harness."""


class StateTransaction(Protocol):
    """What a :class:`Replica` does inside one locked transaction of its stream."""

    def since(self, after: int) -> list[tuple[int, dict[str, Any]]]: ...

    def append(self, op: Operation, session: str | None) -> int: ...


class StateLog(Protocol):
    """Where the operations of every simulator's state are ordered."""

    @property
    def shared(self) -> bool:
        """True when other processes may change the same state (operations must go through the log)."""
        ...

    def read(self, stream: str, after: int) -> list[tuple[int, dict[str, Any]]]:
        """The operations of ``stream`` after sequence ``after``, in order (no lock)."""
        ...

    def transaction(self, stream: str) -> Any:
        """A context manager yielding a :class:`StateTransaction` that holds the stream's lock until it ends."""
        ...


class LocalStateLog:
    """One process: nothing to share, operations are applied directly (the embedded default)."""

    shared = False

    def read(self, stream: str, after: int) -> list[tuple[int, dict[str, Any]]]:
        return []

    @contextmanager
    def transaction(self, stream: str) -> Iterator[StateTransaction]:  # pragma: no cover - not used locally
        raise RuntimeError("un journal d'état local n'a pas de transaction / a local state log has no transaction")
        yield


class _PgTransaction:
    def __init__(self, cursor: Any, stream: str) -> None:
        self._cursor = cursor
        self._stream = stream

    def since(self, after: int) -> list[tuple[int, dict[str, Any]]]:
        self._cursor.execute(
            "SELECT seq, op FROM socle_state_op WHERE stream = %s AND seq > %s ORDER BY seq", (self._stream, after)
        )
        return [(int(seq), op) for seq, op in self._cursor.fetchall()]

    def append(self, op: Operation, session: str | None) -> int:
        self._cursor.execute(
            "INSERT INTO socle_state_op (stream, session, op) VALUES (%s, %s, %s::jsonb) RETURNING seq",
            (self._stream, session, json.dumps(op, separators=(",", ":"), ensure_ascii=False)),
        )
        return int(self._cursor.fetchone()[0])


class PostgreSQLStateLog:
    """The state log in the PostgreSQL database of the journal, through the journal's connection pool.

    ``connection`` is a callable returning a pooled connection context manager (autocommit), such as
    :meth:`harness.core.journal_pg.PostgreSQLJournal.connection`."""

    shared = True

    def __init__(self, connection: Callable[[], Any]) -> None:
        self._connection = connection
        with self._connection() as conn:
            apply_state_schema(conn)

    def read(self, stream: str, after: int) -> list[tuple[int, dict[str, Any]]]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT seq, op FROM socle_state_op WHERE stream = %s AND seq > %s ORDER BY seq", (stream, after)
            ).fetchall()
        return [(int(seq), op) for seq, op in rows]

    @contextmanager
    def transaction(self, stream: str) -> Iterator[StateTransaction]:
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("socle-state:" + stream,))
            yield _PgTransaction(cur, stream)


def apply_state_schema(conn: Any, url: str = "") -> None:
    """Create the state log's table (one process at a time), refuse a newer layout."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_STATE_SCHEMA_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS socle_schema (component text PRIMARY KEY, version integer NOT NULL)")
        row = conn.execute("SELECT version FROM socle_schema WHERE component = 'state'").fetchone()
        version = 0 if row is None else int(row[0])
        if version > STATE_SCHEMA_VERSION:
            raise StateSchemaTooNewError(
                f"l'état partagé de cette base est au schéma {version}, plus récent que celui de cette version de "
                f"socle-harness ({STATE_SCHEMA_VERSION}) : mettez socle-harness à jour. / The shared state schema "
                f"is newer ({version}) than this version knows ({STATE_SCHEMA_VERSION})."
            )
        for statement in _DDL:
            conn.execute(statement)
        if version < STATE_SCHEMA_VERSION:
            conn.execute(
                "INSERT INTO socle_schema (component, version) VALUES ('state', %s) "
                "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                (STATE_SCHEMA_VERSION,),
            )


class Replica:
    """One simulator state kept in step with its stream of operations.

    ``apply(op)`` changes the in-memory state for one operation and returns what the caller needs; it must be
    deterministic and raise *before* changing anything when the operation cannot be done. ``reset()`` empties
    the state (used to rebuild it from the log). All calls are serialised by the replica's lock, which the
    caller's own reads may share through :meth:`locked`.
    """

    def __init__(self, log: StateLog, stream: str, apply: ApplyFn, reset: Callable[[], None]) -> None:
        self.log = log
        self.stream = stream
        self._apply = apply
        self._reset = reset
        self._lock = threading.RLock()
        self._seq = 0

    @property
    def shared(self) -> bool:
        return self.log.shared

    @property
    def seq(self) -> int:
        """The last operation of the log this replica has applied (0 when local or empty)."""
        return self._seq

    def sync(self) -> int:
        """Apply what other processes appended since the last look; return how many operations that was."""
        if not self.log.shared:
            return 0
        with self._lock:
            pending = self.log.read(self.stream, self._seq)
            for seq, op in pending:
                self._apply(op)
                self._seq = seq
            return len(pending)

    def do(self, op: Operation, *, session: str | None = None) -> Any:
        """Apply ``op`` here and, when shared, everywhere: appended to the log in the stream's order."""
        if not self.log.shared:
            with self._lock:
                return self._apply(op)
        with self._lock:
            applied_here = False
            try:
                with self.log.transaction(self.stream) as tx:
                    for seq, other in tx.since(self._seq):
                        self._apply(other)
                        self._seq = seq
                    result = self._apply(op)
                    applied_here = True
                    seq = tx.append(op, session)
            except BaseException:
                if applied_here:  # applied locally but not committed: the others never saw it
                    self.rebuild()
                raise
            self._seq = seq
            return result

    @contextmanager
    def locked(self, *, sync: bool = True) -> Iterator[None]:
        """Hold the replica's lock (after catching up, by default) for a consistent read of several values."""
        with self._lock:
            if sync:
                self.sync()
            yield

    def rebuild(self) -> None:
        """Forget the in-memory state and apply the whole stream again."""
        with self._lock:
            self._reset()
            self._seq = 0
            self.sync()


class StateHub:
    """The replicas of one serving process, on one log; :meth:`sync_all` lets a poller wake listeners (IMAP IDLE)."""

    def __init__(self, log: StateLog | None = None) -> None:
        self.log: StateLog = log if log is not None else LocalStateLog()
        self._lock = threading.Lock()
        self._replicas: dict[str, Replica] = {}

    @property
    def shared(self) -> bool:
        return self.log.shared

    def replica(self, stream: str, apply: ApplyFn, reset: Callable[[], None]) -> Replica:
        """The replica of ``stream`` (one per stream and process: a second registration is refused)."""
        with self._lock:
            if stream in self._replicas:
                raise ValueError(f"flux d'état déjà enregistré / state stream already registered: {stream}")
            replica = Replica(self.log, stream, apply, reset)
            self._replicas[stream] = replica
            return replica

    def sync_all(self) -> int:
        with self._lock:
            replicas = list(self._replicas.values())
        return sum(replica.sync() for replica in replicas)


def state_log_for(journal: object) -> StateLog:
    """The state log that goes with a journal: shared in its PostgreSQL database, local otherwise."""
    from harness.core.journal_pg import PostgreSQLJournal  # psycopg only when a PostgreSQL journal is in use

    if isinstance(journal, PostgreSQLJournal):
        return PostgreSQLStateLog(journal.connection)
    return LocalStateLog()
