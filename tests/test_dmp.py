"""DMP simulator: transport (SOAP 1.2 + MTOM), VIHF, metadata, CDA, states, transactions, hostile input."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from harness.core.config import package_root
from harness.core.journal import JournalFilter, Outcome, open_journal
from harness.core.sessions import Members
from harness.fields.pki import TestPKI
from harness.fields.testdata import load_testdata
from harness.host.service_host import BackgroundHost, HostOptions, ServiceHost
from harness.host.simulator import Fault, RunState
from harness.sut import dmp_messages as M
from harness.sut.base import ActionStatus, DmpFeed, DmpQuery, DmpUpdate, SutEnvironment
from harness.sut.control_api import BY_NAME
from harness.sut.documents import build_cda
from harness.sut.http_driver import data_errors
from harness.sut.reference import FaultyDUI, ReferenceDUI
from mock_services.dmp.store import Authorisation, DmpState
from tests.conftest import CORPUS
from tests.hostile import BILLION_LAUGHS

ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
TESTDATA = load_testdata(package_root() / "fixtures")
XSD_DIR = CORPUS / "cisis-cda" / "infrastructure" / "cda"


class Dmp:
    """A running host with the DMP simulator, a reference DUI, and a raw HTTPS client with the org certificate."""

    def __init__(self, tmp: Path, settings: dict[str, object] | None = None) -> None:
        self.pki = TestPKI.ensure(tmp / "pki")
        self.journal = open_journal(f"sqlite:///{tmp}/journal.sqlite")
        settings = {
            "dmp": {
                "max_request_bytes": 8 * 1024 * 1024,
                **({"cda_xsd_dir": str(XSD_DIR)} if XSD_DIR.is_dir() else {}),
                **(settings or {}),
            }
        }
        self.host = ServiceHost(
            self.journal, self.pki, TESTDATA, HostOptions(services=["dmp"], settings=settings), RunState("dmp-tests")
        )
        self.background = BackgroundHost(self.host)
        self.endpoints = self.background.start()
        self.sim = self.host.simulators["dmp"]
        self.env = SutEnvironment(
            endpoints=self.endpoints,
            ca_bundle=self.pki.ca_bundle_path,
            client_certificates={n: (c.cert_path, c.key_path) for n, c in self.pki.clients.items()},
            credentials={},
        )
        self.dui = ReferenceDUI()
        self.dui.setup(self.env)
        # the organisation certificate of the first test person's ESSMS (the DMP issues ESSMS-<FINESS> at start)
        self.credentials = self.credentials_of(TESTDATA.establishment(TESTDATA.persons[0].essms).finess)

    def credentials_of(self, finess: str) -> M.OrgCredentials:
        issued = self.pki.client(f"ESSMS-{finess}")
        return M.OrgCredentials(str(issued.cert_path), str(issued.key_path))

    def client(self, *, with_cert: bool = True) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.pki.ca_bundle_path))
        if with_cert:
            context.load_cert_chain(self.credentials.cert_path, self.credentials.key_path)
        return httpx.Client(verify=context, timeout=30.0)

    def url(self, service: str = "repository") -> str:
        return self.endpoints["dmp"][service]

    def post(
        self, content: bytes, content_type: str, service: str = "repository", *, with_cert: bool = True
    ) -> httpx.Response:
        with self.client(with_cert=with_cert) as client:
            return client.post(self.url(service), content=content, headers={"Content-Type": content_type})

    def iti41(self, person_index: int = 0, **kwargs: object) -> tuple[etree._Element, dict[str, bytes]]:
        person = TESTDATA.persons[person_index]
        establishment = TESTDATA.establishment(person.essms)
        cda = kwargs.pop("cda", None) or build_cda(person, establishment, "DLU")
        body, attachments, _, _ = M.build_iti41(person, establishment, "DLU", cda, self.credentials, **kwargs)  # type: ignore[arg-type]
        return body, attachments

    def envelope(
        self, body: etree._Element, person_index: int = 0, action: str = ITI41, *, sign: bool = True
    ) -> etree._Element:
        person = TESTDATA.persons[person_index]
        vihf = M.build_vihf(person, TESTDATA.establishment(person.essms), self.credentials, sign=sign)
        return M.envelope(action, self.url(), body, vihf)

    def rejections(self) -> int:
        return self.journal.count(JournalFilter(service="dmp", outcome=Outcome.REJECTED))

    def healthy(self) -> bool:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(self.pki.ca_bundle_path)), timeout=10) as client:
            return client.get(self.endpoints["harness"]["health"]).status_code == 200


@pytest.fixture(scope="module")
def dmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dmp]:
    running = Dmp(tmp_path_factory.mktemp("dmp"))
    yield running
    running.background.stop()
    running.journal.close()


def _person(index: int = 0):  # noqa: ANN202
    person = TESTDATA.persons[index]
    return person, TESTDATA.establishment(person.essms)


def _fault_code(response: httpx.Response) -> str:
    root = etree.fromstring(response.content)
    return root.findtext(".//{http://www.w3.org/2003/05/soap-envelope}Detail/errorCode") or ""


def _registry_codes(response: httpx.Response) -> tuple[str, list[str]]:
    body, _ = M.read_response(response.headers["content-type"], response.content)
    status, errors = M.registry_errors(body)
    return status, [c for c, _, s in errors if s == "Error"]


# --------------------------------------------------------------------------------------------- happy paths
def test_reference_dui_feeds_and_the_journal_records_it_for_the_indicator(dmp: Dmp) -> None:
    person, establishment = _person(0)
    result = dmp.dui.dmp_feed(DmpFeed(person, establishment, "DLU"))
    assert result.status is ActionStatus.DONE, result.detail
    [exchange] = dmp.journal.query(
        JournalFilter(
            service="dmp", operation="iti41.provide_and_register", outcome=Outcome.ACCEPTED, person=person.ins.value
        )
    )[-1:]
    assert exchange.service == "dmp" and exchange.essms == establishment.finess and exchange.person == person.ins.value
    assert dmp.sim.store.by_unique_id(result.data["unique_id"]) is not None


def test_search_retrieve_replace_mask_archive_delete(dmp: Dmp) -> None:
    person, establishment = _person(1)
    first = dmp.dui.dmp_feed(DmpFeed(person, establishment, "DLU"))
    second = dmp.dui.dmp_feed(DmpFeed(person, establishment, "DLU", replaces=first.data["unique_id"]))
    assert second.status is ActionStatus.DONE, second.detail
    assert dmp.sim.store.by_unique_id(first.data["unique_id"]).status.endswith("Deprecated")
    found = dmp.dui.dmp_find(DmpQuery(person, establishment))
    # the reference DUI's answers follow the data schemas its plugin publishes (they cannot drift apart)
    for name, answer in (("dmp-feed", first), ("dmp-feed", second), ("dmp-find", found)):
        assert answer.data and data_errors(BY_NAME[name], answer.data) == [], name
    unique_ids = {d["unique_id"] for d in found.data["documents"]}
    assert second.data["unique_id"] in unique_ids and first.data["unique_id"] not in unique_ids
    retrieved = dmp.dui.dmp_retrieve(DmpQuery(person, establishment, unique_id=second.data["unique_id"]))
    assert data_errors(BY_NAME["dmp-retrieve"], retrieved.data) == []
    assert retrieved.status is ActionStatus.DONE and retrieved.data["identical"]
    assert (
        dmp.dui.dmp_update(DmpUpdate(person, establishment, second.data["unique_id"], "masquer")).status
        is ActionStatus.DONE
    )
    assert dmp.sim.store.by_unique_id(second.data["unique_id"]).masked_to_professionals
    assert (
        dmp.dui.dmp_update(DmpUpdate(person, establishment, second.data["unique_id"], "archiver")).status
        is ActionStatus.DONE
    )
    assert (
        dmp.dui.dmp_update(DmpUpdate(person, establishment, second.data["unique_id"], "supprimer")).status
        is ActionStatus.DONE
    )
    after = dmp.dui.dmp_find(DmpQuery(person, establishment))
    assert second.data["unique_id"] not in {d["unique_id"] for d in after.data["documents"]}
    gone = dmp.dui.dmp_retrieve(DmpQuery(person, establishment, unique_id=second.data["unique_id"]))
    assert gone.status is ActionStatus.FAILED and "XDSDocumentUniqueIdError" in gone.detail


def test_masked_documents_are_hidden_from_other_structures(dmp: Dmp) -> None:
    person, establishment = _person(2)
    fed = dmp.dui.dmp_feed(DmpFeed(person, establishment, "DLU"))
    dmp.dui.dmp_update(DmpUpdate(person, establishment, fed.data["unique_id"], "masquer"))
    other = next(e for e in TESTDATA.establishments if e.finess != establishment.finess)
    found = dmp.dui.dmp_find(DmpQuery(person, other))
    assert fed.data["unique_id"] not in {d["unique_id"] for d in found.data["documents"]}
    assert fed.data["unique_id"] in {
        d["unique_id"] for d in dmp.dui.dmp_find(DmpQuery(person, establishment)).data["documents"]
    }


# --------------------------------------------------------------------------------------------- states, TD0.2
@pytest.mark.parametrize(
    ("state", "authorisation", "expected"),
    [
        (DmpState.CLOSED, Authorisation.VALID, "fermé"),
        (DmpState.ABSENT, Authorisation.NONE, "pas de DMP"),
        (DmpState.ACTIVE, Authorisation.FORBIDDEN, "INTERDITE"),
    ],
)
def test_td02_states_stop_the_reference_dui(
    dmp: Dmp, state: DmpState, authorisation: Authorisation, expected: str
) -> None:
    person, establishment = _person(3)
    dmp.sim.set_person(person.ins.value, state=state, authorisation=authorisation)
    try:
        result = dmp.dui.dmp_feed(DmpFeed(person, establishment, "DLU"))
    finally:
        dmp.sim.set_person(person.ins.value, state=DmpState.ACTIVE, authorisation=Authorisation.VALID)
    assert result.status is ActionStatus.FAILED and expected in result.detail


@pytest.mark.parametrize(
    ("state", "authorisation", "code"),
    [
        (DmpState.CLOSED, Authorisation.VALID, "DMPClosed"),
        (DmpState.ABSENT, Authorisation.NONE, "XDSUnknownPatientId"),
        (DmpState.ACTIVE, Authorisation.FORBIDDEN, "DMPAccessDenied"),
    ],
)
def test_iti41_refused_by_state_even_when_the_dui_skips_td02(
    dmp: Dmp, state: DmpState, authorisation: Authorisation, code: str
) -> None:
    person, establishment = _person(3)
    faulty = FaultyDUI(frozenset({"ignore-dmp-ferme"}))
    faulty.setup(dmp.env)
    dmp.sim.set_person(person.ins.value, state=state, authorisation=authorisation)
    try:
        result = faulty.dmp_feed(DmpFeed(person, establishment, "DLU"))
    finally:
        dmp.sim.set_person(person.ins.value, state=DmpState.ACTIVE, authorisation=Authorisation.VALID)
    assert result.status is ActionStatus.DONE and code in result.data["hidden_failure"]  # the faulty DUI hides it


def test_faults_on_demand_soap_fault_and_timeout(dmp: Dmp) -> None:
    person, establishment = _person(4)
    dmp.host.faults.inject("dmp", Fault("dmp.soap_fault", {"code": "Receiver", "reason": "maintenance"}))
    result = dmp.dui.dmp_feed(DmpFeed(person, establishment, "DLU"))
    assert result.status is ActionStatus.FAILED and "maintenance" in result.detail
    dmp.host.faults.inject("dmp", Fault("dmp.authorisation_refused"))
    result = dmp.dui.dmp_feed(DmpFeed(person, establishment, "DLU"))
    assert result.status is ActionStatus.FAILED and "DMPAccessDenied" in result.detail
    dmp.host.faults.inject("dmp", Fault("dmp.timeout", {"seconds": 0.3}))
    started = time.monotonic()
    body, attachments = dmp.iti41(4)
    content, content_type = M.mtom(dmp.envelope(body, 4), attachments, ITI41)
    response = dmp.post(content, content_type)
    assert response.status_code == 504 and time.monotonic() - started >= 0.3
    [last] = dmp.journal.query(JournalFilter(service="dmp"))[-1:]
    assert last.error_code == "SIMULATED-TIMEOUT"


def test_a_feed_fault_aimed_at_a_session_is_taken_by_that_sessions_feed_only(dmp: Dmp) -> None:
    """Issue 19 item 4: ``dmp.authorisation_refused`` aimed at a session; the feed of a structure of no session, then
    of another session, does not take it; the session's own feed does."""
    person, establishment = _person(4)
    other = next(e for e in TESTDATA.establishments if e.finess != establishment.finess)
    book = dmp.host.sessions
    theirs = book.create("DUI B", Members(essms=(other.finess,)))
    try:
        dmp.host.faults.inject("dmp", Fault("dmp.authorisation_refused", session=theirs.id))
        assert dmp.dui.dmp_feed(DmpFeed(person, establishment, "DLU")).status is ActionStatus.DONE
        mine = book.create("DUI A", Members(essms=(establishment.finess,)))
        assert dmp.dui.dmp_feed(DmpFeed(person, establishment, "DLU")).status is ActionStatus.DONE
        dmp.host.faults.inject("dmp", Fault("dmp.authorisation_refused", session=mine.id))
        refused = dmp.dui.dmp_feed(DmpFeed(person, establishment, "DLU"))
        assert refused.status is ActionStatus.FAILED and "DMPAccessDenied" in refused.detail
        [last] = dmp.journal.query(JournalFilter(service="dmp", operation="iti41.provide_and_register"))[-1:]
        assert (last.outcome, last.session_id) == (Outcome.REJECTED, mine.id)
        book.close(mine.id)
    finally:
        book.close(theirs.id)
        dmp.host.faults.clear()


# --------------------------------------------------------------------------------------------- VIHF and transport
def test_unsigned_vihf_and_missing_client_certificate_are_soap_faults(dmp: Dmp) -> None:
    body, attachments = dmp.iti41(0)
    content, content_type = M.mtom(dmp.envelope(body, sign=False), attachments, ITI41)
    response = dmp.post(content, content_type)
    assert response.status_code == 400 and _fault_code(response) == "VIHF-SIGNATURE-ABSENTE"
    [journaled] = dmp.journal.query(JournalFilter(service="dmp"))[-1:]
    assert journaled.error_code == "VIHF-SIGNATURE-ABSENTE" and "VIHF-SIGNATURE-ABSENTE" in {
        f["code"] for f in journaled.details["findings"]
    }
    content, content_type = M.mtom(dmp.envelope(body), attachments, ITI41)
    response = dmp.post(content, content_type, with_cert=False)
    assert response.status_code == 400 and _fault_code(response) == "TLS-CLIENT-CERT"


def test_tampered_vihf_attribute_breaks_the_signature(dmp: Dmp) -> None:
    body, attachments = dmp.iti41(0)
    envelope = dmp.envelope(body)
    value = envelope.xpath("//*[@Name='LPS_Nom']/*")[0]
    value.text = "autre logiciel"
    content, content_type = M.mtom(envelope, attachments, ITI41)
    assert _fault_code(dmp.post(content, content_type)) == "VIHF-SIGNATURE-INVALIDE"


def test_wrong_action_soap11_and_missing_message_id(dmp: Dmp) -> None:
    body, attachments = dmp.iti41(0)
    content, content_type = M.mtom(dmp.envelope(body, action="urn:ihe:iti:2007:RegistryStoredQuery"), attachments, "x")
    response = dmp.post(content, content_type)
    assert _fault_code(response) == "ActionNotSupported"
    envelope = dmp.envelope(body)
    header = envelope.find("{http://www.w3.org/2003/05/soap-envelope}Header")
    header.remove(header.find("{http://www.w3.org/2005/08/addressing}MessageID"))
    content, content_type = M.mtom(envelope, attachments, ITI41)
    assert _fault_code(dmp.post(content, content_type)) == "MessageAddressingHeaderRequired"
    soap11 = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>'
    response = dmp.post(soap11, "application/soap+xml")
    assert _fault_code(response) == "SOAP-VERSION"


# --------------------------------------------------------------------------------------------- metadata and CDA
def test_metadata_defects_come_back_as_registry_errors(dmp: Dmp) -> None:
    for options, code in (
        (M.FeedOptions(wrong_ins_key=True), "XDSUnknownPatientId"),
        (M.FeedOptions(signature_document=False), "XDSRegistryMetadataError"),
        (M.FeedOptions(type_code_override="11488-4"), "XDSRegistryMetadataError"),
    ):
        body, attachments = dmp.iti41(0, options=options)
        content, content_type = M.mtom(dmp.envelope(body), attachments, ITI41)
        status, codes = _registry_codes(dmp.post(content, content_type))
        assert status.endswith("Failure") and code in codes, (options, codes)


def test_cda_defects_are_refused_as_invalid_document_content(dmp: Dmp) -> None:
    person, establishment = _person(0)
    cda = build_cda(person, establishment, "DLU")
    broken = cda.replace(
        b'extension="' + person.ins.value.encode(), b'extension="' + person.ins.number.encode() + b"00", 1
    )
    body, attachments = dmp.iti41(0, cda=broken)
    content, content_type = M.mtom(dmp.envelope(body), attachments, ITI41)
    status, codes = _registry_codes(dmp.post(content, content_type))
    assert status.endswith("Failure") and "InvalidDocumentContent" in codes


# --------------------------------------------------------------------------------------------- hostile input
def _hostile_envelopes(dmp: Dmp) -> list[tuple[bytes, str, str]]:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body>&x;</e:Body></e:Envelope>'
    )
    no_body = b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Header/></e:Envelope>'
    return [
        (xxe, "application/soap+xml", "XML-DOCTYPE-FORBIDDEN"),
        (BILLION_LAUGHS, "application/soap+xml", "XML-DOCTYPE-FORBIDDEN"),
        (no_body, "application/soap+xml", "SOAP-NO-BODY"),
        (b"not xml at all", "application/soap+xml", "XML-MALFORMED"),
        (
            b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n",
            'multipart/related; boundary="b"; type="application/xop+xml"',
            "MTOM-ROOT-TYPE",
        ),
        (
            b"--b\r\nContent-Type: application/xop+xml\r\n\r\n<x/>",
            'multipart/related; boundary="b"; type="application/xop+xml"',
            "MTOM-MALFORMED",
        ),
        (b"garbage", "multipart/related", "MTOM-BOUNDARY"),
        (b"{}", "application/json", "HTTP-CONTENT-TYPE"),
    ]


def test_hostile_envelopes_get_soap_faults_and_are_journaled(dmp: Dmp) -> None:
    for content, content_type, code in _hostile_envelopes(dmp):
        before = dmp.rejections()
        response = dmp.post(content, content_type)
        assert response.status_code == 400 and _fault_code(response) == code, (content[:40], response.text[:300])
        assert dmp.rejections() == before + 1
    assert dmp.healthy()


def test_missing_or_misnamed_mtom_parts_are_registry_errors(dmp: Dmp) -> None:
    body, attachments = dmp.iti41(0)
    first = next(iter(attachments))
    renamed = {("wrong-" + cid if cid == first else cid): data for cid, data in attachments.items()}
    for parts in (renamed, {k: v for k, v in attachments.items() if k != first}):
        content, content_type = M.mtom(dmp.envelope(body), parts, ITI41)
        status, codes = _registry_codes(dmp.post(content, content_type))
        assert status.endswith("Failure") and "XDSMissingDocument" in codes


def test_base64_garbage_and_non_xml_cda(dmp: Dmp) -> None:
    body, attachments = dmp.iti41(0)
    document = body.find("{urn:ihe:iti:xds-b:2007}Document")
    document.remove(document[0])
    document.text = "%%% not base64 %%%"
    content, content_type = M.mtom(dmp.envelope(body), attachments, ITI41)
    assert _fault_code(dmp.post(content, content_type)) == "XDS-BASE64"
    body, attachments = dmp.iti41(0)
    attachments[next(iter(attachments))] = b"\x00\x01 this is no XML"
    content, content_type = M.mtom(dmp.envelope(body), attachments, ITI41)
    status, codes = _registry_codes(dmp.post(content, content_type))
    assert status.endswith("Failure") and "InvalidDocumentContent" in codes
    assert dmp.healthy()


def test_oversized_request_is_refused_before_being_read(dmp: Dmp) -> None:
    before = dmp.rejections()
    sent = 0

    def hundred_megabytes() -> Iterator[bytes]:
        nonlocal sent
        head = b"--b\r\nContent-Type: application/xop+xml\r\n\r\n<x/>\r\n--b\r\nContent-ID: <big>\r\n\r\n"
        sent += len(head)
        yield head
        chunk = b"A" * (1024 * 1024)
        for _ in range(100):
            sent += len(chunk)
            yield chunk

    with dmp.client() as client:
        try:
            response = client.post(
                dmp.url(),
                content=hundred_megabytes(),
                headers={"Content-Type": 'multipart/related; boundary="b"; type="application/xop+xml"'},
            )
            assert response.status_code == 400 and _fault_code(response) == "HTTP-TOO-LARGE"
        except httpx.HTTPError:
            pass  # the server answered and closed the connection while the client was still writing
    assert dmp.rejections() == before + 1
    assert sent < 100 * 1024 * 1024  # the client was stopped long before the end
    # A declared Content-Length over the bound is refused at once, without reading any body.
    url = httpx.URL(dmp.url())
    context = ssl.create_default_context(cafile=str(dmp.pki.ca_bundle_path))
    context.load_cert_chain(dmp.credentials.cert_path, dmp.credentials.key_path)
    with (
        socket.create_connection((url.host, url.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=url.host) as tls,
    ):
        tls.sendall(
            f"POST {url.raw_path.decode()} HTTP/1.1\r\nHost: {url.host}\r\nContent-Type: multipart/related; boundary=b\r\n"
            f"Content-Length: {200 * 1024 * 1024}\r\n\r\n--b\r\n".encode()
        )
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and b"HTTP-TOO-LARGE" in answer
    assert dmp.healthy()


def test_per_run_state_is_not_shared_between_hosts(tmp_path: Path, dmp: Dmp) -> None:
    other = Dmp(tmp_path)
    try:
        assert other.sim.store.documents() == [] and other.sim.store is not dmp.sim.store
    finally:
        other.background.stop()
        other.journal.close()


def test_faulty_reference_defects_are_declared() -> None:
    from harness.sut.reference import DEFECTS

    assert {
        "vihf-non-signe",
        "cle-ins-erronee-dmp",
        "sans-document-signature",
        "typecode-errone",
        "ignore-dmp-ferme",
    } <= set(DEFECTS)
