"""Hostile input against the Pro Santé Connect simulator.

Each case checks the protocol answer (RFC 6749 §4.1.2.1 / §5.2, RFC 6750 §3.1, RFC 7636 §4.6, RFC 7662 §2.2,
RFC 9700 §2.1 and §4.5), that the refusal is journaled, and that the provider keeps serving afterwards.
Forged tokens are built with joserfc where it allows it; the ``alg: none`` and "HS256 keyed with the public key"
forgeries are built by hand, since JOSE libraries (rightly) refuse to produce them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from psc_helpers import CLIENT_ID, LOGOUT_REDIRECT, REDIRECT, RP, SECRET, JournalMark, provider, start_env

from harness.core.journal import Outcome
from harness.runtime.environment import SocleEnvironment
from mock_services.psc.realm import TokenInvalid


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    env = start_env(tmp_path_factory.mktemp("psc-security"))
    yield env
    env.stop()


@pytest.fixture
def rp(env: SocleEnvironment) -> Iterator[RP]:
    client = RP(env)
    yield client
    assert client.alive(), "the provider stopped serving"
    client.close()
    env.host.faults.clear()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(env: SocleEnvironment, **overrides: Any) -> dict[str, Any]:
    """Access-token claims as the provider would issue them, for a live session, with ``overrides``."""
    rp = RP(env)
    try:
        tokens = rp.login()
    finally:
        rp.close()
    real = provider(env).verify(tokens["access_token"])
    real.update(overrides)
    return {k: v for k, v in real.items() if v is not None}


def _sign_real(env: SocleEnvironment, claims: dict[str, Any], **header: Any) -> str:
    key = provider(env).keys.current("RS256")
    return jwt.encode({"alg": "RS256", "kid": key.kid, **header}, claims, key.key)


def forge_alg_none(env: SocleEnvironment) -> str:
    head = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": provider(env).keys.current("RS256").kid}).encode())
    return f"{head}.{_b64(json.dumps(_claims(env)).encode())}."


def forge_hs256_public_key(env: SocleEnvironment) -> str:
    key = provider(env).keys.current("RS256")
    secret = key.key.as_pem(private=False)
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    body = _b64(json.dumps(_claims(env)).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def forge_unknown_kid(env: SocleEnvironment) -> str:
    stranger = RSAKey.generate_key(2048, auto_kid=True)
    return jwt.encode({"alg": "RS256", "kid": stranger.kid}, _claims(env), stranger)


def forge_stranger_key_real_kid(env: SocleEnvironment) -> str:
    stranger = RSAKey.generate_key(2048)
    return jwt.encode({"alg": "RS256", "kid": provider(env).keys.current("RS256").kid}, _claims(env), stranger)


def forge_no_kid(env: SocleEnvironment) -> str:
    return jwt.encode({"alg": "RS256"}, _claims(env), provider(env).keys.current("RS256").key)


def forge_expired(env: SocleEnvironment) -> str:
    now = int(time.time())
    return _sign_real(env, _claims(env, iat=now - 7200, exp=now - 3600))


def forge_future(env: SocleEnvironment) -> str:
    now = int(time.time())
    return _sign_real(env, _claims(env, iat=now + 3600, exp=now + 7200))


def forge_not_yet_valid(env: SocleEnvironment) -> str:
    return _sign_real(env, _claims(env, nbf=int(time.time()) + 3600))


def forge_wrong_issuer(env: SocleEnvironment) -> str:
    return _sign_real(env, _claims(env, iss="https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet"))


def forge_wrong_audience(env: SocleEnvironment) -> str:
    return _sign_real(env, _claims(env, aud="un-autre-client"))


def forge_id_token_as_access(env: SocleEnvironment) -> str:
    rp = RP(env)
    try:
        return str(rp.login()["id_token"])
    finally:
        rp.close()


def forge_garbage(env: SocleEnvironment) -> str:
    return "pas.un.jeton"


FORGERIES: dict[str, Callable[[SocleEnvironment], str]] = {
    "alg-none": forge_alg_none,
    "hs256-signed-with-public-key": forge_hs256_public_key,
    "unknown-kid": forge_unknown_kid,
    "real-kid-stranger-key": forge_stranger_key_real_kid,
    "no-kid": forge_no_kid,
    "expired": forge_expired,
    "issued-in-the-future": forge_future,
    "not-yet-valid": forge_not_yet_valid,
    "wrong-issuer": forge_wrong_issuer,
    "wrong-audience": forge_wrong_audience,
    "id-token-as-access-token": forge_id_token_as_access,
    "garbage": forge_garbage,
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_access_token_is_refused_at_userinfo(env: SocleEnvironment, rp: RP, forgery: str) -> None:
    token = FORGERIES[forgery](env)
    mark = JournalMark(env)
    response = rp.userinfo(token)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    [exchange] = mark.new("oidc.userinfo")
    assert exchange.outcome is Outcome.REJECTED and exchange.error_code == "invalid_token"


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_token_is_inactive_at_introspection(env: SocleEnvironment, rp: RP, forgery: str) -> None:
    assert rp.introspect(FORGERIES[forgery](env)) == {"active": False}


@pytest.mark.parametrize("forgery", ["alg-none", "hs256-signed-with-public-key", "unknown-kid", "wrong-issuer"])
def test_forged_id_token_hint_is_refused_at_logout(env: SocleEnvironment, rp: RP, forgery: str) -> None:
    mark = JournalMark(env)
    response = rp.http.get(
        rp.url("logout"),
        params={"id_token_hint": FORGERIES[forgery](env), "post_logout_redirect_uri": LOGOUT_REDIRECT, "state": "s"},
    )
    assert response.status_code == 400 and "location" not in response.headers
    assert "invalid_request" in response.text
    assert [e.outcome for e in mark.new("oidc.logout")] == [Outcome.REJECTED]


def test_id_token_of_another_client_is_refused_at_logout(env: SocleEnvironment, rp: RP) -> None:
    id_token = rp.login()["id_token"]
    response = rp.http.get(rp.url("logout"), params={"id_token_hint": id_token, "client_id": "dui-recette-es256"})
    assert response.status_code == 400


def test_missing_bearer_token_gets_a_bare_challenge(env: SocleEnvironment, rp: RP) -> None:
    response = rp.http.get(rp.url("userinfo"))
    assert response.status_code == 401
    assert (
        response.headers["www-authenticate"].startswith("Bearer")
        and "error=" not in response.headers["www-authenticate"]
    )


# authorization codes and PKCE ---------------------------------------------------------------------------------
def test_replayed_code_is_refused_and_revokes_the_tokens(env: SocleEnvironment, rp: RP) -> None:
    response, verifier = rp.authorize()
    code = rp.callback(response)["code"]
    first = rp.code_exchange(code, verifier)
    assert first.status_code == 200
    mark = JournalMark(env)
    second = rp.code_exchange(code, verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert second.headers["cache-control"] == "no-store"
    [exchange] = mark.new("oidc.token")
    assert exchange.outcome is Outcome.REJECTED and exchange.details.get("replay") is True
    tokens = first.json()
    assert rp.userinfo(tokens["access_token"]).status_code == 401
    assert rp.introspect(tokens["refresh_token"]) == {"active": False}


def test_concurrent_redemptions_of_one_code_leave_no_live_token(env: SocleEnvironment, rp: RP) -> None:
    """Grants run in worker threads: eight simultaneous redemptions of one code are one use and seven replays; the
    replays end the session, so whatever the interleaving no token issued from that code stays usable."""
    response, verifier = rp.authorize()
    code = rp.callback(response)["code"]
    barrier = threading.Barrier(8)

    def redeem() -> httpx.Response:
        other = RP(env)
        try:
            barrier.wait()
            return other.code_exchange(code, verifier)
        finally:
            other.close()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: redeem(), range(8)))
    issued = [a.json() for a in answers if a.status_code == 200]
    assert len(issued) <= 1
    assert sorted(a.json()["error"] for a in answers if a.status_code != 200) == ["invalid_grant"] * (8 - len(issued))
    for tokens in issued:
        assert rp.introspect(tokens["access_token"]) == {"active": False}
        assert rp.introspect(tokens["refresh_token"]) == {"active": False}
        refreshed = rp.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


def test_no_token_is_issued_for_a_session_ended_during_the_grant(env: SocleEnvironment, rp: RP) -> None:
    tokens = rp.login()
    realm = provider(env).realm
    sid = provider(env).verify(tokens["access_token"])["sid"]
    session = realm.sessions[sid]
    client = realm.client(CLIENT_ID)
    assert client is not None
    realm.revoke_session(sid)  # what a concurrent replay does between the grant's check and the issuing
    before = (dict(realm.access), dict(realm.refresh))
    with pytest.raises(TokenInvalid, match="session terminée"):
        provider(env).tokens.issue(client, session, ("openid", "scope_all"), nonce=None)
    assert (realm.access, realm.refresh) == before


def test_replayed_code_revokes_the_whole_grant_family_and_ends_the_session(env: SocleEnvironment, rp: RP) -> None:
    """RFC 6749 §4.1.2 / RFC 9700 §4.5: tokens refreshed from the code's tokens go too, and the session ends."""
    response, verifier = rp.authorize()
    code = rp.callback(response)["code"]
    first = rp.code_exchange(code, verifier).json()
    refreshed = rp.token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 200
    second = refreshed.json()
    sid = provider(env).verify(second["access_token"])["sid"]
    assert rp.userinfo(second["access_token"]).status_code == 200 and provider(env).session_active(sid)
    mark = JournalMark(env)
    replay = rp.code_exchange(code, verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    [exchange] = mark.new("oidc.token")
    assert exchange.outcome is Outcome.REJECTED and exchange.error_code == "invalid_grant"
    assert exchange.details["replay"] is True and exchange.details["session_ended"] is True
    assert exchange.details["sid"] == sid
    assert exchange.details["revoked"] == {"access_tokens": 2, "refresh_tokens": 1}  # the first refresh was rotated
    assert not provider(env).session_active(sid)
    assert rp.userinfo(second["access_token"]).status_code == 401
    assert rp.introspect(second["access_token"]) == {"active": False}
    assert rp.introspect(second["refresh_token"]) == {"active": False}
    again = rp.token({"grant_type": "refresh_token", "refresh_token": second["refresh_token"]})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "verifier",
    [
        pytest.param("A" * 43, id="other-verifier"),
        pytest.param(None, id="missing-verifier"),
        pytest.param("short", id="malformed-verifier"),
        pytest.param("é" * 50, id="non-ascii-verifier"),
    ],
)
def test_pkce_verifier_mismatch_is_invalid_grant(env: SocleEnvironment, rp: RP, verifier: str | None) -> None:
    response, _ = rp.authorize()
    answer = rp.code_exchange(rp.callback(response)["code"], verifier)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        pytest.param({"code_challenge": None, "code_challenge_method": None}, "invalid_request", id="no-pkce"),
        pytest.param({"code_challenge_method": "plain"}, "invalid_request", id="plain-method"),
        pytest.param({"code_challenge_method": None}, "invalid_request", id="no-method"),
        pytest.param({"code_challenge": "x" * 20}, "invalid_request", id="short-challenge"),
        pytest.param({"scope": "openid"}, "invalid_scope", id="no-scope_all"),
        pytest.param({"scope": "openid scope_all admin"}, "invalid_scope", id="unknown-scope"),
        pytest.param({"acr_values": None}, "invalid_request", id="no-acr_values"),
        pytest.param({"response_type": "token"}, "unsupported_response_type", id="implicit"),
        pytest.param({"request": "eyJ.e30."}, "request_not_supported", id="request-object"),
        pytest.param({"prompt": "none", "login_hint": None}, "login_required", id="prompt-none"),
    ],
)
def test_bad_authorization_request_redirects_with_the_error(
    env: SocleEnvironment, rp: RP, overrides: dict[str, Any], error: str
) -> None:
    mark = JournalMark(env)
    response, _ = rp.authorize(**overrides)
    params = rp.callback(response)
    assert response.headers["location"].startswith(REDIRECT + "?")
    assert params["error"] == error and params["state"] == "etat-1" and "code" not in params
    assert params["iss"] == env.endpoints["psc"]["issuer"]
    assert [e.error_code for e in mark.new("oidc.authorize")] == [error]


def test_expired_code_is_invalid_grant(env: SocleEnvironment, rp: RP) -> None:
    from harness.host.simulator import Fault

    env.host.faults.inject("psc", Fault("psc.code-expired"))
    response, verifier = rp.authorize()
    answer = rp.code_exchange(rp.callback(response)["code"], verifier)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_code_bound_to_redirect_uri_and_client(env: SocleEnvironment, rp: RP) -> None:
    response, verifier = rp.authorize()
    code = rp.callback(response)["code"]
    other = rp.token(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": "dui-recette-es256",
            "client_secret": "dui-recette-es256-secret-essai",
        },
        auth=None,
    )
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"
    response, verifier = rp.authorize()
    wrong_uri = rp.code_exchange(rp.callback(response)["code"], verifier, redirect_uri=REDIRECT + "/autre")
    assert wrong_uri.status_code == 400 and wrong_uri.json()["error"] == "invalid_grant"


# redirect URIs --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://attaquant.example/callback",
        REDIRECT + "/../../evil",
        REDIRECT + "?next=https://attaquant.example",
        REDIRECT + "#fragment",
        REDIRECT.replace("dui-reference.test", "dui-reference.test.attaquant.example"),
        REDIRECT.upper(),
        REDIRECT.replace("https", "http"),
        "",
        "javascript:alert(1)",
    ],
)
def test_open_redirect_is_refused_without_redirecting(env: SocleEnvironment, rp: RP, redirect_uri: str) -> None:
    mark = JournalMark(env)
    response, _ = rp.authorize(redirect_uri=redirect_uri)
    assert response.status_code == 400 and "location" not in response.headers
    assert "invalid_request" in response.text
    assert [e.outcome for e in mark.new("oidc.authorize")] == [Outcome.REJECTED]


@pytest.mark.parametrize("client_id", ["inconnu", "", "dui-reference\x00"])
def test_unknown_client_is_refused_without_redirecting(env: SocleEnvironment, rp: RP, client_id: str) -> None:
    response, _ = rp.authorize(client_id=client_id)
    assert response.status_code == 400 and "location" not in response.headers


def test_post_logout_open_redirect_is_refused(env: SocleEnvironment, rp: RP) -> None:
    id_token = rp.login()["id_token"]
    response = rp.http.get(
        rp.url("logout"), params={"id_token_hint": id_token, "post_logout_redirect_uri": "https://attaquant.example/"}
    )
    assert response.status_code == 400 and "location" not in response.headers


# client authentication ------------------------------------------------------------------------------------------
def test_wrong_secret_is_invalid_client_401(env: SocleEnvironment, rp: RP) -> None:
    response = rp.token({"grant_type": "refresh_token", "refresh_token": "x"}, auth=(CLIENT_ID, "mauvais"))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


def test_two_client_authentication_methods_are_refused(env: SocleEnvironment, rp: RP) -> None:
    response = rp.token(
        {"grant_type": "refresh_token", "refresh_token": "x", "client_id": CLIENT_ID, "client_secret": SECRET}
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_no_client_authentication_is_invalid_client(env: SocleEnvironment, rp: RP) -> None:
    response = rp.token({"grant_type": "refresh_token", "refresh_token": "x", "client_id": CLIENT_ID}, auth=None)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_garbled_basic_header_is_invalid_client(env: SocleEnvironment, rp: RP) -> None:
    response = rp.http.post(
        rp.url("token"),
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        headers={"Authorization": "Basic !!!pas-du-base64"},
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_unsupported_grant_type(env: SocleEnvironment, rp: RP) -> None:
    response = rp.token({"grant_type": "password", "username": "a", "password": "b"})
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


# oversized and malformed input ------------------------------------------------------------------------------------
def test_oversized_state_is_refused_without_reflecting_it(env: SocleEnvironment, rp: RP) -> None:
    response, _ = rp.authorize(state="s" * 5000)
    assert response.status_code == 400 and "location" not in response.headers
    assert "s" * 5000 not in response.text


def test_oversized_token_body_is_413(env: SocleEnvironment, rp: RP) -> None:
    mark = JournalMark(env)
    response = rp.token({"grant_type": "authorization_code", "code": "c", "padding": "x" * 200_000})
    assert response.status_code == 413 and response.json()["error"] == "invalid_request"
    assert [e.outcome for e in mark.new("oidc.token")] == [Outcome.REJECTED]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("grant_type=authorization_code&code=" + "c" * 5000, id="oversized-code"),
        pytest.param("grant_type=authorization_code&code=a&code=b", id="repeated-parameter"),
        pytest.param(b"grant_type=authorization_code&code=\xff\xfe", id="non-utf8"),
        pytest.param("grant_type=authorization_code&code=%FF%FE", id="percent-encoded-non-utf8"),
        pytest.param("", id="empty"),
    ],
)
def test_malformed_token_request_is_invalid_request(env: SocleEnvironment, rp: RP, body: str | bytes) -> None:
    response = rp.http.post(
        rp.url("token"),
        content=body,
        auth=(CLIENT_ID, SECRET),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_json_token_request_is_invalid_request(env: SocleEnvironment, rp: RP) -> None:
    response = rp.http.post(rp.url("token"), json={"grant_type": "authorization_code"}, auth=(CLIENT_ID, SECRET))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_repeated_authorization_parameter_is_refused(env: SocleEnvironment, rp: RP) -> None:
    url = httpx.URL(
        rp.url("authorize"), params=[("client_id", CLIENT_ID), ("redirect_uri", REDIRECT), ("redirect_uri", REDIRECT)]
    )
    response = rp.http.get(url)
    assert response.status_code == 400 and "location" not in response.headers


def test_oversized_query_is_refused(env: SocleEnvironment, rp: RP) -> None:
    response = rp.http.get(rp.url("authorize"), params={f"p{i}": "x" * 1000 for i in range(10)})
    assert response.status_code == 400


def test_provider_down_answers_503_and_recovers(env: SocleEnvironment, rp: RP) -> None:
    from harness.host.simulator import Fault

    env.host.faults.inject("psc", Fault("psc.down", {}, remaining=2))
    mark = JournalMark(env)
    assert rp.http.get(rp.url("discovery")).status_code == 503
    token = rp.token({"grant_type": "refresh_token", "refresh_token": "x"})
    assert token.status_code == 503 and token.json()["error"] == "temporarily_unavailable"
    assert [e.error_code for e in mark.new()] == ["temporarily_unavailable", "temporarily_unavailable"]


@pytest.mark.parametrize(
    ("method", "name"), [("GET", "token"), ("PUT", "userinfo"), ("DELETE", "jwks"), ("GET", "introspect")]
)
def test_wrong_method_is_405_and_journaled(env: SocleEnvironment, rp: RP, method: str, name: str) -> None:
    mark = JournalMark(env)
    response = rp.http.request(method, rp.url(name))
    assert response.status_code == 405 and response.json()["error"] == "invalid_request" and response.headers["allow"]
    assert [e.outcome for e in mark.new()] == [Outcome.REJECTED]


# hostile tokens and forms (issue 15 item 9): protocol answer, journaled, bounded memory, a real login right after
def _peak_rss_growth_mb(action: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``action``; how far this process's peak RSS (server and client) rose above its RSS before, in MB."""
    from pathlib import Path

    def status() -> dict[str, int]:
        lines = Path("/proc/self/status").read_text().splitlines()
        return {k: int(v.split()[0]) for k, _, v in (x.partition(":") for x in lines) if k in ("VmRSS", "VmHWM")}

    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
    before = status()["VmRSS"]
    result = action()
    return result, (status()["VmHWM"] - before) / 1024


HOSTILE_BEARERS = {
    "header-11kb-kid": _b64(b'{"alg":"RS256","kid":"' + b"k" * 8000 + b'"}') + "." + _b64(b"{}") + "." + _b64(b"s"),
    "header-nested-json": _b64(b'{"a":' * 60 + b"1" + b"}" * 60) + "." + _b64(b"{}") + "." + _b64(b"s"),
    "header-not-json": _b64(b"\xff\xfe not json") + "." + _b64(b"{}") + "." + _b64(b"s"),
    "token-over-16kb": "a" * 20_000,
    "five-segments": "a.b.c.d.e",
    "non-ascii": "jeton-é",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_BEARERS))
def test_hostile_bearer_tokens_are_invalid_token(env: SocleEnvironment, rp: RP, case: str) -> None:
    mark = JournalMark(env)
    token = HOSTILE_BEARERS[case]
    authorization = b"Bearer " + token.encode("utf-8")  # bytes: the non-ASCII case goes on the wire as UTF-8
    response, grown = _peak_rss_growth_mb(
        lambda: rp.http.get(rp.url("userinfo"), headers={"Authorization": authorization})
    )
    assert (response.status_code, response.json()["error"]) == (401, "invalid_token")
    assert response.headers["www-authenticate"].startswith('Bearer realm="esante-wallet", error="invalid_token"')
    assert [(e.outcome, e.error_code) for e in mark.new("oidc.userinfo")] == [(Outcome.REJECTED, "invalid_token")]
    introspected = rp.http.post(rp.url("introspect"), data={"token": token}, auth=(CLIENT_ID, SECRET))
    if len(token) <= 2048:  # RFC 7662 §2.2: an unusable token is inactive
        assert (introspected.status_code, introspected.json()) == (200, {"active": False})
    else:  # beyond the parameter bound (max_param_chars): the request itself is refused (RFC 6749 §5.2)
        assert (introspected.status_code, introspected.json()["error"]) == (400, "invalid_request")
    assert grown < 32
    assert rp.userinfo(rp.login()["access_token"]).status_code == 200  # a real token right after


FORM_BOMBS = {
    "20000-repeated-parameters": "grant_type=authorization_code" + "&code=c" * 9000,
    "20000-distinct-parameters": "grant_type=authorization_code&" + "&".join(f"p{i}=" for i in range(9000)),
    "one-60kb-value": "grant_type=authorization_code&code=" + "c" * 60_000,
    "only-separators": "&" * 60_000,
}


@pytest.mark.parametrize("case", sorted(FORM_BOMBS))
def test_form_bombs_at_the_token_endpoint_are_invalid_request(env: SocleEnvironment, rp: RP, case: str) -> None:
    body = FORM_BOMBS[case]
    assert len(body) <= 65536  # within the body bound: the parser itself must hold
    mark = JournalMark(env)
    response, grown = _peak_rss_growth_mb(
        lambda: rp.http.post(
            rp.url("token"),
            content=body,
            auth=(CLIENT_ID, SECRET),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    assert [(e.outcome, e.error_code) for e in mark.new("oidc.token")] == [(Outcome.REJECTED, "invalid_request")]
    assert grown < 32
    assert "access_token" in rp.login()
