"""``validate``'s dispatcher (harness/validators/artefacts.py): what each artefact is detected as from its content,
and that each kind's report carries exactly the findings and detail of the simulators' own validator, with the
dispatcher's own findings (size bound, unknown type, no trust anchors, unreadable HL7 v2 / VIHF) asserted exactly.
"""

from __future__ import annotations

import io
import re
import zipfile
from email import policy
from pathlib import Path

import pytest
from lxml import etree

from harness.core.config import package_root
from harness.fields.testdata import load_testdata
from harness.sut.documents import build_cda, build_message, build_xdm
from harness.sut.mssante_messages import build_mdn
from harness.validators import Finding, Severity, insi, mdn, mssante_message, xdm
from harness.validators import artefacts as A
from harness.validators.artefacts import ArtefactKind, ArtefactReport, ValidationSettings, detect, validate_artefact
from harness.validators.cda import validate_cda
from harness.validators.vihf import Strictness, VihfPolicy, check_vihf
from tests.test_findings_iti41 import envelope, payload

TESTDATA = load_testdata(package_root() / "fixtures")
PERSON = TESTDATA.persons[0]
ESTABLISHMENT = TESTDATA.establishment(PERSON.essms)
SENDER, DOCTOR = "dui@ehpad-tilleuls.mssante.fr", "jean.dupont@medecin.mssante.fr"
CDA = build_cda(PERSON, ESTABLISHMENT, "DLU")
EML = build_message(PERSON, ESTABLISHMENT, SENDER, [DOCTOR]).as_bytes(policy=policy.SMTP)
MDN = build_mdn(EML, reporter=DOCTOR, reporter_name="Dr Dupont").as_bytes()
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SAML = b'<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion"/>'
NO_ANCHORS = (
    "VIHF-ANCRES-ABSENTES",
    Severity.WARNING,
    "",
    "signature non vérifiable : aucune autorité de confiance donnée (--ca, la CA de la PKI de test)",
)


def soap(body: str, namespace: str = SOAP12) -> bytes:
    return f'<s:Envelope xmlns:s="{namespace}"><s:Header/><s:Body>{body}</s:Body></s:Envelope>'.encode()


def full(findings: list[Finding]) -> list[tuple[str, Severity, str, str]]:
    return [(f.code, f.severity, f.location, f.message) for f in findings]


def _zip(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "x")
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------ detection
@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (CDA, ArtefactKind.CDA),
        (b"\xef\xbb\xbf" + CDA, ArtefactKind.CDA),
        (b" \n" + CDA, None),  # XML 1.0 §2.8: nothing may precede the XML declaration
        (b'<ClinicalDocument xmlns="urn:hl7-org:v3"/>', ArtefactKind.CDA),
        (b'<Other xmlns="urn:hl7-org:v3"/>', None),
        (b'<ClinicalDocument xmlns="urn:hl7-org:v2"/>', None),
        (b"<ClinicalDocument/>", None),
        (SAML, ArtefactKind.VIHF),
        (b'<saml2:Issuer xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion"/>', None),
        (b'<Assertion xmlns="urn:oasis:names:tc:SAML:1.0:assertion"/>', None),
        (b'<Patient xmlns="http://hl7.org/fhir"/>', ArtefactKind.FHIR),
        (b'<Patient xmlns="http://hl7.org/fhir/v2"/>', None),
        (b' {"resourceType": "Patient"}', ArtefactKind.FHIR),
        (_zip("IHE_XDM/SUBSET01/METADATA.XML"), ArtefactKind.XDM),
        (_zip(), ArtefactKind.XDM),  # an empty archive starts with its end-of-central-directory record
        (b"\x0b\x0bMSH|^~\\&|A", ArtefactKind.HL7V2),
        (b"MSH^~\\&|A", None),
        (soap('<i:RECSANSVITALE xmlns:i="http://www.cnamts.fr/webservice"/>'), ArtefactKind.INSI_REQUEST),
        (soap('<i:RECSANSVITALEHISTO xmlns:i="http://x"/>', SOAP11), ArtefactKind.INSI_REQUEST),
        (soap("<RECAVECVITALE/>"), ArtefactKind.INSI_REQUEST),
        (soap('<i:RESULTAT xmlns:i="http://www.cnamts.fr/webservice"/>'), ArtefactKind.INSI_RESPONSE),
        (soap('<s:Fault><c:detail xmlns:c="http://www.cnamts.fr/x"/></s:Fault>'), ArtefactKind.INSI_RESPONSE),
        (soap("<RESULTAT/>"), None),
        (soap("<s:Fault/>"), None),
        (soap('<RECSANSVITALE xmlns="http://www.cnamts.fr/webservice"/>', "http://www.w3.org/2003/05/soap"), None),
        (b'<s:Body xmlns:s="http://www.w3.org/2003/05/soap-envelope"><RECSANSVITALE/></s:Body>', None),
        (soap("<!-- rien --><RECSANSVITALE/>"), ArtefactKind.INSI_REQUEST),
        # comments may stand anywhere outside markup (XML 1.0 §2.5): before the Body, in the Header
        (soap("<RECSANSVITALE/>").replace(b"<s:Header/>", b"<!-- c --><s:Header/>"), ArtefactKind.INSI_REQUEST),
        (
            soap('<i:RESULTAT xmlns:i="http://www.cnamts.fr/webservice"/>').replace(
                b"<s:Header/>", b"<s:Header><!-- c --></s:Header>"
            ),
            ArtefactKind.INSI_RESPONSE,
        ),
        (f'<s:Envelope xmlns:s="{SOAP12}"><s:Header><RECSANSVITALE/></s:Header></s:Envelope>'.encode(), None),
        (soap(""), None),
        (soap('<x:ProvideAndRegisterDocumentSetRequest xmlns:x="urn:ihe:iti:xds-b:2007"/>'), ArtefactKind.ITI41),
        (b'--b\r\nContent-Type: application/xop+xml; type="application/soap+xml"\r\n\r\n<e/>', ArtefactKind.ITI41),
        (EML, ArtefactKind.EML),
        (MDN, ArtefactKind.MDN),
        (
            b"Subject: x\r\nContent-Type: multipart/report; report-type=disposition-notification\r\n\r\n",
            ArtefactKind.MDN,
        ),
        (b"%PDF-1.7", None),
        (b"<root/>", None),
        (b"<!DOCTYPE r [<!ENTITY a 'a'>]><r>&a;</r>", None),
    ],
)
def test_detection_reads_the_content(data: bytes, kind: ArtefactKind | None) -> None:
    assert detect(data) is kind


def test_detection_reads_only_the_first_4096_bytes_for_the_text_kinds() -> None:
    prefix, mark = b"--b\r\nContent-Type: ", b"application/xop+xml"
    within = prefix + b"p" * (4096 - len(prefix) - len(mark)) + mark
    assert len(within) == 4096 and detect(within) is ArtefactKind.ITI41
    assert detect(prefix + b"p" + within[len(prefix) :]) is None  # the mark ends at byte 4097: not seen


def test_a_commented_insi_response_is_judged_not_raised() -> None:
    """validate_artefact never raises: an envelope with a comment was a ValueError (lxml QName of a comment)."""
    data = soap('<i:RESULTAT xmlns:i="http://www.cnamts.fr/webservice"/>').replace(
        b"<s:Header/>", b"<!-- c --><s:Header/>"
    )
    report = validate_artefact(data)
    assert report.kind is ArtefactKind.INSI_RESPONSE
    assert full(report.findings) == full(insi.validate_result(data)) != []


def test_an_email_the_email_package_cannot_read_is_still_an_email(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes) -> None:
        raise ValueError("illisible")

    monkeypatch.setattr(A, "parse_message", broken)
    assert detect(b"Subject: x\r\n\r\nbody") is ArtefactKind.EML


# ------------------------------------------------------------------------------------------------ the report
def test_a_report_lists_its_errors_and_its_dictionary() -> None:
    warning = Finding("W", "w", Severity.WARNING, "l")
    error = Finding("E", "e")
    report = ArtefactReport("f.xml", ArtefactKind.CDA, [warning, error], {"layers": ["xml"]})
    assert (report.errors, report.ok) == ([error], False)
    assert report.to_dict() == {
        "name": "f.xml",
        "kind": "cda",
        "ok": False,
        "findings": [warning.to_dict(), error.to_dict()],
        "detail": {"layers": ["xml"]},
    }
    clean = ArtefactReport("-", None, [warning])
    assert (clean.errors, clean.ok) == ([], True)
    assert clean.to_dict() == {"name": "-", "kind": None, "ok": True, "findings": [warning.to_dict()]}


def test_the_default_settings_are_strict_and_empty() -> None:
    assert ValidationSettings() == ValidationSettings(None, None, None, True, ())


def test_the_size_bound_is_64_mib_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    assert A.MAX_ARTEFACT_BYTES == 64 * 1024 * 1024
    data = b"%PDF-1.7"
    monkeypatch.setattr(A, "MAX_ARTEFACT_BYTES", len(data))
    assert [f.code for f in validate_artefact(data).findings] == ["ARTEFACT-INCONNU"]
    monkeypatch.setattr(A, "MAX_ARTEFACT_BYTES", len(data) - 1)
    report = validate_artefact(data, name="gros.pdf", kind=ArtefactKind.CDA)
    assert (report.name, report.kind, report.detail) == ("gros.pdf", ArtefactKind.CDA, {})
    assert full(report.findings) == [
        ("ARTEFACT-TAILLE", Severity.ERROR, "gros.pdf", f"fichier de {len(data)} octets, limite {len(data) - 1}")
    ]


def test_an_unknown_artefact_asks_for_its_type() -> None:
    report = validate_artefact(b"%PDF-1.7")
    assert (report.name, report.kind, report.detail) == ("-", None, {})
    assert [(f.code, f.severity, f.location) for f in report.findings] == [("ARTEFACT-INCONNU", Severity.ERROR, "-")]
    assert report.findings[0].message.startswith(
        "type de fichier non reconnu (CDA, XDM, e-mail, MDN, FHIR, VIHF, INSi, HL7 v2, ITI-41) : préciser --type"
    )


# ------------------------------------------------------------------------------------------------ each kind
def test_a_cda_gets_the_cda_validator_verdict() -> None:
    report = validate_artefact(CDA, name="doc.xml")
    expected = validate_cda(CDA, xsd=None, schematron=None)
    assert (report.name, report.kind) == ("doc.xml", ArtefactKind.CDA)
    assert full(report.findings) == full(expected.findings) != []
    assert report.detail == {"layers": ["xml", "header"], "volet": None, "document_id": expected.document_id}


def test_the_kind_given_overrides_the_detection() -> None:
    report = validate_artefact(CDA, kind=ArtefactKind.FHIR)
    assert (report.kind, [f.code for f in report.findings], report.detail) == (
        ArtefactKind.FHIR,
        ["FHIR-XML-NAMESPACE"],
        {},
    )


def test_an_xdm_gets_the_xdm_validator_verdict() -> None:
    data = _zip("README.TXT")
    report = validate_artefact(data)
    assert full(report.findings) == full(xdm.validate_xdm(data).findings) != []
    assert report.detail == {"subsets": [], "documents": 0}
    good = validate_artefact(build_xdm(PERSON, ESTABLISHMENT, "DLU", CDA))
    assert (good.findings, good.detail["documents"]) == ([], 1)


def test_an_email_gets_the_mssante_validator_verdict() -> None:
    data = b"From: a@b.fr\r\nSubject: x\r\n\r\nbody"
    report = validate_artefact(data)
    assert full(report.findings) == full(mssante_message.validate_message(data).findings) != []
    assert report.detail == {"message_id": None, "subject": "x", "attachments": []}


def test_an_mdn_gets_the_mdn_validator_verdict() -> None:
    report = validate_artefact(MDN)
    assert report.kind is ArtefactKind.MDN and report.findings == []
    assert report.detail == {"disposition": "automatic-action/MDN-sent-automatically; processed", "error_code": None}
    bad = MDN.replace(b"Disposition: ", b"X-Disposition: ", 1)
    report = validate_artefact(bad, kind=ArtefactKind.MDN)
    assert full(report.findings) == full(mdn.validate_mdn(bad).findings) != []


def _vihf(strictness: Strictness) -> list[Finding]:
    security = etree.Element(
        "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}Security"
    )
    security.append(etree.fromstring(SAML))
    return check_vihf(security, anchors=[], policy=VihfPolicy(strictness=strictness)).findings


def test_a_vihf_gets_the_vihf_checks_as_strict_as_asked() -> None:
    strict = validate_artefact(SAML)
    assert full(strict.findings) == [*full(_vihf(Strictness.STRICT)), NO_ANCHORS]
    assert strict.findings[0].severity is Severity.ERROR and strict.detail == {}
    lenient = validate_artefact(SAML, settings=ValidationSettings(strict=False))
    assert full(lenient.findings) == [*full(_vihf(Strictness.LENIENT)), NO_ANCHORS]


def test_an_unreadable_vihf_is_one_finding() -> None:
    report = validate_artefact(b"x" * 10, kind=ArtefactKind.VIHF)
    assert [(f.code, f.severity, f.location) for f in report.findings] == [("XML-MALFORMED", Severity.ERROR, "")]


def test_insi_requests_and_responses_get_the_insi_verdicts() -> None:
    request = soap('<i:RECSANSVITALE xmlns:i="http://www.cnamts.fr/webservice"/>')
    report = validate_artefact(request)
    parsed = insi.parse_request(request)
    assert full(report.findings) == full(parsed.findings) != []
    assert report.detail == {"operation": parsed.operation}
    response = soap('<i:RESULTAT xmlns:i="http://www.cnamts.fr/webservice"/>')
    report = validate_artefact(response)
    assert full(report.findings) == full(insi.validate_result(response)) != [] and report.detail == {}


def test_an_iti41_request_without_trust_anchors_says_its_signatures_were_not_verified() -> None:
    data = envelope(payload())
    report = validate_artefact(data)
    assert report.kind is ArtefactKind.ITI41 and report.detail["signed"] is True
    assert [f.code for f in report.findings] == [
        "VIHF-ABSENT",
        "MTOM-REQUIRED",
        "CDA-XSD-NOT-CONFIGURED",
        "SCH-NON-VERIFIE",
        "DSG-ILLISIBLE",
        "VIHF-ANCRES-ABSENTES",
    ]
    assert full(report.findings[-1:]) == [NO_ANCHORS]
    assert report.findings[1].severity is Severity.ERROR
    lenient = validate_artefact(data, settings=ValidationSettings(strict=False))
    assert lenient.findings[1].severity is Severity.WARNING


def test_an_unsigned_iti41_request_needs_no_anchor_warning() -> None:
    report = validate_artefact(envelope(payload(documents={})), kind=ArtefactKind.ITI41)
    assert report.detail["signed"] is False
    assert "VIHF-ANCRES-ABSENTES" not in [f.code for f in report.findings]
    unreadable = validate_artefact(b"ni xml ni mime", kind=ArtefactKind.ITI41)
    assert [f.code for f in unreadable.findings] == ["ITI41-ILLISIBLE"] and unreadable.detail == {}


def test_a_fhir_resource_gets_the_fhir_verdict() -> None:
    report = validate_artefact(b'{"resourceType": "Device"}')
    assert [(f.code, f.severity) for f in report.findings] == [("FHIR-PROFIL-INCONNU", Severity.INFO)]
    assert report.detail == {"resourceType": "Device"}


# ------------------------------------------------------------------------------------------------ HL7 v2
def test_an_unreadable_hl7v2_message_is_one_finding() -> None:
    report = validate_artefact(b"\x0bMSH|\x1c\r")
    assert report.kind is ArtefactKind.HL7V2 and report.detail == {}
    assert [(f.code, f.severity, f.location) for f in report.findings] == [("HL7-ILLISIBLE", Severity.ERROR, "")]
    assert report.findings[0].message.startswith("message HL7 v2 illisible : ")


def test_an_acknowledgement_is_structure_only() -> None:
    report = validate_artefact(b"\x0bMSH|^~\\&|A|B|C|D|20240101||ACK|1|P|2.5\r\x1c\r\n")
    assert (report.findings, report.detail) == ([], {"type": "ACK", "version": "2.5"})


HL7 = "TRANS_DOC_CDA_HL7V2-V2.1/ORU/Remplacement ORU/message_ORU_CR_Bio_RPLC_N1_Base64_N3_Base64.er7"


def test_a_relayed_oru_gets_the_relay_rules_and_its_cda_findings(corpus_dir: Path) -> None:
    """ANS example: PID-3 and the CDA are about two persons, the CDA lacks the CI-SIS volet template."""
    data = (corpus_dir / "hl7v2" / HL7).read_bytes()
    report = validate_artefact(data)
    assert [(f.code, f.severity, f.location) for f in report.findings] == [
        ("HL7-PID-INS-DIFFERENT", Severity.ERROR, "PID-3"),
        ("CDA-TEMPLATE-MISSING", Severity.ERROR, "OBX-1"),
        ("CDA-XSD-NOT-CONFIGURED", Severity.WARNING, "OBX-1"),
        ("SCH-NON-VERIFIE", Severity.WARNING, "OBX-1"),
        ("CDA-TEMPLATE-MISSING", Severity.ERROR, "OBX-2"),
        ("CDA-XSD-NOT-CONFIGURED", Severity.WARNING, "OBX-2"),
        ("SCH-NON-VERIFIE", Severity.WARNING, "OBX-2"),
    ]
    assert (report.detail["type"], report.detail["event"], report.detail["volet"]) == ("ORU^R01", "remplacement", "2.1")
    assert report.detail["flags"]["DESTDMP"] == "Y"


def _flag(data: bytes, name: str, value: str) -> bytes:
    return re.sub(rb"(\|CE\|" + name.encode() + rb"\^[^|]*\^MetaDMPMSS\|\|)[YN]", rb"\g<1>" + value.encode(), data)


def _without_documents(data: bytes) -> bytes:
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    return b"\n".join(line for line in lines if not re.match(rb"OBX\|[12]\|ED\|", line))


CDA_OBX = [
    ("CDA-TEMPLATE-MISSING", Severity.ERROR, "OBX-{}"),
    ("CDA-XSD-NOT-CONFIGURED", Severity.WARNING, "OBX-{}"),
    ("SCH-NON-VERIFIE", Severity.WARNING, "OBX-{}"),
]


def _cda(set_id: str) -> list[tuple[str, Severity, str]]:
    return [(code, severity, where.format(set_id)) for code, severity, where in CDA_OBX]


DIFFERENT = ("HL7-PID-INS-DIFFERENT", Severity.ERROR, "PID-3")


@pytest.mark.parametrize(
    ("change", "event", "expected"),
    [
        (
            lambda d: d.replace(b"\nORC|RO|", b"\nORC|ZZ|"),
            None,
            [("HL7-ORC-1", Severity.ERROR, "ORC-1"), DIFFERENT, *_cda("1"), *_cda("2")],
        ),
        (
            lambda d: _without_documents(d.replace(b"\nORC|RO|", b"\nORC|ZZ|")),
            None,
            [("HL7-ORC-1", Severity.ERROR, "ORC-1")],
        ),
        # for the DMP alone: outside the MSSanté matrix, not an error (dmp_only)
        (
            lambda d: _flag(_flag(d, "DESTMSSANTEPS", "N"), "DESTMSSANTEPAT", "N"),
            "remplacement",
            [DIFFERENT, *_cda("1"), *_cda("2")],
        ),
        (
            lambda d: _flag(_flag(_flag(d, "DESTMSSANTEPS", "N"), "DESTMSSANTEPAT", "N"), "DESTDMP", "N"),
            "remplacement",
            [DIFFERENT, ("HL7-AUCUN-DESTINATAIRE-MSS", Severity.ERROR, "OBX"), *_cda("1"), *_cda("2")],
        ),
        (lambda d: d.replace(b"\nOBX|1|ED|", b"\nOBX||ED|"), "remplacement", [DIFFERENT, *_cda("5"), *_cda("2")]),
        (_without_documents, "remplacement", [("HL7-SANS-DOCUMENT", Severity.ERROR, "OBX-5")]),
    ],
)
def test_the_relay_rules_on_variants_of_an_ans_oru(corpus_dir: Path, change, event: str | None, expected: list) -> None:  # noqa: ANN001
    report = validate_artefact(change((corpus_dir / "hl7v2" / HL7).read_bytes()))
    assert [(f.code, f.severity, f.location) for f in report.findings] == expected
    assert report.detail["event"] == event


def test_an_mdm_gets_the_production_ins_rule_and_no_matrix(corpus_dir: Path) -> None:
    """ANS MSSanté relay example (MDM^T04, deletion): its PID-3 is a production INS (OID 1.2.250.1.213.1.4.8)."""
    path = corpus_dir / "hl7v2" / "Trans_LPS_CDA_MSSante/V1.0/Suppression MDM/message_MDM__LPS_MSS_CR_Radio_DEL_N1.er7"
    report = validate_artefact(path.read_bytes())
    assert [(f.code, f.severity, f.location) for f in report.findings] == [
        ("INS-PRODUCTION", Severity.WARNING, "PID-3")
    ]
    assert (report.detail["type"], report.detail["event"], report.detail["volet"]) == ("MDM^T04", "suppression", None)


# ------------------------------------------------------------------------------------------------ for editors
def test_assert_conform_raises_on_errors_only(tmp_path: Path) -> None:
    assert A.assert_conform(CDA).name == "-"
    saved = tmp_path / "doc.xml"
    saved.write_bytes(CDA)
    assert A.assert_conform(saved).kind is ArtefactKind.CDA
    with pytest.raises(AssertionError) as raised:
        A.assert_conform(b"%PDF-1.7")
    assert str(raised.value).startswith("- (type inconnu) non conforme :\n  ERROR ARTEFACT-INCONNU [-]: ")
    with pytest.raises(AssertionError) as raised:
        A.assert_conform(b'{"resourceType": "Patient", "gender": 12}', kind=ArtefactKind.FHIR)
    assert str(raised.value).startswith("- (fhir) non conforme :\n  ERROR FHIR-STRUCTURE [Patient.gender]: ")
