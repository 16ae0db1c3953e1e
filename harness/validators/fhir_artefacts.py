"""FHIR R4 artefacts checked as the FHIR simulators check them: the R4B structure (``harness.fhir.model``), then
the French profile rules of the service the resource belongs to — the same functions the simulators' hooks call:

- TDDUI transaction Bundle (profiles under ``interop.esante.gouv.fr/ig/fhir/tddui``):
  :func:`harness.validators.tddui.validate_bundle` (ANS « Transfert de données DUI »);
- cahier de liaison (``ans.fhir.fr.cdl`` 3.0.0): :func:`harness.validators.cdl.check_note` for a
  ``DocumentReference``, :func:`harness.validators.cdl.check_transaction` (the Bundle, each entry, the references
  the transaction cannot resolve) for a transaction carrying notes;
- e-Prescription: :func:`harness.validators.eprescription.check_confirmation` (the integration ``Task``),
  :func:`harness.validators.eprescription.check_medication_request` (FRMedicationRequest);
- FR Core: :mod:`harness.validators.frcore` for ``Patient`` (INS), ``Organization`` (FINESS), ``Practitioner`` (RPPS).
"""

from __future__ import annotations

import json
from typing import Any

from harness.fhir.model import structure_findings
from harness.fhir.outcome import FhirError
from harness.fhir.wire import parse_json, parse_xml_resource
from harness.validators import Finding, Severity, cdl, eprescription, frcore, tddui


def read_resource(data: bytes, *, max_bytes: int) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The resource as a JSON object (from JSON or FHIR XML), read by the FHIR simulators' own wire functions
    (:func:`harness.fhir.wire.parse_json`, :func:`~harness.fhir.wire.parse_xml_resource`: empty body, invalid
    JSON, nesting beyond ``MAX_JSON_DEPTH``, missing ``resourceType``), or the findings that say why it is
    unreadable."""
    try:
        if data.lstrip()[:1] == b"<":
            return parse_xml_resource(data, max_bytes=max_bytes), []
        return parse_json(data), []
    except FhirError as exc:
        return None, [Finding(exc.error_code, exc.message)]


def _is_tddui(bundle: dict[str, Any]) -> bool:
    profiles = list((bundle.get("meta") or {}).get("profile") or [])
    for entry in bundle.get("entry") or []:
        if isinstance(entry, dict):
            profiles.extend(((entry.get("resource") or {}).get("meta") or {}).get("profile") or [])
    return any(isinstance(p, str) and p.startswith(tddui.PROFILE_BASE) for p in profiles)


def fhir_findings(data: bytes, *, max_bytes: int = tddui.MAX_BYTES) -> tuple[list[Finding], dict]:
    """Structure and profile findings of one FHIR artefact, and what it was taken for."""
    resource, unreadable = read_resource(data, max_bytes=max_bytes)
    if resource is None:
        return unreadable, {}
    resource_type = resource["resourceType"]
    if resource_type == "Bundle" and _is_tddui(resource):
        # the JSON exactly as given (TDDUI reads bytes); an XML Bundle goes in its JSON form
        payload = json.dumps(resource).encode() if data.lstrip()[:1] == b"<" else data
        report = tddui.validate_bundle(payload, max_bytes=max_bytes)
        return list(report.findings), {"resourceType": resource_type, "profile": "TDDUI"}
    findings = structure_findings(resource)
    if findings:
        return findings, {"resourceType": resource_type}
    rules = {
        "DocumentReference": (cdl.check_note, "CdLDocumentReference"),
        "Task": (eprescription.check_confirmation, "e-Prescription Task"),
        "MedicationRequest": (eprescription.check_medication_request, "FRMedicationRequest"),
        "Patient": (frcore.check_patient, "FR Core Patient"),
        "Organization": (frcore.check_organization, "FR Core Organization"),
        "Practitioner": (frcore.check_practitioner, "FR Core Practitioner"),
    }
    if resource_type == "Bundle":
        entries = [e for e in resource.get("entry") or [] if isinstance(e, dict)]
        if resource.get("type") == "transaction" and any(
            (e.get("resource") or {}).get("resourceType") == "DocumentReference" for e in entries
        ):
            return cdl.check_transaction(resource), {"resourceType": resource_type, "profile": "CdL Bundle"}
        return [], {"resourceType": resource_type}
    if resource_type in rules:
        check, profile = rules[resource_type]
        return check(resource), {"resourceType": resource_type, "profile": profile}
    return [
        Finding(
            "FHIR-PROFIL-INCONNU",
            f"{resource_type} : structure R4 vérifiée, aucune règle de profil français connue pour ce type",
            Severity.INFO,
        )
    ], {"resourceType": resource_type}
