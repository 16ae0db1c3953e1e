"""DMP validators: CDA (XSD + French header + CI-SIS schematron) on the ANS examples, VIHF, XDS metadata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from harness.core.config import package_root
from harness.fields.pki import TestPKI
from harness.fields.testdata import load_testdata
from harness.sut import dmp_messages as M
from harness.sut.documents import build_cda
from harness.validators import Severity
from harness.validators.cda import CdaSchema, validate_cda
from harness.validators.schematron import SchematronEngine
from harness.validators.vihf import Strictness, VihfPolicy, check_vihf
from harness.validators.xds_metadata import ValueSets, read_submission
from tests.hostile import BILLION_LAUGHS

TESTDATA = load_testdata(package_root() / "fixtures")
HL7 = "{urn:hl7-org:v3}"
# volets whose CI-SIS schematron cannot run on the corpus copy, and why (a value set file is missing): none since
# a value set named only in a comment is not required (EP-MED-DM_2024.01's JDV_HL7_SeverityObservation-CISIS.xml)
UNRUNNABLE: dict[str, str] = {}


@pytest.fixture(scope="module")
def xsd(corpus_dir: Path) -> CdaSchema:
    return CdaSchema(corpus_dir / "cisis-cda" / "infrastructure" / "cda")


@pytest.fixture(scope="module")
def schematron(corpus_dir: Path) -> SchematronEngine:
    return SchematronEngine(corpus_dir / "cisis-cda" / "schematrons")


def _examples(corpus_dir: Path) -> list[Path]:
    examples = sorted((corpus_dir / "cisis-cda" / "examples").glob("*.xml"))
    assert len(examples) == 13
    return examples


# ------------------------------------------------------------------------------------------------- CDA
def test_the_13_corpus_examples_validate_clean(corpus_dir: Path, xsd: CdaSchema, schematron: SchematronEngine) -> None:
    unrunnable = {}
    for example in _examples(corpus_dir):
        report = validate_cda(example.read_bytes(), xsd=xsd, schematron=schematron, location=example.name)
        assert report.ok, (example.name, [str(f) for f in report.findings])
        assert "xsd" in report.layers and "header" in report.layers
        unavailable = [f for f in report.findings if f.code == "SCH-UNAVAILABLE"]
        if unavailable:
            unrunnable[report.volet] = unavailable[0].message
        elif report.volet is not None:
            assert f"schematron:{report.volet}" in report.layers
            assert not [f for f in report.findings if f.severity is not Severity.INFO]
    assert set(unrunnable) == set(UNRUNNABLE)
    for volet, missing in UNRUNNABLE.items():
        assert missing in unrunnable[volet]


def _mutate(data: bytes, change) -> bytes:  # noqa: ANN001
    root = etree.fromstring(data)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _set_ins_key(root: etree._Element) -> None:
    for id_el in root.findall(f"{HL7}recordTarget/{HL7}patientRole/{HL7}id"):
        if id_el.get("root", "").startswith("1.2.250.1.213.1.4."):
            value = id_el.get("extension", "")
            id_el.set("extension", value[:13] + f"{(int(value[13:]) % 97) + 1:02d}")


def _drop(path: str):  # noqa: ANN202
    def change(root: etree._Element) -> None:
        for element in root.findall(path):
            element.getparent().remove(element)

    return change


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (_set_ins_key, "CDA-INS-KEY"),
        (_drop(f"{HL7}custodian"), "CDA-XSD"),
        (_drop(f"{HL7}legalAuthenticator"), "CDA-LEGAL-AUTHENTICATOR"),
        (_drop(f"{HL7}templateId[@root='1.2.250.1.213.1.1.1.1']"), "CDA-TEMPLATE-HEADER"),
        (_drop(f"{HL7}realmCode"), "CDA-REALM"),
    ],
)
def test_broken_copies_of_every_example_are_refused(corpus_dir: Path, xsd: CdaSchema, change, code: str) -> None:  # noqa: ANN001
    for example in _examples(corpus_dir):
        report = validate_cda(_mutate(example.read_bytes(), change), xsd=xsd)
        assert not report.ok and code in {f.code for f in report.findings}, (example.name, code)


def test_schematron_catches_a_missing_section_and_compiles_once(corpus_dir: Path, schematron: SchematronEngine) -> None:
    example = corpus_dir / "cisis-cda" / "examples" / "DLU-EHPAD-FLUDT_2022.01.xml"

    def drop_vital_signs(root: etree._Element) -> None:
        body = root.find(f"{HL7}component/{HL7}structuredBody")
        body.remove(body.findall(f"{HL7}component")[1])

    report = validate_cda(_mutate(example.read_bytes(), drop_vital_signs), schematron=schematron, xsd_required=False)
    assert any(f.code == "SCH-DLU-EHPAD-FLUDT_2022.01" and "Signes vitaux" in f.message for f in report.findings)
    assert schematron.compile("DLU-EHPAD-FLUDT_2022.01") is schematron.compile("DLU-EHPAD-FLUDT_2022.01")


def test_schematron_status_reports_which_volets_cannot_run(schematron: SchematronEngine) -> None:
    status = schematron.status()
    assert status["DLU-EHPAD-DLU_2022.01"] == "ok"
    assert status["EP-MED-DM_2024.01"] == "ok"  # its missing value set is only named in a comment


def test_non_xml_and_entity_bombs_are_findings(xsd: CdaSchema) -> None:
    for data, code in ((b"\x00 not xml", "XML-MALFORMED"), (BILLION_LAUGHS, "XML-DOCTYPE-FORBIDDEN")):
        report = validate_cda(data, xsd=xsd)
        assert not report.ok and report.findings[0].code == code


def test_without_xsd_the_report_says_it_is_not_configured() -> None:
    person = TESTDATA.persons[0]
    report = validate_cda(build_cda(person, TESTDATA.establishment(person.essms), "DLU"))
    assert report.ok and [f.code for f in report.findings] == ["CDA-XSD-NOT-CONFIGURED", "SCH-NON-VERIFIE"]


def test_reference_dui_documents_pass_xsd_and_header(xsd: CdaSchema) -> None:
    person = TESTDATA.persons[0]
    for kind in ("DLU", "VSM", "LDL-SES"):
        report = validate_cda(
            build_cda(person, TESTDATA.establishment(person.essms), kind), xsd=xsd, schematron_required=False
        )
        assert report.ok and not report.findings, (kind, [str(f) for f in report.findings])


# ------------------------------------------------------------------------------------------------- VIHF
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.ensure(tmp_path_factory.mktemp("pki"))


def _credentials(pki: TestPKI) -> M.OrgCredentials:
    client = pki.client(sorted(pki.clients)[0])
    return M.OrgCredentials(str(client.cert_path), str(client.key_path))


def _security(assertion: etree._Element) -> etree._Element:
    security = etree.Element(
        "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}Security"
    )
    security.append(assertion)
    return security


def test_vihf_signed_by_the_org_certificate_is_accepted(pki: TestPKI) -> None:
    person = TESTDATA.persons[0]
    assertion = M.build_vihf(person, TESTDATA.establishment(person.essms), _credentials(pki))
    report = check_vihf(_security(assertion), anchors=[pki.intermediate.cert])
    assert report.ok and report.signed and report.resource_ins == person.ins, [str(f) for f in report.findings]


def test_vihf_deviations_are_each_named(pki: TestPKI, tmp_path: Path) -> None:
    person = TESTDATA.persons[0]
    establishment = TESTDATA.establishment(person.essms)
    unsigned = M.build_vihf(person, establishment, _credentials(pki), sign=False)
    for attribute in unsigned.findall(".//{urn:oasis:names:tc:SAML:2.0:assertion}Attribute"):
        if attribute.get("Name") in {"Ressource_URN", "LPS_ID_HOMOLOGATION_DMP"}:
            attribute.getparent().remove(attribute)
    report = check_vihf(_security(unsigned), anchors=[pki.intermediate.cert])
    codes = {f.code for f in report.findings}
    assert {
        "VIHF-SIGNATURE-ABSENTE",
        "VIHF-ATTRIBUT-ABSENT:Ressource_URN",
        "VIHF-ATTRIBUT-ABSENT:LPS_ID_HOMOLOGATION_DMP",
    } <= codes
    lenient = check_vihf(
        _security(unsigned), anchors=[pki.intermediate.cert], policy=VihfPolicy(strictness=Strictness.LENIENT)
    )
    assert lenient.ok and {f.severity for f in lenient.findings} == {Severity.WARNING}
    stranger = TestPKI.create(tmp_path / "other")
    foreign = M.build_vihf(person, establishment, _credentials(stranger))
    assert "VIHF-CERTIFICAT-NON-RECONNU" in {
        f.code for f in check_vihf(_security(foreign), anchors=[pki.intermediate.cert]).findings
    }
    late = check_vihf(
        _security(M.build_vihf(person, establishment, _credentials(pki))),
        anchors=[pki.intermediate.cert],
        now=datetime.now(UTC) + timedelta(hours=3),
    )
    assert "VIHF-EXPIREE" in {f.code for f in late.findings}
    assert {f.code for f in check_vihf(None, anchors=[pki.intermediate.cert]).findings} == {"VIHF-ABSENT"}


# ------------------------------------------------------------------------------------------------- metadata
def _submission(pki: TestPKI, **options: object) -> etree._Element:
    person = TESTDATA.persons[0]
    establishment = TESTDATA.establishment(person.essms)
    cda = build_cda(person, establishment, "DLU")
    body, _, _, _ = M.build_iti41(
        person, establishment, "DLU", cda, _credentials(pki), options=M.FeedOptions(**options)
    )
    return body.find("{urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0}SubmitObjectsRequest")


def test_reference_metadata_is_clean_and_checked_against_the_value_sets(pki: TestPKI, corpus_dir: Path) -> None:
    submission = read_submission(_submission(pki), value_sets=ValueSets(corpus_dir / "cisis-cda" / "jeuxDeValeurs"))
    assert submission.ok and not submission.findings, [str(f) for f in submission.findings]
    assert submission.essms == TESTDATA.persons[0].essms and submission.patient == TESTDATA.persons[0].ins
    assert len(submission.documents) == 1 and len(submission.entries) == 2


def test_metadata_rules(pki: TestPKI, corpus_dir: Path) -> None:
    value_sets = ValueSets(corpus_dir / "cisis-cda" / "jeuxDeValeurs")
    wrong_key = read_submission(_submission(pki, wrong_ins_key=True))
    assert "XDSUnknownPatientId" in {f.code for f in wrong_key.findings}
    no_signature = read_submission(_submission(pki, signature_document=False))
    assert any("signature" in f.message for f in no_signature.findings)
    unknown_type = read_submission(_submission(pki, type_code_override="99999-9"), value_sets=value_sets)
    assert any("jeu de valeurs" in f.message for f in unknown_type.findings)
    request = _submission(pki)
    for cl in request.iter("{urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0}Classification"):
        if cl.get("nodeRepresentation") == "SA17":
            cl.find(".//{urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0}Value").text = "9.9.9"
    assert any("healthcareFacilityTypeCode" in f.message for f in read_submission(request).findings)
