"""The MSSanté scenarios (``@mssante``): sending, the documents sent, receiving, the HL7 v2 relay, the
sending incidents."""

from catalogue_matrix import English, Matrix

ENVOI_PRO = "Envoi d'un DLU à un professionnel de santé"
ENVOI_PATIENT = "Envoi d'un DLU dans la messagerie Mon espace santé de la personne"
ADRESSE_INCONNUE = "Un message vers une adresse inconnue de l'annuaire est refusé et le DUI le signale"
XDM = "L'archive IHE_XDM.ZIP du message accepté est conforme (METADATA.XML et documents CDA)"
REFUS_SERVEUR = "Le DUI signale un refus du serveur MSSanté"
COMPTAGE = "Le journal compte un message MSSanté envoyé par message accepté et par personne"
ENVOI_VSM = "Envoi d'un volet de synthèse médicale (VSM) au médecin traitant"
ENVOI_NON_STRUCTURE = "Envoi d'un document non structuré (CDA R2 niveau 1) à un professionnel"
ENVOI_MULTI = "Envoi de deux documents de la personne dans une seule archive IHE_XDM.ZIP"
COMPTAGE_PATIENT = "Envoi à la messagerie Mon espace santé sans possibilité de réponse, compté à part"
ENVOI_FIN = "Le message vers Mon espace santé porte X-MSS-MES: FIN"
BAL_PLEINE = "Le DUI signale qu'une boîte aux lettres pleine a refusé le message"
ANNUAIRE = "Le DUI trouve l'adresse MSSanté d'un professionnel dans l'annuaire"
RECEPTION_MDN = "Le DUI intègre un document reçu et renvoie un accusé MDN « processed »"
RECEPTION_MTLS = "Le DUI relève sa BAL applicative avec son certificat d'organisation (TLS mutuel)"
RECEPTION_902 = "Un document d'une personne non suivie par l'ESSMS est refusé avec l'erreur 902 (patient inconnu)"
RECEPTION_904 = "Un document dont les traits d'identité ne correspondent pas à l'INS connu est refusé avec l'erreur 904"
HL7_ORU = "Transmission d'un DLU en ORU^R01 vers un professionnel et la messagerie Mon espace santé, avec accusés ZAM"
HL7_MDM = "Transmission d'un VSM en MDM^T02 (volet LPS) vers un professionnel"
ENVOI_TLS = "Le DUI n'envoie rien en clair: STARTTLS et authentification avant tout envoi"
ENVOI_MESSAGE_ID = "Le message du DUI porte son propre Message-ID"
MSS_INS_PRODUCTION = "Sous la politique « refuse », le DUI n'envoie par MSSanté que des INS de test"
HL7_IDENTITE = "Le DUI identifie la personne par le même INS dans PID-3 et dans le document CDA"
LENT = "Le serveur MSSanté met 2 secondes à accepter le message et le DUI l'attend"
TLS_EXIGE = "Le serveur MSSanté exige TLS : le DUI signale le refus 530 5.7.0"
TLS_REFUSE = "La négociation TLS avec le serveur MSSanté échoue : le DUI signale que le message n'est pas parti"
REPONSE_PERDUE = "La réponse du serveur MSSanté au message se perd : le DUI renvoie le même message"

ALL = {
    ENVOI_PRO,
    ENVOI_PATIENT,
    ADRESSE_INCONNUE,
    XDM,
    REFUS_SERVEUR,
    COMPTAGE,
    ENVOI_VSM,
    ENVOI_NON_STRUCTURE,
    ENVOI_MULTI,
    COMPTAGE_PATIENT,
    ENVOI_FIN,
    BAL_PLEINE,
    ANNUAIRE,
    RECEPTION_MDN,
    RECEPTION_MTLS,
    RECEPTION_902,
    RECEPTION_904,
    HL7_ORU,
    HL7_MDM,
    HL7_IDENTITE,
    ENVOI_TLS,
    ENVOI_MESSAGE_ID,
    MSS_INS_PRODUCTION,
    LENT,
    TLS_EXIGE,
    TLS_REFUSE,
    REPONSE_PERDUE,
}

# every scenario where the DUI sends a CDA document by SMTP, and every scenario where it receives one
SENT_DOCUMENTS = {
    ENVOI_PRO,
    ENVOI_PATIENT,
    XDM,
    COMPTAGE,
    ENVOI_VSM,
    ENVOI_NON_STRUCTURE,
    ENVOI_MULTI,
    COMPTAGE_PATIENT,
    ENVOI_FIN,
    ENVOI_TLS,
    ENVOI_MESSAGE_ID,
    MSS_INS_PRODUCTION,
    LENT,
    REPONSE_PERDUE,
}
RECEIVED_DOCUMENTS = {RECEPTION_MDN, RECEPTION_MTLS, RECEPTION_902, RECEPTION_904}

EXPECTED_FAILURES = {
    "entetes-mss-absents": SENT_DOCUMENTS,
    "codecda-errone": SENT_DOCUMENTS,
    "oid-ins-errone": SENT_DOCUMENTS | {HL7_ORU, HL7_MDM, HL7_IDENTITE},
    "xdm-sans-metadata": SENT_DOCUMENTS,
    "xdm-hash-faux": SENT_DOCUMENTS,
    "messagerie-patient-erronee": {ENVOI_PATIENT, COMPTAGE, COMPTAGE_PATIENT, ENVOI_FIN},
    "ignore-refus-smtp": {ADRESSE_INCONNUE, REFUS_SERVEUR, BAL_PLEINE, TLS_EXIGE, TLS_REFUSE},
    "fin-ignore": {ENVOI_FIN},
    "xdm-un-seul-document": {ENVOI_MULTI},
    "imap-sans-starttls": RECEIVED_DOCUMENTS,
    "mdn-absent": RECEIVED_DOCUMENTS,
    "mdn-toujours-traite": {RECEPTION_902, RECEPTION_904},
    "traits-non-compares": {RECEPTION_904},
    "mdn-sans-original-message-id": RECEIVED_DOCUMENTS,
    "mdn-objet-sans-code": {RECEPTION_902, RECEPTION_904},
    "message-non-marque-lu": {RECEPTION_MDN, RECEPTION_902},
    "hl7-zam-ignore": {HL7_ORU},
    "hl7-sans-destinataire-patient": {HL7_ORU},
    "smtp-essai-sans-tls": {ENVOI_TLS},
    # the server gives each copy its own Message-ID (RFC 6409 §8.3): the resend is no longer the same message
    "message-id-absent": {ENVOI_MESSAGE_ID, REPONSE_PERDUE},
    "xdm-type-texte": SENT_DOCUMENTS,
    "smtp-lf-seul": SENT_DOCUMENTS,
    "entetes-8bit": SENT_DOCUMENTS,
    "ins-production-mss": {MSS_INS_PRODUCTION},
    "hl7-pid-autre-ins": {HL7_ORU, HL7_MDM, HL7_IDENTITE},
    "hl7-cle-ins-pid-erronee": {HL7_ORU, HL7_MDM, HL7_IDENTITE},
    "annuaire-non-consulte": {ANNUAIRE},
    "attente-smtp-trop-courte": {LENT},
    "renvoi-nouveau-message-id": {REPONSE_PERDUE},
}

ENGLISH_FEATURE = """\
@mssante
Feature: English aliases of the MSSanté steps

  Background:
    Given the establishment "EHPAD Les Tilleuls" equipped with the DUI under test
    And the accompanied person "Jeanne MARTIN"

  Scenario: Send a DLU to a professional
    When the DUI sends the person's "DLU" document to "jean.dupont@medecin.mssante.fr" by MSSanté
    Then the MSSanté simulator accepts the message
    And the message's IHE_XDM.ZIP archive is valid
    And the message's X-MSS headers match the CDA document
    And the DUI reports the message as sent
    And the journal counts 1 MSSanté message sent for the person "Jeanne MARTIN"

  Scenario: Unknown address
    When the DUI sends the person's "DLU" document to "nobody@nowhere.mssante.fr" by MSSanté
    Then the MSSanté simulator rejects the message with code "550 5.1.1"
    And the DUI reports the sending failure

  Scenario: Lost reply
    Given the MSSanté simulator will lose its reply to the next message
    When the DUI sends the person's "DLU" document to "jean.dupont@medecin.mssante.fr" by MSSanté
    Then the MSSanté simulator accepted 2 copies of the message under the same Message-ID
    And the DUI reports the message as sent
"""

MATRIX = Matrix(
    tag="mssante",
    service="mssante",
    scenarios=frozenset(ALL),
    failures={defect: frozenset(failed) for defect, failed in EXPECTED_FAILURES.items()},
    english=English(ENGLISH_FEATURE, 3, ("xdm-hash-faux", "ignore-refus-smtp")),
)
