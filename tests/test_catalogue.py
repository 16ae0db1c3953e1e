"""The catalogue against the reference DUI (all pass) and against each faulty DUI (the right scenarios fail).

A scenario that cannot fail is a defect: every scenario must be failed by at least one named defect.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from catalogue_matrix import assert_fails_exactly, assert_matrix_covers, run_tagged

from harness.core.events import Status
from harness.front.runner import RunResult
from harness.sut.mssante_actions import MSSANTE_DEFECTS as MSSANTE_DEFECT_LIST

ENVOI_PRO = "Envoi d'un DLU à un professionnel de santé"
ENVOI_PATIENT = "Envoi d'un DLU dans la messagerie Mon espace santé de la personne"
ADRESSE_INCONNUE = "Un message vers une adresse inconnue de l'annuaire est refusé et le DUI le signale"
XDM = "L'archive IHE_XDM.ZIP contient METADATA.XML (une archive sans METADATA.XML est refusée)"
REFUS_SERVEUR = "Le DUI signale un refus du serveur MSSanté"
COMPTAGE = "Le journal compte un message MSSanté envoyé par message accepté et par personne"
ENVOI_VSM = "Envoi d'un volet de synthèse médicale (VSM) au médecin traitant"
ENVOI_NON_STRUCTURE = "Envoi d'un document non structuré (CDA R2 niveau 1) à un professionnel"
ENVOI_MULTI = "Envoi de deux documents de la personne dans une seule archive IHE_XDM.ZIP"
COMPTAGE_PATIENT = "Envoi à la messagerie Mon espace santé sans possibilité de réponse, compté à part"
ENVOI_FIN = "Le message vers Mon espace santé porte X-MSS-MES: FIN"
BAL_PLEINE = "Le DUI signale qu'une boîte aux lettres pleine a refusé le message"
ANNUAIRE = "Le DUI trouve l'adresse MSSanté d'un professionnel dans l'annuaire"
RECEPTION_MDN = "Le DUI intègre un document reçu et renvoie un accusé MDN « processed »"
RECEPTION_MTLS = "Le DUI relève sa BAL applicative avec son certificat d'organisation (TLS mutuel)"
RECEPTION_902 = "Un document d'une personne non suivie par l'ESSMS est refusé avec l'erreur 902 (patient inconnu)"
RECEPTION_904 = "Un document dont les traits d'identité ne correspondent pas à l'INS connu est refusé avec l'erreur 904"
HL7_ORU = "Transmission d'un DLU en ORU^R01 vers un professionnel et la messagerie Mon espace santé, avec accusés ZAM"
HL7_MDM = "Transmission d'un VSM en MDM^T02 (volet LPS) vers un professionnel"
ENVOI_TLS = "Le DUI n'envoie rien en clair: STARTTLS et authentification avant tout envoi"
ENVOI_MESSAGE_ID = "Le message du DUI porte son propre Message-ID"
MSS_INS_PRODUCTION = "Sous la politique « refuse », le DUI n'envoie par MSSanté que des INS de test"
HL7_IDENTITE = "Le DUI identifie la personne par le même INS dans PID-3 et dans le document CDA"

ALL = {
    ENVOI_PRO,
    ENVOI_PATIENT,
    ADRESSE_INCONNUE,
    XDM,
    REFUS_SERVEUR,
    COMPTAGE,
    ENVOI_VSM,
    ENVOI_NON_STRUCTURE,
    ENVOI_MULTI,
    COMPTAGE_PATIENT,
    ENVOI_FIN,
    BAL_PLEINE,
    ANNUAIRE,
    RECEPTION_MDN,
    RECEPTION_MTLS,
    RECEPTION_902,
    RECEPTION_904,
    HL7_ORU,
    HL7_MDM,
    HL7_IDENTITE,
    ENVOI_TLS,
    ENVOI_MESSAGE_ID,
    MSS_INS_PRODUCTION,
}

# every scenario where the DUI sends a CDA document by SMTP, and every scenario where it receives one
SENT_DOCUMENTS = {
    ENVOI_PRO,
    ENVOI_PATIENT,
    XDM,
    COMPTAGE,
    ENVOI_VSM,
    ENVOI_NON_STRUCTURE,
    ENVOI_MULTI,
    COMPTAGE_PATIENT,
    ENVOI_FIN,
    ENVOI_TLS,
    ENVOI_MESSAGE_ID,
    MSS_INS_PRODUCTION,
}
RECEIVED_DOCUMENTS = {RECEPTION_MDN, RECEPTION_MTLS, RECEPTION_902, RECEPTION_904}

# defect -> the scenarios it must make fail (every other scenario must still pass)
EXPECTED_FAILURES = {
    "entetes-mss-absents": SENT_DOCUMENTS,
    "codecda-errone": SENT_DOCUMENTS,
    "oid-ins-errone": SENT_DOCUMENTS | {HL7_ORU, HL7_MDM, HL7_IDENTITE},
    "xdm-sans-metadata": SENT_DOCUMENTS,
    "xdm-hash-faux": SENT_DOCUMENTS,
    "messagerie-patient-erronee": {ENVOI_PATIENT, COMPTAGE, COMPTAGE_PATIENT, ENVOI_FIN},
    "ignore-refus-smtp": {ADRESSE_INCONNUE, REFUS_SERVEUR, BAL_PLEINE},
    "fin-ignore": {ENVOI_FIN},
    "xdm-un-seul-document": {ENVOI_MULTI},
    "imap-sans-starttls": RECEIVED_DOCUMENTS,
    "mdn-absent": RECEIVED_DOCUMENTS,
    "mdn-toujours-traite": {RECEPTION_902, RECEPTION_904},
    "traits-non-compares": {RECEPTION_904},
    "mdn-sans-original-message-id": RECEIVED_DOCUMENTS,
    "mdn-objet-sans-code": {RECEPTION_902, RECEPTION_904},
    "message-non-marque-lu": {RECEPTION_MDN, RECEPTION_902},
    "hl7-zam-ignore": {HL7_ORU},
    "hl7-sans-destinataire-patient": {HL7_ORU},
    "smtp-essai-sans-tls": {ENVOI_TLS},
    "message-id-absent": {ENVOI_MESSAGE_ID},
    "xdm-type-texte": SENT_DOCUMENTS,
    "smtp-lf-seul": SENT_DOCUMENTS,
    "entetes-8bit": SENT_DOCUMENTS,
    "ins-production-mss": {MSS_INS_PRODUCTION},
    "hl7-pid-autre-ins": {HL7_ORU, HL7_MDM, HL7_IDENTITE},
    "hl7-cle-ins-pid-erronee": {HL7_ORU, HL7_MDM, HL7_IDENTITE},
    "annuaire-non-consulte": {ANNUAIRE},
}


def _run(tmp_path: Path, sut: str, tags: str | None = None, scenarios: Path | None = None) -> RunResult:
    return run_tagged(tmp_path, sut, tags, scenarios=scenarios)


def test_the_whole_catalogue_passes_against_the_reference_dui(tmp_path: Path) -> None:
    result = _run(tmp_path, "reference")
    statuses = {s.name: s.status for s in result.scenarios}
    assert ALL <= set(statuses), f"MSSanté scenarios missing: {ALL - set(statuses)}"
    assert all(s is Status.PASSED for s in statuses.values()), statuses
    assert result.ok and result.exit_code == 0


def test_tags_select_scenarios(tmp_path: Path) -> None:
    result = _run(tmp_path / "a", "reference", tags="mssante")
    assert {s.name for s in result.scenarios} == ALL
    none = _run(tmp_path / "b", "reference", tags="not mssante and dmp_only_tag_that_does_not_exist")
    assert none.scenarios == [] and none.exit_code == 5


MSSANTE_DEFECTS = sorted(EXPECTED_FAILURES)


@pytest.mark.parametrize("defect", MSSANTE_DEFECTS)
def test_faulty_dui_fails_the_expected_scenarios(tmp_path: Path, defect: str) -> None:
    assert_fails_exactly(_run(tmp_path, f"faulty:{defect}", tags="mssante"), EXPECTED_FAILURES[defect])


def test_every_scenario_is_failed_by_some_defect() -> None:
    assert_matrix_covers(EXPECTED_FAILURES, ALL, {d.name for d in MSSANTE_DEFECT_LIST})


ENGLISH_FEATURE = """\
@mssante
Feature: English aliases of the MSSanté steps

  Background:
    Given the establishment "EHPAD Les Tilleuls" equipped with the DUI under test
    And the accompanied person "Jeanne MARTIN"

  Scenario: Send a DLU to a professional
    When the DUI sends the person's "DLU" document to "jean.dupont@medecin.mssante.fr" by MSSanté
    Then the MSSanté simulator accepts the message
    And the message's IHE_XDM.ZIP archive is valid
    And the message's X-MSS headers match the CDA document
    And the DUI reports the message as sent
    And the journal counts 1 MSSanté message sent for the person "Jeanne MARTIN"

  Scenario: Unknown address
    When the DUI sends the person's "DLU" document to "nobody@nowhere.mssante.fr" by MSSanté
    Then the MSSanté simulator rejects the message with code "550 5.1.1"
    And the DUI reports the sending failure
"""


def test_english_aliases_run_and_can_fail(tmp_path: Path) -> None:
    folder = tmp_path / "features"
    folder.mkdir()
    (folder / "english.feature").write_text(ENGLISH_FEATURE, encoding="utf-8")
    ok = _run(tmp_path / "ok", "reference", scenarios=folder)
    assert [s.status for s in ok.scenarios] == [Status.PASSED, Status.PASSED]
    bad = _run(tmp_path / "bad", "faulty:xdm-hash-faux,ignore-refus-smtp", scenarios=folder)
    assert [s.status for s in bad.scenarios] == [Status.FAILED, Status.FAILED]


def test_undefined_step_is_an_error_not_a_failure(tmp_path: Path) -> None:
    folder = tmp_path / "features"
    folder.mkdir()
    (folder / "undefined.feature").write_text(
        "# language: fr\nFonctionnalité: F\n  Scénario: S\n    Soit une étape que personne n'a écrite\n",
        encoding="utf-8",
    )
    result = _run(tmp_path, "reference", scenarios=folder)
    [scenario] = result.scenarios
    assert scenario.status is Status.ERROR and "non définie" in scenario.message


def test_a_scenario_whose_simulator_is_not_started_is_an_error(tmp_path: Path) -> None:
    config_file = tmp_path / "socle-harness.toml"
    config_file.write_text('services = ["mssante", "insi", "psc"]\n', encoding="utf-8")
    result = run_tagged(tmp_path, "reference", "dmp", config_file=config_file)
    assert result.scenarios, "the DMP scenarios must still be reported"
    assert {s.status for s in result.scenarios} == {Status.ERROR}
    assert all("« dmp » n'est pas démarré" in s.message for s in result.scenarios)
