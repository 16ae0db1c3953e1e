"""Example DUI, MSSanté sending: SMTP submission of an IHE XDM archive (CDA R2 documents + METADATA.XML) and
one PDF per document.

Specifications followed (this module shares no code with the reference DUI):
- RFC 6409 submission with RFC 3207 STARTTLS and RFC 4954 AUTH; RFC 5322 / RFC 2045-2049 message; a connection
  that closes after the end of DATA and before its reply leaves the delivery unknown (RFC 5321 §4.5.3.2.6);
  treated as a 451 (§3.8), the same message (same Message-ID, RFC 5322 §3.6.4) is submitted once more;
- ANS DST MSSanté v1.7 / Référentiel socle MSSanté #2: one person per message, ``IHE_XDM.ZIP`` plus the PDF of
  each document, Subject ``XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>``, ``X-MSS-CODECDA`` (the
  CDA ``code/@code`` values, comma-separated when there are several documents), ``X-MSS-INS`` (``O``: the
  documents carry an INS), ``X-MSS-NIL``; ``X-MSS-MES: FIN`` when no reply is expected (Mon espace santé);
- the person's Mon espace santé mailbox is ``<matricule INS>@patient.mssante.fr``;
- IHE ITI TF-1 §16 / TF-2b §3.32 (XDM, ZIP over e-mail): ``README.TXT``, ``INDEX.HTM``,
  ``IHE_XDM/SUBSET01/METADATA.XML`` (ebRIM 3.0 ``SubmitObjectsRequest``, ITI TF-3 §4) and the documents;
- HL7 CDA R2 with the ANS CI-SIS header ("Structuration minimale des documents de santé"): realm FR, HL7 France
  and CI-SIS header templateIds, the volet's templateId, INS in ``recordTarget``, author, custodian,
  legalAuthenticator, documentationOf, componentOf/healthCareFacility (JDV_J02 codes); the unstructured
  document "DOC-NS" is a CDA R2 level 1 (IHE XDS-SD, templateId 1.3.6.1.4.1.19376.1.2.20) whose
  ``nonXMLBody`` carries the PDF.
"""

from __future__ import annotations

import base64
import hashlib
import io
import smtplib
import ssl
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from example_dui import Outcome, Session

LOINC = "2.16.840.1.113883.6.1"


@dataclass(frozen=True)
class Kind:
    """A document model of the CI-SIS: LOINC (or TRE_A05) code, label, the volet's templateId and version."""

    code: str
    system: str
    label: str
    template: str
    version: str | None
    structured: bool = True


DOCUMENTS = {
    "DLU": Kind("74207-2", LOINC, "Dossier de liaison d'urgence", "1.2.250.1.213.1.1.1.22", "2022.01"),
    "VSM": Kind("SYNTH", "1.2.250.1.213.1.1.4.12", "Synthèse", "1.2.250.1.213.1.1.1.13", "201310"),
    "LDL-SES": Kind(
        "11490-0",
        LOINC,
        "Lettre de liaison à la sortie d'un établissement de soins",
        "1.2.250.1.213.1.1.1.29",
        "2022.01",
    ),
    "VAC": Kind("11369-6", LOINC, "Historique de vaccinations", "1.2.250.1.213.1.1.1.37", "2023.01"),
    # CDA R2 level 1: the PDF is the body (IHE XDS-SD)
    "DOC-NS": Kind(
        "11488-4", LOINC, "Compte rendu de consultation", "1.3.6.1.4.1.19376.1.2.20", None, structured=False
    ),
}
#: healthcareFacilityTypeCode (JDV_J02, TRE_R02 secteur d'activité) by ESSMS category
FACILITY = {
    "EHPAD": ("SA17", "Etablissement pour personnes âgées"),
    "SSIAD": ("SA17", "Etablissement pour personnes âgées"),
}
OTHER_FACILITY = ("SA41", "Autre établissement du domaine social ou médico-social")
XDS = {  # ebRIM identifiers of ITI TF-3 §4.2
    "entry": "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1",
    "ss": "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd",
    "doc_pid": "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427",
    "doc_uid": "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab",
    "ss_pid": "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446",
    "ss_uid": "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8",
    "ss_src": "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832",
    "type": "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983",
    "format": "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
}
NIL = "EXEMPLE-DUI-1.0"


def patient_mailbox(person: dict[str, Any]) -> str:
    """The person's Mon espace santé mailbox: ``<matricule INS>@patient.mssante.fr``."""
    return person.get("patient_mailbox") or f"{person['ins']}@patient.mssante.fr"


def mssante_send(session: Session, body: dict[str, Any]) -> Outcome:
    """SMTP submission (STARTTLS, AUTH) of the person's documents, as one IHE XDM archive plus their PDF."""
    person, establishment = body["person"], body["establishment"]
    recipients = [patient_mailbox(person) if r == "patient" else r for r in body["recipients"]]
    kinds = [body["document_kind"], *body.get("extra_kinds", [])]
    unknown = [k for k in kinds if k not in DOCUMENTS]
    if unknown:
        return {"status": "failed", "detail": f"type de document non géré par ce DUI: {', '.join(unknown)}"}
    sender = establishment["dui_mailbox"]
    message = build_message(
        person, establishment, sender, recipients, kinds, end_of_exchange=body.get("end_of_exchange", False)
    )
    failure = submit(session, message, sender, recipients)
    if failure:
        return {"status": "failed", "detail": failure}
    return {
        "status": "done",
        "detail": f"message envoyé à {', '.join(recipients)}",
        "data": {"message_id": message["Message-ID"]},
    }


ACTIONS = {"mssante-send": mssante_send}


class ReplyLost(Exception):
    """The server closed the connection after the end of DATA, before its reply."""


class Submission(smtplib.SMTP):
    """smtplib's client, noting when the end of the DATA (``<CRLF>.<CRLF>``, RFC 5321 §4.1.1.4) was sent."""

    data_ended = False

    def send(self, s: bytes | str) -> None:
        super().send(s)
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.data_ended = True


def submit(
    session: Session,
    message: Message,
    sender: str,
    recipients: list[str],
    *,
    certificate: str | None = None,
    envelope_sender: str | None = None,
) -> str | None:
    """Submit ``message`` (RFC 6409): STARTTLS, then AUTH PLAIN with the mailbox password, or AUTH EXTERNAL
    (RFC 4422 appendix A) with the organisation certificate presented in TLS; ``envelope_sender`` ``""`` sends
    ``MAIL FROM:<>`` (read receipts, RFC 8098 §3). Returns the French reason of a refusal, ``None`` when every
    recipient was accepted. A reply lost after the end of DATA: the same message is submitted once more."""
    for _ in range(2):
        try:
            return submit_once(session, message, sender, recipients, certificate, envelope_sender)
        except ReplyLost:
            continue
    return "envoi incertain: connexion coupée deux fois après la fin du DATA, avant la réponse du serveur"


def submit_once(
    session: Session,
    message: Message,
    sender: str,
    recipients: list[str],
    certificate: str | None,
    envelope_sender: str | None,
) -> str | None:
    """One SMTP session of :func:`submit`; raises :class:`ReplyLost` when the reply to the DATA never came."""
    host, _, port = session.endpoint("mssante", "smtp").rpartition(":")
    smtp: Submission | None = None
    try:
        with Submission(host.strip("[]"), int(port), timeout=30) as smtp:
            smtp.starttls(context=session.ssl_context(certificate))
            if certificate:
                smtp.ehlo()
                smtp.auth("EXTERNAL", lambda challenge=None: sender)
            else:
                smtp.login(sender, session.body["credentials"][sender])
            envelope = sender if envelope_sender is None else envelope_sender
            refused = smtp.send_message(message, from_addr=envelope, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        return "destinataire(s) refusé(s): " + "; ".join(
            f"{a} ({c} {_text(t)})" for a, (c, t) in exc.recipients.items()
        )
    except smtplib.SMTPResponseException as exc:
        return f"refus du serveur MSSanté: {exc.smtp_code} {_text(exc.smtp_error)}"
    except KeyError as exc:
        return f"identifiant MSSanté absent de la session (mot de passe ou certificat): {exc}"
    except smtplib.SMTPServerDisconnected as exc:
        if smtp is not None and smtp.data_ended and not isinstance(exc.__context__, TimeoutError):
            raise ReplyLost from exc
        return f"serveur MSSanté injoignable: {exc}"
    except (OSError, ssl.SSLError, smtplib.SMTPException) as exc:
        return f"serveur MSSanté injoignable: {exc}"
    if refused:
        return "destinataire(s) refusé(s): " + "; ".join(f"{a} ({c} {_text(t)})" for a, (c, t) in refused.items())
    return None


def _text(value: bytes | str) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


# -- documents --------------------------------------------------------------------------------------------------
def minimal_pdf(text: str) -> bytes:
    """A one-page PDF 1.4 (ISO 32000-1 §7.5: header, objects, cross-reference table, trailer) showing ``text``."""
    line = text.encode("latin-1", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    stream = b"BT /F1 12 Tf 50 780 Td (" + line + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _oid() -> str:
    return f"2.25.{uuid.uuid4().int}"  # ITU-T X.667 UUID-based OID


def source_id(establishment: dict[str, Any]) -> str:
    """The stable OID of this DUI instance for the establishment (XDSSubmissionSet.sourceId), UUID-based."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, 'example-dui.' + establishment['finess']).int}"


def build_cda(person: dict[str, Any], establishment: dict[str, Any], kind: str, pdf: bytes) -> bytes:
    """The CDA R2 document of ``kind`` for the person, authored by the DUI for the establishment."""
    doc = DOCUMENTS[kind]
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    structure = f'<id root="1.2.250.1.71.4.2.2" extension="1{escape(establishment["finess"])}"/>'
    org = f"{structure}<name>{escape(establishment['name'])}</name>"
    version = f" extension={quoteattr(doc.version)}" if doc.version else ""
    facility = FACILITY.get(establishment.get("category", ""), OTHER_FACILITY)
    if doc.structured:
        body = (
            '<structuredBody><component><section><code code="34117-2" codeSystem="2.16.840.1.113883.6.1" '
            'displayName="Historique et clinique"/><title>Informations transmises</title>'
            f"<text>{escape(doc.label)} de {escape(person['given'])} {escape(person['family'])}.</text>"
            "</section></component></structuredBody>"
        )
    else:
        body = f'<nonXMLBody><text mediaType="application/pdf" representation="B64">{base64.b64encode(pdf).decode()}</text></nonXMLBody>'
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.2.8.2.1"/>
  <templateId root="1.2.250.1.213.1.1.1.1"/>
  <templateId root="{doc.template}"{version}/>
  <id root="{_oid()}"/>
  <code code="{doc.code}" codeSystem="{doc.system}" displayName={quoteattr(doc.label)}/>
  <title>{escape(doc.label)}</title>
  <effectiveTime value="{now}"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25" displayName="Normal"/>
  <languageCode code="fr-FR"/>
  <setId root="{_oid()}"/>
  <versionNumber value="1"/>
  <recordTarget><patientRole>
    <id root={quoteattr(person["ins_oid"])} extension={quoteattr(person["ins"])}/>
    <patient classCode="PSN">
      <name><given qualifier="BR">{escape(person["given"])}</given><family qualifier="BR">{escape(person["family"])}</family></name>
      <administrativeGenderCode code={quoteattr(person["sex"])} codeSystem="2.16.840.1.113883.5.1"/>
      <birthTime value="{person["birth_date"].replace("-", "")}"/>
    </patient>
  </patientRole></recordTarget>
  <author><time value="{now}"/><assignedAuthor>{structure}
    <assignedAuthoringDevice><manufacturerModelName>Exemple de DUI</manufacturerModelName><softwareName>{NIL}</softwareName></assignedAuthoringDevice>
    <representedOrganization>{org}</representedOrganization>
  </assignedAuthor></author>
  <custodian><assignedCustodian><representedCustodianOrganization>{org}</representedCustodianOrganization></assignedCustodian></custodian>
  <legalAuthenticator><time value="{now}"/><signatureCode code="S"/>
    <assignedEntity>{structure}<representedOrganization>{org}</representedOrganization></assignedEntity>
  </legalAuthenticator>
  <documentationOf><serviceEvent><effectiveTime><low value="{now}"/></effectiveTime></serviceEvent></documentationOf>
  <componentOf><encompassingEncounter><effectiveTime><low value="{now}"/></effectiveTime>
    <location><healthCareFacility>
      <code code="{facility[0]}" codeSystem="1.2.250.1.71.4.2.4" displayName={quoteattr(facility[1])}/>
    </healthCareFacility></location>
  </encompassingEncounter></componentOf>
  <component>{body}</component>
</ClinicalDocument>
""".encode()


def _slot(name: str, value: str) -> str:
    return f'<rim:Slot name="{name}"><rim:ValueList><rim:Value>{escape(value)}</rim:Value></rim:ValueList></rim:Slot>'


def _ext_id(obj: str, scheme: str, value: str) -> str:
    return f'<rim:ExternalIdentifier id="ei-{uuid.uuid4().hex[:8]}" registryObject="{obj}" identificationScheme="{scheme}" value={quoteattr(value)}/>'


def _classification(obj: str, scheme: str, code: str, system: str, label: str) -> str:
    return (
        f'<rim:Classification id="cl-{uuid.uuid4().hex[:8]}" classifiedObject="{obj}" classificationScheme="{scheme}" '
        f"nodeRepresentation={quoteattr(code)}>{_slot('codingScheme', system)}"
        f"<rim:Name><rim:LocalizedString value={quoteattr(label)}/></rim:Name></rim:Classification>"
    )


def build_metadata(person: dict[str, Any], establishment: dict[str, Any], documents: list[tuple[str, bytes]]) -> bytes:
    """``METADATA.XML``: one submission set, one DocumentEntry per ``(kind, cda)`` (URI ``DOC000n.XML``)."""
    pid = f"{person['ins']}^^^&{person['ins_oid']}&ISO^NH"  # CX of the INS, as the CI-SIS requires
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    entries, members = [], []
    for n, (kind, cda) in enumerate(documents, start=1):
        doc, obj = DOCUMENTS[kind], f"Document{n:02d}"
        fmt = "urn:ihe:iti:xds-sd:pdf:2008" if not doc.structured else "urn:ihe:iti:xds-sd:text:2008"
        entries.append(
            f'<rim:ExtrinsicObject id="{obj}" mimeType="text/xml" objectType="{XDS["entry"]}">'
            f"{_slot('creationTime', now)}{_slot('hash', hashlib.sha1(cda).hexdigest())}{_slot('size', str(len(cda)))}"
            f"{_slot('URI', f'DOC{n:04d}.XML')}{_slot('languageCode', 'fr-FR')}{_slot('sourcePatientId', pid)}"
            f"{_classification(obj, XDS['type'], doc.code, doc.system, doc.label)}"
            f"{_classification(obj, XDS['format'], fmt, '1.3.6.1.4.1.19376.1.2.3', 'Document CDA')}"
            f"{_ext_id(obj, XDS['doc_pid'], pid)}{_ext_id(obj, XDS['doc_uid'], _oid())}</rim:ExtrinsicObject>"
        )
        members.append(
            f'<rim:Association id="as-{n:02d}" associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember" '
            f'sourceObject="SubmissionSet01" targetObject="{obj}">{_slot("SubmissionSetStatus", "Original")}</rim:Association>'
        )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
 <rim:RegistryObjectList>
  {"".join(entries)}
  <rim:RegistryPackage id="SubmissionSet01">{_slot("submissionTime", now)}
   {_ext_id("SubmissionSet01", XDS["ss_pid"], pid)}{_ext_id("SubmissionSet01", XDS["ss_uid"], _oid())}
   {_ext_id("SubmissionSet01", XDS["ss_src"], source_id(establishment))}
  </rim:RegistryPackage>
  <rim:Classification id="cl-ss" classifiedObject="SubmissionSet01" classificationNode="{XDS["ss"]}"/>
  {"".join(members)}
 </rim:RegistryObjectList>
</lcm:SubmitObjectsRequest>
""".encode()


def build_xdm(person: dict[str, Any], establishment: dict[str, Any], documents: list[tuple[str, bytes]]) -> bytes:
    """``IHE_XDM.ZIP`` (ITI-32 ZIP over e-mail): README.TXT, INDEX.HTM, IHE_XDM/SUBSET01/{METADATA.XML, DOC000n.XML}."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.TXT", f"{establishment['name']}\r\nExemple de DUI ({NIL})\r\n")
        links = "".join(
            f"<li><a href='IHE_XDM/SUBSET01/DOC{n:04d}.XML'>{escape(DOCUMENTS[k].label)}</a></li>"
            for n, (k, _) in enumerate(documents, start=1)
        )
        z.writestr("INDEX.HTM", f"<html><body><a href='README.TXT'>README</a><ul>{links}</ul></body></html>")
        z.writestr("IHE_XDM/SUBSET01/METADATA.XML", build_metadata(person, establishment, documents))
        for n, (_, cda) in enumerate(documents, start=1):
            z.writestr(f"IHE_XDM/SUBSET01/DOC{n:04d}.XML", cda)
    return archive.getvalue()


def build_message(
    person: dict[str, Any],
    establishment: dict[str, Any],
    sender: str,
    recipients: list[str],
    kinds: list[str],
    *,
    end_of_exchange: bool = False,
) -> EmailMessage:
    """The MSSanté e-mail: body, one PDF per document, the IHE_XDM.ZIP, the X-MSS-* headers."""
    birth = datetime.strptime(person["birth_date"], "%Y-%m-%d").strftime("%d/%m/%Y")
    who = f"{person['family'].upper()} {person['given']} {birth}"
    pdfs = {kind: minimal_pdf(f"{DOCUMENTS[kind].label} - {person['family']} {person['given']}") for kind in kinds}
    documents = [(kind, build_cda(person, establishment, kind, pdfs[kind])) for kind in kinds]
    label = DOCUMENTS[kinds[0]].label if len(kinds) == 1 else f"{len(kinds)} documents"
    msg = EmailMessage()
    msg["From"] = formataddr((establishment["name"], sender))
    msg["To"] = ", ".join(recipients)
    msg["Date"], msg["Message-ID"] = format_datetime(datetime.now(UTC)), make_msgid(domain=sender.rpartition("@")[2])
    msg["Subject"] = f"XDM/1.0/DDM+{label} {who}"
    msg["X-MSS-CODECDA"] = ",".join(DOCUMENTS[k].code for k in kinds)
    msg["X-MSS-INS"] = "O"  # every document carries the person's INS in recordTarget
    msg["X-MSS-NIL"] = NIL
    if end_of_exchange:
        msg["X-MSS-MES"] = "FIN"
    msg.set_content(
        f"Bonjour,\n\nVeuillez trouver ci-joint : {', '.join(DOCUMENTS[k].label for k in kinds)} de {who}.\n"
    )
    for kind in kinds:
        msg.add_attachment(
            pdfs[kind],
            maintype="application",
            subtype="pdf",
            filename=f"{DOCUMENTS[kind].label} {person['family'].upper()}.pdf",
        )
    msg.add_attachment(
        build_xdm(person, establishment, documents), maintype="application", subtype="zip", filename="IHE_XDM.ZIP"
    )
    return msg
