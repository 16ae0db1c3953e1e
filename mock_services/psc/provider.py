"""The Pro Santé Connect OpenID provider: endpoints, grants, tokens.

Specifications followed: OpenID Connect Core 1.0 (incorporating errata set 2) and Discovery 1.0; OpenID Connect
RP-Initiated Logout 1.0; RFC 6749 (OAuth 2.0) and RFC 6750 (bearer tokens); RFC 7636 (PKCE, S256 only);
RFC 7662 (introspection); RFC 7519 / 7515 / 7517 (JWT, JWS, JWK) through joserfc; RFC 9207 (``iss`` in the
authorization response); RFC 9700 (OAuth 2.0 Security BCP: exact redirect URI matching, PKCE downgrade
protection, single-use codes with revocation on replay, refresh-token rotation with reuse detection).

PSC specifics simulated: the realm path ``/auth/realms/esante-wallet`` and its ``wallet-openid-configuration``
discovery document, ``scope=openid scope_all`` and ``acr_values=eidas1`` required, the ``acr`` claim in the id
token, and the PSC userinfo claims (:mod:`mock_services.psc.model`).

Every request is journaled (service ``psc``, operations ``oidc.*`` and ``admin.*``) before the answer is sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

from joserfc import jws, jwt
from joserfc.errors import ExpiredTokenError, JoseError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from harness.core.journal import Direction, Exchange, Outcome
from harness.host.simulator import Fault, SimulatorContext
from mock_services.psc import pages
from mock_services.psc.keys import KeyRing
from mock_services.psc.model import Client, FixtureError, Professional, PscFixtures

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
FAULT_KINDS = (
    FAULT_DOWN,
    FAULT_CODE_EXPIRED,
    FAULT_WRONG_STATE,
    FAULT_ACR,
    FAULT_NO_ACTIVITY,
    FAULT_INACTIVE,
    FAULT_WRONG_AUDIENCE,
)

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_CHALLENGE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@dataclass(frozen=True)
class Settings:
    """Simulator settings (``[services.psc]`` in the harness configuration)."""

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

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Settings:
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


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


@dataclass
class CodeGrant:
    request: AuthRequest
    sid: str
    expires_at: float
    used: bool = False
    access: list[str] = field(default_factory=list)  # jti of the tokens issued from this code
    refresh: list[str] = field(default_factory=list)


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


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


def _is_pkce_value(value: str) -> bool:
    return 43 <= len(value) <= 128 and set(value) <= _CHALLENGE_CHARS


def _with_query(uri: str, params: Mapping[str, str | None]) -> str:
    clean = {k: v for k, v in params.items() if v is not None}
    return uri + ("&" if "?" in uri else "?") + urlencode(clean)


class Provider:
    """State and ASGI routes of the simulated Pro Santé Connect realm."""

    def __init__(self, ctx: SimulatorContext, fixtures: PscFixtures, settings: Settings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.issuer = ctx.http_base + REALM
        self.keys = KeyRing(settings.key_grace_seconds, settings.rsa_bits)
        self._lock = threading.RLock()
        self._users: dict[str, Professional] = {u.login.casefold(): u for u in fixtures.users}
        self._clients: dict[str, Client] = {c.client_id: c for c in fixtures.clients}
        self._next_login: dict[str | None, str] = {}
        self._pending: dict[str, AuthRequest] = {}
        self._codes: dict[str, CodeGrant] = {}
        self._access: dict[str, AccessRecord] = {}
        self._refresh: dict[str, RefreshRecord] = {}
        self._sessions: dict[str, Session] = {}
        self._issued = 0

    # ------------------------------------------------------------------------------------------------------------
    # administration (steps call these directly; the admin endpoints call them too)

    def users(self) -> list[Professional]:
        with self._lock:
            return list(self._users.values())

    def user(self, ref: str) -> Professional | None:
        wanted = ref.strip().casefold()
        with self._lock:
            found = self._users.get(wanted)
            if found is not None:
                return found
            for user in self._users.values():
                if wanted in (user.id_nat_ps.casefold(), user.display_name.casefold(), (user.rpps or "-")):
                    return user
        return None

    def put_user(self, user: Professional) -> None:
        """Create or replace a professional (by login)."""
        with self._lock:
            self._users[user.login.casefold()] = user
        self._record("admin.user", Outcome.ACCEPTED, actor="admin", user=user, details={"login": user.login})

    def client(self, client_id: str) -> Client | None:
        with self._lock:
            return self._clients.get(client_id)

    def set_next_login(self, login: str | None, client_id: str | None = None) -> None:
        """Pre-select who authenticates at the next authorizations of ``client_id`` (all clients when None)."""
        with self._lock:
            if login is None:
                self._next_login.pop(client_id, None)
            else:
                if self.user(login) is None:
                    raise LookupError(f"professionnel inconnu du simulateur PSC: {login!r}")
                self._next_login[client_id] = login
        self._record("admin.next_login", Outcome.ACCEPTED, actor="admin", client_id=client_id, details={"login": login})

    def rotate_keys(self) -> list[str]:
        kids = self.keys.rotate()
        self._record("admin.rotate_keys", Outcome.ACCEPTED, actor="admin", details={"new_kids": kids})
        return kids

    def session_active(self, sid: str) -> bool:
        with self._lock:
            session = self._sessions.get(sid)
            return bool(session and session.active)

    # ------------------------------------------------------------------------------------------------------------
    # journal

    def _record(
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
            Exchange(
                service=self.ctx.name,
                operation=operation,
                direction=Direction.FROM_DUI,
                outcome=outcome,
                actor=actor or client_id,
                essms=essms,
                error_code=error,
                error_message=message,
                payload=payload,
                payload_type=payload_type,
                details=info,
            )
        )

    # ------------------------------------------------------------------------------------------------------------
    # request plumbing

    def routes(self) -> list[Route]:
        g = self._guard
        table: list[tuple[str, str, Callable[[Request], Awaitable[Response]], tuple[str, ...]]] = [
            (REALM + "/.well-known/openid-configuration", "oidc.discovery", self.discovery, ("GET",)),
            (REALM + "/.well-known/wallet-openid-configuration", "oidc.discovery", self.discovery, ("GET",)),
            (PROTOCOL + "/auth", "oidc.authorize", self.authorize, ("GET", "POST")),
            (REALM + "/login-actions/authenticate", "oidc.login", self.login_action, ("POST",)),
            (PROTOCOL + "/token", "oidc.token", self.token, ("POST",)),
            (PROTOCOL + "/userinfo", "oidc.userinfo", self.userinfo, ("GET", "POST")),
            (PROTOCOL + "/token/introspect", "oidc.introspect", self.introspect, ("POST",)),
            (PROTOCOL + "/logout", "oidc.logout", self.logout, ("GET", "POST")),
            (PROTOCOL + "/certs", "oidc.jwks", self.certs, ("GET",)),
            ("/_admin/users", "admin.users", self.admin_users, ("GET",)),
            ("/_admin/users/{login}", "admin.user", self.admin_put_user, ("PUT",)),
            ("/_admin/next-login", "admin.next_login", self.admin_next_login, ("POST", "DELETE")),
            ("/_admin/rotate-keys", "admin.rotate_keys", self.admin_rotate, ("POST",)),
            ("/_admin/faults", "admin.fault", self.admin_fault, ("POST",)),
        ]
        # Every method reaches the guard, so that a wrong method is journaled too (405, not Starlette's silent one).
        every = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
        return [Route(path, g(op, handler, methods), methods=every) for path, op, handler, methods in table]

    def _guard(
        self, operation: str, handler: Callable[[Request], Awaitable[Response]], methods: tuple[str, ...]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wrong method, provider-down fault, protocol errors and unexpected failures: always journaled, never a crash."""

        async def endpoint(request: Request) -> Response:
            allowed = (*methods, "HEAD") if "GET" in methods else methods
            if request.method not in allowed:
                self._record(
                    operation,
                    Outcome.REJECTED,
                    error="invalid_request",
                    message=f"méthode {request.method} non permise",
                    details={"method": request.method},
                )
                return JSONResponse(
                    {"error": "invalid_request", "error_description": f"méthode {request.method} non permise"},
                    status_code=405,
                    headers={"Allow": ", ".join(methods), **_NO_STORE},
                )
            if not operation.startswith("admin.") and self.ctx.take_fault(FAULT_DOWN) is not None:
                self._record(
                    operation,
                    Outcome.REJECTED,
                    error="temporarily_unavailable",
                    message="panne simulée du fournisseur PSC",
                    details={"fault": FAULT_DOWN},
                )
                if operation in ("oidc.authorize", "oidc.login", "oidc.logout"):
                    return HTMLResponse(pages.down_page(), status_code=503, headers={"Retry-After": "30"})
                return JSONResponse(
                    {"error": "temporarily_unavailable", "error_description": "Pro Santé Connect indisponible"},
                    status_code=503,
                    headers={"Retry-After": "30", **_NO_STORE},
                )
            try:
                return await handler(request)
            except OAuthError as exc:
                self._record(
                    operation,
                    Outcome.REJECTED,
                    error=exc.error,
                    message=exc.description,
                    details={"method": request.method},
                )
                return self._error_json(exc)
            except Exception as exc:  # noqa: BLE001 - a simulator bug must still answer and be journaled
                self._record(
                    operation, Outcome.REJECTED, error="server_error", message=f"{type(exc).__name__}: {exc}"[:500]
                )
                return JSONResponse(
                    {"error": "server_error", "error_description": "erreur interne du simulateur"},
                    status_code=500,
                    headers=_NO_STORE,
                )

        return endpoint

    @staticmethod
    def _error_json(exc: OAuthError) -> JSONResponse:
        headers = dict(_NO_STORE)
        if exc.www_authenticate:
            headers["WWW-Authenticate"] = exc.www_authenticate
        return JSONResponse(
            {"error": exc.error, "error_description": exc.description}, status_code=exc.status, headers=headers
        )

    def _single(self, pairs: list[tuple[str, str]]) -> dict[str, str]:
        """Parameters as a dict: repeated or oversized parameters are invalid (RFC 6749 §3.1)."""
        params: dict[str, str] = {}
        for key, value in pairs:
            if key in params:
                raise OAuthError("invalid_request", f"paramètre répété: {key[:40]}")
            if len(value) > self.settings.max_param_chars or len(key) > 100:
                raise OAuthError("invalid_request", f"paramètre trop long: {key[:40]}")
            params[key] = value
        return params

    async def _form(self, request: Request) -> dict[str, str]:
        """The ``application/x-www-form-urlencoded`` body, bounded in size, strictly UTF-8."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "corps attendu en application/x-www-form-urlencoded")
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise OAuthError("invalid_request", f"corps de requête trop grand (> {limit} octets)", 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise OAuthError("invalid_request", f"corps de requête trop grand (> {limit} octets)", 413)
        try:
            text = bytes(body).decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise OAuthError("invalid_request", "corps de requête mal encodé (UTF-8 attendu)") from None
        return self._single(pairs)

    def _query(self, request: Request) -> dict[str, str]:
        raw = request.scope.get("query_string", b"")
        if len(raw) > self.settings.max_query_chars:
            raise OAuthError("invalid_request", "requête trop longue")
        try:
            pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise OAuthError("invalid_request", "paramètres mal encodés") from None
        return self._single(pairs)

    def _authenticate_client(self, request: Request, form: dict[str, str]) -> tuple[Client, str]:
        """Client authentication at the token and introspection endpoints (RFC 6749 §2.3.1)."""
        header = request.headers.get("authorization", "")
        basic = header[:6].lower() == "basic "
        challenge = 'Basic realm="esante-wallet"'
        if basic and "client_secret" in form:
            raise OAuthError("invalid_request", "une seule méthode d'authentification du client est permise")
        if basic:
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError(
                    "invalid_client", "en-tête Authorization Basic illisible", 401, www_authenticate=challenge
                ) from None
            raw_id, sep, raw_secret = decoded.partition(":")
            if not sep:
                raise OAuthError(
                    "invalid_client", "en-tête Authorization Basic illisible", 401, www_authenticate=challenge
                )
            client_id, secret, method = (
                unquote(raw_id.replace("+", " ")),
                unquote(raw_secret.replace("+", " ")),
                "client_secret_basic",
            )
            if "client_id" in form and form["client_id"] != client_id:
                raise OAuthError(
                    "invalid_client",
                    "client_id différent de celui de l'authentification",
                    401,
                    www_authenticate=challenge,
                )
        elif "client_secret" in form:
            client_id, secret, method = form.get("client_id", ""), form["client_secret"], "client_secret_post"
        else:
            raise OAuthError("invalid_client", "authentification du client requise", 401, www_authenticate=challenge)
        client = self.client(client_id)
        ok = client is not None and hmac.compare_digest(client.client_secret.encode(), secret.encode())
        if not ok or client is None:
            raise OAuthError(
                "invalid_client",
                "client inconnu ou secret invalide",
                401,
                www_authenticate=challenge if basic else None,
            )
        if method not in client.auth_methods:
            raise OAuthError(
                "invalid_client",
                f"méthode {method} non autorisée pour ce client",
                401,
                www_authenticate=challenge if basic else None,
            )
        return client, method

    # ------------------------------------------------------------------------------------------------------------
    # tokens

    def _sign(self, claims: dict[str, Any], alg: str) -> tuple[str, str]:
        key = self.keys.current(alg)
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key.key, algorithms=[alg]), key.kid

    def verify(self, value: str, *, allow_expired: bool = False) -> dict[str, Any]:
        """Verify a JWT this provider issued: known ``kid``, the key's own algorithm, signature, ``iss``, times."""
        if not value or len(value) > 16384:
            raise TokenInvalid("jeton absent ou trop long")
        try:
            header = jws.extract_compact(value.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeEncodeError) as exc:
            raise TokenInvalid(f"jeton illisible: {exc}") from None
        kid, alg = header.get("kid"), header.get("alg")
        key = self.keys.find(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenInvalid("kid inconnu")
        if alg != key.alg:
            raise TokenInvalid(f"algorithme {alg!r} refusé pour cette clé")
        try:
            claims = dict(jwt.decode(value, key.key, algorithms=[key.alg]).claims)
        except (JoseError, ValueError) as exc:
            raise TokenInvalid(f"signature invalide: {exc}") from None
        checked = {k: v for k, v in claims.items() if not (allow_expired and k == "exp")}
        registry = jwt.JWTClaimsRegistry(
            leeway=self.settings.leeway,
            iss={"essential": True, "value": self.issuer},
            sub={"essential": True},
            iat={"essential": True},
            **({} if allow_expired else {"exp": {"essential": True}}),
        )
        try:
            registry.validate(checked)
        except ExpiredTokenError:
            raise TokenInvalid("jeton expiré") from None
        except (JoseError, ValueError, TypeError) as exc:
            raise TokenInvalid(f"revendications invalides: {exc}") from None
        if allow_expired and not isinstance(claims.get("exp"), int):
            raise TokenInvalid("exp absent")
        return claims

    def _issue(
        self,
        client: Client,
        session: Session,
        scope: tuple[str, ...],
        *,
        nonce: str | None,
        audience: str | None = None,
    ) -> tuple[dict[str, Any], str, str]:
        """Access token (JWT), id token, refresh token for a session. Returns (response, jti, refresh)."""
        now = int(time.time())
        s = self.settings
        jti = secrets.token_urlsafe(16)
        access_claims = {
            "iss": self.issuer,
            "sub": session.user.sub,
            "aud": client.client_id,
            "azp": client.client_id,
            "exp": now + s.access_ttl,
            "iat": now,
            "jti": jti,
            "typ": "Bearer",
            "scope": " ".join(scope),
            "sid": session.sid,
            "acr": session.acr,
            "preferred_username": session.user.id_nat_ps,
        }
        access_token, _ = self._sign(access_claims, "RS256")
        id_claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": session.user.sub,
            "aud": audience or client.client_id,
            "azp": client.client_id,
            "exp": now + s.id_ttl,
            "iat": now,
            "auth_time": session.auth_time,
            "acr": session.acr,
            "sid": session.sid,
            "typ": "ID",
            "preferred_username": session.user.id_nat_ps,
            "at_hash": self._at_hash(access_token, client.id_token_alg),
        }
        if nonce is not None:
            id_claims["nonce"] = nonce
        id_token, kid = self._sign(id_claims, client.id_token_alg)
        refresh = secrets.token_urlsafe(32)
        with self._lock:
            self._access[jti] = AccessRecord(session.sid, client.client_id, scope, now + s.access_ttl)
            self._refresh[refresh] = RefreshRecord(session.sid, client.client_id, scope, time.time() + s.refresh_ttl)
            self._issued += 1
            if self._issued % 512 == 0:
                self._purge()
        response = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": s.access_ttl,
            "refresh_token": refresh,
            "refresh_expires_in": s.refresh_ttl,
            "id_token": id_token,
            "scope": " ".join(scope),
            "session_state": session.sid,
        }
        return response, jti, kid

    @staticmethod
    def _at_hash(access_token: str, alg: str) -> str:
        digest = hashlib.sha256(access_token.encode("ascii")).digest()  # RS256 and ES256 both use SHA-256
        return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")

    def _purge(self) -> None:
        now = time.time()
        self._codes = {c: g for c, g in self._codes.items() if g.expires_at > now - 600}
        self._access = {j: a for j, a in self._access.items() if a.exp > now - 600}
        self._refresh = {r: g for r, g in self._refresh.items() if g.exp > now}
        live = {a.sid for a in self._access.values()} | {r.sid for r in self._refresh.values()}
        self._sessions = {
            sid: sess for sid, sess in self._sessions.items() if sid in live or sess.auth_time > now - 3600
        }

    def _revoke_session(self, sid: str) -> None:
        with self._lock:
            if sid in self._sessions:
                self._sessions[sid].active = False
            for rec in self._access.values():
                if rec.sid == sid:
                    rec.active = False
            for ref in self._refresh.values():
                if ref.sid == sid:
                    ref.active = False

    # ------------------------------------------------------------------------------------------------------------
    # endpoints

    def discovery_document(self) -> dict[str, Any]:
        base = self.issuer + "/protocol/openid-connect"
        return {
            "issuer": self.issuer,
            "authorization_endpoint": base + "/auth",
            "token_endpoint": base + "/token",
            "userinfo_endpoint": base + "/userinfo",
            "introspection_endpoint": base + "/token/introspect",
            "end_session_endpoint": base + "/logout",
            "jwks_uri": base + "/certs",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "scopes_supported": list(REQUIRED_SCOPES),
            "acr_values_supported": [REQUIRED_ACR],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "acr",
                "auth_time",
                "SubjectNameID",
                "preferred_username",
                "given_name",
                "family_name",
                "SubjectRole",
                "Secteur_Activite",
                "SubjectRefPro",
                "SubjectOrganization",
                "SubjectOrganizationID",
                "Palier_Authentification",
                "PSI_Locale",
                "otherIds",
            ],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "userinfo_signing_alg_values_supported": ["RS256", "ES256"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "ui_locales_supported": ["fr"],
        }

    async def discovery(self, request: Request) -> Response:
        self._record("oidc.discovery", Outcome.ACCEPTED, details={"path": request.url.path.rsplit("/", 1)[-1]})
        return JSONResponse(self.discovery_document())

    async def certs(self, request: Request) -> Response:
        jwks = self.keys.jwks()
        self._record("oidc.jwks", Outcome.ACCEPTED, details={"kids": [k["kid"] for k in jwks["keys"]]})
        return JSONResponse(jwks, headers={"Cache-Control": "max-age=60"})

    def _auth_error_page(
        self, error: str, description: str, client_id: str | None, details: dict[str, Any]
    ) -> Response:
        """Errors that must not redirect (unknown client, bad redirect_uri: RFC 6749 §4.1.2.1)."""
        self._record(
            "oidc.authorize", Outcome.REJECTED, client_id=client_id, error=error, message=description, details=details
        )
        return HTMLResponse(pages.error_page(error, description), status_code=400, headers=_NO_STORE)

    def _auth_error_redirect(
        self,
        req_client: Client,
        redirect_uri: str,
        state: str | None,
        error: str,
        description: str,
        details: dict[str, Any],
    ) -> Response:
        self._record(
            "oidc.authorize",
            Outcome.REJECTED,
            client_id=req_client.client_id,
            error=error,
            message=description,
            details={**details, "redirect_uri": redirect_uri},
        )
        location = _with_query(
            redirect_uri, {"error": error, "error_description": description, "state": state, "iss": self.issuer}
        )
        return RedirectResponse(location, status_code=302, headers=_NO_STORE)

    async def authorize(self, request: Request) -> Response:
        details: dict[str, Any] = {"method": request.method}
        try:
            params = await self._form(request) if request.method == "POST" else self._query(request)
        except OAuthError as exc:
            return self._auth_error_page(exc.error, exc.description, None, details)
        client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
        client = self.client(client_id) if client_id else None
        if client is None:
            return self._auth_error_page("invalid_request", "client_id absent ou inconnu", client_id or None, details)
        if redirect_uri not in client.redirect_uris:  # exact string match (RFC 9700 §2.1)
            details["redirect_uri"] = redirect_uri[:300]
            return self._auth_error_page(
                "invalid_request", "redirect_uri absente ou non enregistrée pour ce client", client_id, details
            )
        state = params.get("state")
        redirect_error = lambda error, text: self._auth_error_redirect(
            client, redirect_uri, state, error, text, details
        )  # noqa: E731
        if "request" in params:
            return redirect_error("request_not_supported", "le paramètre request n'est pas pris en charge")
        if "request_uri" in params:
            return redirect_error("request_uri_not_supported", "le paramètre request_uri n'est pas pris en charge")
        if params.get("response_type") != "code":
            return redirect_error("unsupported_response_type", "seul response_type=code est accepté")
        scope = tuple(params.get("scope", "").split())
        details["scope"] = " ".join(scope)
        missing = [s for s in REQUIRED_SCOPES if s not in scope]
        if missing:
            return redirect_error("invalid_scope", f"scope requis: openid scope_all (manque: {' '.join(missing)})")
        unknown = [s for s in scope if s not in REQUIRED_SCOPES]
        if unknown:
            return redirect_error("invalid_scope", f"scope inconnu: {' '.join(unknown)[:80]}")
        acr_values = tuple(params.get("acr_values", "").split())
        details["acr_values"] = " ".join(acr_values)
        if REQUIRED_ACR not in acr_values:
            return redirect_error("invalid_request", "acr_values=eidas1 est requis par Pro Santé Connect")
        challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
        details["pkce"] = method if challenge else None
        if challenge is None:
            if method is not None:
                return redirect_error("invalid_request", "code_challenge_method sans code_challenge")
            if client.require_pkce:
                return redirect_error("invalid_request", "PKCE requis: code_challenge (méthode S256) absent")
        else:
            if method != "S256":
                return redirect_error("invalid_request", "PKCE: seule la méthode S256 est acceptée")
            if len(challenge) != 43 or not _is_pkce_value(challenge):
                return redirect_error("invalid_request", "PKCE: code_challenge S256 mal formé")
        auth = AuthRequest(client, redirect_uri, scope, state, params.get("nonce"), challenge, method, acr_values)

        login, source = self._preselected(client, params.get("login_hint"))
        user = self.user(login) if login else None
        prompt = params.get("prompt", "").split()
        if user is None:
            if "none" in prompt:
                return redirect_error("login_required", "aucune authentification possible sans interaction")
            request_id = secrets.token_urlsafe(16)
            with self._lock:
                if len(self._pending) > 1000:
                    self._pending.pop(next(iter(self._pending)))
                self._pending[request_id] = auth
            self._record(
                "oidc.authorize",
                Outcome.ACCEPTED,
                client_id=client.client_id,
                details={**details, "login_page": True, "request_id": request_id},
            )
            action = self.ctx.http_base + REALM + "/login-actions/authenticate"
            return HTMLResponse(pages.login_page(action, request_id, client, self.users()), headers=_NO_STORE)
        return self._complete_login(auth, user, source, details)

    def _preselected(self, client: Client, login_hint: str | None) -> tuple[str | None, str]:
        if login_hint and self.user(login_hint) is not None:
            return login_hint, "login_hint"
        with self._lock:
            if client.client_id in self._next_login:
                return self._next_login[client.client_id], "next_login"
            if None in self._next_login:
                return self._next_login[None], "next_login"
        if client.default_login:
            return client.default_login, "client_default"
        return None, "page"

    async def login_action(self, request: Request) -> Response:
        """The login page's form: the operator chose a professional (or cancelled)."""
        form = await self._form(request)
        with self._lock:
            auth = self._pending.pop(form.get("request_id", ""), None)
        if auth is None:
            raise OAuthError("invalid_request", "demande d'authentification inconnue ou expirée")
        details: dict[str, Any] = {"method": "POST", "scope": " ".join(auth.scope), "pkce": auth.code_challenge_method}
        if form.get("cancel"):
            self._record(
                "oidc.login",
                Outcome.REJECTED,
                client_id=auth.client.client_id,
                error="access_denied",
                message="authentification annulée par l'utilisateur",
            )
            location = _with_query(
                auth.redirect_uri, {"error": "access_denied", "state": auth.state, "iss": self.issuer}
            )
            return RedirectResponse(location, status_code=302, headers=_NO_STORE)
        user = self.user(form.get("login", ""))
        if user is None:
            raise OAuthError("invalid_request", "professionnel inconnu")
        return self._complete_login(auth, user, "page", details, operation="oidc.login")

    def _complete_login(
        self,
        auth: AuthRequest,
        user: Professional,
        source: str,
        details: dict[str, Any],
        operation: str = "oidc.authorize",
    ) -> Response:
        faults: list[str] = []
        no_activity = self.ctx.take_fault(FAULT_NO_ACTIVITY)
        if no_activity is not None:
            user = user.without_activity_at(no_activity.params.get("finess"))
            faults.append(FAULT_NO_ACTIVITY)
        acr = user.acr
        if self.ctx.take_fault(FAULT_ACR) is not None:
            acr = LOWER_ACR
            faults.append(FAULT_ACR)
        now = time.time()
        session = Session(secrets.token_urlsafe(16), user, auth.client.client_id, int(now), acr)
        code = secrets.token_urlsafe(32)
        expires = now + self.settings.code_ttl
        if self.ctx.take_fault(FAULT_CODE_EXPIRED) is not None:
            expires = now - 1
            faults.append(FAULT_CODE_EXPIRED)
        state = auth.state
        if self.ctx.take_fault(FAULT_WRONG_STATE) is not None:
            state = "etat-altere-" + secrets.token_urlsafe(8)
            faults.append(FAULT_WRONG_STATE)
        with self._lock:
            self._sessions[session.sid] = session
            self._codes[code] = CodeGrant(auth, session.sid, expires)
        self._record(
            operation,
            Outcome.ACCEPTED,
            client_id=auth.client.client_id,
            user=user,
            details={
                **details,
                "login_source": source,
                "acr": acr,
                "sid": session.sid,
                "faults": faults,
                "nonce": auth.nonce is not None,
                "state": auth.state is not None,
            },
        )
        location = _with_query(auth.redirect_uri, {"code": code, "state": state, "iss": self.issuer})
        return RedirectResponse(location, status_code=302, headers=_NO_STORE)

    async def token(self, request: Request) -> Response:
        form = await self._form(request)
        client, method = self._authenticate_client(request, form)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type absent")
        if grant_type == "authorization_code":
            return self._code_grant(client, method, form)
        if grant_type == "refresh_token":
            return self._refresh_grant(client, method, form)
        raise OAuthError("unsupported_grant_type", f"grant_type non pris en charge: {grant_type[:40]}")

    def _token_error(
        self, client: Client, error: str, description: str, details: dict[str, Any], user: Professional | None = None
    ) -> Response:
        self._record(
            "oidc.token",
            Outcome.REJECTED,
            client_id=client.client_id,
            user=user,
            error=error,
            message=description,
            details=details,
        )
        return JSONResponse({"error": error, "error_description": description}, status_code=400, headers=_NO_STORE)

    def _code_grant(self, client: Client, method: str, form: dict[str, str]) -> Response:
        details: dict[str, Any] = {"grant_type": "authorization_code", "auth_method": method}
        code = form.get("code")
        if not code:
            raise OAuthError("invalid_request", "code absent")
        now = time.time()
        with self._lock:
            grant = self._codes.get(code)
            replay = grant is not None and grant.used
            if grant is not None:
                grant.used = True
        if grant is None:
            return self._token_error(client, "invalid_grant", "code d'autorisation inconnu", details)
        session = self._sessions.get(grant.sid)
        user = session.user if session else None
        if replay:  # RFC 6749 §4.1.2 / RFC 9700 §4.5: deny, and revoke what the code gave
            with self._lock:
                for jti in grant.access:
                    self._access[jti].active = False
                for ref in grant.refresh:
                    self._refresh[ref].active = False
            return self._token_error(
                client,
                "invalid_grant",
                "code d'autorisation déjà utilisé (jetons révoqués)",
                {**details, "replay": True},
                user,
            )
        if grant.request.client.client_id != client.client_id:
            return self._token_error(client, "invalid_grant", "code délivré à un autre client", details, user)
        if grant.expires_at <= now:
            return self._token_error(client, "invalid_grant", "code d'autorisation expiré", details, user)
        if form.get("redirect_uri") != grant.request.redirect_uri:
            return self._token_error(
                client, "invalid_grant", "redirect_uri différente de celle de la demande", details, user
            )
        verifier = form.get("code_verifier")
        if grant.request.code_challenge is None:
            if verifier is not None:  # PKCE downgrade (RFC 9700 §2.1.1)
                return self._token_error(
                    client, "invalid_grant", "code_verifier sans code_challenge initial", details, user
                )
        else:
            if verifier is None or not _is_pkce_value(verifier):
                return self._token_error(
                    client, "invalid_grant", "code_verifier absent ou mal formé (PKCE)", details, user
                )
            if not hmac.compare_digest(_s256(verifier), grant.request.code_challenge):
                return self._token_error(
                    client, "invalid_grant", "code_verifier ne correspond pas au code_challenge (PKCE)", details, user
                )
            details["pkce"] = "S256"
        if session is None or not session.active:
            return self._token_error(client, "invalid_grant", "session terminée", details, user)
        audience = None
        if self.ctx.take_fault(FAULT_WRONG_AUDIENCE) is not None:
            audience = "autre-fournisseur-de-service"
            details["faults"] = [FAULT_WRONG_AUDIENCE]
        response, jti, kid = self._issue(
            client, session, grant.request.scope, nonce=grant.request.nonce, audience=audience
        )
        with self._lock:
            grant.access.append(jti)
            grant.refresh.append(response["refresh_token"])
        details.update(
            {
                "sid": session.sid,
                "acr": session.acr,
                "alg": client.id_token_alg,
                "kid": kid,
                "aud": audience or client.client_id,
            }
        )
        self._record("oidc.token", Outcome.ACCEPTED, client_id=client.client_id, user=session.user, details=details)
        return JSONResponse(response, headers=_NO_STORE)

    def _refresh_grant(self, client: Client, method: str, form: dict[str, str]) -> Response:
        details: dict[str, Any] = {"grant_type": "refresh_token", "auth_method": method}
        token = form.get("refresh_token")
        if not token:
            raise OAuthError("invalid_request", "refresh_token absent")
        with self._lock:
            record = self._refresh.get(token)
            session = self._sessions.get(record.sid) if record else None
            usable = record is not None and record.active and record.client_id == client.client_id
            if usable and record is not None:
                record.active, record.rotated = False, True
        user = session.user if session else None
        if record is None:
            return self._token_error(client, "invalid_grant", "refresh_token inconnu", details)
        if record.client_id != client.client_id:
            return self._token_error(client, "invalid_grant", "refresh_token délivré à un autre client", details, user)
        if not usable:
            if record.rotated:  # reuse of a rotated refresh token: revoke the whole session (RFC 9700 §4.14.2)
                self._revoke_session(record.sid)
                details["reuse"] = True
            return self._token_error(client, "invalid_grant", "refresh_token déjà utilisé ou révoqué", details, user)
        if record.exp <= time.time():
            return self._token_error(client, "invalid_grant", "refresh_token expiré", details, user)
        if session is None or not session.active:
            return self._token_error(client, "invalid_grant", "session terminée", details, user)
        scope = record.scope
        if "scope" in form:
            asked = tuple(form["scope"].split())
            if not set(asked) <= set(record.scope):
                return self._token_error(client, "invalid_scope", "scope plus large que celui accordé", details, user)
            scope = asked or record.scope
        response, _, kid = self._issue(client, session, scope, nonce=None)
        details.update({"sid": session.sid, "acr": session.acr, "alg": client.id_token_alg, "kid": kid})
        self._record("oidc.token", Outcome.ACCEPTED, client_id=client.client_id, user=session.user, details=details)
        return JSONResponse(response, headers=_NO_STORE)

    def _bearer_session(self, request: Request, form: dict[str, str]) -> tuple[dict[str, Any], AccessRecord, Session]:
        header = request.headers.get("authorization", "")
        realm = 'Bearer realm="esante-wallet"'
        if header[:7].lower() == "bearer ":
            if "access_token" in form:
                raise OAuthError(
                    "invalid_request",
                    "jeton présenté deux fois",
                    400,
                    www_authenticate=f'{realm}, error="invalid_request"',
                )
            token = header[7:].strip()
        elif "access_token" in form:
            token = form["access_token"]
        else:
            raise OAuthError("invalid_token", "jeton d'accès absent", 401, www_authenticate=realm)
        invalid = f'{realm}, error="invalid_token"'
        try:
            claims = self.verify(token)
        except TokenInvalid as exc:
            raise OAuthError("invalid_token", str(exc), 401, www_authenticate=invalid) from None
        with self._lock:
            record = self._access.get(str(claims.get("jti")))
            session = self._sessions.get(record.sid) if record else None
        if claims.get("typ") != "Bearer" or record is None or session is None:
            raise OAuthError(
                "invalid_token", "ce n'est pas un jeton d'accès de ce fournisseur", 401, www_authenticate=invalid
            )
        if claims.get("aud") != record.client_id or claims.get("azp") != record.client_id:
            raise OAuthError("invalid_token", "audience du jeton invalide", 401, www_authenticate=invalid)
        if not record.active or not session.active:
            raise OAuthError("invalid_token", "jeton révoqué (session terminée)", 401, www_authenticate=invalid)
        if "openid" not in record.scope:
            raise OAuthError(
                "insufficient_scope",
                "scope openid requis",
                403,
                www_authenticate=f'{realm}, error="insufficient_scope"',
            )
        return claims, record, session

    async def userinfo(self, request: Request) -> Response:
        form = await self._form(request) if request.method == "POST" and request.headers.get("content-type") else {}
        if request.method == "GET":
            self._query(request)  # bounded and well-formed, even if unused
        _, record, session = self._bearer_session(request, form)
        client = self.client(record.client_id)
        claims = session.user.userinfo()
        wants_jwt = "application/jwt" in request.headers.get("accept", "") or bool(client and client.userinfo_alg)
        body = json.dumps(claims, ensure_ascii=False).encode("utf-8")
        details = {"format": "jwt" if wants_jwt else "json", "sid": session.sid}
        self._record(
            "oidc.userinfo",
            Outcome.ACCEPTED,
            client_id=record.client_id,
            user=session.user,
            details=details,
            payload=body,
            payload_type="application/json",
        )
        if wants_jwt and client is not None:
            alg = client.userinfo_alg or client.id_token_alg
            signed, _ = self._sign({**claims, "iss": self.issuer, "aud": client.client_id}, alg)
            return Response(signed, media_type="application/jwt", headers=_NO_STORE)
        return Response(body, media_type="application/json", headers=_NO_STORE)

    async def introspect(self, request: Request) -> Response:
        form = await self._form(request)
        client, method = self._authenticate_client(request, form)
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "token absent")
        details: dict[str, Any] = {"auth_method": method, "hint": form.get("token_type_hint")}
        answer: dict[str, Any] = {"active": False}
        user: Professional | None = None
        if self.ctx.take_fault(FAULT_INACTIVE) is not None:
            details["faults"] = [FAULT_INACTIVE]
        else:
            answer, user = self._introspection(token)
        details.update({"active": answer["active"], "token_type": answer.get("token_type")})
        self._record("oidc.introspect", Outcome.ACCEPTED, client_id=client.client_id, user=user, details=details)
        return JSONResponse(answer, headers=_NO_STORE)

    def _introspection(self, token: str) -> tuple[dict[str, Any], Professional | None]:
        with self._lock:
            ref = self._refresh.get(token)
            if ref is not None:
                session = self._sessions.get(ref.sid)
                if ref.active and ref.exp > time.time() and session is not None and session.active:
                    return (
                        {
                            "active": True,
                            "token_type": "refresh_token",
                            "client_id": ref.client_id,
                            "scope": " ".join(ref.scope),
                            "sub": session.user.sub,
                            "username": session.user.id_nat_ps,
                            "exp": int(ref.exp),
                            "iss": self.issuer,
                        },
                        session.user,
                    )
                return {"active": False}, None
        try:
            claims = self.verify(token)
        except TokenInvalid:
            return {"active": False}, None
        with self._lock:
            record = self._access.get(str(claims.get("jti")))
            session = self._sessions.get(record.sid) if record else None
        if (
            record is None
            or session is None
            or not record.active
            or not session.active
            or claims.get("typ") != "Bearer"
        ):
            return {"active": False}, None
        if claims.get("aud") != record.client_id or claims.get("azp") != record.client_id:
            return {"active": False}, None
        return (
            {
                "active": True,
                "token_type": "Bearer",
                "client_id": record.client_id,
                "scope": " ".join(record.scope),
                "username": session.user.id_nat_ps,
                "SubjectNameID": session.user.id_nat_ps,
                **{k: claims[k] for k in ("sub", "aud", "iss", "exp", "iat", "jti", "acr", "sid") if k in claims},
            },
            session.user,
        )

    async def logout(self, request: Request) -> Response:
        details: dict[str, Any] = {"method": request.method}

        def refuse(description: str, client_id: str | None = None) -> Response:
            self._record(
                "oidc.logout",
                Outcome.REJECTED,
                client_id=client_id,
                error="invalid_request",
                message=description,
                details=details,
            )
            return HTMLResponse(pages.error_page("invalid_request", description), status_code=400, headers=_NO_STORE)

        try:
            params = await self._form(request) if request.method == "POST" else self._query(request)
        except OAuthError as exc:
            return refuse(exc.description)
        hint, redirect, state = params.get("id_token_hint"), params.get("post_logout_redirect_uri"), params.get("state")
        client_id = params.get("client_id")
        claims: dict[str, Any] | None = None
        if hint:
            try:
                claims = self.verify(hint, allow_expired=True)
            except TokenInvalid as exc:
                return refuse(f"id_token_hint invalide: {exc}", client_id)
            if claims.get("typ") != "ID":
                return refuse("id_token_hint n'est pas un id token", client_id)
            aud = claims.get("aud")
            auds = aud if isinstance(aud, list) else [aud]
            if client_id and client_id not in auds:
                return refuse("id_token_hint délivré à un autre client", client_id)
            client_id = client_id or (str(claims.get("azp") or auds[0]))
        client = self.client(client_id) if client_id else None
        if redirect is not None:
            if client is None:
                return refuse("post_logout_redirect_uri sans client identifié (id_token_hint ou client_id)", client_id)
            if redirect not in client.post_logout_redirect_uris:
                details["post_logout_redirect_uri"] = redirect[:300]
                return refuse("post_logout_redirect_uri non enregistrée pour ce client", client_id)
        user: Professional | None = None
        if claims is not None:
            sid = str(claims.get("sid", ""))
            with self._lock:
                session = self._sessions.get(sid)
            if session is not None:
                user = session.user
                details["sid"] = sid
                details["was_active"] = session.active
                self._revoke_session(sid)
        details.update({"post_logout_redirect_uri": redirect, "state": state is not None, "id_token_hint": bool(hint)})
        self._record("oidc.logout", Outcome.ACCEPTED, client_id=client_id, user=user, details=details)
        if redirect is not None:
            return RedirectResponse(_with_query(redirect, {"state": state}), status_code=302, headers=_NO_STORE)
        text = f"Session de {user.display_name} terminée." if user else "Aucune session à terminer."
        return HTMLResponse(pages.logged_out_page(text), headers=_NO_STORE)

    # ------------------------------------------------------------------------------------------------------------
    # admin endpoints (JSON)

    async def _json_body(self, request: Request) -> Any:
        body = await request.body()
        if len(body) > self.settings.max_body_bytes:
            raise OAuthError("invalid_request", "corps trop grand", 413)
        try:
            return json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise OAuthError("invalid_request", "JSON invalide") from None

    async def admin_users(self, request: Request) -> Response:
        users = self.users()
        self._record("admin.users", Outcome.ACCEPTED, actor="admin", details={"count": len(users)})
        return JSONResponse({"users": [{"login": u.login, **u.userinfo()} for u in users]})

    async def admin_put_user(self, request: Request) -> Response:
        raw = await self._json_body(request)
        try:
            user = Professional.from_fixture(
                {**raw, "login": request.path_params["login"]} if isinstance(raw, dict) else raw
            )
        except (FixtureError, TypeError, ValueError, AttributeError) as exc:
            raise OAuthError("invalid_request", f"professionnel invalide: {exc}") from None
        self.put_user(user)
        return JSONResponse({"login": user.login, "SubjectNameID": user.id_nat_ps})

    async def admin_next_login(self, request: Request) -> Response:
        raw = await self._json_body(request) if request.method == "POST" else {}
        if not isinstance(raw, dict):
            raise OAuthError("invalid_request", "objet JSON attendu")
        client_id = raw.get("client_id") or request.query_params.get("client_id")
        login = raw.get("login") if request.method == "POST" else None
        if request.method == "POST" and not login:
            raise OAuthError("invalid_request", "login absent")
        try:
            self.set_next_login(login, client_id)
        except LookupError as exc:
            raise OAuthError("invalid_request", str(exc)) from None
        return JSONResponse({"login": login, "client_id": client_id})

    async def admin_rotate(self, request: Request) -> Response:
        return JSONResponse({"kids": self.rotate_keys()})

    async def admin_fault(self, request: Request) -> Response:
        raw = await self._json_body(request)
        if not isinstance(raw, dict) or raw.get("kind") not in FAULT_KINDS:
            raise OAuthError("invalid_request", f"kind attendu parmi {', '.join(FAULT_KINDS)}")
        count = raw.get("count", 1)
        if not isinstance(count, int) or not 1 <= count <= 10000:
            raise OAuthError("invalid_request", "count entre 1 et 10000")
        params = raw.get("params", {})
        if not isinstance(params, dict):
            raise OAuthError("invalid_request", "params doit être un objet")
        self.ctx.faults.inject(self.ctx.name, Fault(raw["kind"], params, count))
        self._record("admin.fault", Outcome.ACCEPTED, actor="admin", details={"kind": raw["kind"], "count": count})
        return JSONResponse({"kind": raw["kind"], "count": count})
