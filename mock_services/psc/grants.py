"""The token endpoint: authorization-code and refresh-token grants (RFC 6749 §4.1.3 / §6, RFC 7636 §4.6,
RFC 9700 §2.1.1 / §4.14: single-use codes, PKCE downgrade protection, refresh-token rotation with reuse detection)."""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from harness.core.journal import Outcome
from mock_services.psc.model import Client, Professional
from mock_services.psc.params import RequestReader
from mock_services.psc.realm import (
    FAULT_WRONG_AUDIENCE,
    NO_STORE,
    OAuthError,
    Realm,
    TokenInvalid,
    UnknownGrant,
    is_pkce_value,
    s256,
)
from mock_services.psc.tokens import TokenService


class TokenEndpoint:
    """The ``/token`` endpoint of the realm."""

    def __init__(self, realm: Realm, reader: RequestReader, tokens: TokenService) -> None:
        self.realm = realm
        self.reader = reader
        self.tokens = tokens

    async def token(self, request: Request) -> Response:
        form = await self.reader.form(request)
        client, method = self.reader.authenticate_client(request, form)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type absent")
        # The grant runs in a worker thread: its two signatures (RSA / ECDSA in ``cryptography``) and the journal commit
        # release the GIL, so that concurrent token requests use more than one core and join one group commit; the
        # answer still leaves only after its journal row is committed.
        if grant_type == "authorization_code":
            return await asyncio.to_thread(self._code_grant, client, method, form)
        if grant_type == "refresh_token":
            return await asyncio.to_thread(self._refresh_grant, client, method, form)
        raise OAuthError("unsupported_grant_type", f"grant_type non pris en charge: {grant_type[:40]}")

    def _token_error(
        self, client: Client, error: str, description: str, details: dict[str, Any], user: Professional | None = None
    ) -> Response:
        self.realm.record(
            "oidc.token",
            Outcome.REJECTED,
            client_id=client.client_id,
            user=user,
            error=error,
            message=description,
            details=details,
        )
        return JSONResponse({"error": error, "error_description": description}, status_code=400, headers=NO_STORE)

    def _code_grant(self, client: Client, method: str, form: dict[str, str]) -> Response:
        details: dict[str, Any] = {"grant_type": "authorization_code", "auth_method": method}
        code = form.get("code")
        if not code:
            raise OAuthError("invalid_request", "code absent")
        now = time.time()
        try:
            grant, session, revoked = self.realm.redeem(code, client.client_id)
        except UnknownGrant:
            return self._token_error(client, "invalid_grant", "code d'autorisation inconnu", details)
        user = session.user if session else None
        if revoked is not None:
            # RFC 6749 §4.1.2 (« SHOULD revoke (when possible) all tokens previously issued based on that authorization
            # code ») and RFC 9700 §4.5: the whole grant family went — tokens of the first exchange and every token
            # refreshed from them — and the session the code opened ended (in the same operation as the replay).
            return self._token_error(
                client,
                "invalid_grant",
                "code d'autorisation déjà utilisé : toute la famille de jetons est révoquée et la session terminée",
                {**details, "replay": True, "sid": grant.sid, "revoked": revoked, "session_ended": True},
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
            if verifier is None or not is_pkce_value(verifier):
                return self._token_error(
                    client, "invalid_grant", "code_verifier absent ou mal formé (PKCE)", details, user
                )
            if not hmac.compare_digest(s256(verifier), grant.request.code_challenge):
                return self._token_error(
                    client, "invalid_grant", "code_verifier ne correspond pas au code_challenge (PKCE)", details, user
                )
            details["pkce"] = "S256"
        if session is None or not session.active:
            return self._token_error(client, "invalid_grant", "session terminée", details, user)
        audience = None
        if self.realm.ctx.take_fault(FAULT_WRONG_AUDIENCE, client_id=client.client_id) is not None:
            audience = "autre-fournisseur-de-service"
            details["faults"] = [FAULT_WRONG_AUDIENCE]
        try:
            response, _, kid = self.tokens.issue(
                client, session, grant.request.scope, nonce=grant.request.nonce, audience=audience
            )
        except TokenInvalid:  # a replay of this code ended the session while this redemption was signing
            return self._token_error(client, "invalid_grant", "session terminée", details, user)
        details.update(
            {
                "sid": session.sid,
                "acr": session.acr,
                "alg": client.id_token_alg,
                "kid": kid,
                "aud": audience or client.client_id,
            }
        )
        self.realm.record(
            "oidc.token", Outcome.ACCEPTED, client_id=client.client_id, user=session.user, details=details
        )
        return JSONResponse(response, headers=NO_STORE)

    def _refresh_grant(self, client: Client, method: str, form: dict[str, str]) -> Response:
        details: dict[str, Any] = {"grant_type": "refresh_token", "auth_method": method}
        token = form.get("refresh_token")
        if not token:
            raise OAuthError("invalid_request", "refresh_token absent")
        try:
            record, session, status = self.realm.rotate_refresh(token, client.client_id)
        except UnknownGrant:
            return self._token_error(client, "invalid_grant", "refresh_token inconnu", details)
        user = session.user if session else None
        if status == "other_client":
            return self._token_error(client, "invalid_grant", "refresh_token délivré à un autre client", details, user)
        if status != "rotated":
            if status == "reused":  # a rotated refresh token again: its session was revoked (RFC 9700 §4.14.2)
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
        try:
            response, _, kid = self.tokens.issue(client, session, scope, nonce=None)
        except TokenInvalid:  # the session ended (logout, replay) while this refresh was signing
            return self._token_error(client, "invalid_grant", "session terminée", details, user)
        details.update({"sid": session.sid, "acr": session.acr, "alg": client.id_token_alg, "kid": kid})
        self.realm.record(
            "oidc.token", Outcome.ACCEPTED, client_id=client.client_id, user=session.user, details=details
        )
        return JSONResponse(response, headers=NO_STORE)
