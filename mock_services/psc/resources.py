"""Endpoints that take a token: userinfo (OpenID Connect Core 1.0 §5.3, RFC 6750 bearer) and introspection
(RFC 7662)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from harness.core.journal import Outcome
from mock_services.psc.model import Professional
from mock_services.psc.params import RequestReader
from mock_services.psc.realm import (
    FAULT_INACTIVE,
    NO_STORE,
    AccessRecord,
    OAuthError,
    Realm,
    Session,
    TokenInvalid,
)
from mock_services.psc.tokens import TokenService


class ResourceEndpoints:
    """Userinfo and introspection of the realm."""

    def __init__(self, realm: Realm, reader: RequestReader, tokens: TokenService) -> None:
        self.realm = realm
        self.reader = reader
        self.tokens = tokens

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
            claims = self.tokens.verify(token)
        except TokenInvalid as exc:
            raise OAuthError("invalid_token", str(exc), 401, www_authenticate=invalid) from None
        with self.realm.grants_view():
            record = self.realm.access.get(str(claims.get("jti")))
            session = self.realm.sessions.get(record.sid) if record else None
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
        form = (
            await self.reader.form(request) if request.method == "POST" and request.headers.get("content-type") else {}
        )
        if request.method == "GET":
            self.reader.query(request)  # bounded and well-formed, even if unused
        _, record, session = self._bearer_session(request, form)
        client = self.realm.client(record.client_id)
        claims = session.user.userinfo()
        wants_jwt = "application/jwt" in request.headers.get("accept", "") or bool(client and client.userinfo_alg)
        body = json.dumps(claims, ensure_ascii=False).encode("utf-8")
        details = {"format": "jwt" if wants_jwt else "json", "sid": session.sid}
        self.realm.record(
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
            signed, _ = self.tokens.sign({**claims, "iss": self.realm.issuer, "aud": client.client_id}, alg)
            return Response(signed, media_type="application/jwt", headers=NO_STORE)
        return Response(body, media_type="application/json", headers=NO_STORE)

    async def introspect(self, request: Request) -> Response:
        form = await self.reader.form(request)
        client, method = self.reader.authenticate_client(request, form)
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "token absent")
        details: dict[str, Any] = {"auth_method": method, "hint": form.get("token_type_hint")}
        answer: dict[str, Any] = {"active": False}
        user: Professional | None = None
        if self.realm.ctx.take_fault(FAULT_INACTIVE, client_id=client.client_id) is not None:
            details["faults"] = [FAULT_INACTIVE]
        else:
            answer, user = self.tokens.introspection(token)
        # issue 19 item 4: a token of a client of another open test session is not this client's to introspect;
        # RFC 7662 §2.2: "the protected resource is not allowed to introspect this particular token" -> active false
        other = (
            self.realm.ctx.cross_session(("client", client.client_id), ("client", str(answer.get("client_id"))))
            if answer.get("active")
            else None
        )
        if other is not None:
            answer, user = {"active": False}, None
            details["autre_session"] = other
        details.update({"active": answer["active"], "typ": answer.get("typ")})
        self.realm.record("oidc.introspect", Outcome.ACCEPTED, client_id=client.client_id, user=user, details=details)
        return JSONResponse(answer, headers=NO_STORE)
