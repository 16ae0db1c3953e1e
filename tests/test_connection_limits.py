"""Bounds of the host's HTTPS listener (issue 15 item 5): connections per peer and per listener, the time to send
a request's header section, refusals journaled (coalesced), and the listener still answering right after."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.core.config import HarnessConfig
from harness.core.journal import JournalFilter, Outcome
from harness.host.connections import (
    HEADER_TIMEOUT,
    OPERATION,
    OVER_LISTENER,
    OVER_PEER,
    ConnectionLimits,
    RefusalJournal,
)
from harness.runtime.environment import SocleEnvironment

LIMITS = {"max_connections": 6, "max_per_peer": 3, "header_timeout": 0.6, "idle_timeout": 1}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    tmp = tmp_path_factory.mktemp("limits")
    config = HarnessConfig(
        run_dir=tmp, journal=f"sqlite:///{tmp}/j.sqlite", services=("tddui",), settings={"host": LIMITS}
    )
    env = SocleEnvironment(config)
    env.start()
    yield env
    env.stop()


def _open(env: SocleEnvironment) -> ssl.SSLSocket:
    host, port = env.endpoints["harness"]["base"].removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    raw = socket.create_connection((host, int(port)), timeout=5)
    return context.wrap_socket(raw, server_hostname=host)


def _answer(sock: ssl.SSLSocket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except (TimeoutError, ssl.SSLError, OSError):
        pass
    return data


def _health(env: SocleEnvironment) -> bytes:
    with _open(env) as sock:
        sock.sendall(b"GET /_harness/health HTTP/1.1\r\nHost: harness\r\nConnection: close\r\n\r\n")
        return _answer(sock)


def _refusals(env: SocleEnvironment) -> list[tuple[str | None, int]]:
    rows = env.journal.query(JournalFilter(service="harness", operation=OPERATION))
    assert all(r.outcome is Outcome.REJECTED and r.actor == "127.0.0.1" for r in rows)
    return [(r.error_code, r.details["count"]) for r in rows]


def test_one_peer_holds_at_most_its_share_and_idle_clients_are_let_go(env: SocleEnvironment) -> None:
    held = [_open(env) for _ in range(3)]  # TLS done, nothing sent: held until the header timeout
    time.sleep(0.1)
    with _open(env) as fourth:
        assert _answer(fourth).startswith(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n")
    started = time.monotonic()
    for sock in held:  # each is answered 408 and closed once its header section is late
        assert _answer(sock).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        sock.close()
    assert time.monotonic() - started < 2.0
    assert _health(env).startswith(b"HTTP/1.1 200 OK")
    assert _refusals(env) == [(OVER_PEER, 1), (HEADER_TIMEOUT, 1)]  # three timeouts coalesced in one row


def test_a_client_trickling_its_headers_is_cut_off(env: SocleEnvironment) -> None:
    with _open(env) as slow:
        slow.sendall(b"GET /_harness/health HTTP/1.1\r\nHost: harness\r\n")
        started = time.monotonic()
        try:
            for n in range(20):  # a header line every 0.1 s never completes the section
                slow.sendall(f"X-Lent-{n}: a\r\n".encode())
                time.sleep(0.1)
        except OSError:
            pass
        assert _answer(slow).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert time.monotonic() - started < 1.5
    assert _health(env).startswith(b"HTTP/1.1 200 OK")


def test_refusal_rows_are_coalesced_per_listener_peer_and_reason(tmp_path: Path) -> None:
    from harness.core.journal import SQLiteJournal

    journal = SQLiteJournal(tmp_path / "j.sqlite")
    clock = [0.0]
    refusals = RefusalJournal(journal, run_id=lambda: "r1", window=5.0, clock=lambda: clock[0])
    for _ in range(1000):
        refusals.refused("mllp", "10.0.0.9", OVER_LISTENER)
    clock[0] = 6.0
    refusals.refused("mllp", "10.0.0.9", OVER_LISTENER)
    refusals.refused("https", "10.0.0.9", OVER_LISTENER)
    rows = journal.query(JournalFilter(service="harness"))
    assert [(r.details["listener"], r.details["count"], r.run_id) for r in rows] == [
        ("mllp", 1, "r1"),
        ("mllp", 1000, "r1"),
        ("https", 1, "r1"),
    ]
    for _ in range(7):  # held back in the open window ...
        refusals.refused("https", "10.0.0.9", OVER_LISTENER)
    refusals.flush()  # ... written when the host stops
    refusals.flush()  # once
    rows = journal.query(JournalFilter(service="harness"))
    assert [(r.details["listener"], r.details["count"]) for r in rows[3:]] == [("https", 7)]
    assert sum(r.details["count"] for r in rows) == 1000 + 1 + 1 + 7
    assert ConnectionLimits().refusal(513, 1) == OVER_LISTENER and ConnectionLimits().refusal(2, 65) == OVER_PEER
    journal.close()


def test_forgotten_refusal_keys_journal_what_they_held_back(tmp_path: Path) -> None:
    from harness.core.journal import SQLiteJournal

    journal = SQLiteJournal(tmp_path / "j.sqlite")
    clock = [0.0]
    refusals = RefusalJournal(journal, window=5.0, clock=lambda: clock[0], max_keys=4)
    for peer in ("a", "b", "c", "d"):
        clock[0] += 0.1
        refusals.refused("smtp", peer, OVER_PEER)
        refusals.refused("smtp", peer, OVER_PEER)  # held back
    clock[0] += 0.1
    refusals.refused("smtp", "e", OVER_PEER)  # a fifth key: "a" and "b" are forgotten, their held-back one written
    rows = journal.query(JournalFilter(service="harness"))
    assert [(r.actor, r.details["count"]) for r in rows] == [
        ("a", 1),
        ("b", 1),
        ("c", 1),
        ("d", 1),
        ("e", 1),
        ("a", 1),
        ("b", 1),
    ]
    journal.close()


def test_a_connection_that_never_starts_tls_is_closed(env: SocleEnvironment) -> None:
    host, port = env.endpoints["harness"]["base"].removeprefix("https://").rsplit(":", 1)
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        assert raw.recv(1024) == b""  # closed by the server once the handshake is late
    assert time.monotonic() - started < 2.0
    assert _health(env).startswith(b"HTTP/1.1 200 OK")


def test_mllp_listener_bounds_connections_and_silence(tmp_path: Path) -> None:
    """1,100 idle MLLP connections exhausted the file descriptors (issue 15 item 5): now 2 per peer here, each
    closed after 0.5 s of silence, refusals journaled, and a new connection served once they are gone."""
    from harness.host.connections import IDLE_TIMEOUT

    settings = {"host": {"max_per_peer": 2, "stream_idle_timeout": 0.5}}
    env = SocleEnvironment(
        HarnessConfig(
            run_dir=tmp_path, journal=f"sqlite:///{tmp_path}/j.sqlite", services=("mssante",), settings=settings
        )
    )
    try:
        host, port = env.start()["mssante"]["mllp"].rsplit(":", 1)
        held = [socket.create_connection((host, int(port)), timeout=5) for _ in range(2)]
        held[1].sendall(b"\x0bMSH|^~\\&|DUI")  # half a frame, never finished
        with socket.create_connection((host, int(port)), timeout=5) as third:
            assert third.recv(1024) == b""  # over the peer's limit: closed at once
        started = time.monotonic()
        for sock in held:
            assert sock.recv(1024) == b""  # silent: let go
            sock.close()
        assert time.monotonic() - started < 2.0
        with socket.create_connection((host, int(port)), timeout=5) as fresh:
            fresh.settimeout(0.2)
            with pytest.raises(TimeoutError):
                fresh.recv(1024)  # accepted and waiting for a frame
        rows = env.journal.query(JournalFilter(service="harness", operation=OPERATION))
        assert [(r.details["listener"], r.error_code) for r in rows] == [("mllp", OVER_PEER), ("mllp", IDLE_TIMEOUT)]
    finally:
        env.stop()
