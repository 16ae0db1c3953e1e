"""Every finding of the MSSanté message validator (RFC 5322 / MIME, Référentiel socle MSSanté #2 ECO.2.1.x and
ECO.2.4.x, volet CDA-R2 en HL7v2 for X-MSS-MES), one row per rejection path on the reference DUI's conformant
message, asserting the EXACT findings (codes and severities, in order)."""

from __future__ import annotations

from collections.abc import Callable
from email import policy
from email.message import EmailMessage

import pytest

from harness.core.config import package_root
from harness.fields.testdata import Establishment, Person, load_testdata
from harness.sut.documents import BuildOptions, build_message
from harness.validators import Finding, Severity
from harness.validators.mssante_message import validate_message

E, W = Severity.ERROR, Severity.WARNING
DOCTOR = "jean.dupont@medecin.mssante.fr"


@pytest.fixture(scope="module")
def p001() -> tuple[Person, Establishment]:
    testdata = load_testdata(package_root() / "fixtures")
    person = testdata.person("P001")
    return person, testdata.establishment(person.essms)


def message(p001: tuple[Person, Establishment], **kwargs: object) -> EmailMessage:
    person, establishment = p001
    return build_message(person, establishment, establishment.dui_mailbox, [DOCTOR], **kwargs)  # type: ignore[arg-type]


def findings(items: list[Finding]) -> list[tuple[str, Severity]]:
    return [(f.code, f.severity) for f in items]


def header(name: str, value: str | None) -> Callable[[EmailMessage], None]:
    def edit(msg: EmailMessage) -> None:
        del msg[name]
        if value is not None:
            msg[name] = value

    return edit


def without_parts(content_type: str) -> Callable[[EmailMessage], None]:
    def edit(msg: EmailMessage) -> None:
        msg.set_payload([p for p in msg.get_payload() if p.get_content_type() != content_type])  # type: ignore[union-attr]

    return edit


def second_xdm(msg: EmailMessage) -> None:
    [xdm] = [p for p in msg.iter_attachments() if p.get_filename() == "IHE_XDM.ZIP"]
    msg.add_attachment(xdm.get_content(), maintype="application", subtype="zip", filename="ihe_xdm.zip")


def both(*edits: Callable[[EmailMessage], None]) -> Callable[[EmailMessage], None]:
    def edit(msg: EmailMessage) -> None:
        for one in edits:
            one(msg)

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(lambda m: None, [], id="clean"),
        pytest.param(header("X-MSS-INS", "N"), [], id="ins-N"),
        pytest.param(header("X-MSS-MES", "FIN"), [], id="mes-FIN"),
        pytest.param(header("X-MSS-CODECDA", " 74207-2 , "), [], id="codecda-blanks"),
        pytest.param(header("X-MSS-NIL", None), [("MSS-NIL-MISSING", W)], id="nil-missing"),
        pytest.param(header("Subject", "Compte rendu"), [("MSS-SUBJECT", W)], id="subject"),
        pytest.param(without_parts("application/pdf"), [("MSS-PDF-MISSING", W)], id="pdf-missing"),
        pytest.param(second_xdm, [("MSS-XDM-MULTIPLE", E)], id="two-xdm"),
        pytest.param(header("X-MSS-CODECDA", None), [("MSS-CODECDA-MISSING", E)], id="codecda-missing"),
        pytest.param(header("X-MSS-CODECDA", "11502-2"), [("MSS-CODECDA-MISMATCH", E)], id="codecda-other"),
        pytest.param(header("X-MSS-CODECDA", "74207-2,74207-2"), [("MSS-CODECDA-MISMATCH", E)], id="codecda-twice"),
        pytest.param(header("X-MSS-INS", None), [("MSS-INS-MISSING", E)], id="ins-missing"),
        pytest.param(header("X-MSS-INS", "oui"), [("MSS-INS-VALUE", E)], id="ins-value"),
        pytest.param(header("X-MSS-MES", "FINI"), [("MSS-MES-VALUE", E)], id="mes-value"),
        pytest.param(header("Date", None), [("RFC5322-HEADER", E)], id="no-date"),
        pytest.param(header("Message-ID", None), [("RFC5322-MESSAGE-ID", W)], id="no-message-id"),
        pytest.param(
            both(header("From", None), header("Date", None)),
            [("RFC5322-HEADER", E), ("RFC5322-HEADER", E)],
            id="no-from-no-date",
        ),
        pytest.param(without_parts("application/zip"), [("MSS-HEADER-UNEXPECTED", E)], id="headers-without-xdm"),
        pytest.param(
            both(without_parts("application/zip"), header("X-MSS-CODECDA", None)),
            [("MSS-HEADER-UNEXPECTED", E)],
            id="ins-header-without-xdm",
        ),
        pytest.param(
            both(without_parts("application/zip"), header("X-MSS-CODECDA", None), header("X-MSS-INS", None)),
            [],
            id="plain-message",
        ),
        pytest.param(
            both(without_parts("application/zip"), header("Subject", "Bonjour"), without_parts("application/pdf")),
            [("MSS-HEADER-UNEXPECTED", E)],
            id="no-xdm-no-subject-rule",
        ),
    ],
)
def test_each_defect_gives_exactly_its_findings(
    p001: tuple[Person, Establishment], edit: Callable[[EmailMessage], None], expected: list[tuple[str, Severity]]
) -> None:
    msg = message(p001)
    edit(msg)
    report = validate_message(msg.as_bytes(policy=policy.SMTP), recipients=[DOCTOR])
    assert findings(report.findings) == expected, [str(f) for f in report.findings]
    assert report.ok is (not any(s is E for _, s in expected))
    assert report.errors == [f for f in report.findings if f.severity is E]


def test_ins_flag_o_without_any_valid_ins(p001: tuple[Person, Establishment]) -> None:
    msg = message(p001, options=BuildOptions(patient_id_oid="1.2.250.1.999.1.1"))
    report = validate_message(msg.as_bytes(policy=policy.SMTP), recipients=[DOCTOR])
    assert findings(report.findings) == [
        ("XDM-INS-OID", E),
        ("XDM-INS-OID", E),
        ("CDA-NO-INS", E),
        ("MSS-INS-FLAG", E),
    ]
    assert report.person is None


def test_mime_structure_defects(p001: tuple[Person, Establishment]) -> None:
    msg = message(p001)
    data = msg.as_bytes(policy=policy.SMTP)
    unclosed = data.replace(b"--" + msg.get_boundary().encode() + b"--", b"")
    assert findings(validate_message(unclosed, recipients=[DOCTOR]).findings) == [("MIME-DEFECT", E)]
    no_colon = data.replace(b"Content-Type: application/pdf", b"Content-Type: application/pdf\r\nPas un en-tete")
    report = validate_message(no_colon, recipients=[DOCTOR])
    assert findings(report.findings) == [("MIME-WARNING", W)]
    assert report.findings[0].message.startswith("MissingHeaderBodySeparatorDefect")


def test_two_from_headers(p001: tuple[Person, Establishment]) -> None:
    data = b"From: x@y.fr\r\n" + message(p001).as_bytes(policy=policy.SMTP)
    assert data.count(b"From: ") == 2
    assert findings(validate_message(data, recipients=[DOCTOR]).findings) == [("RFC5322-HEADER", E)]


def test_unparsable_input() -> None:
    report = validate_message(None)  # type: ignore[arg-type]
    assert findings(report.findings) == [("MIME-UNPARSABLE", E)] and report.message_id is None


def _nested(depth: int) -> bytes:
    """A message whose multiparts nest ``depth`` levels deep (each level opens its one part)."""
    out = b"From: a@b.fr\r\nTo: c@d.fr\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
    for level in range(depth):
        out += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (level, level)
    out += b"Content-Type: text/plain\r\n\r\nx\r\n"
    return out + b"".join(b"--b%d--\r\n" % level for level in reversed(range(depth)))


def test_a_message_beyond_the_parsing_bounds_is_not_parsed() -> None:
    """20,000 nested multiparts took the email package 38 s, 2.5 million header fields seconds more: refused at once."""
    from harness.validators.mssante_message import MAX_HEADER_FIELDS, MAX_MULTIPARTS

    deep = validate_message(_nested(20_000), recipients=[DOCTOR])
    assert [(f.code, f.severity, f.message) for f in deep.findings] == [
        ("MIME-TOO-COMPLEX", E, f"message MIME de plus de {MAX_MULTIPARTS} parties multipart : non analysé")
    ]
    fields = b"From: a@b.fr\r\nTo: c@d.fr\r\n" + b"X-H: v\r\n" * (MAX_HEADER_FIELDS + 1) + b"\r\nx\r\n"
    assert [(f.code, f.message) for f in validate_message(fields, recipients=[DOCTOR]).findings] == [
        ("MIME-TOO-COMPLEX", f"message MIME de plus de {MAX_HEADER_FIELDS} champs d'en-tête : non analysé")
    ]
    # at the bounds the message is parsed (and judged on its content)
    assert "MIME-TOO-COMPLEX" not in {f.code for f in validate_message(_nested(MAX_MULTIPARTS)).findings}
    fields = b"From: a@b.fr\r\nTo: c@d.fr\r\n" + b"X-H: v\r\n" * (MAX_HEADER_FIELDS - 2) + b"\r\nx\r\n"
    assert "MIME-TOO-COMPLEX" not in {f.code for f in validate_message(fields).findings}


def test_the_reference_message_is_read(p001: tuple[Person, Establishment]) -> None:
    person, _ = p001
    msg = message(p001)
    report = validate_message(msg.as_bytes(policy=policy.SMTP))
    assert report.findings == [] and report.person == person.ins
    assert report.subject == msg["Subject"] and report.message_id == msg["Message-ID"]
    assert report.attachments[-1] == "IHE_XDM.ZIP" and len(report.attachments) == 2
    assert report.xdm is not None and [h.code for h in report.cda] == ["74207-2"]


def test_a_raw_utf8_subject_is_read_as_utf8_and_refused_without_smtputf8(p001: tuple[Person, Establishment]) -> None:
    msg = message(p001)
    msg.replace_header("Subject", "XDM/1.0/DDM+Dossier de liaison d'urgence MARTIN Hélène")
    data = msg.as_bytes(policy=policy.SMTP.clone(utf8=True))  # raw UTF-8 header (RFC 6532)
    assert "Hélène".encode() in data
    report = validate_message(data, recipients=[DOCTOR])
    assert report.subject == "XDM/1.0/DDM+Dossier de liaison d'urgence MARTIN Hélène"
    assert findings(report.findings) == [("MIME-8BIT-HEADER", E)]  # no SMTPUTF8: RFC 2047 expected
    assert validate_message(data, recipients=[DOCTOR], smtputf8=True).findings == []
