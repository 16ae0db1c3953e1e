"""Request plumbing shared by the PSC endpoints: bounded, strictly decoded parameters (RFC 6749 §3.1), JSON
admin bodies, and client authentication at the token and introspection endpoints (RFC 6749 §2.3.1)."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.requests import Request

from mock_services.psc.model import Client
from mock_services.psc.realm import OAuthError, Realm


class RequestReader:
    """Reads the parameters of a request for one realm (limits from its settings)."""

    def __init__(self, realm: Realm) -> None:
        self.realm = realm

    def _single(self, pairs: list[tuple[str, str]]) -> dict[str, str]:
        """Parameters as a dict: repeated or oversized parameters are invalid (RFC 6749 §3.1)."""
        params: dict[str, str] = {}
        for key, value in pairs:
            if key in params:
                raise OAuthError("invalid_request", f"paramètre répété: {key[:40]}")
            if len(value) > self.realm.settings.max_param_chars or len(key) > 100:
                raise OAuthError("invalid_request", f"paramètre trop long: {key[:40]}")
            params[key] = value
        return params

    async def form(self, request: Request) -> dict[str, str]:
        """The ``application/x-www-form-urlencoded`` body, bounded in size, strictly UTF-8."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "corps attendu en application/x-www-form-urlencoded")
        limit = self.realm.settings.max_body_bytes
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

    def query(self, request: Request) -> dict[str, str]:
        raw = request.scope.get("query_string", b"")
        if len(raw) > self.realm.settings.max_query_chars:
            raise OAuthError("invalid_request", "requête trop longue")
        try:
            pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise OAuthError("invalid_request", "paramètres mal encodés") from None
        return self._single(pairs)

    async def json_body(self, request: Request) -> Any:
        body = await request.body()
        if len(body) > self.realm.settings.max_body_bytes:
            raise OAuthError("invalid_request", "corps trop grand", 413)
        try:
            return json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise OAuthError("invalid_request", "JSON invalide") from None

    def authenticate_client(self, request: Request, form: dict[str, str]) -> tuple[Client, str]:
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
        client = self.realm.client(client_id)
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
