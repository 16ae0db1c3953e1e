"""How long a step waits for the exchanges of the last action (issue 18), and the memo in front of pytest-bdd's step
lookup: both cut ``socle-harness run``'s time and must leave every verdict as it was."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from harness.core.journal import JournalFilter
from harness.runtime import bdd_lookup
from harness.runtime.environment import ScenarioContext
from harness.sut.base import ActionResult, ActionStatus
from harness.sut.reference import drivers


class CountingJournal:
    """Answers every query with no exchange, counting the queries."""

    def __init__(self) -> None:
        self.queries: list[JournalFilter] = []

    def query(self, flt: JournalFilter) -> list[Any]:
        self.queries.append(flt)
        return []

    def last_seq(self) -> int:
        return 41


def _context(sut: Any, journal: CountingJournal, step_timeout: float = 10.0) -> ScenarioContext:
    env = SimpleNamespace(journal=journal, run_id="run-1", config=SimpleNamespace(step_timeout=step_timeout))
    return ScenarioContext(env=env, sut=sut, scenario_id="sc-1")  # type: ignore[arg-type]


def _done() -> ActionResult:
    return ActionResult(ActionStatus.DONE, "fait")


def test_the_reference_dui_promises_its_exchanges_are_journaled_when_an_action_returns() -> None:
    assembled = drivers()
    assert assembled.reference().settled_on_return is True
    # a defect abandons a send after 1 s while the server may still accept it: the faulty DUI promises nothing
    assert assembled.faulty(frozenset({next(iter(assembled.defects))})).settled_on_return is False


def test_a_check_after_a_reference_dui_action_reads_the_journal_once() -> None:
    journal = CountingJournal()
    socle = _context(drivers().reference(), journal)
    socle.act("envoi", _done)
    assert socle.exchanges_since_action("mssante", "smtp.command") == []
    assert len(journal.queries) == 1
    flt = journal.queries[0]
    assert (flt.service, flt.operation, flt.run_id, flt.scenario_id, flt.since_seq) == (
        "mssante",
        "smtp.command",
        "run-1",
        "sc-1",
        41,
    )


@pytest.mark.parametrize(
    ("sut", "delegated", "expected"),
    [
        (SimpleNamespace(name="reference", settled_on_return=True), False, 0.0),
        (SimpleNamespace(name="http:http://dui"), False, 1.0),  # a DUI behind the control API: no promise
        (SimpleNamespace(name="faulty:x", settled_on_return=False), False, 1.0),
        (SimpleNamespace(name="external"), True, 7.5),  # delegated, no operator channel: the step timeout
        (SimpleNamespace(name="reference", settled_on_return=True), True, 7.5),
    ],
)
def test_how_long_a_check_waits_for_the_exchanges_of_the_last_action(
    sut: Any, delegated: bool, expected: float
) -> None:
    socle = _context(sut, CountingJournal(), step_timeout=7.5)
    assert socle._settle_timeout(delegated) == expected


class Step(SimpleNamespace):
    pass


def test_the_memo_answers_what_pytest_bdd_answers_once_per_step_text_and_parent() -> None:
    calls: list[tuple[str, str, str]] = []
    names = ["a", "b"]

    def find(*, step: Any, fixturemanager: Any, node: Any) -> list[str]:
        calls.append((step.type, step.name, node.nodeid))
        return [f"{step.type}:{step.name}"]

    module = SimpleNamespace(nodeid="catalogue.py")
    other = SimpleNamespace(nodeid="other.py")
    manager = object()
    lookup = bdd_lookup.memoized(find, lambda fm: names)
    first = SimpleNamespace(nodeid="catalogue.py::test_1", parent=module)
    second = SimpleNamespace(nodeid="catalogue.py::test_2", parent=module)
    elsewhere = SimpleNamespace(nodeid="other.py::test_3", parent=other)

    assert lookup(Step(type="then", name="x"), manager, first) == ["then:x"]
    assert lookup(Step(type="then", name="x"), manager, second) == ["then:x"]  # same text, same parent: reused
    assert lookup(Step(type="given", name="x"), manager, second) == ["given:x"]
    assert lookup(Step(type="then", name="x"), manager, elsewhere) == ["then:x"]
    names.append("c")  # a fixture registered meanwhile: computed again
    assert lookup(Step(type="then", name="x"), manager, first) == ["then:x"]
    assert calls == [
        ("then", "x", "catalogue.py::test_1"),
        ("given", "x", "catalogue.py::test_2"),
        ("then", "x", "other.py::test_3"),
        ("then", "x", "catalogue.py::test_1"),
    ]


def test_the_memo_is_installed_once_and_removed() -> None:
    import importlib

    bdd_scenario = importlib.import_module("pytest_bdd.scenario")

    before = bdd_scenario.find_fixturedefs_for_step
    installed_here = bdd_lookup.install()  # this pytest may already run the socle-harness plugin
    try:
        assert hasattr(bdd_scenario.find_fixturedefs_for_step, "__wrapped__")
        assert bdd_lookup.install() is False  # never wrapped twice
    finally:
        if installed_here:
            bdd_lookup.uninstall()
    assert bdd_scenario.find_fixturedefs_for_step is before
