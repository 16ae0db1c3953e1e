"""Usage indicators on a large journal: 1,000,000 exchanges, 500 ESSMS, 12 months -> every indicator.

The journal is a real ``SQLiteJournal`` file (its schema and indexes); the data is bulk-loaded with
``executemany`` in one transaction, shaped like a year of a big grappe:

- 500 ESSMS of 60 places, persons admitted and leaving every month (file active ~ 33,000 persons);
- MSSanté messages (each with its Message-ID, one in ten through the HL7 v2 relay, one in a hundred journaled
  twice) and DMP ITI-41 documents for most persons each month (some rejected), e-prescription imports and
  cahier de liaison exchanges per ESSMS (notes written and updated, searches listing notes, reads, platform notes);
- one TDDUI export per ESSMS and month (``fhir.transaction``) and its DUI facts (harness.fields.dui): séjours
  (all at the first export, then admissions and exits), projets personnalisés (then status changes), record
  updates and agenda events, with the producer's dates;
- the remainder up to exactly N exchanges: extra MSSanté messages.

Measured: ``IndicatorEngine.compute`` for the 10 periods of the year (January-March, then each month) x 500
ESSMS + the grappe (7 indicators), median of ``--repeat`` runs with the mask scans in two worker processes, and the
same on one connection (the engine left to itself takes the workers only when the machine has an idle core: which
one it would take now is printed); one month alone; one drill-down.
Baseline, same run, same file: ``SELECT service, month, COUNT(*) ... GROUP BY`` over every row (the cheapest
statement that visits the whole journal). **Goal: all indicators in <= 1 s.**

Run from the repository root:  python benchmarks/bench_indicators.py [--events N] [--essms K] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from harness.analytics.indicators import IndicatorEngine, campaign_periods, period_ending
from harness.core.journal import _INSERT as INSERT  # the journal's own row layout
from harness.core.journal import FACT_KEYS, SQLiteJournal
from harness.fields import dui

GOAL_SECONDS = 1.0
YEAR = 2025
MONTHS = [f"{YEAR}-{m:02d}" for m in range(1, 13)]


class Loader:
    """Builds the rows (tuples in the journal's column order) with a deterministic random generator."""

    def __init__(self, essms: int, places: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n_essms = essms
        self.places = places
        self.counter = 0
        self.rows: list[tuple[Any, ...]] = []
        self.counts: dict[str, int] = {}
        self.last_message: str | None = None

    def _id(self) -> str:
        self.counter += 1
        return f"{self.counter:032x}"

    def add(
        self,
        day: date,
        service: str,
        operation: str,
        essms: str,
        person: str | None,
        fact: dict[str, Any] | None = None,
        outcome: str = "accepted",
        bundle: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        ident = self._id()
        ts = datetime(day.year, day.month, day.day, 8 + self.counter % 10, self.counter % 60, tzinfo=UTC)
        details: dict[str, Any] = dict(extra or {})
        if fact is not None:
            details = {dui.FACT: fact, dui.BUNDLE: bundle}
        self.rows.append(
            (
                ident,
                ts.isoformat(),
                ts.strftime("%Y-%m"),
                service,
                operation,
                "to_dui" if operation == "eprescription.import_confirmed" else "from_dui",
                outcome,
                "dui@bench.test",
                essms,
                person,
                None if outcome == "accepted" else "554 5.6.0",
                None,
                None,
                "application/fhir+json" if service == dui.SERVICE else None,
                json.dumps(details, separators=(",", ":")) if details else "{}",
                "bench",
                None,
                *(fact.get(k) if fact else None for k in FACT_KEYS),
                details.get("message_id"),
                None,  # session_id: outside any test session
            )
        )
        self.counts[service] = self.counts.get(service, 0) + 1
        return ident

    def message(self, day: date, essms: str, person: str, outcome: str = "accepted") -> None:
        """An MSSanté message as the simulator journals it: its Message-ID; one in ten through the HL7 v2 relay
        (``smtp.relay``); one in a hundred journaled again with the same Message-ID (a retried submission)."""
        operation = "smtp.relay" if self.rng.random() < 0.1 else "smtp.submit"
        if self.last_message is not None and self.rng.random() < 0.01:
            message_id = self.last_message
        else:
            message_id = self.last_message = f"<{self.counter + 1:x}@essms-{essms}.mssante.fr>"
        self.add(day, "mssante", operation, essms, person, outcome=outcome, extra={"message_id": message_id})

    def cdl(self, day: date, essms: str, person: str) -> None:
        """A cahier de liaison exchange: the DUI writes or updates a note, searches the cahier (results listed) or
        reads a note; now and then the platform publishes one (``platform.note``)."""
        kind = self.rng.choice(["cdl.create", "cdl.update", "cdl.search", "cdl.search", "cdl.read", "platform.note"])
        note = f"n{self.rng.randrange(1, 5_000)}"
        if kind == "cdl.search":
            extra: dict[str, Any] = {
                "notes": [{"id": note, "person": person}, {"id": f"n{self.counter}", "person": person}]
            }
        else:
            extra = {"note": {"id": note}}
        self.add(day, "eparcours", kind, "990000099" if kind == "platform.note" else essms, person, extra=extra)

    def _day(self, month: str) -> date:
        return date(int(month[:4]), int(month[5:7]), self.rng.randint(1, 28))

    def build(self, target: int) -> None:
        rng = self.rng
        serial = 0
        all_persons: list[tuple[str, str, str]] = []  # (essms, person, month) for filler messages
        for e in range(self.n_essms):
            finess = f"99{e:06d}{e % 10}"
            residents: dict[str, date] = {}  # person -> admission
            for _ in range(self.places):
                serial += 1
                residents[f"2{serial:014d}"] = date(
                    YEAR - 1 - rng.randint(0, 5), rng.randint(1, 12), rng.randint(1, 28)
                )
            plans: dict[str, str] = {}
            for index, month in enumerate(MONTHS):
                month_end = date.fromisoformat(f"{month}-28")
                bundle = self.add(month_end, dui.SERVICE, dui.OP_TRANSACTION, finess, None)
                exits = rng.sample(sorted(residents), k=rng.choice((0, 1, 1, 2, 2, 3)))
                present = dict(residents)
                for person in exits:
                    del residents[person]
                for _ in range(len(exits)):
                    serial += 1
                    residents[f"2{serial:014d}"] = self._day(month)
                # séjours: everybody at the first export, then admissions and exits
                for person, admission in present.items():
                    leaving = person in exits
                    if index == 0 or leaving:
                        exit_day = self._day(month).isoformat() if leaving else None
                        self.add(
                            month_end,
                            dui.SERVICE,
                            dui.FactKind.SEJOUR,
                            finess,
                            person,
                            {
                                "key": f"sej|{person}",
                                "date": exit_day or admission.isoformat(),
                                "start": admission.isoformat(),
                                "end": exit_day,
                            },
                            bundle=bundle,
                        )
                for person, admission in residents.items():
                    if person not in present:
                        self.add(
                            month_end,
                            dui.SERVICE,
                            dui.FactKind.SEJOUR,
                            finess,
                            person,
                            {
                                "key": f"sej|{person}",
                                "date": admission.isoformat(),
                                "start": admission.isoformat(),
                                "end": None,
                            },
                            bundle=bundle,
                        )
                month_persons = list(present) + [p for p in residents if p not in present]
                for person in month_persons:
                    all_persons.append((finess, person, month))
                    # projets personnalisés: created once, status changes now and then
                    if person not in plans or rng.random() < 0.04:
                        status = rng.choices(["draft", "active", "on-hold", "completed"], [3, 14, 1, 1])[0]
                        plans[person] = status
                        self.add(
                            month_end,
                            dui.SERVICE,
                            dui.FactKind.PROJET,
                            finess,
                            person,
                            {"key": f"pp|{person}", "date": self._day(month).isoformat(), "status": status},
                            bundle=bundle,
                        )
                    if rng.random() < 0.45:  # record updated (usager resource with its modification date)
                        self.add(
                            month_end,
                            dui.SERVICE,
                            dui.FactKind.USAGER,
                            finess,
                            person,
                            {"key": f"pat|{person}", "date": self._day(month).isoformat()},
                            bundle=bundle,
                        )
                    if rng.random() < 0.5:  # agenda event(s)
                        day = self._day(month).isoformat()
                        cancelled = rng.random() < 0.05
                        fact = {
                            "key": f"evt|{self.counter}",
                            "date": day,
                            "start": day,
                            "end": day,
                            "status": "cancelled" if cancelled else "finished",
                        }
                        self.add(month_end, dui.SERVICE, dui.FactKind.EVENEMENT, finess, person, fact, bundle=bundle)
                    if rng.random() < 0.62:
                        self.message(
                            self._day(month), finess, person, outcome="accepted" if rng.random() < 0.97 else "rejected"
                        )
                    if rng.random() < 0.5:
                        self.add(
                            self._day(month),
                            "dmp",
                            "iti41.provide_and_register",
                            finess,
                            person,
                            outcome="accepted" if rng.random() < 0.97 else "rejected",
                        )
                for _ in range(rng.randint(2, 8)):
                    self.add(
                        self._day(month),
                        "eprescription",
                        "eprescription.import_confirmed",
                        finess,
                        rng.choice(month_persons),
                    )
                for _ in range(rng.randint(4, 12)):
                    self.cdl(self._day(month), finess, rng.choice(month_persons))
        if len(self.rows) > target:
            raise SystemExit(f"generated {len(self.rows)} rows > target {target}: lower the rates")
        while len(self.rows) < target:
            finess, person, month = rng.choice(all_persons)
            self.message(self._day(month), finess, person)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--essms", type=int, default=500)
    parser.add_argument("--places", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON to this file")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="socle-bench-ind-"))
    try:
        path = workdir / "journal.sqlite"
        journal = SQLiteJournal(path)  # the real schema and indexes
        t0 = time.perf_counter()
        loader = Loader(args.essms, args.places, args.seed)
        loader.build(args.events)
        t1 = time.perf_counter()
        con = journal._db  # the benchmark's bulk load goes under the journal API on purpose
        con.execute("BEGIN")
        con.executemany(INSERT, loader.rows)
        con.execute("COMMIT")
        con.execute("ANALYZE")
        t2 = time.perf_counter()
        total = con.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0]
        print(
            f"journal: {total:,} exchanges, {args.essms} ESSMS, 12 months — generated in {t1 - t0:.1f} s, "
            f"loaded in {t2 - t1:.1f} s (executemany, one transaction, indexes on)"
        )
        print("  by service: " + ", ".join(f"{k} {v:,}" for k, v in sorted(loader.counts.items())))
        del loader

        engine = IndicatorEngine(journal, workers=2)
        automatic = IndicatorEngine(journal)._parallel(total)
        periods = campaign_periods(MONTHS[0], MONTHS[-1])

        def timed(fn: Any) -> tuple[float, Any]:
            start = time.perf_counter()
            value = fn()
            return time.perf_counter() - start, value

        baseline_sql = "SELECT service, month, COUNT(*) FROM exchanges GROUP BY service, month"
        baseline = statistics.median(timed(lambda: con.execute(baseline_sql).fetchall())[0] for _ in range(args.repeat))
        runs = [timed(lambda: engine.compute(periods)) for _ in range(args.repeat)]
        full = statistics.median(r[0] for r in runs)
        report = runs[-1][1]
        one = statistics.median(
            timed(lambda: engine.compute([period_ending(MONTHS[0], "2025-06")]))[0] for _ in range(args.repeat)
        )
        single = IndicatorEngine(journal, workers=1)  # the same statements on one connection, no worker process
        alone = statistics.median(timed(lambda: single.compute(periods))[0] for _ in range(args.repeat))
        drill_time, evidence = timed(
            lambda: engine.evidence("mssante", period_ending(MONTHS[0], "2025-06"), report.essms[0])
        )
        journal.close()

        print(
            f"\nall indicators, {len(periods)} periods x {len(report.essms)} ESSMS + grappe "
            f"({len(report.figures):,} figures): median {full:.3f} s over {args.repeat} runs "
            f"(runs: {', '.join(f'{r[0]:.3f}' for r in runs)})"
        )
        print(f"  the same on one connection, no worker process:          {alone:.3f} s")
        print(
            "  left to itself the engine would now use "
            + ("worker processes" if automatic else "one connection (no idle core)")
            + f" (load average {' '.join(f'{v:.1f}' for v in os.getloadavg())})"
        )
        print(f"one period (June):                                        {one:.3f} s")
        print(
            f"drill-down of one figure (MSSanté, June, one ESSMS):      {drill_time:.3f} s "
            f"({len(evidence.items)} lines)"
        )
        print(f"baseline: full GROUP BY service, month over every row:    {baseline:.3f} s")
        print(f"ratio all-indicators / baseline:                          {full / baseline:.2f}")
        verdict = "OK" if full <= GOAL_SECONDS else "ABOVE GOAL"
        print(f"goal <= {GOAL_SECONDS:.1f} s: {verdict}")
        print("\ngrappe, sample:")
        for key in (
            "mssante",
            "dmp",
            "dossiers_actifs",
            "projet_personnalise",
            "agenda",
            "eprescription",
            "cahier_liaison",
        ):
            fig = report.get(key, periods[-1])
            print(
                f"  {key:<20} {periods[-1].label}: {fig.numerator:>7,} / {fig.denominator if fig.denominator is not None else '-':>7} "
                f"-> {fig.value:.1f}"
            )
        figures = {
            "events": total,
            "essms": args.essms,
            "periods": len(periods),
            "figures": len(report.figures),
            "all_indicators_s": full,
            "one_connection_s": alone,
            "one_period_s": one,
            "drilldown_s": drill_time,
            "baseline_s": baseline,
            "ratio": full / baseline,
            "goal_s": GOAL_SECONDS,
            "ok": full <= GOAL_SECONDS,
        }
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
