"""The DMP service plugin (see :mod:`harness.sut.plugins`); imported only through its entry point."""

from __future__ import annotations

from harness.sut import base
from harness.sut.base import SutEnvironment
from harness.sut.dmp_actions import DMP_DEFECTS, DmpActions
from harness.sut.plugins import ActionSpec, DuiSide, ServicePlugin
from harness.validators.cda import DOCUMENT_TYPES
from mock_services.dmp import DMPSimulator
from mock_services.dmp.faults import FAULTS
from mock_services.dmp.settings import DmpSettings

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


ACTIONS = (
    ActionSpec(
        name="dmp-feed",
        method="dmp_feed",
        request=base.DmpFeed,
        summary="Feed the person's DMP with a CDA document (TD0.2 then ITI-41 Provide and Register, SOAP 1.2 + "
        "MTOM, mutual TLS, VIHF 3.0); with `replaces`, a new version of that document (RPLC).",
        instruction=_feed,
        data={"unique_id": "XDSDocumentEntry.uniqueId of the document sent", "entry_uuid": "its entryUUID"},
    ),
    ActionSpec(
        name="dmp-find",
        method="dmp_find",
        request=base.DmpQuery,
        summary="Find the person's documents in the DMP (ITI-18 FindDocuments).",
        instruction=_find,
        data={"documents": "the documents found"},
    ),
    ActionSpec(
        name="dmp-retrieve",
        method="dmp_retrieve",
        request=base.DmpQuery,
        summary="Fetch one document from the DMP (ITI-43).",
        instruction=_retrieve,
        data={
            "identical": "boolean: the document retrieved is byte-identical to the one sent",
            "size": "size in bytes",
        },
    ),
    ActionSpec(
        name="dmp-update",
        method="dmp_update",
        request=base.DmpUpdate,
        summary="Update a document the DUI sent (ITI-57): masquer, demasquer, invisible-patient, archiver, supprimer.",
        instruction=_update,
    ),
)

PLUGIN = ServicePlugin(
    name="dmp",
    title=DMPSimulator.title,
    simulator=DMPSimulator,
    settings=(DmpSettings,),
    faults=FAULTS,
    dui=DuiSide(actions=ACTIONS, reference=DmpActions, defects=DMP_DEFECTS),
    steps="harness.steps.dmp",
)
