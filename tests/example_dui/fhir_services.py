"""Example DUI, FHIR services: the TDDUI export, the e-prescription import and the e-Parcours cahier de liaison.

Specifications followed (this module shares no code with the reference DUI):

- FHIR R4 4.0.1 RESTful API (http://hl7.org/fhir/R4/http.html): JSON ``application/fhir+json``, ``transaction``
  Bundles (``fullUrl`` ``urn:uuid:``, ``request.method`` / ``url``, conditional create ``ifNoneExist``), search
  (token ``system|code``, chained parameters, ``_include``), version-aware update (``ETag`` ``W/"n"``,
  ``If-Match``, 412 Precondition Failed), errors as ``OperationOutcome``;
- ANS *Médicosocial - Transfert de données DUI* (``ans.fhir.fr.tddui``): TDDUIBundle (transaction, creations only),
  TDDUIOrganization (``idNatSt`` = ``1`` + FINESS), TDDUIPatientINS (INS + local identifier ``3`` + FINESS ``/`` +
  local id), TDDUIEncounterSejour (``period`` = dateEntree / dateSortie, ``serviceProvider``),
  TDDUICarePlanProjetPersonnalise (ENPREPARATION ``draft``, ENCOURS ``active``, ENPAUSE ``on-hold``, TERMINE
  ``completed``) and TDDUIEncounterEvenement (``period``, ``partOf`` the séjour); ``meta.lastUpdated`` carries the
  DUI's own modification dates (dateModification, statutProjetPersonnalise.dateStatut), in local time;
- ANS/Interop'Santé e-Prescription (``ans.fhir.fr.eprescription``): a prescription is its ``MedicationRequest``
  lines sharing ``groupIdentifier`` = the EPU (``urn:oid:1.2.250.1.215.500.1.1``) carried by the QR code; CI-SIS
  eP-MED-DM 2024.01 CDA document (EPU in ``documentationOf/serviceEvent/id``, lines in the section
  ``1.2.250.1.213.1.1.2.171``); the integration confirmation is the ``Task`` published by the test platform
  (``status`` completed / rejected, ``focus`` = EPU, ``for`` = INS, ``owner`` = FINESS);
- ANS *Cahier de liaison* (``ans.fhir.fr.cdl`` 3.0.0): CdLDocumentReference (``type`` from JDV_J23 / TRE_R234,
  extension ``cdl-ext-is-emergency``, visibility ``securityLabel`` JDV_J110 / TRE_A07, text attachment), actors
  FR Core Patient (INS), Practitioner (IDNPS), Organization (FINESS), PractitionerRole; CdLBundleCreationNote
  (transaction, actors POSTed with ``ifNoneExist``) or RESTful flows; search flux with ``patient.identifier``,
  ``type``, ``date`` and ``_include``;
- FR Core: INS identifier ``urn:oid:<OID of the INS authority>`` with ``use`` official.

The e-Prescription and e-Parcours calls use mutual TLS with the establishment's organisation certificate
``ESSMS-<FINESS>``. A refusal by a service is shown to the user as a failure (``failed``), never as a crash.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from lxml import etree

from example_dui import Outcome, Session

FHIR_JSON = "application/fhir+json"
PARIS = ZoneInfo("Europe/Paris")  # the producer's local time: the dates the indicators read
CS_V2_0203 = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
INS_TYPES = {
    "1.2.250.1.213.1.4.8": "INS-NIR",
    "1.2.250.1.213.1.4.9": "INS-NIA",
    "1.2.250.1.213.1.4.10": "INS-NIR-TEST",
    "1.2.250.1.213.1.4.11": "INS-NIR-DEMO",
}
IDNST = "urn:oid:1.2.250.1.71.4.2.2"  # idNat_Struct: "1" + FINESS
IDNPS = "urn:oid:1.2.250.1.71.4.2.1"  # idNat_PS: "8" + RPPS, or "3" + FINESS + "/" + local id
FINESS = "http://finess.esante.gouv.fr"
# A refusal or a transport error is shown to the user; these are the errors a protocol exchange may raise.
PROTOCOL_ERRORS = (httpx.HTTPError, OSError, ValueError, LookupError, TypeError, etree.XMLSyntaxError)


class ServiceFailure(Exception):
    """A service refused the request or answered something unusable: shown to the user."""


# == a small FHIR client ========================================================================================
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> dict[str, Any]:
        value = json.loads(self.body or b"{}")
        if not isinstance(value, dict):
            raise ServiceFailure("réponse FHIR qui n'est pas un objet JSON")
        return value

    def problem(self) -> str:
        """``HTTP <status>`` and the OperationOutcome diagnostics, for the user."""
        try:
            issues = [
                i.get("diagnostics") or i.get("code") for i in self.json().get("issue") or [] if isinstance(i, dict)
            ]
        except (ValueError, ServiceFailure):
            issues = []
        return f"HTTP {self.status}" + (" : " + " ; ".join(str(i) for i in issues if i) if issues else "")


@dataclass
class Fhir:
    """Calls one FHIR base URL with mutual TLS (``certificate``), JSON in and out."""

    session: Session
    base: str
    certificate: str | None = None
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        name = self.certificate if self.certificate in self.session.body.get("client_certificates", {}) else None
        self.http = httpx.Client(verify=self.session.ssl_context(name), timeout=30)

    def __enter__(self) -> Fhir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(
        self,
        method: str,
        path: str = "",
        *,
        params: list[tuple[str, str]] | None = None,
        resource: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        accept: str = FHIR_JSON,
    ) -> Reply:
        sent = {"Accept": accept, **(headers or {})}
        content = None
        if resource is not None:
            sent["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"
            content = json.dumps(resource, ensure_ascii=False).encode("utf-8")
        url = self.base.rstrip("/") + "/" + path.lstrip("/")
        response = self.http.request(method, url, params=params, content=content, headers=sent)
        return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content)


def _essms_client(session: Session, service: str, body: dict[str, Any]) -> Fhir:
    return Fhir(session, session.endpoint(service, "fhir"), f"ESSMS-{body['establishment']['finess']}")


def _ins_identifier(person: dict[str, Any]) -> dict[str, Any]:
    """FR Core INS identifier of a person."""
    return {
        "use": "official",
        "type": {"coding": [{"system": CS_V2_0203, "code": INS_TYPES.get(person["ins_oid"], "INS-NIR")}]},
        "system": f"urn:oid:{person['ins_oid']}",
        "value": person["ins"],
    }


def _guarded(
    what: str, handler: Callable[[Session, dict[str, Any]], Outcome]
) -> Callable[[Session, dict[str, Any]], Outcome]:
    """Protocol errors become a failure shown to the user."""

    def run(session: Session, body: dict[str, Any]) -> Outcome:
        try:
            return handler(session, body)
        except ServiceFailure as exc:
            return {"status": "failed", "detail": f"{what} : {exc}", "data": {}}
        except PROTOCOL_ERRORS as exc:
            return {"status": "failed", "detail": f"{what} impossible : {exc or type(exc).__name__}", "data": {}}

    return run


# == TDDUI export ===============================================================================================
TDDUI = "https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/"
LOCAL_SYSTEM = "https://identifiant-medicosocial-localusager.esante.gouv.fr"
SEJOUR_SYSTEM = "https://identifiant-medicosocial-sejour.esante.gouv.fr"
PLAN_SYSTEM = "https://identifiant-medicosocial-projetpersonnalise.esante.gouv.fr"
EVENT_SYSTEM = "https://identifiant-medicosocial-evenement.esante.gouv.fr"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
AT_HOME = {"SSIAD", "SAAD", "SPASAD", "SESSAD", "SAVS", "SAMSAH"}  # services at home: encounter class HH


def _local(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=PARIS)).astimezone(PARIS)


def _instant(moment: datetime) -> str:
    return moment.astimezone(PARIS).isoformat(timespec="seconds")


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=PARIS)


class TdduiBundle:
    """Builds one transaction Bundle: entries reference each other by their ``urn:uuid`` fullUrl."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(self, resource: dict[str, Any], profile: str, modified: datetime | None = None) -> str:
        resource["meta"] = {"profile": [TDDUI + profile], **({"lastUpdated": _instant(modified)} if modified else {})}
        full_url = f"urn:uuid:{uuid.uuid4()}"
        self.entries.append(
            {"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
        )
        return full_url


def _add_record(
    bundle: TdduiBundle, record: dict[str, Any], establishment: dict[str, Any], org: str, cutoff: datetime
) -> None:
    """The person's Patient, séjours, projets personnalisés and agenda events as they stand at ``cutoff``."""
    today = cutoff.date()
    stays = []
    for stay in record.get("stays") or []:
        admission = date.fromisoformat(stay["admission"])
        exit_day = date.fromisoformat(stay["exit"]) if stay.get("exit") else None
        if admission <= today:
            stays.append((stay, admission, exit_day if exit_day and exit_day <= today else None))
    if not stays:
        return  # not (yet) accompanied by the ESSMS at the export date
    person, finess = record["person"], establishment["finess"]
    local = f"3{finess}/{record['local_id']}"
    updates = [u for u in map(_local, record.get("updates") or []) if u <= cutoff]
    encounter_class = {"system": ACT_CODE, "code": "HH" if establishment.get("category") in AT_HOME else "IMP"}
    patient = bundle.add(
        {
            "resourceType": "Patient",
            "identifier": [
                _ins_identifier(person),
                {"type": {"coding": [{"system": V2_0203, "code": "PI"}]}, "system": LOCAL_SYSTEM, "value": local},
            ],
            "name": [{"use": "official", "family": person["family"], "given": person["given"].split()}],
            "gender": {"M": "male", "F": "female"}.get(person["sex"], "unknown"),
            "birthDate": person["birth_date"],
        },
        "tddui-patient-ins",
        max(updates) if updates else _noon(min(a for _, a, _ in stays)),
    )
    stay_urls: list[tuple[date, date | None, str]] = []
    for stay, admission, exit_day in stays:
        url = bundle.add(
            {
                "resourceType": "Encounter",
                "identifier": [{"system": SEJOUR_SYSTEM, "value": f"{local}-SEJ-{stay['id']}"}],
                "status": stay.get("status") or ("finished" if exit_day else "in-progress"),
                "class": encounter_class,
                "subject": {"reference": patient},
                "serviceProvider": {"reference": org},
                "period": {"start": admission.isoformat(), **({"end": exit_day.isoformat()} if exit_day else {})},
            },
            "tddui-encounter-sejour",
            _noon(exit_day or admission),
        )
        stay_urls.append((admission, exit_day, url))
    latest: dict[str, dict[str, Any]] = {}  # each projet personnalisé in its status at the export date
    for plan in record.get("plans") or []:
        when = _local(plan["status_date"])
        if when <= cutoff and (plan["id"] not in latest or when >= _local(latest[plan["id"]]["status_date"])):
            latest[plan["id"]] = plan
    for plan in latest.values():
        bundle.add(
            {
                "resourceType": "CarePlan",
                "identifier": [{"system": PLAN_SYSTEM, "value": f"{local}-PP-{plan['id']}"}],
                "status": plan["status"],
                "intent": "plan",
                "title": plan.get("title") or "Projet personnalisé",
                "subject": {"reference": patient},
            },
            "tddui-careplan-projet-personnalise",
            _local(plan["status_date"]),
        )
    for event in record.get("events") or []:
        modified, start, end = _local(event["modified"]), _local(event["start"]), _local(event["end"])
        if modified > cutoff:
            continue
        during = [u for a, e, u in stay_urls if a <= start.date() and (e is None or start.date() <= e)]
        bundle.add(
            {
                "resourceType": "Encounter",
                "identifier": [{"system": EVENT_SYSTEM, "value": f"{local}-EVN-{event['id']}"}],
                "status": event.get("status") or "finished",
                "class": encounter_class,
                "type": [{"text": event.get("label") or "Intervention"}],
                "subject": {"reference": patient},
                "serviceProvider": {"reference": org},
                "partOf": {"reference": (during or [stay_urls[-1][2]])[0]},
                "period": {"start": _instant(start), "end": _instant(end)},
            },
            "tddui-encounter-evenement",
            modified,
        )


def build_tddui_bundle(body: dict[str, Any]) -> dict[str, Any]:
    """The TDDUIBundle of the establishment's records as they stand at ``exported_at``."""
    establishment, cutoff = body["establishment"], _local(body["exported_at"])
    bundle = TdduiBundle()
    org = bundle.add(
        {
            "resourceType": "Organization",
            "identifier": [
                {
                    "use": "official",
                    "type": {"coding": [{"system": CS_V2_0203, "code": "IDNST"}]},
                    "system": IDNST,
                    "value": "1" + establishment["finess"],
                }
            ],
            "name": establishment["name"],
        },
        "tddui-organization",
    )
    for record in body.get("records") or []:
        _add_record(bundle, record, establishment, org, cutoff)
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [TDDUI + "tddui-bundle"]},
        "type": "transaction",
        "timestamp": _instant(cutoff),
        "entry": bundle.entries,
    }


def tddui_export(session: Session, body: dict[str, Any]) -> Outcome:
    """POST the TDDUIBundle to the national endpoint; a 4xx OperationOutcome is a failure."""
    bundle = build_tddui_bundle(body)
    certificate = f"ESSMS-{body['establishment']['finess']}"
    known = certificate in session.body.get("client_certificates", {})
    with httpx.Client(verify=session.ssl_context(certificate if known else None), timeout=60) as http:
        response = http.post(
            session.endpoint("tddui", "fhir"),
            content=json.dumps(bundle, ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": f"{FHIR_JSON}; charset=utf-8", "Accept": FHIR_JSON},
        )
    reply = Reply(response.status_code, dict(response.headers), response.content)
    count = len(bundle["entry"])
    if not reply.ok or reply.json().get("type") != "transaction-response":
        return {"status": "failed", "detail": f"export TDDUI refusé : {reply.problem()}", "data": {"entries": count}}
    return {"status": "done", "detail": f"export TDDUI accepté ({count} entrées)", "data": {"entries": count}}


# == e-Prescription import ======================================================================================
OID_EPU = "1.2.250.1.215.500.1.1"
EPU_SYSTEM = f"urn:oid:{OID_EPU}"
TASK_CODE = {
    "system": "https://socle-harness.test/fhir/CodeSystem/eprescription-task",
    "code": "integration",
    "display": "Intégration de l'ordonnance dans le DUI",
}
HL7 = {"h": "urn:hl7-org:v3"}
SECTION_PRESCRIPTION = "1.2.250.1.213.1.1.2.171"
# No DTD, no entities, no network: a document is data, never instructions to the parser.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True)


@dataclass
class Prescription:
    """What the DUI learnt of a prescription: its person's INS, whether cancelled, the lines to show."""

    ins: str | None
    cancelled: bool
    lines: list[str]


def _ins_of_patient(patient: dict[str, Any]) -> str | None:
    for identifier in patient.get("identifier") or []:
        if isinstance(identifier, dict) and str(identifier.get("system", "")).removeprefix("urn:oid:") in INS_TYPES:
            return identifier.get("value")
    return None


def fetch_lines(fhir: Fhir, epu: str) -> Prescription | None:
    """The prescription's MedicationRequest lines with their Medication and Patient (``None``: unknown EPU)."""
    reply = fhir.call(
        "GET",
        "MedicationRequest",
        params=[
            ("group-identifier", f"{EPU_SYSTEM}|{epu}"),
            ("_include", "MedicationRequest:medication"),
            ("_include", "MedicationRequest:subject"),
        ],
    )
    if not reply.ok:
        raise ServiceFailure(f"recherche de l'ordonnance refusée ({reply.problem()})")
    resources = [
        e["resource"]
        for e in reply.json().get("entry") or []
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]
    by_ref = {f"{r.get('resourceType')}/{r.get('id')}": r for r in resources}
    lines = [
        r
        for r in resources
        if r.get("resourceType") == "MedicationRequest" and (r.get("groupIdentifier") or {}).get("value") == epu
    ]
    if not lines:
        return None
    subjects = {(line.get("subject") or {}).get("reference") for line in lines}
    if len(subjects) != 1:
        raise ServiceFailure("lignes de prescription de plusieurs patients")
    subject = subjects.pop()
    patient = by_ref.get(subject)
    if patient is None and subject:  # not included: read it
        read = fhir.call("GET", subject)
        patient = read.json() if read.ok else {}
    shown = []
    for line in lines:
        medication = by_ref.get((line.get("medicationReference") or {}).get("reference"), {})
        name = (
            (medication.get("code") or {}).get("text")
            or (line.get("medicationCodeableConcept") or {}).get("text")
            or (line.get("medicationReference") or {}).get("display")
            or "médicament"
        )
        posology = " ; ".join(
            d["text"] for d in line.get("dosageInstruction") or [] if isinstance(d, dict) and d.get("text")
        )
        shown.append(f"{name} — {posology}" if posology else name)
    return Prescription(_ins_of_patient(patient or {}), all(line.get("status") == "cancelled" for line in lines), shown)


def fetch_document(fhir: Fhir, epu: str) -> Prescription | None:
    """The eP-MED-DM CDA document ``Binary/<EPU>`` (404: unknown, 410: cancelled)."""
    reply = fhir.call("GET", f"Binary/{epu}", accept="application/xml")
    if reply.status == 404:
        return None
    if reply.status == 410:
        return Prescription(None, True, [])
    if not reply.ok:
        raise ServiceFailure(f"récupération du document refusée ({reply.problem()})")
    root = etree.fromstring(reply.body, PARSER)
    if root.getroottree().docinfo.doctype or root.tag != "{urn:hl7-org:v3}ClinicalDocument":
        raise ServiceFailure("le document reçu n'est pas un document CDA")
    if epu not in root.xpath(f"h:documentationOf/h:serviceEvent/h:id[@root='{OID_EPU}']/@extension", namespaces=HL7):
        raise ServiceFailure(f"le document reçu ne porte pas l'identifiant {epu}")
    ins = next(
        (
            i.get("extension")
            for i in root.findall("h:recordTarget/h:patientRole/h:id", HL7)
            if i.get("root") in INS_TYPES
        ),
        None,
    )
    texts = {e.get("ID"): "".join(e.itertext()).strip() for e in root.iter() if isinstance(e.tag, str) and e.get("ID")}
    lines = []
    for sa in root.xpath(
        f"//h:section[h:templateId/@root='{SECTION_PRESCRIPTION}']/h:entry/h:substanceAdministration", namespaces=HL7
    ):
        code = sa.find("h:consumable/h:manufacturedProduct/h:manufacturedMaterial/h:code", HL7)
        name = (code.get("displayName") if code is not None else None) or sa.findtext(
            "h:consumable/h:manufacturedProduct/h:manufacturedMaterial/h:name", "médicament", HL7
        )
        reference = sa.find("h:text/h:reference", HL7)
        posology = texts.get((reference.get("value") or "").lstrip("#")) if reference is not None else None
        lines.append(f"{name} — {posology}" if posology else name)
    if not lines:
        raise ServiceFailure("document sans ligne de prescription")
    return Prescription(ins, False, lines)


def confirm(fhir: Fhir, body: dict[str, Any], epu: str, status: str, reason: str | None = None) -> Reply:
    """The integration ``Task``: ``completed`` (integrated) or ``rejected`` with the reason."""
    person, establishment = body["person"], body["establishment"]
    task: dict[str, Any] = {
        "resourceType": "Task",
        "status": status,
        "intent": "order",
        "code": {"coding": [TASK_CODE]},
        "focus": {"identifier": {"system": EPU_SYSTEM, "value": epu}},
        "for": {"identifier": {"system": f"urn:oid:{person['ins_oid']}", "value": person["ins"]}},
        "owner": {"identifier": {"system": FINESS, "value": establishment["finess"]}, "display": establishment["name"]},
        "authoredOn": datetime.now(PARIS).isoformat(timespec="seconds"),
    }
    if reason:
        task["statusReason"] = {"text": reason}
    return fhir.call("POST", "Task", resource=task)


def eprescription_import(session: Session, body: dict[str, Any]) -> Outcome:
    """Retrieve the scanned prescription, check it, integrate it and confirm the integration."""
    epu, person = body["identifier"].strip(), body["person"]
    data: dict[str, Any] = {"epu": epu, "lignes": []}
    with _essms_client(session, "eprescription", body) as fhir:
        found = fetch_document(fhir, epu) if body.get("document") else fetch_lines(fhir, epu)
        if found is None:
            return {
                "status": "failed",
                "detail": f"ordonnance {epu} introuvable : vérifiez le QR code scanné",
                "data": data,
            }
        if found.ins is not None and found.ins != person["ins"]:
            confirm(fhir, body, epu, "rejected", "ordonnance d'une autre personne (INS différent)")
            return {
                "status": "failed",
                "detail": f"l'ordonnance {epu} n'est pas celle de {person['given']} {person['family']} : "
                "intégration refusée",
                "data": {**data, "refus": "autre personne"},
            }
        if found.cancelled:
            confirm(fhir, body, epu, "rejected", "ordonnance annulée par le prescripteur")
            return {
                "status": "failed",
                "detail": f"l'ordonnance {epu} a été annulée par le prescripteur : intégration refusée",
                "data": {**data, "refus": "annulée"},
            }
        reply = confirm(fhir, body, epu, "completed")
        if not reply.ok:
            return {
                "status": "failed",
                "detail": f"intégration de l'ordonnance {epu} refusée par le service : {reply.problem()}",
                "data": data,
            }
    data.update(lignes=found.lines, task=reply.json().get("id"))
    return {
        "status": "done",
        "detail": f"ordonnance {epu} intégrée et confirmée ({len(found.lines)} ligne(s))",
        "data": data,
    }


# == e-Parcours cahier de liaison ===============================================================================
CDL = "https://interop.esante.gouv.fr/ig/fhir/cdl/StructureDefinition/"
EXT_URGENT = CDL + "cdl-ext-is-emergency"
TRE_R234 = "https://mos.esante.gouv.fr/NOS/TRE_R234-TypeNote/FHIR/TRE-R234-TypeNote"
TRE_A07 = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatusVisibiliteDocument/FHIR/TRE-A07-StatusVisibiliteDocument"
TRE_G15 = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
NOTE_TYPES = {
    "DEM-AVIS": "Demande d'avis",
    "GEN": "Note générale",
    "INST": "Instruction",
    "INTERV": "Note d'intervention",
    "OBS": "Note d'observation",
}
ROLE_SYSTEM = "https://exemple-dui.test/practitioner-role"
USER = {"family": "LEFEBVRE", "given": "Anne", "local_id": "EXEMPLE-IDE-01"}  # the DUI's user writing the notes


def _actors(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The note's subject (the person) and author (the user's PractitionerRole at the ESSMS), without ids."""
    person, establishment = body["person"], body["establishment"]
    idnps = f"3{establishment['finess']}/{USER['local_id']}"
    return {
        "Patient": {
            "resourceType": "Patient",
            "identifier": [_ins_identifier(person)],
            "name": [{"use": "official", "family": person["family"], "given": person["given"].split()}],
            "gender": {"M": "male", "F": "female"}.get(person["sex"], "unknown"),
            "birthDate": person["birth_date"],
        },
        "Practitioner": {
            "resourceType": "Practitioner",
            "identifier": [{"system": IDNPS, "value": idnps}],
            "name": [{"family": USER["family"], "given": [USER["given"]]}],
        },
        "Organization": {
            "resourceType": "Organization",
            "identifier": [{"system": FINESS, "value": establishment["finess"]}],
            "name": establishment["name"],
        },
        "PractitionerRole": {
            "resourceType": "PractitionerRole",
            "active": True,
            "identifier": [{"system": ROLE_SYSTEM, "value": f"{idnps}@{establishment['finess']}"}],
            "code": [{"coding": [{"system": TRE_G15, "code": "60", "display": "Infirmier"}]}],
        },
    }


def _search_key(resource: dict[str, Any]) -> str:
    identifier = resource["identifier"][0]
    return f"identifier={identifier['system']}|{identifier['value']}"


def _matches(searchset: Reply, resource_type: str) -> list[dict[str, Any]]:
    """The resources of a searchset that match the search (not the ``_include``d ones)."""
    return [
        e["resource"]
        for e in searchset.json().get("entry") or []
        if (e.get("search") or {}).get("mode", "match") == "match"
        and (e.get("resource") or {}).get("resourceType") == resource_type
    ]


def _attachment(text: str) -> list[dict[str, Any]]:
    return [
        {
            "attachment": {
                "contentType": "text/plain",
                "language": "fr",
                "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
            }
        }
    ]


def _note(body: dict[str, Any], subject: str, author: str) -> dict[str, Any]:
    """A CdLDocumentReference."""
    note: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "meta": {"profile": [CDL + "cdl-document-reference"]},
        "extension": [{"url": EXT_URGENT, "valueBoolean": bool(body.get("urgent"))}],
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "status": "current",
        "type": {
            "coding": [
                {"system": TRE_R234, "code": body["note_type"], "display": NOTE_TYPES.get(body["note_type"], "")}
            ]
        },
        "subject": {"reference": subject},
        "author": [{"reference": author}],
        "date": datetime.now(PARIS).isoformat(timespec="seconds"),
        "description": body["text"][:80],
        "content": _attachment(body["text"]),
    }
    if body.get("visibility"):
        note["securityLabel"] = [{"coding": [{"system": TRE_A07, "code": body["visibility"]}]}]
    return note


def _relative(location: str) -> tuple[str, str]:
    """``Type/id`` and the version of a ``Location`` (``.../Type/id/_history/n``)."""
    path, _, version = location.partition("/_history/")
    return "/".join(path.rstrip("/").split("/")[-2:]), version


def _post_transaction(fhir: Fhir, body: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """CdLBundleCreationNote: the note and its actors (conditional creates) in one transaction."""
    actors = _actors(body)
    urls = {name: f"urn:uuid:{uuid.uuid4()}" for name in (*actors, "DocumentReference")}
    actors["PractitionerRole"]["practitioner"] = {"reference": urls["Practitioner"]}
    actors["PractitionerRole"]["organization"] = {"reference": urls["Organization"]}
    note = _note(body, urls["Patient"], urls["PractitionerRole"])
    entries = [
        {
            "fullUrl": urls["DocumentReference"],
            "resource": note,
            "request": {"method": "POST", "url": "DocumentReference"},
        }
    ]
    entries += [
        {
            "fullUrl": urls[name],
            "resource": resource,
            "request": {"method": "POST", "url": name, "ifNoneExist": _search_key(resource)},
        }
        for name, resource in actors.items()
    ]
    reply = fhir.call(
        "POST",
        "",
        resource={
            "resourceType": "Bundle",
            "meta": {"profile": [CDL + "cdl-bundle-creation-note"]},
            "type": "transaction",
            "entry": entries,
        },
    )
    if not reply.ok:
        raise ServiceFailure(f"note refusée par la plateforme e-Parcours ({reply.problem()})")
    answers = reply.json().get("entry") or []
    if len(answers) != len(entries):
        raise ServiceFailure("réponse de transaction incomplète")
    # the transaction-response entries follow the request's order: fullUrl -> the resource the platform holds
    assigned = {
        sent["fullUrl"]: _relative(str((got.get("response") or {}).get("location", "")))
        for sent, got in zip(entries, answers, strict=True)
    }
    note["subject"] = {"reference": assigned[urls["Patient"]][0]}
    note["author"] = [{"reference": assigned[urls["PractitionerRole"]][0]}]
    reference, version = assigned[urls["DocumentReference"]]
    return note, reference, version


def _post_restful(fhir: Fhir, body: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """RESTful flows: find or create each actor, then create the note."""
    actors, refs = _actors(body), {}
    for name in ("Patient", "Practitioner", "Organization", "PractitionerRole"):
        resource = actors[name]
        if name == "PractitionerRole":
            resource.update(
                practitioner={"reference": refs["Practitioner"]}, organization={"reference": refs["Organization"]}
            )
        found = fhir.call("GET", name, params=[tuple(_search_key(resource).split("=", 1))])
        matches = _matches(found, name) if found.ok else []
        if matches:
            refs[name] = f"{name}/{matches[0]['id']}"
            continue
        created = fhir.call("POST", name, resource=resource)
        if not created.ok:
            raise ServiceFailure(f"création de l'acteur {name} refusée ({created.problem()})")
        refs[name] = f"{name}/{created.json()['id']}"
    note = _note(body, refs["Patient"], refs["PractitionerRole"])
    reply = fhir.call("POST", "DocumentReference", resource=note)
    if not reply.ok:
        raise ServiceFailure(f"note refusée par la plateforme e-Parcours ({reply.problem()})")
    reference, version = _relative(reply.headers.get("location", ""))
    return note, reference, version or reply.headers.get("etag", "").removeprefix("W/").strip('"')


def _notes_written(session: Session) -> dict[str, dict[str, Any]]:
    """The notes this DUI wrote: id -> {"resource": as last sent, "version": the version last seen}."""
    return session.state.setdefault("fhir_services", {}).setdefault("notes", {})


def cdl_note_post(session: Session, body: dict[str, Any]) -> Outcome:
    with _essms_client(session, "eparcours", body) as fhir:
        note, reference, version = (_post_transaction if body.get("transaction", True) else _post_restful)(fhir, body)
    if not reference.startswith("DocumentReference/"):
        raise ServiceFailure("la plateforme n'a pas indiqué la note créée")
    note_id = reference.split("/")[1]
    _notes_written(session)[note_id] = {"resource": {**note, "id": note_id}, "version": version or "1"}
    return {
        "status": "done",
        "detail": f"note {body['note_type']} écrite dans le cahier de liaison (note {note_id})",
        "data": {"note_id": note_id, "version": version or "1"},
    }


def cdl_note_update(session: Session, body: dict[str, Any]) -> Outcome:
    """PUT the new text with ``If-Match`` = the version this DUI last saw: never overwrite someone else's change."""
    note_id = body["note_id"]
    known = _notes_written(session).get(note_id)
    if known is None:
        return {"status": "failed", "detail": f"note {note_id} inconnue de ce DUI", "data": {"note_id": note_id}}
    resource = {
        **known["resource"],
        "description": body["text"][:80],
        "content": _attachment(body["text"]),
        "date": datetime.now(PARIS).isoformat(timespec="seconds"),
    }
    with _essms_client(session, "eparcours", body) as fhir:
        reply = fhir.call(
            "PUT", f"DocumentReference/{note_id}", resource=resource, headers={"If-Match": f'W/"{known["version"]}"'}
        )
    data = {"note_id": note_id, "version": known["version"]}
    if reply.status == 412:
        return {
            "status": "failed",
            "data": {**data, "conflit": True},
            "detail": "la note a été modifiée sur la plateforme depuis votre dernière lecture : relisez-la avant de la modifier",
        }
    if not reply.ok:
        return {"status": "failed", "detail": f"mise à jour de la note refusée : {reply.problem()}", "data": data}
    known["resource"] = resource
    known["version"] = reply.headers.get("etag", "").removeprefix("W/").strip('"') or known["version"]
    return {"status": "done", "detail": f"note {note_id} mise à jour", "data": data}


def _shown(note: dict[str, Any]) -> dict[str, Any]:
    """What the DUI shows of a note: id, type, urgency, text, version."""
    text = ""
    for content in note.get("content") or []:
        data = ((content or {}).get("attachment") or {}).get("data")
        if data:
            text = base64.b64decode(data).decode("utf-8", "replace")
            break
    coding = next(iter((note.get("type") or {}).get("coding") or [{}]), {})
    urgent = any(
        e.get("url") == EXT_URGENT and e.get("valueBoolean") is True
        for e in note.get("extension") or []
        if isinstance(e, dict)
    )
    return {
        "id": note.get("id"),
        "type": coding.get("code"),
        "urgent": urgent,
        "text": text,
        "date": note.get("date"),
        "version": (note.get("meta") or {}).get("versionId"),
    }


def cdl_notes_read(session: Session, body: dict[str, Any]) -> Outcome:
    """Search the person's notes by INS (type, date), then read each one; urgent notes are flagged."""
    person = body["person"]
    params = [("patient.identifier", f"urn:oid:{person['ins_oid']}|{person['ins']}")]
    if body.get("note_type"):
        params.append(("type", f"{TRE_R234}|{body['note_type']}"))
    if body.get("since"):
        params.append(("date", f"ge{body['since']}"))
    params += [("_include", "DocumentReference:subject"), ("_include", "DocumentReference:author")]
    with _essms_client(session, "eparcours", body) as fhir:
        found = fhir.call("GET", "DocumentReference", params=params)
        if not found.ok:
            raise ServiceFailure(f"recherche refusée ({found.problem()})")
        ids = [note["id"] for note in _matches(found, "DocumentReference")]
        notes = []
        for note_id in ids:
            read = fhir.call("GET", f"DocumentReference/{note_id}")
            if not read.ok:
                raise ServiceFailure(f"lecture de la note {note_id} impossible ({read.problem()})")
            notes.append(_shown(read.json()))
    urgent = [n["id"] for n in notes if n["urgent"]]
    detail = f"{len(notes)} note(s) dans le cahier de liaison" + (
        f" ; URGENT : {len(urgent)} note(s) à lire en priorité" if urgent else ""
    )
    return {"status": "done", "detail": detail, "data": {"notes": notes, "urgentes": urgent}}


ACTIONS = {
    "tddui-export": _guarded("export TDDUI", tddui_export),
    "eprescription-import": _guarded("import de l'ordonnance", eprescription_import),
    "cdl-note-post": _guarded("écriture de la note", cdl_note_post),
    "cdl-note-update": _guarded("mise à jour de la note", cdl_note_update),
    "cdl-notes-read": _guarded("consultation du cahier de liaison", cdl_notes_read),
}
