# language: fr
@eprescription
Fonctionnalité: Ordonnance numérique : import d'une e-prescription dans le DUI
  Un professionnel de l'ESSMS scanne le QR code d'une ordonnance numérique (identifiant unique EPU). Le DUI récupère
  l'ordonnance auprès du service e-Prescription (lignes MedicationRequest du guide ANS e-Prescription, ou document
  CDA eP-MED-DM), vérifie qu'elle est celle de la personne et qu'elle est valide, l'intègre, puis confirme
  l'intégration au service : seule une intégration confirmée compte comme un import (indicateur d'usage).

  Contexte:
    Soit l'ESSMS "EHPAD Les Tilleuls" équipé du DUI sous test
    Et la personne accompagnée "Jeanne MARTIN"

  @exigence:EP-IMPORT
  Scénario: Import d'une ordonnance numérique par son identifiant
    Soit une ordonnance numérique établie pour la personne
    Quand le DUI importe l'ordonnance en scannant son QR code
    Alors le service e-Prescription reçoit la récupération de l'ordonnance par son identifiant
    Et le DUI confirme l'intégration de l'ordonnance au service e-Prescription
    Et l'import est rattaché à l'INS de la personne et au FINESS de l'ESSMS
    Et le DUI présente les lignes de l'ordonnance à son utilisateur

  @exigence:EP-IMPORT-CDA
  Scénario: Import d'une ordonnance numérique au format document CDA eP-MED-DM
    Soit une ordonnance numérique établie pour la personne
    Quand le DUI importe le document CDA de l'ordonnance en scannant son QR code
    Alors le service e-Prescription reçoit la récupération de l'ordonnance par son identifiant
    Et le DUI confirme l'intégration de l'ordonnance au service e-Prescription
    Et le DUI présente les lignes de l'ordonnance à son utilisateur

  @exigence:EP-AUTRE-PERSONNE
  Scénario: Le DUI refuse l'ordonnance d'une autre personne
    Soit une ordonnance numérique établie pour la personne "Paul LEROY"
    Quand le DUI importe l'ordonnance en scannant son QR code
    Alors le service e-Prescription reçoit la récupération de l'ordonnance par son identifiant
    Et aucune intégration de l'ordonnance n'est confirmée
    Et le DUI signale à son utilisateur que l'ordonnance n'est pas celle de la personne

  @exigence:EP-INCONNUE
  Scénario: Un identifiant d'ordonnance inconnu est signalé à l'utilisateur
    Soit un identifiant d'ordonnance inconnu du service e-Prescription
    Quand le DUI importe l'ordonnance en scannant son QR code
    Alors le service e-Prescription ne trouve aucune ordonnance pour cet identifiant
    Et aucune intégration de l'ordonnance n'est confirmée
    Et le DUI signale à son utilisateur que l'ordonnance est introuvable

  @exigence:EP-ANNULEE
  Scénario: Une ordonnance annulée par le prescripteur n'est pas intégrée
    Soit une ordonnance numérique annulée par le prescripteur pour la personne
    Quand le DUI importe l'ordonnance en scannant son QR code
    Alors le service e-Prescription indique que l'ordonnance est annulée
    Et aucune intégration de l'ordonnance n'est confirmée
    Et le DUI signale à son utilisateur que l'ordonnance est annulée
