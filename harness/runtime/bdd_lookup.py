"""A memo in front of pytest-bdd's step-definition lookup (issue 18: ``socle-harness run`` in a few seconds).

pytest-bdd 9 finds the definitions of a step by going through *every* fixture name of the session and asking
pytest which of its definitions are visible to the scenario (``pytest_bdd.scenario.find_fixturedefs_for_step``),
for each step of each scenario: with the bilingual step library (some 430 fixture names) that is about 260,000
visibility checks for the 96 scenarios, a fifth of the child pytest's CPU. Which step definitions a scenario sees
depends only on the fixtures registered and on where the scenario sits (its parent nodes): step definitions are
registered by modules and plugins, never by one test item. So the visible step definitions are listed once per
parent (:func:`visible_steps`, in pytest-bdd's order: by fixture name, then pytest's order), and each step text is
matched against that list once (:func:`memoized`), with pytest-bdd's own test: the definition's step type, then
its parser.

The key holds the number of fixture names, so a fixture registered later (a new name) lists them again. Fixtures
pytest-bdd registers on a single test item (a step's ``target_fixture``, the arguments it parses) are not step
definitions, and the step fixture it injects for the duration of one step is gone before the next lookup.
:func:`install` is undone by :func:`uninstall` (``pytest_unconfigure``); with a pytest-bdd whose layout differs,
nothing is installed and the lookup stays pytest-bdd's own.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

_MODULE = "pytest_bdd.scenario"  # the module (``pytest_bdd.scenario`` as an attribute is the ``scenario`` function)
_ATTRIBUTE = "find_fixturedefs_for_step"

Lookup = Callable[..., Iterable[Any]]


class StepDefinitions:
    """The step definitions visible to the test items of one parent: ``(fixturedef, context)`` pairs in pytest-bdd's
    order, ``context`` being pytest-bdd's ``StepFunctionContext`` (``type``, ``parser``)."""

    def __init__(self, pairs: list[tuple[Any, Any]]) -> None:
        self.pairs = pairs

    def matching(self, step: Any) -> list[Any]:
        """What ``find_fixturedefs_for_step`` yields for ``step``: the same type (or any), the parser matching."""
        return [
            fixturedef
            for fixturedef, context in self.pairs
            if (context.type is None or context.type == step.type) and context.parser.is_matching(step.name)
        ]


def visible_steps(
    fixturemanager: Any,
    node: Any,
    names: Callable[[Any], list[str]],
    getfixturedefs: Callable[[Any, str, Any], Iterable[Any] | None],
    registry: Mapping[Any, Any],
) -> StepDefinitions:
    """Every step definition visible to ``node``: pytest-bdd's walk over the fixture names, without the step."""
    pairs = []
    for name in names(fixturemanager):
        for fixturedef in getfixturedefs(fixturemanager, name, node) or []:
            context = registry.get(fixturedef.func)
            if context is not None:
                pairs.append((fixturedef, context))
    return StepDefinitions(pairs)


def memoized(list_visible: Callable[[Any, Any], StepDefinitions], names: Callable[[Any], list[str]]) -> Lookup:
    """``find(step, fixturemanager, node)`` from the visible step definitions listed once per (fixture names,
    parent node), each step text matched once."""
    visible: dict[tuple[Any, ...], StepDefinitions] = {}
    found: dict[tuple[Any, ...], list[Any]] = {}

    def lookup(step: Any, fixturemanager: Any, node: Any) -> list[Any]:
        parent = getattr(node, "parent", None)
        where = (id(fixturemanager), len(names(fixturemanager)), parent.nodeid if parent is not None else node.nodeid)
        key = (*where, step.type, step.name)
        result = found.get(key)
        if result is None:
            definitions = visible.get(where)
            if definitions is None:
                definitions = visible[where] = list_visible(fixturemanager, node)
            result = found[key] = definitions.matching(step)
        return list(result)

    return lookup


def install() -> bool:
    """Put the memo in front of pytest-bdd's lookup; False (nothing done) when pytest-bdd's layout differs."""
    try:
        bdd_scenario = importlib.import_module(_MODULE)
        from pytest_bdd.compat import get_fixture_names, getfixturedefs
        from pytest_bdd.steps import step_function_context_registry
    except ImportError:  # pragma: no cover - another pytest-bdd
        return False
    find = getattr(bdd_scenario, _ATTRIBUTE, None)
    if find is None or hasattr(find, "__wrapped__"):
        return False

    def list_visible(fixturemanager: Any, node: Any) -> StepDefinitions:
        return visible_steps(fixturemanager, node, get_fixture_names, getfixturedefs, step_function_context_registry)

    lookup = memoized(list_visible, get_fixture_names)
    lookup.__wrapped__ = find  # type: ignore[attr-defined]
    setattr(bdd_scenario, _ATTRIBUTE, lookup)
    return True


def uninstall() -> None:
    """Give pytest-bdd its own lookup back."""
    bdd_scenario: ModuleType | None = sys.modules.get(_MODULE)
    if bdd_scenario is None:
        return
    find = getattr(bdd_scenario, _ATTRIBUTE, None)
    original = getattr(find, "__wrapped__", None)
    if original is not None:
        setattr(bdd_scenario, _ATTRIBUTE, original)
