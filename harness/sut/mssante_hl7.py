"""The reference DUI as an HL7 v2 "CREATEUR": it hands a CDA document to the integration platform (ORU^R01 or
MDM^T02 over MLLP, ANS volets "Transmission d'un document CDA-R2 en HL7 v2" v2.1 and "Transmission LPS par
courriel MSSanté"), reads the ACK, then acknowledges each business acknowledgement (ZAM^Z02 / ZAM^Z03) it gets.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from harness.fields import hl7v2
from harness.fields.identity import INS, compute_key
from harness.sut.base import ActionResult, ActionStatus, MssanteRelay, SutEnvironment
from harness.sut.documents import BuildOptions, author_id, build_cda
from harness.validators.cda import DOCUMENT_TYPES, LOINC

FLAG = "OBX|{n}|CE|{code}^{label}^MetaDMPMSS||{value}^^expandedYes-NoIndicator||||||F"
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


@dataclass(frozen=True)
class RelayOptions:
    """How the DUI builds and follows its HL7 v2 message: the CDA document's options, whether it sets
    DESTMSSANTEPAT when the person is a recipient, and whether it acknowledges the ZAM business receipts (the
    faulty DUI's ``hl7-sans-destinataire-patient`` and ``hl7-zam-ignore`` turn them off), and which INS it puts in
    PID-3 (``hl7-pid-autre-ins``, ``hl7-cle-ins-pid-erronee``)."""

    document: BuildOptions = field(default_factory=BuildOptions)
    patient_flag: bool = True
    acknowledge_zam: bool = True
    pid_ins: str = "person"  # PID-3: "person" (its INS), "other" (another person's), "wrong-key" (its INS, bad key)


def build_document_message(action: MssanteRelay, control_id: str, options: RelayOptions = RelayOptions()) -> str:
    """The ORU^R01 (or MDM^T02) carrying the person's CDA document and the MetaDMPMSS routing flags."""
    person, establishment = action.person, action.establishment
    doc = DOCUMENT_TYPES[action.document_kind]
    cda = build_cda(person, establishment, action.document_kind, options=options.document)
    system = "LN" if doc.code_system == LOINC else doc.code_system
    code = f"{doc.code}^{hl7v2.escape(doc.display)}^{system}"
    ed = f"^TEXT^XML^Base64^{base64.b64encode(cda).decode('ascii')}"
    pro = [r for r in action.recipients if r != "patient"]
    to_patient = action.to_patient and options.patient_flag
    flags = {
        "MASQUE_PS": "N",
        "INVISIBLE_PATIENT": "N" if action.to_patient else "Y",
        "INVISIBLE_REP_LEGAUX": "N",
        "CONNEXION_SECRETE": "N",
        "MODIF_CONF_CODE": "N",
        "DESTDMP": "N",
        "DESTMSSANTEPS": "Y" if pro else "N",
        "DESTMSSANTEPAT": "Y" if to_patient else "N",
        "ACK_RECEPTION": "Y",
        "ACK_LECTURE_MSS": "Y",
    }
    mdm = action.message_type.startswith("MDM")
    structure = (
        f"{hl7v2.escape(establishment.name)}^^^^^ASIP-SANTE-ST&1.2.250.1.71.4.2.2&ISO^FINEG^^^1{establishment.finess}"
    )
    author = f"{author_id(establishment)}^DUPONT^Claire^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    segments = [
        hl7v2.msh(
            "DUI-REF",
            establishment.finess,
            "PFI",
            "SIMULATEUR",
            f"{action.message_type}^{'MDM_T02' if mdm else 'ORU_R01'}",
            control_id,
            "2.6" if mdm else "2.5",
            profile="1.0^CISIS_CDA_HL7_LPS" if mdm else "2.1^CISIS_CDA_HL7_V2",
        ),
    ]
    if mdm:
        segments.append(f"EVN||{hl7v2.timestamp()}")
    segments += [
        f"PID|||{_pid_cx(options.pid_ins, person.ins)}||{hl7v2.escape(person.family.upper())}^{hl7v2.escape(person.given)}^^^^^L||"
        f"{person.birth_date:%Y%m%d}|{person.sex}",
        "PV1|1|N",
    ]
    if mdm:
        segments.append(f"TXA|1|{doc.code}|TEXT|{hl7v2.timestamp()}||||||||2.25.{uuid.uuid4().int}||||||LA")
    else:
        segments += [f"ORC|NW|{control_id}^DUI-REF", f"OBR|1|{control_id}^DUI-REF||{code}|||{hl7v2.timestamp()}"]
    segments.append(f"PRT||UC||SB^^participation|{author}|||{structure}|||||||^^X.400^{establishment.dui_mailbox}")
    for address in pro:
        segments.append(f"PRT||UC||RCT^^participation|||||||||||^^X.400^{address}")
    if to_patient:
        segments.append(
            f"PRT||UC||RCT^^participation|{person.ins.value}^{hl7v2.escape(person.family.upper())}^"
            f"{hl7v2.escape(person.given)}|||||||||||^^X.400^{person.mailbox}"
        )
    number = 1
    segments.append(f"OBX|{number}|ED|{code}||{ed}||||||F")
    if not mdm:
        for name, value in flags.items():
            number += 1
            segments.append(FLAG.format(n=number, code=name, label=hl7v2.escape(FLAG_LABELS[name]), value=value))
    return "\r".join(segments)


def _pid_cx(which: str, ins: INS) -> str:
    """PID-3: the person's INS (CI-SIS INS annex), or what the faulty DUI puts there instead."""
    if which == "other":  # a record merged with another person's: a valid INS, not this person's
        order = f"{int(ins.number[10:]) % 999 + 1:03d}"
        number = ins.number[:10] + order
        return replace(ins, number=number, key=compute_key(number)).to_hl7v2_cx()
    if which == "wrong-key":  # the key recomputed wrongly
        wrong = f"{int(ins.key) % 97 + 1:02d}"
        return ins.to_hl7v2_cx().replace(ins.value, ins.number + wrong, 1)
    return ins.to_hl7v2_cx()


def _ack(zam: hl7v2.Hl7Message) -> str:
    return hl7v2.build_ack(hl7v2.Header.of(zam), "AA", control_id=f"DUI{uuid.uuid4().hex[:10]}")


ZAM_QUIET_SECONDS = 1.0  # no further ZAM within this delay: the platform sends no more
CLOSE_WAIT_SECONDS = 2.0  # bound on the wait for the platform to close once the DUI has said all


@dataclass
class _ExpectedZams:
    """The business acknowledgements the platform owes (``ack-metier-zam``): one ``ZAM^Z02`` per recipient, then,
    for an ORU^R01 sent with ``ACK_LECTURE_MSS`` = Y (volet « Transmission d'un document CDA-R2 en HL7 v2 »), one
    ``ZAM^Z03`` per professional recipient whose Z02 says delivered (a patient's mailbox sends no read receipt;
    an MDM^T02 of the LPS volet carries no MetaDMPMSS flag, so no read receipt is asked). Known once every Z02 is
    in: the DUI stops waiting then instead of waiting out a quiet delay."""

    professionals: set[str]
    patient: str | None
    read_receipts: bool
    reception: dict[str, bool] = field(default_factory=dict)  # address -> delivered (Z02)
    read: set[str] = field(default_factory=set)  # addresses of the Z03 received

    def received(self, zam: hl7v2.Hl7Message) -> None:
        trigger = zam.message_type.partition("^")[2]
        ok = False
        for obx in zam.all("OBX"):  # pairs: CWE (Y/N) then XTN (^^X.400^address)
            value = hl7v2.field_text(obx, 5)
            if hl7v2.field_text(obx, 2) == "CWE":
                ok = hl7v2.component(value, 1) == "Y"
            elif hl7v2.field_text(obx, 2) == "XTN":
                address = hl7v2.component(value, 4).lower()
                if trigger == "Z02":
                    self.reception[address] = ok
                elif trigger == "Z03":
                    self.read.add(address)

    def complete(self) -> bool:
        recipients = self.professionals | ({self.patient} if self.patient else set())
        if not recipients <= set(self.reception):
            return False
        readers = {a for a in self.professionals if self.reception.get(a)} if self.read_receipts else set()
        return readers <= self.read


def _close_after_platform(sock: socket.socket, buffer: bytearray, data: dict[str, Any]) -> None:
    """Say the DUI has nothing more to send (half-close) and wait, bounded, for the platform to close: it does
    once it has journaled the last acknowledgement, so the exchange is complete when the action reports. A ZAM
    still arriving is noted (it can no longer be acknowledged)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + CLOSE_WAIT_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        block = _read_block(sock, buffer, left)
        if block is None:
            return
        with contextlib.suppress(hl7v2.Hl7Error):
            data["zam"].append(hl7v2.scan(block).message_type)


def _read_block(sock: socket.socket, buffer: bytearray, timeout: float) -> bytes | None:
    sock.settimeout(timeout)
    while True:
        blocks = hl7v2.split_frames(bytes(buffer))
        if blocks:
            end = buffer.find(hl7v2.FS + hl7v2.CR) + 2
            del buffer[:end]
            return blocks[0]
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, socket.timeout):
            return None
        if not chunk:
            return None
        buffer += chunk


def relay_document(env: SutEnvironment, action: MssanteRelay, options: RelayOptions = RelayOptions()) -> ActionResult:
    """Send the document message to the relay (``endpoints["mssante"]["mllp"]``), read its ACK, then each ZAM."""
    host, _, port = env.endpoints["mssante"]["mllp"].rpartition(":")
    control = f"DUI{uuid.uuid4().hex[:12]}"
    text = build_document_message(action, control, options)
    data: dict[str, Any] = {"control_id": control, "zam": []}
    buffer = bytearray()
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=30) as sock:
            sock.sendall(hl7v2.frame(text))
            block = _read_block(sock, buffer, 30)
            if block is None:
                return ActionResult(ActionStatus.FAILED, "pas d'acquittement HL7 de la plateforme d'intégration", data)
            ack = hl7v2.scan(block)  # the answers are read by field number: no hl7apy tree (issue 18)
            msa, err = ack.first("MSA"), ack.first("ERR")
            code = hl7v2.field_text(msa, 1) if msa is not None else ""
            data["ack"] = code
            if code != "AA":
                reason = hl7v2.field_text(err, 3) if err is not None else ""
                return ActionResult(ActionStatus.FAILED, f"message HL7 refusé par la plateforme: {code} {reason}", data)
            expected = _ExpectedZams(
                {a.lower() for a in action.recipients if a != "patient"},
                action.person.mailbox.lower() if action.to_patient and options.patient_flag else None,
                read_receipts=not action.message_type.startswith("MDM"),
            )
            while not expected.complete():
                block = _read_block(sock, buffer, ZAM_QUIET_SECONDS)
                if block is None:
                    break
                zam = hl7v2.scan(block)
                data["zam"].append(zam.message_type)
                expected.received(zam)
                if options.acknowledge_zam:
                    sock.sendall(hl7v2.frame(_ack(zam)))
            _close_after_platform(sock, buffer, data)
    except (OSError, hl7v2.Hl7Error) as exc:
        return ActionResult(ActionStatus.FAILED, f"échange HL7 v2 impossible: {exc}", data)
    return ActionResult(
        ActionStatus.DONE,
        f"document transmis (ACK {data['ack']}, accusés métier: {', '.join(data['zam']) or 'aucun'})",
        data,
    )
