"""The Pro Santé Connect scenarios against the reference DUI (all pass) and against each PSC defect (the right
scenarios fail, as conformance failures, not errors). Every scenario is failed by at least one named defect."""

from __future__ import annotations

from pathlib import Path

import pytest
from catalogue_matrix import (
    assert_all_pass,
    assert_fails_exactly,
    assert_matrix_covers,
    run_tagged,
)

from harness.front.runner import RunResult
from harness.sut.psc_actions import PSC_DEFECTS

CONNEXION = "Un professionnel se connecte avec Pro Santé Connect et le DUI lit son RPPS et son FINESS"
SOCIAL = "Un professionnel du social sans RPPS se connecte avec Pro Santé Connect"
AUDIENCE = "Le DUI refuse un id token émis pour une autre audience"
STATE = "Le DUI refuse une réponse d'autorisation dont le state a été altéré"
ACR = "Le DUI refuse une authentification qui n'atteint pas le niveau eidas1"
ACTIVITE = "Un professionnel sans activité dans l'établissement est refusé"
ACTIVITE_AJOUTEE = "Un professionnel dont l'activité dans l'établissement vient d'être enregistrée est accepté"
RAFRAICHISSEMENT = "La session Pro Santé Connect est rafraîchie avec le refresh token renouvelé"
DECONNEXION = "La déconnexion du DUI termine la session Pro Santé Connect"
ROTATION = "Le DUI suit la rotation des clés de signature de Pro Santé Connect"
CODE_UNIQUE = "Le DUI n'échange le code d'autorisation qu'une fois, sans quoi toute la session est révoquée"

ALL = {
    CONNEXION,
    SOCIAL,
    AUDIENCE,
    STATE,
    ACR,
    ACTIVITE,
    ACTIVITE_AJOUTEE,
    RAFRAICHISSEMENT,
    DECONNEXION,
    ROTATION,
    CODE_UNIQUE,
}

# defect -> the scenarios it must make fail (every other PSC scenario must still pass)
EXPECTED_FAILURES = {
    "psc-sans-pkce": ALL,
    "psc-audience-non-verifiee": {AUDIENCE},
    "psc-state-non-verifie": {STATE},
    "psc-acr-non-verifie": {ACR},
    "psc-rpps-mal-lu": {CONNEXION, SOCIAL, ACTIVITE_AJOUTEE},
    "psc-finess-ignore": {ACTIVITE},
    "psc-cles-en-cache": {ROTATION},
    "psc-refresh-reutilise": {RAFRAICHISSEMENT},
    # the replay revokes the whole grant family, so the refresh that follows fails too (RFC 9700 §4.5)
    "psc-code-rejoue": {RAFRAICHISSEMENT, CODE_UNIQUE},
    "psc-deconnexion-locale": {DECONNEXION},
}


def _run(tmp_path: Path, sut: str) -> RunResult:
    return run_tagged(tmp_path, sut, "psc")


def test_psc_scenarios_pass_against_the_reference_dui(tmp_path: Path) -> None:
    assert_all_pass(_run(tmp_path, "reference"), ALL)


@pytest.mark.parametrize("defect", sorted(EXPECTED_FAILURES))
def test_faulty_dui_fails_the_expected_psc_scenarios(tmp_path: Path, defect: str) -> None:
    assert_fails_exactly(_run(tmp_path, f"faulty:{defect}"), EXPECTED_FAILURES[defect])


def test_every_psc_scenario_is_failed_by_some_defect() -> None:
    assert_matrix_covers(EXPECTED_FAILURES, ALL, {d.name for d in PSC_DEFECTS})
