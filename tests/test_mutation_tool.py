"""The mutation tool's generator (``benchmarks/mutation.py``), on a small source: which changes it makes, which it
never makes (docstrings, annotations, f-string text), and that each mutant changes exactly one thing. The mutation
run itself is a benchmark-like script, never run by the test suite."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SOURCE = '''
"""Module docstring."""
LIMIT: int = 3
RATIO = 0.5


def check(value: int, flag: bool = True) -> list[str]:
    """Docstring."""
    out = []
    if value >= LIMIT and not flag:
        out.append("CODE-A")
    for item in range(value):
        if item == 2:
            break
    print(f"text with spaces {value > 1}")
    return out
'''


def _tool():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "benchmarks" / "mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("mutation_tool", module)
    spec.loader.exec_module(module)
    return module


def test_the_mutants_of_a_small_source() -> None:
    tool = _tool()
    keys = [m.key for m in tool.list_mutants(SOURCE)]
    assert keys == [
        "<module>:constant:3->4#1",
        "<module>:constant:0.5->1.5#1",
        "check:boolean:True->False#1",
        "check:boolean:value >= LIMIT and (not flag)->value >= LIMIT or not flag#1",
        "check:compare:value >= LIMIT [GtE]->Gt#1",
        "check:boolean:not flag->flag#1",
        "check:delete:out.append('CODE-A')->pass#1",
        "check:constant:'CODE-A'->'CODE-AX'#1",
        "check:compare:item == 2 [Eq]->NotEq#1",
        "check:constant:2->3#1",
        "check:delete:break->pass#1",
        "check:delete:print(f'text with spaces {value > 1}')->pass#1",
        "check:compare:value > 1 [Gt]->GtE#1",
        "check:constant:1->2#1",
    ]


def test_each_mutant_changes_one_thing_and_compiles() -> None:
    tool = _tool()
    original = ast.dump(ast.parse(SOURCE))
    for mutant in tool.list_mutants(SOURCE):
        mutated = tool.mutated_source(SOURCE, mutant)
        compile(mutated, "<mutant>", "exec")
        assert ast.dump(ast.parse(mutated)) != original
    only_check = tool.list_mutants(SOURCE, ("check",))
    assert only_check and all(m.function == "check" for m in only_check)
