"""``transaction`` and ``batch`` Bundles (``POST [base]``).

FHIR R4 (4.0.1) RESTful API §3.1.0.11 (http://hl7.org/fhir/R4/http.html#transaction):

- ``Bundle.type`` is ``transaction`` or ``batch`` (else HTTP 400); the entry count is bounded before anything else
  (HTTP 413, :class:`harness.fhir.wire.Limits`); the whole Bundle is checked against the R4B model first (400);
- each entry has ``request.method`` and ``request.url``; POST and PUT entries carry a ``resource``;
- processing order: DELETE, then POST, then PUT, then GET (§3.1.0.11.2); the ``fullUrl`` (``urn:uuid:...``) of a
  created resource is replaced by its new ``Type/id`` in every reference of the Bundle; an entry's
  ``ifNoneExist`` makes a conditional create (an existing match is reused and references point to it);
- two entries on the same resource are refused (400); references that do not resolve after all entries are staged
  are refused (422);
- ``transaction`` is all or nothing: the first failing entry fails the whole Bundle with its status and an
  ``OperationOutcome`` (the ANS Cahier de liaison guide writes HTTP 500 for a failed transaction; the harness answers
  the FHIR core status — 400/404/409/412/422 — so that a client error is never reported as a server fault);
  on success HTTP 200 and a ``transaction-response`` Bundle, entries in request order with ``response.status``,
  ``location``, ``etag``, ``lastModified`` and the resource as stored (unless ``Prefer: return=minimal``);
- ``batch``: each entry succeeds or fails alone (``batch-response``, HTTP 200).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from harness.fhir.interaction import FhirInteraction, Interaction, InteractionProcessor, RequestInfo
from harness.fhir.model import rewrite_references, structure_findings
from harness.fhir.outcome import FhirError, Issue, IssueCode, IssueSeverity, fail, issues_from_findings
from harness.fhir.search import parse_query
from harness.fhir.store import UnitOfWork, instant, parse_etag
from harness.validators import Severity

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class EntryPlan:
    index: int
    method: str
    resource_type: str
    resource_id: str | None
    query: str
    resource: dict[str, Any] | None
    full_url: str | None
    if_match: str | None
    if_none_exist: str | None
    assigned_id: str | None = None
    noop_target: str | None = None  # conditional create that matched: the existing id

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _relocate(error: FhirError, where: str) -> FhirError:
    """The same error with each issue located in the entry (``Bundle.entry[i]...``)."""
    issues = [
        Issue(
            i.severity,
            i.code,
            i.diagnostics,
            i.expression
            if i.expression.startswith("Bundle.")
            else (f"{where}.{i.expression}" if i.expression else where),
            i.detail,
        )
        for i in error.issues
    ]
    return FhirError(error.status, issues, error_code=error.error_code, headers=error.headers)


def _plan(server: InteractionProcessor, index: int, entry: dict[str, Any]) -> EntryPlan:
    """One entry's plan; ``entry`` is an object: the Bundle passed its structure check (a non-object entry is
    FHIR-STRUCTURE there)."""
    where = f"Bundle.entry[{index}]"
    request = entry.get("request")
    if not isinstance(request, dict) or not request.get("method") or not request.get("url"):
        raise fail(
            400,
            IssueCode.REQUIRED,
            "request.method et request.url sont obligatoires dans une transaction",
            expression=f"{where}.request",
            error_code="FHIR-BUNDLE-REQUEST",
        )
    method = str(request["method"]).upper()
    if method not in _ORDER:
        raise fail(
            400,
            IssueCode.NOT_SUPPORTED,
            f"méthode {method} non prise en charge",
            expression=f"{where}.request.method",
            error_code="FHIR-BUNDLE-REQUEST",
        )
    if method == "PATCH":
        raise fail(
            400,
            IssueCode.NOT_SUPPORTED,
            "PATCH n'est pas pris en charge",
            expression=f"{where}.request.method",
            error_code="FHIR-BUNDLE-REQUEST",
        )
    url = str(request["url"])
    base = server.base_url()
    if url.startswith(base + "/"):
        url = url[len(base) + 1 :]
    path, _, query = url.lstrip("/").partition("?")
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 4:
        raise fail(
            400,
            IssueCode.INVALID,
            f"request.url invalide : {request['url']!r}",
            expression=f"{where}.request.url",
            error_code="FHIR-BUNDLE-REQUEST",
        )
    resource = entry.get("resource")
    if method in ("POST", "PUT") and not isinstance(resource, dict):
        raise fail(
            400,
            IssueCode.REQUIRED,
            f"une entrée {method} doit contenir une ressource",
            expression=f"{where}.resource",
            error_code="FHIR-BUNDLE-RESOURCE",
        )
    rtype = parts[0]
    rid = parts[1] if len(parts) >= 2 else None
    if method == "POST" and rid is not None:
        # The ANS CdL guide's example Bundle puts "Type/uuid" in request.url of a POST: the id is the server's to assign.
        rid = None
    if method == "PUT" and rid is None and not query:
        raise fail(
            400,
            IssueCode.INVALID,
            "une entrée PUT doit viser Type/id",
            expression=f"{where}.request.url",
            error_code="FHIR-BUNDLE-REQUEST",
        )
    if_match = request.get("ifMatch")
    return EntryPlan(
        index,
        method,
        rtype,
        rid,
        query,
        resource if isinstance(resource, dict) else None,
        entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None,
        parse_etag(if_match) if if_match else None,
        request.get("ifNoneExist") if isinstance(request.get("ifNoneExist"), str) else None,
    )


def process_bundle(
    server: InteractionProcessor, item: FhirInteraction, bundle: dict[str, Any], uow: UnitOfWork, info: RequestInfo
) -> FhirInteraction:

    if bundle.get("resourceType") != "Bundle":
        raise fail(
            400,
            IssueCode.INVALID,
            f"POST sur la racine attend un Bundle transaction ou batch, reçu {bundle.get('resourceType')!r}",
            expression="resourceType",
            error_code="FHIR-RESOURCETYPE",
        )
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise fail(
            400,
            IssueCode.INVALID,
            f"Bundle.type {kind!r} : seuls transaction et batch sont traités",
            expression="Bundle.type",
            error_code="FHIR-BUNDLE-TYPE",
        )
    item.interaction = Interaction.TRANSACTION if kind == "transaction" else Interaction.BATCH
    item.request = bundle
    structure = structure_findings(bundle, location="Bundle")
    if structure:
        raise FhirError(400, issues_from_findings(structure), error_code=structure[0].code)
    profile = server.hooks.validate_bundle(bundle, request=info)
    item.warnings.extend(f for f in profile if f.severity is not Severity.ERROR)
    errors = [f for f in profile if f.severity is Severity.ERROR]
    if errors:
        raise FhirError(422, issues_from_findings(profile), error_code=errors[0].code)
    entries = bundle.get("entry") or []
    if kind == "batch":
        return _batch(server, item, entries, uow, info)
    return _transaction(server, item, entries, uow, info)


def _run_entry(
    server: InteractionProcessor, plan: EntryPlan, uow: UnitOfWork, info: RequestInfo, *, check_refs: bool
) -> FhirInteraction:

    where = f"{plan.where}.resource"
    if plan.method == "DELETE":
        sub = FhirInteraction(Interaction.DELETE, "DELETE", plan.resource_type, plan.resource_id, index=plan.index)
        server.type_of(plan.resource_type, Interaction.DELETE)
        if plan.resource_id is None:
            return server.conditional_delete(sub, _with_query(info, plan.query), uow)
        return server.do_delete(sub, uow, info, if_match=plan.if_match)
    if plan.method == "POST":
        sub = FhirInteraction(Interaction.CREATE, "POST", plan.resource_type, None, index=plan.index)
        server.type_of(plan.resource_type, Interaction.CREATE)
        assert plan.resource is not None  # noqa: S101 - checked by _plan
        if plan.noop_target is not None:
            version = uow.read(plan.resource_type, plan.noop_target)
            sub.result, sub.resource_id, sub.noop, sub.status, sub.request = (
                version,
                version.id,
                True,
                200,
                plan.resource,
            )
            sub.response = version.body()
            return sub
        return server.do_create(
            sub,
            plan.resource,
            uow,
            info,
            resource_id=plan.assigned_id,
            check_refs=check_refs,
            structure_checked=True,
            where=where,
        )
    if plan.method == "PUT":
        sub = FhirInteraction(Interaction.UPDATE, "PUT", plan.resource_type, plan.resource_id, index=plan.index)
        server.type_of(plan.resource_type, Interaction.UPDATE)
        assert plan.resource is not None  # noqa: S101
        if plan.resource_id is None:  # conditional update
            hits = server.conditional_matches(plan.resource_type, plan.query, uow, info)
            if len(hits) > 1:
                raise fail(
                    412,
                    IssueCode.DUPLICATE,
                    "plusieurs ressources correspondent à la mise à jour conditionnelle",
                    error_code="FHIR-CONDITIONAL",
                )
            sub.resource_id = hits[0].id if hits else str(uuid.uuid4())
            plan.resource = {**plan.resource, "id": sub.resource_id}
        return server.do_update(
            sub,
            plan.resource,
            uow,
            info,
            if_match=plan.if_match,
            check_refs=check_refs,
            structure_checked=True,
            where=where,
        )
    # GET / HEAD
    if plan.resource_id is not None:
        sub = FhirInteraction(Interaction.READ, "GET", plan.resource_type, plan.resource_id, index=plan.index)
        return server.read(sub, info, uow)
    sub = FhirInteraction(Interaction.SEARCH, "GET", plan.resource_type, None, index=plan.index)
    server.type_of(plan.resource_type, Interaction.SEARCH)
    query = parse_query(
        plan.resource_type,
        parse_qsl(plan.query, keep_blank_values=True),
        server.registry,
        max_count=server.limits.max_search_results,
    )
    return server.do_search(sub, query, uow, info, query_string=plan.query)


def _with_query(info: RequestInfo, query: str) -> RequestInfo:

    return replace(info, query=query)


def _transaction(
    server: InteractionProcessor, item: FhirInteraction, entries: list[Any], uow: UnitOfWork, info: RequestInfo
) -> FhirInteraction:

    plans = [_plan(server, index, entry) for index, entry in enumerate(entries)]
    # 1. identities: new ids for POST, fullUrl -> Type/id, conditional creates resolved first
    mapping: dict[str, str] = {}
    targets: dict[tuple[str, str], int] = {}
    for plan in plans:
        if plan.method == "POST":
            if plan.if_none_exist:
                try:
                    hits = server.conditional_matches(plan.resource_type, plan.if_none_exist, uow, info)
                except FhirError as exc:
                    raise _relocate(exc, f"{plan.where}.request.ifNoneExist") from None
                if len(hits) > 1:
                    raise fail(
                        412,
                        IssueCode.DUPLICATE,
                        f"ifNoneExist : {len(hits)} ressources correspondent",
                        expression=f"{plan.where}.request.ifNoneExist",
                        error_code="FHIR-CONDITIONAL",
                    )
                if hits:
                    plan.noop_target = hits[0].id
            plan.assigned_id = plan.noop_target or str(uuid.uuid4())
            if plan.full_url:
                mapping[plan.full_url] = f"{plan.resource_type}/{plan.assigned_id}"
        elif plan.method in ("PUT", "DELETE") and plan.resource_id:
            key = (plan.resource_type, plan.resource_id)
            if key in targets:
                raise fail(
                    400,
                    IssueCode.DUPLICATE,
                    f"{key[0]}/{key[1]} visé par deux entrées ({targets[key]} et {plan.index})",
                    expression=plan.where,
                    error_code="FHIR-BUNDLE-DUPLICATE",
                )
            targets[key] = plan.index
            if plan.full_url and plan.method == "PUT":
                mapping[plan.full_url] = f"{plan.resource_type}/{plan.resource_id}"
    full_urls = [p.full_url for p in plans if p.full_url]
    if len(full_urls) != len(set(full_urls)):
        raise fail(
            400,
            IssueCode.DUPLICATE,
            "deux entrées ont le même fullUrl",
            expression="Bundle.entry.fullUrl",
            error_code="FHIR-BUNDLE-DUPLICATE",
        )
    if mapping:
        for plan in plans:
            if plan.resource is not None:
                plan.resource = rewrite_references(plan.resource, mapping)
    # 2. process in the order of the specification; the first failure fails the whole transaction
    results: dict[int, FhirInteraction] = {}
    try:
        for plan in sorted(plans, key=lambda p: (_ORDER[p.method], p.index)):
            try:
                results[plan.index] = _run_entry(server, plan, uow, info, check_refs=False)
            except FhirError as exc:
                failed = FhirInteraction(
                    _interaction_of(plan),
                    plan.method,
                    plan.resource_type,
                    plan.resource_id,
                    index=plan.index,
                    request=plan.resource,
                )
                failed.error, failed.status = _relocate(exc, plan.where), exc.status
                results[plan.index] = failed
                raise failed.error from None
        # 3. every reference of the written resources must now resolve
        for plan in plans:
            done = results.get(plan.index)
            if done is not None and done.result is not None and done.result.resource is not None and not done.noop:
                try:
                    server.check_references(done.result.resource, uow, f"{plan.where}.resource")
                except FhirError as exc:
                    done.error, done.status = exc, exc.status
                    raise
    except FhirError as exc:
        item.entries = [
            results.get(p.index)
            or FhirInteraction(
                _interaction_of(p), p.method, p.resource_type, p.resource_id, index=p.index, request=p.resource
            )
            for p in plans
        ]
        cancelled = Issue(IssueSeverity.ERROR, IssueCode.PROCESSING, "transaction annulée : une autre entrée a échoué")
        for sub in item.entries:
            if sub.error is None:
                sub.error, sub.status = (
                    FhirError(exc.status, [cancelled, *exc.issues], error_code=exc.error_code),
                    exc.status,
                )
        raise
    item.entries = [results[p.index] for p in plans]
    item.status = 200
    item.response = _response_bundle("transaction-response", item.entries, info, server.base_url())
    return item


def _interaction_of(plan: EntryPlan) -> Any:

    if plan.method == "POST":
        return Interaction.CREATE
    if plan.method == "PUT":
        return Interaction.UPDATE
    if plan.method == "DELETE":
        return Interaction.DELETE
    return Interaction.READ if plan.resource_id else Interaction.SEARCH


def _batch(
    server: InteractionProcessor, item: FhirInteraction, entries: list[Any], uow: UnitOfWork, info: RequestInfo
) -> FhirInteraction:

    item.entries = []
    for index, entry in enumerate(entries):
        child = uow.child()
        try:
            plan = _plan(server, index, entry)
            if plan.method == "POST" and plan.if_none_exist:
                hits = server.conditional_matches(plan.resource_type, plan.if_none_exist, child, info)
                if len(hits) > 1:
                    raise fail(
                        412,
                        IssueCode.DUPLICATE,
                        "ifNoneExist : plusieurs ressources correspondent",
                        error_code="FHIR-CONDITIONAL",
                    )
                plan.noop_target = hits[0].id if hits else None
            sub = _run_entry(server, plan, child, info, check_refs=True)
            uow.absorb(child)
        except FhirError as exc:
            sub = FhirInteraction(Interaction.INVALID, "", None, None, index=index)
            if isinstance(entry, dict) and isinstance(entry.get("request"), dict):
                sub.method = str(entry["request"].get("method", "")).upper()
            sub.error, sub.status = _relocate(exc, f"Bundle.entry[{index}]"), exc.status
            sub.request = (
                entry.get("resource") if isinstance(entry, dict) and isinstance(entry.get("resource"), dict) else None
            )
        item.entries.append(sub)
    item.status = 200
    item.response = _response_bundle("batch-response", item.entries, info, server.base_url())
    return item


def _response_bundle(kind: str, entries: list[FhirInteraction], info: RequestInfo, base: str) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for sub in entries:
        response: dict[str, Any] = {"status": _status_line(sub.status)}
        entry: dict[str, Any] = {}
        if sub.error is not None:
            response["outcome"] = sub.error.outcome()
        elif sub.result is not None:
            response["etag"] = sub.result.etag
            response["lastModified"] = instant(sub.result.last_updated)
            if sub.result.resource is not None:
                response["location"] = sub.result.location
                if not info.prefer_minimal:
                    entry["resource"] = sub.result.body()
        elif sub.response is not None and not info.prefer_minimal:
            entry["resource"] = sub.response
        if sub.result is not None and sub.result.resource is not None:
            entry["fullUrl"] = f"{base}/{sub.result.resource_type}/{sub.result.id}"
        entry["response"] = response
        out.append(entry)
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": kind, "entry": out}
