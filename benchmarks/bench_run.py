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

Every command runs with its bytecode written (``PYTHONDONTWRITEBYTECODE`` is dropped, as in bench_cold_start.py;
the untimed first run writes it): a shell that sets it would make every run compile the modules it imports.

``socle-harness run`` plays the catalogue in two child processes by default on a 2-core machine (``--jobs auto``);
the same command with ``--jobs 1`` (one child, as before issue 18's last step) is timed interleaved with it.

``--tree DIR`` also runs ``socle-harness run`` from another source tree (``PYTHONPATH=DIR``, e.g.
``git archive main | tar -x -C DIR``), interleaved with this one, so that a change is measured before and after
in the same minutes. Besides the wall time, the CPU time of the run (parent + child pytest, user + system, from
``os.wait4``) is printed: on a loaded machine it is the steadier figure.

Run from the repository root:  python benchmarks/bench_run.py [--repeat N] [--tree DIR]
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

RUN_TIMEOUT = 180.0  # a loaded 2-core machine (load average 10+) takes 60 s and more


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("socle-harness")
    if script.exists():
        return [str(script)]
    found = shutil.which("socle-harness")
    if found:
        return [found]
    return [sys.executable, "-c", "from harness.front.cli import app; app()"]


def _env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | extra


def _timed(cmd: list[str], cwd: Path, env: dict[str, str], expect: set[int]) -> tuple[float, float]:
    """Run ``cmd``: (wall seconds, CPU seconds of the process and its waited-for children, user + system)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = start + RUN_TIMEOUT
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"{' '.join(cmd)} still running after {RUN_TIMEOUT} s")
            time.sleep(0.002)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in expect:
            out.seek(0)
            tail = out.read().decode("utf-8", "replace")[-1500:]
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode} (expected {sorted(expect)}):\n{tail}")
    return elapsed, usage.ru_utime + usage.ru_stime


def harness_run(tree: Path | None = None, *options: str) -> tuple[float, float, int, float]:
    """One cold ``socle-harness run`` (from source tree ``tree`` when given, with ``options``): (wall seconds,
    CPU seconds, scenarios, the run's own duration from results.json)."""
    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    try:
        env = _env(COLUMNS="120", **({"PYTHONPATH": str(tree)} if tree is not None else {}))
        wall, cpu = _timed([*_cli(), "run", *options], work, env, {0})
        results = json.loads((work / "reports" / "results.json").read_text(encoding="utf-8"))
        counts = results["run"]["counts"]
        if counts.get("passed") != counts.get("total"):
            raise RuntimeError(f"not every scenario passed against the reference DUI: {counts}")
        return wall, cpu, int(counts["total"]), float(results["run"]["duration"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def pytest_collect(autoload: bool) -> float:
    work = Path(tempfile.mkdtemp(prefix="bench-pytest-"))
    try:
        (work / "test_empty.py").write_text("", encoding="utf-8")
        env = {k: v for k, v in _env().items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
        if not autoload:
            env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "test_empty.py"]
        return _timed(cmd, work, env, {0, 5})[0]  # 5 = no tests collected
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _line(label: str, walls: list[float], cpus: list[float], inner: list[float], scenarios: int) -> str:
    wall, cpu, child = statistics.median(walls), statistics.median(cpus), statistics.median(inner)
    return (
        f"  {label:<40} median {wall:6.2f} s  min {min(walls):5.2f} s  CPU {cpu:5.2f} s  "
        f"({scenarios} scenarios: {scenarios / wall:.1f} scenarios/s wall, {1000 * wall / scenarios:.0f} ms each; "
        f"child pytest session {child:.2f} s = {scenarios / child:.1f} scenarios/s)"
    )


def run(repeat: int, with_autoload: bool, tree: Path | None = None, one_process: bool = True) -> dict[str, Any]:
    harness_run()  # untimed warm-up: page cache, __pycache__
    if tree is not None:
        harness_run(tree)
    pytest_collect(False)
    walls: list[float] = []
    cpus: list[float] = []
    inner: list[float] = []
    other: tuple[list[float], list[float], list[float]] = ([], [], [])
    alone: tuple[list[float], list[float], list[float]] = ([], [], [])
    bare: list[float] = []
    auto: list[float] = []
    scenarios = other_scenarios = 0
    for _ in range(repeat):
        bare.append(pytest_collect(False))
        wall, cpu, scenarios, duration = harness_run()
        walls.append(wall)
        cpus.append(cpu)
        inner.append(duration)
        if tree is not None:
            wall, cpu, other_scenarios, duration = harness_run(tree)
            for figures, value in zip(other, (wall, cpu, duration), strict=True):
                figures.append(value)
        if one_process:
            wall, cpu, _, duration = harness_run(None, "--jobs", "1")
            for figures, value in zip(alone, (wall, cpu, duration), strict=True):
                figures.append(value)
        if with_autoload:
            auto.append(pytest_collect(True))

    med_wall, med_bare = statistics.median(walls), statistics.median(bare)
    med_inner = statistics.median(inner)
    print(f"socle-harness run (catalogue, reference DUI) — {repeat} repetition(s), fresh temp cwd every time")
    print(_line("socle-harness run", walls, cpus, inner, scenarios))
    if tree is not None:
        print(_line(f"socle-harness run from {tree}", *other, other_scenarios))
    if one_process:
        print(_line("socle-harness run --jobs 1", *alone, scenarios))
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
        "run_cpu_median_s": round(statistics.median(cpus), 3),
        "scenarios_per_s": round(scenarios / med_wall, 2),
        "ms_per_scenario": round(1000 * med_wall / scenarios, 1),
        "child_duration_median_s": round(med_inner, 3),
        "bare_pytest_median_s": round(med_bare, 3),
        "ratio": round(med_wall / med_bare, 2),
    }
    if one_process:
        out["one_process"] = {
            "run_median_s": round(statistics.median(alone[0]), 3),
            "run_min_s": round(min(alone[0]), 3),
            "run_cpu_median_s": round(statistics.median(alone[1]), 3),
        }
    if tree is not None:
        other_wall = statistics.median(other[0])
        print(
            f"  this tree / {tree}: wall {med_wall / other_wall:.2f}x, "
            f"CPU {statistics.median(cpus) / statistics.median(other[1]):.2f}x"
        )
        out["tree"] = {
            "path": str(tree),
            "scenarios": other_scenarios,
            "run_median_s": round(other_wall, 3),
            "run_min_s": round(min(other[0]), 3),
            "run_cpu_median_s": round(statistics.median(other[1]), 3),
            "child_duration_median_s": round(statistics.median(other[2]), 3),
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
    parser.add_argument(
        "--no-one-process", action="store_true", help="skip the interleaved `run --jobs 1` figure (one child process)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    parser.add_argument(
        "--tree", type=Path, default=None, help="also run from this source tree (PYTHONPATH), interleaved"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 10:
        parser.error("--repeat must be within 1..10")
    out = run(
        args.repeat, not args.no_autoload_figure, args.tree.resolve() if args.tree else None, not args.no_one_process
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
