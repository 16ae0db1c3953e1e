"""What the reference DUI produces: CDA documents, IHE XDM archives and MSSanté e-mails.

DUI-side builders, kept apart from the validators on purpose (the harness must not check its own output with
the code that made it). Specifications followed:
- CDA R2 header per the ANS CI-SIS "Structuration minimale" volet and the DLU-EHPAD 2022.01 model (templateId
  1.2.250.1.213.1.1.1.22, LOINC 74207-2); the body is a minimal structured narrative, not a complete DLU;
- IHE XDM (ITI-32) archive with an ebRIM 3.0 ``SubmitObjectsRequest`` (ITI TF-3 §4);
- MSSanté e-mail per the Référentiel socle MSSanté #2 (X-MSS-* headers, Subject ``XDM/1.0/DDM+``, PDF copy).

Each builder takes :class:`BuildOptions` so that the faulty DUI can switch named defects on.
"""

from __future__ import annotations

import hashlib
import io
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from lxml import etree

from harness.fields.testdata import Establishment, Person
from harness.validators import xdm as X
from harness.validators.cda import DOCUMENT_TYPES

HL7 = "urn:hl7-org:v3"
NIL = "DEV-SOCLE-HARNESS-REF"  # the reference DUI's (fictitious) X-MSS-NIL product reference


@dataclass(frozen=True)
class BuildOptions:
    """Switches used by the faulty DUI; the defaults build a conformant exchange."""

    patient_id_oid: str | None = None  # replace the INS OID in CDA and metadata (defect: wrong OID)
    mss_headers: bool = True
    codecda_override: str | None = None
    xdm_metadata: bool = True
    xdm_wrong_hash: bool = False


def _el(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{HL7}}}{tag}", {k: v for k, v in attrs.items()})


AUTHOR = ("DUPONT", "Claire", "Infirmier")  # the DUI's fictitious author (a nurse of the establishment)


#: The sections the DLU-EHPAD 2022.01 model requires (CI-SIS_DLU-EHPAD-DLU_2022.01.sch, cardinality [1..1]):
#: templateId and title; the reference DUI fills them with a narrative only.
DLU_SECTIONS = (
    ("1.3.6.1.4.1.19376.1.5.3.1.1.13.2.10", "Dispositions : établissement de santé de préférence"),
    ("1.3.6.1.4.1.19376.1.5.3.1.3.19", "Traitements"),
    ("1.3.6.1.4.1.19376.1.5.3.1.3.35", "Directives anticipées"),
    ("1.3.6.1.4.1.19376.1.7.3.1.1.13.7", "Résultats d'évènements"),
    ("1.3.6.1.4.1.19376.1.5.3.1.3.28", "Résultats d'examens : bactérie multirésistante"),
    ("1.2.250.1.213.1.1.2.37", "Documents ajoutés"),
)


def author_id(establishment: Establishment) -> str:
    """Identifiant national of the author without RPPS: ``3`` + FINESS + ``/`` + local id (IDNPS rules)."""
    return f"3{establishment.finess}/DUI-REF-001"


def build_cda(
    person: Person,
    establishment: Establishment,
    kind: str = "DLU",
    *,
    when: datetime | None = None,
    document_id: str | None = None,
    options: BuildOptions = BuildOptions(),
    set_id: str | None = None,
    version: int = 1,
    replaces: str | None = None,
    padding: int = 0,
) -> bytes:
    """A CDA R2 document of ``kind`` for ``person``, authored in ``establishment``.

    The header follows the CI-SIS Structuration minimale (realm, typeId, templateIds, author with assignedPerson,
    custodian, legalAuthenticator, documentationOf, componentOf/healthCareFacility); ``replaces`` adds the
    ``relatedDocument typeCode="RPLC"`` of a new version (same ``set_id``, ``version`` + 1); ``padding`` adds
    that many characters of narrative (benchmarks).
    """
    doc_type = DOCUMENT_TYPES[kind]
    when = when or datetime.now(UTC)
    stamp = when.strftime("%Y%m%d%H%M%S+0000")
    root = etree.Element(f"{{{HL7}}}ClinicalDocument", nsmap={None: HL7})
    _el(root, "realmCode", code="FR")
    _el(root, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    _el(root, "templateId", root="2.16.840.1.113883.2.8.2.1")
    _el(root, "templateId", root="1.2.250.1.213.1.1.1.1")
    tpl = _el(root, "templateId", root=doc_type.template_id)
    if doc_type.template_version:
        tpl.set("extension", doc_type.template_version)
    _el(root, "id", root=document_id or f"2.25.{uuid.uuid4().int}")
    _el(root, "code", code=doc_type.code, codeSystem=doc_type.code_system, displayName=doc_type.display)
    _el(root, "title").text = doc_type.title
    _el(root, "effectiveTime", value=stamp)
    _el(root, "confidentialityCode", code="N", codeSystem="2.16.840.1.113883.5.25", displayName="Normal")
    _el(root, "languageCode", code="fr-FR")
    _el(root, "setId", root=set_id or f"2.25.{uuid.uuid4().int}")
    _el(root, "versionNumber", value=str(version))
    role = _el(_el(root, "recordTarget"), "patientRole")
    _el(role, "id", root=options.patient_id_oid or person.ins.oid, extension=person.ins.value)
    _el(role, "id", root=f"1.2.250.1.999.{establishment.finess}", extension=person.id)  # local IPP
    patient = _el(role, "patient", classCode="PSN")
    name = _el(patient, "name")
    _el(name, "given", qualifier="BR").text = person.given
    _el(name, "family", qualifier="BR").text = person.family
    _el(patient, "administrativeGenderCode", code=person.sex, codeSystem="2.16.840.1.113883.5.1")
    _el(patient, "birthTime", value=person.birth_date.strftime("%Y%m%d"))
    family, given, profession = AUTHOR
    author = _el(root, "author")
    _el(author, "time", value=stamp)
    assigned = _el(author, "assignedAuthor")
    _el(assigned, "id", root="1.2.250.1.71.4.2.1", extension=author_id(establishment))
    _el(assigned, "code", code="60", codeSystem="1.2.250.1.71.1.2.7", displayName=profession)
    author_name = _el(_el(assigned, "assignedPerson"), "name")
    _el(author_name, "given").text = given
    _el(author_name, "family").text = family
    org = _el(assigned, "representedOrganization")
    _el(org, "id", root="1.2.250.1.71.4.2.2", extension=f"1{establishment.finess}")
    _el(org, "name").text = establishment.name
    custodian = _el(_el(_el(root, "custodian"), "assignedCustodian"), "representedCustodianOrganization")
    _el(custodian, "id", root="1.2.250.1.71.4.2.2", extension=f"1{establishment.finess}")
    _el(custodian, "name").text = establishment.name
    legal = _el(root, "legalAuthenticator")
    _el(legal, "time", value=stamp)
    _el(legal, "signatureCode", code="S")
    legal_entity = _el(legal, "assignedEntity")
    _el(legal_entity, "id", root="1.2.250.1.71.4.2.1", extension=author_id(establishment))
    legal_name = _el(_el(legal_entity, "assignedPerson"), "name")
    _el(legal_name, "given").text = given
    _el(legal_name, "family").text = family
    if kind == "DLU":  # DLU-EHPAD 2022.01 header: the attending physician (participant INF / PCP)
        participant = _el(root, "participant", typeCode="INF")
        _el(
            participant, "functionCode", code="PCP", codeSystem="2.16.840.1.113883.5.88", displayName="Médecin traitant"
        )
        doctor = _el(participant, "associatedEntity", classCode="PROV")
        _el(doctor, "id", root="1.2.250.1.71.4.2.1", extension="810002909371")
        doctor_name = _el(_el(doctor, "associatedPerson"), "name")
        _el(doctor_name, "given").text = "Paul"
        _el(doctor_name, "family").text = "MEDECIN"
    event = _el(_el(root, "documentationOf"), "serviceEvent", classCode="PCPR")
    if kind == "DLU":
        _el(event, "code", code="34117-2", codeSystem="2.16.840.1.113883.6.1", displayName="Histoire et clinique")
    period = _el(event, "effectiveTime")
    _el(period, "low", value=stamp)
    if replaces:
        parent = _el(_el(root, "relatedDocument", typeCode="RPLC"), "parentDocument")
        _el(parent, "id", root=replaces)
    encounter = _el(_el(root, "componentOf"), "encompassingEncounter")
    encounter_time = _el(encounter, "effectiveTime")
    _el(encounter_time, "low", value=stamp)
    facility = _el(_el(encounter, "location"), "healthCareFacility")
    _el(
        facility, "code", code="SA17", codeSystem="1.2.250.1.71.4.2.4", displayName="Etablissement pour personnes âgées"
    )
    body = _el(_el(root, "component"), "structuredBody")
    section = _el(_el(body, "component"), "section")
    _el(section, "title").text = "Motif de transfert"
    _el(section, "text").text = (
        f"Document produit par le DUI de référence pour {person.display_name}." + " Observation." * (padding // 13)
    )
    if kind == "DLU":
        for template, title in DLU_SECTIONS:
            section = _el(_el(body, "component"), "section")
            _el(section, "templateId", root=template)
            _el(section, "title").text = title
            _el(section, "text").text = "Non renseigné dans le DUI de référence."
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _slot(parent: etree._Element, name: str, *values: str) -> None:
    slot = etree.SubElement(parent, f"{{{X.RIM}}}Slot", name=name)
    value_list = etree.SubElement(slot, f"{{{X.RIM}}}ValueList")
    for value in values:
        etree.SubElement(value_list, f"{{{X.RIM}}}Value").text = value


def _name(parent: etree._Element, text: str) -> None:
    name = etree.SubElement(parent, f"{{{X.RIM}}}Name")
    etree.SubElement(name, f"{{{X.RIM}}}LocalizedString", value=text)


def _classification(parent: etree._Element, obj: str, scheme: str, code: str, system: str, label: str) -> None:
    cl = etree.SubElement(
        parent,
        f"{{{X.RIM}}}Classification",
        id=f"cl-{uuid.uuid4().hex[:12]}",
        classifiedObject=obj,
        classificationScheme=scheme,
        nodeRepresentation=code,
    )
    _slot(cl, "codingScheme", system)
    _name(cl, label)


def _external_id(parent: etree._Element, obj: str, scheme: str, value: str, label: str) -> None:
    ei = etree.SubElement(
        parent,
        f"{{{X.RIM}}}ExternalIdentifier",
        id=f"ei-{uuid.uuid4().hex[:12]}",
        registryObject=obj,
        identificationScheme=scheme,
        value=value,
    )
    _name(ei, label)


def build_metadata(
    person: Person, establishment: Establishment, kind: str, cda: bytes, *, options: BuildOptions = BuildOptions()
) -> bytes:
    """``METADATA.XML`` for one CDA document (URI ``DOC0001.XML``)."""
    doc_type = DOCUMENT_TYPES[kind]
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    patient_cx = f"{person.ins.value}^^^&{options.patient_id_oid or person.ins.oid}&ISO^NH"
    root = etree.Element(f"{{{X.LCM}}}SubmitObjectsRequest", nsmap={"lcm": X.LCM, "rim": X.RIM})
    objects = etree.SubElement(root, f"{{{X.RIM}}}RegistryObjectList")
    doc = etree.SubElement(
        objects, f"{{{X.RIM}}}ExtrinsicObject", id="Document01", mimeType="text/xml", objectType=X.DOC_ENTRY_OBJECT_TYPE
    )
    digest = hashlib.sha1(cda).hexdigest()  # noqa: S324 - the XDS hash slot is SHA-1 by definition
    if options.xdm_wrong_hash:
        digest = "0" * 40
    _slot(doc, "creationTime", now)
    _slot(doc, "hash", digest)
    _slot(doc, "size", str(len(cda)))
    _slot(doc, "URI", "DOC0001.XML")
    _slot(doc, "languageCode", "fr-FR")
    _slot(doc, "sourcePatientId", patient_cx)
    _name(doc, doc_type.display)
    _classification(doc, "Document01", X.TYPE_CODE, doc_type.code, doc_type.code_system, doc_type.display)
    _classification(
        doc, "Document01", X.FORMAT_CODE, "urn:ihe:iti:xds-sd:text:2008", "1.3.6.1.4.1.19376.1.2.3", "Document CDA"
    )
    _classification(doc, "Document01", X.CONFIDENTIALITY_CODE, "N", "2.16.840.1.113883.5.25", "Normal")
    _external_id(doc, "Document01", X.DOC_PATIENT_ID, patient_cx, "XDSDocumentEntry.patientId")
    _external_id(doc, "Document01", X.DOC_UNIQUE_ID, f"2.25.{uuid.uuid4().int}", "XDSDocumentEntry.uniqueId")
    package = etree.SubElement(objects, f"{{{X.RIM}}}RegistryPackage", id="SubmissionSet01")
    _slot(package, "submissionTime", now)
    _external_id(package, "SubmissionSet01", X.SS_PATIENT_ID, patient_cx, "XDSSubmissionSet.patientId")
    _external_id(
        package, "SubmissionSet01", X.SS_SOURCE_ID, f"1.2.250.1.999.{establishment.finess}", "XDSSubmissionSet.sourceId"
    )
    _external_id(package, "SubmissionSet01", X.SS_UNIQUE_ID, f"2.25.{uuid.uuid4().int}", "XDSSubmissionSet.uniqueId")
    etree.SubElement(
        objects,
        f"{{{X.RIM}}}Classification",
        id="cl-ss",
        classifiedObject="SubmissionSet01",
        classificationNode=X.SUBMISSION_SET_NODE,
    )
    assoc = etree.SubElement(
        objects,
        f"{{{X.RIM}}}Association",
        id="as-01",
        associationType=X.HAS_MEMBER,
        sourceObject="SubmissionSet01",
        targetObject="Document01",
    )
    _slot(assoc, "SubmissionSetStatus", "Original")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def build_xdm(
    person: Person, establishment: Establishment, kind: str, cda: bytes, *, options: BuildOptions = BuildOptions()
) -> bytes:
    """The ``IHE_XDM.ZIP`` archive: README.TXT, INDEX.HTM, IHE_XDM/SUBSET01/{METADATA.XML, DOC0001.XML}."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.TXT", f"{establishment.name}\r\nDUI de reference socle-harness 0.1\r\n")
        archive.writestr(
            "INDEX.HTM",
            "<html><body><p>" + establishment.name + '</p><a href="README.TXT">README</a>'
            '<a href="IHE_XDM/SUBSET01/DOC0001.XML">DOC0001.XML</a></body></html>',
        )
        if options.xdm_metadata:
            archive.writestr(
                "IHE_XDM/SUBSET01/METADATA.XML", build_metadata(person, establishment, kind, cda, options=options)
            )
        archive.writestr("IHE_XDM/SUBSET01/DOC0001.XML", cda)
    return buffer.getvalue()


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF carrying ``text`` (ASCII), standing in for the PDF/A copy of the document."""
    safe = text.encode("ascii", "replace").decode("ascii").replace("(", "[").replace(")", "]")
    stream = f"BT /F1 12 Tf 72 720 Td ({safe}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def build_message(
    person: Person,
    establishment: Establishment,
    sender: str,
    recipients: list[str],
    kind: str = "DLU",
    *,
    end_of_exchange: bool = False,
    options: BuildOptions = BuildOptions(),
) -> EmailMessage:
    """The MSSanté e-mail carrying the person's document as IHE_XDM.ZIP plus its PDF copy."""
    doc_type = DOCUMENT_TYPES[kind]
    cda = build_cda(person, establishment, kind, options=options)
    msg = EmailMessage()
    msg["From"] = f"{establishment.name} <{sender}>"
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "dui.test")
    msg["Subject"] = (
        f"XDM/1.0/DDM+{doc_type.display} {person.family.upper()} {person.given} {person.birth_date:%d/%m/%Y}"
    )
    msg["X-MSS-NIL"] = NIL
    if options.mss_headers:
        msg["X-MSS-CODECDA"] = options.codecda_override or doc_type.code
        msg["X-MSS-INS"] = "O"
    if end_of_exchange:
        msg["X-MSS-MES"] = "FIN"
    msg.set_content(
        f"Bonjour,\n\nVeuillez trouver ci-joint le document « {doc_type.display} » de {person.display_name}.\n"
    )
    pdf_name = f"{datetime.now(UTC):%Y%m%d}_{doc_type.display}_{person.family.upper()}_{person.given}.pdf"
    msg.add_attachment(
        minimal_pdf(f"{doc_type.title} - {person.display_name}"),
        maintype="application",
        subtype="pdf",
        filename=pdf_name,
    )
    msg.add_attachment(
        build_xdm(person, establishment, kind, cda, options=options),
        maintype="application",
        subtype="zip",
        filename="IHE_XDM.ZIP",
    )
    return msg
