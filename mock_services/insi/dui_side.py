"""The DUI side of the INSi service plugin (:mod:`mock_services.insi.plugin`): the control-API actions with
their answers' data and the guided-recette instructions, imported when the reference DUI, the control API or a check
first asks for them (:func:`harness.sut.plugins.dui_side`), never by ``socle-harness serve`` (issue 18, cold start)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.fields.identity_status import HIGH_TRUST_DOCUMENTS, IdentityStatus
from harness.sut import base
from harness.sut.base import SutEnvironment
from harness.sut.insi_actions import INSI_DEFECTS, InsiActions, traits_of_person
from harness.sut.plugins import ActionSpec, DuiSide, fact
from mock_services.mssante.dui_side import send_instruction


def _traits(traits: base.InsiTraits) -> str:
    place = f", lieu de naissance (code INSEE) {traits.birth_place}" if traits.birth_place else ""
    return (
        f"nom de naissance {traits.birth_name}, prénom(s) {' '.join(traits.first_names)}, sexe {traits.sex}, "
        f"né(e) le {traits.birth_date[8:10]}/{traits.birth_date[5:7]}/{traits.birth_date[:4]}{place}"
    )


def _search(action: base.InsiSearch, env: SutEnvironment | None) -> str:
    return (
        f"Dans le DUI de « {action.establishment.name} », créez ou ouvrez l'identité ({_traits(action.traits)}) "
        "et lancez l'appel au téléservice INSi (recherche de l'INS)."
    )


def _verify(action: base.InsiVerify, env: SutEnvironment | None) -> str:
    return (
        f"Dans le DUI de « {action.establishment.name} », ouvrez l'identité ({_traits(action.traits)}) "
        f"qui porte l'INS {action.ins} et lancez la vérification de l'INS auprès du téléservice INSi."
    )


def _qualify(action: base.InsiSearch, env: SutEnvironment | None) -> str:
    document = HIGH_TRUST_DOCUMENTS.get(action.identity_document or "")
    check = (
        f"contrôlez les traits sur la pièce d'identité présentée ({document}), "
        if document
        else "aucune pièce d'identité n'est présentée : ne déclarez pas l'identité validée, "
    )
    return (
        f"Dans le DUI de « {action.establishment.name} », qualifiez l'identité ({_traits(action.traits)}) : "
        f"{check}puis obtenez l'INS par le téléservice INSi et enregistrez le statut de l'identité."
    )


def _send_qualified(action: base.MssanteSend, env: SutEnvironment | None) -> str:
    return (
        "Si l'identité de la personne n'est pas qualifiée dans le DUI (pièce d'identité à haut niveau de "
        "confiance contrôlée et INS obtenu du téléservice INSi), le DUI doit refuser l'envoi ; sinon : "
        + send_instruction(action, env)
    )


def _ins(description: str) -> Any:
    return fact(description, real=lambda s: s.person.ins.value)  # the INS INSi serves for the fixture's traits


def _oid() -> Any:
    return fact(
        "its OID (1.2.250.1.213.1.4.8 NIR, .9 NIA; .10 / .11 for test identities; null without INS)",
        real=lambda s: s.person.ins.oid,
    )


@dataclass(frozen=True)
class InsiSearchData:
    ins: str | None = _ins("the INS retained (null if none)")
    oid: str | None = _oid()
    statut: IdentityStatus = fact("identity status (RNIV) the DUI records", example="récupérée")


@dataclass(frozen=True)
class InsiVerifyData:
    ins: str | None = _ins("the INS retained")
    oid: str | None = _oid()
    statut: IdentityStatus = fact("identity status (RNIV)", example="récupérée")
    verifie: bool = fact("the INS was verified", example=True)


@dataclass(frozen=True)
class InsiQualifyData:
    ins: str | None = _ins("the INS retained")
    oid: str | None = _oid()
    statut: IdentityStatus = fact("identity status the DUI records", example="qualifiée")
    piece_identite: str | None = fact(
        "FR Core code of the identity document the user checked (null if none)", example="CN"
    )


@dataclass(frozen=True)
class SentQualifiedData:
    qualification: InsiSearchData | None = fact(
        "outcome of the INSi call, when one was needed",
        real=lambda s: {"ins": s.person.ins.value, "oid": s.person.ins.oid, "statut": "qualifiée"},
    )
    statut: IdentityStatus = fact("identity status (RNIV)", example="qualifiée")


ACTIONS = (
    ActionSpec(
        name="insi-search",
        method="search_ins",
        request=base.InsiSearch,
        summary="Search the INS by traits (INSi rechercherInsAvecTraitsIdentite, mutual TLS with the INSI-AUTO "
        "certificate or `client_certificate`); on CR 02 refine with the birth place.",
        instruction=_search,
        data=InsiSearchData,
        example=lambda s: {"traits": traits_of_person(s.person)},
    ),
    ActionSpec(
        name="insi-verify",
        method="verify_ins",
        request=base.InsiVerify,
        summary="Verify the INS the DUI holds by re-sending the traits; a different active INS whose history holds "
        "the INS held replaces it.",
        instruction=_verify,
        data=InsiVerifyData,
        example=lambda s: {"traits": traits_of_person(s.person), "ins": s.person.ins.value, "oid": s.person.ins.oid},
    ),
    ActionSpec(
        name="insi-qualify",
        method="qualify_identity",
        request=base.InsiSearch,
        summary="Qualify the identity (RNIV): check the traits against the high-trust identity document presented "
        "(`identity_document`, FR Core code CN, PA, AN or LE; null when none is presented) and obtain the INS from "
        "INSi (search, or search and verification). Without a document the identity is only récupérée.",
        instruction=_qualify,
        data=InsiQualifyData,
        example=lambda s: {"traits": traits_of_person(s.person), "identity_document": "CN"},
    ),
    ActionSpec(
        name="mssante-send-qualified",
        method="send_mssante_qualified",
        request=base.MssanteSend,
        summary="Same as mssante-send, but only for a qualified identity (RNIV: identity document checked and INS "
        "obtained from INSi; the DUI may call INSi first when the document was checked): otherwise the DUI refuses "
        "the sending (status failed), it never sends a document with an unqualified INS.",
        instruction=_send_qualified,
        data=SentQualifiedData,
        example=lambda s: {"document_kind": "DLU", "recipients": (s.recipient,)},
    ),
)


VOCABULARIES = {
    (base.InsiSearch, "identity_document"): dict(HIGH_TRUST_DOCUMENTS),
    (base.InsiTraits, "sex"): {"M": "masculin", "F": "féminin"},
}


def side() -> DuiSide:
    """The DUI side: the actions above, the reference DUI's mixin and its named defects."""
    return DuiSide(actions=ACTIONS, reference=InsiActions, defects=INSI_DEFECTS, vocabularies=VOCABULARIES)
