"""The stores' snapshots taken in two steps (harness.core.state, issue 18):
``capture()`` under the replica's lock, ``Deferred.build()`` outside it.

For each store: the built JSON is exactly what the snapshot built in one step under the lock gave (the reference
below restates that code, the stored format restore reads), a restore of it gives the same state again, and an
operation applied after the capture and before the build — one that replaces or changes a record in place, one
that grows or shrinks a container — does not show in what is built."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.core.state import Deferred, encode_snapshot
from harness.fields.testdata import TestData, load_testdata
from mock_services.dmp.store import (
    STATUS_DEPRECATED,
    Authorisation,
    BodyRef,
    DmpState,
    DmpStore,
    PersonDmp,
    StoredDocument,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def testdata() -> TestData:
    return load_testdata(REPO / "fixtures")


# DMP registry ------------------------------------------------------------------------------------------------------
def _document(n: int, *, shared: bool) -> StoredDocument:
    data = f"<ClinicalDocument n='{n}'/>".encode()
    return StoredDocument(
        entry_uuid=f"urn:uuid:{n}",
        unique_id=f"1.2.{n}",
        patient="1",
        patient_oid="o",
        patient_cx="1^^^&o&ISO",
        repository_unique_id="r",
        mime_type="text/xml",
        data=None if shared else data,
        hash=f"h{n}",
        size=len(data),
        type_code="t",
        metadata=b"<rim:ExtrinsicObject/>",
        essms=None,
        submitted_at=datetime(2026, 1, n, tzinfo=UTC),
        body=BodyRef(f"d{n}", 7, len(data)) if shared else None,
    )


def _dmp_reference(persons: list[PersonDmp], documents: list[StoredDocument]) -> dict[str, Any]:
    """The registry's snapshot as it was built under the lock before the capture (the stored format)."""
    return {
        "persons": [[p.ins, p.oid, p.state.value, p.authorisation.value] for p in persons],
        "documents": [
            {
                "entry_uuid": d.entry_uuid,
                "unique_id": d.unique_id,
                "patient": d.patient,
                "patient_oid": d.patient_oid,
                "patient_cx": d.patient_cx,
                "repository_unique_id": d.repository_unique_id,
                "mime_type": d.mime_type,
                "hash": d.hash,
                "size": d.size,
                "type_code": d.type_code,
                "metadata": d.metadata.decode(),
                "essms": d.essms,
                "status": d.status,
                "confidentiality": [list(c) for c in d.confidentiality],
                "version": d.version,
                "logical_id": d.logical_id,
                "submitted_at": d.submitted_at.isoformat(),
                "replaced": d.replaced,
                "is_signature": d.is_signature,
                "source_id": d.source_id,
                "body": [d.body.digest, d.body.offset, d.body.length] if d.body is not None else None,
                "data": base64.b64encode(d.data).decode("ascii") if d.data is not None else None,
            }
            for d in documents
        ],
    }


def test_the_dmp_registry_capture_builds_the_state_at_capture_time(testdata: TestData) -> None:
    initial, ins, other = (p.ins for p in testdata.persons[:3])
    store = DmpStore([PersonDmp(initial.value, initial.oid)])
    store.set_person(ins, state=DmpState.ACTIVE, authorisation=Authorisation.VALID)
    store.register([_document(1, shared=True), _document(2, shared=False)])
    store.register([_document(3, shared=True)], deprecate=["urn:uuid:1"])
    persons, documents = [store.person(initial), store.person(ins)], store.documents()
    before = _dmp_reference(persons, documents)
    assert [d["status"] for d in before["documents"]][0] == STATUS_DEPRECATED
    assert [(d["body"], d["data"]) for d in before["documents"]] == [
        (["d1", 7, 25], None),
        (None, base64.b64encode(b"<ClinicalDocument n='2'/>").decode("ascii")),
        (["d3", 7, 25], None),
    ]

    captured = store.capture()
    assert isinstance(captured, Deferred)
    store.set_person(ins, state=DmpState.CLOSED)  # a person replaced
    store.update_all(  # a document replaced by its next version, another one's status
        [
            {"entry_uuid": "urn:uuid:3", "version": 1, "confidentiality": [["N", "s"]], "metadata": "<m/>"},
            {"entry_uuid": "urn:uuid:2", "status": STATUS_DEPRECATED},
        ]
    )
    store.register([_document(4, shared=True)])  # the registry grows
    store.unregister(["urn:uuid:1"])  # and shrinks
    store.set_person(other, state=DmpState.ACTIVE)

    built = captured.build()
    assert built == before
    assert encode_snapshot(captured) == encode_snapshot(before)  # what Replica.do writes
    assert store.snapshot() == _dmp_reference([persons[0], store.person(ins), store.person(other)], store.documents())
    again = DmpStore()
    again.restore(built)
    assert again.snapshot() == before
