"""A memo in front of pytest-bdd's step-definition lookup (issue 18: ``socle-harness run`` in a few seconds).

pytest-bdd 9 finds the definitions of a step by going through *every* fixture name of the session and asking
pytest which of its definitions are visible to the scenario (``pytest_bdd.scenario.find_fixturedefs_for_step``),
for each step of each scenario: with the bilingual step library (some 220 fixture names) that is about 260,000
visibility checks for the 96 scenarios, a fifth of the child pytest's CPU. The answer depends only on the step
(its type and text), on the fixtures registered and on where the scenario sits (its parent nodes); so it is
computed once per step text and parent, then reused.

What is reused is exactly what pytest-bdd would compute: the same function, called the first time; the key holds
the number of fixture names, so a fixture registered later (a new name) computes it again. Fixtures pytest-bdd
registers on a single test item (a step's ``target_fixture``, the arguments it parses) are never step definitions,
which is all this lookup returns, and the step fixture it injects for the duration of one step is gone before the
next lookup. :func:`install` is undone by :func:`uninstall` (``pytest_unconfigure``); with a pytest-bdd that no
longer has this function, nothing is installed and the lookup stays pytest-bdd's own.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

_MODULE = "pytest_bdd.scenario"  # the module (``pytest_bdd.scenario`` as an attribute is the ``scenario`` function)
_ATTRIBUTE = "find_fixturedefs_for_step"

Lookup = Callable[..., Iterable[Any]]


def memoized(find: Lookup, names: Callable[[Any], list[str]]) -> Lookup:
    """``find(step, fixturemanager, node)`` answered once per (step type, step text, fixture names, parent node)."""
    cache: dict[tuple[Any, ...], list[Any]] = {}

    def lookup(step: Any, fixturemanager: Any, node: Any) -> list[Any]:
        parent = getattr(node, "parent", None)
        key = (
            id(fixturemanager),
            step.type,
            step.name,
            len(names(fixturemanager)),
            parent.nodeid if parent is not None else node.nodeid,
        )
        found = cache.get(key)
        if found is None:
            found = cache[key] = list(find(step=step, fixturemanager=fixturemanager, node=node))
        return list(found)

    lookup.__wrapped__ = find  # type: ignore[attr-defined]
    return lookup


def install() -> bool:
    """Put the memo in front of pytest-bdd's lookup; False (nothing done) when pytest-bdd's layout differs."""
    try:
        bdd_scenario = importlib.import_module(_MODULE)
        from pytest_bdd.compat import get_fixture_names
    except ImportError:  # pragma: no cover - another pytest-bdd
        return False
    find = getattr(bdd_scenario, _ATTRIBUTE, None)
    if find is None or hasattr(find, "__wrapped__"):
        return False
    setattr(bdd_scenario, _ATTRIBUTE, memoized(find, get_fixture_names))
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
