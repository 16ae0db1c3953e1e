"""The e-Prescription scenarios (``@eprescription``)."""

from catalogue_matrix import English, Matrix

IMPORT = "Import d'une ordonnance numérique par son identifiant"
IMPORT_CDA = "Import d'une ordonnance numérique au format document CDA eP-MED-DM"
AUTRE = "Le DUI refuse l'ordonnance d'une autre personne"
INCONNUE = "Un identifiant d'ordonnance inconnu est signalé à l'utilisateur"
ANNULEE = "Une ordonnance annulée par le prescripteur n'est pas intégrée"
ALL = {IMPORT, IMPORT_CDA, AUTRE, INCONNUE, ANNULEE}

EXPECTED_FAILURES = {
    "sans-confirmation": {IMPORT, IMPORT_CDA},
    "ignore-patient": {AUTRE},
    "ignore-ordonnance-inconnue": {INCONNUE},
    "importe-ordonnance-annulee": {ANNULEE},
}

ENGLISH_FEATURE = """\
@eprescription
Feature: English aliases of the e-Prescription steps

  Background:
    Given the establishment "EHPAD Les Tilleuls" equipped with the DUI under test
    And the accompanied person "Lucie BONNET"

  Scenario: Import, then refusals
    Given an electronic prescription issued for the person
    When the DUI imports the prescription by scanning its QR code
    Then the e-Prescription service receives the retrieval of the prescription by its identifier
    And the DUI confirms the integration of the prescription to the e-Prescription service
    And the import is attached to the person's INS and to the establishment's FINESS
    And the DUI shows the prescription's lines to its user

  Scenario: Cancelled prescription as a CDA document
    Given an electronic prescription cancelled by the prescriber for the person
    When the DUI imports the prescription's CDA document by scanning its QR code
    Then no integration of the prescription is confirmed
    And the DUI tells its user the prescription is cancelled

  Scenario: Another person's prescription, unknown identifier
    Given an electronic prescription issued for the person "Jeanne MARTIN"
    When the DUI imports the prescription by scanning its QR code
    Then no integration of the prescription is confirmed
    And the DUI tells its user the prescription is not the person's
"""

MATRIX = Matrix(
    tag="eprescription",
    service="eprescription",
    scenarios=frozenset(ALL),
    failures={defect: frozenset(failed) for defect, failed in EXPECTED_FAILURES.items()},
    english=English(ENGLISH_FEATURE, 3, ("sans-confirmation", "importe-ordonnance-annulee", "ignore-patient")),
)
