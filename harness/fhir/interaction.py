"""What one FHIR interaction is, for the server and the Bundle processor alike (no Starlette here).

FHIR R4 (4.0.1) RESTful API (http://hl7.org/fhir/R4/http.html): the interactions, the request behind one, what it
produced (:class:`FhirInteraction`), the hooks a simulator plugs in (:class:`FhirHooks`), the journal entry of an
interaction (:func:`default_exchange`) and :class:`InteractionProcessor`, the public seam through which
:mod:`harness.fhir.bundle` runs a Bundle's entries on the server without importing it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from cryptography import x509

from harness.core.journal import Direction, Exchange, Outcome
from harness.fhir.access import certificate_finess, identified_owners
from harness.fhir.outcome import FhirError
from harness.fhir.search import SearchParam, SearchQuery, SearchRegistry
from harness.fhir.store import UnitOfWork, Version
from harness.fhir.wire import Limits
from harness.validators import Finding

EVIDENCE_BYTES = 256 * 1024  # what the journal keeps of a refused oversized body


class Interaction(StrEnum):
    READ = "read"
    VREAD = "vread"
    UPDATE = "update"
    DELETE = "delete"
    CREATE = "create"
    SEARCH = "search-type"
    HISTORY = "history-instance"
    TRANSACTION = "transaction"
    BATCH = "batch"
    CAPABILITIES = "capabilities"
    INVALID = "invalid"  # a request that is not a FHIR interaction (unknown type, bad method...)


@dataclass(frozen=True)
class ResourceType:
    """What the server supports for one resource type (it also drives the CapabilityStatement and OpenAPI)."""

    name: str
    interactions: frozenset[Interaction]
    search_params: tuple[SearchParam, ...] = ()
    profile: str | None = None
    documentation: str = ""
    conditional_create: bool = True
    conditional_delete: bool = False


@dataclass(frozen=True)
class RequestInfo:
    """The HTTP request behind an interaction (what the journal and the hooks need)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = b""
    content_type: str | None = None
    caller_finess: str | None = None  # FINESS from the client certificate (IGC-Santé organisation certificate OU)

    @property
    def prefer_minimal(self) -> bool:
        return "return=minimal" in self.headers.get("prefer", "")

    @property
    def strict(self) -> bool:
        return "handling=strict" in self.headers.get("prefer", "")


@dataclass
class FhirInteraction:
    """One interaction as processed: what was asked, what came out (a Bundle's entries are interactions too)."""

    interaction: Interaction
    method: str
    resource_type: str | None = None
    resource_id: str | None = None
    status: int = 200
    request: dict[str, Any] | None = None  # the resource sent (references rewritten in a transaction)
    result: Version | None = None  # the version written or read
    matches: list[Version] = field(default_factory=list)
    included: list[dict[str, Any]] = field(default_factory=list)
    total: int | None = None
    query: dict[str, list[str]] | None = None
    error: FhirError | None = None
    warnings: list[Finding] = field(default_factory=list)
    entries: list[FhirInteraction] = field(default_factory=list)
    index: int | None = None  # position in a Bundle
    noop: bool = False  # conditional create that found the resource, delete of nothing
    response: dict[str, Any] | None = None  # the response body (OperationOutcome, Bundle...)

    @property
    def accepted(self) -> bool:
        return self.error is None

    @property
    def resource(self) -> dict[str, Any] | None:
        """The resource this interaction is about: the version written or read, else the one sent."""
        if self.result is not None and self.result.resource is not None:
            return self.result.resource
        return self.request


class FhirHooks:
    """What a simulator plugs into the server. Every method may raise :class:`FhirError`."""

    service: str = "fhir"

    def authenticate(self, certificate: x509.Certificate | None, *, request: RequestInfo) -> str | None:
        """The calling establishment's FINESS (the journal's ``essms``) from the connection's client certificate,
        checked before the body is read; raise :class:`FhirError` to refuse the request. The default refuses no
        one and reads the FINESS of an organisation certificate when one is presented; the ESSMS-facing services
        use :class:`harness.fhir.access.EstablishmentAccess`."""
        return certificate_finess(certificate)

    def validate(
        self, resource_type: str, resource: dict[str, Any], *, uow: UnitOfWork, interaction: Interaction
    ) -> list[Finding]:
        """Profile and terminology checks of a resource about to be written (errors -> HTTP 422)."""
        return []

    def before_write(
        self, item: FhirInteraction, resource: dict[str, Any], *, uow: UnitOfWork, request: RequestInfo
    ) -> dict[str, Any]:
        """Business rules before a create or update; returns the resource to store."""
        return resource

    def visible(self, version: Version, *, request: RequestInfo) -> bool:
        """Whether a read or search may return this resource."""
        return True

    def visibility(self, *, request: RequestInfo) -> Callable[[Version], bool]:
        """:meth:`visible` for the matches of one search (the store does not change meanwhile: a hook may keep what
        it resolved for one match, e.g. an author, for the next ones)."""
        return functools.partial(self.visible, request=request)

    def owners(self, version: Version) -> list[tuple[str, str]]:
        """Whose the resource is, as test-session members (``("patient", INS)``, ``("essms", FINESS)``): a read
        by an establishment of another open session is refused (:mod:`harness.core.sessions`). Default: the
        identifiers it names (:func:`harness.fhir.access.identified_owners`)."""
        return identified_owners(version.resource)

    def unavailable(self, *, request: RequestInfo) -> FhirError | None:
        """An injected outage for this request (checked once the caller is authenticated): the error to answer."""
        return None

    def before_delete(self, item: FhirInteraction, version: Version, *, uow: UnitOfWork, request: RequestInfo) -> None:
        """Rules before the current ``version`` is deleted (who may delete it)."""

    def after_interaction(self, item: FhirInteraction, *, uow: UnitOfWork, request: RequestInfo) -> None:
        """Called once an interaction succeeded, before the journal (e.g. to stage side effects)."""

    def validate_bundle(self, bundle: dict[str, Any], *, request: RequestInfo) -> list[Finding]:
        """Profile checks of a whole transaction / batch Bundle before its entries run (errors -> HTTP 422)."""
        return []

    def exchanges(self, item: FhirInteraction, *, request: RequestInfo, body: bytes, uow: UnitOfWork) -> list[Exchange]:
        """The journal entries of an interaction (default: one ``fhir.<interaction>[.<Type>]`` exchange). ``uow``
        shows the state the interaction produced (staged writes included). A Bundle gives its own exchange plus one
        per entry (payload: the entry's resource)."""
        out = [default_exchange(item, request=request, body=body)]
        for sub in item.entries:
            payload = json_body(sub.request) if sub.request else b""
            entry_request = RequestInfo(
                sub.method or "POST",
                request.path,
                "",
                request.headers,
                content_type="application/fhir+json",
                caller_finess=request.caller_finess,
            )
            out.append(default_exchange(sub, request=entry_request, body=payload))
        return out


def default_operation(item: FhirInteraction) -> str:
    suffix = f".{item.resource_type}" if item.resource_type else ""
    return f"fhir.{item.interaction}{suffix}"


def default_exchange(
    item: FhirInteraction,
    *,
    request: RequestInfo,
    body: bytes,
    operation: str | None = None,
    person: str | None = None,
    essms: str | None = None,
    details: dict[str, Any] | None = None,
) -> Exchange:
    """A journal :class:`Exchange` for an interaction: outcome, error, evidence and the usual details."""
    info: dict[str, Any] = {"method": request.method, "path": request.path, "status": item.status}
    if request.query:
        info["query"] = request.query[:2000]
    if item.resource_type:
        info["resourceType"] = item.resource_type
    if item.resource_id:
        info["id"] = item.resource_id
    if item.result is not None:
        info["versionId"] = item.result.version_id
    if item.query is not None:
        info["criteria"] = item.query
        info["matches"] = [f"{v.resource_type}/{v.id}" for v in item.matches]
        info["total"] = item.total
        if item.included:
            info["included"] = [f"{r.get('resourceType')}/{r.get('id')}" for r in item.included]
    if item.index is not None:
        info["entry"] = item.index
    if item.noop:
        info["noop"] = True
    findings = list(item.warnings)
    if item.error is not None:
        info["issues"] = [i.to_json() for i in item.error.issues[:20]]
    if findings:
        info["findings"] = [f.to_dict() for f in findings[:50]]
    info.update(details or {})
    return Exchange(
        service="",  # stamped by SimulatorContext.record
        operation=operation or default_operation(item),
        direction=Direction.FROM_DUI,
        outcome=Outcome.ACCEPTED if item.accepted else Outcome.REJECTED,
        essms=essms or request.caller_finess,
        person=person,
        error_code=item.error.error_code if item.error else None,
        error_message=item.error.message[:1000] if item.error else None,
        payload=body[:EVIDENCE_BYTES] if body else None,
        payload_type=(request.content_type or "application/octet-stream") if body else None,
        details=info,
    )


def json_body(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class InteractionProcessor(Protocol):
    """What :mod:`harness.fhir.bundle` needs of the server to run a Bundle's entries (the FhirServer implements it)."""

    hooks: FhirHooks
    registry: SearchRegistry
    limits: Limits

    def base_url(self) -> str: ...

    def type_of(self, rtype: str | None, interaction: Interaction) -> ResourceType: ...

    def read(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork) -> FhirInteraction: ...

    def conditional_matches(self, rtype: str, condition: str, uow: UnitOfWork, info: RequestInfo) -> list[Version]: ...

    def conditional_delete(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork) -> FhirInteraction: ...

    def check_references(self, resource: dict[str, Any], uow: UnitOfWork, where: str) -> None: ...

    def do_create(
        self,
        item: FhirInteraction,
        resource: dict[str, Any],
        uow: UnitOfWork,
        info: RequestInfo,
        *,
        condition: str | None = None,
        resource_id: str | None = None,
        check_refs: bool = True,
        structure_checked: bool = False,
        where: str | None = None,
    ) -> FhirInteraction: ...

    def do_update(
        self,
        item: FhirInteraction,
        resource: dict[str, Any],
        uow: UnitOfWork,
        info: RequestInfo,
        *,
        if_match: str | None,
        check_refs: bool = True,
        structure_checked: bool = False,
        where: str | None = None,
    ) -> FhirInteraction: ...

    def do_delete(
        self, item: FhirInteraction, uow: UnitOfWork, info: RequestInfo, *, if_match: str | None
    ) -> FhirInteraction: ...

    def do_search(
        self, item: FhirInteraction, query: SearchQuery, uow: UnitOfWork, info: RequestInfo, *, query_string: str
    ) -> FhirInteraction: ...
