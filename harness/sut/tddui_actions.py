"""TDDUI export of the reference DUI: its records as an ANS "Transfert de données DUI" FHIR transaction.

DUI-side builder, kept apart from :mod:`harness.validators.tddui` on purpose. Follows the ANS guide
``ans.fhir.fr.tddui`` (2.x ballot): TDDUIOrganization (idNatSt = ``1`` + FINESS), TDDUIPatientINS (INS + local
identifier ``3`` + FINESS ``/`` local id), TDDUIEncounterSejour, TDDUICarePlanProjetPersonnalise,
TDDUIEncounterEvenement; ``meta.lastUpdated`` carries the DUI's own modification dates, as the guide maps them.
FHIR R4 transaction: ``request.method`` POST, ``request.url`` = the resource type, ``fullUrl`` = ``urn:uuid:``.

Defects of the faulty DUI for this capability are declared here and checked with ``self.has(...)``.
"""

from __future__ import annotations

import json
import ssl
import uuid
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from harness.fields.dui import EventStatus, PersonalPlan, PlanStatus
from harness.fields.testdata import Establishment
from harness.sut.base import (
    ActionResult,
    ActionStatus,
    Defect,
    SutEnvironment,
    TdduiExport,
)

PARIS = ZoneInfo("Europe/Paris")
PROFILE = "https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/"
CS_V2_0203 = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
LOCAL_SYSTEM = "https://identifiant-medicosocial-localusager.esante.gouv.fr"
SEJOUR_SYSTEM = "https://identifiant-medicosocial-sejour.esante.gouv.fr"
PP_SYSTEM = "https://identifiant-medicosocial-projetpersonnalise.esante.gouv.fr"
EVN_SYSTEM = "https://identifiant-medicosocial-evenement.esante.gouv.fr"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
HOME_CATEGORIES = {"SSIAD", "SAAD", "SPASAD", "SESSAD", "SAVS", "SAMSAH"}

TDDUI_DEFECTS = (
    Defect("tddui-sans-sorties", "omet de l'export TDDUI les personnes sorties définitivement (et leurs séjours clos)"),
    Defect(
        "tddui-date-export",
        "met la date de l'export dans meta.lastUpdated au lieu de la date de modification du dossier",
    ),
    Defect("tddui-pp-brouillon-absent", "n'exporte pas les projets personnalisés en préparation (brouillons)"),
    Defect(
        "tddui-url-profil", "met le nom du profil (TDDUIEncounterSejour…) dans request.url au lieu du type de ressource"
    ),
    Defect(
        "tddui-annulation-absente",
        "retire de l'export les séjours et événements annulés au lieu de les transmettre avec leur statut "
        "(cancelled, entered-in-error)",
    ),
    Defect(
        "tddui-evenements-du-mois",
        "n'exporte que les événements d'agenda du mois de l'export (les plus anciens n'ont jamais été transmis)",
    ),
)
#: Séjour / événement statuses that retract it (FHIR R4 Encounter.status).
RETRACTED = ("cancelled", "entered-in-error")


def _instant(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=PARIS)
    return aware.astimezone(PARIS).isoformat(timespec="seconds")


def _at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour, 0), tzinfo=PARIS)


def build_tddui_bundle(
    action: TdduiExport,
    *,
    omit_exits: bool = False,
    stamp_export_time: bool = False,
    omit_draft_plans: bool = False,
    profile_in_url: bool = False,
    omit_retracted: bool = False,
    month_events_only: bool = False,
) -> dict[str, Any]:
    """The TDDUI transaction Bundle of ``action`` (the keyword switches are the faulty DUI's defects)."""
    est: Establishment = action.establishment
    cutoff = action.exported_at if action.exported_at.tzinfo else action.exported_at.replace(tzinfo=PARIS)
    cutoff_day = cutoff.astimezone(PARIS).date()
    entries: list[dict[str, Any]] = []

    def modified(value: datetime) -> str:
        return _instant(cutoff if stamp_export_time else value)

    def add(resource: dict[str, Any], profile_name: str) -> str:
        full_url = f"urn:uuid:{uuid.uuid4()}"
        url = profile_name if profile_in_url else resource["resourceType"]
        entries.append({"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": url}})
        return full_url

    org_url = add(
        {
            "resourceType": "Organization",
            "meta": {"profile": [PROFILE + "tddui-organization"]},
            "identifier": [
                {
                    "use": "official",
                    "type": {"coding": [{"system": CS_V2_0203, "code": "IDNST"}]},
                    "system": "urn:oid:1.2.250.1.71.4.2.2",
                    "value": "1" + est.finess,
                }
            ],
            "name": est.name,
        },
        "TDDUIOrganization",
    )
    encounter_class = {"system": ACT_CODE, "code": "HH" if est.category in HOME_CATEGORIES else "IMP"}
    for record in action.records:
        stays = [s for s in record.stays if s.admission <= cutoff_day]
        known = [(s, s.exit if s.exit is not None and s.exit <= cutoff_day else None) for s in stays]
        if omit_exits:
            known = [(s, end) for s, end in known if end is None]
        if omit_retracted:
            known = [(s, end) for s, end in known if s.status not in RETRACTED]
        if not known:
            continue
        person = record.person
        local = f"3{est.finess}/{record.local_id}"
        last_update = record.last_update(cutoff) or _at(min(s.admission for s, _ in known))
        patient_url = add(
            {
                "resourceType": "Patient",
                "meta": {"profile": [PROFILE + "tddui-patient-ins"], "lastUpdated": modified(last_update)},
                "identifier": [
                    {
                        "use": "official",
                        "type": {"coding": [{"system": CS_V2_0203, "code": "INS-NIR-TEST"}]},
                        **person.ins.to_fhir_identifier(),
                    },
                    {
                        "use": "usual",
                        "type": {
                            "coding": [
                                {
                                    "system": "https://interop.esante.gouv.fr/ig/fhir/tddui/CodeSystem/tddui-identifier-type",
                                    "code": "PLI",
                                }
                            ]
                        },
                        "system": LOCAL_SYSTEM,
                        "value": local,
                    },
                ],
                "name": [{"use": "official", "family": person.family, "given": [person.given]}],
                "gender": {"M": "male", "F": "female"}.get(person.sex, "unknown"),
                "birthDate": person.birth_date.isoformat(),
            },
            "TDDUIPatientINS",
        )
        stay_url = ""
        for stay, end in known:
            last_change = end or stay.admission
            stay_url = add(
                {
                    "resourceType": "Encounter",
                    "meta": {
                        "profile": [PROFILE + "tddui-encounter-sejour"],
                        "lastUpdated": modified(_at(last_change)),
                    },
                    "identifier": [
                        {
                            "type": {
                                "coding": [
                                    {
                                        "system": "https://interop.esante.gouv.fr/ig/fhir/tddui/CodeSystem/tddui-encounter-identifier-type",
                                        "code": "SEJ",
                                    }
                                ]
                            },
                            "system": SEJOUR_SYSTEM,
                            "value": f"{local}-SEJOUR-{stay.id}",
                        }
                    ],
                    "status": stay.status or ("finished" if end else "in-progress"),
                    "class": encounter_class,
                    "subject": {"reference": patient_url},
                    "serviceProvider": {"reference": org_url},
                    "period": {"start": stay.admission.isoformat(), **({"end": end.isoformat()} if end else {})},
                },
                "TDDUIEncounterSejour",
            )
        current: dict[str, PersonalPlan] = {}  # each projet as it stands at the export (its latest status)
        for plan in record.plans:
            if plan.status_date <= cutoff and (
                plan.id not in current or plan.status_date >= current[plan.id].status_date
            ):
                current[plan.id] = plan
        for plan in current.values():
            if omit_draft_plans and plan.status is PlanStatus.EN_PREPARATION:
                continue
            add(
                {
                    "resourceType": "CarePlan",
                    "meta": {
                        "profile": [PROFILE + "tddui-careplan-projet-personnalise"],
                        "lastUpdated": modified(plan.status_date),
                    },
                    "identifier": [{"system": PP_SYSTEM, "value": f"{local}-PPER-{plan.id}"}],
                    "status": str(plan.status),
                    "intent": "plan",
                    "title": plan.title,
                    "subject": {"reference": patient_url},
                },
                "TDDUICarePlanProjetPersonnalise",
            )
        for event in record.events:
            if event.modified > cutoff:
                continue
            if omit_retracted and str(event.status) in RETRACTED:
                continue
            begins = event.start if event.start.tzinfo else event.start.replace(tzinfo=PARIS)
            if month_events_only and begins.astimezone(PARIS).strftime("%Y-%m") != cutoff_day.strftime("%Y-%m"):
                continue
            add(
                {
                    "resourceType": "Encounter",
                    "meta": {
                        "profile": [PROFILE + "tddui-encounter-evenement"],
                        "lastUpdated": modified(event.modified),
                    },
                    "identifier": [{"system": EVN_SYSTEM, "value": f"{local}-EVN-{event.id}"}],
                    "status": str(event.status) if isinstance(event.status, EventStatus) else event.status,
                    "class": encounter_class,
                    "type": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                    "code": "not-permitted",
                                }
                            ],
                            "text": event.label,
                        }
                    ],
                    "subject": {"reference": patient_url},
                    "serviceProvider": {"reference": org_url},
                    "partOf": {"reference": stay_url},
                    "period": {"start": _instant(event.start), "end": _instant(event.end)},
                },
                "TDDUIEncounterEvenement",
            )
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [PROFILE + "tddui-bundle"]},
        "type": "transaction",
        "timestamp": _instant(cutoff),
        "entry": entries,
    }


class TdduiActions:
    """Mixin of :class:`harness.sut.reference.ReferenceDUI`."""

    env: SutEnvironment | None

    def has(self, defect: str) -> bool:  # provided by ReferenceDUI
        raise NotImplementedError

    def tls_context(self, certificate: str | None = None) -> ssl.SSLContext:  # provided by ReferenceDUI
        raise NotImplementedError

    def export_tddui(self, action: TdduiExport) -> ActionResult:
        if self.env is None:
            raise RuntimeError("setup() must be called before any action")
        endpoint = self.env.endpoints.get("tddui", {}).get("fhir")
        if endpoint is None:
            return ActionResult(ActionStatus.ERROR, "point d'accès TDDUI inconnu (simulateur tddui non démarré)")
        bundle = build_tddui_bundle(
            action,
            omit_exits=self.has("tddui-sans-sorties"),
            stamp_export_time=self.has("tddui-date-export"),
            omit_draft_plans=self.has("tddui-pp-brouillon-absent"),
            profile_in_url=self.has("tddui-url-profil"),
            omit_retracted=self.has("tddui-annulation-absente"),
            month_events_only=self.has("tddui-evenements-du-mois"),
        )
        body = json.dumps(bundle, ensure_ascii=False).encode("utf-8")
        name = f"ESSMS-{action.establishment.finess}"
        # the establishment's organisation certificate: the endpoint knows who sends
        context = self.tls_context(name if name in self.env.client_certificates else None)
        try:
            with httpx.Client(verify=context, timeout=60) as client:
                response = client.post(
                    endpoint,
                    content=body,
                    headers={"Content-Type": "application/fhir+json; charset=utf-8", "Accept": "application/fhir+json"},
                )
        except httpx.HTTPError as exc:
            return ActionResult(ActionStatus.FAILED, f"export TDDUI impossible: {exc}")
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code != 200 or answer.get("resourceType") != "Bundle":
            issues = (
                "; ".join(i.get("diagnostics", "") for i in answer.get("issue", [])) if isinstance(answer, dict) else ""
            )
            return ActionResult(
                ActionStatus.FAILED, f"export TDDUI refusé: HTTP {response.status_code} {issues}".strip()
            )
        warnings = [
            issue.get("diagnostics", "")
            for entry in answer.get("entry") or []
            for issue in (((entry.get("response") or {}).get("outcome") or {}).get("issue") or [])
        ]
        return ActionResult(
            ActionStatus.DONE,
            f"export TDDUI accepté ({len(bundle['entry'])} entrées)",
            {"entries": len(bundle["entry"]), "response_entries": len(answer.get("entry") or []), "warnings": warnings},
        )
