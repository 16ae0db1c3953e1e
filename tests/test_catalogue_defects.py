"""The catalogue against the reference DUI (all pass) and against each named defect of the faulty DUI (exactly the
expected scenarios fail, as conformance failures, never errors): one parametrised test over the matrices of
``tests/catalogue_matrices`` (one per tag). A scenario that no defect can fail is itself a defect of the catalogue.

Every test here but the matrix checks runs the catalogue in a child pytest: marked ``slow``
(``python -m pytest -m "not slow"`` leaves them out).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from catalogue_matrix import Matrix, assert_all_pass, assert_fails_exactly, assert_matrix_covers, matrices, run_tagged

from harness.core.config import package_root
from harness.core.events import Status
from harness.sut.plugins import dui_sides
from harness.sut.reference import DEFECTS

MATRICES = {m.tag: m for m in matrices()}
CASES = [(m.tag, defect) for m in MATRICES.values() for defect in sorted(m.failures)]
ENGLISH = [m.tag for m in MATRICES.values() if m.english is not None]


def _titles_by_tag() -> dict[str, set[str]]:
    """Scenario titles of ``scenarios/*.feature`` by the tags of their feature (read, not run)."""
    found: dict[str, set[str]] = {}
    for feature in (package_root() / "scenarios").glob("*.feature"):
        text = feature.read_text(encoding="utf-8")
        tags = re.findall(r"@([\w-]+)", text.split("Fonctionnalité:", 1)[0])
        for title in re.findall(r"^\s*Scénario:\s*(.+?)\s*$", text, re.M):
            for tag in tags:
                found.setdefault(tag, set()).add(title)
    return found


def test_the_matrices_name_every_scenario_of_their_tag() -> None:
    titles = _titles_by_tag()
    for tag, matrix in MATRICES.items():
        assert matrix.scenarios == titles.get(tag, set()), tag
    assert set().union(*titles.values()) == set().union(*(m.scenarios for m in MATRICES.values()))


@pytest.mark.parametrize("tag", sorted(MATRICES))
def test_every_scenario_is_failed_by_some_defect(tag: str) -> None:
    matrix = MATRICES[tag]
    own = {d.name for d in dui_sides()[matrix.service].defects}
    assert_matrix_covers(matrix.failures, matrix.scenarios, own)
    assert set(matrix.failures) <= set(DEFECTS)


def test_every_defect_is_caught_by_a_matrix() -> None:
    assert set(DEFECTS) == {defect for m in MATRICES.values() for defect in m.failures}


@pytest.mark.slow
@pytest.mark.parametrize("tag", sorted(MATRICES))
def test_scenarios_pass_against_the_reference_dui(tmp_path: Path, tag: str) -> None:
    matrix = MATRICES[tag]
    assert_all_pass(run_tagged(tmp_path, "reference", tag, config=matrix.config), matrix.scenarios)
    if matrix.reference_check is not None:
        matrix.reference_check(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(("tag", "defect"), CASES, ids=[f"{t}-{d}" for t, d in CASES])
def test_the_defect_fails_exactly_the_expected_scenarios(tmp_path: Path, tag: str, defect: str) -> None:
    matrix: Matrix = MATRICES[tag]
    result = run_tagged(tmp_path, f"faulty:{defect}", tag, config=matrix.config)
    assert_fails_exactly(result, matrix.failures[defect])


@pytest.mark.slow
@pytest.mark.parametrize("tag", ENGLISH)
def test_english_aliases_run_and_can_fail(tmp_path: Path, tag: str) -> None:
    english = MATRICES[tag].english
    assert english is not None
    folder = tmp_path / "features"
    folder.mkdir()
    (folder / "english.feature").write_text(english.feature, encoding="utf-8")
    ok = run_tagged(tmp_path / "ok", "reference", None, scenarios=folder)
    assert [(s.status, s.message) for s in ok.scenarios] == [(Status.PASSED, "")] * english.scenarios
    if english.defects:
        bad = run_tagged(tmp_path / "bad", "faulty:" + ",".join(english.defects), None, scenarios=folder)
        assert [s.status for s in bad.scenarios] == [Status.FAILED] * english.scenarios, [
            (s.name, s.message) for s in bad.scenarios
        ]


_KEYWORD = re.compile(
    r"^\s*(?:Soit|Sachant que|Étant donné que|Étant donné|Quand|Lorsque|Alors|Et que|Et|Mais|"
    r"Given|When|Then|And|But)\s+(.+?)\s*$",
    re.M,
)


def test_every_step_definition_is_used_by_a_scenario() -> None:
    """A step no scenario uses is dead code: the catalogue (French) or an English feature must use each one."""
    import importlib

    from pytest_bdd.steps import step_function_context_registry

    from harness.runtime import pytest_plugin

    for module in pytest_plugin.pytest_plugins:
        importlib.import_module(module)
    texts = [f.read_text(encoding="utf-8") for f in (package_root() / "scenarios").glob("*.feature")]
    texts += [m.english.feature for m in MATRICES.values() if m.english is not None]
    steps = {line for text in texts for line in _KEYWORD.findall(text)}
    by_function: dict[str, list] = {}
    for context in step_function_context_registry.values():
        function = context.step_func
        if function.__module__ in pytest_plugin.pytest_plugins:
            by_function.setdefault(f"{function.__module__}.{function.__name__}", []).append(context.parser)
    unused = sorted(
        name for name, parsers in by_function.items() if not any(p.is_matching(s) for p in parsers for s in steps)
    )
    assert len(by_function) > 150 and unused == []
