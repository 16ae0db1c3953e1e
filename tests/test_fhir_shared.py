"""The FHIR resource store shared by two serving processes on one PostgreSQL database (issue 19 item 2): a note
created on A (e-Parcours) is read and found by search on B; an update on B with the If-Match of the version A
served is refused with 412 once A has updated in between; a unit of work that read a version another process
changed before its commit gets the 409 of FHIR's version conflict. e-Prescription's own state (prescriptions,
retrievals, confirmations) is shared the same way.

Two simulator contexts, each with its own :class:`PostgreSQLJournal` and state hub on the same database, stand for
two ``serve`` processes (the fixture ``pg_url`` skips, saying why, where PostgreSQL is absent)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fhir_access import essms, presenting
from starlette.testclient import TestClient

from harness.core.journal import JournalFilter
from harness.core.journal_pg import PostgreSQLJournal
from harness.core.state import StateHub, state_log_for
from harness.fhir.outcome import FhirError
from harness.fhir.store import ResourceStore
from harness.fields.testdata import load_testdata
from harness.host.simulator import FaultBoard, RunState, SimulatorContext
from mock_services.eparcours import EparcoursSimulator
from mock_services.eprescription import EprescriptionSimulator
from tests.test_eparcours import FINESS, JSON, REPO, _restful_note
from tests.test_eprescription import retrieve, task

TESTDATA = load_testdata(REPO / "fixtures")


def _worker(url: str, name: str) -> tuple[TestClient, Any, PostgreSQLJournal]:
    journal = PostgreSQLJournal(url)
    ctx = SimulatorContext(
        name="eparcours",
        journal=journal,
        pki=None,
        bind_host="127.0.0.1",
        ports={},  # type: ignore[arg-type]
        http_base="https://127.0.0.1/eparcours",
        faults=FaultBoard(),
        run=RunState(name),
        testdata=TESTDATA,
        settings={},
        state=StateHub(state_log_for(journal)),
    )
    simulator = EparcoursSimulator(ctx)
    return TestClient(presenting(simulator.http_app(), essms(FINESS))), simulator.service, journal


@pytest.fixture()
def workers(pg_url: str) -> Iterator[tuple[tuple[TestClient, Any, PostgreSQLJournal], ...]]:
    pair = (_worker(pg_url, "fhir-a"), _worker(pg_url, "fhir-b"))
    with pair[0][0], pair[1][0]:
        yield pair
    for _, _, journal in pair:
        journal.close()


def test_a_note_created_on_a_is_read_and_found_on_b_and_a_stale_if_match_is_refused(workers: Any) -> None:
    (a, a_service, _), (b, b_service, b_journal) = workers
    note_id, ids = _restful_note(a)
    seen = a.get(f"/fhir/DocumentReference/{note_id}")
    # B answered nothing so far: its read catches up with the store first
    read = b.get(f"/fhir/DocumentReference/{note_id}")
    assert (read.status_code, read.headers["etag"], read.json()) == (200, 'W/"1"', seen.json())
    found = b.get("/fhir/DocumentReference", params={"subject": f"Patient/{ids['Patient']}"}).json()
    assert [e["resource"]["id"] for e in found["entry"] if e["search"]["mode"] == "match"] == [note_id]
    chained = b.get("/fhir/DocumentReference", params={"subject:Patient.identifier": "238047505612394"}).json()
    assert [e["resource"]["id"] for e in chained["entry"] if e["search"]["mode"] == "match"] == [note_id]
    # A updates the note; B's update sent with the version A served is now stale: 412 (FHIR RESTful §3.1.0.4.3)
    changed = a.put(
        f"/fhir/DocumentReference/{note_id}",
        json={**seen.json(), "description": "modifié sur A"},
        headers={**JSON, "If-Match": 'W/"1"'},
    )
    assert changed.status_code == 200 and changed.json()["meta"]["versionId"] == "2"
    stale = b.put(
        f"/fhir/DocumentReference/{note_id}",
        json={**seen.json(), "description": "modifié sur B"},
        headers={**JSON, "If-Match": 'W/"1"'},
    )
    assert stale.status_code == 412, stale.text
    assert stale.json()["issue"][0]["details"]["coding"][0]["code"] == "FHIR-PRECONDITION"
    [refused] = [e for e in b_journal.query(JournalFilter(operation="cdl.update")) if e.run_id == "fhir-b"]
    assert refused.error_code == "FHIR-PRECONDITION"
    assert b_service.store.read("DocumentReference", note_id).resource["description"] == "modifié sur A"
    assert [v.version_id for v in b_service.store.history("DocumentReference", note_id)] == [1, 2]


def test_a_unit_of_work_overtaken_by_another_process_conflicts(pg_url: str) -> None:
    journals = [PostgreSQLJournal(pg_url), PostgreSQLJournal(pg_url)]
    try:
        a, b = (ResourceStore(state=StateHub(state_log_for(j)), stream="t.fhir") for j in journals)
        with a.exclusive() as uow:
            created = uow.create("Patient", {"gender": "female"})
            uow.commit()
        with b.exclusive() as late:  # reads version 1, then A commits version 2 before B's commit
            late.update("Patient", created.id, {"gender": "male"})
            with a.exclusive() as uow:
                uow.update("Patient", created.id, {"gender": "other"})
                uow.commit()
            with pytest.raises(FhirError) as conflict:
                late.commit()
        assert (conflict.value.status, conflict.value.error_code) == (409, "FHIR-CONFLICT")
        assert [v.resource["gender"] for v in b.history("Patient", created.id)] == ["female", "other"]
        assert b.current("Patient", created.id).last_updated == a.current("Patient", created.id).last_updated
    finally:
        for journal in journals:
            journal.close()


def _eprescription(url: str, name: str) -> tuple[TestClient, Any, PostgreSQLJournal]:
    journal = PostgreSQLJournal(url)
    ctx = SimulatorContext(
        name="eprescription",
        journal=journal,
        pki=None,
        bind_host="127.0.0.1",
        ports={},  # type: ignore[arg-type]
        http_base="https://127.0.0.1/eprescription",
        faults=FaultBoard(),
        run=RunState(name),
        testdata=TESTDATA,
        state=StateHub(state_log_for(journal)),
    )
    simulator = EprescriptionSimulator(ctx)
    return TestClient(presenting(simulator.http_app(), essms(FINESS))), simulator.service, journal


def test_a_prescription_issued_on_a_is_retrieved_on_b_and_confirmed_once_across_both(pg_url: str) -> None:
    (a, a_service, a_journal), (b, b_service, b_journal) = (
        _eprescription(pg_url, "ep-a"),
        _eprescription(pg_url, "ep-b"),
    )
    try:
        with a, b:
            person = TESTDATA.person("Jeanne MARTIN")
            issued = a_service.issue(person, lines=2)
            # the confirmation needs a retrieval first (EP-NON-RECUPEREE): the retrieval on B counts on A
            found = retrieve(b, issued.epu)
            assert "total" not in found and [
                e["resource"]["id"] for e in found["entry"] if e["search"]["mode"] == "match"
            ] == [line.id for line in issued.lines]
            assert b_service.prescription(issued.epu).lines == issued.lines
            confirmed = a.post("/fhir/Task", json=task(issued.epu, person.ins.value), headers=JSON)
            assert confirmed.status_code == 201, confirmed.text
            again = b.post("/fhir/Task", json=task(issued.epu, person.ins.value), headers=JSON)
            assert again.status_code == 422 and again.json()["issue"][0]["details"]["coding"][0]["code"] == (
                "EP-DEJA-INTEGREE"
            )
            b_service.cancel(issued.epu)
            assert a_service.prescription(issued.epu).status == "cancelled"
            statuses = {
                e["resource"]["status"] for e in retrieve(a, issued.epu)["entry"] if e["search"]["mode"] == "match"
            }
            assert statuses == {"cancelled"}
    finally:
        a_journal.close()
        b_journal.close()
