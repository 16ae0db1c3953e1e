"""The PFI rules of :mod:`harness.validators.hl7v2_relay` on parsed messages, without the relay: EXACT findings
(code, location, message) and the volet's tables written out (ANS « Transmission d'un document CDA-R2 en HL7 v2 »
v2.1 / v2.0, CI-SIS INS annex PID-3, HL7 v2.5 table 0357)."""

from __future__ import annotations

import base64

import pytest

from harness.fields import hl7v2
from harness.fields.identity import parse_ins
from harness.validators import Finding, Severity
from harness.validators import hl7v2_relay as R
from harness.validators.cda import CdaHeader

INS_A = "238047505612394"
INS_B = "170018710100180"
OID_TEST = "1.2.250.1.213.1.4.10"
OID_NIR = "1.2.250.1.213.1.4.8"
PID3 = f"{INS_A}^^^ASIP-SANTE-INS-NIR&{OID_TEST}&ISO^INS"
CDA = base64.b64encode(b"<ClinicalDocument/>").decode()


def msg(*segments: str, kind: str = "ORU^R01^ORU_R01") -> hl7v2.Hl7Message:
    head = f"MSH|^~\\&|DUI|ESSMS|PFI|PFI|20250101120000||{kind}|1|P|2.5"
    return hl7v2.parse("\r".join((head, *segments)))


def found(items: list[Finding]) -> list[tuple[str, str]]:
    return [(f.code, f.location) for f in items]


def test_the_volet_tables() -> None:
    assert R.DOCUMENT_TYPES == {"ORU^R01", "MDM^T02", "MDM^T10", "MDM^T04"}
    assert dict(R.ORC_EVENTS) == {
        "NW": "initial",
        "RO": "remplacement",
        "RP": "remplacement",
        "XO": "remplacement",
        "CA": "suppression",
        "OC": "suppression",
    }
    assert dict(R.MDM_EVENTS) == {"T02": "initial", "T10": "remplacement", "T04": "suppression"}
    assert (R.V20_ORC, dict(R.V20_EVENTS)) == ("SC", {"F": "initial", "C": "remplacement", "D": "suppression"})
    mismatch = ("904", "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur")
    assert R.INS_MISMATCH == mismatch
    assert {code: tuple(vars(ack).values()) for code, ack in R.ACK_ERRORS.items()} == {
        "HL7-PID-INS-INVALIDE": ("AE", "102", "PID^1^3^1", None),
        "HL7-CDA-PLUSIEURS-INS": ("AE", "207", "OBX^1^5", mismatch),
        "HL7-PID-INS-DIFFERENT": ("AE", "207", "PID^1^3^1", mismatch),
        "HL7-DRAPEAUX-HORS-MATRICE": ("AE", "207", "", None),
        "HL7-AUCUN-DESTINATAIRE-MSS": ("AE", "207", "", None),
        "HL7-ORC-1": ("AE", "103", "ORC^1^1", None),
        "HL7-VOLET-2.0": ("AR", "203", "MSH^1^21", None),
        "HL7-OBX-11": ("AE", "103", "OBX^1^11", None),
        "HL7-SANS-DOCUMENT": ("AE", "101", "", None),
    }


# ---------------------------------------------------------------------------------------------------- identities


@pytest.mark.parametrize(
    ("pid3", "raw", "ins", "error"),
    [
        (PID3, INS_A, (INS_A, OID_TEST), None),
        (f"IPP1^^^HOP&1.2.3.4&ISO^PI~{PID3}", INS_A, (INS_A, OID_TEST), None),
        (f"{INS_B}^^^ASIP-SANTE-INS-NIR&{OID_NIR}&ISO^INS~{PID3}", INS_B, (INS_B, OID_NIR), None),
        (f"{INS_A[:13]}95^^^ASIP-SANTE-INS-NIR&{OID_TEST}&ISO^INS", f"{INS_A[:13]}95", None, "INS-KEY"),
        (f"{INS_A}^^^{OID_TEST}^INS", None, None, None),
        ("IPP1^^^HOP&1.2.3.4&ISO^PI", None, None, None),
        ("", None, None, None),
    ],
)
def test_pid_identity(pid3: str, raw: str | None, ins: tuple[str, str] | None, error: str | None) -> None:
    got = R.pid_identity(msg(f"PID|1||{pid3}"))
    assert got.raw == raw
    assert ((got.ins.value, got.ins.oid) if got.ins else None) == ins
    assert (got.error.code if got.error else None) == error


def test_no_pid_no_identity() -> None:
    assert R.pid_identity(msg("ORC|NW")) == R.PidIdentity()


def header(value: str | None, oid: str = OID_TEST) -> CdaHeader:
    return CdaHeader(ins=parse_ins(value, oid) if value else None)


PID_A = R.PidIdentity(INS_A, parse_ins(INS_A, OID_TEST))


@pytest.mark.parametrize(
    ("pid", "headers", "expected"),
    [
        (PID_A, [header(INS_A), header(None), header(INS_A)], []),
        (PID_A, [], []),
        (PID_A, [header(None)], []),
        (R.PidIdentity(), [header(INS_A)], []),
        (R.PidIdentity(), [header(INS_A), header(INS_B)], [("HL7-CDA-PLUSIEURS-INS", "OBX-5")]),
        (PID_A, [header(INS_B)], [("HL7-PID-INS-DIFFERENT", "PID-3")]),
        (PID_A, [header(INS_A, "1.2.250.1.213.1.4.11")], [("HL7-PID-INS-DIFFERENT", "PID-3")]),
        (PID_A, [header(INS_A), header(INS_B)], [("HL7-CDA-PLUSIEURS-INS", "OBX-5")]),
    ],
)
def test_identity_findings(pid: R.PidIdentity, headers: list[CdaHeader], expected: list[tuple[str, str]]) -> None:
    got = R.identity_findings(pid, headers)
    assert found(got) == expected
    assert all(f.severity is Severity.ERROR for f in got)


def test_identity_messages() -> None:
    invalid = R.pid_identity(msg(f"PID|1||{INS_A[:13]}95^^^ASIP-SANTE-INS-NIR&{OID_TEST}&ISO^INS"))
    (finding,) = R.identity_findings(invalid, [header(INS_B)])
    assert (finding.code, finding.location) == ("HL7-PID-INS-INVALIDE", "PID-3")
    assert finding.message == f"INS de PID-3 invalide ({INS_A[:13]}95): {invalid.error.message}"
    (finding,) = R.identity_findings(R.PidIdentity(), [header(INS_B), header(INS_A)])
    assert finding.message == (
        f"les documents CDA du message portent plusieurs INS ({INS_B}, {INS_A}): un seul patient par message (904)"
    )
    (finding,) = R.identity_findings(PID_A, [header(INS_B, OID_TEST)])
    assert finding.message == (
        f"INS de PID-3 ({INS_A}, OID {OID_TEST}) différent de l'INS du document CDA ({INS_B}, OID {OID_TEST}): "
        "aucun envoi (904)"
    )


def test_cda_identities_and_person() -> None:
    headers = [header(INS_B), header(None), header(INS_A), header(INS_B)]
    assert R.cda_identities(headers) == [(INS_B, OID_TEST), (INS_A, OID_TEST)]
    assert R.person_ins(PID_A, [header(INS_B)]).value == INS_A
    assert R.person_ins(R.PidIdentity(), [header(None), header(INS_B), header(INS_A)]).value == INS_B
    assert R.person_ins(R.PidIdentity(), [header(None)]) is None


# ---------------------------------------------------------------------------------------------------- OBX


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (["OBX", "1", "CE", "DESTDMP^^MetaDMPMSS", "", "Y"], ("DESTDMP", "Y")),
        (["OBX", "1", "CWE", "MASQUE_PS^Masqué^MetaDMPMSS", "", "n^non"], ("MASQUE_PS", "N")),
        (["OBX", "1", "ST", "DESTDMP^^MetaDMPMSS", "", "Y"], None),
        (["OBX", "1", "CE", "DESTDMP^^LN", "", "Y"], None),
        (["OBX", "1", "CE", "DESTDMP^^MetaDMPMSS", ""], None),
    ],
)
def test_flag_value(fields: list[str], expected: tuple[str, str] | None) -> None:
    assert R.flag_value(fields) == expected


def test_obx_content_sorts_flags_documents_and_bodies() -> None:
    body = base64.b64encode("Bonjour é".encode()).decode()
    content = R.obx_content(
        msg(
            "OBX|1|CE|DESTMSSANTEPS^^MetaDMPMSS||y",
            "OBX|2|CWE|DESTDMP^^MetaDMPMSS||N",
            f"OBX|3|ED|11488-4^CR^LN||^TEXT^XML^Base64^{CDA}",
            f"OBX|4|ED|CORPSMAIL_PS^Corps^MetaDMPMSS||^TEXT^^Base64^{body}",
            "OBX|5|ED|OBJET^XDM/1.0/DDM+CR^L||^TEXT^^^Objet",
            f"OBX|6|ED|PDF^Copie^LN||^APPLICATION^PDF^Base64^{base64.b64encode(b'%PDF-1.4').decode()}",
            "OBX|7|ST|TEXTE^^L||<pas un document>",
            "OBX|8|ED|11488-4^CR^LN||^TEXT^XML^^  <ClinicalDocument/>",
        )
    )
    assert content.flags == {"DESTMSSANTEPS": "Y", "DESTDMP": "N"}
    assert content.documents == [("3", b"<ClinicalDocument/>"), ("8", b"  <ClinicalDocument/>")]
    assert content.bodies == {"CORPSMAIL_PS": "Bonjour é", "OBJET": "Objet"}


def test_a_body_is_read_as_utf8() -> None:
    invalid = base64.b64encode(b"caf\xe9").decode()  # Latin-1, not UTF-8
    content = R.obx_content(msg(f"OBX|1|ED|CORPSMAIL_PATIENT^Corps^MetaDMPMSS||^TEXT^^Base64^{invalid}"))
    assert content.bodies == {"CORPSMAIL_PATIENT": "caf\ufffd"} and content.documents == []


def test_document_findings() -> None:
    assert R.document_findings("suppression", []) == []
    assert R.document_findings("initial", [("1", b"<x/>")]) == []
    (finding,) = R.document_findings("remplacement", [])
    assert (finding.code, finding.location, finding.severity) == ("HL7-SANS-DOCUMENT", "OBX-5", Severity.ERROR)
    assert finding.message == "aucun document CDA (OBX de type ED) dans le message"


NONE = "HL7-AUCUN-DESTINATAIRE-MSS"
OUT = "HL7-DRAPEAUX-HORS-MATRICE"


@pytest.mark.parametrize(
    ("yes", "dmp_only", "expected"),
    [
        # PS and patient: no visibility restriction at all
        ({"DESTMSSANTEPS", "DESTMSSANTEPAT"}, False, None),
        ({"DESTMSSANTEPS", "DESTMSSANTEPAT", "DESTDMP"}, False, None),
        ({"DESTMSSANTEPS", "DESTMSSANTEPAT", "MASQUE_PS"}, False, OUT),
        ({"DESTMSSANTEPS", "DESTMSSANTEPAT", "INVISIBLE_PATIENT"}, False, OUT),
        ({"DESTMSSANTEPS", "DESTMSSANTEPAT", "INVISIBLE_REP_LEGAUX"}, False, OUT),
        ({"DESTMSSANTEPS", "DESTMSSANTEPAT", "CONNEXION_SECRETE"}, False, OUT),
        # PS alone: invisible to the patient, nothing else
        ({"DESTMSSANTEPS", "INVISIBLE_PATIENT"}, False, None),
        ({"DESTMSSANTEPS", "INVISIBLE_PATIENT", "DESTDMP"}, False, None),
        ({"DESTMSSANTEPS"}, False, OUT),
        ({"DESTMSSANTEPS", "INVISIBLE_PATIENT", "MASQUE_PS"}, False, OUT),
        ({"DESTMSSANTEPS", "INVISIBLE_PATIENT", "INVISIBLE_REP_LEGAUX"}, False, OUT),
        ({"DESTMSSANTEPS", "INVISIBLE_PATIENT", "CONNEXION_SECRETE"}, False, OUT),
        # patient alone: visible to them, not secret, not for the DMP
        ({"DESTMSSANTEPAT"}, False, None),
        ({"DESTMSSANTEPAT", "MASQUE_PS", "INVISIBLE_REP_LEGAUX"}, False, None),
        ({"DESTMSSANTEPAT", "INVISIBLE_PATIENT"}, False, OUT),
        ({"DESTMSSANTEPAT", "CONNEXION_SECRETE"}, False, OUT),
        ({"DESTMSSANTEPAT", "DESTDMP"}, False, OUT),
        # no MSSanté recipient
        (set(), False, NONE),
        (set(), True, NONE),
        ({"DESTDMP"}, False, NONE),
        ({"DESTDMP"}, True, None),
        ({"DESTDMP", "INVISIBLE_PATIENT"}, True, None),
    ],
)
def test_the_management_matrix(yes: set[str], dmp_only: bool, expected: str | None) -> None:
    flags = {name: "Y" if name in yes else "N" for name in R.MATRIX_FLAGS}
    assert [f.code for f in R.matrix_findings(flags, dmp_only=dmp_only)] == ([expected] if expected else [])
    only_yes = {name: "Y" for name in yes}  # an absent flag reads N
    assert [f.code for f in R.matrix_findings(only_yes, dmp_only=dmp_only)] == ([expected] if expected else [])


def test_matrix_messages() -> None:
    (finding,) = R.matrix_findings({"DESTMSSANTEPS": "Y", "DESTDMP": "y"})
    assert (finding.code, finding.location) == (OUT, "OBX")
    assert finding.message == (
        "combinaison de drapeaux MetaDMPMSS hors de la matrice de gestion MSSanté: MASQUE_PS=N, INVISIBLE_PATIENT=N, "
        "INVISIBLE_REP_LEGAUX=N, CONNEXION_SECRETE=N, DESTDMP=y, DESTMSSANTEPS=Y, DESTMSSANTEPAT=N"
    )
    assert [f.code for f in R.matrix_findings({"DESTDMP": "Y"})] == [NONE]  # an MSSanté relay by default
    (finding,) = R.matrix_findings({})
    assert (finding.code, finding.location, finding.message) == (
        NONE,
        "OBX",
        "aucun destinataire MSSanté (DESTMSSANTEPS et DESTMSSANTEPAT à N)",
    )


# ---------------------------------------------------------------------------------------------------- events


@pytest.mark.parametrize(
    ("kind", "event"),
    [
        ("MDM^T02^MDM_T02", "initial"),
        ("MDM^T10", "remplacement"),
        ("MDM^T04", "suppression"),
        ("MDM^T01", None),
        ("ADT^A01", None),
    ],
)
def test_mdm_events(kind: str, event: str | None) -> None:
    assert R.message_event(msg("ORC|SC", kind=kind)) == R.Event(event)


@pytest.mark.parametrize(
    ("orc1", "event"),
    [("NW", "initial"), ("RO", "remplacement"), ("RP", "remplacement"), ("XO", "remplacement"), ("CA", "suppression"),
     ("OC", "suppression")],
)  # fmt: skip
def test_volet_21_events(orc1: str, event: str) -> None:
    assert R.message_event(msg(f"ORC|{orc1}")) == R.Event(event, "2.1")


@pytest.mark.parametrize("segments", [("ORC|XX",), ("ORC|",), ("PID|1",)])
def test_unknown_orc1(segments: tuple[str, ...]) -> None:
    got = R.message_event(msg(*segments))
    assert (got.name, got.volet) == (None, None)
    orc1 = segments[0][4:] if segments[0].startswith("ORC") else ""
    assert (got.finding.code, got.finding.location) == ("HL7-ORC-1", "ORC-1")
    assert got.finding.message == f"ORC-1 « {orc1} » non reconnu (NW, RO, RP, XO, CA, OC)"


def ed(status: str, code: str = "11488-4^CR^LN") -> str:
    return f"OBX|1|ED|{code}||^TEXT^XML^Base64^{CDA}||||||{status}"


@pytest.mark.parametrize(
    ("obx", "event", "statuses"),
    [
        ((ed("F"),), "initial", None),
        ((ed("C"), ed("C")), "remplacement", None),
        ((ed("D"),), "suppression", None),
        (
            (ed("F"), ed("X", "CORPSMAIL_PS^Corps^MetaDMPMSS"), "OBX|3|CE|DESTDMP^^MetaDMPMSS||Y||||||Z"),
            "initial",
            None,
        ),
        ((ed("F"), ed("C")), None, "['C', 'F']"),
        ((ed("X"),), None, "['X']"),
        ((ed(""),), None, "['']"),
        (("OBX|1|CE|DESTDMP^^MetaDMPMSS||Y||||||F",), None, "absent"),
        ((), None, "absent"),
    ],
)
def test_volet_20_events(obx: tuple[str, ...], event: str | None, statuses: str | None) -> None:
    got = R.message_event(msg("ORC|SC", *obx))
    assert (got.name, got.volet) == (event, "2.0")
    if statuses is None:
        assert got.finding is None
    else:
        assert (got.finding.code, got.finding.location) == ("HL7-OBX-11", "OBX-11")
        assert got.finding.message == f"volet 2.0 (ORC-1 SC): OBX-11 des documents {statuses}, attendu F, C ou D"


def test_volet_20_refused_on_demand() -> None:
    got = R.message_event(msg("ORC|SC", ed("F")), accept_v20=False)
    assert (got.name, got.volet) == (None, "2.0")
    assert (got.finding.code, got.finding.location, got.finding.severity) == ("HL7-VOLET-2.0", "MSH-21", Severity.ERROR)
    assert got.finding.message == "version 2.0 du volet non prise en charge, 2.1 attendue"
    assert R.message_event(msg("ORC|NW"), accept_v20=False) == R.Event("initial", "2.1")
