"""Funding forecast of a grappe: the ESMS numérique amounts it can expect, and how much of the usage-funding
balance the measured indicators put at risk. A **forecast** (indicative, not contractual).

Amounts: the regional call for projects (per ESSMS), as condensed in the project's domain reference:
- acquisition or renewal of a DUI: 7 k€ to the project owner + up to 12 k€ for the éditeur (14.5 k€ if the éditeur
  is Ségur-referenced); compliance upgrade (mise en conformité): 5 k€ to the owner, the éditeur being paid
  through the SONS (outside this funding);
- from the 50th ESSMS of a group on: 2 k€ usage funding to the owner; éditeur 3 k€ (referenced) or 1 k€;
- small OG (fewer than 15 ESSMS): 20 k€ per ESSMS for equipment, 15 k€ per project for procurement support and
  100 k€ per project for project-steering support;
- the owner's usage funding is paid 50 % at the signature of the agreement and 50 % once the usage targets are
  met: that second half is what the indicators put at risk.

Readings this module makes (stated in its output): the "from the 50th ESSMS" amounts replace the first ones for
both project kinds, the éditeur's 3 k€ / 1 k€ only for acquisitions; the balance is at risk as a whole when one
target the grappe is measured on is missed in the latest period.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness.analytics.indicators import BY_KEY, IndicatorReport, Kind, TargetStatus

LABEL = "Prévision indicative, non contractuelle / forecast, not a commitment"


class ProjectKind(StrEnum):
    ACQUISITION = "acquisition"  # acquisition or renewal of a DUI
    CONFORMITE = "conformite"  # compliance upgrade of the DUI in place


@dataclass(frozen=True)
class GrappeEssms:
    finess: str
    name: str
    category: str = ""
    project: ProjectKind = ProjectKind.ACQUISITION
    editeur_referenced: bool = True  # éditeur référencé Ségur


@dataclass(frozen=True)
class Grappe:
    """A grappe's composition (``grappe.json``, written by ``socle-harness simulate`` or by hand)."""

    name: str
    essms: tuple[GrappeEssms, ...]
    og_essms: int | None = None  # ESSMS managed by the organisme gestionnaire (small OG: fewer than 15)
    campaign_start: str | None = None
    run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def small_og(self) -> bool:
        return (self.og_essms if self.og_essms is not None else len(self.essms)) < 15

    @property
    def names(self) -> dict[str, str]:
        return {e.finess: e.name for e in self.essms}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "og_essms": self.og_essms,
            "campaign_start": self.campaign_start,
            "run_id": self.run_id,
            "essms": [
                {
                    "finess": e.finess,
                    "name": e.name,
                    "category": e.category,
                    "project": str(e.project),
                    "editeur_referenced": e.editeur_referenced,
                }
                for e in self.essms
            ],
            **self.extra,
        }


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
            )
            for e in raw["essms"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"grappe {path}: liste « essms » de {{finess, name, project: acquisition|conformite, "
            f"editeur_referenced}} attendue ({exc})"
        ) from exc
    known = {"name", "essms", "og_essms", "campaign_start", "run_id"}
    return Grappe(
        name=str(raw.get("name", path.stem)),
        essms=essms,
        og_essms=raw.get("og_essms"),
        campaign_start=raw.get("campaign_start"),
        run_id=raw.get("run_id"),
        extra={k: v for k, v in raw.items() if k not in known},
    )


@dataclass(frozen=True)
class EssmsFunding:
    finess: str
    name: str
    rank: int  # 1-based position in the group (the 50th and later get other amounts)
    project: ProjectKind
    owner_usage: float  # k€, paid 50/50
    editeur: float  # k€
    editeur_note: str
    equipment: float  # k€ (small OG)
    missed: tuple[str, ...] = ()  # targets this ESSMS missed in the latest period

    @property
    def balance(self) -> float:
        return self.owner_usage / 2


@dataclass(frozen=True)
class FundingForecast:
    grappe: Grappe
    essms: tuple[EssmsFunding, ...]
    procurement_support: float  # k€ per project (small OG)
    steering_support: float  # k€ per project (small OG)
    period: str | None  # the period the risk is judged on
    targets: dict[str, str]  # indicator -> "met" / "not_met" / "unmeasured" (grappe level, latest period)
    notes: tuple[str, ...]

    @property
    def owner_usage(self) -> float:
        return sum(e.owner_usage for e in self.essms)

    @property
    def first_half(self) -> float:
        return self.owner_usage / 2

    @property
    def balance(self) -> float:
        return self.owner_usage - self.first_half

    @property
    def editeur(self) -> float:
        return sum(e.editeur for e in self.essms)

    @property
    def equipment(self) -> float:
        return sum(e.equipment for e in self.essms)

    @property
    def total(self) -> float:
        return self.owner_usage + self.editeur + self.equipment + self.procurement_support + self.steering_support

    @property
    def missed(self) -> list[str]:
        return [k for k, v in self.targets.items() if v == "not_met"]

    @property
    def unmeasured(self) -> list[str]:
        return [k for k, v in self.targets.items() if v == "unmeasured"]

    @property
    def balance_at_risk(self) -> float:
        """The balance the measured indicators put at risk (all of it as soon as one measured target is missed)."""
        return self.balance if self.missed else 0.0

    @property
    def balance_uncertain(self) -> float:
        """The balance not yet at risk but not secured either: some targets are not measured."""
        return self.balance if not self.missed and self.unmeasured else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": LABEL,
            "grappe": self.grappe.name,
            "small_og": self.grappe.small_og,
            "period": self.period,
            "amounts_keur": {
                "owner_usage": self.owner_usage,
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
            "targets": self.targets,
            "notes": list(self.notes),
            "essms": [
                {
                    "finess": e.finess,
                    "name": e.name,
                    "rank": e.rank,
                    "project": str(e.project),
                    "owner_usage": e.owner_usage,
                    "balance": e.balance,
                    "editeur": e.editeur,
                    "editeur_note": e.editeur_note,
                    "equipment": e.equipment,
                    "missed_targets": list(e.missed),
                }
                for e in self.essms
            ],
        }


def _amounts(rank: int, item: GrappeEssms) -> tuple[float, float, str]:
    if rank >= 50:
        owner = 2.0
        if item.project is ProjectKind.ACQUISITION:
            return owner, (3.0 if item.editeur_referenced else 1.0), "à partir du 50e ESSMS"
        return owner, 0.0, "éditeur financé par le SONS"
    if item.project is ProjectKind.ACQUISITION:
        return (
            7.0,
            (14.5 if item.editeur_referenced else 12.0),
            ("référencé Ségur" if item.editeur_referenced else "jusqu'à 12 k€, non référencé"),
        )
    return 5.0, 0.0, "éditeur financé par le SONS"


def forecast(grappe: Grappe, report: IndicatorReport | None = None) -> FundingForecast:
    """Amounts for ``grappe`` and the balance at risk judged on the latest period of ``report``."""
    small = grappe.small_og
    period = report.periods[-1] if report and report.periods else None
    targets: dict[str, str] = {}
    missed_by_essms: dict[str, list[str]] = {}
    if report is not None and period is not None:
        for key, definition in BY_KEY.items():
            if definition.kind is Kind.COUNT or report.targets.get(key) is None:
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
    rows = []
    for rank, item in enumerate(grappe.essms, start=1):
        owner, editeur, note = _amounts(rank, item)
        rows.append(
            EssmsFunding(
                item.finess,
                item.name,
                rank,
                item.project,
                owner,
                editeur,
                note,
                20.0 if small else 0.0,
                tuple(missed_by_essms.get(item.finess, ())),
            )
        )
    notes = [
        LABEL,
        "Montants par ESSMS de l'appel à projets régional; le solde (50 %) du financement d'usage du porteur est "
        "versé une fois les cibles d'usage atteintes.",
        "Lecture retenue: au-delà du 49e ESSMS, 2 k€ d'usage au porteur pour les deux types de projet, éditeur "
        "3 k€ / 1 k€ pour les acquisitions seulement.",
    ]
    if small:
        notes.append(
            "Petit OG (moins de 15 ESSMS): équipement 20 k€ par ESSMS, accompagnement achat 15 k€ et "
            "pilotage 100 k€ par projet."
        )
    if any(v == "unmeasured" for v in targets.values()):
        notes.append("Cibles non mesurées (aucun échange observé pour ces services): le solde n'est pas acquis.")
    return FundingForecast(
        grappe,
        tuple(rows),
        15.0 if small else 0.0,
        100.0 if small else 0.0,
        period.label if period else None,
        targets,
        tuple(notes),
    )
