# language: fr
@psc
Fonctionnalité: Connexion des professionnels au DUI avec Pro Santé Connect
  Le DUI authentifie les professionnels de santé et du social avec Pro Santé Connect (OpenID Connect: code
  d'autorisation avec PKCE S256, scope "openid scope_all", acr_values "eidas1"). Il vérifie l'id token (signature,
  émetteur, audience, nonce, acr), lit l'identité du professionnel dans userinfo (idNat_PS, RPPS) et n'accepte
  que les professionnels ayant une activité dans l'établissement (FINESS). La messagerie MSSanté accepte aussi le
  jeton d'accès Pro Santé Connect pour l'authentification XOAUTH2 des BAL personnelles (SMTP et IMAP).

  Contexte:
    Soit l'ESSMS "EHPAD Les Tilleuls" équipé du DUI sous test

  @exigence:PSC-CONNEXION
  Scénario: Un professionnel se connecte avec Pro Santé Connect et le DUI lit son RPPS et son FINESS
    Soit le professionnel "claire.durand" s'authentifiera auprès de Pro Santé Connect
    Quand le professionnel se connecte au DUI avec Pro Santé Connect
    Alors Pro Santé Connect a délivré les jetons au DUI avec PKCE S256
    Et le DUI a lu les informations du professionnel dans userinfo
    Et le DUI identifie le professionnel par son RPPS "19900000019" dans l'ESSMS "EHPAD Les Tilleuls"

  @exigence:PSC-SOCIAL-SANS-RPPS
  Scénario: Un professionnel du social sans RPPS se connecte avec Pro Santé Connect
    Soit le professionnel "julien.moreau" s'authentifiera auprès de Pro Santé Connect
    Quand le professionnel se connecte au DUI avec Pro Santé Connect
    Alors Pro Santé Connect a délivré les jetons au DUI avec PKCE S256
    Et le DUI identifie le professionnel par son identifiant national "3990000016/EDS0042" sans RPPS

  @exigence:PSC-AUDIENCE
  Scénario: Le DUI refuse un id token émis pour une autre audience
    Soit le professionnel "claire.durand" s'authentifiera auprès de Pro Santé Connect
    Et Pro Santé Connect émettra le prochain id token pour une autre audience
    Quand le professionnel se connecte au DUI avec Pro Santé Connect
    Alors le DUI refuse la connexion du professionnel
    Et le motif du refus mentionne "audience"

  @exigence:PSC-STATE
  Scénario: Le DUI refuse une réponse d'autorisation dont le state a été altéré
    Soit le professionnel "claire.durand" s'authentifiera auprès de Pro Santé Connect
    Et Pro Santé Connect renverra un state altéré à la prochaine authentification
    Quand le professionnel se connecte au DUI avec Pro Santé Connect
    Alors le DUI refuse la connexion du professionnel
    Et le motif du refus mentionne "state"

  @exigence:PSC-ACR
  Scénario: Le DUI refuse une authentification qui n'atteint pas le niveau eidas1
    Soit le professionnel "claire.durand" s'authentifiera auprès de Pro Santé Connect
    Et Pro Santé Connect n'atteindra pas le niveau eidas1 à la prochaine authentification
    Quand le professionnel se connecte au DUI avec Pro Santé Connect
    Alors le DUI refuse la connexion du professionnel
    Et le motif du refus mentionne "eidas1"

  @exigence:PSC-ACTIVITE
  Scénario: Un professionnel sans activité dans l'établissement est refusé
    Soit le professionnel "marc.petit" s'authentifiera auprès de Pro Santé Connect
    Quand le professionnel se connecte au DUI avec Pro Santé Connect
    Alors Pro Santé Connect a délivré les jetons au DUI avec PKCE S256
    Et le DUI refuse la connexion du professionnel
    Et le motif du refus mentionne le FINESS de l'ESSMS "EHPAD Les Tilleuls"

  @exigence:PSC-ACTIVITE-MISE-A-JOUR
  Scénario: Un professionnel dont l'activité dans l'établissement vient d'être enregistrée est accepté
    Soit le professionnel "marc.petit" s'authentifiera auprès de Pro Santé Connect
    Et le professionnel "marc.petit" exerce aussi dans l'ESSMS "EHPAD Les Tilleuls"
    Quand le professionnel se connecte au DUI avec Pro Santé Connect
    Alors le DUI identifie le professionnel par son RPPS "19900000027" dans l'ESSMS "EHPAD Les Tilleuls"

  @exigence:PSC-RAFRAICHISSEMENT
  Scénario: La session Pro Santé Connect est rafraîchie avec le refresh token renouvelé
    Soit le professionnel "sophie.lambert" s'authentifiera auprès de Pro Santé Connect
    Quand le professionnel se connecte au DUI avec Pro Santé Connect
    Et le DUI rafraîchit la session Pro Santé Connect
    Et le DUI rafraîchit la session Pro Santé Connect
    Alors Pro Santé Connect a accepté 2 rafraîchissements de la session
    Et le DUI indique que la session est rafraîchie

  @exigence:PSC-CODE-USAGE-UNIQUE
  Scénario: Le DUI n'échange le code d'autorisation qu'une fois, sans quoi toute la session est révoquée
    Soit le professionnel "sophie.lambert" s'authentifiera auprès de Pro Santé Connect
    Quand le professionnel se connecte au DUI avec Pro Santé Connect
    Et le DUI rafraîchit la session Pro Santé Connect
    Alors Pro Santé Connect n'a reçu aucun code d'autorisation rejoué
    Et Pro Santé Connect a accepté 1 rafraîchissement de la session
    Et le DUI indique que la session est rafraîchie

  @exigence:PSC-DECONNEXION
  Scénario: La déconnexion du DUI termine la session Pro Santé Connect
    Soit le professionnel "claire.durand" s'authentifiera auprès de Pro Santé Connect
    Quand le professionnel se connecte au DUI avec Pro Santé Connect
    Et le professionnel se déconnecte du DUI
    Alors Pro Santé Connect a terminé la session du professionnel

  @exigence:PSC-ROTATION-CLES
  Scénario: Le DUI suit la rotation des clés de signature de Pro Santé Connect
    Soit le professionnel "claire.durand" s'authentifiera auprès de Pro Santé Connect
    Quand le professionnel se connecte au DUI avec Pro Santé Connect
    Et Pro Santé Connect renouvelle ses clés de signature
    Et le professionnel se reconnecte au DUI avec Pro Santé Connect
    Alors le DUI indique que le professionnel est connecté
    Et la connexion est vérifiée avec la nouvelle clé de signature
