"""The indicator engine on journal events inserted directly, with hand-computed expectations."""

from __future__ import annotations

import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.analytics.indicators import (
    DEFAULT_TARGETS,
    READINGS,
    STATUS_LABELS,
    IndicatorEngine,
    Period,
    Scope,
    TargetStatus,
    campaign_periods,
    format_value,
    parse_reading_options,
    parse_target_options,
    period_ending,
    resolve_readings,
    resolve_targets,
)
from harness.analytics.indicators_pg import indicator_engine
from harness.core.journal import Direction, Exchange, Journal, Outcome, SQLiteJournal, open_journal
from harness.fields import dui

A, B = "990000016", "990000024"  # two ESSMS
P1, P2, P3, P4, P5 = "238047505612394", "142036912304505", "245123306321037", "150011305533332", "229081320107805"


def _ts(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)


class World:
    """Writes exchanges as the simulators do (socle exchanges, and the TDDUI simulator's DUI facts)."""

    def __init__(self, path: Path | Journal) -> None:
        self.journal: Journal = SQLiteJournal(path) if isinstance(path, Path) else path
        self.pending: list[Exchange] = []
        self.counter = 0

    def _add(self, exchange: Exchange) -> Exchange:
        self.pending.append(exchange)
        return exchange

    def socle(
        self,
        service: str,
        operation: str,
        day: str,
        essms: str | None,
        person: str | None,
        outcome: Outcome = Outcome.ACCEPTED,
        run_id: str | None = None,
        details: dict | None = None,
    ) -> Exchange:
        return self._add(
            Exchange(
                service=service,
                operation=operation,
                direction=Direction.FROM_DUI,
                outcome=outcome,
                essms=essms,
                person=person,
                ts=_ts(day),
                run_id=run_id,
                details=details or {},
            )
        )

    def mss(self, day: str, essms: str, person: str | None, **kw) -> Exchange:  # noqa: ANN003
        return self.socle("mssante", "smtp.submit", day, essms, person, **kw)

    def fact(
        self,
        kind: dui.FactKind,
        essms: str,
        person: str,
        *,
        key: str | None = None,
        date: str | None,
        start: str | None = None,
        end: str | None = None,
        status: str | None = None,
        received: str = "2025-12-31",
        run_id: str | None = None,
    ) -> Exchange:
        self.counter += 1
        fact = {
            dui.KEY: key or f"{kind}|{essms}|{person}|{self.counter}",
            dui.DATE: date,
            dui.START: start,
            dui.END: end,
            dui.STATUS: status,
        }
        return self._add(
            Exchange(
                service=dui.SERVICE,
                operation=str(kind),
                direction=Direction.FROM_DUI,
                outcome=Outcome.ACCEPTED,
                essms=essms,
                person=person,
                ts=_ts(received),
                details={dui.FACT: fact},
                run_id=run_id,
            )
        )

    def stay(
        self,
        essms: str,
        person: str,
        start: str,
        end: str | None = None,
        *,
        key: str | None = None,
        date: str | None = None,
        **kw,
    ) -> Exchange:  # noqa: ANN003
        return self.fact(
            dui.FactKind.SEJOUR,
            essms,
            person,
            key=key or f"sej|{essms}|{person}",
            date=date or end or start,
            start=start,
            end=end,
            **kw,
        )

    def update(self, essms: str, person: str, date: str, **kw) -> Exchange:  # noqa: ANN003
        return self.fact(dui.FactKind.USAGER, essms, person, key=f"pat|{person}", date=date, **kw)

    def plan(self, essms: str, person: str, status: str, date: str, *, key: str = "pp", **kw) -> Exchange:  # noqa: ANN003
        return self.fact(
            dui.FactKind.PROJET, essms, person, key=f"{key}|{essms}|{person}", date=date, status=status, **kw
        )

    def event(
        self, essms: str, person: str, start: str, *, status: str = "finished", date: str | None = None, **kw
    ) -> Exchange:  # noqa: ANN003
        return self.fact(
            dui.FactKind.EVENEMENT, essms, person, date=date or start, start=start, end=start, status=status, **kw
        )

    def commit(self, order: list[int] | None = None) -> None:
        items = self.pending if order is None else [self.pending[i] for i in order]
        self.journal.record_many(items)
        self.pending = []

    def report(self, start: str = "2025-01", until: str = "2025-06", **kw):  # noqa: ANN003, ANN201
        self.commit()
        engine = indicator_engine(
            self.journal,
            kw.pop("targets", None),
            kw.pop("mssante_counting", "messages"),
            readings=kw.pop("readings", None),
        )
        return engine.compute(campaign_periods(start, until), **kw)


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    """Every test of the engine runs on both journals, with the same expected figures (PostgreSQL:
    :mod:`harness.analytics.indicators_pg`; skipped, saying so, without the server)."""
    if request.param == "sqlite":
        w = World(tmp_path / "journal.sqlite")
    else:
        w = World(open_journal(request.getfixturevalue("pg_url")))
    yield w
    w.journal.close()


APRIL = "2025-04"


def four_persons(w: World, essms: str = A) -> None:
    for p in (P1, P2, P3, P4):
        w.stay(essms, p, "2024-06-01")


# ------------------------------------------------------------------------------------------ periods
def test_periods_first_covers_three_months_then_monthly() -> None:
    periods = campaign_periods("2025-01", "2025-06")
    assert [(p.start, p.end) for p in periods] == [
        ("2025-01", "2025-03"),
        ("2025-04", "2025-04"),
        ("2025-05", "2025-05"),
        ("2025-06", "2025-06"),
    ]
    assert (
        periods[0].initial
        and periods[0].label == "2025-01..2025-03"
        and periods[0].months == ("2025-01", "2025-02", "2025-03")
    )
    assert periods[0].first_day.isoformat() == "2025-01-01" and periods[0].last_day.isoformat() == "2025-03-31"
    assert campaign_periods("2025-01", "2025-02") == []
    assert campaign_periods("2024-12", "2025-02")[0].months == ("2024-12", "2025-01", "2025-02")
    assert period_ending("2025-01", "2025-03") == periods[0]
    assert period_ending("2025-01", "2025-05") == Period(end="2025-05", start="2025-05")
    with pytest.raises(ValueError, match="3 mois"):
        period_ending("2025-01", "2025-02")
    with pytest.raises(ValueError, match="AAAA-MM"):
        campaign_periods("2025-13", "2026-01")


def test_targets_known_ones_shipped_and_configurable() -> None:
    assert DEFAULT_TARGETS["mssante"] == 70 and DEFAULT_TARGETS["dmp"] == 70
    assert DEFAULT_TARGETS["projet_personnalise"] == 90 and DEFAULT_TARGETS["agenda"] == 90
    assert DEFAULT_TARGETS["dossiers_actifs"] is None  # not stated in the sources: no invented target
    targets = resolve_targets(parse_target_options(["dossiers_actifs=80", "mssante=75,5", "dmp=none"]))
    assert targets["dossiers_actifs"] == 80 and targets["mssante"] == 75.5 and targets["dmp"] is None
    with pytest.raises(ValueError, match="inconnu"):
        resolve_targets({"nope": 1})
    with pytest.raises(ValueError, match="bornes"):
        resolve_targets({"mssante": 120})
    with pytest.raises(ValueError):
        parse_target_options(["mssante"])


# ------------------------------------------------------------------------------------------ MSSanté / DMP
def _april_messages(world: World) -> None:
    four_persons(world)
    world.mss("2025-04-02", A, P1)
    world.mss("2025-04-03", A, P1)
    world.mss("2025-04-20", A, P1)  # three messages, one person
    world.mss("2025-04-05", A, P2)
    world.mss("2025-04-06", A, P3)
    world.mss("2025-04-07", A, P4, outcome=Outcome.REJECTED)  # refused: not sent
    world.mss("2025-05-02", A, P4)  # next month


def test_mssante_rate_counts_messages_as_the_national_instruction_words_it(world: World) -> None:
    _april_messages(world)
    world.mss("2025-04-08", A, "PERSONNE-HORS-FILE-ACTIVE")  # a message sent is a message sent
    report = world.report()
    april = report.get("mssante", APRIL, A)
    assert (april.numerator, april.denominator, april.outside) == (6, 4, 0)
    assert april.value == 150.0 and april.status is TargetStatus.MET  # messages per person: may pass 100 %
    may = report.get("mssante", "2025-05", A)
    assert (may.numerator, may.denominator, may.status) == (1, 4, TargetStatus.NOT_MET)
    evidence = indicator_engine(world.journal).evidence("mssante", april.period, A)
    assert sum(len(i.exchange_ids) for i in evidence.items if i.role == "numerator") == 6


def test_mssante_rate_person_counted_once_and_target_when_counting_persons(world: World) -> None:
    _april_messages(world)
    report = world.report(mssante_counting="personnes")
    april = report.get("mssante", APRIL, A)
    assert (april.numerator, april.denominator) == (3, 4)
    assert april.value == 75.0 and april.status is TargetStatus.MET and format_value(april) == "75 %"
    may = report.get("mssante", "2025-05", A)
    assert (may.numerator, may.denominator, may.status) == (1, 4, TargetStatus.NOT_MET)
    with pytest.raises(ValueError, match="messages ou personnes"):
        indicator_engine(world.journal, mssante_counting="lettres")


def test_mssante_relay_messages_count_and_a_message_id_counts_once(world: World) -> None:
    four_persons(world)
    world.mss("2025-04-02", A, P1, details={"message_id": "<m1@essms.fr>"})
    world.mss("2025-04-02", A, P1, details={"message_id": "<m1@essms.fr>"})  # journaled twice: one message
    world.mss("2025-04-03", A, P2, details={"message_id": "<m2@essms.fr>"})
    world.mss("2025-04-03", A, P2, details={"message_id": "<m2@essms.fr>"}, outcome=Outcome.REJECTED)
    # the HL7 v2 relay's e-mails for the DUI are messages sent via MSSanté
    world.socle("mssante", "smtp.relay", "2025-04-04", A, P3, details={"message_id": "<r1@pfi>"})
    world.socle("mssante", "smtp.relay", "2025-05-04", A, P3, details={"message_id": "<r1@pfi>"})  # repeat in May
    world.mss("2025-04-05", A, P4)  # no Message-ID journaled: counts on its own
    world.mss("2025-04-05", A, P4)
    world.mss("2024-12-20", A, P1, details={"message_id": "<old@essms.fr>"})  # before the campaign...
    world.mss("2025-04-06", A, P1, details={"message_id": "<old@essms.fr>"})  # ...so not an April message
    world.mss("2025-04-07", B, P1, details={"message_id": "<old@essms.fr>"})  # another ESSMS: its own message
    world.socle("mssante", "smtp.inbound", "2025-04-05", A, P4, details={"message_id": "<in@x>"})  # not sent
    report = world.report()
    april = report.get("mssante", APRIL, A)
    assert (april.numerator, april.denominator, april.value) == (5, 4, 125.0)  # m1, m2, r1, two without id
    assert report.get("mssante", APRIL, B).numerator == 1
    assert report.get("mssante", "2025-05", A).numerator == 0  # r1 counted in April, its first month
    by_person = world.report(mssante_counting="personnes").get("mssante", APRIL, A)
    assert (by_person.numerator, by_person.denominator) == (4, 4)  # P3 through the relay
    evidence = indicator_engine(world.journal).evidence("mssante", april.period, A)
    # per person: P1 (both copies of m1), P2, P3 (relay), P4 (two messages)
    assert sorted(len(i.exchange_ids) for i in evidence.items if i.role == "numerator") == [1, 1, 2, 3]


def test_retracted_stay_and_event_latest_status_decides(world: World) -> None:
    for p in (P1, P2, P3):
        world.stay(A, p, "2024-01-01")
        world.update(A, p, "2025-04-03")
    # P3's stay re-exported as entered-in-error: P3 was never accompanied
    world.fact(
        dui.FactKind.SEJOUR,
        A,
        P3,
        key=f"sej|{A}|{P3}",
        date="2025-04-20",
        start="2024-01-01",
        status="entered-in-error",
    )
    world.event(A, P1, "2025-04-10", date="2025-04-01")
    world.event(A, P2, "2025-04-11", date="2025-04-01")
    key = world.pending[-1].details[dui.FACT][dui.KEY]
    world.fact(dui.FactKind.EVENEMENT, A, P2, key=key, date="2025-04-15", start="2025-04-11", status="cancelled")
    report = world.report()
    assert report.get("dossiers_actifs", APRIL, A).denominator == 2  # P1, P2
    assert report.get("dossiers_actifs", "2025-03", A).denominator == 2  # retracted for every period
    agenda = report.get("agenda", APRIL, A)
    assert (agenda.numerator, agenda.denominator) == (1, 2)  # P2's event cancelled by its latest version
    assert world.report(readings={"agenda": "periode"}).get("agenda", APRIL, A).numerator == 1


def test_event_versions_received_out_of_order_the_latest_producer_date_decides(world: World) -> None:
    """The DUI re-sends an older version after the cancellation (an export replayed): reception order does not
    decide, the producer's date does."""
    for p in (P1, P2):
        world.stay(A, p, "2024-01-01")
        world.update(A, p, "2025-04-03")
    world.fact(dui.FactKind.EVENEMENT, A, P1, key="ev1", date="2025-04-15", start="2025-04-11", status="cancelled")
    world.fact(dui.FactKind.EVENEMENT, A, P1, key="ev1", date="2025-04-01", start="2025-04-11", status="finished")
    world.fact(dui.FactKind.EVENEMENT, A, P2, key="ev2", date="2025-04-15", start="2025-04-12", status="finished")
    world.fact(dui.FactKind.EVENEMENT, A, P2, key="ev2", date="2025-04-01", start="2025-04-12", status="cancelled")
    for reading in ("sans_fenetre", "periode"):
        agenda = world.report(readings={"agenda": reading}).get("agenda", APRIL, A)
        assert (agenda.numerator, agenda.denominator) == (1, 2)  # P2 only: P1's latest version is cancelled
    evidence = indicator_engine(world.journal).evidence("agenda", period_ending("2025-01", APRIL), A)
    assert [(i.role, i.person) for i in evidence.items if i.role == "numerator"] == [("numerator", P2)]


def test_agenda_without_time_window_counts_from_when_the_event_is_recorded(world: World) -> None:
    world.stay(A, P1, "2024-01-01")
    world.stay(A, P2, "2024-01-01")
    for p in (P1, P2):
        for month in ("2025-03-05", "2025-04-05", "2025-05-05"):
            world.update(A, p, month)
    world.event(A, P1, "2025-06-20", date="2025-04-10")  # recorded in April for a June appointment
    world.event(A, P1, "2025-05-20", date="2025-05-02")  # another one, recorded in May
    world.event(A, P2, "2025-05-21", date="2025-05-03")
    key = world.pending[-1].details[dui.FACT][dui.KEY]  # P2's event: a second version, moved
    world.fact(dui.FactKind.EVENEMENT, A, P2, key=key, date="2025-05-10", start="2025-05-22", status="finished")
    report = world.report()
    assert [report.get("agenda", m, A).numerator for m in ("2025-03", APRIL, "2025-05")] == [0, 1, 2]
    windowed = world.report(readings={"agenda": "periode"})  # P1's and P2's May events start in May
    assert [windowed.get("agenda", m, A).numerator for m in ("2025-03", APRIL, "2025-05")] == [0, 0, 2]


def test_readings_default_to_the_seed_wording_and_refuse_unknown_choices() -> None:
    assert resolve_readings() == {
        "mssante": "messages",
        "cahier_liaison": "notes",
        "projet_personnalise": "periode",
        "agenda": "sans_fenetre",
    }
    assert [r.section for r in READINGS] == [
        "appel à projets régional ESMS numérique (seed 003) §6.1",
        "appel à projets régional ESMS numérique (seed 003) §6.2",
        "appel à projets régional ESMS numérique (seed 003) §6.3 B",
        "appel à projets régional ESMS numérique (seed 003) §6.3 B",
    ]
    assert READINGS[3].quote.startswith("« nombre de dossiers actifs sur la période de recueil ET ayant au moins")
    assert parse_reading_options(["agenda=periode"]) == {"agenda": "periode"}
    with pytest.raises(ValueError, match="lecture agenda: 'mois' inconnue"):
        resolve_readings({"agenda": "mois"})
    with pytest.raises(ValueError, match="lecture inconnue"):
        resolve_readings({"dmp": "x"})
    with pytest.raises(ValueError, match="NOM=VALEUR"):
        parse_reading_options(["agenda"])


def test_first_measure_covers_three_months(world: World) -> None:
    four_persons(world)
    world.mss("2025-01-10", A, P1)
    world.mss("2025-02-10", A, P2)
    world.mss("2025-03-10", A, P1)
    world.mss("2025-04-10", A, P3)
    report = world.report()
    first = report.get("mssante", "2025-03", A)
    assert first.period.months == ("2025-01", "2025-02", "2025-03")
    assert (first.numerator, first.denominator) == (3, 4) and first.value == 75.0  # three messages
    assert report.get("mssante", APRIL, A).numerator == 1
    by_person = world.report(mssante_counting="personnes").get("mssante", "2025-03", A)
    assert (by_person.numerator, by_person.denominator) == (2, 4)  # P1 and P2


def test_file_active_counts_exits_during_the_period_and_admissions(world: World) -> None:
    world.stay(A, P1, "2023-01-10")  # present
    world.stay(A, P2, "2024-02-01", "2025-04-10")  # definitive exit during April: counted
    world.stay(A, P3, "2024-02-01", "2025-02-20")  # left before April: not counted in April
    world.stay(A, P4, "2025-04-15")  # admitted during April: counted
    world.stay(A, P5, "2025-05-01")  # admitted after April
    world.mss("2025-04-03", A, P2)  # before the exit
    world.mss("2025-04-04", A, P3)  # a person no longer accompanied: outside the file active
    report = world.report(mssante_counting="personnes")
    april = report.get("mssante", APRIL, A)
    assert (april.numerator, april.denominator, april.outside) == (1, 3, 1)
    first = report.get("mssante", "2025-03", A)  # Jan-Mar: P1, P2, P3 (exit in February)
    assert first.denominator == 3
    assert report.get("mssante", "2025-05", A).denominator == 3  # P1, P4, P5


def test_latest_stay_version_wins_by_producer_date(world: World) -> None:
    world.stay(A, P1, "2024-01-01", key="s1", date="2024-01-01", received="2025-01-31")
    world.stay(A, P1, "2024-01-01", "2025-03-15", key="s1", date="2025-03-15", received="2025-03-31")
    world.stay(A, P2, "2024-01-01", key="s2", date="2024-01-01", received="2025-04-30")  # re-sent, unchanged
    report = world.report()
    assert report.get("mssante", APRIL, A).denominator == 1
    assert report.get("mssante", "2025-03", A).denominator == 2


def test_essms_with_no_activity_and_grappe_sums(world: World) -> None:
    four_persons(world, A)
    world.stay(B, P5, "2024-01-01")
    world.stay(B, "250011305533399", "2024-01-01")
    for p in (P1, P2, P3):
        world.mss("2025-04-10", A, p)
    report = world.report(grappe=(A, B, "990000032"))
    idle = report.get("mssante", APRIL, B)
    assert (idle.numerator, idle.denominator, idle.value, idle.status) == (0, 2, 0.0, TargetStatus.NOT_MET)
    empty = report.get("mssante", APRIL, "990000032")  # in the grappe, nobody accompanied
    assert empty.value is None and empty.status is TargetStatus.NOT_COMPUTABLE and format_value(empty) == "—"
    grappe = report.get("mssante", APRIL, None)
    assert (grappe.numerator, grappe.denominator, grappe.value) == (3, 6, 50.0)
    assert report.essms == (A, B, "990000032")


def test_dmp_rate_distinct_persons(world: World) -> None:
    four_persons(world)
    for person, day in ((P1, "2025-04-01"), (P1, "2025-04-02"), (P2, "2025-04-03")):
        world.socle("dmp", "iti41.provide_and_register", day, A, person)
    world.socle("dmp", "iti41.provide_and_register", "2025-04-04", A, P3, outcome=Outcome.REJECTED)
    world.socle("dmp", "iti18.find_documents", "2025-04-05", A, P4)  # a query is not a document fed
    report = world.report()
    fig = report.get("dmp", APRIL, A)
    assert (fig.numerator, fig.denominator, fig.value, fig.status) == (2, 4, 50.0, TargetStatus.NOT_MET)
    assert report.observed["dmp"] and not report.observed["eprescription"]


def test_counts_eprescription(world: World) -> None:
    four_persons(world)
    for day in ("2025-04-01", "2025-04-02", "2025-05-03"):
        world.socle("eprescription", "eprescription.import_confirmed", day, A, P1)
    world.socle("eprescription", "eprescription.import_confirmed", "2025-04-05", A, P1, outcome=Outcome.REJECTED)
    world.socle("eprescription", "eprescription.search", "2025-04-05", A, P1)
    report = world.report()
    ep = report.get("eprescription", APRIL, A)
    assert (ep.numerator, ep.denominator, ep.value, ep.target, ep.status, ep.project_total) == (
        2,
        None,
        2.0,
        None,
        TargetStatus.NO_TARGET,
        None,
    )
    assert format_value(ep) == "2"
    assert report.get("eprescription", "2025-05", A).numerator == 1


def _cahier(world: World) -> None:
    """A writes a note (create + update), polls five times, gets the platform's note n9 in two searches then
    reads it; B writes one note; a refused creation, A's read of its own note and other operations."""
    four_persons(world)
    own = {"note": {"id": "n1"}}
    world.socle("eparcours", "cdl.create", "2025-02-05", A, P2, details=own)  # before April: project total
    world.socle("eparcours", "cdl.create", "2025-04-05", A, P2, details=own)
    world.socle("eparcours", "cdl.create", "2025-04-05", A, P2, outcome=Outcome.REJECTED)
    world.socle("eparcours", "cdl.update", "2025-04-06", A, P2, details=own)
    world.socle("eparcours", "cdl.read", "2025-04-06", A, P2, details=own)  # its own note: nothing new
    for day in ("2025-04-06", "2025-04-07", "2025-04-08", "2025-04-09", "2025-04-10"):
        world.socle("eparcours", "cdl.search", day, A, P2, details={"notes": [{"id": "n1", "person": P2}]})
    world.socle("eparcours", "platform.note", "2025-04-11", "990000099", P2, details={"note": {"id": "n9"}})
    for day in ("2025-04-12", "2025-04-13"):
        world.socle(
            "eparcours",
            "cdl.search",
            day,
            A,
            P2,
            details={"notes": [{"id": "n1", "person": P2}, {"id": "n9", "person": P2}]},
        )
    world.socle("eparcours", "cdl.read", "2025-05-02", A, P2, details={"note": {"id": "n9"}})  # already received
    world.socle("eparcours", "cdl", "2025-04-06", A, P2)  # not "cdl." prefixed
    world.socle("eparcours", "pds.search", "2025-04-06", A, P2)
    world.socle("eparcours", "cdl.create", "2025-04-07", B, P5, details={"note": {"id": "n2"}})


def test_cahier_de_liaison_counts_notes_exchanged_not_calls(world: World) -> None:
    _cahier(world)
    report = world.report()
    april, may = report.get("cahier_liaison", APRIL, A), report.get("cahier_liaison", "2025-05", A)
    # April, A: the creation, the update, platform note n9 first received (search of the 12th) = 3; polling = 0
    assert (april.numerator, april.project_total, april.value) == (3, 4, 3.0)  # + February's note
    assert (may.numerator, may.project_total) == (0, 4)  # n9 read again in May: received already
    grappe = report.get("cahier_liaison", APRIL, None)
    assert (grappe.numerator, grappe.project_total) == (4, 5)
    first = report.get("cahier_liaison", "2025-03", A)  # January-March
    assert (first.numerator, first.project_total) == (1, 1)
    evidence = indicator_engine(world.journal).evidence("cahier_liaison", period_ending("2025-01", APRIL), A)
    counted = [(i.role, i.person) for i in evidence.items]
    assert counted == [("counted", P2), ("counted", P2), ("counted", P2)]


def test_cahier_de_liaison_reading_appels_counts_every_call(world: World) -> None:
    _cahier(world)
    report = world.report(readings={"cahier_liaison": "appels"})
    # April, A: create, update, read, 7 searches (accepted cdl.*) = 10
    assert report.get("cahier_liaison", APRIL, A).numerator == 10
    assert report.get("cahier_liaison", APRIL, A).project_total == 11
    assert report.readings["cahier_liaison"] == "appels"


def test_project_total_counts_from_the_campaign_start_not_the_first_period_asked(world: World) -> None:
    _cahier(world)
    world.commit()
    engine = indicator_engine(world.journal)
    alone = engine.compute([period_ending("2025-01", "2025-05")], campaign_start="2025-01")
    assert alone.get("cahier_liaison", "2025-05", A).project_total == 4
    later = engine.compute([period_ending("2025-01", "2025-05")], campaign_start="2025-04")  # Feb. note excluded
    assert later.get("cahier_liaison", "2025-05", A).project_total == 3


# ------------------------------------------------------------------------------------------ DUI records
def test_active_records_projet_personnalise_and_agenda(world: World) -> None:
    for p in (P1, P2, P3, P4, P5):
        world.stay(A, p, "2024-01-01")
    world.update(A, P1, "2025-04-03")
    world.update(A, P2, "2025-04-20")
    world.event(A, P3, "2025-04-11")  # an agenda event also updates the record
    world.plan(A, P4, "active", "2025-04-28")  # a status change too
    world.update(A, P5, "2025-03-30")  # modified in March only: not active in April
    world.update(A, "299999999999999", "2025-04-03")  # not accompanied here
    world.plan(A, P1, "active", "2024-12-01")
    world.plan(A, P2, "draft", "2025-02-01")
    world.plan(A, P3, "completed", "2025-01-01")
    world.event(A, P1, "2025-04-15")
    world.event(A, P2, "2025-04-16", status="cancelled")
    world.event(A, P4, "2025-03-31")  # March
    report = world.report()
    act = report.get("dossiers_actifs", APRIL, A)
    assert (act.numerator, act.denominator, act.value) == (4, 5, 80.0)
    assert act.target is None and act.status is TargetStatus.TARGET_MISSING  # « cible non renseignée »
    assert (
        STATUS_LABELS[act.status] == "cible non renseignée" and act.to_dict()["status_label"] == "cible non renseignée"
    )
    pp = report.get("projet_personnalise", APRIL, A)  # P1 active, P2 draft, P4 active; P3 completed
    assert (pp.numerator, pp.denominator, pp.value, pp.status) == (3, 4, 75.0, TargetStatus.NOT_MET)
    # no time window (« au moins un événement d'agenda dans son DUI »): P1, P3, and P4's March event; P2's
    # event is cancelled
    agenda = report.get("agenda", APRIL, A)
    assert (agenda.numerator, agenda.denominator, agenda.value) == (3, 4, 75.0)
    windowed = world.report(readings={"agenda": "periode"}).get("agenda", APRIL, A)  # P1, P3
    assert (windowed.numerator, windowed.denominator, windowed.value) == (2, 4, 50.0)
    assert (
        report.get(
            "dossiers_actifs",
            APRIL,
            A,
        ).value
        == 80.0
    )
    configured = indicator_engine(world.journal, {"dossiers_actifs": 75}).compute([period_ending("2025-01", APRIL)])
    assert configured.get("dossiers_actifs", APRIL, A).status is TargetStatus.MET


def test_projet_personnalise_status_in_force_at_period_end(world: World) -> None:
    world.stay(A, P1, "2024-01-01")
    world.update(A, P1, "2025-03-02")
    world.update(A, P1, "2025-04-02")
    world.update(A, P1, "2025-05-02")
    world.plan(A, P1, "draft", "2025-01-10", received="2025-01-31")
    world.plan(A, P1, "active", "2025-02-10", received="2025-02-28")
    world.plan(A, P1, "completed", "2025-04-10", received="2025-04-30")
    world.plan(A, P1, "active", "2025-02-10", received="2025-05-31")  # an old version re-sent later
    world.plan(A, P1, "active", "2025-05-20", key="pp2", received="2025-05-31")  # a new projet
    report = world.report(readings={"projet_personnalise": "fin_de_periode"})
    assert report.get("projet_personnalise", "2025-03", A).numerator == 1
    assert report.get("projet_personnalise", APRIL, A).numerator == 0  # completed on the 10th
    assert report.get("projet_personnalise", "2025-05", A).numerator == 1
    # the seed's wording (default): active from 1 to 9 April, so « actif » during April
    report = world.report()
    assert report.get("projet_personnalise", "2025-03", A).numerator == 1
    assert report.get("projet_personnalise", APRIL, A).numerator == 1
    assert report.get("projet_personnalise", "2025-05", A).numerator == 1


@pytest.mark.parametrize("reading", ["periode", "fin_de_periode"])
def test_a_projet_later_entered_in_error_never_counts(world: World, reading: str) -> None:
    for person in (P1, P2):
        world.stay(A, person, "2024-01-01")
        for month in ("2025-03-02", "2025-04-02", "2025-05-02"):
            world.update(A, person, month)
        world.plan(A, person, "active", "2025-02-10", received="2025-02-28")
    world.plan(A, P1, "entered-in-error", "2025-04-15", received="2025-04-30")  # P1's plan was a mistake
    world.plan(A, P2, "revoked", "2025-04-15", received="2025-04-30")  # P2's plan stopped mid-April
    report = world.report(readings={"projet_personnalise": reading})
    assert [report.get("projet_personnalise", m, A).numerator for m in ("2025-03", APRIL, "2025-05")] == (
        [1, 1, 0] if reading == "periode" else [1, 0, 0]
    )  # P2 only, until its revocation; P1 in no period, March included


def test_dates_are_the_producers(world: World) -> None:
    """The fact date decides, not when the simulator received it."""
    world.stay(A, P1, "2024-01-01")
    world.update(A, P1, "2025-02-15", received="2025-04-30")  # exported in April, modified in February
    report = world.report()
    assert report.get("dossiers_actifs", APRIL, A).numerator == 0
    assert report.get("dossiers_actifs", "2025-03", A).numerator == 1


def test_scope_by_run_and_essms(world: World) -> None:
    world.stay(A, P1, "2024-01-01", run_id="r1")
    world.stay(A, P2, "2024-01-01", run_id="r2")
    world.mss("2025-04-01", A, P1, run_id="r1")
    world.mss("2025-04-01", A, P2, run_id="r2")
    world.stay(B, P3, "2024-01-01", run_id="r1")
    report = world.report(scope=Scope(run_id="r1"))
    assert report.get("mssante", APRIL, A).denominator == 1 and report.essms == (A, B)
    only_b = indicator_engine(world.journal).compute([period_ending("2025-01", APRIL)], Scope(essms=(B,)))
    assert only_b.essms == (B,) and only_b.get("mssante", APRIL, None).denominator == 1


def test_evidence_lists_the_exchanges_behind_a_figure(world: World) -> None:
    stays = [world.stay(A, p, "2024-01-01") for p in (P1, P2)]
    sends = [world.mss("2025-04-02", A, P1), world.mss("2025-04-03", A, P1)]
    outsider = world.mss("2025-04-03", A, P5)
    world.commit()
    engine = indicator_engine(world.journal, mssante_counting="personnes")
    evidence = engine.evidence("mssante", period_ending("2025-01", APRIL), A)
    assert (evidence.figure.numerator, evidence.figure.denominator) == (1, 2)
    by_role = {(i.role, i.person): set(i.exchange_ids) for i in evidence.items}
    assert by_role[("denominator", P1)] == {stays[0].id} and by_role[("denominator", P2)] == {stays[1].id}
    assert by_role[("numerator", P1)] == {s.id for s in sends}
    assert by_role[("outside", P5)] == {outsider.id}
    count = engine.evidence("eprescription", period_ending("2025-01", APRIL), A)
    assert count.items == ()


def test_evidence_for_record_indicators(world: World) -> None:
    world.stay(A, P1, "2024-01-01")
    world.stay(A, P2, "2024-01-01")
    upd = world.update(A, P1, "2025-04-03")
    plan = world.plan(A, P1, "active", "2025-01-01")
    ev = world.event(A, P2, "2025-04-05")
    world.commit()
    engine = indicator_engine(world.journal)
    period = period_ending("2025-01", APRIL)
    pp = engine.evidence("projet_personnalise", period, A)
    roles = {(i.role, i.person): set(i.exchange_ids) for i in pp.items}
    assert roles[("denominator", P1)] == {upd.id} and roles[("numerator", P1)] == {plan.id}
    agenda = engine.evidence("agenda", period, A)
    assert ("numerator", P2) in {(i.role, i.person) for i in agenda.items}
    assert {ev.id} <= {x for i in agenda.items for x in i.exchange_ids}


def test_the_engine_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        IndicatorEngine(SQLiteJournal(":memory:"))
    world = World(tmp_path / "j.sqlite")
    with pytest.raises(ValueError, match="chevauchent"):
        indicator_engine(world.journal).compute([Period("2025-03", "2025-01"), Period("2025-03", "2025-03")])
    assert indicator_engine(world.journal).data_span() is None


# ------------------------------------------------------------------------------------------ properties
PERSONS = [P1, P2, P3, P4, P5]
DAYS = [f"2025-{m:02d}-{d:02d}" for m in range(1, 7) for d in (1, 14, 28)]


@st.composite
def worlds(draw: st.DrawFn) -> list[tuple]:
    specs: list[tuple] = []
    for essms in (A, B):
        for person in draw(st.lists(st.sampled_from(PERSONS), unique=True, max_size=5)):
            start = draw(st.sampled_from(["2024-06-01", *DAYS]))
            end = draw(st.one_of(st.none(), st.sampled_from([d for d in DAYS if d >= start] or [start])))
            specs.append(("stay", essms, person, start, end))
            plan_days = draw(st.lists(st.sampled_from(DAYS), unique=True, max_size=3))
            for day in plan_days:  # versions of one projet with distinct producer dates
                specs.append(
                    ("plan", essms, person, draw(st.sampled_from(["draft", "active", "on-hold", "completed"])), day)
                )
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["mss", "dmp", "update", "event", "epresc", "cdl"]))
        specs.append(
            (
                kind,
                draw(st.sampled_from([A, B])),
                draw(st.sampled_from(PERSONS + ["299999999999999"])),
                draw(st.sampled_from(DAYS)),
                draw(st.sampled_from(["accepted", "rejected", "cancelled"])),
            )
        )
    return specs


def _load(world: World, specs: list[tuple]) -> None:
    for spec in specs:
        kind, essms, person = spec[:3]
        if kind == "stay":
            world.stay(essms, person, spec[3], spec[4])
        elif kind == "plan":
            world.plan(essms, person, spec[3], spec[4])
        elif kind in ("mss", "dmp", "epresc", "cdl"):
            service, op = {
                "mss": ("mssante", "smtp.submit"),
                "dmp": ("dmp", "iti41.provide_and_register"),
                "epresc": ("eprescription", "eprescription.import_confirmed"),
                "cdl": ("eparcours", "cdl.entry.create"),
            }[kind]
            world.socle(
                service,
                op,
                spec[3],
                essms,
                person,
                outcome=Outcome.REJECTED if spec[4] == "rejected" else Outcome.ACCEPTED,
            )
        elif kind == "update":
            world.update(essms, person, spec[3])
        else:
            world.event(essms, person, spec[3], status="cancelled" if spec[4] == "cancelled" else "finished")


def _numbers(report) -> dict:  # noqa: ANN001
    return {(f.indicator, f.period.label, f.essms): (f.numerator, f.denominator) for f in report.figures}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=worlds(), seed=st.integers(0, 2**32 - 1))
def test_indicators_stay_in_bounds_and_ignore_event_order(specs: list[tuple], seed: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        first = World(Path(folder) / "a.sqlite")
        second = World(Path(folder) / "b.sqlite")
        _load(first, specs)
        _load(second, specs)
        order = list(range(len(second.pending)))
        random.Random(seed).shuffle(order)
        first.commit()
        second.commit(order)
        periods = campaign_periods("2025-01", "2025-06")
        one = IndicatorEngine(first.journal, mssante_counting="personnes").compute(periods, grappe=(A, B))
        two = IndicatorEngine(second.journal, mssante_counting="personnes").compute(periods, grappe=(A, B))
        messages_one = IndicatorEngine(first.journal).compute(periods, grappe=(A, B))
        messages_two = IndicatorEngine(second.journal).compute(periods, grappe=(A, B))
        first.journal.close()
        second.journal.close()
    assert _numbers(one) == _numbers(two)
    assert _numbers(messages_one) == _numbers(messages_two)
    for figure in messages_one.figures:  # counting messages: only the MSSanté rate may pass 100 %
        other = one.get(figure.indicator, figure.period, figure.essms)
        if figure.indicator == "mssante":
            assert figure.numerator >= other.numerator and figure.denominator == other.denominator
        else:
            assert (figure.numerator, figure.denominator) == (other.numerator, other.denominator)
    for figure in one.figures:
        assert figure.numerator >= 0
        if figure.denominator is not None:
            assert 0 <= figure.numerator <= figure.denominator
            if figure.value is not None:
                assert 0.0 <= figure.value <= 100.0
        if figure.indicator in ("projet_personnalise", "agenda"):
            active = one.get("dossiers_actifs", figure.period, figure.essms)
            assert figure.denominator == active.numerator


def test_journals_from_before_the_fact_columns_are_migrated(tmp_path: Path) -> None:
    import json
    import sqlite3

    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE exchanges (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, ts TEXT NOT NULL,
          month TEXT NOT NULL, service TEXT NOT NULL, operation TEXT NOT NULL, direction TEXT NOT NULL,
          outcome TEXT NOT NULL, actor TEXT, essms TEXT, person TEXT, error_code TEXT, error_message TEXT,
          digest TEXT, payload_type TEXT, details TEXT NOT NULL DEFAULT '{}', run_id TEXT, scenario_id TEXT);
    """)
    fact = {"fact": {"key": "s1", "date": "2024-01-01", "start": "2024-01-01", "end": None, "status": "in-progress"}}
    old.execute(
        "INSERT INTO exchanges (id, ts, month, service, operation, direction, outcome, essms, person, details)"
        " VALUES ('a', '2025-04-30T18:00:00+00:00', '2025-04', 'tddui', 'fhir.create.sejour', 'from_dui',"
        " 'accepted', ?, ?, ?)",
        (A, P1, json.dumps(fact)),
    )
    for ident in ("m1", "m2"):  # one message journaled twice, before the message_id column existed
        old.execute(
            "INSERT INTO exchanges (id, ts, month, service, operation, direction, outcome, essms, person, details)"
            " VALUES (?, '2025-04-10T08:00:00+00:00', '2025-04', 'mssante', 'smtp.submit', 'from_dui', 'accepted',"
            " ?, ?, ?)",
            (ident, A, P1, json.dumps({"message_id": "<x@essms.fr>"})),
        )
    old.execute("CREATE INDEX ix_exchanges_messages ON exchanges (service, json_extract(details, '$.message_id'))")
    old.commit()
    old.close()
    journal = SQLiteJournal(path)
    report = IndicatorEngine(journal).compute([period_ending("2025-01", APRIL)])
    assert report.get("mssante", APRIL, A).denominator == 1
    assert report.get("mssante", APRIL, A).numerator == 1  # one Message-ID
    journal.close()
    check = sqlite3.connect(path)
    assert check.execute("SELECT id, message_id FROM exchanges WHERE service = 'mssante' ORDER BY id").fetchall() == [
        ("m1", "<x@essms.fr>"),
        ("m2", "<x@essms.fr>"),
    ]
    indexes = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "ix_exchanges_message_ids" in indexes and "ix_exchanges_messages" not in indexes
    check.close()


def test_worker_processes_when_left_to_the_engine_only_on_idle_cores(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    import harness.analytics.indicators as indicators

    journal = SQLiteJournal(tmp_path / "j.sqlite")
    journal.record(
        Exchange(service="mssante", operation="smtp.submit", direction=Direction.FROM_DUI, outcome=Outcome.ACCEPTED)
    )
    pools: list[int] = []
    real_pool = indicators._pool
    monkeypatch.setattr(indicators, "_pool", lambda workers: pools.append(workers) or real_pool(workers))
    periods = campaign_periods("2025-01", "2025-06")
    for idle, workers, expected in (
        (0.5, None, []),  # busy machine, the engine chooses: one connection
        (1.5, None, [2]),  # an idle core: worker processes
        (0.5, 2, [2]),  # workers asked for: worker processes whatever the load
        (1.5, 1, []),  # one worker asked for: one connection
    ):
        pools.clear()
        monkeypatch.setattr(indicators, "_idle_cores", lambda idle=idle: idle)
        engine = IndicatorEngine(journal, workers=workers, parallel_from=0)
        engine.workers = engine.workers if workers is not None else 2  # whatever the cores of the machine running this
        engine.compute(periods)
        assert pools == expected, (idle, workers)
    journal.close()


@pytest.mark.parametrize("threads", [1, 3])  # a lone thread forks its workers, a threaded process uses a fork server
def test_worker_processes_give_the_same_figures_as_one_connection(world: World, threads: int, monkeypatch) -> None:  # noqa: ANN001
    import harness.analytics.indicators as indicators

    rng = random.Random(7)
    for essms in (A, B):
        for person in PERSONS:
            world.stay(essms, person, "2024-06-01", rng.choice([None, "2025-03-10", "2025-05-20"]))
            for month in range(1, 7):
                day = f"2025-{month:02d}-{rng.randint(1, 28):02d}"
                if rng.random() < 0.7:
                    world.mss(day, essms, person)
                if rng.random() < 0.5:
                    world.update(essms, person, day)
                if rng.random() < 0.4:
                    world.event(essms, person, day, status=rng.choice(["finished", "cancelled"]))
            world.plan(essms, person, rng.choice(["draft", "active", "completed"]), "2025-02-01")
    world.commit()
    periods = campaign_periods("2025-01", "2025-06")
    for counting in ("messages", "personnes"):
        alone = indicator_engine(world.journal, mssante_counting=counting, workers=1).compute(periods, grappe=(A, B))
        monkeypatch.setattr(indicators.threading, "active_count", lambda: threads)
        pooled = indicator_engine(world.journal, mssante_counting=counting, workers=2, parallel_from=0).compute(
            periods, grappe=(A, B)
        )
        monkeypatch.undo()
        assert _numbers(pooled) == _numbers(alone)
        assert any(f.numerator for f in alone.figures)
