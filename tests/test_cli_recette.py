"""A grappe's and an editor's use of the command line: early, clear failures with documented exit codes, scenario
selection by requirement id and title, ``list``, progress, the journal's reason column, Cucumber JSON, pruning
of old run files (issue 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.core.config import HarnessConfig
from harness.core.events import RunFinished, RunStarted, ScenarioFinished, ScenarioStarted, Status, StepFinished
from harness.core.journal import Direction, Exchange, Outcome, open_journal
from harness.front.cli import app
from harness.front.runner import prune_run_files
from harness.reports.cucumber import CucumberWriter, slug
from harness.runtime.selection import TagExpression, TagExpressionError, catalogue, select

CLI = [sys.executable, "-m", "harness.front.cli"]
WIDE = {**os.environ, "COLUMNS": "200"}
runner = CliRunner()


# ------------------------------------------------------------------------------------------------ selection
@pytest.mark.parametrize(
    ("expression", "tags", "expected"),
    [
        ("mssante", {"mssante"}, True),
        ("mssante", {"dmp"}, False),
        ("exigence:MSS-ENVOI-PRO", {"mssante", "exigence:MSS-ENVOI-PRO"}, True),
        ("MSS-ENVOI-PRO", {"exigence:MSS-ENVOI-PRO"}, True),  # a bare requirement id matches its tag
        ("@mssante", {"mssante"}, True),
        ("mssante and not lent", {"mssante", "lent"}, False),
        ("mssante and not lent", {"mssante"}, True),
        ("dmp or insi", {"insi"}, True),
        ("(dmp or insi) and observable", {"insi"}, False),
        ("(dmp or insi) and observable", {"dmp", "observable"}, True),
        ("not (dmp or insi)", {"psc"}, True),
        ("a or b and c", {"a"}, True),  # "and" binds tighter than "or"
        ("a or b and c", {"b"}, False),
    ],
)
def test_tag_expressions(expression: str, tags: set[str], expected: bool) -> None:
    assert TagExpression.parse(expression).evaluate(tags) is expected


@pytest.mark.parametrize("bad", ["", "(mssante", "mssante and", "and dmp", "mssante )", "not"])
def test_unreadable_tag_expressions_are_refused(bad: str) -> None:
    with pytest.raises(TagExpressionError):
        TagExpression.parse(bad)


def test_catalogue_lists_every_scenario_with_feature_tags_and_requirements() -> None:
    scenarios = catalogue(HarnessConfig().scenarios_dir)
    assert len(scenarios) >= 66
    pro = [s for s in scenarios if "MSS-ENVOI-PRO" in s.requirements]
    assert [(s.feature_file, s.title) for s in pro] == [
        ("mssante_envoi.feature", "Envoi d'un DLU à un professionnel de santé")
    ]
    assert "mssante" in pro[0].tags  # the feature's tag applies to its scenarios
    by_title = select(scenarios, title="MESSAGERIE mon ESPACE sante")  # no case, no accents
    assert by_title and all("Mon espace santé" in s.title or "mon espace santé" in s.title.lower() for s in by_title)


def test_list_command_json_and_table() -> None:
    result = runner.invoke(app, ["list", "--tags", "exigence:MSS-ENVOI-PRO", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [s["title"] for s in json.loads(result.output)] == ["Envoi d'un DLU à un professionnel de santé"]
    table = runner.invoke(app, ["list", "--tags", "dmp"])
    assert table.exit_code == 0 and "DMP-" in table.output
    bad = runner.invoke(app, ["list", "--tags", "(dmp"])
    assert bad.exit_code == 2


# ------------------------------------------------------------------------------------------------ fail early
def test_unknown_defect_is_one_usage_error_before_anything_starts(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [*CLI, "run", "--sut", "faulty:pas-un-defaut"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert (proc.stdout + proc.stderr).count("pas-un-defaut") == 1
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())
    assert time.monotonic() - started < 30


def test_unknown_sut_and_bad_tags_exit_2() -> None:
    assert runner.invoke(app, ["run", "--sut", "foo"]).exit_code == 2
    assert runner.invoke(app, ["run", "--tags", "(mssante"]).exit_code == 2


def test_an_unreachable_http_dui_is_exit_3_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    result = runner.invoke(app, ["run", "--sut", "http:http://127.0.0.1:1", "--reports", str(tmp_path / "r")])
    assert result.exit_code == 3
    assert "injoignable" in result.output
    assert time.monotonic() - started < 15


def test_unwritable_paths_are_one_line_naming_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["run", "--reports", str(blocker / "reports")])
    assert result.exit_code == 2
    assert str(blocker / "reports") in result.output.replace("\n", "")
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["run", "--journal", f"sqlite:///{blocker}/journal.sqlite"])
    assert result.exit_code == 2 and "journal" in result.output
    absent = runner.invoke(app, ["journal", "--journal", f"sqlite:///{tmp_path}/absent.sqlite"])
    assert absent.exit_code == 2 and "journal introuvable" in absent.output
    assert not (tmp_path / "absent.sqlite").exists()  # looking does not create an empty journal


def test_run_selects_by_requirement_and_title_shows_progress_and_writes_cucumber(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CLI, "run", "--tags", "exigence:MSS-ENVOI-PRO or exigence:MSS-ENVOI-PATIENT"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=WIDE,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1/2 " in proc.stdout and "2/2 " in proc.stdout
    results = json.loads((tmp_path / "reports" / "results.json").read_text(encoding="utf-8"))
    assert sorted(s["name"] for s in results["scenarios"]) == [
        "Envoi d'un DLU dans la messagerie Mon espace santé de la personne",
        "Envoi d'un DLU à un professionnel de santé",
    ]
    cucumber = json.loads((tmp_path / "reports" / "cucumber.json").read_text(encoding="utf-8"))
    elements = [e for feature in cucumber for e in feature["elements"]]
    assert len(elements) == 2
    assert all(step["result"]["status"] == "passed" for e in elements for step in e["steps"])
    proc = subprocess.run(
        [*CLI, "run", "--titre", "professionnel de sante"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    results = json.loads((tmp_path / "reports" / "results.json").read_text(encoding="utf-8"))
    assert [s["name"] for s in results["scenarios"]] == ["Envoi d'un DLU à un professionnel de santé"]


# ------------------------------------------------------------------------------------------------ outputs
def test_journal_table_shows_why_and_whole_identifiers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/j.sqlite"
    journal = open_journal(url)
    journal.record(
        Exchange(
            service="mssante",
            operation="smtp.submit",
            direction=Direction.FROM_DUI,
            outcome=Outcome.REJECTED,
            essms="990000016",
            person="238047505612394",
            error_code="554 5.6.0",
            error_message="XDM-METADATA-MISSING: METADATA.XML absent de l'archive",
        )
    )
    journal.close()
    result = runner.invoke(app, ["journal", "--journal", url], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    flat = result.output
    assert "motif / reason" in flat
    assert "XDM-METADATA-MISSING" in flat
    assert "238047505612394" in flat and "990000016" in flat


def _events() -> list:
    return [
        RunStarted("r1", "2026-12-01T10:00:00+00:00", "reference", "sqlite://", "0.1", "scenarios", scenarios_total=2),
        ScenarioStarted("s1", "Envoi MSSanté", "Envoi d'un DLU", ["mssante", "exigence:MSS-ENVOI-PRO"], "a.feature"),
        StepFinished("s1", "Quand", "le DUI envoie", Status.PASSED, 0.5),
        StepFinished("s1", "Alors", "la messagerie accepte", Status.FAILED, 0.25, "refusé 554"),
        ScenarioFinished("s1", "Envoi MSSanté", "Envoi d'un DLU", Status.FAILED, 0.75, "refusé 554"),
        ScenarioStarted("s2", "Envoi MSSanté", "Non observé", ["mssante"], "a.feature"),
        ScenarioFinished("s2", "Envoi MSSanté", "Non observé", Status.SKIPPED, 0.0, "non observé"),
        RunFinished("r1", "2026-12-01T10:00:01+00:00", 1.0, {"failed": 1, "skipped": 1}),
    ]


def test_cucumber_json_structure(tmp_path: Path) -> None:
    writer = CucumberWriter(tmp_path)
    for event in _events():
        writer.handle(event)
    writer.close()
    (feature,) = json.loads((tmp_path / "cucumber.json").read_text(encoding="utf-8"))
    assert feature["uri"] == "a.feature" and feature["id"] == "envoi-mssante" and feature["name"] == "Envoi MSSanté"
    first, second = feature["elements"]
    assert first["id"] == "envoi-mssante;envoi-d-un-dlu"
    assert [t["name"] for t in first["tags"]] == ["@mssante", "@exigence:MSS-ENVOI-PRO"]
    assert [(s["keyword"], s["result"]["status"], s["result"]["duration"]) for s in first["steps"]] == [
        ("Quand ", "passed", 500_000_000),
        ("Alors ", "failed", 250_000_000),
    ]
    assert first["steps"][1]["result"]["error_message"] == "refusé 554"
    assert second["steps"] == [
        {
            "keyword": "* ",
            "name": "verdict",
            "result": {"status": "skipped", "duration": 0, "error_message": "non observé"},
        }
    ]
    assert slug("Épreuve d'été !") == "epreuve-d-ete"


def test_only_the_last_runs_files_are_kept(tmp_path: Path) -> None:
    for index in range(13):
        for name in (f"events-{index:02}.jsonl", f"pytest-{index:02}.log"):
            path = tmp_path / name
            path.write_text("x")
            os.utime(path, (1_000_000 + index, 1_000_000 + index))
    (tmp_path / "journal.sqlite").write_text("kept")
    removed = prune_run_files(tmp_path, keep=10)
    assert sorted(p.name for p in removed) == [
        "events-00.jsonl",
        "events-01.jsonl",
        "events-02.jsonl",
        "pytest-00.log",
        "pytest-01.log",
        "pytest-02.log",
    ]
    assert (tmp_path / "journal.sqlite").exists() and (tmp_path / "events-12.jsonl").exists()


def test_a_parallel_runs_files_count_as_one_run(tmp_path: Path) -> None:
    """``run --jobs 2`` writes two event streams, two logs and a claims folder: they are one run's files, kept or
    removed together (the one-per-file count kept 5 parallel runs out of 10 and split a run's files)."""
    for index in range(4):
        names = [f"events-r{index}.jsonl", f"events-r{index}.2.jsonl", f"pytest-r{index}.log", f"pytest-r{index}.2.log"]
        for name in names:
            (tmp_path / name).write_text("x")
            os.utime(tmp_path / name, (1_000_000 + index, 1_000_000 + index))
        claims = tmp_path / f"claims-r{index}"
        claims.mkdir()
        (claims / "0").write_text("")
        os.utime(claims, (1_000_000 + index, 1_000_000 + index))
    removed = prune_run_files(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == sorted(
        [
            *(f"events-r{i}.jsonl" for i in (0, 1)),
            *(f"events-r{i}.2.jsonl" for i in (0, 1)),
            *(f"pytest-r{i}.log" for i in (0, 1)),
            *(f"pytest-r{i}.2.log" for i in (0, 1)),
            "claims-r0",
            "claims-r1",
        ]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            *(f"events-r{i}.jsonl" for i in (2, 3)),
            *(f"events-r{i}.2.jsonl" for i in (2, 3)),
            *(f"pytest-r{i}.log" for i in (2, 3)),
            *(f"pytest-r{i}.2.log" for i in (2, 3)),
            "claims-r2",
            "claims-r3",
        ]
    )


# ------------------------------------------------------------------------------------------------ configuration
def test_configuration_errors_name_the_key_and_the_nearest_valid_one(tmp_path: Path) -> None:
    cases = {
        'http_port = "abc"\n': "http_port : Input should be a valid integer",
        'servics = ["psc"]\n': "servics (vouliez-vous dire « services » ?",
        "[settings.pcs]\nx = 1\n": "[settings.pcs] (vouliez-vous dire « psc » ?",
        "[services.psc]\nx = 1\n": "les réglages d'un service vont dans [settings.psc]",
    }
    for text, expected in cases.items():
        config = tmp_path / "socle-harness.toml"
        config.write_text(text, encoding="utf-8")
        result = runner.invoke(app, ["list", "--config", str(config)], env={"COLUMNS": "400"})
        assert result.exit_code == 2, (text, result.output)
        assert expected in " ".join(result.output.split()), (text, result.output)
        assert "Traceback" not in result.output
    config.write_text('[settings.insi]\nauthorised_idam = ["X"]\n[ports.mssante]\nsmtp = 2525\n', encoding="utf-8")
    assert runner.invoke(app, ["list", "--config", str(config), "--format", "json"]).exit_code == 0
