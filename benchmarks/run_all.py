"""Run every socle-harness benchmark (each in its own process) and print a compact summary table.

Run from the repository root:  python benchmarks/run_all.py [--quick]

Each figure is compared with a baseline measured in the same run on the same machine; absolute numbers from
different machines are not comparable, the ratios roughly are.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PER_BENCHMARK_TIMEOUT = 120.0


def _run(script: str, args: list[str], json_path: Path) -> tuple[dict[str, Any] | None, float, int]:
    cmd = [sys.executable, str(HERE / script), *args, "--json", str(json_path)]
    print(f"\n$ python benchmarks/{script} {' '.join(args)}".rstrip(), flush=True)
    start = time.perf_counter()
    try:
        code = subprocess.run(cmd, timeout=PER_BENCHMARK_TIMEOUT, stdin=subprocess.DEVNULL).returncode
    except subprocess.TimeoutExpired:
        print(f"  {script}: timed out after {PER_BENCHMARK_TIMEOUT:.0f} s")
        return None, time.perf_counter() - start, -1
    elapsed = time.perf_counter() - start
    try:
        return json.loads(json_path.read_text(encoding="utf-8")), elapsed, code
    except (OSError, ValueError):
        return None, elapsed, code


def _pct(x: float) -> str:
    return f"{x:.0%}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="fewer messages / repetitions (smoke check of the scripts)"
    )
    args = parser.parse_args(argv)
    smtp_args = ["--rounds", "1", "--messages", "50"] if args.quick else []
    cold_args = ["--repeat", "2"] if args.quick else []
    run_args = ["--repeat", "1", "--no-autoload-figure"] if args.quick else []

    rows: list[tuple[str, str, str, str, str]] = []  # figure, socle-harness, baseline, ratio, goal/note
    failures: list[str] = []
    total_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmp:
        smtp, t_smtp, c_smtp = _run("bench_smtp.py", smtp_args, Path(tmp) / "smtp.json")
        cold, t_cold, c_cold = _run("bench_cold_start.py", cold_args, Path(tmp) / "cold.json")
        run, t_run, c_run = _run("bench_run.py", run_args, Path(tmp) / "run.json")

    for name, code in (("bench_smtp.py", c_smtp), ("bench_cold_start.py", c_cold), ("bench_run.py", c_run)):
        if code != 0:
            failures.append(f"{name} exited {code}")

    if smtp:
        for mode, label in (("a", "SMTP msg/s, 1 session (mode a)"), ("b", "SMTP msg/s, conn+TLS+AUTH/msg (mode b)")):
            m = smtp["modes"].get(mode)
            if m:
                goal = f"goal >= {_pct(m['goal'])}: {'OK' if m['meets_goal'] else 'BELOW'}"
                rows.append(
                    (
                        label,
                        f"{m['simulator_msgs_per_s']:.0f}",
                        f"{m['sink_msgs_per_s']:.0f} (sink)",
                        _pct(m["ratio"]),
                        goal,
                    )
                )
        j = smtp.get("journal", {})
        rows.append(
            (
                "journal = accepted messages",
                f"{j.get('accepted_recorded')}",
                f"{j.get('accepted_replied')} (250s)",
                "",
                "OK" if j.get("consistent") else "MISMATCH",
            )
        )
    if cold:
        h, b = cold["harness"], cold["baseline"]
        rows.append(
            (
                "cold start -> 220 greeting (median)",
                f"{h['median_s'] * 1000:.0f} ms",
                f"{b['median_s'] * 1000:.0f} ms (bare)",
                f"{cold['ratio']:.2f}x",
                f"min {h['min_s'] * 1000:.0f} ms; SIGINT exit {'OK' if h['clean_exit'] else 'NOT CLEAN'}",
            )
        )
    if run:
        rows.append(
            (
                "socle-harness run, catalogue (median)",
                f"{run['run_median_s']:.2f} s",
                f"{run['bare_pytest_median_s']:.2f} s (pytest)",
                f"{run['ratio']:.2f}x",
                f"{run['scenarios']} scenarios, {run['scenarios_per_s']:.1f}/s wall",
            )
        )

    headers = ("figure", "socle-harness", "baseline", "ratio", "goal / note")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    print("\nSummary (baselines measured in this run, on this machine)")
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print(line)
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(line)
    print(
        f"benchmark wall times: smtp {t_smtp:.1f} s, cold start {t_cold:.1f} s, run {t_run:.1f} s; "
        f"total {time.perf_counter() - total_start:.1f} s"
    )
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
