"""Every simulator store's snapshot (harness.core.state, issue 19 item 2): restoring it gives exactly the state
replaying the log gives.

For each store, process A changes it through the PostgreSQL state log; B starts on the whole log and replays it;
A then checkpoints (snapshot, every earlier operation deleted) and C starts from the snapshot alone. The three
states are equal (each store's ``snapshot()`` is its whole state), C's reads answer as B's, and an operation
applied on B and on C after that leaves them equal again (counters such as the next UID survive the restore)."""

from __future__ import annotations

import dataclasses
import hashlib
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.core.config import HarnessConfig
from harness.core.journal_pg import PostgreSQLJournal
from harness.core.state import StateHub, state_log_for
from harness.fhir.store import ResourceStore
from harness.fields.testdata import load_testdata
from harness.host.admin import admin_headers
from harness.host.simulator import Fault, FaultBoard
from harness.runtime.environment import SocleEnvironment
from mock_services.dmp.store import Authorisation, DmpState, DmpStore, StoredDocument
from mock_services.mssante.auth_backoff import AuthBackoff, BackoffPolicy
from mock_services.mssante.store import INBOX, BodyStore, MailStore
from mock_services.psc.keys import KeyRing
from mock_services.psc.realm import AuthRequest, CodeGrant, Session
from tests.test_state_mail import _submit

ORG = "secretariat@ehpad-tilleuls.mssante.fr"


@pytest.fixture()
def journals(pg_url: str) -> Iterator[list[PostgreSQLJournal]]:
    opened = [PostgreSQLJournal(pg_url) for _ in range(3)]
    yield opened
    for journal in opened:
        journal.close()


def _check(
    journals: list[PostgreSQLJournal],
    make: Callable[[PostgreSQLJournal, StateHub, str], Any],
    stream: str,
    work: Callable[[Any], None],
    more: Callable[[Any], None],
    reads: Callable[[Any], Any],
) -> Any:
    hubs = [StateHub(state_log_for(j)) for j in journals]
    a = make(journals[0], hubs[0], "a")
    work(a)
    b = make(journals[1], hubs[1], "b")
    replayed = hubs[1].states()[stream]
    assert list(hubs[0].checkpoint_all()) == [stream]
    with journals[0].connection() as conn:
        assert conn.execute("SELECT count(*) FROM socle_state_op WHERE stream = %s", (stream,)).fetchone()[0] == 0
    c = make(journals[2], hubs[2], "c")
    restored = hubs[2].states()[stream]
    assert restored == replayed == hubs[0].states()[stream]
    assert reads(c) == reads(b)
    more(b)  # appended on B, applied by C when it catches up, on top of the snapshot
    assert hubs[2].states()[stream] == hubs[1].states()[stream]
    assert reads(c) == reads(b)
    return restored


def test_the_fault_board(journals: list[PostgreSQLJournal]) -> None:
    def work(board: FaultBoard) -> None:
        board.inject("psc", Fault("psc.down", {"a": 1}, remaining=3))
        board.inject("psc", Fault("psc.wrong-state"))
        board.inject("dmp", Fault("dmp.busy", {}, remaining=1))
        assert board.take("psc", "psc.down") is not None
        assert board.take("dmp", "dmp.busy") is not None  # leaves dmp's queue empty

    state = _check(
        journals,
        lambda j, hub, name: FaultBoard(hub),
        "harness.faults",
        work,
        lambda board: board.take("psc", "psc.down"),
        FaultBoard.snapshot,  # a take would consume what the other reads
    )
    assert state == {"psc": [["psc.down", {"a": 1}, 2], ["psc.wrong-state", {}, 1]], "dmp": []}


def test_a_fhir_store(journals: list[PostgreSQLJournal]) -> None:
    def work(store: ResourceStore) -> None:
        with store.exclusive() as uow:
            uow.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
            uow.update("Patient", "p2", {"resourceType": "Patient", "id": "p2"})
            uow.commit()
        for n in range(3):
            with store.exclusive() as uow:
                note = {
                    "resourceType": "DocumentReference",
                    "id": f"d{n}",
                    "subject": {"reference": "Patient/p1"},
                    "identifier": [{"system": "urn:s", "value": f"n{n % 2}"}],
                }
                uow.update("DocumentReference", f"d{n}", note)
                uow.commit()
        with store.exclusive() as uow:  # d1 now points elsewhere: the reference index follows
            moved = {
                "resourceType": "DocumentReference",
                "id": "d1",
                "subject": {"reference": "Patient/p2"},
                "identifier": [{"system": "urn:s", "value": "n0"}],
            }
            uow.update("DocumentReference", "d1", moved)
            uow.delete("DocumentReference", "d2")
            uow.commit()

    def more(store: ResourceStore) -> None:
        with store.exclusive() as uow:
            note = {"resourceType": "DocumentReference", "id": "d3", "identifier": [{"value": "n1"}]}
            uow.update("DocumentReference", "d3", note)
            uow.commit()

    def reads(store: ResourceStore) -> Any:
        return (
            [(v.id, v.version_id, v.resource) for v in store.all("DocumentReference")],
            sorted(store.referencing("DocumentReference", "Patient/p1")),
            sorted(store.referencing("DocumentReference", "Patient/p2")),
            sorted(store.identified("DocumentReference", ("identifier", "urn:s", "n0"))),
            sorted(store.identified("DocumentReference", ("identifier", None, "n1"))),
            [v.version_id for v in store.history("DocumentReference", "d2")],
            store.count(),
        )

    state = _check(
        journals, lambda j, hub, name: ResourceStore(state=hub, stream="t.fhir"), "t.fhir", work, more, reads
    )
    assert [rid for rid, _ in state["resources"]["DocumentReference"]] == ["d0", "d1", "d2"]
    assert state["refs"]["DocumentReference"] == {"Patient/p1": ["d0"], "Patient/p2": ["d1"]}
    b = ResourceStore(state=StateHub(state_log_for(journals[0])), stream="t.fhir")  # the log, after A's and B's
    assert sorted(b.identified("DocumentReference", ("identifier", "urn:s", "n0"))) == ["d0", "d1"]  # d1 changed
    assert sorted(b.identified("DocumentReference", ("identifier", None, "n1"))) == ["d3"]  # d2 deleted, d3 added


def _document(unique_id: str, data: bytes) -> StoredDocument:
    return StoredDocument(
        entry_uuid=f"urn:uuid:{unique_id}",
        unique_id=unique_id,
        patient="1",
        patient_oid="o",
        patient_cx="1^^^&o&ISO",
        repository_unique_id="r",
        mime_type="text/xml",
        data=data,
        hash=hashlib.sha1(data).hexdigest(),  # noqa: S324 - XDS hash is SHA-1
        size=len(data),
        type_code="t",
        metadata=b"<rim:ExtrinsicObject/>",
        essms=None,
    )


def test_the_dmp_registry(journals: list[PostgreSQLJournal]) -> None:
    ins = load_testdata(Path(__file__).resolve().parents[1] / "fixtures").person("P001").ins

    def work(store: DmpStore) -> None:
        store.set_person(ins, state=DmpState.ACTIVE, authorisation=Authorisation.VALID)
        store.register([_document("1.2.3", b"<ClinicalDocument/>" * 20)])
        store.register([_document("1.2.4", b"<ClinicalDocument>v2</ClinicalDocument>")], deprecate=["urn:uuid:1.2.3"])
        store.update_all(
            [{"entry_uuid": "urn:uuid:1.2.4", "version": 1, "confidentiality": [["N", "s"]], "metadata": "<m/>"}]
        )

    def reads(store: DmpStore) -> Any:
        return (
            store.person(ins),
            [(d.unique_id, d.status, d.version, d.body, store.content(d)) for d in store.documents()],
            store.by_unique_id("1.2.4"),
        )

    state = _check(
        journals,
        lambda j, hub, name: DmpStore(state=hub, evidence=j),
        "dmp.registry",
        work,
        lambda store: store.register([_document("1.2.5", b"<x/>")]),
        reads,
    )
    assert [d["data"] for d in state["documents"]] == [None, None]  # bodies stay in the evidence, by digest
    # every field of a document is in its snapshot (a field added later and forgotten would be lost on restore)
    assert set(state["documents"][0]) == {f.name for f in dataclasses.fields(StoredDocument)}


def test_the_mailboxes(journals: list[PostgreSQLJournal], tmp_path: Path) -> None:
    def make(journal: PostgreSQLJournal, hub: StateHub, name: str) -> MailStore:
        return MailStore(bodies=BodyStore(tmp_path / name, remote=journal), state=hub)

    def work(store: MailStore) -> None:
        store.ensure_mailbox(ORG)
        store.deliver(ORG, b"Subject: un\r\n\r\ncorps\r\n", prefix=b"Received: by a\r\n")
        store.deliver(ORG, b"Subject: deux\r\n\r\ncorps\r\n", flags=["\\Seen"])
        store.create_folder(ORG, "Archives")
        store.copy(ORG, INBOX, 1, "Archives", move=True)
        store.set_flags(ORG, "Archives", 1, ["\\Flagged"])
        store.rename_folder(ORG, "Archives", "Classés")
        store.claim_recent(ORG, INBOX)

    def reads(store: MailStore) -> Any:
        return (
            store.folders(ORG),
            [store.state(ORG, f) for f in store.folders(ORG)],
            [(m.uid, m.flags, m.modseq, m.recent, m.data) for f in store.folders(ORG) for m in store.messages(ORG, f)],
            store.changes_since(ORG, INBOX, 0)[1:],
            store.size(ORG),
            store.bodies.count(),
        )

    state = _check(
        journals, make, "mssante.mailboxes", work, lambda s: s.deliver(ORG, b"Subject: trois\r\n\r\nx\r\n"), reads
    )
    assert state["next_validity"] > 0


def test_the_password_backoff(journals: list[PostgreSQLJournal]) -> None:
    policy = BackoffPolicy(free_failures=1, base_delay=0.5, lockout_failures=3)

    def work(backoff: AuthBackoff) -> None:
        for peer in ("10.0.0.1", "10.0.0.2", "10.0.0.2"):
            backoff.failure(ORG, peer)
        backoff.failure("autre@x.fr", "10.0.0.3")
        backoff.success("autre@x.fr", "10.0.0.3")

    state = _check(
        journals,
        lambda j, hub, name: AuthBackoff(policy, clock=time.time, state=hub),
        "mssante.auth_backoff",
        work,
        lambda backoff: backoff.failure(ORG, "10.0.0.4"),
        lambda backoff: [backoff.check(ORG, "10.0.0.2").locked, backoff.check("x", "10.0.0.3").peer_failures],
    )
    assert [(kind, key, len(failures)) for kind, key, failures, _ in state] == [
        ("peer", "10.0.0.1", 1),  # least recently used first
        ("account", ORG, 3),
        ("peer", "10.0.0.2", 2),
        ("peer", "10.0.0.3", 1),
    ]


def test_the_psc_signing_keys(journals: list[PostgreSQLJournal]) -> None:
    def work(ring: KeyRing) -> None:
        ring.warm()
        ring.rotate()

    state = _check(
        journals,
        lambda j, hub, name: KeyRing(600.0, 2048, state=hub),
        "psc.keys",
        work,
        lambda ring: ring.rotate(),
        lambda ring: ring.jwks(),
    )
    assert [retired is None for _, _, _, retired in state] == [False] * (len(state) // 2) + [True] * (len(state) // 2)


def test_host_b_started_after_compaction_sees_the_state_of_host_a(
    pg_url: str, tmp_path: Path, start_environments: Callable[..., list[SocleEnvironment]]
) -> None:
    """Two serving processes on one database: A serves traffic and checkpoints every stream (its log deleted); B,
    started afterwards, holds the same state from the snapshots alone and serves it."""

    def config(name: str) -> HarnessConfig:
        return HarnessConfig(run_dir=tmp_path / name, journal=pg_url, services=("mssante", "psc", "eprescription"))

    [a] = start_environments(config("a"))
    message_id = _submit(a)
    # a fault no exchange takes (a psc.down could be consumed by an exchange of B's start)
    a.host.faults.inject("bench", Fault("marker", {"n": 1}, remaining=2))
    a.host.simulators["eprescription"].service.issue(a.testdata.person("P001"))  # type: ignore[attr-defined]
    realm = a.host.simulators["psc"].provider.realm  # type: ignore[attr-defined]
    realm.set_next_login(realm.users()[0].login)
    client = next(iter(realm.clients.values()))
    auth = AuthRequest(client, client.redirect_uris[0], ("openid",), "st", "no", None, None, ())
    realm.hold_request("held", auth)
    session = Session("sid-1", realm.users()[0], client.client_id, 1_700_000_000, "eidas1", nonce="no")
    realm.open_session(session, "code-1", CodeGrant(auth, session.sid, time.time() + 60))
    realm.redeem("code-1", client.client_id)
    realm.add_tokens(session, client.client_id, ("openid",), "jti-1", "refresh-1", time.time())
    realm.rotate_refresh("refresh-1", client.client_id)
    # the signing keys are generated by a thread started once every port answers (cold start, issue 18): on a busy
    # machine the checkpoint below could come first and find no key to snapshot; generate them now (idempotent)
    a.host.simulators["psc"].provider.keys.warm()  # type: ignore[attr-defined]

    with httpx.Client(verify=ssl.create_default_context(cafile=str(a.pki.ca_bundle_path)), timeout=15) as http:
        url = a.endpoints["harness"]["base"] + "/_harness/state/checkpoint"
        assert http.post(url).status_code == 401  # the admin token always
        answer = http.post(url, headers=admin_headers(a.admin_token))
    assert answer.status_code == 200
    written = answer.json()["snapshots"]
    streams = {"harness.faults", "mssante.mailboxes", "psc.users", "psc.grants", "psc.keys"}
    streams |= {"eprescription.prescriptions", "eprescription.fhir"}
    assert streams <= set(written)
    with a.journal.connection() as conn:  # type: ignore[attr-defined]
        left = conn.execute("SELECT count(*) FROM socle_state_op WHERE seq <= %s", (max(written.values()),))
        assert left.fetchone()[0] == 0

    [b] = start_environments(config("b"))
    on_a = a.host.state.states()
    on_b = b.host.state.states()  # after A's: caught up with anything appended meanwhile
    assert {s: on_b[s] for s in streams} == {s: on_a[s] for s in streams}
    assert [m.data for _, _, m in b.host.simulators["mssante"].store.find(message_id)] == [  # type: ignore[attr-defined]
        m.data
        for _, _, m in a.host.simulators["mssante"].store.find(message_id)  # type: ignore[attr-defined]
    ]
    assert b.host.faults.take("bench", "marker") == Fault("marker", {"n": 1}, remaining=2)
