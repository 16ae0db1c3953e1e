"""Pro Santé Connect steps: choose who authenticates, inject provider faults, make the DUI log in, refresh and log
out, then judge from the OIDC exchanges the simulator journaled and from what the DUI reports."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from pytest_bdd import given, parsers, then, when

from harness.core.journal import Exchange, JournalFilter, Outcome
from harness.host.simulator import Fault
from harness.runtime.environment import ScenarioContext
from harness.sut.base import ActionStatus, PscLogin
from mock_services.psc.model import Activity, Exercice
from mock_services.psc.provider import (
    FAULT_ACR,
    FAULT_CODE_EXPIRED,
    FAULT_DOWN,
    FAULT_NO_ACTIVITY,
    FAULT_WRONG_AUDIENCE,
    FAULT_WRONG_STATE,
    Provider,
)

SERVICE = "psc"


def _provider(socle: ScenarioContext) -> Provider:
    provider: Provider = socle.simulator(SERVICE).provider  # type: ignore[attr-defined]
    return provider


def _describe(exchange: Exchange) -> str:
    lines = [f"{exchange.operation} {exchange.outcome} (échange {exchange.id})"]
    if exchange.error_code:
        lines.append(f"erreur: {exchange.error_code} {exchange.error_message}")
    shown = {
        k: v
        for k, v in exchange.details.items()
        if k
        in (
            "client_id",
            "grant_type",
            "pkce",
            "id_nat_ps",
            "finess",
            "acr",
            "aud",
            "kid",
            "faults",
            "login_source",
            "sid",
        )
    }
    if shown:
        lines.append(json.dumps(shown, ensure_ascii=False, sort_keys=True))
    return "\n".join(lines)


def _exchanges(socle: ScenarioContext, operation: str, *, whole_scenario: bool = False) -> list[Exchange]:
    if whole_scenario:
        found = socle.env.journal.query(
            JournalFilter(service=SERVICE, operation=operation, run_id=socle.env.run_id, scenario_id=socle.scenario_id)
        )
    else:
        found = socle.exchanges_since_action(SERVICE, operation)
    for exchange in found:
        socle.attach("Échange Pro Santé Connect", _describe(exchange), exchange)
    return found


def _inject(socle: ScenarioContext, kind: str, text: str, params: dict[str, str] | None = None, count: int = 1) -> None:
    socle.inject_fault(SERVICE, Fault(kind, params or {}, count))
    socle.attach("Panne simulée PSC", text)


def _login(socle: ScenarioContext, label: str) -> None:
    if socle.establishment is None:
        raise AssertionError("aucun ESSMS choisi (étape « Soit l'ESSMS ... équipé du DUI sous test » manquante)")
    action = PscLogin(establishment=socle.establishment)
    socle.act(f"{label} ({socle.establishment.name})", lambda: socle.sut.psc_login(action))


def _reported(socle: ScenarioContext, status: ActionStatus, what: str):  # noqa: ANN202 - a dui_shows check
    """A check of :meth:`ScenarioContext.dui_shows`: the driver reported ``status`` for the last action."""

    def check(data: dict) -> str | None:
        result = socle.last_action
        if result is not None and result.status is status:
            return None
        return f"{what}: le DUI indique {result.status if result else 'rien'}: {result.detail if result else 'aucune action'}"

    return check


def _require_done(socle: ScenarioContext, what: str) -> None:
    """The action did not fail (a delegated action is judged by the operator's answer)."""
    result = socle.last_action
    if result is None or result.status not in (ActionStatus.DONE, ActionStatus.DELEGATED):
        raise AssertionError(f"{what}: le DUI indique un échec: {result.detail if result else 'aucune action'}")


# Given -------------------------------------------------------------------------------------------
@given(parsers.parse('le professionnel "{login}" s\'authentifiera auprès de Pro Santé Connect'))
@given(parsers.parse('the professional "{login}" will authenticate at Pro Santé Connect'))
def next_login(socle: ScenarioContext, login: str) -> None:
    provider = _provider(socle)
    provider.set_next_login(login)
    user = provider.user(login)
    assert user is not None
    socle.attach(
        "Professionnel",
        f"{user.display_name}, idNat_PS {user.id_nat_ps}, activités FINESS {', '.join(user.finess_sites) or 'aucune'}",
    )


@given(parsers.parse('le professionnel "{login}" exerce aussi dans l\'ESSMS "{name}"'))
@given(parsers.parse('the professional "{login}" also works in the establishment "{name}"'))
def add_activity(socle: ScenarioContext, request: pytest.FixtureRequest, login: str, name: str) -> None:
    """Change a professional at run time (as the RPPS would): one more activity, undone at the end of the scenario."""
    provider = _provider(socle)
    user = provider.user(login)
    if user is None:
        raise LookupError(f"professionnel inconnu du simulateur PSC: {login!r}")
    essms = socle.env.testdata.establishment(name)
    activity = Activity(
        finess_site=essms.finess,
        finess_juridique=essms.finess_juridique,
        structure_id="F" + essms.finess,
        raison_sociale=essms.name,
        secteur="SA17",
        mode_exercice="S",
    )
    first, *rest = user.exercices or (Exercice(profession=""),)
    provider.put_user(replace(user, exercices=(replace(first, activities=(*first.activities, activity)), *rest)))
    request.addfinalizer(lambda: provider.put_user(user))
    socle.attach(
        "Professionnel modifié", f"{user.display_name}: activité ajoutée à {essms.name} (FINESS {essms.finess})"
    )


@given("Pro Santé Connect émettra le prochain id token pour une autre audience")
@given("le simulateur PSC émettra le prochain id token pour une autre audience")
@given("the PSC simulator will issue the next id token for another audience")
def fault_audience(socle: ScenarioContext) -> None:
    _inject(socle, FAULT_WRONG_AUDIENCE, "prochain id token émis avec aud = autre fournisseur de service")


@given("Pro Santé Connect renverra un state altéré à la prochaine authentification")
@given("le simulateur PSC renverra un state altéré à la prochaine authentification")
@given("the PSC simulator will return an altered state at the next authentication")
def fault_state(socle: ScenarioContext) -> None:
    _inject(socle, FAULT_WRONG_STATE, "prochaine réponse d'autorisation avec un autre state")


@given("Pro Santé Connect n'atteindra pas le niveau eidas1 à la prochaine authentification")
@given("le simulateur PSC n'atteindra pas le niveau eidas1 à la prochaine authentification")
@given("the PSC simulator will not reach the eidas1 level at the next authentication")
def fault_acr(socle: ScenarioContext) -> None:
    _inject(socle, FAULT_ACR, "prochain id token avec acr = eidas0")


@given("le code d'autorisation PSC suivant sera expiré")
@given("the next PSC authorization code will be expired")
def fault_code_expired(socle: ScenarioContext) -> None:
    _inject(socle, FAULT_CODE_EXPIRED, "prochain code d'autorisation déjà expiré")


@given(parsers.parse("Pro Santé Connect sera indisponible pour les {count:d} prochaines requêtes"))
@given(parsers.parse("le simulateur PSC sera indisponible pour les {count:d} prochaines requêtes"))
@given(parsers.parse("the PSC simulator will be down for the next {count:d} requests"))
def fault_down(socle: ScenarioContext, count: int) -> None:
    _inject(socle, FAULT_DOWN, f"Pro Santé Connect répond 503 aux {count} prochaines requêtes", count=count)


@given(parsers.parse("le professionnel n'aura pas d'activité dans l'ESSMS \"{name}\" à sa prochaine connexion"))
@given(parsers.parse('the professional will have no activity in the establishment "{name}" at the next login'))
def fault_no_activity(socle: ScenarioContext, name: str) -> None:
    essms = socle.env.testdata.establishment(name)
    _inject(
        socle,
        FAULT_NO_ACTIVITY,
        f"activités au FINESS {essms.finess} retirées à la prochaine connexion",
        {"finess": essms.finess},
    )


# When --------------------------------------------------------------------------------------------
@when("le professionnel se connecte au DUI avec Pro Santé Connect")
@when("the professional logs in to the DUI with Pro Santé Connect")
def login(socle: ScenarioContext) -> None:
    _login(socle, "connexion Pro Santé Connect")


@when("le professionnel se reconnecte au DUI avec Pro Santé Connect")
@when("the professional logs in again to the DUI with Pro Santé Connect")
def login_again(socle: ScenarioContext) -> None:
    _login(socle, "nouvelle connexion Pro Santé Connect")


@when("le DUI rafraîchit la session Pro Santé Connect")
@when("the DUI refreshes the Pro Santé Connect session")
def refresh(socle: ScenarioContext) -> None:
    socle.act("rafraîchissement de la session PSC", socle.sut.psc_refresh)


@when("le professionnel se déconnecte du DUI")
@when("the professional logs out of the DUI")
def logout(socle: ScenarioContext) -> None:
    socle.act("déconnexion PSC", socle.sut.psc_logout)


@when("Pro Santé Connect renouvelle ses clés de signature")
@when("le simulateur PSC renouvelle ses clés de signature")
@when("the PSC simulator rotates its signing keys")
def rotate(socle: ScenarioContext) -> None:
    kids = _provider(socle).rotate_keys()
    socle.attach("Rotation des clés PSC", "nouvelles clés: " + ", ".join(kids))


# Then --------------------------------------------------------------------------------------------
@then("Pro Santé Connect a délivré les jetons au DUI avec PKCE S256")
@then("le simulateur PSC a délivré les jetons au DUI avec PKCE S256")
@then("the PSC simulator issued the tokens to the DUI with PKCE S256")
def tokens_issued(socle: ScenarioContext) -> None:
    tokens = [e for e in _exchanges(socle, "oidc.token") if e.details.get("grant_type") == "authorization_code"]
    accepted = [e for e in tokens if e.outcome is Outcome.ACCEPTED]
    if not accepted:
        refused = [
            f"{e.operation}: {e.error_code} {e.error_message}"
            for e in socle.env.journal.query(
                JournalFilter(
                    service=SERVICE,
                    outcome=Outcome.REJECTED,
                    run_id=socle.env.run_id,
                    scenario_id=socle.scenario_id,
                    since_seq=socle.mark,
                )
            )
        ]
        raise AssertionError(
            "aucun jeton délivré par le simulateur PSC" + (f" (refus: {'; '.join(refused)})" if refused else "")
        )
    if accepted[-1].details.get("pkce") != "S256":
        raise AssertionError("jetons délivrés sans vérification PKCE S256")


@then("le DUI a lu les informations du professionnel dans userinfo")
@then("the DUI read the professional's information from userinfo")
def userinfo_read(socle: ScenarioContext) -> None:
    if not [e for e in _exchanges(socle, "oidc.userinfo") if e.outcome is Outcome.ACCEPTED]:
        raise AssertionError("le DUI n'a pas appelé userinfo")


@then(parsers.parse('le DUI identifie le professionnel par son RPPS "{rpps}" dans l\'ESSMS "{finess}"'))
@then(parsers.parse('le DUI identifie le professionnel par son RPPS "{rpps}" dans l\'ESSMS de FINESS "{finess}"'))
@then(parsers.parse('the DUI identifies the professional by RPPS "{rpps}" in the establishment "{finess}"'))
@then(parsers.parse('the DUI identifies the professional by RPPS "{rpps}" in the establishment with FINESS "{finess}"'))
def identified_rpps(socle: ScenarioContext, rpps: str, finess: str) -> None:
    """The establishment by its name (or its FINESS, the former wording)."""
    finess = socle.env.testdata.establishment(finess).finess

    def check(data: dict) -> str | None:
        socle.attach("Identité lue par le DUI", json.dumps(data, ensure_ascii=False, sort_keys=True))
        if data.get("rpps") != rpps:
            return f"RPPS lu par le DUI: {data.get('rpps')!r}, attendu {rpps!r} (idNat_PS {data.get('id_nat_ps')})"
        if data.get("finess") != finess:
            return f"FINESS de l'activité retenue par le DUI: {data.get('finess')!r}, attendu {finess!r}"
        return None

    _require_done(socle, "connexion PSC")
    socle.dui_shows(
        f"Le DUI affiche-t-il le professionnel connecté avec le RPPS {rpps}, pour l'établissement de FINESS {finess} ?",
        check,
    )


@then(parsers.parse('le DUI identifie le professionnel par son identifiant national "{id_nat}" sans RPPS'))
@then(parsers.parse('the DUI identifies the professional by the national identifier "{id_nat}" without RPPS'))
def identified_without_rpps(socle: ScenarioContext, id_nat: str) -> None:
    def check(data: dict) -> str | None:
        socle.attach("Identité lue par le DUI", json.dumps(data, ensure_ascii=False, sort_keys=True))
        if data.get("id_nat_ps") != id_nat:
            return f"idNat_PS lu par le DUI: {data.get('id_nat_ps')!r}, attendu {id_nat!r}"
        if data.get("rpps") is not None:
            return f"le DUI attribue un RPPS ({data.get('rpps')!r}) à un professionnel qui n'en a pas"
        return None

    _require_done(socle, "connexion PSC")
    socle.dui_shows(
        f"Le DUI affiche-t-il le professionnel connecté avec l'identifiant national {id_nat}, sans RPPS ?", check
    )


@then("le DUI indique que le professionnel est connecté")
@then("the DUI reports the professional as logged in")
def logged_in(socle: ScenarioContext) -> None:
    socle.dui_shows(
        "Le DUI indique-t-il que le professionnel est connecté ?", _reported(socle, ActionStatus.DONE, "connexion PSC")
    )


@then("le DUI refuse la connexion du professionnel")
@then("the DUI refuses the professional's login")
def refused(socle: ScenarioContext) -> None:
    socle.dui_shows(
        "Le DUI a-t-il refusé la connexion du professionnel ?",
        _reported(socle, ActionStatus.FAILED, "refus de la connexion (le DUI a accepté la connexion)"),
    )
    socle.attach("Refus du DUI", socle.last_action.detail if socle.last_action else "")


@then(parsers.parse('le motif du refus mentionne le FINESS de l\'ESSMS "{ref}"'))
@then(parsers.parse('the reason of the refusal mentions the FINESS of the establishment "{ref}"'))
def refusal_names_establishment(socle: ScenarioContext, ref: str) -> None:
    """The establishment by its name; the DUI's refusal names its FINESS (the activity PSC did not list)."""
    refusal_reason(socle, socle.env.testdata.establishment(ref).finess)


@then(parsers.parse('le motif du refus mentionne "{text}"'))
@then(parsers.parse('the reason of the refusal mentions "{text}"'))
def refusal_reason(socle: ScenarioContext, text: str) -> None:
    detail = socle.last_action.detail if socle.last_action else "aucune action"
    socle.dui_shows(
        f"Le motif du refus affiché par le DUI mentionne-t-il « {text} » ?",
        lambda data: (
            None if text.casefold() in detail.casefold() else f"motif attendu contenant {text!r}, obtenu: {detail}"
        ),
    )


@then(parsers.re(r"Pro Santé Connect a accepté (?P<n>\d+) rafraîchissements? de la session"), converters={"n": int})
@then(parsers.re(r"le simulateur PSC a accepté (?P<n>\d+) rafraîchissements? de la session"), converters={"n": int})
@then(parsers.re(r"the PSC simulator accepted (?P<n>\d+) session refresh(?:es)?"), converters={"n": int})
def refreshes_accepted(socle: ScenarioContext, n: int) -> None:
    found = [
        e
        for e in _exchanges(socle, "oidc.token", whole_scenario=True)
        if e.details.get("grant_type") == "refresh_token"
    ]
    accepted = [e for e in found if e.outcome is Outcome.ACCEPTED]
    if len(accepted) != n:
        refused = "; ".join(f"{e.error_code} {e.error_message}" for e in found if e.outcome is Outcome.REJECTED)
        raise AssertionError(
            f"{len(accepted)} rafraîchissement(s) accepté(s), attendu {n}" + (f" (refus: {refused})" if refused else "")
        )


@then("Pro Santé Connect n'a reçu aucun code d'autorisation rejoué")
@then("le simulateur PSC n'a reçu aucun code d'autorisation rejoué")
@then("the PSC simulator received no replayed authorization code")
def no_replayed_code(socle: ScenarioContext) -> None:
    """RFC 6749 §4.1.2: a code is used once; a replay makes the simulator revoke the whole session (RFC 9700 §4.5)."""
    replays = [e for e in _exchanges(socle, "oidc.token", whole_scenario=True) if e.details.get("replay")]
    if replays:
        revoked = replays[0].details.get("revoked", {})
        raise AssertionError(
            f"le DUI a renvoyé un code d'autorisation déjà échangé ({len(replays)} fois) : Pro Santé Connect a révoqué "
            f"toute la famille de jetons ({revoked}) et terminé la session (RFC 6749 §4.1.2, RFC 9700 §4.5)"
        )


@then("le DUI indique que la session est rafraîchie")
@then("the DUI reports the session as refreshed")
def refreshed(socle: ScenarioContext) -> None:
    socle.dui_shows(
        "Le DUI indique-t-il que la session est toujours ouverte (rafraîchie) ?",
        _reported(socle, ActionStatus.DONE, "rafraîchissement PSC"),
    )


@then("Pro Santé Connect a terminé la session du professionnel")
@then("le simulateur PSC a terminé la session du professionnel")
@then("the PSC simulator ended the professional's session")
def session_ended(socle: ScenarioContext) -> None:
    accepted = [e for e in _exchanges(socle, "oidc.logout") if e.outcome is Outcome.ACCEPTED]
    if not accepted:
        raise AssertionError("le DUI n'a pas demandé la déconnexion à Pro Santé Connect (session PSC toujours ouverte)")
    exchange = accepted[-1]
    if not exchange.details.get("id_token_hint") or not exchange.details.get("was_active"):
        raise AssertionError("déconnexion sans id_token_hint désignant la session ouverte")
    if not exchange.details.get("post_logout_redirect_uri") or not exchange.details.get("state"):
        raise AssertionError("déconnexion sans post_logout_redirect_uri ni state")
    if _provider(socle).session_active(str(exchange.details.get("sid"))):
        raise AssertionError("la session PSC est toujours active après la déconnexion")
    socle.dui_shows(
        "Le DUI indique-t-il que vous êtes déconnecté ?", _reported(socle, ActionStatus.DONE, "déconnexion PSC")
    )


@then("la connexion est vérifiée avec la nouvelle clé de signature")
@then("the login is verified with the new signing key")
def new_key_used(socle: ScenarioContext) -> None:
    _require_done(socle, "connexion PSC après rotation des clés")
    current = _provider(socle).keys.current("RS256").kid
    socle.dui_shows(
        "Le DUI a-t-il accepté la connexion signée avec la nouvelle clé de Pro Santé Connect ?",
        lambda data: (
            None
            if data.get("kid") == current
            else f"id token vérifié avec la clé {data.get('kid')!r}, clé courante {current!r}"
        ),
    )
