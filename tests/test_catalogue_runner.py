"""How the runner treats the catalogue: tag selection, an undefined step (an error, not a failure), a scenario
whose simulator is not started (an error). Each test runs the catalogue in a child pytest: marked ``slow``.
The defect matrix of every tag is ``tests/test_catalogue_defects.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from catalogue_matrices.mssante import ALL
from catalogue_matrix import run_tagged

from harness.core.events import Status
from harness.front.runner import RunResult

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, sut: str, tags: str | None = None, scenarios: Path | None = None) -> RunResult:
    return run_tagged(tmp_path, sut, tags, scenarios=scenarios)


def test_tags_select_scenarios(tmp_path: Path) -> None:
    result = _run(tmp_path / "a", "reference", tags="mssante")
    assert {s.name for s in result.scenarios} == ALL
    none = _run(tmp_path / "b", "reference", tags="not mssante and dmp_only_tag_that_does_not_exist")
    assert none.scenarios == [] and none.exit_code == 5


def test_undefined_step_is_an_error_not_a_failure(tmp_path: Path) -> None:
    folder = tmp_path / "features"
    folder.mkdir()
    (folder / "undefined.feature").write_text(
        "# language: fr\nFonctionnalité: F\n  Scénario: S\n    Soit une étape que personne n'a écrite\n",
        encoding="utf-8",
    )
    result = _run(tmp_path, "reference", scenarios=folder)
    [scenario] = result.scenarios
    assert scenario.status is Status.ERROR and "non définie" in scenario.message


def test_a_scenario_whose_simulator_is_not_started_is_an_error(tmp_path: Path) -> None:
    config_file = tmp_path / "socle-harness.toml"
    config_file.write_text('services = ["mssante", "insi", "psc"]\n', encoding="utf-8")
    result = run_tagged(tmp_path, "reference", "dmp", config_file=config_file)
    assert result.scenarios, "the DMP scenarios must still be reported"
    assert {s.status for s in result.scenarios} == {Status.ERROR}
    assert all("« dmp » n'est pas démarré" in s.message for s in result.scenarios)
