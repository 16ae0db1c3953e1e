"""Examples, closed vocabularies and ``data`` schemas of the DUI control API's OpenAPI document
(:func:`harness.sut.control_api.openapi`).

Every request example is an action dataclass built from the synthetic fixtures (``fixtures/``: a test person with
a test INS, her establishment, an MSSanté address of another one) and serialised by the harness's own
:func:`~harness.sut.control_api.to_payload`: the example is what the harness sends. The vocabularies come from
the modules that own them (CI-SIS document models, JDV_J23 / JDV_J110, FR Core identity documents, ITI-57
changes), never copied. The ``data`` keys the actions declare (:class:`~harness.sut.plugins.ActionSpec`) are typed
here by name; a key without a type fails ``tests/test_control_api_examples.py``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from harness.core.config import package_root
from harness.fields.dui import DuiRecord
from harness.fields.testdata import Establishment, MailboxType, Person, TestData, load_testdata
from harness.sut.base import InsiTraits

EXPORTED_AT = datetime(2025, 4, 30, 18, 0, tzinfo=UTC)
DMP_UNIQUE_ID = "2.25.161584537046245364163226004573180318221"  # an XDS uniqueId (OID of a UUID, ITU-T X.667)
NOTE_ID = "8c4e0f52-6a0b-4d7e-9d1b-2f0c9a7e5b31"
EPU = "01K7M2P9QX4T8VWZ3F"  # 18 characters, as the e-Prescription simulator's identifiers


@dataclass(frozen=True)
class Sample:
    """The fixtures an example draws from."""

    person: Person
    establishment: Establishment
    recipient: str  # an MSSanté address of another establishment


@cache
def sample() -> Sample:
    data: TestData = load_testdata(package_root() / "fixtures")
    person = data.persons[0]
    establishment = next(e for e in data.establishments if e.finess == person.essms)
    recipient = next(
        m.address for m in data.mailboxes if m.type is not MailboxType.PAT and m.finess not in (None, person.essms)
    )
    return Sample(person, establishment, recipient)


@cache
def vocabularies() -> Mapping[tuple[str, str], Mapping[str, str]]:
    """``(request class, field) -> {code: meaning}`` for the action fields whose values are a closed list."""
    from harness.fields.identity_status import HIGH_TRUST_DOCUMENTS
    from harness.sut.dmp_actions import CHANGES, STATUS_CHANGES
    from harness.validators.cda import DOCUMENT_TYPES
    from harness.validators.cdl import NOTE_TYPES, VISIBILITY_CODES

    kinds = {kind: f"{t.title} (LOINC {t.code})" for kind, t in DOCUMENT_TYPES.items()}
    # ITI-57: a confidentiality change (the codes the document then carries) or a status change (its new status)
    changes = {name: "confidentialityCode " + ", ".join(code for code, _ in codes) for name, codes in CHANGES.items()}
    changes |= {name: "availabilityStatus " + urn.rsplit(":", 1)[-1] for name, urn in STATUS_CHANGES.items()}
    return {
        ("MssanteSend", "document_kind"): kinds,
        ("MssanteSend", "extra_kinds"): kinds,
        ("MssanteRelay", "document_kind"): kinds,
        ("DmpFeed", "document_kind"): kinds,
        ("MssanteReceive", "auth"): {
            "password": "LOGIN / PLAIN with the mailbox's test password",
            "certificate": "AUTHENTICATE EXTERNAL with the MSS-<FINESS> organisation certificate",
        },
        ("MssanteRelay", "message_type"): {
            "ORU^R01": "volet « Transmission de documents CDA en HL7 v2 » 2.1",
            "MDM^T02": "même volet, message de document",
        },
        ("DirectoryLookup", "mailbox_type"): {t.value: t.name for t in MailboxType if t is not MailboxType.PAT},
        ("InsiSearch", "identity_document"): dict(HIGH_TRUST_DOCUMENTS),
        ("InsiTraits", "sex"): {"M": "masculin", "F": "féminin"},
        ("DmpUpdate", "change"): changes,
        ("CdlNotePost", "note_type"): dict(NOTE_TYPES),
        ("CdlNotesRead", "note_type"): dict(NOTE_TYPES),
        ("CdlNotePost", "visibility"): dict(VISIBILITY_CODES),
    }


def with_vocabulary(schema: dict[str, Any], vocabulary: Mapping[str, str]) -> dict[str, Any]:
    """``schema`` restricted to the codes of ``vocabulary`` (an optional value stays nullable, a list's items are
    restricted), each code explained in the description."""
    enum = {"type": "string", "enum": list(vocabulary)}
    if "anyOf" in schema:
        schema = {**schema, "anyOf": [enum, *schema["anyOf"][1:]]}
    elif schema.get("type") == "array":
        schema = {**schema, "items": enum}
    else:
        schema = {**schema, **enum}
    return {**schema, "description": "; ".join(f"`{code}`: {meaning}" for code, meaning in vocabulary.items())}


#: Free values of the action fields, by field name (a field with a default and no entry keeps its default).
_FIELDS: dict[str, Callable[[Sample], Any]] = {
    "document_kind": lambda s: "DLU",
    "recipients": lambda s: (s.recipient,),
    "unique_id": lambda s: DMP_UNIQUE_ID,
    "change": lambda s: "masquer",
    "note_type": lambda s: "OBS",
    "text": lambda s: "Chute sans gravité ce matin ; surveillance renforcée la nuit prochaine.",
    "note_id": lambda s: NOTE_ID,
    "identifier": lambda s: EPU,
    "query": lambda s: s.recipient.split("@")[0][:6],
    "ins": lambda s: s.person.ins.value,
    "oid": lambda s: s.person.ins.oid,
    "identity_document": lambda s: "CN",
    "exported_at": lambda s: EXPORTED_AT,
    "patients": lambda s: (s.person,),
    "records": lambda s: (DuiRecord(s.person, s.person.id, updates=(EXPORTED_AT,)),),
}
#: Optional fields an action's example shows although the request type leaves them empty by default.
_ACTION_FIELDS: dict[str, tuple[str, ...]] = {
    "dmp-retrieve": ("unique_id",),
    "insi-qualify": ("identity_document",),
}


def request_example(action: str, request: type) -> Any:
    """An instance of ``request`` (an action dataclass) for ``action``, from the fixtures."""
    from harness.sut.insi_actions import traits_of_person

    s = sample()
    hints = typing.get_type_hints(request)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(request):
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        if hints[f.name] is Person:
            values[f.name] = s.person
        elif hints[f.name] is Establishment:
            values[f.name] = s.establishment
        elif hints[f.name] is InsiTraits:
            values[f.name] = traits_of_person(s.person)
        elif f.name in _FIELDS and (not has_default or f.name in _ACTION_FIELDS.get(action, ())):
            values[f.name] = _FIELDS[f.name](s)
        elif not has_default:
            raise TypeError(f"no example for {request.__name__}.{f.name}: add it to control_api_examples._FIELDS")
    return request(**values)


def _list(items: dict[str, Any], description: str) -> dict[str, Any]:
    return {"type": "array", "description": description, "items": items}


_STATUS = {"type": "string", "enum": ["provisoire", "récupérée", "validée", "qualifiée"]}
#: ``data`` keys by name: (JSON schema, example). The description comes from the action's declaration.
DATA: dict[str, tuple[dict[str, Any], Callable[[Sample], Any]]] = {
    "unique_id": ({"type": "string"}, lambda s: DMP_UNIQUE_ID),
    "entry_uuid": ({"type": "string"}, lambda s: "urn:uuid:5b0f8e3a-2c55-4c1e-9a53-0c7f1d2e9b44"),
    "documents": (
        _list(
            {
                "type": "object",
                "properties": {
                    "entry_uuid": {"type": "string"},
                    "unique_id": {"type": "string"},
                    "typeCode": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    "status": {"type": "string"},
                    "repository": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
            },
            "one object per document found (ITI-18)",
        ),
        lambda s: [
            {
                "entry_uuid": "urn:uuid:5b0f8e3a-2c55-4c1e-9a53-0c7f1d2e9b44",
                "unique_id": DMP_UNIQUE_ID,
                "typeCode": "74207-2",
                "status": "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved",
                "repository": "1.2.250.1.213.1.4.2.2",
            }
        ],
    ),
    "identical": ({"type": "boolean"}, lambda s: True),
    "size": ({"type": "integer", "minimum": 0}, lambda s: 18342),
    "note_id": ({"type": "string"}, lambda s: NOTE_ID),
    "version": ({"type": "string"}, lambda s: "1"),
    "notes": (
        _list({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}, "notes read"),
        lambda s: [{"id": NOTE_ID, "type": "OBS", "urgent": False}],
    ),
    "urgentes": (_list({"type": "string"}, "ids of the urgent notes"), lambda s: []),
    "lignes": (_list({"type": "object"}, "prescription lines"), lambda s: [{"medicament": "PARACETAMOL 500 mg"}]),
    "ins": ({"anyOf": [{"type": "string"}, {"type": "null"}]}, lambda s: s.person.ins.value),
    "oid": ({"type": "string"}, lambda s: s.person.ins.oid),
    "statut": (_STATUS, lambda s: "qualifiée"),
    "verifie": ({"type": "boolean"}, lambda s: True),
    "piece_identite": ({"anyOf": [{"type": "string"}, {"type": "null"}]}, lambda s: "CN"),
    "qualification": (
        {"type": "object", "description": "the data of the INSi search made before sending"},
        lambda s: {"ins": s.person.ins.value, "oid": s.person.ins.oid, "statut": "qualifiée"},
    ),
    "message_id": ({"type": "string"}, lambda s: "<171234.5678@dui.example>"),
    "messages": (_list({"type": "object"}, "messages handled"), lambda s: [{"de": s.recipient, "mdn": "displayed"}]),
    "addresses": (_list({"type": "string"}, "addresses proposed"), lambda s: [s.recipient]),
    "id_nat_ps": ({"type": "string"}, lambda s: "810100000001"),
    "rpps": ({"anyOf": [{"type": "string"}, {"type": "null"}]}, lambda s: "10000000001"),
    "finess": ({"type": "string"}, lambda s: s.establishment.finess),
    "nom": ({"type": "string"}, lambda s: "MARTIN"),
    "sub": ({"type": "string"}, lambda s: "f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:810100000001"),
    "kid": ({"type": "string"}, lambda s: "psc-rs256-1"),
    "sid": ({"type": "string"}, lambda s: "8a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
}


def data_schema(declared: Mapping[str, str]) -> dict[str, Any]:
    """The schema of an action's ``data``: its declared keys, typed (other keys are allowed: the DUI may say more)."""
    return {
        "type": "object",
        "properties": {key: {**DATA[key][0], "description": text} for key, text in declared.items()},
    }


def data_example(declared: Mapping[str, str]) -> dict[str, Any]:
    s = sample()
    return {key: DATA[key][1](s) for key in declared}
