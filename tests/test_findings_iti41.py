"""ITI-41 Provide and Register checks (harness/validators/iti41.py) one by one, without PKI nor simulator: the
transport forms of a saved request (IHE ITI TF-2b §3.41, MTOM/XOP per ITI TF-2x Appendix V), the documents against
their DocumentEntry (ITI TF-3 §4.2.3.2 size, SHA-1 hash, mimeType, patientId, typeCode, formatCode, uniqueId) and
the verdict on a saved request, asserting the EXACT findings. The metadata are the hand-written submission of
tests/test_findings_xds_metadata.py, its patient and document made those of a generated DLU CDA.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from lxml import etree

from harness.core.config import package_root
from harness.fields.identity import ProductionInsPolicy, parse_xds_patient_id
from harness.fields.soap12 import SoapFault
from harness.fields.testdata import load_testdata
from harness.sut import dmp_messages as M
from harness.sut.documents import build_cda
from harness.validators import Finding, Severity
from harness.validators import iti41 as I
from harness.validators.vihf import Strictness, VihfPolicy, VihfReport
from harness.validators.xds_metadata import XdsSubmission, read_submission
from tests.test_findings_xds_metadata import (
    CLASS_CODE,
    CLEAN,
    DOC,
    DOC_PATIENT_ID,
    DOC_UNIQUE_ID,
    FORMAT_CODE,
    SIG,
    SS,
    SS_PATIENT_ID,
    TYPE_CODE,
    by_id,
    external,
    set_code,
    set_slot,
    slot,
)

XDSB = "urn:ihe:iti:xds-b:2007"
XOP = "http://www.w3.org/2004/08/xop/include"
ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
TESTDATA = load_testdata(package_root() / "fixtures")
PERSON, OTHER = TESTDATA.persons[0], TESTDATA.persons[1]
ESTABLISHMENT = TESTDATA.establishment(PERSON.essms)
CDA = build_cda(PERSON, ESTABLISHMENT, "DLU")
CDA_UID = M.document_unique_id(CDA)
SIGNATURE = b"<pas-une-signature/>"
E_DOC, E_SIG = f"DocumentEntry {DOC}", f"DocumentEntry {SIG}"
NOT_CONFIGURED = [
    ("CDA-XSD-NOT-CONFIGURED", Severity.WARNING, E_DOC),
    ("SCH-NON-VERIFIE", Severity.WARNING, E_DOC),
]
ILLISIBLE = (
    "DSG-ILLISIBLE",
    Severity.ERROR,
    E_SIG,
    "document de signature: ds:Signature attendu, reçu pas-une-signature",
)


def metadata(change: Callable | None = None) -> etree._Element:
    """The clean SubmitObjectsRequest about the CDA's patient and the CDA itself (DLU, LOINC 74207-2)."""
    root = etree.fromstring(CLEAN.encode())
    cx = M.patient_cx(PERSON.ins)
    for obj, scheme in ((SS, SS_PATIENT_ID), (DOC, DOC_PATIENT_ID), (SIG, DOC_PATIENT_ID)):
        external(root, obj, scheme).set("value", cx)
    slot(by_id(root, DOC), "sourcePatientId")[0][0].text = cx
    external(root, DOC, DOC_UNIQUE_ID).set("value", CDA_UID)
    set_code(DOC, TYPE_CODE, "74207-2")(root)
    slot(by_id(root, DOC), "hash")[0][0].text = hashlib.sha1(CDA).hexdigest()  # noqa: S324 - XDS hash is SHA-1
    slot(by_id(root, DOC), "size")[0][0].text = str(len(CDA))
    if change is not None:
        change(root)
    return root


def submission(change: Callable | None = None) -> XdsSubmission:
    return read_submission(metadata(change), require_signature=False)


def payload(change: Callable | None = None, documents: dict[str, bytes | str] | None = None) -> etree._Element:
    """A ProvideAndRegisterDocumentSetRequest: bytes are carried inline (base64), a ``str`` is a ``cid:`` href."""
    request = etree.Element(f"{{{XDSB}}}ProvideAndRegisterDocumentSetRequest", nsmap={"xdsb": XDSB})
    request.append(metadata(change))
    for ident, content in ({DOC: CDA, SIG: SIGNATURE} if documents is None else documents).items():
        document = etree.SubElement(request, f"{{{XDSB}}}Document", id=ident)
        if isinstance(content, str):
            etree.SubElement(document, f"{{{XOP}}}Include", nsmap={"xop": XOP}, href=content)
        else:
            document.text = base64.b64encode(content).decode()
    return request


def found(findings: list[Finding]) -> list[tuple[str, Severity, str, str]]:
    return [(f.code, f.severity, f.location, f.message) for f in findings]


def short(findings: list[Finding]) -> list[tuple[str, Severity, str]]:
    return [(f.code, f.severity, f.location) for f in findings]


# ------------------------------------------------------------------------------------------------ small pieces
@pytest.mark.parametrize(
    ("raw", "finess"),
    [
        ("1750000001", "750000001"),
        ("3750000001", "3750000001"),
        ("175000000", "175000000"),
        ("17500000011", "17500000011"),
        ("", ""),
        (None, None),
    ],
)
def test_structure_finess_strips_the_idnst_prefix_only(raw: str | None, finess: str | None) -> None:
    assert I.structure_finess(raw) == finess


def test_is_provide_and_register_reads_the_root() -> None:
    assert I.is_provide_and_register(payload()) is True
    assert I.is_provide_and_register(etree.Element(f"{{{XDSB}}}RetrieveDocumentSetRequest")) is False
    assert I.is_provide_and_register(None) is False


MTOM_MESSAGE = "ITI-41 reçu sans MTOM/XOP (application/soap+xml) : IHE ITI TF-2b §3.41 impose multipart/related MTOM"


@pytest.mark.parametrize(
    ("mtom", "strictness", "expected"),
    [
        (True, Strictness.STRICT, []),
        (True, Strictness.LENIENT, []),
        (False, Strictness.OFF, []),
        (False, Strictness.STRICT, [("MTOM-REQUIRED", Severity.ERROR, "HTTP Content-Type", MTOM_MESSAGE)]),
        (False, Strictness.LENIENT, [("MTOM-REQUIRED", Severity.WARNING, "HTTP Content-Type", MTOM_MESSAGE)]),
    ],
)
def test_mtom_is_required_as_strict_as_asked(mtom: bool, strictness: Strictness, expected: list) -> None:
    assert found(I.mtom_findings(mtom, strictness)) == expected


MULTIPART = 'multipart/related; type="application/xop+xml"; boundary="{}"'


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"<e/>", ("application/soap+xml", b"<e/>")),
        (b"\xef\xbb\xbf \r\n<e/>", ("application/soap+xml", b"<e/>")),
        (b"--MIMEBoundary_1\r\nContent-Type: x\r\n\r\nbody", (MULTIPART.format("MIMEBoundary_1"), None)),
        (b"\n--uuid:42 \nContent-Type: x\n\nbody", (MULTIPART.format("uuid:42"), None)),
        (
            b'Content-Type: multipart/related;\r\n boundary="b1"\r\nMIME-Version: 1.0\r\n\r\n--b1\r\n',
            ('multipart/related; boundary="b1"', b"--b1\r\n"),
        ),
        (b"MIME-Version: 1.0\ncontent-TYPE:  text/plain \n\nbody\n", ("text/plain", b"body\n")),
        (b"X: 1\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n", ("b", b"")),
    ],
)
def test_split_request_reads_the_three_saved_forms(data: bytes, expected: tuple[str, bytes | None]) -> None:
    content_type, body = I.split_request(data)
    assert content_type == expected[0]
    assert body == (data.lstrip() if expected[1] is None else expected[1])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"rien de lisible", "ni enveloppe SOAP, ni corps MTOM (--boundary), ni en-têtes MIME"),
        (b"MIME-Version: 1.0\r\nX-Other: 2\r\n\r\nbody", "en-têtes MIME sans Content-Type"),
        (b"Content-Type:\n\nbody", "en-têtes MIME sans Content-Type"),
        (b"Content-Type x\n\nbody", "en-têtes MIME sans Content-Type"),
        (b"-" * 2 + b"x" * 201 + b"\r\n", "ni enveloppe SOAP, ni corps MTOM (--boundary), ni en-têtes MIME"),
    ],
)
def test_split_request_refuses_what_is_none_of_them(data: bytes, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        I.split_request(data)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'--b\r\nContent-Type: application/xop+xml; type="application/soap+xml"\r\n', True),
        (b"\xef\xbb\xbf\n  --b\r\nContent-Type: APPLICATION/XOP+XML\r\n", True),
        (b'Content-Type: Multipart/Related; type="application/xop+xml"\r\n\r\n', True),
        (b'Content-Type: text/plain; x="application/xop+xml"\r\n\r\n', False),
        (b"--b\r\nContent-Type: application/soap+xml\r\n", False),
        (b"--" + b" " * 8171 + b"application/xop+xml", True),  # ends at byte 8192: read
        (b"--" + b" " * 8172 + b"application/xop+xml", False),  # ends at byte 8193: beyond the head
        (b"<e>application/xop+xml</e>", False),
    ],
)
def test_looks_like_request_wants_an_xop_multipart(data: bytes, expected: bool) -> None:
    assert I.looks_like_request(data) is expected


# ------------------------------------------------------------------------------------------------ who it is for
def vihf(resource: str | None = None, *findings: Finding) -> VihfReport:
    ins = parse_xds_patient_id(resource) if resource else None
    return VihfReport(findings=list(findings), present=True, resource_ins=ins)


def test_read_provide_and_register_compares_the_vihf_patient() -> None:
    before = Finding("VIHF-X", "constat du VIHF", location="VIHF")
    submission, findings = I.read_provide_and_register(
        payload(), vihf(M.patient_cx(PERSON.ins), before), I.Iti41Policy()
    )
    assert submission.patient == PERSON.ins and [e.id for e in submission.entries] == [DOC, SIG]
    assert findings == [before]
    _, findings = I.read_provide_and_register(payload(), vihf(None), I.Iti41Policy())
    assert findings == []
    _, findings = I.read_provide_and_register(payload(), vihf(M.patient_cx(OTHER.ins)), I.Iti41Policy())
    assert found(findings) == [
        (
            "XDSPatientIdDoesNotMatch",
            Severity.ERROR,
            "VIHF",
            f"resource-id du VIHF ({OTHER.ins.to_xds()}) différent du patientId du lot ({PERSON.ins.to_xds()})",
        )
    ]
    no_patient = payload(lambda root: by_id(root, SS).remove(external(root, SS, SS_PATIENT_ID)))
    _, findings = I.read_provide_and_register(no_patient, vihf(M.patient_cx(OTHER.ins)), I.Iti41Policy())
    assert short(findings) == [("XDSRegistryMetadataError", Severity.ERROR, f"SubmissionSet {SS}")]


def test_read_provide_and_register_reports_the_metadata_findings_and_a_missing_request() -> None:
    _, findings = I.read_provide_and_register(payload(set_slot(DOC, "languageCode", None)), vihf(), I.Iti41Policy())
    assert found(findings) == [("XDSRegistryMetadataError", Severity.ERROR, E_DOC, "languageCode absent")]
    empty = etree.Element(f"{{{XDSB}}}ProvideAndRegisterDocumentSetRequest")
    submission, findings = I.read_provide_and_register(empty, vihf(None, Finding("V", "v")), I.Iti41Policy())
    assert (submission.submission_set, submission.entries, submission.findings) == (None, [], [])
    assert found(findings) == [
        ("V", Severity.ERROR, "", "v"),
        ("XDSRegistryMetadataError", Severity.ERROR, "", "lcm:SubmitObjectsRequest absent"),
    ]


@pytest.mark.parametrize(
    ("policy", "severity"), [(ProductionInsPolicy.WARN, Severity.WARNING), (ProductionInsPolicy.REFUSE, Severity.ERROR)]
)
def test_a_production_ins_follows_the_policy(policy: ProductionInsPolicy, severity: Severity) -> None:
    production = f"{PERSON.ins.value}^^^&1.2.250.1.213.1.4.8&ISO^NH"

    def to_production(root: etree._Element) -> None:
        for obj, scheme in ((SS, SS_PATIENT_ID), (DOC, DOC_PATIENT_ID), (SIG, DOC_PATIENT_ID)):
            external(root, obj, scheme).set("value", production)

    _, findings = I.read_provide_and_register(payload(to_production), vihf(), I.Iti41Policy(production_ins=policy))
    assert short(findings) == [("INS-PRODUCTION", severity, "SubmissionSet patientId")]


# ------------------------------------------------------------------------------------------------ the documents
def test_read_documents_by_entry_inline_or_mtom() -> None:
    findings: list[Finding] = []
    contents = I.read_documents(
        payload(documents={DOC: CDA, SIG: "cid:sig%401"}), submission(), {"sig@1": SIGNATURE}, findings
    )
    assert contents == {DOC: CDA, SIG: SIGNATURE} and findings == []


def test_read_documents_names_each_missing_piece_once() -> None:
    findings: list[Finding] = []
    request = payload(documents={DOC: "cid:absent", "Orphelin": b"x"})
    contents = I.read_documents(request, submission(), {}, findings)
    assert contents == {"Orphelin": b"x"}
    assert found(findings) == [
        (
            "XDSMissingDocument",
            Severity.ERROR,
            f"Document {DOC}",
            f"xdsb:Document {DOC!r}: pièce MTOM <absent> absente du message (Content-ID)",
        ),
        (
            "XDSMissingDocumentMetadata",
            Severity.ERROR,
            "Document Orphelin",
            "xdsb:Document 'Orphelin' sans DocumentEntry",
        ),
        ("XDSMissingDocument", Severity.ERROR, E_SIG, f"DocumentEntry {SIG}: aucun xdsb:Document ne porte ce document"),
    ]


def test_a_missing_part_of_an_unknown_document_is_reported_once() -> None:
    findings: list[Finding] = []
    I.read_documents(
        payload(documents={DOC: CDA, SIG: SIGNATURE, "Orphelin": "cid:absent"}), submission(), {}, findings
    )
    assert short(findings) == [("XDSMissingDocument", Severity.ERROR, "Document Orphelin")]


def test_a_document_without_id_is_one_of_no_entry() -> None:
    findings: list[Finding] = []
    request = payload()
    del request.find(f"{{{XDSB}}}Document").attrib["id"]
    assert I.read_documents(request, submission(), {}, findings) == {"": CDA, SIG: SIGNATURE}
    assert found(findings) == [
        ("XDSMissingDocumentMetadata", Severity.ERROR, "Document ", "xdsb:Document '' sans DocumentEntry"),
        ("XDSMissingDocument", Severity.ERROR, E_DOC, f"DocumentEntry {DOC}: aucun xdsb:Document ne porte ce document"),
    ]


def test_an_unusable_include_is_the_soap_fault_the_dmp_answers() -> None:
    with pytest.raises(SoapFault) as raised:
        I.read_documents(payload(documents={DOC: "http://x"}), submission(), {}, [])
    assert raised.value.error_code == "XOP-HREF"


def entry(change: Callable | None = None, ident: str = DOC):  # noqa: ANN201
    [found_entry] = [e for e in submission(change).entries if e.id == ident]
    return found_entry


def test_the_clean_document_matches_its_entry() -> None:
    findings, summary = I.check_document(entry(), CDA, I.Iti41Policy())
    assert short(findings) == NOT_CONFIGURED
    assert summary == {"entry": DOC, "kind": "cda", "ok": True, "layers": ["xml", "header"], "volet": None}


def test_size_and_hash_are_compared_leniently_on_blanks_and_case() -> None:
    def blanks(root: etree._Element) -> None:
        slot(by_id(root, DOC), "size")[0][0].text = f" {len(CDA)} "
        slot(by_id(root, DOC), "hash")[0][0].text = f" {hashlib.sha1(CDA).hexdigest().upper()} "  # noqa: S324

    findings, _ = I.check_document(entry(blanks), CDA, I.Iti41Policy())
    assert short(findings) == NOT_CONFIGURED
    findings, _ = I.check_document(entry(set_slot(DOC, "size", None)), CDA, I.Iti41Policy())
    assert short(findings) == NOT_CONFIGURED
    findings, _ = I.check_document(entry(set_slot(DOC, "hash", None)), CDA, I.Iti41Policy())
    assert short(findings) == NOT_CONFIGURED


def test_size_and_hash_that_differ_are_repository_errors() -> None:
    findings, _ = I.check_document(entry(), CDA + b"\n", I.Iti41Policy())
    assert found(findings)[:2] == [
        (
            "XDSRepositoryMetadataError",
            Severity.ERROR,
            E_DOC,
            f"size={len(CDA)} mais le document fait {len(CDA) + 1} octets",
        ),
        ("XDSRepositoryMetadataError", Severity.ERROR, E_DOC, "hash SHA-1 déclaré différent de celui du document"),
    ]
    assert short(findings)[2:] == NOT_CONFIGURED


def test_the_signature_document_is_only_measured_here() -> None:
    sig = entry(ident=SIG)
    assert I.check_document(sig, SIGNATURE, I.Iti41Policy()) == ([], {"entry": SIG, "kind": "signature"})

    def sized(root: etree._Element) -> None:
        element = by_id(root, SIG)
        element.insert(
            0,
            etree.fromstring(
                f'<rim:Slot xmlns:rim="{element.nsmap["rim"]}" name="size"><rim:ValueList><rim:Value>1</rim:Value></rim:ValueList></rim:Slot>'
            ),
        )

    findings, summary = I.check_document(entry(sized, SIG), SIGNATURE, I.Iti41Policy())
    assert short(findings) == [("XDSRepositoryMetadataError", Severity.ERROR, E_SIG)]
    assert summary == {"entry": SIG, "kind": "signature"}


@pytest.mark.parametrize("mime", ["text/xml", "application/xml", "application/hl7-v3+xml"])
def test_the_cda_media_types_are_accepted(mime: str) -> None:
    findings, _ = I.check_document(entry(lambda root: by_id(root, DOC).set("mimeType", mime)), CDA, I.Iti41Policy())
    assert short(findings) == NOT_CONFIGURED


def test_another_media_type_is_refused_and_the_content_still_checked_as_a_cda() -> None:
    findings, summary = I.check_document(
        entry(lambda root: by_id(root, DOC).set("mimeType", "application/pdf")), CDA, I.Iti41Policy()
    )
    assert found(findings)[0] == (
        "XDSRegistryMetadataError",
        Severity.ERROR,
        E_DOC,
        "mimeType 'application/pdf' : le DMP n'accepte que des documents CDA R2 (text/xml) ; le contenu est vérifié "
        "comme un document CDA",
    )
    assert short(findings)[1:] == NOT_CONFIGURED and summary["kind"] == "cda"


def test_metadata_that_disagree_with_the_cda_header_are_findings() -> None:
    other_cx = M.patient_cx(OTHER.ins)

    def disagree(root: etree._Element) -> None:
        external(root, DOC, DOC_PATIENT_ID).set("value", other_cx)
        external(root, DOC, DOC_UNIQUE_ID).set("value", "1.2.3")
        set_code(DOC, TYPE_CODE, "11488-4")(root)
        set_code(DOC, FORMAT_CODE, "urn:asip:ci-sis:fludt:2017")(root)

    findings, _ = I.check_document(entry(disagree), CDA, I.Iti41Policy())
    assert found(findings)[2:] == [
        (
            "XDSPatientIdDoesNotMatch",
            Severity.ERROR,
            E_DOC,
            f"INS du document CDA ({PERSON.ins.to_xds()}) différent du patientId ({OTHER.ins.to_xds()})",
        ),
        (
            "XDSRegistryMetadataError",
            Severity.ERROR,
            E_DOC,
            "typeCode '11488-4' incohérent avec le code du document CDA '74207-2'",
        ),
        (
            "XDSRegistryMetadataError",
            Severity.ERROR,
            E_DOC,
            "formatCode 'urn:asip:ci-sis:fludt:2017' (1.2.250.1.213.1.1.4.2.282) incohérent avec le modèle du "
            "document CDA : urn:asip:ci-sis:dlu:2015 (1.2.250.1.213.1.1.4.2.282) attendu "
            "(ASS_A11-CorresModeleCDA-XdsFormatCode)",
        ),
        (
            "XDSRegistryMetadataError",
            Severity.ERROR,
            E_DOC,
            f"uniqueId '1.2.3' différent de l'identifiant du document CDA {CDA_UID!r}",
        ),
    ]


def test_absent_metadata_are_not_compared_with_the_cda() -> None:
    def absent(root: etree._Element) -> None:
        by_id(root, DOC).remove(external(root, DOC, DOC_PATIENT_ID))
        by_id(root, DOC).remove(external(root, DOC, DOC_UNIQUE_ID))
        for scheme in (TYPE_CODE, FORMAT_CODE, CLASS_CODE):
            by_id(root, DOC).remove(by_id(root, DOC).xpath("*[@classificationScheme=$s]", s=scheme)[0])

    findings, _ = I.check_document(entry(absent), CDA, I.Iti41Policy())
    assert short(findings) == NOT_CONFIGURED


# ------------------------------------------------------------------------------------------------ contents, signature
def test_check_contents_runs_every_check_in_order() -> None:
    request = payload()
    checked = I.check_contents(request, submission(), {}, mtom=False, structure="1750000001", policy=I.Iti41Policy())
    assert checked.contents == {DOC: CDA, SIG: SIGNATURE}
    assert checked.checked == [
        {"entry": DOC, "kind": "cda", "ok": True, "layers": ["xml", "header"], "volet": None},
        {"entry": SIG, "kind": "signature"},
    ]
    assert [*short(checked.findings[:1]), *short(checked.findings[1:3]), *found(checked.findings[3:])] == [
        ("MTOM-REQUIRED", Severity.ERROR, "HTTP Content-Type"),
        *NOT_CONFIGURED,
        ILLISIBLE,
    ]


def test_the_declared_structure_is_compared_with_the_authenticated_one() -> None:
    checked = I.check_contents(payload(), submission(), {}, mtom=True, structure="1750000001", policy=I.Iti41Policy())
    assert short(checked.findings) == [*NOT_CONFIGURED, ILLISIBLE[:3]]
    declared = I.check_contents(payload(), submission(), {}, mtom=True, structure="1990000024", policy=I.Iti41Policy())
    assert found(declared.findings)[0] == (
        "DMP-AUTEUR-STRUCTURE",
        Severity.WARNING,
        "SubmissionSet author",
        "authorInstitution déclare la structure 750000001, la structure authentifiée (certificat TLS, signataire et "
        "Identifiant_Structure du VIHF) est 990000024 : le versement est compté pour 990000024",
    )
    assert short(declared.findings)[1:] == [*NOT_CONFIGURED, ILLISIBLE[:3]]
    unknown = I.check_contents(payload(), submission(), {}, mtom=True, structure=None, policy=I.Iti41Policy())
    assert short(unknown.findings) == [*NOT_CONFIGURED, ILLISIBLE[:3]]


def test_the_signature_document_is_verified_with_the_documents() -> None:
    assert found(I.signature_findings(submission(), {DOC: CDA, SIG: SIGNATURE}, None, ())) == [ILLISIBLE]
    assert I.signature_findings(submission(), {DOC: CDA}, None, ()) == []
    # the signature alone (its document's part missing): verified with what there is, no document
    assert found(I.signature_findings(submission(), {SIG: SIGNATURE}, None, ())) == [ILLISIBLE]


# ------------------------------------------------------------------------------------------------ a saved request
def envelope(body: etree._Element, action: str = ITI41) -> bytes:
    return etree.tostring(M.envelope(action, "https://dmp.test/repository", body, None))


SETTINGS = {"vihf_policy": VihfPolicy()}


def test_a_saved_envelope_is_judged_whole() -> None:
    report = I.validate_request(envelope(payload()), I.Iti41Policy(), **SETTINGS)
    assert short(report.findings) == [
        ("VIHF-ABSENT", Severity.ERROR, "wsse:Security/saml2:Assertion"),
        ("MTOM-REQUIRED", Severity.ERROR, "HTTP Content-Type"),
        *NOT_CONFIGURED,
        ILLISIBLE[:3],
    ]
    detail = dict(report.detail)
    assert detail.pop("message_id").startswith("urn:uuid:")
    assert detail == {
        "mtom": False,
        "vihf": False,
        "signed": True,
        "patient": PERSON.ins.to_xds(),
        "documents": [
            {"uniqueId": CDA_UID, "typeCode": "74207-2", "id": DOC},
            {"uniqueId": "1.2.250.1.999.2.2", "typeCode": "E1762", "id": SIG},
        ],
        "validation": [
            {"entry": DOC, "kind": "cda", "ok": True, "layers": ["xml", "header"], "volet": None},
            {"entry": SIG, "kind": "signature"},
        ],
    }


def test_the_detail_of_an_unsigned_request_without_patient() -> None:
    def unsigned(root: etree._Element) -> None:
        by_id(root, SS).remove(external(root, SS, SS_PATIENT_ID))
        by_id(root, DOC).remove(by_id(root, DOC).xpath("*[@classificationScheme=$s]", s=TYPE_CODE)[0])

    report = I.validate_request(
        envelope(payload(unsigned, documents={DOC: CDA})), I.Iti41Policy(mtom=Strictness.OFF), **SETTINGS
    )
    assert (report.detail["signed"], report.detail["patient"]) == (False, None)
    assert report.detail["documents"][0] == {"uniqueId": CDA_UID, "typeCode": None, "id": DOC}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"ni xml ni mime",
            [
                (
                    "ITI41-ILLISIBLE",
                    Severity.ERROR,
                    "",
                    "requête ITI-41 illisible : ni enveloppe SOAP, ni corps MTOM (--boundary), ni en-têtes MIME",
                )
            ],
        ),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>',
            [("SOAP-VERSION", Severity.ERROR, "env:Envelope")],
        ),
        (
            envelope(etree.Element(f"{{{XDSB}}}RetrieveDocumentSetRequest")),
            [
                (
                    "XDS-BODY",
                    Severity.ERROR,
                    "env:Body",
                    "xdsb:ProvideAndRegisterDocumentSetRequest attendu dans env:Body",
                )
            ],
        ),
    ],
)
def test_what_cannot_be_read_stops_the_verdict(data: bytes, expected: list) -> None:
    report = I.validate_request(data, I.Iti41Policy(), **SETTINGS)
    assert [f[: len(e)] for f, e in zip(found(report.findings), expected, strict=True)] == expected
    assert report.detail == {}


def test_a_wrong_action_is_reported_and_the_request_still_judged() -> None:
    report = I.validate_request(
        envelope(payload(), "urn:ihe:iti:2007:RegistryStoredQuery"), I.Iti41Policy(), **SETTINGS
    )
    assert report.findings[0].message == (
        "Action 'urn:ihe:iti:2007:RegistryStoredQuery' non prise en charge par le service repository"
    )
    assert short(report.findings)[:2] == [
        ("ActionNotSupported", Severity.ERROR, "env:Header"),
        ("VIHF-ABSENT", Severity.ERROR, "wsse:Security/saml2:Assertion"),
    ]
    assert report.detail["mtom"] is False


def test_an_unreadable_document_stops_the_verdict_at_the_documents() -> None:
    request = payload()
    request.find(f"{{{XDSB}}}Document").text = "pas du base64 !"
    report = I.validate_request(envelope(request), I.Iti41Policy(), **SETTINGS)
    assert short(report.findings) == [
        ("VIHF-ABSENT", Severity.ERROR, "wsse:Security/saml2:Assertion"),
        ("XDS-BASE64", Severity.ERROR, "xdsb:Document"),
    ]
    assert report.detail == {}


# ------------------------------------------------------------------------------------------------ with a VIHF
@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> M.OrgCredentials:
    """A throw-away self-signed organisation certificate (the VIHF is left unsigned: only its attributes matter)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "1" + ESTABLISHMENT.finess)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("org")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return M.OrgCredentials(str(folder / "cert.pem"), str(folder / "key.pem"))


def _with_vihf(credentials: M.OrgCredentials, structure: bool = True) -> bytes:
    assertion = M.build_vihf(PERSON, ESTABLISHMENT, credentials, sign=False)
    if not structure:
        for attribute in assertion.iter("{urn:oasis:names:tc:SAML:2.0:assertion}Attribute"):
            if attribute.get("Name") == "Identifiant_Structure":
                attribute.getparent().remove(attribute)
    wsse = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
    security = etree.Element(f"{{{wsse}}}Security")
    security.append(assertion)
    request = M.envelope(ITI41, "https://dmp.test/repository", payload(), None)
    request.find("{http://www.w3.org/2003/05/soap-envelope}Header").append(security)
    return etree.tostring(request)


def test_the_vihf_structure_stands_for_the_tls_certificate(credentials: M.OrgCredentials) -> None:
    """A saved request has no TLS connection: Identifiant_Structure is the authenticated structure."""
    report = I.validate_request(_with_vihf(credentials), I.Iti41Policy(), vihf_policy=VihfPolicy(Strictness.LENIENT))
    [author] = [f for f in report.findings if f.code == "DMP-AUTEUR-STRUCTURE"]
    assert author.message == (
        "authorInstitution déclare la structure 750000001, la structure authentifiée (certificat TLS, signataire et "
        f"Identifiant_Structure du VIHF) est {ESTABLISHMENT.finess} : le versement est compté pour {ESTABLISHMENT.finess}"
    )
    assert "VIHF-STRUCTURE" not in [f.code for f in report.findings]
    assert (report.detail["vihf"], report.detail["signed"]) == (True, True)


def test_a_vihf_without_identifiant_structure_names_no_structure(credentials: M.OrgCredentials) -> None:
    report = I.validate_request(
        _with_vihf(credentials, structure=False), I.Iti41Policy(), vihf_policy=VihfPolicy(Strictness.LENIENT)
    )
    [chain] = [f for f in report.findings if f.code == "VIHF-STRUCTURE"]
    assert (chain.severity, chain.location, chain.message) == (
        Severity.ERROR,
        "VIHF",
        "structures différentes : signataire du VIHF absent, Identifiant_Structure absent",
    )
    assert "DMP-AUTEUR-STRUCTURE" not in [f.code for f in report.findings]
