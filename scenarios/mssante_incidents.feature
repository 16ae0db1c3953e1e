# language: fr
@mssante
Fonctionnalité: Incidents d'envoi MSSanté : le DUI attend le serveur, ou signale que le message n'est pas parti
  Le serveur de messagerie de l'opérateur MSSanté peut être lent, exiger TLS ou refuser la négociation TLS. Le
  DUI attend la réponse au DATA le temps que la RFC 5321 (§4.5.3.2) laisse au serveur (10 minutes) et, quand le
  message n'est pas parti, le dit à son utilisateur au lieu de l'indiquer comme envoyé. Quand la connexion se
  coupe après la fin du DATA, avant la réponse, le DUI ne sait pas si le message est parti (RFC 5321 §3.8) : il
  le renvoie tel quel, sous le même Message-ID (RFC 5322 §3.6.4), pour que les exemplaires soient reconnus
  comme un seul message.

  Contexte:
    Soit l'ESSMS "EHPAD Les Tilleuls" équipé du DUI sous test
    Et la personne accompagnée "Jeanne MARTIN"

  @exigence:MSS-SERVEUR-LENT @lent
  Scénario: Le serveur MSSanté met 2 secondes à accepter le message et le DUI l'attend
    Soit la messagerie MSSanté répondra en 2 secondes au prochain message
    Quand le DUI envoie le document "DLU" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Alors la messagerie MSSanté accepte le message
    Et le DUI indique que le message est envoyé

  @exigence:MSS-TLS
  Scénario: Le serveur MSSanté exige TLS : le DUI signale le refus 530 5.7.0
    Soit la messagerie MSSanté exigera TLS au prochain envoi
    Quand le DUI envoie le document "DLU" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Alors la messagerie MSSanté refuse le message avec le code "530 5.7.0"
    Et le DUI signale l'échec de l'envoi

  @exigence:MSS-TLS
  Scénario: La négociation TLS avec le serveur MSSanté échoue : le DUI signale que le message n'est pas parti
    Soit la messagerie MSSanté refusera le prochain certificat client
    Quand le DUI envoie le document "DLU" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Alors la messagerie MSSanté refuse la négociation TLS du DUI
    Et le DUI signale l'échec de l'envoi

  @exigence:MSS-REPONSE-PERDUE
  Scénario: La réponse du serveur MSSanté au message se perd : le DUI renvoie le même message
    Soit la messagerie MSSanté perdra sa réponse au prochain message
    Quand le DUI envoie le document "DLU" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté
    Alors la messagerie MSSanté a accepté 2 exemplaires du message, sous le même Message-ID
    Et le DUI indique que le message est envoyé
