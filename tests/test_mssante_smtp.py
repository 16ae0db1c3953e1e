"""The MSSanté SMTP submission simulator over real sockets: protocol behaviour and hostile input.

Every case checks the exact reply code, then that the server still accepts a fresh, correct submission (250)
and that the exchanges recorded before the case are still in the journal, unchanged and in order. smtplib is
used wherever it can produce the bytes; a small raw client covers what it cannot (8-bit command lines...).
"""

from __future__ import annotations

import base64
import io
import json
import re
import smtplib
import socket
import ssl
import struct
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hostile import BILLION_LAUGHS, corrupt_stream

from harness.core.config import HarnessConfig
from harness.core.journal import Exchange, JournalFilter, Outcome
from harness.host.simulator import Fault
from harness.runtime.environment import SocleEnvironment
from harness.sut.documents import build_cda, build_message, build_xdm

SENDER = "dui@ehpad-tilleuls.mssante.fr"  # BAL APP of EHPAD Les Tilleuls (990000016)
PASSWORD = "dui-tilleuls-test"
DOCTOR = "jean.dupont@medecin.mssante.fr"
P001_INS = "238047505612394"
DEFAULT_LIMIT = 20 * 1024 * 1024
META = "IHE_XDM/SUBSET01/METADATA.XML"


# --------------------------------------------------------------------------------------------------------------
# environment and clients


def _start(tmp: Path, **settings: dict) -> SocleEnvironment:
    cfg = HarnessConfig(
        run_dir=tmp, journal=f"sqlite:///{tmp}/journal.sqlite", services=("mssante",), settings=settings
    )
    env = SocleEnvironment(cfg)
    env.start()
    return env


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    env = _start(tmp_path_factory.mktemp("mssante-smtp"))
    yield env
    env.stop()


@pytest.fixture(scope="module")
def small_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    env = _start(tmp_path_factory.mktemp("mssante-smtp-small"), mssante={"max_message_bytes": 1_000_000})
    yield env
    env.stop()


@pytest.fixture(autouse=True)
def _no_pending_fault(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for name in ("env", "small_env"):
        if name in request.fixturenames:
            request.getfixturevalue(name).host.faults.clear()


def endpoint(env: SocleEnvironment) -> tuple[str, int]:
    host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")
    return host.strip("[]"), int(port)


def tls_context(env: SocleEnvironment) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))


def connect(
    env: SocleEnvironment, *, tls: bool = True, user: str | None = SENDER, password: str = PASSWORD
) -> smtplib.SMTP:
    host, port = endpoint(env)
    smtp = smtplib.SMTP(host, port, local_hostname="dui.test", timeout=15)
    smtp.ehlo()
    if tls:
        smtp.starttls(context=tls_context(env))
        smtp.ehlo()
        if user is not None:
            smtp.login(user, password)
    return smtp


def close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


@dataclass
class Reply:
    code: int
    text: str
    stage: str  # MAIL, RCPT or DATA: the command that got the final reply


def transaction(
    smtp: smtplib.SMTP, data: bytes, *, sender: str = SENDER, recipients: tuple[str, ...] = (DOCTOR,)
) -> Reply:
    """MAIL, RCPT..., DATA on an open session; stops at the first refusal and returns that reply."""
    code, text = smtp.mail(sender)
    if code != 250:
        return Reply(code, text.decode("ascii"), "MAIL")
    for rcpt in recipients:
        code, text = smtp.rcpt(rcpt)
        if code not in (250, 251):
            smtp.rset()
            return Reply(code, text.decode("ascii"), "RCPT")
    code, text = smtp.data(data)
    return Reply(code, text.decode("ascii"), "DATA")


def submit(env: SocleEnvironment, data: bytes, **kwargs: object) -> Reply:
    smtp = connect(env)
    try:
        return transaction(smtp, data, **kwargs)  # type: ignore[arg-type]
    finally:
        close(smtp)


def message(env: SocleEnvironment, person: str = "P001", recipients: tuple[str, ...] = (DOCTOR,)) -> EmailMessage:
    p = env.testdata.person(person)
    return build_message(p, env.testdata.establishment(p.essms), SENDER, list(recipients))


def to_bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=policy.SMTP)  # CRLF line endings, as on the wire


def good_bytes(env: SocleEnvironment) -> bytes:
    return to_bytes(message(env))


def with_xdm(msg: EmailMessage, archive: bytes) -> EmailMessage:
    for part in msg.iter_attachments():
        if (part.get_filename() or "").upper() == "IHE_XDM.ZIP":
            part.set_content(archive, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
            return msg
    raise AssertionError("no IHE_XDM.ZIP attachment")


def rezip(archive: bytes, edit: Callable[[dict[str, bytes]], None]) -> bytes:
    with zipfile.ZipFile(io.BytesIO(archive)) as source:
        entries = {i.filename: source.read(i) for i in source.infolist()}
    edit(entries)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name, content in entries.items():
            target.writestr(zipfile.ZipInfo(name), content)  # ZipInfo keeps the name exactly as given
    return out.getvalue()


def reference_xdm(env: SocleEnvironment, person: str = "P001") -> bytes:
    p = env.testdata.person(person)
    e = env.testdata.establishment(p.essms)
    return build_xdm(p, e, "DLU", build_cda(p, e, "DLU"))


def since(env: SocleEnvironment, mark: int) -> list[Exchange]:
    return env.journal.query(JournalFilter(since_seq=mark))


def finding_codes(exchange: Exchange) -> list[str]:
    return [f["code"] for f in exchange.details.get("findings", [])]


class JournalGuard:
    """Snapshot of the journal before a case; :meth:`check` proves the server survived the case."""

    def __init__(self, env: SocleEnvironment) -> None:
        self.env = env
        self.before = env.journal.query()
        self.mark = env.journal.last_seq()

    def new(self) -> list[Exchange]:
        return since(self.env, self.mark)

    def check(self, *, added: int) -> None:
        """``added`` exchanges were recorded by the case; then a fresh correct submission is accepted."""
        data = good_bytes(self.env)
        reply = submit(self.env, data)
        assert reply.code == 250, reply
        after = self.env.journal.query()
        assert len(after) == len(self.before) + added + 1
        assert [e.id for e in after[: len(self.before)]] == [e.id for e in self.before]
        assert [e.summary() for e in after[: len(self.before)]] == [e.summary() for e in self.before]
        fresh = after[-1]
        assert (fresh.operation, fresh.outcome) == ("smtp.submit", Outcome.ACCEPTED)
        assert reply.text.endswith(fresh.id)
        assert fresh.digest is not None and self.env.journal.payload(fresh.digest) == data


# --------------------------------------------------------------------------------------------------------------
# raw client for bytes smtplib will not send


class RawClient:
    def __init__(self, env: SocleEnvironment, *, login: bool = True) -> None:
        host, port = endpoint(env)
        self.sock: socket.socket = socket.create_connection((host, port), timeout=15)
        self.reader = self.sock.makefile("rb")
        assert self.reply()[0] == 220
        assert self.command(b"EHLO raw.test")[0] == 250
        assert self.command(b"STARTTLS")[0] == 220
        self.sock = tls_context(env).wrap_socket(self.sock, server_hostname=host)
        self.reader = self.sock.makefile("rb")
        assert self.command(b"EHLO raw.test")[0] == 250
        if login:
            token = base64.b64encode(f"\0{SENDER}\0{PASSWORD}".encode()).decode()
            assert self.command(f"AUTH PLAIN {token}".encode())[0] == 235

    def reply(self) -> tuple[int, bytes]:
        lines = []
        while True:
            line = self.reader.readline(4096)
            if not line:
                raise ConnectionError("connection closed by the server")
            lines.append(line[4:].rstrip(b"\r\n"))
            if line[3:4] != b"-":
                return int(line[:3]), b"\n".join(lines)

    def command(self, line: bytes) -> tuple[int, bytes]:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def close(self) -> None:
        try:
            self.command(b"QUIT")
        except OSError:
            pass
        self.reader.close()
        self.sock.close()


# --------------------------------------------------------------------------------------------------------------
# protocol


def test_ehlo_before_starttls_offers_starttls_and_default_size(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    smtp = connect(env, tls=False)
    try:
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")  # AUTH is only offered under TLS
        assert smtp.esmtp_features["size"] == str(DEFAULT_LIMIT)  # default limit: 20 MiB
    finally:
        close(smtp)
    smtp = connect(env, user=None)
    try:
        assert smtp.has_extn("auth") and {"PLAIN", "LOGIN"} <= set(smtp.esmtp_features["auth"].split())
        assert smtp.esmtp_features["size"] == str(DEFAULT_LIMIT)
    finally:
        close(smtp)
    guard.check(added=0)


def command_refusals(guard: JournalGuard) -> list[tuple[str, str, str, str, str]]:
    """The ``smtp.command`` refusals of a case: (command, reply, error_code, error_message, peer host)."""
    found = guard.new()
    assert {(e.operation, e.outcome) for e in found} <= {
        ("smtp.command", Outcome.REJECTED),
        ("smtp.auth", Outcome.REJECTED),
    }
    return [
        (e.details["command"], e.details["reply"], e.error_code, e.error_message, e.details["peer"].rpartition(":")[0])
        for e in found
        if e.operation == "smtp.command"
    ]


def test_mail_before_starttls(env: SocleEnvironment) -> None:
    """RFC 3207 §4: 530 before STARTTLS, and the journal shows the DUI trying to work in clear (peer, command, reply)."""
    guard = JournalGuard(env)
    smtp = connect(env, tls=False)
    try:
        assert smtp.mail(SENDER) == (530, b"5.7.0 Must issue a STARTTLS command first")
        assert smtp.rcpt(DOCTOR)[0] == 530
        assert smtp.docmd("DATA")[0] == 530
    finally:
        close(smtp)
    host = endpoint(env)[0]
    reply = "530 5.7.0 Must issue a STARTTLS command first"
    assert command_refusals(guard) == [
        (command, reply, "530 5.7.0", f"{command} avant STARTTLS (RFC 3207 §4)", host)
        for command in ("MAIL", "RCPT", "DATA")
    ]
    assert {e.details["tls"] for e in guard.new()} == {False}
    guard.check(added=3)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_before_starttls(env: SocleEnvironment, mechanism: str) -> None:
    guard = JournalGuard(env)
    smtp = connect(env, tls=False)
    try:
        token = base64.b64encode(f"\0{SENDER}\0{PASSWORD}".encode()).decode()
        code, _ = smtp.docmd("AUTH", f"{mechanism} {token}" if mechanism == "PLAIN" else mechanism)
        assert code == 530
        with pytest.raises(smtplib.SMTPNotSupportedError):
            smtp.login(SENDER, PASSWORD)
    finally:
        close(smtp)
    reply = "530 5.7.0 Must issue a STARTTLS command first"
    assert command_refusals(guard) == [
        ("AUTH", reply, "530 5.7.0", "AUTH avant STARTTLS (RFC 3207 §4)", endpoint(env)[0])
    ]
    assert PASSWORD not in json.dumps([e.summary() for e in guard.new()])
    guard.check(added=1)


def test_mail_without_auth_after_starttls(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    smtp = connect(env, user=None)
    try:
        code, text = smtp.mail(SENDER)
        assert (code, text) == (530, b"5.7.0 Authentication required")
    finally:
        close(smtp)
    assert command_refusals(guard) == [
        ("MAIL", "530 5.7.0 Authentication required", "530 5.7.0", "MAIL avant AUTH (RFC 4954 §6)", endpoint(env)[0])
    ]
    assert [e.details["tls"] for e in guard.new()] == [True]
    guard.check(added=1)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_wrong_password(env: SocleEnvironment, mechanism: str) -> None:
    guard = JournalGuard(env)
    smtp = connect(env, user=None)
    try:
        smtp.user, smtp.password = SENDER, "not-the-password"
        authobject = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.auth(mechanism, authobject)
        assert refused.value.smtp_code == 535
        assert refused.value.smtp_error.startswith(b"5.7.8")
        assert smtp.mail(SENDER)[0] == 530  # still not authenticated
    finally:
        close(smtp)
    auth, mail = guard.new()
    assert (mail.operation, mail.error_code, mail.details["command"]) == ("smtp.command", "530 5.7.0", "MAIL")
    # the password back-off's counts ride along (their values depend on the failures before this test)
    assert (set(auth.details), auth.details["mechanism"], auth.details["peer"]) == (
        {"mechanism", "peer", "backoff"},
        mechanism,
        "127.0.0.1",
    )
    assert (auth.details["backoff"]["refused"], auth.details["backoff"]["delay"]) == (False, 0.0)
    assert (auth.operation, auth.outcome, auth.error_code) == ("smtp.auth", Outcome.REJECTED, "535 5.7.8")
    assert auth.actor == SENDER
    assert auth.essms == "990000016"
    assert auth.run_id == env.run_id
    assert "not-the-password" not in json.dumps(auth.summary())
    guard.check(added=2)


def test_unknown_login(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    smtp = connect(env, user=None)
    try:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.user, smtp.password = "inconnu@nulle-part.mssante.fr", "x"
            smtp.auth("PLAIN", smtp.auth_plain)
        assert refused.value.smtp_code == 535
    finally:
        close(smtp)
    (auth,) = guard.new()
    assert (auth.operation, auth.outcome, auth.actor, auth.essms) == (
        "smtp.auth",
        Outcome.REJECTED,
        "inconnu@nulle-part.mssante.fr",
        None,
    )
    guard.check(added=1)


@pytest.mark.parametrize(
    ("user", "password", "sender"),
    [
        pytest.param(SENDER, PASSWORD, "coordination@ssiad-val.mssante.fr", id="APP-of-another-establishment"),
        pytest.param(DOCTOR, "dupont-test", "secretariat@ehpad-tilleuls.mssante.fr", id="PER-as-ORG"),
        pytest.param(SENDER, PASSWORD, "inconnu@ehpad-tilleuls.mssante.fr", id="unknown-sender"),
    ],
)
def test_sender_not_allowed(env: SocleEnvironment, user: str, password: str, sender: str) -> None:
    guard = JournalGuard(env)
    smtp = connect(env, user=user, password=password)
    try:
        reply = transaction(smtp, good_bytes(env), sender=sender)
    finally:
        close(smtp)
    assert (reply.stage, reply.code) == ("MAIL", 550)
    assert reply.text.startswith("5.7.1 ")
    (refusal,) = guard.new()
    assert (refusal.operation, refusal.outcome, refusal.error_code) == ("smtp.submit", Outcome.REJECTED, "550 5.7.1")
    assert refusal.actor == user
    assert refusal.details == {"stage": "mail", "from": sender}
    guard.check(added=1)


def test_app_mailbox_may_send_for_its_organisation(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    data = good_bytes(env)
    reply = submit(env, data, sender="secretariat@ehpad-tilleuls.mssante.fr")
    assert reply.code == 250
    (accepted,) = guard.new()
    assert (accepted.outcome, accepted.actor, accepted.essms) == (Outcome.ACCEPTED, SENDER, "990000016")
    guard.check(added=1)


def test_unknown_recipient(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    unknown = "inconnu@medecin.mssante.fr"
    reply = submit(env, good_bytes(env), recipients=(unknown,))
    assert (reply.stage, reply.code) == ("RCPT", 550)
    assert reply.text.startswith("5.1.1 ") and unknown in reply.text
    (refusal,) = guard.new()
    assert (refusal.operation, refusal.outcome, refusal.error_code) == ("smtp.submit", Outcome.REJECTED, "550 5.1.1")
    assert refusal.details["recipient"] == unknown
    assert refusal.details["stage"] == "rcpt"
    assert unknown in (refusal.error_message or "")
    guard.check(added=1)


def test_patient_mailbox_of_a_person_without_mailbox_is_unknown(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    p004 = env.testdata.person("P004")  # has not activated the Mon espace santé mailbox
    reply = submit(env, good_bytes(env), recipients=(DOCTOR, p004.mailbox))
    assert (reply.stage, reply.code) == ("RCPT", 550)
    (refusal,) = guard.new()
    assert refusal.details["recipient"] == p004.mailbox
    guard.check(added=1)


def test_correct_message_is_accepted_and_journaled_verbatim(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    msg = message(env)
    data = to_bytes(msg)
    reply = submit(env, data)
    assert (reply.stage, reply.code) == ("DATA", 250)
    assert re.fullmatch(r"2\.0\.0 Ok: queued as [0-9a-f]{32}", reply.text)
    (accepted,) = guard.new()
    assert reply.text.endswith(accepted.id)
    assert (accepted.service, accepted.operation, accepted.outcome) == ("mssante", "smtp.submit", Outcome.ACCEPTED)
    assert accepted.person == P001_INS
    assert (accepted.actor, accepted.essms, accepted.run_id) == (SENDER, "990000016", env.run_id)
    assert accepted.error_code is None
    assert accepted.digest is not None and env.journal.payload(accepted.digest) == data
    assert accepted.payload_type == "message/rfc822"
    assert accepted.details["recipients"] == [{"address": DOCTOR, "type": "PER"}]
    assert accepted.details["message_id"] == str(msg["Message-ID"]).strip()
    dlu_templates = ["2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1", "1.2.250.1.213.1.1.1.22"]
    assert accepted.details["documents"] == [{"code": "74207-2", "ins": P001_INS, "templates": dlu_templates}]
    assert not [f for f in accepted.details["findings"] if f["severity"] == "error"]
    # the archive as the service judged it: what the scenario steps read instead of validating the message again
    assert accepted.details["xdm"] == {
        "subsets": ["SUBSET01"],
        "documents": ["IHE_XDM/SUBSET01/DOC0001.XML"],
        "findings": [],
    }
    guard.check(added=1)


def test_message_to_the_persons_own_mailbox(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    p001 = env.testdata.person("P001")
    reply = submit(env, to_bytes(message(env, recipients=(p001.mailbox,))), recipients=(p001.mailbox,))
    assert reply.code == 250
    (accepted,) = guard.new()
    assert accepted.details["to_patient_mailbox"] is True
    guard.check(added=1)


# --------------------------------------------------------------------------------------------------------------
# hostile content


def _refused_554(env: SocleEnvironment, guard: JournalGuard, data: bytes) -> Exchange:
    reply = submit(env, data)
    assert (reply.stage, reply.code) == ("DATA", 554), reply
    assert reply.text.startswith("5.6.0 ")
    (refusal,) = guard.new()
    assert (refusal.operation, refusal.outcome, refusal.error_code) == ("smtp.submit", Outcome.REJECTED, "554 5.6.0")
    assert refusal.digest is not None and env.journal.payload(refusal.digest) == data
    assert reply.text[len("5.6.0 ") :].split(":")[0] == refusal.error_message.split(":")[0]
    return refusal


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda d: d.replace(b'boundary="', b'x-boundary="', 1), id="no-boundary-parameter"),
        pytest.param(lambda d: d.replace(b'boundary="', b'boundary="BOGUS', 1), id="boundary-not-in-body"),
        pytest.param(
            lambda d: d.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\nplain text, no parts at all\r\n",
            id="multipart-without-parts",
        ),
    ],
)
def test_malformed_mime(env: SocleEnvironment, mangle: Callable[[bytes], bytes]) -> None:
    guard = JournalGuard(env)
    refusal = _refused_554(env, guard, mangle(good_bytes(env)))
    assert refusal.error_message.startswith("MIME-DEFECT")
    assert "MIME-DEFECT" in finding_codes(refusal)
    guard.check(added=1)


@pytest.mark.parametrize(
    ("mangle", "header"),
    [
        pytest.param(lambda d: b"X-Garbage: \xff\xfe\xc0\xaf\x80 \x01\x7f end\r\n" + d, "X-Garbage", id="extra-header"),
        pytest.param(
            lambda d: d.replace(b"Subject: XDM/1.0/DDM+", b"Subject: XDM/1.0/DDM+\xff\xfe\xe9\xc3("),
            "Subject",
            id="subject",
        ),
        pytest.param(lambda d: d.replace(b"From: EHPAD", b"From: \xff\xfe\x80 EHPAD"), "From", id="from"),
        pytest.param(
            lambda d: d.replace(b"Message-ID: <", b"Message-ID: <\xff\xfe", 1).replace(
                b"Message-ID:\r\n <", b"Message-ID:\r\n <\xff\xfe", 1
            ),
            "Message-ID",
            id="message-id",
        ),
        # not a header field at all: the header section ends before it (From, Date... then missing)
        pytest.param(lambda d: b"X-\xff\xfe\x80: v\r\n" + d, None, id="header-name"),
        pytest.param(
            lambda d: d.replace(b'filename="IHE_XDM.ZIP"', b'filename="IHE_\xff\xfe.ZIP"'),
            "Content-Disposition",
            id="filename",
        ),
        pytest.param(
            lambda d: d.replace(b"Content-Type: multipart/mixed", b"Content-Type: multipart/\xff\xfe", 1),
            "Content-Type",
            id="content-type",
        ),
    ],
)
def test_8bit_garbage_in_headers(env: SocleEnvironment, mangle: Callable[[bytes], bytes], header: str | None) -> None:
    """Raw 8-bit header bytes without SMTPUTF8 (RFC 5322 §2.2, RFC 6532 §3): a clean, journaled 554 naming the field,
    not a "500 Error: (SomeException)"."""
    guard = JournalGuard(env)
    good = good_bytes(env)
    data = mangle(good)
    assert data != good and b"\xff\xfe" in data
    refusal = _refused_554(env, guard, data)
    eight_bit = [f["message"] for f in refusal.details["findings"] if f["code"] == "MIME-8BIT-HEADER"]
    if header is None:
        assert eight_bit == [] and refusal.error_message.startswith("RFC5322-HEADER: ")
    else:
        assert eight_bit == [
            f"octets 8 bits bruts dans l'en-tête {header} sans SMTPUTF8 (RFC 5322 §2.2, RFC 6532 §3): "
            "encodage RFC 2047 attendu"
        ]
        assert refusal.error_message.startswith("MIME-8BIT-HEADER: ")
    json.dumps(refusal.summary())  # the recorded details are serialisable
    guard.check(added=1)


def _zeros_archive(size: int, *, level: int = 9) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        archive.writestr("README.TXT", "bombe\r\n")
        archive.writestr("INDEX.HTM", "<html/>")
        with archive.open("IHE_XDM/SUBSET01/DOC0001.XML", "w", force_zip64=True) as handle:
            chunk = bytes(1024 * 1024)
            for _ in range(size // len(chunk)):
                handle.write(chunk)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bomb_200mb() -> bytes:
    return _zeros_archive(200 * 1024 * 1024)


@pytest.mark.parametrize(("size_mb", "codes"), [(200, {"XDM-TOO-LARGE"}), (20, {"XDM-ZIP-BOMB"})])
def test_zip_bomb(env: SocleEnvironment, bomb_200mb: bytes, size_mb: int, codes: set[str]) -> None:
    archive = bomb_200mb if size_mb == 200 else _zeros_archive(size_mb * 1024 * 1024)
    assert len(archive) < 1024 * 1024
    guard = JournalGuard(env)
    data = to_bytes(with_xdm(message(env), archive))
    started = time.monotonic()
    refusal = _refused_554(env, guard, data)
    assert time.monotonic() - started < 3.0
    assert set(finding_codes(refusal)) & {"XDM-ZIP-BOMB", "XDM-TOO-LARGE"} == codes
    assert refusal.error_message.split(":")[0] in {"XDM-ZIP-BOMB", "XDM-TOO-LARGE"}
    guard.check(added=1)


def _passwd_lines() -> list[str]:
    try:
        lines = Path("/etc/passwd").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if line.strip()][:5]


XXE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE lcm:SubmitObjectsRequest [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<lcm:SubmitObjectsRequest xmlns:lcm="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
    xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0">
  <rim:RegistryObjectList><rim:ExtrinsicObject id="&xxe;"/></rim:RegistryObjectList>
</lcm:SubmitObjectsRequest>
"""

XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE r [ <!ENTITY % p SYSTEM "file:///etc/passwd"> %p; ]>
<r>&x;</r>
"""


@pytest.mark.parametrize(
    ("entry", "payload"),
    [
        pytest.param(META, XXE, id="metadata-xxe"),
        pytest.param(META, XXE_PARAMETER, id="metadata-xxe-parameter-entity"),
        pytest.param(META, BILLION_LAUGHS, id="metadata-billion-laughs"),
        pytest.param("IHE_XDM/SUBSET01/DOC0001.XML", XXE, id="cda-xxe"),
        pytest.param("IHE_XDM/SUBSET01/DOC0001.XML", BILLION_LAUGHS, id="cda-billion-laughs"),
    ],
)
def test_hostile_xml(env: SocleEnvironment, entry: str, payload: bytes) -> None:
    guard = JournalGuard(env)
    p = env.testdata.person("P001")
    e = env.testdata.establishment(p.essms)
    if entry == META:
        archive = rezip(reference_xdm(env), lambda entries: entries.__setitem__(META, payload))
    else:  # a consistent archive (size and hash match) whose CDA document is the hostile XML
        archive = build_xdm(p, e, "DLU", payload)
    started = time.monotonic()
    refusal = _refused_554(env, guard, to_bytes(with_xdm(message(env), archive)))
    assert time.monotonic() - started < 3.0
    assert re.fullmatch(r"XML-[A-Z-]+", refusal.error_message.split(":")[0]), refusal.error_message
    assert any(code.startswith("XML-") for code in finding_codes(refusal))
    recorded = (refusal.error_message or "") + json.dumps(refusal.details, ensure_ascii=False)
    for line in _passwd_lines():
        assert line not in recorded
    assert "root:" not in recorded
    guard.check(added=1)


@pytest.mark.parametrize(
    "name", ["../evil.txt", "IHE_XDM/SUBSET01/../../evil.txt", "/etc/evil.txt", "..\\evil.txt", "C:/evil.txt"]
)
def test_unsafe_zip_path(env: SocleEnvironment, name: str) -> None:
    guard = JournalGuard(env)
    archive = rezip(reference_xdm(env), lambda entries: entries.__setitem__(name, b"pwned\r\n"))
    with zipfile.ZipFile(io.BytesIO(archive)) as check:
        assert name in check.namelist()
    refusal = _refused_554(env, guard, to_bytes(with_xdm(message(env), archive)))
    assert refusal.error_message.startswith("XDM-UNSAFE-PATH")
    unsafe = [f for f in refusal.details["findings"] if f["code"] == "XDM-UNSAFE-PATH"]
    assert [f["location"] for f in unsafe] == [name]
    assert [(f["code"], f["location"]) for f in refusal.details["xdm"]["findings"]] == [("XDM-UNSAFE-PATH", name)]
    guard.check(added=1)


def _future_zip_version(archive: bytes) -> bytes:
    data = bytearray(archive)
    central = data.index(b"PK\x01\x02")
    data[central + 6 : central + 8] = struct.pack("<H", 245)  # "version needed to extract" 24.5
    return bytes(data)


@pytest.mark.parametrize(
    ("corrupt", "code"),
    [
        pytest.param(
            lambda a: corrupt_stream(a, "README.TXT", zipfile.ZIP_DEFLATED), "XDM-ENTRY-UNREADABLE", id="deflate"
        ),
        pytest.param(lambda a: corrupt_stream(a, "README.TXT", zipfile.ZIP_BZIP2), "XDM-ENTRY-UNREADABLE", id="bzip2"),
        pytest.param(lambda a: corrupt_stream(a, "README.TXT", zipfile.ZIP_LZMA), "XDM-ENTRY-UNREADABLE", id="lzma"),
        pytest.param(_future_zip_version, "XDM-NOT-ZIP", id="unsupported-zip-version"),
        pytest.param(lambda a: a[: len(a) // 2], "XDM-NOT-ZIP", id="truncated"),
    ],
)
def test_corrupt_zip(env: SocleEnvironment, corrupt: Callable[[bytes], bytes], code: str) -> None:
    """A damaged archive is a journaled 554 with a finding, not a "500 Error: (error) ..." from an exception."""
    guard = JournalGuard(env)
    refusal = _refused_554(env, guard, to_bytes(with_xdm(message(env), corrupt(reference_xdm(env)))))
    assert refusal.error_message.startswith(code)
    assert code in finding_codes(refusal)
    guard.check(added=1)


# --------------------------------------------------------------------------------------------------------------
# size limit


def _big_message(env: SocleEnvironment, size: int) -> bytes:
    msg = message(env)
    blob = (bytes(range(256)) * (size // 256 + 1))[:size]
    msg.add_attachment(blob, maintype="application", subtype="octet-stream", filename="annexe.bin")
    return to_bytes(msg)


def test_size_limit_is_configurable(small_env: SocleEnvironment) -> None:
    guard = JournalGuard(small_env)
    smtp = connect(small_env)
    try:
        assert smtp.esmtp_features["size"] == "1000000"
    finally:
        close(smtp)
    guard.check(added=0)


def test_oversized_message_announced_with_size(small_env: SocleEnvironment) -> None:
    """smtplib announces SIZE=<n> on MAIL FROM: the server refuses before the data is sent."""
    guard = JournalGuard(small_env)
    data = _big_message(small_env, 2_000_000)
    assert len(data) > 2_000_000
    smtp = connect(small_env)
    try:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail(SENDER, [DOCTOR], data)
        assert refused.value.smtp_code == 552
    finally:
        close(smtp)
    assert (
        refused.value.smtp_error
        == b"5.3.4 message annonce de " + str(len(data)).encode() + b" octets (SIZE), limite 1000000 octets"
    )
    (refusal,) = guard.new()  # refused at MAIL, before any data, and journaled like every refusal
    assert (refusal.operation, refusal.outcome, refusal.error_code) == ("smtp.submit", Outcome.REJECTED, "552 5.3.4")
    assert refusal.details == {"stage": "mail", "from": SENDER, "size": len(data)}
    guard.check(added=1)


def test_size_under_the_limit_is_not_refused_at_mail(small_env: SocleEnvironment) -> None:
    guard = JournalGuard(small_env)
    smtp = connect(small_env)
    try:
        assert smtp.mail(SENDER, ["SIZE=999999"])[0] == 250
        assert smtp.rset()[0] == 250
    finally:
        close(smtp)
    guard.check(added=0)


def test_oversized_message_without_size(small_env: SocleEnvironment) -> None:
    """No SIZE parameter: the data is read (and discarded) and the end of DATA gets 552."""
    guard = JournalGuard(small_env)
    data = _big_message(small_env, 2_000_000)
    reply = submit(small_env, data)
    assert (reply.stage, reply.code) == ("DATA", 552)
    (refusal,) = guard.new()  # a refused message is journaled like any other refusal
    assert (refusal.operation, refusal.outcome, refusal.error_code) == ("smtp.submit", Outcome.REJECTED, "552 5.3.4")
    assert refusal.error_message == "message trop volumineux (limite 1000000 octets)"
    assert refusal.details["from"] == SENDER
    assert refusal.details["recipients"] == [{"address": DOCTOR}]
    guard.check(added=1)


def test_one_line_longer_than_the_size_limit(small_env: SocleEnvironment) -> None:
    """A single line over the message limit: aiosmtpd stops reading it; still a journaled 552 5.3.4."""
    guard = JournalGuard(small_env)
    client = RawClient(small_env)
    try:
        assert client.command(f"MAIL FROM:<{SENDER}>".encode())[0] == 250
        assert client.command(f"RCPT TO:<{DOCTOR}>".encode())[0] == 250
        assert client.command(b"DATA")[0] == 354
        client.sock.sendall(b"Subject: x\r\n\r\n" + b"A" * 1_200_000 + b"\r\n.\r\n")
        assert client.reply() == (552, b"5.3.4 message trop volumineux (limite 1000000 octets)")
        assert client.command(b"NOOP")[0] == 250
    finally:
        client.close()
    (refusal,) = guard.new()
    assert (refusal.operation, refusal.error_code) == ("smtp.submit", "552 5.3.4")
    guard.check(added=1)


def test_message_just_under_the_limit_is_accepted(small_env: SocleEnvironment) -> None:
    guard = JournalGuard(small_env)
    data = _big_message(small_env, 600_000)
    assert len(data) < 1_000_000
    assert submit(small_env, data).code == 250
    guard.check(added=1)


# --------------------------------------------------------------------------------------------------------------
# raw command lines


@pytest.mark.parametrize(
    ("line", "reply", "operation"),
    [
        pytest.param(
            b"MAIL FROM:<\xff\xfe@ehpad-tilleuls.mssante.fr>",
            "500 Error: strict ASCII mode",
            "smtp.command",
            id="8bit-mail-from",
        ),
        pytest.param(
            b"RCPT TO:<jean.dupont\xc3\xa9@medecin.mssante.fr>",
            "500 Error: strict ASCII mode",
            "smtp.command",
            id="utf8-rcpt-without-smtputf8",
        ),
        pytest.param(b"\xff\xfe\xfd", "500 Error: bad syntax", "smtp.command", id="8bit-verb"),
        pytest.param(
            b"MAIL FROM:<" + b"a" * 5000 + b"@x.fr>", "500 Command line too long", "smtp.command", id="overlong-command"
        ),
        pytest.param(b"MAIL FROM:<a\x00b@x.fr>", None, "smtp.submit", id="nul-in-address"),
        pytest.param(b"", "500 Error: bad syntax", "smtp.command", id="empty-line"),
        pytest.param(b"XYZZY", '500 Error: command "XYZZY" not recognized', "smtp.command", id="unknown-verb"),
    ],
)
def test_raw_hostile_command(env: SocleEnvironment, line: bytes, reply: str | None, operation: str) -> None:
    """Every refusal is journaled, also the 500s aiosmtpd answers before any command method runs (the command is
    then unknown: ``command`` is empty)."""
    guard = JournalGuard(env)
    client = RawClient(env)
    try:
        code, text = client.command(line)
        assert client.command(b"NOOP")[0] == 250  # same session still usable
    finally:
        client.close()
    (refusal,) = guard.new()
    assert (refusal.operation, refusal.outcome) == (operation, Outcome.REJECTED)
    if reply is None:
        assert (code, refusal.error_code) == (550, "550 5.7.1")
    else:
        assert f"{code} {text.decode()}" == reply
        assert (refusal.details["command"], refusal.details["reply"], refusal.error_code) == ("", reply, "500")
        assert refusal.error_message == f"commande refusée par le protocole: {reply}"
    guard.check(added=1)


def test_raw_data_with_bare_lf_and_nul(env: SocleEnvironment) -> None:
    """Header section with bare LF line ends and a NUL byte (smtplib would normalise both)."""
    guard = JournalGuard(env)
    head, body = good_bytes(env).split(b"\r\n\r\n", 1)
    head = head.replace(b"\r\n", b"\n").replace(b"X-MSS-NIL", b"X-\x00-NIL")
    assert len(head) < 1000  # one SMTP line (bare LFs do not end a line), under the 1000-octet limit
    client = RawClient(env)
    try:
        assert client.command(f"MAIL FROM:<{SENDER}>".encode())[0] == 250
        assert client.command(f"RCPT TO:<{DOCTOR}>".encode())[0] == 250
        assert client.command(b"DATA")[0] == 354
        client.sock.sendall(head + b"\r\n\r\n" + body + b".\r\n")
        assert client.reply() == (500, b"5.5.2 LF seul, CRLF attendu (RFC 5321 2.3.8)")
        assert client.command(b"NOOP")[0] == 250
    finally:
        client.close()
    (exchange,) = guard.new()
    assert (exchange.operation, exchange.outcome, exchange.error_code) == ("smtp.submit", Outcome.REJECTED, "500 5.5.2")
    assert exchange.error_message == "LF seul, CRLF attendu (RFC 5321 §2.3.8)"
    assert env.journal.payload(exchange.digest) == head + b"\r\n\r\n" + body
    guard.check(added=1)


def test_raw_data_with_a_bare_cr(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    client = RawClient(env)
    try:
        assert client.command(f"MAIL FROM:<{SENDER}>".encode())[0] == 250
        assert client.command(f"RCPT TO:<{DOCTOR}>".encode())[0] == 250
        assert client.command(b"DATA")[0] == 354
        client.sock.sendall(b"Subject: x\rBcc: y\r\n\r\nbody\r\n.\r\n")
        assert client.reply() == (500, b"5.5.2 CR seul, CRLF attendu (RFC 5321 2.3.8)")
    finally:
        client.close()
    (refusal,) = guard.new()
    assert (refusal.error_code, refusal.error_message) == ("500 5.5.2", "CR seul, CRLF attendu (RFC 5321 §2.3.8)")
    guard.check(added=1)


def test_raw_data_line_too_long(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    client = RawClient(env)
    try:
        assert client.command(f"MAIL FROM:<{SENDER}>".encode())[0] == 250
        assert client.command(f"RCPT TO:<{DOCTOR}>".encode())[0] == 250
        assert client.command(b"DATA")[0] == 354
        client.sock.sendall(b"Subject: x\r\n\r\n" + b"A" * 5000 + b"\r\n.\r\n")
        # RFC 5321 §4.5.3.1.6: 1000 octets per line
        assert client.reply() == (500, b"5.5.2 ligne 3 de 5002 octets, 1000 au plus (RFC 5321 4.5.3.1.6)")
        assert client.command(b"NOOP")[0] == 250
    finally:
        client.close()
    (refusal,) = guard.new()
    assert (refusal.operation, refusal.outcome, refusal.error_code) == ("smtp.submit", Outcome.REJECTED, "500 5.5.2")
    assert refusal.error_message == "ligne 3 de 5002 octets, 1000 au plus (RFC 5321 §4.5.3.1.6)"
    guard.check(added=1)


def test_a_line_of_exactly_1000_octets_is_accepted(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    msg = message(env)
    msg.add_attachment(b"x", maintype="application", subtype="octet-stream", filename="a.bin")
    data = to_bytes(msg).replace(b"\r\n\r\n", b"\r\nX-Long: " + b"a" * (998 - len("X-Long: ")) + b"\r\n\r\n", 1)
    assert max(len(line) for line in data.split(b"\r\n")) == 998
    assert submit(env, data).code == 250
    guard.check(added=1)


# --------------------------------------------------------------------------------------------------------------
# fault injection and concurrency


def test_injected_fault_applies_to_the_next_data_only(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    env.host.faults.inject("mssante", Fault("mssante.smtp_reply", {"code": "451 4.3.0", "message": "panne"}))
    data = good_bytes(env)
    reply = submit(env, data)
    assert (reply.stage, reply.code) == ("DATA", 451)
    assert reply.text == "4.3.0 panne"
    (refusal,) = guard.new()
    assert (refusal.operation, refusal.outcome, refusal.error_code) == ("smtp.submit", Outcome.REJECTED, "451 4.3.0")
    assert refusal.error_message == "panne"
    assert refusal.details["fault"] is True
    assert env.journal.payload(refusal.digest) == data
    guard.check(added=1)  # the following submission is accepted again


def test_lost_reply_accepts_and_delivers_then_closes_without_the_250(env: SocleEnvironment) -> None:
    """Fault mssante.reply_lost: the message is accepted (journaled, delivered), its 250 never sent, the
    connection closed (RFC 5321 §3.8); the client's resend of the same bytes is a second accepted copy."""
    sim = env.host.simulators["mssante"]
    guard = JournalGuard(env)
    env.host.faults.inject("mssante", Fault("mssante.reply_lost"))
    msg = message(env)
    data = to_bytes(msg)
    smtp = connect(env)
    try:
        assert smtp.mail(SENDER)[0] == 250
        assert smtp.rcpt(DOCTOR)[0] == 250
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.data(data)
    finally:
        smtp.close()
    (lost,) = guard.new()
    assert (lost.operation, lost.outcome, lost.error_code) == ("smtp.submit", Outcome.ACCEPTED, None)
    assert lost.details["fault"] is True
    assert lost.details["reply_withheld"] == (
        "réponse 250 retenue par la panne simulée mssante.reply_lost : connexion fermée après la fin du DATA"
    )
    assert lost.details["message_id"] == str(msg["Message-ID"]).strip()
    assert env.journal.payload(lost.digest) == data
    assert [m.exchange_id for m in sim.store.messages(DOCTOR) if m.exchange_id == lost.id] == [lost.id]  # type: ignore[attr-defined]
    resent = submit(env, data)  # the fault is spent: the resend gets its 250
    assert (resent.stage, resent.code) == ("DATA", 250)
    copies = guard.new()
    assert [(e.outcome, e.details["message_id"], "reply_withheld" in e.details) for e in copies] == [
        (Outcome.ACCEPTED, lost.details["message_id"], True),
        (Outcome.ACCEPTED, lost.details["message_id"], False),
    ]
    assert resent.text.endswith(copies[1].id)
    guard.check(added=2)


def test_lost_reply_is_kept_for_the_next_accepted_message(env: SocleEnvironment) -> None:
    """A refused message does not spend the fault: only an accepted message has a 250 to lose."""
    guard = JournalGuard(env)
    env.host.faults.inject("mssante", Fault("mssante.reply_lost"))
    refused = submit(env, good_bytes(env), recipients=("nobody@nowhere.mssante.fr",))
    assert (refused.stage, refused.code) == ("RCPT", 550)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        submit(env, good_bytes(env))
    assert [(e.outcome, "reply_withheld" in e.details) for e in guard.new()] == [
        (Outcome.REJECTED, False),
        (Outcome.ACCEPTED, True),
    ]
    guard.check(added=2)


def test_concurrent_submissions_are_all_journaled(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    persons = ["P001", "P002", "P005"]  # the Tilleuls residents
    payloads = [to_bytes(message(env, persons[i % len(persons)])) for i in range(20)]

    def send(data: bytes) -> Reply:
        return submit(env, data)

    with ThreadPoolExecutor(max_workers=5) as pool:
        replies = list(pool.map(send, payloads))
    assert [r.code for r in replies] == [250] * 20
    recorded = guard.new()
    assert len(recorded) == 20
    assert (
        env.journal.count(JournalFilter(operation="smtp.submit", outcome=Outcome.ACCEPTED, since_seq=guard.mark)) == 20
    )
    by_id = {e.id: e for e in recorded}
    assert len(by_id) == 20
    for reply, data in zip(replies, payloads, strict=True):
        exchange = by_id[reply.text.rsplit(" ", 1)[1]]
        assert env.journal.payload(exchange.digest) == data
    assert {e.person for e in recorded} == {env.testdata.person(p).ins.value for p in persons}
    guard.check(added=20)


def test_internal_validator_error_is_a_journaled_451(env: SocleEnvironment, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in a validator must not leak a traceback nor skip the journal: 451 (retry later), recorded."""
    import mock_services.mssante.smtp as smtp_module

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("validator exploded")

    guard = JournalGuard(env)
    data = good_bytes(env)
    monkeypatch.setattr(smtp_module, "validate_message", broken)
    reply = submit(env, data)
    monkeypatch.undo()
    assert reply.code == 451 and "erreur interne" in reply.text
    (refusal,) = guard.new()
    assert refusal.outcome is Outcome.REJECTED and refusal.error_code == "451 4.3.0"
    assert "validator exploded" in refusal.details["internal_error"]
    guard.check(added=1)


# --------------------------------------------------------------------------------------------------------------
# content rules of issue 14 (items 5-7)


def test_missing_message_id_is_added_with_a_warning(env: SocleEnvironment) -> None:
    """RFC 6409 §8.3: the submission server may add Message-ID (RFC 5322 §3.6.4 makes it a SHOULD)."""
    sim = env.host.simulators["mssante"]
    guard = JournalGuard(env)
    msg = message(env)
    del msg["Message-ID"]
    data = to_bytes(msg)
    assert b"Message-ID" not in data
    reply = submit(env, data)
    assert reply.code == 250
    (accepted,) = guard.new()
    assert env.journal.payload(accepted.digest) == data  # what the DUI sent, unchanged
    added = accepted.details["message_id"]
    assert re.fullmatch(r"<[^@>]+@smtp\.mssante\.test>", added)
    assert accepted.details["message_id_added"] is True
    warnings = [f for f in accepted.details["findings"] if f["code"] == "RFC5322-MESSAGE-ID"]
    assert warnings == [
        {
            "code": "RFC5322-MESSAGE-ID",
            "message": "en-tête Message-ID absent (RFC 5322 §3.6.4, recommandé): ajouté par le serveur de soumission "
            "(RFC 6409 §8.3)",
            "severity": "warning",
            "location": "",
        }
    ]
    (copy,) = [m for m in sim.store.messages(DOCTOR) if m.exchange_id == accepted.id]  # type: ignore[attr-defined]
    assert copy.message_id == added
    guard.check(added=1)


def test_a_message_with_its_message_id_is_not_amended(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    msg = message(env)
    assert submit(env, to_bytes(msg)).code == 250
    (accepted,) = guard.new()
    assert "message_id_added" not in accepted.details
    assert "RFC5322-MESSAGE-ID" not in finding_codes(accepted)
    guard.check(added=1)


def _xdm_typed(env: SocleEnvironment, content_type: str) -> bytes:
    msg = message(env)
    for part in msg.iter_attachments():
        if (part.get_filename() or "").upper() == "IHE_XDM.ZIP":
            part.set_type(content_type)
    return to_bytes(msg)


def test_xdm_attachment_as_text_plain_is_refused(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    refusal = _refused_554(env, guard, _xdm_typed(env, "text/plain"))
    expected = (
        "pièce jointe IHE_XDM.ZIP de type text/plain: application/zip attendu (IHE XDM ITI-32, ZIP par courriel; "
        "volet ANS « Traitement d'un courriel MSSanté par une PFI »)"
    )
    assert refusal.error_message == f"MSS-XDM-CONTENT-TYPE: {expected}"
    assert [f for f in refusal.details["findings"] if f["code"] == "MSS-XDM-CONTENT-TYPE"] == [
        {"code": "MSS-XDM-CONTENT-TYPE", "message": expected, "severity": "error", "location": ""}
    ]
    guard.check(added=1)


def test_xdm_attachment_as_octet_stream_is_a_warning(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    assert submit(env, _xdm_typed(env, "application/octet-stream")).code == 250
    (accepted,) = guard.new()
    found = [f for f in accepted.details["findings"] if f["code"] == "MSS-XDM-CONTENT-TYPE"]
    assert [(f["severity"], f["message"].split(":")[0]) for f in found] == [
        ("warning", "pièce jointe IHE_XDM.ZIP de type application/octet-stream")
    ]
    guard.check(added=1)


def test_raw_8bit_subject_without_smtputf8_is_refused(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    data = good_bytes(env).replace(b"Subject: XDM/1.0/DDM+", "Subject: XDM/1.0/DDM+Résumé ".encode(), 1)
    refusal = _refused_554(env, guard, data)
    expected = (
        "octets 8 bits bruts dans l'en-tête Subject sans SMTPUTF8 (RFC 5322 §2.2, RFC 6532 §3): "
        "encodage RFC 2047 attendu"
    )
    assert refusal.error_message == f"MIME-8BIT-HEADER: {expected}"
    assert [f for f in refusal.details["findings"] if f["code"] == "MIME-8BIT-HEADER"] == [
        {"code": "MIME-8BIT-HEADER", "message": expected, "severity": "error", "location": ""}
    ]
    guard.check(added=1)


# --------------------------------------------------------------------------------------------------------------
# production INS (issue 14 item 8): the harness-wide policy of harness.fields.identity


def _production_message(env: SocleEnvironment) -> tuple[bytes, str]:
    from dataclasses import replace

    from harness.fields.identity import INS, OID_INS_NIR

    p = env.testdata.person("P001")
    person = replace(p, ins=INS(p.ins.number, p.ins.key, OID_INS_NIR))
    msg = build_message(person, env.testdata.establishment(p.essms), SENDER, [DOCTOR])
    expected = (
        f"INS de production {p.ins.value} (OID {OID_INS_NIR}, INS-NIR) : une campagne de test n'utilise que des "
        "identités de test (OID 1.2.250.1.213.1.4.10 ou 1.2.250.1.213.1.4.11)"
    )
    return to_bytes(msg), expected


def test_production_ins_is_a_warning_by_default(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    data, expected = _production_message(env)
    assert submit(env, data).code == 250
    (accepted,) = guard.new()
    assert [f for f in accepted.details["findings"] if f["code"] == "INS-PRODUCTION"] == [
        {"code": "INS-PRODUCTION", "severity": "warning", "message": expected, "location": ""}
    ]
    guard.check(added=1)


def test_production_ins_refused_under_the_refuse_policy(env: SocleEnvironment) -> None:
    from harness.fields.identity import ProductionInsPolicy

    handler = env.host.simulators["mssante"].smtp.handler  # type: ignore[attr-defined]
    guard = JournalGuard(env)
    data, expected = _production_message(env)
    handler.production_ins = ProductionInsPolicy.REFUSE
    try:
        refusal = _refused_554(env, guard, data)
    finally:
        handler.production_ins = ProductionInsPolicy.WARN
    refused = f'{expected} ; refusé (réglage production_ins = "refuse")'
    assert refusal.error_message == f"INS-PRODUCTION: {refused}"
    guard.check(added=1)


@pytest.mark.parametrize(
    ("commands", "refused", "reply"),
    [
        pytest.param([f"RCPT TO:<{DOCTOR}>"], "RCPT", "503 Error: need MAIL command", id="rcpt-before-mail"),
        pytest.param(["DATA"], "DATA", "503 Error: need RCPT command", id="data-before-rcpt"),
        pytest.param(
            ["MAIL <nobody>"], "MAIL", "501 Syntax: MAIL FROM: <address> [SP <mail-parameters>]", id="mail-syntax"
        ),
        pytest.param(
            [f"MAIL FROM:<{SENDER}>", f"MAIL FROM:<{SENDER}>"],
            "MAIL",
            "503 Error: nested MAIL command",
            id="nested-mail",
        ),
    ],
)
def test_sequence_and_syntax_refusals_are_journaled(
    env: SocleEnvironment, commands: list[str], refused: str, reply: str
) -> None:
    """Refusals aiosmtpd decides before the handler's hook (RFC 5321 §4.3.2 sequence 503, syntax 501) are journaled
    too, as smtp.command with the reply sent."""
    guard = JournalGuard(env)
    client = RawClient(env)
    try:
        replies = [client.command(c.encode()) for c in commands]
        assert client.command(b"NOOP")[0] == 250
    finally:
        client.close()
    code, text = replies[-1]
    assert f"{code} {text.decode()}" == reply
    (refusal,) = guard.new()
    assert (refusal.operation, refusal.outcome, refusal.error_code) == ("smtp.command", Outcome.REJECTED, reply[:3])
    assert (refusal.details["command"], refusal.details["reply"]) == (refused, reply)
    assert refusal.error_message == f"{refused} refusé par le protocole: {reply}"
    assert (refusal.actor, refusal.essms) == (SENDER, "990000016")
    guard.check(added=1)


def test_reply_code_keeps_the_enhanced_status_code() -> None:
    from mock_services.mssante.smtp import reply_code

    assert reply_code("530 5.7.0 Authentication required") == "530 5.7.0"
    assert reply_code("503 Error: need MAIL command") == "503"
    assert reply_code("552 5.3.4") == "552 5.3.4"


def test_unknown_auth_mechanism_is_journaled_once(env: SocleEnvironment) -> None:
    guard = JournalGuard(env)
    client = RawClient(env, login=False)
    try:
        assert client.command(b"AUTH CRAM-MD5") == (504, b"5.5.4 Unrecognized authentication type")
        assert client.command(b"AUTH XOAUTH2 %%%") == (501, b"5.5.2 Can't decode base64")
    finally:
        client.close()
    found = guard.new()
    assert [(e.operation, e.details["command"], e.details["reply"], e.error_code) for e in found] == [
        ("smtp.command", "AUTH", "504 5.5.4 Unrecognized authentication type", "504 5.5.4"),
        ("smtp.command", "AUTH", "501 5.5.2 Can't decode base64", "501 5.5.2"),
    ]
    guard.check(added=2)
