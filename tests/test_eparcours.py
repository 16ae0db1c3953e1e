"""The e-Parcours simulator as a cahier de liaison manager (ANS ans.fhir.fr.cdl 3.0.0): RESTful and transaction
options, CdLDocumentReference profile checks, search with chains and _include, versioned updates, deletion, XML,
and the cdl.* journal records the usage indicator counts."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir_access import essms, presenting
from starlette.testclient import TestClient

from harness.core.journal import JournalFilter, Outcome, SQLiteJournal
from harness.core.settings import SettingsError
from harness.fhir import Total
from harness.fields.testdata import TestData, load_testdata
from harness.host.simulator import FaultBoard, RunState, SimulatorContext
from harness.validators import Severity
from harness.validators import cdl as C
from mock_services.eparcours import EparcoursSimulator
from mock_services.eparcours.service import EparcoursSettings

REPO = Path(__file__).resolve().parents[1]
JSON = {"content-type": "application/fhir+json"}
INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.10"
FINESS = "990000016"


@pytest.fixture(scope="module")
def testdata() -> TestData:
    return load_testdata(REPO / "fixtures")


def _context(
    tmp_path: Path, testdata: TestData, settings: dict[str, Any] | None = None
) -> tuple[SimulatorContext, SQLiteJournal]:
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
        testdata=testdata,
        settings=settings or {},
    )
    return ctx, journal


@pytest.fixture
def sim(tmp_path: Path, testdata: TestData) -> Iterator[tuple[TestClient, Any, SQLiteJournal]]:
    ctx, journal = _context(tmp_path, testdata)
    simulator = EparcoursSimulator(ctx)
    with TestClient(presenting(simulator.http_app(), essms(FINESS))) as client:
        yield client, simulator.service, journal
    journal.close()


def actors(ins: str = "238047505612394") -> dict[str, dict[str, Any]]:
    return {
        "Patient": {
            "resourceType": "Patient",
            "identifier": [{"use": "official", "system": INS_SYSTEM, "value": ins}],
            "name": [{"family": "MARTIN", "given": ["Jeanne"]}],
            "gender": "female",
            "birthDate": "1938-04-12",
        },
        "Practitioner": {
            "resourceType": "Practitioner",
            "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810001234567"}],
            "name": [{"family": "DURAND", "given": ["Luc"]}],
        },
        "Organization": {
            "resourceType": "Organization",
            "identifier": [{"system": "http://finess.esante.gouv.fr", "value": FINESS}],
            "name": "EHPAD Les Tilleuls",
        },
        "PractitionerRole": {
            "resourceType": "PractitionerRole",
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
        },
    }


def note(
    subject: str,
    author: str,
    *,
    code: str = "OBS",
    urgent: bool = False,
    text: str = "Bonne nuit",
    label: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "extension": [{"url": C.EXT_IS_EMERGENCY, "valueBoolean": urgent}],
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{abs(hash(text)):032x}"[:45]},
        "status": "current",
        "type": {"coding": [{"system": C.TRE_R234, "code": code}]},
        "subject": {"reference": subject},
        "date": "2025-02-03T08:30:00+01:00",
        "author": [{"reference": author}],
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "language": "fr",
                    "data": base64.b64encode(text.encode()).decode(),
                }
            }
        ],
    }
    if label:
        resource["securityLabel"] = [{"coding": [{"system": C.TRE_A07, "code": label}]}]
    return resource


def creation_bundle(ins: str = "238047505612394", **note_options: Any) -> dict[str, Any]:
    resources = actors(ins)
    resources["PractitionerRole"]["practitioner"] = {"reference": "urn:uuid:pr"}
    resources["PractitionerRole"]["organization"] = {"reference": "urn:uuid:org"}
    urls = {
        "Patient": "urn:uuid:pat",
        "Practitioner": "urn:uuid:pr",
        "Organization": "urn:uuid:org",
        "PractitionerRole": "urn:uuid:role",
    }
    entries = [
        {
            "fullUrl": "urn:uuid:note",
            "resource": note("urn:uuid:pat", "urn:uuid:role", **note_options),
            "request": {"method": "POST", "url": "DocumentReference"},
        }
    ]
    for name, resource in resources.items():
        identifier = (resource.get("identifier") or [{}])[0]
        request = {"method": "POST", "url": name}
        if identifier:
            request["ifNoneExist"] = f"identifier={identifier['system']}|{identifier['value']}"
        entries.append({"fullUrl": urls[name], "resource": resource, "request": request})
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "meta": {"profile": [C.PROFILE_BUNDLE_CREATION]},
        "entry": entries,
    }


def test_transaction_creation_of_a_note_with_its_actors(sim) -> None:  # noqa: ANN001
    client, service, journal = sim
    response = client.post("/fhir", json=creation_bundle(urgent=True), headers=JSON)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response" and len(result["entry"]) == 5
    assert all(e["response"]["status"] == "201 Created" for e in result["entry"])
    note_id = result["entry"][0]["response"]["location"].split("/")[1]
    stored = service.note(note_id).resource
    assert stored["subject"]["reference"].startswith("Patient/") and stored["author"][0]["reference"].startswith(
        "PractitionerRole/"
    )
    exchanges = journal.query(JournalFilter(service="eparcours"))
    assert [e.operation for e in exchanges] == [
        "fhir.transaction",
        "cdl.create",
        "fhir.create.Patient",
        "fhir.create.Practitioner",
        "fhir.create.Organization",
        "fhir.create.PractitionerRole",
    ]
    created = exchanges[1]
    assert (created.outcome, created.person, created.essms) == (Outcome.ACCEPTED, "238047505612394", FINESS)
    assert created.details["note"]["type"] == "OBS" and created.details["note"]["urgent"] is True
    again = client.post("/fhir", json=creation_bundle(), headers=JSON).json()  # actors exist: reused
    assert [e["response"]["status"] for e in again["entry"][1:]] == ["200 OK"] * 3 + [
        "201 Created"
    ]  # no identifier on the role
    assert service.store.count("Patient") == 1 and service.store.count("DocumentReference") == 2
    assert service.store.count("PractitionerRole") == 2


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda n: n.update(type={"coding": [{"system": "urn:local", "code": "TRANS"}]}), "CDL-TYPE-JDV"),
        (lambda n: n.pop("type"), "CDL-TYPE-ABSENT"),
        (lambda n: n.update(docStatus="final"), "CDL-INTERDIT"),
        (lambda n: n.update(securityLabel=[{"coding": [{"system": "urn:x", "code": "N"}]}]), "CDL-SECURITYLABEL-JDV"),
        (lambda n: n.update(extension=[{"url": C.EXT_IS_EMERGENCY, "valueString": "oui"}]), "CDL-URGENCE"),
        (lambda n: n.update(author=[]), "CDL-AUTHOR-ABSENT"),
    ],
)
def test_profile_violations_are_refused_and_journaled(sim, mutate, code: str) -> None:  # noqa: ANN001
    client, service, journal = sim
    bundle = creation_bundle()
    mutate(bundle["entry"][0]["resource"])
    response = client.post("/fhir", json=bundle, headers=JSON)
    assert response.status_code == 422, response.text
    issues = response.json()["issue"]
    assert any(i.get("details", {}).get("coding", [{}])[0].get("code") == code for i in issues), issues
    assert service.store.count() == 0
    refused = journal.query(JournalFilter(operation="cdl.create"))
    assert len(refused) == 1 and refused[0].outcome is Outcome.REJECTED


def test_bundle_profile_rules() -> None:
    bundle = creation_bundle()
    bundle["entry"].append(
        {"resource": note("urn:uuid:pat", "urn:uuid:role"), "request": {"method": "POST", "url": "DocumentReference"}}
    )
    bundle["entry"][1]["request"]["method"] = "DELETE"
    codes = {f.code for f in C.check_bundle(bundle) if f.severity is Severity.ERROR}
    assert {"CDL-BUNDLE-NOTE", "CDL-REQ-MET-1"} <= codes
    assert {f.code for f in C.check_bundle(creation_bundle(), update=True)} == {"CDL-BUNDLE-METHOD"}
    assert C.check_bundle(creation_bundle(), update=False) == []


def _restful_note(client: TestClient, **note_options: Any) -> tuple[str, dict[str, str]]:
    ids: dict[str, str] = {}
    resources = actors()
    for name in ("Patient", "Practitioner", "Organization"):
        ids[name] = client.post(f"/fhir/{name}", json=resources[name], headers=JSON).json()["id"]
    role = {
        **resources["PractitionerRole"],
        "practitioner": {"reference": f"Practitioner/{ids['Practitioner']}"},
        "organization": {"reference": f"Organization/{ids['Organization']}"},
    }
    ids["PractitionerRole"] = client.post("/fhir/PractitionerRole", json=role, headers=JSON).json()["id"]
    created = client.post(
        "/fhir/DocumentReference",
        json=note(f"Patient/{ids['Patient']}", f"PractitionerRole/{ids['PractitionerRole']}", **note_options),
        headers=JSON,
    )
    assert created.status_code == 201, created.text
    return created.json()["id"], ids


def test_restful_update_with_etags_and_deletion(sim) -> None:  # noqa: ANN001
    client, service, journal = sim
    note_id, _ = _restful_note(client)
    current = client.get(f"/fhir/DocumentReference/{note_id}")
    assert current.headers["etag"] == 'W/"1"'
    service.platform_update(note_id, "modifié par un partenaire")
    body = {**current.json(), "description": "corrigé"}
    stale = client.put(f"/fhir/DocumentReference/{note_id}", json=body, headers={**JSON, "If-Match": 'W/"1"'})
    assert stale.status_code == 412
    fresh = client.put(f"/fhir/DocumentReference/{note_id}", json=body, headers={**JSON, "If-Match": 'W/"2"'})
    assert fresh.status_code == 200 and fresh.json()["meta"]["versionId"] == "3"
    assert client.delete(f"/fhir/DocumentReference/{note_id}").status_code == 200
    assert client.get(f"/fhir/DocumentReference/{note_id}").status_code == 410
    operations = [
        (e.operation, e.outcome)
        for e in journal.query(JournalFilter(service="eparcours"))
        if e.operation.startswith(("cdl.", "platform."))
    ]
    assert operations == [
        ("cdl.create", Outcome.ACCEPTED),
        ("cdl.read", Outcome.ACCEPTED),
        ("platform.note_update", Outcome.ACCEPTED),
        ("cdl.update", Outcome.REJECTED),
        ("cdl.update", Outcome.ACCEPTED),
        ("cdl.delete", Outcome.ACCEPTED),
        ("cdl.read", Outcome.REJECTED),
    ]
    people = {e.person for e in journal.query(JournalFilter(service="eparcours")) if e.operation.startswith("cdl.")}
    assert people == {"238047505612394"}


def test_search_total_setting_counts_every_search(tmp_path: Path, testdata: TestData) -> None:
    """``[settings.eparcours] search_total = "accurate"``: Bundle.total without ``_total`` (default: none, above);
    the client's ``_total=none`` still wins."""
    ctx, journal = _context(tmp_path, testdata, {"search_total": "accurate"})
    with TestClient(presenting(EparcoursSimulator(ctx).http_app(), essms(FINESS))) as client:
        a, _ = _restful_note(client, code="OBS")
        b, _ = _restful_note(client, code="GEN")
        person = {"patient.identifier": f"{INS_SYSTEM}|238047505612394", "_count": "1"}
        counted = client.get("/fhir/DocumentReference", params=person).json()
        assert (counted["total"], [e["resource"]["id"] for e in counted["entry"]]) == (2, [a])
        uncounted = client.get("/fhir/DocumentReference", params={**person, "_total": "none"}).json()
        assert ("total" in uncounted, [e["resource"]["id"] for e in uncounted["entry"]]) == (False, [a])
    journal.close()
    assert b
    assert EparcoursSettings.from_mapping({}).search_total is Total.NONE
    with pytest.raises(SettingsError, match="search_total"):
        EparcoursSettings.from_mapping({"search_total": "parfois"})


def test_update_without_if_match_can_be_required(tmp_path: Path, testdata: TestData) -> None:
    ctx, journal = _context(tmp_path, testdata, {"require_if_match": "true"})
    with TestClient(presenting(EparcoursSimulator(ctx).http_app(), essms(FINESS))) as client:
        note_id, _ = _restful_note(client)
        body = client.get(f"/fhir/DocumentReference/{note_id}").json()
        refused = client.put(f"/fhir/DocumentReference/{note_id}", json=body, headers=JSON)
        assert refused.status_code == 412 and "FHIR-IF-MATCH-REQUIRED" in refused.text
    journal.close()


def test_search_by_person_author_type_date_label_with_include(sim, testdata: TestData) -> None:  # noqa: ANN001
    client, service, journal = sim
    a, _ = _restful_note(client, code="OBS", label="INVISIBLE_PATIENT", text="a")
    b, _ = _restful_note(client, code="GEN", text="b")
    other = service.publish_note(testdata.person("Paul LEROY"), note_type="OBS", text="autre personne").id
    urgent = service.publish_note(testdata.person("Jeanne MARTIN"), note_type="INST", text="urgent", urgent=True).id

    def search(params: list[tuple[str, str]]) -> dict[str, Any]:
        response = client.get("/fhir/DocumentReference", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def found(params: list[tuple[str, str]]) -> list[str]:
        """The matches, in order; no Bundle.total (``[settings.eparcours] search_total`` is ``none`` by default)."""
        bundle = search(params)
        assert "total" not in bundle, bundle
        return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]

    person = ("patient.identifier", f"{INS_SYSTEM}|238047505612394")
    assert found([person]) == [a, b, urgent]
    assert found([("subject:Patient.identifier", "238047505612394")]) == [a, b, urgent]
    assert found([("subject.identifier", "142036912304505")]) == [other]
    assert found([person, ("type", f"{C.TRE_R234}|OBS")]) == [a]
    assert found([person, ("security-label", "INVISIBLE_PATIENT")]) == [a]
    assert found([("author:Practitioner.identifier", "810001234567")]) == []  # the author is a PractitionerRole
    assert found([("author:PractitionerRole.practitioner.identifier", "x")]) == [a, b, other, urgent]  # ignored
    assert found([person, ("date", "ge2025-02-03"), ("date", "lt2025-02-04")]) == [a, b]
    assert search([person, ("_total", "accurate")])["total"] == 3
    included = search([person, ("type", "GEN"), ("_include", "*")])
    assert sorted(e["resource"]["resourceType"] for e in included["entry"] if e["search"]["mode"] == "include") == [
        "Patient",
        "PractitionerRole",
    ]
    searches = journal.query(JournalFilter(operation="cdl.search"))
    assert searches[0].person == "238047505612394" and searches[0].outcome is Outcome.ACCEPTED
    assert searches[2].person == "142036912304505"  # the only person of the results
    mixed = searches[6]  # [a, b, other, urgent]: each note's person in the row, none for the search itself
    assert [(n["id"], n["person"]) for n in mixed.details["notes"]] == [
        (a, "238047505612394"),
        (b, "238047505612394"),
        (other, "142036912304505"),
        (urgent, "238047505612394"),
    ]
    assert mixed.person is None


def test_xml_note_creation_and_search(sim) -> None:  # noqa: ANN001
    client, service, journal = sim
    _, ids = _restful_note(client)
    xml = (
        f'<DocumentReference xmlns="http://hl7.org/fhir"><extension url="{C.EXT_IS_EMERGENCY}"><valueBoolean value="true"/></extension>'
        f'<status value="current"/><type><coding><system value="{C.TRE_R234}"/><code value="INST"/></coding></type>'
        f'<subject><reference value="Patient/{ids["Patient"]}"/></subject><date value="2025-02-04T09:00:00+01:00"/>'
        f'<author><reference value="PractitionerRole/{ids["PractitionerRole"]}"/></author>'
        '<content><attachment><contentType value="text/plain"/><data value="VXJnZW50"/></attachment></content></DocumentReference>'
    ).encode()
    created = client.post(
        "/fhir/DocumentReference",
        content=xml,
        headers={"content-type": "application/fhir+xml", "accept": "application/fhir+xml"},
    )
    assert created.status_code == 201, created.text
    assert created.content.startswith(b"<?xml") and b"cdl-ext-is-emergency" in created.content
    found = client.get("/fhir/DocumentReference", params={"type": "INST", "_format": "xml"})
    assert found.status_code == 200 and b"<Bundle" in found.content and b"searchset" in found.content
    assert journal.query(JournalFilter(operation="cdl.create"))[-1].details["note"]["urgent"] is True


def test_platform_notes_are_journaled_to_the_dui(sim, testdata: TestData) -> None:  # noqa: ANN001
    _, service, journal = sim
    version = service.publish_note(
        testdata.person("Jeanne MARTIN"), note_type="INST", text="Chute", urgent=True, visibility="MASQUE_PS"
    )
    assert C.check_note(version.resource) == []
    published = journal.query(JournalFilter(operation="platform.note"))[0]
    assert published.direction.value == "to_dui" and published.person == "238047505612394"
    assert service.notes_for("238047505612394", "INST")[0].id == version.id


def test_capability_statement_is_the_gestionnaire(sim) -> None:  # noqa: ANN001
    client, _, _ = sim
    statement = client.get("/fhir/metadata").json()
    assert statement["implementationGuide"] == [C.IMPLEMENTATION_GUIDE]
    documents = next(r for r in statement["rest"][0]["resource"] if r["type"] == "DocumentReference")
    assert documents["profile"] == C.PROFILE_DOCUMENT_REFERENCE
    assert {"update", "create", "delete", "read", "search-type"} <= {i["code"] for i in documents["interaction"]}
    assert {"date", "type", "security-label", "patient", "author"} <= {p["name"] for p in documents["searchParam"]}
    assert {"DocumentReference:subject", "DocumentReference:author"} <= set(documents["searchInclude"])
    assert {r["type"] for r in statement["rest"][0]["resource"]} >= {
        "Patient",
        "RelatedPerson",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Device",
    }
    assert client.get("/openapi.json").json()["openapi"].startswith("3.")


def test_a_production_ins_follows_the_harness_wide_policy(sim) -> None:  # noqa: ANN001
    """issue 20: a Patient under .4.8 is accepted with an INS-PRODUCTION warning by default, refused under refuse."""
    from harness.fields.identity import ProductionInsPolicy

    client, service, journal = sim
    for policy, status in ((ProductionInsPolicy.REFUSE, 422), (ProductionInsPolicy.WARN, 200)):
        bundle = creation_bundle()
        [patient] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
        patient["identifier"][0]["system"] = "urn:oid:1.2.250.1.213.1.4.8"
        service.production_ins = policy
        response = client.post("/fhir", json=bundle, headers=JSON)
        assert response.status_code == status, response.text
        if status == 422:
            assert [i["details"]["coding"][0]["code"] for i in response.json()["issue"]] == ["INS-PRODUCTION"]
    [created] = journal.query(
        JournalFilter(service="eparcours", operation="fhir.create.Patient", outcome=Outcome.ACCEPTED)
    )
    assert [(f["code"], f["severity"]) for f in created.details["findings"]] == [("INS-PRODUCTION", "warning")]
