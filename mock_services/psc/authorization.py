"""Discovery, JWKS and the authorization endpoint (OpenID Connect Core 1.0 §3.1, Discovery 1.0, RFC 6749 §4.1,
RFC 7636 PKCE, RFC 9207 ``iss``), with the login page that stands for the e-CPS / CPS step."""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from harness.core.journal import Outcome
from mock_services.psc.model import Client, Professional
from mock_services.psc.pages import error_page, login_page
from mock_services.psc.params import RequestReader
from mock_services.psc.realm import (
    FAULT_ACR,
    FAULT_CODE_EXPIRED,
    FAULT_NO_ACTIVITY,
    FAULT_WRONG_STATE,
    LOWER_ACR,
    NO_STORE,
    REALM,
    REQUIRED_ACR,
    REQUIRED_SCOPES,
    AuthRequest,
    CodeGrant,
    OAuthError,
    Realm,
    Session,
    is_pkce_value,
    with_query,
)
from mock_services.psc.tokens import TokenService


class AuthorizationEndpoints:
    """Discovery, keys, authorization request and login of the realm."""

    def __init__(self, realm: Realm, reader: RequestReader, tokens: TokenService) -> None:
        self.realm = realm
        self.reader = reader
        self.tokens = tokens

    def discovery_document(self) -> dict[str, Any]:
        base = self.realm.issuer + "/protocol/openid-connect"
        return {
            "issuer": self.realm.issuer,
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
        self.realm.record("oidc.discovery", Outcome.ACCEPTED, details={"path": request.url.path.rsplit("/", 1)[-1]})
        return JSONResponse(self.discovery_document())

    async def certs(self, request: Request) -> Response:
        jwks = self.realm.keys.jwks()
        self.realm.record("oidc.jwks", Outcome.ACCEPTED, details={"kids": [k["kid"] for k in jwks["keys"]]})
        return JSONResponse(jwks, headers={"Cache-Control": "max-age=60"})

    def _auth_error_page(
        self, error: str, description: str, client_id: str | None, details: dict[str, Any]
    ) -> Response:
        """Errors that must not redirect (unknown client, bad redirect_uri: RFC 6749 §4.1.2.1)."""
        self.realm.record(
            "oidc.authorize", Outcome.REJECTED, client_id=client_id, error=error, message=description, details=details
        )
        return HTMLResponse(error_page(error, description), status_code=400, headers=NO_STORE)

    def _auth_error_redirect(
        self,
        req_client: Client,
        redirect_uri: str,
        state: str | None,
        error: str,
        description: str,
        details: dict[str, Any],
    ) -> Response:
        self.realm.record(
            "oidc.authorize",
            Outcome.REJECTED,
            client_id=req_client.client_id,
            error=error,
            message=description,
            details={**details, "redirect_uri": redirect_uri},
        )
        location = with_query(
            redirect_uri, {"error": error, "error_description": description, "state": state, "iss": self.realm.issuer}
        )
        return RedirectResponse(location, status_code=302, headers=NO_STORE)

    async def authorize(self, request: Request) -> Response:
        details: dict[str, Any] = {"method": request.method}
        try:
            params = await self.reader.form(request) if request.method == "POST" else self.reader.query(request)
        except OAuthError as exc:
            return self._auth_error_page(exc.error, exc.description, None, details)
        client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
        client = self.realm.client(client_id) if client_id else None
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
            if len(challenge) != 43 or not is_pkce_value(challenge):
                return redirect_error("invalid_request", "PKCE: code_challenge S256 mal formé")
        auth = AuthRequest(client, redirect_uri, scope, state, params.get("nonce"), challenge, method, acr_values)

        login, source = self._preselected(client, params.get("login_hint"))
        user = self.realm.user(login) if login else None
        prompt = params.get("prompt", "").split()
        if user is None:
            if "none" in prompt:
                return redirect_error("login_required", "aucune authentification possible sans interaction")
            request_id = secrets.token_urlsafe(16)
            self.realm.hold_request(request_id, auth)
            self.realm.record(
                "oidc.authorize",
                Outcome.ACCEPTED,
                client_id=client.client_id,
                details={**details, "login_page": True, "request_id": request_id},
            )
            action = self.realm.ctx.http_base + REALM + "/login-actions/authenticate"
            return HTMLResponse(login_page(action, request_id, client, self.realm.users()), headers=NO_STORE)
        return self._complete_login(auth, user, source, details)

    def _preselected(self, client: Client, login_hint: str | None) -> tuple[str | None, str]:
        if login_hint and self.realm.user(login_hint) is not None:
            return login_hint, "login_hint"
        preselected = self.realm.preselected(client.client_id)
        if preselected is not None:
            return preselected, "next_login"
        if client.default_login:
            return client.default_login, "client_default"
        return None, "page"

    async def login_action(self, request: Request) -> Response:
        """The login page's form: the operator chose a professional (or cancelled)."""
        form = await self.reader.form(request)
        auth = self.realm.release_request(form.get("request_id", ""))
        if auth is None:
            raise OAuthError("invalid_request", "demande d'authentification inconnue ou expirée")
        details: dict[str, Any] = {"method": "POST", "scope": " ".join(auth.scope), "pkce": auth.code_challenge_method}
        if form.get("cancel"):
            self.realm.record(
                "oidc.login",
                Outcome.REJECTED,
                client_id=auth.client.client_id,
                error="access_denied",
                message="authentification annulée par l'utilisateur",
            )
            location = with_query(
                auth.redirect_uri, {"error": "access_denied", "state": auth.state, "iss": self.realm.issuer}
            )
            return RedirectResponse(location, status_code=302, headers=NO_STORE)
        user = self.realm.user(form.get("login", ""))
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
        no_activity = self.realm.ctx.take_fault(FAULT_NO_ACTIVITY, client_id=auth.client.client_id)
        if no_activity is not None:
            user = user.without_activity_at(no_activity.params.get("finess"))
            faults.append(FAULT_NO_ACTIVITY)
        acr = user.acr
        if self.realm.ctx.take_fault(FAULT_ACR, client_id=auth.client.client_id) is not None:
            acr = LOWER_ACR
            faults.append(FAULT_ACR)
        now = time.time()
        session = Session(secrets.token_urlsafe(16), user, auth.client.client_id, int(now), acr, nonce=auth.nonce)
        code = secrets.token_urlsafe(32)
        expires = now + self.realm.settings.code_ttl
        if self.realm.ctx.take_fault(FAULT_CODE_EXPIRED, client_id=auth.client.client_id) is not None:
            expires = now - 1
            faults.append(FAULT_CODE_EXPIRED)
        state = auth.state
        if self.realm.ctx.take_fault(FAULT_WRONG_STATE, client_id=auth.client.client_id) is not None:
            state = "etat-altere-" + secrets.token_urlsafe(8)
            faults.append(FAULT_WRONG_STATE)
        self.realm.open_session(session, code, CodeGrant(auth, session.sid, expires))
        self.realm.record(
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
        location = with_query(auth.redirect_uri, {"code": code, "state": state, "iss": self.realm.issuer})
        return RedirectResponse(location, status_code=302, headers=NO_STORE)
