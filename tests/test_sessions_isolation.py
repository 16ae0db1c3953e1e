"""No session reads another's data (issue 19 item 4): a DMP consultation (ITI-18, ITI-43) or feed (ITI-41) of a
patient of another open session and a FHIR read or search of a resource whose owner is in another session are refused in the
service's own error shape and journaled; without sessions, or once the other session is closed, the same reads
are served as before."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fhir_access import essms, presenting
from starlette.testclient import TestClient
from test_dmp import TESTDATA, Dmp
from test_eparcours import FINESS, JSON, _context, _restful_note, actors, note, testdata  # noqa: F401 - fixture
from test_eprescription import task
from test_tddui import EST, JEANNE, as_bytes, export
from test_tddui import HEADERS as TDDUI_HEADERS
from test_tddui import _sim as _tddui_sim

from harness.core.journal import JournalFilter, Outcome
from harness.core.sessions import Members
from harness.fields import dui
from harness.fields.testdata import TestData
from harness.sut.base import ActionStatus, DmpFeed, DmpQuery, DmpUpdate
from harness.sut.reference import FaultyDUI
from harness.validators.eprescription import EPU_SYSTEM
from mock_services.eparcours import EparcoursSimulator
from mock_services.eprescription import EprescriptionSimulator

INS = "238047505612394"  # the patient of tests/test_eparcours.py's notes


@pytest.fixture
def eparcours(tmp_path: Path, testdata: TestData) -> Iterator[tuple[TestClient, Any, Any]]:  # noqa: F811
    ctx, journal = _context(tmp_path, testdata)
    simulator = EparcoursSimulator(ctx)
    with TestClient(presenting(simulator.http_app(), essms(FINESS))) as client:
        yield client, ctx, journal
    journal.close()


def test_a_fhir_resource_of_another_session_is_refused_to_read_and_left_out_of_searches(eparcours) -> None:  # noqa: ANN001
    client, ctx, journal = eparcours
    note_id, _ = _restful_note(client)  # written before any session: the EHPAD's note about the patient
    search = f"/fhir/DocumentReference?patient.identifier=urn:oid:1.2.250.1.213.1.4.10|{INS}"
    assert client.get(f"/fhir/DocumentReference/{note_id}").status_code == 200
    assert _matched(client.get(search).json()) == [note_id]
    mine = ctx.session_book.create("DUI de l'EHPAD", Members(essms=(FINESS,)))
    theirs = ctx.session_book.create("Autre DUI", Members(patients=(INS,)))
    refused = client.get(f"/fhir/DocumentReference/{note_id}")
    assert refused.status_code == 403
    [issue] = refused.json()["issue"]
    assert (issue["code"], issue["details"]["coding"][0]["code"]) == ("forbidden", "FHIR-AUTRE-SESSION")
    assert issue["diagnostics"] == (
        f"patient (INS) {INS} appartient à une autre session de test que ESSMS {FINESS} (session {mine.id}) : ses "
        "données ne lui sont pas accessibles / the data belongs to another test session"
    )
    assert client.get(f"/fhir/DocumentReference/{note_id}/_history/1").status_code == 403
    assert client.get(f"/fhir/DocumentReference/{note_id}/_history").status_code == 403
    found = client.get(search).json()
    assert (found.get("total"), found.get("entry", [])) == (None, [])
    assert client.get(f"{search}&_total=accurate").json()["total"] == 0  # the count is what the caller may see
    [journaled] = journal.query(JournalFilter(service="eparcours", outcome=Outcome.REJECTED))[:1]
    assert (journaled.error_code, journaled.essms, journaled.session_id) == ("FHIR-AUTRE-SESSION", FINESS, mine.id)
    ctx.session_book.close(theirs.id)  # the patient is free again: served as before
    assert client.get(f"/fhir/DocumentReference/{note_id}").status_code == 200
    assert _matched(client.get(search).json()) == [note_id]


def _matched(bundle: dict[str, Any]) -> list[str]:
    """The ids of a searchset's matches; no ``total`` (none asked: the simulators' default ``search_total``)."""
    assert "total" not in bundle, bundle
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def test_a_fhir_resource_of_another_session_is_not_written(eparcours) -> None:  # noqa: ANN001
    """Creating a resource that names another session's patient (by its INS, or by a literal reference to its
    Patient), replacing or deleting one it owns: 403 FHIR-AUTRE-SESSION, nothing written."""
    client, ctx, journal = eparcours
    note_id, ids = _restful_note(client)
    existing = client.get(f"/fhir/DocumentReference/{note_id}").json()
    mine = ctx.session_book.create("DUI de l'EHPAD", Members(essms=(FINESS,)))
    theirs = ctx.session_book.create("Autre DUI", Members(patients=(INS,)))
    refusal = (
        f"patient (INS) {INS} appartient à une autre session de test que ESSMS {FINESS} (session {mine.id}) : ses "
        "données ne lui sont pas accessibles / the data belongs to another test session"
    )
    written = [
        client.post("/fhir/Patient", json=actors()["Patient"], headers=JSON),  # names the INS
        client.post(  # names it only as Patient/<id>
            "/fhir/DocumentReference",
            json=note(f"Patient/{ids['Patient']}", f"PractitionerRole/{ids['PractitionerRole']}"),
            headers=JSON,
        ),
        client.put(f"/fhir/DocumentReference/{note_id}", json=existing, headers=JSON),
        client.delete(f"/fhir/DocumentReference/{note_id}"),
        client.post(  # a conditional create would answer with the Patient it matches
            "/fhir/Patient",
            json=actors()["Patient"],
            headers={**JSON, "If-None-Exist": f"identifier=urn:oid:1.2.250.1.213.1.4.10|{INS}"},
        ),
    ]
    assert [_forbidden(r) for r in written] == [refusal] * 5
    assert [e.error_code for e in journal.query(JournalFilter(service="eparcours", session=mine.id))] == [
        "FHIR-AUTRE-SESSION"
    ] * 5
    ctx.session_book.close(theirs.id)
    assert client.get(f"/fhir/DocumentReference/{note_id}").json()["meta"]["versionId"] == "1"
    assert client.delete(f"/fhir/DocumentReference/{note_id}").status_code == 200


@pytest.fixture(scope="module")
def dmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dmp]:
    running = Dmp(tmp_path_factory.mktemp("dmp-sessions"))
    yield running
    running.background.stop()
    running.journal.close()


def test_a_dmp_consultation_of_a_patient_of_another_session_is_refused(dmp: Dmp) -> None:
    person = TESTDATA.persons[0]
    author = TESTDATA.establishment(person.essms)
    other = next(e for e in TESTDATA.establishments if e.finess != author.finess)
    fed = dmp.dui.dmp_feed(DmpFeed(person, author, "DLU"))
    assert fed.status is ActionStatus.DONE, fed.detail
    unique_id = fed.data["unique_id"]
    assert dmp.dui.dmp_find(DmpQuery(person, author)).status is ActionStatus.DONE  # the DUI learns the repository
    book = dmp.host.sessions
    theirs = book.create("DUI A", Members(essms=(author.finess,), patients=(person.ins.value,)))
    mine = book.create("DUI B", Members(essms=(other.finess,)))
    found = dmp.dui.dmp_find(DmpQuery(person, other))
    retrieved = dmp.dui.dmp_retrieve(DmpQuery(person, other, unique_id=unique_id))
    assert (found.status, retrieved.status) == (ActionStatus.FAILED, ActionStatus.FAILED)
    refusals = dmp.journal.query(JournalFilter(service="dmp", session=mine.id, outcome=Outcome.REJECTED))
    refusal = (
        f"patient (INS) {person.ins.value} appartient à une autre session de test que ESSMS {other.finess} (session "
        f"{mine.id}) : ses données ne lui sont pas accessibles / the data belongs to another test session"
    )
    assert [(e.operation, e.error_code, e.error_message) for e in refusals] == [
        ("iti18.registry_stored_query", "DMPAccessDenied", f"recherche des documents refusée : {refusal}"),
        (
            "iti43.retrieve_document_set",
            "DMPAccessDenied",
            f"récupération du document {unique_id} refusée : {refusal}",
        ),
    ]
    own = dmp.dui.dmp_find(DmpQuery(person, author))  # the session of the patient reads it
    assert own.status is ActionStatus.DONE and unique_id in {d["unique_id"] for d in own.data["documents"]}
    assert {e.session_id for e in dmp.journal.query(JournalFilter(service="dmp"))[-1:]} == {theirs.id}
    stopped = dmp.dui.dmp_feed(DmpFeed(person, other, "DLU"))  # the reference DUI stops at TD0.2's refusal
    assert (stopped.status, stopped.detail, stopped.data["td02"]["query_response"]) == (
        ActionStatus.FAILED,
        "accès au DMP refusé (DMPAccessDenied) : document non versé",
        "AE",
    )
    skipping_td02 = FaultyDUI(frozenset({"ignore-dmp-ferme"}))  # goes on to ITI-41 whatever TD0.2 answers
    skipping_td02.setup(dmp.env)
    fed_elsewhere = skipping_td02.dmp_feed(DmpFeed(person, other, "DLU"))  # feeding it is refused too
    assert fed_elsewhere.status is ActionStatus.DONE and "DMPAccessDenied" in fed_elsewhere.data["hidden_failure"]
    feed_refusals = dmp.journal.query(JournalFilter(service="dmp", session=mine.id, outcome=Outcome.REJECTED))[2:]
    assert [(e.operation, e.outcome, e.error_code, e.error_message) for e in feed_refusals] == [
        ("td02.test_existence", Outcome.REJECTED, "DMPAccessDenied", f"test d'existence du DMP refusée : {refusal}"),
        ("td02.test_existence", Outcome.REJECTED, "DMPAccessDenied", f"test d'existence du DMP refusée : {refusal}"),
        ("iti41.provide_and_register", Outcome.REJECTED, "DMPAccessDenied", f"alimentation du DMP refusée : {refusal}"),
    ]
    masked = dmp.dui.dmp_update(DmpUpdate(person, other, unique_id, "masquer"))  # and so is an ITI-57 update
    assert masked.status is ActionStatus.FAILED
    [update_refusal] = dmp.journal.query(JournalFilter(service="dmp", operation="iti57.update_document_set"))
    assert (update_refusal.outcome, update_refusal.error_code, update_refusal.error_message) == (
        Outcome.REJECTED,
        "DMPAccessDenied",
        f"mise à jour du document {unique_id} refusée : {refusal}",
    )
    assert (update_refusal.session_id, dmp.sim.store.by_unique_id(unique_id).version) == (mine.id, 1)
    book.close(theirs.id)
    again = dmp.dui.dmp_find(DmpQuery(person, other))  # no other session holds the patient any more
    assert again.status is ActionStatus.DONE and unique_id in {d["unique_id"] for d in again.data["documents"]}
    book.close(mine.id)


@pytest.fixture
def eprescription(tmp_path: Path, testdata: TestData) -> Iterator[tuple[TestClient, Any, Any]]:  # noqa: F811
    ctx, journal = _context(tmp_path, testdata)
    ctx = replace(ctx, name="eprescription", http_base="https://127.0.0.1/eprescription")
    simulator = EprescriptionSimulator(ctx)
    with TestClient(presenting(simulator.http_app(), essms(FINESS))) as client:
        yield client, simulator.service, journal
    journal.close()


def _forbidden(response: Any) -> str:
    """The diagnostics of a 403 OperationOutcome ``forbidden`` / ``FHIR-AUTRE-SESSION`` (fails on anything else)."""
    assert response.status_code == 403, response.status_code
    [issue] = response.json()["issue"]
    assert (issue["code"], issue["details"]["coding"][0]["code"]) == ("forbidden", "FHIR-AUTRE-SESSION")
    return str(issue["diagnostics"])


def test_a_prescription_of_another_session_is_refused_as_cda_page_qr_and_lines(eprescription, testdata) -> None:  # noqa: ANN001, F811
    client, service, journal = eprescription
    prescription = service.issue(testdata.person("P001"), lines=2)
    epu, line = prescription.epu, prescription.lines[0].id
    lines = f"/fhir/MedicationRequest?group-identifier={EPU_SYSTEM}|{epu}"
    served = [
        client.get(f"/fhir/Binary/{epu}").status_code,
        client.get(f"/ordonnances/{epu}").status_code,
        client.get(f"/ordonnances/{epu}/qr.png").status_code,
        client.get(f"/fhir/MedicationRequest/{line}").status_code,
        _matched(client.get(lines).json()),
    ]
    ids = [line.id for line in prescription.lines]
    assert served == [200, 200, 200, 200, ids] and epu in client.get("/ordonnances").text
    mine = service.ctx.session_book.create("DUI de l'EHPAD", Members(essms=(FINESS,)))
    theirs = service.ctx.session_book.create("Autre DUI", Members(patients=(INS,)))
    refusal = (
        f"patient (INS) {INS} appartient à une autre session de test que ESSMS {FINESS} (session {mine.id}) : ses "
        "données ne lui sont pas accessibles / the data belongs to another test session"
    )
    assert _forbidden(client.get(f"/fhir/Binary/{epu}")) == refusal
    [journaled] = journal.query(JournalFilter(operation="eprescription.retrieve"))[-1:]
    assert (journaled.outcome, journaled.error_code, journaled.session_id) == (
        Outcome.REJECTED,
        "FHIR-AUTRE-SESSION",
        mine.id,
    )
    page, qr = client.get(f"/ordonnances/{epu}"), client.get(f"/ordonnances/{epu}/qr.png")
    assert (_forbidden(page), _forbidden(qr)) == (refusal, refusal) and prescription.person.family not in page.text
    assert page.headers["content-type"] == "application/fhir+json; charset=utf-8"
    refused_pages = journal.query(JournalFilter(operation="eprescription.page"))
    assert [(r.outcome, r.error_code, r.essms, r.person, r.session_id, r.details["epu"]) for r in refused_pages] == [
        (Outcome.REJECTED, "FHIR-AUTRE-SESSION", FINESS, INS, mine.id, epu)
    ] * 2
    assert epu not in client.get("/ordonnances").text
    # the lines name their patient only by a literal reference (subject Patient/<id>, no INS): read in the store
    assert _forbidden(client.get(f"/fhir/MedicationRequest/{line}")) == refusal
    found = client.get(lines).json()
    assert (found.get("total"), found.get("entry", [])) == (None, [])
    # nor may it confirm (integrate) it: the prescription's state is the other session's
    assert _forbidden(client.post("/fhir/Task", json=task(epu, INS), headers=JSON)) == refusal
    assert service.confirmed == {}
    service.ctx.session_book.close(theirs.id)  # the patient is free again: served as before
    assert client.get(f"/fhir/Binary/{epu}").status_code == 200
    assert client.get(f"/fhir/MedicationRequest/{line}").status_code == 200
    assert (_matched(client.get(lines).json()), client.get(f"/ordonnances/{epu}").status_code) == (ids, 200)


@pytest.fixture
def tddui(tmp_path: Path) -> Iterator[tuple[TestClient, Any, Any]]:
    yield from _tddui_sim(tmp_path, {})


def test_a_tddui_bundle_about_another_sessions_person_is_refused(tddui) -> None:  # noqa: ANN001
    """TDDUI writes: a Bundle naming a person (INS) of another open session than the sending establishment's is
    refused (403 forbidden, FHIR-AUTRE-SESSION), none of its facts journaled; served once that session is closed."""
    client, journal, ctx = tddui
    mine = ctx.session_book.create("DUI de l'EHPAD", Members(essms=(EST.finess,)))
    theirs = ctx.session_book.create("Autre DUI", Members(patients=(JEANNE.ins.value,)))
    refused = client.post("/", content=as_bytes(export()), headers=TDDUI_HEADERS)
    refusal = (
        f"patient (INS) {JEANNE.ins.value} appartient à une autre session de test que ESSMS {EST.finess} (session "
        f"{mine.id}) : ses données ne lui sont pas accessibles / the data belongs to another test session"
    )
    assert refused.status_code == 403
    assert [(i["code"], i["diagnostics"]) for i in refused.json()["issue"]] == [
        ("forbidden", f"FHIR-AUTRE-SESSION: {refusal}")
    ]
    [journaled] = journal.query(JournalFilter())  # the Bundle's refusal, none of its facts
    assert (journaled.operation, journaled.outcome, journaled.error_code, journaled.session_id) == (
        dui.OP_TRANSACTION,
        Outcome.REJECTED,
        "403",  # TDDUI journals the HTTP status, the finding in its details and message
        mine.id,
    )
    assert journaled.error_message == f"FHIR-AUTRE-SESSION: {refusal}"
    ctx.session_book.close(theirs.id)
    assert client.post("/", content=as_bytes(export()), headers=TDDUI_HEADERS).status_code == 200
