# language: fr
@eparcours
Fonctionnalité: e-Parcours : le cahier de liaison partagé avec la plateforme régionale
  Le DUI échange des notes avec le cahier de liaison de la plateforme e-Parcours (guide ANS « Cahier de liaison »,
  FHIR R4) : il y écrit ses transmissions (DocumentReference CdLDocumentReference, type du JDV_J23, urgence,
  visibilité), les met à jour sans écraser celles des autres (ETag / If-Match), recherche et lit les notes que les
  partenaires y écrivent, et signale à son utilisateur les notes urgentes.

  Contexte:
    Soit l'ESSMS "EHPAD Les Tilleuls" équipé du DUI sous test
    Et la personne accompagnée "Jeanne MARTIN"

  @exigence:CDL-CREATION @observable
  Scénario: Écriture d'une note dans le cahier de liaison (transaction)
    Quand le DUI écrit une note "OBS" dans le cahier de liaison de la personne
    Alors la plateforme e-Parcours enregistre la note conforme au profil CdLDocumentReference
    Et la note est rattachée à l'INS de la personne et au FINESS de l'ESSMS

  @exigence:CDL-CREATION-RESTFUL
  Scénario: Écriture d'une note dans le cahier de liaison (RESTful)
    Quand le DUI écrit une note "INTERV" dans le cahier de liaison de la personne en mode RESTful
    Alors la plateforme e-Parcours enregistre la note conforme au profil CdLDocumentReference
    Et la note est rattachée à l'INS de la personne et au FINESS de l'ESSMS

  @exigence:CDL-URGENCE
  Scénario: Lecture de la note urgente publiée par la plateforme
    Soit la plateforme e-Parcours a publié une note urgente "INST" pour la personne : "Chute cette nuit : surveiller la hanche gauche, appeler le médecin si douleur"
    Quand le DUI consulte le cahier de liaison de la personne
    Alors le DUI lit la note urgente de la plateforme
    Et le DUI signale la note comme urgente à son utilisateur

  @exigence:CDL-VERSION
  Scénario: Une mise à jour avec un ETag périmé est refusée (412) et le DUI le signale
    Soit le DUI a écrit une note "OBS" dans le cahier de liaison de la personne
    Et un partenaire a modifié cette note sur la plateforme entre-temps
    Quand le DUI modifie sa note
    Alors la plateforme refuse la mise à jour avec le code HTTP 412
    Et la modification faite sur la plateforme n'est pas écrasée
    Et le DUI signale le conflit de version à son utilisateur

  @exigence:CDL-RECHERCHE
  Scénario: Recherche des notes d'un type pour la personne
    Soit la plateforme e-Parcours a publié une note "GEN" pour la personne : "Visite de la famille prévue dimanche"
    Et la plateforme e-Parcours a publié une note "DEM-AVIS" pour la personne : "Avis diététique souhaité : perte de poids"
    Et la plateforme e-Parcours a publié une note "GEN" pour la personne "Paul LEROY" : "Changement de fauteuil roulant"
    Quand le DUI recherche les notes "GEN" de la personne
    Alors la plateforme reçoit une recherche de notes sur l'INS de la personne et le type "GEN"
    Et le DUI présente les notes "GEN" de la personne, et elles seules
