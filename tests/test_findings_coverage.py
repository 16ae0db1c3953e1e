"""Every finding code the validators of this area write literally appears in a test (``benchmarks/finding_codes.py``
lists the codes of the whole tree that none does). A new code without a test fails here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = [
    "harness/validators/mdn.py",
    "harness/validators/xdm.py",
    "harness/validators/cda.py",
    "harness/validators/mssante_message.py",
    "harness/validators/ebrim.py",
    "harness/validators/frcore.py",
    "harness/validators/cdl.py",
    "harness/validators/eprescription.py",
    "harness/fields/identity.py",
]


def _tool():  # noqa: ANN202 - the benchmark script, loaded as a module
    spec = importlib.util.spec_from_file_location("finding_codes", ROOT / "benchmarks" / "finding_codes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("finding_codes", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_finding_code_of_these_validators_is_tested() -> None:
    tool = _tool()
    codes = [c for path in CHECKED for c in tool.codes_in(ROOT / path)]
    assert len({c.code for c in codes}) > 100  # the scan does find them
    tests_text = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests").rglob("*.py")))
    missing = sorted({f"{c.code} ({c.path}:{c.line})" for c in tool.untested(codes, tests_text)})
    assert missing == []


def test_the_scan_sees_what_it_should() -> None:
    tool = _tool()
    assert tool.untested([tool.Code("MDN-SUBJECT", "x", 1)], "assert code == 'MDN-SUBJECT-8BIT'") != []
    assert tool.untested([tool.Code("MDN-SUBJECT", "x", 1)], "('MDN-SUBJECT', E)") == []
