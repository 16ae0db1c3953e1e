# language: fr
@psc
Fonctionnalité: Incidents de connexion Pro Santé Connect : sans identité PSC valide, le DUI ne connecte personne
  Pro Santé Connect peut être indisponible, refuser un code d'autorisation expiré, ou ne plus connaître
  d'activité du professionnel dans l'établissement. Le DUI refuse alors la connexion et dit pourquoi ; il ne se
  rabat pas sur un compte local.

  Contexte:
    Soit l'ESSMS "EHPAD Les Tilleuls" équipé du DUI sous test

  @exigence:PSC-INDISPONIBLE
  Scénario: Pro Santé Connect est indisponible : le DUI refuse la connexion au lieu d'ouvrir une session locale
    Soit le professionnel "claire.durand" s'authentifiera auprès de Pro Santé Connect
    Et Pro Santé Connect sera indisponible pour les 3 prochaines requêtes
    Quand le professionnel se connecte au DUI avec Pro Santé Connect
    Alors le DUI refuse la connexion du professionnel

  @exigence:PSC-CODE-EXPIRE
  Scénario: Pro Santé Connect refuse un code d'autorisation expiré : le DUI ne connecte pas le professionnel
    Soit le professionnel "claire.durand" s'authentifiera auprès de Pro Santé Connect
    Et le code d'autorisation PSC suivant sera expiré
    Quand le professionnel se connecte au DUI avec Pro Santé Connect
    Alors le DUI refuse la connexion du professionnel
    Et le motif du refus mentionne "invalid_grant"

  @exigence:PSC-ACTIVITE
  Scénario: Un professionnel dont l'activité dans l'établissement a pris fin est refusé, même s'il exerce ailleurs
    Soit le professionnel "sophie.lambert" s'authentifiera auprès de Pro Santé Connect
    Et le professionnel n'aura pas d'activité dans l'ESSMS "EHPAD Les Tilleuls" à sa prochaine connexion
    Quand le professionnel se connecte au DUI avec Pro Santé Connect
    Alors Pro Santé Connect a délivré les jetons au DUI avec PKCE S256
    Et le DUI refuse la connexion du professionnel
    Et le motif du refus mentionne le FINESS de l'ESSMS "EHPAD Les Tilleuls"
