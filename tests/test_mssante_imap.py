"""The MSSanté IMAP server (pymap over the simulator's store) with two independent clients, mutual TLS and
XOAUTH2, the SMTP -> store -> IMAP delivery, and hostile input (malformed commands, oversize literals, 8-bit
bytes): each case checks the protocol answer, that the server still serves a fresh client, and that what was
journaled before is still there."""

from __future__ import annotations

import base64
import imaplib
import smtplib
import socket
import ssl
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient
from psc_helpers import CLIENT_ID, RP

from harness.core.config import HarnessConfig
from harness.core.journal import JournalFilter, Outcome
from harness.core.sessions import Members
from harness.runtime.environment import SocleEnvironment
from harness.sut.documents import build_message

DUI = "dui@ehpad-tilleuls.mssante.fr"
DUI_PASSWORD = "dui-tilleuls-test"
ORG = "secretariat@ehpad-tilleuls.mssante.fr"
ORG_PASSWORD = "tilleuls-test"
DOCTOR = "jean.dupont@medecin.mssante.fr"
PSC_DOCTOR = "claire.durand@ehpad-tilleuls.mssante.fr"  # PER mailbox of the PSC test professional claire.durand


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    tmp = tmp_path_factory.mktemp("mssante-imap")
    cfg = HarnessConfig(
        run_dir=tmp,
        journal=f"sqlite:///{tmp}/journal.sqlite",
        services=("mssante", "psc"),
        settings={"mssante": {"imap_max_line_bytes": 8192, "imap_max_literal_bytes": 2_000_000}},
    )
    env = SocleEnvironment(cfg)
    env.start()
    yield env
    env.stop()


def endpoint(env: SocleEnvironment, name: str) -> tuple[str, int]:
    host, _, port = env.endpoints["mssante"][name].rpartition(":")
    return host.strip("[]"), int(port)


def context(env: SocleEnvironment, certificate: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    if certificate:
        issued = env.pki.client(certificate)
        ctx.load_cert_chain(issued.chain_path, issued.key_path)
    return ctx


def imap(env: SocleEnvironment, certificate: str | None = None) -> imaplib.IMAP4:
    client = imaplib.IMAP4(*endpoint(env, "imap"), timeout=15)
    client.starttls(ssl_context=context(env, certificate))
    return client


def send(env: SocleEnvironment, recipients: list[str], *, sender: str = DUI, password: str = DUI_PASSWORD) -> str:
    person = env.testdata.person("P001")
    establishment = env.testdata.establishment("990000016")
    msg = build_message(person, establishment, sender, recipients, "DLU")
    with smtplib.SMTP(*endpoint(env, "smtp"), timeout=15) as smtp:
        smtp.starttls(context=context(env))
        smtp.login(sender, password)
        smtp.send_message(msg, from_addr=sender, to_addrs=recipients)
    return str(msg["Message-ID"])


def journal_ids(env: SocleEnvironment) -> list[str]:
    return [e.id for e in env.journal.query(JournalFilter(run_id=env.run_id))]


def server_still_serves(env: SocleEnvironment) -> None:
    client = imap(env)
    assert client.login(ORG, ORG_PASSWORD)[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    client.logout()


# --------------------------------------------------------------------------------------------------------------
# mail flow and mail-client semantics


def test_smtp_submission_reaches_the_recipient_mailbox_over_imap(env: SocleEnvironment) -> None:
    message_id = send(env, [ORG])
    client = imap(env)
    client.login(ORG, ORG_PASSWORD)
    typ, data = client.select("INBOX")
    assert typ == "OK"
    typ, found = client.uid("SEARCH", None, f'HEADER Message-ID "{message_id}"')
    assert typ == "OK" and found[0]
    uid = found[0].split()[-1].decode()
    typ, fetched = client.uid("FETCH", uid, "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT RETURN-PATH)])")
    header = next(part[1] for part in fetched if isinstance(part, tuple))
    assert b"XDM/1.0/DDM+" in header and b"Return-Path: <" + DUI.encode() + b">" in header
    assert b"\\Seen" not in fetched[0][0]
    assert client.uid("STORE", uid, "+FLAGS", "(\\Seen)")[0] == "OK"
    assert uid.encode() not in (client.uid("SEARCH", None, "UNSEEN")[1][0] or b"").split()
    client.logout()


def test_a_message_marked_seen_is_journaled_as_read(env: SocleEnvironment) -> None:
    message_id = send(env, [ORG])
    delivered = {
        e.id
        for e in env.journal.query(JournalFilter(run_id=env.run_id, operation="smtp.submit"))
        if e.details.get("message_id") == message_id
    }
    client = imap(env)
    client.login(ORG, ORG_PASSWORD)
    client.select("INBOX")
    uid = client.uid("SEARCH", None, f'HEADER Message-ID "{message_id}"')[1][0].split()[-1].decode()

    def reads() -> list:
        return [
            e
            for e in env.journal.query(JournalFilter(run_id=env.run_id, operation="imap.read"))
            if e.details.get("message_id") == message_id
        ]

    typ, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
    assert typ == "OK" and message_id.encode() in next(part[1] for part in fetched if isinstance(part, tuple))
    assert reads() == [], "a .PEEK fetch leaves the message unread (RFC 3501 §6.4.5)"
    client.uid("FETCH", uid, "(BODY[])")  # sets \Seen: read
    client.uid("STORE", uid, "+FLAGS", "(\\Seen)")  # already seen: not read twice
    client.logout()
    [read] = reads()
    assert read.actor == ORG and read.essms == "990000016" and read.details["uid"] == int(uid)
    assert read.details["delivered_by"] in delivered


def test_uids_validity_and_folders_behave_like_a_real_server(env: SocleEnvironment) -> None:
    client = imap(env)
    client.login(ORG, ORG_PASSWORD)
    client.select("INBOX")
    validity = client.response("UIDVALIDITY")[1][0]
    send(env, [ORG])
    send(env, [ORG])
    client.noop()
    uids = [int(u) for u in client.uid("SEARCH", None, "ALL")[1][0].split()]
    assert uids == sorted(uids) and len(set(uids)) == len(uids)
    assert client.create("Archives")[0] == "OK"
    assert client.uid("COPY", str(uids[-1]), "Archives")[0] == "OK"
    assert client.uid("MOVE", str(uids[-2]), "Archives")[0] == "OK"
    assert str(uids[-2]).encode() not in client.uid("SEARCH", None, "ALL")[1][0].split()
    assert client.append("Archives", "(\\Seen)", None, b"Subject: note\r\n\r\nbody\r\n")[0] == "OK"
    status = client.status("Archives", "(MESSAGES UNSEEN)")
    assert status[0] == "OK" and b"MESSAGES 3" in status[1][0] and b"UNSEEN 2" in status[1][0]
    client.close()
    client.select("INBOX")
    assert client.response("UIDVALIDITY")[1][0] == validity  # same folder, same UIDVALIDITY
    names = b" ".join(client.list()[1])
    assert b"INBOX" in names and b"Archives" in names and b"Sent" in names
    client.logout()


def test_second_independent_client_imapclient(env: SocleEnvironment) -> None:
    message_id = send(env, [ORG])
    host, port = endpoint(env, "imap")
    with IMAPClient(host, port=port, ssl=False, timeout=15) as client:
        client.starttls(context(env))
        client.login(ORG, ORG_PASSWORD)
        info = client.select_folder("INBOX")
        assert info[b"UIDVALIDITY"] > 0 and info[b"EXISTS"] >= 1
        [uid] = client.search(["HEADER", "Message-ID", message_id])
        fetched = client.fetch([uid], ["ENVELOPE", "FLAGS", "RFC822.SIZE", "BODYSTRUCTURE"])[uid]
        assert fetched[b"ENVELOPE"].subject.startswith(b"XDM/1.0/DDM+")
        assert fetched[b"RFC822.SIZE"] > 1000
        client.add_flags([uid], [b"\\Seen"])
        assert b"\\Seen" in client.get_flags([uid])[uid]
        client.idle()
        send(env, [ORG])
        responses = client.idle_check(timeout=10)
        client.idle_done()
        assert any(r[1] == b"EXISTS" for r in responses)


def test_login_before_starttls_is_refused_and_journaled(env: SocleEnvironment) -> None:
    client = imaplib.IMAP4(*endpoint(env, "imap"), timeout=15)
    assert "LOGINDISABLED" in client.capabilities and "STARTTLS" in client.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        client.login(ORG, ORG_PASSWORD)
    client.logout()
    refused = env.journal.query(JournalFilter(run_id=env.run_id, operation="imap.auth", outcome=Outcome.REJECTED))
    assert any("STARTTLS" in (e.error_message or "") for e in refused)


def test_wrong_password_and_patient_mailbox_are_refused(env: SocleEnvironment) -> None:
    client = imap(env)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login(ORG, "mauvais")
    client.logout()
    patient = env.testdata.person("P001").mailbox
    client = imap(env)
    with pytest.raises(imaplib.IMAP4.error):
        client.login(patient, "")
    client.logout()


# --------------------------------------------------------------------------------------------------------------
# mutual TLS and XOAUTH2


def test_organisation_certificate_opens_the_applicative_mailbox(env: SocleEnvironment) -> None:
    client = imap(env, "MSS-990000016")
    assert client.authenticate("EXTERNAL", lambda _: b"")[0] == "OK"
    client.select("INBOX")
    client.logout()
    client = imap(env, "MSS-990000016")
    assert client.authenticate("EXTERNAL", lambda _: ORG.encode())[0] == "OK"
    client.logout()
    accepted = env.journal.query(JournalFilter(run_id=env.run_id, operation="imap.auth", outcome=Outcome.ACCEPTED))
    assert any(e.details.get("method") == "tls-client-certificate" and e.actor == DUI for e in accepted)


def test_certificate_of_another_structure_or_none_is_refused(env: SocleEnvironment) -> None:
    client = imap(env, "MSS-990000024")  # SSIAD du Val asking for the EHPAD's mailbox
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.authenticate("EXTERNAL", lambda _: DUI.encode())
    client.logout()
    client = imap(env)  # no certificate at all
    with pytest.raises(imaplib.IMAP4.error):
        client.authenticate("EXTERNAL", lambda _: b"")
    client.logout()


def test_certificate_refused_fault_ends_the_tls_handshake(env: SocleEnvironment) -> None:
    from harness.host.simulator import Fault

    env.host.faults.inject("mssante", Fault("mssante.tls_certificate_refused"))
    client = imaplib.IMAP4(*endpoint(env, "imap"), timeout=15)
    with pytest.raises((ssl.SSLError, OSError, imaplib.IMAP4.abort)):
        client.starttls(ssl_context=context(env, "MSS-990000016"))
        client.authenticate("EXTERNAL", lambda _: b"")
    server_still_serves(env)


def test_xoauth2_with_a_pro_sante_connect_token(env: SocleEnvironment) -> None:
    rp = RP(env)
    try:
        token = rp.login("claire.durand")["access_token"]
    finally:
        rp.close()
    sasl = f"user={PSC_DOCTOR}\x01auth=Bearer {token}\x01\x01".encode()
    client = imap(env)
    assert client.authenticate("XOAUTH2", lambda _: sasl)[0] == "OK"
    client.logout()
    # the same token for somebody else's personal mailbox, and a forged token, are refused
    for user, bearer in ((DOCTOR, token), (PSC_DOCTOR, token[:-4] + "AAAA")):
        client = imap(env)
        with pytest.raises(imaplib.IMAP4.error):
            client.authenticate("XOAUTH2", lambda _, u=user, b=bearer: f"user={u}\x01auth=Bearer {b}\x01\x01".encode())
        client.logout()
    # and on SMTP submission
    with smtplib.SMTP(*endpoint(env, "smtp"), timeout=15) as smtp:
        smtp.starttls(context=context(env))
        smtp.ehlo()
        code, _ = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(sasl).decode())
        assert code == 235


# --------------------------------------------------------------------------------------------------------------
# hostile input


def raw(env: SocleEnvironment) -> ssl.SSLSocket:
    sock = socket.create_connection(endpoint(env, "imap"), timeout=15)
    sock.recv(4096)
    sock.sendall(b"a STARTTLS\r\n")
    assert sock.recv(4096).startswith(b"a OK")
    tls = context(env).wrap_socket(sock, server_hostname="localhost")
    tls.sendall(f"b LOGIN {ORG} {ORG_PASSWORD}\r\n".encode())
    answer = b""
    while b"b OK" not in answer:
        answer += tls.recv(4096)
    return tls


def read_until(sock: ssl.SSLSocket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (b"c FROBNICATE\r\n", b"c BAD"),
        (b"c SELECT\r\n", b"c BAD"),
        (b"c UID FETCH 1:* (BODY[\r\n", b"c BAD"),
        (b'c SELECT "\xff\xfe\xc3("\r\n', b"c "),
        (b"c FETCH 1 (FLAGS)\r\n", b"c BAD"),  # no mailbox selected
        (b"c CREATE {999999999}\r\n", b"c BAD"),  # synchronizing literal over the limit: refused before "+"
    ],
)
def test_malformed_commands_get_protocol_errors(env: SocleEnvironment, command: bytes, expected: bytes) -> None:
    before = journal_ids(env)
    sock = raw(env)
    sock.sendall(command)
    answer = read_until(sock, b"\r\n")
    assert answer.startswith(expected) or expected in answer, answer
    sock.sendall(b"d NOOP\r\n")
    assert b"d OK" in read_until(sock, b"d ")
    sock.close()
    server_still_serves(env)
    assert journal_ids(env)[: len(before)] == before


def test_non_synchronizing_literal_overflow_is_refused_and_journaled(env: SocleEnvironment) -> None:
    before = journal_ids(env)
    sock = raw(env)
    sock.sendall(b"e APPEND INBOX {5000000+}\r\n" + b"x" * 1000)
    answer = read_until(sock, b"BYE")
    assert b"e BAD [TOOBIG]" in answer and b"* BYE" in answer
    sock.close()
    server_still_serves(env)
    after = env.journal.query(JournalFilter(run_id=env.run_id, operation="imap.protocol"))
    assert any(e.error_code == "BAD [TOOBIG]" for e in after)
    assert journal_ids(env)[: len(before)] == before


def test_overlong_command_line_is_refused(env: SocleEnvironment) -> None:
    sock = raw(env)
    sock.sendall(b"f SEARCH " + b"A" * 20000 + b"\r\n")
    answer = read_until(sock, b"BYE")
    assert b"[TOOBIG]" in answer and b"* BYE" in answer
    sock.close()
    server_still_serves(env)


def test_broken_mime_message_is_still_served(env: SocleEnvironment) -> None:
    broken = (
        b'From: x@y\r\nSubject: =?utf-8?q?\xff\xfe?=\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\n'
        b"--zz\r\nContent-Type: text/plain\r\n\r\nno closing boundary\r\n"
    )
    env.host.simulators["mssante"].store.deliver(ORG, broken)  # type: ignore[attr-defined]
    client = imap(env)
    client.login(ORG, ORG_PASSWORD)
    client.select("INBOX")
    last = client.uid("SEARCH", None, "ALL")[1][0].split()[-1].decode()
    typ, data = client.uid("FETCH", last, "(BODYSTRUCTURE ENVELOPE BODY.PEEK[1])")
    assert typ == "OK"
    client.logout()


def test_xoauth2_token_of_a_client_in_another_session_than_the_mailbox_is_refused(env: SocleEnvironment) -> None:
    """Issue 19 item 4: the PSC client the token was issued to is the connection's session; a personal mailbox of
    another open session is refused on IMAP and SMTP, journaled in the client's session."""

    rp = RP(env)
    try:
        token = rp.login("claire.durand")["access_token"]
    finally:
        rp.close()
    sasl = f"user={PSC_DOCTOR}\x01auth=Bearer {token}\x01\x01".encode()
    mine = env.host.sessions.create("DUI A", Members(clients=(CLIENT_ID,)))
    theirs = env.host.sessions.create("DUI B", Members(mailboxes=(PSC_DOCTOR,)))
    try:
        client = imap(env)
        with pytest.raises(imaplib.IMAP4.error) as refused:
            client.authenticate("XOAUTH2", lambda _: sasl)
        client.logout()
        assert str(refused.value) == (
            "[AUTHENTICATIONFAILED] Authentication credentials invalid: BAL d'une autre session de test"
        )
        with smtplib.SMTP(*endpoint(env, "smtp"), timeout=15) as smtp:
            smtp.starttls(context=context(env))
            smtp.ehlo()
            assert smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(sasl).decode()) == (
                535,
                b"5.7.8 Authentication credentials invalid: BAL d'une autre session de test",
            )
        reason = (
            f"boîte aux lettres {PSC_DOCTOR} appartient à une autre session de test que client PSC {CLIENT_ID} "
            f"(session {mine.id}) : ses données ne lui sont pas accessibles / the data belongs to another test session"
        )
        rows = env.journal.query(JournalFilter(service="mssante", session=mine.id, outcome=Outcome.REJECTED))
        assert [(r.operation, r.error_code, r.error_message) for r in rows] == [
            ("imap.auth", "NO [AUTHENTICATIONFAILED]", reason),
            ("smtp.auth", "535 5.7.8", reason),
        ]
    finally:
        env.host.sessions.close(theirs.id)
        env.host.sessions.close(mine.id)
    client = imap(env)
    assert client.authenticate("XOAUTH2", lambda _: sasl)[0] == "OK"  # sessions closed: as before
    client.logout()
