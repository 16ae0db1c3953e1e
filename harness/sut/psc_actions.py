"""Pro Santé Connect actions of the reference DUI: log a professional in, refresh the session, log out.

The DUI side deliberately uses libraries independent of the simulator's JOSE code (joserfc), to prove
interoperability: authlib's httpx ``OAuth2Client`` for the OAuth 2.0 exchanges (authorization code + PKCE S256,
``client_secret_basic``, refresh) and PyJWT's ``PyJWKClient`` + ``jwt.decode`` for the id token (signature from
the JWKS, ``iss``, ``aud``, ``exp``, ``iat``, ``nonce``, ``acr``). Everything goes over real HTTPS; no browser:
the DUI follows the authorization redirect itself and reads the code from the ``Location`` header.

Specifications: OpenID Connect Core 1.0 §3.1.3.7 (id token validation), §5.3.2 (userinfo ``sub``), RP-Initiated
Logout 1.0, RFC 7636, RFC 9700. The MSSanté XOAUTH2 and DMP VIHF uses of this identity come with later issues.
Defects of the faulty DUI for this capability are declared here and checked with ``self.has(...)``.
"""

from __future__ import annotations

import secrets
import ssl
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import jwt
from authlib.deprecate import AuthlibDeprecationWarning
from jwt import PyJWKClient, PyJWKSet

from harness.sut.base import ActionResult, ActionStatus, Defect, PscLogin, SutEnvironment

with warnings.catch_warnings():  # authlib prefers the httpx2 package and warns when it falls back to httpx
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.oauth2.rfc6749.errors import MismatchingStateException, OAuth2Error

try:  # authlib's OAuth2Client runs on the httpx2 package when it is installed (its own choice), else on httpx
    import httpx2

    #: what the OAuth 2.0 client may raise for a transport error or an error status, whichever package it runs on
    HTTP_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, httpx2.HTTPError)
except ImportError:
    HTTP_ERRORS = (httpx.HTTPError,)

PSC_DEFECTS = (
    Defect("psc-sans-pkce", "n'envoie pas de code_challenge PKCE à Pro Santé Connect"),
    Defect("psc-audience-non-verifiee", "accepte un id token émis pour une autre audience"),
    Defect("psc-state-non-verifie", "ne compare pas le state de la réponse d'autorisation à celui envoyé"),
    Defect("psc-acr-non-verifie", "accepte un id token dont l'acr n'est pas eidas1"),
    Defect("psc-rpps-mal-lu", "prend l'idNat_PS entier (avec son préfixe) pour le RPPS"),
    Defect("psc-finess-ignore", "accepte un professionnel sans activité dans le FINESS de l'établissement"),
    Defect("psc-cles-en-cache", "garde pour toujours le premier JWKS lu (ne suit pas la rotation des clés)"),
    Defect("psc-refresh-reutilise", "réutilise le premier refresh token au lieu du nouveau (rotation ignorée)"),
    Defect("psc-deconnexion-locale", "ferme la session localement sans appeler la déconnexion de Pro Santé Connect"),
    Defect("psc-code-rejoue", "renvoie le code d'autorisation déjà échangé (rechargement de la page de retour)"),
    Defect(
        "psc-connexion-locale-si-indisponible",
        "connecte le professionnel avec un compte local du DUI quand Pro Santé Connect ne répond pas",
    ),
)

REQUIRED_ACR = "eidas1"
ALGORITHMS = ["RS256", "ES256"]


@dataclass(frozen=True)
class PscClientConfig:
    """The DUI's registration at Pro Santé Connect (mirrored in ``fixtures/psc/clients.json``)."""

    client_id: str
    client_secret: str
    redirect_uri: str
    post_logout_redirect_uri: str
    auth_method: str = "client_secret_basic"


REFERENCE_PSC_CLIENT = PscClientConfig(
    client_id="dui-reference",
    client_secret="dui-reference-secret-essai",
    redirect_uri="https://dui-reference.test/psc/callback",
    post_logout_redirect_uri="https://dui-reference.test/psc/deconnexion",
)


class PscRefused(Exception):
    """The DUI refuses the login (a check failed): reported as FAILED with this French reason."""


@dataclass
class PscSession:
    """What the DUI keeps of a professional's PSC session."""

    metadata: dict[str, Any]
    token: dict[str, Any]
    id_claims: dict[str, Any]
    userinfo: dict[str, Any]
    first_refresh_token: str
    refreshes: int = 0
    facts: dict[str, Any] = field(default_factory=dict)
    callback: str = ""  # the authorization response (its code may be exchanged once only)


class PscActions:
    """Mixin of :class:`harness.sut.reference.ReferenceDUI`. State lives on the driver instance."""

    env: SutEnvironment | None

    def has(self, defect: str) -> bool:  # provided by ReferenceDUI
        raise NotImplementedError

    def tls_context(self, certificate: str | None = None) -> ssl.SSLContext:  # provided by ReferenceDUI
        raise NotImplementedError

    # -- plumbing -----------------------------------------------------------------------------------------------
    def _psc_ssl(self) -> ssl.SSLContext:
        if self.env is None:
            raise RuntimeError("setup() must be called before any action")
        return self.tls_context()

    def _psc_client(self, metadata: dict[str, Any] | None = None, token: dict[str, Any] | None = None) -> OAuth2Client:
        cfg = REFERENCE_PSC_CLIENT
        return OAuth2Client(
            client_id=cfg.client_id,
            client_secret=cfg.client_secret,
            token_endpoint_auth_method=cfg.auth_method,
            scope="openid scope_all",
            redirect_uri=cfg.redirect_uri,
            code_challenge_method=None if self.has("psc-sans-pkce") else "S256",
            token=token,
            verify=self._psc_ssl(),
            timeout=30,
            follow_redirects=False,
            token_endpoint=(metadata or {}).get("token_endpoint"),
        )

    def _psc_metadata(self, client: OAuth2Client) -> dict[str, Any]:
        if self.env is None or "psc" not in self.env.endpoints:
            raise PscRefused("Pro Santé Connect n'est pas configuré (aucun point d'accès psc)")
        response = client.request("GET", self.env.endpoints["psc"]["wallet_discovery"], withhold_token=True)
        response.raise_for_status()
        metadata: dict[str, Any] = response.json()
        return metadata

    def _psc_signing_key(self, id_token: str, metadata: dict[str, Any]) -> Any:
        """The id token's verification key from the provider's JWKS (cached on the driver)."""
        if self.has("psc-cles-en-cache"):
            frozen: PyJWKSet | None = getattr(self, "_psc_frozen_jwks", None)
            if frozen is None:
                frozen = PyJWKClient(metadata["jwks_uri"], ssl_context=self._psc_ssl()).get_jwk_set()
                self._psc_frozen_jwks = frozen
            kid = jwt.get_unverified_header(id_token).get("kid")
            for key in frozen.keys:
                if key.key_id == kid:
                    return key
            raise PscRefused(f"clé de signature inconnue (kid {kid})")
        jwks: PyJWKClient | None = getattr(self, "_psc_jwks", None)
        if jwks is None or jwks.uri != metadata["jwks_uri"]:
            # Keys cached for 5 minutes; an unknown kid triggers one refetch at once (rotation). PyJWT's default
            # 30 s cool-down between such refetches would refuse a login just after a rotation.
            jwks = PyJWKClient(
                metadata["jwks_uri"], cache_keys=True, lifespan=300, ssl_context=self._psc_ssl(), cooldown_duration=0
            )
            self._psc_jwks = jwks
        try:
            return jwks.get_signing_key_from_jwt(id_token)
        except jwt.PyJWKClientError as exc:
            raise PscRefused(f"clé de signature introuvable: {exc}") from None

    def _psc_validate_id_token(
        self, id_token: str, metadata: dict[str, Any], nonce: str | None, previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """OpenID Connect Core 1.0 §3.1.3.7 (and §12.2 for an id token obtained by refresh)."""
        cfg = REFERENCE_PSC_CLIENT
        key = self._psc_signing_key(id_token, metadata)
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=ALGORITHMS,
                audience=cfg.client_id,
                issuer=metadata["issuer"],
                leeway=30,
                options={
                    "require": ["iss", "sub", "aud", "exp", "iat"],
                    "verify_aud": not self.has("psc-audience-non-verifiee"),
                },
            )
        except jwt.InvalidAudienceError:
            raise PscRefused("id token refusé: audience différente du client_id du DUI") from None
        except jwt.InvalidTokenError as exc:
            raise PscRefused(f"id token refusé: {exc}") from None
        aud = claims.get("aud")
        if (
            isinstance(aud, list)
            and len(aud) > 1
            and claims.get("azp") != cfg.client_id
            and not self.has("psc-audience-non-verifiee")
        ):
            raise PscRefused("id token refusé: azp différent du client_id du DUI")
        if nonce is not None and claims.get("nonce") != nonce:
            raise PscRefused("id token refusé: nonce différent de celui envoyé")
        if claims.get("acr") != REQUIRED_ACR and not self.has("psc-acr-non-verifie"):
            raise PscRefused(f"id token refusé: niveau d'authentification {claims.get('acr')!r} au lieu de eidas1")
        if previous is not None and (
            claims.get("sub") != previous.get("sub") or claims.get("iss") != previous.get("iss")
        ):
            raise PscRefused("id token de rafraîchissement: sub ou iss différents de la connexion")
        return claims

    def _psc_professional(self, userinfo: dict[str, Any], id_claims: dict[str, Any], finess: str) -> dict[str, Any]:
        """Read idNat_PS, RPPS and the activity at ``finess`` from the PSC userinfo claims."""
        if userinfo.get("sub") != id_claims.get("sub"):
            raise PscRefused("userinfo refusé: sub différent de celui de l'id token")
        id_nat = str(userinfo.get("SubjectNameID") or "")
        if not id_nat:
            raise PscRefused("userinfo sans SubjectNameID (idNat_PS)")
        if self.has("psc-rpps-mal-lu"):
            rpps: str | None = id_nat
        else:
            rpps = id_nat[1:] if len(id_nat) == 12 and id_nat.startswith("8") and id_nat.isdigit() else None
        activity: dict[str, Any] | None = None
        profession = ""
        for exercice in (userinfo.get("SubjectRefPro") or {}).get("exercices", []) or []:
            for act in exercice.get("activities", []) or []:
                if act.get("numeroFinessSite") == finess or (self.has("psc-finess-ignore") and activity is None):
                    activity, profession = act, str(exercice.get("codeProfession", ""))
                    if act.get("numeroFinessSite") == finess:
                        break
        if activity is None:
            raise PscRefused(f"le professionnel {id_nat} n'a aucune activité dans l'établissement FINESS {finess}")
        return {
            "id_nat_ps": id_nat,
            "rpps": rpps,
            "finess": activity.get("numeroFinessSite", ""),
            "finess_juridique": activity.get("numeroFinessetablissementJuridique", ""),
            "structure": activity.get("identifiantTechniqueDeLaStructure", ""),
            "profession": profession,
            "nom": f"{userinfo.get('given_name', '')} {userinfo.get('family_name', '')}".strip(),
        }

    # -- actions ------------------------------------------------------------------------------------------------
    def psc_login(self, action: PscLogin) -> ActionResult:
        self._psc_session: PscSession | None = None
        try:
            with self._psc_client() as client:
                metadata = self._psc_metadata(client)
                session = self._psc_do_login(client, metadata, action)
        except PscRefused as exc:
            return ActionResult(ActionStatus.FAILED, f"connexion PSC refusée: {exc}")
        except HTTP_ERRORS as exc:
            if self.has("psc-connexion-locale-si-indisponible"):
                return ActionResult(ActionStatus.DONE, "connecté avec un compte local (Pro Santé Connect indisponible)")
            return ActionResult(ActionStatus.FAILED, f"connexion PSC impossible: {type(exc).__name__}: {exc}")
        except (OAuth2Error, OAuthError, ValueError, KeyError) as exc:
            return ActionResult(ActionStatus.FAILED, f"connexion PSC impossible: {type(exc).__name__}: {exc}")
        self._psc_session = session
        return ActionResult(
            ActionStatus.DONE, f"connecté: {session.facts['nom']} ({session.facts['id_nat_ps']})", dict(session.facts)
        )

    def _psc_do_login(self, client: OAuth2Client, metadata: dict[str, Any], action: PscLogin) -> PscSession:
        verifier = None if self.has("psc-sans-pkce") else secrets.token_urlsafe(48)
        nonce = secrets.token_urlsafe(16)
        url, state = client.create_authorization_url(
            metadata["authorization_endpoint"],
            code_verifier=verifier,
            nonce=nonce,
            acr_values=REQUIRED_ACR,
        )
        response = client.request("GET", url, withhold_token=True)
        location = response.headers.get("location", "")
        if response.status_code != 302 or not location.startswith(REFERENCE_PSC_CLIENT.redirect_uri):
            raise PscRefused(f"pas de retour vers le DUI (HTTP {response.status_code})")
        params = parse_qs(urlparse(location).query)
        if "error" in params:
            raise PscRefused(f"{params['error'][0]}: {params.get('error_description', [''])[0]}")
        if "iss" in params and params["iss"][0] != metadata["issuer"]:  # RFC 9207 mix-up defence
            raise PscRefused("réponse d'autorisation d'un autre émetteur (iss)")
        try:
            token = client.fetch_token(
                metadata["token_endpoint"],
                authorization_response=location,
                code_verifier=verifier,
                state="" if self.has("psc-state-non-verifie") else state,
            )
        except MismatchingStateException:
            raise PscRefused("state de la réponse d'autorisation différent de celui envoyé (CSRF)") from None
        except (OAuth2Error, OAuthError) as exc:
            raise PscRefused(f"échange du code refusé: {exc.error}: {exc.description}") from None
        id_token = str(token.get("id_token", ""))
        id_claims = self._psc_validate_id_token(id_token, metadata, nonce)
        userinfo = self._psc_userinfo(client, metadata)
        facts = self._psc_professional(userinfo, id_claims, action.establishment.finess)
        facts.update(
            {
                "sub": id_claims["sub"],
                "acr": id_claims.get("acr"),
                "kid": jwt.get_unverified_header(id_token).get("kid"),
                "sid": id_claims.get("sid"),
            }
        )
        return PscSession(
            metadata,
            dict(token),
            id_claims,
            userinfo,
            str(token.get("refresh_token", "")),
            facts=facts,
            callback=location,
        )

    def _psc_userinfo(self, client: OAuth2Client, metadata: dict[str, Any]) -> dict[str, Any]:
        response = client.get(metadata["userinfo_endpoint"], headers={"Accept": "application/json"})
        if response.status_code != 200:
            raise PscRefused(f"userinfo refusé (HTTP {response.status_code})")
        if response.headers.get("content-type", "").startswith("application/jwt"):
            key = self._psc_signing_key(response.text, metadata)
            data: dict[str, Any] = jwt.decode(
                response.text,
                key.key,
                algorithms=ALGORITHMS,
                audience=REFERENCE_PSC_CLIENT.client_id,
                issuer=metadata["issuer"],
            )
            return data
        result: dict[str, Any] = response.json()
        return result

    def psc_refresh(self) -> ActionResult:
        session: PscSession | None = getattr(self, "_psc_session", None)
        if session is None:
            return ActionResult(ActionStatus.FAILED, "aucune session PSC à rafraîchir")
        refresh_token = (
            session.first_refresh_token
            if self.has("psc-refresh-reutilise")
            else str(session.token.get("refresh_token", ""))
        )
        try:
            with self._psc_client(session.metadata) as client:
                if self.has("psc-code-rejoue"):  # the callback page reloaded: the spent code goes to /token again
                    code = parse_qs(urlparse(session.callback).query).get("code", [""])[0]
                    client.request(
                        "POST",
                        session.metadata["token_endpoint"],
                        withhold_token=True,
                        data={
                            "grant_type": "authorization_code",
                            "code": code,
                            "redirect_uri": REFERENCE_PSC_CLIENT.redirect_uri,
                        },
                        auth=(REFERENCE_PSC_CLIENT.client_id, REFERENCE_PSC_CLIENT.client_secret),
                    )
                token = client.refresh_token(session.metadata["token_endpoint"], refresh_token=refresh_token)
                claims = session.id_claims
                if token.get("id_token"):
                    claims = self._psc_validate_id_token(
                        str(token["id_token"]), session.metadata, None, previous=session.id_claims
                    )
                userinfo = self._psc_userinfo(client, session.metadata)
        except PscRefused as exc:
            return ActionResult(ActionStatus.FAILED, f"rafraîchissement PSC refusé: {exc}")
        except (OAuth2Error, OAuthError) as exc:
            return ActionResult(ActionStatus.FAILED, f"rafraîchissement PSC refusé: {exc.error}: {exc.description}")
        except (*HTTP_ERRORS, ValueError, KeyError) as exc:
            return ActionResult(ActionStatus.FAILED, f"rafraîchissement PSC impossible: {type(exc).__name__}: {exc}")
        if userinfo.get("sub") != session.id_claims.get("sub"):
            return ActionResult(ActionStatus.FAILED, "rafraîchissement PSC: userinfo d'un autre professionnel")
        session.token = {**session.token, **dict(token)}
        session.id_claims, session.userinfo = claims, userinfo
        session.refreshes += 1
        return ActionResult(
            ActionStatus.DONE,
            f"session PSC rafraîchie ({session.refreshes})",
            {"refreshes": session.refreshes, "id_nat_ps": userinfo.get("SubjectNameID")},
        )

    def psc_logout(self) -> ActionResult:
        session: PscSession | None = getattr(self, "_psc_session", None)
        if session is None:
            return ActionResult(ActionStatus.FAILED, "aucune session PSC à fermer")
        self._psc_session = None
        if self.has("psc-deconnexion-locale"):
            return ActionResult(ActionStatus.DONE, "déconnecté (session locale fermée)")
        state = secrets.token_urlsafe(16)
        query = urlencode(
            {
                "id_token_hint": session.token.get("id_token", ""),
                "post_logout_redirect_uri": REFERENCE_PSC_CLIENT.post_logout_redirect_uri,
                "state": state,
            }
        )
        try:
            with httpx.Client(verify=self._psc_ssl(), timeout=30, follow_redirects=False) as client:
                response = client.get(f"{session.metadata['end_session_endpoint']}?{query}")
        except httpx.HTTPError as exc:
            return ActionResult(ActionStatus.FAILED, f"déconnexion PSC impossible: {exc}")
        location = response.headers.get("location", "")
        if response.status_code != 302 or not location.startswith(REFERENCE_PSC_CLIENT.post_logout_redirect_uri):
            return ActionResult(ActionStatus.FAILED, f"déconnexion PSC refusée (HTTP {response.status_code})")
        if parse_qs(urlparse(location).query).get("state") != [state]:
            return ActionResult(ActionStatus.FAILED, "déconnexion PSC: state de retour différent")
        return ActionResult(ActionStatus.DONE, "déconnecté de Pro Santé Connect", {"sid": session.facts.get("sid")})
