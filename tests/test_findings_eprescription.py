"""e-Prescription rules of :mod:`harness.validators.eprescription` judged on the EXACT findings (code, severity,
location) and on the literal identifiers of the specifications (``ans.fhir.fr.eprescription`` 1.1.0-ballot, CI-SIS
eP-MED-DM 2024.01, the CNAM EPU OID, the harness's Task contract) — not on the module's own constants.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from lxml import etree

from harness.core.config import package_root
from harness.fields.testdata import load_testdata
from harness.validators import Finding, Severity
from harness.validators import eprescription as EP
from mock_services.eprescription.prescriptions import cda_document, generate

E, W = Severity.ERROR, Severity.WARNING
Json = dict[str, Any]
EPU = "01E3P3E2Z8IQ9Y7JZB"
EPU_SYSTEM = "urn:oid:1.2.250.1.215.500.1.1"
TASK_SYSTEM = "https://socle-harness.test/fhir/CodeSystem/eprescription-task"
INS = "238047505612394"
INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.10"
FINESS = {"system": "http://finess.esante.gouv.fr", "value": "990000016"}
IG = "https://interop.esante.gouv.fr/ig/fhir/eprescription"


def triples(items: list[Finding]) -> list[tuple[str, Severity, str]]:
    return [(f.code, f.severity, f.location) for f in items]


def test_the_specification_identifiers() -> None:
    assert EP.PROFILE_MEDICATION_REQUEST == f"{IG}/StructureDefinition/fr-medicationrequest"
    assert EP.PROFILE_MEDICATION == f"{IG}/StructureDefinition/fr-medication-noncompound"
    assert EP.IMPLEMENTATION_GUIDE == f"{IG}/ImplementationGuide/ans.fhir.fr.eprescription"
    assert EP.TASK_STATUSES == {"completed": "intégrée", "rejected": "refusée par le DUI"}
    # eP-MED-DM 2024.01: FR-Code-a-barres section, FR-Traitement-prescrit entry
    assert (EP.SECTION_BARCODE, EP.ENTRY_TRAITEMENT) == ("1.2.250.1.213.1.1.2.223", "1.2.250.1.213.1.1.3.83")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (EPU, True),
        ("0123456789ABCDEFGH", True),
        ("0123456789ABCDEFG", False),
        ("0123456789ABCDEFGHI", False),
        ("0123456789abcdefgh", False),
        ("0123456789ABCDEFG-", False),
        (f"{EPU}\n", False),
        ("", False),
        (None, False),
    ],
)
def test_is_epu(value: str | None, expected: bool) -> None:
    assert EP.is_epu(value) is expected


# ---------------------------------------------------------------------------------------------------- lines


def line(**changes: Any) -> Json:
    base: Json = {
        "resourceType": "MedicationRequest",
        "authoredOn": "2025-02-03T09:00:00Z",
        "requester": {"reference": "Practitioner/p"},
        "subject": {"reference": "Patient/p"},
        "dosageInstruction": [{"text": "1 le matin"}],
        "medicationCodeableConcept": {"coding": [{"code": "3400893541364"}]},
        "groupIdentifier": {"system": EPU_SYSTEM, "value": EPU},
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"requester": {"reference": "#prescripteur"}}, []),
        ({"medicationCodeableConcept": None, "medicationReference": {"reference": "Medication/m"}}, []),
        ({"dosageInstruction": [None, {"text": "x"}]}, []),
        ({"authoredOn": ""}, [("EP-AUTHOREDON", "authoredOn")]),
        ({"requester": None}, [("EP-REQUESTER", "requester")]),
        ({"requester": {"reference": "Organization/o"}}, [("EP-REQUESTER", "requester")]),
        ({"requester": {"display": "Dr X"}}, [("EP-REQUESTER", "requester")]),
        ({"requester": ["Practitioner/p"]}, [("EP-REQUESTER", "requester")]),
        ({"subject": None}, [("EP-SUBJECT", "subject")]),
        ({"subject": {"reference": "Group/g"}}, [("EP-SUBJECT", "subject")]),
        ({"dosageInstruction": None}, [("EP-DOSAGE", "dosageInstruction")]),
        (
            {"dosageInstruction": [{"text": "x"}, {"patientInstruction": "x"}, {"patientInstruction": ""}]},
            [
                ("EP-PATIENTINSTRUCTION", "dosageInstruction[1].patientInstruction"),
                ("EP-PATIENTINSTRUCTION", "dosageInstruction[2].patientInstruction"),
            ],
        ),
        ({"medicationCodeableConcept": None}, [("EP-MEDICATION", "medication[x]")]),
        ({"groupIdentifier": None}, [("EP-GROUPIDENTIFIER", "groupIdentifier")]),
        ({"groupIdentifier": {"value": EPU}}, [("EP-GROUPIDENTIFIER", "groupIdentifier")]),
        (
            {"groupIdentifier": {"system": "urn:oid:1.2.250.1.215.500.1", "value": EPU}},
            [("EP-GROUPIDENTIFIER", "groupIdentifier")],
        ),
        ({"groupIdentifier": {"system": EPU_SYSTEM, "value": EPU[1:]}}, [("EP-GROUPIDENTIFIER", "groupIdentifier")]),
        (
            {
                "authoredOn": None,
                "requester": None,
                "subject": None,
                "dosageInstruction": [],
                "medicationCodeableConcept": None,
                "groupIdentifier": None,
            },
            [
                ("EP-AUTHOREDON", "authoredOn"),
                ("EP-REQUESTER", "requester"),
                ("EP-SUBJECT", "subject"),
                ("EP-DOSAGE", "dosageInstruction"),
                ("EP-MEDICATION", "medication[x]"),
                ("EP-GROUPIDENTIFIER", "groupIdentifier"),
            ],
        ),
    ],
)
def test_each_line_rule_exactly(changes: Json, expected: list[tuple[str, str]]) -> None:
    resource = line(**changes)
    where = "Bundle.entry[1].resource"
    assert triples(EP.check_medication_request(resource, where=where)) == [
        (c, E, f"{where}.{loc}") for c, loc in expected
    ]
    assert triples(EP.check_medication_request(resource)) == [(c, E, f"MedicationRequest.{loc}") for c, loc in expected]


def test_line_messages() -> None:
    got = EP.check_medication_request(line(groupIdentifier=None, dosageInstruction=[{"patientInstruction": "x"}]))
    assert [f.message for f in got] == [
        "patientInstruction interdit (0..0)",
        "groupIdentifier doit porter l'identifiant de l'ordonnance (urn:oid:1.2.250.1.215.500.1.1, 18 caractères)",
    ]


# ---------------------------------------------------------------------------------------------------- Task


def task(**changes: Any) -> Json:
    base: Json = {
        "resourceType": "Task",
        "status": "completed",
        "intent": "order",
        "code": {"coding": [{"system": TASK_SYSTEM, "code": "integration"}]},
        "focus": {"identifier": {"system": EPU_SYSTEM, "value": EPU}},
        "for": {"identifier": {"system": INS_SYSTEM, "value": INS}},
        "owner": {"identifier": FINESS},
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"code": {"coding": ["integration", {"system": TASK_SYSTEM, "code": "integration"}]}}, []),
        ({"status": "rejected", "statusReason": {"text": "doublon"}}, []),
        ({"owner": None, "requester": {"identifier": FINESS}}, []),
        ({"code": {"coding": [{"system": TASK_SYSTEM, "code": "other"}]}}, [("EP-TASK-CODE", E, "code")]),
        ({"code": {"coding": [{"system": "urn:x", "code": "integration"}]}}, [("EP-TASK-CODE", E, "code")]),
        ({"code": None}, [("EP-TASK-CODE", E, "code")]),
        ({"status": "in-progress"}, [("EP-TASK-STATUS", E, "status")]),
        ({"status": None}, [("EP-TASK-STATUS", E, "status")]),
        ({"intent": "plan"}, [("EP-TASK-INTENT", E, "intent")]),
        ({"focus": {"identifier": {"system": EPU_SYSTEM, "value": "short"}}}, [("EP-TASK-FOCUS", E, "focus")]),
        ({"focus": {"identifier": {"system": "urn:x", "value": EPU}}}, [("EP-TASK-FOCUS", E, "focus")]),
        ({"focus": None}, [("EP-TASK-FOCUS", E, "focus")]),
        ({"for": None}, [("EP-TASK-INS", E, "for")]),
        ({"for": {"identifier": {"system": "urn:oid:1.2.3", "value": INS}}}, [("EP-TASK-INS", E, "for")]),
        ({"for": {"identifier": {"system": INS_SYSTEM, "value": INS[:13] + "95"}}}, [("EP-TASK-INS-KEY", E, "for")]),
        ({"for": {"identifier": {"system": INS_SYSTEM, "value": "x"}}}, [("EP-TASK-INS-FORMAT", E, "for")]),
        ({"owner": None}, [("EP-TASK-FINESS", W, "owner")]),
        ({"owner": {"identifier": {"system": "urn:x", "value": "990000016"}}}, [("EP-TASK-FINESS", W, "owner")]),
        ({"status": "rejected"}, [("EP-TASK-REASON", W, "statusReason")]),
        ({"status": "rejected", "statusReason": {"text": ""}}, [("EP-TASK-REASON", W, "statusReason")]),
        (
            {"code": None, "status": "draft", "intent": None, "focus": None, "for": None, "owner": None},
            [
                ("EP-TASK-CODE", E, "code"),
                ("EP-TASK-STATUS", E, "status"),
                ("EP-TASK-INTENT", E, "intent"),
                ("EP-TASK-FOCUS", E, "focus"),
                ("EP-TASK-INS", E, "for"),
                ("EP-TASK-FINESS", W, "owner"),
            ],
        ),
    ],
)
def test_each_confirmation_rule_exactly(changes: Json, expected: list[tuple[str, Severity, str]]) -> None:
    resource = task(**changes)
    assert triples(EP.check_confirmation(resource, where="Bundle.entry[0].resource")) == [
        (c, s, f"Bundle.entry[0].resource.{loc}") for c, s, loc in expected
    ]
    assert triples(EP.check_confirmation(resource)) == [(c, s, f"Task.{loc}") for c, s, loc in expected]


def test_confirmation_messages() -> None:
    got = EP.check_confirmation(task(code=None, status="draft", focus=None))
    assert [f.message for f in got] == [
        f"Task.code doit être {TASK_SYSTEM}|integration",
        "Task.status 'draft' : completed (intégrée) ou rejected (refusée) attendu",
        "Task.focus.identifier doit porter l'identifiant de l'ordonnance (urn:oid:1.2.250.1.215.500.1.1, 18 caractères)",
    ]
    (key,) = EP.check_confirmation(task(**{"for": {"identifier": {"system": INS_SYSTEM, "value": INS[:13] + "95"}}}))
    assert key.message.startswith("INS invalide dans Task.for : ")


def test_read_confirmation() -> None:
    read = EP.read_confirmation(task())
    assert read == EP.Confirmation(EPU, INS, "1.2.250.1.213.1.4.10", "990000016", "completed", None)
    assert read.integrated is True
    refused = EP.read_confirmation(task(status="rejected", statusReason={"text": "doublon"}, owner=None))
    assert (refused.integrated, refused.reason, refused.finess) == (False, "doublon", None)
    assert EP.read_confirmation(task(statusReason={"text": 42})).reason is None
    owned = EP.read_confirmation(task(owner={"identifier": {"system": "urn:x"}}, requester={"identifier": FINESS}))
    assert owned.finess is None  # the owner's identifier, not a FINESS: the requester is not read
    assert EP.read_confirmation(task(owner={"display": "x"}, requester={"identifier": FINESS})).finess == "990000016"
    assert EP.read_confirmation(task(owner=None, requester={"identifier": FINESS})).finess == "990000016"
    other = EP.read_confirmation(task(focus={"identifier": {"system": "urn:x", "value": EPU}}, **{"for": None}))
    assert (other.epu, other.ins, other.ins_oid) == (None, None, None)
    foreign = EP.read_confirmation(task(**{"for": {"identifier": {"system": "urn:x", "value": INS}}}))
    assert (foreign.ins, foreign.ins_oid) == (None, None)


# ---------------------------------------------------------------------------------------------------- CDA

NS = {"hl7": "urn:hl7-org:v3"}


@pytest.fixture(scope="module")
def document() -> bytes:
    person = load_testdata(package_root() / "fixtures").person("P001")
    prescription = generate(person, rng=random.Random(7), authored=datetime(2025, 2, 3, 9, 0, tzinfo=UTC), lines=1)
    return cda_document(prescription)


def edited(data: bytes, *edits: tuple[str, Callable[[etree._Element], None]]) -> bytes:
    root = etree.fromstring(data)
    for xpath, edit in edits:
        found = root.xpath(xpath, namespaces=NS)
        assert found, xpath
        for element in found:
            edit(element)
    return etree.tostring(root)


def remove(element: etree._Element) -> None:
    element.getparent().remove(element)


def setter(name: str, value: str) -> Callable[[etree._Element], None]:
    return lambda element: element.set(name, value)


def deleter(name: str) -> Callable[[etree._Element], None]:
    return lambda element: element.attrib.pop(name)


def append(xml: str) -> Callable[[etree._Element], None]:
    return lambda element: element.append(etree.fromstring(f'<x xmlns="urn:hl7-org:v3">{xml}</x>')[0])


def duplicate(element: etree._Element) -> None:
    element.addnext(etree.fromstring(etree.tostring(element)))


DOC = "/hl7:ClinicalDocument"
TEMPLATE = f"{DOC}/hl7:templateId[@root='1.2.250.1.213.1.1.1.39']"
EPU_ID = f"{DOC}/hl7:documentationOf/hl7:serviceEvent/hl7:id"
AUTHOR_ID = f"{DOC}/hl7:author/hl7:assignedAuthor/hl7:id"
SECTION = "//hl7:section[hl7:templateId/@root='1.2.250.1.213.1.1.2.171']"
SA = f"{SECTION}/hl7:entry/hl7:substanceAdministration"
MATERIAL = f"{SA}/hl7:consumable/hl7:manufacturedProduct/hl7:manufacturedMaterial"


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        ((), []),
        (((TEMPLATE, setter("extension", "2023.01")),), [("EP-CDA-TEMPLATE", "ClinicalDocument.templateId")]),
        (((TEMPLATE, deleter("extension")),), [("EP-CDA-TEMPLATE", "ClinicalDocument.templateId")]),
        (((f"{DOC}/hl7:code", setter("code", "57828-6")),), [("EP-CDA-CODE", "ClinicalDocument.code")]),
        (
            ((EPU_ID, setter("extension", "TROP-COURT")),),
            [("EP-CDA-EPU", "ClinicalDocument.documentationOf.serviceEvent.id")],
        ),
        (
            ((EPU_ID, setter("root", "1.2.250.1.215.500.1")),),
            [("EP-CDA-EPU", "ClinicalDocument.documentationOf.serviceEvent.id")],
        ),
        (((EPU_ID, remove),), [("EP-CDA-EPU", "ClinicalDocument.documentationOf.serviceEvent.id")]),
        (((f"{SECTION}/hl7:templateId", setter("root", "1.2.3")),), [("EP-CDA-SECTION", "ClinicalDocument.component")]),
        (((f"{SECTION}/hl7:entry", remove),), [("EP-CDA-LIGNES", "ClinicalDocument.component")]),
        (
            ((f"{DOC}/hl7:code", setter("code", "1-1")), (f"{SECTION}/hl7:templateId", setter("root", "1.2.3"))),
            [("EP-CDA-CODE", "ClinicalDocument.code"), ("EP-CDA-SECTION", "ClinicalDocument.component")],
        ),
    ],
)
def test_each_document_rule_exactly(document: bytes, edits: tuple, expected: list[tuple[str, str]]) -> None:
    read = EP.read_prescription_cda(edited(document, *edits))
    assert triples(read.findings) == [(code, E, location) for code, location in expected]
    assert read.ok is (not expected)


def test_the_header_rules_apply_to_the_document(document: bytes) -> None:
    """The routing header (INS, code) and the French header rules (CI-SIS Structuration minimale) of the CDA."""
    ins = f"{DOC}/hl7:recordTarget/hl7:patientRole/hl7:id"
    read = EP.read_prescription_cda(
        edited(document, (ins, setter("extension", "238047505612395")), (f"{DOC}/hl7:realmCode", setter("code", "UV")))
    )
    assert triples(read.findings) == [("CDA-INS-KEY", E, "ClinicalDocument"), ("CDA-REALM", E, "ClinicalDocument")]
    assert read.ins is None and read.epu == EPU


def test_document_messages(document: bytes) -> None:
    read = EP.read_prescription_cda(
        edited(document, (f"{DOC}/hl7:code", setter("code", "1-1")), (EPU_ID, setter("extension", "court")))
    )
    assert [f.message for f in read.findings] == [
        "code du document '1-1' (attendu LOINC 57833-6)",
        "identifiant de prescription EPU (1.2.250.1.215.500.1.1) absent ou invalide : 'court'",
    ]
    read = EP.read_prescription_cda(
        edited(document, (TEMPLATE, deleter("extension")), (f"{SECTION}/hl7:templateId", remove))
    )
    assert [f.message for f in read.findings] == [
        "templateId 1.2.250.1.213.1.1.1.39 extension 2024.01 absent (eP-MED-DM)",
        "section FR-Prescription-medicaments (1.2.250.1.213.1.1.2.171) absente",
    ]


def test_document_is_read(document: bytes) -> None:
    read = EP.read_prescription_cda(document)
    assert (read.epu, read.ins.value if read.ins else None, read.author_rpps) == (EPU, INS, "96018159085")
    assert read.lines == (
        EP.CdaLine(
            "3400893541364", "1.2.250.1.213.2.3.3", "GLICLAZIDE ARW 30MG CPR LM", "Voie orale", "20250203", "20250304"
        ),
    )
    assert read.findings == [] and read.ok


@pytest.mark.parametrize(
    ("edits", "epu", "rpps"),
    [
        (((EPU_ID, duplicate), (f"{EPU_ID}[1]", setter("root", "1.2.3"))), EPU, "96018159085"),
        (((EPU_ID, duplicate), (f"{EPU_ID}[2]", setter("root", "1.2.3"))), EPU, "96018159085"),
        (
            ((EPU_ID, duplicate), (f"{EPU_ID}[2]", setter("extension", "0123456789ABCDEFGH"))),
            "0123456789ABCDEFGH",
            "96018159085",
        ),
        (((AUTHOR_ID, setter("extension", "10001234567")),), EPU, "10001234567"),
        (((AUTHOR_ID, deleter("extension")),), EPU, None),
        (((AUTHOR_ID, setter("root", "1.2.250.1.71.4.2.2")),), EPU, None),
        (((AUTHOR_ID, duplicate), (f"{AUTHOR_ID}[2]", setter("root", "1.2.3"))), EPU, "96018159085"),
    ],
)
def test_epu_and_prescriber_are_read_from_their_roots(
    document: bytes, edits: tuple, epu: str, rpps: str | None
) -> None:
    read = EP.read_prescription_cda(edited(document, *edits))
    assert (read.epu, read.author_rpps) == (epu, rpps)


GLICLAZIDE = (
    "3400893541364",
    "1.2.250.1.213.2.3.3",
    "GLICLAZIDE ARW 30MG CPR LM",
    "Voie orale",
    "20250203",
    "20250304",
)


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (
            (
                (f"{MATERIAL}/hl7:code", deleter("displayName")),
                (f"{MATERIAL}/hl7:name", lambda e: setattr(e, "text", " Nom ")),
            ),
            [(*GLICLAZIDE[:2], "Nom", *GLICLAZIDE[3:])],
        ),
        (
            ((f"{MATERIAL}/hl7:code", deleter("displayName")), (f"{MATERIAL}/hl7:name", remove)),
            [(*GLICLAZIDE[:2], None, *GLICLAZIDE[3:])],
        ),
        (
            (
                (f"{MATERIAL}/hl7:code", deleter("displayName")),
                (f"{MATERIAL}/hl7:name", lambda e: setattr(e, "text", None)),
            ),
            [(*GLICLAZIDE[:2], None, *GLICLAZIDE[3:])],
        ),
        (((f"{MATERIAL}/hl7:code", remove),), [(None, None, "GLICLAZIDE ARW 30MG CPR LM", *GLICLAZIDE[3:])]),
        (((f"{SA}/hl7:consumable", remove),), [(None, None, None, *GLICLAZIDE[3:])]),
        (
            ((f"{MATERIAL}/hl7:code", setter("displayName", "Gliclazide 30 mg")),),
            [(*GLICLAZIDE[:2], "Gliclazide 30 mg", *GLICLAZIDE[3:])],
        ),
        (((f"{SA}/hl7:routeCode", remove),), [(*GLICLAZIDE[:3], None, *GLICLAZIDE[4:])]),
        (((f"{SA}/hl7:effectiveTime/hl7:high", remove),), [(*GLICLAZIDE[:5], None)]),
        (((f"{SA}/hl7:effectiveTime", remove),), [(*GLICLAZIDE[:4], None, None)]),
        (((f"{SA}/hl7:effectiveTime/hl7:low", remove),), [(*GLICLAZIDE[:4], None, None)]),
        (
            (
                (
                    f"{SA}/hl7:effectiveTime",
                    lambda e: e.addprevious(
                        etree.fromstring('<effectiveTime xmlns="urn:hl7-org:v3"><high value="2030"/></effectiveTime>')
                    ),
                ),
            ),
            [GLICLAZIDE],
        ),
        (((f"{SECTION}/hl7:entry", duplicate),), [GLICLAZIDE, GLICLAZIDE]),
        (((f"{SECTION}/..", duplicate),), [GLICLAZIDE, GLICLAZIDE]),
    ],
)
def test_lines_are_read(document: bytes, edits: tuple, expected: list[tuple]) -> None:
    read = EP.read_prescription_cda(edited(document, *edits))
    assert [(x.code, x.code_system, x.display, x.route, x.start, x.end) for x in read.lines] == expected
    assert read.findings == []


def test_documents_that_are_not_prescriptions() -> None:
    assert triples(EP.read_prescription_cda(b"<oops").findings) == [("XML-MALFORMED", E, "ClinicalDocument")]
    other = EP.read_prescription_cda(b'<x xmlns="urn:x"/>')
    assert [f.code for f in other.findings] == ["CDA-NOT-CDA"] and other.lines == () and other.epu is None
