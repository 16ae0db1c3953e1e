"""The DMP registry's, PSC realm's and e-Prescription's snapshots taken in two steps (harness.core.state, issue 18):
``capture()`` under the replica's lock, ``Deferred.build()`` outside it.

For each store: the built JSON is exactly what the snapshot built in one step under the lock gave (the reference
below restates that code, the stored format restore reads), a restore of it gives the same state again, and an
operation applied after the capture and before the build — one that replaces or changes a record in place, one
that grows or shrinks a container — does not show in what is built."""

from __future__ import annotations

import base64
import random
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from simulator_context import bare_context

from harness.core.journal import SQLiteJournal
from harness.core.state import Deferred, StateHub, encode_snapshot
from harness.fields.testdata import TestData, load_testdata
from harness.host.simulator import SimulatorContext
from mock_services.dmp.store import (
    STATUS_DEPRECATED,
    Authorisation,
    BodyRef,
    DmpState,
    DmpStore,
    PersonDmp,
    StoredDocument,
)
from mock_services.eprescription.prescriptions import Prescription, fhir_resources, generate, prescription_json
from mock_services.eprescription.service import EprescriptionService, EprescriptionSettings
from mock_services.psc.model import load_fixtures
from mock_services.psc.realm import AuthRequest, CodeGrant, Realm, Session, Settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def testdata() -> TestData:
    return load_testdata(REPO / "fixtures")


def _context(tmp_path: Path, name: str, testdata: TestData) -> SimulatorContext:
    return bare_context(name, SQLiteJournal(tmp_path / f"{name}.sqlite"), testdata, state=StateHub())


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


# PSC realm ---------------------------------------------------------------------------------------------------------
def _grants_reference(realm: Realm) -> dict[str, Any]:
    """The grants' snapshot as it was built under the lock before the capture (the stored format)."""
    return {
        "pending": [[rid, auth.as_op()] for rid, auth in realm.pending.items()],
        "sessions": [
            [s.sid, s.user.fixture(), s.client_id, s.auth_time, s.acr, s.active, s.nonce]
            for s in realm.sessions.values()
        ],
        "codes": [[code, g.request.as_op(), g.sid, g.expires_at, g.used] for code, g in realm.codes.items()],
        "access": [[jti, a.sid, a.client_id, list(a.scope), a.exp, a.active] for jti, a in realm.access.items()],
        "refresh": [
            [token, r.sid, r.client_id, list(r.scope), r.exp, r.nonce_free, r.active, r.rotated]
            for token, r in realm.refresh.items()
        ],
        "issued": realm.issued,
    }


def _users_reference(realm: Realm) -> dict[str, Any]:
    return {
        "professionals": [[key, user.fixture()] for key, user in realm.professionals.items()],
        "next_login": [[client_id, login] for client_id, login in realm.next_login.items()],
    }


def _login(realm: Realm, n: int, now: float) -> Session:
    client = realm.clients["dui-reference"]
    auth = AuthRequest(client, client.redirect_uris[0], ("openid",), f"st{n}", f"no{n}", None, None, ())
    session = Session(f"sid-{n}", realm.users()[n], client.client_id, 1_700_000_000 + n, "eidas1", nonce=f"no{n}")
    realm.open_session(session, f"code-{n}", CodeGrant(auth, session.sid, now + 60))
    return session


def test_the_psc_realm_captures_build_the_state_at_capture_time(tmp_path: Path, testdata: TestData) -> None:
    realm = Realm(_context(tmp_path, "psc", testdata), load_fixtures(REPO / "fixtures" / "psc"), Settings())
    client = realm.clients["dui-reference"]
    now = 1_700_000_000.0
    realm.hold_request("held-1", AuthRequest(client, client.redirect_uris[0], ("openid",), "s", "n", None, None, ()))
    first, second = _login(realm, 0, now), _login(realm, 1, now)
    for n, session in enumerate((first, second)):
        realm.redeem(f"code-{n}", client.client_id)
        realm.add_tokens(session, client.client_id, ("openid",), f"jti-{n}", f"refresh-{n}", now)
    _login(realm, 2, now)  # a code not redeemed yet
    realm.set_next_login(realm.users()[0].login, client.client_id)
    grants, users = _grants_reference(realm), _users_reference(realm)
    assert [(s[0], s[5]) for s in grants["sessions"]] == [("sid-0", True), ("sid-1", True), ("sid-2", True)]
    assert [(c[0], c[4]) for c in grants["codes"]] == [("code-0", True), ("code-1", True), ("code-2", False)]
    assert [r[6:] for r in grants["refresh"]] == [[True, False], [True, False]]

    captured_grants, captured_users = realm.capture_grants(), realm.capture_users()
    assert isinstance(captured_grants, Deferred) and isinstance(captured_users, Deferred)
    realm.redeem("code-2", client.client_id)  # a code used in place
    realm.rotate_refresh("refresh-1", client.client_id)  # a refresh token spent in place
    assert realm.revoke_session("sid-0") == {"access_tokens": 1, "refresh_tokens": 1}  # a session ended in place
    realm.release_request("held-1")  # the pending requests shrink
    realm.hold_request("held-2", AuthRequest(client, client.redirect_uris[0], ("openid",), "t", "m", None, None, ()))
    realm.add_tokens(second, client.client_id, ("openid",), "jti-9", "refresh-9", now)  # the tokens grow
    realm.set_next_login(None, client.client_id)
    realm.put_user(replace(realm.users()[3], given_name="Zoé"))  # replaced under its key
    realm.put_user(replace(realm.users()[3], login="nouveau.venu"))  # a professional added

    built_grants, built_users = captured_grants.build(), captured_users.build()
    assert built_grants == grants != _grants_reference(realm)
    assert built_users == users != _users_reference(realm)
    assert built_grants["issued"] == 2 and built_users["next_login"] == [["dui-reference", realm.users()[0].login]]
    again = Realm(_context(tmp_path, "psc2", testdata), load_fixtures(REPO / "fixtures" / "psc"), Settings())
    again.restore_grants(built_grants)
    again.restore_users(built_users)
    assert (again.snapshot_grants(), again.snapshot_users()) == (grants, users)


# e-Prescription ----------------------------------------------------------------------------------------------------
def _prescriptions_reference(service: EprescriptionService) -> dict[str, Any]:
    """The prescriptions' snapshot as it was built under the lock before the capture (the stored format)."""
    return {
        "prescriptions": [prescription_json(p) for p in service.prescriptions.values()],
        "retrieved": sorted(service.retrieved),
        "confirmed": dict(service.confirmed),
    }


def test_the_eprescriptions_capture_builds_the_state_at_capture_time(tmp_path: Path, testdata: TestData) -> None:
    service = EprescriptionService(_context(tmp_path, "eprescription", testdata), EprescriptionSettings())
    rng, when = random.Random(7), datetime(2026, 3, 1, 10, tzinfo=UTC)

    def issue(n: int) -> Prescription:
        drawn = generate(testdata.persons[n], rng=rng, authored=when, lines=2)
        drawn.epu = f"EPU-{n}"
        prescription: Prescription = service.apply({"op": "issue", "prescription": prescription_json(drawn)})
        return prescription

    first, second, third = issue(0), issue(1), issue(2)
    fhir_resources(first)  # the FHIR ids, filled in place as issue() does
    service.apply({"op": "retrieved", "epus": ["EPU-1"]})
    service.apply({"op": "confirmed", "epu": "EPU-1", "task": "task-1"})
    before = _prescriptions_reference(service)
    assert [(p["epu"], p["status"], sorted(p["ids"])) for p in before["prescriptions"]] == [
        ("EPU-0", "active", ["patient", "practitioner"]),
        ("EPU-1", "active", []),
        ("EPU-2", "active", []),
    ]
    assert before["prescriptions"][1]["prescriber"] == asdict(second.prescriber)

    captured = service.capture()
    assert isinstance(captured, Deferred)
    service.apply({"op": "cancel", "epu": "EPU-2"})  # a status changed in place
    fhir_resources(second)  # ids filled in place
    issue(3)  # the prescriptions grow
    service.apply({"op": "retrieved", "epus": ["EPU-0", "EPU-2"]})
    service.apply({"op": "confirmed", "epu": "EPU-0", "task": "task-0"})

    built = captured.build()
    assert third.status == "cancelled" and sorted(second.ids) == ["patient", "practitioner"]
    assert built == before != _prescriptions_reference(service)
    assert (built["retrieved"], built["confirmed"]) == (["EPU-1"], {"EPU-1": "task-1"})
    again = EprescriptionService(_context(tmp_path, "eprescription2", testdata), EprescriptionSettings())
    again.restore(built)
    assert again.snapshot() == before
