"""The Pro Santé Connect realm: constants, settings, the state every endpoint family shares, and the journal.

The endpoint families (:mod:`~mock_services.psc.authorization`, :mod:`~mock_services.psc.grants`,
:mod:`~mock_services.psc.resources`, :mod:`~mock_services.psc.logout`, :mod:`~mock_services.psc.admin`) work on
one :class:`Realm`; :mod:`mock_services.psc.provider` assembles them into routes. Specifications: see
:mod:`mock_services.psc.provider`.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from harness.core.journal import Outcome
from harness.core.settings import read_settings
from harness.host.simulator import SimulatorContext
from mock_services.psc.keys import KeyRing
from mock_services.psc.model import Client, Professional, PscFixtures

REALM = "/auth/realms/esante-wallet"
PROTOCOL = REALM + "/protocol/openid-connect"
REQUIRED_SCOPES = ("openid", "scope_all")
REQUIRED_ACR = "eidas1"
LOWER_ACR = "eidas0"  # what the "acr not met" fault puts in the id token

#: Fault kinds the simulator understands (inject with ``Fault(kind, params)`` for service ``psc``).
FAULT_DOWN = "psc.down"  # every endpoint answers 503 while pending (Fault.remaining = number of requests)
FAULT_CODE_EXPIRED = "psc.code-expired"  # the next authorization code is already expired
FAULT_WRONG_STATE = "psc.wrong-state"  # the next authorization response carries another state
FAULT_ACR = "psc.acr-not-met"  # the next session's id token says acr=eidas0
FAULT_NO_ACTIVITY = "psc.no-activity"  # the next session's professional loses the activities at params["finess"]
FAULT_INACTIVE = "psc.introspection-inactive"  # the next introspection answers {"active": false}
FAULT_WRONG_AUDIENCE = "psc.wrong-audience"  # the next id token is issued for another audience
FAULT_CATALOGUE = {
    FAULT_DOWN: "chaque point d'accès répond 503 tant que la panne est pendante (count = nombre de requêtes)",
    FAULT_CODE_EXPIRED: "le prochain code d'autorisation est déjà expiré",
    FAULT_WRONG_STATE: "la prochaine réponse d'autorisation porte un autre state",
    FAULT_ACR: "le prochain id token porte acr=eidas0",
    FAULT_NO_ACTIVITY: "le professionnel de la prochaine session perd ses activités à params.finess",
    FAULT_INACTIVE: "la prochaine introspection répond active=false",
    FAULT_WRONG_AUDIENCE: "le prochain id token est émis pour une autre audience",
}
FAULT_KINDS = (
    FAULT_DOWN,
    FAULT_CODE_EXPIRED,
    FAULT_WRONG_STATE,
    FAULT_ACR,
    FAULT_NO_ACTIVITY,
    FAULT_INACTIVE,
    FAULT_WRONG_AUDIENCE,
)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_CHALLENGE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@dataclass(frozen=True)
class Settings:
    """Simulator settings (``[settings.psc]`` in the harness configuration): lifetimes, key rotation grace, RSA
    size, request bounds, clock leeway, the fixtures folder (default ``fixtures/psc``) and the DUI under test's
    client in its ``clients.json`` (``sut_client``)."""

    code_ttl: int = 60
    access_ttl: int = 300
    id_ttl: int = 300
    refresh_ttl: int = 1800
    key_grace_seconds: float = 600.0
    rsa_bits: int = 2048
    max_param_chars: int = 2048
    max_query_chars: int = 8192
    max_body_bytes: int = 65536
    leeway: int = 30
    fixtures_dir: str | None = None
    sut_client: str = "dui-reference"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Settings:
        return read_settings(cls, raw)


@dataclass(frozen=True)
class AuthRequest:
    client: Client
    redirect_uri: str
    scope: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    acr_values: tuple[str, ...]


@dataclass
class Session:
    sid: str
    user: Professional
    client_id: str
    auth_time: int
    acr: str
    active: bool = True
    nonce: str | None = None  # of the authorization request that opened the session


@dataclass
class CodeGrant:
    request: AuthRequest
    sid: str
    expires_at: float
    used: bool = False


@dataclass
class AccessRecord:
    sid: str
    client_id: str
    scope: tuple[str, ...]
    exp: int
    active: bool = True


@dataclass
class RefreshRecord:
    sid: str
    client_id: str
    scope: tuple[str, ...]
    exp: float
    nonce_free: bool = True
    active: bool = True
    rotated: bool = False


class OAuthError(Exception):
    """An OAuth / OIDC error answer (RFC 6749 §5.2, RFC 6750 §3.1)."""

    def __init__(self, error: str, description: str, status: int = 400, *, www_authenticate: str | None = None) -> None:
        super().__init__(description)
        self.error, self.description, self.status, self.www_authenticate = error, description, status, www_authenticate


class TokenInvalid(Exception):
    """A JWT presented to the provider failed verification."""


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


def is_pkce_value(value: str) -> bool:
    return 43 <= len(value) <= 128 and set(value) <= _CHALLENGE_CHARS


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    clean = {k: v for k, v in params.items() if v is not None}
    return uri + ("&" if "?" in uri else "?") + urlencode(clean)


class Realm:
    """The state of one simulated realm (users, clients, pending requests, codes, tokens, sessions) and its
    journal; thread-safe through :attr:`lock` (re-entrant)."""

    def __init__(self, ctx: SimulatorContext, fixtures: PscFixtures, settings: Settings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.issuer = ctx.http_base + REALM
        self.keys = KeyRing(settings.key_grace_seconds, settings.rsa_bits)
        self.lock = threading.RLock()
        self.professionals: dict[str, Professional] = {u.login.casefold(): u for u in fixtures.users}
        self.clients: dict[str, Client] = {c.client_id: c for c in fixtures.clients}
        self.next_login: dict[str | None, str] = {}
        self.pending: dict[str, AuthRequest] = {}
        self.codes: dict[str, CodeGrant] = {}
        self.access: dict[str, AccessRecord] = {}
        self.refresh: dict[str, RefreshRecord] = {}
        self.sessions: dict[str, Session] = {}
        self.issued = 0

    def users(self) -> list[Professional]:
        with self.lock:
            return list(self.professionals.values())

    def user(self, ref: str) -> Professional | None:
        wanted = ref.strip().casefold()
        with self.lock:
            found = self.professionals.get(wanted)
            if found is not None:
                return found
            for user in self.professionals.values():
                if wanted in (user.id_nat_ps.casefold(), user.display_name.casefold(), (user.rpps or "-")):
                    return user
        return None

    def put_user(self, user: Professional) -> None:
        """Create or replace a professional (by login)."""
        with self.lock:
            self.professionals[user.login.casefold()] = user
        self.record("admin.user", Outcome.ACCEPTED, actor="admin", user=user, details={"login": user.login})

    def client(self, client_id: str) -> Client | None:
        with self.lock:
            return self.clients.get(client_id)

    def set_next_login(self, login: str | None, client_id: str | None = None) -> None:
        """Pre-select who authenticates at the next authorizations of ``client_id`` (all clients when None)."""
        with self.lock:
            if login is None:
                self.next_login.pop(client_id, None)
            else:
                if self.user(login) is None:
                    raise LookupError(f"professionnel inconnu du simulateur PSC: {login!r}")
                self.next_login[client_id] = login
        self.record("admin.next_login", Outcome.ACCEPTED, actor="admin", client_id=client_id, details={"login": login})

    def rotate_keys(self) -> list[str]:
        kids = self.keys.rotate()
        self.record("admin.rotate_keys", Outcome.ACCEPTED, actor="admin", details={"new_kids": kids})
        return kids

    def session_active(self, sid: str) -> bool:
        with self.lock:
            session = self.sessions.get(sid)
            return bool(session and session.active)

    def record(
        self,
        operation: str,
        outcome: Outcome,
        *,
        actor: str | None = None,
        client_id: str | None = None,
        user: Professional | None = None,
        error: str | None = None,
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
        payload: bytes | None = None,
        payload_type: str | None = None,
    ) -> None:
        info: dict[str, Any] = dict(details or {})
        if client_id:
            info.setdefault("client_id", client_id)
        essms = None
        if user is not None:
            info.setdefault("id_nat_ps", user.id_nat_ps)
            if user.rpps:
                info.setdefault("rpps", user.rpps)
            sites = user.finess_sites
            info.setdefault("finess", list(sites))
            essms = sites[0] if len(sites) == 1 else None
        self.ctx.record(
            operation,
            outcome,
            actor=actor or client_id,
            essms=essms,
            error_code=error,
            error_message=message,
            payload=payload,
            payload_type=payload_type,
            details=info,
        )

    def purge(self) -> None:
        now = time.time()
        self.codes = {c: g for c, g in self.codes.items() if g.expires_at > now - 600}
        self.access = {j: a for j, a in self.access.items() if a.exp > now - 600}
        self.refresh = {r: g for r, g in self.refresh.items() if g.exp > now}
        live = {a.sid for a in self.access.values()} | {r.sid for r in self.refresh.values()}
        self.sessions = {sid: sess for sid, sess in self.sessions.items() if sid in live or sess.auth_time > now - 3600}

    def revoke_session(self, sid: str) -> dict[str, int]:
        """End session ``sid`` and revoke every token issued in it: the whole grant family of the authorization code
        that opened it, refreshed tokens included. Returns how many tokens were still active."""
        counts = {"access_tokens": 0, "refresh_tokens": 0}
        with self.lock:
            if sid in self.sessions:
                self.sessions[sid].active = False
            for rec in self.access.values():
                if rec.sid == sid:
                    counts["access_tokens"] += rec.active
                    rec.active = False
            for ref in self.refresh.values():
                if ref.sid == sid:
                    counts["refresh_tokens"] += ref.active
                    ref.active = False
        return counts
