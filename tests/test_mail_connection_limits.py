"""Bounds of the MSSanté SMTP and IMAP listeners (issue 15 item 5): connections per listener and per peer refused
with the protocol's own answer (SMTP ``421`` greeting, RFC 5321 §3.1 / §4.2.3; IMAP ``* BYE [UNAVAILABLE]``
greeting, RFC 9051 §7.1.5), idle sessions closed (SMTP ``421`` after the server timeout, RFC 5321 §4.5.3.2; IMAP
autologout ``* BYE``, RFC 9051 §5.4), every refusal journaled, and the listener serving the next client."""

from __future__ import annotations

import imaplib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.core.config import HarnessConfig
from harness.core.journal import JournalFilter, Outcome
from harness.host.connections import IDLE_TIMEOUT, OPERATION, OVER_LISTENER, OVER_PEER
from harness.runtime.environment import SocleEnvironment

IDLE = 0.6  # seconds: the test value of smtp_idle_timeout / imap_idle_timeout (RFC defaults: 300 s and 30 min)
SMTP_BUSY = b"421 smtp.mssante.test Service not available, too many connections, try again later\r\n"
IMAP_BUSY = b"* BYE [UNAVAILABLE] Trop de connexions, reessayez plus tard\r\n"


def _env(tmp: Path, settings: dict) -> SocleEnvironment:
    config = HarnessConfig(run_dir=tmp, journal=f"sqlite:///{tmp}/j.sqlite", services=("mssante",), settings=settings)
    env = SocleEnvironment(config)
    env.start()
    return env


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    """Three connections per listener, two per peer; idle limits far away."""
    env = _env(tmp_path_factory.mktemp("capped"), {"host": {"max_connections": 3, "max_per_peer": 2}})
    yield env
    env.stop()


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    env = _env(tmp_path_factory.mktemp("idle"), {"mssante": {"smtp_idle_timeout": IDLE, "imap_idle_timeout": IDLE}})
    yield env
    env.stop()


def _open(env: SocleEnvironment, listener: str, source: str = "127.0.0.1") -> socket.socket:
    host, _, port = env.endpoints["mssante"][listener].rpartition(":")
    return socket.create_connection((host, int(port)), timeout=5, source_address=(source, 0))


def _line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(1)
        assert chunk, f"connexion fermée après {data!r}"
        data += chunk
    return data


def _rest(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def _refusals(env: SocleEnvironment, mark: int) -> list[tuple[str, str | None, str | None]]:
    for _ in range(100):  # journaled off the event loop: a moment after the answer
        rows = env.journal.query(JournalFilter(since_seq=mark, service="harness", operation=OPERATION))
        if rows:
            time.sleep(0.2)  # let any second row land
            rows = env.journal.query(JournalFilter(since_seq=mark, service="harness", operation=OPERATION))
            break
        time.sleep(0.05)
    assert all(r.outcome is Outcome.REJECTED for r in rows)
    return [(r.details["listener"], r.actor, r.error_code) for r in rows]


@pytest.mark.parametrize(
    ("listener", "busy", "greeting"), [("smtp", SMTP_BUSY, b"220 "), ("imap", IMAP_BUSY, b"* OK ")], ids=str
)
def test_connections_over_the_peer_or_listener_limit_get_the_protocols_refusal(
    capped: SocleEnvironment, listener: str, busy: bytes, greeting: bytes
) -> None:
    mark = capped.journal.last_seq()
    held = [_open(capped, listener) for _ in range(2)]
    assert [_line(s)[: len(greeting)] for s in held] == [greeting, greeting]
    with _open(capped, listener) as third:  # a third from the same peer
        assert _rest(third) == busy
    other = _open(capped, listener, "127.0.0.2")
    assert _line(other)[: len(greeting)] == greeting  # another peer still gets in: three in all
    with _open(capped, listener, "127.0.0.3") as fourth:
        assert _rest(fourth) == busy  # the listener's limit
    for sock in [*held, other]:
        sock.close()
    time.sleep(0.3)  # the server sees the closes
    with _open(capped, listener) as again:  # served once they are gone
        assert _line(again)[: len(greeting)] == greeting
        again.sendall(b"EHLO dui.test\r\n" if listener == "smtp" else b"a1 CAPABILITY\r\n")
        answer = _line(again)
        while answer[3:4] == b"-" or answer.startswith(b"* "):
            answer = _line(again)
        assert answer.startswith(b"250 " if listener == "smtp" else b"a1 OK ")
    assert _refusals(capped, mark) == [(listener, "127.0.0.1", OVER_PEER), (listener, "127.0.0.3", OVER_LISTENER)]


def test_an_idle_smtp_session_gets_421_and_is_closed(idle: SocleEnvironment) -> None:
    mark = idle.journal.last_seq()
    started = time.monotonic()
    with _open(idle, "smtp") as silent:
        assert _line(silent).startswith(b"220 smtp.mssante.test ")
        assert _rest(silent) == b"421 smtp.mssante.test Error: timeout exceeded\r\n"  # no EHLO: no enhanced code
    assert IDLE <= time.monotonic() - started < IDLE + 1.5
    with _open(idle, "smtp") as after_ehlo:
        _line(after_ehlo)
        after_ehlo.sendall(b"EHLO dui.test\r\n")
        while _line(after_ehlo)[3:4] == b"-":
            pass
        assert _rest(after_ehlo) == b"421 4.4.2 smtp.mssante.test Error: timeout exceeded\r\n"  # RFC 3463 4.4.2
    with _open(idle, "smtp") as fresh:  # the listener goes on
        assert _line(fresh).startswith(b"220 ")
        fresh.sendall(b"NOOP\r\n")
        assert _line(fresh).startswith(b"250 ")
    assert _refusals(idle, mark) == [("smtp", "127.0.0.1", IDLE_TIMEOUT)]  # the second one coalesced


def test_an_idle_imap_connection_is_logged_out(idle: SocleEnvironment) -> None:
    mark = idle.journal.last_seq()
    started = time.monotonic()
    with _open(idle, "imap") as silent:
        assert _line(silent).startswith(b"* OK ")
        silent.sendall(b"a1 NOOP\r\n")  # a command restarts the delay
        assert _line(silent) == b"a1 OK NOOP completed.\r\n"
        time.sleep(IDLE / 2)
        silent.sendall(b"a2 NOOP\r\n")
        assert _line(silent) == b"a2 OK NOOP completed.\r\n"
        assert _rest(silent) == b"* BYE Autologout; idle for too long\r\n"
    assert IDLE * 1.5 <= time.monotonic() - started < IDLE * 1.5 + 1.5
    with _open(idle, "imap") as fresh:
        assert _line(fresh).startswith(b"* OK ")
        fresh.sendall(b"a1 CAPABILITY\r\n")
        assert _line(fresh).startswith(b"* CAPABILITY ")
        assert _line(fresh).startswith(b"a1 OK ")
    assert _refusals(idle, mark) == [("imap", "127.0.0.1", IDLE_TIMEOUT)]


def test_an_idle_imap_idle_command_is_logged_out_once(idle: SocleEnvironment) -> None:
    """IDLE (RFC 2177) waiting for DONE longer than the autologout delay: one ``* BYE`` (not pymap's own BYE
    [SERVERBUG] after it), closed, journaled."""
    import imaplib
    import ssl

    class FromAnotherPeer(imaplib.IMAP4):  # its own (listener, peer, reason) row: not coalesced with the tests above
        def _create_socket(self, timeout: float | None) -> socket.socket:
            return socket.create_connection((self.host, self.port), timeout, source_address=("127.0.0.2", 0))

    port = int(idle.endpoints["mssante"]["imap"].rpartition(":")[2])
    client = FromAnotherPeer("127.0.0.1", port)
    client.starttls(ssl_context=ssl.create_default_context(cafile=str(idle.pki.ca_bundle_path)))
    client.login("secretariat@ehpad-tilleuls.mssante.fr", "tilleuls-test")
    client.select("INBOX")
    mark = idle.journal.last_seq()
    started = time.monotonic()
    client.send(b"i1 IDLE\r\n")
    assert client.readline() == b"+ Idling.\r\n"
    rest = b""
    while chunk := client.sock.recv(4096):
        rest += chunk
    assert rest == b"* BYE Autologout; idle for too long\r\n"
    assert IDLE <= time.monotonic() - started < IDLE + 1.5
    client.shutdown()
    assert _refusals(idle, mark) == [("imap", "127.0.0.2", IDLE_TIMEOUT)]


def test_imap_connections_cut_after_starttls_are_released(capped: SocleEnvironment) -> None:
    """A TLS connection the client cuts (no LOGOUT) is counted out: its writer no longer answers ``peername``
    once the TLS transport is gone, so the peer used to stay counted and be refused at its limit (two here)."""
    host, _, port = capped.endpoints["mssante"]["imap"].rpartition(":")
    context = ssl.create_default_context(cafile=str(capped.pki.ca_bundle_path))
    for _ in range(3):
        imap = imaplib.IMAP4(host, int(port), timeout=5)
        imap.starttls(ssl_context=context)
        imap.shutdown()
        time.sleep(0.1)  # the server sees the end of the connection
    sock = _open(capped, "imap")
    try:
        assert _line(sock).startswith(b"* OK ")
    finally:
        sock.close()
