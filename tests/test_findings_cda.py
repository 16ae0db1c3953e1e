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
    check_french_header,
    header_of,
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


# ------------------------------------------------------------------------- the document models, the messages, where

LOINC = "2.16.840.1.113883.6.1"
#: the CI-SIS document models (kind: LOINC / TRE_A05 code, system, volet templateId, version, alternatives)
MODELS = {
    "DLU": ("74207-2", LOINC, "1.2.250.1.213.1.1.1.22", "2022.01",
            ("1.2.250.1.213.1.1.1.23", "1.2.250.1.213.1.1.1.24", "1.2.250.1.213.1.1.1.51")),
    "VSM": ("SYNTH", "1.2.250.1.213.1.1.4.12", "1.2.250.1.213.1.1.1.13", "201310", ()),
    "LDL-SES": ("11490-0", LOINC, "1.2.250.1.213.1.1.1.29", "2022.01", ()),
    "LDL-EES": ("18761-7", LOINC, "1.2.250.1.213.1.1.1.21", "2022.01", ()),
    "VAC": ("11369-6", LOINC, "1.2.250.1.213.1.1.1.37", "2023.01", ()),
    "CR-BIO": ("11502-2", LOINC, "1.2.250.1.213.1.1.1.55", None, ("1.3.6.1.4.1.19376.1.2.20",)),
    "EP-MED-DM": ("57833-6", LOINC, "1.2.250.1.213.1.1.1.39", "2024.01", ()),
    "EDISP-MED": ("60593-1", LOINC, "1.2.250.1.213.1.1.1.54", "2024.01", ()),
}  # fmt: skip


def test_the_document_models() -> None:
    assert {
        kind: (t.code, t.code_system, t.template_id, t.template_version, t.alternatives)
        for kind, t in DOCUMENT_TYPES.items()
    } == MODELS
    assert {kind: (t.kind, t.display, t.title) for kind, t in DOCUMENT_TYPES.items()} == {
        "DLU": ("DLU", "Dossier de liaison d'urgence", "DOCUMENT DE LIAISON D'URGENCE"),
        "VSM": ("VSM", "Synthèse", "VOLET DE SYNTHESE MEDICALE"),
        "LDL-SES": (
            "LDL-SES",
            "Lettre de liaison à la sortie d'un établissement de soins",
            "LETTRE DE LIAISON A LA SORTIE",
        ),
        "LDL-EES": ("LDL-EES", "Note de transfert", "LETTRE DE LIAISON A L'ENTREE"),
        "VAC": ("VAC", "Historique de vaccinations", "HISTORIQUE DE VACCINATIONS"),
        "CR-BIO": ("CR-BIO", "CR d'examens biologiques", "COMPTE RENDU D'EXAMENS BIOLOGIQUES"),
        "EP-MED-DM": ("EP-MED-DM", "Prescription de produits de santé", "PRESCRIPTION"),
        "EDISP-MED": ("EDISP-MED", "Dispensation médicamenteuse", "DISPENSATION"),
    }


def _header_only(code: str, system: str, templates: tuple[str, ...], ids: str) -> bytes:
    declared = "".join(f'<templateId root="{t}"/>' for t in templates)
    return (
        f'<ClinicalDocument xmlns="{HL7}">{declared}<code code="{code}" codeSystem="{system}" displayName="d"/>'
        f"<title> Titre </title><recordTarget><patientRole>{ids}</patientRole></recordTarget></ClinicalDocument>"
    ).encode()


INS_OK = '<id root="1.2.250.1.213.1.4.10" extension="238047505612394"/>'


@pytest.mark.parametrize("kind", list(MODELS))
def test_each_model_asks_for_its_volet_template(kind: str) -> None:
    code, system, template, _, alternatives = MODELS[kind]
    for declared in (template, *alternatives):
        assert read_cda_header(_header_only(code, system, ("1.2.3", declared), INS_OK)).findings == []
    missing = read_cda_header(_header_only(code, system, ("1.2.3",), INS_OK), location="D.XML")
    assert [(f.code, f.severity, f.location, f.message) for f in missing.findings] == [
        (
            "CDA-TEMPLATE-MISSING",
            E,
            "D.XML",
            f"document {kind} ({code}) sans templateId de volet ({', '.join((template, *alternatives))})",
        )
    ]
    other_system = "1.2.250.1.213.1.1.4.12" if system == LOINC else LOINC
    assert read_cda_header(_header_only(code, other_system, (), INS_OK)).findings == []  # not this model


def test_routing_header_findings_where_and_what() -> None:
    local = '<id root="1.2.250.1.999.1" extension="P1"/><id extension="P2"/><id root="1.2.3"/>'
    got = read_cda_header(_header_only("X", LOINC, (), local), location="DOC1.XML")
    assert (got.code, got.code_system, got.display, got.title, got.template_ids) == ("X", LOINC, "d", "Titre", ())
    assert got.other_ids == (("1.2.250.1.999.1", "P1"), ("", "P2"), ("1.2.3", ""))
    assert [(f.code, f.location, f.message) for f in got.findings] == [
        (
            "CDA-NO-INS",
            "DOC1.XML",
            "aucun INS dans recordTarget/patientRole/id (OID trouvés: 1.2.250.1.999.1, , 1.2.3; attendu un OID INS "
            "1.2.250.1.213.1.4.10, 1.2.250.1.213.1.4.11, 1.2.250.1.213.1.4.8, 1.2.250.1.213.1.4.9)",
        )
    ]
    assert got.ok is False
    none = read_cda_header(_header_only("X", LOINC, (), ""), location="DOC1.XML")
    assert [(f.code, f.location) for f in none.findings] == [
        ("CDA-NO-PATIENT-ID", "DOC1.XML"),
        ("CDA-NO-INS", "DOC1.XML"),
    ]
    assert "(OID trouvés: aucun;" in none.findings[1].message
    bad = '<id root="1.2.250.1.213.1.4.10" extension="238047505612395"/>'
    (key,) = read_cda_header(_header_only("X", LOINC, (), bad), location="DOC1.XML").findings
    assert (key.code, key.location) == ("CDA-INS-KEY", "DOC1.XML")
    assert key.message.startswith("INS du patientRole invalide: ")
    # a later valid INS is kept, the invalid one still reported
    twice = read_cda_header(_header_only("X", LOINC, (), bad + INS_OK))
    assert [f.code for f in twice.findings] == ["CDA-INS-KEY"] and twice.ins is not None
    no_system = read_cda_header(b'<ClinicalDocument xmlns="urn:hl7-org:v3"><code code="X"/>' + INS_OK.encode()
                                + b"</ClinicalDocument>", location="L")  # fmt: skip
    assert [(f.code, f.location, f.message) for f in no_system.findings] == [
        ("CDA-CODE-SYSTEM", "L", "le code du document n'a pas de codeSystem"),
        ("CDA-NO-PATIENT-ID", "L", "recordTarget/patientRole/id absent"),
        ("CDA-NO-INS", "L", no_system.findings[2].message),
    ]
    bare = read_cda_header(b'<ClinicalDocument xmlns="urn:hl7-org:v3"/>', location="L")
    assert (bare.code, bare.display, bare.title) == (None, None, None)
    assert [(f.code, f.message) for f in bare.findings][0] == (
        "CDA-NO-CODE",
        "le document n'a pas d'élément code (type de document)",
    )
    other = read_cda_header(b'<x:Other xmlns:x="urn:x"/>', location="A.XML")
    assert other.findings[0].message == "l'élément racine est {urn:x}Other, pas hl7:ClinicalDocument"


def test_french_header_messages_and_location(dlu: bytes) -> None:
    edit = both(
        drop(f"{D}/hl7:typeId"),
        drop(f"{D}/hl7:templateId[@root='1.2.250.1.213.1.1.1.1']"),
        attr(f"{D}/hl7:confidentialityCode", "code", "X"),
        second_author,
        drop(f"{AUTHOR}[1]/hl7:assignedAuthor/hl7:assignedPerson"),
    )
    report = validate_cda(edited(dlu, edit), location="DOC.XML", xsd_required=False, schematron_required=False)
    assert [(f.code, f.severity, f.location, f.message) for f in report.findings] == [
        ("CDA-TYPEID", E, "DOC.XML", "typeId attendu root=2.16.840.1.113883.1.3 extension=POCD_HD000040"),
        (
            "CDA-TEMPLATE-HEADER",
            E,
            "DOC.XML",
            "templateId d'en-tête 1.2.250.1.213.1.1.1.1 absent (modèle d'en-tête CI-SIS)",
        ),
        (
            "CDA-CONFIDENTIALITY",
            E,
            "DOC.XML",
            "confidentialityCode attendu N, R ou V du système 2.16.840.1.113883.5.25, reçu 'X' / '2.16.840.1.113883.5.25'",
        ),
        ("CDA-AUTHOR", E, "DOC.XML", "author[1]: ni assignedPerson ni assignedAuthoringDevice"),
        ("CDA-AUTHOR", E, "DOC.XML", "author[2]: time absent"),
    ]
    no_conf = validate_cda(
        edited(dlu, drop(f"{D}/hl7:confidentialityCode")), xsd_required=False, schematron_required=False
    )
    assert [f.message for f in no_conf.findings] == [
        "confidentialityCode attendu N, R ou V du système 2.16.840.1.113883.5.25"
    ]
    assert validate_cda(edited(dlu, attr(f"{D}/hl7:confidentialityCode", "code", "V")), xsd_required=False,
                        schematron_required=False).findings == []  # fmt: skip


def test_layers_warnings_where(dlu: bytes) -> None:
    report = validate_cda(dlu, location="DOC.XML")
    assert [(f.code, f.location, f.message) for f in report.findings] == [
        (
            "CDA-XSD-NOT-CONFIGURED",
            "DOC.XML",
            "validation XSD non effectuée : le dossier du schéma CDA (CDA_extended.xsd) n'est pas configuré "
            "(réglage cda_xsd_dir)",
        ),
        (
            "SCH-NON-VERIFIE",
            "DOC.XML",
            "contenu non vérifié par schématron : le dossier des schématrons CI-SIS n'est pas configuré "
            "(réglage schematron_dir)",
        ),
    ]
    engine = _Schematron(None)
    chosen = validate_cda(dlu, schematron=engine, xsd_required=False, location="DOC.XML")  # type: ignore[arg-type]
    assert [(f.code, f.location) for f in chosen.findings] == [("SCH-NON-VERIFIE", "DOC.XML")]
    assert chosen.schematron_reason == "aucun schématron pour ce volet"
    named = validate_cda(dlu, schematron=_Schematron("V"), xsd_required=False, location="DOC.XML")  # type: ignore[arg-type]
    assert [(f.code, f.location) for f in named.findings] == [("SCH-ASSERT", "DOC.XML")]
    assert named.schematron_reason == "choisi"
    broken = validate_cda(b"<ClinicalDocument", location="DOC.XML")
    assert [f.location for f in broken.findings] == ["DOC.XML"]
    assert broken.findings[0].message.startswith("le document n'est pas un XML lisible: ")
    assert broken.header.findings == broken.findings


def test_the_size_bound() -> None:
    limit = 30 * 1024 * 1024
    chunk = b"<b/>" + b" " * 4092  # whitespace in short runs: libxml2 caps one text node at 10 MB
    body = chunk * (limit // 4096 - 1)
    padded = b"<a>" + body + b" " * (limit - len(body) - 7) + b"</a>"
    assert len(padded) == limit
    assert [f.code for f in validate_cda(padded).findings] == ["CDA-NOT-CDA"]
    assert [f.code for f in validate_cda(padded + b" ").findings] == ["XML-TOO-LARGE"]


def test_xsd_error_limit(tmp_path: Path, dlu: bytes) -> None:
    (tmp_path / "CDA_extended.xsd").write_text(XSD, encoding="utf-8")
    schema = CdaSchema(tmp_path)
    root = etree.fromstring(edited(dlu, attr(D, "n", "pas un entier")))
    assert [(f.code, f.location) for f in schema.validate(root, limit=1)] == [("CDA-XSD", "CDA")]
    (summary,) = schema.validate(root, location="DOC.XML", limit=0)
    assert (summary.location, summary.message) == ("DOC.XML", "... et 1 autre(s) erreur(s) XSD")
    assert schema.validate(etree.fromstring(dlu)) == []


def test_defaults_of_the_header_readers() -> None:
    """Without ``location`` a finding has none; a templateId without root is read as ''."""
    assert [(f.code, f.location) for f in read_cda_header(b"<oops").findings] == [("XML-MALFORMED", "")]
    assert [(f.code, f.location) for f in header_of(etree.fromstring(b"<x/>")).findings] == [("CDA-NOT-CDA", "")]
    rootless = _header_only("X", LOINC, (), INS_OK).replace(b"<code", b'<templateId extension="v"/><code')
    header = header_of(etree.fromstring(rootless))
    assert header.template_ids == ("",) and header.findings == []


@pytest.mark.parametrize(
    ("xpath", "code", "message"),
    [
        (f"{AUTHOR}/hl7:assignedAuthor/hl7:id", "CDA-AUTHOR", "author[1]: assignedAuthor/id absent"),
        (
            f"{D}/hl7:custodian//hl7:id",
            "CDA-CUSTODIAN",
            "custodian/.../representedCustodianOrganization/id absent",
        ),
    ],
)
def test_an_id_without_root_is_no_id(dlu: bytes, xpath: str, code: str, message: str) -> None:
    root = etree.fromstring(edited(dlu, attr(xpath, "root", None)))
    assert [(f.code, f.location, f.message) for f in check_french_header(root)] == [(code, "", message)]


def test_empty_title_and_reason_defaults(dlu: bytes) -> None:
    empty = _header_only("X", LOINC, (), INS_OK).replace(b"<title> Titre </title>", b"<title/>")
    assert read_cda_header(empty).title == ""
    report = validate_cda(dlu)
    assert report.schematron_reason == "" and [f.location for f in report.findings] == ["", ""]


def test_at_most_20_xsd_errors_by_default(tmp_path: Path, dlu: bytes) -> None:
    lax = XSD.replace('processContents="skip"', 'processContents="lax"').replace(
        "</xs:schema>",
        '<xs:element name="e"><xs:complexType><xs:attribute name="n" type="xs:int"/></xs:complexType>'
        "</xs:element></xs:schema>",
    )
    (tmp_path / "CDA_extended.xsd").write_text(lax, encoding="utf-8")
    schema = CdaSchema(tmp_path)

    def errors(count: int) -> list[str]:
        bad = '<e n="x"/>' * count
        root = etree.fromstring(f'<ClinicalDocument xmlns="{HL7}">{bad}</ClinicalDocument>')
        return [f.message for f in schema.validate(root)]

    assert len(errors(20)) == 20
    assert len(errors(21)) == 21 and errors(21)[-1] == "... et 1 autre(s) erreur(s) XSD"


def test_the_xsd_is_read_without_its_dtd_and_entities(tmp_path: Path) -> None:
    """The configured XSD folder is read as is: no DTD loaded, no entity expanded (no file or network access)."""
    (tmp_path / "broken.dtd").write_text("<!ELEMENT oops garbage ((( >", encoding="utf-8")
    doctype = '<?xml version="1.0"?>\n<!DOCTYPE xs:schema SYSTEM "broken.dtd">\n'
    (tmp_path / "CDA_extended.xsd").write_text(doctype + XSD, encoding="utf-8")
    assert CdaSchema(tmp_path).schema is not None  # the broken DTD was never read
    entity = '<?xml version="1.0"?>\n<!DOCTYPE xs:schema [<!ENTITY t "xs:int">]>\n'
    (tmp_path / "CDA_extended.xsd").write_text(entity + XSD.replace('type="xs:int"', 'type="&t;"'), encoding="utf-8")
    with pytest.raises(ValueError, match="XSD CDA illisible"):  # &t; left unexpanded: not a type name
        CdaSchema(tmp_path)
