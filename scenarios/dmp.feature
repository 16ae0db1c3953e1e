# language: fr
@dmp
Fonctionnalité: Alimentation et consultation du DMP depuis le DUI
  Le DUI d'un ESSMS verse les documents de la personne accompagnée dans son DMP (Mon espace santé) : test
  d'existence et d'autorisation (TD0.2), versement XDS.b ITI-41 en SOAP 1.2 + MTOM avec un VIHF signé par le
  certificat d'organisation et un document de signature XAdES, remplacement (RPLC), masquage (ITI-57),
  recherche (ITI-18) et récupération (ITI-43). Chaque versement accepté compte pour l'indicateur « DMP alimenté ».

  Contexte:
    Soit l'ESSMS "EHPAD Les Tilleuls" équipé du DUI sous test
    Et la personne accompagnée "Jeanne MARTIN"
    Et la personne a un DMP actif qui autorise l'ESSMS

  @exigence:DMP-ALIMENTATION
  Scénario: Versement d'un DLU dans le DMP actif de la personne
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Alors le DMP accepte le document
    Et le DUI indique que le document est versé au DMP
    Et le journal compte 1 document versé au DMP pour la personne "Jeanne MARTIN"

  @exigence:DMP-FERME
  Scénario: Le DMP de la personne est fermé : le DUI affiche le refus
    Soit le DMP de la personne est fermé
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Alors le DUI signale que le DMP de la personne est fermé
    Et aucun document n'est versé au DMP pour la personne

  @exigence:DMP-FERME
  Scénario: Le DMP se ferme entre le test d'existence et le versement : le DUI affiche le refus
    Soit le DMP refusera le prochain versement : DMP fermé entre-temps
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Alors le DUI signale que le DMP de la personne est fermé
    Et aucun document n'est versé au DMP pour la personne

  @exigence:DMP-REMPLACEMENT
  Scénario: Remplacement d'un document par une nouvelle version
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Et le DUI remplace ce document dans le DMP par une nouvelle version "DLU"
    Alors le DMP accepte le document
    Et le DMP a remplacé le document initial par la nouvelle version

  @exigence:DMP-MASQUAGE
  Scénario: Masquage d'un document aux professionnels
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Et le DUI masque ce document aux professionnels dans le DMP
    Alors le DMP accepte la mise à jour du document
    Et le document est masqué aux professionnels dans le DMP

  @exigence:DMP-INS @observable
  Scénario: Le patientId transmis au DMP est un INS à clé valide (un INS à clé erronée est refusé)
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Alors le DMP accepte le document
    Et le patientId transmis au DMP est l'INS de la personne avec une clé valide

  @exigence:DMP-SIGNATURE @observable
  Scénario: Le lot versé contient le document de signature (un lot sans signature est refusé)
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Alors le DMP accepte le document
    Et le lot versé contient le document de signature XAdES relié au lot

  @exigence:DMP-CONSULTATION
  Scénario: Recherche et récupération du document versé
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Et le DUI recherche les documents de la personne dans le DMP
    Alors la recherche dans le DMP renvoie le document versé
    Quand le DUI récupère ce document dans le DMP
    Alors le document récupéré est identique au document versé
