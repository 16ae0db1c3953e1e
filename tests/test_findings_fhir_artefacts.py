"""Which checks a FHIR artefact goes through in ``validate`` (harness/validators/fhir_artefacts.py): read from JSON
or FHIR XML (the simulators' wire functions), the R4B structure, then the French profile rules of the service the
resource belongs to (TDDUI Bundle, cahier de liaison, e-Prescription, FR Core), asserting the EXACT findings and
what the artefact was taken for.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.validators import Finding, Severity, cdl, eprescription, frcore, tddui
from harness.validators.fhir_artefacts import fhir_findings, read_resource

TDDUI = "https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/"
NOTE = {
    "resourceType": "DocumentReference",
    "status": "current",
    "content": [{"attachment": {"contentType": "text/plain"}}],
}


def short(findings: list[Finding]) -> list[tuple[str, Severity, str]]:
    return [(f.code, f.severity, f.location) for f in findings]


def judge(resource: dict[str, Any] | bytes, **options: int) -> tuple[list[tuple[str, Severity, str]], dict]:
    data = resource if isinstance(resource, bytes) else json.dumps(resource).encode()
    findings, detail = fhir_findings(data, **options)
    return short(findings), detail


@pytest.mark.parametrize(
    ("resource", "check", "profile"),
    [
        ({"resourceType": "Patient"}, frcore.check_patient, "FR Core Patient"),
        ({"resourceType": "Organization"}, frcore.check_organization, "FR Core Organization"),
        ({"resourceType": "Practitioner"}, frcore.check_practitioner, "FR Core Practitioner"),
        (
            {"resourceType": "Task", "status": "requested", "intent": "order"},
            eprescription.check_confirmation,
            "e-Prescription Task",
        ),
        (
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": "Patient/1"},
                "medicationCodeableConcept": {"text": "x"},
            },
            eprescription.check_medication_request,
            "FRMedicationRequest",
        ),
        (NOTE, cdl.check_note, "CdLDocumentReference"),
    ],
)
def test_each_resource_type_goes_through_its_profile_rules(resource: dict, check, profile: str) -> None:  # noqa: ANN001
    findings, detail = fhir_findings(json.dumps(resource).encode())
    assert detail == {"resourceType": resource["resourceType"], "profile": profile}
    assert findings == check(resource) and findings  # each of these minimal resources breaks a rule of its profile


def test_the_profile_findings_as_the_checks_give_them() -> None:
    assert judge({"resourceType": "Patient"})[0] == [
        ("FRCORE-INS-ABSENT", Severity.WARNING, "Patient.identifier"),
        ("FRCORE-IDENTIFIER-ABSENT", Severity.WARNING, "Patient.identifier"),
    ]
    assert judge({"resourceType": "Organization"})[0] == [
        ("FRCORE-FINESS-ABSENT", Severity.WARNING, "Organization.identifier")
    ]
    assert judge({"resourceType": "Practitioner"})[0] == [
        ("FRCORE-IDNPS-ABSENT", Severity.WARNING, "Practitioner.identifier")
    ]


def test_a_resource_of_no_french_profile_is_an_information() -> None:
    findings, detail = fhir_findings(b'{"resourceType": "Device"}')
    assert detail == {"resourceType": "Device"}
    assert [(f.code, f.severity, f.location, f.message) for f in findings] == [
        (
            "FHIR-PROFIL-INCONNU",
            Severity.INFO,
            "",
            "Device : structure R4 vérifiée, aucune règle de profil français connue pour ce type",
        )
    ]
    assert judge(b'<Device xmlns="http://hl7.org/fhir"/>') == judge(b'{"resourceType": "Device"}')


def test_a_structure_error_stops_before_the_profile_rules() -> None:
    assert judge({"resourceType": "Patient", "gender": 12}) == (
        [("FHIR-STRUCTURE", Severity.ERROR, "Patient.gender")],
        {"resourceType": "Patient"},
    )


def _transaction(*resources: dict, kind: str = "transaction") -> dict:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [{"resource": r, "request": {"method": "POST", "url": r["resourceType"]}} for r in resources],
    }


def test_a_transaction_of_notes_is_a_cahier_de_liaison_bundle() -> None:
    bundle = _transaction({"resourceType": "Patient"}, NOTE)
    findings, detail = fhir_findings(json.dumps(bundle).encode())
    assert detail == {"resourceType": "Bundle", "profile": "CdL Bundle"}
    assert findings == cdl.check_transaction(bundle)
    assert short(findings) == [
        ("FRCORE-INS-ABSENT", Severity.WARNING, "Bundle.entry[0].resource.identifier"),
        ("FRCORE-IDENTIFIER-ABSENT", Severity.WARNING, "Bundle.entry[0].resource.identifier"),
        ("CDL-TYPE-ABSENT", Severity.ERROR, "Bundle.entry[1].resource.type"),
        ("CDL-SUBJECT-ABSENT", Severity.ERROR, "Bundle.entry[1].resource.subject"),
        ("CDL-AUTHOR-ABSENT", Severity.ERROR, "Bundle.entry[1].resource.author"),
        ("CDL-CONTENT-VIDE", Severity.WARNING, "Bundle.entry[1].resource.content[0].attachment"),
    ]


@pytest.mark.parametrize(
    "bundle",
    [
        _transaction(NOTE, kind="collection"),
        _transaction({"resourceType": "Patient"}),
        {"resourceType": "Bundle", "type": "transaction"},
    ],
)
def test_other_bundles_are_structure_only(bundle: dict) -> None:
    assert judge(bundle) == ([], {"resourceType": "Bundle"})


def test_a_tddui_bundle_goes_to_the_tddui_validator() -> None:
    in_meta = {
        "resourceType": "Bundle",
        "type": "transaction",
        "meta": {"profile": [TDDUI + "TDDUIBundle"]},
        "entry": [],
    }
    assert judge(in_meta) == ([], {"resourceType": "Bundle", "profile": "TDDUI"})
    patient = {"resourceType": "Patient", "meta": {"profile": [TDDUI + "TDDUIPatient"]}}
    in_entry = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": patient, "request": {"method": "POST", "url": "Patient"}}],
    }
    data = json.dumps(in_entry).encode()
    assert fhir_findings(data)[0] == list(tddui.validate_bundle(data).findings)
    assert judge(in_entry) == (
        [("TDDUI-FULLURL", Severity.ERROR, "Bundle.entry[0]")],
        {"resourceType": "Bundle", "profile": "TDDUI"},
    )


@pytest.mark.parametrize(
    "bundle",
    [
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/Bundle", 12]},
        },
        {"resourceType": "Bundle", "type": "transaction", "meta": None, "entry": [None, {"resource": {"meta": None}}]},
        {"resourceType": "Bundle", "type": "transaction", "entry": ["x", {"request": {}}, {"resource": None}]},
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": {"resourceType": "Patient", "meta": {"profile": ["x" + TDDUI]}}}],
        },
    ],
)
def test_only_a_tddui_profile_makes_a_tddui_bundle(bundle: dict) -> None:
    assert judge(bundle)[1] == {"resourceType": "Bundle"}


def test_an_xml_tddui_bundle_is_judged_in_its_json_form() -> None:
    xml = (
        f'<Bundle xmlns="http://hl7.org/fhir"><meta><profile value="{TDDUI}TDDUIBundle"/></meta>'
        '<type value="transaction"/></Bundle>'
    ).encode()
    assert judge(b"\n " + xml) == ([], {"resourceType": "Bundle", "profile": "TDDUI"})


def test_the_size_bound_reaches_the_readers() -> None:
    xml = b'<Device xmlns="http://hl7.org/fhir"><id value="d"/></Device>'
    assert judge(xml, max_bytes=len(xml))[1] == {"resourceType": "Device"}
    findings, detail = judge(xml, max_bytes=len(xml) - 1)
    assert (detail, [c for c, _, _ in findings]) == ({}, ["XML-TOO-LARGE"])
    bundle = json.dumps(
        {"resourceType": "Bundle", "type": "transaction", "meta": {"profile": [TDDUI + "TDDUIBundle"]}}
    ).encode()
    assert fhir_findings(bundle, max_bytes=10)[0] == list(tddui.validate_bundle(bundle, max_bytes=10).findings)
    assert fhir_findings(bundle, max_bytes=10)[0] != []


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"", "FHIR-JSON"), (b'{"a": 1}', "FHIR-RESOURCETYPE"), (b"  <x/>", "FHIR-XML-NAMESPACE")],
)
def test_what_cannot_be_read_is_one_finding(data: bytes, code: str) -> None:
    resource, findings = read_resource(data, max_bytes=1000)
    assert resource is None and [(f.code, f.severity) for f in findings] == [(code, Severity.ERROR)]
    assert judge(data) == ([(code, Severity.ERROR, "")], {})


def test_read_resource_reads_json_and_xml_alike() -> None:
    assert read_resource(b' {"resourceType": "Device", "id": "d"}', max_bytes=100) == (
        {"resourceType": "Device", "id": "d"},
        [],
    )
    assert read_resource(b' <Device xmlns="http://hl7.org/fhir"><id value="d"/></Device>', max_bytes=100) == (
        {"resourceType": "Device", "id": "d"},
        [],
    )
