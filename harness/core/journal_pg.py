"""The PostgreSQL journal: the :class:`~harness.core.journal.Journal` of a shared platform (issue 19).

``postgresql://user@host:5432/base`` (libpq URL; ``?options=-csearch_path%3Dschema`` selects a schema). Same
semantics as the SQLite journal: :meth:`PostgreSQLJournal.record` returns once its transaction is committed
(``synchronous_commit`` as configured on the server, ``on`` by default), so a simulator acknowledges an exchange
only after it is durable; payloads are evidence stored once per SHA-256 digest, compressed (zlib) when that saves
at least an eighth. Connections come from a psycopg 3 pool (``psycopg_pool.ConnectionPool``), shared by every
thread of the process; several processes may write the same database.

Order: writers take one transaction-level advisory lock, so ``seq`` (an identity column) is assigned in commit
order. A reader that saw ``seq = n`` committed will never see a smaller ``seq`` appear later: ``since_seq``
polling (``wait_for``, the observe-only mode) misses nothing, whatever the number of writing processes.

Schema: versioned in the table ``socle_schema`` (component ``journal``), created at start under an advisory lock
(processes starting together do not race). A database whose journal schema is newer than this code's is refused
with a message that says what to do (:class:`SchemaTooNewError`), never written to. Versions 4 to 6 add the
indicator engine's incremental aggregates (:data:`_AGGREGATE_TABLES`, :data:`_CDL_TABLES`, ``indicator_agenda``),
kept by a statement trigger on ``exchanges`` and filled from the exchanges already there when an older journal is
migrated (benchmarks/README.md: their write cost).

PostgreSQL text cannot hold the NUL character: a text column value containing one is stored with U+FFFD in its
place and its exact value kept in ``exact`` (JSON), from which :meth:`PostgreSQLJournal.query` restores it; the
``details`` column is ``json`` (the text as written, keys sorted, ``\\u0000`` escapes accepted).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool

from harness.core.journal import (
    FACT_KEYS,
    MESSAGE_ID,
    Direction,
    Exchange,
    JournalFilter,
    Outcome,
    evidence_of,
    payload_digest,
)
from harness.core.sessions import (
    Members,
    Session,
    SessionConflictError,
    UnknownSessionError,
    conflict_message,
    sessions_from_rows,
    unknown_message,
)

#: Version of the journal schema this code writes (``socle_schema.version`` for component ``journal``).
SCHEMA_VERSION = 6
#: ``pg_advisory_xact_lock`` keys: schema creation, and the writers' commit order.
_SCHEMA_LOCK = 0x50C1E_0001
_WRITE_LOCK = 0x50C1E_0002
_SESSION_LOCK = 0x50C1E_0003  # creations and closings of sessions, one at a time (the revision order)
#: A payload is stored compressed when zlib (level 1: about 100 MB/s) saves at least this fraction.
_MIN_SAVING = 1 / 8
_COMPRESS_LEVEL = 1
#: Pool options read from the URL's query string (removed before it reaches libpq).
_POOL_OPTIONS = ("pool_min", "pool_max", "pool_timeout")

_C = 'COLLATE "C"'  # byte order, as SQLite's BINARY: month/date ranges and version ordering compare the same way
_DDL = (
    f"""CREATE TABLE exchanges (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            text {_C} NOT NULL UNIQUE,
    ts            timestamptz NOT NULL,
    month         text {_C} NOT NULL,
    service       text {_C} NOT NULL,
    operation     text {_C} NOT NULL,
    direction     text {_C} NOT NULL,
    outcome       text {_C} NOT NULL,
    actor         text {_C},
    essms         text {_C},
    person        text {_C},
    error_code    text {_C},
    error_message text {_C},
    digest        text {_C},
    payload_type  text {_C},
    details       json NOT NULL DEFAULT '{{}}',
    run_id        text {_C},
    scenario_id   text {_C},
    fact_key      text {_C},
    fact_date     text {_C},
    fact_start    text {_C},
    fact_end      text {_C},
    fact_status   text {_C},
    message_id    text {_C},
    exact         json
)""",
    f"""CREATE TABLE evidence (
    digest text {_C} PRIMARY KEY,
    size   bigint NOT NULL,
    codec  text {_C} NOT NULL,
    data   bytea NOT NULL
)""",
    # compressed here when worth it: PostgreSQL does not try again (TOAST out of line, uncompressed)
    "ALTER TABLE evidence ALTER COLUMN data SET STORAGE EXTERNAL",
    # version 1's indexes (version 2 replaces some: _MIGRATIONS)
    "CREATE INDEX ix_exchanges_month_essms ON exchanges (month, essms, service, operation, outcome)",
    "CREATE INDEX ix_exchanges_person ON exchanges (person, month)",
    "CREATE INDEX ix_exchanges_service_month ON exchanges (service, operation, month)",
    "CREATE INDEX ix_exchanges_counts ON exchanges (service, operation, outcome, month, essms)",
    "CREATE INDEX ix_exchanges_run ON exchanges (run_id, scenario_id)",
    "CREATE INDEX ix_exchanges_ts ON exchanges (ts)",
    "CREATE INDEX ix_exchanges_usage ON exchanges (service, operation, outcome, essms, person, month)",
    """CREATE INDEX ix_exchanges_message_ids ON exchanges (service, outcome, essms, message_id, month, operation)
    WHERE service = 'mssante'""",
    """CREATE INDEX ix_exchanges_fact_versions ON exchanges
    (service, outcome, operation, essms, person, fact_key, fact_date, seq)
    INCLUDE (fact_start, fact_end, fact_status) WHERE fact_key IS NOT NULL""",
    """CREATE INDEX ix_exchanges_fact_person ON exchanges
    (service, outcome, essms, person, operation, fact_date) INCLUDE (fact_start, fact_status, fact_key)
    WHERE fact_key IS NOT NULL""",
)
#: The indicator engine's incremental aggregates (schema 4; read by harness.analytics.indicators_pg, issue 19):
#: what it would otherwise recompute from every exchange at each computation, kept up to date by a statement trigger
#: in the writer's transaction (a reader's snapshot sees them and the exchanges alike). They hold the exchanges
#: whatever their run, scenario or session: the engine reads them for the whole journal (or some ESSMS) only.
#:
#: - ``indicator_person_months``: per (ESSMS, person, year), one 12-bit mask of months (bit m-1 = month m) per
#:   kind: ``mssante`` (accepted MSSanté messages), ``dmp`` (accepted DMP documents), both by the exchange's month,
#:   and ``updated`` (any accepted DUI fact, by the month of its producer's date: the first 7 characters of
#:   ``fact_date``, all that the month bounds compare); a month that is not ``YYYY-MM`` (an odd producer date)
#:   goes to ``indicator_person_odd_months`` as its text, looked up as the exchanges' are;
#: - ``indicator_messages`` / ``indicator_message_counts``: the first month of each (ESSMS, Message-ID) of accepted
#:   MSSanté messages, and the number of messages per ESSMS and first month;
#: - ``indicator_facts``: the latest version of each séjour and événement (by the engine's version key) and the
#:   first producer date of its versions;
#: - schema 5, ``indicator_cdl_platform_notes`` / ``indicator_cdl_receipts`` (:data:`_CDL_TABLES`);
#: - schema 6, ``indicator_agenda``: per (ESSMS, person), the first producer date of their événements whose latest
#:   version is not retracted (recomputed from ``indicator_facts`` for the persons of an insert: a retraction
#:   removes an événement).
#:
#: The journal's exchanges are never updated or deleted, so an insert only adds to them (OR of bits, earlier month,
#: later version; ``indicator_agenda`` is recomputed); writers hold the journal's write lock, so two inserts never
#: update them at once (a bulk load outside :meth:`PostgreSQLJournal.record_many` must be the only writer).
#: The version key of a fact (its latest version decides, harness.analytics.indicators): the producer's date, then
#: the recording order, in one text compared byte by byte.
VERSION_KEY = "(COALESCE(x.fact_date, '') || '#' || lpad(x.seq::text, 19, '0')) COLLATE \"C\""
#: The facts whose latest version ``indicator_facts`` keeps (harness.fields.dui.FactKind: séjour, événement).
VERSIONED_FACTS = ("fhir.create.sejour", "fhir.create.evenement")
#: The operations of the usage masks (harness.analytics.indicators.MSSANTE and DMP).
USAGE_OPERATIONS = {"mssante": ("smtp.submit", "smtp.relay"), "dmp": ("iti41.provide_and_register",)}
_MONTH_FORMAT = "'^[0-9]{4}-(0[1-9]|1[0-2])$'"
_AGGREGATE_TABLES = (
    f"""CREATE TABLE indicator_person_months (
    essms   text {_C} NOT NULL,
    person  text {_C} NOT NULL,
    year    integer NOT NULL,
    mssante integer NOT NULL,
    dmp     integer NOT NULL,
    updated integer NOT NULL,
    PRIMARY KEY (essms, person, year)
    )""",
    f"""CREATE TABLE indicator_person_odd_months (
    essms  text {_C} NOT NULL,
    person text {_C} NOT NULL,
    kind   text {_C} NOT NULL,
    month  text {_C} NOT NULL,
    PRIMARY KEY (essms, person, kind, month)
    )""",
    f"""CREATE TABLE indicator_messages (
    essms      text {_C} NOT NULL,
    message_id text {_C} NOT NULL,
    month      text {_C} NOT NULL,
    PRIMARY KEY (essms, message_id)
    )""",
    f"""CREATE TABLE indicator_message_counts (
    essms text {_C} NOT NULL,
    month text {_C} NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (essms, month)
    )""",
    f"""CREATE TABLE indicator_facts (
    operation  text {_C} NOT NULL,
    essms      text {_C} NOT NULL,
    person     text {_C} NOT NULL,
    fact_key   text {_C} NOT NULL,
    version    text {_C} NOT NULL,
    status     text {_C},
    start      text {_C},
    "end"      text {_C},
    first_date text {_C},
    PRIMARY KEY (operation, essms, person, fact_key)
    )""",
)
_OPS = {k: ", ".join(f"'{op}'" for op in ops) for k, ops in USAGE_OPERATIONS.items()}
#: One statement (one executor start for the trigger) updating every aggregate from the exchanges of ``{source}``:
#: the months of the person masks (ESSMS, person, kind, first 7 characters of the date), the MSSanté messages (one
#: counts in the first month of its (ESSMS, Message-ID): +1 there when it is new, moved when an earlier month comes;
#: every part sees the tables as they were before the statement), the latest séjour / événement versions.
_AGGREGATE_UPDATE = f"""WITH
    months AS (
      SELECT x.essms AS essms, x.person AS person, k.kind AS kind, left(k.value, 7) AS month
      FROM {{source}} x, LATERAL (SELECT CASE WHEN x.service = 'tddui' THEN 'updated' ELSE x.service END AS kind,
                                         CASE WHEN x.service = 'tddui' THEN x.fact_date ELSE x.month END AS value) k
      WHERE x.outcome = 'accepted' AND x.essms IS NOT NULL AND x.person IS NOT NULL
        AND ((x.service = 'mssante' AND x.operation IN ({_OPS["mssante"]}))
             OR (x.service = 'dmp' AND x.operation IN ({_OPS["dmp"]}))
             OR (x.service = 'tddui' AND x.fact_key IS NOT NULL AND x.fact_date IS NOT NULL))),
    person_months AS (
      INSERT INTO indicator_person_months AS t (essms, person, year, mssante, dmp, updated)
      SELECT essms, person, CAST(left(month, 4) AS integer),
             {", ".join(f"COALESCE(bit_or(1 << (CAST(substr(month, 6, 2) AS integer) - 1)) FILTER (WHERE kind = '{k}'), 0)" for k in ("mssante", "dmp", "updated"))}
      FROM months WHERE month ~ {_MONTH_FORMAT}
      GROUP BY essms, person, left(month, 4)
      ON CONFLICT (essms, person, year) DO UPDATE
      SET mssante = t.mssante | EXCLUDED.mssante, dmp = t.dmp | EXCLUDED.dmp, updated = t.updated | EXCLUDED.updated),
    odd_months AS (
      INSERT INTO indicator_person_odd_months (essms, person, kind, month)
      SELECT DISTINCT essms, person, kind, month FROM months WHERE month !~ {_MONTH_FORMAT}
      ON CONFLICT DO NOTHING),
    incoming AS (
      SELECT x.essms AS essms, x.message_id AS message_id, MIN(x.month) AS month FROM {{source}} x
      WHERE x.service = 'mssante' AND x.operation IN ({_OPS["mssante"]}) AND x.outcome = 'accepted'
        AND x.essms IS NOT NULL AND x.message_id IS NOT NULL
      GROUP BY x.essms, x.message_id),
    moved AS (
      SELECT i.essms, i.message_id, i.month, m.month AS was FROM incoming i
      LEFT JOIN indicator_messages m ON m.essms = i.essms AND m.message_id = i.message_id
      WHERE m.month IS NULL OR i.month < m.month),
    messages AS (
      INSERT INTO indicator_messages (essms, message_id, month) SELECT essms, message_id, month FROM moved
      ON CONFLICT (essms, message_id) DO UPDATE SET month = EXCLUDED.month),
    counts AS (
      INSERT INTO indicator_message_counts AS c (essms, month, n)
      SELECT essms, month, SUM(d) FROM (
        SELECT essms, month, 1 AS d FROM moved
        UNION ALL
        SELECT essms, was, -1 FROM moved WHERE was IS NOT NULL) z
      GROUP BY essms, month
      ON CONFLICT (essms, month) DO UPDATE SET n = c.n + EXCLUDED.n)
    INSERT INTO indicator_facts AS t (operation, essms, person, fact_key, version, status, start, "end", first_date)
    SELECT operation, essms, person, fact_key, v[1], v[2], v[3], v[4], first_date FROM (
      SELECT x.operation AS operation, x.essms AS essms, x.person AS person, x.fact_key AS fact_key,
             MAX(ARRAY[{VERSION_KEY}, x.fact_status, x.fact_start, x.fact_end]) AS v, MIN(x.fact_date) AS first_date
      FROM {{source}} x
      WHERE x.service = 'tddui' AND x.outcome = 'accepted' AND x.fact_key IS NOT NULL
        AND x.operation IN ({", ".join(f"'{op}'" for op in VERSIONED_FACTS)})
        AND x.essms IS NOT NULL AND x.person IS NOT NULL
      GROUP BY x.operation, x.essms, x.person, x.fact_key) f
    ON CONFLICT (operation, essms, person, fact_key) DO UPDATE SET
      version = GREATEST(t.version, EXCLUDED.version),
      status = CASE WHEN EXCLUDED.version > t.version THEN EXCLUDED.status ELSE t.status END,
      start = CASE WHEN EXCLUDED.version > t.version THEN EXCLUDED.start ELSE t.start END,
      "end" = CASE WHEN EXCLUDED.version > t.version THEN EXCLUDED."end" ELSE t."end" END,
      first_date = LEAST(t.first_date, EXCLUDED.first_date)"""
#: The cahier de liaison's operations (harness.analytics.indicators: CDL_READ, CDL_SEARCH, CDL_PLATFORM_NOTE).
CDL_OPERATIONS = ("cdl.read", "cdl.search", "platform.note")
_CDL_OPS = ", ".join(f"'{op}'" for op in CDL_OPERATIONS)
#: Schema 5: the notes of the cahier de liaison received by the DUI (``run|note id``, as the engine names them):
#: ``indicator_cdl_platform_notes`` those the platform wrote (any ESSMS, any outcome), ``indicator_cdl_receipts``
#: the first month each ESSMS read one or found it in a search (accepted), whether the platform wrote it or not
#: (its note may come later). Monotone like the others.
_CDL_TABLES = (
    f"""CREATE TABLE indicator_cdl_platform_notes (
    note text {_C} PRIMARY KEY
    )""",
    f"""CREATE TABLE indicator_cdl_receipts (
    essms text {_C} NOT NULL,
    note  text {_C} NOT NULL,
    month text {_C} NOT NULL,
    PRIMARY KEY (essms, note)
    )""",
)
_NOTE_ID = "(COALESCE(x.run_id, '') || '|' || (x.details -> 'note' ->> 'id'))"
_CDL_UPDATE = f"""WITH
    platform AS (
      INSERT INTO indicator_cdl_platform_notes (note)
      SELECT DISTINCT {_NOTE_ID} FROM {{source}} x
      WHERE x.service = 'eparcours' AND x.operation = '{CDL_OPERATIONS[2]}' AND {_NOTE_ID} IS NOT NULL
      ON CONFLICT DO NOTHING)
    INSERT INTO indicator_cdl_receipts AS t (essms, note, month)
    SELECT essms, note, MIN(month) FROM (
      SELECT x.essms AS essms, {_NOTE_ID} AS note, x.month AS month FROM {{source}} x
      WHERE x.service = 'eparcours' AND x.operation = '{CDL_OPERATIONS[0]}' AND x.outcome = 'accepted'
        AND x.essms IS NOT NULL
      UNION ALL
      SELECT x.essms, COALESCE(x.run_id, '') || '|' || (j.value ->> 'id'), x.month
      FROM {{source}} x,
           json_array_elements(CASE WHEN json_typeof(x.details -> 'notes') = 'array' THEN x.details -> 'notes' END) j(value)
      WHERE x.service = 'eparcours' AND x.operation = '{CDL_OPERATIONS[1]}' AND x.outcome = 'accepted'
        AND x.essms IS NOT NULL) g
    WHERE note IS NOT NULL
    GROUP BY essms, note
    ON CONFLICT (essms, note) DO UPDATE SET month = LEAST(t.month, EXCLUDED.month)"""
#: The événement statuses that retract it (harness.fields.dui.EVENT_STATUSES_NOT_COUNTED).
RETRACTED_EVENTS = ("cancelled", "entered-in-error")
_EVENTS = f"""SELECT x.essms, x.person FROM {{source}} x
      WHERE x.service = 'tddui' AND x.outcome = 'accepted' AND x.fact_key IS NOT NULL
        AND x.operation = '{VERSIONED_FACTS[1]}' AND x.essms IS NOT NULL AND x.person IS NOT NULL"""
_AGENDA_UPDATE = f"""INSERT INTO indicator_agenda AS t (essms, person, first_date)
    SELECT f.essms, f.person,
           MIN(f.first_date) FILTER (WHERE f.status IS NULL OR f.status NOT IN ({", ".join(f"'{s}'" for s in RETRACTED_EVENTS)}))
    FROM indicator_facts f
    WHERE f.operation = '{VERSIONED_FACTS[1]}' AND (f.essms, f.person) IN ({_EVENTS})
    GROUP BY f.essms, f.person
    ON CONFLICT (essms, person) DO UPDATE SET first_date = EXCLUDED.first_date"""
#: (condition on the inserted rows, statement) run by the trigger, in this order
_USAGE_PART = (
    "x.outcome = 'accepted' AND x.service IN ('mssante', 'dmp', 'tddui')",
    _AGGREGATE_UPDATE.replace("{source}", "new_rows"),
)
_AGENDA_PART = (
    f"x.outcome = 'accepted' AND x.service = 'tddui' AND x.operation = '{VERSIONED_FACTS[1]}'",
    _AGENDA_UPDATE.replace("{source}", "new_rows"),
)
_CDL_PART = (f"x.service = 'eparcours' AND x.operation IN ({_CDL_OPS})", _CDL_UPDATE.replace("{source}", "new_rows"))


def _trigger_function(*parts: tuple[str, str]) -> str:
    """The trigger function updating the aggregates: each statement when some inserted row meets its condition."""
    body = "\n".join(f"IF EXISTS (SELECT 1 FROM new_rows x WHERE {when}) THEN\n{sql};\nEND IF;" for when, sql in parts)
    return f"""CREATE OR REPLACE FUNCTION socle_indicator_aggregates() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
    {body}
    RETURN NULL;
    END $$"""


#: Migrations from version ``v`` to ``v + 1``. A new database gets version 1 (:data:`_DDL`) then every step: one
#: path, the one an existing database takes.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 1 -> 2: the SQLite journal's indexes (harness.core.journal, issue 18), each with a named reader; no query
    # read month-first, (service, operation, month) or time; person lookups are the RNIV identity status's.
    1: (
        "DROP INDEX ix_exchanges_month_essms",
        "DROP INDEX ix_exchanges_service_month",
        "DROP INDEX ix_exchanges_ts",
        "DROP INDEX ix_exchanges_person",
        "DROP INDEX ix_exchanges_usage",
        "CREATE INDEX ix_exchanges_identity ON exchanges (person, run_id, essms, service, outcome)",
        """CREATE INDEX ix_exchanges_persons ON exchanges (service, operation, outcome, essms, person, month)
        WHERE service IN ('dmp', 'mssante')""",
    ),
    # 2 -> 3: sessions (harness.core.sessions): the registry, a member in one open session at most, and the
    # session of each exchange (a partial index: exchanges outside any session write no entry of it)
    2: (
        f"ALTER TABLE exchanges ADD COLUMN session_id text {_C}",
        "CREATE INDEX ix_exchanges_session ON exchanges (session_id, seq) WHERE session_id IS NOT NULL",
        f"""CREATE TABLE sessions (
        id       text {_C} PRIMARY KEY,
        label    text NOT NULL,
        dui      text NOT NULL,
        created  timestamptz NOT NULL,
        closed   timestamptz,
        revision bigint NOT NULL
        )""",
        "CREATE INDEX ix_sessions_revision ON sessions (revision)",
        f"""CREATE TABLE session_members (
        session_id text {_C} NOT NULL REFERENCES sessions (id),
        kind       text {_C} NOT NULL,
        value      text {_C} NOT NULL,
        active     boolean NOT NULL DEFAULT true,
        PRIMARY KEY (session_id, kind, value)
        )""",
        "CREATE UNIQUE INDEX ux_session_members_open ON session_members (kind, value) WHERE active",
    ),
    # 3 -> 4: the indicator engine's incremental aggregates (harness.analytics.indicators_pg), kept by a trigger
    # in the writer's transaction and filled from the exchanges already there
    3: (
        *_AGGREGATE_TABLES,
        _AGGREGATE_UPDATE.replace("{source}", "exchanges"),
        _trigger_function(_USAGE_PART),
        """CREATE TRIGGER exchanges_indicator_aggregates AFTER INSERT ON exchanges REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION socle_indicator_aggregates()""",
    ),
    # 4 -> 5: the cahier de liaison's platform notes and their first receipt per ESSMS, kept by the same trigger
    4: (
        *_CDL_TABLES,
        _CDL_UPDATE.replace("{source}", "exchanges"),
        _trigger_function(_USAGE_PART, _CDL_PART),
    ),
    # 5 -> 6: per person, the first producer date of their événements not retracted (the agenda's « sans_fenetre »
    # reading), recomputed from indicator_facts for the persons of each insert, after it
    5: (
        f"""CREATE TABLE indicator_agenda (
        essms      text {_C} NOT NULL,
        person     text {_C} NOT NULL,
        first_date text {_C},
        PRIMARY KEY (essms, person)
        )""",
        _AGENDA_UPDATE.replace("{source}", "exchanges"),
        _trigger_function(_USAGE_PART, _AGENDA_PART, _CDL_PART),
    ),
}

_RESTORABLE = (
    "actor", "essms", "person", "error_code", "error_message", "payload_type", "run_id", "scenario_id", "session_id",
)  # fmt: skip
_INSERT = (
    "INSERT INTO exchanges (id, ts, month, service, operation, direction, outcome, actor, essms, person, error_code,"
    " error_message, digest, payload_type, details, run_id, scenario_id, fact_key, fact_date, fact_start, fact_end,"
    " fact_status, message_id, exact, session_id) VALUES"
    " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_COLUMNS = (
    "seq, id, ts, service, operation, direction, outcome, actor, essms, person, error_code, "
    "error_message, digest, payload_type, details::text, run_id, scenario_id, exact::text, session_id"
)


class SchemaTooNewError(RuntimeError):
    """The database holds a journal written by a newer socle-harness: this version must not write to it."""


class JournalUnavailableError(ValueError):
    """The PostgreSQL server cannot be reached (or refuses the connection)."""


def redact(url: str) -> str:
    """The URL without its password (for messages and reports)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def _split_options(url: str) -> tuple[str, dict[str, float]]:
    """``(libpq URL, pool options)``: ``pool_min``, ``pool_max``, ``pool_timeout`` taken out of the query string."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, float] = {}
    kept: list[tuple[str, str]] = []
    for key, value in query:
        if key in _POOL_OPTIONS:
            try:
                options[key] = float(value)
            except ValueError:
                raise ValueError(f"option {key}={value!r} du journal PostgreSQL : nombre attendu") from None
        else:
            kept.append((key, value))
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    return urlunsplit(parts._replace(scheme=scheme, query=urlencode(kept))), options


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Every pooled connection reads and writes times in UTC (``ts`` comes back as an aware UTC datetime)."""
    conn.execute("SET TIME ZONE 'UTC'")


class PostgreSQLJournal:
    """The journal in a PostgreSQL database, through a pool of psycopg 3 connections."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8, timeout: float = 10.0) -> None:
        self.url = url
        conninfo, options = _split_options(url)
        wait = options.get("pool_timeout", timeout)
        try:  # one direct connection first: an unreachable server fails at once, with libpq's reason
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=max(2, int(wait))) as conn:
                _configure(conn)
                _apply_schema(conn, url)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise JournalUnavailableError(
                f"journal PostgreSQL injoignable / unreachable: {redact(url)} ({reason}). Vérifiez que le serveur "
                "tourne, que la base existe et que l'URL --journal est la bonne."
            ) from exc
        self._pool = ConnectionPool(
            conninfo,
            min_size=int(options.get("pool_min", min_size)),
            max_size=int(options.get("pool_max", max_size)),
            timeout=wait,
            kwargs={"autocommit": True},
            configure=_configure,
            open=False,
            name="socle-journal",
        )
        self._pool.open()

    def schema_version(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT version FROM socle_schema WHERE component = 'journal'").fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------------------------------ writing
    def record(self, exchange: Exchange) -> Exchange:
        return self.record_many([exchange])[0]

    def record_many(self, exchanges: Sequence[Exchange]) -> list[Exchange]:
        """Commit several exchanges in one transaction (all or none); return them once committed."""
        stamped = [replace(e, digest=payload_digest(e.payload)) if e.payload is not None else e for e in exchanges]
        if not stamped:
            return []
        evidence = evidence_of(stamped)
        rows = [_row(e) for e in stamped]
        with self._pool.connection() as conn:
            if evidence:  # compress only what the database does not hold yet (outside the writers' lock)
                held = {
                    d for (d,) in conn.execute("SELECT digest FROM evidence WHERE digest = ANY(%s)", (list(evidence),))
                }
                blobs = [(d, len(p), *_encode(p)) for d, p in evidence.items() if d not in held]
            else:
                blobs = []
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                if blobs:
                    cur.executemany(
                        "INSERT INTO evidence (digest, size, codec, data) VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT (digest) DO NOTHING",
                        blobs,
                    )
                cur.executemany(_INSERT, rows)
        return stamped

    # ------------------------------------------------------------------------------------------ reading
    @staticmethod
    def _where(flt: JournalFilter) -> tuple[str, list[Any]]:
        conditions = flt.conditions()
        params = [
            [_text(x) for x in v] if op == "in" else _text(v) if isinstance(v, str) else v for _, op, v in conditions
        ]
        clauses = [f"{c} = ANY(%s)" if op == "in" else f"{c} {op} %s" for c, op, _ in conditions]
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def query(self, flt: JournalFilter = JournalFilter()) -> list[Exchange]:
        where, params = self._where(flt)
        sql = f"SELECT {_COLUMNS} FROM exchanges{where} ORDER BY seq"
        if flt.limit is not None:
            sql += f" LIMIT {max(int(flt.limit), 0)}"
        with self._pool.connection() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_row_to_exchange(row) for row in rows]

    def count(self, flt: JournalFilter = JournalFilter()) -> int:
        where, params = self._where(flt)
        with self._pool.connection() as conn:
            row = conn.execute(f"SELECT count(*) FROM exchanges{where}", params).fetchone()
        return int(row[0]) if row else 0

    def payload(self, digest: str) -> bytes | None:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT codec, data FROM evidence WHERE digest = %s", (_text(digest),)).fetchone()
        return None if row is None else _decode(row[0], bytes(row[1]))

    def put_payload(self, data: bytes) -> str:
        """Store ``data`` as evidence (compressed like an exchange's payload) without an exchange; its digest."""
        digest = payload_digest(data)
        with self._pool.connection() as conn:
            if conn.execute("SELECT 1 FROM evidence WHERE digest = %s", (digest,)).fetchone() is None:
                conn.execute(
                    "INSERT INTO evidence (digest, size, codec, data) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (digest) DO NOTHING",
                    (digest, len(data), *_encode(data)),
                )
        return digest

    def last_seq(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM exchanges").fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ sessions (harness.core.sessions)
    def create_session(self, session: Session) -> Session:
        pairs = session.members.pairs()
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SESSION_LOCK,))
            held = _held(cur, pairs)
            if held:
                raise SessionConflictError(conflict_message(held))
            cur.execute(
                "INSERT INTO sessions (id, label, dui, created, closed, revision) VALUES (%s, %s, %s, %s, NULL, "
                "(SELECT COALESCE(MAX(revision), 0) + 1 FROM sessions))",
                (_text(session.id), _text(session.label), _text(session.dui), session.created.astimezone(UTC)),
            )
            cur.executemany(
                "INSERT INTO session_members (session_id, kind, value, active) VALUES (%s, %s, %s, true)",
                [(_text(session.id), kind, _text(value)) for kind, value in pairs],
            )
        return replace(session, members=Members.from_pairs(pairs))

    def close_session(self, session_id: str, at: datetime | None = None) -> Session:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SESSION_LOCK,))
            cur.execute("SELECT closed FROM sessions WHERE id = %s", (_text(session_id),))
            found = cur.fetchone()
            if found is None:
                raise UnknownSessionError(unknown_message(session_id))
            if found[0] is None:
                cur.execute(
                    "UPDATE sessions SET closed = %s, revision = (SELECT MAX(revision) + 1 FROM sessions) "
                    "WHERE id = %s",
                    ((at or datetime.now(UTC)).astimezone(UTC), session_id),
                )
                cur.execute("UPDATE session_members SET active = false WHERE session_id = %s", (session_id,))
            return _read_sessions(cur, [session_id])[0]

    def sessions(self, *, open_only: bool = False) -> list[Session]:
        with self._pool.connection() as conn, conn.cursor() as cur:
            return _read_sessions(cur, None, open_only=open_only)

    def sessions_revision(self) -> int:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT COALESCE(MAX(revision), 0) FROM sessions").fetchone()
        return int(row[0]) if row else 0

    def connection(self) -> Any:
        """A pooled connection (context manager), for readers such as the indicator engine."""
        return self._pool.connection()

    def close(self) -> None:
        self._pool.close()


def _held(cur: Any, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str, Session]]:
    """The members of ``pairs`` an open session holds, with their session."""
    if not pairs:
        return []
    cur.execute(
        "SELECT m.kind, m.value, m.session_id FROM session_members m"
        " JOIN unnest(%s::text[], %s::text[]) AS w(kind, value) ON m.kind = w.kind AND m.value = w.value"
        " WHERE m.active",
        ([k for k, _ in pairs], [_text(v) for _, v in pairs]),
    )
    hits = cur.fetchall()
    holders = {s.id: s for s in _read_sessions(cur, sorted({sid for _, _, sid in hits}))}
    return [(kind, value, holders[sid]) for kind, value, sid in hits]


def _read_sessions(cur: Any, ids: list[str] | None, *, open_only: bool = False) -> list[Session]:
    clauses, params = [], []
    if ids is not None:
        clauses.append("id = ANY(%s)")
        params.append(ids)
    if open_only:
        clauses.append("closed IS NULL")
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    cur.execute(f"SELECT id, label, dui, created, closed FROM sessions{where} ORDER BY created, id", params)
    rows = cur.fetchall()
    cur.execute(
        "SELECT session_id, kind, value FROM session_members WHERE session_id = ANY(%s)", ([r[0] for r in rows],)
    )
    return sessions_from_rows(rows, cur.fetchall(), lambda stamp: stamp.astimezone(UTC))


def _apply_schema(conn: psycopg.Connection[Any], url: str, target: int = SCHEMA_VERSION) -> None:
    """Create the journal schema, migrate an older one, refuse a newer one (one process at a time); ``target``
    below :data:`SCHEMA_VERSION` builds an older layout (tests of the migrations)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS socle_schema (component text PRIMARY KEY, version integer NOT NULL)")
        row = conn.execute("SELECT version FROM socle_schema WHERE component = 'journal'").fetchone()
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(_too_new(url, version))
        if version == 0:
            for statement in _DDL:
                conn.execute(statement)
        for step in range(max(version, 1), target):
            for statement in _MIGRATIONS[step]:
                conn.execute(statement)
        if version < target:
            conn.execute(
                "INSERT INTO socle_schema (component, version) VALUES ('journal', %s) "
                "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                (target,),
            )


def _encode(payload: bytes) -> tuple[str, bytes]:
    """``(codec, stored bytes)``: zlib when it saves at least :data:`_MIN_SAVING`, else the bytes as they are."""
    if len(payload) >= 64:
        packed = zlib.compress(payload, _COMPRESS_LEVEL)
        if len(packed) <= len(payload) * (1 - _MIN_SAVING):
            return "zlib", packed
    return "identity", payload


def _decode(codec: str, data: bytes) -> bytes:
    if codec == "zlib":
        return zlib.decompress(data)
    if codec == "identity":
        return data
    raise ValueError(f"codec de preuve inconnu / unknown evidence codec {codec!r}")


def _text(value: str | None) -> str | None:
    """A value PostgreSQL text accepts: NUL characters replaced by U+FFFD."""
    return value.replace("\x00", "\ufffd") if value is not None and "\x00" in value else value


def _row(exchange: Exchange) -> tuple[Any, ...]:
    """The ``exchanges`` row of an exchange: facts and Message-ID mirrored from ``details`` (as in SQLite)."""
    fact = exchange.details.get("fact")
    facts = tuple(
        (None if (v := fact.get(k)) is None else _text(str(v))) if isinstance(fact, dict) else None for k in FACT_KEYS
    )
    message_id = exchange.details.get(MESSAGE_ID)
    exact = {
        column: value
        for column in _RESTORABLE
        if isinstance(value := getattr(exchange, column), str) and "\x00" in value
    }
    return (
        _text(exchange.id),
        exchange.ts.astimezone(UTC),
        exchange.month,
        _text(exchange.service),
        _text(exchange.operation),
        str(exchange.direction),
        str(exchange.outcome),
        _text(exchange.actor),
        _text(exchange.essms),
        _text(exchange.person),
        _text(exchange.error_code),
        _text(exchange.error_message),
        exchange.digest,
        _text(exchange.payload_type),
        json.dumps(exchange.details, ensure_ascii=False, sort_keys=True, default=str),
        _text(exchange.run_id),
        _text(exchange.scenario_id),
        *facts,
        _text(message_id) if isinstance(message_id, str) else None,
        json.dumps(exact) if exact else None,
        _text(exchange.session_id),
    )


def _row_to_exchange(row: Sequence[Any]) -> Exchange:
    (
        _seq, id_, ts, service, operation, direction, outcome, actor, essms, person,
        error_code, error_message, digest, payload_type, details, run_id, scenario_id, exact, session_id,
    ) = row  # fmt: skip
    values = dict(
        actor=actor,
        essms=essms,
        person=person,
        error_code=error_code,
        error_message=error_message,
        payload_type=payload_type,
        run_id=run_id,
        scenario_id=scenario_id,
        session_id=session_id,
    )
    if exact:
        values.update(json.loads(exact))
    return Exchange(
        id=id_,
        ts=ts.astimezone(UTC),
        service=service,
        operation=operation,
        direction=Direction(direction),
        outcome=Outcome(outcome),
        digest=digest,
        details=json.loads(details),
        **values,
    )


def probe(url: str, timeout: float = 5.0) -> None:
    """Check, without writing, that the journal at ``url`` can be opened: the server answers and the journal's
    schema is not newer than this code's (the checks a command makes before starting anything)."""
    conninfo, _ = _split_options(url)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=max(2, int(timeout))) as conn:
            held = conn.execute("SELECT to_regclass('socle_schema') IS NOT NULL").fetchone()
            row = (
                conn.execute("SELECT version FROM socle_schema WHERE component = 'journal'").fetchone()
                if held and held[0]
                else None
            )
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JournalUnavailableError(
            f"journal PostgreSQL injoignable / unreachable: {redact(url)} ({reason}). Vérifiez que le serveur "
            "tourne, que la base existe et que l'URL --journal est la bonne."
        ) from exc
    if row is not None and int(row[0]) > SCHEMA_VERSION:
        raise SchemaTooNewError(_too_new(url, int(row[0])))


def _too_new(url: str, version: int) -> str:
    return (
        f"le journal PostgreSQL {redact(url)} a le schéma version {version}, plus récent que celui que connaît "
        f"cette version de socle-harness ({SCHEMA_VERSION}) : elle n'y écrira pas. Mettez socle-harness à jour "
        "(pip install -U socle-harness) sur toutes les machines de la plateforme, ou indiquez une autre base avec "
        "--journal. / journal schema newer than this socle-harness."
    )


def open_postgresql(url: str) -> PostgreSQLJournal:
    """:func:`harness.core.journal.open_journal`'s backend for ``postgresql://`` and ``postgres://`` URLs."""
    return PostgreSQLJournal(url)
