"""Mutation testing of a few core modules: does the test suite fail when the code is wrong?

A small own tool (no mutmut / cosmic-ray: they rewrite the source tree in place and run the whole suite per
mutant, far too slow on a shared 2-core machine). For one target module it:

1. parses the module with :mod:`ast` and lists *mutants*, one change each, of four kinds:
   ``compare`` (``<``/``<=``, ``>``/``>=``, ``==``/``!=``, ``in``/``not in``, ``is``/``is not`` flipped),
   ``boolean`` (``and``/``or`` swapped, ``not`` dropped, ``True``/``False`` swapped),
   ``constant`` (a number ``n`` -> ``n + 1``; a string without blanks, such as a finding code, gets an
   ``X`` appended) and ``delete`` (an expression statement, ``raise``, ``continue``, ``break`` or augmented
   assignment replaced by ``pass``). Docstrings, annotations and the text of f-strings are never mutated;
2. runs the module's own tests once, unmutated, tracing which lines of the module they execute (a mutant on a
   line no test executes survives without being run: it is reported as ``survived (not covered)``; a mutant
   inside a multi-line statement, such as a value-set table, is covered when any line of that statement ran);
3. for every other mutant forks a child that drops the project's modules from ``sys.modules``, installs the
   mutated module under its real name and file (so ``package_root()`` and friends still work) and runs the
   tests with ``pytest.main(["-x", ...])``; a failing run *kills* the mutant, a passing one lets it *survive*,
   a run over the per-mutant timeout counts as killed (the mutant made the code hang);
4. prints one line per survivor and the score ``killed / (generated - equivalent)``.

Mutants judged equivalent (no test can tell them apart from the original: same behaviour) are listed in
``benchmarks/mutation_equivalent.json`` under a stable key ``function:kind:before->after#n`` with a one-line
reason; they are counted apart and not run.

Usage, from the repository root (the package installed, editable is fine)::

    python benchmarks/mutation.py identity              # one preset target (see TARGETS)
    python benchmarks/mutation.py mdn xdm --timeout 60  # several, in order
    python benchmarks/mutation.py all --json out.json   # every preset
    python benchmarks/mutation.py mdn --list            # list the mutants, run nothing
    python benchmarks/mutation.py mdn --only 'check_subject:'  # only mutants whose key contains this text
    python benchmarks/mutation.py journal --tests tests/test_journal.py  # judged by other tests (a baseline)

This is a benchmark-like script, **not** part of the test suite (it runs the tests hundreds of times).
Linux only (``os.fork``).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT_FILE = Path(__file__).with_name("mutation_equivalent.json")
PROJECT_PREFIXES = (
    "harness",
    "mock_services",
    "tests",
    "conftest",
    "test_",
    "hostile",
    "psc_helpers",
    "catalogue_matrix",
    "example_dui",
)


@dataclass(frozen=True)
class Target:
    """A module to mutate, the tests that judge it and, optionally, the only functions mutated."""

    module: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()  # qualified names; empty = the whole module


#: Pure helpers of the indicators module (the engine's SQL needs a journal: its tests are another matter).
INDICATOR_HELPERS = (
    "Source",
    "resolve_targets",
    "parse_target_options",
    "parse_month",
    "add_months",
    "months_between",
    "last_day",
    "Period",
    "first_period",
    "campaign_periods",
    "period_ending",
    "Figure",
    "IndicatorReport",
    "_range_mask",
    "_by_person",
    "_spread",
    "format_value",
)

#: Which schematron judges a document, and the findings the engine itself emits (compiling is Saxon's).
SCHEMATRON_SELECTION = (
    "SchematronEngine.volets",
    "SchematronEngine.select",
    "SchematronEngine.missing_files",
    "SchematronEngine.validate",
    "SchematronEngine.status",
    "_scan_volet",
    "_schschema_names",
    "_svrl_findings",
)

TARGETS: dict[str, Target] = {
    "identity": Target("harness.fields.identity", ("tests/test_findings_identity.py", "tests/test_identity.py")),
    "mdn": Target("harness.validators.mdn", ("tests/test_findings_mdn.py",)),
    "xdm": Target("harness.validators.xdm", ("tests/test_findings_xdm.py", "tests/test_validators.py")),
    "indicators": Target(
        "harness.analytics.indicators",
        ("tests/test_findings_indicators.py", "tests/test_indicators.py"),
        functions=INDICATOR_HELPERS,
    ),
    "journal": Target("harness.core.journal", ("tests/test_journal_contract.py", "tests/test_journal.py")),
    "vihf": Target("harness.validators.vihf", ("tests/test_findings_vihf.py",)),
    "tddui": Target("harness.validators.tddui", ("tests/test_findings_tddui.py", "tests/test_tddui.py")),
    "insi": Target("harness.validators.insi", ("tests/test_findings_insi.py", "tests/test_insi_validator.py")),
    "schematron": Target(
        "harness.validators.schematron",
        ("tests/test_findings_schematron.py",),
        functions=SCHEMATRON_SELECTION,
    ),
    # validators of issue 23's second pass: each judged by its own findings tests (adjust per module)
    "xds_metadata": Target("harness.validators.xds_metadata", ("tests/test_findings_xds_metadata.py",)),
    "ebrim": Target("harness.validators.ebrim", ("tests/test_findings_ebrim.py",)),
    "iti41": Target("harness.validators.iti41", ("tests/test_findings_iti41.py",)),
    "artefacts": Target("harness.validators.artefacts", ("tests/test_findings_artefacts.py",)),
    "fhir_artefacts": Target("harness.validators.fhir_artefacts", ("tests/test_findings_fhir_artefacts.py",)),
    "cda": Target("harness.validators.cda", ("tests/test_findings_cda.py", "tests/test_validators.py")),
    "dsg": Target("harness.validators.dsg", ("tests/test_findings_dsg.py",)),
    "frcore": Target("harness.validators.frcore", ("tests/test_findings_frcore.py",)),
    "artefact_kind": Target("harness.validators.artefact_kind", ("tests/test_artefact_kind.py",)),
    "cdl": Target("harness.validators.cdl", ("tests/test_findings_cdl.py", "tests/test_findings_fhir_rules.py")),
    "eprescription": Target("harness.validators.eprescription", ("tests/test_findings_eprescription.py",)),
    "mssante_message": Target(
        "harness.validators.mssante_message",
        ("tests/test_findings_mssante_message.py", "tests/test_mssante_message.py"),
    ),
    "hl7v2_relay": Target("harness.validators.hl7v2_relay", ("tests/test_findings_hl7v2_relay.py",)),
}


# ---------------------------------------------------------------------------------------------------------------
# mutant generation


@dataclass(frozen=True)
class Mutant:
    key: str  # stable across edits elsewhere in the file: function:kind:before->after#n
    kind: str
    line: int
    function: str
    before: str
    after: str
    index: int  # position in the module's mutation-point list (to rebuild the tree)
    # lines of the innermost simple statement holding the mutant: Python traces a multi-line literal (a value-set
    # table) on the statement's first line only, so a mutant on line 40 of a table assigned on line 12 is covered
    # when line 12 ran
    statement: tuple[int, int] = (0, 0)

    def covered_by(self, lines: set[int]) -> bool:
        first, last = self.statement
        return self.line in lines or any(line in lines for line in range(first, last + 1))


_COMPARE_SWAPS: dict[type, type] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_DELETABLE = (ast.Expr, ast.Raise, ast.Continue, ast.Break, ast.AugAssign)


def _is_docstring(node: ast.AST, parent: ast.AST | None) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and isinstance(parent, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and parent.body[0] is node
    )


class _Points(ast.NodeVisitor):
    """Walk a module in a fixed order, collecting (node, kind, sub-index, function) mutation points."""

    def __init__(self, functions: tuple[str, ...]) -> None:
        self.functions = functions
        self.stack: list[str] = []
        self.points: list[tuple[ast.AST, str, int, str]] = []  # node, kind, sub-index, function
        self.parents: list[ast.AST] = []

    def _wanted(self) -> bool:
        name = ".".join(self.stack)
        return not self.functions or any(name == f or name.startswith(f + ".") for f in self.functions)

    def _skip_subtree(self, node: ast.AST) -> bool:
        # annotations, `if TYPE_CHECKING:` and __all__ are not behaviour
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return True
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return True
        return False

    def generic_visit(self, node: ast.AST) -> None:
        parent = self.parents[-1] if self.parents else None
        if self._skip_subtree(node) or _is_docstring(node, parent):
            return
        named = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        if named:
            self.stack.append(node.name)  # type: ignore[attr-defined]
        if self._wanted():
            self._collect(node, parent)
        self.parents.append(node)
        if isinstance(node, ast.JoinedStr):  # f-string: only the expressions inside the braces, not the text
            for part in node.values:
                if isinstance(part, ast.FormattedValue):
                    self.visit(part.value)
            self.parents.pop()
            if named:
                self.stack.pop()
            return
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "decorator_list", "type_comment"):
                continue
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)
        self.parents.pop()
        if named:
            self.stack.pop()

    def _collect(self, node: ast.AST, parent: ast.AST | None) -> None:
        function = ".".join(self.stack) or "<module>"
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _COMPARE_SWAPS:
                    self.points.append((node, "compare", i, function))
        elif isinstance(node, ast.BoolOp):
            self.points.append((node, "boolean", 0, function))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self.points.append((node, "boolean", 0, function))
        elif isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                self.points.append((node, "boolean", 0, function))
            elif isinstance(value, (int, float)):
                self.points.append((node, "constant", 0, function))
            elif isinstance(value, str) and not any(c.isspace() for c in value) and len(value) <= 80:
                self.points.append((node, "constant", 0, function))
        no_op = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)  # `...`: deleting it is no change
        if isinstance(node, _DELETABLE) and not no_op and not isinstance(parent, ast.Module):
            body = next(
                (
                    b
                    for f in ("body", "orelse", "finalbody")
                    for b in [getattr(parent, f, None)]
                    if isinstance(b, list) and node in b
                ),
                None,
            )
            if body is not None:
                self.points.append((node, "delete", 0, function))


def _apply(node: ast.AST, kind: str, sub: int) -> ast.AST:
    """The replacement node of one mutation point (a new node; the original is untouched)."""
    if kind == "compare":
        new = copy.deepcopy(node)
        new.ops[sub] = _COMPARE_SWAPS[type(node.ops[sub])]()  # type: ignore[attr-defined]
        return new
    if kind == "boolean":
        if isinstance(node, ast.BoolOp):
            new = copy.deepcopy(node)
            new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            return new
        if isinstance(node, ast.UnaryOp):
            return copy.deepcopy(node.operand)
        return ast.Constant(value=not node.value)  # type: ignore[attr-defined]
    if kind == "constant":
        value = node.value  # type: ignore[attr-defined]
        return ast.Constant(value=value + "X" if isinstance(value, str) else value + 1)
    if kind == "delete":
        return ast.Pass()
    raise ValueError(kind)


def _short(node: ast.AST) -> str:
    text = ast.unparse(node).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def list_mutants(source: str, functions: tuple[str, ...] = ()) -> list[Mutant]:
    tree = ast.parse(source)
    points = _Points(functions)
    points.visit(tree)
    mutants: list[Mutant] = []
    seen: dict[str, int] = {}
    holder = _simple_statements(tree)
    for index, (node, kind, sub, function) in enumerate(points.points):
        new = _apply(node, kind, sub)
        if kind == "compare":
            before, after = type(node.ops[sub]).__name__, type(new.ops[sub]).__name__  # type: ignore[attr-defined]
            before, after = f"{_short(node)} [{before}]", after
        else:
            before, after = _short(node), _short(new)
        base = f"{function}:{kind}:{before}->{after}"
        seen[base] = seen.get(base, 0) + 1
        line = getattr(node, "lineno", 0)
        mutant = Mutant(
            f"{base}#{seen[base]}", kind, line, function, before, after, index, holder.get(id(node), (0, 0))
        )
        mutants.append(mutant)
    return mutants


def _simple_statements(tree: ast.AST) -> dict[int, tuple[int, int]]:
    """``id(node) -> (first, last line)`` of the innermost simple statement (no body of its own) holding it."""
    spans: dict[int, tuple[int, int]] = {}
    for statement in ast.walk(tree):
        if not isinstance(statement, ast.stmt) or hasattr(statement, "body"):
            continue
        span = (statement.lineno, statement.end_lineno or statement.lineno)
        for node in ast.walk(statement):
            spans[id(node)] = span
    return spans


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, replacement: ast.AST) -> None:
        self.target, self.replacement = target, replacement

    def visit(self, node: ast.AST) -> ast.AST:
        if node is self.target:
            return ast.copy_location(self.replacement, node)
        return super().visit(node)


def mutated_source(source: str, mutant: Mutant, functions: tuple[str, ...] = ()) -> str:
    tree = ast.parse(source)
    points = _Points(functions)
    points.visit(tree)
    node, kind, sub, _ = points.points[mutant.index]
    tree = _Replace(node, _apply(node, kind, sub)).visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree))


# ---------------------------------------------------------------------------------------------------------------
# running the tests in a forked child


def _module_file(module: str) -> Path:
    return ROOT / (module.replace(".", "/") + ".py")


def _is_project(name: str) -> bool:
    return name.split(".")[0].startswith(PROJECT_PREFIXES)


def _imports_of(name: str) -> set[str]:
    """Project modules a loaded module imports anywhere in its source (function-level imports included)."""
    path = getattr(sys.modules.get(name), "__file__", None)
    if not path or not path.endswith(".py"):
        return set()
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if _is_project(m)}


def _dependents(module: str) -> set[str]:
    """The loaded project modules that import ``module``, directly or through other project modules."""
    graph = {name: _imports_of(name) for name in list(sys.modules) if _is_project(name)}
    affected, changed = {module}, True
    while changed:
        changed = False
        for name, imports in graph.items():
            if name not in affected and imports & affected:
                affected.add(name)
                changed = True
    return affected


def _purge(names: set[str] | None = None) -> None:
    """Forget project modules (all of them, or ``names``) and the test modules, so that they are imported again.

    A forgotten submodule is also removed from its parent package: ``from package import sub`` would otherwise
    find the old module as an attribute instead of importing the mutated one."""
    for name in list(sys.modules):
        if not _is_project(name):
            continue
        test_module = not name.startswith(("harness", "mock_services"))
        if names is None or name in names or test_module:
            del sys.modules[name]
            parent, _, leaf = name.rpartition(".")
            if parent in sys.modules and getattr(sys.modules[parent], leaf, None) is not None:
                delattr(sys.modules[parent], leaf)


def _install(module: str, code: str) -> None:
    """Put the module, compiled from ``code``, in ``sys.modules`` under its real name and file."""
    import importlib
    import types

    package, _, leaf = module.rpartition(".")
    parent = importlib.import_module(package) if package else None
    mod = types.ModuleType(module)
    path = _module_file(module)
    mod.__file__ = str(path)
    mod.__package__ = package
    sys.modules[module] = mod
    if parent is not None:
        setattr(parent, leaf, mod)
    exec(compile(code, str(path), "exec"), mod.__dict__)  # noqa: S102 - the mutated module itself


def _run_child(module: str, code: str | None, tests: tuple[str, ...], trace: bool) -> int:
    """In the forked child: install the (mutated) module, run pytest, return its exit code."""
    import pytest

    try:  # property tests: fewer, reproducible examples, no example database shared between mutants
        from hypothesis import settings

        settings.register_profile("mutation", max_examples=25, derandomize=True, database=None, deadline=None)
        settings.load_profile("mutation")
    except ImportError:
        pass
    os.setpgid(0, 0)
    _purge(set(json.loads(os.environ.get("MUTATION_STALE", "null")) or []) or None)
    lines: set[int] = set()
    path = str(_module_file(module))
    if code is not None:
        _install(module, code)
    if trace:

        def tracer(frame, event, arg):  # noqa: ANN001, ANN202 - sys.settrace protocol
            if frame.f_code.co_filename == path:
                lines.add(frame.f_lineno)
                return tracer
            return None

        sys.settrace(tracer)
        threading.settrace(tracer)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    rc = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *tests]))
    sys.settrace(None)
    threading.settrace(None)  # type: ignore[arg-type]
    if trace:
        Path(os.environ["MUTATION_LINES"]).write_text(json.dumps(sorted(lines)))
    return rc


def run_tests(
    module: str, code: str | None, tests: tuple[str, ...], timeout: float, trace: bool = False
) -> tuple[str, float]:
    """``("killed"|"survived"|"timeout", seconds)`` for one run of ``tests`` with ``code`` as the module."""
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        rc = 3
        try:
            rc = _run_child(module, code, tests, trace)
        except BaseException:  # noqa: BLE001 - any crash of a mutant kills it
            rc = 4
        finally:
            os._exit(rc)
    deadline = started + timeout
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                rc = os.waitstatus_to_exitcode(status)
                return ("survived" if rc == 0 else "killed"), time.monotonic() - started
            if time.monotonic() > deadline:
                return "timeout", time.monotonic() - started
            time.sleep(0.02)
    finally:  # timeout, Ctrl-C or SIGTERM: the child and whatever it started go too
        try:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _prepare_parent(module: str, tests: tuple[str, ...]) -> None:
    """Import once, in this process, what every child needs (pytest, lxml, hypothesis, the project's modules that
    do not import ``module``): collect the tests, then forget ``module``, its importers and the test modules. Each
    fork starts from there instead of importing everything again."""
    import pytest

    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1), os.dup(2)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *tests])
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(devnull)
    # keep what does not depend on the mutated module (a child imports only the module and its importers again)
    stale = _dependents(module)
    os.environ["MUTATION_STALE"] = json.dumps(sorted(stale))
    _purge(stale)


# ---------------------------------------------------------------------------------------------------------------
# one target


@dataclass
class Score:
    name: str
    generated: int = 0
    killed: int = 0
    survived: int = 0
    equivalent: int = 0
    not_covered: int = 0
    seconds: float = 0.0
    survivors: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        judged = self.generated - self.equivalent
        return 100.0 * self.killed / judged if judged else 100.0

    def row(self) -> str:
        return (
            f"| {self.name} | {self.generated} | {self.killed} | {self.survived} | {self.equivalent} | "
            f"{self.score:.1f} % | {self.seconds:.0f} s |"
        )


def load_equivalents() -> dict[str, dict[str, str]]:
    if not EQUIVALENT_FILE.is_file():
        return {}
    return json.loads(EQUIVALENT_FILE.read_text(encoding="utf-8"))


def run_target(
    name: str, target: Target, *, timeout: float, only: list[str] | None, listing: bool, verbose: bool = False
) -> Score:
    source = _module_file(target.module).read_text(encoding="utf-8")
    mutants = list_mutants(source, target.functions)
    if only:
        mutants = [m for m in mutants if any(text in m.key for text in only)]
    equivalents = load_equivalents().get(target.module, {})
    score = Score(name, generated=len(mutants))
    if listing:
        for m in mutants:
            mark = "  (equivalent)" if m.key in equivalents else ""
            print(f"{target.module}:{m.line}: {m.key}{mark}")
        return score
    tests = tuple(t for t in target.tests if (ROOT / t.split("::")[0]).exists())  # files or test node ids
    if not tests:  # pytest without a path would run the whole suite for every mutant
        raise SystemExit(f"{name}: none of the test files exists: {' '.join(target.tests)}")
    started = time.monotonic()
    _prepare_parent(target.module, tests)
    lines_file = Path(f"/tmp/mutation-lines-{os.getpid()}.json")
    os.environ["MUTATION_LINES"] = str(lines_file)
    outcome, baseline = run_tests(target.module, None, tests, timeout=600, trace=True)
    if outcome != "survived":
        raise SystemExit(f"{name}: the unmutated tests fail ({outcome}); fix them first: {' '.join(tests)}")
    covered = set(json.loads(lines_file.read_text()))
    lines_file.unlink(missing_ok=True)
    per_mutant = max(timeout, 5 * baseline)
    print(
        f"# {name}: {target.module}, {len(mutants)} mutants, tests {' '.join(tests)} "
        f"(baseline {baseline:.1f} s, timeout {per_mutant:.0f} s)",
        flush=True,
    )
    for mutant in mutants:
        if mutant.key in equivalents:
            score.equivalent += 1
            continue
        if not mutant.covered_by(covered):
            score.survived += 1
            score.not_covered += 1
            score.survivors.append(f"{target.module}:{mutant.line}: {mutant.key}  (not covered)")
            continue
        code = mutated_source(source, mutant, target.functions)
        outcome, seconds = run_tests(target.module, code, tests, per_mutant)
        if verbose:
            print(f"  {outcome:8s} {seconds:5.1f} s {target.module}:{mutant.line}: {mutant.key}", flush=True)
        if outcome == "survived":
            score.survived += 1
            score.survivors.append(f"{target.module}:{mutant.line}: {mutant.key}")
            if not verbose:
                print(f"  SURVIVED {target.module}:{mutant.line}: {mutant.key}", flush=True)
        else:
            score.killed += 1
    score.seconds = time.monotonic() - started
    return score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="+", help=f"preset names ({', '.join(TARGETS)}) or 'all'")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-mutant timeout floor in seconds (default 30)")
    parser.add_argument(
        "--only", action="append", help="run only the mutants whose key contains this text (repeatable)"
    )
    parser.add_argument("--list", action="store_true", help="list the mutants and their keys, run nothing")
    parser.add_argument("--json", type=Path, help="write the scores and survivors as JSON")
    parser.add_argument(
        "--tests", nargs="+", help="judge with these test files instead of the preset ones (e.g. a baseline)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per mutant run, with its time")
    args = parser.parse_args(argv)
    names = list(TARGETS) if args.targets == ["all"] else args.targets
    if args.tests:
        for name in names:
            TARGETS[name] = replace(TARGETS[name], tests=tuple(args.tests))
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT / "tests"))
    sys.dont_write_bytecode = False  # children import the project from __pycache__, not from source each time
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that run_tests' cleanup kills the running child
    scores = [
        run_target(n, TARGETS[n], timeout=args.timeout, only=args.only, listing=args.list, verbose=args.verbose)
        for n in names
    ]
    if args.list:
        return 0
    print("\n| module | generated | killed | survived | equivalent | score | time |")
    print("|---|---|---|---|---|---|---|")
    for s in scores:
        print(s.row())
    for s in scores:
        for line in s.survivors:
            print(f"survivor {line}")
    if args.json:
        args.json.write_text(
            json.dumps([s.__dict__ | {"score": s.score} for s in scores], indent=2, ensure_ascii=False)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
