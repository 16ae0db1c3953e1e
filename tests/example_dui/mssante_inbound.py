"""Example DUI, MSSanté beyond the plain send: reading the mailbox with read receipts, the HL7 v2 relay through
an integration platform, and the directory lookup.

Specifications followed (this module shares no code with the reference DUI):
- IMAP4rev1 (RFC 3501): STARTTLS before any authentication (§6.2.1), LOGIN with the mailbox password or
  AUTHENTICATE EXTERNAL (RFC 4422 appendix A) with the ``MSS-<FINESS>`` organisation certificate presented in TLS;
  UID SEARCH UNSEEN, FETCH BODY.PEEK[], STORE +FLAGS (\\Seen) once the message is handled;
- IHE XDM (ITI-32): the documents listed by ``IHE_XDM/<lot>/METADATA.XML`` (URI slots); CDA R2 header
  (``recordTarget/patientRole``: INS under an INS OID, birth name, first name, sex, birth date);
- read receipts: RFC 8098 (MDN) in a RFC 6522 ``multipart/report``, with the ANS volet "Transmission d'un
  document CDA par un LPS par courriel MSSanté" (page ``struct-msg-mdn``): Original-Recipient, Final-Recipient,
  Original-Message-ID, ``processed`` when the document was integrated, else ``processed/error`` with an
  ``Error: <code>^<libellé>^applicationErrorCondition`` field (RFC 8098 §3.2.7), integration codes 902-906 of the
  page ``error-codes``, Subject ``[KO Intégration système !][<code>] <objet d'origine>``, the original
  message as third part; no automatic MDN when Disposition-Notification-To differs from Return-Path (RFC 8098
  §2.1: the user would have to confirm);
- HL7 v2.5 ORU^R01 (ANS "Transmission d'un document CDA-R2 en HL7 v2" v2.1, ``MetaDMPMSS`` OBX flags within the
  volet's management matrix) or HL7 v2.6 MDM^T02 (volet "LPS par courriel MSSanté", recipients in PRT RCT),
  original acknowledgement mode, MLLP release 2 framing; the ZAM^Z02 / ZAM^Z03 business acknowledgements the
  platform sends back on the same connection are acknowledged (ACK AA);
- directory: Annuaire Santé FHIR R4 search ``GET PractitionerRole?mailbox-mss=<début d'adresse>``
  (ANS IG "Annuaire Santé"), addresses in ``telecom`` (``system`` = email).
"""

from __future__ import annotations

import base64
import contextlib
import email.policy
import imaplib
import io
import posixpath
import socket
import ssl
import unicodedata
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header, decode_header, make_header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from typing import Any

import httpx
from lxml import etree

from example_dui import Outcome, Session
from example_dui.mssante import DOCUMENTS, LOINC, build_cda, minimal_pdf, patient_mailbox, submit

INS_OIDS = {"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11"}
HL7 = {"h": "urn:hl7-org:v3"}
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
#: integration error codes of the ANS volet (table applicationErrorCondition)
UNKNOWN_PATIENT = ("902", "Identifiant patient inconnu")
NO_INS = ("903", "INS non présent dans le document")
INS_MISMATCH = ("904", "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur")
INCOMPLETE = ("905", "L'INS transmis n'est pas complet")
OTHER = ("906", "Erreur 'Autre'")
MAX_ENTRY = 20 * 1024 * 1024
XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


# =============================================================================================================
# Reading the mailbox (IMAP) and answering with MDNs
# =============================================================================================================
@dataclass(frozen=True)
class Received:
    """The person a received CDA document is about, as its header says."""

    ins: str | None
    family: str | None
    given: str | None
    birth_date: str | None  # YYYYMMDD
    sex: str | None
    code: str | None
    title: str | None


def mssante_receive(session: Session, body: dict[str, Any]) -> Outcome:
    """Read the unread mail of the DUI's mailbox, integrate each IHE_XDM.ZIP, answer the receipts asked for."""
    establishment, patients = body["establishment"], body["patients"]
    certificate = f"MSS-{establishment['finess']}" if body.get("auth") == "certificate" else None
    handled: list[dict[str, Any]] = []
    try:
        imap = open_mailbox(session, establishment["dui_mailbox"], certificate)
    except (OSError, ssl.SSLError, imaplib.IMAP4.error, KeyError) as exc:
        return {"status": "failed", "detail": f"messagerie MSSanté inaccessible: {exc}", "data": {"messages": []}}
    try:
        if imap.select("INBOX")[0] != "OK":
            return {"status": "failed", "detail": "dossier INBOX inaccessible", "data": {"messages": []}}
        _, found = imap.uid("SEARCH", None, "UNSEEN")
        for uid in (found[0] or b"").split():
            _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((p[1] for p in parts if isinstance(p, tuple)), None)
            outcome = handle_message(session, raw, establishment, patients, certificate) if raw else None
            if outcome is None:
                continue  # no IHE_XDM.ZIP (a receipt, a plain message): left unread for a person
            imap.uid("STORE", uid, "+FLAGS.SILENT", "(\\Seen)")
            handled.append({"uid": int(uid), **outcome})
    except (OSError, ssl.SSLError, imaplib.IMAP4.error) as exc:
        return {"status": "failed", "detail": f"relève IMAP interrompue: {exc}", "data": {"messages": handled}}
    finally:
        with contextlib.suppress(OSError, ssl.SSLError, imaplib.IMAP4.error):
            imap.logout()
    summary = ", ".join(f"{m['message_id']}: {m['result']}" for m in handled) or "aucun nouveau document"
    failed = [m for m in handled if m.get("mdn", "").startswith("échec")]
    return {
        "status": "failed" if failed else "done",
        "detail": f"{len(handled)} message(s) traité(s): {summary}",
        "data": {"messages": handled},
    }


def open_mailbox(session: Session, mailbox: str, certificate: str | None) -> imaplib.IMAP4:
    """IMAP4rev1 connection: STARTTLS first, then LOGIN or AUTHENTICATE EXTERNAL (authzid = the mailbox)."""
    host, _, port = session.endpoint("mssante", "imap").rpartition(":")
    imap = imaplib.IMAP4(host.strip("[]"), int(port), timeout=30)
    try:
        imap.starttls(ssl_context=session.ssl_context(certificate))
        if certificate:
            imap.authenticate("EXTERNAL", lambda _challenge: mailbox.encode("utf-8"))
        else:
            imap.login(mailbox, session.body["credentials"][mailbox])
    except BaseException:
        imap.shutdown()
        raise
    return imap


def handle_message(
    session: Session, raw: bytes, establishment: dict[str, Any], patients: list[dict[str, Any]], certificate: str | None
) -> dict[str, Any] | None:
    """Integrate one message's documents (or refuse them with an integration code) and answer its MDN request."""
    msg = BytesParser(policy=email.policy.compat32).parsebytes(raw)
    archive = next((p for p in msg.walk() if (p.get_filename() or "").upper() == "IHE_XDM.ZIP"), None)
    if archive is None:
        return None
    documents = read_xdm(archive.get_payload(decode=True) or b"")
    error, person = decide(documents, patients)
    message_id = str(msg.get("Message-ID", "")).strip()
    if error is None and person is not None:
        records = session.state.setdefault("mssante_inbound", {}).setdefault("documents", {})
        records.setdefault(person["local_id"], []).append(
            {"message_id": message_id, "documents": [{"code": d.code, "title": d.title} for d in documents]}
        )
    outcome: dict[str, Any] = {
        "message_id": message_id,
        "person": person["local_id"] if person else None,
        "result": "intégré" if error is None else f"{error[0]} {error[1]}",
    }
    notify = parseaddr(str(msg.get("Disposition-Notification-To", "")))[1]
    if not notify:
        outcome["mdn"] = "non demandé"
        return outcome
    if notify.casefold() != parseaddr(str(msg.get("Return-Path", notify)))[1].casefold():
        outcome["mdn"] = "à confirmer par l'utilisateur (Disposition-Notification-To différent de Return-Path)"
        return outcome
    mailbox = establishment["dui_mailbox"]
    mdn = build_mdn(msg, reporter=mailbox, reporter_name=establishment["name"], to=notify, error=error)
    failure = submit(session, mdn, mailbox, [notify], certificate=certificate, envelope_sender="")  # RFC 8098 §3
    outcome["mdn"] = f"échec: {failure}" if failure else "envoyé"
    return outcome


def read_xdm(data: bytes) -> list[Received]:
    """The CDA documents of an IHE_XDM.ZIP, as listed by its METADATA.XML (empty when unreadable)."""
    found: list[Received] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = {n.upper(): n for n in archive.namelist()}
            for meta in (n for n in names if n.startswith("IHE_XDM/") and n.endswith("/METADATA.XML")):
                folder = posixpath.dirname(meta)
                root = etree.fromstring(_read(archive, names[meta]), XML_PARSER)
                for entry in root.iter(f"{{{RIM}}}ExtrinsicObject"):
                    if entry.get("mimeType") != "text/xml":
                        continue
                    uri = entry.findtext(f"{{{RIM}}}Slot[@name='URI']/{{{RIM}}}ValueList/{{{RIM}}}Value") or ""
                    path = posixpath.normpath(f"{folder}/{uri}").upper()
                    if path in names:
                        found.append(read_cda(_read(archive, names[path])))
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        EOFError,
        zlib.error,
        etree.XMLSyntaxError,
        OSError,
        ValueError,
        KeyError,
    ):
        return []  # the integration fails with 906
    return found


def _read(archive: zipfile.ZipFile, name: str) -> bytes:
    with archive.open(name) as handle:
        data = handle.read(MAX_ENTRY + 1)
    if len(data) > MAX_ENTRY:
        raise ValueError(f"{name}: entrée trop grande")
    return data


def read_cda(data: bytes) -> Received:
    """The CDA header: INS (``patientRole/id`` under an INS OID) and the birth identity traits of the person."""
    root = etree.fromstring(data, XML_PARSER)
    ids = root.findall("h:recordTarget/h:patientRole/h:id", HL7)
    ins = next((i.get("extension") for i in ids if i.get("root") in INS_OIDS), None)
    patient = root.find("h:recordTarget/h:patientRole/h:patient", HL7)

    def text(path: str) -> str | None:
        found = patient.findall(path, HL7) if patient is not None else []
        birth = [e for e in found if e.get("qualifier") in (None, "BR")] or found  # the birth name when qualified
        if not birth:
            return None
        return (birth[0].text or "").strip() or None

    def attr(path: str, name: str) -> str | None:
        el = patient.find(path, HL7) if patient is not None else None
        return el.get(name) if el is not None else None

    code = root.find("h:code", HL7)
    return Received(
        ins,
        text("h:name/h:family"),
        text("h:name/h:given"),
        (attr("h:birthTime", "value") or "")[:8] or None,
        attr("h:administrativeGenderCode", "code"),
        code.get("code") if code is not None else None,
        root.findtext("h:title", namespaces=HL7),
    )


def decide(
    documents: list[Received], patients: list[dict[str, Any]]
) -> tuple[tuple[str, str] | None, dict[str, Any] | None]:
    """The integration outcome: ``(None, person)`` or ``(error code and label, person or None)``."""
    if not documents or len({d.ins for d in documents}) > 1:
        return OTHER, None  # unreadable archive, or documents of several persons in one message
    doc = documents[0]
    if not doc.ins:
        return NO_INS, None
    person = next((p for p in patients if p["ins"] == doc.ins), None)
    if person is None:
        return UNKNOWN_PATIENT, None
    if not (doc.family and doc.given and doc.birth_date and doc.sex):
        return INCOMPLETE, person
    same = (
        doc.family.casefold() == person["family"].casefold()
        and doc.given.split()[0].casefold() == person["given"].split()[0].casefold()
        and doc.birth_date == person["birth_date"].replace("-", "")
        and doc.sex == person["sex"]
    )
    return (None if same else INS_MISMATCH), person


def build_mdn(
    original: Message, *, reporter: str, reporter_name: str, to: str, error: tuple[str, str] | None
) -> MIMEMultipart:
    """The read receipt (RFC 8098 + ANS volet) for ``original``: processed, or processed/error with the code."""
    subject = " ".join(str(make_header(decode_header(str(original.get("Subject", ""))))).split())
    report = MIMEMultipart("report", report_type="disposition-notification")
    report["From"] = formataddr((reporter_name, reporter))
    report["To"] = to
    report["Date"] = format_datetime(datetime.now(UTC))
    report["Message-ID"] = make_msgid(domain=reporter.rpartition("@")[2])
    fields = [
        f"Reporting-UA: {reporter.rpartition('@')[2]}; Exemple de DUI",
        f"Original-Recipient: rfc822;{reporter}",
        f"Final-Recipient: rfc822;{reporter}",
        f"Original-Message-ID: {str(original.get('Message-ID', '')).strip()}",
    ]
    if error is None:
        report["Subject"] = Header(subject, "utf-8")
        text = "Le document a été intégré dans le dossier de la personne accompagnée."
        fields.append("Disposition: automatic-action/MDN-sent-automatically; processed")
    else:
        code, label = error
        report["Subject"] = Header(f"[KO Intégration système !][{code}] {subject}", "utf-8")
        text = f"Le message ci-dessous n'a pas pu être intégré automatiquement dans le DUI : erreur {code}, {label}."
        fields.append("Disposition: automatic-action/MDN-sent-automatically; processed/error")
        fields.append(f"Error: {code}^{_ascii(label)}^applicationErrorCondition")  # fields are US-ASCII (RFC 8098 §3.1)
    report.attach(MIMEText(text + "\n", "plain", "utf-8"))
    notification = MIMEBase("message", "disposition-notification")
    notification.set_payload("\r\n".join(fields) + "\r\n")
    report.attach(notification)
    report.attach(MIMEMessage(original))  # the volet asks for the original message (and its attachments)
    return report


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


# =============================================================================================================
# HL7 v2 relay to the integration platform (MLLP)
# =============================================================================================================
VT, FS, CR = b"\x0b", b"\x1c", b"\r"
FLAG_LABELS = {
    "MASQUE_PS": "Masqué aux professionnels de Santé",
    "INVISIBLE_PATIENT": "Document Non Visible par le patient",
    "INVISIBLE_REP_LEGAUX": "Non visible par les représentants Légaux du patient",
    "CONNEXION_SECRETE": "Connexion Secrete",
    "MODIF_CONF_CODE": "Modification Confidentiality Code",
    "DESTDMP": "Destinataire DMP",
    "DESTMSSANTEPS": "Destinataire (Professionnel de Santé, organisation ou BAL applicative)",
    "DESTMSSANTEPAT": "Destinataire Patient",
    "ACK_RECEPTION": "Accusé de réception",
    "ACK_LECTURE_MSS": "Accusé de lecture",
}
APP = "DUI-EXEMPLE"


def esc(text: str) -> str:
    """HL7 v2 escape sequences for the default delimiters (v2.5 §2.7)."""
    return (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")  # HL7 v2 DTM with its UTC offset


def recipients_of(body: dict[str, Any]) -> tuple[list[str], bool]:
    """The professional addresses, and whether the person's Mon espace santé mailbox is a recipient too."""
    professionals = [r for r in body["recipients"] if r != "patient"]
    return professionals, bool(body.get("to_patient")) or "patient" in body["recipients"]


def routing_flags(professionals: list[str], to_patient: bool) -> dict[str, str]:
    """MetaDMPMSS flags within the volet's management matrix: a document for the person is visible to them;
    one only for professionals is not (INVISIBLE_PATIENT=Y); nothing masked, no DMP; both receipts asked."""
    yn = {True: "Y", False: "N"}
    return {
        "MASQUE_PS": "N",
        "INVISIBLE_PATIENT": yn[not to_patient],
        "INVISIBLE_REP_LEGAUX": "N",
        "CONNEXION_SECRETE": "N",
        "MODIF_CONF_CODE": "N",
        "DESTDMP": "N",
        "DESTMSSANTEPS": yn[bool(professionals)],
        "DESTMSSANTEPAT": yn[to_patient],
        "ACK_RECEPTION": "Y",
        "ACK_LECTURE_MSS": "Y",
    }


def build_hl7(body: dict[str, Any], control: str) -> str:
    """ORU^R01 (v2.5) or MDM^T02 (v2.6) carrying the person's CDA document base64-encoded in an ED OBX."""
    person, est, kind = body["person"], body["establishment"], DOCUMENTS[body["document_kind"]]
    professionals, to_patient = recipients_of(body)
    mdm = body.get("message_type", "ORU^R01").startswith("MDM")
    cda = build_cda(person, est, body["document_kind"], minimal_pdf(kind.label))
    doc_code = f"{kind.code}^{esc(kind.label)}^{'LN' if kind.system == LOINC else kind.system}"
    authority = "ASIP-SANTE-INS-NIA" if person["ins_oid"] == "1.2.250.1.213.1.4.9" else "ASIP-SANTE-INS-NIR"
    if mdm:
        segments = [_msh(est, "MDM^T02^MDM_T02", control, "2.6", "1.0^CISIS_CDA_HL7_LPS"), f"EVN||{_now()}"]
    else:
        segments = [_msh(est, "ORU^R01^ORU_R01", control, "2.5", "2.1^CISIS_CDA_HL7_V2")]
    segments += [
        f"PID|||{person['ins']}^^^{authority}&{person['ins_oid']}&ISO^INS||{esc(person['family'].upper())}^{esc(person['given'])}^^^^^L||"
        f"{person['birth_date'].replace('-', '')}|{person['sex']}",
        "PV1|1|N",
    ]
    if mdm:
        document_id = etree.fromstring(cda, XML_PARSER).find("h:id", HL7).get("root")  # TXA-12 = ClinicalDocument/id
        segments.append(f"TXA|1|{kind.code}|TEXT|{_now()}||||||||{document_id}||||||LA")
    else:
        segments += [f"ORC|NW|{control}^{APP}", f"OBR|1|{control}^{APP}||{doc_code}|||{_now()}"]
    segments.append(f"OBX|1|ED|{doc_code}||^TEXT^XML^Base64^{base64.b64encode(cda).decode('ascii')}||||||F")
    structure = f"{esc(est['name'])}^^^^^ASIP-SANTE-ST&1.2.250.1.71.4.2.2&ISO^FINEG^^^1{est['finess']}"
    segments.append(_prt("SB", f"^^X.400^{est['dui_mailbox']}", organisation=structure))
    segments += [_prt("RCT", f"^^X.400^{address}") for address in professionals]
    if to_patient:
        who = f"{person['ins']}^{esc(person['family'].upper())}^{esc(person['given'])}^^^^^^&{person['ins_oid']}&ISO^L^^^INS"
        segments.append(_prt("RCT", f"^^X.400^{patient_mailbox(person)}", person=who))
    flags = routing_flags(professionals, to_patient)
    value_type, table = ("CWE", "HL70136") if mdm else ("CE", "expandedYes-NoIndicator")
    for n, (name, value) in enumerate(flags.items(), start=2):
        segments.append(f"OBX|{n}|{value_type}|{name}^{esc(FLAG_LABELS[name])}^MetaDMPMSS||{value}^^{table}||||||F")
    return "\r".join(segments)


def _msh(est: dict[str, Any], message_type: str, control: str, version: str, profile: str) -> str:
    """MSH: the DUI (sending facility = FINESS) to the platform, French character set, the volet's profile (MSH-21)."""
    return (
        f"MSH|^~\\&|{APP}|{est['finess']}|PFI|PFI|{_now()}||{message_type}|{control}|P|{version}"
        f"|||||FRA|UNICODE UTF-8|||{profile}"
    )


def _prt(role: str, telecom: str, *, person: str = "", organisation: str = "") -> str:
    """PRT participation (HL7 v2.7, used by the volets): PRT-4 role, PRT-5 person, PRT-8 organisation, PRT-15 address."""
    fields = ["PRT", "", "UC", "", f"{role}^^participation", person, "", "", organisation] + [""] * 6 + [telecom]
    return "|".join(fields)


def _frame(text: str) -> bytes:
    return VT + text.encode("utf-8") + FS + CR


def _read_frame(sock: socket.socket, buffer: bytearray, timeout: float) -> str | None:
    """The next MLLP block (``<VT> message <FS><CR>``), or ``None`` on timeout or end of stream."""
    sock.settimeout(timeout)
    while True:
        start, end = buffer.find(VT), buffer.find(FS + CR)
        if start >= 0 and end > start:
            block = bytes(buffer[start + 1 : end])
            del buffer[: end + 2]
            return block.decode("utf-8", "replace")
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, socket.timeout):
            return None
        if not chunk:
            return None
        buffer += chunk


def _segments(text: str) -> dict[str, list[list[str]]]:
    """Segments by name, each as its fields (MSH re-indexed so that fields[n] is MSH-n)."""
    found: dict[str, list[list[str]]] = {}
    for line in text.replace("\n", "\r").split("\r"):
        fields = line.split("|")
        if fields[0] == "MSH":
            fields = ["MSH", "|", *fields[1:]]
        if fields[0]:
            found.setdefault(fields[0], []).append(fields)
    return found


def _field(fields: list[str], n: int) -> str:
    return fields[n] if n < len(fields) else ""


def ack_for(message: dict[str, list[list[str]]], establishment: dict[str, Any]) -> str:
    """ACK AA (original mode) of a received message (a ZAM of the platform)."""
    msh = message["MSH"][0]
    trigger = _field(msh, 9).split("^")[1] if "^" in _field(msh, 9) else ""
    return "\r".join(
        [
            f"MSH|^~\\&|{APP}|{establishment['finess']}|{_field(msh, 3)}|{_field(msh, 4)}|{_now()}||ACK^{trigger}^ACK|"
            f"ACK{uuid.uuid4().hex[:12]}|P|{_field(msh, 12) or '2.5'}|||||FRA|UNICODE UTF-8",
            f"MSA|AA|{_field(msh, 10)}",
        ]
    )


def zam_summary(zam: dict[str, list[list[str]]]) -> dict[str, str]:
    """What a ZAM says (volet ``ack-metier-zam``): its type, the Y/N of its CWE OBX, the address of its XTN OBX."""
    obx = zam.get("OBX", [])
    answer = next((_field(o, 5).split("^")[0] for o in obx if _field(o, 2) == "CWE"), "")
    address = next((_field(_field(o, 5).split("^"), 3) for o in obx if _field(o, 2) == "XTN"), "")
    return {"type": "^".join(_field(zam["MSH"][0], 9).split("^")[:2]), "ok": answer, "address": address}


def mssante_hl7_relay(session: Session, body: dict[str, Any]) -> Outcome:
    """Hand the document to the platform over MLLP, check its ACK, then acknowledge its ZAM receipts."""
    if body["document_kind"] not in DOCUMENTS:
        return {"status": "failed", "detail": f"type de document non géré: {body['document_kind']}"}
    control = f"DUI{uuid.uuid4().hex[:12]}"
    professionals, to_patient = recipients_of(body)
    expected = (
        len(professionals) + int(to_patient) + len(professionals)
    )  # one Z02 per recipient, one Z03 per professional
    host, _, port = session.endpoint("mssante", "mllp").rpartition(":")
    data: dict[str, Any] = {"control_id": control, "zam": []}
    buffer = bytearray()
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=30) as sock:
            sock.sendall(_frame(build_hl7(body, control)))
            answer = _read_frame(sock, buffer, 30)
            if answer is None:
                return {
                    "status": "failed",
                    "detail": "la plateforme d'intégration n'a pas acquitté le message",
                    "data": data,
                }
            msa = _segments(answer).get("MSA", [[]])[0]
            err = _segments(answer).get("ERR", [[]])[0]
            data["ack"] = _field(msa, 1)
            if _field(msa, 1) != "AA" or _field(msa, 2) != control:
                reason = _field(err, 3).replace("^", " ")
                return {
                    "status": "failed",
                    "detail": f"message HL7 refusé par la plateforme: {_field(msa, 1)} {reason}".strip(),
                    "data": data,
                }
            while len(data["zam"]) < expected:
                text = _read_frame(sock, buffer, 5)
                if text is None:
                    break
                zam = _segments(text)
                sock.sendall(_frame(ack_for(zam, body["establishment"])))
                data["zam"].append(zam_summary(zam))
    except (OSError, KeyError, IndexError) as exc:
        return {"status": "failed", "detail": f"échange HL7 v2 impossible: {exc}", "data": data}
    kinds = ", ".join(z["type"] for z in data["zam"]) or "aucun"
    return {
        "status": "done",
        "detail": f"document transmis à la plateforme (ACK AA, accusés métier: {kinds})",
        "data": data,
    }


# =============================================================================================================
# Directory lookup (Annuaire Santé FHIR)
# =============================================================================================================
def mssante_directory_lookup(session: Session, body: dict[str, Any]) -> Outcome:
    """FHIR R4 search of the MSSanté addresses starting with ``query`` (optionally of one mailbox type)."""
    params = {"mailbox-mss": body["query"]}
    if body.get("mailbox_type"):
        params["mailbox-mss-type"] = body["mailbox_type"]
    try:
        response = httpx.get(
            f"{session.endpoint('mssante', 'directory').rstrip('/')}/PractitionerRole",
            params=params,
            headers={"Accept": "application/fhir+json"},
            verify=session.ssl_context(),
            timeout=30,
        )
        response.raise_for_status()
        bundle = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return {"status": "failed", "detail": f"annuaire MSSanté indisponible: {exc}", "data": {"addresses": []}}
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return {
            "status": "failed",
            "detail": "réponse de l'annuaire MSSanté illisible (Bundle FHIR attendu)",
            "data": {"addresses": []},
        }
    addresses = [
        t["value"]
        for entry in bundle.get("entry", [])
        for t in entry.get("resource", {}).get("telecom", [])
        if t.get("system") == "email" and t.get("value")
    ]
    return {
        "status": "done",
        "detail": f"{len(addresses)} adresse(s) trouvée(s): {', '.join(addresses)}",
        "data": {"addresses": addresses},
    }


ACTIONS = {
    "mssante-receive": mssante_receive,
    "mssante-hl7-relay": mssante_hl7_relay,
    "mssante-directory-lookup": mssante_directory_lookup,
}
