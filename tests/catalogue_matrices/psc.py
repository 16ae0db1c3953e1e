"""The Pro Santé Connect scenarios (``@psc``)."""

from catalogue_matrix import Matrix

CONNEXION = "Un professionnel se connecte avec Pro Santé Connect et le DUI lit son RPPS et son FINESS"
SOCIAL = "Un professionnel du social sans RPPS se connecte avec Pro Santé Connect"
AUDIENCE = "Le DUI refuse un id token émis pour une autre audience"
STATE = "Le DUI refuse une réponse d'autorisation dont le state a été altéré"
ACR = "Le DUI refuse une authentification qui n'atteint pas le niveau eidas1"
ACTIVITE = "Un professionnel sans activité dans l'établissement est refusé"
ACTIVITE_AJOUTEE = "Un professionnel dont l'activité dans l'établissement vient d'être enregistrée est accepté"
RAFRAICHISSEMENT = "La session Pro Santé Connect est rafraîchie avec le refresh token renouvelé"
DECONNEXION = "La déconnexion du DUI termine la session Pro Santé Connect"
ROTATION = "Le DUI suit la rotation des clés de signature de Pro Santé Connect"
INDISPONIBLE = "Pro Santé Connect est indisponible : le DUI refuse la connexion au lieu d'ouvrir une session locale"
CODE_EXPIRE = "Pro Santé Connect refuse un code d'autorisation expiré : le DUI ne connecte pas le professionnel"
ACTIVITE_FINIE = (
    "Un professionnel dont l'activité dans l'établissement a pris fin est refusé, même s'il exerce ailleurs"
)
CODE_UNIQUE = "Le DUI n'échange le code d'autorisation qu'une fois, sans quoi toute la session est révoquée"

ALL = {
    CONNEXION,
    SOCIAL,
    AUDIENCE,
    STATE,
    ACR,
    ACTIVITE,
    ACTIVITE_AJOUTEE,
    RAFRAICHISSEMENT,
    DECONNEXION,
    ROTATION,
    CODE_UNIQUE,
    INDISPONIBLE,
    CODE_EXPIRE,
    ACTIVITE_FINIE,
}

EXPECTED_FAILURES = {
    "psc-sans-pkce": ALL - {INDISPONIBLE},  # PSC down: the login fails before any PKCE
    "psc-audience-non-verifiee": {AUDIENCE},
    "psc-state-non-verifie": {STATE},
    "psc-acr-non-verifie": {ACR},
    "psc-rpps-mal-lu": {CONNEXION, SOCIAL, ACTIVITE_AJOUTEE},
    "psc-finess-ignore": {ACTIVITE, ACTIVITE_FINIE},
    # the keys rotated in ROTATION (psc.feature runs before psc_incidents.feature): the stale cache then refuses
    # the next id token the DUI has to verify, the professional's whose activity ended
    "psc-cles-en-cache": {ROTATION, ACTIVITE_FINIE},
    "psc-refresh-reutilise": {RAFRAICHISSEMENT},
    # the replay revokes the whole grant family, so the refresh that follows fails too (RFC 9700 §4.5)
    "psc-code-rejoue": {RAFRAICHISSEMENT, CODE_UNIQUE},
    "psc-deconnexion-locale": {DECONNEXION},
    "psc-connexion-locale-si-indisponible": {INDISPONIBLE},
}

MATRIX = Matrix(
    tag="psc",
    service="psc",
    scenarios=frozenset(ALL),
    failures={defect: frozenset(failed) for defect, failed in EXPECTED_FAILURES.items()},
)
