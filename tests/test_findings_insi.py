"""The INSi findings no other test triggers, each asserting the EXACT findings (codes and severities, in order):
the request's WS-Addressing headers (W3C WS-Addressing 1.0 SOAP binding; ANS "Guide d'intégration du téléservice
INSi" v3: wsa:Action and wsa:MessageID) and the response's ``RESULTAT`` values and CR (``INSi_RESULTAT_INS.xsd``:
``NumIdentifiant`` \\d{6}[A-Za-z0-9]\\d{6}, ``Cle`` [0-9]{2}, ``xsd:date``, ``Sexe`` [A-Z], CR 00 / 01 / 02 and
``INDIVIDU`` present exactly with CR 00).
"""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from lxml import etree

from harness.sut.base import InsiTraits
from harness.sut.insi_actions import REFERENCE_IDAM, build_request
from harness.validators import Severity
from harness.validators.insi import (
    MAX_REQUEST_BYTES,
    ContexteBAM,
    ContexteLPS,
    InsiFault,
    InsiResult,
    InsRef,
    Logiciel,
    Traits,
    birth_date_problem,
    normalise_trait,
    parse_fault,
    parse_request,
    parse_result,
    trait_characters_problem,
    validate_result,
)
from mock_services.insi.identities import QUALIFICATION_IDENTITIES
from mock_services.insi.soap import KNOWN_FAULTS, fault_envelope, result_envelope

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO  # noqa: E741
WSA = "http://www.w3.org/2005/08/addressing"
ACTION_TRAITS = "urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecTraitsIdentite"  # WSDL DESIR_ICIR_EXP_1.5.0
TRAITS = InsiTraits("MARTIN", ("JEANNE",), "F", "1938-04-12", "75056")


def request(*, drop: tuple[str, ...] = ()) -> bytes:
    body = build_request(
        TRAITS, emitter="990000016", idam=REFERENCE_IDAM, instance=str(uuid.uuid4()), message_id=str(uuid.uuid4())
    )
    root = etree.fromstring(body)
    for name in drop:
        for element in root.iter(f"{{{WSA}}}{name}"):
            element.getparent().remove(element)
    return etree.tostring(root)


def codes(findings: list) -> list[tuple[str, Severity]]:
    return [(f.code, f.severity) for f in findings]


@pytest.mark.parametrize(
    ("drop", "content_action", "expected", "action"),
    [
        ((), None, [], ACTION_TRAITS),
        (("Action",), ACTION_TRAITS, [], ACTION_TRAITS),
        (("Action",), None, [("INSI-ACTION-ABSENTE", W)], None),
        (("MessageID",), None, [("INSI-MESSAGEID-ABSENT", W)], ACTION_TRAITS),
        (("Action", "MessageID"), None, [("INSI-ACTION-ABSENTE", W), ("INSI-MESSAGEID-ABSENT", W)], None),
    ],
    ids=["complete", "action-in-content-type", "no-action", "no-message-id", "neither"],
)
def test_addressing_headers(
    drop: tuple[str, ...], content_action: str | None, expected: list[tuple[str, Severity]], action: str | None
) -> None:
    """Without any action the operation is read from the body (a warning); without wsa:MessageID the answer has no
    RelatesTo (a warning): the request is still served."""
    report = parse_request(request(drop=drop), content_action=content_action)
    assert codes(report.findings) == expected
    assert report.ok and report.action == action and report.traits is not None


# --------------------------------------------------------------------------------------------- responses
IDENTITY = QUALIFICATION_IDENTITIES[0]


def good() -> str:
    return result_envelope("00", IDENTITY).decode("utf-8")


def _replace_text(tag: str, value: str) -> str:
    """The reference answer with the first ``tag``'s text replaced."""
    text = good()
    start = text.index(f"<{tag}>") + len(tag) + 2
    end = text.index(f"</{tag}>", start)
    return text[:start] + value + text[end:]


RESPONSES: list[tuple[str, str, list[tuple[str, Severity]]]] = [
    ("NIR pattern", _replace_text("NumIdentifiant", "12345"), [("INSI-REPONSE-VALEUR", E)]),
    ("NIR with a letter at 8", _replace_text("NumIdentifiant", "2380412A75056"), [("INSI-REPONSE-VALEUR", E)]),
    ("key pattern", _replace_text("Cle", "7"), [("INSI-REPONSE-VALEUR", E)]),
    ("key letters", _replace_text("Cle", "AB"), [("INSI-REPONSE-VALEUR", E)]),
    ("sex pattern", _replace_text("Sexe", "f"), [("INSI-REPONSE-VALEUR", E)]),
    ("birth date pattern", _replace_text("DateNaissance", "12/04/1938"), [("INSI-REPONSE-VALEUR", E)]),
    ("CR 03", good().replace("<CodeCR>00</CodeCR>", "<CodeCR>03</CodeCR>"), [("INSI-REPONSE-CR", E)]),
    ("CR 01 with INDIVIDU", good().replace("<CodeCR>00</CodeCR>", "<CodeCR>01</CodeCR>"), [("INSI-REPONSE-CR", E)]),
    ("CR 00 without INDIVIDU", result_envelope("01").decode().replace(">01<", ">00<"), [("INSI-REPONSE-CR", E)]),
]


@pytest.mark.parametrize(("body", "expected"), [r[1:] for r in RESPONSES], ids=[r[0] for r in RESPONSES])
def test_each_response_deviation_is_named(body: str, expected: list[tuple[str, Severity]]) -> None:
    data = body.encode("utf-8")
    assert codes(validate_result(data)) == expected
    result = parse_result(data)
    assert isinstance(result, InsiResult) and codes(result.findings) == expected


def test_the_response_reference_is_clean() -> None:
    assert validate_result(good().encode()) == []


def test_history_dates_must_be_xsd_dates() -> None:
    identity = next(i for i in QUALIFICATION_IDENTITIES if i.history and i.history[0].start)
    text = result_envelope("00", identity).decode()
    start = text.index("<DateDeb>") + len("<DateDeb>")
    bad = text[:start] + "2020-13-01" + text[text.index("</DateDeb>", start) :]
    assert codes(validate_result(bad.encode())) == [("INSI-REPONSE-VALEUR", E)]


def test_a_fault_response_is_reported_as_such() -> None:
    fault = next(iter(KNOWN_FAULTS.values()))
    assert codes(validate_result(fault_envelope(fault, message_id="uuid:1"))) == [("INSI-REPONSE-FAUTE", I)]


# --------------------------------------------------------------------------------------------- requests
# A fixed reference request (the reference DUI's shape, ANS "Guide d'intégration du téléservice INSi" v3), each
# case below changing one thing in it and naming the exact findings (code, severity, location), in order.
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
ACTION_CV = "urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecCarteVitale"
BAM = (
    '<ctxbam:ContexteBAM xmlns:ctxbam="urn:siram:bam:ctxbam" Version="01_02"><ctxbam:Id>bam-1</ctxbam:Id>'
    "<ctxbam:Temps>2024-01-01T10:00:00Z</ctxbam:Temps><ctxbam:Emetteur>990000016</ctxbam:Emetteur>"
    "<ctxbam:COUVERTURE/></ctxbam:ContexteBAM>"
)
LPS = (
    '<ctxlps:ContexteLPS xmlns:ctxlps="urn:siram:lps:ctxlps" Nature="CTXLPS" Version="01_00"><ctxlps:Id>lps-1</ctxlps:Id>'
    "<ctxlps:Temps>2024-01-01T10:00:00.123+01:00</ctxlps:Temps><ctxlps:Emetteur>990000016</ctxlps:Emetteur>"
    '<ctxlps:LPS><ctxlps:IDAM R="4">IDAM-1</ctxlps:IDAM><ctxlps:Version>1.0</ctxlps:Version>'
    "<ctxlps:Instance>inst-1</ctxlps:Instance><ctxlps:Nom>DUI</ctxlps:Nom></ctxlps:LPS></ctxlps:ContexteLPS>"
)
ADDRESSING = f'<wsa:Action xmlns:wsa="{WSA}">{ACTION_TRAITS}</wsa:Action><wsa:MessageID xmlns:wsa="{WSA}">uuid:m-1</wsa:MessageID>'
RECSANS = (
    '<RECSANSVITALE xmlns="http://www.cnamts.fr/INSiRecSans"><NomNaissance>MARTIN</NomNaissance><Prenom>JEANNE</Prenom>'
    "<Sexe>F</Sexe><DateNaissance>1938-04-12</DateNaissance><LieuNaissance>75056</LieuNaissance></RECSANSVITALE>"
)
REFERENCE = (
    f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Header>{BAM}{LPS}{ADDRESSING}</soap:Header>'
    f"<soap:Body>{RECSANS}</soap:Body></soap:Envelope>"
)
R = "Body/RECSANSVITALE"
CB, CL = "Header/ContexteBAM", "Header/ContexteLPS"


def changed(*pairs: tuple[str, str], text: str = REFERENCE) -> bytes:
    """The reference request with each ``old`` replaced by ``new`` (``old`` must be there)."""
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return text.encode("utf-8")


def triples(findings: list) -> list[tuple[str, Severity, str]]:
    return [(f.code, f.severity, f.location) for f in findings]


def _header_block(name: str, must: str | None, ns: str = "urn:autre") -> str:
    attribute = "" if must is None else f' soap:mustUnderstand="{must}"'
    return f'<x:{name} xmlns:x="{ns}"{attribute}>v</x:{name}>'


REQUESTS: list[tuple[str, bytes, list[tuple[str, Severity, str]]]] = [
    ("reference", changed(), []),
    # envelope
    ("not an envelope", b"<Enveloppe/>", [("INSI-SOAP-ENVELOPPE", E, "/")]),
    ("soap 1.1", changed((SOAP12, SOAP11)), [("INSI-SOAP-VERSION", E, "/Envelope")]),
    ("no namespace", b"<Envelope><Body/></Envelope>", [("INSI-SOAP-VERSION", E, "/Envelope")]),
    ("malformed", b"<soap:Envelope", [("INSI-XML-MALFORME", E, "/")]),
    ("doctype", b"<!DOCTYPE a []><a/>", [("INSI-XML-DOCTYPE", E, "/")]),
    ("entity", b"<a>&inconnue;</a>", [("INSI-XML-ENTITE", E, "/")]),
    ("no body", changed((f"<soap:Body>{RECSANS}</soap:Body>", "")), [("INSI-SOAP-ENVELOPPE", E, "/Envelope")]),
    (
        "body before header",
        changed(
            ("<soap:Header>", f"<soap:Body>{RECSANS}</soap:Body><soap:Header>"),
            (f"</soap:Header><soap:Body>{RECSANS}</soap:Body>", "</soap:Header>"),
        ),
        [("INSI-SOAP-ENVELOPPE", E, "/Envelope")],
    ),
    (
        "stray element in envelope",
        changed(("</soap:Envelope>", "<soap:Trailer/></soap:Envelope>")),
        [("INSI-SOAP-ENVELOPPE", E, "/Envelope")],
    ),
    ("text in envelope", changed(("</soap:Body>", "</soap:Body>texte")), [("INSI-SOAP-ENVELOPPE", E, "/Envelope")]),
    ("text before header", changed(("<soap:Header>", "texte<soap:Header>")), [("INSI-SOAP-ENVELOPPE", E, "/Envelope")]),
    ("comment in envelope", changed(("<soap:Body>", "<!-- c --><soap:Body>")), []),
    # headers
    (
        "no header",
        changed((f"<soap:Header>{BAM}{LPS}{ADDRESSING}</soap:Header>", "")),
        [
            ("INSI-ENTETE-ABSENTE", E, "Header"),
            ("INSI-ENTETE-ABSENTE", E, "Header"),
            ("INSI-ACTION-ABSENTE", W, "Header"),
            ("INSI-MESSAGEID-ABSENT", W, "Header"),
        ],
    ),
    ("no bam", changed((BAM, "")), [("INSI-ENTETE-ABSENTE", E, "Header")]),
    ("no lps", changed((LPS, "")), [("INSI-ENTETE-ABSENTE", E, "Header")]),
    ("bam twice", changed((BAM, BAM + BAM)), [("INSI-ENTETE-INVALIDE", E, "Header")]),
    ("lps twice", changed((LPS, LPS + LPS)), [("INSI-ENTETE-INVALIDE", E, "Header")]),
    ("comment in header", changed((BAM, "<!-- c -->" + BAM)), []),
    (
        "unknown header, mustUnderstand true",
        changed((BAM, _header_block("Autre", "true") + BAM)),
        [("INSI-MUST-UNDERSTAND", E, "Header")],
    ),
    (
        "unknown header, mustUnderstand 1",
        changed((BAM, _header_block("Autre", " 1 ") + BAM)),
        [("INSI-MUST-UNDERSTAND", E, "Header")],
    ),
    ("unknown header, mustUnderstand false", changed((BAM, _header_block("Autre", "false") + BAM)), []),
    ("unknown header, no mustUnderstand", changed((BAM, _header_block("Autre", None) + BAM)), []),
    (
        "mustUnderstand before other errors",
        changed((BAM, _header_block("Autre", "true")), ("<Sexe>F</Sexe>", "<Sexe>X</Sexe>")),
        [
            ("INSI-MUST-UNDERSTAND", E, "Header"),
            ("INSI-ENTETE-ABSENTE", E, "Header"),
            ("INSI-TRAIT-INVALIDE", E, f"{R}/Sexe"),
        ],
    ),
    *(
        (f"wsa:{name} understood", changed((BAM, _header_block(name, "true", WSA) + BAM)), [])
        for name in ("To", "ReplyTo", "From", "FaultTo", "RelatesTo")
    ),
    (
        "wsse:Security understood",
        changed(
            (
                BAM,
                _header_block(
                    "Security",
                    "true",
                    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
                )
                + BAM,
            )
        ),
        [],
    ),
    ("empty message id", changed(("uuid:m-1", "")), [("INSI-MESSAGEID-ABSENT", W, "Header")]),
    # ContexteBAM
    ("bam without version", changed((' Version="01_02"', "")), [("INSI-ENTETE-INVALIDE", E, CB)]),
    ("bam version of lps", changed((' Version="01_02"', ' Version="01_00"')), [("INSI-ENTETE-INVALIDE", E, CB)]),
    ("bam nature", changed((' Version="01_02"', ' Version="01_02" Nature="CTXBAM"')), []),
    (
        "bam wrong nature",
        changed((' Version="01_02"', ' Version="01_02" Nature="CTXLPS"')),
        [("INSI-ENTETE-INVALIDE", E, CB)],
    ),
    (
        "bam temps not a datetime",
        changed(("<ctxbam:Temps>2024-01-01T10:00:00Z", "<ctxbam:Temps>2024-01-01")),
        [("INSI-ENTETE-INVALIDE", E, f"{CB}/Temps")],
    ),
    (
        "bam temps impossible",
        changed(("<ctxbam:Temps>2024-01-01T10:00:00Z", "<ctxbam:Temps>2024-02-30T10:00:00Z")),
        [("INSI-ENTETE-INVALIDE", E, f"{CB}/Temps")],
    ),
    (
        "bam temps with child",
        changed(("<ctxbam:Temps>2024-01-01T10:00:00Z", "<ctxbam:Temps><ctxbam:x/>2024-01-01T10:00:00Z")),
        [("INSI-ENTETE-INVALIDE", E, f"{CB}/Temps")],
    ),
    (
        "bam dateref",
        changed(("<ctxbam:COUVERTURE/>", "<ctxbam:DateRef>2024-01-01T10:00:00</ctxbam:DateRef><ctxbam:COUVERTURE/>")),
        [],
    ),
    (
        "bam bad dateref",
        changed(("<ctxbam:COUVERTURE/>", "<ctxbam:DateRef>hier</ctxbam:DateRef><ctxbam:COUVERTURE/>")),
        [("INSI-ENTETE-INVALIDE", E, f"{CB}/DateRef")],
    ),
    (
        "bam couverture stray",
        changed(("<ctxbam:COUVERTURE/>", "<ctxbam:COUVERTURE><ctxbam:Autre/></ctxbam:COUVERTURE>")),
        [("INSI-ENTETE-INVALIDE", E, f"{CB}/COUVERTURE")],
    ),
    (
        "bam couverture ok",
        changed(
            (
                "<ctxbam:COUVERTURE/>",
                "<ctxbam:COUVERTURE><ctxbam:GrandRegime>01</ctxbam:GrandRegime><ctxbam:BENEFICIAIRE/></ctxbam:COUVERTURE>",
            )
        ),
        [],
    ),
    ("bam without couverture", changed(("<ctxbam:COUVERTURE/>", "")), [("INSI-ENTETE-INVALIDE", E, CB)]),
    ("bam without id", changed(("<ctxbam:Id>bam-1</ctxbam:Id>", "")), [("INSI-ENTETE-INVALIDE", E, CB)]),
    # ContexteLPS
    ("lps version of bam", changed((' Version="01_00"', ' Version="01_02"')), [("INSI-ENTETE-INVALIDE", E, CL)]),
    ("lps wrong nature", changed(('Nature="CTXLPS"', 'Nature="CTXBAM"')), [("INSI-ENTETE-INVALIDE", E, CL)]),
    ("lps temps", changed(("2024-01-01T10:00:00.123+01:00", "10:00")), [("INSI-ENTETE-INVALIDE", E, f"{CL}/Temps")]),
    (
        "lps block absent",
        changed((LPS[LPS.index("<ctxlps:LPS>") : LPS.index("</ctxlps:ContexteLPS>")], "")),
        [("INSI-LPS-INCOMPLET", E, CL)],
    ),
    ("lps without nom", changed(("<ctxlps:Nom>DUI</ctxlps:Nom>", "")), [("INSI-LPS-INCOMPLET", E, f"{CL}/LPS")]),
    (
        "lps empty idam",
        changed(('<ctxlps:IDAM R="4">IDAM-1</ctxlps:IDAM>', '<ctxlps:IDAM R="4"/>')),
        [("INSI-LPS-INCOMPLET", E, f"{CL}/LPS")],
    ),
    (
        "lps without version",
        changed(("<ctxlps:Version>1.0</ctxlps:Version>", "")),
        [("INSI-LPS-INCOMPLET", E, f"{CL}/LPS")],
    ),
    (
        "lps without instance",
        changed(("<ctxlps:Instance>inst-1</ctxlps:Instance>", "")),
        [("INSI-LPS-INCOMPLET", E, f"{CL}/LPS")],
    ),
    (
        "lps out of order",
        changed(("<ctxlps:Nom>DUI</ctxlps:Nom>", ""), ("<ctxlps:LPS>", "<ctxlps:LPS><ctxlps:Nom>DUI</ctxlps:Nom>")),
        [("INSI-ENTETE-INVALIDE", E, f"{CL}/LPS")] * 3,
    ),
    ("lps nom 256", changed(("<ctxlps:Nom>DUI</ctxlps:Nom>", f"<ctxlps:Nom>{'N' * 256}</ctxlps:Nom>")), []),
    (
        "lps nom 257",
        changed(("<ctxlps:Nom>DUI</ctxlps:Nom>", f"<ctxlps:Nom>{'N' * 257}</ctxlps:Nom>")),
        [("INSI-ENTETE-INVALIDE", E, f"{CL}/LPS")],
    ),
    ("lps idam 257", changed(("IDAM-1", "I" * 257)), [("INSI-ENTETE-INVALIDE", E, f"{CL}/LPS")]),
    (
        "lps version 257",
        changed(("<ctxlps:Version>1.0", f"<ctxlps:Version>{'1' * 257}")),
        [("INSI-ENTETE-INVALIDE", E, f"{CL}/LPS")],
    ),
    ("lps instance 257", changed(("inst-1", "i" * 257)), [("INSI-ENTETE-INVALIDE", E, f"{CL}/LPS")]),
    # actions
    ("unknown action", changed((f">{ACTION_TRAITS}<", ">urn:autre<")), [("INSI-ACTION-INCONNUE", E, "Header/Action")]),
    (
        "carte vitale action with a traits body",
        changed((f">{ACTION_TRAITS}<", f">{ACTION_CV}<")),
        [("INSI-ACTION-INCONNUE", E, "Header/Action")],
    ),
    (
        "carte vitale",
        changed(
            (f">{ACTION_TRAITS}<", f">{ACTION_CV}<"), (RECSANS, '<RECVITALE xmlns="http://www.cnamts.fr/INSiRecVit"/>')
        ),
        [],
    ),
    # body
    ("text in body", changed(("<soap:Body>", "<soap:Body>texte")), [("INSI-CORPS-INVALIDE", E, "Body")]),
    ("empty body", changed((RECSANS, "")), [("INSI-CORPS-INVALIDE", E, "Body")]),
    ("two payloads", changed((RECSANS, RECSANS + RECSANS)), [("INSI-CORPS-INVALIDE", E, "Body")]),
    ("other payload", changed((RECSANS, '<RECSANSVITALE xmlns="urn:autre"/>')), [("INSI-CORPS-INVALIDE", E, "Body")]),
    ("payload without namespace", changed((RECSANS, "<RECSANSVITALE/>")), [("INSI-CORPS-INVALIDE", E, "Body")]),
    # traits
    (
        "no birth name",
        changed(("<NomNaissance>MARTIN</NomNaissance>", "")),
        [("INSI-TRAIT-ABSENT", E, f"{R}/NomNaissance")],
    ),
    ("no first name", changed(("<Prenom>JEANNE</Prenom>", "")), [("INSI-TRAIT-ABSENT", E, f"{R}/Prenom")]),
    ("no sex", changed(("<Sexe>F</Sexe>", "")), [("INSI-TRAIT-ABSENT", E, f"{R}/Sexe")]),
    (
        "no birth date",
        changed(("<DateNaissance>1938-04-12</DateNaissance>", "")),
        [("INSI-TRAIT-ABSENT", E, f"{R}/DateNaissance")],
    ),
    ("no birth place", changed(("<LieuNaissance>75056</LieuNaissance>", "")), []),
    ("corsican birth place", changed((">75056<", ">2A004<")), []),
    ("birth place of 4", changed((">75056<", ">7505<")), [("INSI-TRAIT-INVALIDE", E, f"{R}/LieuNaissance")]),
    ("empty birth name", changed((">MARTIN<", "> <")), [("INSI-TRAIT-INVALIDE", E, f"{R}/NomNaissance")]),
    ("birth name of 100", changed((">MARTIN<", f">{'A' * 100}<")), []),
    ("birth name of 101", changed((">MARTIN<", f">{'A' * 101}<")), [("INSI-TRAIT-INVALIDE", E, f"{R}/NomNaissance")]),
    ("birth name with a digit", changed((">MARTIN<", ">MART1N<")), [("INSI-TRAIT-INVALIDE", E, f"{R}/NomNaissance")]),
    ("birth name without letter", changed((">MARTIN<", ">- '<")), [("INSI-TRAIT-INVALIDE", E, f"{R}/NomNaissance")]),
    (
        "birth name with child",
        changed((">MARTIN<", "><b>MARTIN</b><")),
        [("INSI-CORPS-INVALIDE", E, f"{R}/NomNaissance")],
    ),
    ("accented names", changed((">MARTIN<", ">Lætitia d’Arc<"), (">JEANNE<", ">Hélène<")), []),
    (
        "second first name invalid",
        changed(("<Prenom>JEANNE</Prenom>", "<Prenom>JEANNE</Prenom><Prenom>P4UL</Prenom>")),
        [("INSI-TRAIT-INVALIDE", E, f"{R}/Prenom[2]")],
    ),
    ("ten first names", changed(("<Prenom>JEANNE</Prenom>", "<Prenom>JEANNE</Prenom>" * 10)), []),
    (
        "eleven first names",
        changed(("<Prenom>JEANNE</Prenom>", "<Prenom>JEANNE</Prenom>" * 11)),
        [("INSI-CORPS-INVALIDE", E, R)],
    ),
    ("sex M", changed(("<Sexe>F</Sexe>", "<Sexe>M</Sexe>")), []),
    ("sex U", changed(("<Sexe>F</Sexe>", "<Sexe>U</Sexe>")), [("INSI-TRAIT-INVALIDE", E, f"{R}/Sexe")]),
    (
        "birth date month 13",
        changed((">1938-04-12<", ">1938-13-12<")),
        [("INSI-TRAIT-INVALIDE", E, f"{R}/DateNaissance")],
    ),
    (
        "birth date in the future",
        changed((">1938-04-12<", ">2999-01-01<")),
        [("INSI-TRAIT-INVALIDE", E, f"{R}/DateNaissance")],
    ),
    (
        "trait out of order",
        changed(("<Sexe>F</Sexe>", ""), ("<NomNaissance>", "<Sexe>F</Sexe><NomNaissance>")),
        [("INSI-CORPS-INVALIDE", E, R)] * 2,
    ),
    (
        "warnings after errors",
        changed(
            ("<Sexe>F</Sexe>", "<Sexe>X</Sexe>"), (f'<wsa:MessageID xmlns:wsa="{WSA}">uuid:m-1</wsa:MessageID>', "")
        ),
        [("INSI-TRAIT-INVALIDE", E, f"{R}/Sexe"), ("INSI-MESSAGEID-ABSENT", W, "Header")],
    ),
]


@pytest.mark.parametrize(("data", "expected"), [r[1:] for r in REQUESTS], ids=[r[0] for r in REQUESTS])
def test_each_request_deviation_is_named(data: bytes, expected: list[tuple[str, Severity, str]]) -> None:
    report = parse_request(data)
    assert triples(report.findings) == expected
    assert report.ok is not any(severity is E for _, severity, _ in expected)


def test_the_reference_request_is_read_whole() -> None:
    report = parse_request(
        changed(
            ("<ctxbam:COUVERTURE/>", "<ctxbam:DateRef>2024-01-01T09:00:00Z</ctxbam:DateRef><ctxbam:COUVERTURE/>"),
            (' Version="01_02"', ' Version="01_02" Nature="CTXBAM"'),
        )
    )
    assert report.findings == [] and report.soap11 is False and report.not_understood == []
    assert (report.operation, report.action, report.message_id) == (
        "rechercherInsAvecTraitsIdentite",
        ACTION_TRAITS,
        "uuid:m-1",
    )
    assert report.bam == ContexteBAM("01_02", "bam-1", "2024-01-01T10:00:00Z", "990000016", "CTXBAM")
    assert report.lps == ContexteLPS(
        "01_00",
        "lps-1",
        "2024-01-01T10:00:00.123+01:00",
        "990000016",
        "CTXLPS",
        Logiciel("IDAM-1", "1.0", "inst-1", "DUI", "4"),
    )
    assert report.traits == Traits("MARTIN", ("JEANNE",), "F", "1938-04-12", "75056")
    assert report.traits.first_names_text == "JEANNE"


def test_a_carte_vitale_request_has_its_operation_and_no_traits() -> None:
    data = changed(
        (f">{ACTION_TRAITS}<", f">{ACTION_CV}<"), (RECSANS, '<RECVITALE xmlns="http://www.cnamts.fr/INSiRecVit"/>')
    )
    report = parse_request(data, content_action=ACTION_CV)
    assert report.findings == []
    assert (report.operation, report.action, report.traits) == ("rechercherInsAvecCarteVitale", ACTION_CV, None)


def test_a_partial_context_is_read_with_empty_fields() -> None:
    report = parse_request(
        changed(
            (LPS[LPS.index("<ctxlps:LPS>") : LPS.index("</ctxlps:ContexteLPS>")], ""),
            (
                "<ctxbam:Id>bam-1</ctxbam:Id><ctxbam:Temps>2024-01-01T10:00:00Z</ctxbam:Temps><ctxbam:Emetteur>990000016</ctxbam:Emetteur>",
                "",
            ),
            (' Version="01_02"', ""),
        )
    )
    assert report.bam == ContexteBAM("", "", "", None, None)
    assert report.lps is not None and report.lps.lps is None
    report = parse_request(changed(('<ctxlps:IDAM R="4">IDAM-1</ctxlps:IDAM>', "")))
    assert report.lps is not None and report.lps.lps == Logiciel(None, "1.0", "inst-1", "DUI", None)
    assert [f.message for f in report.findings] == ["identification du logiciel incomplète : IDAM absent(s)"]


def test_the_missing_software_fields_are_listed_in_order() -> None:
    report = parse_request(changed(("<ctxlps:LPS>", "<ctxlps:LPS/><!--"), ("</ctxlps:LPS>", "-->")))
    assert [f.message for f in report.findings] == [
        "identification du logiciel incomplète : IDAM, Nom, Version, Instance absent(s)"
    ]


def test_the_envelope_namespace_is_named_and_soap11_flagged() -> None:
    report = parse_request(changed((SOAP12, SOAP11)))
    assert report.soap11 is True
    assert [f.message for f in report.findings] == [
        f"enveloppe de l'espace de noms {SOAP11} (SOAP 1.1) : SOAP 1.2 ({SOAP12}) attendu"
    ]
    report = parse_request(changed((SOAP12, "urn:autre")))
    assert report.soap11 is False
    assert [f.message for f in report.findings] == [
        f"enveloppe de l'espace de noms urn:autre : SOAP 1.2 ({SOAP12}) attendu"
    ]
    report = parse_request(b"<Envelope/>")
    assert [f.message for f in report.findings] == [
        f"enveloppe de l'espace de noms (aucun) : SOAP 1.2 ({SOAP12}) attendu"
    ]
    assert [f.message for f in parse_request(b"<!-- c --><Enveloppe/>").findings] == [
        "élément racine Enveloppe : soap:Envelope attendu"
    ]


def test_the_not_understood_headers_are_listed() -> None:
    blocks = _header_block("A", "true") + '<B soap:mustUnderstand="1"/>'
    report = parse_request(changed((BAM, BAM + blocks)))
    assert report.not_understood == ["{urn:autre}A", "B"]
    assert [f.message for f in report.findings] == ["en-tête(s) mustUnderstand non compris : {urn:autre}A, B"]


def test_a_request_is_read_up_to_its_size_limit() -> None:
    data = changed()
    assert parse_request(data + b" " * (MAX_REQUEST_BYTES - len(data))).findings == []
    assert triples(parse_request(data + b" " * (MAX_REQUEST_BYTES + 1 - len(data))).findings) == [
        ("INSI-XML-TROP-VOLUMINEUX", E, "/")
    ]
    assert triples(parse_request(data, max_bytes=len(data) - 1).findings) == [("INSI-XML-TROP-VOLUMINEUX", E, "/")]
    assert MAX_REQUEST_BYTES == 256 * 1024


def test_the_message_id_is_cut_at_200_characters() -> None:
    report = parse_request(changed(("uuid:m-1", "u" * 250)))
    assert report.message_id == "u" * 200


def test_content_type_action_and_wsa_action_must_agree() -> None:
    report = parse_request(changed((f">{ACTION_TRAITS}<", f">{ACTION_TRAITS}<")), content_action=ACTION_CV)
    assert [(f.code, f.message) for f in report.findings] == [
        ("INSI-ACTION-INCONNUE", f"action du Content-Type ({ACTION_CV}) différente de wsa:Action ({ACTION_TRAITS})"),
        ("INSI-ACTION-INCONNUE", f"l'action {ACTION_CV} ne correspond pas au corps RECSANSVITALE"),
    ]
    assert report.action == ACTION_CV
    long_action = "urn:" + "a" * 300
    report = parse_request(changed((f">{ACTION_TRAITS}<", f">{long_action}<")), content_action=long_action)
    assert [f.message for f in report.findings] == [
        f"action SOAP inconnue : {long_action[:200]!r} (attendu {ACTION_TRAITS})",
        f"action SOAP inconnue : {long_action[:200]!r} (attendu {ACTION_TRAITS})",
    ]
    report = parse_request(changed((f">{ACTION_TRAITS}<", f">{long_action}<")), content_action=long_action + "b")
    assert (
        report.findings[0].message
        == f"action du Content-Type ({long_action[:100]}) différente de wsa:Action ({long_action[:100]})"
    )
    assert report.action == long_action + "b"


# --------------------------------------------------------------------------------------------- trait rules
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Œdipe", "OEDIPE"),
        ("œuvre", "OEUVRE"),
        ("ÆSOPE", "AESOPE"),
        ("Lætitia", "LAETITIA"),
        ("Strauß", "STRAUSS"),
        ("d’Arc", "D'ARC"),
        ("dʼArc", "D'ARC"),
        ("d`Arc", "D'ARC"),
    ],
)
def test_ligatures_and_apostrophes_fold_into_the_insi_alphabet(value: str, expected: str) -> None:
    assert normalise_trait(value) == expected


def test_at_most_five_refused_characters_are_shown_each_once() -> None:
    assert trait_characters_problem("1223456") == (
        "caractères hors du jeu de caractères INSi ('1' (U+0031), '2' (U+0032), '3' (U+0033), '4' (U+0034), "
        "'5' (U+0035)) : lettres latines (accents admis), espace, tiret et apostrophe seulement"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1850-00-00", None),
        ("1849-00-00", "DateNaissance '1849-00-00' : année antérieure à 1850"),
        ("2026-06-15", None),
        (
            "2026-06-16",
            "DateNaissance '2026-06-16' postérieure à la date du jour (2026-06-15) : une date de naissance est passée",
        ),
        ("2026-05-31", None),
        (
            "2026-07-01",
            "DateNaissance '2026-07-01' postérieure à la date du jour (2026-06-15) : une date de naissance est passée",
        ),
        ("2026-06-00", None),
        (
            "2026-07-00",
            "DateNaissance '2026-07-00' postérieure à la date du jour (2026-06-15) : une date de naissance est passée",
        ),
        ("2026-00-31", None),
        ("2026-00-00", None),
        (
            "2027-00-00",
            "DateNaissance '2027-00-00' postérieure à la date du jour (2026-06-15) : une date de naissance est passée",
        ),
        (
            "1990-01-1x" + "9" * 40,
            "DateNaissance '1990-01-1x" + "9" * 30 + "' : date lunaire AAAA-MM-JJ attendue (mois 00-12, jour 00-31)",
        ),
    ],
)
def test_birth_date_rules(value: str, expected: str | None) -> None:
    assert birth_date_problem(value, today=date(2026, 6, 15)) == expected


# --------------------------------------------------------------------------------------------- responses, whole
ENTRY = (
    "<IdIndividu><NumIdentifiant>1090763220834</NumIdentifiant><Cle>89</Cle></IdIndividu><OID>1.2.250.1.213.1.4.8</OID>"
)
HISTO = (
    "<INSHISTO><IdIndividu><NumIdentifiant>2090763220834</NumIdentifiant><Cle>39</Cle></IdIndividu>"
    "<OID>1.2.250.1.213.1.4.8</OID><DateDeb>2019-03-01</DateDeb><DateFin>2019-02-28</DateFin></INSHISTO>"
)
TIQ = (
    "<TIQ><NomNaissance>ECETINSI</NomNaissance><ListePrenom>PIERRE-ALAIN MURIEL</ListePrenom><Sexe>M</Sexe>"
    "<DateNaissance>2009-07-14</DateNaissance><LieuNaissance>63220</LieuNaissance></TIQ>"
)
RESULTAT = (
    '<RESULTAT xmlns="http://www.cnamts.fr/INSiResultat"><CR><CodeCR>00</CodeCR><LibelleCR>OK</LibelleCR></CR>'
    f"<INDIVIDU><INSACTIF>{ENTRY}</INSACTIF>{HISTO}{TIQ}</INDIVIDU></RESULTAT>"
)
RESPONSE = f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body>{RESULTAT}</soap:Body></soap:Envelope>'
ACT, IND, TQ = "RESULTAT/INDIVIDU/INSACTIF", "RESULTAT/INDIVIDU", "RESULTAT/INDIVIDU/TIQ"
H1 = "RESULTAT/INDIVIDU/INSHISTO[1]"
S, V = "INSI-REPONSE-STRUCTURE", "INSI-REPONSE-VALEUR"


def answer(*pairs: tuple[str, str]) -> bytes:
    return changed(*pairs, text=RESPONSE)


RESULTS: list[tuple[str, bytes, list[tuple[str, Severity, str]]]] = [
    ("reference", answer(), []),
    ("malformed", b"<soap:Envelope", [("INSI-XML-MALFORME", E, "/")]),
    ("not an envelope", b"<RESULTAT/>", [("INSI-SOAP-ENVELOPPE", E, "/")]),
    ("soap 1.1 envelope", answer((SOAP12, SOAP11)), [("INSI-SOAP-ENVELOPPE", E, "/")]),
    (
        "no body",
        f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Header/></soap:Envelope>'.encode(),
        [("INSI-SOAP-ENVELOPPE", E, "/Envelope")],
    ),
    (
        "two bodies",
        answer(("</soap:Envelope>", "<soap:Body/></soap:Envelope>")),
        [("INSI-SOAP-ENVELOPPE", E, "/Envelope")],
    ),
    ("empty body", answer((RESULTAT, "<!-- rien -->")), [("INSI-SOAP-ENVELOPPE", E, "Body")]),
    ("two payloads", answer((RESULTAT, RESULTAT + RESULTAT)), [("INSI-SOAP-ENVELOPPE", E, "Body")]),
    ("other payload", answer((RESULTAT, '<RESULTAT xmlns="urn:autre"/>')), [(S, E, "RESULTAT")]),
    (
        "no CR",
        answer(("<CR><CodeCR>00</CodeCR><LibelleCR>OK</LibelleCR></CR>", "")),
        [(S, E, "RESULTAT"), ("INSI-REPONSE-CR", E, "RESULTAT/CR")],
    ),
    ("no LibelleCR", answer(("<LibelleCR>OK</LibelleCR>", "")), [(S, E, "RESULTAT/CR")]),
    (
        "CodeCR with a child",
        answer(("<CodeCR>00</CodeCR>", "<CodeCR><b>00</b></CodeCR>")),
        [(S, E, "RESULTAT/CR/CodeCR")],
    ),
    (
        "CR 02 with INDIVIDU",
        answer(("<CodeCR>00</CodeCR>", "<CodeCR>02</CodeCR>")),
        [("INSI-REPONSE-CR", E, "RESULTAT")],
    ),
    ("no INSACTIF", answer((f"<INSACTIF>{ENTRY}</INSACTIF>", "")), [(S, E, IND)]),
    ("no TIQ", answer((TIQ, "")), [(S, E, IND)]),
    (
        "TIQ out of order",
        answer(("<Sexe>M</Sexe>", ""), ("<NomNaissance>", "<Sexe>M</Sexe><NomNaissance>")),
        [(S, E, TQ)] * 2,
    ),
    ("TIQ stray", answer(("</TIQ>", "<Autre/></TIQ>")), [(S, E, TQ)]),
    ("TIQ text", answer(("</TIQ>", "x</TIQ>")), [(S, E, TQ)]),
    ("TIQ sex of two letters", answer(("<Sexe>M</Sexe>", "<Sexe>MM</Sexe>")), [(V, E, TQ)]),
    ("TIQ without sex", answer(("<Sexe>M</Sexe>", "")), []),
    ("TIQ without birth date", answer(("<DateNaissance>2009-07-14</DateNaissance>", "")), []),
    ("TIQ lunar birth date", answer((">2009-07-14<", ">2009-00-00<")), []),
    ("TIQ short birth date", answer((">2009-07-14<", ">2009-7-14<")), [(V, E, TQ)]),
    ("no IdIndividu", answer((ENTRY, "<OID>1.2.250.1.213.1.4.8</OID>")), [(S, E, ACT)]),
    ("no OID", answer((ENTRY, ENTRY.replace("<OID>1.2.250.1.213.1.4.8</OID>", ""))), [(S, E, ACT)]),
    (
        "OID before IdIndividu",
        answer((ENTRY, ENTRY[ENTRY.index("<OID>") :] + ENTRY[: ENTRY.index("<OID>")])),
        [(S, E, ACT)],
    ),
    (
        "no NumIdentifiant",
        answer(("<NumIdentifiant>1090763220834</NumIdentifiant>", "")),
        [(S, E, f"{ACT}/IdIndividu")],
    ),
    ("no key", answer(("<Cle>89</Cle>", "")), []),
    ("TypeMatricule", answer(("<Cle>89</Cle>", "<Cle>89</Cle><TypeMatricule>NIR</TypeMatricule>")), []),
    ("NIR of 14", answer((">1090763220834<", ">10907632208340<")), [(V, E, ACT)]),
    ("key of 3", answer(("<Cle>89</Cle>", "<Cle>890</Cle>")), [(V, E, ACT)]),
    ("history NIR", answer((">2090763220834<", ">209076322083<")), [(V, E, H1)]),
    ("history start date", answer((">2019-03-01<", ">2019-03-01Z<")), []),
    ("history end date with offset", answer((">2019-02-28<", ">2019-02-28+01:00<")), []),
    ("history start date with a bad suffix", answer((">2019-03-01<", ">2019-03-01+1<")), [(V, E, H1)]),
    ("history end date impossible", answer((">2019-02-28<", ">2019-02-30<")), [(V, E, H1)]),
    ("history entry incomplete", answer(("<OID>1.2.250.1.213.1.4.8</OID><DateDeb>", "<DateDeb>")), [(S, E, H1)]),
    (
        "second history entry",
        answer((HISTO, HISTO + HISTO.replace(">2019-03-01<", ">hier<"))),
        [(V, E, "RESULTAT/INDIVIDU/INSHISTO[2]")],
    ),
]


@pytest.mark.parametrize(("data", "expected"), [r[1:] for r in RESULTS], ids=[r[0] for r in RESULTS])
def test_each_response_structure_deviation_is_named(data: bytes, expected: list[tuple[str, Severity, str]]) -> None:
    assert triples(validate_result(data)) == expected
    parsed = parse_result(data)
    if parsed is not None:
        assert isinstance(parsed, InsiResult) and triples(parsed.findings) == expected


def test_an_unusable_response_is_no_result() -> None:
    for data in (b"<a", b"<RESULTAT/>", answer((RESULTAT, ""))):
        assert parse_result(data) is None and parse_fault(data) is None


def test_the_reference_response_is_read_whole() -> None:
    result = parse_result(answer())
    assert isinstance(result, InsiResult) and result.findings == []
    assert (result.code, result.label) == ("00", "OK")
    assert result.active == InsRef("1090763220834", "89", "1.2.250.1.213.1.4.8")
    assert result.active.value == "109076322083489"
    assert result.history == [InsRef("2090763220834", "39", "1.2.250.1.213.1.4.8", "2019-03-01", "2019-02-28")]
    assert result.tiq == {
        "NomNaissance": "ECETINSI",
        "ListePrenom": "PIERRE-ALAIN MURIEL",
        "Sexe": "M",
        "DateNaissance": "2009-07-14",
        "LieuNaissance": "63220",
    }
    assert parse_fault(answer()) is None


def test_incomplete_entries_are_left_out() -> None:
    result = parse_result(
        answer(
            ("<NumIdentifiant>1090763220834</NumIdentifiant>", ""),
            ("<OID>1.2.250.1.213.1.4.8</OID><DateDeb>", "<DateDeb>"),
        )
    )
    assert isinstance(result, InsiResult) and result.active is None and result.history == []
    result = parse_result(answer(("<CR><CodeCR>00</CodeCR><LibelleCR>OK</LibelleCR></CR>", "")))
    assert isinstance(result, InsiResult) and (result.code, result.label) == ("", "")


def test_response_values_are_quoted_cut() -> None:
    long_nir, long_key, long_date = "9" * 30, "8" * 30, "2019-03-01" + "x" * 30
    data = answer(
        (">1090763220834<", f">{long_nir}<"),
        ("<Cle>89</Cle>", f"<Cle>{long_key}</Cle>"),
        (">2019-03-01<", f">{long_date}<"),
        ("<CodeCR>00</CodeCR>", "<CodeCR>0</CodeCR>"),
    )
    assert [f.message for f in validate_result(data)] == [
        f"NumIdentifiant {long_nir[:20]!r} hors motif \\d{{6}}[A-Za-z0-9]\\d{{6}}",
        f"Cle {long_key[:10]!r} hors motif [0-9]{{2}}",
        f"DateDeb {long_date[:20]!r} n'est pas un xsd:date",
        "CodeCR '0' : 00, 01 ou 02 attendu",
    ]
    assert [f.message for f in validate_result(answer(("<CodeCR>00</CodeCR>", "<CodeCR>01</CodeCR>")))] == [
        "CodeCR 01 avec INDIVIDU"
    ]
    assert [
        f.message
        for f in validate_result(answer((f"<INDIVIDU><INSACTIF>{ENTRY}</INSACTIF>{HISTO}{TIQ}</INDIVIDU>", "")))
    ] == ["CodeCR 00 sans INDIVIDU"]


def test_a_response_is_read_up_to_four_times_the_request_limit() -> None:
    data = answer()
    limit = 4 * MAX_REQUEST_BYTES
    assert validate_result(data + b" " * (limit - len(data))) == []
    assert triples(validate_result(data + b" " * (limit + 1 - len(data)))) == [("INSI-XML-TROP-VOLUMINEUX", E, "/")]


FAULT = (
    f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body><soap:Fault><soap:Code><soap:Value>soap:Sender</soap:Value>'
    "<soap:Subcode><soap:Value>siram:siram_100</soap:Value></soap:Subcode></soap:Code>"
    '<soap:Reason><soap:Text xml:lang="fr"> Refus </soap:Text></soap:Reason><soap:Detail>'
    '<siram:Erreur xmlns:siram="urn:siram" code="desir_550" severite="erreur"> Inconnu </siram:Erreur>'
    "</soap:Detail></soap:Fault></soap:Body></soap:Envelope>"
)


def test_a_fault_is_read_whole() -> None:
    assert parse_fault(FAULT.encode()) == InsiFault("Sender", "siram_100", "Refus", "desir_550", "Inconnu", "erreur")
    bare = changed(
        ("<soap:Subcode><soap:Value>siram:siram_100</soap:Value></soap:Subcode>", ""),
        (FAULT[FAULT.index("<soap:Reason>") : FAULT.index("</soap:Fault>")], ""),
        text=FAULT,
    )
    assert parse_result(bare) == InsiFault("Sender", None, "", None, None, None)
    assert triples(validate_result(bare)) == [("INSI-REPONSE-FAUTE", I, "Body")]


LONG = "9" * 50
MESSAGES: list[tuple[str, bytes, list[str]]] = [
    (
        "version",
        changed((' Version="01_02"', f' Version="{LONG}"')),
        [f"attribut Version = {LONG[:20]!r} : '01_02' attendu (schéma CTXBAM V01_02 du WSDL DESIR_ICIR_EXP_1.5.0)"],
    ),
    (
        "lps version",
        changed((' Version="01_00"', ' Version="1"')),
        ["attribut Version = '1' : '01_00' attendu (schéma CTXLPS V01_00 du WSDL DESIR_ICIR_EXP_1.5.0)"],
    ),
    ("no version", changed((' Version="01_02"', ' Version=""')), ["attribut Version obligatoire absent"]),
    ("nature", changed(('Nature="CTXLPS"', 'Nature="X"')), ["attribut Nature = 'X', attendu 'CTXLPS'"]),
    (
        "temps",
        changed(("<ctxbam:Temps>2024-01-01T10:00:00Z", f"<ctxbam:Temps>{LONG}")),
        [f"Temps n'est pas un xsd:dateTime : {LONG[:40]!r}"],
    ),
    (
        "dateref",
        changed(("<ctxbam:COUVERTURE/>", f"<ctxbam:DateRef>{LONG}</ctxbam:DateRef><ctxbam:COUVERTURE/>")),
        [f"DateRef n'est pas un xsd:dateTime : {LONG[:40]!r}"],
    ),
    (
        "leaf with child",
        changed(("<ctxbam:Id>bam-1</ctxbam:Id>", "<ctxbam:Id><i/>bam-1</ctxbam:Id>")),
        ["Id doit être un texte simple"],
    ),
    (
        "lps nom too long",
        changed(("<ctxlps:Nom>DUI</ctxlps:Nom>", f"<ctxlps:Nom>{'N' * 300}</ctxlps:Nom>")),
        ["Nom trop long (300 caractères)"],
    ),
    (
        "no lps block",
        changed((LPS[LPS.index("<ctxlps:LPS>") : LPS.index("</ctxlps:ContexteLPS>")], "")),
        ["bloc LPS absent : IDAM, Nom, Version et Instance du logiciel sont requis"],
    ),
    ("no bam", changed((BAM, "")), ["en-tête ContexteBAM obligatoire absent"]),
    ("no lps", changed((LPS, "")), ["en-tête ContexteLPS obligatoire absent"]),
    ("bam twice", changed((BAM, BAM + BAM)), ["ContexteBAM répété"]),
    ("lps twice", changed((LPS, LPS + LPS)), ["ContexteLPS répété"]),
    (
        "unexpected",
        changed(("<ctxbam:COUVERTURE/>", '<ctxbam:COUVERTURE/><x:Y xmlns:x="urn:x"/><Z/>')),
        ["élément inattendu {urn:x}Y", "élément inattendu Z"],
    ),
    (
        "out of order",
        changed(
            ("<ctxbam:Id>bam-1</ctxbam:Id>", ""),
            ("<ctxbam:COUVERTURE/>", "<ctxbam:COUVERTURE/><ctxbam:Id>bam-1</ctxbam:Id>"),
        ),
        ["élément Id hors de l'ordre du schéma (attendu : Id, Temps, Emetteur, DateRef, COUVERTURE)"],
    ),
    ("missing", changed(("<ctxbam:COUVERTURE/>", "")), ["élément COUVERTURE obligatoire absent"]),
    (
        "repeated",
        changed(("<ctxbam:COUVERTURE/>", "<ctxbam:COUVERTURE/><ctxbam:COUVERTURE/>")),
        ["élément COUVERTURE répété 2 fois (au plus 1)"],
    ),
    (
        "stray text",
        changed(("<ctxbam:COUVERTURE/>", "<ctxbam:COUVERTURE/>x")),
        ["texte inattendu dans ContexteBAM (contenu élément seulement)"],
    ),
    (
        "stray text twice",
        changed(("<ctxbam:Id>", "x<ctxbam:Id>"), ("<ctxbam:COUVERTURE/>", "<ctxbam:COUVERTURE/>x")),
        ["texte inattendu dans ContexteBAM (contenu élément seulement)"],
    ),
    (
        "no traits",
        changed((RECSANS, '<RECSANSVITALE xmlns="http://www.cnamts.fr/INSiRecSans"/>')),
        [
            f"trait {t} obligatoire pour la recherche par traits"
            for t in ("NomNaissance", "Prenom", "Sexe", "DateNaissance")
        ],
    ),
    ("empty name", changed((">MARTIN<", "><")), ["NomNaissance vide"]),
    ("long name", changed((">MARTIN<", f">{'A' * 120}<")), ["NomNaissance trop long (120 caractères > 100)"]),
    ("name without letter", changed((">JEANNE<", ">-<")), ["Prenom n°1 sans lettre"]),
    ("name with digits", changed((">JEANNE<", ">J0<")), [f"Prenom n°1 : {trait_characters_problem('0')}"]),
    ("sex", changed(("<Sexe>F</Sexe>", f"<Sexe>{LONG}</Sexe>")), [f"Sexe {LONG[:20]!r} : 'M' ou 'F' attendu"]),
    ("place", changed((">75056<", f">{LONG}<")), [f"LieuNaissance {LONG[:40]!r} : code COG de 5 caractères attendu"]),
    ("body text", changed(("<soap:Body>", "<soap:Body>x")), ["texte inattendu dans soap:Body"]),
    ("body count", changed((RECSANS, RECSANS * 2)), ["soap:Body doit contenir exactement un élément (trouvé 2)"]),
    (
        "body element",
        changed((RECSANS, "<RECVITALE/>")),
        ["élément RECVITALE de l'espace de noms (aucun) : RECSANSVITALE de http://www.cnamts.fr/INSiRecSans attendu"],
    ),
    (
        "body element with namespace",
        changed((RECSANS, '<A xmlns="urn:a"/>')),
        ["élément A de l'espace de noms urn:a : RECSANSVITALE de http://www.cnamts.fr/INSiRecSans attendu"],
    ),
    (
        "no message id",
        changed((f'<wsa:MessageID xmlns:wsa="{WSA}">uuid:m-1</wsa:MessageID>', "")),
        ["en-tête wsa:MessageID absent"],
    ),
    (
        "no action",
        changed((f'<wsa:Action xmlns:wsa="{WSA}">{ACTION_TRAITS}</wsa:Action>', "")),
        ["ni wsa:Action ni paramètre action du Content-Type : opération déduite du corps"],
    ),
]


@pytest.mark.parametrize(("data", "expected"), [m[1:] for m in MESSAGES], ids=[m[0] for m in MESSAGES])
def test_request_findings_say_what_is_wrong(data: bytes, expected: list[str]) -> None:
    assert [f.message for f in parse_request(data).findings] == expected


BAM_REPEATS = [
    ("<ctxbam:Id>bam-1</ctxbam:Id>", "Id"),
    ("<ctxbam:Temps>2024-01-01T10:00:00Z</ctxbam:Temps>", "Temps"),
    ("<ctxbam:Emetteur>990000016</ctxbam:Emetteur>", "Emetteur"),
    ("<ctxbam:COUVERTURE/>", "COUVERTURE"),
]
LPS_REPEATS = [
    ("<ctxlps:Id>lps-1</ctxlps:Id>", "Id"),
    ("<ctxlps:Temps>2024-01-01T10:00:00.123+01:00</ctxlps:Temps>", "Temps"),
    ("<ctxlps:Emetteur>990000016</ctxlps:Emetteur>", "Emetteur"),
    (LPS[LPS.index("<ctxlps:LPS>") : LPS.index("</ctxlps:ContexteLPS>")], "LPS"),
    ("<ctxlps:Nom>DUI</ctxlps:Nom>", "Nom"),
    ("<ctxlps:Instance>inst-1</ctxlps:Instance>", "Instance"),
    ('<ctxlps:IDAM R="4">IDAM-1</ctxlps:IDAM>', "IDAM"),
    ("<ctxlps:Version>1.0</ctxlps:Version>", "Version"),
]
COUVERTURE = ("GrandRegime", "Organisme", "CodeCentre", "ASSURE", "BENEFICIAIRE")
REPEATS = [
    *((f"bam {n}", changed((e, e + e)), CB, n) for e, n in BAM_REPEATS),
    *(
        (f"lps {n}", changed((e, e + e)), f"{CL}/LPS" if n in ("Nom", "Instance", "IDAM", "Version") else CL, n)
        for e, n in LPS_REPEATS
    ),
    *(
        (
            f"couverture {n}",
            changed(("<ctxbam:COUVERTURE/>", f"<ctxbam:COUVERTURE><ctxbam:{n}/><ctxbam:{n}/></ctxbam:COUVERTURE>")),
            f"{CB}/COUVERTURE",
            n,
        )
        for n in COUVERTURE
    ),
    (
        "NomNaissance",
        changed(("<NomNaissance>MARTIN</NomNaissance>", "<NomNaissance>MARTIN</NomNaissance>" * 2)),
        R,
        "NomNaissance",
    ),
    ("Sexe", changed(("<Sexe>F</Sexe>", "<Sexe>F</Sexe>" * 2)), R, "Sexe"),
    (
        "DateNaissance",
        changed(("<DateNaissance>1938-04-12</DateNaissance>", "<DateNaissance>1938-04-12</DateNaissance>" * 2)),
        R,
        "DateNaissance",
    ),
    (
        "LieuNaissance",
        changed(("<LieuNaissance>75056</LieuNaissance>", "<LieuNaissance>75056</LieuNaissance>" * 2)),
        R,
        "LieuNaissance",
    ),
    ("Header", changed(("<soap:Body>", "<soap:Header/><soap:Body>")), "/Envelope", "Header"),
    (
        "bam DateRef",
        changed(
            (
                "<ctxbam:COUVERTURE/>",
                "<ctxbam:DateRef>2024-01-01T10:00:00Z</ctxbam:DateRef>" * 2 + "<ctxbam:COUVERTURE/>",
            )
        ),
        CB,
        "DateRef",
    ),
]


@pytest.mark.parametrize(("data", "location", "name"), [r[1:] for r in REPEATS], ids=[r[0] for r in REPEATS])
def test_each_element_of_at_most_one_occurrence_is_refused_twice(data: bytes, location: str, name: str) -> None:
    """maxOccurs 1 of every element of the schemas' sequences (CTXBAM V01_02, CTXLPS V01_00, INSi_RECSANS_INS)."""
    code = (
        "INSI-CORPS-INVALIDE"
        if location == R
        else "INSI-SOAP-ENVELOPPE"
        if location == "/Envelope"
        else "INSI-ENTETE-INVALIDE"
    )
    found = [f for f in parse_request(data).findings if f.location == location]
    assert [(f.code, f.message) for f in found] == [(code, f"élément {name} répété 2 fois (au plus 1)")]


OPTIONAL = [
    ("bam without emetteur", changed(("<ctxbam:Emetteur>990000016</ctxbam:Emetteur>", ""))),
    ("lps without emetteur", changed(("<ctxlps:Emetteur>990000016</ctxlps:Emetteur>", ""))),
    (
        "full couverture",
        changed(
            (
                "<ctxbam:COUVERTURE/>",
                "<ctxbam:COUVERTURE>"
                + "".join(f"<ctxbam:{n}>x</ctxbam:{n}>" for n in COUVERTURE)
                + "</ctxbam:COUVERTURE>",
            )
        ),
    ),
]


@pytest.mark.parametrize("data", [o[1] for o in OPTIONAL], ids=[o[0] for o in OPTIONAL])
def test_optional_context_elements_may_be_left_out_or_given(data: bytes) -> None:
    assert parse_request(data).findings == []


def test_a_first_name_is_a_simple_text() -> None:
    """``Prenom`` is an ``xsd:string`` in INSi_RECSANS_INS.xsd: child elements are refused, as for the other traits."""
    report = parse_request(
        changed(("<Prenom>JEANNE</Prenom>", "<Prenom>JEANNE</Prenom><Prenom>JE<b>AN</b>NE</Prenom>"))
    )
    assert [(f.code, f.message, f.location) for f in report.findings] == [
        ("INSI-CORPS-INVALIDE", "Prenom doit être un texte simple", f"{R}/Prenom[2]")
    ]
    assert report.traits is None
    report = parse_request(changed(("<Prenom>JEANNE</Prenom>", "<Prenom>JE<!-- c -->ANNE</Prenom>")))
    assert report.findings == [] and report.traits is not None and report.traits.first_names == ("JEANNE",)


def test_a_fault_detail_with_markup_is_read_as_its_text() -> None:
    data = changed((" Inconnu </siram:Erreur>", " Numéro <b>inconnu</b>. </siram:Erreur>"), text=FAULT)
    fault = parse_fault(data)
    assert fault is not None and fault.error_text == "Numéro inconnu."


@pytest.mark.parametrize(
    ("old", "new", "label"),
    [
        ("IDAM-1", "I" * 300, "IDAM"),
        ("<ctxlps:Version>1.0", f"<ctxlps:Version>{'1' * 300}", "Version"),
        ("inst-1", "i" * 300, "Instance"),
        ("<ctxlps:Nom>DUI", f"<ctxlps:Nom>{'N' * 300}", "Nom"),
    ],
)
def test_each_software_field_is_at_most_256_characters(old: str, new: str, label: str) -> None:
    assert [f.message for f in parse_request(changed((old, new))).findings] == [f"{label} trop long (300 caractères)"]


def test_a_partial_lps_context_is_read_with_empty_fields() -> None:
    report = parse_request(
        changed(
            (' Version="01_00"', ""),
            ("<ctxlps:Id>lps-1</ctxlps:Id><ctxlps:Temps>2024-01-01T10:00:00.123+01:00</ctxlps:Temps>", ""),
            ("<ctxlps:Emetteur>990000016</ctxlps:Emetteur>", ""),
        )
    )
    assert report.lps == ContexteLPS("", "", "", None, "CTXLPS", Logiciel("IDAM-1", "1.0", "inst-1", "DUI", "4"))


def test_an_empty_first_name_is_refused() -> None:
    report = parse_request(changed(("<Prenom>JEANNE</Prenom>", "<Prenom/>")))
    assert [(f.code, f.message, f.location) for f in report.findings] == [
        ("INSI-TRAIT-INVALIDE", "Prenom n°1 vide", f"{R}/Prenom[1]")
    ]


@pytest.mark.parametrize(
    ("old", "name"),
    [(">MARTIN<", "NomNaissance"), (">F<", "Sexe"), (">1938-04-12<", "DateNaissance"), (">75056<", "LieuNaissance")],
)
def test_each_trait_is_a_simple_text(old: str, name: str) -> None:
    report = parse_request(changed((old, f"><b>{old[1:-1]}</b><")))
    assert [(f.code, f.message, f.location) for f in report.findings] == [
        ("INSI-CORPS-INVALIDE", f"{name} doit être un texte simple", f"{R}/{name}")
    ]


@pytest.mark.parametrize(
    "data",
    [
        changed(("<Sexe>F</Sexe>", "<Sexe>U</Sexe>")),
        changed(("<NomNaissance>MARTIN</NomNaissance>", "")),
        changed(("<Prenom>JEANNE</Prenom>", "")),
        changed(("<Sexe>F</Sexe>", "")),
        changed(("<DateNaissance>1938-04-12</DateNaissance>", "")),
        changed((">75056<", ">7505<")),
    ],
    ids=["invalid", "no-name", "no-first-name", "no-sex", "no-birth-date", "bad-place"],
)
def test_no_traits_are_kept_from_a_refused_body(data: bytes) -> None:
    report = parse_request(data)
    assert report.traits is None and not report.ok


def test_an_ins_without_key_is_its_number() -> None:
    result = parse_result(answer(("<Cle>89</Cle>", "")))
    assert isinstance(result, InsiResult) and result.active is not None
    assert (result.active.key, result.active.value) == (None, "1090763220834")


RESPONSE_REPEATS = [
    ("<CR><CodeCR>00</CodeCR><LibelleCR>OK</LibelleCR></CR>", "RESULTAT", "CR"),
    (f"<INDIVIDU><INSACTIF>{ENTRY}</INSACTIF>{HISTO}{TIQ}</INDIVIDU>", "RESULTAT", "INDIVIDU"),
    ("<CodeCR>00</CodeCR>", "RESULTAT/CR", "CodeCR"),
    ("<LibelleCR>OK</LibelleCR>", "RESULTAT/CR", "LibelleCR"),
    (f"<INSACTIF>{ENTRY}</INSACTIF>", IND, "INSACTIF"),
    (TIQ, IND, "TIQ"),
    ("<IdIndividu><NumIdentifiant>1090763220834</NumIdentifiant><Cle>89</Cle></IdIndividu>", ACT, "IdIndividu"),
    ("<OID>1.2.250.1.213.1.4.8</OID></INSACTIF>", ACT, "OID"),
    ("<NumIdentifiant>1090763220834</NumIdentifiant>", f"{ACT}/IdIndividu", "NumIdentifiant"),
    ("<Cle>89</Cle>", f"{ACT}/IdIndividu", "Cle"),
    ("<DateDeb>2019-03-01</DateDeb>", H1, "DateDeb"),
    ("<DateFin>2019-02-28</DateFin>", H1, "DateFin"),
]


@pytest.mark.parametrize(("element", "location", "name"), RESPONSE_REPEATS, ids=[r[2] for r in RESPONSE_REPEATS])
def test_each_response_element_of_at_most_one_occurrence_is_refused_twice(
    element: str, location: str, name: str
) -> None:
    """maxOccurs 1 of the sequences of INSi_RESULTAT_INS.xsd (CR, INDIVIDU, INSACTIF, IdIndividu...)."""
    head = element.removesuffix("</INSACTIF>") if name == "OID" else element  # OID: doubled inside INSACTIF
    data = answer((element, head + element))
    found = [f for f in validate_result(data) if f.location == location and f.code == S]
    assert [f.message for f in found] == [f"élément {name} répété 2 fois (au plus 1)"]


def test_a_type_matricule_is_at_most_once() -> None:
    data = answer(
        ("<Cle>89</Cle>", "<Cle>89</Cle><TypeMatricule>NIR</TypeMatricule><TypeMatricule>NIR</TypeMatricule>")
    )
    assert [(f.code, f.message, f.location) for f in validate_result(data)] == [
        (S, "élément TypeMatricule répété 2 fois (au plus 1)", f"{ACT}/IdIndividu")
    ]


def test_the_envelope_has_one_body_and_at_most_one_header() -> None:
    for data, name in (
        (changed(("</soap:Envelope>", "<soap:Body/></soap:Envelope>")), "Body"),
        (changed(("<soap:Body>", "<soap:Header/><soap:Body>")), "Header"),
    ):
        found = [f for f in parse_request(data).findings if f.location == "/Envelope"]
        assert [(f.code, f.message) for f in found] == [
            ("INSI-SOAP-ENVELOPPE", f"élément {name} répété 2 fois (au plus 1)")
        ]


def test_must_understand_comes_first_whatever_was_found_before() -> None:
    data = changed(
        (' Version="01_02"', ' Version="9"'), ("</soap:Header>", _header_block("Autre", "true") + "</soap:Header>")
    )
    assert triples(parse_request(data).findings) == [
        ("INSI-MUST-UNDERSTAND", E, "Header"),
        ("INSI-ENTETE-INVALIDE", E, CB),
    ]


def test_the_action_mismatch_is_located_on_the_action() -> None:
    report = parse_request(changed(), content_action="urn:autre")
    assert triples(report.findings) == [("INSI-ACTION-INCONNUE", E, "Header/Action")] * 2


def test_an_incomplete_cr_is_read_as_empty() -> None:
    result = parse_result(answer(("<CodeCR>00</CodeCR>", ""), ("<LibelleCR>OK</LibelleCR>", "")))
    assert isinstance(result, InsiResult) and (result.code, result.label) == ("", "")
    assert [(f.message, f.location) for f in result.findings] == [
        ("élément CodeCR obligatoire absent", "RESULTAT/CR"),
        ("élément LibelleCR obligatoire absent", "RESULTAT/CR"),
        ("CodeCR '' : 00, 01 ou 02 attendu", "RESULTAT/CR"),
    ]
    result = parse_result(answer(("<LibelleCR>OK</LibelleCR>", "<LibelleCR><b>OK</b></LibelleCR>")))
    assert isinstance(result, InsiResult) and triples(result.findings) == [(S, E, "RESULTAT/CR/LibelleCR")]


def test_an_end_date_is_named() -> None:
    assert [f.message for f in validate_result(answer((">2019-02-28<", ">fin<")))] == [
        "DateFin 'fin' n'est pas un xsd:date"
    ]


def test_each_tiq_trait_is_once_and_a_simple_text() -> None:
    data = answer(("<Sexe>M</Sexe>", "<Sexe>M</Sexe><Sexe>M</Sexe>"))
    assert [(f.code, f.message, f.location) for f in validate_result(data)] == [
        (S, "élément Sexe répété 2 fois (au plus 1)", TQ)
    ]
    data = answer(("<NomNaissance>ECETINSI</NomNaissance>", "<NomNaissance><b>ECETINSI</b></NomNaissance>"))
    assert [(f.code, f.message, f.location) for f in validate_result(data)] == [
        (S, "NomNaissance doit être un texte simple", f"{TQ}/NomNaissance")
    ]


def test_the_traits_are_journaled_under_their_french_names() -> None:
    """The INSi simulator journals the request's traits with :meth:`Traits.as_dict` (``details["request"]``)."""
    assert Traits("MARTIN", ("JEANNE", "MARIE"), "F", "1938-04-12", None).as_dict() == {
        "nom_naissance": "MARTIN",
        "prenoms": ["JEANNE", "MARIE"],
        "sexe": "F",
        "date_naissance": "1938-04-12",
        "lieu_naissance": None,
    }


def test_a_fault_without_code_has_an_empty_code() -> None:
    data = changed((FAULT[FAULT.index("<soap:Code>") : FAULT.index("<soap:Reason>")], ""), text=FAULT)
    fault = parse_fault(data)
    assert fault is not None and (fault.code, fault.subcode, fault.error_code) == ("", None, "desir_550")
