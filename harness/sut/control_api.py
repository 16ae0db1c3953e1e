"""The DUI control API, contract 1: one table of actions from which the HTTP driver, the JSON payloads and the
published OpenAPI document (``docs/control-api.openapi.json``, ``socle-harness control-api``) are all derived,
so that the contract a DUI editor implements and what the harness sends cannot drift apart.

A DUI test build implements ``POST /socle/v1/session`` (the simulators' endpoints, the test CA, the organisation
certificates, the test credentials and the DUI's Pro Santé Connect registration) and ``POST
/socle/v1/actions/{action}`` for each business action the service plugins declare (:mod:`harness.sut.plugins`). The request bodies are the action dataclasses of
:mod:`harness.sut.base` serialised field by field (dates in ISO 8601, persons as :func:`person_payload`); the
answer is ``{"status": "done"|"failed"|"delegated", "detail": "...", "data": {...}}`` where ``data`` carries the
facts listed per action (what the DUI shows its user: the INS it retained, the professional it logged in...).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from functools import cache
from types import MappingProxyType
from typing import Any

from harness.fields.dui import DuiRecord
from harness.fields.testdata import Establishment, Person
from harness.sut.base import InsiTraits
from harness.sut.control_api_examples import data_example, data_schema, illustrative, request_example, vocabularies
from harness.sut.json_schema import schema_of
from harness.sut.plugins import ActionSpec, dui_sides, services

CONTRACT_VERSION = "1"
PREFIX = "/socle/v1"


@dataclass(frozen=True)
class Contract:
    """The actions of contract 1, assembled from the registered service plugins (in service-name order)."""

    actions: tuple[ActionSpec, ...]
    by_name: Mapping[str, ActionSpec]
    by_method: Mapping[str, ActionSpec]


@cache
def contract() -> Contract:
    """The control API's actions: every action each service plugin declares (:mod:`harness.sut.plugins`)."""
    actions = tuple(spec for side in dui_sides().values() for spec in side.actions)
    return Contract(
        actions,
        MappingProxyType({spec.name: spec for spec in actions}),
        MappingProxyType({spec.method: spec for spec in actions}),
    )


def __getattr__(name: str) -> Any:
    """``ACTIONS``, ``BY_NAME`` and ``BY_METHOD``, assembled when first read (the plugins import this package)."""
    if name == "ACTIONS":
        return contract().actions
    if name == "BY_NAME":
        return contract().by_name
    if name == "BY_METHOD":
        return contract().by_method
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
def _vocabulary(cls: type, name: str) -> Mapping[str, str] | None:
    return vocabularies().get((cls.__name__, name))


def _schema_of(tp: Any, components: dict[str, Any]) -> dict[str, Any]:
    return schema_of(tp, components, _vocabulary)


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
    components.update(copy.deepcopy(_FIXED_SCHEMAS))
    endpoints = components["Session"]["properties"]["endpoints"]
    endpoints["description"] = endpoints["description"].format(services=", ".join(services()))
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
    for spec in contract().actions:
        if spec.request is None:
            body, example = {"type": "object", "maxProperties": 0}, {}
        else:
            body = _schema_of(spec.request, components)
            example = to_payload(request_example(spec))
        data_name = "".join(part.capitalize() for part in spec.name.split("-")) + "Data"
        components[data_name] = {
            **data_schema(spec, components),
            "description": f"`data` of the answer to `{spec.name}`: the facts the harness reads.",
        }
        description = spec.summary
        if spec.facts:
            description += (
                "\n\n`data` read by the harness: "
                + "; ".join(f"`{k}`: {fact.description}" for k, fact in spec.facts.items())
                + "."
            )
        paths[f"{PREFIX}/actions/{spec.name}"] = {
            "post": {
                "operationId": spec.method,
                "summary": spec.summary.split(". ")[0].split(": ")[0],
                "description": description,
                "parameters": params,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body, "example": example}},
                },
                "responses": _responses(spec, data_name),
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


def _provenance(spec: ActionSpec) -> str:
    """Where the success example's values come from: real values for the fixtures, or illustrative ones."""
    made_up = illustrative(spec)
    parts = ["`detail` is illustrative (the DUI's own words)"]
    if len(made_up) < len(spec.facts):
        which = "the other `data` values" if made_up else "the `data` values"
        parts.append(f"{which} are what the simulators serve for the synthetic fixtures")
    if made_up:
        parts.insert(1, "so is `data` " + ", ".join(f"`{key}`" for key in made_up) + " (not served by the simulators)")
    return "; ".join(parts) + "."


def _responses(spec: ActionSpec, data_name: str) -> dict[str, Any]:
    """200 with the action's ``data`` schema and a success and a failure example; 404 when not implemented."""
    schema = {
        "allOf": [
            {"$ref": "#/components/schemas/ActionOutcome"},
            {"type": "object", "properties": {"data": {"$ref": f"#/components/schemas/{data_name}"}}},
        ]
    }
    examples = {
        "fait": {
            "summary": "the DUI reports success to its user",
            "description": _provenance(spec),
            "value": {"status": "done", "detail": "Action réalisée.", "data": data_example(spec)},
        },
        "echec": {
            "summary": "the DUI reports a refusal to its user (the conformant answer when a service refused)",
            "description": "`detail` is illustrative (the DUI's own words).",
            "value": {
                "status": "failed",
                "detail": "Le service a refusé la demande : réessayez plus tard.",
                "data": {},
            },
        },
    }
    return {
        "200": {
            "description": "What the DUI reports to its user.",
            "content": {"application/json": {"schema": schema, "examples": examples}},
        },
        "404": {"description": "Action not implemented by this DUI (reported as a SUT error)."},
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
                "description": "One object per simulator ({services}) "
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
