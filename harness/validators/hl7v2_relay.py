"""The rules an integration platform (PFI) applies to an HL7 v2 document message before relaying it by MSSanté.

Specifications: ANS « Transmission d'un document CDA-R2 en HL7 v2 » (IG v2.1: ORU^R01, ORC-1 request codes,
``MetaDMPMSS`` OBX flags and the management matrix ``regles-gestion-mssante``; v2.0: ORC-1 ``SC`` and OBX-11
``F``/``C``/``D``), « Transmission d'un document CDA par un LPS par courriel MSSanté » (MDM^T02 / T10 / T04); CI-SIS
INS annex / IHE PAM France (PID-3 ``value^^^ASIP-SANTE-INS-NIR&<OID>&ISO^INS``); HL7 v2.5 table 0357 (ERR-3) and
the volet's applicationErrorCondition table (ERR-5).

Library code (a parsed message in, findings out), called by the MSSanté simulator's MLLP relay
(:mod:`mock_services.mssante.hl7relay`, which answers the first error with the ACK of :data:`ACK_ERRORS`) and by
``socle-harness validate`` on an HL7 v2 file: one implementation, the same finding codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from harness.fields import hl7v2
from harness.fields.identity import INS, INS_OIDS, InsError, parse_ins
from harness.validators import Finding
from harness.validators.cda import CdaHeader

DOCUMENT_TYPES = frozenset({"ORU^R01", "MDM^T02", "MDM^T10", "MDM^T04"})
ORC_EVENTS = MappingProxyType(
    {
        "NW": "initial",
        "RO": "remplacement",
        "RP": "remplacement",
        "XO": "remplacement",
        "CA": "suppression",
        "OC": "suppression",
    }
)
MDM_EVENTS = MappingProxyType({"T02": "initial", "T10": "remplacement", "T04": "suppression"})
# volet v2.0: ORC-1 = SC and the request is read from OBX-11 of the document OBX (F initial, C correction, D deletion)
V20_ORC = "SC"
V20_EVENTS = MappingProxyType({"F": "initial", "C": "remplacement", "D": "suppression"})
#: the volet's applicationErrorCondition (ERR-5) of a message whose identities disagree
INS_MISMATCH = ("904", "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur")
MATRIX_FLAGS = (
    "MASQUE_PS",
    "INVISIBLE_PATIENT",
    "INVISIBLE_REP_LEGAUX",
    "CONNEXION_SECRETE",
    "DESTDMP",
    "DESTMSSANTEPS",
    "DESTMSSANTEPAT",
)

PID_INS_INVALID = "HL7-PID-INS-INVALIDE"
SEVERAL_INS = "HL7-CDA-PLUSIEURS-INS"
INS_DIFFERENT = "HL7-PID-INS-DIFFERENT"
FLAGS_OUTSIDE_MATRIX = "HL7-DRAPEAUX-HORS-MATRICE"
NO_MSS_RECIPIENT = "HL7-AUCUN-DESTINATAIRE-MSS"
ORC1_UNKNOWN = "HL7-ORC-1"
VOLET_20_REFUSED = "HL7-VOLET-2.0"
OBX11_UNKNOWN = "HL7-OBX-11"
NO_DOCUMENT = "HL7-SANS-DOCUMENT"


@dataclass(frozen=True)
class AckError:
    """How a relay answers a finding: MSA-1, ERR-3 (HL7 table 0357), ERR-2 location, ERR-5 (volet code, label)."""

    ack_code: str
    err_code: str
    location: str = ""
    application_error: tuple[str, str] | None = None


#: the ACK of each finding code of this module (the relay answers the first error with it)
ACK_ERRORS: Mapping[str, AckError] = MappingProxyType(
    {
        PID_INS_INVALID: AckError("AE", "102", "PID^1^3^1"),
        SEVERAL_INS: AckError("AE", "207", "OBX^1^5", INS_MISMATCH),
        INS_DIFFERENT: AckError("AE", "207", "PID^1^3^1", INS_MISMATCH),
        FLAGS_OUTSIDE_MATRIX: AckError("AE", "207"),
        NO_MSS_RECIPIENT: AckError("AE", "207"),
        ORC1_UNKNOWN: AckError("AE", "103", "ORC^1^1"),
        VOLET_20_REFUSED: AckError("AR", "203", "MSH^1^21"),
        OBX11_UNKNOWN: AckError("AE", "103", "OBX^1^11"),
        NO_DOCUMENT: AckError("AE", "101"),
    }
)


@dataclass(frozen=True)
class PidIdentity:
    """The INS of PID-3 (a CX repetition whose assigning authority is an INS OID): parsed, or the error that
    prevented it (``raw`` keeps the text as sent)."""

    raw: str | None = None
    ins: INS | None = None
    error: InsError | None = None


def pid_identity(message: hl7v2.Hl7Message) -> PidIdentity:
    """PID-3 INS per the CI-SIS INS annex / IHE PAM France: ``value^^^ASIP-SANTE-INS-NIR&<OID>&ISO^INS``."""
    pid = message.first("PID")
    if pid is None:
        return PidIdentity()
    for cx in hl7v2.field_text(pid, 3).split("~"):
        authority = hl7v2.component(cx, 4)
        oid = authority.split("&")[1] if "&" in authority else ""
        if oid in INS_OIDS:
            raw = hl7v2.component(cx, 1)
            try:
                return PidIdentity(raw, parse_ins(raw, oid))
            except InsError as exc:
                return PidIdentity(raw, error=exc)
    return PidIdentity()


def cda_identities(headers: Iterable[CdaHeader]) -> list[tuple[str, str]]:
    """The distinct INS (value, OID) of the CDA documents of a message, sorted."""
    return sorted({(h.ins.value, h.ins.oid) for h in headers if h.ins is not None})


def identity_findings(pid: PidIdentity, headers: list[CdaHeader]) -> list[Finding]:
    """Every identity the message carries must agree: the INS of PID-3 is valid and is that of each CDA document
    (``recordTarget/patientRole/id``, OID and matricule); one patient per message. The first finding decides the
    relay's answer."""
    if pid.error is not None:
        return [Finding(PID_INS_INVALID, f"INS de PID-3 invalide ({pid.raw}): {pid.error.message}", location="PID-3")]
    cda = cda_identities(headers)
    if len(cda) > 1:
        return [
            Finding(
                SEVERAL_INS,
                f"les documents CDA du message portent plusieurs INS ({', '.join(v for v, _ in cda)}): un seul patient "
                "par message (904)",
                location="OBX-5",
            )
        ]
    if pid.ins is not None and cda and cda[0] != (pid.ins.value, pid.ins.oid):
        value, oid = cda[0]
        return [
            Finding(
                INS_DIFFERENT,
                f"INS de PID-3 ({pid.ins.value}, OID {pid.ins.oid}) différent de l'INS du document CDA "
                f"({value}, OID {oid}): aucun envoi (904)",
                location="PID-3",
            )
        ]
    return []


def person_ins(pid: PidIdentity, headers: list[CdaHeader]) -> INS | None:
    """The message's patient: the INS of PID-3, else the documents'."""
    return pid.ins or next((h.ins for h in headers if h.ins is not None), None)


def flag_value(fields: list[str]) -> tuple[str, str] | None:
    """``(code, Y|N)`` of a ``MetaDMPMSS`` OBX (its fields), else ``None``."""
    if len(fields) < 6 or fields[2] not in ("CE", "CWE"):
        return None
    code = fields[3]
    if hl7v2.component(code, 3) != "MetaDMPMSS":
        return None
    return hl7v2.component(code, 1), hl7v2.component(fields[5], 1).upper()


@dataclass
class ObxContent:
    """What the OBX segments of a document message carry: the ``MetaDMPMSS`` flags, the CDA documents
    (OBX-1, bytes of OBX-5) and the e-mail bodies (``CORPSMAIL_*`` / ``XDM/1.0/DDM``) by code."""

    flags: dict[str, str] = field(default_factory=dict)
    documents: list[tuple[str, bytes]] = field(default_factory=list)
    bodies: dict[str, str] = field(default_factory=dict)


def obx_content(message: hl7v2.Hl7Message) -> ObxContent:
    """Sort the OBX of a message into flags, CDA documents (ED data that is XML) and e-mail bodies."""
    content = ObxContent()
    for obx in message.all("OBX"):
        fields = hl7v2.fields_of(obx)
        flag = flag_value(fields)
        if flag is not None:
            content.flags[flag[0]] = flag[1]
            continue
        data = hl7v2.ed_data(obx)
        if data is None:
            continue
        code = hl7v2.component(fields[3], 1)
        if code.startswith("CORPSMAIL") or hl7v2.component(fields[3], 2).startswith("XDM/1.0/DDM"):
            content.bodies[code] = data.decode("utf-8", "replace")
        elif data.lstrip().startswith(b"<"):
            content.documents.append((fields[1], data))
    return content


def document_findings(event: str, documents: list[tuple[str, bytes]]) -> list[Finding]:
    """A message that is not a deletion carries at least one CDA document (OBX of type ED)."""
    if event == "suppression" or documents:
        return []
    return [Finding(NO_DOCUMENT, "aucun document CDA (OBX de type ED) dans le message", location="OBX-5")]


def matrix_findings(flags: Mapping[str, str], *, dmp_only: bool = False) -> list[Finding]:
    """The volet's management matrix for MSSanté (``regles-gestion-mssante``): at least one MSSanté recipient
    (``DESTMSSANTEPS`` / ``DESTMSSANTEPAT``), and only the combinations of the matrix. ``dmp_only``: a message
    for the DMP alone (``DESTDMP`` = Y, no MSSanté recipient) is outside the matrix's scope, not an error (an
    MSSanté relay refuses it: it has nowhere to send it)."""

    def y(name: str) -> bool:
        return flags.get(name, "N") == "Y"

    ps, pat = y("DESTMSSANTEPS"), y("DESTMSSANTEPAT")
    masked, invisible, legal, secret = (
        y("MASQUE_PS"),
        y("INVISIBLE_PATIENT"),
        y("INVISIBLE_REP_LEGAUX"),
        y("CONNEXION_SECRETE"),
    )
    if ps and pat:
        ok = not (masked or invisible or legal or secret)
    elif ps:
        ok = not masked and invisible and not legal and not secret
    elif pat:
        ok = not invisible and not secret and not y("DESTDMP")
    elif dmp_only and y("DESTDMP"):
        return []
    else:
        return [
            Finding(
                NO_MSS_RECIPIENT, "aucun destinataire MSSanté (DESTMSSANTEPS et DESTMSSANTEPAT à N)", location="OBX"
            )
        ]
    if ok:
        return []
    shown = ", ".join(f"{k}={flags.get(k, 'N')}" for k in MATRIX_FLAGS)
    return [
        Finding(
            FLAGS_OUTSIDE_MATRIX,
            f"combinaison de drapeaux MetaDMPMSS hors de la matrice de gestion MSSanté: {shown}",
            location="OBX",
        )
    ]


@dataclass(frozen=True)
class Event:
    """The request of a document message: ``initial`` / ``remplacement`` / ``suppression``, the volet version it
    was read from (``2.1`` / ``2.0``, ``None`` for MDM), or the finding that prevented reading it."""

    name: str | None
    volet: str | None = None
    finding: Finding | None = None


def message_event(message: hl7v2.Hl7Message, *, accept_v20: bool = True) -> Event:
    """ORC-1 (volet v2.1), OBX-11 of the documents when ORC-1 is ``SC`` (volet v2.0, refused when ``accept_v20`` is
    false), the trigger event for MDM (``T02`` / ``T10`` / ``T04``)."""
    if message.message_type != "ORU^R01":
        return Event(MDM_EVENTS.get(message.message_type.partition("^")[2]))
    orc = message.first("ORC")
    orc1 = hl7v2.field_text(orc, 1) if orc is not None else ""
    if orc1 != V20_ORC:
        if orc1 not in ORC_EVENTS:
            return Event(
                None,
                finding=Finding(
                    ORC1_UNKNOWN, f"ORC-1 « {orc1} » non reconnu (NW, RO, RP, XO, CA, OC)", location="ORC-1"
                ),
            )
        return Event(ORC_EVENTS[orc1], "2.1")
    if not accept_v20:
        return Event(
            None,
            "2.0",
            Finding(VOLET_20_REFUSED, "version 2.0 du volet non prise en charge, 2.1 attendue", location="MSH-21"),
        )
    statuses = {
        hl7v2.field_text(obx, 11)
        for obx in message.all("OBX")
        if hl7v2.field_text(obx, 2) == "ED" and not hl7v2.component(hl7v2.field_text(obx, 3), 1).startswith("CORPSMAIL")
    }
    events = {V20_EVENTS.get(status, "") for status in statuses}
    if len(events) != 1 or "" in events:
        return Event(
            None,
            "2.0",
            Finding(
                OBX11_UNKNOWN,
                f"volet 2.0 (ORC-1 SC): OBX-11 des documents {sorted(statuses) or 'absent'}, attendu F, C ou D",
                location="OBX-11",
            ),
        )
    return Event(events.pop(), "2.0")
