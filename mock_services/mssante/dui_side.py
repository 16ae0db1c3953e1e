"""The DUI side of the MSSanté service plugin (:mod:`mock_services.mssante.plugin`): the control-API actions with
their answers' data and the guided-recette instructions, imported when the reference DUI, the control API or a check
first asks for them (:func:`harness.sut.plugins.dui_side`), never by ``socle-harness serve`` (issue 18, cold start)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.fields.testdata import MailboxType
from harness.sut import base
from harness.sut.base import SutEnvironment
from harness.sut.mssante_actions import MSSANTE_DEFECTS, MssanteActions
from harness.sut.mssante_messages import UNSTRUCTURED_TYPE
from harness.sut.plugins import ActionSpec, DuiSide, fact
from harness.validators.cda import DOCUMENT_TYPES


def send_instruction(action: base.MssanteSend, env: SutEnvironment | None = None) -> str:
    """What a recette operator does for ``mssante-send`` (also the second half of ``mssante-send-qualified``)."""
    person = action.person
    doc = DOCUMENT_TYPES.get(action.document_kind) or UNSTRUCTURED_TYPE
    recipients = [
        f"sa messagerie Mon espace santé ({person.mailbox})" if r == "patient" else r for r in action.recipients
    ]
    text = (
        f"Dans le DUI de « {action.establishment.name} », ouvrez le dossier de {person.display_name} "
        f"(né(e) le {person.birth_date:%d/%m/%Y}, INS {person.ins.value}) et envoyez par MSSanté le document "
        f"« {doc.display} » ({action.document_kind}) à : {', '.join(recipients)}."
    )
    if action.end_of_exchange:
        text += " Indiquez que la personne ne doit pas répondre (X-MSS-MES: FIN)."
    return text


def _receive(action: base.MssanteReceive, env: SutEnvironment | None) -> str:
    how = (
        "avec le certificat d'organisation de l'établissement"
        if action.auth == "certificate"
        else "avec son mot de passe"
    )
    return (
        f"Faites relever par le DUI de « {action.establishment.name} » la messagerie MSSanté "
        f"{action.establishment.dui_mailbox} ({how}) : il doit intégrer les documents reçus et renvoyer les accusés "
        "de lecture demandés."
    )


def _relay(action: base.MssanteRelay, env: SutEnvironment | None) -> str:
    patient = " et à sa messagerie Mon espace santé" if action.to_patient else ""
    return (
        f"Dans le DUI de « {action.establishment.name} », transmettez à la plateforme d'intégration "
        f"({action.message_type}) le document « {action.document_kind} » de {action.person.display_name} pour "
        f"{', '.join(action.recipients)}{patient}, avec accusés de réception et de lecture."
    )


def _lookup(action: base.DirectoryLookup, env: SutEnvironment | None) -> str:
    return f"Dans le DUI, cherchez l'adresse MSSanté « {action.query} » dans l'annuaire."


MESSAGE_ID = "<171234.5678@dui.example>"  # the DUI writes it at run time: illustrative


@dataclass(frozen=True)
class MssanteSendData:
    message_id: str = fact("Message-ID of the message sent", example=MESSAGE_ID)


@dataclass(frozen=True)
class MessageHandled:
    """One message the DUI handled (free form beyond these keys, shown in the report)."""

    message_id: str | None = None
    person: str | None = None  # the INS of the person whose record received the document
    result: str | None = None  # processed, or the error code of the volet's receipts
    mdn: str | None = None  # sent / failed, when a receipt was asked for


@dataclass(frozen=True)
class MssanteReceiveData:
    messages: tuple[MessageHandled, ...] = fact(
        "one object per message handled",
        example=[{"message_id": MESSAGE_ID, "result": "processed", "mdn": "sent"}],
    )


@dataclass(frozen=True)
class DirectoryLookupData:
    addresses: tuple[str, ...] = fact(
        "the addresses the DUI proposes to its user (from the directory the simulator serves)",
        real=lambda s: [s.recipient],
    )


ACTIONS = (
    ActionSpec(
        name="mssante-send",
        method="send_mssante",
        request=base.MssanteSend,
        summary="Send documents of the person by MSSanté: SMTP submission (STARTTLS, AUTH) of a message with the "
        "IHE_XDM.ZIP (CDA R2 + METADATA.XML) and its PDF rendering, X-MSS-* headers (DST MSSanté v1.7). "
        "`patient` as a recipient means the person's Mon espace santé mailbox.",
        instruction=send_instruction,
        data=MssanteSendData,
        example=lambda s: {"document_kind": "DLU", "recipients": (s.recipient,)},
    ),
    ActionSpec(
        name="mssante-receive",
        method="receive_mssante",
        request=base.MssanteReceive,
        summary="Read the establishment's MSSanté mailbox (IMAP4rev1, STARTTLS; `auth` password or certificate = "
        "AUTHENTICATE EXTERNAL), integrate the documents received into the records of `patients` and "
        "answer each message asking for it with an MDN (RFC 8098, codes 900-906 of the ANS volet).",
        instruction=_receive,
        data=MssanteReceiveData,
        example=lambda s: {"patients": (s.person,)},
    ),
    ActionSpec(
        name="mssante-hl7-relay",
        method="relay_mssante_hl7",
        request=base.MssanteRelay,
        summary="Hand the person's document to the integration platform as HL7 v2.5 over MLLP (ORU^R01 or "
        "MDM^T02, MetaDMPMSS), for MSSanté delivery to the recipients, asking for the ZAM receipts.",
        instruction=_relay,
        example=lambda s: {"document_kind": "DLU", "recipients": (s.recipient,)},
    ),
    ActionSpec(
        name="mssante-directory-lookup",
        method="lookup_directory",
        request=base.DirectoryLookup,
        summary="Find MSSanté addresses in the directory (Annuaire Santé FHIR search on PractitionerRole).",
        instruction=_lookup,
        data=DirectoryLookupData,
        example=lambda s: {"query": s.recipient.split("@")[0][:6]},
    ),
)


DOCUMENT_KINDS = {kind: f"{t.title} (LOINC {t.code})" for kind, t in DOCUMENT_TYPES.items()}


VOCABULARIES = {
    (base.MssanteSend, "document_kind"): DOCUMENT_KINDS,
    (base.MssanteSend, "extra_kinds"): DOCUMENT_KINDS,
    (base.MssanteRelay, "document_kind"): DOCUMENT_KINDS,
    (base.MssanteReceive, "auth"): {
        "password": "LOGIN / PLAIN with the mailbox's test password",
        "certificate": "AUTHENTICATE EXTERNAL with the MSS-<FINESS> organisation certificate",
    },
    (base.MssanteRelay, "message_type"): {
        "ORU^R01": "volet « Transmission de documents CDA en HL7 v2 » 2.1",
        "MDM^T02": "même volet, message de document",
    },
    (base.DirectoryLookup, "mailbox_type"): {t.value: t.name for t in MailboxType if t is not MailboxType.PAT},
}


def side() -> DuiSide:
    """The DUI side: the actions above, the reference DUI's mixin and its named defects."""
    return DuiSide(actions=ACTIONS, reference=MssanteActions, defects=MSSANTE_DEFECTS, vocabularies=VOCABULARIES)
