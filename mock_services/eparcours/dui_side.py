"""The DUI side of the e-Parcours service plugin (:mod:`mock_services.eparcours.plugin`): the control-API actions with
their answers' data and the guided-recette instructions, imported when the reference DUI, the control API or a check
first asks for them (:func:`harness.sut.plugins.dui_side`), never by ``socle-harness serve`` (issue 18, cold start)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.sut import base
from harness.sut.base import SutEnvironment
from harness.sut.eparcours_actions import EPARCOURS_DEFECTS, EparcoursActions
from harness.sut.plugins import ActionSpec, DuiSide, fact
from harness.validators.cdl import NOTE_TYPES, VISIBILITY_CODES


def _post(action: base.CdlNotePost, env: SutEnvironment | None) -> str:
    urgent = " urgente" if action.urgent else ""
    return (
        f"Dans le DUI de « {action.establishment.name} », écrivez dans le cahier de liaison e-Parcours de "
        f"{action.person.display_name} une note{urgent} de type {action.note_type} : « {action.text} »."
    )


def _update(action: base.CdlNoteUpdate, env: SutEnvironment | None) -> str:
    return (
        f"Dans le DUI, modifiez la note du cahier de liaison de {action.person.display_name} que vous venez "
        f"d'écrire (note {action.note_id}) : « {action.text} »."
    )


def _read(action: base.CdlNotesRead, env: SutEnvironment | None) -> str:
    kind = f" de type {action.note_type}" if action.note_type else ""
    return (
        f"Dans le DUI de « {action.establishment.name} », consultez le cahier de liaison e-Parcours de "
        f"{action.person.display_name} (notes{kind}) et ouvrez les notes trouvées."
    )


NOTE_ID = "8c4e0f52-6a0b-4d7e-9d1b-2f0c9a7e5b31"  # the platform assigns it at run time: illustrative


TEXT = "Chute sans gravité ce matin ; surveillance renforcée la nuit prochaine."


@dataclass(frozen=True)
class CdlNoteWritten:
    note_id: str = fact("the platform's id of the note", example=NOTE_ID)
    version: str = fact("its version (meta.versionId; for an update, the version the update was based on)", example="1")


@dataclass(frozen=True)
class CdlNoteShown:
    """A note as the DUI shows it (only ``id`` is required)."""

    id: str
    type: str | None = None
    urgent: bool = False
    text: str = ""
    ins: str | None = None
    version: str | None = None
    auteurs: tuple[str, ...] = ()


@dataclass(frozen=True)
class CdlNotesReadData:
    notes: tuple[CdlNoteShown, ...] = fact(
        "the notes read", example=[{"id": NOTE_ID, "type": "OBS", "urgent": False, "text": TEXT, "version": "1"}]
    )
    urgentes: tuple[str, ...] = fact("ids of the notes shown as urgent", example=[])


ACTIONS = (
    ActionSpec(
        name="cdl-note-post",
        method="cdl_post_note",
        request=base.CdlNotePost,
        summary="Write a note in the person's cahier de liaison (ans.fhir.fr.cdl 3.0.0 CdLDocumentReference), as "
        "one transaction Bundle or RESTful.",
        instruction=_post,
        data=CdlNoteWritten,
        example=lambda s: {"note_type": "OBS", "text": TEXT},
    ),
    ActionSpec(
        name="cdl-note-update",
        method="cdl_update_note",
        request=base.CdlNoteUpdate,
        summary="Change the text of a note the DUI wrote, with the version it last saw (If-Match).",
        instruction=_update,
        data=CdlNoteWritten,
        example=lambda s: {"note_id": NOTE_ID, "text": TEXT},
    ),
    ActionSpec(
        name="cdl-notes-read",
        method="cdl_read_notes",
        request=base.CdlNotesRead,
        summary="Search the person's notes (optionally of one type, since a date), read each one and show them.",
        instruction=_read,
        data=CdlNotesReadData,
    ),
)


VOCABULARIES = {
    (base.CdlNotePost, "note_type"): dict(NOTE_TYPES),
    (base.CdlNotesRead, "note_type"): dict(NOTE_TYPES),
    (base.CdlNotePost, "visibility"): dict(VISIBILITY_CODES),
}


def side() -> DuiSide:
    """The DUI side: the actions above, the reference DUI's mixin and its named defects."""
    return DuiSide(actions=ACTIONS, reference=EparcoursActions, defects=EPARCOURS_DEFECTS, vocabularies=VOCABULARIES)
