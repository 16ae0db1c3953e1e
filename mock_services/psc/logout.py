"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): ends the session named by the id token hint."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from harness.core.journal import Outcome
from mock_services.psc.model import Professional
from mock_services.psc.pages import error_page, logged_out_page
from mock_services.psc.params import RequestReader
from mock_services.psc.realm import (
    NO_STORE,
    OAuthError,
    Realm,
    TokenInvalid,
    with_query,
)
from mock_services.psc.tokens import TokenService


class LogoutEndpoint:
    """The ``/logout`` endpoint of the realm."""

    def __init__(self, realm: Realm, reader: RequestReader, tokens: TokenService) -> None:
        self.realm = realm
        self.reader = reader
        self.tokens = tokens

    async def logout(self, request: Request) -> Response:
        details: dict[str, Any] = {"method": request.method}

        def refuse(description: str, client_id: str | None = None) -> Response:
            self.realm.record(
                "oidc.logout",
                Outcome.REJECTED,
                client_id=client_id,
                error="invalid_request",
                message=description,
                details=details,
            )
            return HTMLResponse(error_page("invalid_request", description), status_code=400, headers=NO_STORE)

        try:
            params = await self.reader.form(request) if request.method == "POST" else self.reader.query(request)
        except OAuthError as exc:
            return refuse(exc.description)
        hint, redirect, state = params.get("id_token_hint"), params.get("post_logout_redirect_uri"), params.get("state")
        client_id = params.get("client_id")
        claims: dict[str, Any] | None = None
        if hint:
            try:
                claims = self.tokens.verify(hint, allow_expired=True)
            except TokenInvalid as exc:
                return refuse(f"id_token_hint invalide: {exc}", client_id)
            if claims.get("typ") != "ID":
                return refuse("id_token_hint n'est pas un id token", client_id)
            aud = claims.get("aud")
            auds = aud if isinstance(aud, list) else [aud]
            if client_id and client_id not in auds:
                return refuse("id_token_hint délivré à un autre client", client_id)
            client_id = client_id or (str(claims.get("azp") or auds[0]))
        client = self.realm.client(client_id) if client_id else None
        if redirect is not None:
            if client is None:
                return refuse("post_logout_redirect_uri sans client identifié (id_token_hint ou client_id)", client_id)
            if redirect not in client.post_logout_redirect_uris:
                details["post_logout_redirect_uri"] = redirect[:300]
                return refuse("post_logout_redirect_uri non enregistrée pour ce client", client_id)
        user: Professional | None = None
        if claims is not None:
            sid = str(claims.get("sid", ""))
            with self.realm.grants_view():
                session = self.realm.sessions.get(sid)
            if session is not None:
                user = session.user
                details["sid"] = sid
                details["was_active"] = session.active
                self.realm.revoke_session(sid)
        details.update({"post_logout_redirect_uri": redirect, "state": state is not None, "id_token_hint": bool(hint)})
        self.realm.record("oidc.logout", Outcome.ACCEPTED, client_id=client_id, user=user, details=details)
        if redirect is not None:
            return RedirectResponse(with_query(redirect, {"state": state}), status_code=302, headers=NO_STORE)
        text = f"Session de {user.display_name} terminée." if user else "Aucune session à terminer."
        return HTMLResponse(logged_out_page(text), headers=NO_STORE)
