"""The INSi scenarios (``@insi``)."""

from catalogue_matrix import English, Matrix

RECHERCHE = "Recherche de l'INS d'une personne par ses traits d'identité"
AUCUNE = "Aucune identité ne correspond aux traits : le DUI n'attribue pas d'INS"
PLUSIEURS = "Plusieurs identités correspondent : le DUI affine la recherche avec le lieu de naissance"
NIA = "Une identité provisoire (NIA) reste provisoire dans le DUI"
HISTORIQUE = "INS avec historique : le DUI remplace l'ancien INS par l'INS actif"
QUALIFICATION = "Le DUI qualifie l'identité : pièce d'identité contrôlée et INS obtenu du téléservice INSi"
RECUPEREE = (
    "Sans pièce d'identité contrôlée, l'identité dont l'INS vient du téléservice INSi est récupérée, pas qualifiée"
)
LOGICIEL = "Un logiciel dont le numéro d'autorisation (IDAM) est inconnu est refusé, et le DUI le signale"
CERTIFICAT = "Un certificat client qui n'est pas un certificat INSi est refusé, et le DUI le signale"
INDISPONIBLE = "Le DUI signale l'indisponibilité du téléservice INSi"
NON_QUALIFIE = "Le DUI n'utilise l'INS dans un envoi MSSanté qu'une fois l'identité qualifiée"
PAS_D_ENVOI = "Le DUI refuse d'envoyer par MSSanté l'INS d'une identité seulement récupérée"
JEU_CARACTERES = "Des traits hors du jeu de caractères INSi n'obtiennent pas d'INS, et le DUI le signale"
DATE_FUTURE = "Une date de naissance postérieure à la date du jour n'obtient pas d'INS, et le DUI le signale"

ALL = {
    RECHERCHE,
    AUCUNE,
    PLUSIEURS,
    NIA,
    HISTORIQUE,
    QUALIFICATION,
    RECUPEREE,
    LOGICIEL,
    CERTIFICAT,
    INDISPONIBLE,
    NON_QUALIFIE,
    PAS_D_ENVOI,
    JEU_CARACTERES,
    DATE_FUTURE,
}
TRANSPORT = {RECHERCHE, AUCUNE, PLUSIEURS, NIA, HISTORIQUE, QUALIFICATION, RECUPEREE, NON_QUALIFIE, PAS_D_ENVOI}
# traits refused by INSi: a defect refused earlier (certificate, headers, envelope) gets another fault than the traits'
TRAITS = {JEU_CARACTERES, DATE_FUTURE}

EXPECTED_FAILURES = {
    "idam-inconnu": TRANSPORT,
    "sans-certificat-client": TRANSPORT | {LOGICIEL} | TRAITS,  # desir_560 comes before the IDAM check
    "certificat-non-insi": TRANSPORT | {LOGICIEL} | TRAITS,
    "contexte-lps-absent": TRANSPORT | {LOGICIEL} | TRAITS,
    "soap-11": TRANSPORT | {LOGICIEL} | TRAITS,  # SOAP 1.1 VersionMismatch before anything else in the request
    "version-contexte": TRANSPORT | {LOGICIEL} | TRAITS,
    "ignore-cr02": {PLUSIEURS},
    "nia-comme-ins": {NIA},
    "ignore-historique": {HISTORIQUE},
    # RNIV: « qualifiée » needs both the document check and the INSi evidence
    "qualifiee-sans-insi": {QUALIFICATION, NON_QUALIFIE},
    "qualifiee-sans-piece": {QUALIFICATION, RECUPEREE, NON_QUALIFIE},
    "ignore-faute-insi": {LOGICIEL, CERTIFICAT, INDISPONIBLE} | TRAITS,
    "envoi-sans-qualification": {PAS_D_ENVOI},
}

ENGLISH_FEATURE = """\
@insi
Feature: English aliases of the INSi steps

  Background:
    Given the establishment "EHPAD Les Tilleuls" equipped with the DUI under test

  Scenario: Search, then several matches refined with the birth place
    Given the person to identify "DURAND" "CAMILLE" of sex "F" born on "1948-05-10" in "13055"
    When the DUI searches the person's INS by identity traits
    Then the INSi teleservice first answers "02" (several identities)
    And the DUI refines the search with the birth place and gets a single identity
    And the DUI records the INS returned by the teleservice

  Scenario: Qualification with an identity document
    Given the accompanied person "Jeanne MARTIN"
    And the person's identity has not been qualified by the DUI yet
    When the DUI qualifies the person's identity on presentation of the identity document "passeport"
    Then the INSi teleservice receives a valid call with the ContexteBAM and ContexteLPS contexts
    And the DUI checked the person's identity document "PA"
    And the INSi teleservice returned the person's INS to the DUI
    And the person's identity has the status "qualifiée" for the DUI
    And the person's identity has at least the status "récupérée" for the DUI
    And the person's identity has at least the status "validée" for the DUI
    And the DUI shows the identity status established from the journal

  Scenario: Unavailable teleservice
    Given the accompanied person "Jeanne MARTIN"
    And the INSi teleservice is unavailable
    When the DUI searches the person's INS by identity traits
    Then the INSi teleservice rejects the call with the fault "insi_102"
    And the DUI reports the INSi call failure to its user
"""

MATRIX = Matrix(
    tag="insi",
    service="insi",
    scenarios=frozenset(ALL),
    failures={defect: frozenset(failed) for defect, failed in EXPECTED_FAILURES.items()},
    english=English(ENGLISH_FEATURE, 3, ("ignore-cr02", "qualifiee-sans-piece", "ignore-faute-insi")),
)
