"""The ``CapabilityStatement`` a FHIR server of the harness answers at ``GET [base]/metadata``.

FHIR R4 (4.0.1) CapabilityStatement (kind ``instance``): formats JSON and XML, ``rest.mode = server``, for each
resource type its profile, interactions, ``versioning = versioned-update`` (ETag / If-Match),
``conditionalCreate``, ``conditionalDelete``, search parameters and ``searchInclude``; system interactions
``transaction`` and ``batch``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from harness import __version__
from harness.fhir.interaction import ResourceType
from harness.fhir.search import ParamType, SearchRegistry
from harness.fhir.wire import Limits


class CapabilitySource(Protocol):
    """What the statement describes of a FHIR server (:class:`harness.fhir.server.FhirServer` is one)."""

    resources: Mapping[str, ResourceType]
    registry: SearchRegistry
    limits: Limits
    software: str
    title: str
    implementation_guides: tuple[str, ...]
    system_interactions: tuple[str, ...]
    base_url: Callable[[], str]


_RESOURCE_INTERACTIONS = ("read", "vread", "update", "delete", "history-instance", "create", "search-type")


def capability_statement(server: CapabilitySource) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for rtype in server.resources.values():
        entry: dict[str, Any] = {
            "type": rtype.name,
            "interaction": [
                {"code": code} for code in _RESOURCE_INTERACTIONS if code in {str(i) for i in rtype.interactions}
            ],
            "versioning": "versioned-update",
            "readHistory": "history-instance" in {str(i) for i in rtype.interactions},
            "updateCreate": True,
            "conditionalCreate": rtype.conditional_create,
            "conditionalDelete": "single" if rtype.conditional_delete else "not-supported",
        }
        if rtype.profile:
            entry["profile"] = rtype.profile
        if rtype.documentation:
            entry["documentation"] = rtype.documentation
        params = [p for p in server.registry.of(rtype.name).values()]
        if params and "search-type" in {str(i) for i in rtype.interactions}:
            entry["searchParam"] = [
                {
                    "name": p.name,
                    "type": str(p.type),
                    **({"definition": p.definition} if p.definition else {}),
                    **({"documentation": p.documentation} if p.documentation else {}),
                }
                for p in params
            ]
            refs = [p.name for p in params if p.type is ParamType.REFERENCE]
            if refs:
                entry["searchInclude"] = ["*", *(f"{rtype.name}:{name}" for name in refs)]
        resources.append(entry)
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2025-01-01",
        "publisher": "socle-harness",
        "kind": "instance",
        "software": {"name": server.software, "version": __version__},
        "implementation": {"description": server.title, "url": server.base_url()},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml"],
        "rest": [
            {
                "mode": "server",
                "documentation": 'Simulateur : erreurs en OperationOutcome, ETag W/"versionId" et If-Match (412), '
                f"corps limité à {server.limits.max_body_bytes} octets, Bundle limité à "
                f"{server.limits.max_bundle_entries} entrées (413).",
                "resource": resources,
                "interaction": [{"code": code} for code in server.system_interactions],
            }
        ],
    }
    if server.implementation_guides:
        statement["implementationGuide"] = list(server.implementation_guides)
    return statement
