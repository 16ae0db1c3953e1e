"""The catalogue against the reference DUI (all pass) and against each faulty DUI (the right scenarios fail).

A scenario that cannot fail is a defect: every scenario must be failed by at least one named defect.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import HarnessConfig
from harness.events import Status
from harness.runner import RunResult, run_catalogue
from harness.sut import DEFECTS

ENVOI_PRO = "Envoi d'un DLU à un professionnel de santé"
ENVOI_PATIENT = "Envoi d'un DLU dans la messagerie Mon espace santé de la personne"
ADRESSE_INCONNUE = "Un message vers une adresse inconnue de l'annuaire est refusé et le DUI le signale"
XDM = "L'archive IHE_XDM.ZIP contient METADATA.XML (une archive sans METADATA.XML est refusée)"
REFUS_SERVEUR = "Le DUI signale un refus du serveur MSSanté"
COMPTAGE = "Le journal compte un message MSSanté envoyé par message accepté et par personne"

ALL = {ENVOI_PRO, ENVOI_PATIENT, ADRESSE_INCONNUE, XDM, REFUS_SERVEUR, COMPTAGE}

# defect -> the scenarios it must make fail (every other scenario must still pass)
EXPECTED_FAILURES = {
    "entetes-mss-absents": {ENVOI_PRO, ENVOI_PATIENT, XDM, COMPTAGE},
    "codecda-errone": {ENVOI_PRO, ENVOI_PATIENT, XDM, COMPTAGE},
    "oid-ins-errone": {ENVOI_PRO, ENVOI_PATIENT, XDM, COMPTAGE},
    "xdm-sans-metadata": {ENVOI_PRO, ENVOI_PATIENT, XDM, COMPTAGE},
    "xdm-hash-faux": {ENVOI_PRO, ENVOI_PATIENT, XDM, COMPTAGE},
    "messagerie-patient-erronee": {ENVOI_PATIENT, COMPTAGE},
    "ignore-refus-smtp": {ADRESSE_INCONNUE, REFUS_SERVEUR},
}


def _run(tmp_path: Path, sut: str) -> RunResult:
    config = HarnessConfig(run_dir=tmp_path / ".socle", journal=f"sqlite:///{tmp_path}/journal.sqlite", sut=sut)
    return run_catalogue(config, timeout=300)


def test_every_scenario_passes_against_the_reference_dui(tmp_path: Path) -> None:
    result = _run(tmp_path, "reference")
    statuses = {s.name: s.status for s in result.scenarios}
    assert set(statuses) == ALL, f"catalogue changed: {sorted(statuses)}"
    assert all(s is Status.PASSED for s in statuses.values()), statuses
    assert result.ok and result.exit_code == 0


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_faulty_dui_fails_the_expected_scenarios(tmp_path: Path, defect: str) -> None:
    result = _run(tmp_path, f"faulty:{defect}")
    failed = {s.name for s in result.scenarios if s.status is Status.FAILED}
    errored = {s.name: s.status for s in result.scenarios if s.status not in (Status.FAILED, Status.PASSED)}
    assert not errored, f"a defect must give conformance failures, not errors: {errored}"
    assert failed == EXPECTED_FAILURES[defect]
    assert not result.ok and result.exit_code == 1


def test_every_scenario_is_failed_by_some_defect() -> None:
    covered = set().union(*EXPECTED_FAILURES.values())
    assert covered == ALL, f"scenarios no defect can fail: {ALL - covered}"
    assert set(EXPECTED_FAILURES) == set(DEFECTS)
