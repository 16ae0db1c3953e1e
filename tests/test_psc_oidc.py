"""The Pro Santé Connect simulator's OpenID Connect behaviour over real HTTPS: discovery, keys, the code flow with
both client authentications, userinfo (JSON and signed JWT), refresh with rotation, introspection, logout,
key rotation with a grace period, faults, the admin endpoints, the login page and the journal.

Tokens are checked with PyJWT (not the simulator's joserfc) so that the tests prove interoperability.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jwt as pyjwt
import pytest
from joserfc import jwt as jose_jwt
from psc_helpers import CLIENT_ID, LOGOUT_REDIRECT, RP, JournalMark, pkce, provider, start_env

from harness.core.journal import JournalFilter, Outcome
from harness.host.simulator import Fault
from harness.runtime.environment import SocleEnvironment
from mock_services.psc.keys import KeyRing
from mock_services.psc.model import Activity, Professional, load_fixtures

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    env = start_env(tmp_path_factory.mktemp("psc-oidc"))
    yield env
    env.stop()


@pytest.fixture
def rp(env: SocleEnvironment) -> Iterator[RP]:
    client = RP(env)
    yield client
    client.close()
    env.host.faults.clear()


def _verify(rp: RP, token: str, audience: str = CLIENT_ID) -> dict:
    keys = pyjwt.PyJWKSet.from_dict(rp.http.get(rp.url("jwks")).json())
    kid = pyjwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    return pyjwt.decode(token, key.key, algorithms=["RS256", "ES256"], audience=audience, issuer=rp.url("issuer"))


# fixtures ---------------------------------------------------------------------------------------------------------
def test_fixtures_cover_rpps_and_social_professionals_of_both_establishments() -> None:
    data = load_fixtures(REPO / "fixtures" / "psc")
    rpps = [u for u in data.users if u.rpps]
    social = [u for u in data.users if not u.rpps]
    assert rpps and social
    assert all(u.id_nat_ps == "8" + u.rpps for u in rpps if u.rpps)
    sites = {s for u in data.users for s in u.finess_sites}
    assert {"990000016", "990000024"} <= sites
    assert {c.client_id for c in data.clients} >= {"dui-reference"}


def test_reference_dui_registration_matches_the_fixture() -> None:
    from harness.sut.psc_actions import REFERENCE_PSC_CLIENT as cfg

    client = next(c for c in load_fixtures(REPO / "fixtures" / "psc").clients if c.client_id == cfg.client_id)
    assert client.client_secret == cfg.client_secret
    assert cfg.redirect_uri in client.redirect_uris and cfg.post_logout_redirect_uri in client.post_logout_redirect_uris


# discovery and keys -----------------------------------------------------------------------------------------------
def test_both_discovery_documents_describe_the_realm(env: SocleEnvironment, rp: RP) -> None:
    standard = rp.http.get(rp.url("discovery")).json()
    wallet = rp.http.get(rp.url("wallet_discovery")).json()
    assert standard == wallet
    assert standard["issuer"].endswith("/psc/auth/realms/esante-wallet")
    for name, suffix in [
        ("authorization_endpoint", "/auth"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("introspection_endpoint", "/token/introspect"),
        ("end_session_endpoint", "/logout"),
        ("jwks_uri", "/certs"),
    ]:
        assert standard[name] == standard["issuer"] + "/protocol/openid-connect" + suffix
    assert standard["code_challenge_methods_supported"] == ["S256"]
    assert standard["acr_values_supported"] == ["eidas1"]


def test_the_first_keys_are_generated_once_when_first_needed_or_warmed() -> None:
    """Generated beside the listeners (warm) or by the first request, never twice: the JWKS a DUI fetched first
    still verifies the tokens signed after (issue 18: serve answers before the RSA key exists)."""
    asked: list[str] = []
    ring = KeyRing(rsa_bits=2048, clock=lambda: asked.append("now") or 1000.0)
    assert asked == []  # building the realm generates nothing (no key has a creation time yet)
    first = ring.jwks()
    kids = [k["kid"] for k in first["keys"]]
    assert [k["alg"] for k in first["keys"]] == ["RS256", "ES256"] and len(set(kids)) == 2
    ring.warm()
    assert ring.jwks() == first and [ring.current("RS256").kid, ring.current("ES256").kid] == kids
    warmed = KeyRing(rsa_bits=2048)
    warmed.warm()
    kids = [k["kid"] for k in warmed.jwks()["keys"]]
    assert [warmed.current("RS256").kid, warmed.current("ES256").kid] == kids
    assert warmed.rotate() != kids and [k["kid"] for k in warmed.jwks()["keys"]][:2] == kids  # retired, in grace


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_signing_key_compact_jws_verifies_elsewhere_and_a_changed_byte_does_not(alg: str) -> None:
    key = KeyRing(rsa_bits=2048).current(alg)
    claims = {"iss": "https://psc.test", "sub": "810002909371", "given_name": "Hélène", "n": 3}
    token = key.sign_jwt(claims)
    public = pyjwt.PyJWK.from_dict(key.public_jwk()).key
    assert pyjwt.get_unverified_header(token) == {"typ": "JWT", "alg": alg, "kid": key.kid}
    assert pyjwt.decode(token, public, algorithms=[alg], options={"verify_aud": False}) == claims
    assert dict(jose_jwt.decode(token, key.key, algorithms=[alg]).claims) == claims
    head, body, signature = token.split(".")
    changed = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(f"{head}.{changed}.{signature}", public, algorithms=[alg])


def test_jwks_publishes_rs256_and_es256_public_keys(rp: RP) -> None:
    keys = rp.http.get(rp.url("jwks")).json()["keys"]
    assert {(k["kty"], k["alg"]) for k in keys} >= {("RSA", "RS256"), ("EC", "ES256")}
    assert all("d" not in k and k["use"] == "sig" and k["kid"] for k in keys)


#: ``activities[]`` of the PSC test environment's userinfo (sample in ansforge/PSC-POC remote-cache, psc-data.json)
PUBLISHED_ACTIVITY_FIELDS = (
    "codeModeExercice codeSecteurDactivite codeSectionPharmacien codeRole codeGenreActivite numeroSiretSite "
    "numeroSirenSite numeroFinessSite numeroFinessetablissementJuridique identifiantTechniqueDeLaStructure "
    "raisonSocialeSite enseigneCommercialeSite complementDestinataire complementPointGeographique numeroVoie "
    "indiceRepetitionVoie codeTypeDeVoie libelleVoie mentionDistribution bureauCedex codePostal codeCommune codePays "
    "telephone telephone2 telecopie adresseEMail codeDepartement ancienIdentifiantDeLaStructure autoriteDenregistrement"
).split()


def test_activity_keeps_every_published_field_in_order() -> None:
    raw = {
        "numeroFinessSite": "990000016",
        "codeGenreActivite": "GENR01",
        "codePostal": "75009",
        "telephone": "0102030405",
        "libelleVoie": "DE PARIS",
        "inconnu": "ignoré",
    }
    claims = Activity.from_claims(raw).claims()
    assert len(PUBLISHED_ACTIVITY_FIELDS) == 30 and list(claims) == PUBLISHED_ACTIVITY_FIELDS
    assert {k: v for k, v in claims.items() if v} == {
        "codeGenreActivite": "GENR01",
        "numeroFinessSite": "990000016",
        "libelleVoie": "DE PARIS",
        "codePostal": "75009",
        "telephone": "0102030405",
    }


# the code flow ----------------------------------------------------------------------------------------------------
def test_code_flow_with_basic_auth_gives_verifiable_psc_tokens(env: SocleEnvironment, rp: RP) -> None:
    mark = JournalMark(env)
    response, verifier = rp.authorize("claire.durand", nonce="n-123")
    callback = rp.callback(response)
    assert callback["state"] == "etat-1" and callback["iss"] == rp.url("issuer")
    answer = rp.code_exchange(callback["code"], verifier)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    claims = _verify(rp, tokens["id_token"])
    assert claims["nonce"] == "n-123" and claims["acr"] == "eidas1" and claims["azp"] == CLIENT_ID
    assert claims["sub"].endswith(":819900000019")
    # Keycloak's jti and session_state (= sid) are in PSC id tokens too
    assert len(claims["jti"]) >= 16 and claims["session_state"] == claims["sid"] == tokens["session_state"]
    info = rp.userinfo(tokens["access_token"]).json()
    assert info["sub"] == claims["sub"] and info["SubjectNameID"] == "819900000019"
    activity = info["SubjectRefPro"]["exercices"][0]["activities"][0]
    assert list(activity) == PUBLISHED_ACTIVITY_FIELDS  # the 30 fields PSC publishes, in its order
    assert activity["numeroFinessSite"] == "990000016" and activity["numeroFinessetablissementJuridique"] == "990000008"
    assert {
        k: v for k, v in activity.items() if k not in ("numeroFinessSite", "numeroFinessetablissementJuridique")
    } == {
        "codeModeExercice": "S",
        "codeSecteurDactivite": "SA17",
        "codeSectionPharmacien": "",
        "codeRole": "",
        "codeGenreActivite": "GENR01",
        "numeroSiretSite": "",
        "numeroSirenSite": "",
        "identifiantTechniqueDeLaStructure": "F990000016",
        "raisonSocialeSite": "EHPAD Les Tilleuls",
        "enseigneCommercialeSite": "",
        "complementDestinataire": "",
        "complementPointGeographique": "",
        "numeroVoie": "12",
        "indiceRepetitionVoie": "",
        "codeTypeDeVoie": "R",
        "libelleVoie": "DES TILLEULS",
        "mentionDistribution": "",
        "bureauCedex": "75012 PARIS",
        "codePostal": "75012",
        "codeCommune": "75112",
        "codePays": "99000",
        "telephone": "0102030405",
        "telephone2": "",
        "telecopie": "",
        "adresseEMail": "",
        "codeDepartement": "75",
        "ancienIdentifiantDeLaStructure": "",
        "autoriteDenregistrement": "CNOM/CNOM/ARS",
    }
    assert info["SubjectRole"] == ["10^1.2.250.1.213.1.1.5.5"] and info["Palier_Authentification"]
    ops = [(e.operation, e.outcome, e.essms, e.details.get("id_nat_ps")) for e in mark.new()]
    assert ops == [
        ("oidc.authorize", Outcome.ACCEPTED, "990000016", "819900000019"),
        ("oidc.token", Outcome.ACCEPTED, "990000016", "819900000019"),
        ("oidc.jwks", Outcome.ACCEPTED, None, None),
        ("oidc.userinfo", Outcome.ACCEPTED, "990000016", "819900000019"),
    ]
    evidence = env.journal.payload(mark.new("oidc.userinfo")[0].digest or "")
    assert evidence is not None and json.loads(evidence)["SubjectNameID"] == "819900000019"


def test_client_secret_post_and_es256_and_signed_userinfo(env: SocleEnvironment, rp: RP) -> None:
    verifier, challenge = pkce()
    response = rp.http.get(
        rp.url("authorize"),
        params={
            "client_id": "dui-recette-es256",
            "redirect_uri": "https://dui-recette.test/callback",
            "response_type": "code",
            "scope": "openid scope_all",
            "acr_values": "eidas1",
            "state": "x",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )  # pre-selected per client (default_login)
    code = rp.callback(response)["code"]
    answer = rp.token(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "https://dui-recette.test/callback",
            "code_verifier": verifier,
            "client_id": "dui-recette-es256",
            "client_secret": "dui-recette-es256-secret-essai",
        },
        auth=None,
    )
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    assert pyjwt.get_unverified_header(tokens["id_token"])["alg"] == "ES256"
    assert _verify(rp, tokens["id_token"], "dui-recette-es256")["sub"].endswith(":819900000035")
    info = rp.userinfo(tokens["access_token"])
    assert info.headers["content-type"].startswith("application/jwt")
    assert _verify(rp, info.text, "dui-recette-es256")["SubjectNameID"] == "819900000035"
    basic = rp.token(
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=("dui-recette-es256", "dui-recette-es256-secret-essai"),
    )
    assert basic.status_code == 401 and basic.json()["error"] == "invalid_client"  # basic not registered for it


def test_userinfo_as_jwt_on_request(rp: RP) -> None:
    tokens = rp.login("marc.petit")
    answer = rp.userinfo(tokens["access_token"], Accept="application/jwt")
    assert answer.headers["content-type"].startswith("application/jwt")
    assert _verify(rp, answer.text)["SubjectNameID"] == "819900000027"


def test_refresh_rotates_and_reuse_revokes_the_session(rp: RP) -> None:
    tokens = rp.login()
    first = rp.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200
    renewed = first.json()
    assert renewed["refresh_token"] != tokens["refresh_token"]
    claims = _verify(rp, renewed["id_token"])
    assert "nonce" not in claims and claims["sub"] == _verify(rp, tokens["id_token"])["sub"]
    assert rp.userinfo(renewed["access_token"]).status_code == 200
    reuse = rp.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert rp.introspect(renewed["refresh_token"]) == {"active": False}
    assert rp.userinfo(renewed["access_token"]).status_code == 401


def test_refresh_cannot_widen_the_scope(rp: RP) -> None:
    tokens = rp.login()
    answer = rp.token(
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "scope": "openid scope_all admin"}
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_scope"


def test_introspection_of_access_and_refresh_tokens(rp: RP) -> None:
    tokens = rp.login("sophie.lambert")
    access = rp.introspect(tokens["access_token"])
    # exactly the members of PSC's IntrospectionResponse (psc-data.json, ansforge/PSC-POC remote-cache), in its order
    assert list(access) == [
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
        "email_verified",
        "client_id",
        "username",
        "active",
    ]
    claims = _verify(rp, tokens["id_token"])
    assert access["active"] is True and access["client_id"] == CLIENT_ID and access["azp"] == CLIENT_ID
    assert access["username"] == access["preferred_username"] == "819900000035"
    assert access["typ"] == "Bearer" and access["scope"] == "openid scope_all" and access["email_verified"] is False
    assert access["session_state"] == access["sid"] == claims["sid"] == claims["session_state"]
    assert access["auth_time"] == claims["auth_time"] and access["nonce"] == "nonce-1"
    assert access["otherIds"] == [{"identifiant": "819900000035", "origine": "RPPS", "qualite": 1}]
    refresh = rp.introspect(tokens["refresh_token"])
    assert refresh["active"] is True and refresh["typ"] == "Refresh" and refresh["username"] == "819900000035"
    assert refresh["session_state"] == claims["sid"] and "token_type" not in refresh
    assert rp.introspect("inconnu") == {"active": False}


def test_logout_ends_the_session_and_redirects_with_state(env: SocleEnvironment, rp: RP) -> None:
    tokens = rp.login()
    mark = JournalMark(env)
    response = rp.http.get(
        rp.url("logout"),
        params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": LOGOUT_REDIRECT, "state": "au-revoir"},
    )
    assert response.status_code == 302 and response.headers["location"] == LOGOUT_REDIRECT + "?state=au-revoir"
    assert rp.introspect(tokens["access_token"]) == {"active": False}
    assert rp.userinfo(tokens["access_token"]).status_code == 401
    again = rp.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert again.json()["error"] == "invalid_grant"
    [exchange] = mark.new("oidc.logout")
    assert exchange.details["was_active"] is True and exchange.details["id_nat_ps"] == "819900000019"


def test_logout_without_hint_shows_a_page(rp: RP) -> None:
    response = rp.http.get(rp.url("logout"))
    assert response.status_code == 200 and "déconnecté" in response.text


# keys ------------------------------------------------------------------------------------------------------------
def test_rotation_keeps_the_old_key_published_during_the_grace(env: SocleEnvironment, rp: RP) -> None:
    before = rp.login()
    old_kid = pyjwt.get_unverified_header(before["id_token"])["kid"]
    provider(env).rotate_keys()
    kids = {k["kid"] for k in rp.http.get(rp.url("jwks")).json()["keys"]}
    assert old_kid in kids and len(kids) == 4
    assert rp.userinfo(before["access_token"]).status_code == 200  # signed by the retired key, still valid
    after = rp.login()
    assert pyjwt.get_unverified_header(after["id_token"])["kid"] != old_kid
    _verify(rp, after["id_token"])


def test_retired_keys_disappear_after_the_grace(tmp_path: Path) -> None:
    env = start_env(tmp_path, key_grace_seconds=0)
    rp = RP(env)
    try:
        tokens = rp.login()
        old_kids = {k["kid"] for k in rp.http.get(rp.url("jwks")).json()["keys"]}
        rp.admin.post(rp.url("admin") + "/rotate-keys").raise_for_status()
        new_kids = {k["kid"] for k in rp.http.get(rp.url("jwks")).json()["keys"]}
        assert len(new_kids) == 2 and not old_kids & new_kids
        assert rp.userinfo(tokens["access_token"]).status_code == 401
    finally:
        rp.close()
        env.stop()


# faults ------------------------------------------------------------------------------------------------------------
def test_fault_wrong_state(env: SocleEnvironment, rp: RP) -> None:
    env.host.faults.inject("psc", Fault("psc.wrong-state"))
    response, _ = rp.authorize()
    assert rp.callback(response)["state"] != "etat-1"


def test_fault_acr_not_met(env: SocleEnvironment, rp: RP) -> None:
    env.host.faults.inject("psc", Fault("psc.acr-not-met"))
    assert _verify(rp, rp.login()["id_token"])["acr"] == "eidas0"


def test_fault_wrong_audience(env: SocleEnvironment, rp: RP) -> None:
    env.host.faults.inject("psc", Fault("psc.wrong-audience"))
    id_token = rp.login()["id_token"]
    with pytest.raises(pyjwt.InvalidAudienceError):
        _verify(rp, id_token)


def test_fault_no_activity_in_a_finess(env: SocleEnvironment, rp: RP) -> None:
    env.host.faults.inject("psc", Fault("psc.no-activity", {"finess": "990000016"}))
    tokens = rp.login("sophie.lambert")
    info = rp.userinfo(tokens["access_token"]).json()
    sites = [a["numeroFinessSite"] for e in info["SubjectRefPro"]["exercices"] for a in e["activities"]]
    assert sites == ["990000024"]
    assert "990000016" in provider(env).user("sophie.lambert").finess_sites  # the fixture itself is unchanged


def test_fault_introspection_inactive_via_admin(rp: RP) -> None:
    tokens = rp.login()
    rp.admin.post(rp.url("admin") + "/faults", json={"kind": "psc.introspection-inactive"}).raise_for_status()
    assert rp.introspect(tokens["access_token"]) == {"active": False}
    assert rp.introspect(tokens["access_token"])["active"] is True


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer pas-le-bon-jeton"}, {"Authorization": "Basic eDp5"}])
def test_admin_endpoints_require_the_admin_token(env: SocleEnvironment, rp: RP, headers: dict[str, str]) -> None:
    """Issue 15 item 2: an injected psc.acr-not-met changed the next real login of anyone who asked."""
    mark = JournalMark(env)
    calls = [
        ("POST", "/faults", {"kind": "psc.acr-not-met"}),
        ("GET", "/users", None),
        ("PUT", "/users/x", {}),
        ("POST", "/next-login", {"login": "nadia.benali"}),
        ("DELETE", "/next-login", None),
        ("POST", "/rotate-keys", None),
    ]
    wrong = "Bearer pas" in headers.get("Authorization", "")
    for method, path, body in calls:
        response = rp.http.request(method, rp.url("admin") + path, json=body, headers=headers)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == (
            'Bearer realm="socle-harness-admin", error="invalid_token"'
            if wrong
            else 'Bearer realm="socle-harness-admin"'
        )
        assert response.json()["error"] == ("invalid_token" if wrong else "invalid_request")
    refused = mark.new()
    assert [(e.operation, e.outcome, e.error_code) for e in refused] == [
        (op, Outcome.REJECTED, "invalid_token" if wrong else "invalid_request")
        for op in (
            "admin.fault",
            "admin.users",
            "admin.user",
            "admin.next_login",
            "admin.next_login",
            "admin.rotate_keys",
        )
    ]
    assert _verify(rp, rp.login()["id_token"])["acr"] == "eidas1"  # the fault was not injected
    assert rp.admin.get(rp.url("admin") + "/users").status_code == 200


def test_admin_rejects_unknown_fault(rp: RP) -> None:
    response = rp.admin.post(rp.url("admin") + "/faults", json={"kind": "psc.inconnue"})
    assert response.status_code == 400


# professionals at run time, pre-selection, login page --------------------------------------------------------------
def test_admin_changes_a_professional_at_run_time(env: SocleEnvironment, rp: RP) -> None:
    raw = {
        "SubjectNameID": "819900000050",
        "given_name": "Inès",
        "family_name": "NOUVELLE",
        "SubjectRole": ["60^1.2.250.1.213.1.1.5.5"],
        "exercices": [{"codeProfession": "60", "activities": [{"numeroFinessSite": "990000024"}]}],
    }
    assert rp.admin.put(rp.url("admin") + "/users/ines.nouvelle", json=raw).status_code == 200
    info = rp.userinfo(rp.login("ines.nouvelle")["access_token"]).json()
    assert info["given_name"] == "Inès" and info["SubjectNameID"] == "819900000050"
    bad = rp.admin.put(rp.url("admin") + "/users/x", json={**raw, "SubjectNameID": "12345"})
    assert bad.status_code == 400


def test_steps_can_change_a_professional_directly(env: SocleEnvironment, rp: RP) -> None:
    prov = provider(env)
    user = prov.user("paul.roux")
    assert isinstance(user, Professional)
    from dataclasses import replace

    prov.put_user(replace(user, family_name="ROUX-MODIFIÉ"))
    assert rp.userinfo(rp.login("paul.roux")["access_token"]).json()["family_name"] == "ROUX-MODIFIÉ"
    prov.put_user(user)


def test_next_login_preselects_the_professional(env: SocleEnvironment, rp: RP) -> None:
    response = rp.admin.post(rp.url("admin") + "/next-login", json={"login": "nadia.benali", "client_id": CLIENT_ID})
    assert response.status_code == 200
    try:
        tokens = rp.login(login=None)  # type: ignore[arg-type]
        info = rp.userinfo(tokens["access_token"]).json()
        assert info["SubjectNameID"] == "3990000024/ASS0007" and info["otherIds"][0]["origine"] != "RPPS"
    finally:
        rp.admin.request("DELETE", rp.url("admin") + "/next-login", params={"client_id": CLIENT_ID})
    assert rp.admin.post(rp.url("admin") + "/next-login", json={"login": "personne"}).status_code == 400


def test_login_page_for_manual_recette(env: SocleEnvironment, rp: RP) -> None:
    response, verifier = rp.authorize(login=None)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'lang="fr"' in page and "Claire DURAND" in page and "Nadia BENALI" in page
    request_id = page.split('name="request_id" value="')[1].split('"')[0]
    action = page.split('action="')[1].split('"')[0]
    chosen = rp.http.post(action, data={"request_id": request_id, "login": "julien.moreau"})
    code = rp.callback(chosen)["code"]
    tokens = rp.code_exchange(code, verifier).json()
    assert rp.userinfo(tokens["access_token"]).json()["SubjectNameID"] == "3990000016/EDS0042"
    replay = rp.http.post(action, data={"request_id": request_id, "login": "julien.moreau"})
    assert replay.status_code == 400


def test_login_page_cancel_returns_access_denied(rp: RP) -> None:
    response, _ = rp.authorize(login=None)
    request_id = response.text.split('name="request_id" value="')[1].split('"')[0]
    action = response.text.split('action="')[1].split('"')[0]
    cancelled = rp.callback(rp.http.post(action, data={"request_id": request_id, "cancel": "1"}))
    assert cancelled["error"] == "access_denied" and cancelled["state"] == "etat-1"


def test_every_endpoint_call_is_journaled(env: SocleEnvironment, rp: RP) -> None:
    mark = JournalMark(env)
    tokens = rp.login()
    rp.userinfo(tokens["access_token"])
    rp.introspect(tokens["access_token"])
    rp.http.get(rp.url("jwks"))
    rp.http.get(rp.url("wallet_discovery"))
    rp.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    rp.http.get(rp.url("logout"), params={"id_token_hint": tokens["id_token"]})
    ops = [e.operation for e in mark.new()]
    assert ops == [
        "oidc.authorize",
        "oidc.token",
        "oidc.userinfo",
        "oidc.introspect",
        "oidc.jwks",
        "oidc.discovery",
        "oidc.token",
        "oidc.logout",
    ]
    assert env.journal.count(JournalFilter(service="psc", since_seq=mark.seq)) == len(ops)


def test_the_reference_dui_catches_the_http_errors_of_the_package_authlib_runs_on() -> None:
    """authlib's OAuth2Client runs on ``httpx2`` when that package is installed, else on ``httpx``: the reference
    DUI's PSC actions must catch that package's HTTPError (with httpx2 installed and only httpx.HTTPError caught, a
    503 of the PSC simulator escaped as an error in 12 catalogue scenarios). Meaningful where httpx2 is installed
    (authlib is deprecating its httpx fallback)."""
    import sys

    from harness.sut.psc_actions import HTTP_ERRORS, OAuth2Client

    transport = next(c for c in OAuth2Client.__mro__ if c.__name__ == "Client" and c.__module__.startswith("httpx"))
    assert sys.modules[transport.__module__.split(".")[0]].HTTPError in HTTP_ERRORS
