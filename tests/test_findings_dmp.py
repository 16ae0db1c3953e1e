"""The DMP simulator's refusals no other test names, through its HTTPS endpoints (mutual TLS, signed VIHF), each
asserting the EXACT SOAP fault or HL7 acknowledgement and the journal's record: a body that is not the
transaction's (IHE ITI TF-2b §3.18 / §3.41 / §3.43, ITI TF-2 §3.57; HL7 v3 PRPA_IN201307UV02 for the DMP's TD0.2,
"DMP - Guide d'intégration"), a TD0.2 without a readable patient identifier, and the fault injected on demand.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from lxml import etree
from test_dmp import ITI41, TESTDATA, Dmp, _fault_code

from harness.core.journal import Exchange, JournalFilter, Outcome
from harness.host.simulator import Fault
from harness.sut import dmp_messages as M

ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
TD02 = "urn:hl7-org:v3:PRPA_IN201307UV02"
HL7 = "urn:hl7-org:v3"
PERSON = TESTDATA.persons[0]
ESTABLISHMENT = TESTDATA.establishment(PERSON.essms)


@pytest.fixture(scope="module")
def dmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dmp]:
    running = Dmp(tmp_path_factory.mktemp("dmp-findings"))
    yield running
    running.background.stop()
    running.journal.close()


def send(dmp: Dmp, action: str, service: str, body: etree._Element) -> httpx.Response:
    vihf = M.build_vihf(PERSON, ESTABLISHMENT, dmp.credentials)
    envelope = M.envelope(action, dmp.url(service), body, vihf)
    return dmp.post(etree.tostring(envelope), "application/soap+xml; charset=UTF-8", service)


def last(dmp: Dmp) -> Exchange:
    [exchange] = dmp.journal.query(JournalFilter(service="dmp"))[-1:]
    return exchange


@pytest.mark.parametrize(
    ("action", "service", "code"),
    [
        (ITI41, "repository", "XDS-BODY"),
        (ITI43, "repository", "XDS-BODY"),
        (ITI18, "registry", "XDS-BODY"),
        (ITI57, "registry", "XDS-BODY"),
        (TD02, "patients", "HL7-BODY"),
    ],
)
def test_a_body_that_is_not_the_transaction_is_a_sender_fault(dmp: Dmp, action: str, service: str, code: str) -> None:
    """The action is right, the body carries another element: env:Sender, HTTP 400, journaled as rejected."""
    response = send(dmp, action, service, etree.Element(f"{{{HL7}}}Autre"))
    assert (response.status_code, _fault_code(response)) == (400, code)
    exchange = last(dmp)
    assert (exchange.outcome, exchange.error_code) == (Outcome.REJECTED, code)


def _td02_without(path: str | None = None, **value: str) -> etree._Element:
    query = M.build_td02(PERSON, ESTABLISHMENT)
    element = query.find(".//{urn:hl7-org:v3}patientIdentifier/{urn:hl7-org:v3}value")
    if path is None:
        element.getparent().remove(element)
    for name, text in value.items():
        element.set(name, text)
    return query


@pytest.mark.parametrize(
    "query",
    [
        _td02_without(),
        _td02_without("", extension=PERSON.ins.value[:-1] + str((int(PERSON.ins.value[-1]) + 1) % 10)),
        _td02_without("", root="1.2.3.4"),
    ],
    ids=["no-value", "bad-key", "unknown-oid"],
)
def test_td02_without_a_readable_patient_identifier(dmp: Dmp, query: etree._Element) -> None:
    """Answered (HTTP 200) with an AE acknowledgement naming HL7-PATIENT-ID and nothing else; journaled rejected."""
    response = send(dmp, TD02, "patients", query)
    assert response.status_code == 200
    body, _ = M.read_response(response.headers["content-type"], response.content)
    details = body.xpath("hl7:acknowledgement/hl7:acknowledgementDetail/hl7:code/@code", namespaces={"hl7": HL7})
    assert (M.read_td02(body)["ack"], details) == ("AE", ["HL7-PATIENT-ID"])
    exchange = last(dmp)
    assert exchange.outcome is Outcome.REJECTED and exchange.person is None
    assert [(f["code"], f["severity"]) for f in exchange.details["findings"]] == [("HL7-PATIENT-ID", "error")]


def test_the_same_td02_with_its_identifier_is_accepted(dmp: Dmp) -> None:
    response = send(dmp, TD02, "patients", M.build_td02(PERSON, ESTABLISHMENT))
    body, _ = M.read_response(response.headers["content-type"], response.content)
    assert response.status_code == 200 and M.read_td02(body)["ack"] == "AA"
    assert last(dmp).outcome is Outcome.ACCEPTED and last(dmp).person == PERSON.ins.value


def test_a_fault_on_demand_is_answered_once_with_its_code(dmp: Dmp) -> None:
    dmp.host.faults.inject("dmp", Fault("dmp.soap_fault", {"code": "Receiver", "reason": "maintenance"}))
    body, attachments = dmp.iti41(0)
    content, content_type = M.mtom(dmp.envelope(body), attachments, ITI41)
    response = dmp.post(content, content_type)
    assert (response.status_code, _fault_code(response)) == (500, "SIMULATED-FAULT")
    assert (last(dmp).outcome, last(dmp).error_code) == (Outcome.REJECTED, "SIMULATED-FAULT")
    body, attachments = dmp.iti41(0)
    content, content_type = M.mtom(dmp.envelope(body), attachments, ITI41)
    assert dmp.post(content, content_type).status_code == 200  # the fault was taken once
