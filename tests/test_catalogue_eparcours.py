"""The e-Parcours (cahier de liaison) scenarios against the reference DUI (all pass) and against each e-Parcours
defect (the right scenarios fail, as conformance failures, not errors). Every scenario is failed by a defect."""

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
from harness.sut.eparcours_actions import EPARCOURS_DEFECTS

CREATION = "Écriture d'une note dans le cahier de liaison (transaction)"
CREATION_REST = "Écriture d'une note dans le cahier de liaison (RESTful)"
URGENCE = "Lecture de la note urgente publiée par la plateforme"
VERSION = "Une mise à jour avec un ETag périmé est refusée (412) et le DUI le signale"
RECHERCHE = "Recherche des notes d'un type pour la personne"
ALL = {CREATION, CREATION_REST, URGENCE, VERSION, RECHERCHE}

# defect -> the scenarios it must make fail (every other e-Parcours scenario must still pass)
EXPECTED_FAILURES = {
    "note-type-hors-jdv": {CREATION, CREATION_REST, VERSION},  # VERSION: its Given step cannot write the note
    "ignore-urgence": {URGENCE},
    "sans-if-match": {VERSION},
    "recherche-sans-patient": {RECHERCHE},
}


def _run(tmp_path: Path, sut: str, scenarios: Path | None = None) -> RunResult:
    return run_tagged(tmp_path, sut, None if scenarios else "eparcours", scenarios=scenarios)


def test_eparcours_scenarios_pass_against_the_reference_dui(tmp_path: Path) -> None:
    assert_all_pass(_run(tmp_path, "reference"), ALL)


@pytest.mark.parametrize("defect", sorted(EXPECTED_FAILURES))
def test_faulty_dui_fails_the_expected_eparcours_scenarios(tmp_path: Path, defect: str) -> None:
    assert_fails_exactly(_run(tmp_path, f"faulty:{defect}"), EXPECTED_FAILURES[defect])


def test_every_eparcours_scenario_is_failed_by_some_defect() -> None:
    assert_matrix_covers(EXPECTED_FAILURES, ALL, {d.name for d in EPARCOURS_DEFECTS})


ENGLISH_FEATURE = """\
@eparcours
Feature: English aliases of the e-Parcours steps

  Background:
    Given the establishment "EHPAD Les Tilleuls" equipped with the DUI under test
    And the accompanied person "Lucie BONNET"

  Scenario: Write and read
    Given the e-Parcours platform has published an urgent "INST" note for the person: "Chute ce matin"
    And the e-Parcours platform has published a "OBS" note for the person "Paul LEROY": "RAS"
    When the DUI writes a "OBS" note in the person's cahier de liaison the RESTful way
    Then the e-Parcours platform records the note, valid against the CdLDocumentReference profile
    And the note is attached to the person's INS and to the establishment's FINESS

  Scenario: Urgent note and search
    Given the e-Parcours platform has published an urgent "INST" note for the person: "Appeler la famille"
    When the DUI searches the person's "INST" notes
    Then the platform receives a notes search on the person's INS and the type "INST"
    And the DUI reads the platform's urgent note
    And the DUI flags the note as urgent to its user
    And the DUI shows the person's "INST" notes, and only them

  Scenario: Stale ETag
    Given the DUI has written a "GEN" note in the person's cahier de liaison
    And a partner has changed this note on the platform meanwhile
    When the DUI updates its note
    Then the platform rejects the update with HTTP status 412
    And the change made on the platform is not overwritten
    And the DUI reports the version conflict to its user
"""


def test_english_aliases_run_and_can_fail(tmp_path: Path) -> None:
    folder = tmp_path / "features"
    folder.mkdir()
    (folder / "english.feature").write_text(ENGLISH_FEATURE, encoding="utf-8")
    ok = _run(tmp_path / "ok", "reference", scenarios=folder)
    assert [s.status for s in ok.scenarios] == [Status.PASSED] * 3, [(s.name, s.message) for s in ok.scenarios]
    bad = _run(tmp_path / "bad", "faulty:note-type-hors-jdv,ignore-urgence,sans-if-match", scenarios=folder)
    assert [s.status for s in bad.scenarios] == [Status.FAILED] * 3, [(s.name, s.message) for s in bad.scenarios]
