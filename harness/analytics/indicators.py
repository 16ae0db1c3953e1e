"""The ESMS numérique usage indicators, computed from the exchanges the journal observed.

The seven measures of the programme's *cibles d'usage* (funding balance paid once they are met), for each ESSMS
(FINESS géographique), each measurement period and the grappe as a whole. Every indicator is **measured over
the past month at each month end, except the first measure, which covers 3 months** (:func:`campaign_periods`).

Definitions (numerator / denominator, target), as the regional call for projects words them (seed 003 §6.1 to
§6.3; every definition, quote and reading in docs/specs/indicators.md):

=====================  ========================================================================  ======
indicator              computation                                                               target
=====================  ========================================================================  ======
mssante                MSSanté messages sent (SMTP submissions and HL7 v2 relay e-mails, one     70 %
                       per Message-ID) / persons accompanied (reading ``personnes``: persons)
dmp                    persons accompanied whose DMP received ≥ 1 document / persons accompanied 70 %
eprescription          e-prescriptions imported into the DUI (count)                             none
cahier_liaison         notes exchanged with the platform (written or updated by the DUI, a       none
                       platform note first received), with the total since the campaign start
dossiers_actifs        active records / persons accompanied                                      « cible non
                                                                                                 renseignée »
projet_personnalise    active records with a projet personnalisé in preparation or active at     90 %
                       any time in the period / active records
agenda                 active records with ≥ 1 agenda event recorded by the period's end (no     90 %
                       time window) / active records
=====================  ========================================================================  ======

*Persons accompanied* (the *file active*) = persons accompanied at the end of the period plus the definitive
exits during it, each counted once: persons with a séjour overlapping the period, from the DUI's TDDUI exports.
The **latest version** of a séjour or agenda event decides: one re-exported as cancelled or entered-in-error is
retracted (:data:`RETRACTED`); so is a projet personnalisé whose latest version is entered-in-error. An *active record* belongs to a person accompanied and was updated at least once
during the period, by the **producer's** dates (:mod:`harness.fields.dui`). Where the seed's words can be read two
ways, a named option (:data:`READINGS`) whose default is the literal wording. Person-based numerators only count
persons accompanied (so those rates stay within 0–100 %); persons seen in exchanges but absent from the file
active are reported as ``outside`` for the auditor. At grappe level, numerators and denominators are the sums of
the establishments' (a person accompanied by two ESSMS counts in each).

Exchanges counted (the exact journal records the simulators must write — see docs/ARCHITECTURE.md):
accepted exchanges of :data:`MSSANTE`, :data:`DMP`, :data:`EPRESCRIPTION`, :data:`CAHIER_LIAISON` and the TDDUI
facts of :mod:`harness.fields.dui`; the month of a socle exchange is its journal ``month``: the French calendar
month (Europe/Paris) of its recording time.

The engine is a handful of set-based SQL statements on the SQLite journal (indexes in :mod:`harness.core.journal`):
index scans that build one bit mask per person and kind of fact (one bit per period), then a lane-wise sum of
those per-person masks per ESSMS, and index-only counts per month and ESSMS for the counted indicators (no Python
loop over journal rows). On a large journal (:data:`PARALLEL_FROM` exchanges) the mask scans run in worker
processes, all bounded by the snapshot of the engine's read transaction (``seq``).
"""

from __future__ import annotations

import bisect
import multiprocessing
import os
import re
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from harness.core.journal import Journal, SQLiteJournal
from harness.core.messages import bilingual
from harness.fields import dui

# ------------------------------------------------------------------------------------------ definitions
#: The seed every definition quotes: the regional call for projects « Programme ESMS numérique — phase de
#: généralisation » (ARS Bourgogne-Franche-Comté, ``../shared/seeds/003_*``), sections §6.1 to §6.3.
SEED_CALL = "appel à projets régional ESMS numérique (seed 003)"


@dataclass(frozen=True)
class Source:
    """The journal exchanges an indicator reads: ``service`` and exact ``operations`` or an operation prefix."""

    service: str
    operations: tuple[str, ...] = ()
    operation_prefix: str | None = None

    @property
    def operation(self) -> str | None:
        """The first (main) operation, ``None`` for a prefix source."""
        return self.operations[0] if self.operations else None

    def describe(self) -> str:
        ops = " + ".join(self.operations) if self.operations else f"{self.operation_prefix}*"
        return f"{self.service} / {ops} (accepted)"


#: MSSanté messages the DUI sent: SMTP submissions, and the e-mails the HL7 v2 relay (the integration platform the
#: DUI hands its documents to) built and sent for the DUI (``smtp.relay``): both are « messages envoyés via la MS
#: Santé » (003 §6.1). The MSSanté simulator records them with person = INS, essms = FINESS and
#: ``details.message_id``: a Message-ID journaled twice is one message.
MSSANTE = Source("mssante", ("smtp.submit", "smtp.relay"))
#: Documents the DUI fed into the DMP (IHE ITI-41 Provide and Register Document Set-b).
DMP = Source("dmp", ("iti41.provide_and_register",))
#: Electronic prescriptions imported into the DUI (the DUI confirmed the import to the e-Prescription service).
EPRESCRIPTION = Source("eprescription", ("eprescription.import_confirmed",))
#: Cahier de liaison exchanges with the regional e-Parcours platform (operations ``cdl.*``; which of them count
#: depends on the ``cahier_liaison`` reading, see :data:`READINGS`).
CAHIER_LIAISON = Source("eparcours", operation_prefix="cdl.")
#: The e-Parcours operations of a note the DUI writes or updates (reading ``notes``).
CDL_WRITES = ("cdl.create", "cdl.update")
#: A partner's note published on the platform (the DUI has to read it), and the DUI's reads and searches.
CDL_PLATFORM_NOTE, CDL_READ, CDL_SEARCH = "platform.note", "cdl.read", "cdl.search"
#: The DUI's own records (TDDUI exports): séjours, projets personnalisés, agenda events, record updates.
DUI_RECORDS = Source(dui.SERVICE, operation_prefix="fhir.create.")
#: Séjour / événement statuses (Encounter.status, FHIR R4) that retract the fact: the latest version of a séjour
#: or event decides, and a cancelled or entered-in-error one is not counted, whatever its earlier versions said.
RETRACTED = dui.EVENT_STATUSES_NOT_COUNTED


class MssanteCounting(StrEnum):
    """What the MSSanté rate counts. The national instruction (ESMS numérique, §6.1) reads « nombre de messages
    envoyés via la MS Santé / nombre de personnes accompagnées »: every accepted message counts, so the rate may
    pass 100 % (``messages``, the default). ``personnes`` counts each person accompanied once, however many
    messages were sent for them (the reading of the DMP rate, and a stricter one some ARS may apply)."""

    MESSAGES = "messages"
    PERSONNES = "personnes"


@dataclass(frozen=True)
class Reading:
    """A named option where the seeds' words can be read more than one way. The first choice, the default, is
    the literal wording (``quote``, from ``section`` of the seed); every choice says what it counts."""

    name: str
    choices: Mapping[str, str]  # choice -> what it counts (French), the default first
    quote: str
    section: str

    @property
    def default(self) -> str:
        return next(iter(self.choices))

    def help(self) -> str:
        """One line for ``--help``: the option, its choices (default first) and the quote."""
        choices = " | ".join(self.choices)
        return f"{self.name}={choices} (défaut {self.default}; {self.section} : {self.quote})"


READINGS: tuple[Reading, ...] = (
    Reading(
        "mssante",
        {
            "messages": "chaque message envoyé (Message-ID) compte une fois ; le taux peut dépasser 100 %",
            "personnes": "chaque personne accompagnée compte une fois, quel que soit le nombre de messages",
        },
        "« nombre de messages envoyés via la MS Santé / nombre de personnes accompagnées pouvant bénéficier d'un "
        "projet d'accueil et d'accompagnement »",
        f"{SEED_CALL} §6.1",
    ),
    Reading(
        "cahier_liaison",
        {
            "notes": "notes échangées : note écrite ou mise à jour par le DUI, note de la plateforme reçue par le "
            "DUI la première fois (lecture ou recherche) ; les recherches répétées ne comptent pas",
            "appels": "chaque appel HTTP cdl.* accepté (recherches comprises)",
        },
        "« nombre d'échanges réalisés via le cahier de liaison entre la solution DUI et la plateforme pendant la "
        "durée du projet »",
        f"{SEED_CALL} §6.2",
    ),
    Reading(
        "projet_personnalise",
        {
            "periode": "projet en préparation ou actif à un moment quelconque de la période",
            "fin_de_periode": "projet en préparation ou actif le dernier jour de la période",
        },
        "« nombre de dossiers actifs sur la période de recueil ET ayant un projet personnalisé en préparation ou "
        "actif »",
        f"{SEED_CALL} §6.3 B",
    ),
    Reading(
        "agenda",
        {
            "sans_fenetre": "au moins un événement d'agenda (non annulé) enregistré dans le dossier à la fin de la "
            "période, quelle que soit sa date",
            "periode": "au moins un événement d'agenda (non annulé) commençant pendant la période",
        },
        "« nombre de dossiers actifs sur la période de recueil ET ayant au moins un événement d'agenda dans son DUI »",
        f"{SEED_CALL} §6.3 B",
    ),
)
READING_BY_NAME: Mapping[str, Reading] = {r.name: r for r in READINGS}


def resolve_readings(overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Every reading's choice: the defaults (the seeds' wording) with ``overrides`` applied."""
    chosen = {r.name: r.default for r in READINGS}
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        reading = READING_BY_NAME.get(name)
        if reading is None:
            raise ValueError(
                bilingual("lecture inconnue", "unknown reading")
                + f" {name!r} ("
                + bilingual("connues", "known")
                + f": {', '.join(READING_BY_NAME)})"
            )
        text = str(value).strip().lower()
        if text not in reading.choices:
            raise ValueError(f"lecture {name}: {value!r} inconnue ({' ou '.join(reading.choices)})")
        chosen[name] = text
    return chosen


def parse_reading_options(items: Iterable[str]) -> dict[str, str]:
    """``["agenda=periode"]`` -> mapping (for :func:`resolve_readings`)."""
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--lecture attend NOM=VALEUR / expects NAME=VALUE, reçu {item!r}")
        parsed[key.strip()] = value.strip()
    return parsed


class Kind(StrEnum):
    RATE = "rate"
    COUNT = "count"


@dataclass(frozen=True)
class IndicatorDef:
    key: str
    label: str  # French (users)
    label_en: str
    kind: Kind
    source: Source
    numerator: str  # French description
    denominator: str | None
    quote: str = ""  # the seed's own words (« mode de calcul »)
    section: str = ""  # where the seed says it


INDICATORS: tuple[IndicatorDef, ...] = (
    IndicatorDef(
        "mssante",
        "Taux d'utilisation de la MSSanté",
        "MSSanté usage rate",
        Kind.RATE,
        MSSANTE,
        "messages MSSanté envoyés, relais HL7 v2 compris, chacun une fois (lecture « personnes » : personnes "
        "accompagnées avec au moins un message)",
        "personnes accompagnées",
        "« (nombre de messages envoyés via la MS Santé / nombre de personnes accompagnées pouvant bénéficier d'un projet d'accueil et d'accompagnement) x 100 »",
        f"{SEED_CALL} §6.1",
    ),
    IndicatorDef(
        "dmp",
        "Taux d'utilisation du DMP",
        "DMP usage rate",
        Kind.RATE,
        DMP,
        "personnes accompagnées dont le DMP a reçu au moins un document",
        "personnes accompagnées",
        "« (nombre de DMP alimentés avec au moins un document / nombre de personnes accompagnées pouvant bénéficier d'un projet d'accueil et d'accompagnement) x 100 »",
        f"{SEED_CALL} §6.1",
    ),
    IndicatorDef(
        "eprescription",
        "Ordonnances électroniques importées",
        "e-prescriptions imported",
        Kind.COUNT,
        EPRESCRIPTION,
        "imports d'ordonnances électroniques dans le DUI",
        None,
        "« nombre de fois dans le mois où une prescription électronique est importée dans la solution DUI »",
        f"{SEED_CALL} §6.2",
    ),
    IndicatorDef(
        "cahier_liaison",
        "Échanges par le cahier de liaison",
        "cahier de liaison exchanges",
        Kind.COUNT,
        CAHIER_LIAISON,
        "notes échangées avec la plateforme e-Parcours (lecture « appels » : appels cdl.*)",
        None,
        "« nombre d'échanges réalisés via le cahier de liaison entre la solution DUI et la plateforme pendant la durée du projet »",
        f"{SEED_CALL} §6.2",
    ),
    IndicatorDef(
        "dossiers_actifs",
        "Taux de dossiers actifs",
        "active records rate",
        Kind.RATE,
        DUI_RECORDS,
        "dossiers actifs (mis à jour pendant la période)",
        "personnes accompagnées",
        "« (nombre de dossiers actifs / Nombre de personnes accompagnées dans la structure) x 100 »",
        f"{SEED_CALL} §6.3 B",
    ),
    IndicatorDef(
        "projet_personnalise",
        "Dossiers actifs avec un projet personnalisé",
        "active records with a projet personnalisé",
        Kind.RATE,
        DUI_RECORDS,
        "dossiers actifs avec un projet personnalisé en préparation ou actif",
        "dossiers actifs",
        "« (nombre de dossiers actifs sur la période de recueil ET ayant un projet personnalisé en préparation ou actif / nombre de dossiers actifs) x 100 »",
        f"{SEED_CALL} §6.3 B",
    ),
    IndicatorDef(
        "agenda",
        "Dossiers actifs avec un événement d'agenda",
        "active records with an agenda event",
        Kind.RATE,
        DUI_RECORDS,
        "dossiers actifs avec au moins un événement d'agenda",
        "dossiers actifs",
        "« (nombre de dossiers actifs sur la période de recueil ET ayant au moins un événement d'agenda dans son DUI / nombre de dossiers actifs) x 100 »",
        f"{SEED_CALL} §6.3 B",
    ),
)
BY_KEY: Mapping[str, IndicatorDef] = {d.key: d for d in INDICATORS}

#: The targets the sources state. The active-records target is lost in the seed's text (the cell of 003 §6.3 B's
#: table is empty, « Valeur cible » with no figure): it is not invented, the figure reports « cible non
#: renseignée » (:data:`TargetStatus.TARGET_MISSING`) until one is configured (``[indicator_targets]`` or
#: ``--target dossiers_actifs=…``), and the forecast counts it as not secured.
DEFAULT_TARGETS: Mapping[str, float | None] = {
    "mssante": 70.0,
    "dmp": 70.0,
    "eprescription": None,
    "cahier_liaison": None,
    "dossiers_actifs": None,
    "projet_personnalise": 90.0,
    "agenda": 90.0,
}
#: Rates whose target exists in the instruction but is lost in the seeds' text (not « pas de valeur cible »).
TARGET_LOST: frozenset[str] = frozenset({"dossiers_actifs"})


def resolve_targets(overrides: Mapping[str, Any] | None = None) -> dict[str, float | None]:
    """Default targets with ``overrides`` applied (values: a percentage, or ``None``/"none"/"" for no target)."""
    targets: dict[str, float | None] = dict(DEFAULT_TARGETS)
    for key, value in (overrides or {}).items():
        if key not in BY_KEY:
            raise ValueError(f"indicateur inconnu / unknown indicator {key!r} (connus / known: {', '.join(BY_KEY)})")
        if value is None or (isinstance(value, str) and value.strip().lower() in {"", "none", "aucune", "aucun"}):
            targets[key] = None
            continue
        try:
            number = float(str(value).replace(",", ".").rstrip("% "))
        except ValueError as exc:
            raise ValueError(f"cible invalide pour {key}: {value!r} (pourcentage attendu)") from exc
        if BY_KEY[key].kind is Kind.RATE and not 0 <= number <= 100:
            raise ValueError(f"cible hors bornes pour {key}: {number} (0 à 100 %)")
        targets[key] = number
    return targets


def parse_target_options(items: Iterable[str]) -> dict[str, str]:
    """``["mssante=75", "dossiers_actifs=none"]`` -> mapping (for :func:`resolve_targets`)."""
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--target attend NOM=VALEUR / expects NAME=VALUE, reçu {item!r}")
        parsed[key.strip()] = value.strip()
    return parsed


# ------------------------------------------------------------------------------------------ periods
_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_month(text: str) -> str:
    """Validate ``YYYY-MM``."""
    if not _MONTH_RE.match(text or ""):
        raise ValueError(f"mois attendu au format AAAA-MM / month expected as YYYY-MM, reçu {text!r}")
    return text


def add_months(month: str, n: int) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    index = year * 12 + (mon - 1) + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_between(first: str, last: str) -> list[str]:
    out, current = [], first
    while current <= last:
        out.append(current)
        current = add_months(current, 1)
    return out


def last_day(month: str) -> date:
    nxt = add_months(month, 1)
    return date(int(nxt[:4]), int(nxt[5:7]), 1) - timedelta(days=1)


@dataclass(frozen=True, order=True)
class Period:
    """A measurement period: whole months ``start``..``end`` (the first measure covers 3 months)."""

    end: str
    start: str

    @property
    def months(self) -> tuple[str, ...]:
        return tuple(months_between(self.start, self.end))

    @property
    def first_day(self) -> date:
        return date(int(self.start[:4]), int(self.start[5:7]), 1)

    @property
    def last_day(self) -> date:
        return last_day(self.end)

    @property
    def label(self) -> str:
        return self.end if self.start == self.end else f"{self.start}..{self.end}"

    @property
    def initial(self) -> bool:
        return self.start != self.end


def first_period(campaign_start: str) -> Period:
    start = parse_month(campaign_start)
    return Period(end=add_months(start, 2), start=start)


def campaign_periods(campaign_start: str, until: str) -> list[Period]:
    """The periods whose measure is due by the end of ``until``: the first covers the campaign's first three
    months, each next one the following month. Empty if the first measure is not due yet."""
    first = first_period(campaign_start)
    parse_month(until)
    if until < first.end:
        return []
    return [first] + [Period(end=m, start=m) for m in months_between(add_months(first.end, 1), until)]


def period_ending(campaign_start: str, month: str) -> Period:
    """The period measured at the end of ``month``."""
    first = first_period(campaign_start)
    parse_month(month)
    if month < first.end:
        raise ValueError(
            f"la première mesure couvre 3 mois ({first.start} à {first.end}): aucune mesure n'est due fin {month}"
            f" / the first measure covers {first.label}"
        )
    return first if month == first.end else Period(end=month, start=month)


# ------------------------------------------------------------------------------------------ results
class TargetStatus(StrEnum):
    MET = "met"
    NOT_MET = "not_met"
    NO_TARGET = "no_target"  # « pas de valeur cible imposée » (003 §6.2)
    TARGET_MISSING = "target_missing"  # a target exists but its value is lost in the seed (TARGET_LOST)
    NOT_COMPUTABLE = "not_computable"  # no denominator (nobody accompanied / no active record)


STATUS_LABELS: Mapping[TargetStatus, str] = {
    TargetStatus.MET: "cible atteinte",
    TargetStatus.NOT_MET: "cible non atteinte",
    TargetStatus.NO_TARGET: "pas de cible",
    TargetStatus.TARGET_MISSING: "cible non renseignée",
    TargetStatus.NOT_COMPUTABLE: "non calculable",
}


@dataclass(frozen=True)
class Figure:
    """One indicator value, with what an auditor needs to check it."""

    indicator: str
    period: Period
    essms: str | None  # None = the whole grappe
    numerator: int
    denominator: int | None  # None for counts
    target: float | None
    observed: bool  # the journal holds exchanges of this indicator's source (False: nothing to measure yet)
    outside: int = 0  # persons in the numerator's exchanges but not in the file active (rates only)
    #: counts only: the total from the campaign start to the period's end (« pendant la durée du projet »,
    #: 003 §6.2); ``None`` for rates
    project_total: int | None = None

    @property
    def definition(self) -> IndicatorDef:
        return BY_KEY[self.indicator]

    @property
    def value(self) -> float | None:
        if self.definition.kind is Kind.COUNT:
            return float(self.numerator)
        if not self.denominator:
            return None
        return 100.0 * self.numerator / self.denominator

    @property
    def status(self) -> TargetStatus:
        value = self.value
        if value is None:
            return TargetStatus.NOT_COMPUTABLE
        if self.target is None:
            return TargetStatus.TARGET_MISSING if self.indicator in TARGET_LOST else TargetStatus.NO_TARGET
        return TargetStatus.MET if value + 1e-9 >= self.target else TargetStatus.NOT_MET

    def to_dict(self) -> dict[str, Any]:
        d = self.definition
        return {
            "indicator": self.indicator,
            "label": d.label,
            "kind": str(d.kind),
            "period": {
                "start": self.period.start,
                "end": self.period.end,
                "label": self.period.label,
                "first_day": self.period.first_day.isoformat(),
                "last_day": self.period.last_day.isoformat(),
            },
            "essms": self.essms,
            "scope": "grappe" if self.essms is None else "essms",
            "numerator": self.numerator,
            "denominator": self.denominator,
            "numerator_definition": d.numerator,
            "denominator_definition": d.denominator,
            "value": None if self.value is None else round(self.value, 4),
            "unit": "%" if d.kind is Kind.RATE else "count",
            "target": self.target,
            "status": str(self.status),
            "status_label": STATUS_LABELS[self.status],
            "observed": self.observed,
            "outside_file_active": self.outside,
            "project_total": self.project_total,
            "source": d.source.describe(),
            "quote": d.quote,
            "section": d.section,
        }


@dataclass(frozen=True)
class IndicatorReport:
    campaign_start: str
    periods: tuple[Period, ...]
    essms: tuple[str, ...]
    figures: tuple[Figure, ...]
    observed: Mapping[str, bool]
    targets: Mapping[str, float | None]
    readings: Mapping[str, str] = field(default_factory=resolve_readings)  # the readings in effect

    def get(self, indicator: str, period: Period | str, essms: str | None = None) -> Figure:
        end = period.end if isinstance(period, Period) else period
        for f in self.figures:
            if f.indicator == indicator and f.period.end == end and f.essms == essms:
                return f
        raise LookupError(f"aucune valeur pour {indicator} / {end} / {essms or 'grappe'}")

    def series(self, indicator: str, essms: str | None = None) -> list[Figure]:
        return sorted(
            (f for f in self.figures if f.indicator == indicator and f.essms == essms), key=lambda f: f.period
        )

    @property
    def unobserved(self) -> list[str]:
        return [k for k, seen in self.observed.items() if not seen]

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign_start": self.campaign_start,
            "periods": [p.label for p in self.periods],
            "essms": list(self.essms),
            "targets": dict(self.targets),
            "observed": dict(self.observed),
            "readings": [
                {
                    "name": r.name,
                    "choice": self.readings.get(r.name, r.default),
                    "default": r.default,
                    "meaning": r.choices[self.readings.get(r.name, r.default)],
                    "quote": r.quote,
                    "section": r.section,
                }
                for r in READINGS
            ],
            "figures": [f.to_dict() for f in self.figures],
        }


@dataclass(frozen=True)
class Scope:
    """Which exchanges count: a run (and scenario) of the journal, and/or some establishments, and/or one test
    session (the exchanges attributed to it, :mod:`harness.core.sessions`)."""

    run_id: str | None = None
    scenario_id: str | None = None
    essms: tuple[str, ...] = ()
    max_seq: int | None = None  # a journal snapshot: exchanges recorded up to this sequence number
    session: str | None = None  # Exchange.session_id

    def sql(self, alias: str = "x") -> tuple[str, list[Any]]:
        clauses, params = [], []
        if self.max_seq is not None:
            clauses.append(f"{alias}.seq <= ?")
            params.append(self.max_seq)
        if self.run_id is not None:
            clauses.append(f"{alias}.run_id = ?")
            params.append(self.run_id)
        if self.scenario_id is not None:
            clauses.append(f"{alias}.scenario_id = ?")
            params.append(self.scenario_id)
        if self.session is not None:
            clauses.append(f"{alias}.session_id = ?")
            params.append(self.session)
        if self.essms:
            clauses.append(f"{alias}.essms IN ({', '.join('?' * len(self.essms))})")
            params.extend(self.essms)
        return "".join(f" AND {c}" for c in clauses), params


@dataclass(frozen=True)
class EvidenceItem:
    """One line of a drill-down: a person (or an exchange) and the journal exchanges behind it."""

    role: str  # "denominator" | "numerator" | "outside" | "counted"
    person: str | None
    exchange_ids: tuple[str, ...]


@dataclass(frozen=True)
class Evidence:
    figure: Figure
    items: tuple[EvidenceItem, ...] = field(default=())
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "figure": self.figure.to_dict(),
            "truncated": self.truncated,
            "items": [{"role": i.role, "person": i.person, "exchanges": list(i.exchange_ids)} for i in self.items],
        }


# ------------------------------------------------------------------------------------------ the engine
# Literal conditions (not parameters): they let SQLite prove the partial fact indexes apply.
_FACTS = "x.service = 'tddui' AND x.outcome = 'accepted' AND x.fact_key IS NOT NULL"
assert dui.SERVICE == "tddui"
PARALLEL_FROM = 200_000  # journal size (exchanges) from which the mask scans run in worker processes
_MAX_BITS = 30  # periods per pass: one bit each

# one row per (ESSMS, person, kind of fact): bit k set = true during periods[k]
_SETUP = (
    "CREATE TEMP TABLE m (essms TEXT, person TEXT, kind INTEGER, mask INTEGER,"
    " PRIMARY KEY (essms, person, kind)) WITHOUT ROWID",
)
_TEMP_TABLES = ("m",)
_RETRACTED = ", ".join(f"'{status}'" for status in RETRACTED)
#: Counted indicators shown with their total since the campaign start (« pendant la durée du projet », 003 §6.2).
PROJECT_TOTALS = frozenset({"cahier_liaison"})
_FA, _MSSANTE, _DMP, _UPDATED, _PLAN, _AGENDA = range(6)  # kinds of mask
# per period bit k: what the wide aggregation returns for one ESSMS, in this order
_MEASURES = ("fa", "mssante", "dmp", "act", "projet_personnalise", "agenda", "out_mssante", "out_dmp")


class _Months:
    """Month -> period lookups as SQL on the text of a ``YYYY-MM`` or ``YYYY-MM-DD`` column, compared with month
    bounds (``'2025-03' <= '2025-03-15' < '2025-04'``). Periods are sorted and disjoint. Each lookup is a step
    function of the column, written as a balanced tree of ``CASE`` (about log2(2n) comparisons per row instead
    of a chain of 2n): the engine evaluates it on every fact row."""

    def __init__(self, periods: Sequence[Period]) -> None:
        self.periods = list(periods)
        self.n = len(periods)

    def _segments(self, inside: Callable[[int], int], outside: int) -> tuple[list[str], list[int]]:
        """Bounds and values of the step function worth ``inside(k)`` in period k and ``outside`` elsewhere."""
        bounds: list[str] = []
        values = [outside]
        for k, p in enumerate(self.periods):
            if bounds and bounds[-1] == p.start:  # contiguous with the previous period
                values[-1] = inside(k)
            else:
                bounds.append(p.start)
                values.append(inside(k))
            bounds.append(add_months(p.end, 1))
            values.append(outside)
        return bounds, values

    @staticmethod
    def _tree(column: str, bounds: Sequence[str], values: Sequence[int], lo: int, hi: int) -> str:
        if lo == hi:
            return str(values[lo])
        mid = (lo + hi) // 2  # values[lo..mid] below bounds[mid], values[mid+1..hi] from it on
        return (
            f"(CASE WHEN {column} < '{bounds[mid]}' THEN {_Months._tree(column, bounds, values, lo, mid)} "
            f"ELSE {_Months._tree(column, bounds, values, mid + 1, hi)} END)"
        )

    def _lookup(self, column: str, inside: Callable[[int], int], outside: int) -> str:
        bounds, values = self._segments(inside, outside)
        return f"(CASE WHEN {column} IS NULL THEN {outside} ELSE {self._tree(column, bounds, values, 0, len(values) - 1)} END)"

    def bit(self, column: str) -> str:
        """``1 << k`` for the period k containing the date/month in ``column``; 0 outside every period or NULL."""
        return self._lookup(column, lambda k: 1 << k, 0)

    def index(self, column: str) -> str:
        """k of the period containing ``column``, -1 outside."""
        return self._lookup(column, lambda k: k, -1)

    def first_ending_on_or_after(self, column: str) -> str:
        """Index of the first period whose last day is on or after the date in ``column`` (n if none)."""
        bounds = [add_months(p.end, 1) for p in self.periods]
        return self._tree(column, bounds, [*range(self.n), self.n], 0, self.n)

    def last_starting_before(self, column: str) -> str:
        """Index of the last period whose first day is strictly before the date in ``column`` (-1 if none)."""
        bounds = [f"{p.start}-02" for p in self.periods]  # date < 'YYYY-MM-02' <=> date <= first day
        return self._tree(column, bounds, list(range(-1, self.n)), 0, self.n)

    def last_starting_on_or_before(self, column: str) -> str:
        """Index of the last period whose first day is on or before the date in ``column`` (-1 if none)."""
        bounds = [p.start for p in self.periods]
        return self._tree(column, bounds, list(range(-1, self.n)), 0, self.n)


def _range_mask(low: str, high: str) -> str:
    """Bits ``low``..``high`` (SQL integer expressions) set, 0 when ``low > high``."""
    return f"(CASE WHEN {low} <= {high} THEN ((1 << ({high} + 1)) - 1) - ((1 << ({low})) - 1) ELSE 0 END)"


class IndicatorEngine:
    """Computes :class:`IndicatorReport` s and drill-downs from a SQLite journal.

    Method: per (ESSMS, person), one 64-bit mask per fact (in the file active, used MSSanté, used the DMP,
    record updated, projet personnalisé in force, agenda event) with one bit per period, each built by one
    index-only pass in (essms, person) order; then one aggregation counts the bits per ESSMS and period.
    """

    def __init__(
        self,
        journal: Journal,
        targets: Mapping[str, Any] | None = None,
        mssante_counting: MssanteCounting | str = MssanteCounting.MESSAGES,
        *,
        readings: Mapping[str, Any] | None = None,
        workers: int | None = None,
        parallel_from: int = PARALLEL_FROM,
    ) -> None:
        if not isinstance(journal, SQLiteJournal):
            raise NotImplementedError(
                "le moteur d'indicateurs lit le journal SQLite / the engine needs the SQLite journal"
            )
        if str(journal.path) == ":memory:":
            raise ValueError(
                "journal en mémoire non lisible par le moteur / an in-memory journal cannot be read by the engine"
            )
        self.path = journal.path
        self.targets = resolve_targets(targets)
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.automatic_workers = workers is None  # then worker processes only when cores are idle (_parallel)
        self.parallel_from = parallel_from
        try:
            self.readings = resolve_readings({"mssante": str(mssante_counting), **(readings or {})})
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        self.mssante_counting = MssanteCounting(self.readings["mssante"])

    def _connect(self) -> sqlite3.Connection:
        return _open(str(self.path))

    # -------------------------------------------------------------------------------------- data span
    def data_span(self, scope: Scope = Scope()) -> tuple[str, str] | None:
        """First and last month with socle exchanges or DUI exports in ``scope`` (``None`` when empty)."""
        where, params = scope.sql()
        services = sorted({d.source.service for d in INDICATORS})
        with closing(self._connect()) as con:
            row = con.execute(
                f"SELECT MIN(x.month), MAX(x.month) FROM exchanges x WHERE x.service IN ({', '.join('?' * len(services))}){where}",
                [*services, *params],
            ).fetchone()
        return (row[0], row[1]) if row and row[0] else None

    # -------------------------------------------------------------------------------------- compute
    def compute(
        self,
        periods: Sequence[Period],
        scope: Scope = Scope(),
        grappe: Sequence[str] = (),
        campaign_start: str | None = None,
    ) -> IndicatorReport:
        """All indicators for ``periods`` (disjoint), for each ESSMS in ``scope`` (plus ``grappe``) and the grappe."""
        periods = tuple(sorted(set(periods)))
        for a, b in zip(periods, periods[1:], strict=False):
            if b.start <= a.end:
                raise ValueError(f"périodes qui se chevauchent / overlapping periods: {a.label} et {b.label}")
        numbers: dict[tuple[str, str, str], int] = {}  # (measure, period label, essms) -> n
        essms_seen: set[str] = set()
        campaign = min(campaign_start or periods[0].start, periods[0].start) if periods else ""
        observed: dict[str, bool] = {}
        with closing(self._connect()) as con:
            con.execute("BEGIN")  # one read snapshot for every statement
            try:
                snapshot = con.execute("SELECT COALESCE(MAX(seq), 0) FROM exchanges").fetchone()[0]
                pool = _pool(self.workers) if self._parallel(snapshot) else None
                if pool is not None:  # the other processes read exactly this snapshot
                    scope = Scope(scope.run_id, scope.scenario_id, scope.essms, snapshot, scope.session)
                try:
                    for i in range(0, len(periods), _MAX_BITS):
                        chunk = periods[i : i + _MAX_BITS]
                        pending = self._start_masks(pool, chunk, scope) if pool is not None else None
                        if i == 0:  # the counts of every period at once (their project totals start earlier)
                            essms_seen |= self._count_exchanges(con, periods, scope, numbers, campaign)
                        if pending is not None:
                            essms_seen |= _count_masks(self._collect_masks(pending), chunk, numbers)
                        else:
                            essms_seen |= self._count_persons(con, chunk, scope, numbers)
                    observed = self._observed(con, scope)
                finally:
                    if pool is not None:
                        pool.shutdown()
            finally:
                con.execute("ROLLBACK")
        essms = set(grappe) | essms_seen
        if scope.essms:
            essms &= set(scope.essms)
        essms_list = tuple(sorted(e for e in essms if e))
        by_cell: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)  # (period, essms) -> measure -> n
        for (measure, label, e), n in numbers.items():
            by_cell[(label, e)][measure] = n
        empty: dict[str, int] = {}
        figures: list[Figure] = []
        for period in periods:
            cells = [(e, by_cell.get((period.label, e), empty)) for e in essms_list]
            for d in INDICATORS:
                target, seen = self.targets.get(d.key), observed[d.key]
                num_key, den_key, out_key = self._measures(d)
                with_total = d.key in PROJECT_TOTALS
                totals = [0, 0, 0, 0]
                for e, cell in cells:
                    num, out = cell.get(num_key, 0), cell.get(out_key, 0) if out_key else 0
                    den = cell.get(den_key, 0) if den_key else None
                    total = cell.get(f"total_{d.key}", 0) if with_total else None
                    totals[0] += num
                    totals[1] += den or 0
                    totals[2] += out
                    totals[3] += total or 0
                    figures.append(Figure(d.key, period, e, num, den, target, seen, out, total))
                figures.append(
                    Figure(
                        d.key,
                        period,
                        None,
                        totals[0],
                        None if d.kind is Kind.COUNT else totals[1],
                        target,
                        seen,
                        totals[2],
                        totals[3] if with_total else None,
                    )
                )
        return IndicatorReport(
            campaign_start=campaign_start or (periods[0].start if periods else ""),
            periods=periods,
            essms=essms_list,
            figures=tuple(figures),
            observed=observed,
            targets=dict(self.targets),
            readings=dict(self.readings),
        )

    def _parallel(self, snapshot: int) -> bool:
        """Whether the mask scans run in worker processes: from ``parallel_from`` exchanges on, with ``workers`` > 1;
        when the number of workers was left to the engine, only if the machine has an idle core (load average below
        the number of cores minus one). On a busy machine the workers queue behind the other processes: 1M exchanges
        took 7.8 s with them and 3.1 s on one connection (issue 18 item 4). The figures are the same either way."""
        if self.workers <= 1 or snapshot < self.parallel_from:
            return False
        return not getattr(self, "automatic_workers", False) or _idle_cores() >= 1.0

    def _measures(self, d: IndicatorDef) -> tuple[str, str | None, str | None]:
        """The measures behind an indicator: numerator, denominator (``None`` for counts), outside (or ``None``)."""
        if d.kind is Kind.COUNT:
            return d.key, None, None
        if d.key == "mssante" and self.mssante_counting is MssanteCounting.MESSAGES:
            return "mssante_messages", "fa", None
        if d.key in ("mssante", "dmp"):
            return d.key, "fa", f"out_{d.key}"
        if d.key == "dossiers_actifs":
            return "act", "fa", None
        return d.key, "act", None

    def _prepare(self, con: sqlite3.Connection, periods: Sequence[Period], scope: Scope) -> None:
        """Load the per-person masks for ``periods`` (bit k = periods[k]) into the temp table ``m`` (drill-down)."""
        for table in _TEMP_TABLES:
            con.execute(f"DROP TABLE IF EXISTS temp.{table}")
        for statement in _SETUP:
            con.execute(statement)
        con.executemany(
            "INSERT INTO m VALUES (?, ?, ?, ?)",
            [
                (essms, person, kind, mask)
                for kind, masks in self._masks(con, periods, scope).items()
                for (essms, person), mask in masks.items()
            ],
        )

    def _count_persons(
        self, con: sqlite3.Connection, periods: Sequence[Period], scope: Scope, numbers: dict[tuple[str, str, str], int]
    ) -> set[str]:
        """The measures of :data:`_MEASURES` counted per ESSMS and period from the masks of ``periods``, into
        ``numbers``; returns the ESSMS seen."""
        return _count_masks(self._masks(con, periods, scope), periods, numbers)

    def _masks(
        self, con: sqlite3.Connection, periods: Sequence[Period], scope: Scope
    ) -> dict[int, dict[tuple[str, str], int]]:
        """Kind of mask -> ``{(essms, person): mask}``, bit k = true during ``periods[k]``: one index scan per kind,
        in ``con``'s read transaction."""
        kinds = (_FA, *self._usage_kinds(), _UPDATED, _AGENDA, _PLAN)
        return {
            kind: _by_person(con.execute(sql, params).fetchall())
            for kind, (sql, params) in zip(kinds, self._mask_queries(periods, scope), strict=True)
        }

    def _start_masks(self, pool: ProcessPoolExecutor, periods: Sequence[Period], scope: Scope) -> dict[int, Future]:
        """The same scans on worker processes (large journals: they are independent and CPU-bound; threads do not
        help, SQLite serialises them), the costliest first."""
        kinds = (_FA, *self._usage_kinds(), _UPDATED, _AGENDA, _PLAN)
        queries = dict(zip(kinds, self._mask_queries(periods, scope), strict=True))
        order = sorted(kinds, key=lambda k: (k != _UPDATED, k != _AGENDA, k != _PLAN))
        return {kind: pool.submit(_scan_masks, str(self.path), *queries[kind]) for kind in order}

    @staticmethod
    def _collect_masks(pending: Mapping[int, Future]) -> dict[int, dict[tuple[str, str], int]]:
        return {kind: future.result() for kind, future in pending.items()}

    def _usage_kinds(self) -> tuple[int, ...]:
        return (_MSSANTE, _DMP) if self.mssante_counting is MssanteCounting.PERSONNES else (_DMP,)

    def _mask_queries(self, periods: Sequence[Period], scope: Scope) -> list[tuple[str, list[Any]]]:
        """``SELECT essms, person, kind, mask`` statements, one per kind of mask."""
        queries: list[tuple[str, list[Any]]] = []
        where, params = scope.sql()
        n = len(periods)
        months = _Months(periods)
        # File active: the current version of each séjour (latest producer date, then reception order; bare
        # columns of MAX()) covers the periods from the first ending on/after its admission to the last
        # starting on/before its exit; a séjour whose current version is cancelled or entered-in-error is
        # retracted (no period).
        queries.append(
            (
                f"""SELECT essms, person, {_FA}, mask FROM (
                  SELECT essms, person, {_range_mask("ka", "kb")} AS mask FROM (
                    SELECT essms, person, {months.first_ending_on_or_after("s")} AS ka,
                           CASE WHEN e IS NULL THEN {n - 1} ELSE {months.last_starting_on_or_before("e")} END AS kb
                    FROM (SELECT x.essms AS essms, x.person AS person,
                                 MAX(COALESCE(x.fact_date, '') || printf('#%019d', x.seq)) AS version,
                                 x.fact_start AS s, x.fact_end AS e, x.fact_status AS st
                          FROM exchanges x INDEXED BY ix_exchanges_fact_versions
                          WHERE {_FACTS} AND x.operation = ? AND x.essms IS NOT NULL AND x.person IS NOT NULL{where}
                          GROUP BY x.essms, x.person, x.fact_key)
                    WHERE s IS NOT NULL AND (st IS NULL OR st NOT IN ({_RETRACTED}))))
                WHERE mask <> 0""",
                [str(dui.FactKind.SEJOUR), *params],
            )
        )
        # MSSanté (reading « personnes ») / DMP: persons with at least one accepted exchange, per period.
        first, last = periods[0].start, periods[-1].end
        for kind in self._usage_kinds():
            source = MSSANTE if kind == _MSSANTE else DMP
            op_sql, op_params = _operation_sql(source)
            queries.append(
                (
                    f"""SELECT x.essms, x.person, {kind},
                           SUM(DISTINCT {months.bit("x.month")}) AS mask
                    FROM exchanges x INDEXED BY ix_exchanges_persons
                    WHERE x.service IN ('dmp', 'mssante') AND x.service = ? AND {op_sql} AND x.outcome = 'accepted'
                      AND x.essms IS NOT NULL AND x.person IS NOT NULL AND x.month BETWEEN ? AND ?{where}
                    GROUP BY x.essms, x.person HAVING mask <> 0""",
                    [source.service, *op_params, first, last, *params],
                )
            )
        # Record updated: any DUI fact dated, by the producer, in the period (one pass over every fact).
        queries.append(
            (
                f"""SELECT essms, person, {_UPDATED}, upd FROM (
                  SELECT x.essms AS essms, x.person AS person, SUM(DISTINCT {months.bit("x.fact_date")}) AS upd
                  FROM exchanges x INDEXED BY ix_exchanges_fact_person
                  WHERE {_FACTS} AND x.essms IS NOT NULL AND x.person IS NOT NULL{where}
                  GROUP BY x.essms, x.person)
                WHERE upd <> 0""",
                params,
            )
        )
        # Agenda: the latest version of each événement decides (cancelled / entered-in-error: retracted, whatever
        # its earlier versions said). Reading « sans_fenetre » (003 §6.3 B has no time window): the record has
        # an event from the first period ending on or after the event was first recorded (its first producer
        # date) on; reading « periode »: an event starting in the period.
        # One row per event: its latest version (latest producer date, then reception order: the bare columns of
        # the single MAX()) and the periods its versions were recorded in (a bit each, SUM(DISTINCT) keeps the
        # bare columns tied to the MAX), the lowest being the one it was first recorded in.
        if self.readings["agenda"] == "periode":
            per_person = f"SUM(DISTINCT {months.bit('st')})"
        else:  # every period from the first ending on or after the event was first recorded
            # (such masks are nested: their OR is the largest)
            per_person = f"MAX({(1 << n) - 1} & ~((recorded & -recorded) - 1))"
        queries.append(
            (
                f"""SELECT essms, person, {_AGENDA}, mask FROM (
                  SELECT essms, person, {per_person} AS mask FROM (
                    SELECT x.essms AS essms, x.person AS person,
                           MAX(COALESCE(x.fact_date, '') || printf('#%019d', x.seq)) AS version,
                           x.fact_status AS status, x.fact_start AS st,
                           SUM(DISTINCT 1 << {months.first_ending_on_or_after("x.fact_date")}) AS recorded
                    FROM exchanges x INDEXED BY ix_exchanges_fact_versions
                    WHERE {_FACTS} AND x.operation = ? AND x.essms IS NOT NULL AND x.person IS NOT NULL{where}
                    GROUP BY x.essms, x.person, x.fact_key)
                  WHERE status IS NULL OR status NOT IN ({_RETRACTED})
                  GROUP BY essms, person)
                WHERE mask <> 0""",
                [str(dui.FactKind.EVENEMENT), *params],
            )
        )
        # Projets personnalisés: each version is in force from its (producer) date to the day before the next
        # version's. Reading « periode » (default): it counts for every period it was in force at any time of,
        # when « en préparation » or « actif »; reading « fin_de_periode »: for the periods whose last day falls in
        # that span. A plan whose latest version is entered-in-error never existed: none of its versions counts
        # (one completed or revoked counts until then).
        statuses = ", ".join(f"'{s}'" for s in dui.PLAN_STATUSES_COUNTED)
        if self.readings["projet_personnalise"] == "fin_de_periode":
            kb = f"CASE WHEN nd IS NULL THEN {n - 1} ELSE {months.first_ending_on_or_after('nd')} - 1 END"
        else:
            # in force until the day before nd (at least on d): the last period starting before nd, or d's
            kb = (
                f"CASE WHEN nd IS NULL THEN {n - 1} ELSE max({months.last_starting_before('nd')}, "
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
                          FROM exchanges x INDEXED BY ix_exchanges_fact_versions
                          WHERE {_FACTS} AND x.operation = ? AND x.fact_date IS NOT NULL
                            AND x.essms IS NOT NULL AND x.person IS NOT NULL{where}
                          WINDOW versions AS (PARTITION BY x.essms, x.person, x.fact_key ORDER BY x.fact_date, x.seq))
                    WHERE st IN ({statuses}) AND latest IS NOT '{dui.PLAN_RETRACTED}'))
                WHERE mask <> 0""",
                [str(dui.FactKind.PROJET), *params],
            )
        )
        return queries

    def _count_exchanges(
        self,
        con: sqlite3.Connection,
        periods: Sequence[Period],
        scope: Scope,
        numbers: dict[tuple[str, str, str], int],
        campaign_start: str,
    ) -> set[str]:
        """The counted measures per ESSMS and period: e-prescriptions imported, cahier de liaison exchanges (and
        their total since ``campaign_start``), MSSanté messages (reading « messages »)."""
        seen: set[str] = set()
        first, last = min(campaign_start, periods[0].start), periods[-1].end
        period_of = {month: k for k, p in enumerate(periods) for month in p.months}
        labels, ends = [p.label for p in periods], [p.end for p in periods]
        per_month: dict[str, dict[tuple[str, str], int]] = {}  # measure -> (month, essms) -> n
        queries = self._count_queries(scope, first, last)
        for (key, _, _), rows in zip(queries, self._fetch_all(con, [q[1:] for q in queries]), strict=True):
            cells = per_month.setdefault(key, {})
            for month, essms, count in rows:
                cells[(month, essms)] = cells.get((month, essms), 0) + count
        for key, cells in per_month.items():
            # « pendant la durée du projet »: a month counts for every period ending on/after it, i.e. from the
            # first such period on (ends are sorted): essms -> [n added from period k on, for each k]
            since: dict[str, list[int | None]] | None = {} if key in PROJECT_TOTALS else None
            for (month, essms), count in cells.items():
                k = period_of.get(month)
                if k is not None:
                    cell = (key, labels[k], essms)
                    numbers[cell] = numbers.get(cell, 0) + count
                    seen.add(essms)
                if since is not None and month >= campaign_start:
                    k = bisect.bisect_left(ends, month)
                    if k < len(periods):
                        row = since.setdefault(essms, [None] * len(periods))
                        row[k] = (row[k] or 0) + count
                        seen.add(essms)
            for essms, row in (since or {}).items():
                running: int | None = None
                for k, added in enumerate(row):
                    if added is not None:
                        running = (running or 0) + added
                    if running is not None:
                        cell = (f"total_{key}", labels[k], essms)
                        numbers[cell] = numbers.get(cell, 0) + running
        return seen

    @staticmethod
    def _fetch_all(con: sqlite3.Connection, jobs: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Any]]:
        """The rows of each statement, in ``con``'s read transaction."""
        return [con.execute(sql, params).fetchall() for sql, params in jobs]

    def _count_queries(self, scope: Scope, first: str, last: str) -> list[tuple[str, str, list[Any]]]:
        """``(measure, SELECT month, essms, n, params)`` for the counted measures, months ``first``..``last``."""
        where, params = scope.sql()
        out: list[tuple[str, str, list[Any]]] = []

        def plain(key: str, source: Source) -> None:
            op_sql, op_params = _operation_sql(source)
            out.append(
                (
                    key,
                    f"""SELECT x.month, x.essms, COUNT(*)
                    FROM exchanges x INDEXED BY ix_exchanges_counts
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
            # notes the DUI writes or updates: one each
            plain("cahier_liaison", Source(CAHIER_LIAISON.service, CDL_WRITES))
            # a platform note counts once per ESSMS, in the month the DUI first received it (read or search result)
            anywhere, anywhere_params = Scope(scope.run_id, scope.scenario_id, (), scope.max_seq, scope.session).sql()
            out.append(
                ("cahier_liaison", *self._cdl_receipts_sql(where, params, anywhere, anywhere_params, first, last))
            )
        if self.mssante_counting is MssanteCounting.MESSAGES:
            # one per Message-ID (a message journaled twice counts once, in the month it was first journaled);
            # an exchange without Message-ID counts on its own
            ops = ", ".join(f"'{op}'" for op in MSSANTE.operations)
            base = f"""FROM exchanges x INDEXED BY ix_exchanges_message_ids
                       WHERE x.service = 'mssante' AND x.operation IN ({ops}) AND x.outcome = 'accepted'
                         AND x.essms IS NOT NULL AND x.month <= ?{where}"""
            out.append(
                (
                    "mssante_messages",
                    f"""SELECT month, essms, COUNT(*) FROM (
                          SELECT x.essms AS essms, MIN(x.month) AS month {base}
                            AND x.message_id IS NOT NULL
                          GROUP BY x.essms, x.message_id)
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
        """Platform notes (``platform.note``, any ESSMS: ``anywhere`` is the scope without its establishments)
        the DUI received for the first time, per month and ESSMS: the earliest accepted ``cdl.read`` of the note
        or ``cdl.search`` whose results held it (same run)."""
        # notes are keyed by run and id (each run's platform numbers its notes); IN (subquery) is one lookup each
        sql = f"""WITH got(essms, note, month) AS (
                    SELECT x.essms, COALESCE(x.run_id, '') || '|' || json_extract(x.details, '$.note.id'), x.month
                    FROM exchanges x
                    WHERE x.service = 'eparcours' AND x.operation = '{CDL_READ}' AND x.outcome = 'accepted'
                      AND x.essms IS NOT NULL AND x.month <= ?{where}
                    UNION ALL
                    SELECT x.essms, COALESCE(x.run_id, '') || '|' || json_extract(j.value, '$.id'), x.month
                    FROM exchanges x, json_each(x.details, '$.notes') j
                    WHERE x.service = 'eparcours' AND x.operation = '{CDL_SEARCH}' AND x.outcome = 'accepted'
                      AND x.essms IS NOT NULL AND x.month <= ?{where})
                  SELECT month, essms, COUNT(*) FROM (
                    SELECT g.essms AS essms, MIN(g.month) AS month FROM got g
                    WHERE g.note IN (
                      SELECT COALESCE(x.run_id, '') || '|' || json_extract(x.details, '$.note.id') FROM exchanges x
                      WHERE x.service = 'eparcours' AND x.operation = '{CDL_PLATFORM_NOTE}'{anywhere})
                    GROUP BY g.essms, g.note)
                  WHERE month >= ? GROUP BY month, essms"""
        return sql, [last, *params, last, *params, *anywhere_params, first]

    @staticmethod
    def _observed(con: sqlite3.Connection, scope: Scope) -> dict[str, bool]:
        where, params = scope.sql()
        observed: dict[str, bool] = {}
        for d in INDICATORS:
            op_sql, op_params = _operation_sql(d.source)
            observed[d.key] = bool(
                con.execute(
                    f"SELECT EXISTS (SELECT 1 FROM exchanges x WHERE x.service = ? AND {op_sql}{where})",
                    [d.source.service, *op_params, *params],
                ).fetchone()[0]
            )
        return observed

    # -------------------------------------------------------------------------------------- drill-down
    def evidence(
        self,
        indicator: str,
        period: Period,
        essms: str | None,
        scope: Scope = Scope(),
        limit: int = 500,
        campaign_start: str | None = None,
    ) -> Evidence:
        """The journal exchanges behind one figure: who is in the denominator (séjour facts, or the facts that
        make a record active), who in the numerator (the exchanges that put them there), who was seen but is
        outside the file active. Exchange ids can be looked up with ``socle-harness journal``."""
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
                    if notes:  # the platform notes first received in the period, with the exchange that did
                        anywhere, anywhere_params = Scope(scope.run_id, scope.scenario_id, session=scope.session).sql()
                        rows += [
                            ("counted", person, ident)
                            for person, ident in con.execute(
                                f"""WITH got(essms, note, month, seq, id, person) AS (
                                  SELECT x.essms, COALESCE(x.run_id, '') || '|' || json_extract(x.details, '$.note.id'),
                                         x.month, x.seq, x.id, x.person FROM exchanges x
                                  WHERE x.service = 'eparcours' AND x.operation = '{CDL_READ}'
                                    AND x.outcome = 'accepted' AND x.essms IS NOT NULL{where}
                                  UNION ALL
                                  SELECT x.essms, COALESCE(x.run_id, '') || '|' || json_extract(j.value, '$.id'),
                                         x.month, x.seq, x.id, json_extract(j.value, '$.person')
                                  FROM exchanges x, json_each(x.details, '$.notes') j
                                  WHERE x.service = 'eparcours' AND x.operation = '{CDL_SEARCH}'
                                    AND x.outcome = 'accepted' AND x.essms IS NOT NULL{where})
                                SELECT person, id FROM (
                                  SELECT g.person AS person, g.id AS id, g.month AS month, MIN(g.seq) AS seq
                                  FROM got g
                                  WHERE g.note IN (
                                    SELECT COALESCE(x.run_id, '') || '|' || json_extract(x.details, '$.note.id')
                                    FROM exchanges x
                                    WHERE x.service = 'eparcours' AND x.operation = '{CDL_PLATFORM_NOTE}'{anywhere})
                                  GROUP BY g.essms, g.note)
                                WHERE month BETWEEN ? AND ? ORDER BY seq""",
                                [*params, *params, *anywhere_params, period.start, period.end],
                            )
                        ]
                else:

                    def has(kind: int) -> str:
                        return (
                            f"EXISTS (SELECT 1 FROM m WHERE m.essms = x.essms AND m.person = x.person "
                            f"AND m.kind = {kind} AND m.mask & 1)"
                        )

                    in_fa = has(_FA)
                    active = f"{in_fa} AND {has(_UPDATED)}"
                    if indicator in ("mssante", "dmp", "dossiers_actifs"):
                        rows += [
                            ("denominator", person, ids)
                            for person, ids in con.execute(
                                f"""SELECT x.person, group_concat(x.id) FROM exchanges x
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
                            ("numerator" if inside or every else "outside", person, ids)
                            for person, inside, ids in con.execute(
                                f"""SELECT x.person, {in_fa}, group_concat(x.id) FROM exchanges x
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
                            (role, person, ids)
                            for person, ids in con.execute(
                                f"""SELECT x.person, group_concat(x.id) FROM exchanges x
                                WHERE {_FACTS} AND x.fact_date BETWEEN ? AND ? AND {in_fa}{where}
                                GROUP BY x.essms, x.person ORDER BY x.person""",
                                [pstart, pend, *params],
                            )
                        ]
                        kind = _PLAN if indicator == "projet_personnalise" else _AGENDA
                        op = dui.FactKind.PROJET if indicator == "projet_personnalise" else dui.FactKind.EVENEMENT
                        rows += [
                            ("numerator", person, ids)
                            for person, ids in con.execute(
                                f"""SELECT x.person, group_concat(x.id) FROM exchanges x
                                WHERE {_FACTS} AND x.operation = ? AND {active} AND {has(kind)}{where}
                                GROUP BY x.essms, x.person ORDER BY x.person""",
                                [str(op), *params],
                            )
                        ]
            finally:
                con.execute("ROLLBACK")
        items = [EvidenceItem(role, person, tuple(ids.split(",")) if ids else ()) for role, person, ids in rows]
        return Evidence(figure, tuple(items[:limit]), truncated=len(items) > limit)


def _open(path: str) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA busy_timeout=10000")
    con.execute("PRAGMA temp_store=MEMORY")
    con.execute("PRAGMA cache_size=-65536")  # 64 MiB: the indexes read and the masks built stay in memory
    con.execute("PRAGMA mmap_size=1073741824")
    return con


def _by_person(rows: Sequence[tuple[str, str, int, int]]) -> dict[tuple[str, str], int]:
    """``{(essms, person): mask}``; the masks of several séjours / projets of one person are OR-ed."""
    masks = {(essms, person): mask for essms, person, _, mask in rows}
    if len(masks) < len(rows):  # a key seen twice
        masks = {}
        for essms, person, _, mask in rows:
            masks[(essms, person)] = masks.get((essms, person), 0) | mask
    return masks


def _scan_masks(path: str, sql: str, params: Sequence[Any]) -> dict[tuple[str, str], int]:
    """One mask scan in a worker process, on a connection of its own."""
    with closing(_open(path)) as con:
        return _by_person(con.execute(sql, params).fetchall())


def _idle_cores() -> float:
    """Cores minus the 1-minute load average (all cores when the system does not report a load average)."""
    cores = float(os.cpu_count() or 1)
    try:
        return cores - os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this system
        return cores


def _pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for the mask scans: forked when this process has a single thread (instant), else from a
    fork server (forking a process that runs threads, such as the simulators' host, is unsafe)."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    context = multiprocessing.get_context(
        "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    )
    return ProcessPoolExecutor(workers, mp_context=context)


_LANE = 32  # bits per period counter when masks are summed lane-wise (no count reaches 2**32)
_SPREAD = tuple(sum(1 << (_LANE * k) for k in range(10) if m >> k & 1) for m in range(1 << 10))  # 10 bits -> lanes


def _spread(mask: int) -> int:
    """The mask with bit k moved to the low bit of lane k: summing spread masks counts every bit at once."""
    if mask < 1024:
        return _SPREAD[mask]
    total, shift = 0, 0
    while mask:
        total += _SPREAD[mask & 1023] << shift
        mask >>= 10
        shift += 10 * _LANE
    return total


def _count_masks(
    masks: Mapping[int, Mapping[tuple[str, str], int]],
    periods: Sequence[Period],
    numbers: dict[tuple[str, str, str], int],
) -> set[str]:
    """Count, per ESSMS and period, the persons behind each measure of :data:`_MEASURES` from their masks.

    Each person's measure mask is spread into one counter lane per period (:func:`_spread`) and the spread
    masks are summed per ESSMS and measure: one addition per person and measure, whatever the number of
    periods. Returns the ESSMS seen."""
    empty: dict[tuple[str, str], int] = {}
    fa_d, ms_d, dm_d, upd_d, pp_d, ag_d = (masks.get(k, empty) for k in (_FA, _MSSANTE, _DMP, _UPDATED, _PLAN, _AGENDA))
    ms_get, dm_get, upd_get, pp_get, ag_get = ms_d.get, dm_d.get, upd_d.get, pp_d.get, ag_d.get
    spread = _SPREAD.__getitem__ if len(periods) <= 10 else _spread
    acc: dict[str, list[int]] = {}
    for key, fa in fa_d.items():
        a = acc.get(key[0])
        if a is None:
            a = acc[key[0]] = [0] * len(_MEASURES)
        a[0] += spread(fa)
        ms, dm, upd = ms_get(key, 0), dm_get(key, 0), upd_get(key, 0)
        if ms:
            a[1] += spread(fa & ms)
            a[6] += spread(ms & ~fa)
        if dm:
            a[2] += spread(fa & dm)
            a[7] += spread(dm & ~fa)
        act = fa & upd
        if act:
            a[3] += spread(act)
            a[4] += spread(act & pp_get(key, 0))
            a[5] += spread(act & ag_get(key, 0))
    for key in (ms_d.keys() | dm_d.keys()) - fa_d.keys():  # seen in exchanges, never in the file active
        a = acc.get(key[0])
        if a is None:
            a = acc[key[0]] = [0] * len(_MEASURES)
        a[6] += spread(ms_get(key, 0))
        a[7] += spread(dm_get(key, 0))
    lane = (1 << _LANE) - 1
    for essms, sums in acc.items():
        for i, total in enumerate(sums):
            for k in range(len(periods)):
                count = (total >> (_LANE * k)) & lane
                if count:
                    numbers[(_MEASURES[i], periods[k].label, essms)] = count
    return set(acc) | {key[0] for d in (upd_d, pp_d, ag_d) for key in d}


def _operation_sql(source: Source) -> tuple[str, list[Any]]:
    if len(source.operations) == 1:
        return "x.operation = ?", [source.operations[0]]
    if source.operations:
        return f"x.operation IN ({', '.join('?' * len(source.operations))})", list(source.operations)
    prefix = source.operation_prefix or ""
    # a range on the indexed column instead of LIKE: operation >= 'cdl.' AND operation < 'cdl/'
    return "x.operation >= ? AND x.operation < ?", [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]


def format_value(figure: Figure) -> str:
    """French rendering: ``75 %``, ``66,7 %``, ``12``, ``—`` (not computable)."""
    value = figure.value
    if value is None:
        return "—"
    if figure.definition.kind is Kind.COUNT:
        return str(int(value))
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return text.replace(".", ",") + " %"
