"""MSSanté message validation as plain library code (bytes in, findings out) and the DATA wire rules of the
submission server: the issue 14 rules (Message-ID added, IHE_XDM.ZIP content type, raw 8-bit headers, bare LF/CR)."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from harness.fields.testdata import load_testdata
from harness.sut.documents import build_message
from harness.validators import Severity
from harness.validators.mssante_message import validate_message
from mock_services.mssante.smtp import wire_problem

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DOCTOR = "jean.dupont@medecin.mssante.fr"


def _message() -> EmailMessage:
    data = load_testdata(FIXTURES)
    person = data.person("P001")
    return build_message(person, data.establishment(person.essms), "dui@ehpad-tilleuls.mssante.fr", [DOCTOR])


def _bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=policy.SMTP)


def _codes(data: bytes, **kwargs: object) -> list[tuple[str, Severity]]:
    return [(f.code, f.severity) for f in validate_message(data, **kwargs).findings]  # type: ignore[arg-type]


def test_reference_message_has_no_finding() -> None:
    report = validate_message(_bytes(_message()), recipients=[DOCTOR])
    assert report.findings == [] and report.message_id_missing is False


def test_missing_message_id_is_a_warning_and_flagged() -> None:
    msg = _message()
    del msg["Message-ID"]
    report = validate_message(_bytes(msg))
    assert report.message_id_missing is True and report.message_id is None
    assert [(f.code, f.severity, f.message) for f in report.findings] == [
        (
            "RFC5322-MESSAGE-ID",
            Severity.WARNING,
            "en-tête Message-ID absent (RFC 5322 §3.6.4, recommandé): ajouté par le serveur de soumission "
            "(RFC 6409 §8.3)",
        )
    ]


def test_two_message_ids_stay_an_error() -> None:
    report = validate_message(b"Message-ID: <second@dui.test>\r\n" + _bytes(_message()))
    assert report.message_id_missing is False
    assert [(f.code, f.severity) for f in report.findings] == [("RFC5322-HEADER", Severity.ERROR)]


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/zip", []),
        ("text/plain", [("MSS-XDM-CONTENT-TYPE", Severity.ERROR)]),
        ("application/pdf", [("MSS-XDM-CONTENT-TYPE", Severity.ERROR)]),
        ("application/x-zip-compressed", [("MSS-XDM-CONTENT-TYPE", Severity.WARNING)]),
        ("application/x-zip", [("MSS-XDM-CONTENT-TYPE", Severity.WARNING)]),
        ("application/x-zip-compresse", [("MSS-XDM-CONTENT-TYPE", Severity.ERROR)]),
        ("application/octet-stream", [("MSS-XDM-CONTENT-TYPE", Severity.WARNING)]),
    ],
)
def test_xdm_attachment_content_type(content_type: str, expected: list[tuple[str, Severity]]) -> None:
    msg = _message()
    for part in msg.iter_attachments():
        if part.get_filename() == "IHE_XDM.ZIP":
            part.set_type(content_type)
    assert _codes(_bytes(msg)) == expected


def test_raw_8bit_header_only_with_smtputf8() -> None:
    data = _bytes(_message()).replace(b"Subject: XDM/1.0/DDM+", "Subject: XDM/1.0/DDM+Été ".encode(), 1)
    assert _codes(data) == [("MIME-8BIT-HEADER", Severity.ERROR)]
    assert _codes(data, smtputf8=True) == []


def test_rfc2047_encoded_header_is_no_8bit_finding() -> None:
    msg = _message()
    msg.replace_header("Subject", "XDM/1.0/DDM+Été à l'EHPAD")
    data = _bytes(msg)
    assert max(data.split(b"\r\n\r\n", 1)[0]) < 0x80  # the email package encoded it (RFC 2047)
    assert _codes(data) == []


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"Subject: a\r\n\r\nbody\r\n", None),
        (b"Subject: a\n\nbody\r\n", "LF seul, CRLF attendu (RFC 5321 §2.3.8)"),
        (b"Subject: a\r\n\r\nbo\rdy\r\n", "CR seul, CRLF attendu (RFC 5321 §2.3.8)"),
        (b"S: " + b"a" * 995 + b"\r\n", None),  # 998 octets + CRLF = 1000
        (b"S: " + b"a" * 996 + b"\r\n", "ligne 1 de 1001 octets, 1000 au plus (RFC 5321 §4.5.3.1.6)"),
        (b"a\nb" + b"c" * 2000 + b"\r\n", "LF seul, CRLF attendu (RFC 5321 §2.3.8)"),  # bare LF named first
    ],
)
def test_wire_problem(data: bytes, problem: str | None) -> None:
    assert wire_problem(data) == problem


@pytest.mark.parametrize(
    "head",
    [
        b"From: a\r\nMessage-ID: <abc.1@x.test>\r\nSubject: s",
        b"From: a\r\nMessage-ID:\r\n <abc.1@x.test>\r\nSubject: s",  # folded as the email package folds a long one
        b"From: a\nMessage-Id:\n\t<abc.1@x.test>\nSubject: s",
    ],
)
def test_store_reads_a_folded_message_id(head: bytes) -> None:
    """RFC 5322 §2.2.3: a long Message-ID starts on a continuation line; the store unfolds it (it read None, so
    the IMAP read of such a message was journaled without its Message-ID)."""
    from mock_services.mssante.store import message_id_of

    assert message_id_of(head + b"\r\n\r\nMessage-ID: <body@x.test>\r\n") == "<abc.1@x.test>"


def test_store_message_id_only_from_the_header_section() -> None:
    from mock_services.mssante.store import message_id_of

    assert message_id_of(b"From: a\r\nSubject: s\r\n\r\nMessage-ID: <body@x.test>\r\n") is None
