"""Example DUI, Pro Santé Connect: log a professional in, refresh the session, log out.

Specifications followed: OpenID Connect Core 1.0 (authorization code flow §3.1, id token validation §3.1.3.7,
userinfo §5.3, refresh §12), OpenID Connect Discovery 1.0, OpenID Connect RP-Initiated Logout 1.0, RFC 6749
(OAuth 2.0; client authentication §2.3.1), RFC 7636 (PKCE, S256), RFC 9207 (``iss`` in the authorization
response), RFC 9700 (refresh-token rotation), and what Pro Santé Connect asks of its relying parties: ``scope=openid
scope_all``, ``acr_values=eidas1``, the userinfo claims ``SubjectNameID`` (idNat_PS) and
``SubjectRefPro.exercices[].activities[].numeroFinessSite``.

No browser: the professional is pre-selected at the provider, so the DUI follows the authorization redirects with
its own HTTP client and stops at the redirect to its ``redirect_uri``. The state of the PSC session lives in
``session.state["psc"]``: provider metadata, the JWKS last read, the tokens and what the DUI shows of the
professional. Plain httpx + PyJWT (signature, ``iss``, ``aud``, ``exp``; the rest checked here).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
import jwt

from example_dui import Outcome, Session

SCOPE = "openid scope_all"
ACR = "eidas1"
ALGORITHMS = ("RS256", "ES256")
LEEWAY = 30  # seconds of clock skew accepted on exp / iat
MAX_REDIRECTS = 5


class Refused(Exception):
    """A check failed: the DUI refuses the login and shows this French reason."""


def _state(session: Session) -> dict[str, Any]:
    return session.state.setdefault("psc", {})


def _client(session: Session) -> dict[str, str]:
    registration = session.body.get("psc_client")
    if not registration:
        raise Refused("le DUI n'est pas enregistré auprès de Pro Santé Connect (psc_client absent de la session)")
    return registration


def _http(session: Session) -> httpx.Client:
    return httpx.Client(verify=session.ssl_context(), timeout=20, follow_redirects=False)


def _metadata(session: Session, http: httpx.Client) -> dict[str, Any]:
    """OpenID Provider metadata (Discovery 1.0 §4), read once per session."""
    state = _state(session)
    if "metadata" not in state:
        response = http.get(session.endpoint("psc", "discovery"))
        if response.status_code != 200:
            raise Refused(f"configuration de Pro Santé Connect illisible (HTTP {response.status_code})")
        metadata = response.json()
        if metadata.get("issuer") != session.endpoint("psc", "issuer"):
            raise Refused("configuration de Pro Santé Connect: émetteur (issuer) inattendu")
        state["metadata"] = metadata
    return state["metadata"]


def _token_request(session: Session, http: httpx.Client, form: dict[str, str]) -> dict[str, Any]:
    """POST to the token endpoint with the client authentication the DUI registered (RFC 6749 §2.3.1)."""
    client = _client(session)
    headers = {"Accept": "application/json"}
    if client.get("token_endpoint_auth_method", "client_secret_basic") == "client_secret_post":
        form = {**form, "client_id": client["client_id"], "client_secret": client["client_secret"]}
    else:  # client_secret_basic: id and secret form-urlencoded, then Base64
        pair = f"{quote(client['client_id'], safe='')}:{quote(client['client_secret'], safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    response = http.post(_metadata(session, http)["token_endpoint"], data=form, headers=headers)
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200:
        raise Refused(
            f"jetons refusés par Pro Santé Connect: {body.get('error', response.status_code)} "
            f"{body.get('error_description', '')}".strip()
        )
    return body


# -- id token -------------------------------------------------------------------------------------------------
def _signing_key(session: Session, http: httpx.Client, token: str) -> tuple[Any, str]:
    """The JWKS key named by the token's ``kid``; an unknown kid means the keys rotated: read the JWKS again."""
    header = jwt.get_unverified_header(token)
    kid, alg = header.get("kid"), header.get("alg")
    if alg not in ALGORITHMS:
        raise Refused(f"jeton signé avec l'algorithme {alg!r} (RS256 ou ES256 attendu)")
    state = _state(session)
    for attempt in range(2):
        if attempt or "jwks" not in state:
            response = http.get(_metadata(session, http)["jwks_uri"])
            if response.status_code != 200:
                raise Refused(f"clés de Pro Santé Connect illisibles (HTTP {response.status_code})")
            state["jwks"] = response.json()
        for jwk in state["jwks"].get("keys", []):
            if jwk.get("kid") == kid and jwk.get("use", "sig") == "sig" and jwk.get("alg", alg) == alg:
                return jwt.PyJWK(jwk, algorithm=alg).key, kid
    raise Refused(f"clé de signature inconnue de Pro Santé Connect (kid {kid})")


def _verify_jwt(session: Session, http: httpx.Client, token: str) -> tuple[dict[str, Any], str]:
    """Signature, ``iss``, ``aud`` (= our client_id) and ``exp`` of a JWT from the provider; returns (claims, kid)."""
    key, kid = _signing_key(session, http, token)
    client_id = _client(session)["client_id"]
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=list(ALGORITHMS),
            audience=client_id,
            leeway=LEEWAY,
            issuer=_metadata(session, http)["issuer"],
            options={"require": ["iss", "aud", "exp", "sub"]},
        )
    except jwt.InvalidAudienceError:
        raise Refused("id token refusé: audience différente du client_id du DUI") from None
    except jwt.InvalidIssuerError:
        raise Refused("id token refusé: émetteur différent de Pro Santé Connect") from None
    except jwt.ExpiredSignatureError:
        raise Refused("id token refusé: expiré") from None
    except jwt.InvalidTokenError as exc:
        raise Refused(f"id token refusé: {exc}") from None
    if isinstance(claims["aud"], list) and len(claims["aud"]) > 1 and claims.get("azp") != client_id:
        raise Refused("id token refusé: azp différent du client_id du DUI (audience multiple)")
    return claims, kid


def _check_id_token(
    session: Session, http: httpx.Client, token: str, nonce: str | None, previous: dict[str, Any] | None = None
) -> tuple[dict[str, Any], str]:
    """OpenID Connect Core §3.1.3.7 (nonce, acr) and §12.2 (after a refresh: same iss and sub)."""
    claims, kid = _verify_jwt(session, http, token)
    if nonce is not None and claims.get("nonce") != nonce:
        raise Refused("id token refusé: nonce différent de celui envoyé")
    if claims.get("acr") != ACR:
        raise Refused(f"authentification refusée: niveau {claims.get('acr')!r} au lieu de {ACR}")
    if previous is not None and (claims["sub"], claims["iss"]) != (previous["sub"], previous["iss"]):
        raise Refused("id token de rafraîchissement d'un autre professionnel (sub ou iss différents)")
    return claims, kid


# -- userinfo -------------------------------------------------------------------------------------------------
def _userinfo(session: Session, http: httpx.Client, access_token: str, sub: str) -> dict[str, Any]:
    """UserInfo (Core §5.3), JSON or signed JWT (§5.3.2); its ``sub`` must be the id token's."""
    response = http.get(
        _metadata(session, http)["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )
    if response.status_code != 200:
        raise Refused(f"userinfo refusé par Pro Santé Connect (HTTP {response.status_code})")
    if response.headers.get("content-type", "").startswith("application/jwt"):
        claims, _ = _verify_jwt(session, http, response.text.strip())
    else:
        claims = response.json()
    if claims.get("sub") != sub:
        raise Refused("userinfo refusé: sub différent de celui de l'id token")
    return claims


def _professional(userinfo: dict[str, Any], finess: str) -> dict[str, Any]:
    """idNat_PS, RPPS (idNat_PS "8" + 11 digits) and the activity at the establishment's FINESS."""
    id_nat = str(userinfo.get("SubjectNameID") or "")
    if not id_nat:
        raise Refused("userinfo sans SubjectNameID (idNat_PS)")
    rpps = id_nat[1:] if len(id_nat) == 12 and id_nat.isdigit() and id_nat.startswith("8") else None
    activities = [
        a for e in (userinfo.get("SubjectRefPro") or {}).get("exercices") or [] for a in e.get("activities") or []
    ]
    if not any(a.get("numeroFinessSite") == finess for a in activities):
        raise Refused(f"le professionnel {id_nat} n'a aucune activité dans l'établissement de FINESS {finess}")
    return {"id_nat_ps": id_nat, "rpps": rpps, "finess": finess, "nom": str(userinfo.get("family_name", ""))}


# -- authorization --------------------------------------------------------------------------------------------
def _authorize(session: Session, http: httpx.Client) -> tuple[dict[str, list[str]], str, str, str]:
    """Send the authorization request and follow the provider's redirects up to our redirect_uri.

    Returns (redirect query, state, nonce, code_verifier)."""
    client, metadata = _client(session), _metadata(session, http)
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")
    url = (
        metadata["authorization_endpoint"]
        + "?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": client["client_id"],
                "redirect_uri": client["redirect_uri"],
                "scope": SCOPE,
                "state": state,
                "nonce": nonce,
                "acr_values": ACR,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
    )
    for _ in range(MAX_REDIRECTS):
        response = http.get(url)
        location = response.headers.get("location", "")
        if response.status_code not in (301, 302, 303, 307, 308) or not location:
            raise Refused(
                f"Pro Santé Connect n'a pas renvoyé vers le DUI (HTTP {response.status_code}: "
                "aucun professionnel présélectionné ?)"
            )
        url = str(response.url.join(location))
        if url.split("?")[0] == client["redirect_uri"]:
            return parse_qs(urlsplit(url).query), state, nonce, verifier
    raise Refused("trop de redirections à l'authentification Pro Santé Connect")


def _login(session: Session, http: httpx.Client, finess: str) -> dict[str, Any]:
    client, metadata = _client(session), _metadata(session, http)
    params, state, nonce, verifier = _authorize(session, http)
    if params.get("state") != [state]:
        raise Refused("réponse d'autorisation refusée: state différent de celui envoyé (CSRF)")
    if "iss" in params and params["iss"] != [metadata["issuer"]]:
        raise Refused("réponse d'autorisation d'un autre émetteur (iss)")
    if "error" in params:
        raise Refused(
            f"authentification refusée: {params['error'][0]} {params.get('error_description', [''])[0]}".strip()
        )
    if not params.get("code"):
        raise Refused("réponse d'autorisation sans code")
    tokens = _token_request(
        session,
        http,
        {
            "grant_type": "authorization_code",
            "code": params["code"][0],
            "redirect_uri": client["redirect_uri"],
            "code_verifier": verifier,
        },
    )
    claims, kid = _check_id_token(session, http, str(tokens.get("id_token", "")), nonce)
    userinfo = _userinfo(session, http, str(tokens.get("access_token", "")), claims["sub"])
    facts = _professional(userinfo, finess)
    facts.update(sub=claims["sub"], kid=kid, sid=claims.get("sid"))
    return {"tokens": tokens, "id_claims": claims, "facts": facts}


# -- actions --------------------------------------------------------------------------------------------------
def psc_login(session: Session, body: dict[str, Any]) -> Outcome:
    """Authorization code flow with PKCE S256; the professional must work in the establishment."""
    state = _state(session)
    state.pop("login", None)
    try:
        with _http(session) as http:
            login = _login(session, http, body["establishment"]["finess"])
    except Refused as exc:
        return {"status": "failed", "detail": f"connexion Pro Santé Connect refusée: {exc}", "data": {}}
    except (httpx.HTTPError, ValueError, KeyError, LookupError) as exc:
        return {
            "status": "failed",
            "detail": f"connexion Pro Santé Connect impossible: {type(exc).__name__}: {exc}",
            "data": {},
        }
    state["login"] = login
    facts = login["facts"]
    return {"status": "done", "detail": f"connecté: {facts['nom']} ({facts['id_nat_ps']})", "data": dict(facts)}


def psc_refresh(session: Session, body: dict[str, Any]) -> Outcome:
    """refresh_token grant with the newest refresh token (the provider rotates it at each use)."""
    login = _state(session).get("login")
    if login is None:
        return {"status": "failed", "detail": "aucune session Pro Santé Connect à rafraîchir", "data": {}}
    try:
        with _http(session) as http:
            tokens = _token_request(
                session, http, {"grant_type": "refresh_token", "refresh_token": login["tokens"]["refresh_token"]}
            )
            claims = login["id_claims"]
            if tokens.get("id_token"):
                claims, _ = _check_id_token(session, http, str(tokens["id_token"]), None, previous=claims)
    except Refused as exc:
        return {"status": "failed", "detail": f"rafraîchissement Pro Santé Connect refusé: {exc}", "data": {}}
    except (httpx.HTTPError, ValueError, KeyError, LookupError) as exc:
        return {"status": "failed", "detail": f"rafraîchissement Pro Santé Connect impossible: {exc}", "data": {}}
    login["tokens"] = {**login["tokens"], **tokens}  # the new refresh token replaces the used one
    login["id_claims"] = claims
    login["refreshes"] = login.get("refreshes", 0) + 1
    return {
        "status": "done",
        "detail": f"session Pro Santé Connect rafraîchie ({login['refreshes']})",
        "data": {"refreshes": login["refreshes"], "sid": login["facts"].get("sid")},
    }


def psc_logout(session: Session, body: dict[str, Any]) -> Outcome:
    """RP-initiated logout: id_token_hint, post_logout_redirect_uri and state, then the local session is closed."""
    login = _state(session).pop("login", None)
    if login is None:
        return {"status": "failed", "detail": "aucune session Pro Santé Connect à fermer", "data": {}}
    client, state = session.body.get("psc_client") or {}, secrets.token_urlsafe(24)
    try:
        with _http(session) as http:
            url = (
                _metadata(session, http)["end_session_endpoint"]
                + "?"
                + urlencode(
                    {
                        "id_token_hint": login["tokens"]["id_token"],
                        "post_logout_redirect_uri": client.get("post_logout_redirect_uri", ""),
                        "state": state,
                    }
                )
            )
            response = http.get(url)
    except (httpx.HTTPError, ValueError, KeyError, LookupError, Refused) as exc:
        return {"status": "failed", "detail": f"déconnexion Pro Santé Connect impossible: {exc}", "data": {}}
    location = response.headers.get("location", "")
    if response.status_code not in (302, 303) or location.split("?")[0] != client.get("post_logout_redirect_uri"):
        return {
            "status": "failed",
            "detail": f"déconnexion refusée par Pro Santé Connect (HTTP {response.status_code})",
            "data": {},
        }
    if parse_qs(urlsplit(location).query).get("state") != [state]:
        return {"status": "failed", "detail": "déconnexion: state de retour différent de celui envoyé", "data": {}}
    sid = login["facts"].get("sid")
    return {"status": "done", "detail": "déconnecté de Pro Santé Connect", "data": {"sid": sid}}


ACTIONS = {"psc-login": psc_login, "psc-refresh": psc_refresh, "psc-logout": psc_logout}
