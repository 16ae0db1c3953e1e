"""FHIR R4 search: parameter definitions, parsing of the query string, matching, ``_include``.

FHIR R4 (4.0.1) search (http://hl7.org/fhir/R4/search.html): parameter types ``token`` (``system|code``,
``|code``, ``system|``, ``code``), ``string`` (case- and accent-insensitive prefix; ``:exact``, ``:contains``),
``date`` (prefixes ``eq ne gt lt ge le sa eb ap`` over the implicit range of a partial date), ``reference``
(``Type/id``, ``id``, absolute URL; ``:Type`` modifier) and ``uri``; chained parameters (``subject.identifier``,
``author:Practitioner.identifier``); a comma is OR, a repeated parameter is AND. Result parameters: ``_include``
(``Type:param[:Target]`` and ``*``), ``_count``, ``_sort`` on a date parameter or ``_lastUpdated``, ``_total``
(see :class:`Total`).
Paging (R4 http.html §3.1.0.1.x "Paging", search.html ``_count``): a page of ``_count`` matches with a
``Bundle.link`` of relation ``next`` when more follow; the link carries the query and ``_offset`` (a server
parameter: links are opaque to the client).
Unknown parameters are ignored with a warning (an ``OperationOutcome`` entry ``search.mode = outcome``) unless
the client sends ``Prefer: handling=strict`` (then HTTP 400), as §3.1.1.2 allows.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple
from urllib.parse import urlencode

from harness.fhir.outcome import Issue, IssueCode, IssueSeverity, fail
from harness.fhir.store import Version, token_pairs, values_at

RESULT_PARAMETERS = frozenset(
    {
        "_include",
        "_revinclude",
        "_count",
        "_offset",
        "_sort",
        "_total",
        "_summary",
        "_elements",
        "_format",
        "_pretty",
        "_contained",
        "_containedType",
    }
)


class Total(StrEnum):
    """``_total`` (R4 search.html §3.1.1.5.2 "Total number of matching resources", trial-use): ``none`` "There is
    no need to populate the total count; the client will not use it", ``estimate`` "A rough estimate of the number
    of matching resources is sufficient", ``accurate`` "The client requests that the server provide an exact total";
    "the servers can ignore the ``_total`` parameter: it is just an optimization hint". Here: ``none`` leaves
    ``Bundle.total`` out and reads candidates only until the page and one more match; ``accurate`` reads and counts
    every match; ``estimate`` stops like ``none`` and gives the size of the candidate set the store's indexes
    (references, identifiers) returned (an upper bound: every candidate has not been matched on the other criteria
    nor checked for visibility), the exact count when every candidate was read anyway (a short result, ``_sort``) or when no index
    narrowed the search. A server picks the mode of a search whose client sends no ``_total``
    (:class:`harness.fhir.server.FhirServer` ``search_total``)."""

    NONE = "none"
    ESTIMATE = "estimate"
    ACCURATE = "accurate"


class ParamType(StrEnum):
    TOKEN = "token"
    STRING = "string"
    DATE = "date"
    REFERENCE = "reference"
    URI = "uri"


@dataclass(frozen=True)
class SearchParam:
    """A search parameter of one resource type: the element paths it reads (dotted, lists flattened)."""

    name: str
    type: ParamType
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()  # reference parameters: the resource types it may point to
    documentation: str = ""
    definition: str = ""  # canonical URL of the SearchParameter (CapabilityStatement)


COMMON_PARAMS: tuple[SearchParam, ...] = (
    SearchParam(
        "_id",
        ParamType.TOKEN,
        ("id",),
        documentation="identifiant logique",
        definition="http://hl7.org/fhir/SearchParameter/Resource-id",
    ),
    SearchParam(
        "_lastUpdated",
        ParamType.DATE,
        ("meta.lastUpdated",),
        documentation="date de dernière mise à jour",
        definition="http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
    ),
)


Resolver = Callable[[str, str], dict[str, Any] | None]  # (type, id) -> current resource or None


@dataclass
class SearchRegistry:
    """The search parameters of every resource type a server supports."""

    params: dict[str, dict[str, SearchParam]] = field(default_factory=dict)

    def add(self, resource_type: str, params: Iterable[SearchParam]) -> None:
        table = self.params.setdefault(resource_type, {p.name: p for p in COMMON_PARAMS})
        for param in params:
            table[param.name] = param

    def of(self, resource_type: str) -> dict[str, SearchParam]:
        return self.params.get(resource_type, {p.name: p for p in COMMON_PARAMS})


# ------------------------------------------------------------------------------------------------ element access
def normalise(text: str) -> str:
    """Case- and accent-insensitive form for string search."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


# ------------------------------------------------------------------------------------------------ dates
_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


def date_range(text: str) -> tuple[datetime, datetime] | None:
    """The implicit [start, end) range of a FHIR date/dateTime/instant (``None`` when not a date)."""
    match = _DATE_RE.match(text.strip())
    if not match:
        return None
    g = match.groupdict()
    tz = UTC
    if g["tz"] and g["tz"] != "Z":
        sign = 1 if g["tz"][0] == "+" else -1
        hours, minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
        from datetime import timezone

        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        year = int(g["y"])
        if g["m"] is None:
            start = datetime(year, 1, 1, tzinfo=tz)
            return start, datetime(year + 1, 1, 1, tzinfo=tz)
        month = int(g["m"])
        if g["d"] is None:
            start = datetime(year, month, 1, tzinfo=tz)
            end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
            return start, end
        day = int(g["d"])
        if g["H"] is None:
            start = datetime(year, month, day, tzinfo=tz)
            return start, start + timedelta(days=1)
        seconds = int(g["S"] or 0)
        start = datetime(year, month, day, int(g["H"]), int(g["M"]), seconds, tzinfo=tz)
        if g["S"] is None:
            return start, start + timedelta(minutes=1)
        if g["f"]:
            micro = int((g["f"] + "000000")[:6])
            start = start.replace(microsecond=micro)
            return start, start + timedelta(microseconds=1)
        return start, start + timedelta(seconds=1)
    except ValueError:
        return None


def _value_range(value: Any) -> tuple[datetime, datetime] | None:
    if isinstance(value, str):
        return date_range(value)
    if isinstance(value, dict):  # Period
        start = date_range(value["start"]) if isinstance(value.get("start"), str) else None
        end = date_range(value["end"]) if isinstance(value.get("end"), str) else None
        if start is None and end is None:
            return None
        low = start[0] if start else datetime.min.replace(tzinfo=UTC)
        high = end[1] if end else datetime.max.replace(tzinfo=UTC)
        return low, high
    return None


def _date_matches(prefix: str, wanted: tuple[datetime, datetime], have: tuple[datetime, datetime]) -> bool:
    (ws, we), (hs, he) = wanted, have
    if prefix == "eq":
        return hs >= ws and he <= we
    if prefix == "ne":
        return not (hs >= ws and he <= we)
    if prefix == "gt":
        return he > we
    if prefix == "lt":
        return hs < ws
    if prefix == "ge":
        return he > ws
    if prefix == "le":
        return hs < we
    if prefix == "sa":
        return hs >= we
    if prefix == "eb":
        return he <= ws
    return hs < we and he > ws  # ap: overlap


# ------------------------------------------------------------------------------------------------ matching
def _token_matches(value: Any, system: str | None, code: str | None) -> bool:
    """``system`` None = any system; ``""`` = no system; ``code`` None = any code of the system."""
    candidates = token_pairs(value)
    for have_system, have_code in candidates:
        if system is not None and (have_system or "") != system:
            continue
        if code is not None and (have_code is None or str(have_code) != code):
            continue
        return True
    return False


def split_token(text: str) -> tuple[str | None, str | None]:
    if "|" in text:
        system, _, code = text.partition("|")
        return system, (code or None)
    return None, text


def _string_values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):  # HumanName, Address...
        out: list[str] = []
        for key in (
            "text",
            "family",
            "given",
            "prefix",
            "suffix",
            "line",
            "city",
            "postalCode",
            "country",
            "display",
            "value",
        ):
            item = value.get(key)
            out.extend(item if isinstance(item, list) else [item] if isinstance(item, str) else [])
        return [o for o in out if isinstance(o, str)]
    return []


def _reference_target(reference: str) -> tuple[str, str] | None:
    """``Patient/123`` or ``https://base/Patient/123`` (``/_history/n`` dropped) -> (type, id)."""
    ref = reference.split("/_history/")[0]
    parts = [p for p in ref.split("/") if p]
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2], parts[-1]
    return None


@dataclass(frozen=True)
class Criterion:
    """One parsed search parameter occurrence (values are ORed)."""

    param: SearchParam
    modifier: str | None
    values: tuple[str, ...]
    chain: str | None = None  # chained parameter name on the target
    chain_type: str | None = None  # target type of a chain (``author:Practitioner.identifier``)


@dataclass
class SearchQuery:
    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    includes: list[tuple[str, str, str | None]] = field(default_factory=list)  # (source type, param or "*", target)
    count: int | None = None
    offset: int = 0  # first match of the page (``_offset``, from a ``next`` link)
    total: Total | None = None  # ``_total`` as sent (None: not sent, the server's default applies)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (param name, descending)
    warnings: list[Issue] = field(default_factory=list)
    items: list[tuple[str, str]] = field(default_factory=list)  # the query as sent (to build the page links)


def parse_query(
    resource_type: str,
    items: Sequence[tuple[str, str]],
    registry: SearchRegistry,
    *,
    strict: bool = False,
    max_count: int = 1000,
) -> SearchQuery:
    """Parse the query string of a type-level search (unknown parameters: warning, or HTTP 400 when strict)."""
    query = SearchQuery(resource_type, items=list(items))
    table = registry.of(resource_type)

    def unknown(message: str) -> None:
        if strict:
            raise fail(400, IssueCode.NOT_SUPPORTED, message, error_code="FHIR-SEARCH-PARAM")
        query.warnings.append(Issue(IssueSeverity.WARNING, IssueCode.NOT_SUPPORTED, f"{message} (ignoré)"))

    for key, raw in items:
        if key == "_include":
            parts = raw.split(":")
            if raw == "*":
                query.includes.append((resource_type, "*", None))
            elif len(parts) in (2, 3) and parts[0] == resource_type and (parts[1] in table or parts[1] == "*"):
                query.includes.append((resource_type, parts[1], parts[2] if len(parts) == 3 else None))
            else:
                unknown(f"_include non pris en charge : {raw!r}")
            continue
        if key in ("_count", "_offset"):
            number = _non_negative(key, raw)
            if key == "_count":
                query.count = min(number, max_count)
            else:
                query.offset = number
            continue
        if key == "_total":
            if raw not in ("none", "estimate", "accurate"):
                raise fail(
                    400,
                    IssueCode.INVALID,
                    f"_total invalide : {raw!r} (attendu none, estimate ou accurate)",
                    error_code="FHIR-SEARCH-TOTAL",
                )
            query.total = Total(raw)
            continue
        if key == "_sort":
            for name in raw.split(","):
                descending = name.startswith("-")
                bare = name.lstrip("-")
                if bare in table and table[bare].type is ParamType.DATE:
                    query.sort.append((bare, descending))
                elif bare:
                    unknown(f"_sort non pris en charge : {bare!r}")
            continue
        if key in RESULT_PARAMETERS:
            if key in ("_revinclude", "_contained", "_containedType", "_elements"):
                unknown(f"paramètre {key} non pris en charge")
            continue
        head, _, chain = key.partition(".")
        name, _, modifier = head.partition(":")
        param = table.get(name)
        if param is None:
            unknown(f"paramètre de recherche inconnu pour {resource_type} : {name!r}")
            continue
        if chain:
            if param.type is not ParamType.REFERENCE:
                unknown(f"chaînage impossible sur {name!r} (pas une référence)")
                continue
            chain_type = modifier or None
            targets = (chain_type,) if chain_type else param.targets
            if not targets or not any(chain in registry.of(t) for t in targets):
                unknown(f"paramètre chaîné inconnu : {key!r}")
                continue
            chained = {registry.of(t)[chain].type for t in targets if chain in registry.of(t)}
            if ParamType.DATE in chained:  # judged like a plain date, whether anything matches or not
                _check_dates(key, raw)
            query.criteria.append(Criterion(param, None, tuple(_split_values(raw)), chain, chain_type))
            continue
        if modifier and not _modifier_ok(param, modifier):
            unknown(f"modificateur non pris en charge : {key!r}")
            continue
        if param.type is ParamType.DATE and modifier != "missing":
            _check_dates(key, raw)
        query.criteria.append(Criterion(param, modifier or None, tuple(_split_values(raw))))
    return query


def _check_dates(key: str, raw: str) -> None:
    """Each value of a date criterion is a FHIR date (with an optional comparison prefix): HTTP 400 otherwise."""
    for value in _split_values(raw):
        if date_range(value[2:] if value[:2] in _PREFIXES else value) is None:
            raise fail(
                400, IssueCode.INVALID, f"date de recherche invalide : {key}={value!r}", error_code="FHIR-SEARCH-DATE"
            )


def _non_negative(key: str, raw: str) -> int:
    """``_count`` / ``_offset``: a non-negative integer (HTTP 400 otherwise)."""
    if not (raw.isascii() and raw.isdigit()):
        raise fail(400, IssueCode.INVALID, f"{key} invalide : {raw!r}", error_code="FHIR-SEARCH-COUNT")
    return int(raw)


def _split_values(raw: str) -> list[str]:
    """Comma-separated values (``\\,`` is a literal comma)."""
    parts = re.split(r"(?<!\\),", raw)
    return [p.replace("\\,", ",") for p in parts if p != ""] or [""]


def _modifier_ok(param: SearchParam, modifier: str) -> bool:
    if param.type is ParamType.STRING:
        return modifier in ("exact", "contains")
    if param.type is ParamType.TOKEN:
        return modifier in ("not",)
    if param.type is ParamType.REFERENCE:
        return modifier[:1].isupper() or modifier == "identifier"
    return modifier == "missing"


class Matcher:
    """Evaluates parsed criteria on resources, resolving references for chains and ``_include``."""

    def __init__(self, registry: SearchRegistry, resolve: Resolver) -> None:
        self.registry = registry
        self.resolve = resolve
        self._chain_cache: dict[tuple[str, str, str | None, str], bool] = {}  # one search: the store does not change
        self._settled: dict[Criterion, frozenset[str]] = {}
        self._literals: dict[str, str | None] = {}  # reference -> its "Type/id" (the candidates share their targets)

    def settle(self, criterion: Criterion, targets: Iterable[str]) -> None:
        """A chained criterion already resolved on its target type (``Type/id`` of every matching target, from the
        store's index): a resource then matches when a reference at the parameter's paths is one of them, without
        evaluating the chain again."""
        self._settled[criterion] = frozenset(targets)

    def matches(self, resource: dict[str, Any], criterion: Criterion) -> bool:
        param = criterion.param
        settled = self._settled.get(criterion)
        if settled is not None:
            for path in param.paths:
                for v in values_at(resource, path):
                    ref = v.get("reference") if isinstance(v, dict) else None
                    if isinstance(ref, str) and self._literal(ref) in settled:
                        return True
            return False
        found = (
            values_at(resource, param.paths[0])
            if len(param.paths) == 1
            else [v for path in param.paths for v in values_at(resource, path)]
        )
        return any(self._matches_value(resource, criterion, value, found) for value in criterion.values)

    def _literal(self, reference: str) -> str | None:
        """``Type/id`` of a reference (:func:`_reference_target`), once per reference and search."""
        try:
            return self._literals[reference]
        except KeyError:
            target = _reference_target(reference)
            literal = self._literals[reference] = f"{target[0]}/{target[1]}" if target is not None else None
            return literal

    def _matches_value(
        self, resource: dict[str, Any], criterion: Criterion, raw: str, found: list[Any] | None = None
    ) -> bool:
        param = criterion.param
        if found is None:
            found = [v for path in param.paths for v in values_at(resource, path)]
        if criterion.modifier == "missing":
            return (not found) == (raw == "true")
        if criterion.chain:
            for v in found:
                ref = v.get("reference") if isinstance(v, dict) else None
                if not isinstance(ref, str):
                    continue
                key = (
                    ref if not ref.startswith("#") else f"{id(resource)}{ref}",
                    criterion.chain,
                    criterion.chain_type,
                    raw,
                )
                hit = self._chain_cache.get(key)
                if hit is None:  # many resources point to the same target: evaluate each chain once per search
                    hit = False
                    for target in self._targets(resource, [v], criterion.chain_type or None, param.targets):
                        chained = self.registry.of(target["resourceType"]).get(criterion.chain)
                        if chained is not None and self._matches_value(target, Criterion(chained, None, (raw,)), raw):
                            hit = True
                            break
                    self._chain_cache[key] = hit
                if hit:
                    return True
            return False
        if param.type is ParamType.TOKEN:
            system, code = split_token(raw)
            hit = any(_token_matches(v, system, code) for v in found)
            return (not hit) if criterion.modifier == "not" else hit
        if param.type is ParamType.STRING:
            wanted = normalise(raw)
            texts = [s for v in found for s in _string_values(v)]
            if criterion.modifier == "exact":
                return any(t == raw for t in texts)
            if criterion.modifier == "contains":
                return any(wanted in normalise(t) for t in texts)
            return any(normalise(t).startswith(wanted) for t in texts)
        if param.type is ParamType.DATE:
            prefix = raw[:2] if raw[:2] in _PREFIXES else "eq"
            text = raw[2:] if raw[:2] in _PREFIXES else raw
            wanted_range = date_range(text)
            if wanted_range is None:  # not reached: parse_query refuses such a value, chained or not
                return False
            return any(r is not None and _date_matches(prefix, wanted_range, r) for r in map(_value_range, found))
        if param.type is ParamType.REFERENCE:
            if criterion.modifier == "identifier":
                system, code = split_token(raw)
                return any(
                    isinstance(v, dict) and _token_matches(v.get("identifier") or {}, system, code) for v in found
                )
            wanted_target = _reference_target(raw)
            for v in found:
                ref = v.get("reference") if isinstance(v, dict) else None
                if not isinstance(ref, str):
                    continue
                have = _reference_target(ref)
                if have is None:
                    continue
                if criterion.modifier and have[0] != criterion.modifier:
                    continue
                if wanted_target is not None and have == wanted_target:
                    return True
                if wanted_target is None and have[1] == raw:
                    return True
            return False
        return any(isinstance(v, str) and v == raw for v in found)  # uri

    def _targets(
        self, resource: dict[str, Any], refs: list[Any], only: str | None, allowed: Sequence[str]
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for v in refs:
            ref = v.get("reference") if isinstance(v, dict) else None
            if not isinstance(ref, str):
                continue
            target = self.deref(resource, ref)
            if target is None:
                continue
            rtype = target.get("resourceType")
            if only and rtype != only:
                continue
            if allowed and rtype not in allowed:
                continue
            out.append(target)
        return out

    def deref(self, resource: dict[str, Any], reference: str) -> dict[str, Any] | None:
        """The resource a reference points to: a contained one (``#id``) or one of the store."""
        if reference.startswith("#"):
            for contained in resource.get("contained") or []:
                if isinstance(contained, dict) and contained.get("id") == reference[1:]:
                    return contained
            return None
        target = _reference_target(reference)
        return self.resolve(*target) if target else None

    def included(
        self, matches: Sequence[dict[str, Any]], includes: Sequence[tuple[str, str, str | None]]
    ) -> list[dict[str, Any]]:
        """Resources ``_include`` asks for (each once, never one of the matches)."""
        seen = {(m.get("resourceType"), m.get("id")) for m in matches}
        out: list[dict[str, Any]] = []
        resolved: dict[str, dict[str, Any] | None] = {}  # the matches share their authors, subjects...
        for source_type, name, target_type in includes:
            table = self.registry.of(source_type)
            params = [p for p in table.values() if p.type is ParamType.REFERENCE] if name == "*" else [table[name]]
            for resource in matches:
                if resource.get("resourceType") != source_type:
                    continue
                for param in params:
                    refs = [v for path in param.paths for v in values_at(resource, path)]
                    for v in refs:
                        ref = v.get("reference") if isinstance(v, dict) else None
                        if not isinstance(ref, str) or ref.startswith("#"):
                            continue
                        if ref not in resolved:
                            resolved[ref] = self.deref(resource, ref)  # not contained: the same for every match
                        target = resolved[ref]
                        if target is None or (target_type and target.get("resourceType") != target_type):
                            continue
                        key = (target.get("resourceType"), target.get("id"))
                        if key not in seen:
                            seen.add(key)
                            out.append(target)
        return out


class SearchResult(NamedTuple):
    """One page of a search: its matches, the total (``None`` when not counted: ``_total=none``), whether more
    follow."""

    matches: list[Version]
    total: int | None
    more: bool


def run_search(
    query: SearchQuery,
    candidates: Iterable[Version],
    matcher: Matcher,
    visible: Callable[[Version], bool] | None = None,
    *,
    total: Total = Total.ACCURATE,
) -> SearchResult:
    """The page of matching (and ``visible``) versions: sorted, from ``_offset``, cut at ``_count``, with the
    ``total`` the :class:`Total` mode gives. Unless the count must be exact or a sort needs every match, the
    candidates are read only until the page and one more match are found."""
    page_end = None if query.count is None else query.offset + query.count
    superset = len(candidates) if isinstance(candidates, Sized) else None
    exact = total is Total.ACCURATE or (total is Total.ESTIMATE and superset is None)
    stop_early = not exact and not query.sort and page_end is not None
    hits: list[Version] = []
    stopped = False
    for v in candidates:
        if v.resource is None or not all(matcher.matches(v.resource, c) for c in query.criteria):
            continue
        if visible is not None and not visible(v):
            continue
        hits.append(v)
        if stop_early and page_end is not None and len(hits) > page_end:
            stopped = True
            break
    for name, descending in reversed(query.sort):
        param = matcher.registry.of(query.resource_type)[name]

        def key(v: Version, param: SearchParam = param) -> datetime:
            ranges = [r for path in param.paths for r in map(_value_range, values_at(v.resource, path)) if r]
            return min(r[0] for r in ranges) if ranges else datetime.min.replace(tzinfo=UTC)

        hits.sort(key=key, reverse=descending)
    reported = None if total is Total.NONE else superset if stopped else len(hits)
    if page_end is None:
        return SearchResult(hits[query.offset :], reported, False)
    more = bool(query.count) and len(hits) > page_end  # _count=0: the count only, no page to follow
    return SearchResult(hits[query.offset : page_end], reported, more)


def page_link(base: str, query: SearchQuery, offset: int) -> str:
    """The URL of the page starting at ``offset`` (the query as sent, ``_offset`` replaced)."""
    items = [(k, v) for k, v in query.items if k != "_offset"]
    if offset:
        items.append(("_offset", str(offset)))
    return f"{base}/{query.resource_type}" + (f"?{urlencode(items)}" if items else "")


def searchset(
    base: str,
    query_string: str,
    resource_type: str,
    matches: Sequence[Version],
    included: Sequence[dict[str, Any]],
    total: int | None,
    warnings: Sequence[Issue],
    bundle_id: str,
    now: str,
    *,
    next_url: str | None = None,
) -> dict[str, Any]:
    """A ``searchset`` Bundle: matches (``search.mode = match``), includes, warnings (``outcome``); ``total`` when
    counted, a ``next`` link when more matches follow the page. The entries hold the stored resources themselves,
    not copies (as the includes always did): the Bundle is only rendered, never changed (a copy of each match was
    a sixth of a search of ten notes)."""
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"{base}/{v.resource_type}/{v.id}", "resource": v.resource, "search": {"mode": "match"}}
        for v in matches
        if v.resource is not None
    ]
    entries.extend(
        {"fullUrl": f"{base}/{r.get('resourceType')}/{r.get('id')}", "resource": r, "search": {"mode": "include"}}
        for r in included
    )
    if warnings:
        from harness.fhir.outcome import operation_outcome

        entries.append({"resource": operation_outcome(warnings), "search": {"mode": "outcome"}})
    link = f"{base}/{resource_type}" + (f"?{query_string}" if query_string else "")
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "meta": {"lastUpdated": now},
        "type": "searchset",
    }
    if total is not None:
        bundle["total"] = total  # before link: the element order of the XML form
    bundle["link"] = [{"relation": "self", "url": link}]
    if next_url is not None:
        bundle["link"].append({"relation": "next", "url": next_url})
    if entries:
        bundle["entry"] = entries
    return bundle


def resolver_of(current: Callable[[str, str], Version | None]) -> Resolver:
    """A :data:`Resolver` over a store or unit of work (``current(type, id)``)."""

    def resolve(resource_type: str, resource_id: str) -> dict[str, Any] | None:
        version = current(resource_type, resource_id)
        return version.resource if version is not None and version.resource is not None else None

    return resolve


def describe_criteria(query: SearchQuery) -> dict[str, list[str]]:
    """The criteria as ``{"name[:modifier][.chain]": [values]}`` (journal details)."""
    out: dict[str, list[str]] = {}
    for c in query.criteria:
        key = (
            c.param.name
            + (f":{c.modifier}" if c.modifier else "")
            + (f":{c.chain_type}" if c.chain_type else "")
            + (f".{c.chain}" if c.chain else "")
        )
        out.setdefault(key, []).extend(c.values)
    return out


__all__ = [
    "COMMON_PARAMS",
    "Criterion",
    "Matcher",
    "ParamType",
    "Resolver",
    "SearchParam",
    "SearchQuery",
    "SearchRegistry",
    "SearchResult",
    "Total",
    "date_range",
    "describe_criteria",
    "normalise",
    "page_link",
    "parse_query",
    "resolver_of",
    "run_search",
    "searchset",
    "split_token",
    "values_at",
]
