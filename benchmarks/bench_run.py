"""Wall time of ``socle-harness run`` (the built-in catalogue against the reference DUI) vs bare pytest start-up.

One repetition: in a fresh temporary working directory (no socle-harness.toml, so the defaults apply: journal
and test PKI under ./.socle, reports under ./reports), run ``socle-harness run`` and time it from spawn to
exit; it must exit 0. The median of the repetitions is reported, with scenarios/s (scenarios / wall time) and
the duration the child pytest itself reports in results.json (its session: collection, simulators start,
scenarios, simulators stop).

Baseline, measured in the same run and interleaved with it: ``python -m pytest --collect-only -q`` of an empty
test file in a temporary directory with plugin auto-loading disabled (PYTEST_DISABLE_PLUGIN_AUTOLOAD=1), i.e.
the bare cost of starting pytest. ``socle-harness run`` always pays at least that once (its child is a pytest).
For information, the same command with auto-loading on (every pytest11 plugin installed in the environment) is
also timed.

Run from the repository root:  python benchmarks/bench_run.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RUN_TIMEOUT = 60.0


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("socle-harness")
    if script.exists():
        return [str(script)]
    found = shutil.which("socle-harness")
    if found:
        return [found]
    return [sys.executable, "-c", "from harness.front.cli import app; app()"]


def _timed(cmd: list[str], cwd: Path, env: dict[str, str], expect: set[int]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=RUN_TIMEOUT)
    elapsed = time.perf_counter() - start
    if proc.returncode not in expect:
        out = (proc.stdout + proc.stderr).decode("utf-8", "replace")[-1500:]
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode} (expected {sorted(expect)}):\n{out}")
    return elapsed


def harness_run() -> tuple[float, int, float]:
    """One cold ``socle-harness run``: (wall seconds, scenarios, the run's own duration from results.json)."""
    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    try:
        env = {**os.environ, "COLUMNS": "120"}
        wall = _timed([*_cli(), "run"], work, env, {0})
        results = json.loads((work / "reports" / "results.json").read_text(encoding="utf-8"))
        counts = results["run"]["counts"]
        if counts.get("passed") != counts.get("total"):
            raise RuntimeError(f"not every scenario passed against the reference DUI: {counts}")
        return wall, int(counts["total"]), float(results["run"]["duration"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def pytest_collect(autoload: bool) -> float:
    work = Path(tempfile.mkdtemp(prefix="bench-pytest-"))
    try:
        (work / "test_empty.py").write_text("", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
        if not autoload:
            env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "test_empty.py"]
        return _timed(cmd, work, env, {0, 5})  # 5 = no tests collected
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(repeat: int, with_autoload: bool) -> dict[str, Any]:
    harness_run()  # untimed warm-up: page cache, __pycache__
    pytest_collect(False)
    walls: list[float] = []
    inner: list[float] = []
    bare: list[float] = []
    auto: list[float] = []
    scenarios = 0
    for _ in range(repeat):
        bare.append(pytest_collect(False))
        wall, scenarios, duration = harness_run()
        walls.append(wall)
        inner.append(duration)
        if with_autoload:
            auto.append(pytest_collect(True))

    med_wall, med_bare = statistics.median(walls), statistics.median(bare)
    med_inner = statistics.median(inner)
    print(f"socle-harness run (catalogue, reference DUI) — {repeat} repetition(s), fresh temp cwd every time")
    print(
        f"  socle-harness run                        median {med_wall:6.2f} s  min {min(walls):5.2f} s  "
        f"({scenarios} scenarios: {scenarios / med_wall:.1f} scenarios/s wall; "
        f"child pytest session {med_inner:.2f} s = {scenarios / med_inner:.1f} scenarios/s)"
    )
    print(
        f"  baseline: bare pytest --collect-only    median {med_bare:6.2f} s  min {min(bare):5.2f} s  "
        "(empty test file, PYTEST_DISABLE_PLUGIN_AUTOLOAD=1)"
    )
    print(f"  run / bare pytest = {med_wall / med_bare:.2f}x  (+{med_wall - med_bare:.2f} s over bare pytest start-up)")
    out: dict[str, Any] = {
        "benchmark": "run",
        "repeat": repeat,
        "scenarios": scenarios,
        "run_median_s": round(med_wall, 3),
        "run_min_s": round(min(walls), 3),
        "scenarios_per_s": round(scenarios / med_wall, 2),
        "child_duration_median_s": round(med_inner, 3),
        "bare_pytest_median_s": round(med_bare, 3),
        "ratio": round(med_wall / med_bare, 2),
    }
    if with_autoload:
        med_auto = statistics.median(auto)
        print(
            f"  (informational) same pytest, plugin autoload ON: median {med_auto:.2f} s "
            "(every pytest11 plugin of this environment is imported)"
        )
        out["autoload_pytest_median_s"] = round(med_auto, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (default 3, max 10)")
    parser.add_argument("--no-autoload-figure", action="store_true", help="skip the informational autoload timing")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 10:
        parser.error("--repeat must be within 1..10")
    out = run(args.repeat, not args.no_autoload_figure)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
