# language: fr
@insi
Fonctionnalité: Identité nationale de santé : recherche et vérification de l'INS auprès du téléservice INSi
  Avant d'utiliser l'INS d'une personne dans les échanges MSSanté et DMP, le DUI l'obtient et le vérifie auprès
  du téléservice INSi de l'Assurance Maladie (SOAP 1.2, authentification mutuelle TLS avec le certificat
  d'organisation INSI-AUTO, en-têtes ContexteBAM et ContexteLPS identifiant le logiciel). Seule une identité
  qualifiée peut être utilisée dans les échanges : selon le RNIV, qualifiée = traits contrôlés sur une pièce
  d'identité à haut niveau de confiance (identité validée, un fait que le DUI déclare) et INS récupéré ou vérifié
  par le téléservice INSi (identité récupérée) ; récupérée et validée sont deux états parallèles.

  Contexte:
    Soit l'ESSMS "EHPAD Les Tilleuls" équipé du DUI sous test

  @exigence:INSI-RECHERCHE
  Scénario: Recherche de l'INS d'une personne par ses traits d'identité
    Soit la personne accompagnée "Jeanne MARTIN"
    Quand le DUI recherche l'INS de la personne par ses traits d'identité
    Alors le téléservice INSi reçoit un appel conforme avec les contextes ContexteBAM et ContexteLPS
    Et le téléservice INSi répond "00" avec l'INS de la personne
    Et le DUI enregistre l'INS renvoyé par le téléservice
    Et l'identité de la personne est au moins au statut "récupérée" pour le DUI

  @exigence:INSI-AUCUNE-IDENTITE
  Scénario: Aucune identité ne correspond aux traits : le DUI n'attribue pas d'INS
    Soit la personne à identifier "DE VINCI" "LEONARDO" de sexe "M" né le "2014-02-01"
    Quand le DUI recherche l'INS de la personne par ses traits d'identité
    Alors le téléservice INSi répond "01" sans identité
    Et le DUI n'attribue pas d'INS à la personne

  @exigence:INSI-PLUSIEURS-IDENTITES
  Scénario: Plusieurs identités correspondent : le DUI affine la recherche avec le lieu de naissance
    Soit la personne à identifier "DURAND" "CAMILLE" de sexe "F" née le "1948-05-10" à "69123"
    Quand le DUI recherche l'INS de la personne par ses traits d'identité
    Alors le téléservice INSi répond d'abord "02" (plusieurs identités)
    Et le DUI affine la recherche avec le lieu de naissance et obtient une identité unique
    Et le DUI enregistre l'INS renvoyé par le téléservice

  @exigence:INSI-NIA
  Scénario: Une identité provisoire (NIA) reste provisoire dans le DUI
    Soit la personne à identifier "PROVISOIRE" "MATRICULE" de sexe "M" né le "2009-07-01"
    Quand le DUI recherche l'INS de la personne par ses traits d'identité
    Alors le téléservice INSi renvoie une identité provisoire (NIA)
    Et le DUI conserve l'identité au statut provisoire sans utiliser le NIA comme INS

  @exigence:INSI-HISTORIQUE
  Scénario: INS avec historique : le DUI remplace l'ancien INS par l'INS actif
    Soit la personne à identifier "ECETINSI" "PIERRE-ALAIN MURIEL FLORIANT" de sexe "M" né le "2009-07-14" à "63220"
    Et le DUI a enregistré pour la personne l'INS "209076322083439" (OID "1.2.250.1.213.1.4.8")
    Quand le DUI vérifie l'INS de la personne auprès du téléservice INSi
    Alors le téléservice INSi renvoie un INS actif différent, avec l'INS enregistré par le DUI dans son historique
    Et le DUI remplace l'INS enregistré par l'INS actif renvoyé par le téléservice
    Et l'identité de la personne est au statut "récupérée" pour le DUI

  @exigence:INSI-QUALIFICATION
  Scénario: Le DUI qualifie l'identité : pièce d'identité contrôlée et INS obtenu du téléservice INSi
    Soit la personne accompagnée "Lucie BONNET"
    Quand le DUI qualifie l'identité de la personne sur présentation de sa pièce d'identité "CN"
    Alors le DUI a contrôlé la pièce d'identité "CN" de la personne
    Et le téléservice INSi a renvoyé l'INS de la personne au DUI
    Et l'identité de la personne est au statut "qualifiée" pour le DUI
    Et le DUI affiche le statut d'identité établi d'après le journal

  @exigence:INSI-RECUPEREE-SANS-PIECE
  Scénario: Sans pièce d'identité contrôlée, l'identité dont l'INS vient du téléservice INSi est récupérée, pas qualifiée
    Soit la personne accompagnée "Paul LEROY"
    Quand le DUI qualifie l'identité de la personne auprès du téléservice INSi
    Alors le téléservice INSi a renvoyé l'INS de la personne au DUI
    Et l'identité de la personne est au statut "récupérée" pour le DUI
    Et le DUI affiche le statut d'identité établi d'après le journal

  @exigence:INSI-LOGICIEL-INCONNU
  Scénario: Un logiciel dont le numéro d'autorisation (IDAM) est inconnu est refusé, et le DUI le signale
    Soit la personne accompagnée "Jeanne MARTIN"
    Et le téléservice INSi ne reconnaît pas le numéro d'autorisation (IDAM) du logiciel
    Quand le DUI recherche l'INS de la personne par ses traits d'identité
    Alors le téléservice INSi refuse l'appel avec la faute "desir_550"
    Et le DUI signale l'échec de l'appel INSi à l'utilisateur

  @exigence:INSI-CERTIFICAT
  Scénario: Un certificat client qui n'est pas un certificat INSi est refusé, et le DUI le signale
    Soit la personne accompagnée "Jeanne MARTIN"
    Et le DUI présente le certificat d'organisation "ORG-ETABLISSEMENT" au lieu de son certificat INSi
    Quand le DUI recherche l'INS de la personne par ses traits d'identité
    Alors le téléservice INSi refuse l'appel avec la faute "desir_560"
    Et le DUI signale l'échec de l'appel INSi à l'utilisateur

  @exigence:INSI-INDISPONIBLE
  Scénario: Le DUI signale l'indisponibilité du téléservice INSi
    Soit la personne accompagnée "Jeanne MARTIN"
    Et le téléservice INSi est indisponible
    Quand le DUI recherche l'INS de la personne par ses traits d'identité
    Alors le téléservice INSi refuse l'appel avec la faute "insi_102"
    Et le DUI signale l'échec de l'appel INSi à l'utilisateur

  @exigence:INSI-JEU-CARACTERES
  Scénario: Des traits hors du jeu de caractères INSi n'obtiennent pas d'INS, et le DUI le signale
    Soit la personne à identifier "ИВАНОВА" "АННА" de sexe "F" née le "1950-03-02"
    Quand le DUI recherche l'INS de la personne par ses traits d'identité
    Alors les traits sont refusés, par le DUI ou par le téléservice INSi avec la faute "INSI-TRAIT-INVALIDE"
    Et le DUI signale l'échec de l'appel INSi à l'utilisateur

  @exigence:INSI-DATE-NAISSANCE
  Scénario: Une date de naissance postérieure à la date du jour n'obtient pas d'INS, et le DUI le signale
    Soit la personne à identifier "MARTIN" "JEANNE" de sexe "F" née le "2099-01-01"
    Quand le DUI recherche l'INS de la personne par ses traits d'identité
    Alors les traits sont refusés, par le DUI ou par le téléservice INSi avec la faute "INSI-TRAIT-INVALIDE"
    Et le DUI signale l'échec de l'appel INSi à l'utilisateur

  @exigence:INS-QUALIFIE-AVANT-USAGE
  Scénario: Le DUI n'utilise l'INS dans un envoi MSSanté qu'une fois l'identité qualifiée
    Soit l'ESSMS "SSIAD du Val" équipé du DUI sous test
    Et la personne accompagnée "André FAURE"
    Et l'identité de la personne n'a pas encore été qualifiée par le DUI
    Quand le DUI qualifie l'identité de la personne sur présentation de sa pièce d'identité "PA"
    Et le DUI envoie le document "DLU" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté en s'assurant que son identité est qualifiée
    Alors la messagerie MSSanté accepte le message
    Et la messagerie MSSanté ne relève aucun INS non qualifié
    Et l'identité de la personne est au statut "qualifiée" pour le DUI

  @exigence:INS-NON-QUALIFIE-PAS-D-ENVOI
  Scénario: Le DUI refuse d'envoyer par MSSanté l'INS d'une identité seulement récupérée
    Soit l'ESSMS "SSIAD du Val" équipé du DUI sous test
    Et la personne accompagnée "Simone GIRAUD"
    Et l'identité de la personne n'a pas encore été qualifiée par le DUI
    Quand le DUI recherche l'INS de la personne par ses traits d'identité
    Et le DUI envoie le document "DLU" de la personne à l'adresse "jean.dupont@medecin.mssante.fr" par MSSanté en s'assurant que son identité est qualifiée
    Alors le DUI refuse d'envoyer par MSSanté l'INS d'une identité non qualifiée
    Et l'identité de la personne est au statut "récupérée" pour le DUI
