"""XDS.b submission metadata (harness/validators/xds_metadata.py): every rule, one deviation at a time from a clean
hand-written ``SubmitObjectsRequest``, asserting the EXACT findings (code, severity, location, message).

The identifiers are written out here from IHE ITI TF-3 Rev. 19.0 §4.2.5 ("Metadata Identifiers") rather than read
from harness.validators.ebrim, so that these tests also judge that vocabulary. The DMP rules are those of the ANS
CI-SIS "Volet Partage de documents de santé" (patientId INS, IDNPS / IDNST authors, classCode TRE_A03, JDV J57 /
J60), the signature document that of IHE ITI DSG. No PKI, no network: each case parses a few kilobytes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from lxml import etree

from harness.validators import Finding, Severity
from harness.validators import xds_metadata as X
from harness.validators.xds_metadata import (
    Coded,
    ValueSets,
    XdsAuthor,
    format_code_finding,
    idnst_of,
    read_submission,
)

LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
# ITI TF-3 §4.2.5
DOC_ENTRY = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SS_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
DOC_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DOC_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
FACILITY = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
PRACTICE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DOC_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"

INS = "297022A02077878"  # public INSi qualification identity (ADRTROIS DOMINIQUE)
OTHER_INS = "160012B02077713"  # ADRTROIS TOUSSAINT
CX = f"{INS}^^^&1.2.250.1.213.1.4.8&ISO^NH"
PERSON = "801234567890^DUPONT^JEAN^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
INSTITUTION = "EHPAD Les Tilleuls^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1750000001"
DOC = "Document01"
SIG = "Signature01"
SS = "SubmissionSet01"
E_DOC = f"DocumentEntry {DOC}"
E_SIG = f"DocumentEntry {SIG}"
E_SS = f"SubmissionSet {SS}"
META = "XDSRegistryMetadataError"
ERROR, WARNING = Severity.ERROR, Severity.WARNING


def _slot(name: str, *values: str) -> str:
    return f'<rim:Slot name="{name}"><rim:ValueList>{"".join(f"<rim:Value>{escape(v)}</rim:Value>" for v in values)}</rim:ValueList></rim:Slot>'


def _coded(obj: str, scheme: str, code: str, system: str) -> str:
    return (
        f'<rim:Classification classificationScheme="{scheme}" classifiedObject="{obj}" nodeRepresentation="{code}">'
        f"{_slot('codingScheme', system)}</rim:Classification>"
    )


def _author(obj: str, scheme: str, *, person: bool) -> str:
    return (
        f'<rim:Classification classificationScheme="{scheme}" classifiedObject="{obj}" nodeRepresentation="">'
        f"{_slot('authorPerson', PERSON) if person else ''}{_slot('authorInstitution', INSTITUTION)}</rim:Classification>"
    )


def _external(obj: str, scheme: str, value: str) -> str:
    return f'<rim:ExternalIdentifier identificationScheme="{scheme}" registryObject="{obj}" value="{escape(value)}"/>'


def _association(ident: str, kind: str, source: str, target: str, status: bool = True) -> str:
    slot = _slot("SubmissionSetStatus", "Original") if status else ""
    return (
        f'<rim:Association id="{ident}" associationType="{kind}" sourceObject="{source}" targetObject="{target}">'
        f"{slot}</rim:Association>"
    )


CLEAN = f"""<lcm:SubmitObjectsRequest xmlns:lcm="{LCM}" xmlns:rim="{RIM}"><rim:RegistryObjectList>
<rim:RegistryPackage id="{SS}">
{_slot("submissionTime", "20240315101500")}
{_author(SS, SS_AUTHOR, person=False)}
{_coded(SS, SS_CONTENT_TYPE, "04", "1.2.250.1.213.2.2")}
{_external(SS, SS_PATIENT_ID, CX)}
{_external(SS, SS_SOURCE_ID, "1.2.250.1.999.1")}
{_external(SS, SS_UNIQUE_ID, "1.2.250.1.999.1.1")}
</rim:RegistryPackage>
<rim:Classification classifiedObject="{SS}" classificationNode="{SS_NODE}"/>
<rim:ExtrinsicObject id="{DOC}" mimeType="text/xml" objectType="{DOC_ENTRY}" lid="{DOC}">
{_slot("creationTime", "20240315")}
{_slot("hash", "da39a3ee5e6b4b0d3255bfef95601890afd80709")}
{_slot("size", "1024")}
{_slot("languageCode", "fr-FR")}
{_slot("sourcePatientId", CX)}
<rim:Name><rim:LocalizedString value="Document de liaison d'urgence"/></rim:Name>
<rim:VersionInfo versionName="1"/>
{_author(DOC, DOC_AUTHOR, person=True)}
{_coded(DOC, CLASS_CODE, "10", "1.2.250.1.213.1.1.4.1")}
{_coded(DOC, TYPE_CODE, "34133-9", "2.16.840.1.113883.6.1")}
{_coded(DOC, FORMAT_CODE, "urn:asip:ci-sis:dlu:2015", "1.2.250.1.213.1.1.4.2.282")}
{_coded(DOC, CONFIDENTIALITY, "N", "2.16.840.1.113883.5.25")}
{_coded(DOC, FACILITY, "SA17", "1.2.250.1.71.4.2.4")}
{_coded(DOC, PRACTICE, "ESSMS", "1.2.250.1.213.1.1.4.9")}
{_external(DOC, DOC_PATIENT_ID, CX)}
{_external(DOC, DOC_UNIQUE_ID, "1.2.250.1.999.2.1")}
</rim:ExtrinsicObject>
<rim:ExtrinsicObject id="{SIG}" mimeType="text/xml" objectType="{DOC_ENTRY}">
{_slot("creationTime", "20240315101500")}
{_author(SIG, DOC_AUTHOR, person=False)}
{_coded(SIG, CLASS_CODE, "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "URN")}
{_coded(SIG, TYPE_CODE, "E1762", "ASTM")}
{_coded(SIG, FORMAT_CODE, "http://www.w3.org/2000/09/xmldsig#", "URN")}
{_external(SIG, DOC_PATIENT_ID, CX)}
{_external(SIG, DOC_UNIQUE_ID, "1.2.250.1.999.2.2")}
</rim:ExtrinsicObject>
{_association("A1", HAS_MEMBER, SS, DOC)}
{_association("A2", HAS_MEMBER, SS, SIG)}
{_association("A3", SIGNS, SIG, SS)}
</rim:RegistryObjectList></lcm:SubmitObjectsRequest>"""


def clean() -> etree._Element:
    return etree.fromstring(CLEAN.encode())


def by_id(root: etree._Element, ident: str) -> etree._Element:
    [found] = root.xpath("//*[@id=$i]", i=ident)
    return found


def classification(root: etree._Element, obj: str, scheme: str) -> etree._Element:
    [found] = by_id(root, obj).xpath("rim:Classification[@classificationScheme=$s]", namespaces={"rim": RIM}, s=scheme)
    return found


def external(root: etree._Element, obj: str, scheme: str) -> etree._Element:
    [found] = by_id(root, obj).xpath(
        "rim:ExternalIdentifier[@identificationScheme=$s]", namespaces={"rim": RIM}, s=scheme
    )
    return found


def slot(element: etree._Element, name: str) -> etree._Element:
    [found] = element.xpath("rim:Slot[@name=$n]", namespaces={"rim": RIM}, n=name)
    return found


def remove(element: etree._Element) -> None:
    element.getparent().remove(element)


def set_code(obj: str, scheme: str, code: str | None = None, system: str | None = None) -> Callable:
    def change(root: etree._Element) -> None:
        cl = classification(root, obj, scheme)
        if code is not None:
            cl.set("nodeRepresentation", code)
        if system is not None:
            slot(cl, "codingScheme")[0][0].text = system

    return change


def drop_code(obj: str, scheme: str) -> Callable:
    return lambda root: remove(classification(root, obj, scheme))


def add_code(obj: str, scheme: str, code: str, system: str) -> Callable:
    return lambda root: by_id(root, obj).append(etree.fromstring(_ns(_coded(obj, scheme, code, system))))


def set_external(obj: str, scheme: str, value: str | None) -> Callable:
    def change(root: etree._Element) -> None:
        if value is None:
            remove(external(root, obj, scheme))
        else:
            external(root, obj, scheme).set("value", value)

    return change


def set_slot(obj: str, name: str, *values: str | None) -> Callable:
    def change(root: etree._Element) -> None:
        element = slot(by_id(root, obj), name)
        if values == (None,):
            remove(element)
        else:
            element[0].clear()
            for value in values:
                etree.SubElement(element[0], f"{{{RIM}}}Value").text = value

    return change


def set_author(obj: str, scheme: str, name: str, value: str | None) -> Callable:
    def change(root: etree._Element) -> None:
        element = slot(classification(root, obj, scheme), name)
        if value is None:
            remove(element)
        else:
            element[0][0].text = value

    return change


def set_attr(ident: str, name: str, value: str | None) -> Callable:
    def change(root: etree._Element) -> None:
        element = by_id(root, ident)
        if value is None:
            del element.attrib[name]
        else:
            element.set(name, value)

    return change


def append(xml: str) -> Callable:
    return lambda root: root[0].append(etree.fromstring(_ns(xml)))


def _ns(xml: str) -> bytes:
    return f'<w xmlns:rim="{RIM}">{xml}</w>'.encode()


def found(findings: list[Finding]) -> list[tuple[str, Severity, str, str]]:
    return [(f.code, f.severity, f.location, f.message) for f in findings]


def read(change: Callable | None = None, **options: object) -> X.XdsSubmission:
    root = clean()
    if change is not None:
        change(root)
    for wrapper in root.iter("w"):
        parent = wrapper.getparent()
        index = parent.index(wrapper)
        for child in reversed(list(wrapper)):
            parent.insert(index, child)
        parent.remove(wrapper)
    return read_submission(root, **options)


# ------------------------------------------------------------------------------------------------ the clean one
def test_the_clean_submission_is_read_field_by_field_without_findings() -> None:
    submission = read()
    assert found(submission.findings) == []
    assert submission.ok
    ss = submission.submission_set
    assert (ss.id, ss.unique_id, ss.source_id, ss.patient_cx, ss.submission_time) == (
        SS,
        "1.2.250.1.999.1.1",
        "1.2.250.1.999.1",
        CX,
        "20240315101500",
    )
    assert (ss.patient.value, ss.patient.oid) == (INS, "1.2.250.1.213.1.4.8")
    assert ss.authors == (XdsAuthor((), (INSTITUTION,)),)
    assert ss.content_type == Coded("04", "1.2.250.1.213.2.2")
    doc, sig = submission.entries
    assert [e.id for e in submission.documents] == [DOC]
    assert (doc.is_signature, sig.is_signature) == (False, True)
    assert (doc.mime_type, doc.unique_id, doc.patient_cx, doc.creation_time, doc.title) == (
        "text/xml",
        "1.2.250.1.999.2.1",
        CX,
        "20240315",
        "Document de liaison d'urgence",
    )
    assert (doc.hash, doc.size, doc.logical_id, doc.version) == (
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "1024",
        DOC,
        "1",
    )
    assert (sig.hash, sig.size, sig.logical_id, sig.version, sig.title) == (None, None, None, None, None)
    assert (doc.class_code, doc.type_code, doc.format_code) == (
        Coded("10", "1.2.250.1.213.1.1.4.1"),
        Coded("34133-9", "2.16.840.1.113883.6.1"),
        Coded("urn:asip:ci-sis:dlu:2015", "1.2.250.1.213.1.1.4.2.282"),
    )
    assert doc.confidentiality == (Coded("N", "2.16.840.1.113883.5.25"),)
    assert (doc.facility_type, doc.practice_setting) == (
        Coded("SA17", "1.2.250.1.71.4.2.4"),
        Coded("ESSMS", "1.2.250.1.213.1.1.4.9"),
    )
    assert doc.authors == (XdsAuthor((PERSON,), (INSTITUTION,)),)
    assert [(a.id, a.type, a.source, a.target, a.slots) for a in submission.associations] == [
        ("A1", HAS_MEMBER, SS, DOC, {"SubmissionSetStatus": ("Original",)}),
        ("A2", HAS_MEMBER, SS, SIG, {"SubmissionSetStatus": ("Original",)}),
        ("A3", SIGNS, SIG, SS, {"SubmissionSetStatus": ("Original",)}),
    ]
    assert submission.patient == ss.patient
    assert submission.essms == "750000001"


# ------------------------------------------------------------------------------------------------ one rule each
def _patient_error(where: str, cx: str, detail: str) -> tuple[str, Severity, str, str]:
    return (
        "XDSUnknownPatientId",
        ERROR,
        where,
        f"{where}: patientId {cx!r} n'est pas un INS valide ({detail})",
    )


BAD_CX = f"{INS[:-2]}79^^^&1.2.250.1.213.1.4.8&ISO^NH"
OTHER_CX = f"{OTHER_INS}^^^&1.2.250.1.213.1.4.8&ISO^NH"
CONF_LIST = "N/R/V (2.16.840.1.113883.5.25) et CONNEXION_SECRETE, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX, MASQUE_PS (1.2.250.1.213.1.1.4.13)"
PERSON_EXPECTED = "identifiant national de PS attendu (...^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS)"
IDNST_EXPECTED = "identifiant de structure IDNST attendu (Nom^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1<FINESS>)"
NO_SIGNATURE = (
    "document de signature absent: le lot doit contenir une signature XAdES (typeCode E1762, IHE DSG) reliée au lot "
    "par une association signs"
)

CASES: list[tuple[str, Callable, list[tuple[str, Severity, str, str]]]] = [
    # ---- SubmissionSet
    (
        "submissionTime absent",
        set_slot(SS, "submissionTime", None),
        [(META, ERROR, E_SS, "submissionTime absent ou mal formé")],
    ),
    (
        "submissionTime with seconds cut",
        set_slot(SS, "submissionTime", "202403151015001"),
        [(META, ERROR, E_SS, "submissionTime absent ou mal formé")],
    ),
    ("submissionTime to the year", set_slot(SS, "submissionTime", "2024"), []),
    (
        "submissionTime not digits",
        set_slot(SS, "submissionTime", "2024-03-15"),
        [(META, ERROR, E_SS, "submissionTime absent ou mal formé")],
    ),
    (
        "uniqueId absent",
        set_external(SS, SS_UNIQUE_ID, None),
        [(META, ERROR, E_SS, "uniqueId absent ou pas un OID (None)")],
    ),
    (
        "uniqueId not an OID",
        set_external(SS, SS_UNIQUE_ID, "1.2.03"),
        [(META, ERROR, E_SS, "uniqueId absent ou pas un OID ('1.2.03')")],
    ),
    (
        "sourceId empty",
        set_external(SS, SS_SOURCE_ID, ""),
        [(META, ERROR, E_SS, "sourceId absent ou pas un OID ('')")],
    ),
    (
        "sourceId a UUID",
        set_external(SS, SS_SOURCE_ID, "urn:uuid:1"),
        [(META, ERROR, E_SS, "sourceId absent ou pas un OID ('urn:uuid:1')")],
    ),
    (
        "contentTypeCode absent",
        drop_code(SS, SS_CONTENT_TYPE),
        [(META, ERROR, E_SS, "contentTypeCode absent")],
    ),
    (
        "contentTypeCode empty",
        set_code(SS, SS_CONTENT_TYPE, ""),
        [(META, ERROR, E_SS, "contentTypeCode: nodeRepresentation vide")],
    ),
    ("SubmissionSet author absent", drop_code(SS, SS_AUTHOR), [(META, ERROR, E_SS, "author absent")]),
    (
        "SubmissionSet institution not IDNST",
        set_author(SS, SS_AUTHOR, "authorInstitution", "EHPAD^^^^^&1.2.250.1.71.4.2.2&ISO^FINEG^^^1750000001"),
        [
            (
                META,
                ERROR,
                E_SS,
                "authorInstitution ['EHPAD^^^^^&1.2.250.1.71.4.2.2&ISO^FINEG^^^1750000001']: " + IDNST_EXPECTED,
            )
        ],
    ),
    (
        "SubmissionSet patientId absent",
        set_external(SS, SS_PATIENT_ID, None),
        [(META, ERROR, E_SS, f"{E_SS}: patientId absent")],
    ),
    (
        "SubmissionSet patientId wrong key",
        set_external(SS, SS_PATIENT_ID, BAD_CX),
        [
            _patient_error(
                E_SS, BAD_CX, "INS-KEY: clé de contrôle INS incorrecte pour 297022A020778 : attendue 78, reçue 79"
            ),
        ],
    ),
    (
        "the documents' patient differs from the set's",
        lambda root: (
            set_external(DOC, DOC_PATIENT_ID, OTHER_CX)(root),
            set_external(SIG, DOC_PATIENT_ID, OTHER_CX)(root),
        ),
        [
            ("XDSPatientIdDoesNotMatch", ERROR, E_DOC, f"patientId {OTHER_INS} différent de celui du lot {INS}"),
            ("XDSPatientIdDoesNotMatch", ERROR, E_SIG, f"patientId {OTHER_INS} différent de celui du lot {INS}"),
        ],
    ),
    # ---- DocumentEntry
    (
        "document patientId absent",
        set_external(DOC, DOC_PATIENT_ID, None),
        [(META, ERROR, E_DOC, "DocumentEntry Document01: patientId absent")],
    ),
    ("document uniqueId absent", set_external(DOC, DOC_UNIQUE_ID, None), [(META, ERROR, E_DOC, "uniqueId absent")]),
    (
        "two documents share a uniqueId",
        set_external(SIG, DOC_UNIQUE_ID, "1.2.250.1.999.2.1"),
        [("XDSDocumentUniqueIdError", ERROR, "", "uniqueId en double dans la soumission")],
    ),
    ("mimeType absent", set_attr(DOC, "mimeType", None), [(META, ERROR, E_DOC, "mimeType absent")]),
    (
        "creationTime absent",
        set_slot(DOC, "creationTime", None),
        [(META, ERROR, E_DOC, "creationTime absent ou mal formé (None)")],
    ),
    (
        "creationTime odd length",
        set_slot(DOC, "creationTime", "2024031"),
        [(META, ERROR, E_DOC, "creationTime absent ou mal formé ('2024031')")],
    ),
    ("classCode absent", drop_code(DOC, CLASS_CODE), [(META, ERROR, E_DOC, "classCode absent")]),
    ("classCode empty", set_code(DOC, CLASS_CODE, ""), [(META, ERROR, E_DOC, "classCode: nodeRepresentation vide")]),
    (
        "classCode under another scheme",
        set_code(DOC, CLASS_CODE, system="1.2.250.1.213.1.1.4.2"),
        [
            (META, ERROR, E_DOC, "classCode '10': codingScheme '1.2.250.1.213.1.1.4.2', attendu 1.2.250.1.213.1.1.4.1"),
            (
                META,
                ERROR,
                E_DOC,
                "classCode '10' (1.2.250.1.213.1.1.4.2) absent du jeu de valeurs JDV_J57-ClassCode-DMP",
            ),
        ],
    ),
    (
        "classCode outside J57",
        set_code(DOC, CLASS_CODE, "12"),
        [(META, ERROR, E_DOC, "classCode '12' (1.2.250.1.213.1.1.4.1) absent du jeu de valeurs JDV_J57-ClassCode-DMP")],
    ),
    ("typeCode absent", drop_code(DOC, TYPE_CODE), [(META, ERROR, E_DOC, "typeCode absent")]),
    ("typeCode of the ANS terminology", set_code(DOC, TYPE_CODE, "DOCPAT01", "1.2.250.1.213.1.1.4.12"), []),
    (
        "typeCode under another scheme",
        set_code(DOC, TYPE_CODE, system="2.16.840.1.113883.6.96"),
        [
            (
                META,
                ERROR,
                E_DOC,
                "typeCode '34133-9': codingScheme '2.16.840.1.113883.6.96', attendu 2.16.840.1.113883.6.1 ou 1.2.250.1.213.1.1.4.12",
            )
        ],
    ),
    ("formatCode absent", drop_code(DOC, FORMAT_CODE), [(META, ERROR, E_DOC, "formatCode absent")]),
    ("formatCode empty", set_code(DOC, FORMAT_CODE, ""), [(META, ERROR, E_DOC, "formatCode: nodeRepresentation vide")]),
    (
        "formatCode outside J60",
        set_code(DOC, FORMAT_CODE, "urn:asip:ci-sis:dlu:2099"),
        [
            (
                META,
                ERROR,
                E_DOC,
                "formatCode 'urn:asip:ci-sis:dlu:2099' (1.2.250.1.213.1.1.4.2.282) absent du jeu de valeurs JDV_J60-FormatCode-DMP",
            )
        ],
    ),
    (
        "formatCode of J60 under another scheme",
        set_code(DOC, FORMAT_CODE, system="1.3.6.1.4.1.19376.1.2.3"),
        [
            (
                META,
                ERROR,
                E_DOC,
                "formatCode 'urn:asip:ci-sis:dlu:2015' (1.3.6.1.4.1.19376.1.2.3) absent du jeu de valeurs JDV_J60-FormatCode-DMP",
            )
        ],
    ),
    (
        "confidentialityCode absent",
        drop_code(DOC, CONFIDENTIALITY),
        [(META, ERROR, E_DOC, "confidentialityCode absent")],
    ),
    ("confidentialityCode R", set_code(DOC, CONFIDENTIALITY, "R"), []),
    ("confidentialityCode V", set_code(DOC, CONFIDENTIALITY, "V"), []),
    (
        "confidentialityCode U",
        set_code(DOC, CONFIDENTIALITY, "U"),
        [
            (
                META,
                ERROR,
                E_DOC,
                "confidentialityCode 'U' ('2.16.840.1.113883.5.25') hors des codes N/R/V (2.16.840.1.113883.5.25) et CONNEXION_SECRETE, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX, MASQUE_PS (1.2.250.1.213.1.1.4.13)",
            )
        ],
    ),
    (
        "confidentialityCode N plus every DMP code",
        lambda root: [
            add_code(DOC, CONFIDENTIALITY, code, "1.2.250.1.213.1.1.4.13")(root)
            for code in ("MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX", "CONNEXION_SECRETE")
        ],
        [],
    ),
    (
        "a DMP confidentiality code alone",
        set_code(DOC, CONFIDENTIALITY, "MASQUE_PS", "1.2.250.1.213.1.1.4.13"),
        [(META, ERROR, E_DOC, "confidentialityCode HL7 (N, R ou V) absent")],
    ),
    (
        "a DMP confidentiality code under the HL7 scheme",
        set_code(DOC, CONFIDENTIALITY, "MASQUE_PS"),
        [
            (
                META,
                ERROR,
                E_DOC,
                "confidentialityCode 'MASQUE_PS' ('2.16.840.1.113883.5.25') hors des codes N/R/V (2.16.840.1.113883.5.25) et CONNEXION_SECRETE, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX, MASQUE_PS (1.2.250.1.213.1.1.4.13)",
            )
        ],
    ),
    (
        "an HL7 confidentiality code under the DMP scheme",
        add_code(DOC, CONFIDENTIALITY, "N", "1.2.250.1.213.1.1.4.13"),
        [
            (
                META,
                ERROR,
                E_DOC,
                "confidentialityCode 'N' ('1.2.250.1.213.1.1.4.13') hors des codes N/R/V (2.16.840.1.113883.5.25) et CONNEXION_SECRETE, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX, MASQUE_PS (1.2.250.1.213.1.1.4.13)",
            )
        ],
    ),
    (
        "healthcareFacilityTypeCode under another scheme",
        set_code(DOC, FACILITY, system="9.9.9"),
        [(META, ERROR, E_DOC, "healthcareFacilityTypeCode 'SA17': codingScheme '9.9.9', attendu 1.2.250.1.71.4.2.4")],
    ),
    (
        "healthcareFacilityTypeCode absent",
        drop_code(DOC, FACILITY),
        [(META, ERROR, E_DOC, "healthcareFacilityTypeCode absent")],
    ),
    (
        "practiceSettingCode under another scheme",
        set_code(DOC, PRACTICE, system="1.2.250.1.213.1.1.4.8"),
        [
            (
                META,
                ERROR,
                E_DOC,
                "practiceSettingCode 'ESSMS': codingScheme '1.2.250.1.213.1.1.4.8', attendu 1.2.250.1.213.1.1.4.9",
            )
        ],
    ),
    ("practiceSettingCode absent", drop_code(DOC, PRACTICE), [(META, ERROR, E_DOC, "practiceSettingCode absent")]),
    ("document author absent", drop_code(DOC, DOC_AUTHOR), [(META, ERROR, E_DOC, "author absent")]),
    (
        "authorPerson absent",
        set_author(DOC, DOC_AUTHOR, "authorPerson", None),
        [
            (
                META,
                ERROR,
                E_DOC,
                "authorPerson []: identifiant national de PS attendu (...^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS)",
            )
        ],
    ),
    ("authorPerson RPPS", set_author(DOC, DOC_AUTHOR, "authorPerson", PERSON[:-5] + "RPPS"), []),
    ("authorPerson ADELI", set_author(DOC, DOC_AUTHOR, "authorPerson", PERSON[:-5] + "ADELI"), []),
    ("authorPerson EI", set_author(DOC, DOC_AUTHOR, "authorPerson", PERSON[:-5] + "EI"), []),
    (
        "authorPerson of another type",
        set_author(DOC, DOC_AUTHOR, "authorPerson", PERSON[:-5] + "NIR"),
        [
            (
                META,
                ERROR,
                E_DOC,
                "authorPerson ['801234567890^DUPONT^JEAN^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^NIR']: identifiant national de PS attendu (...^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS)",
            )
        ],
    ),
    (
        "authorPerson without identifier",
        set_author(DOC, DOC_AUTHOR, "authorPerson", PERSON.split("^", 1)[1].join(("^", ""))),
        [
            (
                META,
                ERROR,
                E_DOC,
                "authorPerson ['^DUPONT^JEAN^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS']: identifiant national de PS attendu (...^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS)",
            )
        ],
    ),
    (
        "authorPerson under another OID",
        set_author(DOC, DOC_AUTHOR, "authorPerson", PERSON.replace("4.2.1", "4.2.9")),
        [
            (
                META,
                ERROR,
                E_DOC,
                "authorPerson ['801234567890^DUPONT^JEAN^^^^^^&1.2.250.1.71.4.2.9&ISO^D^^^IDNPS']: identifiant national de PS attendu (...^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS)",
            )
        ],
    ),
    (
        "authorPerson too short",
        set_author(DOC, DOC_AUTHOR, "authorPerson", "801234567890^DUPONT^JEAN^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^"),
        [
            (
                META,
                ERROR,
                E_DOC,
                "authorPerson ['801234567890^DUPONT^JEAN^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^']: identifiant national de PS attendu (...^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS)",
            )
        ],
    ),
    (
        "authorInstitution absent",
        set_author(DOC, DOC_AUTHOR, "authorInstitution", None),
        [
            (
                META,
                ERROR,
                E_DOC,
                "authorInstitution []: identifiant de structure IDNST attendu (Nom^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1<FINESS>)",
            )
        ],
    ),
    (
        "authorInstitution under another OID",
        set_author(DOC, DOC_AUTHOR, "authorInstitution", INSTITUTION.replace("4.2.2", "4.2.3")),
        [
            (
                META,
                ERROR,
                E_DOC,
                "authorInstitution ['EHPAD Les Tilleuls^^^^^&1.2.250.1.71.4.2.3&ISO^IDNST^^^1750000001']: identifiant de structure IDNST attendu (Nom^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1<FINESS>)",
            )
        ],
    ),
    (
        "authorInstitution without identifier",
        set_author(DOC, DOC_AUTHOR, "authorInstitution", INSTITUTION[:-10]),
        [
            (
                META,
                ERROR,
                E_DOC,
                "authorInstitution ['EHPAD Les Tilleuls^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^']: identifiant de structure IDNST attendu (Nom^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1<FINESS>)",
            )
        ],
    ),
    (
        "authorInstitution cut short",
        set_author(DOC, DOC_AUTHOR, "authorInstitution", "EHPAD^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^"),
        [
            (
                META,
                ERROR,
                E_DOC,
                "authorInstitution ['EHPAD^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^']: identifiant de structure IDNST attendu (Nom^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1<FINESS>)",
            )
        ],
    ),
    ("languageCode absent", set_slot(DOC, "languageCode", None), [(META, ERROR, E_DOC, "languageCode absent")]),
    (
        "sourcePatientId absent",
        set_slot(DOC, "sourcePatientId", None),
        [(META, WARNING, E_DOC, "sourcePatientId absent")],
    ),
    ("languageCode empty list", set_slot(DOC, "languageCode"), [(META, ERROR, E_DOC, "languageCode absent")]),
    # ---- the signature document (IHE DSG)
    ("signature classCode absent", drop_code(SIG, CLASS_CODE), [(META, ERROR, E_SIG, "classCode absent")]),
    (
        "signature classCode of a document",
        set_code(SIG, CLASS_CODE, "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.2"),
        [(META, ERROR, E_SIG, "document de signature: classCode urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1 attendu")],
    ),
    (
        "signature classCode under another scheme",
        set_code(SIG, CLASS_CODE, system="1.2.250.1.213.1.1.4.1"),
        [
            (
                META,
                ERROR,
                E_SIG,
                "classCode 'urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1': codingScheme '1.2.250.1.213.1.1.4.1', attendu URN",
            )
        ],
    ),
    (
        "signature formatCode absent",
        drop_code(SIG, FORMAT_CODE),
        [(META, ERROR, E_SIG, "document de signature: formatCode http://www.w3.org/2000/09/xmldsig# attendu")],
    ),
    (
        "signature formatCode of a document",
        set_code(SIG, FORMAT_CODE, "urn:ihe:iti:dsg:detached:2014"),
        [(META, ERROR, E_SIG, "document de signature: formatCode http://www.w3.org/2000/09/xmldsig# attendu")],
    ),
    ("signature author absent", drop_code(SIG, DOC_AUTHOR), [(META, ERROR, E_SIG, "author absent")]),
    (
        "signature without IDNST",
        set_author(SIG, DOC_AUTHOR, "authorInstitution", "EHPAD"),
        [
            (
                META,
                ERROR,
                E_SIG,
                "authorInstitution ['EHPAD']: identifiant de structure IDNST attendu (Nom^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1<FINESS>)",
            )
        ],
    ),
    (
        "signature creationTime absent",
        set_slot(SIG, "creationTime", None),
        [(META, ERROR, E_SIG, "creationTime absent ou mal formé (None)")],
    ),
    ("signature typeCode under another scheme is still E1762", set_code(SIG, TYPE_CODE, system="URN"), []),
    (
        "signs association absent",
        lambda root: remove(by_id(root, "A3")),
        [
            (
                META,
                ERROR,
                E_SIG,
                "association urn:ihe:iti:2007:AssociationType:signs de la signature Signature01 vers le lot SubmissionSet01 absente",
            )
        ],
    ),
    (
        "signs association to another object",
        set_attr("A3", "targetObject", DOC),
        [
            (
                META,
                ERROR,
                E_SIG,
                "association urn:ihe:iti:2007:AssociationType:signs de la signature Signature01 vers le lot SubmissionSet01 absente",
            )
        ],
    ),
    (
        "signs association from another object",
        set_attr("A3", "sourceObject", DOC),
        [
            (
                META,
                ERROR,
                E_SIG,
                "association urn:ihe:iti:2007:AssociationType:signs de la signature Signature01 vers le lot SubmissionSet01 absente",
            )
        ],
    ),
    (
        "signs association of another type",
        set_attr("A3", "associationType", RPLC),
        [
            (
                META,
                ERROR,
                E_SIG,
                "association urn:ihe:iti:2007:AssociationType:signs de la signature Signature01 vers le lot SubmissionSet01 absente",
            )
        ],
    ),
    (
        "no signature document",
        lambda root: [remove(by_id(root, i)) for i in (SIG, "A2", "A3")],
        [
            (
                META,
                ERROR,
                "",
                "document de signature absent: le lot doit contenir une signature XAdES (typeCode E1762, IHE DSG) reliée au lot par une association signs",
            )
        ],
    ),
    (
        "only the signature document",
        lambda root: [remove(by_id(root, i)) for i in (DOC, "A1")],
        [(META, ERROR, "", "aucun document (DocumentEntry hors signature) dans la soumission")],
    ),
    (
        "no DocumentEntry at all",
        lambda root: [remove(by_id(root, i)) for i in (DOC, SIG, "A1", "A2", "A3")],
        [(META, ERROR, "", "aucun document (DocumentEntry hors signature) dans la soumission")],
    ),
    # ---- structure
    (
        "two SubmissionSets",
        append(
            f'<rim:RegistryPackage id="SS2"><rim:Classification classifiedObject="SS2" classificationNode="{SS_NODE}"/></rim:RegistryPackage>'
        ),
        [
            (META, ERROR, "", "2 lot(s) de soumission (SubmissionSet), attendu 1"),
            (
                META,
                ERROR,
                E_SIG,
                "association urn:ihe:iti:2007:AssociationType:signs de la signature Signature01 vers le lot None absente",
            ),
        ],
    ),
    ("a folder is not a SubmissionSet", append('<rim:RegistryPackage id="F1"/>'), []),
    (
        "the SubmissionSet classified from inside",
        lambda root: (
            remove(root[0][1]),
            by_id(root, SS).append(
                etree.fromstring(
                    f'<rim:Classification xmlns:rim="{RIM}" classifiedObject="{SS}" classificationNode="{SS_NODE}"/>'
                )
            ),
        ),
        [],
    ),
    (
        "the SubmissionSet classification names another package",
        lambda root: root[0][1].set("classifiedObject", "F1"),
        [
            (META, ERROR, "", "0 lot(s) de soumission (SubmissionSet), attendu 1"),
            (
                META,
                ERROR,
                E_SIG,
                "association urn:ihe:iti:2007:AssociationType:signs de la signature Signature01 vers le lot None absente",
            ),
        ],
    ),
    (
        "an ExtrinsicObject of another type",
        append('<rim:ExtrinsicObject id="OD1" objectType="urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"/>'),
        [(META, ERROR, "", "ExtrinsicObject OD1: objectType 'urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248' inconnu")],
    ),
    (
        "two entries with one id",
        set_attr(SIG, "id", DOC),
        [
            (META, ERROR, "", "identifiants de DocumentEntry en double"),
            (
                META,
                ERROR,
                "Association A3",
                "association urn:ihe:iti:2007:AssociationType:signs: sourceObject 'Signature01' inconnu",
            ),
            (
                META,
                ERROR,
                E_DOC,
                "association urn:ihe:iti:2007:AssociationType:signs de la signature Document01 vers le lot SubmissionSet01 absente",
            ),
        ],
    ),
    (
        "HasMember absent",
        lambda root: remove(by_id(root, "A1")),
        [(META, ERROR, E_DOC, "DocumentEntry non rattaché au lot (association HasMember absente)")],
    ),
    (
        "HasMember from another package",
        set_attr("A1", "sourceObject", "F1"),
        [(META, ERROR, E_DOC, "DocumentEntry non rattaché au lot (association HasMember absente)")],
    ),
    (
        "HasMember to another object",
        set_attr("A1", "targetObject", "F1"),
        [(META, ERROR, E_DOC, "DocumentEntry non rattaché au lot (association HasMember absente)")],
    ),
    (
        "HasMember of another type",
        set_attr("A1", "associationType", RPLC),
        [(META, ERROR, E_DOC, "DocumentEntry non rattaché au lot (association HasMember absente)")],
    ),
    (
        "HasMember without SubmissionSetStatus",
        lambda root: remove(by_id(root, "A1")[0]),
        [(META, ERROR, "Association A1", "association HasMember sans SubmissionSetStatus=Original")],
    ),
    (
        "HasMember with another status",
        lambda root: setattr(by_id(root, "A1")[0][0][0], "text", "Reference"),
        [(META, ERROR, "Association A1", "association HasMember sans SubmissionSetStatus=Original")],
    ),
    (
        "HasMember with two statuses",
        lambda root: etree.SubElement(by_id(root, "A1")[0][0], f"{{{RIM}}}Value").__setattr__("text", "Original"),
        [(META, ERROR, "Association A1", "association HasMember sans SubmissionSetStatus=Original")],
    ),
    (
        "a replacement association from the document",
        append(_association("A4", RPLC, DOC, "urn:uuid:old", status=False)),
        [],
    ),
    (
        "an association from an unknown object",
        append(_association("A4", RPLC, "urn:uuid:x", DOC, status=False)),
        [
            (
                META,
                ERROR,
                "Association A4",
                "association urn:ihe:iti:2007:AssociationType:RPLC: sourceObject 'urn:uuid:x' inconnu",
            )
        ],
    ),
    ("an association from the SubmissionSet", append(_association("A4", RPLC, SS, "urn:uuid:old", status=False)), []),
    (
        "a HasMember from an unknown object to an unknown one",
        append(_association("A4", HAS_MEMBER, "urn:uuid:x", "urn:uuid:y", status=False)),
        [],
    ),
]


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_deviation_gives_exactly_its_findings(change: Callable, expected: list) -> None:
    assert found(read(change).findings) == expected


def test_the_signature_rules_apply_only_when_asked() -> None:
    """ITI-57 updates and XDM-like reads pass ``require_signature=False``: no signature, no "aucun document"."""
    unsigned = lambda root: [remove(by_id(root, i)) for i in (SIG, "A2", "A3")]  # noqa: E731
    assert found(read(unsigned, require_signature=False).findings) == []
    assert (
        found(read(lambda root: [remove(by_id(root, i)) for i in (DOC, "A1")], require_signature=False).findings) == []
    )
    assert found(read(set_attr("A3", "targetObject", DOC), require_signature=False).findings) == []


def test_what_is_not_a_submission_is_one_finding() -> None:
    other = etree.fromstring(f'<lcm:Other xmlns:lcm="{LCM}"/>')
    empty = etree.fromstring(f'<lcm:SubmitObjectsRequest xmlns:lcm="{LCM}"/>')
    for root, message in (
        (other, f"lcm:SubmitObjectsRequest attendu, reçu {{{LCM}}}Other"),
        (empty, "rim:RegistryObjectList absent"),
    ):
        submission = read_submission(root)
        assert (submission.submission_set, submission.entries, submission.associations) == (None, [], [])
        assert found(submission.findings) == [(META, ERROR, "", message)]
        assert not submission.ok and submission.patient is None and submission.essms is None


def test_a_warning_alone_leaves_the_submission_ok() -> None:
    submission = read(set_slot(DOC, "sourcePatientId", None))
    assert [f.severity for f in submission.findings] == [WARNING] and submission.ok
    assert not read(set_slot(DOC, "languageCode", None)).ok


@pytest.mark.parametrize(
    ("xon", "identifier"),
    [
        (INSTITUTION, "1750000001"),
        ("EHPAD^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^3750000001", "3750000001"),
        ("EHPAD^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^", None),
        ("EHPAD^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^", None),
        ("EHPAD^^^^^&1.2.250.1.71.4.2.3&ISO^IDNST^^^1750000001", None),
        ("EHPAD^^^^^&1.2.250.1.71.4.2.2&ISO^FINEG^^^1750000001", None),
        ("EHPAD^^^^^1.2.250.1.71.4.2.2^IDNST^^^1750000001", None),
    ],
)
def test_idnst_of_reads_only_an_idnst_identifier(xon: str, identifier: str | None) -> None:
    assert idnst_of(xon) == identifier


@pytest.mark.parametrize(
    ("institutions", "finess"),
    [
        ((INSTITUTION,), "750000001"),  # IDNST = "1" + FINESS
        (("EHPAD^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^3750000001",), "3750000001"),  # SIRET-like prefix: kept
        (("EHPAD^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^175000000",), "175000000"),  # 9 characters: kept
        (("EHPAD^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^17500000012",), "17500000012"),  # 11 characters: kept
        (("EHPAD", INSTITUTION), "750000001"),  # the first IDNST one
        (("EHPAD",), None),
        ((), None),
    ],
)
def test_the_finess_of_an_author(institutions: tuple[str, ...], finess: str | None) -> None:
    assert XdsAuthor((), institutions).finess == finess


def test_the_essms_is_the_first_finess_of_the_set_then_of_the_entries() -> None:
    assert read(set_author(SS, SS_AUTHOR, "authorInstitution", "EHPAD")).essms == "750000001"
    second = "Autre^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1750000002"
    assert read(set_author(DOC, DOC_AUTHOR, "authorInstitution", second)).essms == "750000001"
    both = lambda root: (  # noqa: E731
        set_author(SS, SS_AUTHOR, "authorInstitution", "EHPAD")(root),
        set_author(DOC, DOC_AUTHOR, "authorInstitution", second)(root),
    )
    assert read(both).essms == "750000002"
    nobody = lambda root: [  # noqa: E731
        set_author(obj, scheme, "authorInstitution", "EHPAD")(root)
        for obj, scheme in ((SS, SS_AUTHOR), (DOC, DOC_AUTHOR), (SIG, DOC_AUTHOR))
    ]
    assert read(nobody).essms is None


# ------------------------------------------------------------------------------------------------ value sets
SVS = "urn:ihe:iti:svs:2008"


def _svs(folder: Path, name: str, *concepts: tuple[str, str]) -> None:
    body = "".join(f'<Concept code="{c}" codeSystem="{s}" displayName="x"/>' for c, s in concepts)
    (folder / name).write_text(
        f'<RetrieveValueSetResponse xmlns="{SVS}"><ValueSet id="x"><ConceptList>{body}</ConceptList></ValueSet>'
        "</RetrieveValueSetResponse>",
        encoding="utf-8",
    )


@pytest.fixture
def value_sets(tmp_path: Path) -> ValueSets:
    """The four JDV files the module reads, each with the clean submission's code and one more."""
    _svs(
        tmp_path,
        "JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml",
        ("SA17", "1.2.250.1.71.4.2.4"),
        ("SA01", "1.2.250.1.71.4.2.4"),
    )
    _svs(
        tmp_path,
        "JDV_J04_XdsPracticeSettingCode_CISIS.xml",
        ("ESSMS", "1.2.250.1.213.1.1.4.9"),
        ("ETAB", "1.2.250.1.213.1.1.4.9"),
    )
    _svs(
        tmp_path,
        "JDV_J07_XdsTypeCode_CISIS.xml",
        ("34133-9", "2.16.840.1.113883.6.1"),
        ("11488-4", "2.16.840.1.113883.6.1"),
    )
    _svs(
        tmp_path,
        "JDV_J08_XdsConfidentialityCode_CISIS.xml",
        ("N", "2.16.840.1.113883.5.25"),
        ("R", "2.16.840.1.113883.5.25"),
        ("MASQUE_PS", "1.2.250.1.213.1.1.4.13"),
    )
    return ValueSets(tmp_path)


def _absent(label: str, code: str, scheme: str, file: str) -> tuple[str, Severity, str, str]:
    return (META, ERROR, E_DOC, f"{label} {code!r} ({scheme}) absent du jeu de valeurs {file}")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (None, []),
        (set_code(DOC, TYPE_CODE, "11488-4"), []),
        (
            set_code(DOC, TYPE_CODE, "11490-0"),
            [_absent("typeCode", "11490-0", "2.16.840.1.113883.6.1", "JDV_J07_XdsTypeCode_CISIS.xml")],
        ),
        (
            set_code(DOC, FACILITY, "SA99"),
            [
                _absent(
                    "healthcareFacilityTypeCode",
                    "SA99",
                    "1.2.250.1.71.4.2.4",
                    "JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml",
                )
            ],
        ),
        (
            set_code(DOC, PRACTICE, "AMBU"),
            [
                _absent(
                    "practiceSettingCode", "AMBU", "1.2.250.1.213.1.1.4.9", "JDV_J04_XdsPracticeSettingCode_CISIS.xml"
                )
            ],
        ),
        (set_code(DOC, CONFIDENTIALITY, "R"), []),
        (
            set_code(DOC, CONFIDENTIALITY, "V"),
            [_absent("confidentialityCode", "V", "2.16.840.1.113883.5.25", "JDV_J08_XdsConfidentialityCode_CISIS.xml")],
        ),
        (add_code(DOC, CONFIDENTIALITY, "MASQUE_PS", "1.2.250.1.213.1.1.4.13"), []),
        # outside J08 and outside the DMP's codes: reported once, for the value set
        (
            set_code(DOC, CONFIDENTIALITY, "U"),
            [
                _absent(
                    "confidentialityCode", "U", "2.16.840.1.113883.5.25", "JDV_J08_XdsConfidentialityCode_CISIS.xml"
                ),
            ],
        ),
        (
            add_code(DOC, CONFIDENTIALITY, "INVISIBLE_PATIENT", "1.2.250.1.213.1.1.4.13"),
            [
                _absent(
                    "confidentialityCode",
                    "INVISIBLE_PATIENT",
                    "1.2.250.1.213.1.1.4.13",
                    "JDV_J08_XdsConfidentialityCode_CISIS.xml",
                )
            ],
        ),
        # a code under the wrong scheme is reported once, for its scheme
        (
            set_code(DOC, FACILITY, "SA99", "9.9"),
            [(META, ERROR, E_DOC, "healthcareFacilityTypeCode 'SA99': codingScheme '9.9', attendu 1.2.250.1.71.4.2.4")],
        ),
    ],
)
def test_codes_are_checked_against_the_configured_value_sets(
    value_sets: ValueSets, change: Callable | None, expected: list
) -> None:
    assert found(read(change, value_sets=value_sets).findings) == expected


def test_a_missing_or_unreadable_value_set_checks_nothing(tmp_path: Path) -> None:
    (tmp_path / "JDV_J07_XdsTypeCode_CISIS.xml").write_text("<not xml", encoding="utf-8")
    _svs(tmp_path, "JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml", ("SA17", "1.2.250.1.71.4.2.4"))
    sets = ValueSets(tmp_path)
    assert sets.contains("type", Coded("11490-0", "2.16.840.1.113883.6.1")) is None
    assert sets.contains("practice", Coded("AMBU", "1.2.250.1.213.1.1.4.9")) is None
    assert sets.contains("facility", Coded("SA17", "1.2.250.1.71.4.2.4")) is True
    assert sets.contains("facility", Coded("SA17", "1.2.250.1.71.4.2.5")) is False
    change = lambda root: (set_code(DOC, TYPE_CODE, "11490-0")(root), set_code(DOC, PRACTICE, "AMBU")(root))  # noqa: E731
    assert found(read(change, value_sets=sets).findings) == []


def test_an_entity_bomb_value_set_is_not_read(tmp_path: Path) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        f'<RetrieveValueSetResponse xmlns="{SVS}"><Concept code="&b;" codeSystem="1.2.250.1.71.4.2.4"/>'
        "</RetrieveValueSetResponse>"
    )
    (tmp_path / "JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml").write_text(bomb, encoding="utf-8")
    assert ValueSets(tmp_path).contains("facility", Coded("a" * 100, "1.2.250.1.71.4.2.4")) is None


def test_the_value_sets_of_the_corpus_accept_the_clean_submission(corpus_dir: Path) -> None:
    """The official JDV J02 / J04 / J07 / J08 (TestContenuCDA) know the codes of the clean submission."""
    sets = ValueSets(corpus_dir / "cisis-cda" / "jeuxDeValeurs")
    assert found(read(value_sets=sets).findings) == []
    assert found(read(set_code(DOC, TYPE_CODE, "00000-0"), value_sets=sets).findings) == [
        _absent("typeCode", "00000-0", "2.16.840.1.113883.6.1", "JDV_J07_XdsTypeCode_CISIS.xml")
    ]


# ------------------------------------------------------------------------------------------------ DMP value sets
A03, A06, A09, A11 = (
    "1.2.250.1.213.1.1.4.1",
    "1.2.250.1.213.1.1.4.2.282",
    "1.2.840.10008.2.6.1",
    "1.3.6.1.4.1.19376.1.2.3",
)
#: JDV_J57_ClassCode_DMP (1.2.250.1.213.1.1.5.6, version 20230922120000), written out again: a mistyped code fails.
J57 = {(code, A03) for code in "10 11 31 42 43 44 45 52 60 90 95".split()} | {
    ("urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "URN")
}
#: JDV_J60_FormatCode_DMP (1.2.250.1.213.1.1.5.8, version 20240927120000): the TRE_A06 codes, then TRE_A11, A09, URN.
J60_A06 = """urn:ans:ci-sis:bio-ep-bio:2022 urn:ans:ci-sis:cse-mde:2023 urn:ans:ci-sis:img-da:2022 urn:ans:ci-sis:trod:2024
urn:asip:ci-sis:aunv:2013 urn:asip:ci-sis:avk:2009 urn:asip:ci-sis:cr-anest:2020 urn:asip:ci-sis:cr-cpa:2020
urn:asip:ci-sis:crgm:2018 urn:asip:ci-sis:crrtn:2013 urn:asip:ci-sis:cse-cs24:2017 urn:asip:ci-sis:cse-cs8:2017
urn:asip:ci-sis:cse-cs9:2017 urn:asip:ci-sis:d2lm-fidd:2017 urn:asip:ci-sis:d2lm-fin:2017 urn:asip:ci-sis:dci:2009
urn:asip:ci-sis:dlu:2015 urn:asip:ci-sis:dlu:2024 urn:asip:ci-sis:eunv:2013 urn:asip:ci-sis:fludr:2017
urn:asip:ci-sis:fludt:2017 urn:asip:ci-sis:fr-su:2024 urn:asip:ci-sis:frcp:2011 urn:asip:ci-sis:ft-su:2024
urn:asip:ci-sis:hr:2019 urn:asip:ci-sis:idap:2011 urn:asip:ci-sis:ldl-ees:2017 urn:asip:ci-sis:ldl-ses:2017
urn:asip:ci-sis:obp-sap:2023 urn:asip:ci-sis:obp-scm:2023 urn:asip:ci-sis:obp-sem:2023 urn:asip:ci-sis:obp-sne:2023
urn:asip:ci-sis:obp-snm:2023 urn:asip:ci-sis:pavc:2016 urn:asip:ci-sis:ppp:2023 urn:asip:ci-sis:pps-cancer:2017
urn:asip:ci-sis:pps-paerpa:2017 urn:asip:ci-sis:ppv:2009 urn:asip:ci-sis:psc:2009 urn:asip:ci-sis:sdm-mr:2017
urn:asip:ci-sis:sunv:2013 urn:asip:ci-sis:tap:2009 urn:asip:ci-sis:tlm-da:2020 urn:asip:ci-sis:vac-note:2021
urn:asip:ci-sis:vac:2019 urn:asip:ci-sis:vsm:2012 urn:asipSante:modelesHorsProfils:2011""".split()
J60_A11 = """urn:ihe:eyecare:geneyeevalcn:2014 urn:ihe:iti-fr:xds-sd:jpeg:2010 urn:ihe:iti-fr:xds-sd:rtf:2010
urn:ihe:iti-fr:xds-sd:tiff:2010 urn:ihe:iti:dsg:detached:2014 urn:ihe:iti:xds-sd:pdf:2008 urn:ihe:iti:xds-sd:text:2008
urn:ihe:lab:xd-lab:2008 urn:ihe:palm:apsr:2016 urn:ihe:pcc:ips:2020 urn:ihe:pharm:dis:2010 urn:ihe:pharm:pre:2010
urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013""".split()
J60 = (
    {(code, A06) for code in J60_A06}
    | {(code, A11) for code in J60_A11}
    | {("1.2.840.10008.5.1.4.1.1.88.59", A09), ("http://www.w3.org/2000/09/xmldsig#", "URN")}
)
#: ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS (1.2.250.1.213.1.1.4.331): templateId suffix under 1.2.250.1.213.1.1.1.
ASS_A11_A06 = {
    "5.1": "cse-cs8:2017", "5.2": "cse-cs9:2017", "5.3": "cse-cs24:2017", "8": "frcp:2011", "9": "idap:2011",
    "12.1": "obp-sap:2023", "12.2": "obp-snm:2023", "12.3": "obp-sne:2023", "12.4": "obp-scm:2023",
    "12.5": "obp-sem:2023", "13": "vsm:2012", "15": "aunv:2013", "16": "eunv:2013", "17": "sunv:2013",
    "18": "crrtn:2013", "2.1.1": "avk:2009", "2.1.2": "tap:2009", "2.1.3": "dci:2009", "2.1.4": "psc:2009",
    "2.1.5": "ppv:2009", "20": "pps-paerpa:2017", "21": "ldl-ees:2017", "22": "dlu:2015", "23": "fludt:2017",
    "24": "fludr:2017", "25": "pavc:2016", "26": "pps-cancer:2017", "27": "d2lm-fin:2017", "28": "d2lm-fidd:2017",
    "29": "ldl-ses:2017", "30": "sdm-mr:2017", "32": "crgm:2018", "36": "hr:2019", "37": "vac:2019",
    "38": "tlm-da:2020", "40": "cr-anest:2020", "41": "cr-cpa:2020", "46": "vac-note:2021", "56": "ppp:2023",
}  # fmt: skip
ASS_A11_ANS = {"5.4": "cse-mde:2023", "47": "img-da:2022", "52": "bio-ep-bio:2022"}  # urn:ans: rather than urn:asip:
ASS_A11_IHE = {
    "1.2.250.1.213.1.1.1.39": "urn:ihe:pharm:pre:2010",
    "1.2.250.1.213.1.1.1.54": "urn:ihe:pharm:dis:2010",
    "1.2.250.1.213.1.1.1.42": "urn:ihe:eyecare:geneyeevalcn:2014",
    "1.2.250.1.213.1.1.1.45": "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013",
    "1.2.250.1.213.1.1.1.55": "urn:ihe:lab:xd-lab:2008",
    "1.3.6.1.4.1.19376.1.3.3": "urn:ihe:lab:xd-lab:2008",
    "1.2.250.1.213.1.1.1.51": "urn:ihe:pcc:ips:2020",
}
ASS_A11 = (
    {f"1.2.250.1.213.1.1.1.{k}": (f"urn:asip:ci-sis:{v}", A06) for k, v in ASS_A11_A06.items()}
    | {f"1.2.250.1.213.1.1.1.{k}": (f"urn:ans:ci-sis:{v}", A06) for k, v in ASS_A11_ANS.items()}
    | {k: (v, A11) for k, v in ASS_A11_IHE.items()}
)


def test_the_dmp_value_sets_are_the_published_ones() -> None:
    assert X.JDV_J57_CLASS_CODE_DMP == J57
    assert X.JDV_J60_FORMAT_CODE_DMP == J60
    assert dict(X.ASS_A11_FORMAT_CODE) == ASS_A11
    assert {pair for pair in ASS_A11.values()} <= J60  # every formatCode a template calls for is a DMP one


@pytest.mark.parametrize("pair", sorted(J57 - {("urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "URN")}))
def test_every_j57_class_code_is_accepted_on_a_document(pair: tuple[str, str]) -> None:
    assert found(read(set_code(DOC, CLASS_CODE, *pair)).findings) == []


def test_every_j60_format_code_is_accepted_on_a_document() -> None:
    for code, scheme in sorted(J60):
        assert found(read(set_code(DOC, FORMAT_CODE, code, scheme)).findings) == [], code


@pytest.mark.parametrize(
    ("templates", "declared", "expected"),
    [
        (("1.2.250.1.213.1.1.1.22",), Coded("urn:asip:ci-sis:dlu:2015", A06), None),
        ((), Coded("urn:asip:ci-sis:dlu:2015", A06), None),
        (("2.16.840.1.113883.2.8.2.1",), Coded("urn:asip:ci-sis:dlu:2015", A06), None),  # a template of no volet
        (("1.2.250.1.213.1.1.1.22",), None, None),
        (
            ("1.2.250.1.213.1.1.1.22",),
            Coded("urn:asip:ci-sis:dlu:2024", A06),
            "formatCode 'urn:asip:ci-sis:dlu:2024' (1.2.250.1.213.1.1.4.2.282) incohérent avec le modèle du document "
            "CDA : urn:asip:ci-sis:dlu:2015 (1.2.250.1.213.1.1.4.2.282) attendu (ASS_A11-CorresModeleCDA-XdsFormatCode)",
        ),
        (
            ("1.2.250.1.213.1.1.1.22",),
            Coded("urn:asip:ci-sis:dlu:2015", A11),
            "formatCode 'urn:asip:ci-sis:dlu:2015' (1.3.6.1.4.1.19376.1.2.3) incohérent avec le modèle du document "
            "CDA : urn:asip:ci-sis:dlu:2015 (1.2.250.1.213.1.1.4.2.282) attendu (ASS_A11-CorresModeleCDA-XdsFormatCode)",
        ),
        (("1.3.6.1.4.1.19376.1.3.3", "1.2.250.1.213.1.1.1.55"), Coded("urn:ihe:lab:xd-lab:2008", A11), None),
        (
            ("1.2.250.1.213.1.1.1.23", "1.2.250.1.213.1.1.1.22"),
            Coded("urn:asip:ci-sis:dlu:2024", A06),
            "formatCode 'urn:asip:ci-sis:dlu:2024' (1.2.250.1.213.1.1.4.2.282) incohérent avec le modèle du document "
            "CDA : urn:asip:ci-sis:dlu:2015 (1.2.250.1.213.1.1.4.2.282) ou urn:asip:ci-sis:fludt:2017 "
            "(1.2.250.1.213.1.1.4.2.282) attendu (ASS_A11-CorresModeleCDA-XdsFormatCode)",
        ),
        (("1.2.250.1.213.1.1.1.23", "1.2.250.1.213.1.1.1.22"), Coded("urn:asip:ci-sis:fludt:2017", A06), None),
    ],
)
def test_the_format_code_follows_the_cda_template(
    templates: tuple[str, ...], declared: Coded | None, expected: str | None
) -> None:
    finding = format_code_finding(templates, declared, "DocumentEntry D")
    assert (None if finding is None else found([finding])) == (
        None if expected is None else [(META, ERROR, "DocumentEntry D", expected)]
    )


def test_a_concept_without_attributes_is_read_as_empty_strings(tmp_path: Path) -> None:
    (tmp_path / "JDV_J02_XdsHealthcareFacilityTypeCode_CISIS.xml").write_text(
        f'<RetrieveValueSetResponse xmlns="{SVS}"><Concept/></RetrieveValueSetResponse>', encoding="utf-8"
    )
    sets = ValueSets(tmp_path)
    assert [sets.contains("facility", Coded(c, s)) for c, s in (("", ""), ("X", ""), ("", "X"))] == [True, False, False]


def test_an_entry_built_by_hand_has_empty_metadata_and_hides_its_element() -> None:
    element = etree.Element("e")
    entry = X.XdsDocumentEntry(id="D", element=element)
    assert (entry.mime_type, entry.unique_id, entry.confidentiality, entry.authors) == ("", None, (), ())
    assert "element" not in repr(entry) and entry.is_signature is False


def test_an_entry_without_id_is_read_with_an_empty_one() -> None:
    submission = read(set_attr(DOC, "id", None))
    assert [e.id for e in submission.entries] == ["", SIG]
    assert found(submission.findings) == [
        (META, ERROR, "DocumentEntry ", "DocumentEntry non rattaché au lot (association HasMember absente)")
    ]


def test_objects_without_identifiers_are_read_with_empty_ones() -> None:
    """ebRIM attributes absent: read as "" (never None), so the rules compare them and name them as they are."""

    def anonymous(root: etree._Element) -> None:
        del by_id(root, SS).attrib["id"]
        root[0][1].set("classifiedObject", "")
        association = etree.SubElement(root[0], f"{{{RIM}}}Association")
        etree.SubElement(
            etree.SubElement(etree.SubElement(association, f"{{{RIM}}}Slot"), f"{{{RIM}}}ValueList"), f"{{{RIM}}}Value"
        )

    submission = read(anonymous)
    assert submission.submission_set.id == ""
    assert [(a.id, a.type, a.source, a.target, a.slots) for a in submission.associations[3:]] == [
        ("", "", "", "", {"": ("",)})
    ]
    # the set is now "": the HasMember of "SubmissionSet01" no longer bind the entries, nor does signs
    assert found(submission.findings) == [
        (META, ERROR, E_DOC, "DocumentEntry non rattaché au lot (association HasMember absente)"),
        (META, ERROR, E_SIG, "DocumentEntry non rattaché au lot (association HasMember absente)"),
        (META, ERROR, E_SIG, f"association {SIGNS} de la signature {SIG} vers le lot  absente"),
    ]
