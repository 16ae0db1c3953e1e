"""Password back-off for the MSSanté SMTP and IMAP listeners: a progressive delay, then a temporary refusal, per
account and per peer address — what real servers do (Dovecot ``auth_failure_delay``, Postfix
``smtpd_client_auth_rate_limit``, fail2ban) so that 30 wrong passwords in a row are not answered at full speed.

Plain library code, no protocol: the listener asks :meth:`AuthBackoff.check` before it verifies a password (a
refused attempt is answered without verifying), then tells :meth:`AuthBackoff.failure` or :meth:`AuthBackoff.success`
and waits :attr:`Decision.delay` before it answers a failure. The answers the protocols give for a temporary
refusal are here too:

- SMTP AUTH (RFC 4954 §6): ``454 4.7.0 Temporary authentication failure`` (enhanced status code RFC 3463 /
  RFC 5248 ``4.7.0``); a wrong password stays ``535 5.7.8``;
- IMAP AUTHENTICATE / LOGIN (RFC 9051 §7.1, response codes RFC 5530): ``NO [UNAVAILABLE]`` for the temporary
  refusal; a wrong password stays ``NO [AUTHENTICATIONFAILED]``.

:meth:`Decision.details` is what the listener journals with the refused or failed attempt. Memory is bounded: at
most ``max_tracked`` accounts and peers are remembered (the oldest forgotten first).

Shared state (issue 19 item 2): failures and successes are operations on stream ``mssante.auth_backoff``
(:mod:`harness.core.state`) carrying their time, so that a guesser spreading its attempts over several serving
processes meets one count; a check only reads (after catching up). Shared, the clock is the wall clock (the
processes may be on several machines); alone, the monotonic clock as before.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.core.settings import read_settings
from harness.core.state import StateHub

SMTP_TEMPORARY_REFUSAL = (
    "454 4.7.0 Temporary authentication failure: trop d'echecs, reessayez plus tard"  # 7-bit (RFC 5321)
)
IMAP_TEMPORARY_REFUSAL = "NO [UNAVAILABLE] Trop d'échecs d'authentification, réessayez plus tard"
STREAM = "mssante.auth_backoff"  # the shared-state stream of the failure counts


@dataclass(frozen=True)
class BackoffPolicy:
    """``[settings.mssante] auth_backoff``: after ``free_failures`` failures of an account, each failure is answered
    after a delay doubling from ``base_delay`` up to ``max_delay`` (Dovecot delays every failure by 2 s); 10 failures
    in 10 minutes lock the account, or the peer whatever the accounts it tries, for 15 minutes (fail2ban-like)."""

    free_failures: int = 3  # failures of an account answered at once
    base_delay: float = 1.0  # seconds before the next failure answer, doubled at each failure beyond the free ones
    max_delay: float = 8.0
    lockout_failures: int = 10  # failures within the window that refuse every attempt for lockout_seconds
    lockout_seconds: float = 900.0
    window_seconds: float = 600.0
    max_tracked: int = 10_000

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> BackoffPolicy:
        return read_settings(cls, raw)


@dataclass(frozen=True)
class Decision:
    """What to do with one attempt: refuse it at once (``refused``, ``retry_after`` seconds), or answer a failure
    after ``delay`` seconds. ``failures`` are those counted for the account and the peer in the window."""

    refused: bool = False
    retry_after: float = 0.0
    delay: float = 0.0
    account_failures: int = 0
    peer_failures: int = 0
    locked: tuple[str, ...] = ()  # "account", "peer"

    def details(self) -> dict[str, Any]:
        return {
            "backoff": {
                "refused": self.refused,
                "retry_after": round(self.retry_after, 1),
                "delay": round(self.delay, 2),
                "account_failures": self.account_failures,
                "peer_failures": self.peer_failures,
                "locked": list(self.locked),
            }
        }


@dataclass
class _Track:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class AuthBackoff:
    """Failure counts per account and per peer, thread-safe (one per listener, or shared by SMTP and IMAP)."""

    def __init__(
        self,
        policy: BackoffPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        state: StateHub | None = None,
    ) -> None:
        self.policy = policy or BackoffPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._tracks: OrderedDict[tuple[str, str], _Track] = OrderedDict()
        hub = state if state is not None else StateHub()
        self._replica = hub.replica(STREAM, self._apply, self._reset, self.snapshot, self.restore)

    def _track(self, kind: str, key: str, now: float) -> _Track:
        track = self._tracks.get((kind, key))
        if track is None:
            track = _Track()
            self._tracks[(kind, key)] = track
            while len(self._tracks) > self.policy.max_tracked:
                self._tracks.popitem(last=False)
        else:
            self._tracks.move_to_end((kind, key))
        horizon = now - self.policy.window_seconds
        track.failures = [t for t in track.failures if t > horizon]
        return track

    def _peek(self, kind: str, key: str, now: float) -> _Track:
        """The track as :meth:`_track` would see it, without changing anything (a check only reads)."""
        track = self._tracks.get((kind, key))
        if track is None:
            return _Track()
        horizon = now - self.policy.window_seconds
        return _Track([t for t in track.failures if t > horizon], track.locked_until)

    def _decision(self, account: _Track, peer: _Track, now: float, *, delay: float = 0.0) -> Decision:
        locked = tuple(name for name, t in (("account", account), ("peer", peer)) if t.locked_until > now)
        retry = max((t.locked_until - now for t in (account, peer) if t.locked_until > now), default=0.0)
        return Decision(bool(locked), retry, delay, len(account.failures), len(peer.failures), locked)

    def check(self, account: str, peer: str) -> Decision:
        """Before a password is verified: ``refused`` when the account or the peer is locked."""
        now = self._clock()
        self._replica.sync()
        with self._lock:
            return self._decision(self._peek("account", account.casefold(), now), self._peek("peer", peer, now), now)

    def failure(self, account: str, peer: str) -> Decision:
        """A wrong password: count it, lock what reached the threshold; ``delay`` before answering the failure."""
        return self._replica.do({"op": "failure", "account": account.casefold(), "peer": peer, "now": self._clock()})

    def success(self, account: str, peer: str) -> None:
        """A right password: the account's failures are forgotten (the peer's stay: one peer trying many accounts
        is still a guesser)."""
        self._replica.sync()
        with self._lock:
            if ("account", account.casefold()) not in self._tracks:
                return  # nothing to forget: no operation (one per successful login would fill the log)
        self._replica.do({"op": "success", "account": account.casefold()})

    def _apply(self, op: Mapping[str, Any]) -> Decision | None:
        if op["op"] == "success":
            with self._lock:
                self._tracks.pop(("account", op["account"]), None)
            return None
        now = op["now"]
        policy = self.policy
        with self._lock:
            tracks = (self._track("account", op["account"], now), self._track("peer", op["peer"], now))
            for track in tracks:
                track.failures.append(now)
                if len(track.failures) >= policy.lockout_failures:
                    track.locked_until = max(track.locked_until, now + policy.lockout_seconds)
            beyond = len(tracks[0].failures) - policy.free_failures  # the delay follows the account's failures
            delay = min(policy.max_delay, policy.base_delay * 2 ** (beyond - 1)) if beyond > 0 else 0.0
            return self._decision(*tracks, now, delay=delay)

    def _reset(self) -> None:
        with self._lock:
            self._tracks.clear()

    def snapshot(self) -> list[list[Any]]:
        """The tracks as JSON (harness.core.state snapshot), least recently used first:
        ``[kind, key, failures, locked_until]``."""
        with self._lock:
            return [[kind, key, list(t.failures), t.locked_until] for (kind, key), t in self._tracks.items()]

    def restore(self, state: list[list[Any]]) -> None:
        """Replace the tracks by a :meth:`snapshot` (in the same order)."""
        with self._lock:
            self._tracks = OrderedDict(
                ((kind, key), _Track([float(t) for t in failures], float(locked)))
                for kind, key, failures, locked in state
            )


SERVICE_KEY = "mssante.auth_backoff"


def shared_backoff(ctx: Any, policy: BackoffPolicy) -> AuthBackoff:
    """The back-off of one MSSanté simulator, shared by its SMTP and IMAP listeners (the host's service registry
    holds it: created on first use with ``policy``, the typed ``[settings.mssante] auth_backoff``) and, through
    ``ctx.state``, by the serving processes of one PostgreSQL journal."""
    found = ctx.services.get(SERVICE_KEY)
    if found is None:
        shared = ctx.state.shared  # several serving processes: one count, on the wall clock they share
        found = AuthBackoff(policy, clock=time.time if shared else time.monotonic, state=ctx.state)
        ctx.services.provide(SERVICE_KEY, found)
    return found
