"""The goals table of ``benchmarks/run_all.py --goals`` (issue 18), read from the benchmarks' JSON figures: each
goal met or not on its own threshold, the figure beside its same-run baseline, and a benchmark that gave no figure
reported as not measured (never as met). The JSON shapes are those the scripts write (checked by running
``run_all.py --goals --quick``); nothing here runs a benchmark."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_all_tool", ROOT / "benchmarks" / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("run_all_tool", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return sys.modules["run_all_tool"]


def _ratio(ours: float, theirs: float, ratio: float, cpu: float, meets: bool, sim: str, base: str) -> dict[str, Any]:
    return {sim: ours, base: theirs, "ratio": ratio, "cpu_ratio": cpu, "goal": 0.5, "meets_goal": meets}


def _figures(
    *, run_s: float = 6.04, cold_s: float = 0.896, dmp_met: bool = False, refresh_rps: float = 305.0
) -> dict[str, Any]:
    smtp = ("simulator_msgs_per_s", "sink_msgs_per_s")
    http = ("simulator_req_per_s", "bare_req_per_s")
    return {
        "smtp": {
            "modes": {
                "a": _ratio(146.0, 387.0, 0.376, 0.392, False, *smtp),
                "b": _ratio(66.0, 103.0, 0.637, 0.674, True, *smtp),
            }
        },
        "insi": {
            "modes": {
                "a": _ratio(512.0, 852.0, 0.601, 0.611, True, *http),
                "b": _ratio(160.0, 218.0, 0.734, 0.802, True, *http),
            }
        },
        "fhir": {
            "interactions": {
                "create": _ratio(319.0, 831.0, 0.384, 0.443, False, *http),
                "read": _ratio(606.0, 804.0, 0.753, 0.792, True, *http),
                "search": _ratio(262.0, 829.0, 0.316, 0.408, False, *http),
            }
        },
        "psc": {
            "peer": {
                "peer": "9.13.3",
                "authorization_code": {
                    "harness": {"rps": 316.0, "cpu_ms_per_request": 4.0},
                    "oidc-provider": {"rps": 215.0, "cpu_ms_per_request": 6.4},
                },
                "refresh_token": {
                    "harness": {"rps": refresh_rps, "cpu_ms_per_request": 4.0},
                    "oidc-provider": {"rps": 311.0, "cpu_ms_per_request": 4.32},
                },
            }
        },
        "dmp": {
            "sink": {"per_second": 318.0},
            "xsd+schematron DLU": {"per_second": 44.0, "ratio_to_sink": 0.138},
            "goal_met_schematron": dmp_met,
        },
        "run": {
            "run_median_s": run_s,
            "bare_pytest_median_s": 0.32,
            "ratio": 19.1,
            "scenarios": 96,
            "run_cpu_median_s": 9.4,
        },
        "cold_start": {"harness": {"every_port_median_s": cold_s}, "baseline": {"median_s": 0.232}},
        "scaling": {
            "reference": 1000,
            "largest": 100000,
            "points": [
                {"exchanges_loaded": 0, "smtp_cpu": 7.0, "insi_cpu": 1.7, "search_cpu": 2.7},
                {"exchanges_loaded": 1000, "smtp_cpu": 6.46, "insi_cpu": 1.92, "search_cpu": 1.99},
                {"exchanges_loaded": 10000, "smtp_cpu": 6.5, "insi_cpu": 1.9, "search_cpu": 2.1},
                {"exchanges_loaded": 100000, "smtp_cpu": 6.54, "insi_cpu": 1.89, "search_cpu": 2.46},
            ],
            "cpu_ratios": {"smtp": 1.01, "insi": 0.99, "search": 1.23},
            "meets_goal": {"smtp": True, "insi": True, "search": False},
        },
    }


def _met(rows: list[Any]) -> dict[str, bool | None]:
    return {row.goal: row.met for row in rows}


def test_every_goal_of_the_issue_gets_one_row_with_its_verdict() -> None:
    tool = _tool()
    rows = tool.goal_rows(_figures())
    assert _met(rows) == {
        "SMTP, one session >= 50 % of the sink": False,
        "SMTP, new connection + STARTTLS + AUTH >= 50 %": True,
        "INSi keep-alive >= 50 % of the bare server": True,
        "INSi new TLS connection >= 50 %": True,
        "FHIR create >= 50 %": False,
        "FHIR read >= 50 %": True,
        "FHIR search >= 50 %": False,
        "PSC token, authorization_code >= 1x oidc-provider": True,
        "PSC token, refresh_token >= 1x oidc-provider": False,
        "DMP ITI-41, XSD + schematron >= 200 documents/s": False,
        "socle-harness run <= 5 s": False,
        "serve, every port answering <= 0.5 s": False,
        "flat per-request time, smtp (<= 1.2x)": True,
        "flat per-request time, insi (<= 1.2x)": True,
        "flat per-request time, search (<= 1.2x)": False,
    }
    by_goal = {row.goal: row for row in rows}
    assert by_goal["SMTP, one session >= 50 % of the sink"] == tool.GoalRow(
        "SMTP, one session >= 50 % of the sink",
        "146/s",
        "387/s (aiosmtpd sink)",
        "37.6%; CPU 39.2%",
        False,
        "goal >= 50% in requests/s",
    )
    assert by_goal["PSC token, refresh_token >= 1x oidc-provider"] == tool.GoalRow(
        "PSC token, refresh_token >= 1x oidc-provider",
        "305/s",
        "311/s (oidc-provider 9.13.3)",
        "0.98x; CPU 1.08x",
        False,
        "goal >= 1x in requests/s",
    )
    assert by_goal["serve, every port answering <= 0.5 s"] == tool.GoalRow(
        "serve, every port answering <= 0.5 s",
        "896 ms",
        "232 ms (bare aiosmtpd)",
        "3.86x",
        False,
        "absolute; the issue set 0.5 s where bare aiosmtpd took 0.12 s (x4.2)",
    )
    assert by_goal["flat per-request time, search (<= 1.2x)"] == tool.GoalRow(
        "flat per-request time, search (<= 1.2x)", "2.46 ms at 100,000", "1.99 ms at 1,000", "1.23x CPU", False, ""
    )


def test_the_absolute_goals_hold_on_their_threshold_and_fail_just_past_it() -> None:
    tool = _tool()
    at = _met(tool.goal_rows(_figures(run_s=5.0, cold_s=0.5, refresh_rps=311.0)))
    past = _met(tool.goal_rows(_figures(run_s=5.01, cold_s=0.501, refresh_rps=310.9)))
    goals = ("socle-harness run <= 5 s", "serve, every port answering <= 0.5 s")
    assert [at[g] for g in goals] == [True, True]
    assert [past[g] for g in goals] == [False, False]
    assert at["PSC token, refresh_token >= 1x oidc-provider"] is True  # 311 / 311 req/s
    assert past["PSC token, refresh_token >= 1x oidc-provider"] is False


def test_the_dmp_row_reports_the_verdict_of_bench_dmp_which_owns_the_threshold() -> None:
    tool = _tool()
    goal = "DMP ITI-41, XSD + schematron >= 200 documents/s"
    rows = {met: {r.goal: r for r in tool.goal_rows(_figures(dmp_met=met))}[goal] for met in (True, False)}
    assert rows == {
        met: tool.GoalRow(goal, "44/s", "318/s (sink)", "13.8%", met, "absolute: follows the machine")
        for met in (True, False)
    }


def test_a_benchmark_without_figures_is_not_measured_never_met() -> None:
    tool = _tool()
    rows = tool.goal_rows({})
    assert len(rows) == 15
    assert {row.met for row in rows} == {None}
    assert {row.note for row in rows} == {
        "bench_smtp.py: no figure",
        "bench_insi.py: no figure",
        "bench_fhir.py: no figure",
        "bench_psc.py: no figure",
        "bench_dmp.py: no figure (no corpus, or the script failed)",
        "bench_run.py: no figure",
        "bench_cold_start.py: no figure",
        "bench_scaling.py: no figure",
    }


def test_without_node_the_psc_rows_say_why() -> None:
    tool = _tool()
    figures = _figures()
    figures["psc"] = {"peer": {"peer": None, "peer_missing": "node / npm absents du PATH", "authorization_code": {}}}
    psc = [row for row in tool.goal_rows(figures) if row.goal.startswith("PSC")]
    assert [(row.met, row.note) for row in psc] == [(None, "node / npm absents du PATH")] * 2


def test_a_scaling_run_short_of_100000_says_so() -> None:
    tool = _tool()
    figures = _figures()
    figures["scaling"]["largest"] = 10000
    rows = [row for row in tool.goal_rows(figures) if row.goal.startswith("flat")]
    assert [(row.measured, row.note) for row in rows] == [
        ("6.50 ms at 10,000", "the goal asks for 100,000 exchanges (--large)"),
        ("1.90 ms at 10,000", "the goal asks for 100,000 exchanges (--large)"),
        ("2.10 ms at 10,000", "the goal asks for 100,000 exchanges (--large)"),
    ]


def test_the_machine_counters_come_from_proc_stat_and_are_absent_elsewhere(tmp_path: Path) -> None:
    tool = _tool()
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 20 800 10 1 2 30 7 0\ncpu0 50 2 10 400 5 0 1 15 3 0\nintr 1\n", encoding="ascii")
    sample = tool.cpu_sample(stat)
    assert (sample.busy, sample.steal, sample.total) == (128, 30, 968)  # guest time is already in user
    assert sample.children_s >= 0
    stat.write_text("intr 1\n", encoding="ascii")
    assert tool.cpu_sample(stat) is None
    assert tool.cpu_sample(tmp_path / "absent") is None


def test_steal_and_the_other_processes_share_between_two_samples() -> None:
    tool = _tool()
    ticks = tool.os.sysconf("SC_CLK_TCK")
    before = tool.CpuSample(busy=1000, steal=50, total=5000, children_s=2.0)
    # 4 s of wall time: the machine was busy 6 s of CPU, 3 s of it this run's children; 1 of 20 s stolen
    after = tool.CpuSample(busy=1000 + 6 * ticks, steal=50 + ticks, total=5000 + 20 * ticks, children_s=5.0)
    assert tool.competition(before, after, 4.0) == {"steal": 0.05, "others_cores": 0.75}
    assert tool._competition_text({"steal": 0.05, "others_cores": 0.75}) == " (steal 5%, other processes 0.75 cores)"
    busier_children = tool.CpuSample(busy=1000 + ticks, steal=50, total=5000 + 4 * ticks, children_s=9.0)
    assert tool.competition(before, busier_children, 1.0) == {"steal": 0.0, "others_cores": 0.0}
    assert tool.competition(None, after, 4.0) is None
    assert tool.competition(before, before, 4.0) is None
    assert tool.competition(before, after, 0.0) is None
    assert tool._competition_text(None) == ""
