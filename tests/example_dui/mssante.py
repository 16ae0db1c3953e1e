"""Example DUI, MSSanté sending: SMTP submission of an IHE XDM archive (CDA R2 + METADATA.XML) and its PDF.

Follows the DST MSSanté v1.7 (X-MSS-* headers, XDM/1.0/DDM subject) and IHE ITI TF-1 XDM; shares no code with
the reference DUI.
"""

from __future__ import annotations

import hashlib
import io
import smtplib
import uuid
import zipfile
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from example_dui import Outcome, Session

DOCUMENTS = {"DLU": ("74207-2", "2.16.840.1.113883.6.1", "Dossier de liaison d'urgence", "1.2.250.1.213.1.1.1.22", "2022.01")}
XDS = {
    "entry": "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1", "ss": "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd",
    "doc_pid": "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427", "doc_uid": "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab",
    "ss_pid": "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446", "ss_uid": "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8",
    "ss_src": "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832", "type": "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983",
}


def mssante_send(session: Session, body: dict[str, Any]) -> Outcome:
    """SMTP submission (STARTTLS, AUTH) of one document of the person, as an IHE XDM archive plus its PDF."""
    person, establishment = body["person"], body["establishment"]
    recipients = [person["patient_mailbox"] or f"{person['ins']}@patient.mssante.fr" if r == "patient" else r
                  for r in body["recipients"]]
    sender = establishment["dui_mailbox"]
    message = build_message(person, establishment, sender, recipients, body["document_kind"])
    host, _, port = session.endpoint("mssante", "smtp").rpartition(":")
    try:
        with smtplib.SMTP(host, int(port), timeout=20) as smtp:
            smtp.starttls(context=session.ssl_context())
            smtp.login(sender, session.body["credentials"][sender])
            smtp.send_message(message, from_addr=sender, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        return {"status": "failed", "detail": f"destinataire refusé: {list(exc.recipients)}"}
    except smtplib.SMTPResponseException as exc:
        return {"status": "failed", "detail": f"refus {exc.smtp_code}"}
    return {"status": "done", "detail": "envoyé", "data": {"message_id": message["Message-ID"]}}


ACTIONS = {"mssante-send": mssante_send}


def build_cda(person: dict[str, Any], establishment: dict[str, Any], kind: str) -> bytes:
    code, system, label, template, version = DOCUMENTS[kind]
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    org = f'<id root="1.2.250.1.71.4.2.2" extension={quoteattr("1" + establishment["finess"])}/><name>{escape(establishment["name"])}</name>'
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <realmCode code="FR"/><typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.2.8.2.1"/><templateId root="1.2.250.1.213.1.1.1.1"/>
  <templateId root="{template}" extension="{version}"/>
  <id root="2.25.{uuid.uuid4().int}"/><code code="{code}" codeSystem="{system}" displayName={quoteattr(label)}/>
  <title>{escape(label)}</title><effectiveTime value="{now}"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/><languageCode code="fr-FR"/>
  <recordTarget><patientRole><id root={quoteattr(person["ins_oid"])} extension={quoteattr(person["ins"])}/>
    <patient><name><given>{escape(person["given"])}</given><family>{escape(person["family"])}</family></name>
    <administrativeGenderCode code="{person["sex"]}" codeSystem="2.16.840.1.113883.5.1"/>
    <birthTime value="{person["birth_date"].replace("-", "")}"/></patient></patientRole></recordTarget>
  <author><time value="{now}"/><assignedAuthor>{org.split("<name>")[0]}<representedOrganization>{org}</representedOrganization></assignedAuthor></author>
  <custodian><assignedCustodian><representedCustodianOrganization>{org}</representedCustodianOrganization></assignedCustodian></custodian>
  <component><structuredBody><component><section><title>Motif</title><text>Exemple</text></section></component></structuredBody></component>
</ClinicalDocument>
""".encode()


def _slot(name: str, value: str) -> str:
    return f'<rim:Slot name="{name}"><rim:ValueList><rim:Value>{escape(value)}</rim:Value></rim:ValueList></rim:Slot>'


def _ext_id(obj: str, scheme: str, value: str) -> str:
    return f'<rim:ExternalIdentifier id="ei-{uuid.uuid4().hex[:8]}" registryObject="{obj}" identificationScheme="{scheme}" value={quoteattr(value)}/>'


def build_metadata(person: dict[str, Any], establishment: dict[str, Any], kind: str, cda: bytes) -> bytes:
    pid = f"{person['ins']}^^^&{person['ins_oid']}&ISO^NH"
    code, system, label, *_ = DOCUMENTS[kind]
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0" xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
 <rim:RegistryObjectList>
  <rim:ExtrinsicObject id="Doc1" mimeType="text/xml" objectType="{XDS['entry']}">
   {_slot("hash", hashlib.sha1(cda).hexdigest())}{_slot("size", str(len(cda)))}{_slot("URI", "DOC0001.XML")}
   <rim:Classification id="c1" classifiedObject="Doc1" classificationScheme="{XDS['type']}" nodeRepresentation="{code}">{_slot("codingScheme", system)}</rim:Classification>
   {_ext_id("Doc1", XDS["doc_pid"], pid)}{_ext_id("Doc1", XDS["doc_uid"], f"2.25.{uuid.uuid4().int}")}
  </rim:ExtrinsicObject>
  <rim:RegistryPackage id="SS1">
   {_ext_id("SS1", XDS["ss_pid"], pid)}{_ext_id("SS1", XDS["ss_uid"], f"2.25.{uuid.uuid4().int}")}{_ext_id("SS1", XDS["ss_src"], "1.2.250.1.999.42")}
  </rim:RegistryPackage>
  <rim:Classification id="c2" classifiedObject="SS1" classificationNode="{XDS['ss']}"/>
  <rim:Association id="a1" associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember" sourceObject="SS1" targetObject="Doc1"/>
 </rim:RegistryObjectList>
</lcm:SubmitObjectsRequest>
""".encode()


def build_message(person: dict[str, Any], establishment: dict[str, Any], sender: str, recipients: list[str], kind: str) -> EmailMessage:
    cda = build_cda(person, establishment, kind)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.TXT", "Exemple de DUI\r\n")
        z.writestr("INDEX.HTM", "<html><body><a href='IHE_XDM/SUBSET01/DOC0001.XML'>document</a></body></html>")
        z.writestr("IHE_XDM/SUBSET01/METADATA.XML", build_metadata(person, establishment, kind, cda))
        z.writestr("IHE_XDM/SUBSET01/DOC0001.XML", cda)
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, ", ".join(recipients)
    msg["Date"], msg["Message-ID"] = format_datetime(datetime.now(UTC)), make_msgid(domain="example-dui.test")
    msg["Subject"] = f"XDM/1.0/DDM+{DOCUMENTS[kind][2]} {person['family']} {person['given']}"
    msg["X-MSS-CODECDA"], msg["X-MSS-INS"], msg["X-MSS-NIL"] = DOCUMENTS[kind][0], "O", "EXEMPLE-DUI"
    msg.set_content("Document en pièce jointe.")
    msg.add_attachment(b"%PDF-1.4\n%%EOF\n", maintype="application", subtype="pdf", filename="document.pdf")
    msg.add_attachment(archive.getvalue(), maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    return msg
