"""Every finding of the FHIR-side rule modules, one row per rejection path, asserting the EXACT findings (codes and
severities, in order): Cahier de liaison (``ans.fhir.fr.cdl`` 3.0.0), FR Core (``hl7.fhir.fr.core`` 2.x) and
e-Prescription (``ans.fhir.fr.eprescription`` 1.1.0-ballot, CI-SIS eP-MED-DM 2024.01, the harness's Task contract).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from lxml import etree

from harness.core.config import package_root
from harness.fields.testdata import load_testdata
from harness.validators import Finding, Severity
from harness.validators import cdl as C
from harness.validators import eprescription as EP
from harness.validators import frcore as F
from mock_services.eprescription.prescriptions import cda_document, fhir_resources, generate

E, W = Severity.ERROR, Severity.WARNING
INS = "238047505612394"
INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.10"
Json = dict[str, Any]


def findings(items: list[Finding]) -> list[tuple[str, Severity]]:
    return [(f.code, f.severity) for f in items]


def changed(base: Json, edit: Callable[[Json], None]) -> Json:
    resource = copy.deepcopy(base)
    edit(resource)
    return resource


def put(path: str, value: Any) -> Callable[[Json], None]:
    """Set (or, with ``...``, delete) ``a.b.0.c`` in a JSON resource."""

    def edit(resource: Json) -> None:
        *parents, last = path.split(".")
        node: Any = resource
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        key: Any = int(last) if isinstance(node, list) else last
        if value is ...:
            del node[key]
        else:
            node[key] = value

    return edit


def both(*edits: Callable[[Json], None]) -> Callable[[Json], None]:
    def edit(resource: Json) -> None:
        for one in edits:
            one(resource)

    return edit


# ---------------------------------------------------------------------------------------------------- CdL note

NOTE: Json = {
    "resourceType": "DocumentReference",
    "extension": [{"url": C.EXT_IS_EMERGENCY, "valueBoolean": False}],
    "status": "current",
    "type": {"coding": [{"system": C.TRE_R234, "code": "OBS"}]},
    "subject": {"reference": "Patient/p1"},
    "author": [{"reference": "PractitionerRole/r1"}],
    "securityLabel": [{"coding": [{"system": C.TRE_A07, "code": "INVISIBLE_PATIENT"}]}],
    "content": [{"attachment": {"contentType": "text/plain", "data": "Qm9ubmUgbnVpdA=="}}],
}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(lambda n: None, [], id="clean"),
        pytest.param(put("type.coding.0.system", C.TRE_R234_OID), [], id="type-oid-system"),
        pytest.param(put("subject", {"reference": "urn:uuid:pat"}), [], id="subject-urn-uuid"),
        pytest.param(put("subject", {"reference": "https://x/fhir/Patient/p1/_history/2"}), [], id="subject-absolute"),
        pytest.param(put("author", [{"reference": "urn:uuid:a", "type": "Device"}]), [], id="author-typed-uuid"),
        pytest.param(put("content.0.attachment", {"url": "https://x/doc"}), [], id="content-url"),
        pytest.param(put("status", "entered-in-error"), [], id="status-entered-in-error"),
        pytest.param(put("securityLabel.0.coding.0.system", C.TRE_A07_OID), [], id="label-oid-system"),
        pytest.param(put("type", ...), [("CDL-TYPE-ABSENT", E)], id="type-absent"),
        pytest.param(put("type.coding.0.code", "XXX"), [("CDL-TYPE-JDV", E)], id="type-code"),
        pytest.param(put("type.coding.0.system", "http://loinc.org"), [("CDL-TYPE-JDV", E)], id="type-system"),
        pytest.param(put("type.coding.0.system", C.JDV_J23_OID), [("CDL-TYPE-SYSTEM", W)], id="type-jdv-oid"),
        pytest.param(put("subject", ...), [("CDL-SUBJECT-ABSENT", E)], id="subject-absent"),
        pytest.param(put("subject", {"reference": "Group/g1"}), [("CDL-SUBJECT-TYPE", E)], id="subject-group"),
        pytest.param(put("subject", {"display": "x"}), [("CDL-SUBJECT-TYPE", E)], id="subject-unreadable"),
        pytest.param(put("author", []), [("CDL-AUTHOR-ABSENT", E)], id="author-absent"),
        pytest.param(put("author.0", {"reference": "Location/l1"}), [("CDL-AUTHOR-TYPE", E)], id="author-location"),
        pytest.param(put("author.0", "Practitioner/x"), [("CDL-AUTHOR-TYPE", E)], id="author-not-object"),
        pytest.param(put("docStatus", "final"), [("CDL-INTERDIT", E)], id="docStatus"),
        pytest.param(put("authenticator", {"reference": "Practitioner/x"}), [("CDL-INTERDIT", E)], id="authenticator"),
        pytest.param(put("custodian", {"reference": "Organization/x"}), [("CDL-INTERDIT", E)], id="custodian"),
        pytest.param(
            put("securityLabel", [NOTE["securityLabel"][0]] * 2), [("CDL-SECURITYLABEL-CARD", E)], id="two-labels"
        ),
        pytest.param(
            put("securityLabel.0.coding.0.system", "http://x"), [("CDL-SECURITYLABEL-JDV", E)], id="label-system"
        ),
        pytest.param(put("securityLabel.0.coding.0.code", "SECRET"), [("CDL-SECURITYLABEL-JDV", W)], id="label-code"),
        pytest.param(
            put("extension.0", {"url": C.EXT_IS_EMERGENCY, "valueString": "oui"}), [("CDL-URGENCE", E)], id="urgence"
        ),
        pytest.param(
            put("content.0.attachment", {"contentType": "text/plain"}), [("CDL-CONTENT-VIDE", W)], id="content-vide"
        ),
        pytest.param(put("content.0.attachment.contentType", ...), [("CDL-CONTENT-TYPE", W)], id="content-type"),
        pytest.param(put("status", "draft"), [("CDL-STATUS", E)], id="status"),
        pytest.param(put("status", ...), [("CDL-STATUS", E)], id="status-absent"),
    ],
)
def test_each_note_defect_gives_exactly_its_findings(edit: Callable[[Json], None], expected: list) -> None:
    got = C.check_note(changed(NOTE, edit), where="Bundle.entry[0].resource")
    assert findings(got) == expected, [str(f) for f in got]
    assert all(f.location.startswith("Bundle.entry[0].resource") for f in got)


def test_note_readers() -> None:
    assert C.note_type(NOTE) == "OBS" and C.visibility(NOTE) == "INVISIBLE_PATIENT" and C.is_emergency(NOTE) is False
    assert C.note_type({}) is None and C.visibility({}) is None and C.is_emergency({}) is None
    urgent = changed(NOTE, put("extension.0.valueBoolean", True))
    assert C.is_emergency(urgent) is True
    assert C.is_emergency(changed(NOTE, put("extension.0.valueBoolean", "true"))) is None


BUNDLE: Json = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {"fullUrl": "urn:uuid:note", "resource": NOTE, "request": {"method": "POST", "url": "DocumentReference"}},
        {
            "fullUrl": "urn:uuid:pat",
            "resource": {"resourceType": "Patient"},
            "request": {"method": "PUT", "url": "Patient/p"},
        },
        {"fullUrl": "urn:uuid:r", "resource": {"resourceType": "PractitionerRole"}, "request": {"method": "post"}},
    ],
}


@pytest.mark.parametrize(
    ("edit", "update", "expected"),
    [
        pytest.param(lambda b: None, None, [], id="clean-either"),
        pytest.param(lambda b: None, False, [], id="clean-creation"),
        pytest.param(put("entry.0.request.method", "PUT"), True, [], id="clean-update"),
        pytest.param(lambda b: None, True, [("CDL-BUNDLE-METHOD", E)], id="post-for-update"),
        pytest.param(put("entry.0.request.method", "PUT"), False, [("CDL-BUNDLE-METHOD", E)], id="put-for-creation"),
        pytest.param(put("entry.0.request.method", "DELETE"), None, [("CDL-BUNDLE-METHOD", E)], id="delete"),
        pytest.param(put("entry.0.request", ...), None, [("CDL-BUNDLE-METHOD", E)], id="no-request"),
        pytest.param(put("type", "batch"), None, [("CDL-BUNDLE-TYPE", E)], id="type"),
        pytest.param(put("entry", BUNDLE["entry"][1:]), None, [("CDL-BUNDLE-NOTE", E)], id="no-note"),
        pytest.param(
            put("entry", [BUNDLE["entry"][0], *BUNDLE["entry"]]),
            None,
            [("CDL-BUNDLE-NOTE", E)],
            id="two-notes",
        ),
        pytest.param(put("entry.1.request.method", "PATCH"), None, [("CDL-REQ-MET-1", E)], id="actor-patch"),
        pytest.param(
            put("entry.2.resource", {"resourceType": "Observation"}), None, [("CDL-BUNDLE-RESSOURCE", W)], id="other"
        ),
        pytest.param(put("entry.1.response", {"status": "201"}), None, [("CDL-BUNDLE-RESPONSE", E)], id="response"),
        pytest.param(put("entry.0.response", {"status": "201"}), None, [], id="note-response-not-judged"),
    ],
)
def test_each_bundle_defect_gives_exactly_its_findings(
    edit: Callable[[Json], None], update: bool | None, expected: list
) -> None:
    got = C.check_bundle(changed(BUNDLE, edit), update=update)
    assert findings(got) == expected, [str(f) for f in got]


# ---------------------------------------------------------------------------------------------------- FR Core

PATIENT: Json = {
    "resourceType": "Patient",
    "identifier": [{"use": "official", "system": INS_SYSTEM, "value": INS}],
    "name": [{"family": "MARTIN", "given": ["Jeanne"]}],
    "gender": "female",
    "birthDate": "1938-04-12",
}


@pytest.mark.parametrize(
    ("edit", "require_ins", "expected"),
    [
        pytest.param(lambda p: None, False, [], id="clean"),
        pytest.param(put("identifier.0.use", ...), False, [], id="use-absent"),
        pytest.param(put("gender", "unknown"), False, [], id="gender-unknown"),
        pytest.param(
            put("identifier", [{"system": "urn:oid:1.2.3", "value": "x"}]),
            False,
            [("FRCORE-INS-ABSENT", W)],
            id="no-ins",
        ),
        pytest.param(
            put("identifier", [{"system": "urn:oid:1.2.3", "value": "x"}]),
            True,
            [("FRCORE-INS-ABSENT", E)],
            id="no-ins-required",
        ),
        pytest.param(
            put("identifier", ...),
            False,
            [("FRCORE-INS-ABSENT", W), ("FRCORE-IDENTIFIER-ABSENT", W)],
            id="no-identifier",
        ),
        pytest.param(put("identifier.0.value", INS[:13] + "95"), False, [("FRCORE-INS-KEY", E)], id="ins-key"),
        pytest.param(put("identifier.0.value", INS[:14]), False, [("FRCORE-INS-FORMAT", E)], id="ins-format"),
        pytest.param(put("identifier.0.use", "usual"), False, [("FRCORE-INS-USE", W)], id="ins-use"),
        pytest.param(put("name.0.given", []), False, [("FRCORE-INS-TRAITS", W)], id="no-given"),
        pytest.param(put("name", ...), False, [("FRCORE-INS-TRAITS", W)], id="no-name"),
        pytest.param(put("birthDate", ...), False, [("FRCORE-INS-TRAITS", W)], id="no-birth-date"),
        pytest.param(put("gender", "F"), False, [("FRCORE-INS-TRAITS", W)], id="gender-code"),
        pytest.param(
            both(put("name", ...), put("birthDate", ...), put("gender", ...)),
            False,
            [("FRCORE-INS-TRAITS", W)] * 3,
            id="no-traits",
        ),
    ],
)
def test_each_patient_defect_gives_exactly_its_findings(
    edit: Callable[[Json], None], require_ins: bool, expected: list
) -> None:
    got = F.check_patient(changed(PATIENT, edit), require_ins=require_ins)
    assert findings(got) == expected, [str(f) for f in got]


def test_patient_ins_prefers_the_nir_and_skips_invalid_values() -> None:
    nia = {"system": "urn:oid:1.2.250.1.213.1.4.9", "value": INS}
    bad = {"system": INS_SYSTEM, "value": "x"}
    patient = {"identifier": [nia, bad, PATIENT["identifier"][0]]}
    found = F.patient_ins(patient)
    assert found is not None and found.oid == "1.2.250.1.213.1.4.10"
    assert F.patient_ins({"identifier": [nia]}).oid == "1.2.250.1.213.1.4.9"  # type: ignore[union-attr]
    assert F.patient_ins({"identifier": [bad]}) is None and F.patient_ins(None) is None and F.patient_ins("x") is None  # type: ignore[arg-type]


def test_organization_and_practitioner_identifiers() -> None:
    finess = {"identifier": [{"system": "http://finess.esante.gouv.fr", "value": "990000016"}]}
    idnst = {"identifier": [{"system": F.IDNST_SYSTEM, "value": "1990000016"}]}
    assert F.check_organization(finess) == [] and F.check_organization(idnst) == []
    assert F.organization_finess(idnst) == "990000016" and F.identifier_finess(finess["identifier"][0]) == "990000016"
    assert F.identifier_finess("990000016") is None
    for bad in (
        {},
        {"identifier": [{"system": F.IDNST_SYSTEM, "value": "2990000016"}]},
        {"identifier": [{"value": "990000016"}]},
    ):
        assert findings(F.check_organization(bad)) == [("FRCORE-FINESS-ABSENT", W)]
    rpps = {"identifier": [{"system": F.IDNPS_SYSTEM, "value": "810001234567"}]}
    local = {"identifier": [{"system": F.IDNPS_SYSTEM, "value": "3990000016/DUI-REF-001"}]}
    assert F.check_practitioner(rpps) == [] and F.check_practitioner(local) == []
    assert F.practitioner_idnps(local) == "3990000016/DUI-REF-001" and F.practitioner_idnps(None) is None
    assert findings(F.check_practitioner({"identifier": [{"system": F.IDNPS_SYSTEM, "value": ""}]})) == [
        ("FRCORE-IDNPS-ABSENT", W)
    ]
    assert findings(F.check_practitioner({})) == [("FRCORE-IDNPS-ABSENT", W)]


# ---------------------------------------------------------------------------------------------------- e-Prescription


@pytest.fixture(scope="module")
def prescription():  # noqa: ANN201 - a mock_services Prescription
    person = load_testdata(package_root() / "fixtures").person("P001")
    return generate(person, rng=random.Random(7), authored=datetime(2025, 2, 3, 9, 0, tzinfo=UTC), lines=1)


@pytest.fixture(scope="module")
def line(prescription) -> Json:  # noqa: ANN001
    [request] = [r for r in fhir_resources(prescription) if r["resourceType"] == "MedicationRequest"]
    return request


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(lambda r: None, [], id="clean"),
        pytest.param(put("requester", {"reference": "#prescripteur"}), [], id="contained-requester"),
        pytest.param(put("authoredOn", ...), [("EP-AUTHOREDON", E)], id="authoredOn"),
        pytest.param(put("requester", ...), [("EP-REQUESTER", E)], id="requester-absent"),
        pytest.param(put("requester", {"reference": "Organization/o"}), [("EP-REQUESTER", E)], id="requester-type"),
        pytest.param(put("requester", "Practitioner/x"), [("EP-REQUESTER", E)], id="requester-not-object"),
        pytest.param(put("subject", {"reference": "Group/g"}), [("EP-SUBJECT", E)], id="subject"),
        pytest.param(put("dosageInstruction", []), [("EP-DOSAGE", E)], id="dosage"),
        pytest.param(
            put("dosageInstruction.0.patientInstruction", "x"), [("EP-PATIENTINSTRUCTION", E)], id="patient-instruction"
        ),
        pytest.param(put("medicationReference", ...), [("EP-MEDICATION", E)], id="medication"),
        pytest.param(put("groupIdentifier.value", "ABC"), [("EP-GROUPIDENTIFIER", E)], id="epu-shape"),
        pytest.param(put("groupIdentifier.system", "urn:oid:1.2.3"), [("EP-GROUPIDENTIFIER", E)], id="epu-system"),
        pytest.param(put("groupIdentifier", ...), [("EP-GROUPIDENTIFIER", E)], id="epu-absent"),
    ],
)
def test_each_prescription_line_defect_gives_exactly_its_findings(
    line: Json, edit: Callable[[Json], None], expected: list
) -> None:
    assert "medicationReference" in line  # the base line references its Medication
    got = EP.check_medication_request(changed(line, edit), where="Bundle.entry[1].resource")
    assert findings(got) == expected, [str(f) for f in got]
    assert all(f.location.startswith("Bundle.entry[1].resource.") for f in got)


TASK: Json = {
    "resourceType": "Task",
    "status": "completed",
    "intent": "order",
    "code": {"coding": [{"system": EP.TASK_CODE_SYSTEM, "code": EP.TASK_CODE_INTEGRATION}]},
    "focus": {"identifier": {"system": EP.EPU_SYSTEM, "value": "ABCDEFGHIJ12345678"}},
    "for": {"identifier": {"system": INS_SYSTEM, "value": INS}},
    "owner": {"identifier": {"system": "http://finess.esante.gouv.fr", "value": "990000016"}},
}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(lambda t: None, [], id="clean"),
        pytest.param(
            both(put("status", "rejected"), put("statusReason", {"text": "doublon"})), [], id="rejected-with-reason"
        ),
        pytest.param(put("code.coding.0.code", "other"), [("EP-TASK-CODE", E)], id="code"),
        pytest.param(put("code", ...), [("EP-TASK-CODE", E)], id="code-absent"),
        pytest.param(put("status", "in-progress"), [("EP-TASK-STATUS", E)], id="status"),
        pytest.param(put("intent", "plan"), [("EP-TASK-INTENT", E)], id="intent"),
        pytest.param(put("focus.identifier.value", "short"), [("EP-TASK-FOCUS", E)], id="focus-shape"),
        pytest.param(put("focus", ...), [("EP-TASK-FOCUS", E)], id="focus-absent"),
        pytest.param(put("for.identifier.system", "urn:oid:1.2.3"), [("EP-TASK-INS", E)], id="ins-system"),
        pytest.param(put("for.identifier.value", INS[:13] + "95"), [("EP-TASK-INS-KEY", E)], id="ins-key"),
        pytest.param(put("for.identifier.value", "x"), [("EP-TASK-INS-FORMAT", E)], id="ins-format"),
        pytest.param(put("owner", ...), [("EP-TASK-FINESS", W)], id="finess"),
        pytest.param(put("status", "rejected"), [("EP-TASK-REASON", W)], id="rejected-without-reason"),
    ],
)
def test_each_confirmation_defect_gives_exactly_its_findings(edit: Callable[[Json], None], expected: list) -> None:
    got = EP.check_confirmation(changed(TASK, edit))
    assert findings(got) == expected, [str(f) for f in got]


def test_read_confirmation() -> None:
    read = EP.read_confirmation(TASK)
    assert (read.epu, read.ins, read.ins_oid, read.finess, read.status, read.reason) == (
        "ABCDEFGHIJ12345678", INS, "1.2.250.1.213.1.4.10", "990000016", "completed", None,
    )  # fmt: skip
    assert read.integrated
    via_requester = changed(TASK, both(put("owner", ...), put("requester", TASK["owner"]), put("status", "rejected")))
    read = EP.read_confirmation(changed(via_requester, put("statusReason", {"text": 42})))
    assert read.finess == "990000016" and not read.integrated and read.reason is None
    assert EP.read_confirmation(changed(TASK, put("focus.identifier.system", "x"))).epu is None
    assert EP.is_epu("ABCDEFGHIJ12345678") and not EP.is_epu("abcdefghij12345678") and not EP.is_epu(None)


HL7 = {"hl7": "urn:hl7-org:v3"}


def cda_edit(xpath: str, edit: Callable[[etree._Element], None]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        root = etree.fromstring(data)
        found = root.xpath(xpath, namespaces=HL7)
        assert found, xpath
        for element in found:
            edit(element)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    return apply


def remove(element: etree._Element) -> None:
    element.getparent().remove(element)


def setter(name: str, value: str) -> Callable[[etree._Element], None]:
    return lambda element: element.set(name, value)


EPU_ID = "/hl7:ClinicalDocument/hl7:documentationOf/hl7:serviceEvent/hl7:id[@root='1.2.250.1.215.500.1.1']"
SECTION = "//hl7:section[hl7:templateId/@root='1.2.250.1.213.1.1.2.171']"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(lambda d: d, [], id="clean"),
        pytest.param(
            cda_edit(
                "/hl7:ClinicalDocument/hl7:templateId[@root='1.2.250.1.213.1.1.1.39']", setter("extension", "2023.01")
            ),
            [("EP-CDA-TEMPLATE", E)],
            id="template-version",
        ),
        pytest.param(
            cda_edit("/hl7:ClinicalDocument/hl7:code", setter("code", "57828-6")), [("EP-CDA-CODE", E)], id="code"
        ),
        pytest.param(cda_edit(EPU_ID, setter("extension", "TROP-COURT")), [("EP-CDA-EPU", E)], id="epu-shape"),
        pytest.param(cda_edit(EPU_ID, remove), [("EP-CDA-EPU", E)], id="epu-absent"),
        pytest.param(
            cda_edit(f"{SECTION}/hl7:templateId", setter("root", "1.2.3")), [("EP-CDA-SECTION", E)], id="section"
        ),
        pytest.param(cda_edit(f"{SECTION}/hl7:entry", remove), [("EP-CDA-LIGNES", E)], id="no-lines"),
    ],
)
def test_each_prescription_document_defect_gives_exactly_its_findings(
    prescription,
    edit: Callable[[bytes], bytes],
    expected: list,  # noqa: ANN001
) -> None:
    document = EP.read_prescription_cda(edit(cda_document(prescription)))
    assert findings(document.findings) == expected, [str(f) for f in document.findings]
    assert document.ok is (not expected)


def test_prescription_document_is_read(prescription) -> None:  # noqa: ANN001
    document = EP.read_prescription_cda(cda_document(prescription))
    assert document.epu == prescription.epu and document.ins is not None and document.ins.value == INS
    assert document.author_rpps == prescription.prescriber.rpps
    [read] = document.lines
    assert read.code and read.display and read.start
    assert findings(EP.read_prescription_cda(b"<oops").findings) == [("XML-MALFORMED", E)]
    assert findings(EP.read_prescription_cda(b'<x xmlns="urn:x"/>').findings) == [("CDA-NOT-CDA", E)]
