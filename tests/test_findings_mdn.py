"""Every finding of the MDN validator (RFC 8098, RFC 6522, ANS volet struct-msg-mdn / error-codes), one row per
rejection path, each asserting the EXACT findings (codes and severities, in order) and the fields read.

Also: how a raw 8-bit Subject is read (RFC 6532 §3.2, with a warning: the simulator offers no SMTPUTF8), that a
delivery status notification (RFC 3464, ``report-type=delivery-status``) is never taken for an MDN, and the
simulator's cheap MDN sniffing.
"""

from __future__ import annotations

import unicodedata
from email.header import Header

import pytest

from harness.validators import Severity
from harness.validators.mdn import (
    ACTION_MODES,
    DISPOSITION_TYPES,
    ERROR_CODES,
    SENDING_MODES,
    MdnReport,
    is_mdn,
    validate_mdn,
)
from harness.validators.mssante_message import header_value, parse_message, raw_8bit_headers
from mock_services.mssante.mailflow import looks_like_mdn

E, W = Severity.ERROR, Severity.WARNING
DUI = "dui@ehpad-tilleuls.mssante.fr"
DOCTOR = "jean.dupont@medecin.mssante.fr"
OK = "automatic-action/MDN-sent-automatically; processed"
REPORT = "multipart/report; report-type=disposition-notification"
DEFAULT_FIELDS = {
    "Reporting-UA": "ehpad-tilleuls.mssante.fr; DUI Tilleuls 1.0",
    "Final-Recipient": f"rfc822;{DUI}",
    "Original-Recipient": f"rfc822;{DUI}",
    "Original-Message-ID": "<m@x>",
    "Disposition": OK,
}


def ko(code: str) -> str:
    """The volet's error Subject, RFC 2047-encoded (the ASCII form a 7-bit header needs)."""
    return Header(f"[KO Intégration système !][{code}] DLU", "utf-8").encode()


def mdn(
    disposition: str | None = OK,
    *,
    subject: str | bytes = "Accuse de lecture",
    fields: dict[str, str | None] | None = None,
    human: tuple[str, str] = ("text/plain", "lisible"),
    content_type: str = REPORT,
    notifications: int = 1,
) -> bytes:
    """An MDN built by hand, every part under control; ``fields`` overrides (``None`` removes) a field."""
    values: dict[str, str | None] = dict(DEFAULT_FIELDS)
    values["Disposition"] = disposition
    values.update(fields or {})
    block = "".join(f"{name}: {value}\r\n" for name, value in values.items() if value is not None)
    notification = f"--b\r\nContent-Type: message/disposition-notification\r\n\r\n{block}\r\n"
    subject_bytes = subject if isinstance(subject, bytes) else subject.encode("ascii")
    head = (
        f'From: {DUI}\r\nTo: {DOCTOR}\r\nMIME-Version: 1.0\r\nContent-Type: {content_type}; boundary="b"\r\n'
    ).encode()
    body = f"--b\r\nContent-Type: {human[0]}\r\n\r\n{human[1]}\r\n" + notification * notifications + "--b--\r\n"
    return b"Subject: " + subject_bytes + b"\r\n" + head + b"\r\n" + body.encode("utf-8")


def findings(report: MdnReport) -> list[tuple[str, Severity]]:
    return [(f.code, f.severity) for f in report.findings]


ERR = "automatic-action/MDN-sent-automatically; processed/Error: {}^{}"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(mdn(), [], id="clean"),
        pytest.param(mdn(content_type="multipart/mixed"), [("MDN-NOT-REPORT", E)], id="not-report"),
        pytest.param(
            mdn(content_type="multipart/report; report-type=delivery-status"), [("MDN-NOT-REPORT", E)], id="dsn"
        ),
        pytest.param(b"\xff\xfe\x00garbage\r\n\r\n", [("MDN-NOT-REPORT", E)], id="garbage"),
        pytest.param(mdn(human=("application/octet-stream", "x")), [("MDN-HUMAN-PART", E)], id="human-part"),
        pytest.param(mdn(notifications=0), [("MDN-NOTIFICATION-PART", E)], id="no-notification-part"),
        pytest.param(mdn(notifications=2), [("MDN-NOTIFICATION-PART", E)], id="two-notification-parts"),
        pytest.param(
            mdn(human=("image/png", "x"), notifications=0),
            [("MDN-HUMAN-PART", E), ("MDN-NOTIFICATION-PART", E)],
            id="human-and-notification-parts",
        ),
        pytest.param(mdn(fields={"Final-Recipient": None}), [("MDN-FINAL-RECIPIENT", E)], id="final-recipient"),
        pytest.param(mdn(fields={"Final-Recipient": "rfc822;"}), [("MDN-FINAL-RECIPIENT", E)], id="final-empty"),
        pytest.param(
            mdn(fields={"Original-Recipient": None}), [("MDN-ORIGINAL-RECIPIENT", E)], id="original-recipient"
        ),
        pytest.param(
            mdn(fields={"Original-Message-ID": None}), [("MDN-ORIGINAL-MESSAGE-ID", E)], id="original-message-id"
        ),
        pytest.param(
            mdn(fields={"Original-Message-ID": "  "}), [("MDN-ORIGINAL-MESSAGE-ID", E)], id="original-message-id-blank"
        ),
        pytest.param(
            mdn(fields={"Final-Recipient": None, "Original-Recipient": None, "Original-Message-ID": None}),
            [("MDN-FINAL-RECIPIENT", E), ("MDN-ORIGINAL-RECIPIENT", E), ("MDN-ORIGINAL-MESSAGE-ID", E)],
            id="three-fields",
        ),
        pytest.param(mdn(None), [("MDN-DISPOSITION", E)], id="disposition-absent"),
        pytest.param(mdn("n'importe quoi"), [("MDN-DISPOSITION", E)], id="disposition-illegible"),
        pytest.param(
            mdn("manual-action/MDN-sent-by-pigeon; processed"), [("MDN-DISPOSITION-MODE", E)], id="sending-mode"
        ),
        pytest.param(
            mdn("telepathic-action/MDN-sent-manually; processed"), [("MDN-DISPOSITION-MODE", E)], id="action-mode"
        ),
        pytest.param(
            mdn("automatic-action/MDN-sent-automatically; exploded"), [("MDN-DISPOSITION-TYPE", E)], id="type"
        ),
        pytest.param(
            mdn("automatic-action/MDN-sent-automatically; displayed"), [("MDN-NOT-PROCESSED", E)], id="displayed"
        ),
        pytest.param(
            mdn("manual-action/MDN-sent-manually; deleted"), [("MDN-NOT-PROCESSED", E)], id="deleted-manually"
        ),
        pytest.param(
            mdn("automatic-action/MDN-sent-automatically; processed/warning"),
            [("MDN-DISPOSITION-MODIFIER", E)],
            id="modifier",
        ),
        pytest.param(
            mdn("automatic-action/MDN-sent-automatically; processed/error"),
            [("MDN-ERROR-FIELD", E)],
            id="error-modifier-without-field",
        ),
        pytest.param(
            mdn(OK, fields={"Error": "902^Identifiant patient inconnu"}),
            [("MDN-ERROR-FIELD", E)],
            id="error-field-without-modifier",
        ),
        pytest.param(
            mdn(ERR.format("999", "inconnu"), subject=ko("999"), human=("text/plain", "erreur 999")),
            [("MDN-ERROR-CODE", E)],
            id="error-code-outside-table",
        ),
        pytest.param(
            mdn(ERR.format("902", "x"), human=("text/plain", "erreur 902")), [("MDN-SUBJECT", E)], id="subject-no-ko"
        ),
        pytest.param(
            mdn(ERR.format("902", "x"), subject=ko("904"), human=("text/plain", "erreur 902")),
            [("MDN-SUBJECT", E)],
            id="subject-904-disposition-902",
        ),
        pytest.param(mdn(OK, subject=ko("902")), [("MDN-SUBJECT", E)], id="subject-ko-without-error"),
        pytest.param(
            mdn(ERR.format("902", "x"), subject=ko("902"), human=("text/plain", "lisible")),
            [("MDN-TEXT-CODE", W)],
            id="text-without-code",
        ),
        pytest.param(
            mdn(ERR.format("902", "x"), subject="[KO Integration systeme][902] DLU", human=("text/plain", "902")),
            [],
            id="ko-without-accents-nor-bang",
        ),
        pytest.param(
            mdn(
                "automatic-action/MDN-sent-automatically; processed/error",
                fields={"Error": "904^INS discordant"},
                subject=ko("904"),
                human=("text/plain", "code 904"),
            ),
            [],
            id="v1.1.3-error-field",
        ),
    ],
)
def test_each_rejection_path_gives_exactly_its_findings(data: bytes, expected: list[tuple[str, Severity]]) -> None:
    assert findings(validate_mdn(data)) == expected


def test_non_bytes_input_is_unparsable_not_a_crash() -> None:
    report = validate_mdn(None)  # type: ignore[arg-type]
    assert findings(report) == [("MDN-UNPARSABLE", E)] and not report.is_mdn


def test_a_delivery_status_notification_is_never_an_mdn() -> None:
    """RFC 3464 DSN: same multipart/report, report-type=delivery-status; it even carries the words elsewhere."""
    data = mdn(content_type="multipart/report; report-type=delivery-status").replace(
        b"MIME-Version", b"Disposition-Notification-To: x@y\r\nMIME-Version"
    )
    report = validate_mdn(data)
    assert not report.is_mdn and findings(report) == [("MDN-NOT-REPORT", E)]
    assert "DSN" in report.findings[0].message
    assert "DSN" not in validate_mdn(mdn(content_type="multipart/mixed")).findings[0].message
    assert not is_mdn(parse_message(data)) and is_mdn(parse_message(mdn()))
    assert not looks_like_mdn(data)  # the simulator judges it as an ordinary message, not as a read receipt
    assert looks_like_mdn(mdn())
    assert looks_like_mdn(mdn(content_type='multipart/report; report-type="Disposition-Notification"'))
    assert not looks_like_mdn(mdn(content_type="multipart/mixed; x=disposition-notification"))
    assert not looks_like_mdn(b"garbage")


def test_a_clean_mdn_is_read_field_by_field() -> None:
    report = validate_mdn(mdn(fields={"Original-Recipient": f"<{DUI}>"}))
    assert report.is_mdn and report.processed and report.errors == []
    assert (report.sender, report.to, report.subject) == (DUI, DOCTOR, "Accuse de lecture")
    assert (report.final_recipient, report.original_recipient) == (DUI, DUI)
    assert report.original_message_id == "<m@x>"
    assert report.reporting_ua == DEFAULT_FIELDS["Reporting-UA"]
    assert (report.disposition, report.disposition_type) == (OK, "processed")
    assert (report.error_code, report.error_label) == (None, None)


def test_addresses_lose_their_type_and_angle_brackets_only() -> None:
    report = validate_mdn(mdn(fields={"Final-Recipient": "rfc822; <Xavier@ehpad.fr>", "Original-Recipient": "x@y.fr"}))
    assert (report.final_recipient, report.original_recipient) == ("Xavier@ehpad.fr", "x@y.fr")


def test_errors_are_the_error_findings_only() -> None:
    report = validate_mdn(mdn(ERR.format("902", "x"), subject="XDM", human=("text/plain", "lisible")))
    assert findings(report) == [("MDN-SUBJECT", E), ("MDN-TEXT-CODE", W)]
    assert report.errors == [report.findings[0]]


def test_not_a_report_message() -> None:
    [finding] = validate_mdn(mdn(content_type="multipart/mixed")).findings
    assert finding.message == "un MDN est un multipart/report; report-type=disposition-notification (RFC 8098 §3)"
    [dsn] = validate_mdn(mdn(content_type="multipart/report; report-type=delivery-status")).findings
    assert dsn.message == finding.message + " ; ceci est un rapport de remise (DSN, RFC 3464)"


def test_modes_and_types_are_case_insensitive() -> None:
    report = validate_mdn(mdn("Manual-Action/MDN-Sent-Manually; Processed"))
    assert findings(report) == [] and report.disposition_type == "processed" and report.processed


def ascii_label(label: str) -> str:
    """message/disposition-notification fields are US-ASCII (RFC 8098 §3.1): the label without its accents."""
    return unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode("ascii")


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_volet_error_code_is_accepted_with_its_label(code: str) -> None:
    label = ascii_label(ERROR_CODES[code])
    report = validate_mdn(mdn(ERR.format(code, label), subject=ko(code), human=("text/plain", f"erreur {code}")))
    assert findings(report) == []
    assert (report.error_code, report.error_label) == (code, label)
    assert not report.processed and report.disposition_type == "processed"


def test_a_raw_utf8_label_in_the_notification_fields_is_8bit() -> None:
    """RFC 8098 §3.1: the fields are US-ASCII (7bit); the reference DUI drops the accents of the volet's label."""
    data = mdn(ERR.format("901", ERROR_CODES["901"]), subject=ko("901"), human=("text/plain", "erreur 901"))
    report = validate_mdn(data)
    assert findings(report) == [("MIME-8BIT-HEADER", E)] and "Disposition" in report.findings[0].message
    assert report.error_label == ERROR_CODES["901"]  # still read (as UTF-8)


def test_the_volet_tables_are_exactly_the_published_ones() -> None:
    """ANS volet error-codes (900-906) and RFC 8098 §3.2.6 vocabularies: a dropped or altered entry must fail."""
    assert sorted(ERROR_CODES) == ["900", "901", "902", "903", "904", "905", "906"]
    assert ERROR_CODES["902"] == "Identifiant patient inconnu"
    assert ERROR_CODES["904"].startswith("L'INS transmis ne correspond pas exactement")
    assert ERROR_CODES["906"] == "Erreur 'Autre'"
    assert ACTION_MODES == ("manual-action", "automatic-action")
    assert SENDING_MODES == ("mdn-sent-manually", "mdn-sent-automatically")
    assert DISPOSITION_TYPES == ("displayed", "deleted", "dispatched", "processed")


def test_error_label_stops_at_the_next_component() -> None:
    report = validate_mdn(
        mdn(ERR.format("905", "L'INS transmis n'est pas complet^extra"), subject=ko("905"), human=("text/plain", "905"))
    )
    assert findings(report) == [] and report.error_label == "L'INS transmis n'est pas complet"
    bare = validate_mdn(mdn(ERR.format("903", ""), subject=ko("903"), human=("text/plain", "903")))
    assert findings(bare) == [] and (bare.error_code, bare.error_label) == ("903", None)


# ---------------------------------------------------------------------------------------------------------------
# raw 8-bit Subject: read as UTF-8 (RFC 6532 §3.2) so that its code is judged; without SMTPUTF8 (RFC 6531) the
# raw bytes are the MIME-8BIT-HEADER error of every MSSanté message (RFC 2047 encoded words expected)


RAW_KO_902 = "[KO Intégration système !][902] DLU".encode()
RAW_KO_904 = "[KO Intégration système !][904] DLU".encode()


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        pytest.param(ko("902"), [], id="rfc2047-right-code"),
        pytest.param(ko("904"), [("MDN-SUBJECT", E)], id="rfc2047-wrong-code"),
        pytest.param(RAW_KO_902, [("MIME-8BIT-HEADER", E)], id="raw-utf8-right-code"),
        pytest.param(RAW_KO_904, [("MIME-8BIT-HEADER", E), ("MDN-SUBJECT", E)], id="raw-utf8-wrong-code"),
        pytest.param(b"\xe9\xff [KO]", [("MIME-8BIT-HEADER", E), ("MDN-SUBJECT", E)], id="raw-not-utf8"),
    ],
)
def test_raw_8bit_subject_is_read_as_utf8_and_refused_without_smtputf8(subject: bytes, expected: list) -> None:
    """A raw UTF-8 Subject with the right code is not a code mismatch (it was, the accents being lost)."""
    data = mdn(ERR.format("902", "Identifiant patient inconnu"), subject=subject, human=("text/plain", "902"))
    report = validate_mdn(data)
    assert findings(report) == expected
    assert report.error_code == "902"
    if subject in (RAW_KO_902, RAW_KO_904):
        assert report.subject == subject.decode("utf-8")
    if expected[:1] == [("MIME-8BIT-HEADER", E)]:
        assert "RFC 6532" in report.findings[0].message and "RFC 2047" in report.findings[0].message
    under_smtputf8 = validate_mdn(data, smtputf8=True)  # RFC 6531: UTF-8 header fields allowed
    assert findings(under_smtputf8) == [f for f in expected if f[0] != "MIME-8BIT-HEADER"]


def test_header_reading_helpers() -> None:
    msg = parse_message(
        b"Subject: =?utf-8?q?caf=C3=A9?= au lait\r\nX-Raw: caf\xc3\xa9\r\nX-Bad: \xe9t\xe9\r\n"
        b"X-Folded:\r\n  deux\r\n  lignes\r\nX-Raw: second\r\n\r\nbody"
    )
    assert header_value(msg, "subject") == "café au lait"
    assert header_value(msg, "X-Raw") == "café"  # the first occurrence
    assert header_value(msg, "X-Bad") == "\ufffdt\ufffd"
    assert header_value(msg, "X-Folded") == "deux lignes"
    assert header_value(msg, "X-Absent") is None
    assert header_value(parse_message(b"Subject: =?nope?q?x?=\r\n\r\n"), "Subject") == "=?nope?q?x?="
    assert [f.message.split("en-tête ")[1].split(" ")[0] for f in raw_8bit_headers([msg])] == ["X-Raw", "X-Bad"]
