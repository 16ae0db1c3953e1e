"""The DMP registry shared by two serving processes on one PostgreSQL database (issue 19 item 2): a document
registered by ITI-41 on A is found by ITI-18 and retrieved by ITI-43 on B, its bytes stored once in the journal's
evidence; a DMP closed through B refuses A's next feed.

Two :class:`ServiceHost` objects, each with its own :class:`PostgreSQLJournal` on the same database, stand for two
``serve`` processes (the fixture ``pg_url`` skips, saying why, where PostgreSQL is absent)."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from harness.core.journal import Exchange, JournalFilter, Outcome
from harness.core.journal_pg import PostgreSQLJournal
from harness.core.state import StateHub, state_log_for
from harness.fields.pki import TestPKI
from harness.host.service_host import BackgroundHost, HostOptions, ServiceHost
from harness.host.simulator import RunState
from harness.sut import dmp_messages as M
from harness.sut.documents import build_cda
from harness.validators import ebrim as E
from mock_services.dmp.store import STREAM, BodyRef, DmpState, DmpStore, RegistryConflictError, StoredDocument
from tests.test_dmp import ITI41, TESTDATA

ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"


class Worker:
    """One serving process: a host with the DMP simulator on its own PostgreSQL journal."""

    def __init__(self, pki: TestPKI, url: str, name: str) -> None:
        self.pki = pki
        self.journal = PostgreSQLJournal(url)
        self.host = ServiceHost(self.journal, pki, TESTDATA, HostOptions(services=["dmp"]), RunState(name))
        self.background = BackgroundHost(self.host)
        self.endpoints = self.background.start()
        self.sim = self.host.simulators["dmp"]

    def send(self, body: etree._Element, action: str, service: str, attachments: dict[str, bytes] | None = None):  # noqa: ANN201
        """One MTOM request for the first test person, VIHF and TLS with their establishment's certificate; the
        answer read."""
        response = self.post(body, action, service, attachments)
        return M.read_response(response.headers["content-type"], response.content)

    def post(
        self, body: etree._Element, action: str, service: str, attachments: dict[str, bytes] | None = None
    ) -> httpx.Response:
        person = TESTDATA.persons[0]
        establishment = TESTDATA.establishment(person.essms)
        own = self.credentials(establishment.finess)
        url = self.endpoints["dmp"][service]
        envelope = M.envelope(action, url, body, M.build_vihf(person, establishment, own))
        content, content_type = M.mtom(envelope, attachments or {}, action)
        context = ssl.create_default_context(cafile=str(self.pki.ca_bundle_path))
        context.load_cert_chain(own.cert_path, own.key_path)
        with httpx.Client(verify=context, timeout=30.0) as client:
            return client.post(url, content=content, headers={"Content-Type": content_type})

    def credentials(self, finess: str) -> M.OrgCredentials:
        issued = self.pki.client(f"ESSMS-{finess}")
        return M.OrgCredentials(str(issued.cert_path), str(issued.key_path))

    def close(self) -> None:
        self.background.stop()
        self.journal.close()


@pytest.fixture()
def workers(tmp_path: Path, pg_url: str) -> Iterator[tuple[Worker, Worker]]:
    pki = TestPKI.ensure(tmp_path / "pki")
    a = Worker(pki, pg_url, "shared-a")
    b = Worker(pki, pg_url, "shared-b")
    yield a, b
    a.close()
    b.close()


def _feed(worker: Worker) -> tuple[str, bytes, str]:
    """ITI-41 of a DLU for the first test person; (status, the CDA, its uniqueId)."""
    person = TESTDATA.persons[0]
    establishment = TESTDATA.establishment(person.essms)
    cda = build_cda(person, establishment, "DLU")
    body, attachments, _, unique_id = M.build_iti41(
        person, establishment, "DLU", cda, worker.credentials(establishment.finess)
    )
    answer, _ = worker.send(body, ITI41, "repository", attachments)
    status, errors = M.registry_errors(answer)
    assert [code for code, _, severity in errors if severity == "Error"] == [], errors  # warnings: no XSD here
    return status.rsplit(":", 1)[-1], cda, unique_id


def test_a_document_registered_on_a_is_found_and_retrieved_on_b(workers: tuple[Worker, Worker]) -> None:
    a, b = workers
    status, cda, unique_id = _feed(a)
    assert status == "Success"
    # B has not been asked anything yet: its ITI-18 catches up with the registry before answering
    found, _ = b.send(M.build_find_documents(TESTDATA.persons[0]), ITI18, "registry")
    assert M.registry_errors(found)[0].endswith(":Success")
    uids = [
        E.external_id(obj, E.DOC_UNIQUE_ID)
        for obj in found.iter(E.rim("ExtrinsicObject"))
        if obj.get("status") == E.STATUS_APPROVED
    ]
    registered = a.sim.store.documents()  # the CDA and the submission's signature document
    assert sorted(uids) == sorted(d.unique_id for d in registered) and len(uids) == 2
    assert [d.unique_id for d in registered if not d.is_signature] == [unique_id]
    retrieved, attachments = b.send(M.build_retrieve(b.sim.repository_unique_id, unique_id), ITI43, "repository")
    assert M.registry_errors(retrieved)[0].endswith(":Success")
    assert list(attachments.values()) == [cda]  # read back from the journal's evidence, byte for byte
    # stored once: the operation points into the ITI-41 request journaled on A, it does not carry the bytes
    [fed] = a.journal.query(JournalFilter(service="dmp", operation="iti41.provide_and_register"))
    with a.journal.connection() as conn:
        [(op,)] = conn.execute("SELECT op FROM socle_state_op WHERE stream = %s", (STREAM,)).fetchall()
    document, signature = op["documents"]
    assert document["unique_id"] == unique_id and "data" not in document and "data" not in signature
    assert document["body"][0] == signature["body"][0] == fed.digest
    assert a.journal.payload(fed.digest)[document["body"][1] :][: document["body"][2]] == cda
    assert b.sim.store.by_unique_id(unique_id).data is None and a.sim.store.by_unique_id(unique_id).data is None


def test_a_dmp_closed_through_b_refuses_the_feed_on_a(workers: tuple[Worker, Worker]) -> None:
    a, b = workers
    b.sim.set_person(TESTDATA.persons[0].ins, state=DmpState.CLOSED)
    person = TESTDATA.persons[0]
    establishment = TESTDATA.establishment(person.essms)
    cda = build_cda(person, establishment, "DLU")
    body, attachments, _, unique_id = M.build_iti41(
        person, establishment, "DLU", cda, a.credentials(establishment.finess)
    )
    answer, _ = a.send(body, ITI41, "repository", attachments)
    status, errors = M.registry_errors(answer)
    assert status.endswith(":Failure") and [code for code, _, sev in errors if sev == "Error"] == ["DMPClosed"]
    assert a.sim.store.by_unique_id(unique_id) is None and b.sim.store.documents() == []


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


def test_a_body_not_in_the_request_is_put_once_and_a_taken_unique_id_is_refused(pg_url: str) -> None:
    journals = [PostgreSQLJournal(pg_url), PostgreSQLJournal(pg_url)]
    try:
        a, b = (DmpStore(state=StateHub(state_log_for(j)), evidence=j) for j in journals)
        data = b"<ClinicalDocument/>" * 50
        a.register([_document("1.2.3", data)])  # no journaled request (a base64 body): evidence of its own
        [shared] = b.documents()
        assert (shared.data, shared.body) == (None, BodyRef(hashlib.sha256(data).hexdigest(), 0, len(data)))
        assert b.content(shared) == data
        with pytest.raises(RegistryConflictError, match="1.2.3"):
            b.register([_document("1.2.3", b"other")])
        b.change_status("urn:uuid:1.2.3", E.STATUS_DEPRECATED)
        assert [d.status for d in a.documents()] == [E.STATUS_DEPRECATED]
        with pytest.raises(RegistryConflictError, match="version 1"):
            a.update_all([{"entry_uuid": "urn:uuid:1.2.3", "version": 2, "confidentiality": [], "metadata": "<x/>"}])
        assert a.get("urn:uuid:1.2.3").metadata == b"<rim:ExtrinsicObject/>"
    finally:
        for journal in journals:
            journal.close()


def _submission(worker: Worker) -> tuple[etree._Element, dict[str, bytes], str]:
    person = TESTDATA.persons[0]
    establishment = TESTDATA.establishment(person.essms)
    cda = build_cda(person, establishment, "DLU")
    body, attachments, _, unique_id = M.build_iti41(
        person, establishment, "DLU", cda, worker.credentials(establishment.finess)
    )
    return body, attachments, unique_id


def test_of_two_racing_submissions_of_one_unique_id_one_is_accepted_the_other_refused(
    workers: tuple[Worker, Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """B registers the same submission after A checked it and before A registers it: exactly one ITI-41 is
    journaled accepted (B's), A's is journaled rejected with the error a second submission gets, and answered so."""
    a, b = workers
    body, attachments, unique_id = _submission(a)
    register, answers = a.sim.store.register, []

    def b_gets_there_first(*args: object, **kwargs: object) -> None:
        if not answers:  # once: A has checked the uniqueId is free, B submits it now
            answers.append(b.send(body, ITI41, "repository", attachments)[0])
        register(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(a.sim.store, "register", b_gets_there_first)
    answer, _ = a.send(body, ITI41, "repository", attachments)
    [b_answer] = answers
    assert M.registry_errors(b_answer)[0].endswith(":Success")
    status, errors = M.registry_errors(answer)
    duplicate = f"uniqueId {unique_id} déjà enregistré dans le DMP"
    assert status.endswith(":Failure") and [(c, x) for c, x, s in errors if s == "Error"][:1] == [
        ("XDSDocumentUniqueIdError", duplicate)
    ]
    fed = a.journal.query(JournalFilter(service="dmp", operation="iti41.provide_and_register"))
    assert [(e.run_id, e.outcome, e.error_code, e.error_message) for e in fed] == [
        ("shared-b", Outcome.ACCEPTED, None, None),
        ("shared-a", Outcome.REJECTED, "XDSDocumentUniqueIdError", duplicate),
    ]
    assert a.journal.count(JournalFilter(service="dmp")) == 2  # no SOAP fault journaled besides
    assert [d.unique_id for d in b.sim.store.documents() if not d.is_signature] == [unique_id]


def test_a_submission_that_cannot_be_journaled_is_not_kept_registered(
    workers: tuple[Worker, Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registered first, then journaled: when the journal refuses the accepted exchange, a compensating operation
    takes the documents out of the shared registry (the other process sees none)."""
    a, b = workers
    body, attachments, unique_id = _submission(a)
    commit = a.sim.ctx.commit

    def journal_down(exchange: Exchange) -> Exchange:
        if exchange.operation == "iti41.provide_and_register" and exchange.outcome is Outcome.ACCEPTED:
            raise RuntimeError("journal indisponible")
        return commit(exchange)

    monkeypatch.setattr(a.sim.ctx, "commit", journal_down)
    assert a.post(body, ITI41, "repository", attachments).status_code == 500
    assert (b.sim.store.by_unique_id(unique_id), a.sim.store.documents()) == (None, [])
    with a.journal.connection() as conn:
        ops = [
            op["op"]
            for (op,) in conn.execute("SELECT op FROM socle_state_op WHERE stream = %s ORDER BY seq", (STREAM,))
        ]
    assert ops == ["register", "unregister"]
    monkeypatch.setattr(a.sim.ctx, "commit", commit)
    answer, _ = b.send(body, ITI41, "repository", attachments)  # the uniqueId is free again
    assert M.registry_errors(answer)[0].endswith(":Success")


ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
MASKED = [("N", "2.16.840.1.113883.5.25"), ("MASQUE_PS", "1.2.250.1.213.1.1.4.13")]


def test_of_two_racing_updates_of_one_version_one_is_accepted_the_other_refused(
    workers: tuple[Worker, Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """ITI-57 as ITI-41: B makes version 2 after A checked its update against version 1 and before A applies it;
    A's update is journaled and answered rejected (XDSMetadataVersionError), never accepted then failed."""
    a, b = workers
    _, _, unique_id = _feed(a)
    person = TESTDATA.persons[0]
    establishment = TESTDATA.establishment(person.essms)
    stored = a.sim.store.by_unique_id(unique_id)
    body = M.build_confidentiality_update(
        person, establishment, stored.entry_uuid, stored.version, unique_id, stored.type_code, MASKED
    )
    update_all, answers = a.sim.store.update_all, []

    def b_gets_there_first(*args: object, **kwargs: object) -> object:
        if not answers:
            answers.append(b.send(body, ITI57, "registry")[0])
        return update_all(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(a.sim.store, "update_all", b_gets_there_first)
    answer, _ = a.send(body, ITI57, "registry")
    assert M.registry_errors(answers[0])[0].endswith(":Success")
    status, errors = M.registry_errors(answer)
    conflict = f"mise à jour concurrente refusée : document {unique_id} : version 2, la mise à jour visait 1"
    assert status.endswith(":Failure") and [(c, x) for c, x, s in errors if s == "Error"] == [
        ("XDSMetadataVersionError", conflict)
    ]
    updates = a.journal.query(JournalFilter(service="dmp", operation="iti57.update_document_set"))
    assert [(e.run_id, e.outcome, e.error_code, e.error_message) for e in updates] == [
        ("shared-b", Outcome.ACCEPTED, None, None),
        ("shared-a", Outcome.REJECTED, "XDSMetadataVersionError", conflict),
    ]
    assert b.sim.store.by_unique_id(unique_id).version == 2


def test_an_update_that_cannot_be_journaled_is_taken_back(
    workers: tuple[Worker, Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = workers
    _, _, unique_id = _feed(a)
    person = TESTDATA.persons[0]
    establishment = TESTDATA.establishment(person.essms)
    stored = a.sim.store.by_unique_id(unique_id)
    masking = M.build_confidentiality_update(
        person, establishment, stored.entry_uuid, stored.version, unique_id, stored.type_code, MASKED
    )
    archiving = M.build_status_update(
        person, establishment, stored.entry_uuid, stored.status, "urn:asip:ci-sis:2010:StatusType:Archived"
    )
    commit = a.sim.ctx.commit

    def journal_down(exchange: Exchange) -> Exchange:
        if exchange.operation == "iti57.update_document_set" and exchange.outcome is Outcome.ACCEPTED:
            raise RuntimeError("journal indisponible")
        return commit(exchange)

    monkeypatch.setattr(a.sim.ctx, "commit", journal_down)
    for body in (masking, archiving):
        assert a.post(body, ITI57, "registry").status_code == 500
    after = b.sim.store.by_unique_id(unique_id)
    assert (after.version, after.status, after.confidentiality, after.metadata) == (
        stored.version,
        stored.status,
        stored.confidentiality,
        stored.metadata,
    )


def test_of_two_racing_replacements_of_one_document_one_is_accepted_the_other_refused(
    workers: tuple[Worker, Worker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two new versions (RPLC) of one document: B's deprecates it after A checked it was approved and before A
    registers; A's is journaled and answered rejected with UnresolvedReferenceException, as a later one is."""
    a, b = workers
    _, _, original = _feed(a)
    target = a.sim.store.by_unique_id(original).entry_uuid
    person = TESTDATA.persons[0]
    establishment = TESTDATA.establishment(person.essms)
    credentials = a.credentials(establishment.finess)
    mine, theirs = (
        M.build_iti41(
            person, establishment, "DLU", build_cda(person, establishment, "DLU"), credentials, replaces_entry=target
        )
        for _ in range(2)
    )
    register, answers = a.sim.store.register, []

    def b_gets_there_first(*args: object, **kwargs: object) -> None:
        if not answers:
            answers.append(b.send(theirs[0], ITI41, "repository", theirs[1])[0])
        register(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(a.sim.store, "register", b_gets_there_first)
    answer, _ = a.send(mine[0], ITI41, "repository", mine[1])
    assert M.registry_errors(answers[0])[0].endswith(":Success")
    status, errors = M.registry_errors(answer)
    refused = f"RPLC: le document remplacé {target!r} est inconnu ou n'est plus approuvé"
    assert status.endswith(":Failure") and [(c, x) for c, x, s in errors if s == "Error"] == [
        ("UnresolvedReferenceException", refused)
    ]
    fed = a.journal.query(JournalFilter(service="dmp", operation="iti41.provide_and_register"))[1:]
    assert [(e.run_id, e.outcome, e.error_code, e.error_message) for e in fed] == [
        ("shared-b", Outcome.ACCEPTED, None, None),
        ("shared-a", Outcome.REJECTED, "UnresolvedReferenceException", refused),
    ]
    assert a.sim.store.by_unique_id(mine[3]) is None and b.sim.store.by_unique_id(theirs[3]) is not None
