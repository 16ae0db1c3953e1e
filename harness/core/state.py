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

**Snapshots and compaction** (schema 2). A replica that knows how to (``snapshot``/``restore``: the store's whole
state as JSON, bodies still referenced by digest) snapshots its stream to ``socle_state_snapshot`` —
zlib-compressed JSON, at the sequence of the last operation it covers — every :data:`SNAPSHOT_EVERY` operations of
the stream (``StateHub(snapshot_every=)``: the configuration's ``state_snapshot_every``, ``serve
--state-snapshot-every``): the process whose operation reaches the count (checked against the log under the stream's lock)
captures its state under the replica's lock right after the commit, so exactly the state after that operation,
then encodes and writes it outside the locks; or on demand (:meth:`Replica.checkpoint`, under the stream's lock).
A replica that starts (a new or restarted worker) restores the latest snapshot and applies only the operations
after it. Writing a snapshot compacts the stream: the operations up to the *previous* snapshot are deleted (a
replica less than one interval behind still catches up from the log), the older snapshots too, and
``socle_state_horizon`` records up to where the stream was deleted; a replica that looks after a sequence below
the horizon (it would miss operations) is told so in the same query and restores the latest snapshot instead. A
checkpoint compacts up to itself.

The log's schema is versioned in ``socle_schema`` (component ``state``) like the journal's; a newer layout is
refused, an older one is migrated (1 → 2: the snapshot and horizon tables).
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any, Protocol

logger = logging.getLogger(__name__)

Operation = Mapping[str, Any]
ApplyFn = Callable[[Operation], Any]
SnapshotFn = Callable[[], Any]  # the store's whole state, JSON-serialisable
RestoreFn = Callable[[Any], None]  # replaces the store's whole state by what a SnapshotFn returned

STATE_SCHEMA_VERSION = 2
SNAPSHOT_EVERY = 1000  # operations of one stream between two snapshots (the appending process writes it)
SNAPSHOT_FORMAT = 1  # socle_state_snapshot.format: 1 = zlib-compressed UTF-8 JSON
_BULK = 1000  # a catch-up of at least this many operations pauses the cyclic garbage collector (gc_paused)
_RESTORE_ATTEMPTS = 5  # a reader without the lock may see the stream compacted again while it restores
_STATE_SCHEMA_LOCK = 0x50C1E_0010
# layout version -> its statements (each idempotent); a database at version v gets every layout above v
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE IF NOT EXISTS socle_state_op ("
        " seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " stream text NOT NULL,"
        " session text,"
        " op jsonb NOT NULL,"
        " at timestamptz NOT NULL DEFAULT now())",
        "CREATE INDEX IF NOT EXISTS socle_state_op_stream ON socle_state_op (stream, seq)",
    ),
    2: (
        "CREATE TABLE IF NOT EXISTS socle_state_snapshot ("
        " stream text NOT NULL,"
        " seq bigint NOT NULL,"
        " format smallint NOT NULL,"
        " state bytea NOT NULL,"
        " at timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (stream, seq))",
        # operations of ``stream`` up to ``seq`` (included) were deleted: a replica behind it must restore
        "CREATE TABLE IF NOT EXISTS socle_state_horizon (stream text PRIMARY KEY, seq bigint NOT NULL)",
    ),
}
# the operations after ``after`` and, first (seq 0), a marker row when the stream was compacted beyond ``after``
_TAIL = (
    "SELECT seq, op FROM socle_state_op WHERE stream = %(stream)s AND seq > %(after)s"
    " UNION ALL SELECT 0, NULL FROM socle_state_horizon WHERE stream = %(stream)s AND seq > %(after)s"
    " ORDER BY 1"
)
_LATEST = "SELECT seq, format, state FROM socle_state_snapshot WHERE stream = %s ORDER BY seq DESC LIMIT 1"


class StateSchemaTooNewError(RuntimeError):
    """The database's state log was written by a newer socle-harness."""


class StateCompactedError(LookupError):
    """The operations a replica still needs were deleted by a compaction: it must restore the latest snapshot."""


class Deferred:
    """A snapshot captured as a copy that costs little to take under the replica's lock — references to values the
    store never changes in place (frozen records, tuples, containers copied) — and ``build()`` turns into its JSON
    form later, outside the locks (:meth:`Replica.do`). A store's ``snapshot`` function may return one."""

    __slots__ = ("build",)

    def __init__(self, build: Callable[[], Any]) -> None:
        self.build = build


def materialize(state: Any) -> Any:
    """The JSON form of a captured snapshot (:class:`Deferred` built, any other value as it is)."""
    return state.build() if isinstance(state, Deferred) else state


def encode_snapshot(state: Any) -> bytes:
    """A snapshot's stored form (:data:`SNAPSHOT_FORMAT`): compact JSON, zlib-compressed (a :class:`Deferred` is
    built first)."""
    return zlib.compress(json.dumps(materialize(state), separators=(",", ":"), ensure_ascii=False).encode("utf-8"), 1)


def decode_snapshot(fmt: int, data: bytes) -> Any:
    if fmt != SNAPSHOT_FORMAT:
        raise StateSchemaTooNewError(
            f"instantané d'état au format {fmt} inconnu : mettez socle-harness à jour. / "
            f"unknown state snapshot format {fmt}."
        )
    return json.loads(zlib.decompress(bytes(data)).decode("utf-8"))


@contextmanager
def gc_paused() -> Iterator[None]:
    """A bulk load (a snapshot restored, a long catch-up) allocates many objects that all live on: the cyclic
    collector's passes over the growing heap would cost about as much as the load itself (measured on the mail
    store: a restore twice as fast without them). Paused for the load only; collected again afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _tail(rows: list[tuple[Any, Any]]) -> list[tuple[int, dict[str, Any]]]:
    if rows and int(rows[0][0]) == 0:
        raise StateCompactedError("flux compacté / stream compacted")
    return [(int(seq), op) for seq, op in rows]


def _latest(row: tuple[Any, Any, Any] | None) -> tuple[int, Any] | None:
    return None if row is None else (int(row[0]), decode_snapshot(int(row[1]), row[2]))


class StateTransaction(Protocol):
    """What a :class:`Replica` does inside one locked transaction of its stream."""

    def since(self, after: int) -> list[tuple[int, dict[str, Any]]]:
        """The operations after ``after``; :class:`StateCompactedError` when some of them were deleted."""
        ...

    def append(self, op: Operation, session: str | None) -> int: ...

    def latest_snapshot(self) -> tuple[int, Any] | None:
        """``(seq, state)`` of the stream's latest snapshot, or ``None``."""
        ...

    def since_snapshot(self) -> int:
        """How many operations of the stream follow its latest snapshot (all of them when there is none)."""
        ...

    def write_snapshot(self, seq: int, state: Any, *, compact_to: int) -> None:
        """Store ``state`` as of ``seq``; delete the snapshots before it and the operations up to ``compact_to``."""
        ...


class StateLog(Protocol):
    """Where the operations of every simulator's state are ordered."""

    @property
    def shared(self) -> bool:
        """True when other processes may change the same state (operations must go through the log)."""
        ...

    def read(self, stream: str, after: int) -> list[tuple[int, dict[str, Any]]]:
        """The operations of ``stream`` after sequence ``after``, in order (no lock); :class:`StateCompactedError`
        when some of them were deleted."""
        ...

    def latest_snapshot(self, stream: str) -> tuple[int, Any] | None:
        """``(seq, state)`` of the latest snapshot of ``stream`` (no lock), or ``None``."""
        ...

    def store_snapshot(self, stream: str, seq: int, state: Any) -> None:
        """Store ``state`` as of ``seq`` in a transaction of its own (no stream lock) and compact the stream up to
        the snapshot before it."""
        ...

    def transaction(self, stream: str) -> Any:
        """A context manager yielding a :class:`StateTransaction` that holds the stream's lock until it ends."""
        ...


class LocalStateLog:
    """One process: nothing to share, operations are applied directly (the embedded default)."""

    shared = False

    def read(self, stream: str, after: int) -> list[tuple[int, dict[str, Any]]]:
        return []

    def latest_snapshot(self, stream: str) -> tuple[int, Any] | None:
        return None

    def store_snapshot(self, stream: str, seq: int, state: Any) -> None:  # pragma: no cover - never shared
        raise RuntimeError("un journal d'état local n'a pas d'instantané / a local state log has no snapshot")

    @contextmanager
    def transaction(self, stream: str) -> Iterator[StateTransaction]:  # pragma: no cover - not used locally
        raise RuntimeError("un journal d'état local n'a pas de transaction / a local state log has no transaction")
        yield


class _PgTransaction:
    def __init__(self, cursor: Any, stream: str) -> None:
        self._cursor = cursor
        self._stream = stream

    def since(self, after: int) -> list[tuple[int, dict[str, Any]]]:
        self._cursor.execute(_TAIL, {"stream": self._stream, "after": after})
        return _tail(self._cursor.fetchall())

    def append(self, op: Operation, session: str | None) -> int:
        self._cursor.execute(
            "INSERT INTO socle_state_op (stream, session, op) VALUES (%s, %s, %s::jsonb) RETURNING seq",
            (self._stream, session, json.dumps(op, separators=(",", ":"), ensure_ascii=False)),
        )
        return int(self._cursor.fetchone()[0])

    def latest_snapshot(self) -> tuple[int, Any] | None:
        self._cursor.execute(_LATEST, (self._stream,))
        return _latest(self._cursor.fetchone())

    def since_snapshot(self) -> int:
        self._cursor.execute(
            "SELECT count(*) FROM socle_state_op WHERE stream = %(stream)s AND seq > COALESCE("
            "(SELECT max(seq) FROM socle_state_snapshot WHERE stream = %(stream)s), 0)",
            {"stream": self._stream},
        )
        return int(self._cursor.fetchone()[0])

    def write_snapshot(self, seq: int, state: Any, *, compact_to: int) -> None:
        _write_snapshot(self._cursor, self._stream, seq, encode_snapshot(state), compact_to)


def _write_snapshot(cur: Any, stream: str, seq: int, data: bytes, compact_to: int) -> None:
    """Insert the snapshot, delete the older ones and the operations up to ``compact_to`` (-1: up to the latest
    snapshot before this one), record the horizon; all in the caller's transaction."""
    if compact_to < 0:
        cur.execute("SELECT max(seq) FROM socle_state_snapshot WHERE stream = %s AND seq < %s", (stream, seq))
        compact_to = int(cur.fetchone()[0] or 0)
    cur.execute(
        "INSERT INTO socle_state_snapshot (stream, seq, format, state) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (stream, seq) DO UPDATE SET format = EXCLUDED.format, state = EXCLUDED.state",
        (stream, seq, SNAPSHOT_FORMAT, data),
    )
    cur.execute("DELETE FROM socle_state_snapshot WHERE stream = %s AND seq < %s", (stream, seq))
    if compact_to > 0:
        cur.execute("DELETE FROM socle_state_op WHERE stream = %s AND seq <= %s", (stream, compact_to))
        cur.execute(
            "INSERT INTO socle_state_horizon (stream, seq) VALUES (%s, %s) ON CONFLICT (stream) "
            "DO UPDATE SET seq = GREATEST(socle_state_horizon.seq, EXCLUDED.seq)",
            (stream, compact_to),
        )


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
            rows = conn.execute(_TAIL, {"stream": stream, "after": after}).fetchall()
        return _tail(rows)

    def latest_snapshot(self, stream: str) -> tuple[int, Any] | None:
        with self._connection() as conn:
            return _latest(conn.execute(_LATEST, (stream,)).fetchone())

    def store_snapshot(self, stream: str, seq: int, state: Any) -> None:
        data = encode_snapshot(state)
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            _write_snapshot(cur, stream, seq, data, -1)

    @contextmanager
    def transaction(self, stream: str) -> Iterator[StateTransaction]:
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("socle-state:" + stream,))
            yield _PgTransaction(cur, stream)


def apply_state_schema(conn: Any, url: str = "") -> None:
    """Create or migrate the state log's tables (one process at a time), refuse a newer layout."""
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
        for layout in range(1, STATE_SCHEMA_VERSION + 1):
            if layout > version:
                for statement in _MIGRATIONS[layout]:
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
    the state (used to rebuild it from the log). ``snapshot()`` returns the whole state as JSON-serialisable
    values (or a :class:`Deferred` that builds them: a cheap copy taken under the lock, encoded outside) and
    ``restore(state)`` replaces the whole state by such a value, so that restoring a snapshot gives
    exactly the state replaying the operations it covers gives; without them the stream is never snapshotted nor
    compacted. All calls are serialised by the replica's lock, which the caller's own reads may share through
    :meth:`locked`.
    """

    def __init__(
        self,
        log: StateLog,
        stream: str,
        apply: ApplyFn,
        reset: Callable[[], None],
        snapshot: SnapshotFn | None = None,
        restore: RestoreFn | None = None,
        *,
        snapshot_every: int = SNAPSHOT_EVERY,
    ) -> None:
        if (snapshot is None) != (restore is None):
            raise ValueError("snapshot et restore vont ensemble / snapshot and restore go together")
        self.log = log
        self.stream = stream
        self._apply = apply
        self._reset = reset
        self._snapshot = snapshot
        self._restore = restore
        self.snapshot_every = max(1, snapshot_every)
        self._lock = threading.RLock()
        self._seq = 0
        self._started = False  # the latest snapshot was looked for (once, before the first catch-up)
        self._since_snapshot = 0  # operations applied here since the latest snapshot this replica knows of

    @property
    def shared(self) -> bool:
        return self.log.shared

    @property
    def seq(self) -> int:
        """The last operation of the log this replica has applied (0 when local or empty)."""
        return self._seq

    def _restore_latest(self, latest: tuple[int, Any] | None) -> bool:
        """Replace the state by the latest snapshot (or empty it when there is none); True when it changed."""
        if self._restore is None:
            raise StateCompactedError(
                f"le flux {self.stream} a été compacté et ce réplica ne sait pas restaurer d'instantané / "
                f"stream {self.stream} was compacted and this replica cannot restore a snapshot"
            )
        if latest is None:
            if self._seq == 0:
                return False
            self._reset()
            self._seq = 0
        else:
            self._restore(latest[1])
            self._seq = latest[0]
        self._since_snapshot = 0
        return True

    def _catch_up(self, since: Callable[[int], list[tuple[int, dict[str, Any]]]], latest: Callable[[], Any]) -> int:
        """Apply what follows ``self._seq`` (from the latest snapshot first when starting or when the operations
        needed were compacted away); return how many operations that was (plus one for a snapshot restored).
        The first catch-up (a start: a snapshot and its tail, or the whole log) is a bulk load (:func:`gc_paused`)."""
        starting = not self._started
        with gc_paused() if starting else nullcontext():
            restored = 0
            if starting and self._seq == 0 and self._restore is not None:
                restored = int(self._restore_latest(latest()))
            self._started = True
            for attempt in range(_RESTORE_ATTEMPTS):
                try:
                    pending = since(self._seq)
                except StateCompactedError:
                    if attempt == _RESTORE_ATTEMPTS - 1:
                        raise
                    with gc_paused():
                        restored = int(self._restore_latest(latest())) or restored
                    continue
                with gc_paused() if len(pending) >= _BULK else nullcontext():
                    for seq, op in pending:
                        self._apply(op)
                        self._seq = seq
                        self._since_snapshot += 1
                return len(pending) + restored
        raise AssertionError("unreachable")  # pragma: no cover

    def sync(self) -> int:
        """Apply what other processes appended since the last look; return how many operations that was (a
        snapshot restored counts for one)."""
        if not self.log.shared:
            return 0
        with self._lock:
            return self._catch_up(
                lambda after: self.log.read(self.stream, after), lambda: self.log.latest_snapshot(self.stream)
            )

    def do(self, op: Operation, *, session: str | None = None) -> Any:
        """Apply ``op`` here and, when shared, everywhere: appended to the log in the stream's order.

        The operation that reaches :attr:`snapshot_every` since the stream's latest snapshot also takes one: the
        state is captured (``snapshot()``) under the replica's lock right after the commit, so it is exactly the
        state after that operation; it is then encoded and written, with the compaction, in a transaction of its
        own, outside both locks, so that neither this process's other threads nor the other processes' writers of
        the stream wait for the encoding. A snapshot that cannot be written is logged; the next operation due
        tries again (the operation itself was committed)."""
        if not self.log.shared:
            with self._lock:
                return self._apply(op)
        captured: Any = None
        with self._lock:
            applied_here = due = False
            try:
                with self.log.transaction(self.stream) as tx:
                    self._catch_up(tx.since, lambda: tx.latest_snapshot())
                    result = self._apply(op)
                    applied_here = True
                    seq = tx.append(op, session)
                    self._since_snapshot += 1
                    if self._snapshot is not None and self._since_snapshot >= self.snapshot_every:
                        self._since_snapshot = tx.since_snapshot()  # another process may have written one
                        due = self._since_snapshot >= self.snapshot_every
            except BaseException:
                if applied_here:  # applied locally but not committed: the others never saw it
                    self.rebuild()
                raise
            self._seq = seq
            if due:
                assert self._snapshot is not None  # noqa: S101 - due only with one
                with gc_paused():
                    captured = self._snapshot()
                self._since_snapshot = 0
        if due:
            try:
                with gc_paused():
                    self.log.store_snapshot(self.stream, seq, captured)
            except Exception as exc:  # noqa: BLE001 - the operation is committed; a later one snapshots
                logger.warning(
                    "état partagé : instantané de %s non écrit (%s) / state snapshot not written", self.stream, exc
                )
        return result

    def _write_snapshot(self, tx: StateTransaction, seq: int, *, compact_to: int) -> None:
        """Under the stream's lock, the state being the one after ``seq``: snapshot it and compact the stream up
        to ``compact_to`` (:meth:`checkpoint`)."""
        assert self._snapshot is not None  # noqa: S101 - checked by the caller
        with gc_paused():
            tx.write_snapshot(seq, self._snapshot(), compact_to=compact_to)
        self._since_snapshot = 0

    def checkpoint(self) -> int:
        """Snapshot the stream now and delete every operation before the snapshot (on demand; shared streams
        that know how to snapshot only). Return the snapshot's sequence, 0 when nothing was written."""
        if not self.log.shared or self._snapshot is None:
            return 0
        with self._lock:
            try:
                with self.log.transaction(self.stream) as tx:
                    self._catch_up(tx.since, lambda: tx.latest_snapshot())
                    if self._seq == 0:
                        return 0
                    self._write_snapshot(tx, self._seq, compact_to=self._seq)
            except BaseException:
                self.rebuild()
                raise
            return self._seq

    def state(self) -> Any:
        """The state as a snapshot would hold it, after catching up (``None`` when the store cannot snapshot): the
        :meth:`capture` built."""
        captured = self.capture()
        return None if captured is None else materialize(captured)

    def capture(self) -> Any:
        """What the operation reaching :attr:`snapshot_every` takes under the replica's lock (the store's
        ``snapshot()``, possibly a :class:`Deferred` built later), after catching up; ``None`` when it cannot."""
        if self._snapshot is None:
            return None
        with self._lock:
            self.sync()
            return self._snapshot()

    @contextmanager
    def locked(self, *, sync: bool = True) -> Iterator[None]:
        """Hold the replica's lock (after catching up, by default) for a consistent read of several values."""
        with self._lock:
            if sync:
                self.sync()
            yield

    def rebuild(self) -> None:
        """Forget the in-memory state and take it again from the log: the latest snapshot, then what follows."""
        with self._lock:
            self._reset()
            self._seq = 0
            self._started = False
            self._since_snapshot = 0
            self.sync()


class StateHub:
    """The replicas of one serving process, on one log; :meth:`sync_all` lets a poller wake listeners (IMAP IDLE).

    ``snapshot_every``: operations of a stream between two snapshots (:data:`SNAPSHOT_EVERY`)."""

    def __init__(self, log: StateLog | None = None, *, snapshot_every: int = SNAPSHOT_EVERY) -> None:
        self.log: StateLog = log if log is not None else LocalStateLog()
        self.snapshot_every = snapshot_every
        self._lock = threading.Lock()
        self._replicas: dict[str, Replica] = {}

    @property
    def shared(self) -> bool:
        return self.log.shared

    def replica(
        self,
        stream: str,
        apply: ApplyFn,
        reset: Callable[[], None],
        snapshot: SnapshotFn | None = None,
        restore: RestoreFn | None = None,
    ) -> Replica:
        """The replica of ``stream`` (one per stream and process: a second registration is refused)."""
        with self._lock:
            if stream in self._replicas:
                raise ValueError(f"flux d'état déjà enregistré / state stream already registered: {stream}")
            replica = Replica(self.log, stream, apply, reset, snapshot, restore, snapshot_every=self.snapshot_every)
            self._replicas[stream] = replica
            return replica

    def sync_all(self) -> int:
        with self._lock:
            replicas = list(self._replicas.values())
        return sum(replica.sync() for replica in replicas)

    def states(self) -> dict[str, Any]:
        """:meth:`Replica.state` of every stream of this process that can snapshot, by stream."""
        return {stream: materialize(captured) for stream, captured in self.captures().items()}

    def captures(self) -> dict[str, Any]:
        """:meth:`Replica.capture` of every stream of this process that can snapshot, by stream."""
        with self._lock:
            replicas = list(self._replicas.values())
        captured = {replica.stream: replica.capture() for replica in replicas}
        return {stream: value for stream, value in captured.items() if value is not None}

    def checkpoint_all(self) -> dict[str, int]:
        """:meth:`Replica.checkpoint` every stream of this process: ``{stream: snapshot seq}`` of those written."""
        with self._lock:
            replicas = list(self._replicas.values())
        written = {replica.stream: replica.checkpoint() for replica in replicas}
        return {stream: seq for stream, seq in written.items() if seq}


def state_log_for(journal: object) -> StateLog:
    """The state log that goes with a journal: shared in its PostgreSQL database, local otherwise.

    A PostgreSQL journal exists only once :mod:`harness.core.journal_pg` has been imported (``open_journal`` loads
    it for a ``postgresql://`` URL): when it has not, the journal is not one and psycopg is not imported for the
    question (some 60 ms of ``serve``'s cold start, issue 18)."""
    pg = sys.modules.get("harness.core.journal_pg")
    if pg is not None and isinstance(journal, pg.PostgreSQLJournal):
        return PostgreSQLStateLog(journal.connection)
    return LocalStateLog()
