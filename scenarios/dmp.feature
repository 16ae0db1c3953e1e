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
    Alors le DMP refuse le document avec l'erreur "DMPClosed"
    Et le DUI signale que le DMP de la personne est fermé
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
  Scénario: Le patientId transmis au DMP est l'INS de la personne, avec une clé valide
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Alors le DMP accepte le document
    Et le patientId transmis au DMP est l'INS de la personne avec une clé valide

  @exigence:DMP-SIGNATURE @observable
  Scénario: Le lot versé contient le document de signature XAdES relié au lot
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

  @exigence:DMP-CONTENU-CDA
  Scénario: Le document versé est déclaré comme document CDA R2 et vérifié comme tel
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Alors le DMP accepte le document
    Et le document est déclaré au DMP comme document CDA R2

  @exigence:DMP-LECTURE-PATIENT
  Scénario: La consultation du DMP porte sur le patient du VIHF
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Et le DUI recherche les documents de la personne dans le DMP
    Alors la recherche dans le DMP renvoie le document versé
    Et le DMP a lié la consultation au patient du VIHF

  @exigence:DMP-STRUCTURE-AUTHENTIFIEE
  Scénario: Le versement est rattaché à la structure authentifiée (certificat TLS, signataire du VIHF, Identifiant_Structure)
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Alors le DMP accepte le document
    Et le journal rattache le versement à l'ESSMS authentifié

  @exigence:DMP-MTOM
  Scénario: Le versement ITI-41 est transmis en MTOM/XOP
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Alors le DMP accepte le document
    Et le versement a été transmis en MTOM

  @exigence:DMP-INS-PRODUCTION
  Scénario: Sous la politique « refuse », le DUI ne transmet au DMP que des INS de test
    Soit le DMP refuse les INS de production
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Alors le DMP accepte le document
    Et aucun INS de production n'est transmis au DMP

  @exigence:DMP-JEUX-DE-VALEURS
  Scénario: Les codes du versement sont dans les jeux de valeurs du DMP
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Alors le DMP accepte le document
    Et les codes du versement sont dans les jeux de valeurs du DMP

  @exigence:DMP-SIGNATURE-VERIFIEE
  Scénario: La signature du lot est vérifiée (structure signataire et empreintes des documents)
    Quand le DUI verse le document "DLU" de la personne dans son DMP
    Alors le DMP accepte le document
    Et la signature du lot a été vérifiée par le DMP
