"""Usage-indicator steps: set up a grappe's DUI records, replay months of activity through the simulators (at a
simulated date), export the records in the national TDDUI format, then judge the indicators the engine computes
from what the journal observed (:mod:`harness.analytics.indicators`)."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pytest_bdd import given, parsers, then, when

from harness.analytics.indicators import (
    BY_KEY,
    Period,
    Scope,
    TargetStatus,
    add_months,
    format_value,
    last_day,
    period_ending,
)
from harness.analytics.indicators_pg import indicator_engine
from harness.core.journal import JournalFilter, Outcome
from harness.core.messages import bilingual
from harness.fields import dui
from harness.fields.dui import AgendaEvent, DuiRecord, EventStatus, PersonalPlan, PlanStatus, Stay
from harness.fields.identity import generate_test_ins
from harness.fields.testdata import Establishment, Person
from harness.runtime.environment import ScenarioContext
from harness.sut.base import (
    ActionResult,
    ActionStatus,
    CdlNotePost,
    CdlNotesRead,
    MssanteRelay,
    MssanteSend,
    TdduiExport,
)

PARIS = ZoneInfo("Europe/Paris")
RECIPIENT = "jean.dupont@medecin.mssante.fr"
MONTHS_FR = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
]
MONTHS_EN = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
LABELS = {  # step wording -> indicator key (longest first: the regexes try them in this order)
    "le taux de dossiers actifs avec un projet personnalisé": "projet_personnalise",
    "le taux de dossiers actifs avec un événement d'agenda": "agenda",
    "le taux de dossiers actifs": "dossiers_actifs",
    "le taux d'utilisation de la MSSanté": "mssante",
    "le taux d'utilisation du DMP": "dmp",
    "rate of active records with a projet personnalisé": "projet_personnalise",
    "rate of active records with an agenda event": "agenda",
    "active records rate": "dossiers_actifs",
    "MSSanté usage rate": "mssante",
    "DMP usage rate": "dmp",
}
PLAN_WORDS = {
    "en préparation": PlanStatus.EN_PREPARATION,
    "actif": PlanStatus.ENCOURS,
    "en cours": PlanStatus.ENCOURS,
    "en pause": PlanStatus.ENPAUSE,
    "terminé": PlanStatus.TERMINE,
    "in preparation": PlanStatus.EN_PREPARATION,
    "active": PlanStatus.ENCOURS,
    "on hold": PlanStatus.ENPAUSE,
    "completed": PlanStatus.TERMINE,
}


def parse_month_words(text: str) -> str:
    """``avril 2025`` / ``April 2025`` / ``2025-04`` -> ``2025-04``."""
    text = text.strip().lower()
    if re.fullmatch(r"\d{4}-\d{2}", text):
        return text
    match = re.fullmatch(r"(\S+)\s+(\d{4})", text)
    if match:
        for names in (MONTHS_FR, MONTHS_EN):
            if match.group(1) in names:
                return f"{match.group(2)}-{names.index(match.group(1)) + 1:02d}"
    raise ValueError(bilingual("mois non reconnu", "unknown month") + f": {text!r} (ex. « avril 2025 » ou 2025-04)")


@dataclass
class RecordDraft:
    person: Person
    establishment: Establishment
    local_id: str
    stays: list[Stay] = field(default_factory=list)
    updates: list[datetime] = field(default_factory=list)
    plans: list[PersonalPlan] = field(default_factory=list)
    events: list[AgendaEvent] = field(default_factory=list)

    def freeze(self) -> DuiRecord:
        return DuiRecord(
            self.person, self.local_id, tuple(self.updates), tuple(self.stays), tuple(self.plans), tuple(self.events)
        )


@dataclass
class IndicatorScenario:
    """What the indicator steps of one scenario share."""

    socle: ScenarioContext
    grappe: list[Establishment] = field(default_factory=list)
    campaign_start: str = "2000-01"
    records: dict[str, RecordDraft] = field(default_factory=dict)  # display name -> record
    mssante_counting: str | None = None  # None: the run's configuration (default "messages")
    _tick: int = 0

    def person(self, ref: str, essms: str) -> Person:
        try:
            return self.socle.env.testdata.person(ref)
        except LookupError:
            pass
        given, _, family = ref.strip().partition(" ")
        seed = int(hashlib.sha256(ref.encode()).hexdigest()[:12], 16)
        rng = random.Random(seed)
        sex = rng.choice("MF")
        birth = date(1930 + rng.randrange(40), rng.randrange(1, 13), rng.randrange(1, 28))
        return Person(
            id=f"S{seed % 100000:05d}",
            family=family or given,
            given=given,
            sex=sex,
            birth_date=birth,
            ins=generate_test_ins(rng, sex=sex, birth_date=birth),
            essms=essms,
            patient_mailbox=False,
        )

    def record(self, ref: str) -> RecordDraft:
        for name, draft in self.records.items():
            if name.casefold() == ref.strip().casefold():
                return draft
        raise AssertionError(f"« {ref} » n'est pas une personne accompagnée de la grappe du scénario")

    def at(self, month: str, hour: int = 10) -> datetime:
        """A simulated instant inside ``month`` (the 15th, a minute later at each call)."""
        self._tick += 1
        return datetime(int(month[:4]), int(month[5:7]), 15, hour, tzinfo=PARIS) + timedelta(minutes=self._tick)

    def set_clock(self, instant: datetime) -> None:
        self.socle.env.run.clock = lambda: instant

    def period(self, words: str) -> Period:
        words = words.strip()
        match = re.fullmatch(r"la période de (\S+) à (\S+) (\d{4})|the period from (\S+) to (\S+) (\d{4})", words)
        if match:
            g = [x for x in match.groups() if x]
            start, end = parse_month_words(f"{g[0]} {g[2]}"), parse_month_words(f"{g[1]} {g[2]}")
            period = period_ending(self.campaign_start, end)
            if period.start != start:
                raise AssertionError(
                    f"la période mesurée fin {end} couvre {period.start} à {period.end}, pas {start} à {end}"
                )
            return period
        return period_ending(self.campaign_start, parse_month_words(words))

    def report(self, period: Period):  # noqa: ANN201
        engine = indicator_engine(
            self.socle.env.journal,
            self.socle.env.config.indicator_targets,
            self.mssante_counting or self.socle.env.config.mssante_counting,
        )
        scope = Scope(run_id=self.socle.env.run_id, scenario_id=self.socle.scenario_id)
        return (
            engine,
            scope,
            engine.compute(
                [period], scope, grappe=tuple(e.finess for e in self.grappe), campaign_start=self.campaign_start
            ),
        )


@pytest.fixture
def indicateurs(socle: ScenarioContext) -> Iterator[IndicatorScenario]:
    state = IndicatorScenario(socle)
    try:
        yield state
    finally:
        socle.env.run.clock = None  # back to real time for the next scenario


def _essms(state: IndicatorScenario, name: str) -> Establishment:
    establishment = state.socle.env.testdata.establishment(name)
    if state.grappe and establishment not in state.grappe:
        raise AssertionError(f"l'ESSMS « {name} » n'est pas dans la grappe du scénario")
    return establishment


# Given ---------------------------------------------------------------------------------------------
@given(parsers.parse("une grappe de {n:d} ESSMS équipés du DUI sous test"))
@given(parsers.parse("a grappe of {n:d} establishments equipped with the DUI under test"))
def grappe(indicateurs: IndicatorScenario, n: int) -> None:
    available = indicateurs.socle.env.testdata.establishments
    if n > len(available):
        raise AssertionError(f"les fixtures ne décrivent que {len(available)} ESSMS, {n} demandés")
    indicateurs.grappe = list(available[:n])
    indicateurs.socle.attach("Grappe", "\n".join(f"{e.name} (FINESS {e.finess})" for e in indicateurs.grappe))


@given(parsers.parse("la campagne de mesure commence en {month}"))
@given(parsers.parse("the measurement campaign starts in {month}"))
def campaign(indicateurs: IndicatorScenario, month: str) -> None:
    indicateurs.campaign_start = parse_month_words(month)
    first = period_ending(indicateurs.campaign_start, add_months(indicateurs.campaign_start, 2))
    indicateurs.socle.attach("Campagne", f"première mesure: {first.start} à {first.end} (3 mois), puis chaque mois")


@given("le taux d'utilisation de la MSSanté est compté par personne accompagnée")
@given("the MSSanté usage rate is counted per person accompanied")
def mssante_per_person(indicateurs: IndicatorScenario) -> None:
    indicateurs.mssante_counting = "personnes"
    indicateurs.socle.attach(
        "Taux MSSanté",
        "option « personnes » : chaque personne accompagnée compte une fois, "
        "quel que soit le nombre de messages envoyés pour elle",
    )


def _cell(row: dict[str, str], *names: str) -> str:
    for name in names:
        if row.get(name, "").strip():
            return row[name].strip()
    return ""


def _days(text: str) -> list[tuple[date, bool]]:
    """``2025-04-10, 2025-04-12 annulé`` -> [(date, cancelled)]."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        day, _, flag = part.partition(" ")
        out.append((date.fromisoformat(day), flag.strip().lower() in {"annulé", "annule", "cancelled"}))
    return out


@given(parsers.parse('les personnes accompagnées par l\'ESSMS "{name}":'))
@given(parsers.parse('the persons accompanied by the establishment "{name}":'))
def accompanied(indicateurs: IndicatorScenario, name: str, datatable: list[list[str]]) -> None:
    establishment = _essms(indicateurs, name)
    header = [h.strip().lower() for h in datatable[0]]
    lines = []
    for number, values in enumerate(datatable[1:], start=1):
        row = dict(zip(header, values, strict=False))
        ref = _cell(row, "personne", "person")
        person = indicateurs.person(ref, establishment.finess)
        draft = RecordDraft(person, establishment, local_id=f"U{number:04d}")
        admission = date.fromisoformat(_cell(row, "admission"))
        exit_text = _cell(row, "sortie", "exit")
        draft.stays.append(Stay(f"{number}", admission, date.fromisoformat(exit_text) if exit_text else None))
        draft.updates.append(datetime.combine(admission, time(9), tzinfo=PARIS))
        for day, _ in _days(_cell(row, "modifié le", "updated on")):
            draft.updates.append(datetime.combine(day, time(11), tzinfo=PARIS))
        plan_text = _cell(row, "projet personnalisé", "personal plan")
        for version in (v.strip() for v in plan_text.split(",") if v.strip()):  # its statuses, oldest first
            match = re.fullmatch(r"(.+?)\s+(?:depuis|le|since|on)\s+(\d{4}-\d{2}-\d{2})", version)
            if not match or match.group(1).lower() not in PLAN_WORDS:
                raise ValueError(f"projet personnalisé non compris: {version!r} (ex. « actif depuis 2025-01-05 »)")
            draft.plans.append(
                PersonalPlan(
                    f"{number}",
                    PLAN_WORDS[match.group(1).lower()],
                    datetime.combine(date.fromisoformat(match.group(2)), time(14), tzinfo=PARIS),
                )
            )
        for index, (day, cancelled) in enumerate(_days(_cell(row, "événements", "events")), start=1):
            start = datetime.combine(day, time(10), tzinfo=PARIS)
            draft.events.append(
                AgendaEvent(
                    f"{number}-{index}",
                    start,
                    start + timedelta(hours=1),
                    start + timedelta(hours=1),
                    EventStatus.ANNULE if cancelled else EventStatus.REALISE,
                )
            )
        indicateurs.records[person.display_name] = draft
        lines.append(
            f"{person.display_name} (INS {person.ins.value}) entrée {admission}"
            + (f", sortie {exit_text}" if exit_text else "")
        )
    indicateurs.socle.attach(f"Dossiers du DUI — {establishment.name}", "\n".join(lines))


# When ----------------------------------------------------------------------------------------------
def _send(indicateurs: IndicatorScenario, month: str, ref: str) -> None:
    draft = indicateurs.record(ref)
    indicateurs.set_clock(indicateurs.at(month))
    action = MssanteSend(
        person=draft.person, establishment=draft.establishment, document_kind="DLU", recipients=(RECIPIENT,)
    )
    indicateurs.socle.act(
        f"envoi MSSanté ({month}) pour {draft.person.display_name}", lambda: indicateurs.socle.sut.send_mssante(action)
    )


def _refs(text: str) -> list[str]:
    refs = re.findall(r'"([^"]+)"', text)
    if not refs:
        raise ValueError(f"personnes entre guillemets attendues: {text!r}")
    return refs


@when(parsers.re(r"en (?P<month>\S+ \d{4}|\d{4}-\d{2}) le DUI envoie par MSSanté un document pour (?P<refs>.+)"))
@when(parsers.re(r"in (?P<month>\S+ \d{4}|\d{4}-\d{2}) the DUI sends a document by MSSanté for (?P<refs>.+)"))
def send_for(indicateurs: IndicatorScenario, month: str, refs: str) -> None:
    for ref in _refs(refs):
        _send(indicateurs, parse_month_words(month), ref)


@when(
    parsers.re(
        r'en (?P<month>\S+ \d{4}|\d{4}-\d{2}) le DUI envoie par MSSanté (?P<n>\d+) documents pour "(?P<ref>[^"]+)"'
    ),
    converters={"n": int},
)
@when(
    parsers.re(
        r'in (?P<month>\S+ \d{4}|\d{4}-\d{2}) the DUI sends (?P<n>\d+) documents by MSSanté for "(?P<ref>[^"]+)"'
    ),
    converters={"n": int},
)
def send_many(indicateurs: IndicatorScenario, month: str, n: int, ref: str) -> None:
    for _ in range(n):
        _send(indicateurs, parse_month_words(month), ref)


@when(parsers.parse("le DUI transmet ses données TDDUI de fin {month}"))
@when(parsers.parse("the DUI exports its TDDUI data at the end of {month}"))
def export(indicateurs: IndicatorScenario, month: str) -> None:
    month = parse_month_words(month)
    exported_at = datetime.combine(last_day(month), time(20), tzinfo=PARIS)
    indicateurs.set_clock(exported_at)
    for establishment in indicateurs.grappe:
        records = tuple(r.freeze() for r in indicateurs.records.values() if r.establishment == establishment)
        if not records:
            continue
        action = TdduiExport(establishment, records, exported_at)
        indicateurs.socle.act(
            f"export TDDUI de {establishment.name} (fin {month})",
            lambda action=action: indicateurs.socle.sut.export_tddui(action),
        )


@when(
    parsers.re(
        r"en (?P<month>\S+ \d{4}|\d{4}-\d{2}) le DUI transmet un document au relais HL7 v2 de la MSSanté pour "
        r"(?P<refs>.+)"
    )
)
@when(
    parsers.re(
        r"in (?P<month>\S+ \d{4}|\d{4}-\d{2}) the DUI hands a document to the MSSanté HL7 v2 relay for (?P<refs>.+)"
    )
)
def relay_for(indicateurs: IndicatorScenario, month: str, refs: str) -> None:
    """The integration platform builds and sends the MSSanté e-mail for the DUI (journaled ``smtp.relay``)."""
    for ref in _refs(refs):
        draft = indicateurs.record(ref)
        indicateurs.set_clock(indicateurs.at(parse_month_words(month)))
        action = MssanteRelay(draft.person, draft.establishment, "DLU", (RECIPIENT,))
        _drive(
            indicateurs,
            f"document au relais HL7 v2 ({month}) pour {draft.person.display_name}",
            "relay_mssante_hl7",
            action,
        )


def _drive(indicateurs: IndicatorScenario, label: str, method: str, action: object) -> ActionResult:
    call = getattr(indicateurs.socle.sut, method, None)
    if call is None:
        return indicateurs.socle.act(
            label, lambda: ActionResult(ActionStatus.ERROR, f"le pilote ne sait pas faire « {method} »")
        )
    return indicateurs.socle.act(label, lambda: call(action))


@when(
    parsers.re(
        r'en (?P<month>\S+ \d{4}|\d{4}-\d{2}) le DUI écrit une note dans le cahier de liaison de "(?P<ref>[^"]+)"'
    )
)
@when(
    parsers.re(
        r'in (?P<month>\S+ \d{4}|\d{4}-\d{2}) the DUI writes a note in the cahier de liaison of "(?P<ref>[^"]+)"'
    )
)
def cdl_note(indicateurs: IndicatorScenario, month: str, ref: str) -> None:
    draft = indicateurs.record(ref)
    indicateurs.set_clock(indicateurs.at(parse_month_words(month)))
    action = CdlNotePost(draft.person, draft.establishment, "OBS", "Nuit calme, pas de douleur signalée.")
    _drive(
        indicateurs, f"note du cahier de liaison ({month}) pour {draft.person.display_name}", "cdl_post_note", action
    )


@when(
    parsers.re(
        r'en (?P<month>\S+ \d{4}|\d{4}-\d{2}) le DUI consulte (?P<n>\d+) fois le cahier de liaison de "(?P<ref>[^"]+)"'
    ),
    converters={"n": int},
)
@when(
    parsers.re(
        r'in (?P<month>\S+ \d{4}|\d{4}-\d{2}) the DUI reads the cahier de liaison of "(?P<ref>[^"]+)" (?P<n>\d+) times'
    ),
    converters={"n": int},
)
def cdl_reads(indicateurs: IndicatorScenario, month: str, n: int, ref: str) -> None:
    draft = indicateurs.record(ref)
    for _ in range(n):
        indicateurs.set_clock(indicateurs.at(parse_month_words(month)))
        action = CdlNotesRead(draft.person, draft.establishment)
        _drive(
            indicateurs,
            f"lecture du cahier de liaison ({month}) de {draft.person.display_name}",
            "cdl_read_notes",
            action,
        )


@when(
    parsers.re(
        r"en (?P<month>\S+ \d{4}|\d{4}-\d{2}) la plateforme e-Parcours publie une note dans le cahier de liaison de "
        r'"(?P<ref>[^"]+)"'
    )
)
@when(
    parsers.re(
        r"in (?P<month>\S+ \d{4}|\d{4}-\d{2}) the e-Parcours platform publishes a note in the cahier de liaison of "
        r'"(?P<ref>[^"]+)"'
    )
)
def platform_publishes(indicateurs: IndicatorScenario, month: str, ref: str) -> None:
    draft = indicateurs.record(ref)
    when_ = indicateurs.at(parse_month_words(month))
    indicateurs.set_clock(when_)
    service = indicateurs.socle.simulator("eparcours").service  # type: ignore[attr-defined]
    version = service.publish_note(
        draft.person, note_type="OBS", text="Passage de l'infirmière à domicile.", when=when_
    )
    indicateurs.socle.attach(
        "Note publiée par la plateforme", f"DocumentReference/{version.id} — {draft.person.display_name}"
    )


@when(parsers.parse('le DUI annule le séjour de "{ref}" saisi par erreur'))
@when(parsers.parse('the DUI retracts the stay of "{ref}" entered in error'))
def stay_retracted(indicateurs: IndicatorScenario, ref: str) -> None:
    draft = indicateurs.record(ref)
    draft.stays = [replace(stay, status="entered-in-error") for stay in draft.stays]


@when(parsers.parse('le DUI annule l\'événement du {day} de "{ref}"'))
@when(parsers.parse('the DUI cancels the event of {day} of "{ref}"'))
def event_cancelled(indicateurs: IndicatorScenario, day: str, ref: str) -> None:
    draft = indicateurs.record(ref)
    wanted = date.fromisoformat(day.strip())
    found = [e for e in draft.events if e.start.date() == wanted]
    if not found:
        raise AssertionError(f"aucun événement du {day} dans le dossier de {ref}")
    changed = datetime.combine(wanted, time(18), tzinfo=PARIS) + timedelta(days=1)  # cancelled the day after
    draft.events = [replace(e, status=EventStatus.ANNULE, modified=changed) if e in found else e for e in draft.events]


# Then ----------------------------------------------------------------------------------------------
_LABELS_FR = "|".join(re.escape(k) for k in LABELS if k.startswith("le "))
_LABELS_EN = "|".join(re.escape(k) for k in LABELS if not k.startswith("le "))
_VERDICTS = {
    "et la cible est atteinte": TargetStatus.MET,
    "and the target is met": TargetStatus.MET,
    "et la cible n'est pas atteinte": TargetStatus.NOT_MET,
    "and the target is not met": TargetStatus.NOT_MET,
    "sans cible": TargetStatus.NO_TARGET,
    "with no target": TargetStatus.NO_TARGET,
    "et la cible n'est pas renseignée": TargetStatus.TARGET_MISSING,
    "and the target is not set": TargetStatus.TARGET_MISSING,
}


def _figure(indicateurs: IndicatorScenario, period_words: str, key: str, scope_words: str):  # noqa: ANN202
    period = indicateurs.period(period_words)
    engine, scope, report = indicateurs.report(period)
    match = re.search(r'"([^"]+)"', scope_words)
    essms = _essms(indicateurs, match.group(1)).finess if match else None
    figure = report.get(key, period, essms)
    evidence = engine.evidence(key, period, essms, scope, campaign_start=indicateurs.campaign_start)
    lines = [
        f"{BY_KEY[key].label} — {period.label} — {'grappe' if essms is None else 'ESSMS ' + essms}",
        f"{figure.numerator} / {figure.denominator} = {format_value(figure)}; cible: "
        f"{'aucune' if figure.target is None else f'{figure.target:g} %'} ({figure.status})",
    ]
    lines += [f"- {item.role}: {item.person} <- {', '.join(item.exchange_ids)}" for item in evidence.items]
    indicateurs.socle.attach("Indicateur (détail des échanges)", "\n".join(lines))
    return figure


def _check_rate(
    indicateurs: IndicatorScenario, period: str, label: str, scope: str, pct: str, verdict: str | None
) -> None:
    figure = _figure(indicateurs, period, LABELS[label], scope)
    expected = float(pct.replace(",", "."))
    if figure.value is None:
        raise AssertionError(f"{label}: non calculable (aucune personne / aucun dossier actif), attendu {pct} %")
    if abs(round(figure.value, 1) - expected) > 0.05:
        raise AssertionError(
            f"{label} {scope}: {format_value(figure)} ({figure.numerator} sur {figure.denominator}), attendu {pct} %"
        )
    if verdict and figure.status is not _VERDICTS[verdict.strip()]:
        raise AssertionError(f"{label} {scope}: statut {figure.status}, attendu {_VERDICTS[verdict.strip()]}")


@then(
    parsers.re(
        rf"pour (?P<period>.+?) (?P<label>{_LABELS_FR}) (?P<scope>de l'ESSMS \"[^\"]+\"|de la grappe) est de "
        r"(?P<pct>\d+(?:,\d+)?) %(?: (?P<verdict>et la cible est atteinte|et la cible n'est pas atteinte|sans cible"
        r"|et la cible n'est pas renseignée))?$"
    )
)
@then(
    parsers.re(
        rf"for (?P<period>.+?) the (?P<label>{_LABELS_EN}) of (?P<scope>the establishment \"[^\"]+\"|the grappe) is "
        r"(?P<pct>\d+(?:[.,]\d+)?) %(?: (?P<verdict>and the target is met|and the target is not met|with no target"
        r"|and the target is not set))?$"
    )
)
def rate_is(indicateurs: IndicatorScenario, period: str, label: str, scope: str, pct: str, verdict: str | None) -> None:
    _check_rate(indicateurs, period, label, scope, pct, verdict)


@then(
    parsers.re(
        r'pour (?P<period>.+?) le nombre de personnes accompagnées (?P<scope>de l\'ESSMS "[^"]+"|de la grappe) est de (?P<n>\d+)$'
    ),
    converters={"n": int},
)
@then(
    parsers.re(
        r'for (?P<period>.+?) the number of persons accompanied by (?P<scope>the establishment "[^"]+"|the grappe) is (?P<n>\d+)$'
    ),
    converters={"n": int},
)
def file_active_is(indicateurs: IndicatorScenario, period: str, scope: str, n: int) -> None:
    figure = _figure(indicateurs, period, "mssante", scope)
    if figure.denominator != n:
        raise AssertionError(
            f"{figure.denominator} personne(s) accompagnée(s) {scope} ({figure.period.label}), attendu {n}"
        )


def _transactions(indicateurs: IndicatorScenario) -> list:  # noqa: ANN202
    socle = indicateurs.socle
    found = socle.env.journal.query(
        JournalFilter(
            service=dui.SERVICE, operation=dui.OP_TRANSACTION, run_id=socle.env.run_id, scenario_id=socle.scenario_id
        )
    )
    if not found:
        raise AssertionError("aucune transaction TDDUI reçue par le simulateur")
    for exchange in found:
        findings = "\n".join(
            f"- {f['severity']} {f['code']}: {f['message']} [{f['location']}]"
            for f in exchange.details.get("findings", [])
        )
        socle.attach(
            "Transaction TDDUI",
            f"{exchange.outcome} {exchange.error_code or ''} (échange {exchange.id})\n{findings}".strip(),
            exchange,
        )
    return found


def _tddui_accepted(indicateurs: IndicatorScenario) -> None:
    refused = [e for e in _transactions(indicateurs) if e.outcome is Outcome.REJECTED]
    if refused:
        raise AssertionError(
            "transaction TDDUI refusée: " + "; ".join(f"{e.error_code} {e.error_message}" for e in refused)
        )


@then("le point de réception TDDUI accepte les données transmises sans avertissement")
@then("le simulateur TDDUI accepte les données transmises sans avertissement")
@then("the TDDUI simulator accepts the data without warning")
def tddui_clean(indicateurs: IndicatorScenario) -> None:
    _tddui_accepted(indicateurs)
    warnings = [f for e in _transactions(indicateurs) for f in e.details.get("findings", []) if f["severity"] != "info"]
    if warnings:
        raise AssertionError("avertissements TDDUI: " + "; ".join(f"{w['code']}: {w['message']}" for w in warnings))


@then(parsers.parse('le journal rattache les données transmises à l\'ESSMS "{name}" et à la personne "{ref}"'))
@then(parsers.parse('the journal ties the exported data to the establishment "{name}" and the person "{ref}"'))
def facts_tied(indicateurs: IndicatorScenario, name: str, ref: str) -> None:
    socle = indicateurs.socle
    establishment = _essms(indicateurs, name)
    person = indicateurs.record(ref).person
    facts = [
        e
        for e in socle.env.journal.query(
            JournalFilter(service=dui.SERVICE, run_id=socle.env.run_id, scenario_id=socle.scenario_id)
        )
        if e.operation != dui.OP_TRANSACTION
    ]
    kinds = {e.operation for e in facts if e.essms == establishment.finess and e.person == person.ins.value}
    socle.attach(
        "Faits DUI journalisés",
        "\n".join(f"{e.operation} essms={e.essms} personne={e.person} {e.details.get(dui.FACT)}" for e in facts),
    )
    missing = {str(k) for k in dui.FactKind} - kinds
    if missing:
        raise AssertionError(f"faits absents pour {person.display_name} à {establishment.name}: {sorted(missing)}")


@then(
    parsers.re(
        r'pour (?P<period>.+?) le nombre d\'échanges par le cahier de liaison (?P<scope>de l\'ESSMS "[^"]+"|de la grappe) '
        r"est de (?P<n>\d+) et de (?P<total>\d+) pendant la durée du projet$"
    ),
    converters={"n": int, "total": int},
)
@then(
    parsers.re(
        r'for (?P<period>.+?) the cahier de liaison exchanges of (?P<scope>the establishment "[^"]+"|the grappe) '
        r"are (?P<n>\d+) and (?P<total>\d+) over the project$"
    ),
    converters={"n": int, "total": int},
)
def cdl_count_is(indicateurs: IndicatorScenario, period: str, scope: str, n: int, total: int) -> None:
    figure = _figure(indicateurs, period, "cahier_liaison", scope)
    if (figure.numerator, figure.project_total) != (n, total):
        raise AssertionError(
            f"échanges par le cahier de liaison {scope} ({figure.period.label}): {figure.numerator}, "
            f"{figure.project_total} pendant la durée du projet ; attendu {n} et {total}"
        )
