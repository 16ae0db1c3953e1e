"""The DMP scenarios against the reference DUI (all pass) and against each DMP defect (the right ones fail).

The runs configure the CDA XSD and the CI-SIS schematrons from the public corpus when it is present
(``[settings.dmp] cda_xsd_dir``, ``schematron_dir``), so that the reference DUI's documents are XSD- and
schematron-checked (its DLU passes CI-SIS_DLU-EHPAD-DLU_2022.01); without the corpus both layers are reported as
not configured (warnings) and the scenarios still run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from catalogue_matrix import (
    assert_all_pass,
    assert_fails_exactly,
    assert_matrix_covers,
    run_tagged,
)

from harness.core.journal import JournalFilter, Outcome, open_journal
from harness.front.runner import RunResult
from harness.sut.dmp_actions import DMP_DEFECTS
from tests.conftest import CORPUS

VERSEMENT = "Versement d'un DLU dans le DMP actif de la personne"
FERME = "Le DMP de la personne est fermé : le DUI affiche le refus"
FERME_ENTRE_TEMPS = "Le DMP se ferme entre le test d'existence et le versement : le DUI affiche le refus"
REMPLACEMENT = "Remplacement d'un document par une nouvelle version"
MASQUAGE = "Masquage d'un document aux professionnels"
INS = "Le patientId transmis au DMP est un INS à clé valide (un INS à clé erronée est refusé)"
SIGNATURE = "Le lot versé contient le document de signature (un lot sans signature est refusé)"
CONSULTATION = "Recherche et récupération du document versé"

CDA = "Le document versé est déclaré comme document CDA R2 et vérifié comme tel"
LECTURE = "La consultation du DMP porte sur le patient du VIHF"
STRUCTURE = (
    "Le versement est rattaché à la structure authentifiée (certificat TLS, signataire du VIHF, Identifiant_Structure)"
)
MTOM = "Le versement ITI-41 est transmis en MTOM/XOP"
PRODUCTION = "Sous la politique « refuse », le DUI ne transmet au DMP que des INS de test"
JDV = "Les codes du versement sont dans les jeux de valeurs du DMP"
SIGNEE = "La signature du lot est vérifiée (structure signataire et empreintes des documents)"

FEEDING = {VERSEMENT, REMPLACEMENT, MASQUAGE, INS, SIGNATURE, CONSULTATION, CDA, LECTURE, STRUCTURE, MTOM, PRODUCTION}
FEEDING |= {JDV, SIGNEE}
ALL = FEEDING | {FERME, FERME_ENTRE_TEMPS}

# defect -> the scenarios it must make fail (every other @dmp scenario must still pass)
EXPECTED_FAILURES = {
    "vihf-non-signe": ALL,
    "cle-ins-erronee-dmp": FEEDING | {FERME_ENTRE_TEMPS},  # refused as XDSUnknownPatientId, not DMPClosed
    "sans-document-signature": FEEDING,
    "typecode-errone": FEEDING,
    "ignore-dmp-ferme": {FERME, FERME_ENTRE_TEMPS},
    "remplacement-sans-rplc": {REMPLACEMENT},
    "masquage-errone": {MASQUAGE},
    "recherche-sans-statut": {CONSULTATION, LECTURE},
    "mimetype-pdf": FEEDING,
    "lecture-autre-patient": {CONSULTATION, LECTURE},
    "vihf-autre-structure": ALL,  # every request is the VIHF security fault
    "sans-mtom": FEEDING,
    "ins-production-dmp": ALL,  # the production INS has no DMP: TD0.2 answers NF, nothing is fed
    "classcode-hors-jdv": FEEDING,
    "signature-falsifiee": FEEDING,
}


def _run(tmp_path: Path, sut: str) -> RunResult:
    config_file = None
    xsd = CORPUS / "cisis-cda" / "infrastructure" / "cda"
    schematrons = CORPUS / "cisis-cda" / "schematrons"
    if xsd.is_dir():
        config_file = tmp_path / "socle-harness.toml"
        config_file.write_text(
            f'[settings.dmp]\ncda_xsd_dir = "{xsd}"\n'
            + (f'schematron_dir = "{schematrons}"\n' if schematrons.is_dir() else ""),
            encoding="utf-8",
        )
    return run_tagged(tmp_path, sut, "dmp", config_file=config_file)


def test_dmp_scenarios_pass_against_the_reference_dui(tmp_path: Path) -> None:
    assert_all_pass(_run(tmp_path, "reference"), ALL)
    if not (CORPUS / "cisis-cda" / "schematrons").is_dir():
        return
    journal = open_journal(f"sqlite:///{tmp_path}/journal.sqlite")
    try:
        feeds = journal.query(JournalFilter(service="dmp", operation="iti41.provide_and_register"))
    finally:
        journal.close()
    accepted = [e for e in feeds if e.outcome is Outcome.ACCEPTED]
    assert accepted
    for exchange in accepted:  # every DLU went through the XSD and its own schematron, without a finding
        [cda] = [v for v in exchange.details["validation"] if v["kind"] == "cda"]
        assert cda["layers"] == ["xml", "header", "xsd", "schematron:DLU-EHPAD-DLU_2022.01"], cda
        assert [f for f in exchange.details["findings"] if f["code"].startswith(("SCH-", "CDA-"))] == []


@pytest.mark.parametrize("defect", sorted(EXPECTED_FAILURES))
def test_faulty_dui_fails_the_expected_dmp_scenarios(tmp_path: Path, defect: str) -> None:
    assert_fails_exactly(_run(tmp_path, f"faulty:{defect}"), EXPECTED_FAILURES[defect])


def test_every_dmp_scenario_is_failed_by_some_defect() -> None:
    assert_matrix_covers(EXPECTED_FAILURES, ALL, {d.name for d in DMP_DEFECTS})
