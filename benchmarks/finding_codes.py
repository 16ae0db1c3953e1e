"""Finding codes written literally in harness/ and mock_services/ that no test mentions.

A finding code is a string constant such as ``MDN-SUBJECT`` given as the code of a :class:`Finding`, an
:class:`InsError` or :class:`XMLSafetyError`, or of the local helpers that build findings (``add(code, ...)``,
``need(ok, code, ...)``, ``_finding(code, ...)``), or the ``error_code=`` of any call (the simulators' refusals). Codes built at run time (``f"XDM-{exc.code}"``) are listed by
their literal prefix only when a test names a full code starting with it. A code "appears in a test" when its text
occurs in a file under ``tests/``.

Usage (repository root)::

    python benchmarks/finding_codes.py                         # summary + every untested code
    python benchmarks/finding_codes.py harness/validators/mdn.py harness/fields/identity.py  # only these files
    python benchmarks/finding_codes.py --json out.json
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+$")
#: callable name -> where its code argument is (a position, or a keyword)
CODE_ARGUMENT: dict[str, tuple[int, str]] = {
    "Finding": (0, "code"),
    "InsError": (0, "code"),
    "XMLSafetyError": (0, "code"),
    "_finding": (0, "code"),
    "add": (0, "code"),
    "need": (1, "code"),
}


@dataclass(frozen=True)
class Code:
    code: str
    path: str
    line: int


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def codes_in(path: Path) -> list[Code]:
    """The literal finding codes of one Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[Code] = []
    rel = str(path.relative_to(ROOT)) if path.is_absolute() else str(path)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        position, keyword = CODE_ARGUMENT.get(_name(node.func) or "", (-1, "error_code"))
        values = [node.args[position]] if 0 <= position < len(node.args) else []
        values += [k.value for k in node.keywords if k.arg in (keyword, "error_code")]
        for value in values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and CODE_RE.match(value.value):
                found.append(Code(value.value, rel, value.lineno))
    return found


def source_files(paths: Iterable[str]) -> list[Path]:
    out: list[Path] = []
    for item in paths:
        p = (ROOT / item).resolve()
        out.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p])
    return out


def untested(codes: list[Code], tests_text: str) -> list[Code]:
    """Codes whose text occurs in no test file (as a whole word: ``MDN-SUBJECT`` is not ``MDN-SUBJECT-X``)."""
    return [c for c in codes if re.search(rf"(?<![A-Z0-9-]){re.escape(c.code)}(?![A-Z0-9-])", tests_text) is None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Finding codes written literally that no test mentions.")
    parser.add_argument(
        "paths",
        nargs="*",
        default=["harness", "mock_services"],
        help="files or folders (default: harness mock_services)",
    )
    parser.add_argument("--json", type=Path, help="write {code: [places]} of the untested codes as JSON")
    args = parser.parse_args(argv)
    codes = [c for p in source_files(args.paths) for c in codes_in(p)]
    tests_text = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests").rglob("*.py")))
    tests_text += "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests").rglob("*.feature")))
    missing = untested(codes, tests_text)
    distinct, distinct_missing = sorted({c.code for c in codes}), sorted({c.code for c in missing})
    for code in distinct_missing:
        places = ", ".join(f"{c.path}:{c.line}" for c in missing if c.code == code)
        print(f"{code}  ({places})")
    print(f"{len(distinct_missing)} of {len(distinct)} finding codes appear in no test")
    if args.json:
        args.json.write_text(
            json.dumps({c: [f"{m.path}:{m.line}" for m in missing if m.code == c] for c in distinct_missing}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
