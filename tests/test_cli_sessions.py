"""``socle-harness session create | list | close`` and the ``--session`` filter of ``journal`` and ``indicators``
(issue 19 item 4), on both journals for the indicator engine."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.analytics.indicators import Period, Scope
from harness.analytics.indicators_pg import indicator_engine
from harness.core.journal import Direction, Exchange, Outcome, SQLiteJournal, open_journal
from harness.core.sessions import Members, Session, new_session
from harness.front.cli import app

runner = CliRunner()
A, B = "990000016", "990000024"
PA, PB = "238047505612394", "142036912304505"


def _message(essms: str, person: str, session: str | None, month: int) -> Exchange:
    return Exchange(
        service="mssante",
        operation="smtp.submit",
        direction=Direction.FROM_DUI,
        outcome=Outcome.ACCEPTED,
        essms=essms,
        person=person,
        session_id=session,
        ts=datetime(2025, month, 10, 9, tzinfo=UTC),
        details={"message_id": f"<{essms}-{person}-{month}@t>"},
    )


def _record(url: str) -> None:
    journal = open_journal(url)
    for sid, essms_, person in (("s-a", A, PA), ("s-b", B, PB)):
        made = new_session(f"DUI {sid}", Members(essms=(essms_,), patients=(person,)))
        journal.create_session(Session(sid, made.label, made.dui, made.created, made.members))
    journal.record_many(
        [
            _message(A, PA, "s-a", 1),
            _message(A, PA, "s-a", 2),
            _message(B, PB, "s-b", 2),
            _message(A, PA, None, 3),  # before the session, or another run: outside both
        ]
    )
    journal.close()


def test_session_create_list_close(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/j.sqlite"
    made = runner.invoke(
        app,
        ["session", "create", "--journal", url, "--dui", "Alpha 3.2", "--label", "Recette Alpha", "--essms", A]
        + ["--mailbox", "DUI@Alpha.mssante.fr", "--patient", PA, "--client", "dui-alpha", "--format", "json"],
    )
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    sid = created.pop("id")
    assert len(sid) == 12 and created.pop("created")
    assert created == {
        "label": "Recette Alpha",
        "dui": "Alpha 3.2",
        "closed": None,
        "essms": [A],
        "mailboxes": ["dui@alpha.mssante.fr"],
        "patients": [PA],
        "clients": ["dui-alpha"],
    }
    refused = runner.invoke(app, ["session", "create", "--journal", url, "--dui", "Beta", "--essms", A, "--essms", B])
    assert refused.exit_code == 2
    assert " ".join(refused.stderr.split()) == (
        f"session refusée : la session « Recette Alpha » ({sid}, DUI Alpha 3.2) détient déjà ESSMS {A}. Fermez-la "
        f"(socle-harness session close {sid}) ou donnez à ce DUI d'autres données de test (un membre n'appartient "
        "qu'à une session ouverte) / session refused: a member belongs to one open session at most"
    )
    listed = runner.invoke(app, ["session", "list", "--journal", url, "--open", "--format", "json"])
    assert [s["id"] for s in json.loads(listed.stdout)] == [sid]
    closed = runner.invoke(app, ["session", "close", sid, "--journal", url])
    assert closed.exit_code == 0 and closed.stdout.split()[0] == sid
    assert (
        json.loads(runner.invoke(app, ["session", "list", "--journal", url, "--open", "--format", "json"]).stdout) == []
    )
    [everything] = json.loads(runner.invoke(app, ["session", "list", "--journal", url, "--format", "json"]).stdout)
    assert everything["id"] == sid and everything["closed"] is not None
    table = runner.invoke(app, ["session", "list", "--journal", url], env={"COLUMNS": "250"})
    assert table.exit_code == 0 and sid in table.stdout and "1 ESSMS, 1 BAL, 1 patients, 1 clients PSC" in table.stdout
    again = runner.invoke(app, ["session", "create", "--journal", url, "--dui", "Beta", "--essms", A])
    assert again.exit_code == 0 and len(again.stdout.strip()) == 12  # A is free again


def test_session_commands_refuse_bad_input(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/j.sqlite"
    unknown = runner.invoke(app, ["session", "close", "nope", "--journal", url + "x"])
    assert unknown.exit_code == 2 and "journal introuvable / journal not found" in unknown.stderr
    runner.invoke(app, ["session", "create", "--journal", url, "--dui", "Alpha", "--essms", A])
    unknown = runner.invoke(app, ["session", "close", "nope", "--journal", url])
    assert unknown.exit_code == 2
    assert unknown.stderr.strip() == "session inconnue « nope » (socle-harness session list) / unknown session 'nope'"
    empty = runner.invoke(app, ["session", "create", "--journal", url, "--dui", "Alpha"])
    assert empty.exit_code == 2
    assert empty.stderr.strip() == "une session a au moins un membre / a session has at least one member"
    bad = runner.invoke(app, ["session", "list", "--journal", url, "--format", "csv"])
    assert bad.exit_code == 2


def test_journal_filters_by_session(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/j.sqlite"
    _record(url)
    shown = runner.invoke(app, ["journal", "--journal", url, "--session", "s-a", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.stdout)
    assert [(r["essms"], r["session_id"], r["month"]) for r in rows] == [(A, "s-a", "2025-01"), (A, "s-a", "2025-02")]
    as_csv = list(
        csv.DictReader(io.StringIO(runner.invoke(app, ["journal", "--journal", url, "--format", "csv"]).stdout))
    )
    assert [r["session_id"] for r in as_csv] == ["s-a", "s-a", "s-b", ""]
    table = runner.invoke(app, ["journal", "--journal", url, "--session", "s-b"], env={"COLUMNS": "250"}).stdout
    assert "session_id" in table and "s-b" in table
    unknown = runner.invoke(app, ["journal", "--journal", url, "--session", "s-z", "--format", "json"])
    assert (unknown.exit_code, unknown.stdout) == (2, "")
    assert unknown.stderr.strip() == "session inconnue « s-z » (socle-harness session list) / unknown session 's-z'"


def test_indicators_cli_filters_by_session(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/j.sqlite"
    _record(url)
    args = ["indicators", "--journal", url, "--start", "2025-01", "--month", "2025-03", "--format", "csv"]
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, [*args, "--session", "s-a"]).stdout)))
    assert {r["essms"] for r in rows} == {A, "grappe"}
    counted = {(r["essms"], r["indicator"]): r["numerator"] for r in rows}
    everything = list(csv.DictReader(io.StringIO(runner.invoke(app, args).stdout)))
    assert {r["essms"] for r in everything} == {A, B, "grappe"}
    assert {(r["essms"], r["indicator"]): r["numerator"] for r in everything}[(A, "mssante")] == "3"
    assert counted[(A, "mssante")] == "2"  # the March message is outside the session
    unknown = runner.invoke(app, [*args, "--session", "s-z"])
    assert unknown.exit_code == 2
    assert unknown.stderr.strip() == "session inconnue « s-z » (socle-harness session list) / unknown session 's-z'"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_indicator_engines_count_a_session_only(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path}/j.sqlite" if backend == "sqlite" else request.getfixturevalue("pg_url")
    _record(url)
    journal = open_journal(url)
    try:
        engine = indicator_engine(journal, {})
        period = Period(end="2025-03", start="2025-01")
        for scope, expected in (
            (Scope(session="s-a"), {A: 2, None: 2}),
            (Scope(session="s-b"), {B: 1, None: 1}),
            (Scope(), {A: 3, B: 1, None: 4}),
            (Scope(session="s-a", essms=(B,)), {None: 0}),  # B has no exchange in s-a
        ):
            report = engine.compute([period], scope)
            figures = {f.essms: f.numerator for f in report.figures if f.indicator == "mssante"}
            assert figures == expected, scope
    finally:
        journal.close()
    assert isinstance(journal, SQLiteJournal) == (backend == "sqlite")
