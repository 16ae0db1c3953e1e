"""e-Prescription actions of the reference DUI: import a prescription scanned from its QR code.

What a conformant DUI does (contract in :mod:`mock_services.eprescription`; FHIR R4 ``ans.fhir.fr.eprescription``,
CDA eP-MED-DM 2024.01):

1. retrieve the prescription by its identifier (EPU) — FHIR search of its ``MedicationRequest`` lines by
   ``group-identifier`` with the ``Medication``, ``Patient`` and ``Practitioner`` included, or the CDA document
   ``Binary/<EPU>``;
2. refuse it when it is unknown, cancelled (every line ``cancelled``, or HTTP 410 for the document) or for another
   person (the INS of the prescription differs from the INS of the person the professional works for), telling
   the service with a ``Task`` ``rejected`` and the user with a failure;
3. otherwise integrate the lines and confirm with a ``Task`` ``completed`` (``focus`` = EPU, ``for`` = INS,
   ``owner`` = FINESS): only then is the prescription imported.

Defects of the faulty DUI for this capability are declared here and checked with ``self.has(...)``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness.sut.base import ActionResult, ActionStatus, Defect, EprescriptionImport, SutEnvironment
from harness.sut.fhir_client import FhirClient, FhirReply, organisation_certificate

EPRESCRIPTION_DEFECTS = (
    Defect("sans-confirmation", "intègre l'ordonnance sans confirmer l'intégration au service e-Prescription"),
    Defect("ignore-patient", "intègre une ordonnance sans vérifier qu'elle est celle de la personne (INS)"),
    Defect(
        "ignore-ordonnance-inconnue",
        "présente un identifiant d'ordonnance inconnu comme une ordonnance importée (vide)",
    ),
    Defect("importe-ordonnance-annulee", "intègre une ordonnance annulée par le prescripteur"),
)

EPU_SYSTEM = "urn:oid:1.2.250.1.215.500.1.1"
TASK_CODE = {
    "system": "https://socle-harness.test/fhir/CodeSystem/eprescription-task",
    "code": "integration",
    "display": "Intégration de l'ordonnance dans le DUI",
}
FINESS_SYSTEM = "http://finess.esante.gouv.fr"
_INS_SYSTEMS = {f"urn:oid:1.2.250.1.213.1.4.{n}" for n in (8, 9, 10, 11)}


@dataclass
class Retrieved:
    """What the DUI learnt from the service about one prescription."""

    found: bool = False
    cancelled: bool = False
    ins: str | None = None
    ins_system: str | None = None
    lines: list[str] = field(default_factory=list)
    error: str | None = None


class EprescriptionActions:
    """Mixin of :class:`harness.sut.reference.ReferenceDUI`."""

    env: SutEnvironment | None

    def has(self, defect: str) -> bool:  # provided by ReferenceDUI
        raise NotImplementedError

    def tls_context(self, certificate: str | None = None) -> ssl.SSLContext:  # provided by ReferenceDUI
        raise NotImplementedError

    def import_eprescription(self, action: EprescriptionImport) -> ActionResult:
        assert self.env is not None  # noqa: S101
        base = self.env.endpoints.get("eprescription", {}).get("fhir")
        if not base:
            return ActionResult(ActionStatus.FAILED, "service e-Prescription non configuré (point d'accès FHIR absent)")
        epu = action.identifier.strip()
        with FhirClient(
            self.env,
            base,
            action.establishment.finess,
            tls=self.tls_context(organisation_certificate(self.env, action.establishment.finess)),
        ) as client:
            got = _fetch_document(client, epu) if action.document else _fetch_lines(client, epu)
            data: dict[str, Any] = {"epu": epu, "lignes": got.lines, "format": "cda" if action.document else "fhir"}
            if got.error is not None:
                return ActionResult(
                    ActionStatus.FAILED, f"récupération de l'ordonnance {epu} impossible : {got.error}", data
                )
            if not got.found:
                if self.has("ignore-ordonnance-inconnue"):
                    return ActionResult(ActionStatus.DONE, f"ordonnance {epu} importée (0 ligne)", data)
                return ActionResult(
                    ActionStatus.FAILED, f"ordonnance {epu} introuvable : vérifiez le QR code scanné", data
                )
            person = action.person
            if got.ins is not None and got.ins != person.ins.value and not self.has("ignore-patient"):
                _confirm(client, action, "rejected", f"ordonnance d'une autre personne (INS {got.ins})")
                return ActionResult(
                    ActionStatus.FAILED,
                    f"l'ordonnance {epu} n'est pas celle de {person.display_name} : intégration refusée",
                    {**data, "refus": "patient"},
                )
            if got.cancelled and not self.has("importe-ordonnance-annulee"):
                _confirm(client, action, "rejected", "ordonnance annulée par le prescripteur")
                return ActionResult(
                    ActionStatus.FAILED,
                    f"l'ordonnance {epu} a été annulée par le prescripteur : intégration refusée",
                    {**data, "refus": "annulee"},
                )
            if self.has("sans-confirmation"):
                return ActionResult(ActionStatus.DONE, f"ordonnance {epu} intégrée ({len(got.lines)} ligne(s))", data)
            reply = _confirm(client, action, "completed", None)
            if not reply.ok:
                return ActionResult(
                    ActionStatus.FAILED,
                    f"intégration de l'ordonnance {epu} refusée par le service : {reply.problem()}",
                    data,
                )
            data["task"] = reply.json().get("id")
            return ActionResult(
                ActionStatus.DONE, f"ordonnance {epu} intégrée et confirmée ({len(got.lines)} ligne(s))", data
            )


def _fetch_lines(client: FhirClient, epu: str) -> Retrieved:
    params = [
        ("group-identifier", f"{EPU_SYSTEM}|{epu}"),
        ("_include", "MedicationRequest:medication"),
        ("_include", "MedicationRequest:subject"),
        ("_include", "MedicationRequest:requester"),
    ]
    reply = client.request("GET", "MedicationRequest", params=params)
    if not reply.ok:
        return Retrieved(error=reply.problem())
    bundle = reply.json()
    if bundle.get("resourceType") != "Bundle":
        return Retrieved(error="réponse inattendue (Bundle searchset attendu)")
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    lines = [
        e["resource"]
        for e in entries
        if e["resource"].get("resourceType") == "MedicationRequest"
        and (e["resource"].get("groupIdentifier") or {}).get("value") == epu
    ]
    if not lines:
        return Retrieved(found=False)
    by_ref = {f"{e['resource'].get('resourceType')}/{e['resource'].get('id')}": e["resource"] for e in entries}
    out = Retrieved(found=True, cancelled=all(line.get("status") == "cancelled" for line in lines))
    subjects = {str((line.get("subject") or {}).get("reference")) for line in lines}
    patient = by_ref.get(subjects.pop()) if len(subjects) == 1 else None
    if patient is None and subjects:
        return Retrieved(error="lignes de prescription pour plusieurs patients")
    for identifier in (patient or {}).get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") in _INS_SYSTEMS:
            out.ins, out.ins_system = identifier.get("value"), identifier.get("system")
    for line in lines:
        medication = by_ref.get(str((line.get("medicationReference") or {}).get("reference")), {})
        name = (
            (medication.get("code") or {}).get("text")
            or (line.get("medicationCodeableConcept") or {}).get("text")
            or (line.get("medicationReference") or {}).get("display")
            or "médicament"
        )
        posology = " ; ".join(
            str(d.get("text")) for d in line.get("dosageInstruction") or [] if isinstance(d, dict) and d.get("text")
        )
        out.lines.append(f"{name} — {posology}" if posology else str(name))
    return out


def _fetch_document(client: FhirClient, epu: str) -> Retrieved:
    from harness.validators.eprescription import read_prescription_cda

    reply = client.request("GET", f"Binary/{epu}", accept="application/xml")
    if reply.status == 404:
        return Retrieved(found=False)
    if reply.status == 410:
        return Retrieved(found=True, cancelled=True)
    if not reply.ok:
        return Retrieved(error=reply.problem())
    document = read_prescription_cda(reply.body)
    if not document.ok:
        return Retrieved(error="document eP-MED-DM invalide : " + "; ".join(f.message for f in document.findings[:3]))
    if document.epu != epu:
        return Retrieved(error=f"le document porte l'identifiant {document.epu}, pas {epu}")
    lines = [f"{line.display or line.code or 'médicament'}" for line in document.lines]
    return Retrieved(
        found=True,
        ins=document.ins.value if document.ins else None,
        ins_system=f"urn:oid:{document.ins.oid}" if document.ins else None,
        lines=lines,
    )


def _confirm(client: FhirClient, action: EprescriptionImport, status: str, reason: str | None) -> FhirReply:
    """POST the integration Task (``completed``) or the refusal (``rejected``)."""
    task: dict[str, Any] = {
        "resourceType": "Task",
        "status": status,
        "intent": "order",
        "code": {"coding": [TASK_CODE]},
        "focus": {"identifier": {"system": EPU_SYSTEM, "value": action.identifier.strip()}},
        "for": {"identifier": action.person.ins.to_fhir_identifier()},
        "owner": {
            "identifier": {"system": FINESS_SYSTEM, "value": action.establishment.finess},
            "display": action.establishment.name,
        },
        "authoredOn": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if reason:
        task["statusReason"] = {"text": reason}
    return client.request("POST", "Task", resource=task)
