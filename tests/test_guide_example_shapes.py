"""The shapes of the ANS guides' own published examples (issue 21, item 13): judged for their real defects only.

The examples themselves are not committed (never copy files fetched from elsewhere); these Bundles are written
here with our own values in the same shape, the one the guides publish:

- TDDUI (``ansforge/IG-fhir-medicosocial-transfert-donnees-dui``, ``ExampleTDDUIBundle`` and
  ``tddui-pp-pa-bundle-example``): ``request.url`` set to the profile name of each entry (``TDDUIPatientINS``,
  ``TDDUIGoalObjectif``, ``TDDUITaskTransportUsager``, ``TDDUIServiceRequestBesoin``…), absolute ``fullUrl``
  under a test server, relative references between entries. Tolerated with one ``TDDUI-URL-PROFIL`` warning per
  entry; any error is a defect of the harness.
- Cahier de liaison (``ansforge/IG-fhir-cahier-de-liaison``, ``cdl-bundle-creation-note``): ``urn:uuid`` fullUrls,
  ``request.url`` = ``Type/<uuid>`` on a POST, references written ``Patient/<uuid>`` (they do not reach the POSTed
  entries: FHIR R4 §3.1.0.11.2), and an INS whose check key is wrong. Those two defects are refused, by
  ``validate`` and by the e-Parcours simulator; once corrected, the same Bundle is accepted.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fhir_access import essms, presenting
from starlette.testclient import TestClient

from harness.core.journal import SQLiteJournal
from harness.fields.testdata import load_testdata
from harness.host.simulator import FaultBoard, RunState, SimulatorContext
from harness.validators import Severity
from harness.validators import cdl as C
from harness.validators.artefacts import validate_artefact
from harness.validators.tddui import profile_name_type, validate_bundle
from mock_services.eparcours import EparcoursSimulator
from tests.test_tddui import export

TDDUI_SD = "https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/"
GOOD_INS = "238047505612394"
WRONG_KEY_INS = "238047505612395"  # the published CdL example's INS has a wrong key too (44 where 12 is due)
JSON = {"content-type": "application/fhir+json"}
FINESS = "990000016"  # the establishment the test certificate presents, author of the notes
REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------------ TDDUI


def test_a_profile_name_stands_for_its_resource_type() -> None:
    assert [
        profile_name_type(n)
        for n in (
            "TDDUIPatientINS",
            "TDDUITaskTransportUsager",
            "TDDUIPractitionerRole",
            "TDDUIPractitioner",
            "TDDUIServiceRequestBesoinDemandeOrientation",
            "TDDUIGoalAttente",
            "TDDUIFoo",
            "Patient",
            "",
        )
    ] == ["Patient", "Task", "PractitionerRole", "Practitioner", "ServiceRequest", "Goal", None, None, None]


def _guide_shaped_tddui_bundle() -> dict[str, Any]:
    """The reference DUI's export with profile names in request.url, plus the other kinds of entry the guide's
    PA example carries, each with its own profile name and an absolute fullUrl under a test server."""
    bundle = export(profile_in_url=True)
    patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    subject = {"reference": patient["fullUrl"]}
    extra = [
        (
            "Goal",
            "tddui-goal-objectif",
            "TDDUIGoalObjectif",
            {"lifecycleStatus": "active", "description": {"text": "Marcher seule"}, "subject": subject},
        ),
        (
            "Goal",
            "tddui-goal-attente",
            "TDDUIGoalAttente",
            {"lifecycleStatus": "proposed", "description": {"text": "Rester au village"}, "subject": subject},
        ),
        ("Task", "tddui-task-action", "TDDUITaskAction", {"status": "requested", "intent": "plan", "for": subject}),
        (
            "Task",
            "tddui-task-transport-usager",
            "TDDUITaskTransportUsager",
            {"status": "requested", "intent": "plan", "for": subject},
        ),
        (
            "ServiceRequest",
            "tddui-service-request-besoin",
            "TDDUIServiceRequestBesoin",
            {"status": "active", "intent": "plan", "subject": subject},
        ),
        (
            "QuestionnaireResponse",
            "tddui-questionnaire-response",
            "TDDUIQuestionnaireResponse",
            {"status": "completed", "subject": subject},
        ),
        (
            "DocumentReference",
            "tddui-document-reference",
            "TDDUIDocumentReference",
            {"status": "current", "subject": subject, "content": [{"attachment": {"contentType": "text/plain"}}]},
        ),
        ("PractitionerRole", "tddui-practitioner-role", "TDDUIPractitionerRole", {"active": True}),
    ]
    for index, (rtype, profile, url, body) in enumerate(extra):
        resource = {"resourceType": rtype, "id": f"ex{index}", "meta": {"profile": [TDDUI_SD + profile]}, **body}
        bundle["entry"].append(
            {
                "fullUrl": f"https://serveur-test.example.fr/fhir/{rtype}/ex{index}",
                "resource": resource,
                "request": {"method": "POST", "url": url},
            }
        )
    return bundle


def test_the_guides_request_url_forms_are_tolerated_with_one_warning_each() -> None:
    bundle = _guide_shaped_tddui_bundle()
    report = validate_bundle(json.dumps(bundle).encode())
    assert [(f.code, f.severity, f.location) for f in report.findings] == [
        ("TDDUI-URL-PROFIL", Severity.WARNING, f"Bundle.entry[{i}].request.url") for i in range(len(bundle["entry"]))
    ]


@pytest.mark.parametrize(
    ("index", "url"),
    [(-1, "TDDUIPractitioner"), (-2, "TDDUIDocument"), (0, "TDDUIPatient"), (-3, "TDDUITaskAction")],
)
def test_a_profile_name_of_another_type_is_still_refused(index: int, url: str) -> None:
    bundle = _guide_shaped_tddui_bundle()
    bundle["entry"][index]["request"]["url"] = url
    report = validate_bundle(json.dumps(bundle).encode())
    where = f"Bundle.entry[{len(bundle['entry']) + index if index < 0 else index}].request.url"
    assert [(f.code, f.location) for f in report.errors] == [("TDDUI-URL", where)]


# ------------------------------------------------------------------------------------------ cahier de liaison
PAT, PR, ROLE, NOTE = (
    "0b5e1f9a-5c11-4f0e-9a51-1d2b7c3a9e01",
    "5d3c2b1a-0f9e-4d8c-8b7a-6a5b4c3d2e02",
    "9e8d7c6b-5a4f-4e3d-9c2b-1a0f9e8d7c03",
    "1f2e3d4c-5b6a-4798-8a6b-5c4d3e2f1a04",
)


def _guide_shaped_note_bundle(*, ins: str, by_full_url: bool) -> dict[str, Any]:
    """A creation Bundle in the shape of the guide's ``cdl-bundle-creation-note``; ``by_full_url`` writes the
    references as the fullUrls (the correction) instead of ``Type/<uuid>`` (the example's form)."""

    def ref(rtype: str, uid: str) -> dict[str, str]:
        return {"reference": f"urn:uuid:{uid}" if by_full_url else f"{rtype}/{uid}"}

    resources = [
        {
            "resourceType": "DocumentReference",
            "id": NOTE,
            "meta": {"profile": [C.PROFILE_DOCUMENT_REFERENCE]},
            "status": "current",
            "type": {"coding": [{"system": C.TRE_R234, "code": "DEM-AVIS", "display": "Demande d'avis"}]},
            "subject": ref("Patient", PAT),
            "date": "2025-03-04T08:30:00+01:00",
            "author": [ref("Practitioner", PR), ref("PractitionerRole", ROLE)],
            "content": [{"attachment": {"contentType": "text/plain", "language": "fr", "data": "Qm9ubmUgbnVpdA=="}}],
        },
        {
            "resourceType": "PractitionerRole",
            "id": ROLE,
            "active": True,
            "code": [
                {
                    "coding": [
                        {
                            "system": "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante",
                            "code": "60",
                        }
                    ]
                }
            ],
            "practitioner": ref("Practitioner", PR),
        },
        {"resourceType": "Practitioner", "id": PR, "name": [{"prefix": ["MME"], "given": ["Lucie"], "family": "Roy"}]},
        {
            "resourceType": "Patient",
            "id": PAT,
            "identifier": [{"use": "official", "system": "urn:oid:1.2.250.1.213.1.4.8", "value": ins}],
            "name": [{"use": "official", "family": "MARTIN", "given": ["Jeanne"]}],
            "gender": "female",
            "birthDate": "1938-04-12",
        },
    ]
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [C.PROFILE_BUNDLE_CREATION]},
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{r['id']}",
                "resource": r,
                "request": {"method": "POST", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


IDNPS_WARNING = ("FRCORE-IDNPS-ABSENT", "warning", "Bundle.entry[2].resource.identifier")
EXAMPLE_REFERENCES = [
    ("FHIR-REFERENCE", "error", "Bundle.entry[0].resource.subject"),
    ("FHIR-REFERENCE", "error", "Bundle.entry[0].resource.author[0]"),
    ("FHIR-REFERENCE", "error", "Bundle.entry[0].resource.author[1]"),
    ("FHIR-REFERENCE", "error", "Bundle.entry[1].resource.practitioner"),
]


def _validated(bundle: dict[str, Any]) -> list[tuple[str, str, str]]:
    report = validate_artefact(json.dumps(bundle).encode())
    assert report.detail["profile"] == "CdL Bundle"
    return [(f.code, f.severity.value, f.location) for f in report.findings]


def test_validate_refuses_the_guide_example_for_its_two_defects_only() -> None:
    assert _validated(_guide_shaped_note_bundle(ins=WRONG_KEY_INS, by_full_url=False)) == [
        IDNPS_WARNING,
        ("FRCORE-INS-KEY", "error", "Bundle.entry[3].resource.identifier[0].value"),
        *EXAMPLE_REFERENCES,
    ]
    assert _validated(_guide_shaped_note_bundle(ins=GOOD_INS, by_full_url=False)) == [
        IDNPS_WARNING,
        *EXAMPLE_REFERENCES,
    ]
    assert _validated(_guide_shaped_note_bundle(ins=GOOD_INS, by_full_url=True)) == [IDNPS_WARNING]


def test_only_references_to_posted_entries_are_refused() -> None:
    existing = _guide_shaped_note_bundle(ins=GOOD_INS, by_full_url=True)
    existing["entry"][0]["resource"]["subject"] = {"reference": "Patient/deja-connu"}  # one the server may hold
    put = copy.deepcopy(_guide_shaped_note_bundle(ins=GOOD_INS, by_full_url=False))
    for entry in put["entry"][1:]:  # a PUT keeps its id: Type/<id> then names that very resource
        entry["request"]["method"] = "PUT"
    assert C.posted_id_references(existing) == []
    assert C.posted_id_references(put) == []
    put["entry"][3]["request"]["method"] = "POST"
    assert [f.location for f in C.posted_id_references(put)] == ["Bundle.entry[0].resource.subject"]


@pytest.fixture
def eparcours(tmp_path: Path):  # noqa: ANN201
    journal = SQLiteJournal(tmp_path / "journal.sqlite")
    ctx = SimulatorContext(
        name="eparcours",
        journal=journal,
        pki=None,
        bind_host="127.0.0.1",
        ports={},  # type: ignore[arg-type]
        http_base="https://127.0.0.1/eparcours",
        faults=FaultBoard(),
        run=RunState("run1"),
        testdata=load_testdata(REPO / "fixtures"),
        settings={},
    )
    simulator = EparcoursSimulator(ctx)
    with TestClient(presenting(simulator.http_app(), essms(FINESS))) as client:
        yield client, simulator.service, journal
    journal.close()


def _refusal(response) -> list[tuple[str, str]]:  # noqa: ANN001
    assert response.status_code == 422, response.text
    return [
        (i["details"]["coding"][0]["code"], (i.get("expression") or [""])[0])
        for i in response.json()["issue"]
        if i.get("details", {}).get("coding")
    ]


def test_the_simulator_refuses_the_same_defects_and_accepts_the_corrected_bundle(eparcours) -> None:  # noqa: ANN001
    client, service, journal = eparcours
    wrong_key = client.post("/fhir", json=_guide_shaped_note_bundle(ins=WRONG_KEY_INS, by_full_url=False), headers=JSON)
    assert _refusal(wrong_key) == [("FRCORE-INS-KEY", "Bundle.entry[3].Patient.identifier[0].value")]
    references = client.post("/fhir", json=_guide_shaped_note_bundle(ins=GOOD_INS, by_full_url=False), headers=JSON)
    assert _refusal(references) == [  # the first entry whose references fail stops the transaction
        ("FHIR-REFERENCE", "Bundle.entry[0].resource.subject"),
        ("FHIR-REFERENCE", "Bundle.entry[0].resource.author[0]"),
        ("FHIR-REFERENCE", "Bundle.entry[0].resource.author[1]"),
    ]
    assert service.store.count() == 0
    corrected = client.post("/fhir", json=_guide_shaped_note_bundle(ins=GOOD_INS, by_full_url=True), headers=JSON)
    assert corrected.status_code == 200, corrected.text
    assert [e["response"]["status"] for e in corrected.json()["entry"]] == ["201 Created"] * 4
