"""The usage-indicator scenarios (``@indicateurs``): the TDDUI export and the activity of the other services
they count; they are also failed by MSSanté and e-Parcours defects (refused messages or notes do not count)."""

from catalogue_matrix import English, Matrix

MSS_TAUX = "Taux d'utilisation de la MSSanté d'un ESSMS sur un mois"
MSS_MESSAGES = (
    "Chaque message MSSanté envoyé compte, comme dans l'instruction nationale (messages / personnes accompagnées)"
)
MSS_PERSONNE = "Compté par personne (option), une personne ne compte qu'une fois quel que soit le nombre de messages"
PREMIERE = "La première mesure couvre les trois premiers mois de la campagne, les suivantes un mois"
FILE_ACTIVE = "Les sorties définitives de la période comptent parmi les personnes accompagnées"
SANS_ACTIVITE = "Un ESSMS sans activité est à 0 % et tire la grappe vers le bas"
DOSSIERS_ACTIFS = "Dossiers actifs et projets personnalisés d'après les dates de modification du DUI"
AGENDA = "Dossiers actifs ayant au moins un événement d'agenda, un événement annulé ne compte pas"
TDDUI_FORMAT = "Le DUI transmet ses données au format national TDDUI"
RELAIS = "Les documents transmis au relais HL7 v2 sont des messages envoyés via la MSSanté"
RENVOI = "Un message renvoyé après une réponse perdue est compté une fois"
CDL_NOTES = (
    "Le cahier de liaison compte les notes échangées, pas les consultations, et leur total sur la durée du projet"
)
PP_PERIODE = (
    "Un projet personnalisé en préparation pendant une partie du mois compte, même terminé avant la fin du mois"
)
AGENDA_SANS_FENETRE = (
    "Un événement d'agenda enregistré avant le mois compte : l'instruction ne fixe pas de fenêtre de temps"
)
RETRAIT = "Un séjour saisi par erreur et un événement annulé, transmis à nouveau, ne comptent plus"

ALL = {
    MSS_TAUX,
    MSS_MESSAGES,
    MSS_PERSONNE,
    PREMIERE,
    FILE_ACTIVE,
    SANS_ACTIVITE,
    DOSSIERS_ACTIFS,
    AGENDA,
    TDDUI_FORMAT,
    RELAIS,
    RENVOI,
    CDL_NOTES,
    PP_PERIODE,
    AGENDA_SANS_FENETRE,
    RETRAIT,
}
MSSANTE_BASED = {MSS_TAUX, MSS_MESSAGES, MSS_PERSONNE, PREMIERE, FILE_ACTIVE, SANS_ACTIVITE, RELAIS, RENVOI}

EXPECTED_FAILURES = {
    "tddui-sans-sorties": {FILE_ACTIVE},
    "tddui-date-export": {DOSSIERS_ACTIFS, AGENDA},
    "tddui-pp-brouillon-absent": {DOSSIERS_ACTIFS, PP_PERIODE},
    "tddui-url-profil": {TDDUI_FORMAT},
    "tddui-annulation-absente": {RETRAIT},  # the earlier version of the séjour / event still counts
    "tddui-evenements-du-mois": {AGENDA_SANS_FENETRE},  # the March event never reached the journal
    "xdm-sans-metadata": MSSANTE_BASED,  # an MSSanté defect: the messages are refused, the usage falls to 0
    "note-type-hors-jdv": {CDL_NOTES},  # the platform refuses the DUI's notes: only the platform's note counts
    "renvoi-nouveau-message-id": {RENVOI},  # two Message-IDs are two messages (the usage would double: 50 %)
}

ENGLISH_FEATURE = """\
@indicateurs
Feature: English aliases of the indicator steps

  Background:
    Given a grappe of 2 establishments equipped with the DUI under test
    And the measurement campaign starts in January 2025

  Scenario: MSSanté usage rate
    Given the persons accompanied by the establishment "EHPAD Les Tilleuls":
      | person        | admission  | exit       | updated on | personal plan           | events                |
      | Jeanne MARTIN | 2024-06-01 |            | 2025-04-03 | active since 2024-12-01 | 2025-04-10            |
      | Paul LEROY    | 2024-09-15 | 2025-04-10 | 2025-04-08 | completed on 2025-04-09 | 2025-04-02 cancelled  |
    When in April 2025 the DUI sends a document by MSSanté for "Jeanne MARTIN"
    And in April 2025 the DUI sends 2 documents by MSSanté for "Paul LEROY"
    And the DUI exports its TDDUI data at the end of April 2025
    Then the TDDUI simulator accepts the data without warning
    And for April 2025 the number of persons accompanied by the establishment "EHPAD Les Tilleuls" is 2
    And for April 2025 the MSSanté usage rate of the establishment "EHPAD Les Tilleuls" is 150 % and the target is met
    And for April 2025 the rate of active records with a projet personnalisé of the grappe is 50 % and the target is not met
    And for April 2025 the rate of active records with an agenda event of the grappe is 50 % and the target is not met
    And for the period from January to March 2025 the active records rate of the grappe is 0 % and the target is not set
    And the journal ties the exported data to the establishment "EHPAD Les Tilleuls" and the person "Jeanne MARTIN"
"""

MATRIX = Matrix(
    tag="indicateurs",
    service="tddui",
    scenarios=frozenset(ALL),
    failures={defect: frozenset(failed) for defect, failed in EXPECTED_FAILURES.items()},
    english=English(ENGLISH_FEATURE, 1, ()),
)
