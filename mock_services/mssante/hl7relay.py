"""HL7 v2 relay of the MSSanté simulator: the integration platform (PFI, "GESTIONNAIRE") a DUI hands documents to.

Specifications: ANS "Transmission d'un document CDA-R2 en HL7 v2" (IG v2.1: ORU^R01, ``MetaDMPMSS`` OBX flags,
matrix ``regles-gestion-mssante``, ZAM business acknowledgements ``ack-metier-zam``) and "Transmission d'un
document CDA par un LPS par courriel MSSanté" (MDM^T02 / T10 / T04, recipients in ``PRT`` RCT); HL7 v2.5
original acknowledgement mode; MLLP release 2 framing.

One MLLP listener (endpoint ``mllp``). For each block:
1. parse (:mod:`harness.fields.hl7v2`); unusable text → ``ACK`` ``AR`` with ``ERR`` (table 0357), connection kept;
2. ORU^R01 (ORC-1 ``NW`` initial, ``RO``/``RP``/``XO`` replacement, ``CA``/``OC`` deletion; volet v2.0: ORC-1 ``SC``
   and OBX-11 ``F``/``C``/``D``, accepted unless setting ``hl7_volet_20`` is false → ``AR 203``) or MDM^T02 / T10 /
   T04: every identity must agree — the INS of PID-3 valid (else ``AE 102`` naming the key) and equal to the INS of
   every CDA document (else ``AE``, ERR-3 ``207``, ERR-5 ``904``, nothing sent, both INS journaled); production INS per
   the harness-wide ``production_ins`` policy; recipients from the ``DESTMSSANTEPS`` / ``DESTMSSANTEPAT`` flags (ORU)
   or the ``PRT`` RCT participations (MDM); a flag combination outside the volet's matrix, a CDA without INS or no
   recipient → ``AE``;
3. the journal gets ``hl7.document`` (and ``smtp.relay`` for the e-mail built: IHE_XDM.ZIP, X-MSS-* headers,
   Subject ``XDM/1.0/DDM+``) **before** the ``ACK`` is written; the e-mail is delivered into the recipients'
   mailboxes of the store (a deletion sends no e-mail: a message cannot be recalled);
4. then, on the same connection, one ``ZAM^Z02`` per recipient when ``ACK_RECEPTION`` = Y (MSSanté reception)
   and one ``ZAM^Z03`` per professional recipient when ``ACK_LECTURE_MSS`` = Y (the simulated professionals
   read at once); each must be acknowledged by the DUI (``ACK`` ``AA``), journaled as ``hl7.zam``.
The message rules (request, PID-3 and CDA identities, flag matrix) are library code shared with
``socle-harness validate``: :mod:`harness.validators.hl7v2_relay`, whose finding codes the refusals journal in
``details["findings"]``.
Bytes outside MLLP blocks are discarded and journaled (``hl7.framing``); an oversize or unterminated block, or a
block not finished within ``hl7_frame_timeout`` seconds of its start byte (60 s), ends the connection after being
journaled; the listener goes on serving the other connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import itertools
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from lxml import etree

from harness.core.journal import Direction, Exchange, Outcome
from harness.fields import hl7v2
from harness.fields.identity import INS, production_ins
from harness.fields.testdata import MailboxType
from harness.host.connections import bounded_streams
from harness.host.simulator import SimulatorContext
from harness.validators import Finding, Severity
from harness.validators import xdm as X
from harness.validators.cda import read_cda_header
from harness.validators.hl7v2_relay import (
    ACK_ERRORS,
    DOCUMENT_TYPES,
    PidIdentity,
    cda_identities,
    document_findings,
    identity_findings,
    matrix_findings,
    message_event,
    obx_content,
    person_ins,
    pid_identity,
)
from mock_services.mssante.isolation import connection_caller, mailbox_refusal
from mock_services.mssante.mailflow import MailFlow
from mock_services.mssante.settings import Hl7RelaySettings, MssanteSettings

DOCUMENT = "hl7.document"
ZAM = "hl7.zam"
FRAMING = "hl7.framing"
RELAY = "smtp.relay"
PFI_NIL = "PFI-SOCLE-HARNESS"


@dataclass
class Routed:
    """What the relay made of one message."""

    ack: str
    ack_code: str
    exchange: Exchange
    zams: list[tuple[str, list[hl7v2.ZamItem]]] = field(default_factory=list)
    header: hl7v2.Header | None = None


class RelayRefusal(Exception):
    """A refused message: MSA-1 ``ack_code``, ERR-3 ``err_code`` (HL7 table 0357), ERR-2 ``location``, ERR-5
    ``application_error`` (the volet's applicationErrorCondition code and label)."""

    def __init__(
        self,
        ack_code: str,
        err_code: str,
        message: str,
        *,
        location: str = "",
        application_error: tuple[str, str] | None = None,
        finding: Finding | None = None,
    ) -> None:
        super().__init__(message)
        self.ack_code = ack_code
        self.err_code = err_code
        self.location = location
        self.application_error = application_error
        self.finding = finding  # the validator's finding behind the refusal, when it is one


def refusal(finding: Finding) -> RelayRefusal:
    """The relay's answer to a finding of :mod:`harness.validators.hl7v2_relay` (its :data:`ACK_ERRORS`)."""
    ack = ACK_ERRORS[finding.code]
    return RelayRefusal(
        ack.ack_code,
        ack.err_code,
        finding.message,
        location=ack.location,
        application_error=ack.application_error,
        finding=finding,
    )


def check_identities(pid: PidIdentity, documents: list[tuple[bytes, Any]], details: dict[str, Any]) -> INS | None:
    """Every identity the message carries must agree (:func:`~harness.validators.hl7v2_relay.identity_findings`);
    both are journaled. Returns the person's INS (PID-3, else the documents'), if any."""
    headers = [h for _, h in documents]
    details["pid_ins"] = pid.raw
    details["cda_ins"] = [value for value, _ in cda_identities(headers)]
    for finding in identity_findings(pid, headers):
        raise refusal(finding)
    return person_ins(pid, headers)


def _xtn_address(value: str) -> str | None:
    """The e-mail address of an XTN ``^^X.400^address`` (first repetition with X.400)."""
    for repetition in value.split("~"):
        if hl7v2.component(repetition, 3).upper() in ("X.400", "INTERNET") and hl7v2.component(repetition, 4):
            return hl7v2.component(repetition, 4)
    return None


def build_xdm(documents: list[tuple[bytes, Any]], patient_cx: str, source: str) -> bytes:
    """The PFI's IHE_XDM.ZIP: README, INDEX, one submission set with its METADATA.XML (IHE ITI-32)."""
    rim, lcm = X.RIM, X.LCM
    root = etree.Element(f"{{{lcm}}}SubmitObjectsRequest", nsmap={"lcm": lcm, "rim": rim})
    objects = etree.SubElement(root, f"{{{rim}}}RegistryObjectList")

    def slot(parent: etree._Element, name: str, value: str) -> None:
        el = etree.SubElement(etree.SubElement(parent, f"{{{rim}}}Slot", name=name), f"{{{rim}}}ValueList")
        etree.SubElement(el, f"{{{rim}}}Value").text = value

    def ext(parent: etree._Element, obj: str, scheme: str, value: str) -> None:
        etree.SubElement(
            parent,
            f"{{{rim}}}ExternalIdentifier",
            id=f"ei-{uuid.uuid4().hex[:10]}",
            registryObject=obj,
            identificationScheme=scheme,
            value=value,
        )

    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    for index, (cda, header) in enumerate(documents, start=1):
        oid = f"Document{index:02d}"
        entry = etree.SubElement(
            objects, f"{{{rim}}}ExtrinsicObject", id=oid, mimeType="text/xml", objectType=X.DOC_ENTRY_OBJECT_TYPE
        )
        slot(entry, "creationTime", now)
        slot(entry, "hash", hashlib.sha1(cda).hexdigest())  # noqa: S324 - the XDS hash slot is SHA-1
        slot(entry, "size", str(len(cda)))
        slot(entry, "URI", f"DOC{index:04d}.XML")
        cl = etree.SubElement(
            entry,
            f"{{{rim}}}Classification",
            id=f"cl-{index}",
            classifiedObject=oid,
            classificationScheme=X.TYPE_CODE,
            nodeRepresentation=header.code or "",
        )
        slot(cl, "codingScheme", header.code_system or "")
        ext(entry, oid, X.DOC_PATIENT_ID, patient_cx)
        ext(entry, oid, X.DOC_UNIQUE_ID, f"2.25.{uuid.uuid4().int}")
    package = etree.SubElement(objects, f"{{{rim}}}RegistryPackage", id="SubmissionSet01")
    slot(package, "submissionTime", now)
    ext(package, "SubmissionSet01", X.SS_PATIENT_ID, patient_cx)
    ext(package, "SubmissionSet01", X.SS_SOURCE_ID, source)
    ext(package, "SubmissionSet01", X.SS_UNIQUE_ID, f"2.25.{uuid.uuid4().int}")
    etree.SubElement(
        objects,
        f"{{{rim}}}Classification",
        id="cl-ss",
        classifiedObject="SubmissionSet01",
        classificationNode=X.SUBMISSION_SET_NODE,
    )
    for index in range(1, len(documents) + 1):
        assoc = etree.SubElement(
            objects,
            f"{{{rim}}}Association",
            id=f"as-{index}",
            associationType=X.HAS_MEMBER,
            sourceObject="SubmissionSet01",
            targetObject=f"Document{index:02d}",
        )
        slot(assoc, "SubmissionSetStatus", "Original")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.TXT", "Plateforme d'integration (simulateur socle-harness)\r\n")
        archive.writestr("INDEX.HTM", '<html><body><a href="README.TXT">README</a></body></html>')
        archive.writestr("IHE_XDM/SUBSET01/METADATA.XML", etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
        for index, (cda, _) in enumerate(documents, start=1):
            archive.writestr(f"IHE_XDM/SUBSET01/DOC{index:04d}.XML", cda)
    return buffer.getvalue()


class Hl7Relay:
    """The MLLP listener and the routing of HL7 v2 documents to MSSanté."""

    def __init__(self, ctx: SimulatorContext, flow: MailFlow) -> None:
        self.ctx = ctx
        self.flow = flow
        settings = Hl7RelaySettings.from_mapping(ctx.settings)
        self.ack_timeout = settings.ack_timeout
        self.max_frame = settings.max_frame
        # from a block's 0x0B to its 0x1C 0x0D: a client trickling a block is cut off (issue 15 item 5)
        self.frame_timeout = settings.frame_timeout
        # volet « Transmission de documents CDA en HL7 v2 » v2.0 (ORC-1 SC, OBX-11 F/C/D): accepted as the relays of
        # the field do; false answers « version 2.0 du volet non prise en charge, 2.1 attendue » (AR 203)
        self.accept_v20 = settings.volet_20
        self.production_ins = MssanteSettings.from_mapping(ctx.settings).production_ins
        self._ids = itertools.count(1)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _control_id(self) -> str:
        return f"PFI{next(self._ids):06d}"

    # -- network --------------------------------------------------------------------------------------------------
    async def start(self) -> str:
        # bounded: connections per listener and per peer, silence (harness.host.connections; issue 15 item 5)
        connection = bounded_streams(self._connection, self.ctx.connection_limits, self.ctx.refused, "mllp")
        self._server = await asyncio.start_server(
            connection, host=self.ctx.bind_host, port=self.ctx.port("mllp"), reuse_port=self.ctx.reuse_port or None
        )
        port = self._server.sockets[0].getsockname()[1]
        return self.ctx.address(port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        stream = hl7v2.MllpReader(reader, max_frame=self.max_frame, frame_timeout=self.frame_timeout)
        try:
            while True:
                try:
                    block = await stream.read()
                except hl7v2.MllpError as exc:
                    await asyncio.to_thread(self._record_framing, str(exc), stream.discarded)
                    break
                if stream.discarded:
                    await asyncio.to_thread(self._record_framing, "octets hors bloc MLLP ignorés", stream.discarded)
                    stream.discarded = 0
                if block is None:
                    break
                routed = await asyncio.to_thread(self.handle, block)
                writer.write(hl7v2.frame(routed.ack))
                await writer.drain()
                for trigger, items in routed.zams:
                    await self._send_zam(stream, writer, routed, trigger, items)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send_zam(
        self,
        stream: hl7v2.MllpReader,
        writer: asyncio.StreamWriter,
        routed: Routed,
        trigger: str,
        items: list[hl7v2.ZamItem],
    ) -> None:
        assert routed.header is not None
        control = self._control_id()
        text = hl7v2.build_zam(
            trigger, routed.header, control_id=control, items=items, original_control_id=routed.header.control_id
        )
        writer.write(hl7v2.frame(text))
        await writer.drain()
        answer: bytes | None = None
        with contextlib.suppress(asyncio.TimeoutError, hl7v2.MllpError):
            answer = await asyncio.wait_for(stream.read(), self.ack_timeout)
        code = None
        if answer is not None:
            with contextlib.suppress(hl7v2.Hl7Error):
                ack = hl7v2.parse(answer)
                msa = ack.first("MSA")
                if msa is not None and hl7v2.field_text(msa, 2) == control:
                    code = hl7v2.field_text(msa, 1)
        await asyncio.to_thread(
            self.ctx.record,
            ZAM,
            Outcome.ACCEPTED if code == "AA" else Outcome.REJECTED,
            direction=Direction.TO_DUI,
            person=routed.exchange.person,
            essms=routed.exchange.essms,
            payload=text.encode("utf-8"),
            payload_type="application/hl7-v2",
            error_code=None if code == "AA" else (code or "sans-acquittement"),
            error_message=None if code == "AA" else "le DUI n'a pas acquitté l'accusé métier",
            details={
                "trigger": f"ZAM^{trigger}",
                "control_id": control,
                "document": routed.exchange.id,
                "items": [{"code": i.code, "ok": i.ok, "address": i.address} for i in items],
                "ack": code,
            },
        )

    def _record_framing(self, message: str, discarded: int) -> None:
        self.ctx.record(
            FRAMING, Outcome.REJECTED, error_code="MLLP", error_message=message, details={"discarded_bytes": discarded}
        )

    # -- routing --------------------------------------------------------------------------------------------------
    def handle(self, block: bytes) -> Routed:
        """Parse, check, journal and route one HL7 message; returns the ACK to send and the ZAMs to follow."""
        header = hl7v2.Header(receiving_app="PFI-SOCLE", receiving_facility="SIMULATEUR", trigger="")
        details: dict[str, Any] = {}
        try:
            message = hl7v2.parse(block)
            header = hl7v2.Header.of(message)
            details.update(message_type=message.message_type, control_id=message.control_id)
            return self._route(message, header, block, details)
        except hl7v2.Hl7Error as exc:
            return self._refuse(block, header, details, RelayRefusal("AR", exc.code, str(exc)))
        except RelayRefusal as exc:
            return self._refuse(block, header, details, exc)

    def _refuse(self, block: bytes, header: hl7v2.Header, details: dict[str, Any], exc: RelayRefusal) -> Routed:
        severity = "E"
        ack = hl7v2.build_ack(
            header,
            exc.ack_code,
            control_id=self._control_id(),
            error=(exc.err_code, str(exc), severity),
            location=exc.location,
            application_error=exc.application_error,
        )
        if exc.finding is not None:  # the validator's finding, as socle-harness validate reports it
            details["findings"] = [*details.get("findings", []), exc.finding.to_dict()]
        exchange = self.ctx.record(
            DOCUMENT,
            Outcome.REJECTED,
            person=details.get("person"),
            essms=details.get("essms"),
            error_code=f"{exc.ack_code} {exc.err_code}",
            error_message=str(exc),
            payload=block,
            payload_type="application/hl7-v2",
            details={**details, "ack": exc.ack_code},
        )
        return Routed(ack, exc.ack_code, exchange, header=header)

    def _route(self, message: hl7v2.Hl7Message, header: hl7v2.Header, block: bytes, details: dict[str, Any]) -> Routed:
        if message.message_type not in DOCUMENT_TYPES:
            raise RelayRefusal("AR", "200", f"type de message non pris en charge: {message.message_type}")
        event = self._event(message, details)
        details["event"] = event
        pid = pid_identity(message)
        person = pid.ins.value if pid.ins is not None else None
        content = obx_content(message)
        flags, bodies = content.flags, content.bodies
        documents = [(data, read_cda_header(data, location=f"OBX-{set_id}")) for set_id, data in content.documents]
        details["flags"] = flags
        identity = check_identities(pid, documents, details)
        verdict = production_ins(identity, self.production_ins) if identity is not None else None
        if verdict is not None:  # the harness-wide production-INS policy (setting production_ins)
            severity = Severity.ERROR if verdict.refuse else Severity.WARNING
            details["findings"] = [Finding(verdict.code, verdict.message, severity, "PID-3").to_dict()]
            if verdict.refuse:
                raise RelayRefusal("AE", "207", verdict.message, location="PID^1^3^1")
        details["person"] = person
        participations = self._participations(message)
        details["reply_to"] = participations["reply"]
        essms = participations["finess"] or (header.sending_facility if header.sending_facility.isdigit() else None)
        details["essms"] = essms
        if message.message_type == "ORU^R01":
            for finding in matrix_findings(flags):
                raise refusal(finding)
            recipients = (
                [a for a in participations["rct"] if not a.lower().endswith("@patient.mssante.fr")]
                if flags.get("DESTMSSANTEPS") == "Y"
                else []
            )
            if flags.get("DESTMSSANTEPAT") == "Y":
                if person is None:
                    raise RelayRefusal("AE", "207", "DESTMSSANTEPAT=Y mais aucun INS dans PID-3 (903)")
                recipients.append(f"{person}@patient.mssante.fr")
        else:
            recipients = participations["rct"]
        if not recipients:
            raise RelayRefusal("AE", "101", "aucun destinataire MSSanté (PRT RCT avec adresse X.400)")
        if event != "suppression":
            for finding in document_findings(event, content.documents):
                raise refusal(finding)
            problems = [f for _, h in documents for f in h.findings if str(f.severity) == "error"]
            if problems:
                raise RelayRefusal("AE", "207", f"document CDA refusé: {problems[0].code}: {problems[0].message}")
        details["recipients"] = [{"address": r} for r in recipients]
        want_reception = flags.get("ACK_RECEPTION", "N") == "Y" or message.message_type != "ORU^R01"
        want_read = flags.get("ACK_LECTURE_MSS", "N") == "Y"
        control = self._control_id()
        ack = hl7v2.build_ack(header, "AA", control_id=control)
        exchange = self.ctx.record(
            DOCUMENT,
            Outcome.ACCEPTED,
            person=person,
            essms=essms,
            payload=block,
            payload_type="application/hl7-v2",
            details={**details, "ack": "AA", "documents": [h.code for _, h in documents]},
        )
        routed = Routed(ack, "AA", exchange, header=header)
        if event == "suppression":
            return routed
        delivered = self._send_mail(exchange, documents, person, essms, recipients, participations, bodies, flags)
        if want_reception:
            for address in recipients:
                routed.zams.append(
                    (
                        "Z02",
                        [
                            hl7v2.ZamItem(
                                "ACK_RECEPTION_MSS",
                                "Accusé de réception MSSanté",
                                address in delivered,
                                "DESTINATAIRE_MSS",
                                "Destinataire MSSanté",
                                address,
                            )
                        ],
                    )
                )
        if want_read:
            for address in recipients:
                if address in delivered and not address.lower().endswith("@patient.mssante.fr"):
                    routed.zams.append(
                        (
                            "Z03",
                            [
                                hl7v2.ZamItem(
                                    "ACK_LECTURE_MSS",
                                    "Accusé de lecture",
                                    True,
                                    "LECTEUR_MSS",
                                    "Lecteur du courriel MSSanté",
                                    address,
                                )
                            ],
                        )
                    )
        return routed

    def _event(self, message: hl7v2.Hl7Message, details: dict[str, Any]) -> str:
        """The request (initial / replacement / deletion): :func:`~harness.validators.hl7v2_relay.message_event`,
        volet v2.0 accepted unless ``hl7_volet_20`` is false."""
        event = message_event(message, accept_v20=self.accept_v20)
        if event.volet is not None:
            details["volet"] = event.volet
        if event.finding is not None:
            raise refusal(event.finding)
        assert event.name is not None  # noqa: S101 - message_event gives a name or a finding
        return event.name

    @staticmethod
    def _participations(message: hl7v2.Hl7Message) -> dict[str, Any]:
        found: dict[str, Any] = {"rct": [], "reply": None, "finess": None, "sender": None}
        for prt in message.all("PRT"):
            fields = hl7v2.fields_of(prt)
            role = hl7v2.component(fields[4] if len(fields) > 4 else "", 1)
            address = _xtn_address(fields[15]) if len(fields) > 15 else None
            if role == "RCT" and address:
                found["rct"].append(address)
            elif role == "REPLY" and address:
                found["reply"] = address
            elif role == "SB":
                found["sender"] = address
                org = fields[8] if len(fields) > 8 else ""
                structure = hl7v2.component(org, 10)
                if structure.startswith("1") and len(structure) == 10:
                    found["finess"] = structure[1:]
        return found

    def _send_mail(
        self,
        document_exchange: Exchange,
        documents: list[tuple[bytes, Any]],
        person: str | None,
        essms: str | None,
        recipients: list[str],
        participations: dict[str, Any],
        bodies: dict[str, str],
        flags: dict[str, str],
    ) -> set[str]:
        directory = self.flow.directory
        sender = next((m for m in directory.all() if m.type is MailboxType.APP and essms and m.finess == essms), None)
        from_address = sender.address if sender else f"pfi@{self.flow.hostname}"
        first = documents[0][1]
        ins = next((h.ins for _, h in documents if h.ins), None)
        msg = EmailMessage()
        msg["From"] = formataddr((sender.name if sender else "Plateforme d'intégration", from_address))
        msg["To"] = ", ".join(recipients)
        if participations["reply"]:
            msg["Reply-To"] = participations["reply"]
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = make_msgid(domain=from_address.rpartition("@")[2])
        msg["Subject"] = f"XDM/1.0/DDM+{first.display or first.title or 'Document'}"
        msg["X-MSS-NIL"] = PFI_NIL
        msg["X-MSS-CODECDA"] = ",".join(h.code or "" for _, h in documents)
        msg["X-MSS-INS"] = "O" if ins else "N"
        body = (
            bodies.get("CORPSMAIL_PS")
            or next(iter(bodies.values()), "")
            or "Document transmis par la plateforme d'intégration."
        )
        msg.set_content(body)
        patient_cx = ins.to_xds() if ins else ""
        msg.add_attachment(
            build_xdm(documents, patient_cx, f"1.2.250.1.999.{essms or '0'}"),
            maintype="application",
            subtype="zip",
            filename="IHE_XDM.ZIP",
        )
        data = msg.as_bytes()
        known = [r for r in recipients if directory.get(r) is not None]
        counts = MailFlow.counts([{"address": r, "type": str(directory.get(r).type)} for r in known])  # type: ignore[union-attr]
        # a mailbox of another open test session than the relaying establishment's is not delivered (its ZAM^Z02
        # says so): mock_services.mssante.isolation
        caller = connection_caller(self.ctx, finess=essms)
        withheld = {
            r: why
            for r in known
            if (box := directory.get(r)) is not None and (why := mailbox_refusal(self.ctx, caller, box)) is not None
        }
        exchange = self.ctx.record(
            RELAY,
            Outcome.ACCEPTED,
            actor=from_address,
            essms=essms,
            person=person,
            payload=data,
            payload_type="message/rfc822",
            details={
                "from": from_address,
                "recipients": [
                    {"address": r, "known": r in known, **({"autre_session": withheld[r]} if r in withheld else {})}
                    for r in recipients
                ],
                "recipient_counts": counts,
                "document": document_exchange.id,
                "flags": flags,
                "message_id": str(msg["Message-ID"]),
            },
        )
        reachable = [r for r in known if r not in withheld]
        delivered = self.flow.deliver(from_address, reachable, data, exchange.id, session=exchange.session_id)
        return set(delivered) | {r for r in reachable if r.casefold() in {d.casefold() for d in delivered}}
