"""The Pro Santé Connect OpenID provider: the realm's routes, assembled from its endpoint families.

Specifications followed: OpenID Connect Core 1.0 (incorporating errata set 2) and Discovery 1.0; OpenID Connect
RP-Initiated Logout 1.0; RFC 6749 (OAuth 2.0) and RFC 6750 (bearer tokens); RFC 7636 (PKCE, S256 only);
RFC 7662 (introspection); RFC 7519 / 7515 / 7517 (JWT, JWS, JWK) through joserfc; RFC 9207 (``iss`` in the
authorization response); RFC 9700 (OAuth 2.0 Security BCP: exact redirect URI matching, PKCE downgrade
protection, single-use codes with revocation on replay, refresh-token rotation with reuse detection).

PSC specifics simulated: the realm path ``/auth/realms/esante-wallet`` and its ``wallet-openid-configuration``
discovery document, ``scope=openid scope_all`` and ``acr_values=eidas1`` required, the ``acr`` claim in the id
token, and the PSC userinfo claims (:mod:`mock_services.psc.model`).

Every request is journaled (service ``psc``, operations ``oidc.*`` and ``admin.*``) before the answer is sent.

Layout: :mod:`~mock_services.psc.realm` (constants, settings, shared state, journal), :mod:`~mock_services.psc.params`
(request plumbing, client authentication), :mod:`~mock_services.psc.tokens` (sign, verify, issue, introspect), and
one module per endpoint family: :mod:`~mock_services.psc.authorization`, :mod:`~mock_services.psc.grants`,
:mod:`~mock_services.psc.resources`, :mod:`~mock_services.psc.logout`, :mod:`~mock_services.psc.admin`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from harness.core.journal import Outcome
from harness.host.simulator import SimulatorContext
from mock_services.psc.admin import AdminEndpoints
from mock_services.psc.authorization import AuthorizationEndpoints
from mock_services.psc.grants import TokenEndpoint
from mock_services.psc.keys import KeyRing
from mock_services.psc.logout import LogoutEndpoint
from mock_services.psc.model import Client, Professional, PscFixtures
from mock_services.psc.pages import down_page
from mock_services.psc.params import RequestReader
from mock_services.psc.realm import (
    FAULT_ACR,
    FAULT_CODE_EXPIRED,
    FAULT_DOWN,
    FAULT_INACTIVE,
    FAULT_KINDS,
    FAULT_NO_ACTIVITY,
    FAULT_WRONG_AUDIENCE,
    FAULT_WRONG_STATE,
    LOWER_ACR,
    NO_STORE,
    PROTOCOL,
    REALM,
    REQUIRED_ACR,
    REQUIRED_SCOPES,
    OAuthError,
    Realm,
    Settings,
    TokenInvalid,
)
from mock_services.psc.resources import ResourceEndpoints
from mock_services.psc.tokens import TokenService

__all__ = [
    "FAULT_ACR",
    "FAULT_CODE_EXPIRED",
    "FAULT_DOWN",
    "FAULT_INACTIVE",
    "FAULT_KINDS",
    "FAULT_NO_ACTIVITY",
    "FAULT_WRONG_AUDIENCE",
    "FAULT_WRONG_STATE",
    "LOWER_ACR",
    "PROTOCOL",
    "REALM",
    "REQUIRED_ACR",
    "REQUIRED_SCOPES",
    "OAuthError",
    "Provider",
    "Settings",
    "TokenInvalid",
]


class Provider:
    """The simulated Pro Santé Connect realm: its public administration API (steps and tests call it directly) and
    its ASGI routes."""

    def __init__(self, ctx: SimulatorContext, fixtures: PscFixtures, settings: Settings) -> None:
        self.realm = Realm(ctx, fixtures, settings)
        self.ctx = ctx
        self.settings = settings
        self.issuer = self.realm.issuer
        self.keys: KeyRing = self.realm.keys
        self.tokens = TokenService(self.realm)
        reader = RequestReader(self.realm)
        self.authorization = AuthorizationEndpoints(self.realm, reader, self.tokens)
        self.grants = TokenEndpoint(self.realm, reader, self.tokens)
        self.resources = ResourceEndpoints(self.realm, reader, self.tokens)
        self.logout_endpoint = LogoutEndpoint(self.realm, reader, self.tokens)
        self.admin = AdminEndpoints(self.realm, reader)

    # ------------------------------------------------------------------------------------------------------------
    # administration (steps call these directly; the admin endpoints call them too)

    def users(self) -> list[Professional]:
        return self.realm.users()

    def user(self, ref: str) -> Professional | None:
        return self.realm.user(ref)

    def put_user(self, user: Professional) -> None:
        """Create or replace a professional (by login)."""
        self.realm.put_user(user)

    def client(self, client_id: str) -> Client | None:
        return self.realm.client(client_id)

    def set_next_login(self, login: str | None, client_id: str | None = None) -> None:
        """Pre-select who authenticates at the next authorizations of ``client_id`` (all clients when None)."""
        self.realm.set_next_login(login, client_id)

    def rotate_keys(self) -> list[str]:
        return self.realm.rotate_keys()

    def session_active(self, sid: str) -> bool:
        return self.realm.session_active(sid)

    def verify(self, value: str, *, allow_expired: bool = False) -> dict[str, Any]:
        """Verify a JWT this provider issued (see :meth:`TokenService.verify`)."""
        return self.tokens.verify(value, allow_expired=allow_expired)

    def introspection(self, token: str) -> dict[str, Any]:
        """The RFC 7662 introspection answer for ``token`` (the in-process check the MSSanté XOAUTH2 uses)."""
        return self.tokens.introspection(token)[0]

    # ------------------------------------------------------------------------------------------------------------
    # routes

    def routes(self) -> list[Route]:
        g = self._guard
        table: list[tuple[str, str, Callable[[Request], Awaitable[Response]], tuple[str, ...]]] = [
            (REALM + "/.well-known/openid-configuration", "oidc.discovery", self.authorization.discovery, ("GET",)),
            (
                REALM + "/.well-known/wallet-openid-configuration",
                "oidc.discovery",
                self.authorization.discovery,
                ("GET",),
            ),
            (PROTOCOL + "/auth", "oidc.authorize", self.authorization.authorize, ("GET", "POST")),
            (REALM + "/login-actions/authenticate", "oidc.login", self.authorization.login_action, ("POST",)),
            (PROTOCOL + "/token", "oidc.token", self.grants.token, ("POST",)),
            (PROTOCOL + "/userinfo", "oidc.userinfo", self.resources.userinfo, ("GET", "POST")),
            (PROTOCOL + "/token/introspect", "oidc.introspect", self.resources.introspect, ("POST",)),
            (PROTOCOL + "/logout", "oidc.logout", self.logout_endpoint.logout, ("GET", "POST")),
            (PROTOCOL + "/certs", "oidc.jwks", self.authorization.certs, ("GET",)),
            ("/_admin/users", "admin.users", self.admin.admin_users, ("GET",)),
            ("/_admin/users/{login}", "admin.user", self.admin.admin_put_user, ("PUT",)),
            ("/_admin/next-login", "admin.next_login", self.admin.admin_next_login, ("POST", "DELETE")),
            ("/_admin/rotate-keys", "admin.rotate_keys", self.admin.admin_rotate, ("POST",)),
            ("/_admin/faults", "admin.fault", self.admin.admin_fault, ("POST",)),
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
                self.realm.record(
                    operation,
                    Outcome.REJECTED,
                    error="invalid_request",
                    message=f"méthode {request.method} non permise",
                    details={"method": request.method},
                )
                return JSONResponse(
                    {"error": "invalid_request", "error_description": f"méthode {request.method} non permise"},
                    status_code=405,
                    headers={"Allow": ", ".join(methods), **NO_STORE},
                )
            if operation.startswith("admin."):
                refused = self.realm.ctx.admin_refusal(request.headers)
                if refused is not None:  # the host's admin token, always (harness.host.admin)
                    error, challenge = refused
                    message = (
                        "jeton d'administration absent ou invalide (Authorization: Bearer, fichier des points d'accès)"
                    )
                    self.realm.record(
                        operation, Outcome.REJECTED, error=error, message=message, details={"method": request.method}
                    )
                    return JSONResponse(
                        {"error": error, "error_description": message},
                        status_code=401,
                        headers={"WWW-Authenticate": challenge, **NO_STORE},
                    )
            elif self.realm.ctx.take_fault(FAULT_DOWN) is not None:
                self.realm.record(
                    operation,
                    Outcome.REJECTED,
                    error="temporarily_unavailable",
                    message="panne simulée du fournisseur PSC",
                    details={"fault": FAULT_DOWN},
                )
                if operation in ("oidc.authorize", "oidc.login", "oidc.logout"):
                    return HTMLResponse(down_page(), status_code=503, headers={"Retry-After": "30"})
                return JSONResponse(
                    {"error": "temporarily_unavailable", "error_description": "Pro Santé Connect indisponible"},
                    status_code=503,
                    headers={"Retry-After": "30", **NO_STORE},
                )
            try:
                return await handler(request)
            except OAuthError as exc:
                self.realm.record(
                    operation,
                    Outcome.REJECTED,
                    error=exc.error,
                    message=exc.description,
                    details={"method": request.method},
                )
                return self._error_json(exc)
            except Exception as exc:  # noqa: BLE001 - a simulator bug must still answer and be journaled
                self.realm.record(
                    operation, Outcome.REJECTED, error="server_error", message=f"{type(exc).__name__}: {exc}"[:500]
                )
                return JSONResponse(
                    {"error": "server_error", "error_description": "erreur interne du simulateur"},
                    status_code=500,
                    headers=NO_STORE,
                )

        return endpoint

    @staticmethod
    def _error_json(exc: OAuthError) -> JSONResponse:
        headers = dict(NO_STORE)
        if exc.www_authenticate:
            headers["WWW-Authenticate"] = exc.www_authenticate
        return JSONResponse(
            {"error": exc.error, "error_description": exc.description}, status_code=exc.status, headers=headers
        )
