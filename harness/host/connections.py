"""Connection bounds of the host's listeners, and the journal of what they refuse (issue 15 item 5).

A listener keeps at most ``max_connections`` connections, at most ``max_per_peer`` from one peer address, gives a
client ``header_timeout`` seconds to send a request's header section (first request or next one: a slow client
trickling bytes does not extend it) and closes a connection idle for ``idle_timeout`` seconds between requests.
What it refuses is journaled (service ``harness``, operation ``connection.refused``, ``error_code`` the reason,
``actor`` the peer address), coalesced per listener, peer and reason so that a flood of thousands of connections
writes a few rows (``details.count`` says how many were refused since the previous row) instead of blocking the
loop on the journal.

HTTP answers (RFC 9110): ``503 Service Unavailable`` with ``Retry-After`` when a connection is over a limit,
``408 Request Timeout`` when the header section did not arrive in time; both with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.core.journal import Direction, Exchange, Journal, Outcome
from harness.core.settings import read_settings

OPERATION = "connection.refused"
OVER_LISTENER = "limite-connexions"
OVER_PEER = "limite-connexions-pair"
HEADER_TIMEOUT = "delai-en-tetes"
IDLE_TIMEOUT = "delai-inactivite"


@dataclass(frozen=True)
class ConnectionLimits:
    """``[settings.host]`` bounds of every listener of the host."""

    max_connections: int = 512
    max_per_peer: int = 64
    header_timeout: float = 10.0
    idle_timeout: float = 5.0
    # a TCP protocol's silence tolerated between bytes (MLLP, a DUI keeps its connection between messages:
    # 5 minutes, the SMTP server timeout of RFC 5321 §4.5.3.2.7)
    stream_idle_timeout: float = 300.0

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> ConnectionLimits:
        return read_settings(cls, raw)

    def refusal(self, total: int, from_peer: int) -> str | None:
        """Why one more connection is refused (``total`` and ``from_peer`` include it), else ``None``."""
        if from_peer > self.max_per_peer:
            return OVER_PEER
        if total > self.max_connections:
            return OVER_LISTENER
        return None


@dataclass
class RefusalJournal:
    """Journals refused connections, at most one row per (listener, peer, reason) per ``window`` seconds; each
    row's ``count`` is the refusals it stands for (those held back since the key's last row, itself included), and
    :meth:`flush` writes what is still held back, so the counts add up to every refusal."""

    journal: Journal
    run_id: Callable[[], str | None] = lambda: None
    window: float = 5.0
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 10_000  # keys remembered; beyond, the oldest half is forgotten
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last: dict[tuple[str, str, str], tuple[float, int]] = field(default_factory=dict, repr=False)

    def refused(self, listener: str, peer: str, reason: str, **details: Any) -> None:
        key = (listener, peer, reason)
        now = self.clock()
        evicted: list[tuple[tuple[str, str, str], int]] = []
        with self._lock:
            last, pending = self._last.get(key, (float("-inf"), 0))
            if now - last < self.window:
                self._last[key] = (last, pending + 1)
                return
            self._last[key] = (now, 0)
            if len(self._last) > self.max_keys:  # bounded: forget the oldest keys, journaling what they still hold
                for old in sorted(self._last, key=lambda k: self._last[k][0])[: self.max_keys // 2]:
                    if self._last[old][1]:
                        evicted.append((old, self._last[old][1]))
                    del self._last[old]
        self._write(key, pending + 1, details)
        for old, count in evicted:
            self._write(old, count, {})

    def flush(self) -> None:
        """Journal the refusals still held back in an open window (one row per key, ``count`` = how many), so that
        the rows' counts add up to every refusal: called when the host stops."""
        with self._lock:
            held = [(key, pending) for key, (_, pending) in self._last.items() if pending]
            for key, _ in held:
                self._last[key] = (self._last[key][0], 0)
        for key, count in held:
            self._write(key, count, {})

    def _write(self, key: tuple[str, str, str], count: int, details: dict[str, Any]) -> None:
        listener, peer, reason = key
        self.journal.record(
            Exchange(
                service="harness",
                operation=OPERATION,
                direction=Direction.FROM_DUI,
                outcome=Outcome.REJECTED,
                actor=peer,
                run_id=self.run_id(),
                error_code=reason,
                error_message=f"connexion refusée par {listener} : {reason}",
                details={"listener": listener, "count": count, **details},
            )
        )


StreamCallback = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def peer_of(address: Any) -> str:
    """The peer address of a socket's ``peername`` (``"?"`` when unknown)."""
    return str(address[0]) if isinstance(address, tuple) and address else "?"


@dataclass
class ConnectionCount:
    """The connections one listener holds, per peer address, against ``limits`` (used from the listener's event
    loop only: no lock). :meth:`admit` counts a connection in or says why it is refused; :meth:`release` counts
    it out."""

    limits: ConnectionLimits
    active: Counter[str] = field(default_factory=Counter)

    def admit(self, peer: str) -> str | None:
        reason = self.limits.refusal(self.active.total() + 1, self.active[peer] + 1)
        if reason is None:
            self.active[peer] += 1
        return reason

    def release(self, peer: str) -> None:
        self.active[peer] -= 1
        if self.active[peer] <= 0:
            del self.active[peer]


class _TimedReader:
    """A StreamReader whose reads fail (``ConnectionError``) after ``timeout`` seconds of silence."""

    def __init__(self, reader: asyncio.StreamReader, timeout: float, expired: Callable[[], None]) -> None:
        self._reader, self._timeout, self._expired = reader, timeout, expired

    async def read(self, n: int = -1) -> bytes:
        try:
            return await asyncio.wait_for(self._reader.read(n), self._timeout)
        except TimeoutError:
            self._expired()
            raise ConnectionError("délai d'inactivité dépassé") from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


def bounded_streams(
    callback: StreamCallback,
    limits: ConnectionLimits,
    refused: Callable[[str, str, str], None] | None,
    listener: str,
) -> StreamCallback:
    """An ``asyncio.start_server`` callback bounded by ``limits``: a connection over the listener's or the peer's
    limit is closed at once, a connection silent for ``stream_idle_timeout`` seconds is closed (its reads raise
    ``ConnectionError``); ``refused(listener, peer, reason)`` is told each time (journaled, coalesced)."""
    count = ConnectionCount(limits)

    def report(peer: str, reason: str) -> None:
        if refused is not None:
            refused(listener, peer, reason)

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = peer_of(writer.get_extra_info("peername"))
        reason = count.admit(peer)
        if reason is not None:
            report(peer, reason)
            writer.close()
            return
        try:
            timed = _TimedReader(reader, limits.stream_idle_timeout, lambda: report(peer, IDLE_TIMEOUT))
            await callback(timed, writer)  # type: ignore[arg-type] - a StreamReader for every read the callback does
        finally:
            count.release(peer)

    return guarded
