"""``socle-harness validate`` on the 13 official CDA examples of the corpus, with XSD + header + CI-SIS
schematron, against running the schematron alone in the same run.

Figures (files/s, higher is better):
  validate cold      the command as a user runs it (a new process: imports, Saxon start, schematron compiles),
                     ``socle-harness validate <examples> --jobs 1``
  validate cold -j2  the same with two worker processes (each compiles the schematrons it needs once)
  validate warm      :func:`harness.validators.artefacts.validate_artefact` in one process, schematrons compiled
  schematron warm    baseline: :meth:`SchematronEngine.validate` alone on the parsed documents (compiled)

Run from the repository root:  python benchmarks/bench_validate.py [--rounds N] [--json FILE]
Needs the corpus (../shared/corpus, or SOCLE_CORPUS).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = Path(os.environ.get("SOCLE_CORPUS", HERE.parent.parent / "shared" / "corpus")) / "cisis-cda"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"corpus absent: {CORPUS} (set SOCLE_CORPUS); nothing measured")
        return 0
    sys.path.insert(0, str(HERE.parent))
    from harness.fields.xmlsafe import parse_xml
    from harness.validators.artefacts import ValidationSettings, validate_artefact
    from harness.validators.cda import CdaSchema
    from harness.validators.schematron import SchematronEngine

    examples = sorted((CORPUS / "examples").glob("*.xml"))
    command = [
        sys.executable, "-m", "harness.front.cli", "validate", *map(str, examples),
        "--schematron-dir", str(CORPUS / "schematrons"), "--cda-xsd-dir", str(CORPUS / "infrastructure" / "cda"),
        "--format", "json",
    ]  # fmt: skip
    figures: dict[str, float] = {}
    for label, extra in (("validate cold", ["--jobs", "1"]), ("validate cold -j2", ["--jobs", "2"])):
        best = float("inf")
        for _ in range(args.rounds):
            start = time.perf_counter()
            subprocess.run([*command, *extra], capture_output=True, check=False, cwd=HERE.parent)
            best = min(best, time.perf_counter() - start)
        figures[label] = len(examples) / best
    settings = ValidationSettings(
        cda_schema=CdaSchema(CORPUS / "infrastructure" / "cda"), schematron=SchematronEngine(CORPUS / "schematrons")
    )
    data = [p.read_bytes() for p in examples]
    for blob in data:  # compile every schematron once
        validate_artefact(blob, settings=settings)
    best = float("inf")
    for _ in range(args.rounds):
        start = time.perf_counter()
        for blob in data:
            validate_artefact(blob, settings=settings)
        best = min(best, time.perf_counter() - start)
    figures["validate warm"] = len(data) / best
    engine = settings.schematron
    assert engine is not None
    parsed = [parse_xml(blob) for blob in data]
    chosen = [(root, engine.select(root).name) for root in parsed]
    best = float("inf")
    for _ in range(args.rounds):
        start = time.perf_counter()
        for root, volet in chosen:
            if volet:
                engine.validate(root, volet)
        best = min(best, time.perf_counter() - start)
    figures["schematron warm"] = len(data) / best
    for label, value in figures.items():
        print(f"{label:20s} {value:8.1f} files/s")
    print(f"warm validate / schematron alone: {figures['validate warm'] / figures['schematron warm']:.0%}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
