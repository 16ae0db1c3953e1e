"""The INSi findings no other test triggers, each asserting the EXACT findings (codes and severities, in order):
the request's WS-Addressing headers (W3C WS-Addressing 1.0 SOAP binding; ANS "Guide d'intégration du téléservice
INSi" v3: wsa:Action and wsa:MessageID) and the response's ``RESULTAT`` values and CR (``INSi_RESULTAT_INS.xsd``:
``NumIdentifiant`` \\d{6}[A-Za-z0-9]\\d{6}, ``Cle`` [0-9]{2}, ``xsd:date``, ``Sexe`` [A-Z], CR 00 / 01 / 02 and
``INDIVIDU`` present exactly with CR 00).
"""

from __future__ import annotations

import uuid

import pytest
from lxml import etree

from harness.sut.base import InsiTraits
from harness.sut.insi_actions import ACTION_TRAITS, REFERENCE_IDAM, build_request
from harness.validators import Severity
from harness.validators.insi import InsiResult, parse_request, parse_result, validate_result
from mock_services.insi.identities import QUALIFICATION_IDENTITIES
from mock_services.insi.soap import KNOWN_FAULTS, fault_envelope, result_envelope

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO  # noqa: E741
WSA = "http://www.w3.org/2005/08/addressing"
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
