"""Every finding of the CDA validator (HL7 CDA R2 with the ANS CI-SIS "Structuration minimale" header rules), one
row per rejection path on the reference DUI's conformant DLU, asserting the EXACT findings (codes and
severities, in order): the routing header (:func:`read_cda_header`), the French header rules, the XSD and
schematron layers of :func:`validate_cda` (with a small XSD written for the test and a stand-in schematron engine).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from harness.core.config import package_root
from harness.fields.testdata import load_testdata
from harness.sut.documents import build_cda
from harness.validators import Finding, Severity
from harness.validators.cda import (
    DOCUMENT_TYPES,
    CdaSchema,
    read_cda_header,
    validate_cda,
)
from harness.validators.schematron import SchematronChoice

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
HL7 = "urn:hl7-org:v3"
NS = {"hl7": HL7}
NOT_CONFIGURED = [("CDA-XSD-NOT-CONFIGURED", W)]
NO_SCHEMATRON = [("SCH-NON-VERIFIE", W)]


@pytest.fixture(scope="module")
def dlu() -> bytes:
    testdata = load_testdata(package_root() / "fixtures")
    person = testdata.person("P001")
    return build_cda(person, testdata.establishment(person.essms), "DLU")


def findings(items: list[Finding]) -> list[tuple[str, Severity]]:
    return [(f.code, f.severity) for f in items]


def edited(data: bytes, edit: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(data)
    edit(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def drop(xpath: str) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        found = root.xpath(xpath, namespaces=NS)
        assert found, xpath
        for element in found:
            element.getparent().remove(element)

    return edit


def attr(xpath: str, name: str, value: str | None) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        found = root.xpath(xpath, namespaces=NS)
        assert found, xpath
        for element in found:
            if value is None:
                del element.attrib[name]
            else:
                element.set(name, value)

    return edit


def both(*edits: Callable[[etree._Element], None]) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        for one in edits:
            one(root)

    return edit


INS_ID = "/hl7:ClinicalDocument/hl7:recordTarget/hl7:patientRole/hl7:id[@root='1.2.250.1.213.1.4.10']"
AUTHOR = "/hl7:ClinicalDocument/hl7:author"


def second_author(root: etree._Element) -> None:
    (author,) = root.xpath(AUTHOR, namespaces=NS)
    twin = etree.fromstring(etree.tostring(author))
    twin.remove(twin.find("hl7:time", NS))
    author.addnext(twin)


def device_author(root: etree._Element) -> None:
    (person,) = root.xpath(f"{AUTHOR}/hl7:assignedAuthor/hl7:assignedPerson", namespaces=NS)
    person.tag = f"{{{HL7}}}assignedAuthoringDevice"


def non_xml_body(root: etree._Element) -> None:
    (body,) = root.xpath("/hl7:ClinicalDocument/hl7:component/hl7:structuredBody", namespaces=NS)
    body.tag = f"{{{HL7}}}nonXMLBody"


D = "/hl7:ClinicalDocument"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(lambda r: None, [], id="clean"),
        pytest.param(device_author, [], id="authoring-device"),
        pytest.param(non_xml_body, [], id="non-xml-body"),
        pytest.param(attr(f"{D}/hl7:confidentialityCode", "code", "R"), [], id="confidentiality-R"),
        pytest.param(drop(f"{D}/hl7:code"), [("CDA-NO-CODE", E)], id="no-code"),
        pytest.param(attr(f"{D}/hl7:code", "codeSystem", None), [("CDA-CODE-SYSTEM", E)], id="no-code-system"),
        pytest.param(
            drop(f"{D}/hl7:recordTarget/hl7:patientRole/hl7:id"),
            [("CDA-NO-PATIENT-ID", E), ("CDA-NO-INS", E)],
            id="no-patient-id",
        ),
        pytest.param(drop(INS_ID), [("CDA-NO-INS", E)], id="local-id-only"),
        pytest.param(attr(INS_ID, "extension", "238047505612395"), [("CDA-INS-KEY", E)], id="ins-key"),
        pytest.param(attr(INS_ID, "extension", "23804750561239"), [("CDA-INS-FORMAT", E)], id="ins-format"),
        pytest.param(
            drop(f"{D}/hl7:templateId[@root='1.2.250.1.213.1.1.1.22']"),
            [("CDA-TEMPLATE-MISSING", E)],
            id="volet-template",
        ),
        pytest.param(attr(f"{D}/hl7:realmCode", "code", "UV"), [("CDA-REALM", E)], id="realm"),
        pytest.param(attr(f"{D}/hl7:typeId", "extension", "POCD_HD000041"), [("CDA-TYPEID", E)], id="typeid-extension"),
        pytest.param(drop(f"{D}/hl7:typeId"), [("CDA-TYPEID", E)], id="typeid-absent"),
        pytest.param(
            drop(f"{D}/hl7:templateId[@root='2.16.840.1.113883.2.8.2.1']"),
            [("CDA-TEMPLATE-HEADER", E)],
            id="hl7-france-template",
        ),
        pytest.param(
            drop(f"{D}/hl7:templateId[@root='1.2.250.1.213.1.1.1.1']"),
            [("CDA-TEMPLATE-HEADER", E)],
            id="cisis-template",
        ),
        pytest.param(attr(f"{D}/hl7:id", "root", ""), [("CDA-ID", E)], id="id-root-empty"),
        pytest.param(drop(f"{D}/hl7:id"), [("CDA-ID", E)], id="id-absent"),
        pytest.param(drop(f"{D}/hl7:effectiveTime"), [("CDA-EFFECTIVE-TIME", E)], id="effective-time"),
        pytest.param(
            attr(f"{D}/hl7:confidentialityCode", "code", "X"), [("CDA-CONFIDENTIALITY", E)], id="confidentiality-code"
        ),
        pytest.param(
            attr(f"{D}/hl7:confidentialityCode", "codeSystem", "1.2.3"),
            [("CDA-CONFIDENTIALITY", E)],
            id="confidentiality-system",
        ),
        pytest.param(drop(f"{D}/hl7:confidentialityCode"), [("CDA-CONFIDENTIALITY", E)], id="confidentiality-absent"),
        pytest.param(attr(f"{D}/hl7:languageCode", "code", "en-GB"), [("CDA-LANGUAGE", W)], id="language"),
        pytest.param(drop(f"{D}/hl7:setId"), [("CDA-SETID", E)], id="set-id"),
        pytest.param(drop(f"{D}/hl7:versionNumber"), [("CDA-VERSION", E)], id="version"),
        pytest.param(drop(AUTHOR), [("CDA-AUTHOR", E)], id="no-author"),
        pytest.param(drop(f"{AUTHOR}/hl7:time"), [("CDA-AUTHOR", E)], id="author-time"),
        pytest.param(attr(f"{AUTHOR}/hl7:assignedAuthor/hl7:id", "root", ""), [("CDA-AUTHOR", E)], id="author-id"),
        pytest.param(drop(f"{AUTHOR}/hl7:assignedAuthor/hl7:assignedPerson"), [("CDA-AUTHOR", E)], id="author-person"),
        pytest.param(second_author, [("CDA-AUTHOR", E)], id="second-author-without-time"),
        pytest.param(attr(f"{D}/hl7:custodian//hl7:id", "root", ""), [("CDA-CUSTODIAN", E)], id="custodian"),
        pytest.param(drop(f"{D}/hl7:legalAuthenticator"), [("CDA-LEGAL-AUTHENTICATOR", E)], id="legal-authenticator"),
        pytest.param(
            attr(f"{D}/hl7:componentOf//hl7:healthCareFacility/hl7:code", "code", ""),
            [("CDA-HEALTHCARE-FACILITY", E)],
            id="facility",
        ),
        pytest.param(drop(f"{D}/hl7:documentationOf"), [("CDA-SERVICE-EVENT", W)], id="service-event"),
        pytest.param(drop(f"{D}/hl7:component/hl7:structuredBody"), [("CDA-BODY", E)], id="body-empty"),
        pytest.param(drop(f"{D}/hl7:component"), [("CDA-BODY", E)], id="body-absent"),
        pytest.param(
            both(drop(f"{D}/hl7:setId"), drop(f"{D}/hl7:versionNumber"), drop(f"{D}/hl7:documentationOf")),
            [("CDA-SETID", E), ("CDA-VERSION", E), ("CDA-SERVICE-EVENT", W)],
            id="three-at-once",
        ),
    ],
)
def test_each_header_defect_gives_exactly_its_findings(
    dlu: bytes, edit: Callable[[etree._Element], None], expected: list[tuple[str, Severity]]
) -> None:
    report = validate_cda(edited(dlu, edit))
    routing = [f for f in expected if _routing([f])]
    got = findings(report.findings)
    french = [f for f in expected if not _routing([f])]
    assert got == routing + NOT_CONFIGURED + french + NO_SCHEMATRON, [str(f) for f in report.findings]
    assert report.ok is (not any(s is E for _, s in expected))


def _routing(expected: list[tuple[str, Severity]]) -> bool:
    """Findings of the routing header come first (header_of), then the XSD layer's, then the French rules', then
    the schematron layer's."""
    return any(code.startswith(("CDA-NO-", "CDA-CODE-", "CDA-INS-", "CDA-TEMPLATE-MISSING")) for code, _ in expected)


def test_routing_header_of_the_reference_dlu(dlu: bytes) -> None:
    header = read_cda_header(dlu, location="DOC0001.XML")
    assert header.findings == [] and header.ok
    assert (header.code, header.code_system, header.display) == (
        "74207-2",
        "2.16.840.1.113883.6.1",
        "Dossier de liaison d'urgence",
    )
    assert header.title == "DOCUMENT DE LIAISON D'URGENCE"
    assert header.ins is not None and header.ins.value == "238047505612394"
    assert header.other_ids == (("1.2.250.1.999.990000016", "P001"),)
    assert header.template_ids[-1] == "1.2.250.1.213.1.1.1.22"


def test_not_a_cda_and_not_xml() -> None:
    other = read_cda_header(b'<x:Other xmlns:x="urn:x"/>', location="A.XML")
    assert findings(other.findings) == [("CDA-NOT-CDA", E)] and other.findings[0].location == "A.XML"
    assert findings(read_cda_header(b"<oops", location="A.XML").findings) == [("XML-MALFORMED", E)]
    report = validate_cda(b'<x:Other xmlns:x="urn:x"/>')
    assert findings(report.findings) == [("CDA-NOT-CDA", E)] and report.layers == ["xml", "header"]
    broken = validate_cda(b"<ClinicalDocument")
    assert findings(broken.findings) == [("XML-MALFORMED", E)] and broken.layers == ["xml"]
    assert findings(validate_cda(b"<a/>" * 10, max_bytes=8).findings) == [("XML-TOO-LARGE", E)]


def test_alternative_templates_of_a_shared_code(dlu: bytes) -> None:
    """A document of code 74207-2 declaring FLUDT (1.2.250.1.213.1.1.1.23) instead of DLU is a DLU family member."""
    fludt = edited(dlu, attr(f"{D}/hl7:templateId[@root='1.2.250.1.213.1.1.1.22']", "root", "1.2.250.1.213.1.1.1.23"))
    assert read_cda_header(fludt).findings == []
    assert DOCUMENT_TYPES["DLU"].accepted_templates[0] == "1.2.250.1.213.1.1.1.22"


def test_document_id(dlu: bytes) -> None:
    report = validate_cda(dlu, xsd_required=False, schematron_required=False)
    assert report.findings == [] and report.volet is None
    root = etree.fromstring(dlu)
    assert report.document_id == root.find("hl7:id", NS).get("root")
    with_ext = validate_cda(edited(dlu, attr(f"{D}/hl7:id", "extension", "42")), xsd_required=False)
    assert with_ext.document_id == root.find("hl7:id", NS).get("root") + "^42"
    no_root = validate_cda(edited(dlu, attr(f"{D}/hl7:id", "root", "")), xsd_required=False, schematron_required=False)
    assert no_root.document_id is None and findings(no_root.findings) == [("CDA-ID", E)]


class _Schematron:
    """A stand-in engine: ``name`` is the schematron it selects (None: none checks the document)."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.asked: list[str] = []

    def select(self, root: etree._Element) -> SchematronChoice:
        return SchematronChoice(self.name, "choisi" if self.name else "aucun schématron pour ce volet")

    def validate(self, root: etree._Element, volet: str, *, location: str = "") -> list[Finding]:
        self.asked.append(volet)
        return [Finding("SCH-ASSERT", f"règle du volet {volet}", Severity.ERROR, location)]


def test_schematron_layer(dlu: bytes) -> None:
    engine = _Schematron("DLU-EHPAD-DLU_2022.01")
    report = validate_cda(dlu, schematron=engine, xsd_required=False)  # type: ignore[arg-type]
    assert engine.asked == ["DLU-EHPAD-DLU_2022.01"] and findings(report.findings) == [("SCH-ASSERT", E)]
    assert report.layers == ["xml", "header", "schematron:DLU-EHPAD-DLU_2022.01"]
    assert report.volet == "DLU-EHPAD-DLU_2022.01"
    none = _Schematron(None)
    report = validate_cda(dlu, schematron=none, xsd_required=False)  # type: ignore[arg-type]
    assert findings(report.findings) == NO_SCHEMATRON and none.asked == []
    assert report.findings[0].message == "contenu non vérifié par schématron : aucun schématron pour ce volet"
    assert report.layers == ["xml", "header"] and report.volet is None


XSD = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:hl7-org:v3"
 xmlns="urn:hl7-org:v3" elementFormDefault="qualified">
  <xs:element name="ClinicalDocument"><xs:complexType><xs:sequence>
    <xs:any processContents="skip" minOccurs="0" maxOccurs="unbounded"/>
  </xs:sequence><xs:attribute name="n" type="xs:int"/></xs:complexType></xs:element>
</xs:schema>"""


def test_xsd_layer(tmp_path: Path, dlu: bytes) -> None:
    with pytest.raises(FileNotFoundError, match="CDA_extended.xsd"):
        CdaSchema(tmp_path)
    (tmp_path / "CDA_extended.xsd").write_text("<not a schema", encoding="utf-8")
    with pytest.raises(ValueError, match="XSD CDA illisible"):
        CdaSchema(tmp_path)
    (tmp_path / "CDA_extended.xsd").write_text(XSD, encoding="utf-8")
    schema = CdaSchema(tmp_path)
    report = validate_cda(dlu, xsd=schema, schematron_required=False)
    assert report.findings == [] and report.layers == ["xml", "header", "xsd"]
    bad = edited(dlu, attr(D, "n", "pas un entier"))
    report = validate_cda(bad, xsd=schema, location="DOC.XML", schematron_required=False)
    assert findings(report.findings) == [("CDA-XSD", E)] and report.findings[0].location == "DOC.XML"
    assert report.findings[0].message.startswith("ligne ")
    root = etree.fromstring(bad)
    assert findings(schema.validate(root, limit=0)) == [("CDA-XSD", E)]  # the summary line only
    assert "1 autre(s) erreur(s) XSD" in schema.validate(root, limit=0)[0].message
    assert schema.validate(root)[0].location == "CDA"
