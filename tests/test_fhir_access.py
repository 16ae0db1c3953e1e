"""Who may call the FHIR services and what each establishment sees (issue 15 item 1, issue 21 item 12).

e-Parcours cahier de liaison, e-Prescription and TDDUI require the establishment's organisation certificate
(``ESSMS-<FINESS>`` of the test PKI): without it, or with another certificate, 403 and an OperationOutcome,
journaled; a payload FINESS of another establishment is 403; the journal's ``essms`` is the authenticated one;
reads and searches only return what the establishment may see (ans.fhir.fr.cdl 3.0.0: visibility JDV_J110,
update / deletion by the author only as the guide recommends).
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fhir_access import EHPAD, SSIAD, STRANGER, certificate, essms, presenting
from simulator_context import bare_context
from starlette.testclient import TestClient

from harness.core.journal import JournalFilter, Outcome, SQLiteJournal
from harness.fhir import RequestInfo
from harness.fhir.access import ABSENT, NOT_ESSMS, OTHER_ESSMS, UNKNOWN, EstablishmentAccess
from harness.fhir.outcome import FhirError
from harness.fields.pki import IssuedCert
from harness.fields.testdata import TestData, load_testdata
from harness.validators import cdl as C
from harness.validators.eprescription import EPU_SYSTEM, TASK_CODE_INTEGRATION, TASK_CODE_SYSTEM
from mock_services.eparcours import EparcoursSimulator
from mock_services.eprescription import EprescriptionSimulator
from mock_services.tddui import TdduiSimulator

REPO = Path(__file__).resolve().parents[1]
JSON = {"content-type": "application/fhir+json"}
INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.10"
FINESS_SYSTEM = "http://finess.esante.gouv.fr"
JEANNE = "238047505612394"  # P001, accompanied by the EHPAD
ROBERT = "245123306321037"  # P003, accompanied by the SSIAD


@pytest.fixture(scope="module")
def grappe() -> TestData:
    return load_testdata(REPO / "fixtures")


class Service:
    """One simulator, reachable as any establishment (or anonymously), and its journal."""

    def __init__(self, tmp_path: Path, testdata: TestData, cls: type, name: str) -> None:
        self.journal = SQLiteJournal(tmp_path / f"{name}.sqlite")
        self.ctx = bare_context(name, self.journal, testdata)
        self.simulator = cls(self.ctx)
        self.app = self.simulator.http_app()
        self._clients: list[TestClient] = []

    def as_(self, cert: IssuedCert | None) -> TestClient:
        client = TestClient(presenting(self.app, cert))
        self._clients.append(client)
        return client

    def rows(self, **criteria: Any) -> list[Any]:
        return self.journal.query(JournalFilter(service=self.ctx.name, **criteria))

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self.journal.close()


def _service(tmp_path: Path, testdata: TestData, cls: type, name: str) -> Iterator[Service]:
    service = Service(tmp_path, testdata, cls, name)
    yield service
    service.close()


@pytest.fixture
def cdl(tmp_path: Path, grappe: TestData) -> Iterator[Service]:
    yield from _service(tmp_path, grappe, EparcoursSimulator, "eparcours")


@pytest.fixture
def cdl_og(tmp_path: Path, grappe: TestData) -> Iterator[Service]:
    yield from _service(tmp_path, replace(grappe, og_shared=True), EparcoursSimulator, "eparcours")


@pytest.fixture
def ep(tmp_path: Path, grappe: TestData) -> Iterator[Service]:
    yield from _service(tmp_path, grappe, EprescriptionSimulator, "eprescription")


@pytest.fixture
def tddui(tmp_path: Path, grappe: TestData) -> Iterator[Service]:
    yield from _service(tmp_path, grappe, TdduiSimulator, "tddui")


def _issue(response: Any) -> tuple[int, str, str]:
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    return response.status_code, issue["code"], issue["details"]["coding"][0]["code"]


# ------------------------------------------------------------------------------------------ the decision itself
def test_certificate_decides_who_calls(grappe: TestData) -> None:
    access = EstablishmentAccess(grappe.establishments)
    assert access.authenticate(essms(EHPAD).cert) == EHPAD
    refusals = {}
    for label, cert in (("none", None), ("insi", certificate("INSI-AUTO").cert), ("stranger", essms(STRANGER).cert)):
        with pytest.raises(FhirError) as caught:
            access.authenticate(cert)
        refusals[label] = (caught.value.status, str(caught.value.issues[0].code), caught.value.error_code)
    assert refusals == {
        "none": (403, "login", ABSENT),
        "insi": (403, "forbidden", NOT_ESSMS),
        "stranger": (403, "forbidden", UNKNOWN),
    }


def test_one_organisme_gestionnaire_acts_for_its_establishments_only_when_declared(grappe: TestData) -> None:
    alone = EstablishmentAccess(grappe.establishments)
    shared = EstablishmentAccess(grappe.establishments, og_shared=True)
    assert (alone.may_act_for(EHPAD, SSIAD), shared.may_act_for(EHPAD, SSIAD)) == (False, True)
    assert (alone.may_act_for(EHPAD, EHPAD), shared.may_act_for(EHPAD, STRANGER), shared.may_act_for(None, EHPAD)) == (
        True,
        False,
        False,
    )
    with pytest.raises(FhirError) as caught:
        alone.require(EHPAD, SSIAD, expression="Task.owner")
    assert (caught.value.status, caught.value.error_code, caught.value.issues[0].expression) == (
        403,
        OTHER_ESSMS,
        "Task.owner",
    )


# ------------------------------------------------------------------------------------------ every endpoint
ENDPOINTS = {
    "eparcours": [
        ("GET", "/fhir/metadata"),
        ("GET", "/fhir/DocumentReference"),
        ("POST", "/fhir"),
        ("GET", "/openapi.json"),
    ],
    "eprescription": [
        ("GET", "/fhir/MedicationRequest"),
        ("GET", "/fhir/Binary/0123"),
        ("POST", "/fhir/Task"),
        ("GET", "/ordonnances"),  # the printable pages of manual recette too (issue 19: every endpoint)
        ("GET", "/ordonnances/0123"),
        ("GET", "/ordonnances/0123/qr.png"),
    ],
    "tddui": [("POST", "/"), ("GET", "/metadata")],
}


@pytest.mark.parametrize(
    ("name", "cert_name", "code", "error"),
    [
        (name, cert_name, code, error)
        for name in ENDPOINTS
        for cert_name, code, error in ((None, "login", ABSENT), ("INSI-AUTO", "forbidden", NOT_ESSMS))
    ],
)
def test_every_endpoint_refuses_a_caller_without_the_establishment_certificate(
    tmp_path: Path, grappe: TestData, name: str, cert_name: str | None, code: str, error: str
) -> None:
    cls = {"eparcours": EparcoursSimulator, "eprescription": EprescriptionSimulator, "tddui": TdduiSimulator}[name]
    service = Service(tmp_path, grappe, cls, name)
    try:
        client = service.as_(certificate(cert_name) if cert_name else None)
        # a body beyond the e-Parcours and e-Prescription bounds: refused for who sends it, before it is read (not 413)
        big = b"{" * (6 * 1024 * 1024)
        for method, path in ENDPOINTS[name]:
            response = client.request(method, path, content=big if method == "POST" else None, headers=JSON)
            assert _issue(response) == (403, code, error), (method, path)
        rows = service.rows()
        # a TDDUI transaction journals the HTTP status as its error code (the indicator reports read it so)
        journaled = ["403" if (name, path) == ("tddui", "/") else error for _, path in ENDPOINTS[name]]
        assert [(r.outcome, r.essms, r.error_code) for r in rows] == [(Outcome.REJECTED, None, j) for j in journaled]
        assert all(r.digest is None for r in rows)  # nothing of the body was read, nothing kept
        # the service still answers its establishment right after
        assert service.as_(essms(EHPAD)).get(ENDPOINTS[name][0][1] if name != "tddui" else "/metadata").status_code in (
            200,
            404,
        )
    finally:
        service.close()


# ------------------------------------------------------------------------------------------ cahier de liaison
def _actors(finess: str, ins: str) -> list[dict[str, Any]]:
    return [
        {
            "fullUrl": "urn:uuid:pat",
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"use": "official", "system": INS_SYSTEM, "value": ins}],
                "name": [{"family": "MARTIN", "given": ["Jeanne"]}],
                "gender": "female",
                "birthDate": "1938-04-12",
            },
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={INS_SYSTEM}|{ins}"},
        },
        {
            "fullUrl": "urn:uuid:org",
            "resource": {
                "resourceType": "Organization",
                "identifier": [{"system": FINESS_SYSTEM, "value": finess}],
                "name": "ESSMS",
            },
            "request": {"method": "POST", "url": "Organization", "ifNoneExist": f"identifier={FINESS_SYSTEM}|{finess}"},
        },
        {
            "fullUrl": "urn:uuid:role",
            "resource": {
                "resourceType": "PractitionerRole",
                "active": True,
                "organization": {"reference": "urn:uuid:org"},
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
            },
            "request": {"method": "POST", "url": "PractitionerRole"},
        },
    ]


def note_bundle(finess: str, ins: str, text: str, label: str | None = None) -> dict[str, Any]:
    note: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "extension": [{"url": C.EXT_IS_EMERGENCY, "valueBoolean": False}],
        "status": "current",
        "type": {"coding": [{"system": C.TRE_R234, "code": "OBS"}]},
        "subject": {"reference": "urn:uuid:pat"},
        "date": "2025-02-03T08:30:00+01:00",
        "author": [{"reference": "urn:uuid:role"}],
        "content": [{"attachment": {"contentType": "text/plain", "data": base64.b64encode(text.encode()).decode()}}],
    }
    if label:
        note["securityLabel"] = [{"coding": [{"system": C.TRE_A07, "code": label}]}]
    entries = [
        {"fullUrl": "urn:uuid:note", "resource": note, "request": {"method": "POST", "url": "DocumentReference"}}
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries + _actors(finess, ins)}


def post_note(client: TestClient, finess: str, ins: str, text: str, label: str | None = None) -> str:
    response = client.post("/fhir", content=json.dumps(note_bundle(finess, ins, text, label)), headers=JSON)
    assert response.status_code == 200, response.text
    return response.json()["entry"][0]["response"]["location"].split("/")[1]


def found(client: TestClient, ins: str) -> list[str]:
    response = client.get("/fhir/DocumentReference", params={"patient.identifier": f"{INS_SYSTEM}|{ins}"})
    assert response.status_code == 200
    return sorted(
        base64.b64decode(e["resource"]["content"][0]["attachment"]["data"]).decode()
        for e in response.json().get("entry") or []
        if e["resource"]["resourceType"] == "DocumentReference"
    )


def test_notes_are_seen_by_the_establishments_that_accompany_the_person(cdl: Service, grappe: TestData) -> None:
    ehpad, ssiad = cdl.as_(essms(EHPAD)), cdl.as_(essms(SSIAD))
    mine = post_note(ehpad, EHPAD, JEANNE, "note de l'EHPAD")
    post_note(ehpad, EHPAD, JEANNE, "note masquée de l'EHPAD", label="MASQUE_PS")
    service = cdl.simulator.service
    service.publish_note(grappe.person("P001"), text="note du partenaire")
    service.publish_note(grappe.person("P001"), text="note masquée du partenaire", visibility="MASQUE_PS")
    service.publish_note(grappe.person("P003"), text="note sur une personne du SSIAD")
    # the EHPAD: its notes whatever their audience, the partner's visible note on its person, nothing about the SSIAD's
    assert found(ehpad, JEANNE) == ["note de l'EHPAD", "note du partenaire", "note masquée de l'EHPAD"]
    assert found(ehpad, ROBERT) == []
    # the SSIAD (another organisation's view: same organisme gestionnaire, not declared shared): nothing of Jeanne
    assert found(ssiad, JEANNE) == []
    assert found(ssiad, ROBERT) == ["note sur une personne du SSIAD"]
    for method in ("GET", "DELETE"):
        assert _issue(ssiad.request(method, f"/fhir/DocumentReference/{mine}"))[::2] == (404, "FHIR-NOT-FOUND")
    assert ssiad.get(f"/fhir/DocumentReference/{mine}/_history").status_code == 404
    patient = ehpad.get("/fhir/Patient", params={"identifier": f"{INS_SYSTEM}|{JEANNE}"}).json()["entry"][0]["resource"]
    assert ssiad.get(f"/fhir/Patient/{patient['id']}").status_code == 404
    assert ehpad.get(f"/fhir/Patient/{patient['id']}").status_code == 200
    # the journal: every search and refusal under the authenticated establishment
    searches = cdl.rows(operation="cdl.search")
    assert [(r.essms, len(r.details["matches"])) for r in searches] == [(EHPAD, 3), (EHPAD, 0), (SSIAD, 0), (SSIAD, 1)]
    refused = cdl.rows(outcome=Outcome.REJECTED)
    assert [(r.operation, r.essms, r.error_code) for r in refused] == [
        ("cdl.read", SSIAD, "FHIR-NOT-FOUND"),
        ("cdl.delete", SSIAD, "FHIR-NOT-FOUND"),
        ("cdl.read", SSIAD, "FHIR-NOT-FOUND"),
        ("fhir.read.Patient", SSIAD, "FHIR-NOT-FOUND"),
    ]


def test_a_search_finds_each_author_once_with_the_same_visibility(cdl: Service, grappe: TestData) -> None:
    """``visibility`` (one search) sees each note as ``visible`` does, its authors' FINESS found once per search:
    notes sharing an author (the partner's, one of them masked), the caller's own, another establishment's."""
    ehpad = cdl.as_(essms(EHPAD))
    post_note(ehpad, EHPAD, JEANNE, "note de l'EHPAD")
    post_note(ehpad, EHPAD, JEANNE, "note masquée de l'EHPAD", label="MASQUE_PS")
    service = cdl.simulator.service
    for text, label in (("a", None), ("b", "MASQUE_PS"), ("c", None), ("d", "CONNEXION_SECRETE")):
        service.publish_note(grappe.person("P001"), text=text, visibility=label)
    service.publish_note(grappe.person("P003"), text="note sur une personne du SSIAD")
    notes = service.store.all("DocumentReference")
    for caller in (EHPAD, SSIAD, STRANGER, None):
        request = RequestInfo("GET", "/fhir/DocumentReference", "", {}, caller_finess=caller)
        expected = [service.visible(v, request=request) for v in notes]
        seen = service.visibility(request=request)
        assert [seen(v) for v in notes + notes] == expected + expected, caller
    request = RequestInfo("GET", "/fhir/DocumentReference", "", {}, caller_finess=EHPAD)
    assert [service.visible(v, request=request) for v in notes] == [True, True, True, False, True, False, False]


def test_one_search_resolves_each_subject_and_author_reference_once(
    cdl: Service, grappe: TestData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One search reads each author reference (PractitionerRole, then its Organization) once in the store, and the
    notes' subject once for their visibility and once for the journal row (the search's ``_Resolutions``), where
    ``visible`` alone reads them again for every note: the EHPAD's note and three of the partner's on Jeanne."""
    ehpad = cdl.as_(essms(EHPAD))
    post_note(ehpad, EHPAD, JEANNE, "note de l'EHPAD")
    service = cdl.simulator.service
    for text in ("a", "b", "c"):
        service.publish_note(grappe.person("P001"), text=text)
    notes = service.store.all("DocumentReference")
    subject = notes[0].resource["subject"]["reference"]
    roles = [n.resource["author"][0]["reference"] for n in notes]
    assert {n.resource["subject"]["reference"] for n in notes} == {subject} and len(set(roles)) == 2

    def target(reference: str) -> tuple[str, str]:
        resource_type, _, resource_id = reference.partition("/")
        return resource_type, resource_id

    expected = {target(subject): 2}
    for role in dict.fromkeys(roles):
        organization = service.store.read(*target(role)).body()["organization"]["reference"]
        expected |= {target(role): 1, target(organization): 1}
    reads: list[tuple[str, str]] = []
    current = service.store.current

    def counted(resource_type: str, resource_id: str) -> Any:
        reads.append((resource_type, resource_id))
        return current(resource_type, resource_id)

    monkeypatch.setattr(service.store, "current", counted)
    response = ehpad.get("/fhir/DocumentReference", params={"patient": subject})
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [n.id for n in notes]
    assert Counter(reads) == expected
    assert cdl.rows(operation="cdl.search")[0].person == JEANNE


def test_a_note_for_another_establishment_is_refused(cdl: Service) -> None:
    ehpad = cdl.as_(essms(EHPAD))
    response = ehpad.post("/fhir", content=json.dumps(note_bundle(SSIAD, JEANNE, "au nom du SSIAD")), headers=JSON)
    assert _issue(response) == (403, "forbidden", OTHER_ESSMS)
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource.author"]
    rows = cdl.rows()
    assert [(r.operation, r.outcome, r.essms, r.error_code) for r in rows] == [
        ("fhir.transaction", Outcome.REJECTED, EHPAD, OTHER_ESSMS),
        ("cdl.create", Outcome.REJECTED, EHPAD, OTHER_ESSMS),
    ]
    assert cdl.simulator.service.store.count("DocumentReference") == 0


def test_one_organisme_gestionnaire_shares_notes_when_the_grappe_declares_it(cdl_og: Service) -> None:
    ehpad, ssiad = cdl_og.as_(essms(EHPAD)), cdl_og.as_(essms(SSIAD))
    post_note(ehpad, EHPAD, JEANNE, "note de l'EHPAD")
    post_note(ssiad, EHPAD, JEANNE, "le SSIAD écrit pour l'EHPAD")  # same organisme gestionnaire: allowed
    assert found(ssiad, JEANNE) == ["le SSIAD écrit pour l'EHPAD", "note de l'EHPAD"]
    rows = cdl_og.rows(operation="cdl.create")
    assert [(r.outcome, r.essms) for r in rows] == [(Outcome.ACCEPTED, EHPAD), (Outcome.ACCEPTED, SSIAD)]
    assert cdl_og.as_(essms(STRANGER)).get("/fhir/metadata").status_code == 403


def test_only_the_author_changes_a_note(cdl: Service, grappe: TestData) -> None:
    ehpad = cdl.as_(essms(EHPAD))
    partner = cdl.simulator.service.publish_note(grappe.person("P001"), text="note du partenaire")
    current = ehpad.get(f"/fhir/DocumentReference/{partner.id}").json()
    current["description"] = "corrigée par l'EHPAD"
    response = ehpad.put(f"/fhir/DocumentReference/{partner.id}", content=json.dumps(current), headers=JSON)
    assert _issue(response) == (403, "forbidden", OTHER_ESSMS)
    assert _issue(ehpad.delete(f"/fhir/DocumentReference/{partner.id}"))[::2] == (403, OTHER_ESSMS)
    assert cdl.simulator.service.note(partner.id).version_id == 1
    assert [(r.operation, r.essms) for r in cdl.rows(outcome=Outcome.REJECTED)] == [
        ("cdl.update", EHPAD),
        ("cdl.delete", EHPAD),
    ]


# ------------------------------------------------------------------------------------------ e-Prescription
def test_a_prescription_is_seen_by_the_establishment_of_its_person(ep: Service, grappe: TestData) -> None:
    service = ep.simulator.service
    theirs = service.issue(grappe.person("P003"))  # the SSIAD's person
    ehpad, ssiad = ep.as_(essms(EHPAD)), ep.as_(essms(SSIAD))
    params = [("group-identifier", f"{EPU_SYSTEM}|{theirs.epu}"), ("_include", "MedicationRequest:subject")]
    assert "entry" not in ehpad.get("/fhir/MedicationRequest", params=params).json()  # nothing, includes neither
    seen = ssiad.get("/fhir/MedicationRequest", params=params).json()
    assert [e["resource"]["id"] for e in seen["entry"] if e["search"]["mode"] == "match"] == [
        line.id for line in theirs.lines
    ]
    assert _issue(ehpad.get(f"/fhir/Binary/{theirs.epu}"))[::2] == (404, "EP-ORDONNANCE-INCONNUE")
    assert ssiad.get(f"/fhir/Binary/{theirs.epu}").status_code == 200

    def task(finess: str) -> str:
        return json.dumps(
            {
                "resourceType": "Task",
                "status": "completed",
                "intent": "order",
                "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": TASK_CODE_INTEGRATION}]},
                "focus": {"identifier": {"system": EPU_SYSTEM, "value": theirs.epu}},
                "for": {"identifier": {"system": INS_SYSTEM, "value": ROBERT}},
                "owner": {"identifier": {"system": FINESS_SYSTEM, "value": finess}},
                "authoredOn": "2025-03-01T10:00:00+01:00",
            }
        )

    assert _issue(ehpad.post("/fhir/Task", content=task(EHPAD), headers=JSON))[::2] == (422, "EP-ORDONNANCE-INCONNUE")
    assert _issue(ehpad.post("/fhir/Task", content=task(SSIAD), headers=JSON)) == (403, "forbidden", OTHER_ESSMS)
    created = ssiad.post("/fhir/Task", content=task(SSIAD), headers=JSON)
    assert created.status_code == 201
    task_id = created.json()["id"]
    assert ehpad.get(f"/fhir/Task/{task_id}").status_code == 404
    assert ssiad.get(f"/fhir/Task/{task_id}").status_code == 200
    confirmations = ep.rows(operation="eprescription.import_confirmed")
    assert [(r.outcome, r.essms, r.error_code) for r in confirmations] == [
        (Outcome.REJECTED, EHPAD, "EP-ORDONNANCE-INCONNUE"),
        (Outcome.REJECTED, EHPAD, OTHER_ESSMS),
        (Outcome.ACCEPTED, SSIAD, None),
    ]


# ------------------------------------------------------------------------------------------ TDDUI
def test_tddui_bundle_of_another_establishment_is_refused(tddui: Service, grappe: TestData) -> None:
    from test_tddui import as_bytes, export  # the EHPAD's export

    body = as_bytes(export())
    response = tddui.as_(essms(SSIAD)).post("/", content=body, headers=JSON)
    assert _issue(response) == (403, "forbidden", OTHER_ESSMS)
    assert tddui.as_(essms(EHPAD)).post("/", content=body, headers=JSON).status_code == 200
    rows = tddui.rows(operation="fhir.transaction")
    assert [(r.outcome, r.essms, r.error_code) for r in rows] == [
        (Outcome.REJECTED, SSIAD, "403"),
        (Outcome.ACCEPTED, EHPAD, None),
    ]
    facts = tddui.rows(outcome=Outcome.ACCEPTED)
    assert {r.essms for r in facts} == {EHPAD} and len(facts) > 1
