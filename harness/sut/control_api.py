"""The DUI control API, contract 1: one table of actions from which the HTTP driver, the JSON payloads and the
published OpenAPI document (``docs/control-api.openapi.json``, ``socle-harness control-api``) are all derived,
so that the contract a DUI editor implements and what the harness sends cannot drift apart.

A DUI test build implements ``POST /socle/v1/session`` (the simulators' endpoints, the test CA, the organisation
certificates, the test credentials and the DUI's Pro Santé Connect registration) and ``POST
/socle/v1/actions/{action}`` for each business action below. The request bodies are the action dataclasses of
:mod:`harness.sut.base` serialised field by field (dates in ISO 8601, persons as :func:`person_payload`); the
answer is ``{"status": "done"|"failed"|"delegated", "detail": "...", "data": {...}}`` where ``data`` carries the
facts listed per action (what the DUI shows its user: the INS it retained, the professional it logged in...).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from harness.fields.dui import DuiRecord
from harness.fields.testdata import Establishment, Person
from harness.sut import base
from harness.sut.base import InsiTraits

CONTRACT_VERSION = "1"
PREFIX = "/socle/v1"


@dataclass(frozen=True)
class ActionSpec:
    """One action of the control API: URL segment, :class:`~harness.sut.base.SutDriver` method, request
    dataclass (``None``: empty body), what it asks of the DUI, and the ``data`` keys the harness reads back."""

    name: str
    method: str
    request: type | None
    summary: str
    data: dict[str, str] = dataclasses.field(default_factory=dict)


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "mssante-send",
        "send_mssante",
        base.MssanteSend,
        "Send documents of the person by MSSanté: SMTP submission (STARTTLS, AUTH) of a message with the "
        "IHE_XDM.ZIP (CDA R2 + METADATA.XML) and its PDF rendering, X-MSS-* headers (DST MSSanté v1.7). "
        "`patient` as a recipient means the person's Mon espace santé mailbox.",
        {"message_id": "Message-ID of the message sent"},
    ),
    ActionSpec(
        "mssante-send-qualified",
        "send_mssante_qualified",
        base.MssanteSend,
        "Same as mssante-send, but only for a qualified identity (RNIV: identity document checked and INS obtained "
        "from INSi; the DUI may call INSi first when the document was checked): otherwise the DUI refuses the "
        "sending (status failed), it never sends a document with an unqualified INS.",
        {"qualification": "outcome of the INSi call, when one was needed", "statut": "identity status (RNIV)"},
    ),
    ActionSpec(
        "mssante-receive",
        "receive_mssante",
        base.MssanteReceive,
        "Read the establishment's MSSanté mailbox (IMAP4rev1, STARTTLS; `auth` password or certificate = "
        "AUTHENTICATE EXTERNAL), integrate the documents received into the records of `patients` and "
        "answer each message asking for it with an MDN (RFC 8098, codes 900-906 of the ANS volet).",
        {"messages": "one object per message handled (free form, shown in the report)"},
    ),
    ActionSpec(
        "mssante-hl7-relay",
        "relay_mssante_hl7",
        base.MssanteRelay,
        "Hand the person's document to the integration platform as HL7 v2.5 over MLLP (ORU^R01 or MDM^T02, "
        "MetaDMPMSS), for MSSanté delivery to the recipients, asking for the ZAM receipts.",
    ),
    ActionSpec(
        "mssante-directory-lookup",
        "lookup_directory",
        base.DirectoryLookup,
        "Find MSSanté addresses in the directory (Annuaire Santé FHIR search on PractitionerRole).",
        {"addresses": "list of the addresses the DUI proposes to its user"},
    ),
    ActionSpec(
        "psc-login",
        "psc_login",
        base.PscLogin,
        "A professional logs in to the DUI with Pro Santé Connect (OIDC code flow + PKCE, acr eidas1) to "
        "work for the establishment. The professional is pre-selected at the simulator: the DUI follows "
        "the redirects itself, as a browser would.",
        {
            "id_nat_ps": "idNat_PS from the userinfo",
            "rpps": "RPPS (null for a non-RPPS professional)",
            "finess": "FINESS of the activity retained",
            "nom": "family name",
            "sub": "id token sub",
            "kid": "kid of the key that verified the id token",
            "sid": "PSC session id",
        },
    ),
    ActionSpec(
        "psc-refresh",
        "psc_refresh",
        None,
        "Refresh the current PSC session (refresh_token grant, rotation: use the newest refresh token).",
    ),
    ActionSpec(
        "psc-logout",
        "psc_logout",
        None,
        "Log the professional out: RP-initiated logout at Pro Santé Connect, then close the local session.",
        {"sid": "PSC session id closed"},
    ),
    ActionSpec(
        "insi-search",
        "search_ins",
        base.InsiSearch,
        "Search the INS by traits (INSi rechercherInsAvecTraitsIdentite, mutual TLS with the INSI-AUTO "
        "certificate or `client_certificate`); on CR 02 refine with the birth place.",
        {"ins": "the INS retained (null if none)", "oid": "its OID", "statut": "identity status (RNIV)"},
    ),
    ActionSpec(
        "insi-verify",
        "verify_ins",
        base.InsiVerify,
        "Verify the INS the DUI holds by re-sending the traits; a different active INS whose history holds "
        "the INS held replaces it.",
        {"ins": "the INS retained", "oid": "its OID", "statut": "identity status", "verifie": "boolean"},
    ),
    ActionSpec(
        "insi-qualify",
        "qualify_identity",
        base.InsiSearch,
        "Qualify the identity (RNIV): check the traits against the high-trust identity document presented "
        "(`identity_document`, FR Core code CN, PA, AN or LE; null when none is presented) and obtain the INS from "
        "INSi (search, or search and verification). Without a document the identity is only récupérée.",
        {
            "ins": "the INS retained",
            "oid": "its OID",
            "statut": "identity status the DUI records: provisoire, récupérée, validée, qualifiée",
            "piece_identite": "FR Core code of the identity document the user checked (null if none)",
        },
    ),
    ActionSpec(
        "dmp-feed",
        "dmp_feed",
        base.DmpFeed,
        "Feed the person's DMP with a CDA document (TD0.2 then ITI-41 Provide and Register, SOAP 1.2 + MTOM, "
        "mutual TLS, VIHF 3.0); with `replaces`, a new version of that document (RPLC).",
        {"unique_id": "XDSDocumentEntry.uniqueId of the document sent", "entry_uuid": "its entryUUID"},
    ),
    ActionSpec(
        "dmp-find",
        "dmp_find",
        base.DmpQuery,
        "Find the person's documents in the DMP (ITI-18 FindDocuments).",
        {"documents": "the documents found"},
    ),
    ActionSpec(
        "dmp-retrieve",
        "dmp_retrieve",
        base.DmpQuery,
        "Fetch one document from the DMP (ITI-43).",
        {"identical": "boolean: the document retrieved is byte-identical to the one sent", "size": "size in bytes"},
    ),
    ActionSpec(
        "dmp-update",
        "dmp_update",
        base.DmpUpdate,
        "Update a document the DUI sent (ITI-57): masquer, demasquer, invisible-patient, archiver, supprimer.",
    ),
    ActionSpec(
        "tddui-export",
        "export_tddui",
        base.TdduiExport,
        "Export the establishment's records as they stand at `exported_at` to the national TDDUI endpoint "
        "(ANS ans.fhir.fr.tddui transaction Bundle: Patient, séjours, projets personnalisés, agenda).",
    ),
    ActionSpec(
        "eprescription-import",
        "import_eprescription",
        base.EprescriptionImport,
        "Import the e-prescription whose EPU was scanned from its QR code (FHIR MedicationRequest lines, or "
        "the CDA eP-MED-DM document when `document`), check it is the person's and not cancelled, integrate "
        "it and confirm the integration (Task).",
        {"lignes": "the prescription lines shown to the user (list)"},
    ),
    ActionSpec(
        "cdl-note-post",
        "cdl_post_note",
        base.CdlNotePost,
        "Write a note in the person's cahier de liaison (ans.fhir.fr.cdl 3.0.0 CdLDocumentReference), as "
        "one transaction Bundle or RESTful.",
        {"note_id": "the platform's id of the note created", "version": "its version"},
    ),
    ActionSpec(
        "cdl-note-update",
        "cdl_update_note",
        base.CdlNoteUpdate,
        "Change the text of a note the DUI wrote, with the version it last saw (If-Match).",
        {"note_id": "the note updated", "version": "the version the update was based on"},
    ),
    ActionSpec(
        "cdl-notes-read",
        "cdl_read_notes",
        base.CdlNotesRead,
        "Search the person's notes (optionally of one type, since a date), read each one and show them.",
        {"notes": "list of objects with at least `id`", "urgentes": "ids of the notes shown as urgent"},
    ),
)
BY_NAME = {spec.name: spec for spec in ACTIONS}
BY_METHOD = {spec.method: spec for spec in ACTIONS}


# -- payloads -------------------------------------------------------------------------------------------------
def person_payload(person: Person) -> dict[str, Any]:
    """A person as the DUI holds it: local id, identity, INS and the traits the DUI would send to INSi."""
    from harness.sut.insi_actions import traits_of_person  # the traits a DUI holds for a fixture person

    return {
        "local_id": person.id,
        "family": person.family,
        "given": person.given,
        "sex": person.sex,
        "birth_date": person.birth_date.isoformat(),
        "ins": person.ins.value,
        "ins_oid": person.ins.oid,
        "essms": person.essms,
        "patient_mailbox": person.mailbox if person.patient_mailbox else None,
        "traits": to_payload(traits_of_person(person)),
    }


def to_payload(value: Any) -> Any:
    """JSON form of an action (dataclasses field by field, ISO dates, enum values, tuples as lists)."""
    if isinstance(value, Person):
        return person_payload(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_payload(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [to_payload(v) for v in value]
    return value


# -- OpenAPI --------------------------------------------------------------------------------------------------
def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def _schema_of(tp: Any, components: dict[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _schema_of(options[0], components)
        return {"anyOf": [inner, {"type": "null"}]}
    if origin is tuple:
        return {"type": "array", "items": _schema_of(typing.get_args(tp)[0], components)}
    if tp is Person:
        return {"$ref": "#/components/schemas/Person"}
    if isinstance(tp, type) and issubclass(tp, Enum):
        return {"type": "string", "enum": [m.value for m in tp]}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is str:
        return {"type": "string"}
    if tp is datetime:
        return {"type": "string", "format": "date-time"}
    if tp is date:
        return {"type": "string", "format": "date"}
    if dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in components:
            components[name] = {}  # placeholder against recursion
            components[name] = _object_schema(tp, components)
        return {"$ref": f"#/components/schemas/{name}"}
    raise TypeError(f"no JSON schema for {tp!r}")


def _object_schema(cls: type, components: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props = {f.name: _schema_of(hints[f.name], components) for f in dataclasses.fields(cls)}
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    schema: dict[str, Any] = {"type": "object", "required": required, "properties": props}
    doc = (cls.__doc__ or "").strip()
    if doc and not doc.startswith(f"{cls.__name__}("):
        schema["description"] = " ".join(doc.split())
    return schema


PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A person accompanied by the establishment, as the DUI holds it (synthetic test identity).",
    "required": ["local_id", "family", "given", "sex", "birth_date", "ins", "ins_oid", "essms", "traits"],
    "properties": {
        "local_id": {"type": "string", "description": "the DUI's local identifier of the person"},
        "family": {"type": "string"},
        "given": {"type": "string"},
        "sex": {"type": "string", "enum": ["M", "F"]},
        "birth_date": {"type": "string", "format": "date"},
        "ins": {
            "type": "string",
            "pattern": "^[0-9]{5}[0-9AB][0-9]{9}$|^[0-9]{15}$",
            "description": "matricule INS (NIR or NIA, 13 characters + key)",
        },
        "ins_oid": {"type": "string", "description": "1.2.250.1.213.1.4.10 (test NIR) / .11 (test NIA)..."},
        "essms": {"type": "string", "description": "FINESS géographique of the establishment"},
        "patient_mailbox": {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": "the person's Mon espace santé mailbox, when activated",
        },
        "traits": {"$ref": "#/components/schemas/InsiTraits"},
    },
}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of contract 1."""
    components: dict[str, Any] = {"Person": PERSON_SCHEMA}
    for cls in (Establishment, InsiTraits, DuiRecord):
        _schema_of(cls, components)
    components.update(_FIXED_SCHEMAS)
    outcome = {
        "200": {
            "description": "What the DUI reports to its user.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ActionOutcome"}}},
        },
        "404": {"description": "Action not implemented by this DUI (reported as a SUT error)."},
    }
    params = [{"$ref": "#/components/parameters/Contract"}, {"$ref": "#/components/parameters/IdempotencyKey"}]
    paths: dict[str, Any] = {
        f"{PREFIX}/session": {
            "post": {
                "operationId": "openSession",
                "summary": "Configure the DUI for a test run (endpoints, trust anchors, credentials, PSC registration).",
                "parameters": [{"$ref": "#/components/parameters/Contract"}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Session"}}},
                },
                "responses": {
                    "200": {"description": "Configured."},
                    "204": {"description": "Configured."},
                    "400": {
                        "description": "Unsupported contract or invalid session.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
                    },
                },
            }
        }
    }
    for spec in ACTIONS:
        if spec.request is None:
            body = {"type": "object", "maxProperties": 0}
        else:
            body = _schema_of(spec.request, components)
        description = spec.summary
        if spec.data:
            description += (
                "\n\n`data` read by the harness: " + "; ".join(f"`{k}`: {v}" for k, v in spec.data.items()) + "."
            )
        paths[f"{PREFIX}/actions/{spec.name}"] = {
            "post": {
                "operationId": spec.method,
                "summary": spec.summary.split(". ")[0].split(": ")[0],
                "description": description,
                "parameters": params,
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": outcome,
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "socle-harness DUI control API",
            "version": f"{CONTRACT_VERSION}.1.0",
            "summary": f"What a DUI's test build exposes so that socle-harness can drive it (contract {CONTRACT_VERSION}).",
            "description": _DESCRIPTION,
            "license": {"name": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "parameters": {
                "Contract": {
                    "name": "X-Socle-Contract",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "const": CONTRACT_VERSION},
                },
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "minLength": 8},
                },
            },
            "schemas": dict(sorted(components.items())),
        },
    }


_DESCRIPTION = (
    "The harness (client) calls the DUI's test build (server). Flow: POST /socle/v1/session once, then one "
    "POST /socle/v1/actions/{action} per scenario step that needs the DUI to act. The DUI performs the action "
    "against the harness's simulators (the endpoints it received in the session) and reports what it would show "
    "its user. The harness judges conformance from the exchanges its simulators recorded, not from this report "
    "alone.\n\nStatuses: `done` = the DUI reports success to its user; `failed` = the DUI reports the failure to "
    "its user (the conformant behaviour when a service refused); `delegated` = someone else will act (the harness "
    "then waits for the exchange).\n\nError semantics: 404 = action not implemented (reported as 'SUT error'); "
    "any non-200 answer or a body outside the schema = 'SUT error'; connection impossible = 'SUT unreachable' "
    "(the harness retries only when the request could not be delivered, up to 2 times with exponential backoff "
    "from 0.5 s). Neither is a conformance failure, and the run goes on with the next scenario. Default timeout: "
    "30 s per call. Every action carries an Idempotency-Key header: the DUI must not perform the same key twice. "
    "Every call carries X-Socle-Contract: 1. Actions of one run are sent one at a time, in scenario order; the "
    "DUI keeps its own state between them (PSC session, documents sent, notes written)."
)

_FIXED_SCHEMAS: dict[str, Any] = {
    "Session": {
        "type": "object",
        "required": ["contract", "endpoints", "ca_bundle_pem", "client_certificates", "credentials"],
        "properties": {
            "contract": {"type": "string", "const": CONTRACT_VERSION},
            "endpoints": {
                "type": "object",
                "description": "One object per simulator (mssante, dmp, insi, psc, tddui, eprescription, eparcours) "
                "with named endpoints, as `socle-harness serve --endpoints-file` writes them.",
                "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "ca_bundle_pem": {
                "type": "string",
                "description": "The test PKI's CA chain (PEM) to trust for every simulator.",
            },
            "client_certificates": {
                "type": "object",
                "description": "Organisation client certificates of the test PKI by name: INSI-AUTO / INSI-MANU "
                "(INSi), MSS-<FINESS> (MSSanté AUTHENTICATE EXTERNAL), ESSMS-<FINESS> (the "
                "establishment's organisation certificate: DMP, e-Prescription, e-Parcours), "
                "ORG-ETABLISSEMENT (negative INSi scenarios).",
                "additionalProperties": {
                    "type": "object",
                    "required": ["cert_pem", "key_pem"],
                    "properties": {"cert_pem": {"type": "string"}, "key_pem": {"type": "string"}},
                },
            },
            "credentials": {
                "type": "object",
                "description": "Test MSSanté mailbox address -> password.",
                "additionalProperties": {"type": "string"},
            },
            "psc_client": {
                "type": "object",
                "description": "The DUI's registration at the Pro Santé Connect simulator.",
                "required": ["client_id", "client_secret", "redirect_uri", "post_logout_redirect_uri"],
                "properties": {
                    "client_id": {"type": "string"},
                    "client_secret": {"type": "string"},
                    "redirect_uri": {"type": "string"},
                    "post_logout_redirect_uri": {"type": "string"},
                    "token_endpoint_auth_method": {"type": "string"},
                },
            },
        },
    },
    "ActionOutcome": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["done", "failed", "delegated"]},
            "detail": {"type": "string", "description": "What the DUI shows its user (French)."},
            "data": {"type": "object", "description": "Facts the DUI reports (see each action)."},
        },
    },
    "Problem": {"type": "object", "properties": {"title": {"type": "string"}, "detail": {"type": "string"}}},
}
