"""The e-Prescription scenarios against the reference DUI (all pass) and against each e-Prescription defect (the right
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

from harness.core.events import Status
from harness.front.runner import RunResult
from harness.sut.eprescription_actions import EPRESCRIPTION_DEFECTS

IMPORT = "Import d'une ordonnance numérique par son identifiant"
IMPORT_CDA = "Import d'une ordonnance numérique au format document CDA eP-MED-DM"
AUTRE = "Le DUI refuse l'ordonnance d'une autre personne"
INCONNUE = "Un identifiant d'ordonnance inconnu est signalé à l'utilisateur"
ANNULEE = "Une ordonnance annulée par le prescripteur n'est pas intégrée"
ALL = {IMPORT, IMPORT_CDA, AUTRE, INCONNUE, ANNULEE}

# defect -> the scenarios it must make fail (every other e-Prescription scenario must still pass)
EXPECTED_FAILURES = {
    "sans-confirmation": {IMPORT, IMPORT_CDA},
    "ignore-patient": {AUTRE},
    "ignore-ordonnance-inconnue": {INCONNUE},
    "importe-ordonnance-annulee": {ANNULEE},
}


def _run(tmp_path: Path, sut: str, scenarios: Path | None = None) -> RunResult:
    return run_tagged(tmp_path, sut, None if scenarios else "eprescription", scenarios=scenarios)


def test_eprescription_scenarios_pass_against_the_reference_dui(tmp_path: Path) -> None:
    assert_all_pass(_run(tmp_path, "reference"), ALL)


@pytest.mark.parametrize("defect", sorted(EXPECTED_FAILURES))
def test_faulty_dui_fails_the_expected_eprescription_scenarios(tmp_path: Path, defect: str) -> None:
    assert_fails_exactly(_run(tmp_path, f"faulty:{defect}"), EXPECTED_FAILURES[defect])


def test_every_eprescription_scenario_is_failed_by_some_defect() -> None:
    assert_matrix_covers(EXPECTED_FAILURES, ALL, {d.name for d in EPRESCRIPTION_DEFECTS})


ENGLISH_FEATURE = """\
@eprescription
Feature: English aliases of the e-Prescription steps

  Background:
    Given the establishment "EHPAD Les Tilleuls" equipped with the DUI under test
    And the accompanied person "Lucie BONNET"

  Scenario: Import, then refusals
    Given an electronic prescription issued for the person
    When the DUI imports the prescription by scanning its QR code
    Then the e-Prescription service receives the retrieval of the prescription by its identifier
    And the DUI confirms the integration of the prescription to the e-Prescription service
    And the import is attached to the person's INS and to the establishment's FINESS
    And the DUI shows the prescription's lines to its user

  Scenario: Cancelled prescription as a CDA document
    Given an electronic prescription cancelled by the prescriber for the person
    When the DUI imports the prescription's CDA document by scanning its QR code
    Then no integration of the prescription is confirmed
    And the DUI tells its user the prescription is cancelled

  Scenario: Another person's prescription, unknown identifier
    Given an electronic prescription issued for the person "Jeanne MARTIN"
    When the DUI imports the prescription by scanning its QR code
    Then no integration of the prescription is confirmed
    And the DUI tells its user the prescription is not the person's
"""


def test_english_aliases_run_and_can_fail(tmp_path: Path) -> None:
    folder = tmp_path / "features"
    folder.mkdir()
    (folder / "english.feature").write_text(ENGLISH_FEATURE, encoding="utf-8")
    ok = _run(tmp_path / "ok", "reference", scenarios=folder)
    assert [s.status for s in ok.scenarios] == [Status.PASSED] * 3, [(s.name, s.message) for s in ok.scenarios]
    bad = _run(tmp_path / "bad", "faulty:sans-confirmation,importe-ordonnance-annulee,ignore-patient", scenarios=folder)
    assert [s.status for s in bad.scenarios] == [Status.FAILED] * 3, [(s.name, s.message) for s in bad.scenarios]
