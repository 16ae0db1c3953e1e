"""MSSanté messages beyond the one-document e-mail of :mod:`harness.sut.documents` (DUI and partner side).

- several CDA documents of one person in one ``IHE_XDM.ZIP`` (one submission set, one PDF per document,
  ``X-MSS-CODECDA`` multi-valued comma-separated — the separator is second-hand, see docs/specs);
- an unstructured document: CDA R2 level 1 (IHE XDS-SD, templateId ``1.3.6.1.4.1.19376.1.2.20``) whose
  ``nonXMLBody`` carries the PDF (formatCode ``urn:ihe:iti:xds-sd:pdf:2008``);
- the message a partner professional sends to the DUI, asking for a read receipt (``Disposition-Notification-To``);
- the DUI's MDN (RFC 8098) in the ANS volet's form (v1.1.3: the original returned as ``message/rfc822``).

Builders only: the harness judges these messages with :mod:`harness.validators`, never with this code.
"""

from __future__ import annotations

import base64
import hashlib
import io
import unicodedata
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.utils import format_datetime, formataddr, make_msgid

from lxml import etree

from harness.fields.testdata import Establishment, Person
from harness.fields.xmlsafe import parse_xml
from harness.sut.documents import (
    HL7,
    NIL,
    BuildOptions,
    _classification,
    _external_id,
    _name,
    _slot,
    build_cda,
    minimal_pdf,
)
from harness.validators import xdm as X
from harness.validators.cda import DOCUMENT_TYPES, LOINC, DocumentType

#: The unstructured document kind (CDA R2 level 1 with a PDF body).
UNSTRUCTURED = "DOC-NS"
UNSTRUCTURED_TYPE = DocumentType(
    UNSTRUCTURED,
    "11488-4",
    LOINC,
    "Compte rendu de consultation",
    "1.3.6.1.4.1.19376.1.2.20",
    None,
    "COMPTE RENDU DE CONSULTATION",
)
FORMAT_N3 = "urn:ihe:iti:xds-sd:text:2008"
FORMAT_N1 = "urn:ihe:iti:xds-sd:pdf:2008"
KO_PREFIX = "[KO Intégration système !]"


def document_type(kind: str) -> DocumentType:
    return UNSTRUCTURED_TYPE if kind == UNSTRUCTURED else DOCUMENT_TYPES[kind]


@dataclass(frozen=True)
class Document:
    kind: str
    cda: bytes
    pdf: bytes
    format_code: str

    @property
    def type(self) -> DocumentType:
        return document_type(self.kind)


def build_unstructured_cda(
    person: Person, establishment: Establishment, pdf: bytes, *, options: BuildOptions = BuildOptions()
) -> bytes:
    """A CDA R2 level 1 document: the structured header of :func:`build_cda`, a ``nonXMLBody`` with the PDF."""
    root = parse_xml(build_cda(person, establishment, "DLU", options=options))
    ns = {"h": HL7}
    dlu = DOCUMENT_TYPES["DLU"]
    for tpl in root.findall("h:templateId", ns):
        if tpl.get("root") == dlu.template_id:
            tpl.attrib.clear()
            tpl.set("root", UNSTRUCTURED_TYPE.template_id)
    code = root.find("h:code", ns)
    code.attrib.update(
        {
            "code": UNSTRUCTURED_TYPE.code,
            "codeSystem": UNSTRUCTURED_TYPE.code_system,
            "displayName": UNSTRUCTURED_TYPE.display,
        }
    )
    root.find("h:title", ns).text = UNSTRUCTURED_TYPE.title
    component = root.find("h:component", ns)
    for child in list(component):
        component.remove(child)
    body = etree.SubElement(component, f"{{{HL7}}}nonXMLBody")
    text = etree.SubElement(body, f"{{{HL7}}}text", mediaType="application/pdf", representation="B64")
    text.text = base64.b64encode(pdf).decode("ascii")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def build_documents(
    person: Person, establishment: Establishment, kinds: tuple[str, ...], *, options: BuildOptions = BuildOptions()
) -> list[Document]:
    docs = []
    for kind in kinds:
        doc_type = document_type(kind)
        pdf = minimal_pdf(f"{doc_type.title} - {person.display_name}")
        if kind == UNSTRUCTURED:
            docs.append(
                Document(kind, build_unstructured_cda(person, establishment, pdf, options=options), pdf, FORMAT_N1)
            )
        else:
            docs.append(Document(kind, build_cda(person, establishment, kind, options=options), pdf, FORMAT_N3))
    return docs


def build_metadata(
    person: Person, establishment: Establishment, docs: list[Document], *, options: BuildOptions = BuildOptions()
) -> bytes:
    """``METADATA.XML`` for one submission set holding ``docs`` (URIs ``DOC0001.XML``, ``DOC0002.XML``...)."""
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    patient_cx = f"{person.ins.value}^^^&{options.patient_id_oid or person.ins.oid}&ISO^NH"
    root = etree.Element(f"{{{X.LCM}}}SubmitObjectsRequest", nsmap={"lcm": X.LCM, "rim": X.RIM})
    objects = etree.SubElement(root, f"{{{X.RIM}}}RegistryObjectList")
    for index, doc in enumerate(docs, start=1):
        oid = f"Document{index:02d}"
        entry = etree.SubElement(
            objects, f"{{{X.RIM}}}ExtrinsicObject", id=oid, mimeType="text/xml", objectType=X.DOC_ENTRY_OBJECT_TYPE
        )
        digest = "0" * 40 if options.xdm_wrong_hash else hashlib.sha1(doc.cda).hexdigest()  # noqa: S324 - XDS hash is SHA-1
        _slot(entry, "creationTime", now)
        _slot(entry, "hash", digest)
        _slot(entry, "size", str(len(doc.cda)))
        _slot(entry, "URI", f"DOC{index:04d}.XML")
        _slot(entry, "languageCode", "fr-FR")
        _slot(entry, "sourcePatientId", patient_cx)
        _name(entry, doc.type.display)
        _classification(entry, oid, X.TYPE_CODE, doc.type.code, doc.type.code_system, doc.type.display)
        _classification(entry, oid, X.FORMAT_CODE, doc.format_code, "1.3.6.1.4.1.19376.1.2.3", "Document CDA")
        _classification(entry, oid, X.CONFIDENTIALITY_CODE, "N", "2.16.840.1.113883.5.25", "Normal")
        _external_id(entry, oid, X.DOC_PATIENT_ID, patient_cx, "XDSDocumentEntry.patientId")
        _external_id(entry, oid, X.DOC_UNIQUE_ID, f"2.25.{uuid.uuid4().int}", "XDSDocumentEntry.uniqueId")
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
    for index in range(1, len(docs) + 1):
        assoc = etree.SubElement(
            objects,
            f"{{{X.RIM}}}Association",
            id=f"as-{index:02d}",
            associationType=X.HAS_MEMBER,
            sourceObject="SubmissionSet01",
            targetObject=f"Document{index:02d}",
        )
        _slot(assoc, "SubmissionSetStatus", "Original")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def build_xdm(
    person: Person, establishment: Establishment, docs: list[Document], *, options: BuildOptions = BuildOptions()
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.TXT", f"{establishment.name}\r\nDUI de reference socle-harness 0.1\r\n")
        links = "".join(
            f'<a href="IHE_XDM/SUBSET01/DOC{i:04d}.XML">DOC{i:04d}.XML</a>' for i in range(1, len(docs) + 1)
        )
        archive.writestr(
            "INDEX.HTM", f'<html><body><p>{establishment.name}</p><a href="README.TXT">README</a>{links}</body></html>'
        )
        if options.xdm_metadata:
            archive.writestr(
                "IHE_XDM/SUBSET01/METADATA.XML", build_metadata(person, establishment, docs, options=options)
            )
        for index, doc in enumerate(docs, start=1):
            archive.writestr(f"IHE_XDM/SUBSET01/DOC{index:04d}.XML", doc.cda)
    return buffer.getvalue()


def build_message(
    person: Person,
    establishment: Establishment,
    sender: str,
    recipients: list[str],
    kinds: tuple[str, ...],
    *,
    end_of_exchange: bool = False,
    options: BuildOptions = BuildOptions(),
    sender_name: str | None = None,
    read_receipt_to: str | None = None,
) -> EmailMessage:
    """The MSSanté e-mail carrying ``kinds`` documents of one person (XDM + one PDF per document)."""
    docs = build_documents(person, establishment, kinds, options=options)
    first = docs[0].type
    label = first.display if len(docs) == 1 else f"{len(docs)} documents"
    msg = EmailMessage()
    msg["From"] = formataddr((sender_name or establishment.name, sender))
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "dui.test")
    msg["Subject"] = f"XDM/1.0/DDM+{label} {person.family.upper()} {person.given} {person.birth_date:%d/%m/%Y}"
    msg["X-MSS-NIL"] = NIL
    if options.mss_headers:
        msg["X-MSS-CODECDA"] = options.codecda_override or ",".join(d.type.code for d in docs)
        msg["X-MSS-INS"] = "O"
    if end_of_exchange:
        msg["X-MSS-MES"] = "FIN"
    if read_receipt_to:
        msg["Disposition-Notification-To"] = read_receipt_to
    names = ", ".join(f"« {d.type.display} »" for d in docs)
    msg.set_content(f"Bonjour,\n\nVeuillez trouver ci-joint {names} de {person.display_name}.\n")
    day = datetime.now(UTC).strftime("%Y%m%d")
    for doc in docs:
        msg.add_attachment(
            doc.pdf,
            maintype="application",
            subtype="pdf",
            filename=f"{day}_{doc.type.display}_{person.family.upper()}_{person.given}.pdf",
        )
    msg.add_attachment(
        build_xdm(person, establishment, docs, options=options),
        maintype="application",
        subtype="zip",
        filename="IHE_XDM.ZIP",
    )
    return msg


@dataclass(frozen=True)
class MdnOptions:
    """Switches of the faulty DUI for the receipts it returns."""

    original_message_id: bool = True
    ko_subject: bool = True
    legacy_error_form: bool = (
        False  # v1.1.2 ``processed/Error: code^label`` instead of v1.1.3 ``processed/error`` + ``Error:``
    )


def build_mdn(
    original: bytes,
    *,
    reporter: str,
    reporter_name: str,
    error: tuple[str, str] | None = None,
    options: MdnOptions = MdnOptions(),
) -> Message:
    """The MDN for a received message (RFC 8098, ANS volet): ``processed`` or ``processed/error`` with the code."""
    parsed = BytesParser(policy=policy.compat32).parsebytes(original)
    subject = " ".join(str(parsed.get("Subject", "")).split())
    original_id = str(parsed.get("Message-ID", "")).strip()
    notify_to = str(parsed.get("Disposition-Notification-To", "")).strip()
    report = MIMEMultipart("report", report_type="disposition-notification")
    report["From"] = formataddr((reporter_name, reporter))
    report["To"] = notify_to
    report["Date"] = format_datetime(datetime.now(UTC))
    report["Message-ID"] = make_msgid(domain=reporter.rpartition("@")[2] or "dui.test")
    if error is None:
        report["Subject"] = subject
        text = "Le document a été intégré dans le dossier de la personne.\n"
        disposition = "automatic-action/MDN-sent-automatically; processed"
        error_field = None
    else:
        code, label = error
        # message/disposition-notification fields are US-ASCII (RFC 8098 §3.1): the label loses its accents there
        label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode("ascii")
        report["Subject"] = (f"{KO_PREFIX}[{code}] " if options.ko_subject else "") + subject
        text = f"Le document n'a pas pu être intégré: erreur {code} ({error[1]}).\n"
        if options.legacy_error_form:
            disposition, error_field = f"automatic-action/MDN-sent-automatically; processed/Error: {code}^{label}", None
        else:
            disposition, error_field = (
                "automatic-action/MDN-sent-automatically; processed/error",
                f"{code}^{label}^applicationErrorCondition",
            )
    report.attach(MIMEText(text, "plain", "utf-8"))
    fields = [
        "Reporting-UA: dui-reference.test; socle-harness DUI de reference",
        f"Original-Recipient: rfc822;{reporter}",
        f"Final-Recipient: rfc822;{reporter}",
    ]
    if options.original_message_id and original_id:
        fields.append(f"Original-Message-ID: {original_id}")
    fields.append(f"Disposition: {disposition}")
    if error_field:
        fields.append(f"Error: {error_field}")
    notification = MIMEBase("message", "disposition-notification")
    notification.set_payload(("\r\n".join(fields) + "\r\n").encode("utf-8"))
    notification["Content-Transfer-Encoding"] = "8bit"
    report.attach(notification)
    report.attach(MIMEMessage(parsed))
    return report
