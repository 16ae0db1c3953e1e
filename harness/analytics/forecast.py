"""Funding forecast of a grappe: the ESMS numérique amounts it can expect, under which condition, and how much of
the balance paid on the usage targets the measured indicators put at risk. A **forecast** (indicative, not
contractual). Every amount states its condition and the seed section it comes from.

Seeds: the regional call for projects « Programme ESMS numérique — phase de généralisation » (ARS
Bourgogne-Franche-Comté, ``../shared/seeds/003_*``, cited « AAP 003 §… ») and the article « Subventions Ségur du
Numérique en Santé » (``../shared/seeds/004_*``, cited « article 004 »).

- AAP 003 §5.1, acquisition or renewal: 7 k€ per ESSMS to the project owner; up to 12 k€ per ESSMS for the
  éditeur, 14.5 k€ if the éditeur is Ségur-referenced.
- AAP 003 §5.2, compliance upgrade (mise en conformité): 5 k€ per ESSMS to the owner, the éditeur being paid
  through the SONS; only with a Ségur-referenced éditeur (§4.2.C: « ne sont éligibles que s'ils s'engagent avec
  un éditeur dont la solution est référencée Ségur »).
- AAP 003 §5.4, from the 50th ESSMS: 2 k€ usage funding; éditeur at most 3 k€ (referenced) or 1 k€, acquisitions
  only.
- AAP 003 §5.3 (and article 004), organismes gestionnaires of small size (fewer than 15 ESSMS; 8 in Corsica and
  overseas, article 004), judged **per organisme gestionnaire** and never defaulted: equipment at most 20 k€ per
  ESSMS of a small OG; procurement support at most 15 k€ per project, only « dans la conduite de la procédure de
  marché portée par la centrale d'achat mandatée par la CNSA »; project-steering support at most 100 k€ per
  project « pour les grappes composées d'organismes de petite taille ». These are the maxima the seeds name.
- AAP 003 §3.1: the owner's funding is paid 50 % at the signature of the agreement, 50 % « sous conditions
  d'atteinte des cibles d'usage en fin du déploiement »; §5.3: the specific funding is paid « selon les mêmes
  conditions et échéances ». The deployment should end within 9 months of the project start for a version
  upgrade, 18 months for an acquisition: the measure at the end of the deployment decides the balance.
- AAP 003 §7 and §4.3, article 004: a regional grappe has 15 to 49 ESSMS of L312-1 types with one DUI (at least
  8 in Corsica and overseas); 50 or more belong to the national call. Warned, not refused (§4.2.D: the ARS
  « appréciera ce minima »).

Readings this module makes where the seeds can be read more than one way are named options (:data:`READINGS`),
whose default is the literal wording, quoted.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness.analytics.indicators import (
    BY_KEY,
    TARGET_LOST,
    IndicatorReport,
    Kind,
    Reading,
    TargetStatus,
    add_months,
    parse_month,
)

LABEL = "Prévision indicative, non contractuelle / forecast, not a commitment"
AAP = "AAP 003"  # the regional call for projects (seed 003)
ARTICLE = "article 004"  # « Subventions Ségur du Numérique en Santé » (seed 004)

#: Types of ESSMS the seeds name (art. L312-1 CASF); another type is reported, not refused.
L312_1_TYPES = frozenset(
    {"EHPAD", "EHPA", "SSIAD", "SAAD", "SPASAD", "SAD", "MAS", "FAM", "EAM", "IME", "ITEP", "IEM", "EEAP", "SESSAD",
     "ESAT", "CAMSP", "CMPP", "SAVS", "SAMSAH", "CSAPA", "CAARUD", "LHSS", "LAM", "ACT", "CHRS", "MECS", "FOYER",
     "RESIDENCE AUTONOMIE", "ACCUEIL DE JOUR"}
)  # fmt: skip


class ProjectKind(StrEnum):
    ACQUISITION = "acquisition"  # acquisition or renewal of a DUI (AAP 003 §5.1)
    CONFORMITE = "conformite"  # compliance upgrade of the DUI in place (AAP 003 §5.2)


class Territory(StrEnum):
    METROPOLE = "metropole"
    CORSE_OUTRE_MER = "corse_outre_mer"  # Corsica and overseas departments (article 004: 8 ESSMS minimum)


#: Minimum grappe size and small-OG threshold per territory (article 004; AAP 003 §7 for metropolitan France).
MINIMUM_ESSMS = {Territory.METROPOLE: 15, Territory.CORSE_OUTRE_MER: 8}
NATIONAL_FROM = 50  # AAP 003 §4.3 B: « cinquante ESSMS ou plus » -> national call
#: Deployment limit in months between the project start and the end of the deployment (AAP 003 §3.1).
DEPLOYMENT_MONTHS = {ProjectKind.CONFORMITE: 9, ProjectKind.ACQUISITION: 18}

READINGS: tuple[Reading, ...] = (
    Reading(
        "pilotage",
        {
            "toutes": "les 100 k€ de pilotage si tous les organismes gestionnaires de la grappe sont de petite taille",
            "une": "les 100 k€ de pilotage dès qu'un organisme gestionnaire de la grappe est de petite taille",
        },
        "« un financement forfaitaire de 100 K€ par projet pour un accompagnement au pilotage du projet de DUI est "
        "également possible pour les grappes composées d'organismes de petite taille »",
        f"{AAP} §5.3",
    ),
    Reading(
        "conformite",
        {
            "montee_de_version": "une mise en conformité est une montée de version : délai de 9 mois",
            "acquisition": "délai de 18 mois pour tous les projets",
        },
        "« Concernant les montées de version, la durée du projet devrait être comprise dans un délai d'au plus 9 "
        "mois entre le début du projet et la fin du déploiement »",
        f"{AAP} §3.1",
    ),
)
READING_BY_NAME = {r.name: r for r in READINGS}


def resolve_readings(overrides: dict[str, Any] | None = None) -> dict[str, str]:
    chosen = {r.name: r.default for r in READINGS}
    for name, value in (overrides or {}).items():
        reading = READING_BY_NAME.get(name)
        if reading is None:
            raise ValueError(f"lecture inconnue / unknown reading {name!r} (connues: {', '.join(READING_BY_NAME)})")
        if str(value) not in reading.choices:
            raise ValueError(f"lecture {name}: {value!r} inconnue ({' ou '.join(reading.choices)})")
        chosen[name] = str(value)
    return chosen


@dataclass(frozen=True)
class GrappeEssms:
    finess: str
    name: str
    category: str = ""
    project: ProjectKind = ProjectKind.ACQUISITION
    editeur_referenced: bool = True  # éditeur référencé Ségur
    og: str | None = None  # FINESS juridique of its organisme gestionnaire
    dui: str = ""  # the DUI software (« avec un même DUI », AAP 003 §7), when declared


@dataclass(frozen=True)
class Grappe:
    """A grappe's composition (``grappe.json``, written by ``socle-harness simulate`` or by hand).

    ``organismes`` maps each organisme gestionnaire (FINESS juridique) to the number of ESSMS it manages (all of
    them, not only those of the grappe): the small-OG funding is judged per OG from it. ``og_essms`` (older files)
    declares that the whole grappe is one OG managing that many ESSMS."""

    name: str
    essms: tuple[GrappeEssms, ...]
    og_essms: int | None = None
    campaign_start: str | None = None
    run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    organismes: dict[str, int] = field(default_factory=dict)
    territoire: Territory = Territory.METROPOLE
    procedure_marche: bool = False  # the CNSA central purchasing body's market procedure is used (AAP 003 §5.3)
    project_start: str | None = None  # YYYY-MM, début du projet (default: campaign_start)
    deployment_end: str | None = None  # YYYY-MM, fin du déploiement when declared

    @property
    def names(self) -> dict[str, str]:
        return {e.finess: e.name for e in self.essms}

    @property
    def small_threshold(self) -> int:
        return MINIMUM_ESSMS[self.territoire]

    def og_size(self, item: GrappeEssms) -> int | None:
        """ESSMS managed by ``item``'s organisme gestionnaire, ``None`` when the grappe does not say."""
        if item.og is not None:
            return self.organismes.get(item.og)
        return self.og_essms if not any(e.og for e in self.essms) else None

    def small_og(self, item: GrappeEssms) -> bool | None:
        size = self.og_size(item)
        return None if size is None else size < self.small_threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "og_essms": self.og_essms,
            "organismes": dict(self.organismes),
            "territoire": str(self.territoire),
            "procedure_marche": self.procedure_marche,
            "campaign_start": self.campaign_start,
            "project_start": self.project_start,
            "deployment_end": self.deployment_end,
            "run_id": self.run_id,
            "essms": [
                {
                    "finess": e.finess,
                    "name": e.name,
                    "category": e.category,
                    "project": str(e.project),
                    "editeur_referenced": e.editeur_referenced,
                    **({"og": e.og} if e.og else {}),
                    **({"dui": e.dui} if e.dui else {}),
                }
                for e in self.essms
            ],
            **self.extra,
        }


def _month_or_none(value: Any, what: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return parse_month(str(value))
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def load_grappe(path: Path) -> Grappe:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"fichier de grappe illisible / unreadable grappe file {path}: {exc}") from exc
    try:
        essms = tuple(
            GrappeEssms(
                finess=str(e["finess"]),
                name=str(e.get("name") or e["finess"]),
                category=str(e.get("category", "")),
                project=ProjectKind(e.get("project", "acquisition")),
                editeur_referenced=bool(e.get("editeur_referenced", True)),
                og=str(e["og"]) if e.get("og") else None,
                dui=str(e.get("dui") or ""),
            )
            for e in raw["essms"]
        )
        organismes = {str(k): int(v) for k, v in (raw.get("organismes") or {}).items()}
        territoire = Territory(raw.get("territoire", "metropole"))
        og_essms = None if raw.get("og_essms") is None else int(raw["og_essms"])
        project_start = _month_or_none(raw.get("project_start"), "project_start")
        deployment_end = _month_or_none(raw.get("deployment_end"), "deployment_end")
        campaign_start = _month_or_none(raw.get("campaign_start"), "campaign_start")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(
            f"grappe {path}: liste « essms » de {{finess, name, project: acquisition|conformite, "
            f"editeur_referenced, og}}, « organismes » {{FINESS juridique: nombre d'ESSMS}}, territoire "
            f"metropole|corse_outre_mer, mois AAAA-MM attendus ({exc})"
        ) from exc
    known = {
        "name", "essms", "og_essms", "campaign_start", "run_id", "organismes", "territoire", "procedure_marche",
        "project_start", "deployment_end",
    }  # fmt: skip
    return Grappe(
        name=str(raw.get("name", path.stem)),
        essms=essms,
        og_essms=og_essms,
        campaign_start=campaign_start,
        run_id=raw.get("run_id"),
        extra={k: v for k, v in raw.items() if k not in known},
        organismes=organismes,
        territoire=territoire,
        procedure_marche=bool(raw.get("procedure_marche", False)),
        project_start=project_start,
        deployment_end=deployment_end,
    )


@dataclass(frozen=True)
class FundingLine:
    """One amount of the forecast with its condition and the seed section it comes from."""

    key: str
    label: str
    amount: float  # k€
    condition: str
    section: str
    on_targets: bool  # paid 50 % at signature, 50 % on the usage targets
    maximum: bool = False  # the seeds name a maximum (« jusqu'à », « maximum »)

    @property
    def balance(self) -> float:
        return self.amount / 2 if self.on_targets else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "amount_keur": self.amount,
            "maximum": self.maximum,
            "condition": self.condition,
            "section": self.section,
            "paid_half_on_targets": self.on_targets,
            "balance_keur": self.balance,
        }


@dataclass(frozen=True)
class EssmsFunding:
    finess: str
    name: str
    rank: int  # 1-based position in the group (the 50th and later get other amounts)
    project: ProjectKind
    owner_usage: float  # k€, paid 50/50
    editeur: float  # k€ (a maximum)
    editeur_note: str
    equipment: float  # k€ (small OG, a maximum), paid 50/50
    missed: tuple[str, ...] = ()  # targets this ESSMS missed in the judged period
    owner_note: str = ""

    @property
    def balance(self) -> float:
        return (self.owner_usage + self.equipment) / 2


@dataclass(frozen=True)
class Deployment:
    """The measurement that decides the balance (AAP 003 §3.1)."""

    kind: ProjectKind  # the grappe's (majority) project kind
    start: str  # project start month
    limit: str  # last month the deployment should end in (start + 9 or 18 months, exclusive)
    end: str  # the end of the deployment: declared, else the limit
    declared: bool
    past_limit: bool  # the declared end, or the journal's latest measure, is after the limit

    def to_dict(self) -> dict[str, Any]:
        return {
            "project_kind": str(self.kind),
            "project_start": self.start,
            "limit": self.limit,
            "months": DEPLOYMENT_MONTHS[self.kind],
            "measurement_month": self.end,
            "declared_end": self.declared,
            "past_limit": self.past_limit,
        }


@dataclass(frozen=True)
class FundingForecast:
    grappe: Grappe
    essms: tuple[EssmsFunding, ...]
    procurement_support: float  # k€ per project (small OG, market procedure), a maximum
    steering_support: float  # k€ per project (grappe of small OGs), a maximum
    period: str | None  # the period the risk is judged on
    targets: dict[str, str]  # indicator -> met / not_met / unmeasured / target_missing (grappe, judged period)
    notes: tuple[str, ...]
    lines: tuple[FundingLine, ...] = ()
    warnings: tuple[str, ...] = ()  # eligibility and deployment-limit warnings, with their seed section
    deployment: Deployment | None = None
    decisive: bool = False  # the judged period is the end-of-deployment measure (else: a trend)
    readings: dict[str, str] = field(default_factory=resolve_readings)

    @property
    def owner_usage(self) -> float:
        return sum(e.owner_usage for e in self.essms)

    @property
    def specific(self) -> float:
        """Specific funding of small OGs (equipment, procurement and steering support), paid like the rest."""
        return self.equipment + self.procurement_support + self.steering_support

    @property
    def on_targets(self) -> float:
        """What is paid 50 % at signature and 50 % on the targets: owner usage funding and specific funding."""
        return self.owner_usage + self.specific

    @property
    def first_half(self) -> float:
        return self.on_targets / 2

    @property
    def balance(self) -> float:
        return self.on_targets - self.first_half

    @property
    def editeur(self) -> float:
        return sum(e.editeur for e in self.essms)

    @property
    def equipment(self) -> float:
        return sum(e.equipment for e in self.essms)

    @property
    def total(self) -> float:
        return self.owner_usage + self.editeur + self.specific

    @property
    def missed(self) -> list[str]:
        return [k for k, v in self.targets.items() if v == "not_met"]

    @property
    def unmeasured(self) -> list[str]:
        return [k for k, v in self.targets.items() if v in ("unmeasured", "target_missing")]

    @property
    def balance_at_risk(self) -> float:
        """The balance the measured indicators put at risk (all of it as soon as one measured target is missed)."""
        return self.balance if self.missed else 0.0

    @property
    def balance_uncertain(self) -> float:
        """The balance not at risk but not secured either: a target is not measured, or has no value configured
        (« cible non renseignée »)."""
        return self.balance if not self.missed and self.unmeasured else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": LABEL,
            "grappe": self.grappe.name,
            "period": self.period,
            "decisive_measure": self.decisive,
            "deployment": self.deployment.to_dict() if self.deployment else None,
            "amounts_keur": {
                "owner_usage": self.owner_usage,
                "specific": self.specific,
                "paid_on_targets": self.on_targets,
                "first_half_at_signature": self.first_half,
                "balance_on_targets": self.balance,
                "balance_at_risk": self.balance_at_risk,
                "balance_uncertain": self.balance_uncertain,
                "editeur": self.editeur,
                "equipment": self.equipment,
                "procurement_support": self.procurement_support,
                "steering_support": self.steering_support,
                "total": self.total,
            },
            "lines": [line.to_dict() for line in self.lines],
            "targets": self.targets,
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "readings": [
                {"name": r.name, "choice": self.readings[r.name], "quote": r.quote, "section": r.section}
                for r in READINGS
            ],
            "essms": [
                {
                    "finess": e.finess,
                    "name": e.name,
                    "rank": e.rank,
                    "project": str(e.project),
                    "owner_usage": e.owner_usage,
                    "owner_note": e.owner_note,
                    "balance": e.balance,
                    "editeur": e.editeur,
                    "editeur_note": e.editeur_note,
                    "equipment": e.equipment,
                    "missed_targets": list(e.missed),
                }
                for e in self.essms
            ],
        }


def _amounts(rank: int, item: GrappeEssms) -> tuple[float, str, float, str]:
    """Owner usage funding and its note, éditeur maximum and its note, for the ESSMS at ``rank``."""
    if item.project is ProjectKind.CONFORMITE and not item.editeur_referenced:
        return 0.0, f"non éligible : mise en conformité sans éditeur référencé Ségur ({AAP} §4.2.C)", 0.0, ""
    if rank >= NATIONAL_FROM:
        if item.project is ProjectKind.ACQUISITION:
            editeur = 3.0 if item.editeur_referenced else 1.0
            return 2.0, f"à partir du 50e ESSMS ({AAP} §5.4)", editeur, f"au plus {editeur:g} k€ ({AAP} §5.4)"
        return 2.0, f"à partir du 50e ESSMS ({AAP} §5.4)", 0.0, "éditeur financé par le SONS"
    if item.project is ProjectKind.ACQUISITION:
        if item.editeur_referenced:
            return 7.0, f"{AAP} §5.1", 14.5, f"au plus 14,5 k€, éditeur référencé Ségur ({AAP} §5.1)"
        return 7.0, f"{AAP} §5.1", 12.0, f"au plus 12 k€, éditeur non référencé ({AAP} §5.1)"
    return 5.0, f"{AAP} §5.2", 0.0, f"éditeur financé par le SONS ({AAP} §5.2)"


def deployment(grappe: Grappe, readings: dict[str, str], latest: str | None = None) -> Deployment | None:
    """The end-of-deployment measurement (AAP 003 §3.1) of ``grappe``: its majority project kind's limit (9 months
    for a version upgrade, 18 for an acquisition, from the project start), the declared end or else the limit;
    ``latest`` (the latest period measured) past the limit without a declared end flags it too."""
    start = grappe.project_start or grappe.campaign_start
    if start is None or not grappe.essms:
        return None
    counts = Counter(e.project for e in grappe.essms)
    kind = (
        ProjectKind.ACQUISITION
        if counts[ProjectKind.ACQUISITION] >= counts[ProjectKind.CONFORMITE]
        else ProjectKind.CONFORMITE
    )
    months = DEPLOYMENT_MONTHS[ProjectKind.ACQUISITION if readings["conformite"] == "acquisition" else kind]
    limit = add_months(start, months - 1)  # « au plus N mois » from the start month: its N months
    end = grappe.deployment_end or limit
    past = end > limit or (grappe.deployment_end is None and latest is not None and latest > limit)
    return Deployment(kind, start, limit, end, grappe.deployment_end is not None, past)


def eligibility_warnings(grappe: Grappe) -> list[str]:
    """What the seeds ask of a regional grappe that this one does not (AAP 003 §7, §4.3; article 004)."""
    warnings: list[str] = []
    n, minimum = len(grappe.essms), MINIMUM_ESSMS[grappe.territoire]
    where = "en métropole" if grappe.territoire is Territory.METROPOLE else "en Corse et outre-mer"
    if n < minimum:
        warnings.append(
            f"Grappe de {n} ESSMS : moins que le minimum de {minimum} {where} (« au moins 15 ESSMS en métropole, "
            f"8 en Corse et dans les départements ultramarins », {ARTICLE} ; « entre 15 et 49 ESSMS », {AAP} §7) ; "
            f"l'ARS « appréciera ce minima » ({AAP} §4.2.D) : financement non acquis."
        )
    if n >= NATIONAL_FROM:
        warnings.append(
            f"Grappe de {n} ESSMS : « les projets regroupant cinquante ESSMS ou plus sont déposés au niveau national »"
            f" ({AAP} §4.3 B) : hors appel à projets régional."
        )
    duplicates = sorted(f for f, c in Counter(e.finess for e in grappe.essms).items() if c > 1)
    if duplicates:
        warnings.append(f"FINESS en double dans la grappe : {', '.join(duplicates)} (un ESSMS ne compte qu'une fois).")
    unknown = sorted({e.category for e in grappe.essms if e.category and e.category.upper() not in L312_1_TYPES})
    if unknown:
        warnings.append(
            f"Type(s) d'ESSMS non reconnu(s) comme relevant de l'article L312-1 du CASF : {', '.join(unknown)} "
            f"({AAP} §7 : « dont le type est mentionné à l'article L312-1 »)."
        )
    duis = {e.dui for e in grappe.essms if e.dui}
    if len(duis) > 1:
        warnings.append(f"Plusieurs DUI dans la grappe ({', '.join(sorted(duis))}) : « avec un même DUI » ({AAP} §7).")
    return warnings


def forecast(
    grappe: Grappe, report: IndicatorReport | None = None, readings: dict[str, Any] | None = None
) -> FundingForecast:
    """Amounts for ``grappe`` and the balance at risk: judged on the end-of-deployment measure when ``report``
    holds it, else on its latest period (a trend)."""
    chosen = resolve_readings(readings)
    latest = report.periods[-1] if report and report.periods else None
    plan = deployment(grappe, chosen, latest.end if latest else None)
    period, decisive = latest, False
    if report is not None and plan is not None:
        for p in report.periods:
            if p.end == plan.end:
                period, decisive = p, True
    targets: dict[str, str] = {}
    missed_by_essms: dict[str, list[str]] = {}
    if report is not None and period is not None:
        for key, definition in BY_KEY.items():
            if definition.kind is Kind.COUNT:
                continue
            if report.targets.get(key) is None:
                if key in TARGET_LOST:
                    targets[key] = "target_missing"  # « cible non renseignée »: not secured
                continue
            figure = report.get(key, period, None)
            if not figure.observed or figure.status is TargetStatus.NOT_COMPUTABLE:
                targets[key] = "unmeasured"
                continue
            targets[key] = "met" if figure.status is TargetStatus.MET else "not_met"
            for item in grappe.essms:
                try:
                    one = report.get(key, period, item.finess)
                except LookupError:
                    continue
                if one.status is TargetStatus.NOT_MET:
                    missed_by_essms.setdefault(item.finess, []).append(key)
    notes = [LABEL]
    rows = []
    for rank, item in enumerate(grappe.essms, start=1):
        owner, owner_note, editeur, editeur_note = _amounts(rank, item)
        equipment = 20.0 if grappe.small_og(item) and owner else 0.0
        rows.append(
            EssmsFunding(
                item.finess, item.name, rank, item.project, owner, editeur, editeur_note, equipment,
                tuple(missed_by_essms.get(item.finess, ())), owner_note,
            )
        )  # fmt: skip
    smalls = [grappe.small_og(e) for e in grappe.essms]
    threshold = grappe.small_threshold
    unknown = [e.finess for e, s in zip(grappe.essms, smalls, strict=True) if s is None]
    if unknown:
        notes.append(
            f"Taille de l'organisme gestionnaire non renseignée pour {len(unknown)} ESSMS (« og » et « organismes » "
            f"du fichier de grappe) : aucun financement « petit OG » n'est prévu pour eux ({AAP} §5.3)."
        )
    any_small = any(s is True for s in smalls)
    procurement = 15.0 if any_small and grappe.procedure_marche else 0.0
    if chosen["pilotage"] == "une":
        steering = 100.0 if any_small else 0.0
    else:
        steering = 100.0 if smalls and all(s is True for s in smalls) else 0.0
    if any_small and not grappe.procedure_marche:
        notes.append(
            f"Accompagnement achat (15 k€) non prévu : seulement « dans la conduite de la procédure de marché portée "
            f'par la centrale d\'achat mandatée par la CNSA » ({AAP} §5.3) ; déclarer "procedure_marche": true.'
        )
    ineligible = [e for e in rows if e.owner_note.startswith("non éligible")]
    if ineligible:
        notes.append(
            f"{len(ineligible)} ESSMS en mise en conformité sans éditeur référencé Ségur : non éligibles (« ne sont "
            f"éligibles que s'ils s'engagent avec un éditeur dont la solution est référencée Ségur », {AAP} §4.2.C)."
        )
    notes.append(
        f"Le solde (50 %) du financement d'usage et des financements spécifiques est versé « sous conditions "
        f"d'atteinte des cibles d'usage en fin du déploiement » ({AAP} §3.1 ; « selon les mêmes conditions et "
        f"échéances », §5.3). L'éditeur n'est pas compté dans ce solde (« 7k€ par ESSMS pour la maîtrise d'ouvrage "
        f"versés à 50% au début du projet et à 50% sur preuve d'atteinte des cibles d'usage », {ARTICLE})."
    )
    if any(v == "target_missing" for v in targets.values()):
        notes.append(
            "Cible du taux de dossiers actifs non renseignée (valeur absente du texte, §6.3 B) : le solde n'est pas "
            "sécurisé tant qu'une cible n'est pas configurée (--target dossiers_actifs=…)."
        )
    if any(v == "unmeasured" for v in targets.values()):
        notes.append("Cibles non mesurées (aucun échange observé pour ces services) : le solde n'est pas acquis.")
    warnings = eligibility_warnings(grappe)
    if plan is not None:
        months = DEPLOYMENT_MONTHS[ProjectKind.ACQUISITION if chosen["conformite"] == "acquisition" else plan.kind]
        what = "d'une acquisition" if months == 18 else "d'une montée de version"
        notes.append(
            f"Mesure qui décide du solde : fin {plan.end} (fin du déploiement{' déclarée' if plan.declared else ''} ; "
            f"délai {what} : au plus {months} mois depuis {plan.start}, soit jusqu'à fin {plan.limit}, {AAP} §3.1)."
            + (
                ""
                if decisive
                else f" Risque jugé sur la dernière mesure disponible ({period.label if period else '—'}) : tendance, non décisif."
            )
        )
        if plan.past_limit:
            warnings.append(
                f"Déploiement au-delà de la limite : {'fin déclarée ' + plan.end if plan.declared else 'mesures après ' + plan.limit}"
                f" pour un délai d'au plus {months} mois depuis {plan.start} (fin {plan.limit}) ({AAP} §3.1)."
            )
    else:
        notes.append(
            f"Début du projet inconnu (project_start / campaign_start) : date de mesure du solde non calculable ({AAP} §3.1)."
        )
    owner_usage = sum(r.owner_usage for r in rows)
    equipment = sum(r.equipment for r in rows)
    editeur = sum(r.editeur for r in rows)
    n_small = sum(1 for r in rows if r.equipment)
    lines = (
        FundingLine("owner_usage", "Financement d'usage du porteur", owner_usage,
                    "par ESSMS : 7 k€ (acquisition), 5 k€ (mise en conformité, éditeur référencé Ségur), 2 k€ à partir du 50e",
                    f"{AAP} §5.1, §5.2, §5.4, §4.2.C", True),
        FundingLine("editeur", "Éditeur(s)", editeur,
                    "acquisitions : au plus 12 k€ par ESSMS, 14,5 k€ si référencé Ségur ; 3 k€ / 1 k€ à partir du 50e",
                    f"{AAP} §5.1, §5.4", False, True),
        FundingLine("equipment", "Équipement (petit OG)", equipment,
                    f"20 k€ au plus par ESSMS d'un organisme gestionnaire de moins de {threshold} ESSMS ({n_small} ESSMS)",
                    f"{AAP} §5.3, {ARTICLE}", True, True),
        FundingLine("procurement_support", "Accompagnement achat (petit OG)", procurement,
                    "15 k€ au plus par projet, avec la procédure de marché de la centrale d'achat mandatée par la CNSA",
                    f"{AAP} §5.3", True, True),
        FundingLine("steering_support", "Accompagnement pilotage (petit OG)", steering,
                    "100 k€ au plus par projet, grappe composée d'organismes de petite taille (lecture « "
                    f"{chosen['pilotage']} »)", f"{AAP} §5.3", True, True),
    )  # fmt: skip
    return FundingForecast(
        grappe,
        tuple(rows),
        procurement,
        steering,
        period.label if period else None,
        targets,
        tuple(notes),
        lines,
        tuple(warnings),
        plan,
        decisive,
        chosen,
    )
