"""The usage indicators computed in PostgreSQL: the same engine as :mod:`harness.analytics.indicators` on a
PostgreSQL journal (:mod:`harness.core.journal_pg`, issue 19).

Same method and same definitions (seed 003 §6.1 to §6.3, docs/specs/indicators.md): per (ESSMS, person) one bit
mask per kind of fact with a bit per period, and counts per month and ESSMS for the counted indicators. The bits
are counted per ESSMS and period in the server (``_count_persons``: one statement, one row per ESSMS back) where
the SQLite engine fetches every mask and sums them in Python (``_count_masks``). Otherwise only the SQL differs
where the two dialects do:

- the latest version of a fact (SQLite: the bare columns of ``MAX(version)``) is ``DISTINCT ON`` / the ``MAX``
  of an array led by the very same version key (unique: it decides alone) (``COALESCE(fact_date, '') || '#' || seq`` on 19 digits, in byte
  order: the journal's text columns are ``COLLATE "C"``);
- ``SUM(DISTINCT bit)`` is ``bit_or(bit)``; ``json_extract`` / ``json_each`` are ``->>`` /
  ``json_array_elements``; ``group_concat`` is ``string_agg`` (ids in recording order);
- over the whole journal (no run, scenario, session or sequence bound; some ESSMS or all), the MSSanté / DMP usage
  and record-updated masks, the file active and agenda masks, the MSSanté messages counted by Message-ID and the
  cahier de liaison's receipts are read from the journal's incremental aggregates (schemas 4 to 6, kept at insert
  time: :mod:`harness.core.journal_pg`) instead of every exchange: a row per person (and year), per séjour (its
  latest version), per note received and per ESSMS and month, where the exchanges have a row per version, message
  and read (benchmarks/README.md: 1,000,000 exchanges in about half the CPU). Same figures
  (tests/test_indicators_postgresql.py compares them with the SQLite engine's and with ``aggregates=False``, which
  reads every exchange as before); the projets personnalisés are still read from every version;
- one ``REPEATABLE READ`` transaction is the snapshot every statement reads; the drill-down's mask scans run on
  several pooled connections that import that snapshot (``pg_export_snapshot``), instead of SQLite's worker
  processes.

:func:`indicator_engine` picks the engine for a journal; tests/test_indicators_postgresql.py checks that both
give the same report for the same generated grappe.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from typing import TYPE_CHECKING, Any

from harness.analytics.indicators import (
    _AGENDA,
    _DMP,
    _FA,
    _FACTS,
    _MEASURES,
    _MSSANTE,
    _PLAN,
    _RETRACTED,
    _UPDATED,
    BY_KEY,
    CAHIER_LIAISON,
    CDL_PLATFORM_NOTE,
    CDL_READ,
    CDL_SEARCH,
    CDL_WRITES,
    DMP,
    EPRESCRIPTION,
    MSSANTE,
    Evidence,
    EvidenceItem,
    IndicatorEngine,
    Kind,
    MssanteCounting,
    Period,
    Scope,
    Source,
    _by_person,
    _Months,
    _operation_sql,
    resolve_readings,
    resolve_targets,
)
from harness.core.journal import Journal, SQLiteJournal
from harness.fields import dui

if TYPE_CHECKING:
    from harness.core.journal_pg import PostgreSQLJournal

#: The version key of a fact (its latest version decides): the SQLite engine's ``MAX()`` argument, same bytes.
_VERSION = "(COALESCE(x.fact_date, '') || '#' || lpad(x.seq::text, 19, '0')) COLLATE \"C\""


_WORK_MEM = "64MB"


def _range_mask(low: str, high: str) -> str:
    """Bits ``low``..``high`` set (bigint), 0 when ``low > high``."""
    return (
        f"(CASE WHEN {low} <= {high} THEN ((CAST(1 AS BIGINT) << ({high} + 1)) - 1) "
        f"- ((CAST(1 AS BIGINT) << ({low})) - 1) ELSE 0 END)"
    )


def _json_text(doc: str, *path: str) -> str:
    """``json_extract(doc, '$.a.b')`` for a scalar: ``doc -> 'a' ->> 'b'``."""
    *heads, last = path
    return doc + "".join(f" -> '{p}'" for p in heads) + f" ->> '{last}'"


def _notes(doc: str) -> str:
    """``json_each(doc, '$.notes')``: the elements of the ``notes`` array (none when it is absent or no array)."""
    return f"json_array_elements(CASE WHEN json_typeof({doc} -> 'notes') = 'array' THEN {doc} -> 'notes' END)"


class _Connection:
    """A pooled psycopg connection speaking the SQLite engine's calls: ``?`` placeholders, ``BEGIN`` (here one
    ``REPEATABLE READ`` snapshot), ``executemany``, ``close`` (back to the pool)."""

    def __init__(self, journal: PostgreSQLJournal) -> None:
        self._stack = ExitStack()
        self.conn = self._stack.enter_context(journal.connection())

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if sql == "BEGIN":
            self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            # the sorts and hash aggregates of the counting statement in memory (4 MB spilled them to disk at
            # 1,000,000 exchanges); for this transaction only
            return self.conn.execute(f"SET LOCAL work_mem = '{_WORK_MEM}'")
        if not params:
            return self.conn.execute(sql)
        return self.conn.execute(sql.replace("%", "%%").replace("?", "%s"), list(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), rows)

    def close(self) -> None:
        from psycopg import pq

        if self.conn.info.transaction_status != pq.TransactionStatus.IDLE:  # a failed statement left one open
            self.conn.rollback()
        self._stack.close()


class PostgresIndicatorEngine(IndicatorEngine):
    """:class:`~harness.analytics.indicators.IndicatorEngine` on a PostgreSQL journal."""

    def __init__(
        self,
        journal: Journal,
        targets: Mapping[str, Any] | None = None,
        mssante_counting: MssanteCounting | str = MssanteCounting.MESSAGES,
        *,
        readings: Mapping[str, Any] | None = None,
        workers: int | None = None,
        parallel_from: int = 50_000,
        aggregates: bool = True,
    ) -> None:
        from harness.core.journal_pg import PostgreSQLJournal  # psycopg is loaded for a PostgreSQL journal only

        if not isinstance(journal, PostgreSQLJournal):
            raise NotImplementedError("ce moteur lit un journal PostgreSQL / this engine needs a PostgreSQL journal")
        self.journal = journal
        self.targets = resolve_targets(targets)
        self.workers = workers if workers is not None else 3
        # compute() starts SQLite worker processes from parallel_from on: never here; the mask scans share the
        # snapshot on pooled connections instead (_masks), from threads_from exchanges on
        self.parallel_from = sys.maxsize
        self.threads_from = parallel_from
        # read the journal's incremental aggregates where they answer (False: every measure from the exchanges,
        # the engine before schema 4; benchmarks compare the two)
        self.aggregates = aggregates
        self.readings = resolve_readings({"mssante": str(mssante_counting), **(readings or {})})
        self.mssante_counting = MssanteCounting(self.readings["mssante"])

    def _connect(self) -> Any:
        return _Connection(self.journal)

    # -------------------------------------------------------------------------------------- compute
    def _masks(self, con: Any, periods: Sequence[Period], scope: Scope) -> dict[int, dict[tuple[str, str], int]]:
        """The mask scans of the SQLite engine (drill-down), in ``con``'s snapshot: on ``con`` alone for a small
        journal, else at once on pooled connections that import the snapshot (:meth:`_fetch_all`)."""
        kinds = (_FA, *self._usage_kinds(), _UPDATED, _AGENDA, _PLAN)
        queries = dict(zip(kinds, self._mask_queries(periods, scope), strict=True))
        size = con.execute("SELECT COALESCE(MAX(seq), 0) FROM exchanges").fetchone()[0]
        if self.workers <= 1 or size < self.threads_from:
            return {kind: _by_person(con.execute(*queries[kind]).fetchall()) for kind in kinds}
        order = sorted(kinds, key=lambda k: (k != _UPDATED, k != _AGENDA, k != _PLAN))  # the costliest first
        rows = dict(zip(order, self._fetch_all(con, [queries[kind] for kind in order]), strict=True))
        return {kind: _by_person(rows[kind]) for kind in kinds}

    def _count_persons(
        self, con: Any, periods: Sequence[Period], scope: Scope, numbers: dict[tuple[str, str, str], int]
    ) -> set[str]:
        """What ``_count_masks`` counts, counted in the server: the mask scans joined per (ESSMS, person), the
        measure masks of :data:`_MEASURES` built there and their bits counted per ESSMS and period, so that one
        row per ESSMS travels instead of one per person and kind."""
        kinds = (_FA, *self._usage_kinds(), _UPDATED, _AGENDA, _PLAN)
        queries = self._mask_queries(periods, scope)
        aggregated = _aggregate_masks(periods, scope, self._usage_kinds(), self.readings) if self.aggregates else None
        if aggregated is not None:  # the same masks from the journal's aggregates (schema 4)
            queries = [aggregated.get(kind, query) for kind, query in zip(kinds, queries, strict=True)]
        scans = " UNION ALL ".join(f"({sql})" for sql, _ in queries)

        def mask(kind: int) -> str:
            if kind not in kinds:
                return "CAST(0 AS BIGINT)"
            return f"COALESCE(bit_or(u.mask) FILTER (WHERE u.kind = {kind}), 0)"

        measures = (  # per person, in the order of _MEASURES (see _count_masks)
            "fa",
            "fa & ms",
            "fa & dm",
            "fa & upd",
            "fa & upd & pp",
            "fa & upd & ag",
            "ms & ~fa",
            "dm & ~fa",
        )
        assert len(measures) == len(_MEASURES)
        counts = ", ".join(
            f"COUNT(*) FILTER (WHERE (m{i} & {1 << k}) <> 0)" for i in range(len(measures)) for k in range(len(periods))
        )
        sql = f"""SELECT essms, {counts} FROM (
                    SELECT essms, {", ".join(f"{m} AS m{i}" for i, m in enumerate(measures))} FROM (
                      SELECT u.essms AS essms, {mask(_FA)} AS fa, {mask(_MSSANTE)} AS ms, {mask(_DMP)} AS dm,
                             {mask(_UPDATED)} AS upd, {mask(_PLAN)} AS pp, {mask(_AGENDA)} AS ag
                      FROM ({scans}) u(essms, person, kind, mask)
                      WHERE {{range}}
                      GROUP BY u.essms, u.person) p) q
                  GROUP BY essms"""
        params = [p for _, params in queries for p in params]
        # ESSMS ranges, one statement each, run at once (the condition reaches every scan's index)
        bounds = self._essms_bounds(con)
        ranges = [("u.essms < ?", [bounds[0]])] if bounds else [("TRUE", [])]
        ranges += [("u.essms >= ? AND u.essms < ?", [low, high]) for low, high in zip(bounds, bounds[1:], strict=False)]
        ranges += [("u.essms >= ?", [bounds[-1]])] if bounds else []
        jobs = [(sql.replace("{range}", condition), [*params, *values]) for condition, values in ranges]
        seen: set[str] = set()
        n = len(periods)
        labels = [p.label for p in periods]
        for essms, *found in (row for rows in self._fetch_all(con, jobs) for row in rows):
            seen.add(essms)
            for i, measure in enumerate(_MEASURES):
                for k, label in enumerate(labels):
                    if found[i * n + k]:
                        numbers[(measure, label, essms)] = found[i * n + k]
        return seen

    def _essms_bounds(self, con: Any) -> list[str]:
        """Where to cut the ESSMS into :attr:`workers` ranges of about as many exchanges (from the planner's
        statistics of the column): none below ``threads_from`` exchanges, on one worker or before the table was
        analysed. Any cut gives the same figures."""
        if self.workers <= 1:
            return []
        size = con.execute("SELECT COALESCE(MAX(seq), 0) FROM exchanges").fetchone()[0]
        if size < self.threads_from:
            return []
        row = con.execute(
            "SELECT CAST(CAST(histogram_bounds AS text) AS text[]), CAST(CAST(most_common_vals AS text) AS text[])"
            " FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'exchanges' AND attname = 'essms'"
        ).fetchone()
        values = sorted((row[0] or row[1] or []) if row else [])  # few ESSMS: no histogram, the common values
        cuts = {values[len(values) * k // self.workers] for k in range(1, self.workers)} if values else set()
        return sorted(cuts)

    def _fetch_all(self, con: Any, jobs: Sequence[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        """The rows of each statement, all in ``con``'s snapshot: the first on ``con``, the others at the same time
        on pooled connections that import the snapshot (``SET TRANSACTION SNAPSHOT``), :attr:`workers` at most."""
        if len(jobs) <= 1 or self.workers <= 1:
            return [con.execute(sql, params).fetchall() for sql, params in jobs]
        snapshot = con.execute("SELECT pg_export_snapshot()").fetchone()[0]

        def run(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
            with closing(self._connect()) as other:
                other.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                other.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                other.execute(f"SET LOCAL work_mem = '{_WORK_MEM}'")
                try:
                    return other.execute(sql, params).fetchall()
                finally:
                    other.execute("ROLLBACK")

        with ThreadPoolExecutor(max(1, min(self.workers, len(jobs)) - 1)) as pool:
            others = [pool.submit(run, sql, params) for sql, params in jobs[1:]]
            first = con.execute(*jobs[0]).fetchall()
            return [first, *(future.result() for future in others)]

    def _mask_queries(self, periods: Sequence[Period], scope: Scope) -> list[tuple[str, list[Any]]]:
        """The SQLite engine's mask statements (same order, same meaning) in PostgreSQL."""
        queries: list[tuple[str, list[Any]]] = []
        where, params = scope.sql()
        n = len(periods)
        months = _Months(periods)
        # File active: the current version of each séjour covers the periods from the first ending on/after its
        # admission to the last starting on/before its exit; a cancelled / entered-in-error one is retracted.
        queries.append(
            (
                f"""SELECT essms, person, {_FA}, mask FROM (
                  SELECT essms, person, {_range_mask("ka", "kb")} AS mask FROM (
                    SELECT essms, person, {months.first_ending_on_or_after("s")} AS ka,
                           CASE WHEN e IS NULL THEN {n - 1} ELSE {months.last_starting_on_or_before("e")} END AS kb
                    FROM (SELECT DISTINCT ON (x.essms, x.person, x.fact_key)
                                 x.essms AS essms, x.person AS person,
                                 x.fact_start AS s, x.fact_end AS e, x.fact_status AS st
                          FROM exchanges x
                          WHERE {_FACTS} AND x.operation = ? AND x.essms IS NOT NULL AND x.person IS NOT NULL{where}
                          ORDER BY x.essms, x.person, x.fact_key, {_VERSION} DESC) v
                    WHERE s IS NOT NULL AND (st IS NULL OR st NOT IN ({_RETRACTED}))) r) q
                WHERE mask <> 0""",
                [str(dui.FactKind.SEJOUR), *params],
            )
        )
        first, last = periods[0].start, periods[-1].end
        for kind in self._usage_kinds():
            source = MSSANTE if kind == _MSSANTE else DMP
            op_sql, op_params = _operation_sql(source)
            queries.append(
                (
                    f"""SELECT x.essms, x.person, {kind}, bit_or({months.bit("x.month")}) AS mask
                    FROM exchanges x
                    WHERE x.service = ? AND {op_sql} AND x.outcome = 'accepted'
                      AND x.essms IS NOT NULL AND x.person IS NOT NULL AND x.month BETWEEN ? AND ?{where}
                    GROUP BY x.essms, x.person HAVING bit_or({months.bit("x.month")}) <> 0""",
                    [source.service, *op_params, first, last, *params],
                )
            )
        queries.append(
            (
                f"""SELECT essms, person, {_UPDATED}, upd FROM (
                  SELECT x.essms AS essms, x.person AS person, bit_or({months.bit("x.fact_date")}) AS upd
                  FROM exchanges x
                  WHERE {_FACTS} AND x.essms IS NOT NULL AND x.person IS NOT NULL{where}
                  GROUP BY x.essms, x.person) u
                WHERE upd <> 0""",
                params,
            )
        )
        # Agenda: the latest version of each événement decides; the periods its versions were recorded in.
        if self.readings["agenda"] == "periode":
            per_person = f"bit_or({months.bit('st')})"
        else:
            per_person = f"MAX({(1 << n) - 1} & ~((recorded & -recorded) - 1))"
        queries.append(
            (
                f"""SELECT essms, person, {_AGENDA}, mask FROM (
                  SELECT essms, person, {per_person} AS mask FROM (
                    SELECT x.essms AS essms, x.person AS person,
                           (MAX(ARRAY[{_VERSION}, x.fact_status, x.fact_start]))[2] AS status,
                           (MAX(ARRAY[{_VERSION}, x.fact_status, x.fact_start]))[3] AS st,
                           bit_or(CAST(1 AS BIGINT) << {months.first_ending_on_or_after("x.fact_date")}) AS recorded
                    FROM exchanges x
                    WHERE {_FACTS} AND x.operation = ? AND x.essms IS NOT NULL AND x.person IS NOT NULL{where}
                    GROUP BY x.essms, x.person, x.fact_key) v
                  WHERE status IS NULL OR status NOT IN ({_RETRACTED})
                  GROUP BY essms, person) a
                WHERE mask <> 0""",
                [str(dui.FactKind.EVENEMENT), *params],
            )
        )
        # Projets personnalisés: each version in force from its date to the day before the next version's; a plan
        # whose latest version is entered-in-error never existed (none of its versions counts).
        statuses = ", ".join(f"'{s}'" for s in dui.PLAN_STATUSES_COUNTED)
        if self.readings["projet_personnalise"] == "fin_de_periode":
            kb = f"CASE WHEN nd IS NULL THEN {n - 1} ELSE {months.first_ending_on_or_after('nd')} - 1 END"
        else:
            kb = (
                f"CASE WHEN nd IS NULL THEN {n - 1} ELSE GREATEST({months.last_starting_before('nd')}, "
                f"{months.last_starting_on_or_before('d')}) END"
            )
        queries.append(
            (
                f"""SELECT essms, person, {_PLAN}, mask FROM (
                  SELECT essms, person, {_range_mask("ka", "kb")} AS mask FROM (
                    SELECT essms, person, {months.first_ending_on_or_after("d")} AS ka, {kb} AS kb
                    FROM (SELECT x.essms AS essms, x.person AS person, x.fact_date AS d, x.fact_status AS st,
                                 LEAD(x.fact_date) OVER versions AS nd,
                                 LAST_VALUE(x.fact_status) OVER (versions ROWS BETWEEN UNBOUNDED PRECEDING
                                                                 AND UNBOUNDED FOLLOWING) AS latest
                          FROM exchanges x
                          WHERE {_FACTS} AND x.operation = ? AND x.fact_date IS NOT NULL
                            AND x.essms IS NOT NULL AND x.person IS NOT NULL{where}
                          WINDOW versions AS (PARTITION BY x.essms, x.person, x.fact_key ORDER BY x.fact_date, x.seq)) v
                    WHERE st IN ({statuses}) AND latest IS DISTINCT FROM '{dui.PLAN_RETRACTED}') r) q
                WHERE mask <> 0""",
                [str(dui.FactKind.PROJET), *params],
            )
        )
        return queries

    def _count_queries(self, scope: Scope, first: str, last: str) -> list[tuple[str, str, list[Any]]]:
        """The SQLite engine's counted measures (same statements without its index hints)."""
        where, params = scope.sql()
        out: list[tuple[str, str, list[Any]]] = []

        def plain(key: str, source: Source) -> None:
            op_sql, op_params = _operation_sql(source)
            out.append(
                (
                    key,
                    f"""SELECT x.month, x.essms, COUNT(*) FROM exchanges x
                    WHERE x.service = ? AND {op_sql} AND x.outcome = 'accepted' AND x.essms IS NOT NULL
                      AND x.month BETWEEN ? AND ?{where}
                    GROUP BY x.month, x.essms""",
                    [source.service, *op_params, first, last, *params],
                )
            )

        plain("eprescription", EPRESCRIPTION)
        if self.readings["cahier_liaison"] == "appels":
            plain("cahier_liaison", CAHIER_LIAISON)
        else:
            plain("cahier_liaison", Source(CAHIER_LIAISON.service, CDL_WRITES))
            anywhere, anywhere_params = Scope(scope.run_id, scope.scenario_id, (), scope.max_seq, scope.session).sql()
            if self.aggregates and _aggregated(scope):
                # the first month each ESSMS received each note is kept at insert time (indicator_cdl_receipts,
                # schema 5): as for the messages, the first month up to ``last`` is that month if not after it
                essms_where, essms_params = scope.sql("r")
                out.append(
                    (
                        "cahier_liaison",
                        f"""SELECT r.month, r.essms, COUNT(*) FROM indicator_cdl_receipts r
                            WHERE r.month BETWEEN ? AND ?{essms_where}
                              AND r.note IN (SELECT p.note FROM indicator_cdl_platform_notes p)
                            GROUP BY r.month, r.essms""",
                        [first, last, *essms_params],
                    )
                )
            else:
                out.append(
                    ("cahier_liaison", *self._cdl_receipts_sql(where, params, anywhere, anywhere_params, first, last))
                )
        if self.mssante_counting is MssanteCounting.MESSAGES:
            ops = ", ".join(f"'{op}'" for op in MSSANTE.operations)
            base = f"""FROM exchanges x
                       WHERE x.service = 'mssante' AND x.operation IN ({ops}) AND x.outcome = 'accepted'
                         AND x.essms IS NOT NULL AND x.month <= ?{where}"""
            if self.aggregates and _aggregated(scope):
                # the messages per ESSMS and first month of their Message-ID are counted at insert time
                # (indicator_message_counts): the first month up to ``last`` is that month when it is not after
                # ``last``, else there is none
                essms_where, essms_params = scope.sql("m")
                out.append(
                    (
                        "mssante_messages",
                        f"""SELECT m.month, m.essms, m.n FROM indicator_message_counts m
                            WHERE m.month BETWEEN ? AND ? AND m.n <> 0{essms_where}
                            UNION ALL
                            SELECT x.month, x.essms, COUNT(*) {base}
                              AND x.message_id IS NULL AND x.month >= ?
                            GROUP BY x.month, x.essms""",
                        [first, last, *essms_params, last, *params, first],
                    )
                )
                return out
            out.append(
                (
                    "mssante_messages",
                    f"""SELECT month, essms, COUNT(*) FROM (
                          SELECT x.essms AS essms, MIN(x.month) AS month {base}
                            AND x.message_id IS NOT NULL
                          GROUP BY x.essms, x.message_id) f
                        WHERE month >= ? GROUP BY month, essms
                        UNION ALL
                        SELECT x.month, x.essms, COUNT(*) {base}
                          AND x.message_id IS NULL AND x.month >= ?
                        GROUP BY x.month, x.essms""",
                    [last, *params, first, last, *params, first],
                )
            )
        return out

    @staticmethod
    def _cdl_receipts_sql(
        where: str, params: list[Any], anywhere: str, anywhere_params: list[Any], first: str, last: str
    ) -> tuple[str, list[Any]]:
        """Platform notes first received by the DUI, per month and ESSMS (see the SQLite engine's)."""
        sql = f"""WITH got(essms, note, month) AS (
                    SELECT x.essms, COALESCE(x.run_id, '') || '|' || ({_json_text("x.details", "note", "id")}),
                           x.month
                    FROM exchanges x
                    WHERE x.service = 'eparcours' AND x.operation = '{CDL_READ}' AND x.outcome = 'accepted'
                      AND x.essms IS NOT NULL AND x.month <= ?{where}
                    UNION ALL
                    SELECT x.essms, COALESCE(x.run_id, '') || '|' || ({_json_text("j.value", "id")}), x.month
                    FROM exchanges x, {_notes("x.details")} j(value)
                    WHERE x.service = 'eparcours' AND x.operation = '{CDL_SEARCH}' AND x.outcome = 'accepted'
                      AND x.essms IS NOT NULL AND x.month <= ?{where})
                  SELECT month, essms, COUNT(*) FROM (
                    SELECT g.essms AS essms, MIN(g.month) AS month FROM got g
                    WHERE g.note IN (
                      SELECT COALESCE(x.run_id, '') || '|' || ({_json_text("x.details", "note", "id")})
                      FROM exchanges x
                      WHERE x.service = 'eparcours' AND x.operation = '{CDL_PLATFORM_NOTE}'{anywhere})
                    GROUP BY g.essms, g.note) f
                  WHERE month >= ? GROUP BY month, essms"""
        return sql, [last, *params, last, *params, *anywhere_params, first]

    # -------------------------------------------------------------------------------------- drill-down
    def _prepare(self, con: Any, periods: Sequence[Period], scope: Scope) -> None:
        """The per-person masks for ``periods`` in the temporary table ``m`` (gone with the transaction)."""
        con.execute(
            'CREATE TEMP TABLE m (essms text COLLATE "C", person text COLLATE "C", kind integer, mask bigint,'
            " PRIMARY KEY (essms, person, kind)) ON COMMIT DROP"
        )
        con.executemany(
            "INSERT INTO m VALUES (?, ?, ?, ?)",
            [
                (essms, person, kind, mask)
                for kind, masks in self._masks(con, periods, scope).items()
                for (essms, person), mask in masks.items()
            ],
        )

    def evidence(
        self,
        indicator: str,
        period: Period,
        essms: str | None,
        scope: Scope = Scope(),
        limit: int = 500,
        campaign_start: str | None = None,
    ) -> Evidence:
        """The journal exchanges behind one figure (see the SQLite engine's); ids in recording order."""
        if indicator not in BY_KEY:
            raise ValueError(f"indicateur inconnu / unknown indicator {indicator!r}")
        narrowed = Scope(scope.run_id, scope.scenario_id, (essms,) if essms else scope.essms, session=scope.session)
        figure = self.compute([period], narrowed, grappe=(essms,) if essms else (), campaign_start=campaign_start).get(
            indicator, period, essms
        )
        where, params = narrowed.sql()
        d = BY_KEY[indicator]
        pstart, pend = period.first_day.isoformat(), period.last_day.isoformat()
        rows: list[tuple[str, str | None, str | None]] = []
        ids = "string_agg(x.id, ',' ORDER BY x.seq)"
        with closing(self._connect()) as con:
            con.execute("BEGIN")
            try:
                self._prepare(con, [period], narrowed)
                if d.kind is Kind.COUNT:
                    notes = indicator == "cahier_liaison" and self.readings["cahier_liaison"] == "notes"
                    source = Source(CAHIER_LIAISON.service, CDL_WRITES) if notes else d.source
                    op_sql, op_params = _operation_sql(source)
                    rows = [
                        ("counted", person, ident)
                        for person, ident in con.execute(
                            f"""SELECT x.person, x.id FROM exchanges x
                            WHERE x.service = ? AND {op_sql} AND x.outcome = 'accepted' AND x.essms IS NOT NULL
                              AND x.month BETWEEN ? AND ?{where} ORDER BY x.seq""",
                            [source.service, *op_params, period.start, period.end, *params],
                        )
                    ]
                    if notes:
                        anywhere, anywhere_params = Scope(scope.run_id, scope.scenario_id, session=scope.session).sql()
                        rows += [
                            ("counted", person, ident)
                            for person, ident in con.execute(
                                f"""WITH got(essms, note, month, seq, id, person) AS (
                                  SELECT x.essms,
                                         COALESCE(x.run_id, '') || '|' || ({_json_text("x.details", "note", "id")}),
                                         x.month, x.seq, x.id, x.person FROM exchanges x
                                  WHERE x.service = 'eparcours' AND x.operation = '{CDL_READ}'
                                    AND x.outcome = 'accepted' AND x.essms IS NOT NULL{where}
                                  UNION ALL
                                  SELECT x.essms, COALESCE(x.run_id, '') || '|' || ({_json_text("j.value", "id")}),
                                         x.month, x.seq, x.id, ({_json_text("j.value", "person")})
                                  FROM exchanges x, {_notes("x.details")} j(value)
                                  WHERE x.service = 'eparcours' AND x.operation = '{CDL_SEARCH}'
                                    AND x.outcome = 'accepted' AND x.essms IS NOT NULL{where})
                                SELECT person, id FROM (
                                  SELECT DISTINCT ON (g.essms, g.note) g.person AS person, g.id AS id,
                                         g.month AS month, g.seq AS seq
                                  FROM got g
                                  WHERE g.note IN (
                                    SELECT COALESCE(x.run_id, '') || '|' || ({_json_text("x.details", "note", "id")})
                                    FROM exchanges x
                                    WHERE x.service = 'eparcours' AND x.operation = '{CDL_PLATFORM_NOTE}'{anywhere})
                                  ORDER BY g.essms, g.note, g.seq) f
                                WHERE month BETWEEN ? AND ? ORDER BY seq""",
                                [*params, *params, *anywhere_params, period.start, period.end],
                            )
                        ]
                else:

                    def has(kind: int) -> str:
                        return (
                            f"EXISTS (SELECT 1 FROM m WHERE m.essms = x.essms AND m.person = x.person "
                            f"AND m.kind = {kind} AND (m.mask & 1) <> 0)"
                        )

                    in_fa = has(_FA)
                    active = f"{in_fa} AND {has(_UPDATED)}"
                    if indicator in ("mssante", "dmp", "dossiers_actifs"):
                        rows += [
                            ("denominator", person, found)
                            for person, found in con.execute(
                                f"""SELECT x.person, {ids} FROM exchanges x
                                WHERE {_FACTS} AND x.operation = ? AND {in_fa}{where}
                                GROUP BY x.essms, x.person ORDER BY x.person""",
                                [str(dui.FactKind.SEJOUR), *params],
                            )
                        ]
                    if indicator in ("mssante", "dmp"):
                        source = d.source
                        op_sql, op_params = _operation_sql(source)
                        every = indicator == "mssante" and self.mssante_counting is MssanteCounting.MESSAGES
                        rows += [
                            ("numerator" if inside or every else "outside", person, found)
                            for person, inside, found in con.execute(
                                f"""SELECT x.person, {in_fa}, {ids} FROM exchanges x
                                WHERE x.service = ? AND {op_sql} AND x.outcome = 'accepted'
                                  AND x.essms IS NOT NULL{"" if every else " AND x.person IS NOT NULL"}
                                  AND x.month BETWEEN ? AND ?{where}
                                GROUP BY x.essms, x.person ORDER BY x.person""",
                                [source.service, *op_params, period.start, period.end, *params],
                            )
                        ]
                    else:
                        role = "numerator" if indicator == "dossiers_actifs" else "denominator"
                        rows += [
                            (role, person, found)
                            for person, found in con.execute(
                                f"""SELECT x.person, {ids} FROM exchanges x
                                WHERE {_FACTS} AND x.fact_date BETWEEN ? AND ? AND {in_fa}{where}
                                GROUP BY x.essms, x.person ORDER BY x.person""",
                                [pstart, pend, *params],
                            )
                        ]
                        kind = _PLAN if indicator == "projet_personnalise" else _AGENDA
                        op = dui.FactKind.PROJET if indicator == "projet_personnalise" else dui.FactKind.EVENEMENT
                        rows += [
                            ("numerator", person, found)
                            for person, found in con.execute(
                                f"""SELECT x.person, {ids} FROM exchanges x
                                WHERE {_FACTS} AND x.operation = ? AND {active} AND {has(kind)}{where}
                                GROUP BY x.essms, x.person ORDER BY x.person""",
                                [str(op), *params],
                            )
                        ]
            finally:
                con.execute("ROLLBACK")
        items = [EvidenceItem(role, person, tuple(ids.split(",")) if ids else ()) for role, person, ids in rows]
        return Evidence(figure, tuple(items[:limit]), truncated=len(items) > limit)


def _aggregated(scope: Scope) -> bool:
    """Whether the journal's aggregates (:data:`harness.core.journal_pg.USAGE_OPERATIONS`, schema 4) answer for
    ``scope``: they hold every exchange up to the latest, whatever its run, scenario or session, per ESSMS."""
    return scope.run_id is None and scope.scenario_id is None and scope.session is None and scope.max_seq is None


_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _aggregate_masks(
    periods: Sequence[Period], scope: Scope, usage_kinds: Sequence[int], readings: Mapping[str, str]
) -> dict[int, tuple[str, list[Any]]] | None:
    """The MSSanté / DMP usage and record-updated mask statements of :meth:`PostgresIndicatorEngine._mask_queries`
    read from ``indicator_person_months`` (one row per ESSMS, person and year, a 12-bit mask of months per kind)
    and ``indicator_person_odd_months`` (months that are not ``YYYY-MM``, as text, looked up as the exchanges' are),
    instead of every exchange and fact; ``None`` when they do not answer for ``scope``. A person may come back in
    several rows (years, odd months): their masks are OR-ed where they are joined. Same masks: a period's bit is
    set when one of its months is, and a date falls in a period's month bounds exactly when its first 7
    characters do (the bounds are ``YYYY-MM``, compared byte by byte)."""
    months_of = [p.months for p in periods]
    if not _aggregated(scope) or not all(_MONTH.match(m) for ms in months_of for m in ms):
        return None
    per_year: dict[int, dict[int, int]] = {}  # year -> period index -> bits of its months in that year
    for k, months in enumerate(months_of):
        for month in months:
            bits = per_year.setdefault(int(month[:4]), {})
            bits[k] = bits.get(k, 0) | 1 << (int(month[5:7]) - 1)

    def year_mask(column: str) -> str:
        cases = " ".join(
            f"WHEN {year} THEN "
            + " | ".join(f"(CASE WHEN {column} & {bits} <> 0 THEN {1 << k} ELSE 0 END)" for k, bits in by_k.items())
            for year, by_k in sorted(per_year.items())
        )
        return f"CAST(CASE p.year {cases} ELSE 0 END AS BIGINT)"

    where_p, params_p = scope.sql("p")
    where_o, params_o = scope.sql("o")
    lookup = _Months(periods)
    years = ", ".join(str(y) for y in sorted(per_year))
    columns = {_MSSANTE: "mssante", _DMP: "dmp", _UPDATED: "updated"}
    out: dict[int, tuple[str, list[Any]]] = {}
    for kind in (*usage_kinds, _UPDATED):
        column = columns[kind]
        out[kind] = (
            f"""SELECT essms, person, {kind}, mask FROM (
                  SELECT p.essms AS essms, p.person AS person, {year_mask(f"p.{column}")} AS mask
                  FROM indicator_person_months p WHERE p.{column} <> 0 AND p.year IN ({years}){where_p}
                  UNION ALL
                  SELECT o.essms, o.person, {lookup.bit("o.month")} FROM indicator_person_odd_months o
                  WHERE o.kind = '{column}'{where_o}) q
                WHERE mask <> 0""",
            [*params_p, *params_o],
        )
    n = len(periods)
    where_f, params_f = scope.sql("f")
    # File active and agenda from the latest version of each séjour / événement (indicator_facts), as their
    # statements in _mask_queries take it from every version
    out[_FA] = (
        f"""SELECT essms, person, {_FA}, mask FROM (
              SELECT essms, person, {_range_mask("ka", "kb")} AS mask FROM (
                SELECT f.essms AS essms, f.person AS person, {lookup.first_ending_on_or_after("f.start")} AS ka,
                       CASE WHEN f."end" IS NULL THEN {n - 1}
                            ELSE {lookup.last_starting_on_or_before('f."end"')} END AS kb
                FROM indicator_facts f
                WHERE f.operation = ? AND f.start IS NOT NULL
                  AND (f.status IS NULL OR f.status NOT IN ({_RETRACTED})){where_f}) r) q
            WHERE mask <> 0""",
        [str(dui.FactKind.SEJOUR), *params_f],
    )
    if readings["agenda"] == "periode":
        out[_AGENDA] = (
            f"""SELECT essms, person, {_AGENDA}, mask FROM (
                  SELECT f.essms AS essms, f.person AS person, bit_or({lookup.bit("f.start")}) AS mask
                  FROM indicator_facts f
                  WHERE f.operation = ? AND (f.status IS NULL OR f.status NOT IN ({_RETRACTED})){where_f}
                  GROUP BY f.essms, f.person) a
                WHERE mask <> 0""",
            [str(dui.FactKind.EVENEMENT), *params_f],
        )
    else:
        # every period from the first ending on or after the person's earliest first-recorded événement not
        # retracted (the masks of the events are nested: their OR is the earliest's), kept per person
        # (indicator_agenda, schema 6)
        where_a, params_a = scope.sql("a")
        first = lookup.first_ending_on_or_after("a.first_date")
        out[_AGENDA] = (
            f"""SELECT essms, person, {_AGENDA}, mask FROM (
                  SELECT a.essms AS essms, a.person AS person, {_range_mask(first, str(n - 1))} AS mask
                  FROM indicator_agenda a WHERE a.first_date IS NOT NULL{where_a}) q
                WHERE mask <> 0""",
            params_a,
        )
    return out


def indicator_engine(journal: Journal, *args: Any, **kwargs: Any) -> IndicatorEngine:
    """The indicator engine for ``journal``: the SQLite one for a SQLite journal, else PostgreSQL's (each says
    why it cannot read another journal)."""
    if isinstance(journal, SQLiteJournal):
        return IndicatorEngine(journal, *args, **kwargs)
    return PostgresIndicatorEngine(journal, *args, **kwargs)
