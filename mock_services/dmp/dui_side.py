"""The DUI side of the DMP service plugin (:mod:`mock_services.dmp.plugin`): the control-API actions with
their answers' data and the guided-recette instructions, imported when the reference DUI, the control API or a check
first asks for them (:func:`harness.sut.plugins.dui_side`), never by ``socle-harness serve`` (issue 18, cold start)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.sut import base
from harness.sut.base import SutEnvironment
from harness.sut.dmp_actions import CHANGES, DMP_DEFECTS, STATUS_CHANGES, DmpActions
from harness.sut.plugins import ActionSpec, DuiSide, fact
from harness.validators.cda import DOCUMENT_TYPES

CHANGES_FR = {
    "masquer": "masquez-le aux professionnels",
    "demasquer": "rendez-le de nouveau visible aux professionnels",
    "invisible-patient": "rendez-le invisible à la personne",
    "archiver": "archivez-le",
    "supprimer": "supprimez-le",
}


def _feed(action: base.DmpFeed, env: SutEnvironment | None) -> str:
    doc = DOCUMENT_TYPES.get(action.document_kind)
    what = f"« {doc.display} » ({action.document_kind})" if doc else action.document_kind
    verb = (
        f"une nouvelle version du document {action.replaces}, qui remplace le précédent,"
        if action.replaces
        else f"le document {what}"
    )
    return (
        f"Dans le DUI de « {action.establishment.name} », ouvrez le dossier de {action.person.display_name} "
        f"(INS {action.person.ins.value}) et versez {verb} dans son DMP."
    )


def _find(action: base.DmpQuery, env: SutEnvironment | None) -> str:
    return f"Dans le DUI, consultez la liste des documents du DMP de {action.person.display_name}."


def _retrieve(action: base.DmpQuery, env: SutEnvironment | None) -> str:
    return f"Dans le DUI, ouvrez le document {action.unique_id} du DMP de {action.person.display_name}."


def _update(action: base.DmpUpdate, env: SutEnvironment | None) -> str:
    return (
        f"Dans le DUI, retrouvez le document {action.unique_id} versé au DMP de {action.person.display_name} "
        f"et {CHANGES_FR.get(action.change, action.change)}."
    )


# identifiers the DMP assigns at run time: the examples are illustrative
UNIQUE_ID = "2.25.161584537046245364163226004573180318221"  # an XDS uniqueId (OID of a UUID, ITU-T X.667)


ENTRY_UUID = "urn:uuid:5b0f8e3a-2c55-4c1e-9a53-0c7f1d2e9b44"


@dataclass(frozen=True)
class DmpFeedData:
    unique_id: str = fact("XDSDocumentEntry.uniqueId of the document sent", example=UNIQUE_ID)
    entry_uuid: str = fact("its entryUUID", example=ENTRY_UUID)


@dataclass(frozen=True)
class DmpDocumentFound:
    """One document found (ITI-18 XDSDocumentEntry), as the reference DUI lists it (null: absent from the entry)."""

    entry_uuid: str | None
    unique_id: str | None
    typeCode: str | None  # noqa: N815 (the XDS attribute's name)
    status: str | None
    repository: str | None


@dataclass(frozen=True)
class DmpFindData:
    documents: tuple[DmpDocumentFound, ...] = fact(
        "the documents found",
        example=[
            {
                "entry_uuid": ENTRY_UUID,
                "unique_id": UNIQUE_ID,
                "typeCode": "74207-2",
                "status": "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved",
                "repository": "1.2.250.1.213.1.4.2.2",
            }
        ],
    )


@dataclass(frozen=True)
class DmpRetrieveData:
    identical: bool = fact("the document retrieved is byte-identical to the one sent", example=True)
    size: int = fact("size in bytes", example=18342)


ACTIONS = (
    ActionSpec(
        name="dmp-feed",
        method="dmp_feed",
        request=base.DmpFeed,
        summary="Feed the person's DMP with a CDA document (TD0.2 then ITI-41 Provide and Register, SOAP 1.2 + "
        "MTOM, mutual TLS, VIHF 3.0); with `replaces`, a new version of that document (RPLC).",
        instruction=_feed,
        data=DmpFeedData,
        example=lambda s: {"document_kind": "DLU"},
    ),
    ActionSpec(
        name="dmp-find",
        method="dmp_find",
        request=base.DmpQuery,
        summary="Find the person's documents in the DMP (ITI-18 FindDocuments).",
        instruction=_find,
        data=DmpFindData,
    ),
    ActionSpec(
        name="dmp-retrieve",
        method="dmp_retrieve",
        request=base.DmpQuery,
        summary="Fetch one document from the DMP (ITI-43).",
        instruction=_retrieve,
        data=DmpRetrieveData,
        example=lambda s: {"unique_id": UNIQUE_ID},
    ),
    ActionSpec(
        name="dmp-update",
        method="dmp_update",
        request=base.DmpUpdate,
        summary="Update a document the DUI sent (ITI-57): masquer, demasquer, invisible-patient, archiver, supprimer.",
        instruction=_update,
        example=lambda s: {"unique_id": UNIQUE_ID, "change": "masquer"},
    ),
)


def side() -> DuiSide:
    """The DUI side: the actions above, the reference DUI's mixin and its named defects."""
    # ITI-57: a confidentiality change (the codes the document then carries) or a status change (its new status)
    changes = {name: "confidentialityCode " + ", ".join(code for code, _ in codes) for name, codes in CHANGES.items()}
    vocabularies = {
        (base.DmpFeed, "document_kind"): {kind: f"{t.title} (LOINC {t.code})" for kind, t in DOCUMENT_TYPES.items()},
        (base.DmpUpdate, "change"): changes
        | {name: "availabilityStatus " + urn.rsplit(":", 1)[-1] for name, urn in STATUS_CHANGES.items()},
    }
    return DuiSide(actions=ACTIONS, reference=DmpActions, defects=DMP_DEFECTS, vocabularies=vocabularies)
