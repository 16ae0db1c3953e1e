# language: fr
@mssante
Fonctionnalité: Envoi par MSSanté des différents types de documents
  Le DUI envoie le volet de synthèse médicale, un document non structuré (CDA R2 niveau 1, PDF), plusieurs
  documents d'une même personne dans une seule archive IHE_XDM.ZIP, et écrit à la messagerie Mon espace santé
  de la personne sans possibilité de réponse (X-MSS-MES: FIN). Les messages vers Mon espace santé sont comptés
  à part dans le journal (indicateur d'usage MSSanté).

  Contexte:
    Soit l'ESSMS "EHPAD Les Tilleuls" équipé du DUI sous test
    Et la personne accompagnée "Jeanne MARTIN"

  @exigence:MSS-ENVOI-VSM @observable
  Scénario: Envoi d'un volet de synthèse médicale (VSM) au médecin traitant
    Quand le DUI envoie le document "VSM" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Alors la messagerie MSSanté accepte le message
    Et l'archive IHE_XDM.ZIP du message est conforme
    Et les en-têtes X-MSS du message correspondent au document CDA

  @exigence:MSS-ENVOI-NON-STRUCTURE @observable
  Scénario: Envoi d'un document non structuré (CDA R2 niveau 1) à un professionnel
    Quand le DUI envoie le document "DOC-NS" de la personne à l'adresse "claire.bernard@ch-exemple.mssante.fr" par MSSanté
    Alors la messagerie MSSanté accepte le message
    Et l'archive IHE_XDM.ZIP du message est conforme
    Et les en-têtes X-MSS du message correspondent au document CDA

  @exigence:MSS-ENVOI-MULTI
  Scénario: Envoi de deux documents de la personne dans une seule archive IHE_XDM.ZIP
    Quand le DUI envoie les documents "DLU" et "VSM" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Alors la messagerie MSSanté accepte le message
    Et l'archive IHE_XDM.ZIP du message contient 2 documents CDA
    Et les en-têtes X-MSS du message correspondent au document CDA

  @exigence:MSS-ENVOI-PATIENT-FIN
  Scénario: Envoi à la messagerie Mon espace santé sans possibilité de réponse, compté à part
    Quand le DUI envoie le document "DLU" de la personne à sa messagerie Mon espace santé sans possibilité de réponse
    Et le DUI envoie le document "DLU" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Alors le journal compte 2 messages MSSanté envoyés pour la personne "Jeanne MARTIN"
    Et le journal compte 1 message MSSanté vers une messagerie Mon espace santé

  @exigence:MSS-ENVOI-FIN
  Scénario: Le message vers Mon espace santé porte X-MSS-MES: FIN
    Quand le DUI envoie le document "DLU" de la personne à sa messagerie Mon espace santé sans possibilité de réponse
    Alors la messagerie MSSanté accepte le message
    Et le message est adressé à la messagerie Mon espace santé de la personne
    Et le message porte l'en-tête X-MSS-MES: FIN

  @exigence:MSS-BAL-PLEINE
  Scénario: Le DUI signale qu'une boîte aux lettres pleine a refusé le message
    Soit la messagerie "jean.dupont@medecin.mssante.fr" est pleine
    Quand le DUI envoie le document "DLU" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Alors la messagerie MSSanté refuse le message avec le code "552 5.2.2"
    Et le DUI signale l'échec de l'envoi

  @exigence:MSS-ANNUAIRE
  Scénario: Le DUI trouve l'adresse MSSanté d'un professionnel dans l'annuaire
    Soit l'annuaire MSSanté contient la BAL "marie.curie@radiologie-test.mssante.fr" de type "PER"
    Quand le DUI cherche l'adresse MSSanté "marie.curie" dans l'annuaire
    Alors le DUI propose l'adresse "marie.curie@radiologie-test.mssante.fr"
