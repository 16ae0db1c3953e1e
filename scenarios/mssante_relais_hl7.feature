# language: fr
@mssante
Fonctionnalité: Transmission de documents par HL7 v2 à une plateforme d'intégration qui les envoie par MSSanté
  Un DUI qui délègue MSSanté à une plateforme d'intégration (PFI) lui transmet le document CDA en HL7 v2 sur MLLP
  (ORU^R01 du volet « Transmission d'un document CDA-R2 en HL7 v2 », ou MDM^T02 du volet LPS) avec les drapeaux
  MetaDMPMSS. La plateforme acquitte (ACK), envoie le courriel MSSanté aux destinataires, puis renvoie les
  accusés métier ZAM^Z02 (réception MSSanté) et ZAM^Z03 (lecture), que le DUI acquitte.

  Contexte:
    Soit l'ESSMS "EHPAD Les Tilleuls" équipé du DUI sous test
    Et la personne accompagnée "Jeanne MARTIN"

  @exigence:MSS-HL7-ORU
  Scénario: Transmission d'un DLU en ORU^R01 vers un professionnel et la messagerie Mon espace santé, avec accusés ZAM
    Quand le DUI transmet le document "DLU" de la personne à la plateforme d'intégration en HL7 v2 (ORU^R01) pour "jean.dupont@medecin.mssante.fr" et sa messagerie Mon espace santé
    Alors la plateforme d'intégration acquitte le message HL7 v2 (AA)
    Et la messagerie MSSanté remet le document à "jean.dupont@medecin.mssante.fr" et à la messagerie Mon espace santé de la personne
    Et le DUI acquitte les accusés métier ZAM^Z02 et ZAM^Z03 de la plateforme

  @exigence:MSS-HL7-MDM
  Scénario: Transmission d'un VSM en MDM^T02 (volet LPS) vers un professionnel
    Quand le DUI transmet le document "VSM" de la personne à la plateforme d'intégration en HL7 v2 (MDM^T02) pour "claire.bernard@ch-exemple.mssante.fr"
    Alors la plateforme d'intégration acquitte le message HL7 v2 (AA)
    Et la messagerie MSSanté remet le document à "claire.bernard@ch-exemple.mssante.fr"

  @exigence:MSS-HL7-IDENTITE
  Scénario: Le DUI identifie la personne par le même INS dans PID-3 et dans le document CDA
    Quand le DUI transmet le document "DLU" de la personne à la plateforme d'intégration en HL7 v2 (ORU^R01) pour "jean.dupont@medecin.mssante.fr"
    Alors le message HL7 v2 identifie la personne par le même INS dans PID-3 et dans le document CDA
    Et la messagerie MSSanté remet le document à "jean.dupont@medecin.mssante.fr"
