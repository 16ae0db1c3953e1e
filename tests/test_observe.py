"""Observe-only mode: the scenarios judge what the journal recorded in a time window (harness/runtime/observe.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.core.config import HarnessConfig, package_root
from harness.core.events import Status
from harness.core.journal import Direction, Exchange, Outcome, open_journal
from harness.fields.testdata import load_testdata
from harness.front.cli import app
from harness.front.runner import RunResult, run_catalogue
from harness.runtime.observe import ObservationWindow, ObserveDriver, expectation_of
from harness.sut import make_driver
from harness.sut.base import ActionStatus, MssanteSend

OBSERVABLE = {
    "L'archive IHE_XDM.ZIP contient METADATA.XML (une archive sans METADATA.XML est refusée)",
    "Envoi d'un volet de synthèse médicale (VSM) au médecin traitant",
    "Envoi d'un document non structuré (CDA R2 niveau 1) à un professionnel",
    "Le patientId transmis au DMP est un INS à clé valide (un INS à clé erronée est refusé)",
    "Le lot versé contient le document de signature (un lot sans signature est refusé)",
    "Écriture d'une note dans le cahier de liaison (transaction)",
}


def _config(tmp_path: Path, sut: str) -> HarnessConfig:
    return HarnessConfig(run_dir=tmp_path / ".socle", journal=f"sqlite:///{tmp_path}/journal.sqlite", sut=sut)


def _activity(tmp_path: Path, sut: str) -> tuple[datetime, datetime]:
    """A DUI's own activity recorded in the journal: here the observable scenarios played by ``sut``."""
    start = datetime.now(UTC)
    result = run_catalogue(_config(tmp_path, sut), tags="observable", timeout=600)
    assert len(result.scenarios) == len(OBSERVABLE), [s.name for s in result.scenarios]
    return start, datetime.now(UTC) + timedelta(seconds=1)


def _observe(tmp_path: Path, start: datetime, end: datetime) -> RunResult:
    return run_catalogue(_config(tmp_path, f"observe:{start.isoformat()}/{end.isoformat()}"), timeout=600)


def test_observable_scenarios_pass_on_a_conformant_activity_and_are_not_observed_outside_the_window(
    tmp_path: Path,
) -> None:
    start, end = _activity(tmp_path, "reference")
    observed = _observe(tmp_path, start, end)
    assert {s.name for s in observed.scenarios} == OBSERVABLE, "observe mode runs the @observable scenarios only"
    assert {s.name: s.status for s in observed.scenarios} == dict.fromkeys(OBSERVABLE, Status.PASSED), [
        (s.name, s.message[:300]) for s in observed.scenarios if s.status is not Status.PASSED
    ]

    before = _observe(tmp_path, start - timedelta(days=2), start - timedelta(days=1))
    assert {s.status for s in before.scenarios} == {Status.SKIPPED}, "nothing recorded in that window: never passed"
    assert all("non observé" in s.message for s in before.scenarios)


def test_a_defective_activity_fails_in_observe_mode(tmp_path: Path) -> None:
    start, end = _activity(tmp_path, "faulty:xdm-sans-metadata")
    statuses = {s.name: s.status for s in _observe(tmp_path, start, end).scenarios}
    mssante = {n for n in OBSERVABLE if "IHE_XDM" in n or "Envoi d'un" in n}
    assert len(mssante) == 3
    assert {statuses[n] for n in mssante} == {Status.FAILED}, "every message of the window lacks METADATA.XML"
    assert {statuses[n] for n in OBSERVABLE - mssante} == {Status.PASSED}


def test_window_parsing_and_the_driver_form() -> None:
    window = ObservationWindow.parse("2026-11-23T08:00", "2026-11-23T18:00")
    assert window.start == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # Paris local time (UTC+1 in November)
    assert ObservationWindow.parse("2026-07-01", "2026-07-02T00:00+00:00").start == datetime(
        2026, 6, 30, 22, 0, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="vide"):
        ObservationWindow.parse("2026-11-23T18:00", "2026-11-23T08:00")
    with pytest.raises(ValueError, match="date invalide"):
        ObservationWindow.parse("hier", "2026-11-23")
    driver = make_driver("observe:2026-11-23T08:00/2026-11-23T18:00")
    assert isinstance(driver, ObserveDriver) and driver.window.end == datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="observe:<début>/<fin>"):
        make_driver("observe:2026-11-23")


def test_expectation_matches_person_establishment_recipients_and_documents() -> None:
    data = load_testdata(package_root() / "fixtures")
    person = data.person("P001")
    other = next(p for p in data.persons if p.id != "P001")
    establishment = data.establishment(person.essms)
    driver = make_driver("observe:2026-11-23/2026-11-24")
    result = driver.send_mssante(
        MssanteSend(person, establishment, "DLU", ("patient", "jean.dupont@medecin.mssante.fr"))
    )
    assert result.status is ActionStatus.DELEGATED and "observation" in result.detail
    expectation = result.data["expectation"]
    assert expectation == expectation_of(
        "send_mssante", MssanteSend(person, establishment, "DLU", ("patient", "jean.dupont@medecin.mssante.fr"))
    )

    def message(**changes: object) -> Exchange:
        base = Exchange(
            service="mssante",
            operation="smtp.submit",
            direction=Direction.FROM_DUI,
            outcome=Outcome.ACCEPTED,
            essms=establishment.finess,
            person=person.ins.value,
            details={
                "recipients": [{"address": person.mailbox}, {"address": "Jean.Dupont@medecin.mssante.fr"}],
                "documents": [{"code": "74207-2"}],
            },
        )
        return replace(base, **changes)

    assert expectation.matches(message())
    assert not expectation.matches(message(person=other.ins.value))
    assert not expectation.matches(message(essms="990000999"))
    assert not expectation.matches(
        message(details={"recipients": [{"address": person.mailbox}], "documents": [{"code": "74207-2"}]})
    )
    assert not expectation.matches(message(details={**message().details, "documents": [{"code": "SYNTH"}]}))
    assert expectation.matches(
        message(person=None, details={**message().details, "documents": []})
    )  # unreadable archive


def test_observe_window_filters_the_journal_by_recording_time(tmp_path: Path) -> None:
    journal = open_journal(f"sqlite:///{tmp_path}/j.sqlite")
    t0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    for minutes in (0, 30, 60, 61):
        journal.record(
            Exchange(
                service="insi",
                operation="insi.search",
                direction=Direction.FROM_DUI,
                outcome=Outcome.ACCEPTED,
                ts=t0 + timedelta(minutes=minutes, microseconds=minutes % 2),
            )
        )
    from harness.core.journal import JournalFilter

    found = journal.query(JournalFilter(ts_from=t0, ts_to=t0 + timedelta(minutes=60)))
    assert [e.ts for e in found] == [t0, t0 + timedelta(minutes=30)]
    journal.close()


def test_cli_from_and_to_go_together() -> None:
    result = CliRunner().invoke(app, ["run", "--from", "2026-11-23T08:00"])
    assert result.exit_code == 2 and "--to" in result.output
    result = CliRunner().invoke(app, ["run", "--from", "demain", "--to", "2026-11-23"])
    assert result.exit_code == 2 and "date invalide" in result.output
