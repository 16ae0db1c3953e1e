"""Per-request work that does not grow with data that is not the request's own (issue 18: a flat cost per request
as the run's data grows): other persons' DMP documents, other establishments' prescriptions.

Each test counts the work a request does on records that are not its own — attribute reads of other persons'
documents — never a wall time: the count is zero whatever the store holds, and an index that would fall behind
the store (an operation applied, a restore, a reset) shows as a wrong answer; the prescriptions of the run are
watched as a whole (any pass over them counts)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir_access import essms, presenting
from starlette.testclient import TestClient

from harness.core.journal import SQLiteJournal
from harness.fields.identity import INS
from harness.fields.testdata import load_testdata
from harness.host.simulator import FaultBoard, RunState, SimulatorContext
from mock_services.dmp.store import DmpStore, StoredDocument
from mock_services.eprescription import EprescriptionSimulator

REPO = Path(__file__).resolve().parents[1]
TESTDATA = load_testdata(REPO / "fixtures")


# DMP registry: ITI-18 FindDocuments reads the patient's documents only ----------------------------------------------
def _document(n: int, ins: INS, cls: type[StoredDocument] = StoredDocument) -> StoredDocument:
    return cls(
        entry_uuid=f"urn:uuid:{n}",
        unique_id=f"1.2.{n}",
        patient=ins.value,
        patient_oid=ins.oid,
        patient_cx=ins.to_xds(),
        repository_unique_id="r",
        mime_type="text/xml",
        data=b"<ClinicalDocument/>",
        hash="h",
        size=19,
        type_code="t",
        metadata=b"<rim:ExtrinsicObject/>",
        essms=None,
    )


def test_find_documents_reads_none_of_the_other_patients_documents() -> None:
    reads: list[str] = []

    @dataclass(frozen=True)
    class Watched(StoredDocument):
        """Another patient's document that notes every attribute read of it."""

        def __getattribute__(self, name: str) -> Any:
            if not name.startswith("__"):
                reads.append(name)
            return super().__getattribute__(name)

    mine, same_digits = TESTDATA.persons[0].ins, TESTDATA.persons[1].ins
    nia = INS(same_digits.number, same_digits.key, "1.2.250.1.213.1.4.9")  # the same 15 digits, another DMP
    store = DmpStore()
    store.register([_document(n, TESTDATA.persons[2 + n % 3].ins, Watched) for n in range(100)])
    store.register([_document(100, mine), _document(101, same_digits)])
    store.register([_document(n, TESTDATA.persons[2 + n % 3].ins, Watched) for n in range(102, 200)])
    store.register([_document(200, mine), _document(201, nia), _document(202, mine)], deprecate=["urn:uuid:100"])
    store.unregister(["urn:uuid:202"], restore=["urn:uuid:100"])  # an ITI-41 whose exchange was not journaled
    store.change_status("urn:uuid:200", "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated")
    reads.clear()

    assert [(d.unique_id, d.status.rpartition(":")[2]) for d in store.documents(mine)] == [
        ("1.2.100", "Approved"),
        ("1.2.200", "Deprecated"),
    ]
    assert [d.unique_id for d in store.documents(same_digits)] == ["1.2.101"]
    assert [d.unique_id for d in store.documents(nia)] == ["1.2.201"]
    assert store.documents(INS(mine.number, mine.key, nia.oid)) == []  # no document under that OID
    assert reads == []  # not one attribute of the 198 other patients' documents

    again = DmpStore()  # a restored registry (another serving process's snapshot) keeps the same answers
    again.restore(store.snapshot())
    assert [d.unique_id for d in again.documents(mine)] == ["1.2.100", "1.2.200"]
    assert [d.unique_id for d in again.documents(nia)] == ["1.2.201"]
    assert len(again.documents()) == 202
    again.restore({"persons": [], "documents": []})
    assert (again.documents(mine), again.documents()) == ([], [])


# e-Prescription: a Patient read resolves its establishment without going through the run's prescriptions -----------
class Passes(dict):  # type: ignore[type-arg]
    """The prescriptions of the run, counting every pass over them."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.passes = 0

    def __iter__(self) -> Any:
        self.passes += 1
        return super().__iter__()

    def values(self) -> Any:
        self.passes += 1
        return super().values()

    def items(self) -> Any:
        self.passes += 1
        return super().items()


def test_a_patient_read_goes_through_none_of_the_runs_prescriptions(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "journal.sqlite")
    ctx = SimulatorContext(
        name="eprescription",
        journal=journal,
        pki=None,  # type: ignore[arg-type]
        bind_host="127.0.0.1",
        ports={},
        http_base="https://127.0.0.1/eprescription",
        faults=FaultBoard(),
        run=RunState("run1"),
        testdata=TESTDATA,
    )
    simulator = EprescriptionSimulator(ctx)
    service = simulator.service
    mine = TESTDATA.persons[0]
    elsewhere = next(e.finess for e in TESTDATA.establishments if e.finess != mine.essms)
    others = [service.issue(service.other_person(elsewhere), lines=1) for _ in range(30)]
    first = service.issue(mine, lines=1)
    service.issue(mine, lines=1)
    service.prescriptions = Passes(service.prescriptions)
    try:
        with TestClient(presenting(simulator.http_app(), essms(mine.essms))) as client:
            assert client.get(f"/fhir/Patient/{first.ids['patient']}").status_code == 200
            assert client.get(f"/fhir/Patient/{others[-1].ids['patient']}").status_code == 404  # another's person
        assert service.prescriptions.passes == 0

        snapshot = service.snapshot()  # a restored state (another serving process's) resolves the same way
        service.restore({"prescriptions": [], "retrieved": [], "confirmed": {}})
        with TestClient(presenting(simulator.http_app(), essms(mine.essms))) as client:
            assert client.get(f"/fhir/Patient/{first.ids['patient']}").status_code == 404  # no prescription now
            service.restore(snapshot)
            assert client.get(f"/fhir/Patient/{first.ids['patient']}").status_code == 200
            assert client.get(f"/fhir/Patient/{others[0].ids['patient']}").status_code == 404
    finally:
        journal.close()
