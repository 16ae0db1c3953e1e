"""A small FHIR R4 REST server (Starlette) over a :class:`~harness.fhir.store.ResourceStore`.

FHIR R4 (4.0.1) RESTful API (http://hl7.org/fhir/R4/http.html): ``read``, ``vread``, ``update`` (``If-Match``),
``delete`` (and conditional delete), ``create`` (and ``If-None-Exist``), ``search-type`` (GET and
``POST _search``), ``history-instance``, ``capabilities`` (``GET /metadata``) and ``transaction`` / ``batch``
(``POST /``, :mod:`harness.fhir.bundle`). JSON and XML (:mod:`harness.fhir.wire`), ``OperationOutcome`` on every
error with the HTTP status of the specification (400 bad syntax, 404 unknown type or id, 405, 406, 409, 410,
412 ``If-Match`` mismatch, 413 body or Bundle too large, 415 content type, 422 profile or business rule).

A simulator describes its resources (:class:`ResourceType`) and plugs its rules in :class:`FhirHooks`: profile
validation, business rules before a write, and the journal entries of each interaction. Every interaction is
committed to the journal **before** the answer, and its store change applied only once it is: a journal failure
leaves the store untouched and answers 500. By default the commit and the change happen in the store's critical
section; with ``group_commit`` the reads, searches and creates (without condition) that arrive together share one
journal transaction, their creates applied after it (:class:`harness.core.group_commit.GroupCommit`).

Such an interaction is processed in the store's critical section as any other, then, instead of committing its
journal row there, waits for the group's commit; its create is applied to the store after that commit, and it is
answered after that — never before its row is committed. Until then no reader sees the created resources, and
nobody else can change them (their ids are new: :attr:`UnitOfWork.only_created`); a read that does not see them is
one that came first. Every other interaction (update, delete, transaction...) flushes the waiting group first, so
that it sees and follows them. A simulator's own writes outside the server (its notes, from another thread) are
ordered before the creates still waiting, which read only what such writes do not remove (the subject and author
of a note).
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from harness.core.group_commit import GroupCommit, Recorder
from harness.core.sessions import SessionBook
from harness.fhir.access import OTHER_SESSION, certificate_finess, identified_owners, referenced_patients
from harness.fhir.bundle import process_bundle
from harness.fhir.capability import capability_statement
from harness.fhir.interaction import (
    FhirHooks,
    FhirInteraction,
    Interaction,
    RequestInfo,
    ResourceType,
    default_exchange,
)
from harness.fhir.model import structure_findings
from harness.fhir.outcome import (
    FhirError,
    Issue,
    IssueCode,
    IssueSeverity,
    fail,
    issues_from_findings,
    operation_outcome,
)
from harness.fhir.search import (
    Criterion,
    Matcher,
    ParamType,
    SearchQuery,
    SearchRegistry,
    Total,
    describe_criteria,
    page_link,
    parse_query,
    resolver_of,
    run_search,
    searchset,
    split_token,
)
from harness.fhir.store import (
    IDENTIFIER_ELEMENTS,
    ResourceStore,
    UnitOfWork,
    Version,
    instant,
    parse_etag,
    valid_id,
)
from harness.fhir.wire import (
    Format,
    Limits,
    check_entry_count,
    parse_resource,
    read_body,
    render,
    render_json,
    rendered_mime,
    response_format,
)
from harness.fields.fhir_references import references_in
from harness.host.asgi_tls import client_certificate
from harness.host.simulator import SimulatorContext
from harness.validators import Finding, Severity

logger = logging.getLogger("socle_harness.fhir")


def simulated_unavailability(ctx: SimulatorContext, kind: str, caller_finess: str | None = None) -> FhirError | None:
    """The answer of a FHIR service while the fault ``kind`` is injected: 503 (or the fault's ``status``),
    OperationOutcome ``transient``, ``Retry-After`` (RFC 9110 §10.2.3); ``None`` when no such fault is pending
    for this caller (``caller_finess``, its certificate's: a fault aimed at another test session is left)."""
    fault = ctx.take_fault(kind, essms=caller_finess)
    if fault is None:
        return None
    return fail(
        int(fault.params.get("status", 503)),
        IssueCode.TRANSIENT,
        str(fault.params.get("message", "service indisponible (panne simulée)")),
        error_code="FHIR-INDISPONIBLE",
        headers={"Retry-After": "30"},
    )


def caller_finess(scope: dict[str, Any]) -> str | None:
    """The FINESS of the organisation client certificate of the connection (OU ``1`` + FINESS, IGC-Santé style)."""
    return certificate_finess(client_certificate(scope))


# what makes Starlette's ``request.url`` differ from the ASGI path and query: escaped (``?``, ``#``, ``\\``) or split
# off (``#``, after ``?``) by Starlette, removed by urllib.parse.urlsplit (tab, CR, LF)
_URL_ALTERED = re.compile(r"[?#\\\t\r\n]")


def path_and_query(request: Request) -> tuple[str, str]:
    """``request.url.path`` and ``request.url.query`` without building the URL (issue 18: a tenth of a read's
    handler): the ASGI path and query string themselves when the URL would not alter them, else the URL's."""
    scope = request.scope
    path: str = scope["path"]
    raw: bytes = scope.get("query_string", b"")
    if (
        scope.get("server") is not None  # the URL then has a host, and its path is not re-read as one
        and path.startswith("/")
        and _URL_ALTERED.search(path) is None
        and _URL_ALTERED.search(raw.decode("latin-1")) is None
    ):
        return path, raw.decode()
    return request.url.path, request.url.query


def request_info(request: Request) -> RequestInfo:
    """What the hooks and the journal need of a Starlette request: method, path, query, the headers by lower-case
    name, the Content-Type."""
    path, query = path_and_query(request)
    return RequestInfo(
        request.method,
        path,
        query,
        {k.lower(): v for k, v in request.headers.items()},
        content_type=request.headers.get("content-type"),
    )


def _json_rendering(resource: dict[str, Any]) -> bytes:
    return render(resource, Format.JSON)


def searchset_json(bundle: dict[str, Any], matches: Sequence[Version]) -> bytes:
    """``render(bundle, Format.JSON)`` of a searchset whose entries hold the matches' stored resources themselves
    (:func:`harness.fhir.search.searchset`): the same bytes, each match's JSON taken from its version's rendering
    (rendered once per version, as a read's: issue 18, the ten notes of a page were most of the Bundle's encoding).
    Any other value, an included resource or an outcome, is rendered as it is; the member names and the entries'
    ``search`` modes, the same on every entry, once."""
    known = {id(v.resource): v for v in matches if v.resource is not None}
    names: dict[str, bytes] = {}
    flat: dict[tuple[tuple[str, str], ...], bytes] = {}  # objects of strings: an entry's search mode

    def json_of(value: Any) -> bytes:
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            key = tuple(value.items())
            if key not in flat:
                flat[key] = render_json(value)
            return flat[key]
        return render_json(value)

    def member(key: str, value: Any) -> bytes:
        if key not in names:
            names[key] = render_json(key) + b":"
        version = known.get(id(value)) if key == "resource" else None
        if version is not None and version.resource is value:
            return names[key] + version.derived("fhir.json", _json_rendering)
        if key == "entry" and isinstance(value, list) and all(isinstance(e, dict) for e in value):
            return names[key] + b"[" + b",".join(map(members, value)) + b"]"
        return names[key] + json_of(value)

    def members(item: dict[str, Any]) -> bytes:
        return b"{" + b",".join([member(k, v) for k, v in item.items()]) + b"}"

    return members(bundle)


# a read or vread answers its version's resource unchanged (Version.body), whose JSON is rendered once per version
_VERSION_READS = frozenset({Interaction.READ, Interaction.VREAD})

_READS = frozenset(
    {Interaction.READ, Interaction.VREAD, Interaction.SEARCH, Interaction.HISTORY, Interaction.CAPABILITIES}
)


class FhirServer:
    """The FHIR REST endpoints of one simulator (mount :meth:`app` where the FHIR base should be)."""

    def __init__(
        self,
        *,
        resources: Sequence[ResourceType],
        store: ResourceStore,
        hooks: FhirHooks,
        record: Recorder,
        base_url: Callable[[], str],
        limits: Limits = Limits(),
        software: str = "socle-harness",
        title: str = "FHIR",
        implementation_guides: Sequence[str] = (),
        transaction: Callable[[FhirInteraction, RequestInfo, UnitOfWork], FhirInteraction] | None = None,
        system_interactions: Sequence[str] = ("transaction", "batch"),
        sessions: SessionBook | None = None,
        search_total: Total = Total.NONE,
        group_commit: bool = False,
    ) -> None:
        self.resources = {r.name: r for r in resources}
        # the open test sessions (harness.core.sessions): an establishment of one session reads nothing whose owner
        # (FhirHooks.owners) belongs to another; None: no session check
        self.sessions = sessions
        self.store = store
        self.hooks = hooks
        self.record = record
        self.base_url = base_url
        self.limits = limits
        self.software = software
        self.title = title
        self.implementation_guides = tuple(implementation_guides)
        # ``POST [base]``: the FHIR Bundle processing (:mod:`harness.fhir.bundle`) unless the service receives
        # Bundles its own way (TDDUI: validated and journaled, not stored)
        self.transaction = transaction
        self.system_interactions = tuple(system_interactions)
        # the ``_total`` of a search whose client sends none (issue 18: "a full count only when asked"; ``_count=0``
        # is a count, R4 search.html §3.1.1.5.3): see harness.fhir.search.Total
        self.search_total = search_total
        self.registry = SearchRegistry()
        for r in resources:
            self.registry.add(r.name, r.search_params)
        # reads, searches and creates answered after one shared journal commit (see _handle and GroupCommit); the
        # services whose create rules read only resources a concurrent write cannot change (e-Parcours) turn it on
        self.group_commit = group_commit
        self.groups = GroupCommit(lambda exchanges: self.record(exchanges))  # the server's recorder, even replaced

    # --------------------------------------------------------------------------------------------- routing
    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
        return Starlette(
            routes=[
                Route("/", self._root, methods=methods),
                Route("/metadata", self._metadata, methods=methods),
                Route("/{rtype}", self._type, methods=methods),
                Route("/{rtype}/_search", self._search_post, methods=methods),
                Route("/{rtype}/{rid}", self._instance, methods=methods),
                Route("/{rtype}/{rid}/_history", self._history, methods=methods),
                Route("/{rtype}/{rid}/_history/{vid}", self._vread, methods=methods),
                Route("/{path:path}", self._unknown_path, methods=methods),  # answered and journaled too
            ]
        )

    def guarded(
        self, endpoint: Callable[[Request], Awaitable[Response]], operation: str
    ) -> Callable[[Request], Awaitable[Response]]:
        """A non-FHIR endpoint of the service (its OpenAPI document...) behind the same authentication as the FHIR
        ones: a refused caller gets the OperationOutcome and the refusal is journaled as ``operation``."""

        async def checked(request: Request) -> Response:
            info = request_info(request)
            try:
                self.hooks.authenticate(client_certificate(request.scope), request=info)
            except FhirError as exc:
                return self.refusal(info, exc, operation)
            return await endpoint(request)

        return checked

    def refusal(
        self,
        info: RequestInfo,
        error: FhirError,
        operation: str,
        *,
        interaction: Interaction = Interaction.INVALID,
        person: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Response:
        """A refused request to a non-FHIR endpoint of the service, journaled as ``operation`` and answered with its
        OperationOutcome in JSON: :meth:`guarded`'s refusal, and a service's own past it (e-Prescription's pages)."""
        item = FhirInteraction(interaction, info.method, status=error.status)
        item.error = error
        self.record(
            [default_exchange(item, request=info, body=b"", operation=operation, person=person, details=details)]
        )
        return Response(
            render(error.outcome(), Format.JSON),
            status_code=error.status,
            media_type=rendered_mime({}, Format.JSON, b""),
        )

    def routes(self, prefix: str = "/fhir") -> list[Route | Mount]:
        """Routes mounting the server at ``prefix`` (``POST [base]`` answered without a trailing slash too)."""
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
        return [Route(prefix, self._root, methods=methods), Mount(prefix, app=self.app())]

    async def _root(self, request: Request) -> Response:
        if request.method != "POST":
            return await self._handle(request, Interaction.INVALID, None, None, self._not_allowed)
        return await self._handle(request, Interaction.TRANSACTION, None, None, self._bundle, read=True)

    async def _metadata(self, request: Request) -> Response:
        if request.method != "GET":
            return await self._handle(request, Interaction.INVALID, None, None, self._not_allowed)
        return await self._handle(request, Interaction.CAPABILITIES, None, None, self._capabilities)

    async def _type(self, request: Request) -> Response:
        rtype = request.path_params["rtype"]
        if request.method == "GET":
            return await self._handle(request, Interaction.SEARCH, rtype, None, self._search)
        if request.method == "POST":
            return await self._handle(request, Interaction.CREATE, rtype, None, self._create, read=True)
        if request.method == "DELETE":
            return await self._handle(request, Interaction.DELETE, rtype, None, self.conditional_delete)
        return await self._handle(request, Interaction.INVALID, rtype, None, self._not_allowed)

    async def _search_post(self, request: Request) -> Response:
        rtype = request.path_params["rtype"]
        if request.method in ("POST", "GET"):
            return await self._handle(
                request, Interaction.SEARCH, rtype, None, self._search, read=request.method == "POST"
            )
        return await self._handle(request, Interaction.INVALID, rtype, None, self._not_allowed)

    async def _instance(self, request: Request) -> Response:
        rtype, rid = request.path_params["rtype"], request.path_params["rid"]
        if request.method == "GET":
            return await self._handle(request, Interaction.READ, rtype, rid, self.read)
        if request.method == "PUT":
            return await self._handle(request, Interaction.UPDATE, rtype, rid, self._update, read=True)
        if request.method == "DELETE":
            return await self._handle(request, Interaction.DELETE, rtype, rid, self._delete)
        return await self._handle(request, Interaction.INVALID, rtype, rid, self._not_allowed)

    async def _history(self, request: Request) -> Response:
        rtype, rid = request.path_params["rtype"], request.path_params["rid"]
        if request.method != "GET":
            return await self._handle(request, Interaction.INVALID, rtype, rid, self._not_allowed)
        return await self._handle(request, Interaction.HISTORY, rtype, rid, self._history_instance)

    async def _vread(self, request: Request) -> Response:
        rtype, rid = request.path_params["rtype"], request.path_params["rid"]
        if request.method != "GET":
            return await self._handle(request, Interaction.INVALID, rtype, rid, self._not_allowed)
        vid = request.path_params["vid"]
        return await self._handle(
            request, Interaction.VREAD, rtype, rid, lambda item, info, uow: self._do_vread(item, info, uow, vid)
        )

    # --------------------------------------------------------------------------------------------- core
    async def _handle(
        self,
        request: Request,
        interaction: Interaction,
        rtype: str | None,
        rid: str | None,
        action: Callable[..., FhirInteraction],
        *,
        read: bool = False,
    ) -> Response:
        item = FhirInteraction(interaction, request.method, rtype, rid)
        body = b""
        info = request_info(request)
        try:  # who calls, before anything of the body is read
            info = replace(info, caller_finess=self.hooks.authenticate(client_certificate(request.scope), request=info))
        except FhirError as exc:
            item.error = exc
        if item.error is None:
            item.error = self.hooks.unavailable(request=info)
        try:
            fmt = response_format(request)
        except FhirError as exc:
            fmt = Format.JSON
            item.error = item.error or exc
        if item.error is None and (
            read or request.method in ("POST", "PUT", "PATCH")
        ):  # a refused body is evidence too
            try:
                body = await read_body(request, self.limits)
            except FhirError as exc:
                item.error = exc
        if body:
            info = replace(info, body=body)
        # a read, a search or a create without condition may share its journal commit with those of the same moment
        # (below); any other interaction first commits and applies those waiting, so that it sees and follows them
        groupable = (
            self.group_commit
            and not self.store.shared
            and (interaction in _READS or (interaction is Interaction.CREATE and "if-none-exist" not in info.headers))
        )
        if not groupable:
            self.groups.flush()
        waiting: asyncio.Future[BaseException | None] | None = None
        with self.store.exclusive() as uow:
            if item.error is None:
                try:
                    item = action(item, info, uow)
                    if item.error is None:
                        self.hooks.after_interaction(item, uow=uow, request=info)
                except FhirError as exc:
                    item.error = exc
                except Exception as exc:  # noqa: BLE001 - a bug must still be answered and journaled
                    logger.exception("FHIR interaction failed")
                    item.error = fail(
                        500,
                        IssueCode.EXCEPTION,
                        f"erreur interne du simulateur : {type(exc).__name__}: {exc}",
                        error_code="FHIR-INTERNAL",
                    )
            if item.error is not None:
                item.status = item.error.status
                item.response = item.error.outcome()
            try:
                exchanges = self.hooks.exchanges(item, request=info, body=body, uow=uow)
                if groupable and (item.error is not None or not uow.changes):  # its row is all it writes
                    waiting = self.groups.add(exchanges, None)
                elif groupable and uow.only_created:
                    waiting = self.groups.add(exchanges, uow.commit)
                else:
                    self.record(exchanges)
                    if item.error is None:
                        uow.commit()
            except Exception as exc:  # noqa: BLE001 - journal down: refuse rather than acknowledge unrecorded
                self._failed(item, exc)
        if waiting is not None:  # answered once its journal row is committed and the resource stored
            failure = await waiting
            if failure is not None:
                self._failed(item, failure)
        return self._respond(item, fmt, info)

    @staticmethod
    def _failed(item: FhirInteraction, exc: BaseException) -> None:
        """The answer of an interaction whose journal row or store change failed: its FhirError (409...), else 500."""
        if isinstance(exc, FhirError):
            item.error, item.status, item.response = exc, exc.status, exc.outcome()
            return
        logger.error("journal write failed", exc_info=exc)
        error = fail(500, IssueCode.EXCEPTION, f"journal indisponible : {type(exc).__name__}", error_code="JOURNAL")
        item.error, item.status, item.response = error, 500, error.outcome()

    def _respond(self, item: FhirInteraction, fmt: Format, info: RequestInfo) -> Response:
        headers: dict[str, str] = {}
        if item.error is not None:
            headers.update(item.error.headers)
        elif item.result is not None:
            headers["ETag"] = item.result.etag
            headers["Last-Modified"] = format_datetime(
                item.result.last_updated.astimezone(UTC), usegmt=True
            )  # RFC 9110 HTTP-date: GMT
            if item.status == 201 or item.interaction in (Interaction.UPDATE, Interaction.CREATE):
                headers["Location"] = f"{self.base_url()}/{item.result.location}"
        payload = item.response
        if payload is None:
            return Response(status_code=item.status, headers=headers)
        if info.prefer_minimal and item.error is None and item.interaction in (Interaction.CREATE, Interaction.UPDATE):
            return Response(status_code=item.status, headers=headers)
        if fmt is Format.JSON and item.error is None and item.interaction in _VERSION_READS and item.result is not None:
            body = item.result.derived("fhir.json", _json_rendering)  # the version read, as stored: rendered once
        elif fmt is Format.JSON and item.error is None and item.interaction is Interaction.SEARCH and item.matches:
            body = searchset_json(payload, item.matches)
        else:
            body = render(payload, fmt)
        return Response(body, status_code=item.status, headers=headers, media_type=rendered_mime(payload, fmt, body))

    # --------------------------------------------------------------------------------------------- helpers
    def type_of(self, rtype: str | None, interaction: Interaction) -> ResourceType:
        known = self.resources.get(rtype or "")
        if known is None:
            raise fail(
                404,
                IssueCode.NOT_SUPPORTED,
                f"type de ressource non pris en charge : {rtype!r}",
                error_code="FHIR-UNKNOWN-TYPE",
            )
        if interaction not in known.interactions:
            raise fail(
                405,
                IssueCode.NOT_SUPPORTED,
                f"interaction {interaction} non prise en charge pour {rtype}",
                error_code="FHIR-NOT-ALLOWED",
            )
        return known

    async def _unknown_path(self, request: Request) -> Response:
        return await self._handle(request, Interaction.INVALID, None, None, self._no_such_path)

    def _no_such_path(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork) -> FhirInteraction:
        raise fail(
            404,
            IssueCode.NOT_FOUND,
            f"aucune interaction FHIR à cette adresse : {info.path[:200]}",
            error_code="FHIR-UNKNOWN-PATH",
        )

    def _not_allowed(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork) -> FhirInteraction:
        raise fail(
            405,
            IssueCode.NOT_SUPPORTED,
            f"méthode {info.method} non prise en charge sur {info.path}",
            error_code="FHIR-NOT-ALLOWED",
        )

    def _capabilities(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork) -> FhirInteraction:
        item.response = capability_statement(self)
        return item

    def parse_body(self, info: RequestInfo) -> dict[str, Any]:
        resource, _ = parse_resource(info.body, info.content_type, self.limits)
        check_entry_count(resource, self.limits)
        return resource

    def check_references(self, resource: dict[str, Any], uow: UnitOfWork, where: str) -> None:
        """Relative references to hosted types must resolve (store or staged), else HTTP 422."""
        contained = {f"#{c.get('id')}" for c in resource.get("contained") or [] if isinstance(c, dict)}
        missing: list[Issue] = []
        for path, ref in references_in(resource):
            if ref.startswith("#"):
                if ref not in contained:
                    missing.append(
                        Issue(
                            IssueSeverity.ERROR,
                            IssueCode.NOT_FOUND,
                            f"référence contenue introuvable : {ref}",
                            f"{where}.{path}",
                            "FHIR-REFERENCE",
                        )
                    )
                continue
            if ref.startswith(("urn:uuid:", "urn:oid:")):
                missing.append(
                    Issue(
                        IssueSeverity.ERROR,
                        IssueCode.NOT_FOUND,
                        f"référence {ref} ne correspond à aucune entrée (fullUrl) de la transaction",
                        f"{where}.{path}",
                        "FHIR-REFERENCE",
                    )
                )
                continue
            if "://" in ref and not ref.startswith(self.base_url() + "/"):
                continue  # another server: not ours to check
            local = ref[len(self.base_url()) + 1 :] if ref.startswith(self.base_url() + "/") else ref
            parts = local.split("/")
            if len(parts) >= 2 and parts[0] in self.resources and not uow.exists(parts[0], parts[1]):
                missing.append(
                    Issue(
                        IssueSeverity.ERROR,
                        IssueCode.NOT_FOUND,
                        f"référence non résolue : {ref}",
                        f"{where}.{path}",
                        "FHIR-REFERENCE",
                    )
                )
        if missing:
            raise FhirError(422, missing, error_code="FHIR-REFERENCE")

    def prepare_write(
        self,
        item: FhirInteraction,
        resource: dict[str, Any],
        uow: UnitOfWork,
        info: RequestInfo,
        *,
        structure_checked: bool = False,
        where: str | None = None,
    ) -> dict[str, Any]:
        """Structure (400), profile (422) and business checks of a resource about to be written."""
        rtype = item.resource_type or ""
        where = where or rtype
        if resource.get("resourceType") != rtype:
            raise fail(
                400,
                IssueCode.INVALID,
                f"resourceType {resource.get('resourceType')!r} reçu sur le point d'accès {rtype}",
                expression=f"{where}.resourceType",
                error_code="FHIR-RESOURCETYPE",
            )
        if not structure_checked:
            structure = structure_findings(resource, location=where)
            if structure:
                raise FhirError(400, issues_from_findings(structure), error_code=structure[0].code)
        self._require_same_session_content(resource, info, uow)
        findings = self.hooks.validate(rtype, resource, uow=uow, interaction=item.interaction)
        item.warnings.extend(f for f in findings if f.severity is not Severity.ERROR)
        errors = [f for f in findings if f.severity is Severity.ERROR]
        if errors:
            raise FhirError(422, issues_from_findings(findings), error_code=errors[0].code)
        return self.hooks.before_write(item, resource, uow=uow, request=info)

    # --------------------------------------------------------------------------------------------- interactions
    def _create(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork) -> FhirInteraction:
        rtype = self.type_of(item.resource_type, Interaction.CREATE)
        resource = self.parse_body(info)
        item.request = resource
        condition = info.headers.get("if-none-exist")
        return self.do_create(
            item, resource, uow, info, condition=condition if rtype.conditional_create else None, check_refs=True
        )

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
    ) -> FhirInteraction:
        rtype = item.resource_type or ""
        item.request = resource
        if condition:
            existing = self.conditional_matches(rtype, condition, uow, info)
            if len(existing) > 1:
                raise fail(
                    412,
                    IssueCode.DUPLICATE,
                    f"If-None-Exist {condition!r} : {len(existing)} ressources correspondent",
                    error_code="FHIR-CONDITIONAL",
                )
            if existing:
                self._require_same_session(existing[0], info, uow)  # the answer would show it
                item.result, item.resource_id, item.noop, item.status = existing[0], existing[0].id, True, 200
                item.response = existing[0].body()
                return item
        prepared = self.prepare_write(item, resource, uow, info, structure_checked=structure_checked, where=where)
        if check_refs:
            self.check_references(prepared, uow, where or rtype)
        version = uow.create(rtype, prepared, resource_id=resource_id)
        item.result, item.resource_id, item.status = version, version.id, 201
        item.response = version.body()
        return item

    def conditional_matches(self, rtype: str, condition: str, uow: UnitOfWork, info: RequestInfo) -> list[Version]:
        query = parse_query(rtype, parse_qsl(condition.lstrip("?"), keep_blank_values=True), self.registry, strict=True)
        if not query.criteria:
            raise fail(400, IssueCode.INVALID, f"condition vide : {condition!r}", error_code="FHIR-CONDITIONAL")
        matcher = Matcher(self.registry, resolver_of(uow.current))
        candidates = self._narrowed(query, uow, matcher)
        return run_search(query, uow.all(rtype) if candidates is None else candidates, matcher).matches

    def read(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork) -> FhirInteraction:
        self.type_of(item.resource_type, Interaction.READ)
        rid = item.resource_id or ""
        if not valid_id(rid):
            raise fail(404, IssueCode.NOT_FOUND, f"identifiant invalide : {rid!r}", error_code="FHIR-NOT-FOUND")
        latest = uow.current(item.resource_type or "", rid)  # deleted versions included
        if latest is not None and not self.hooks.visible(latest, request=info):  # hidden: unknown, even if deleted
            raise fail(404, IssueCode.NOT_FOUND, f"{item.resource_type}/{rid} inconnu", error_code="FHIR-NOT-FOUND")
        if latest is not None:
            self._require_same_session(latest, info, uow)
        version = uow.read(item.resource_type or "", rid)
        item.result, item.response = version, version.body()
        return item

    def _do_vread(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork, vid: str) -> FhirInteraction:
        self.type_of(item.resource_type, Interaction.VREAD)
        version = self.store.vread(item.resource_type or "", item.resource_id or "", vid)
        if not self.hooks.visible(version, request=info):
            raise fail(
                404,
                IssueCode.NOT_FOUND,
                f"{item.resource_type}/{item.resource_id} inconnu",
                error_code="FHIR-NOT-FOUND",
            )
        self._require_same_session(version, info, uow)
        item.result, item.response = version, version.body()
        return item

    def _history_instance(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork) -> FhirInteraction:
        self.type_of(item.resource_type, Interaction.HISTORY)
        versions = self.store.history(item.resource_type or "", item.resource_id or "")
        if not versions or not self.hooks.visible(versions[-1], request=info):
            raise fail(
                404,
                IssueCode.NOT_FOUND,
                f"{item.resource_type}/{item.resource_id} inconnu",
                error_code="FHIR-NOT-FOUND",
            )
        for version in versions:
            self._require_same_session(version, info, uow)
        base = self.base_url()
        entries = []
        for v in reversed(versions):
            entry: dict[str, Any] = {
                "fullUrl": f"{base}/{v.resource_type}/{v.id}",
                "request": {
                    "method": "DELETE" if v.deleted else ("POST" if v.version_id == 1 else "PUT"),
                    "url": f"{v.resource_type}/{v.id}",
                },
                "response": {"status": "200 OK", "etag": v.etag, "lastModified": instant(v.last_updated)},
            }
            if not v.deleted:
                entry["resource"] = v.body()
            entries.append(entry)
        item.response = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "type": "history",
            "total": len(entries),
            "entry": entries,
        }
        return item

    def _update(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork) -> FhirInteraction:
        self.type_of(item.resource_type, Interaction.UPDATE)
        resource = self.parse_body(info)
        if_match = info.headers.get("if-match")
        return self.do_update(item, resource, uow, info, if_match=parse_etag(if_match) if if_match else None)

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
    ) -> FhirInteraction:
        rtype, rid = item.resource_type or "", item.resource_id or ""
        item.request = resource
        if not valid_id(rid):
            raise fail(400, IssueCode.INVALID, f"identifiant invalide : {rid!r}", error_code="FHIR-ID")
        if resource.get("id") != rid:
            raise fail(
                400,
                IssueCode.INVALID,
                f"l'id de la ressource ({resource.get('id')!r}) doit être celui de l'URL ({rid!r})",
                expression=f"{where or rtype}.id",
                error_code="FHIR-ID",
            )
        current = uow.current(rtype, rid)
        if current is not None and current.resource is not None:  # what it replaces must be the caller's to change
            self._require_same_session(current, info, uow)
        prepared = self.prepare_write(item, resource, uow, info, structure_checked=structure_checked, where=where)
        if check_refs:
            self.check_references(prepared, uow, where or rtype)
        version, created = uow.update(rtype, rid, prepared, if_match=if_match)
        item.result, item.status = version, 201 if created else 200
        item.response = version.body()
        return item

    def _delete(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork) -> FhirInteraction:
        self.type_of(item.resource_type, Interaction.DELETE)
        if_match = info.headers.get("if-match")
        return self.do_delete(item, uow, info, if_match=parse_etag(if_match) if if_match else None)

    def do_delete(
        self, item: FhirInteraction, uow: UnitOfWork, info: RequestInfo, *, if_match: str | None
    ) -> FhirInteraction:
        before = uow.current(item.resource_type or "", item.resource_id or "")
        if before is not None:
            self.hooks.before_delete(item, before, uow=uow, request=info)
            if before.resource is not None:
                self._require_same_session(before, info, uow)
        version = uow.delete(item.resource_type or "", item.resource_id or "", if_match=if_match)
        item.noop = version is None
        item.result = version
        if before is not None and before.resource is not None:
            item.request = before.resource  # what was deleted (journal: person, author)
        item.status = 200
        item.response = operation_outcome(
            [
                Issue(
                    IssueSeverity.INFORMATION,
                    IssueCode.INFORMATIONAL,
                    "suppression effectuée" if version else "rien à supprimer",
                )
            ]
        )
        return item

    def conditional_delete(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork) -> FhirInteraction:
        rtype = self.type_of(item.resource_type, Interaction.DELETE)
        if not rtype.conditional_delete:
            raise fail(
                405,
                IssueCode.NOT_SUPPORTED,
                f"suppression conditionnelle non prise en charge pour {rtype.name}",
                error_code="FHIR-NOT-ALLOWED",
            )
        hits = self.conditional_matches(rtype.name, info.query, uow, info)
        if len(hits) > 1:
            raise fail(
                412,
                IssueCode.DUPLICATE,
                f"{len(hits)} ressources correspondent à la condition de suppression",
                error_code="FHIR-CONDITIONAL",
            )
        if not hits:
            item.noop, item.status = True, 200
            item.response = operation_outcome(
                [Issue(IssueSeverity.INFORMATION, IssueCode.INFORMATIONAL, "rien à supprimer")]
            )
            return item
        item.resource_id = hits[0].id
        return self.do_delete(item, uow, info, if_match=None)

    def _search(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork) -> FhirInteraction:
        self.type_of(item.resource_type, Interaction.SEARCH)
        items = parse_qsl(info.query, keep_blank_values=True)
        if info.method == "POST":
            if info.body:
                mime = (info.content_type or "").split(";")[0].strip().lower()
                if mime != "application/x-www-form-urlencoded":
                    raise fail(
                        415,
                        IssueCode.NOT_SUPPORTED,
                        "POST _search attend application/x-www-form-urlencoded",
                        error_code="FHIR-CONTENT-TYPE",
                    )
                try:
                    items += parse_qsl(info.body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
                except (UnicodeDecodeError, ValueError) as exc:
                    raise fail(
                        400, IssueCode.INVALID, f"paramètres de recherche illisibles : {exc}", error_code="FHIR-SEARCH"
                    ) from None
        query = parse_query(
            item.resource_type or "", items, self.registry, strict=info.strict, max_count=self.limits.max_search_results
        )
        return self.do_search(item, query, uow, info, query_string=info.query)

    def do_search(
        self, item: FhirInteraction, query: SearchQuery, uow: UnitOfWork, info: RequestInfo, *, query_string: str
    ) -> FhirInteraction:
        """A type-level search. With reference criteria (plain or chained) or identifier criteria, the candidates are
        the ids the store's indexes give (:meth:`_narrowed`), read directly: the cost follows the matches, not the
        size of the store; the visibility rule runs on matches only."""
        matcher = Matcher(self.registry, resolver_of(uow.current))
        candidates = self._narrowed(query, uow, matcher)
        if candidates is None:
            candidates = uow.scan(query.resource_type)
        total = query.total or (Total.ACCURATE if query.count == 0 else self.search_total)
        if query.count is None:
            query.count = self.limits.max_search_results
        in_session = self._in_a_session(info)  # another session's resources are left out of the results
        seen = self.hooks.visibility(request=info)

        def visible(v: Version) -> bool:
            return seen(v) and (not in_session or self.session_refusal(v, info, uow) is None)

        found = run_search(query, candidates, matcher, visible, total=total)
        matches = found.matches
        included = matcher.included([m.resource for m in matches if m.resource is not None], query.includes)
        if in_session:
            assert self.sessions is not None
            caller = ("essms", info.caller_finess)
            included = [
                r
                for r in included
                if all(
                    self.sessions.cross_session(caller, o) is None
                    for o in identified_owners(r) + referenced_patients(r, uow.current)
                )
            ]
        item.matches, item.included, item.total, item.query = matches, included, found.total, describe_criteria(query)
        item.warnings.extend(Finding("FHIR-SEARCH-PARAM", w.diagnostics, Severity.WARNING) for w in query.warnings)
        base = self.base_url()
        next_url = page_link(base, query, query.offset + (query.count or 0)) if found.more else None
        item.response = searchset(
            base,
            query_string,
            query.resource_type,
            matches,
            included,
            found.total,
            query.warnings,
            str(uuid.uuid4()),
            instant(uow.now),
            next_url=next_url,
        )
        return item

    def _in_a_session(self, info: RequestInfo) -> bool:
        return self.sessions is not None and self.sessions.session_of("essms", info.caller_finess) is not None

    def session_refusal(self, version: Version, info: RequestInfo, uow: UnitOfWork) -> str | None:
        """Why the calling establishment may not read ``version``: one of its owners (:meth:`FhirHooks.owners`, and
        the patients it names by a literal reference, read in ``uow``) belongs to another open test session than
        the caller's (``None``: it may; always ``None`` when the caller is in no session)."""
        if not self._in_a_session(info):
            return None
        assert self.sessions is not None
        for owner in self.hooks.owners(version) + referenced_patients(version.resource, uow.current):
            refusal = self.sessions.cross_session(("essms", info.caller_finess), owner)
            if refusal is not None:
                return refusal
        return None

    def _require_same_session_content(self, resource: dict[str, Any], info: RequestInfo, uow: UnitOfWork) -> None:
        """A resource about to be written (create, update) that names a patient or an establishment of another open
        test session than the caller's (its identifiers, or a Patient it references literally): 403
        ``FHIR-AUTRE-SESSION``; no check when the caller is in no session."""
        if not self._in_a_session(info):
            return
        assert self.sessions is not None  # checked by _in_a_session
        caller = ("essms", info.caller_finess)
        for owner in identified_owners(resource) + referenced_patients(resource, uow.current):
            refusal = self.sessions.cross_session(caller, owner)
            if refusal is not None:
                raise fail(403, IssueCode.FORBIDDEN, refusal, error_code=OTHER_SESSION)

    def _require_same_session(self, version: Version, info: RequestInfo, uow: UnitOfWork) -> None:
        refusal = self.session_refusal(version, info, uow)
        if refusal is not None:
            raise fail(403, IssueCode.FORBIDDEN, refusal, error_code=OTHER_SESSION)

    def _narrowed(self, query: SearchQuery, uow: UnitOfWork, matcher: Matcher) -> Iterable[Version] | None:
        """The candidates of a search as the store's indexes give them, in creation order: the resources that
        reference a target of every reference criterion (:meth:`_by_reference`) and have a token of every identifier
        criterion (:meth:`_by_identifier`); ``None`` when no criterion narrows (then every resource of the type is
        a candidate). A superset of the matches: the matcher still judges each candidate on every criterion."""
        narrowing = self._by_reference(query, uow, matcher)
        identified = self._by_identifier(query, uow)
        if narrowing is None and identified is None:
            return None
        if identified is None and narrowing is not None and len(narrowing) == 1 and len(narrowing[0]) == 1:
            return uow.among_referencing(query.resource_type, next(iter(narrowing[0])))  # its ranks are kept
        sets = [
            {i for target in targets for i in self.store.referencing(query.resource_type, target)}
            for targets in narrowing or ()
        ]
        return uow.among(query.resource_type, set.intersection(*sets, *(identified or ())))

    def _identified(self, resource_type: str, criterion: Criterion) -> set[str] | None:
        """The ids of the store's identifier index (:meth:`ResourceStore.identified`) that may match one value of a
        plain token ``criterion`` on elements of :data:`~harness.fhir.store.IDENTIFIER_ELEMENTS` (a comma is OR: their
        union); ``None`` for any other criterion (a modifier — ``:not``, ``:missing``, ``:of-type``, ``:text`` —,
        a chain, another parameter): the index does not answer it. ``_id`` (the path ``id``) needs no index: its
        values are the ids (a value without a code, ``system|``, is left to the scan)."""
        param = criterion.param
        if param.type is not ParamType.TOKEN or criterion.modifier is not None or criterion.chain is not None:
            return None
        if param.paths == ("id",):
            codes = {split_token(raw)[1] for raw in criterion.values}
            return None if None in codes else {str(code) for code in codes}
        if not param.paths or not IDENTIFIER_ELEMENTS.issuperset(param.paths):
            return None
        ids: set[str] = set()
        for raw in criterion.values:
            system, code = split_token(raw)
            for element in param.paths:
                ids |= self.store.identified(resource_type, (element, system, code))
        return ids

    def _by_identifier(self, query: SearchQuery, uow: UnitOfWork) -> list[set[str]] | None:
        """For each identifier criterion (:meth:`_identified`; a repeated parameter is AND: one set each), the ids
        of the resources it matches; ``None`` when there is none (or writes of the type are staged: the index does
        not see them yet, as :meth:`_by_reference`)."""
        if query.resource_type in uow.staged_types():
            return None
        found = [ids for c in query.criteria if (ids := self._identified(query.resource_type, c)) is not None]
        return found or None

    def _by_reference(self, query: SearchQuery, uow: UnitOfWork, matcher: Matcher) -> list[set[str]] | None:
        """The targets (``Type/id``) of each reference criterion that allows narrowing (chains resolved on the target
        type first): the candidates are the ids of the store's reference index that reference one target of every
        criterion; ``None`` when no criterion allows narrowing (or writes are staged: the index lags). A chained
        criterion resolved here is settled in the matcher (not evaluated again per candidate)."""
        if query.resource_type in uow.staged_types():
            return None
        narrowing: list[set[str]] = []
        for criterion in query.criteria:
            param = criterion.param
            if param.type is not ParamType.REFERENCE or criterion.modifier in ("missing", "identifier"):
                continue
            targets: set[str] = set()
            if criterion.chain:
                chained_types = (criterion.chain_type,) if criterion.chain_type else param.targets
                if not chained_types or uow.staged_types() & set(chained_types):
                    continue
                for target_type in chained_types:
                    chained = self.registry.of(target_type).get(criterion.chain)
                    if chained is None:
                        continue
                    sub = Criterion(chained, None, criterion.values)
                    indexed = self._identified(target_type, sub)  # patient.identifier: the Patients it names
                    pool = uow.all(target_type) if indexed is None else uow.among(target_type, indexed)
                    targets |= {
                        f"{target_type}/{v.id}"
                        for v in pool
                        if v.resource is not None and matcher.matches(v.resource, sub)
                    }
                matcher.settle(criterion, targets)
            else:
                for raw in criterion.values:
                    parts = [p for p in raw.split("/_history/")[0].split("/") if p]
                    if len(parts) >= 2:
                        targets.add(f"{parts[-2]}/{parts[-1]}")
                    else:
                        targets |= {f"{t}/{raw}" for t in (criterion.modifier,) if t} or {
                            f"{t}/{raw}" for t in param.targets
                        }
                if not targets:
                    continue
            narrowing.append(targets)
        return narrowing or None

    def _bundle(self, item: FhirInteraction, info: RequestInfo, uow: UnitOfWork) -> FhirInteraction:
        if self.transaction is not None:
            return self.transaction(item, info, uow)
        bundle = self.parse_body(info)
        return process_bundle(self, item, bundle, uow, info)
