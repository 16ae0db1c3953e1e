# language: fr
@mssante
Fonctionnalité: Envoi de documents par MSSanté depuis le DUI
  Le DUI d'un ESSMS envoie les documents de la personne accompagnée par la messagerie sécurisée de santé:
  aux professionnels qui la suivent et à sa messagerie Mon espace santé. Chaque message porte une archive
  IHE_XDM.ZIP (CDA + METADATA.XML), sa copie PDF et les en-têtes X-MSS-* du Référentiel socle MSSanté.

  Contexte:
    Soit l'ESSMS "EHPAD Les Tilleuls" équipé du DUI sous test
    Et la personne accompagnée "Jeanne MARTIN"

  @exigence:MSS-ENVOI-PRO
  Scénario: Envoi d'un DLU à un professionnel de santé
    Quand le DUI envoie le document "DLU" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Alors la messagerie MSSanté accepte le message
    Et l'archive IHE_XDM.ZIP du message est conforme
    Et les en-têtes X-MSS du message correspondent au document CDA
    Et le DUI indique que le message est envoyé

  @exigence:MSS-ENVOI-PATIENT
  Scénario: Envoi d'un DLU dans la messagerie Mon espace santé de la personne
    Quand le DUI envoie le document "DLU" de la personne à sa messagerie Mon espace santé
    Alors la messagerie MSSanté accepte le message
    Et le message est adressé à la messagerie Mon espace santé de la personne
    Et le DUI indique que le message est envoyé

  @exigence:MSS-ADRESSE-INCONNUE
  Scénario: Un message vers une adresse inconnue de l'annuaire est refusé et le DUI le signale
    Quand le DUI envoie le document "DLU" de la personne à l'adresse "inconnu@nulle-part.mssante.fr" par MSSanté
    Alors la messagerie MSSanté refuse le message avec le code "550 5.1.1"
    Et le DUI signale l'échec de l'envoi

  @exigence:MSS-XDM @observable
  Scénario: L'archive IHE_XDM.ZIP du message accepté est conforme (METADATA.XML et documents CDA)
    Quand le DUI envoie le document "DLU" de la personne à l'adresse "claire.bernard@ch-exemple.mssante.fr" par MSSanté
    Alors la messagerie MSSanté accepte le message
    Et l'archive IHE_XDM.ZIP du message est conforme

  @exigence:MSS-REFUS-SERVEUR
  Scénario: Le DUI signale un refus du serveur MSSanté
    Soit la messagerie MSSanté refusera le prochain message avec la réponse "554 5.6.0 Message refuse par le serveur"
    Quand le DUI envoie le document "DLU" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Alors la messagerie MSSanté refuse le message avec le code "554 5.6.0"
    Et le DUI signale l'échec de l'envoi

  @exigence:MSS-INDICATEUR
  Scénario: Le journal compte un message MSSanté envoyé par message accepté et par personne
    Quand le DUI envoie le document "DLU" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Et le DUI envoie le document "DLU" de la personne à sa messagerie Mon espace santé
    Et le DUI envoie le document "DLU" de la personne "Paul LEROY" à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Alors le journal compte 2 messages MSSanté envoyés pour la personne "Jeanne MARTIN"
    Et le journal compte 1 message MSSanté envoyé pour la personne "Paul LEROY"
    Et le journal compte 3 messages MSSanté envoyés par l'ESSMS "EHPAD Les Tilleuls"

  @exigence:MSS-ENVOI-TLS
  Scénario: Le DUI n'envoie rien en clair: STARTTLS et authentification avant tout envoi
    Quand le DUI envoie le document "DLU" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Alors la messagerie MSSanté accepte le message
    Et le DUI n'a jamais tenté d'envoyer sur SMTP sans TLS ni authentification

  @exigence:MSS-ENVOI-MESSAGE-ID
  Scénario: Le message du DUI porte son propre Message-ID
    Quand le DUI envoie le document "DLU" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Alors la messagerie MSSanté accepte le message
    Et le message porte le Message-ID du DUI

  @exigence:MSS-INS-PRODUCTION
  Scénario: Sous la politique « refuse », le DUI n'envoie par MSSanté que des INS de test
    Soit la messagerie MSSanté refuse les INS de production
    Quand le DUI envoie le document "DLU" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Alors la messagerie MSSanté accepte le message
