"""An OpenAPI 3.0 description of a :class:`~harness.fhir.server.FhirServer`, generated from its configuration.

Served by each FHIR simulator at ``[base]/openapi.json`` (and used by the schemathesis test). It describes the
HTTP surface — paths, search parameters, headers (``If-Match``, ``If-None-Exist``, ``Prefer``), bodies and every
status the server may answer with an ``OperationOutcome`` — not the FHIR profiles themselves (those are checked
by the validators and announced in the CapabilityStatement).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from harness.fhir.server import FhirServer

JSON = "application/fhir+json"
XML = "application/fhir+xml"
_RESOURCE = {"type": "object", "required": ["resourceType"], "properties": {"resourceType": {"type": "string"}}}
_OUTCOME_REF = {"$ref": "#/components/schemas/OperationOutcome"}
_ID = {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}, XML: {"schema": {"type": "string"}}}


def _errors(*statuses: int) -> dict[str, Any]:
    statuses = tuple(sorted({403, *statuses}))  # every endpoint authenticates the establishment (mutual TLS)
    labels = {
        400: "Requête invalide",
        404: "Inconnu",
        405: "Méthode non permise",
        403: "Certificat client absent ou non autorisé, ou FINESS d'un autre établissement",
        406: "Format non disponible",
        409: "Conflit",
        410: "Supprimé",
        412: "Précondition (If-Match) non remplie",
        413: "Trop volumineux",
        415: "Type de contenu non pris en charge",
        422: "Profil ou règle métier non respecté",
        500: "Erreur interne",
    }
    return {str(s): {"description": labels.get(s, "Erreur"), "content": _content(_OUTCOME_REF)} for s in statuses}


_HEADERS = {
    "ETag": {"description": 'W/"versionId"', "schema": {"type": "string"}},
    "Location": {"description": "[base]/Type/id/_history/versionId", "schema": {"type": "string"}},
    "Last-Modified": {"description": "meta.lastUpdated (RFC 7231)", "schema": {"type": "string"}},
}


def openapi_document(server: FhirServer, *, title: str, server_url: str = "/") -> dict[str, Any]:
    from harness.fhir.interaction import Interaction

    paths: dict[str, Any] = {
        "/metadata": {
            "get": {
                "summary": "CapabilityStatement",
                "operationId": "capabilities",
                "parameters": [_format_param()],
                "responses": {
                    "200": {"description": "CapabilityStatement", "content": _content(_RESOURCE)},
                    **_errors(406),
                },
            }
        },
        "/": {
            "post": {
                "summary": "Bundle transaction ou batch",
                "operationId": "transaction",
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": {"$ref": "#/components/schemas/Bundle"}},
                        XML: {"schema": {"type": "string"}},
                    },
                },
                "responses": {
                    "200": {"description": "transaction-response / batch-response", "content": _content(_RESOURCE)},
                    **_errors(400, 404, 405, 409, 412, 413, 415, 422),
                },
            }
        },
    }
    for rtype in server.resources.values():
        kinds = {str(i) for i in rtype.interactions}
        type_path: dict[str, Any] = {}
        if str(Interaction.SEARCH) in kinds:
            params = [
                _format_param(),
                {"name": "_count", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
                {"name": "_include", "in": "query", "required": False, "schema": {"type": "string"}},
            ]
            params += [
                {
                    "name": p.name,
                    "in": "query",
                    "required": False,
                    "description": p.documentation or str(p.type),
                    "schema": {"type": "string"},
                }
                for p in server.registry.of(rtype.name).values()
            ]
            type_path["get"] = {
                "summary": f"Recherche {rtype.name}",
                "operationId": f"search{rtype.name}",
                "parameters": params,
                "responses": {
                    "200": {"description": "Bundle searchset", "content": _content(_RESOURCE)},
                    **_errors(400, 406),
                },
            }
        if str(Interaction.CREATE) in kinds:
            type_path["post"] = {
                "summary": f"Création {rtype.name}",
                "operationId": f"create{rtype.name}",
                "parameters": [
                    _format_param(),
                    {"name": "If-None-Exist", "in": "header", "required": False, "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _typed(rtype.name)}, XML: {"schema": {"type": "string"}}},
                },
                "responses": {
                    "201": {"description": "Créé", "headers": _HEADERS, "content": _content(_RESOURCE)},
                    "200": {
                        "description": "Existe déjà (création conditionnelle)",
                        "headers": _HEADERS,
                        "content": _content(_RESOURCE),
                    },
                    **_errors(400, 404, 405, 406, 409, 412, 413, 415, 422),
                },
            }
        if type_path:
            paths[f"/{rtype.name}"] = type_path
        instance: dict[str, Any] = {}
        id_param = {"name": "id", "in": "path", "required": True, "schema": _ID}
        if str(Interaction.READ) in kinds:
            instance["get"] = {
                "summary": f"Lecture {rtype.name}",
                "operationId": f"read{rtype.name}",
                "parameters": [id_param, _format_param()],
                "responses": {
                    "200": {"description": rtype.name, "headers": _HEADERS, "content": _content(_RESOURCE)},
                    **_errors(404, 405, 406, 410),
                },
            }
        if str(Interaction.UPDATE) in kinds:
            instance["put"] = {
                "summary": f"Mise à jour {rtype.name}",
                "operationId": f"update{rtype.name}",
                "parameters": [
                    id_param,
                    _format_param(),
                    {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _typed(rtype.name)}, XML: {"schema": {"type": "string"}}},
                },
                "responses": {
                    "200": {"description": "Mis à jour", "headers": _HEADERS, "content": _content(_RESOURCE)},
                    "201": {"description": "Créé", "headers": _HEADERS, "content": _content(_RESOURCE)},
                    **_errors(400, 404, 405, 406, 409, 412, 413, 415, 422),
                },
            }
        if str(Interaction.DELETE) in kinds:
            instance["delete"] = {
                "summary": f"Suppression {rtype.name}",
                "operationId": f"delete{rtype.name}",
                "parameters": [
                    id_param,
                    {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "Supprimé", "content": _content(_OUTCOME_REF)},
                    **_errors(400, 405, 406, 409, 412),
                },
            }
        if instance:
            paths[f"/{rtype.name}/{{id}}"] = instance
        if str(Interaction.VREAD) in kinds:
            paths[f"/{rtype.name}/{{id}}/_history/{{vid}}"] = {
                "get": {
                    "summary": f"Lecture d'une version {rtype.name}",
                    "operationId": f"vread{rtype.name}",
                    "parameters": [
                        id_param,
                        {"name": "vid", "in": "path", "required": True, "schema": _ID},
                        _format_param(),
                    ],
                    "responses": {
                        "200": {"description": rtype.name, "content": _content(_RESOURCE)},
                        **_errors(404, 405, 406, 410),
                    },
                }
            }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": "1.0.0",
            "description": "FHIR R4 (4.0.1) — généré depuis la configuration du serveur (harness.fhir.openapi). "
            "Non décrit ici : l'en-tête Prefer (return=minimal : réponse sans corps ; handling=strict : "
            "paramètre de recherche inconnu refusé en 400). Authentification : TLS mutuel avec le certificat "
            "d'organisation de l'établissement (ESSMS-<FINESS>, OU 1 + FINESS) sur chaque point d'accès ; sans lui, "
            "403 et un OperationOutcome.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": {
                "OperationOutcome": {
                    "type": "object",
                    "required": ["resourceType", "issue"],
                    "properties": {
                        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
                        "issue": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["severity", "code"],
                                "properties": {
                                    "severity": {
                                        "type": "string",
                                        "enum": ["fatal", "error", "warning", "information"],
                                    },
                                    "code": {"type": "string"},
                                    "diagnostics": {"type": "string"},
                                },
                            },
                        },
                    },
                },
                "Bundle": {
                    "type": "object",
                    "required": ["resourceType", "type"],
                    "properties": {
                        "resourceType": {"type": "string", "enum": ["Bundle"]},
                        "type": {"type": "string", "enum": ["transaction", "batch"]},
                        "entry": {"type": "array", "items": {"type": "object"}},
                    },
                },
            }
        },
    }


def _typed(resource_type: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string", "enum": [resource_type]}},
    }


def _format_param() -> dict[str, Any]:
    return {"name": "_format", "in": "query", "required": False, "schema": {"type": "string", "enum": ["json", "xml"]}}
