"""The e-Parcours cahier de liaison scenarios (``@eparcours``)."""

from catalogue_matrix import English, Matrix

CREATION = "Écriture d'une note dans le cahier de liaison (transaction)"
CREATION_REST = "Écriture d'une note dans le cahier de liaison (RESTful)"
URGENCE = "Lecture de la note urgente publiée par la plateforme"
VERSION = "Une mise à jour avec un ETag périmé est refusée (412) et le DUI le signale"
RECHERCHE = "Recherche des notes d'un type pour la personne"
ALL = {CREATION, CREATION_REST, URGENCE, VERSION, RECHERCHE}

EXPECTED_FAILURES = {
    "note-type-hors-jdv": {CREATION, CREATION_REST, VERSION},  # VERSION: its Given step cannot write the note
    "ignore-urgence": {URGENCE},
    "sans-if-match": {VERSION},
    "recherche-sans-patient": {RECHERCHE},
}

ENGLISH_FEATURE = """\
@eparcours
Feature: English aliases of the e-Parcours steps

  Background:
    Given the establishment "EHPAD Les Tilleuls" equipped with the DUI under test
    And the accompanied person "Lucie BONNET"

  Scenario: Write and read
    Given the e-Parcours platform has published an urgent "INST" note for the person: "Chute ce matin"
    And the e-Parcours platform has published a "OBS" note for the person "Paul LEROY": "RAS"
    When the DUI writes a "OBS" note in the person's cahier de liaison the RESTful way
    Then the e-Parcours platform records the note, valid against the CdLDocumentReference profile
    And the note is attached to the person's INS and to the establishment's FINESS

  Scenario: Urgent note and search
    Given the e-Parcours platform has published an urgent "INST" note for the person: "Appeler la famille"
    When the DUI searches the person's "INST" notes
    Then the platform receives a notes search on the person's INS and the type "INST"
    And the DUI reads the platform's urgent note
    And the DUI flags the note as urgent to its user
    And the DUI shows the person's "INST" notes, and only them

  Scenario: Stale ETag
    Given the DUI has written a "GEN" note in the person's cahier de liaison
    And a partner has changed this note on the platform meanwhile
    When the DUI updates its note
    Then the platform rejects the update with HTTP status 412
    And the change made on the platform is not overwritten
    And the DUI reports the version conflict to its user
"""

MATRIX = Matrix(
    tag="eparcours",
    service="eparcours",
    scenarios=frozenset(ALL),
    failures={defect: frozenset(failed) for defect, failed in EXPECTED_FAILURES.items()},
    english=English(ENGLISH_FEATURE, 3, ("note-type-hors-jdv", "ignore-urgence", "sans-if-match")),
)
