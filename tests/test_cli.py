"""The command line: run (reports and exit codes), serve (endpoints file, ephemeral ports, SIGINT), journal."""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from lxml import etree
from typer.testing import CliRunner

from harness.core.journal import RESPONSE_DIGEST, Direction, Exchange, Outcome, open_journal, payload_digest
from harness.core.messages import SEPARATOR
from harness.front.cli import app

CLI = [sys.executable, "-m", "harness.front.cli"]
WIDE = {**os.environ, "COLUMNS": "200"}


@pytest.mark.slow
def test_run_writes_the_three_reports_and_exits_0(tmp_path: Path) -> None:
    proc = subprocess.run([*CLI, "run"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=WIDE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "réussis / passed" in proc.stdout
    junit = etree.parse(str(tmp_path / "reports" / "junit.xml")).getroot()
    assert int(junit.get("tests")) >= 6 and int(junit.get("failures")) == 0
    results = json.loads((tmp_path / "reports" / "results.json").read_text(encoding="utf-8"))
    assert {s["status"] for s in results["scenarios"]} == {"passed"}
    assert "Résultats" in (tmp_path / "reports" / "report.html").read_text(encoding="utf-8")
    journal = open_journal(f"sqlite:///{tmp_path}/.socle/journal.sqlite")
    assert journal.count() > 0


@pytest.mark.slow
def test_run_against_a_faulty_dui_exits_1_with_the_reason(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CLI, "run", "--sut", "faulty:xdm-sans-metadata"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=WIDE,
    )
    assert proc.returncode == 1
    assert "XDM-METADATA-MISSING" in proc.stdout


def test_run_refuses_an_unknown_sut(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CLI, "run", "--sut", "faulty:pas-un-defaut"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0


def test_serve_writes_endpoints_and_stops_on_sigint(tmp_path: Path) -> None:
    endpoints_file = tmp_path / "endpoints.json"
    proc = subprocess.Popen(
        [*CLI, "serve", "--ephemeral", "--endpoints-file", str(endpoints_file)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not endpoints_file.exists():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "serve did not write its endpoints file"
            time.sleep(0.05)
        endpoints = json.loads(endpoints_file.read_text())
        assert set(endpoints) >= {"mssante", "harness"}
        host, _, port = endpoints["mssante"]["smtp"].rpartition(":")
        ca = tmp_path / ".socle" / "pki" / "ca-bundle.pem"
        with smtplib.SMTP(host, int(port), timeout=10) as smtp:
            smtp.starttls(context=ssl.create_default_context(cafile=str(ca)))
            assert smtp.ehlo()[0] == 250
        health = httpx.get(endpoints["harness"]["health"], verify=ssl.create_default_context(cafile=str(ca))).json()
        assert "mssante" in health["services"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Arrêt" in out


def test_journal_formats(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/j.sqlite"
    journal = open_journal(url)
    journal.record(
        Exchange(
            service="mssante",
            operation="smtp.submit",
            direction=Direction.FROM_DUI,
            outcome=Outcome.ACCEPTED,
            essms="990000016",
            person="238047505612394",
            details={RESPONSE_DIGEST: payload_digest(b"<answer/>")},
            attachments=(b"<answer/>",),
        )
    )
    journal.record(
        Exchange(
            service="mssante",
            operation="smtp.submit",
            direction=Direction.FROM_DUI,
            outcome=Outcome.REJECTED,
            essms="990000024",
            error_code="550 5.1.1",
        )
    )
    journal.close()
    runner = CliRunner()
    as_json = runner.invoke(app, ["journal", "--journal", url, "--format", "json", "--essms", "990000016"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert [r["person"] for r in rows] == ["238047505612394"]
    # the answer kept as evidence by digest is shown in full, as when it was a copy in details
    assert rows[0]["details"] == {"response_digest": payload_digest(b"<answer/>"), "response": "<answer/>"}
    as_csv = runner.invoke(app, ["journal", "--journal", url, "--format", "csv", "--outcome", "rejected"])
    lines = as_csv.stdout.strip().splitlines()
    assert lines[0].startswith("ts,service,operation") and len(lines) == 2 and "550 5.1.1" in lines[1]
    table = runner.invoke(app, ["journal", "--journal", url], env={"COLUMNS": "200"})
    assert "2 échange(s)" in table.stdout
    bad = runner.invoke(app, ["journal", "--journal", url, "--month", "2026-13x"])
    assert bad.exit_code == 2


def test_help_is_bilingual() -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "reference" in result.stdout and "faulty" in result.stdout and "scénarios" in result.stdout


NEUTRAL_HELP = re.compile(r"^[a-z0-9 |]+$")


def test_every_option_help_is_french_then_english() -> None:
    """Each parameter's help, of every command (the lazily added ones included), says it in French and in English
    (``bilingual``: « … / … ») or is language-neutral (``table | json``): the users of the recette are French."""
    import click
    import typer.main

    group = typer.main.get_command(app)
    ctx = click.Context(group)
    one_language = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        commands = [command, *getattr(command, "commands", {}).values()]
        for each in commands:
            for param in each.params:
                text = getattr(param, "help", None)
                if text and SEPARATOR not in text and not NEUTRAL_HELP.match(text):
                    one_language.append(f"{name} {param.name}: {text}")
    assert one_language == []


def test_pki_prints_trust_instructions(tmp_path: Path) -> None:
    result = subprocess.run([*CLI, "pki"], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=WIDE)
    assert result.returncode == 0
    assert "ca-bundle.pem" in result.stdout


def test_defects_lists_every_named_defect() -> None:
    from harness.sut import DEFECTS

    result = CliRunner().invoke(app, ["defects"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for name in DEFECTS:
        assert name in result.stdout
