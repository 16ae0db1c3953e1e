"""The Pro Santé Connect realm: constants, settings, the state every endpoint family shares, and the journal.

The endpoint families (:mod:`~mock_services.psc.authorization`, :mod:`~mock_services.psc.grants`,
:mod:`~mock_services.psc.resources`, :mod:`~mock_services.psc.logout`, :mod:`~mock_services.psc.admin`) work on
one :class:`Realm`; :mod:`mock_services.psc.provider` assembles them into routes. Specifications: see
:mod:`mock_services.psc.provider`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from harness.core.journal import Outcome
from harness.core.settings import read_settings
from harness.core.state import Deferred
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
#: The kinds taken once the OIDC client is known, which may so be aimed at one test session (all but psc.down,
#: which answers before any request is read): ``Simulator.session_faults``
SESSION_FAULTS = frozenset(FAULT_CATALOGUE) - {FAULT_DOWN}
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

    def as_op(self) -> dict[str, Any]:
        """This request in a shared-state operation (the client by its id: clients come from the fixtures)."""
        return {
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": list(self.scope),
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "code_challenge_method": self.code_challenge_method,
            "acr_values": list(self.acr_values),
        }


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


class UnknownGrant(LookupError):
    """A shared-state operation names a code, refresh token or pending request the realm does not know."""


GRANTS_STREAM = "psc.grants"  # pending requests, sessions, codes, access and refresh tokens (harness.core.state)
USERS_STREAM = "psc.users"  # professionals and the admin-set next login
PURGE_EVERY = 512  # token sets issued between two purges of what expired


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


def is_pkce_value(value: str) -> bool:
    return 43 <= len(value) <= 128 and set(value) <= _CHALLENGE_CHARS


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    clean = {k: v for k, v in params.items() if v is not None}
    return uri + ("&" if "?" in uri else "?") + urlencode(clean)


class Realm:
    """The state of one simulated realm (users, clients, pending requests, codes, tokens, sessions) and its journal.

    Replicated state (:mod:`harness.core.state`): the professionals and the next login (stream
    :data:`USERS_STREAM`), the pending login requests, sessions, codes and tokens (stream :data:`GRANTS_STREAM`)
    and the signing keys (:data:`mock_services.psc.keys.KEYS_STREAM`) change only through operations carrying
    everything drawn at random or read from the clock, so that with a PostgreSQL journal a code issued by one
    serving process is redeemed once on any, a rotated refresh token is refused everywhere and an admin change
    applies everywhere. Reads catch up first (:meth:`grants_view`, :meth:`users`). The clients are the fixtures'
    (the same in every process)."""

    def __init__(self, ctx: SimulatorContext, fixtures: PscFixtures, settings: Settings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.issuer = ctx.http_base + REALM
        self.keys = KeyRing(settings.key_grace_seconds, settings.rsa_bits, state=ctx.state)
        self._fixture_users = fixtures.users
        self.clients: dict[str, Client] = {c.client_id: c for c in fixtures.clients}
        self.professionals: dict[str, Professional] = {}
        self.next_login: dict[str | None, str] = {}
        self._reset_users()
        self.pending: dict[str, AuthRequest] = {}
        self.codes: dict[str, CodeGrant] = {}
        self.access: dict[str, AccessRecord] = {}
        self.refresh: dict[str, RefreshRecord] = {}
        self.sessions: dict[str, Session] = {}
        # each session's access and refresh tokens (sets kept as dict keys): a revocation (logout, code replay,
        # refresh reuse) goes through the session's tokens, not every live token of the realm (issue 18); kept by
        # apply (tokens, purge), restore and reset
        self._tokens_of: dict[str, tuple[dict[str, None], dict[str, None]]] = {}
        self.issued = 0
        self._users = ctx.state.replica(
            USERS_STREAM, self._apply_users, self._reset_users, self.capture_users, self.restore_users
        )
        self._grants = ctx.state.replica(
            GRANTS_STREAM, self._apply_grants, self._reset_grants, self.capture_grants, self.restore_grants
        )

    # -- professionals and next login (stream psc.users) ----------------------------------------------------------
    def users(self) -> list[Professional]:
        with self._users.locked():
            return list(self.professionals.values())

    def user(self, ref: str) -> Professional | None:
        with self._users.locked():
            return self._find_user(ref)

    def _find_user(self, ref: str) -> Professional | None:
        wanted = ref.strip().casefold()
        found = self.professionals.get(wanted)
        if found is not None:
            return found
        for user in self.professionals.values():
            if wanted in (user.id_nat_ps.casefold(), user.display_name.casefold(), (user.rpps or "-")):
                return user
        return None

    def put_user(self, user: Professional) -> None:
        """Create or replace a professional (by login)."""
        self._users.do({"op": "put_user", "user": user.fixture()})
        self.record("admin.user", Outcome.ACCEPTED, actor="admin", user=user, details={"login": user.login})

    def client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def set_next_login(self, login: str | None, client_id: str | None = None) -> None:
        """Pre-select who authenticates at the next authorizations of ``client_id`` (all clients when None)."""
        self._users.do({"op": "next_login", "client_id": client_id, "login": login})
        self.record("admin.next_login", Outcome.ACCEPTED, actor="admin", client_id=client_id, details={"login": login})

    def preselected(self, client_id: str) -> str | None:
        """The next login set for ``client_id``, else for every client."""
        with self._users.locked():
            return self.next_login.get(client_id, self.next_login.get(None))

    def _apply_users(self, op: Mapping[str, Any]) -> None:
        action = op["op"]
        if action == "put_user":
            user = Professional.from_fixture(op["user"])
            self.professionals[user.login.casefold()] = user
        elif action == "next_login":
            login, client_id = op["login"], op["client_id"]
            if login is None:
                self.next_login.pop(client_id, None)
            elif self._find_user(login) is None:
                raise LookupError(f"professionnel inconnu du simulateur PSC: {login!r}")
            else:
                self.next_login[client_id] = login
        else:
            raise ValueError(f"opération inconnue / unknown operation: {action}")

    def _reset_users(self) -> None:
        self.professionals = {u.login.casefold(): u for u in self._fixture_users}
        self.next_login = {}

    def snapshot_users(self) -> dict[str, Any]:
        """The professionals (fixtures included, as replaced) and the next logins as JSON (harness.core.state
        snapshot)."""
        return self.capture_users().build()

    def capture_users(self) -> Deferred:
        """:meth:`snapshot_users` in two steps: under the replica's lock (like :meth:`restore_users`), a copy of
        both dictionaries — a :class:`Professional` is frozen, so its reference suffices —; the JSON built by
        :meth:`Deferred.build`, which :class:`~harness.core.state.Replica` runs outside its locks."""
        professionals, next_login = list(self.professionals.items()), list(self.next_login.items())

        def build() -> dict[str, Any]:
            return {
                "professionals": [[key, user.fixture()] for key, user in professionals],
                "next_login": [[client_id, login] for client_id, login in next_login],
            }

        return Deferred(build)

    def restore_users(self, state: Mapping[str, Any]) -> None:
        self.professionals = {key: Professional.from_fixture(user) for key, user in state["professionals"]}
        self.next_login = {client_id: login for client_id, login in state["next_login"]}

    def rotate_keys(self) -> list[str]:
        kids = self.keys.rotate()
        self.record("admin.rotate_keys", Outcome.ACCEPTED, actor="admin", details={"new_kids": kids})
        return kids

    # -- pending requests, sessions, codes and tokens (stream psc.grants) -----------------------------------------
    def grants_view(self) -> AbstractContextManager[None]:
        """Hold the grants' state, caught up, for a consistent read of several of its values."""
        return self._grants.locked()

    def session_active(self, sid: str) -> bool:
        with self._grants.locked():
            session = self.sessions.get(sid)
            return bool(session and session.active)

    def hold_request(self, request_id: str, auth: AuthRequest) -> None:
        """Keep an authorization request while the login page is shown (the 1000 most recent)."""
        op = {"op": "hold", "request_id": request_id, "request": auth.as_op()}
        self._grants.do(op, session=self._session_of(auth.client.client_id))

    def release_request(self, request_id: str) -> AuthRequest | None:
        """The held request ``request_id``, forgotten (``None``: unknown or already released)."""
        try:
            auth: AuthRequest = self._grants.do({"op": "release", "request_id": request_id})
        except UnknownGrant:
            return None
        return auth

    def open_session(self, session: Session, code: str, grant: CodeGrant) -> None:
        """Record a login: its session and the authorization code that will open it to the client."""
        self._grants.do(
            {
                "op": "login",
                "sid": session.sid,
                "user": session.user.fixture(),
                "client_id": session.client_id,
                "auth_time": session.auth_time,
                "acr": session.acr,
                "nonce": session.nonce,
                "code": code,
                "request": grant.request.as_op(),
                "expires_at": grant.expires_at,
            },
            session=self._session_of(session.client_id),
        )

    def redeem(self, code: str, client_id: str) -> tuple[CodeGrant, Session | None, dict[str, int] | None]:
        """Use ``code`` (presented by ``client_id``) once: its grant, its session and, for a replay, the tokens the
        revocation of its session found active (RFC 6749 §4.1.2, RFC 9700 §4.5). Raises :class:`UnknownGrant`."""
        result: tuple[CodeGrant, Session | None, dict[str, int] | None] = self._grants.do(
            {"op": "redeem", "code": code}, session=self._session_of(client_id)
        )
        return result

    def rotate_refresh(self, token: str, client_id: str) -> tuple[RefreshRecord, Session | None, str]:
        """Use refresh token ``token`` for ``client_id``: its record, its session and what happened — ``rotated``
        (usable, now spent), ``other_client``, ``reused`` (a rotated token again: the session is revoked, RFC 9700
        §4.14.2) or ``revoked``. Raises :class:`UnknownGrant`."""
        result: tuple[RefreshRecord, Session | None, str] = self._grants.do(
            {"op": "refresh", "token": token, "client_id": client_id}, session=self._session_of(client_id)
        )
        return result

    def add_tokens(
        self, session: Session, client_id: str, scope: tuple[str, ...], jti: str, refresh: str, now: float
    ) -> None:
        """Record an issued access / refresh token pair; raises :class:`TokenInvalid` (nothing recorded) when the
        session ended meanwhile (a replay or a logout in another request)."""
        s = self.settings
        self._grants.do(
            {
                "op": "tokens",
                "sid": session.sid,
                "client_id": client_id,
                "scope": list(scope),
                "jti": jti,
                "access_exp": int(now) + s.access_ttl,
                "refresh": refresh,
                "refresh_exp": now + s.refresh_ttl,
                "now": now,
            },
            session=self._session_of(client_id),
        )

    def revoke_session(self, sid: str) -> dict[str, int]:
        """End session ``sid`` and revoke every token issued in it: the whole grant family of the authorization code
        that opened it, refreshed tokens included. Returns how many tokens were still active."""
        counts: dict[str, int] = self._grants.do({"op": "revoke", "sid": sid})
        return counts

    def _session_of(self, client_id: str) -> str | None:
        """The open test session holding this PSC client (issue 19 item 4), which the operation belongs to."""
        return self.ctx.session_of("client", client_id)

    def _auth_request(self, raw: Mapping[str, Any]) -> AuthRequest:
        client = self.clients.get(raw["client_id"])
        if client is None:
            raise UnknownGrant(f"client inconnu: {raw['client_id']}")
        return AuthRequest(
            client,
            raw["redirect_uri"],
            tuple(raw["scope"]),
            raw["state"],
            raw["nonce"],
            raw["code_challenge"],
            raw["code_challenge_method"],
            tuple(raw["acr_values"]),
        )

    def _apply_grants(self, op: Mapping[str, Any]) -> Any:
        """Apply one operation of the grants' stream (deterministic; raises before changing anything)."""
        action = op["op"]
        if action == "hold":
            auth = self._auth_request(op["request"])
            if len(self.pending) >= 1000 and op["request_id"] not in self.pending:
                self.pending.pop(next(iter(self.pending)))
            self.pending[op["request_id"]] = auth
            return None
        if action == "release":
            if op["request_id"] not in self.pending:
                raise UnknownGrant("demande d'authentification inconnue")
            return self.pending.pop(op["request_id"])
        if action == "login":
            auth = self._auth_request(op["request"])
            user = Professional.from_fixture(op["user"])
            sid = op["sid"]
            self.sessions[sid] = Session(sid, user, op["client_id"], op["auth_time"], op["acr"], nonce=op["nonce"])
            self.codes[op["code"]] = CodeGrant(auth, sid, op["expires_at"])
            return None
        if action == "redeem":
            grant = self.codes.get(op["code"])
            if grant is None:
                raise UnknownGrant("code d'autorisation inconnu")
            replay = grant.used
            grant.used = True
            counts = self._revoke(grant.sid) if replay else None
            return grant, self.sessions.get(grant.sid), counts
        if action == "refresh":
            record = self.refresh.get(op["token"])
            if record is None:
                raise UnknownGrant("refresh_token inconnu")
            session = self.sessions.get(record.sid)
            if record.client_id != op["client_id"]:
                return record, session, "other_client"
            if record.active:
                record.active, record.rotated = False, True
                return record, session, "rotated"
            if record.rotated:
                self._revoke(record.sid)
                return record, session, "reused"
            return record, session, "revoked"
        if action == "tokens":
            session = self.sessions.get(op["sid"])
            # Grants run concurrently (worker threads, processes): a replay or a logout elsewhere may have ended the
            # session since the grant checked it; then nothing is issued (RFC 9700 §4.5, the family stays revoked).
            if session is None or not session.active:
                raise TokenInvalid("session terminée pendant l'émission des jetons")
            scope, client_id = tuple(op["scope"]), op["client_id"]
            self.access[op["jti"]] = AccessRecord(session.sid, client_id, scope, op["access_exp"])
            self.refresh[op["refresh"]] = RefreshRecord(session.sid, client_id, scope, op["refresh_exp"])
            access, refresh = self._tokens_of.setdefault(session.sid, ({}, {}))
            access[op["jti"]], refresh[op["refresh"]] = None, None
            self.issued += 1
            if self.issued % PURGE_EVERY == 0:
                self._purge(op["now"])
            return None
        if action == "revoke":
            return self._revoke(op["sid"])
        raise ValueError(f"opération inconnue / unknown operation: {action}")

    def _reset_grants(self) -> None:
        self.pending, self.codes, self.access, self.refresh, self.sessions = {}, {}, {}, {}, {}
        self._tokens_of = {}
        self.issued = 0

    def snapshot_grants(self) -> dict[str, Any]:
        """Pending requests, sessions, codes, access and refresh tokens as JSON (harness.core.state snapshot), each
        in insertion order."""
        return self.capture_grants().build()

    def capture_grants(self) -> Deferred:
        """:meth:`snapshot_grants` in two steps: under the replica's lock (like :meth:`restore_grants`), a copy of
        the dictionaries and, of each record, the reference and the fields ``apply`` changes in place
        (``Session.active``, ``CodeGrant.used``, ``AccessRecord.active``, ``RefreshRecord.active`` and
        ``rotated``; their other fields are never reassigned, an :class:`AuthRequest` and a
        :class:`Professional` are frozen); the JSON built by :meth:`Deferred.build`, which
        :class:`~harness.core.state.Replica` runs outside its locks (issue 18: the lock was held for the JSON of
        every token)."""
        pending = list(self.pending.items())
        sessions = [(s, s.active) for s in self.sessions.values()]
        codes = [(code, g, g.used) for code, g in self.codes.items()]
        access = [(jti, a, a.active) for jti, a in self.access.items()]
        refresh = [(token, r, r.active, r.rotated) for token, r in self.refresh.items()]
        issued = self.issued

        def build() -> dict[str, Any]:
            return {
                "pending": [[rid, auth.as_op()] for rid, auth in pending],
                "sessions": [
                    [s.sid, s.user.fixture(), s.client_id, s.auth_time, s.acr, active, s.nonce]
                    for s, active in sessions
                ],
                "codes": [[code, g.request.as_op(), g.sid, g.expires_at, used] for code, g, used in codes],
                "access": [[jti, a.sid, a.client_id, list(a.scope), a.exp, active] for jti, a, active in access],
                "refresh": [
                    [token, r.sid, r.client_id, list(r.scope), r.exp, r.nonce_free, active, rotated]
                    for token, r, active, rotated in refresh
                ],
                "issued": issued,
            }

        return Deferred(build)

    def restore_grants(self, state: Mapping[str, Any]) -> None:
        self.pending = {rid: self._auth_request(raw) for rid, raw in state["pending"]}
        self.sessions = {
            sid: Session(sid, Professional.from_fixture(user), client_id, auth_time, acr, active, nonce)
            for sid, user, client_id, auth_time, acr, active, nonce in state["sessions"]
        }
        self.codes = {
            code: CodeGrant(self._auth_request(raw), sid, expires_at, used)
            for code, raw, sid, expires_at, used in state["codes"]
        }
        self.access = {
            jti: AccessRecord(sid, client_id, tuple(scope), exp, active)
            for jti, sid, client_id, scope, exp, active in state["access"]
        }
        self.refresh = {
            token: RefreshRecord(sid, client_id, tuple(scope), exp, nonce_free, active, rotated)
            for token, sid, client_id, scope, exp, nonce_free, active, rotated in state["refresh"]
        }
        self.issued = int(state["issued"])
        self._index_tokens()

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
        session: str | None = None,
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
            session=session,
        )

    def _purge(self, now: float) -> None:
        """Forget what expired (at the time carried by the operation that triggers it)."""
        self.codes = {c: g for c, g in self.codes.items() if g.expires_at > now - 600}
        self.access = {j: a for j, a in self.access.items() if a.exp > now - 600}
        self.refresh = {r: g for r, g in self.refresh.items() if g.exp > now}
        live = {a.sid for a in self.access.values()} | {r.sid for r in self.refresh.values()}
        self.sessions = {sid: sess for sid, sess in self.sessions.items() if sid in live or sess.auth_time > now - 3600}
        self._index_tokens()

    def _index_tokens(self) -> None:
        """Each session's tokens again, from ``access`` and ``refresh`` (after a purge or a restore)."""
        self._tokens_of = {}
        for jti, rec in self.access.items():
            self._tokens_of.setdefault(rec.sid, ({}, {}))[0][jti] = None
        for token, ref in self.refresh.items():
            self._tokens_of.setdefault(ref.sid, ({}, {}))[1][token] = None

    def _revoke(self, sid: str) -> dict[str, int]:
        counts = {"access_tokens": 0, "refresh_tokens": 0}
        if sid in self.sessions:
            self.sessions[sid].active = False
        access, refresh = self._tokens_of.get(sid, ({}, {}))
        for rec in (self.access.get(jti) for jti in access):
            if rec is not None and rec.sid == sid:  # a token id issued again for another session is no longer its
                counts["access_tokens"] += rec.active
                rec.active = False
        for ref in (self.refresh.get(token) for token in refresh):
            if ref is not None and ref.sid == sid:
                counts["refresh_tokens"] += ref.active
                ref.active = False
        return counts
