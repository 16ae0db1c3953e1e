"""Tokens of the PSC realm: signing (JWS through joserfc), verification, issuing an access / id / refresh token
set, and the RFC 7662 introspection answer (also the in-process check other simulators use)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any

from mock_services.psc.model import Client, Professional
from mock_services.psc.realm import Realm, Session, TokenInvalid


class TokenService:
    """Signs, verifies, issues and introspects the realm's tokens."""

    def __init__(self, realm: Realm) -> None:
        self.realm = realm

    def sign(self, claims: dict[str, Any], alg: str) -> tuple[str, str]:
        key = self.realm.keys.current(alg)
        return key.sign_jwt(claims), key.kid

    def verify(self, value: str, *, allow_expired: bool = False) -> dict[str, Any]:
        """Verify a JWT this provider issued: known ``kid``, the key's own algorithm, signature, ``iss``, times."""
        # joserfc is loaded by the first verification (or key), not before serve's ports answer (issue 18)
        from joserfc import jws, jwt
        from joserfc.errors import ExpiredTokenError, JoseError

        if not value or len(value) > 16384:
            raise TokenInvalid("jeton absent ou trop long")
        try:
            header = jws.extract_compact(value.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeEncodeError) as exc:
            raise TokenInvalid(f"jeton illisible: {exc}") from None
        kid, alg = header.get("kid"), header.get("alg")
        key = self.realm.keys.find(kid) if isinstance(kid, str) else None
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
            leeway=self.realm.settings.leeway,
            iss={"essential": True, "value": self.realm.issuer},
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

    def issue(
        self,
        client: Client,
        session: Session,
        scope: tuple[str, ...],
        *,
        nonce: str | None,
        audience: str | None = None,
    ) -> tuple[dict[str, Any], str, str]:
        """Access token (JWT), id token, refresh token for a session. Returns (response, jti, kid of the id token).

        Raises :class:`TokenInvalid` when the session ended meanwhile (nothing recorded)."""
        now = int(time.time())
        s = self.realm.settings
        jti = secrets.token_urlsafe(16)
        # Claims of a PSC access token as the test environment issues them (sample decoded in ansforge/PSC-POC
        # remote-cache): Keycloak's exp, iat, auth_time, jti, iss, sub, typ, azp, nonce, session_state, acr, scope,
        # sid, plus PSC's otherIds and preferred_username (= idNat_PS). ``aud`` = the client, checked at userinfo.
        access_claims = {
            "exp": now + s.access_ttl,
            "iat": now,
            "auth_time": session.auth_time,
            "jti": jti,
            "iss": self.realm.issuer,
            "aud": client.client_id,
            "sub": session.user.sub,
            "typ": "Bearer",
            "azp": client.client_id,
            "nonce": session.nonce or "",
            "session_state": session.sid,
            "acr": session.acr,
            "scope": " ".join(scope),
            "sid": session.sid,
            "otherIds": session.user.other_ids(),
            "preferred_username": session.user.id_nat_ps,
        }
        access_token, _ = self.sign(access_claims, "RS256")
        id_claims: dict[str, Any] = {
            "exp": now + s.id_ttl,
            "iat": now,
            "auth_time": session.auth_time,
            "jti": secrets.token_urlsafe(16),
            "iss": self.realm.issuer,
            "aud": audience or client.client_id,
            "sub": session.user.sub,
            "typ": "ID",
            "azp": client.client_id,
            "session_state": session.sid,
            "at_hash": self._at_hash(access_token, client.id_token_alg),
            "acr": session.acr,
            "sid": session.sid,
            "preferred_username": session.user.id_nat_ps,
        }
        if nonce is not None:
            id_claims["nonce"] = nonce
        id_token, kid = self.sign(id_claims, client.id_token_alg)
        refresh = secrets.token_urlsafe(32)
        # raises TokenInvalid, nothing recorded, when a replay or a logout ended the session while this one signed
        self.realm.add_tokens(session, client.client_id, scope, jti, refresh, time.time())
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

    def introspection(self, token: str) -> tuple[dict[str, Any], Professional | None]:
        """The RFC 7662 answer for ``token`` and whose token it is.

        An active access token is described with the fields of the PSC test environment's introspection answer
        (JSON schema ``IntrospectionResponse`` of ``psc-data.json``, ansforge/PSC-POC ``remote-cache``: exp, iat,
        auth_time, jti, iss, sub, typ, azp, nonce, session_state, preferred_username, email_verified, acr, scope,
        sid, otherIds, client_id, username, active — no other member). A refresh token (opaque here) gets
        ``typ`` ``Refresh`` as Keycloak says; anything else, revoked or expired is ``{"active": false}``.
        """
        with self.realm.grants_view():
            ref = self.realm.refresh.get(token)
            if ref is not None:
                session = self.realm.sessions.get(ref.sid)
                if ref.active and ref.exp > time.time() and session is not None and session.active:
                    return (
                        {
                            "exp": int(ref.exp),
                            "iat": int(ref.exp) - self.realm.settings.refresh_ttl,
                            "iss": self.realm.issuer,
                            "sub": session.user.sub,
                            "typ": "Refresh",
                            "azp": ref.client_id,
                            "session_state": session.sid,
                            "scope": " ".join(ref.scope),
                            "sid": session.sid,
                            "client_id": ref.client_id,
                            "username": session.user.id_nat_ps,
                            "active": True,
                        },
                        session.user,
                    )
                return {"active": False}, None
        try:
            claims = self.verify(token)
        except TokenInvalid:
            return {"active": False}, None
        with self.realm.grants_view():
            record = self.realm.access.get(str(claims.get("jti")))
            session = self.realm.sessions.get(record.sid) if record else None
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
        answer = {name: claims[name] for name in _INTROSPECTED_CLAIMS if name in claims}
        answer.update(
            {
                "email_verified": False,
                "client_id": record.client_id,
                "username": session.user.id_nat_ps,
                "active": True,
            }
        )
        return answer, session.user


#: Access-token claims the PSC introspection answer repeats (in its order; ``aud`` is not one of them).
_INTROSPECTED_CLAIMS = (
    "exp",
    "iat",
    "auth_time",
    "jti",
    "iss",
    "sub",
    "typ",
    "azp",
    "nonce",
    "session_state",
    "preferred_username",
    "acr",
    "scope",
    "sid",
    "otherIds",
)
