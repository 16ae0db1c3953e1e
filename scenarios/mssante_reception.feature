# language: fr
@mssante
Fonctionnalité: Réception de documents par MSSanté et accusés de lecture (MDN)
  Un professionnel envoie un document d'une personne accompagnée à la BAL applicative du DUI, avec une demande
  d'accusé de lecture (Disposition-Notification-To). Le DUI relève sa messagerie en IMAP (STARTTLS), intègre
  l'archive IHE_XDM.ZIP dans le dossier de la personne et renvoie un MDN (RFC 8098) : « processed », ou
  « processed/error » avec le code d'intégration du volet ANS (902 patient inconnu, 904 INS discordant) et
  l'objet « [KO Intégration système !][code] ».

  Contexte:
    Soit l'ESSMS "EHPAD Les Tilleuls" équipé du DUI sous test
    Et la personne accompagnée "Jeanne MARTIN"

  @exigence:MSS-RECEPTION-MDN
  Scénario: Le DUI intègre un document reçu et renvoie un accusé MDN « processed »
    Soit le professionnel "jean.dupont@medecin.mssante.fr" envoie au DUI le document "DLU" de la personne avec demande d'accusé de lecture
    Quand le DUI relève sa messagerie MSSanté
    Alors la messagerie MSSanté reçoit un accusé de lecture MDN "processed" pour ce message
    Et le message est marqué lu dans la messagerie du DUI
    Et le DUI ne s'est jamais authentifié sur IMAP sans TLS

  @exigence:MSS-RECEPTION-MTLS
  Scénario: Le DUI relève sa BAL applicative avec son certificat d'organisation (TLS mutuel)
    Soit le professionnel "claire.bernard@ch-exemple.mssante.fr" envoie au DUI le document "VSM" de la personne avec demande d'accusé de lecture
    Quand le DUI relève sa messagerie MSSanté avec son certificat d'organisation
    Alors le DUI s'est authentifié sur IMAP avec son certificat d'organisation
    Et la messagerie MSSanté reçoit un accusé de lecture MDN "processed" pour ce message

  @exigence:MSS-RECEPTION-902
  Scénario: Un document d'une personne non suivie par l'ESSMS est refusé avec l'erreur 902 (patient inconnu)
    Soit le professionnel "jean.dupont@medecin.mssante.fr" envoie au DUI le document "DLU" d'une personne inconnue de l'ESSMS
    Quand le DUI relève sa messagerie MSSanté
    Alors la messagerie MSSanté reçoit un accusé de lecture MDN d'erreur "902" pour ce message
    Et le message est marqué lu dans la messagerie du DUI

  @exigence:MSS-RECEPTION-904
  Scénario: Un document dont les traits d'identité ne correspondent pas à l'INS connu est refusé avec l'erreur 904
    Soit le professionnel "jean.dupont@medecin.mssante.fr" envoie au DUI le document "DLU" de la personne avec des traits d'identité différents
    Quand le DUI relève sa messagerie MSSanté
    Alors la messagerie MSSanté reçoit un accusé de lecture MDN d'erreur "904" pour ce message
