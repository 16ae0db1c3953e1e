# language: fr
@indicateurs
Fonctionnalité: Indicateurs d'usage ESMS numérique calculés à partir des échanges observés
  Les cibles d'usage décident du versement du solde du financement de la grappe. Chaque indicateur est mesuré
  sur le mois écoulé à chaque fin de mois, sauf la première mesure, qui couvre 3 mois. Les personnes
  accompagnées (file active: présentes en fin de période plus sorties définitives de la période) et les dossiers
  viennent des données que le DUI transmet au format national TDDUI; les usages viennent des échanges que les
  simulateurs ont observés. Les dates sont celles du DUI (producteur), jamais celles de la réception.

  Contexte:
    Soit une grappe de 2 ESSMS équipés du DUI sous test
    Et la campagne de mesure commence en janvier 2025

  @exigence:IND-MSS-TAUX
  Scénario: Taux d'utilisation de la MSSanté d'un ESSMS sur un mois
    Soit les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  |
      | Jeanne MARTIN | 2024-06-01 |
      | Paul LEROY    | 2024-09-15 |
      | Lucie BONNET  | 2023-01-10 |
      | Marcel BLANC  | 2024-11-02 |
    Quand en avril 2025 le DUI envoie par MSSanté un document pour "Jeanne MARTIN", "Paul LEROY" et "Lucie BONNET"
    Et le DUI transmet ses données TDDUI de fin avril 2025
    Alors pour avril 2025 le taux d'utilisation de la MSSanté de l'ESSMS "EHPAD Les Tilleuls" est de 75 % et la cible est atteinte

  @exigence:IND-MSS-MESSAGES
  Scénario: Chaque message MSSanté envoyé compte, comme dans l'instruction nationale (messages / personnes accompagnées)
    Soit les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  |
      | Jeanne MARTIN | 2024-06-01 |
      | Paul LEROY    | 2024-09-15 |
      | Lucie BONNET  | 2023-01-10 |
      | Marcel BLANC  | 2024-11-02 |
    Quand en avril 2025 le DUI envoie par MSSanté 3 documents pour "Jeanne MARTIN"
    Et le DUI transmet ses données TDDUI de fin avril 2025
    Alors pour avril 2025 le taux d'utilisation de la MSSanté de l'ESSMS "EHPAD Les Tilleuls" est de 75 % et la cible est atteinte

  @exigence:IND-MSS-PERSONNE
  Scénario: Compté par personne (option), une personne ne compte qu'une fois quel que soit le nombre de messages
    Soit le taux d'utilisation de la MSSanté est compté par personne accompagnée
    Et les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  |
      | Jeanne MARTIN | 2024-06-01 |
      | Paul LEROY    | 2024-09-15 |
      | Lucie BONNET  | 2023-01-10 |
      | Marcel BLANC  | 2024-11-02 |
    Quand en avril 2025 le DUI envoie par MSSanté 3 documents pour "Jeanne MARTIN"
    Et en avril 2025 le DUI envoie par MSSanté un document pour "Paul LEROY"
    Et le DUI transmet ses données TDDUI de fin avril 2025
    Alors pour avril 2025 le taux d'utilisation de la MSSanté de l'ESSMS "EHPAD Les Tilleuls" est de 50 % et la cible n'est pas atteinte

  @exigence:IND-PREMIERE-MESURE
  Scénario: La première mesure couvre les trois premiers mois de la campagne, les suivantes un mois
    Soit les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  |
      | Jeanne MARTIN | 2024-06-01 |
      | Paul LEROY    | 2024-09-15 |
      | Lucie BONNET  | 2023-01-10 |
      | Marcel BLANC  | 2024-11-02 |
    Quand en janvier 2025 le DUI envoie par MSSanté un document pour "Jeanne MARTIN"
    Et en février 2025 le DUI envoie par MSSanté un document pour "Paul LEROY"
    Et en mars 2025 le DUI envoie par MSSanté un document pour "Lucie BONNET"
    Et en avril 2025 le DUI envoie par MSSanté un document pour "Marcel BLANC"
    Et le DUI transmet ses données TDDUI de fin avril 2025
    Alors pour la période de janvier à mars 2025 le taux d'utilisation de la MSSanté de l'ESSMS "EHPAD Les Tilleuls" est de 75 % et la cible est atteinte
    Et pour avril 2025 le taux d'utilisation de la MSSanté de l'ESSMS "EHPAD Les Tilleuls" est de 25 % et la cible n'est pas atteinte

  @exigence:IND-FILE-ACTIVE
  Scénario: Les sorties définitives de la période comptent parmi les personnes accompagnées
    Soit les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  | sortie     |
      | Jeanne MARTIN | 2024-06-01 |            |
      | Paul LEROY    | 2024-09-15 | 2025-04-10 |
      | Lucie BONNET  | 2023-01-10 | 2025-02-20 |
      | Marcel BLANC  | 2024-11-02 |            |
      | Rose DUVAL    | 2025-04-15 |            |
    Quand en avril 2025 le DUI envoie par MSSanté un document pour "Jeanne MARTIN", "Paul LEROY" et "Rose DUVAL"
    Et le DUI transmet ses données TDDUI de fin avril 2025
    Alors pour la période de janvier à mars 2025 le nombre de personnes accompagnées de l'ESSMS "EHPAD Les Tilleuls" est de 4
    Et pour avril 2025 le nombre de personnes accompagnées de l'ESSMS "EHPAD Les Tilleuls" est de 4
    Et pour avril 2025 le taux d'utilisation de la MSSanté de l'ESSMS "EHPAD Les Tilleuls" est de 75 % et la cible est atteinte

  @exigence:IND-SANS-ACTIVITE
  Scénario: Un ESSMS sans activité est à 0 % et tire la grappe vers le bas
    Soit les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  |
      | Jeanne MARTIN | 2024-06-01 |
      | Paul LEROY    | 2024-09-15 |
      | Lucie BONNET  | 2023-01-10 |
      | Marcel BLANC  | 2024-11-02 |
    Et les personnes accompagnées par l'ESSMS "SSIAD du Val":
      | personne      | admission  |
      | Simone GIRAUD | 2024-03-01 |
      | André FAURE   | 2024-05-01 |
    Quand en avril 2025 le DUI envoie par MSSanté un document pour "Jeanne MARTIN", "Paul LEROY" et "Lucie BONNET"
    Et le DUI transmet ses données TDDUI de fin avril 2025
    Alors pour avril 2025 le taux d'utilisation de la MSSanté de l'ESSMS "SSIAD du Val" est de 0 % et la cible n'est pas atteinte
    Et pour avril 2025 le taux d'utilisation de la MSSanté de la grappe est de 50 % et la cible n'est pas atteinte

  @exigence:IND-DOSSIERS-ACTIFS
  Scénario: Dossiers actifs et projets personnalisés d'après les dates de modification du DUI
    Soit les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  | modifié le             | projet personnalisé              |
      | Jeanne MARTIN | 2024-06-01 | 2025-04-03             | actif depuis 2024-12-01          |
      | Paul LEROY    | 2024-09-15 | 2025-04-20             | en préparation depuis 2025-02-01 |
      | Lucie BONNET  | 2023-01-10 | 2025-03-02, 2025-04-11 | terminé le 2025-01-15            |
      | Marcel BLANC  | 2024-11-02 | 2025-04-28             | actif depuis 2025-04-28          |
      | Rose DUVAL    | 2024-02-01 | 2025-01-20             |                                  |
    Quand le DUI transmet ses données TDDUI de fin avril 2025
    Alors pour avril 2025 le taux de dossiers actifs de l'ESSMS "EHPAD Les Tilleuls" est de 80 % et la cible n'est pas renseignée
    Et pour avril 2025 le taux de dossiers actifs avec un projet personnalisé de l'ESSMS "EHPAD Les Tilleuls" est de 75 % et la cible n'est pas atteinte

  @exigence:IND-AGENDA
  Scénario: Dossiers actifs ayant au moins un événement d'agenda, un événement annulé ne compte pas
    Soit les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  | modifié le | événements             |
      | Jeanne MARTIN | 2024-06-01 | 2025-04-03 | 2025-04-10, 2025-04-24 |
      | Paul LEROY    | 2024-09-15 | 2025-04-20 | 2025-04-12 annulé      |
      | Lucie BONNET  | 2023-01-10 | 2025-04-11 | 2025-04-11             |
      | Marcel BLANC  | 2024-11-02 | 2025-01-28 | 2025-03-30             |
    Quand le DUI transmet ses données TDDUI de fin avril 2025
    Alors pour avril 2025 le taux de dossiers actifs avec un événement d'agenda de l'ESSMS "EHPAD Les Tilleuls" est de 66,7 % et la cible n'est pas atteinte

  @exigence:IND-TDDUI-FORMAT
  Scénario: Le DUI transmet ses données au format national TDDUI
    Soit les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  | modifié le | projet personnalisé     | événements |
      | Jeanne MARTIN | 2024-06-01 | 2025-04-03 | actif depuis 2024-12-01 | 2025-04-10 |
    Quand le DUI transmet ses données TDDUI de fin avril 2025
    Alors le point de réception TDDUI accepte les données transmises sans avertissement
    Et le journal rattache les données transmises à l'ESSMS "EHPAD Les Tilleuls" et à la personne "Jeanne MARTIN"

  @exigence:IND-MSS-RELAIS
  Scénario: Les documents transmis au relais HL7 v2 sont des messages envoyés via la MSSanté
    Soit les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  |
      | Jeanne MARTIN | 2024-06-01 |
      | Paul LEROY    | 2024-09-15 |
      | Lucie BONNET  | 2023-01-10 |
      | Marcel BLANC  | 2024-11-02 |
    Quand en avril 2025 le DUI envoie par MSSanté un document pour "Jeanne MARTIN"
    Et en avril 2025 le DUI transmet un document au relais HL7 v2 de la MSSanté pour "Paul LEROY" et "Lucie BONNET"
    Et le DUI transmet ses données TDDUI de fin avril 2025
    Alors pour avril 2025 le taux d'utilisation de la MSSanté de l'ESSMS "EHPAD Les Tilleuls" est de 75 % et la cible est atteinte

  @exigence:IND-MSS-RENVOI
  Scénario: Un message renvoyé après une réponse perdue est compté une fois
    Soit les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  |
      | Jeanne MARTIN | 2024-06-01 |
      | Paul LEROY    | 2024-09-15 |
      | Lucie BONNET  | 2023-01-10 |
      | Marcel BLANC  | 2024-11-02 |
    Et la messagerie MSSanté perdra sa réponse au prochain message
    Quand en avril 2025 le DUI envoie par MSSanté un document pour "Jeanne MARTIN"
    Et le DUI transmet ses données TDDUI de fin avril 2025
    Alors la messagerie MSSanté a accepté 2 exemplaires du message, sous le même Message-ID
    Et pour avril 2025 le taux d'utilisation de la MSSanté de l'ESSMS "EHPAD Les Tilleuls" est de 25 % et la cible n'est pas atteinte

  @exigence:IND-CDL-NOTES
  Scénario: Le cahier de liaison compte les notes échangées, pas les consultations, et leur total sur la durée du projet
    Soit les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  |
      | Jeanne MARTIN | 2024-06-01 |
      | Paul LEROY    | 2024-09-15 |
    Quand en février 2025 le DUI écrit une note dans le cahier de liaison de "Jeanne MARTIN"
    Et en avril 2025 le DUI écrit une note dans le cahier de liaison de "Paul LEROY"
    Et en avril 2025 la plateforme e-Parcours publie une note dans le cahier de liaison de "Paul LEROY"
    Et en avril 2025 le DUI consulte 5 fois le cahier de liaison de "Paul LEROY"
    Alors pour avril 2025 le nombre d'échanges par le cahier de liaison de l'ESSMS "EHPAD Les Tilleuls" est de 2 et de 3 pendant la durée du projet

  @exigence:IND-PP-PERIODE
  Scénario: Un projet personnalisé en préparation pendant une partie du mois compte, même terminé avant la fin du mois
    Soit les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  | modifié le             | projet personnalisé                                      |
      | Jeanne MARTIN | 2024-06-01 | 2025-03-05, 2025-04-03 | en préparation depuis 2025-03-01, terminé le 2025-04-12 |
      | Paul LEROY    | 2024-09-15 | 2025-04-20             | actif depuis 2024-12-01                                  |
    Quand le DUI transmet ses données TDDUI de fin mars 2025
    Et le DUI transmet ses données TDDUI de fin avril 2025
    Alors pour avril 2025 le taux de dossiers actifs avec un projet personnalisé de l'ESSMS "EHPAD Les Tilleuls" est de 100 % et la cible est atteinte

  @exigence:IND-AGENDA-SANS-FENETRE
  Scénario: Un événement d'agenda enregistré avant le mois compte : l'instruction ne fixe pas de fenêtre de temps
    Soit les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  | modifié le | événements |
      | Jeanne MARTIN | 2024-06-01 | 2025-04-03 | 2025-03-20 |
      | Paul LEROY    | 2024-09-15 | 2025-04-20 | 2025-04-12 |
    Quand le DUI transmet ses données TDDUI de fin avril 2025
    Alors pour avril 2025 le taux de dossiers actifs avec un événement d'agenda de l'ESSMS "EHPAD Les Tilleuls" est de 100 % et la cible est atteinte

  @exigence:IND-RETRAIT
  Scénario: Un séjour saisi par erreur et un événement annulé, transmis à nouveau, ne comptent plus
    Soit les personnes accompagnées par l'ESSMS "EHPAD Les Tilleuls":
      | personne      | admission  | modifié le | événements |
      | Jeanne MARTIN | 2024-06-01 | 2025-04-03 | 2025-04-10 |
      | Paul LEROY    | 2024-09-15 | 2025-04-20 | 2025-04-12 |
      | Lucie BONNET  | 2023-01-10 | 2025-04-11 | 2025-04-11 |
    Quand le DUI transmet ses données TDDUI de fin avril 2025
    Et le DUI annule le séjour de "Lucie BONNET" saisi par erreur
    Et le DUI annule l'événement du 2025-04-12 de "Paul LEROY"
    Et le DUI transmet ses données TDDUI de fin avril 2025
    Alors pour avril 2025 le nombre de personnes accompagnées de l'ESSMS "EHPAD Les Tilleuls" est de 2
    Et pour avril 2025 le taux de dossiers actifs avec un événement d'agenda de l'ESSMS "EHPAD Les Tilleuls" est de 50 % et la cible n'est pas atteinte
