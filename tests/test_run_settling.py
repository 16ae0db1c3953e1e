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


def _context_of(kind: str | None, pattern: str) -> SimpleNamespace:
    return SimpleNamespace(type=kind, parser=SimpleNamespace(is_matching=lambda text: text.startswith(pattern)))


def test_the_visible_step_definitions_are_pytest_bdds_in_its_order() -> None:
    """pytest-bdd's walk: every fixture name, the definitions pytest says are visible, only step definitions."""
    funcs = {name: object() for name in ("f1", "f2", "f3", "plain")}
    registry = {funcs["f1"]: _context_of("then", "x"), funcs["f2"]: _context_of(None, "x"), funcs["f3"]: "c3"}
    definitions = {
        "b": [SimpleNamespace(func=funcs["f2"])],
        "a": [SimpleNamespace(func=funcs["f1"]), SimpleNamespace(func=funcs["plain"])],  # not a step definition
        "hidden": None,  # not visible to the node
        "c": [SimpleNamespace(func=funcs["f3"])],
    }
    seen: list[tuple[str, str]] = []

    def getfixturedefs(fixturemanager: Any, name: str, node: Any) -> Any:
        seen.append((name, node.nodeid))
        return definitions[name]

    node = SimpleNamespace(nodeid="m.py::t")
    visible = bdd_lookup.visible_steps("fm", node, lambda fm: list(definitions), getfixturedefs, registry)
    assert [(d.func, c) for d, c in visible.pairs] == [
        (funcs["f2"], registry[funcs["f2"]]),
        (funcs["f1"], registry[funcs["f1"]]),
        (funcs["f3"], "c3"),
    ]
    assert seen == [("b", "m.py::t"), ("a", "m.py::t"), ("hidden", "m.py::t"), ("c", "m.py::t")]

    only_steps = bdd_lookup.StepDefinitions(visible.pairs[:2])
    assert [d.func for d in only_steps.matching(Step(type="then", name="x1"))] == [funcs["f2"], funcs["f1"]]
    assert [d.func for d in only_steps.matching(Step(type="given", name="x1"))] == [funcs["f2"]]  # any type
    assert only_steps.matching(Step(type="then", name="y")) == []


def test_the_memo_lists_the_definitions_once_per_parent_and_matches_each_step_text_once() -> None:
    listed: list[str] = []
    names = ["a", "b"]
    matched: list[str] = []

    def context(pattern: str) -> SimpleNamespace:
        def is_matching(text: str) -> bool:
            matched.append(text)
            return text.startswith(pattern)

        return SimpleNamespace(type=None, parser=SimpleNamespace(is_matching=is_matching))

    def list_visible(fixturemanager: Any, node: Any) -> bdd_lookup.StepDefinitions:
        listed.append(node.nodeid)
        return bdd_lookup.StepDefinitions([("def-x", context("x")), ("def-y", context("y"))])

    module, other = SimpleNamespace(nodeid="catalogue.py"), SimpleNamespace(nodeid="other.py")
    first = SimpleNamespace(nodeid="catalogue.py::test_1", parent=module)
    second = SimpleNamespace(nodeid="catalogue.py::test_2", parent=module)
    elsewhere = SimpleNamespace(nodeid="other.py::test_3", parent=other)
    lookup = bdd_lookup.memoized(list_visible, lambda fm: names)
    manager = object()

    assert lookup(Step(type="then", name="x1"), manager, first) == ["def-x"]
    assert lookup(Step(type="then", name="x1"), manager, second) == ["def-x"]  # same parent, same text: reused
    assert lookup(Step(type="then", name="y1"), manager, second) == ["def-y"]
    assert lookup(Step(type="then", name="x1"), manager, elsewhere) == ["def-x"]
    names.append("c")  # a fixture registered meanwhile: listed again
    assert lookup(Step(type="then", name="x1"), manager, first) == ["def-x"]
    assert listed == ["catalogue.py::test_1", "other.py::test_3", "catalogue.py::test_1"]
    assert matched == ["x1", "x1", "y1", "y1", "x1", "x1", "x1", "x1"]


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
