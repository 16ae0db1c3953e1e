"""The MSSanté mailbox store as shared state (issue 19 item 2): "a message submitted on worker A is read over IMAP
on worker B".

Two ``SocleEnvironment`` s, each with its own PostgreSQL journal on one database, stand for two serving processes:
SMTP submission (STARTTLS + AUTH) on A, IMAP on B with the same UIDVALIDITY and UID, the body fetched by B from the
journal's evidence; a flag set over IMAP on B is seen over IMAP on A; an IMAP IDLE on B wakes up on a delivery
through A (the host applies the others' operations every 0.5 s). The store's own operations are checked on two
stores side by side, and the password back-off's count on two back-offs."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from harness.core.config import HarnessConfig
from harness.core.journal import JournalFilter
from harness.core.journal_pg import PostgreSQLJournal
from harness.core.sessions import Members, new_session
from harness.core.state import StateHub, StateLog, state_log_for
from harness.runtime.environment import SocleEnvironment
from harness.sut.documents import build_message
from mock_services.mssante.auth_backoff import AuthBackoff, BackoffPolicy
from mock_services.mssante.store import INBOX, STREAM, BodyStore, MailStore, StoreError

DUI = "dui@ehpad-tilleuls.mssante.fr"
DUI_PASSWORD = "dui-tilleuls-test"
ORG = "secretariat@ehpad-tilleuls.mssante.fr"
ORG_PASSWORD = "tilleuls-test"


@pytest.fixture()
def two_hosts(
    pg_url: str, tmp_path: Path, start_environments: Callable[..., list[SocleEnvironment]]
) -> tuple[SocleEnvironment, SocleEnvironment]:
    a, b = start_environments(
        *(HarnessConfig(run_dir=tmp_path / name, journal=pg_url, services=("mssante",)) for name in ("a", "b"))
    )
    return a, b


def _endpoint(env: SocleEnvironment, name: str) -> tuple[str, int]:
    host, _, port = env.endpoints["mssante"][name].rpartition(":")
    return host.strip("[]"), int(port)


def _tls(env: SocleEnvironment) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))


def _submit(env: SocleEnvironment) -> str:
    """One MSSanté message from the DUI to the establishment's mailbox, through ``env``'s SMTP listener."""
    msg = build_message(env.testdata.person("P001"), env.testdata.establishment("990000016"), DUI, [ORG], "DLU")
    with smtplib.SMTP(*_endpoint(env, "smtp"), timeout=15) as smtp:
        smtp.starttls(context=_tls(env))
        smtp.login(DUI, DUI_PASSWORD)
        smtp.send_message(msg, from_addr=DUI, to_addrs=[ORG])
    return str(msg["Message-ID"])


def _imap(env: SocleEnvironment) -> IMAPClient:
    host, port = _endpoint(env, "imap")
    client = IMAPClient(host, port=port, ssl=False, timeout=15)
    client.starttls(_tls(env))
    client.login(ORG, ORG_PASSWORD)
    return client


def _store(env: SocleEnvironment) -> MailStore:
    return env.host.simulators["mssante"].store  # type: ignore[attr-defined,no-any-return]


def test_a_message_submitted_on_a_is_read_over_imap_on_b(two_hosts: tuple[SocleEnvironment, SocleEnvironment]) -> None:
    a, b = two_hosts
    session = a.journal.create_session(new_session("DUI en recette", Members(mailboxes=(DUI,))))  # type: ignore[attr-defined]
    time.sleep(0.6)  # the hosts' session books look again at most every 0.5 s
    message_id = _submit(a)
    with a.journal.connection() as conn:  # type: ignore[attr-defined]
        deliveries = conn.execute(
            "SELECT session, op->>'box', op->>'folder' FROM socle_state_op WHERE stream = %s AND op->>'op' = 'deliver'"
            " ORDER BY seq",
            (STREAM,),
        ).fetchall()
    assert deliveries == [(session.id, ORG, INBOX), (session.id, DUI, "Sent")]  # the submission's session
    [(folder, on_a)] = [(f, m) for box, f, m in _store(a).find(message_id) if box == ORG]
    assert folder == INBOX
    with _imap(b) as client:
        selected = client.select_folder("INBOX")
        assert selected[b"UIDVALIDITY"] == _store(a).state(ORG, INBOX)[0]
        assert client.search(["HEADER", "Message-ID", message_id]) == [on_a.uid]
        fetched = client.fetch([on_a.uid], ["BODY.PEEK[]", "FLAGS"])[on_a.uid]
        # B held no file of this body: it fetched it from the journal's evidence, then kept it
        assert fetched[b"BODY[]"] == on_a.data
        assert fetched[b"FLAGS"] == (b"\\Recent",)  # B's session is the first to see it
        assert (_store(b).bodies.directory / on_a.body.digest).read_bytes() == on_a.body.read()

        client.add_flags([on_a.uid], [b"\\Flagged"])
    with _imap(a) as client:
        client.select_folder("INBOX")
        # the flag set on B, and no \Recent: B's session claimed it (RFC 3501 §2.3.2)
        assert client.get_flags([on_a.uid]) == {on_a.uid: (b"\\Flagged",)}
    # the Sent copy too, and the quota accounting, agree
    assert [m.uid for m in _store(b).messages(DUI, "Sent")] == [m.uid for m in _store(a).messages(DUI, "Sent")]
    assert _store(b).size(ORG) == _store(a).size(ORG) > 0


class _RawImap:
    """A blocking line reader over IMAP (STARTTLS, LOGIN, SELECT, IDLE): imapclient's ``idle_check`` reads a
    non-blocking socket and loses a response line that arrives in two TCP segments (« unexpected response:
    b'(FLAGS ())' »), which says nothing of the server; a mail client reads whole lines, as this does."""

    def __init__(self, env: SocleEnvironment) -> None:
        import socket

        raw = socket.create_connection(_endpoint(env, "imap"), timeout=15)
        self._file = raw.makefile("rb")
        self.line()  # greeting
        raw.sendall(b"s STARTTLS\r\n")
        self.until(b"s ")
        self._sock = _tls(env).wrap_socket(raw, server_hostname=_endpoint(env, "imap")[0])
        self._file = self._sock.makefile("rb")
        self.command(b"l", f'LOGIN "{ORG}" "{ORG_PASSWORD}"'.encode())
        self.selected = self.command(b"x", b"SELECT INBOX")

    def line(self) -> bytes:
        line = self._file.readline()
        if not line:
            raise ConnectionError("IMAP: connexion fermée / connection closed")
        return line.rstrip(b"\r\n")

    def until(self, prefix: bytes) -> list[bytes]:
        lines = [self.line()]
        while not lines[-1].startswith(prefix):
            lines.append(self.line())
        return lines

    def command(self, tag: bytes, text: bytes) -> list[bytes]:
        self._sock.sendall(tag + b" " + text + b"\r\n")
        lines = self.until(tag + b" ")
        assert lines[-1].startswith(tag + b" OK"), lines
        return lines

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close(self) -> None:
        self._sock.close()


def test_an_idle_on_b_wakes_up_on_a_delivery_through_a(two_hosts: tuple[SocleEnvironment, SocleEnvironment]) -> None:
    a, b = two_hosts
    client = _RawImap(b)
    try:
        [before] = [int(line.split()[1]) for line in client.selected if line.endswith(b" EXISTS")]
        client.send(b"i IDLE\r\n")
        assert client.line().startswith(b"+")  # RFC 2177: the continuation, then untagged updates
        message_id = _submit(a)
        started = time.monotonic()
        assert client.line() == f"* {before + 1} EXISTS".encode()
        waited = time.monotonic() - started
        client.send(b"DONE\r\n")
        assert client.until(b"i ")[-1].startswith(b"i OK")
    finally:
        client.close()
    assert waited < 2.0  # the host polls every 0.5 s
    [on_a] = [m for box, _, m in _store(a).find(message_id) if box == ORG]
    with _imap(b) as imap:
        imap.select_folder("INBOX")
        assert imap.search(["HEADER", "Message-ID", message_id]) == [on_a.uid]


@pytest.fixture()
def two_stores(pg_url: str, tmp_path: Path) -> Iterator[tuple[MailStore, MailStore, StateLog]]:
    journals = [PostgreSQLJournal(pg_url), PostgreSQLJournal(pg_url)]
    stores = [
        MailStore(bodies=BodyStore(tmp_path / name, remote=journal), state=StateHub(state_log_for(journal)))
        for name, journal in zip(("a", "b"), journals, strict=True)
    ]
    yield stores[0], stores[1], state_log_for(journals[0])
    for store, journal in zip(stores, journals, strict=True):
        store.close()
        journal.close()


def test_folders_copies_and_expunges_replay_the_same_on_both(
    two_stores: tuple[MailStore, MailStore, StateLog],
) -> None:
    a, b, log = two_stores
    a.ensure_mailbox(ORG)
    b.ensure_mailbox(ORG)  # already there once caught up: no second set of folders
    first = a.deliver(ORG, b"Subject: un\r\n\r\ncorps\r\n")
    second = b.deliver(ORG, b"Subject: deux\r\n\r\ncorps\r\n")
    assert (first.uid, second.uid) == (1, 2)
    b.create_folder(ORG, "Archives")
    with pytest.raises(StoreError, match="existe déjà"):
        a.create_folder(ORG, "Archives")
    assert a.copy(ORG, INBOX, 1, "Archives", move=True) == 1
    a.set_flags(ORG, "Archives", 1, ["\\Seen"])
    b.rename_folder(ORG, "Archives", "Classés")
    assert b.expunge(ORG, INBOX, [2]) == [2]
    a.delete_folder(ORG, "Trash")
    for store in (a, b):
        assert store.folders(ORG) == [INBOX, "Sent", "Classés"]
        assert [m.uid for m in store.messages(ORG)] == []
        assert store.state(ORG, INBOX)[1:] == (3, 5)  # next UID 3; modseq 1 + 2 deliveries + move + expunge
        [archived] = store.messages(ORG, "Classés")
        assert (archived.flags, archived.data) == (frozenset({"\\Seen"}), b"Subject: un\r\n\r\ncorps\r\n")
        assert store.size(ORG) == len(b"Subject: un\r\n\r\ncorps\r\n")
    assert [a.state(ORG, name) for name in a.folders(ORG)] == [b.state(ORG, name) for name in b.folders(ORG)]
    assert a.folder_id(ORG, "Classés") == b.folder_id(ORG, "Classés")
    assert [op["op"] for _, op in log.read(STREAM, 0)] == [
        "ensure",
        "deliver",
        "deliver",
        "create",
        "copy",
        "flags",
        "rename",
        "expunge",
        "delete",
    ]


def test_a_guesser_spreading_its_attempts_over_two_processes_meets_one_count(pg_url: str) -> None:
    journals = [PostgreSQLJournal(pg_url), PostgreSQLJournal(pg_url)]
    try:
        policy = BackoffPolicy(free_failures=1, base_delay=0.5, lockout_failures=4)
        a, b = (AuthBackoff(policy, clock=time.time, state=StateHub(state_log_for(j))) for j in journals)
        assert [a.failure(DUI, "10.0.0.1").delay, b.failure(DUI, "10.0.0.2").delay] == [0.0, 0.5]
        assert b.failure(DUI, "10.0.0.2").delay == 1.0  # the account's third failure, wherever it was counted
        assert a.check(DUI, "10.0.0.1").account_failures == 3
        b.success(DUI, "10.0.0.2")
        assert (a.check(DUI, "10.0.0.1").account_failures, a.check(ORG, "10.0.0.2").peer_failures) == (0, 2)
        for _ in range(2):
            a.failure(ORG, "10.0.0.2")
        # the peer failed twice on B (DUI) and twice on A (ORG): locked for every account, on both
        refused = b.check("autre@ehpad-tilleuls.mssante.fr", "10.0.0.2")
        assert (refused.refused, refused.locked, refused.peer_failures) == (True, ("peer",), 4)
        assert a.check(DUI, "10.0.0.1").refused is False
    finally:
        for journal in journals:
            journal.close()


class Evidence:
    """A payload store in memory that counts what it is asked."""

    def __init__(self) -> None:
        self.held: dict[str, bytes] = {}
        self.puts = 0

    def payload(self, digest: str) -> bytes | None:
        return self.held.get(digest)

    def put_payload(self, data: bytes) -> str:
        self.puts += 1
        digest = hashlib.sha256(data).hexdigest()
        self.held[digest] = data
        return digest


def test_a_body_goes_to_the_evidence_once_and_is_fetched_where_missing(tmp_path: Path) -> None:
    evidence = Evidence()
    here = MailStore(bodies=BodyStore(tmp_path / "a", remote=evidence))
    data = b"Subject: x\r\n\r\ncorps\r\n"
    for mailbox in (ORG, DUI, "autre@x.mssante.fr"):
        here.deliver(mailbox, data)
    assert evidence.puts == 1 and list(evidence.held.values()) == [data]
    digest = hashlib.sha256(data).hexdigest()
    # another process names the body by digest only: read from the evidence, then kept as a file
    there = BodyStore(tmp_path / "b", remote=evidence)
    body = there.retain(there.body(digest, len(data)))
    assert not body.path.exists()
    assert (body.read(), body.path.read_bytes()) == (data, data)
    there.release(body)
    assert not body.path.exists()
    # a digest the evidence does not hold (or holds with other bytes) is an error, not other bytes
    evidence.held["0" * 64] = data
    with pytest.raises(StoreError, match="introuvable"):
        there.retain(there.body("0" * 64, len(data))).read()


def test_a_message_id_added_by_the_server_stays_with_each_copy_and_the_body_is_the_journaled_one(
    tmp_path: Path,
) -> None:
    env = SocleEnvironment(HarnessConfig(run_dir=tmp_path, journal=f"sqlite:///{tmp_path}/j.db", services=("mssante",)))
    env.start()
    try:
        msg = build_message(env.testdata.person("P001"), env.testdata.establishment("990000016"), DUI, [ORG], "DLU")
        del msg["Message-ID"]
        data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
        with smtplib.SMTP(*_endpoint(env, "smtp"), timeout=15) as smtp:
            smtp.starttls(context=_tls(env))
            smtp.login(DUI, DUI_PASSWORD)
            smtp.sendmail(DUI, [ORG], data)
        [accepted] = env.journal.query(JournalFilter(run_id=env.run_id, operation="smtp.submit"))
        added = f"Message-ID: {accepted.details['message_id']}\r\n".encode("ascii")
        [(_, inbox), (_, sent)] = sorted(
            ((box, m) for box, _, m in _store(env).find(accepted.details["message_id"])), key=lambda x: x[0] != ORG
        )
        assert inbox.body.digest == sent.body.digest == accepted.digest  # one body: the bytes the journal holds
        assert inbox.data.endswith(added + data) and inbox.data.startswith(b"Return-Path: <" + DUI.encode())
        assert sent.data == added + data
    finally:
        env.stop()
