"""The e-Prescription simulator: prescriptions as FHIR lines and CDA documents, QR codes, the integration
confirmation contract (Task) and its business rules, the journal records the usage indicator counts."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir_access import essms, presenting
from starlette.testclient import TestClient

from harness.core.journal import JournalFilter, Outcome, SQLiteJournal
from harness.fhir.model import structure_findings
from harness.fields.testdata import TestData, load_testdata
from harness.fields.xmlsafe import parse_xml
from harness.host.simulator import FaultBoard, RunState, SimulatorContext
from harness.validators import Severity
from harness.validators.cda import check_french_header
from harness.validators.eprescription import (
    EPU_SYSTEM,
    TASK_CODE_INTEGRATION,
    TASK_CODE_SYSTEM,
    check_confirmation,
    check_medication_request,
    is_epu,
    read_prescription_cda,
)
from mock_services.eprescription import EprescriptionSimulator
from mock_services.eprescription.prescriptions import catalogue, cda_document, pdf_copy, qr_png

REPO = Path(__file__).resolve().parents[1]
JSON = {"content-type": "application/fhir+json"}
FINESS = "990000016"
ADMIN_TOKEN = "jeton-admin-de-test"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def testdata() -> TestData:
    return load_testdata(REPO / "fixtures")


@pytest.fixture
def sim(tmp_path: Path, testdata: TestData) -> Iterator[tuple[TestClient, Any, SQLiteJournal]]:
    journal = SQLiteJournal(tmp_path / "journal.sqlite")
    ctx = SimulatorContext(
        name="eprescription",
        journal=journal,
        pki=None,
        bind_host="127.0.0.1",
        ports={},  # type: ignore[arg-type]
        http_base="https://127.0.0.1/eprescription",
        faults=FaultBoard(),
        run=RunState("run1"),
        testdata=testdata,
        admin_token=ADMIN_TOKEN,
    )
    simulator = EprescriptionSimulator(ctx)
    with TestClient(presenting(simulator.http_app(), essms(FINESS))) as client:
        yield client, simulator.service, journal
    journal.close()


def retrieve(client: TestClient, epu: str) -> dict[str, Any]:
    params = [
        ("group-identifier", f"{EPU_SYSTEM}|{epu}"),
        ("_include", "MedicationRequest:medication"),
        ("_include", "MedicationRequest:subject"),
        ("_include", "MedicationRequest:requester"),
    ]
    response = client.get("/fhir/MedicationRequest", params=params)
    assert response.status_code == 200
    return response.json()


def task(epu: str, ins: str, status: str = "completed", finess: str = FINESS) -> dict[str, Any]:
    resource = {
        "resourceType": "Task",
        "status": status,
        "intent": "order",
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": TASK_CODE_INTEGRATION}]},
        "focus": {"identifier": {"system": EPU_SYSTEM, "value": epu}},
        "for": {"identifier": {"system": "urn:oid:1.2.250.1.213.1.4.10", "value": ins}},
        "owner": {"identifier": {"system": "http://finess.esante.gouv.fr", "value": finess}},
        "authoredOn": "2025-03-01T10:00:00+01:00",
    }
    if status == "rejected":
        resource["statusReason"] = {"text": "ordonnance d'une autre personne"}
    return resource


def test_prescription_lines_follow_the_eprescription_guide(sim, testdata: TestData) -> None:  # noqa: ANN001
    client, service, _ = sim
    person = testdata.person("Jeanne MARTIN")
    prescription = service.issue(person, lines=3)
    assert is_epu(prescription.epu) and prescription.epu.startswith("01")
    bundle = retrieve(client, prescription.epu)
    assert "total" not in bundle  # none asked ([settings.eprescription] search_total: none by default)
    assert [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"] == [
        line.id for line in prescription.lines
    ]
    resources = [e["resource"] for e in bundle["entry"]]
    kinds = sorted({r["resourceType"] for r in resources})
    assert kinds == ["Medication", "MedicationRequest", "Patient", "Practitioner"]
    for resource in resources:
        assert structure_findings(resource) == [], resource["resourceType"]
    lines = [r for r in resources if r["resourceType"] == "MedicationRequest"]
    assert all(check_medication_request(line) == [] for line in lines)
    assert {line["groupIdentifier"]["value"] for line in lines} == {prescription.epu}
    assert all(
        line["dosageInstruction"][0]["text"] and line["dosageInstruction"][0]["timing"]["repeat"] for line in lines
    )
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    assert {"system": "urn:oid:1.2.250.1.213.1.4.10", "value": person.ins.value, "use": "official"} in patient[
        "identifier"
    ]
    unknown = retrieve(client, service.unknown_epu())
    assert (unknown.get("total"), unknown.get("entry")) == (None, None)


def test_catalogue_posologies_are_all_renderable(sim, testdata: TestData) -> None:  # noqa: ANN001
    client, service, _ = sim
    names = tuple(m.display for m in catalogue())
    prescription = service.issue(testdata.person("P002"), medicines=names)
    assert len(prescription.lines) == len(names)
    lines = [
        e["resource"]
        for e in retrieve(client, prescription.epu)["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest"
    ]
    assert all(structure_findings(line) == [] and check_medication_request(line) == [] for line in lines)


def test_confirmation_is_the_counted_import(sim, testdata: TestData) -> None:  # noqa: ANN001
    client, service, journal = sim
    person = testdata.person("Jeanne MARTIN")
    prescription = service.issue(person)
    early = client.post("/fhir/Task", json=task(prescription.epu, person.ins.value), headers=JSON)
    assert early.status_code == 422 and "EP-NON-RECUPEREE" in early.text
    retrieve(client, prescription.epu)
    confirmed = client.post("/fhir/Task", json=task(prescription.epu, person.ins.value), headers=JSON)
    assert confirmed.status_code == 201, confirmed.text
    twice = client.post("/fhir/Task", json=task(prescription.epu, person.ins.value), headers=JSON)
    assert twice.status_code == 422 and twice.json()["issue"][0]["code"] == "duplicate"
    refused_twice = journal.query(JournalFilter(operation="eprescription.import_confirmed"))[-1]
    assert (refused_twice.outcome, refused_twice.error_code) == (Outcome.REJECTED, "EP-DEJA-INTEGREE")
    imports = journal.query(
        JournalFilter(service="eprescription", operation="eprescription.import_confirmed", outcome=Outcome.ACCEPTED)
    )
    assert len(imports) == 1
    assert (imports[0].person, imports[0].essms) == (person.ins.value, FINESS)  # INS (15 chars) and FINESS
    retrievals = journal.query(JournalFilter(service="eprescription", operation="eprescription.retrieve"))
    assert retrievals[0].person == person.ins.value and retrievals[0].details["found"] is True
    assert journal.count(JournalFilter(operation="eprescription.import_confirmed", outcome=Outcome.REJECTED)) == 2


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("other-person", "EP-PATIENT-DIFFERENT"),
        ("cancelled", "EP-ORDONNANCE-ANNULEE"),
        ("unknown", "EP-ORDONNANCE-INCONNUE"),
    ],
)
def test_confirmations_the_service_refuses(sim, testdata: TestData, case: str, code: str) -> None:  # noqa: ANN001
    client, service, journal = sim
    person = testdata.person("Jeanne MARTIN")
    prescription = service.issue(testdata.person("Paul LEROY") if case == "other-person" else person)
    if case == "cancelled":
        service.cancel(prescription.epu)
    epu = service.unknown_epu() if case == "unknown" else prescription.epu
    retrieve(client, epu)
    response = client.post("/fhir/Task", json=task(epu, person.ins.value), headers=JSON)
    assert response.status_code == 422 and code in response.text
    assert response.json()["issue"][0]["code"] == "business-rule"
    refused = journal.query(JournalFilter(operation="eprescription.import_confirmed"))[-1]
    assert refused.outcome is Outcome.REJECTED and refused.error_code == code


def test_refusal_by_the_dui_and_invalid_tasks(sim, testdata: TestData) -> None:  # noqa: ANN001
    client, service, journal = sim
    person = testdata.person("Jeanne MARTIN")
    prescription = service.issue(testdata.person("Paul LEROY"))
    refusal = client.post("/fhir/Task", json=task(prescription.epu, person.ins.value, status="rejected"), headers=JSON)
    assert refusal.status_code == 201
    assert journal.query(JournalFilter(operation="eprescription.import_refused"))[0].outcome is Outcome.ACCEPTED
    bad = task(prescription.epu, "238047505612395")  # wrong INS key
    bad["status"] = "in-progress"
    bad.pop("code")
    response = client.post("/fhir/Task", json=bad, headers=JSON)
    assert response.status_code == 422
    codes = {f.code for f in check_confirmation(bad) if f.severity is Severity.ERROR}
    assert {"EP-TASK-STATUS", "EP-TASK-CODE", "EP-TASK-INS-KEY"} <= codes
    garbage = client.post(
        "/fhir/Task",
        content=b"<Task xmlns='http://hl7.org/fhir'><status value='completed'/>",
        headers={"content-type": "application/fhir+xml"},
    )
    assert garbage.status_code == 400
    assert (
        client.post("/fhir/MedicationRequest", json={"resourceType": "MedicationRequest"}, headers=JSON).status_code
        == 405
    )


def test_cda_document_retrieval(sim, testdata: TestData) -> None:  # noqa: ANN001
    client, service, journal = sim
    person = testdata.person("Lucie BONNET")
    prescription = service.issue(person, lines=2)
    raw = client.get(f"/fhir/Binary/{prescription.epu}", headers={"accept": "application/xml"})
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("application/xml")
    document = read_prescription_cda(raw.content)
    assert document.findings == [] and document.epu == prescription.epu
    assert document.ins is not None and document.ins.value == person.ins.value and len(document.lines) == 2
    assert check_french_header(parse_xml(raw.content)) == []
    wrapped = client.get(f"/fhir/Binary/{prescription.epu}", headers={"accept": "application/fhir+json"}).json()
    assert wrapped["resourceType"] == "Binary" and base64.b64decode(wrapped["data"]) == raw.content
    assert client.get(f"/fhir/Binary/{service.unknown_epu()}").status_code == 404
    service.cancel(prescription.epu)
    gone = client.get(f"/fhir/Binary/{prescription.epu}")
    assert gone.status_code == 410 and gone.json()["resourceType"] == "OperationOutcome"
    retrievals = journal.query(JournalFilter(operation="eprescription.retrieve"))
    assert [r.details["format"] for r in retrievals] == ["cda"] * 4
    assert [r.outcome for r in retrievals] == [Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.REJECTED, Outcome.REJECTED]


def test_cancelled_prescription_lines_are_cancelled(sim, testdata: TestData) -> None:  # noqa: ANN001
    client, service, _ = sim
    prescription = service.issue(testdata.person("P001"))
    service.cancel(prescription.epu)
    lines = [
        e["resource"]
        for e in retrieve(client, prescription.epu)["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest"
    ]
    assert (
        lines
        and {line["status"] for line in lines} == {"cancelled"}
        and all(line["meta"]["versionId"] == "2" for line in lines)
    )


def test_qr_code_and_recette_pages(sim, testdata: TestData) -> None:  # noqa: ANN001
    import segno

    client, service, journal = sim
    prescription = service.issue(testdata.person("P001"))
    png = client.get(f"/ordonnances/{prescription.epu}/qr.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert png.content == qr_png(prescription.epu)
    assert segno.make(prescription.epu, error="m", micro=False).designator  # the payload fits a standard QR code
    page = client.get(f"/ordonnances/{prescription.epu}")
    assert page.status_code == 200 and prescription.epu in page.text and "qr.png" in page.text
    assert prescription.epu in client.get("/ordonnances").text
    order = json.dumps({"personne": "Paul LEROY", "lignes": 1})
    for headers in ({}, {"Authorization": "Bearer autre"}):  # issue 15 item 2: the admin token, always
        refused = client.post("/_admin/ordonnances", content=order, headers=headers)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith(
            'Bearer realm="socle-harness-admin"'
        )
    assert len(service.prescriptions) == 1
    created = client.post("/_admin/ordonnances", content=order, headers=ADMIN)
    assert created.status_code == 201 and service.prescription(created.json()["epu"]) is not None
    assert client.post("/_admin/ordonnances", content=b"{", headers=ADMIN).status_code == 400
    rows = journal.query(JournalFilter(operation="admin.ordonnance"))
    assert [(r.outcome, r.error_code) for r in rows] == [
        (Outcome.REJECTED, "invalid_request"),
        (Outcome.REJECTED, "invalid_token"),
        (Outcome.ACCEPTED, None),
        (Outcome.REJECTED, "400"),
    ]
    assert client.get("/ordonnances/INCONNU/qr.png").status_code == 404


def test_recette_pages_require_the_establishment_certificate(sim, testdata: TestData) -> None:  # noqa: ANN001
    """The printable pages authenticate like the rest of the API (issue 19: every endpoint): without a client
    certificate, 403 OperationOutcome ``login`` journaled ``eprescription.page``; with another establishment's
    certificate, the prescription of its person is as unknown (404, left out of the list), as for ``Binary``."""
    from fhir_access import SSIAD

    client, service, journal = sim
    prescription = service.issue(testdata.person("P001"))
    epu = prescription.epu
    paths = ("/ordonnances", f"/ordonnances/{epu}", f"/ordonnances/{epu}/qr.png")
    with TestClient(presenting(service.app(), None)) as anonymous:
        answers = [anonymous.get(path) for path in paths]
    assert [(a.status_code, a.headers["content-type"]) for a in answers] == [
        (403, "application/fhir+json; charset=utf-8")
    ] * 3
    assert {a.json()["issue"][0]["code"] for a in answers} == {"login"}
    assert all(epu not in a.text and prescription.person.family not in a.text for a in answers)
    rows = journal.query(JournalFilter(operation="eprescription.page"))
    assert [(r.outcome, r.essms, r.error_code, r.details["path"]) for r in rows] == [
        (Outcome.REJECTED, None, "FHIR-CERTIFICAT-ABSENT", path) for path in paths
    ]
    with TestClient(presenting(service.app(), essms(SSIAD))) as other:
        assert [other.get(path).status_code for path in paths[1:]] == [404, 404]
        assert epu not in other.get("/ordonnances").text
    assert [client.get(path).status_code for path in paths] == [200, 200, 200]  # its own establishment's
    assert len(journal.query(JournalFilter(operation="eprescription.page"))) == 3  # served pages are not journaled


def test_corpus_eprescription_documents_are_read(corpus_dir: Path) -> None:
    for name in ("eP-MED-DM_2024.01_PosoStruct.xml", "eP-MED-DM_2024.01_PosoNonStruct.xml"):
        path = corpus_dir / "cisis-cda" / "examples" / name
        if not path.is_file():
            pytest.skip(f"exemple ANS absent du corpus : {path}")
        document = read_prescription_cda(path.read_bytes())
        assert document.ok, [str(f) for f in document.findings]
        assert is_epu(document.epu) and document.ins is not None and len(document.lines) >= 1
        assert document.lines[0].display and document.author_rpps


def test_garbage_documents_never_raise() -> None:
    for data in (b"", b"<x/>", b"<!DOCTYPE x><x/>", b"\x00\x01", b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>"):
        document = read_prescription_cda(data)
        assert not document.ok


def test_ep_med_dm_document_passes_its_ci_sis_schematron(sim, testdata: TestData, corpus_dir: Path) -> None:  # noqa: ANN001
    """The CDA the simulator serves passes CI-SIS_EP-MED-DM_2024.01.sch (TestContenuCDA): patient address and
    telecom, FR-En-rapport-avec-ALD in each medicine entry, the section FR-Document-PDF-copie."""
    pytest.importorskip("saxonche", reason="saxonche (XSLT 3.0) absent: the CI-SIS schematrons cannot run")
    from harness.validators.schematron import SchematronEngine

    schematrons = corpus_dir / "cisis-cda" / "schematrons"
    if not (schematrons / "CI-SIS_EP-MED-DM_2024.01.sch").is_file():
        pytest.skip(f"schématron absent du corpus : {schematrons}")
    _, service, _ = sim
    prescription = service.issue(testdata.person("Lucie BONNET"), lines=3)
    engine = SchematronEngine(schematrons)
    root = parse_xml(cda_document(prescription))
    assert engine.missing_files("EP-MED-DM_2024.01") == []  # the commented-out value set is not needed
    assert engine.validate(root, "EP-MED-DM_2024.01") == []
    ns = {"h": "urn:hl7-org:v3"}
    (media,) = root.xpath(
        "//h:section[h:templateId/@root='1.2.250.1.213.1.1.2.243']//h:observationMedia/h:value", namespaces=ns
    )
    assert media.get("mediaType") == "application/pdf"
    assert base64.b64decode(media.text) == pdf_copy(prescription)


def test_pdf_copy_is_a_well_formed_pdf(testdata: TestData) -> None:
    import random
    from datetime import UTC, datetime

    from mock_services.eprescription.prescriptions import generate

    prescription = generate(
        testdata.person("Lucie BONNET"), rng=random.Random(4), authored=datetime(2025, 4, 1, tzinfo=UTC)
    )
    pdf = pdf_copy(prescription)
    assert pdf.startswith(b"%PDF-1.4\n") and pdf.endswith(b"%%EOF\n")
    xref = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    table = pdf[xref:].split(b"trailer")[0].split(b"\n")
    assert table[0] == b"xref" and table[1] == b"0 6" and table[2] == b"0000000000 65535 f "
    for number, entry in enumerate(table[3:8], start=1):  # every offset points at its object
        assert len(entry) + 1 == 20 and pdf[int(entry[:10]) :].startswith(f"{number} 0 obj\n".encode())
    length = int(pdf.split(b"/Length ")[1].split(b" ")[0])
    stream = pdf.split(b"stream\n", 1)[1][:length]
    assert pdf.split(b"stream\n", 1)[1][length:].startswith(b"\nendstream")
    assert f"EPU {prescription.epu}".encode() in stream and "né\\(e\\)".encode("latin-1") in stream  # escaped


def test_a_missing_value_set_is_named_with_the_file_of_a_close_name(tmp_path: Path) -> None:
    """A value set a schematron really reads is reported missing (warning, never a silent pass), naming the file
    of a close name the folder holds; one it only names in a comment is not needed."""
    from harness.validators.schematron import SchematronEngine

    (tmp_path / "schematrons").mkdir()
    (tmp_path / "jeuxDeValeurs").mkdir()
    (tmp_path / "jeuxDeValeurs" / "JDV_HL7_SeverityObservationCode_CISIS.xml").write_text("<x/>", encoding="utf-8")
    (tmp_path / "schematrons" / "CI-SIS_TEST_2024.01.sch").write_text(
        '<schema xmlns="http://purl.oclc.org/dsdl/schematron" queryBinding="xslt2"><pattern id="p">'
        '<!--<let name="old" value="\'../jeuxDeValeurs/JDV_Commented-CISIS.xml\'"/>-->'
        '<let name="jdv" value="\'../jeuxDeValeurs/JDV_HL7_SeverityObservation-CISIS.xml\'"/>'
        '<rule context="/"><assert test="true()">ok</assert></rule></pattern></schema>',
        encoding="utf-8",
    )
    engine = SchematronEngine(tmp_path / "schematrons")
    assert engine.missing_files("TEST_2024.01") == ["jeuxDeValeurs/JDV_HL7_SeverityObservation-CISIS.xml"]
    findings = engine.validate(parse_xml(b"<x/>"), "TEST_2024.01")
    assert [(f.code, f.severity) for f in findings] == [("SCH-UNAVAILABLE", Severity.WARNING)]
    assert findings[0].message == (
        "contenu non vérifié par schématron : schématron CI-SIS_TEST_2024.01.sch incomplet, fichiers absents: "
        "jeuxDeValeurs/JDV_HL7_SeverityObservation-CISIS.xml (le dossier contient "
        "JDV_HL7_SeverityObservationCode_CISIS.xml)"
    )


def test_a_production_ins_follows_the_harness_wide_policy(sim, testdata: TestData) -> None:  # noqa: ANN001
    """issue 20: the default ``warn`` accepts a confirmation naming the person under .4.8 with an INS-PRODUCTION
    warning; ``refuse`` answers 422."""
    from harness.fields.identity import ProductionInsPolicy

    client, service, journal = sim
    person = testdata.person("Jeanne MARTIN")
    for policy, status in ((ProductionInsPolicy.REFUSE, 422), (ProductionInsPolicy.WARN, 201)):
        prescription = service.issue(person)
        retrieve(client, prescription.epu)
        resource = task(prescription.epu, person.ins.value)
        resource["for"]["identifier"]["system"] = "urn:oid:1.2.250.1.213.1.4.8"
        service.production_ins = policy
        response = client.post("/fhir/Task", json=resource, headers=JSON)
        assert response.status_code == status, response.text
        [exchange] = journal.query(JournalFilter(service="eprescription", operation="eprescription.import_confirmed"))[
            -1:
        ]
        found = [  # refused: the OperationOutcome issues; accepted: the warnings as findings
            (coding["code"], issue["severity"])
            for issue in exchange.details.get("issues", [])
            for coding in (issue.get("details") or {}).get("coding", [])
            if coding["code"] == "INS-PRODUCTION"
        ] + [(f["code"], f["severity"]) for f in exchange.details.get("findings", []) if f["code"] == "INS-PRODUCTION"]
        assert found == [("INS-PRODUCTION", "error" if status == 422 else "warning")], exchange.details
