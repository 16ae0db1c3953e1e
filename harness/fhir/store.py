"""The per-run FHIR resource store: versioned resources, ETags, all-or-nothing units of work.

FHIR R4 (4.0.1) RESTful API §3.1.0.4 (versions): every write makes a new version, ``meta.versionId`` (1, 2, ...)
and ``meta.lastUpdated`` are set by the server, the ``ETag`` is ``W/"<versionId>"`` and an update or delete with
``If-Match`` on another version is refused with HTTP 412. A delete keeps the history (a read answers 410 Gone).

One store per simulator per run (nothing global). Writes go through a :class:`UnitOfWork`: changes are staged,
the simulator commits the journal, then :meth:`UnitOfWork.commit` applies them at once (HTTP 409 if another writer
changed a resource the unit read in between) — a transaction Bundle is all or nothing.

Replicated state (issue 19 item 2, :mod:`harness.core.state`), stream ``<service>.fhir``: a committed unit of work
is one operation carrying every version it writes (resource JSON, id, versionId, lastUpdated — ids and times are
drawn when the unit stages them) and the version each touched resource was read at; :meth:`ResourceStore.apply`
checks those before changing anything (the 409 above), then adds the versions and updates the indexes (creation
order, references, identifiers). With one process the operation applies at once; on a PostgreSQL journal every serving process
applies the same operations in the same order, an interaction (:meth:`ResourceStore.exclusive`) and every read
outside one catch up first, and a unit whose resource another process changed meanwhile gets the 409.
"""

from __future__ import annotations

import bisect
import copy
import functools
import heapq
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from harness.core.state import Deferred, Operation, StateHub
from harness.fhir.outcome import IssueCode, fail

_T = TypeVar("_T")
_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_ETAG_RE = re.compile(r'^\s*(?:W/)?"?([^"]*)"?\s*$')


def valid_id(value: str) -> bool:
    """FHIR ``id`` datatype: 1 to 64 characters among ``A-Z a-z 0-9 - .``."""
    return bool(_ID_RE.match(value))


def etag(version_id: int | str) -> str:
    return f'W/"{version_id}"'


def parse_etag(value: str) -> str:
    """``W/"3"`` (or ``"3"``, ``3``) -> ``"3"``; HTTP 400 when it is not an ETag."""
    match = _ETAG_RE.match(value or "")
    if not match or not match.group(1):
        raise fail(
            400,
            IssueCode.INVALID,
            f'en-tête If-Match invalide : {value!r} (attendu W/"<versionId>")',
            error_code="FHIR-IF-MATCH",
        )
    return match.group(1)


def instant(moment: datetime) -> str:
    """A FHIR ``instant`` (UTC, milliseconds)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_SCALARS = (str, int, float, bool, type(None))


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars: what a resource is), about three times faster than
    :func:`copy.deepcopy` (7 against 19 µs for a note: every read, create and search match copies one); any other
    value is deep-copied as before."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    if isinstance(value, _SCALARS):
        return value
    return copy.deepcopy(value)


@dataclass(frozen=True)
class Version:
    """One version of a resource; ``resource`` is ``None`` for a deletion."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    resource: dict[str, Any] | None

    @property
    def deleted(self) -> bool:
        return self.resource is None

    @property
    def etag(self) -> str:
        return etag(self.version_id)

    @property
    def location(self) -> str:
        return f"{self.resource_type}/{self.id}/_history/{self.version_id}"

    def body(self) -> dict[str, Any]:
        """A copy of the resource (never the stored object)."""
        if self.resource is None:
            raise ValueError("deleted version has no body")
        return json_copy(self.resource)

    @functools.cached_property
    def _derived(self) -> dict[str, Any]:
        return {}

    def derived(self, name: str, compute: Callable[[dict[str, Any]], _T]) -> _T:
        """``compute(resource)``, computed once for this version (issue 18: a version never changes, so what is
        derived from it, its JSON rendering or the INS of a Patient, need not be derived again on every read).
        ``name`` says what is derived (one name, one ``compute``); not for a deletion. A race may compute twice."""
        if self.resource is None:
            raise ValueError("deleted version has no body")
        memo = self._derived
        try:
            return memo[name]  # type: ignore[no-any-return]
        except KeyError:
            value = memo[name] = compute(self.resource)
            return value


Key = tuple[str, str]
Token = tuple[str, str | None, str | None]  # (element, system, code) as a token search value gives them


class ResourceStore:
    """Versioned resources of one simulator for one run (thread-safe), one replica of the stream ``stream`` of
    ``state`` (the simulator's :class:`~harness.core.state.StateHub`; a local one when omitted)."""

    def __init__(
        self,
        clock: Callable[[], datetime | None] | None = None,
        *,
        state: StateHub | None = None,
        stream: str = "fhir",
    ) -> None:
        self._lock = threading.RLock()
        self._versions: dict[Key, list[Version]] = {}
        self._by_type: dict[str, dict[str, int]] = {}  # id -> creation rank, per type (insertion-ordered)
        self._order: dict[str, list[str]] = {}  # ids per type in creation order (append-only: index = rank)
        self._refs: dict[str, dict[str, set[str]]] = {}  # type -> "Target/id" -> ids of resources referencing it
        # (type, "Target/id") -> the creation ranks of _refs[type][target], sorted: made by the first search through
        # that target (among_referencing), then kept up to date by apply
        self._ranked: dict[Key, list[int]] = {}
        # type -> identifier token -> ids (identifier_tokens), one id as a bare str: most values name one resource,
        # and a set each cost 0.7 KB and a GC-tracked object per resource (15 ms more per full collection at 10 k)
        self._tokens: dict[str, dict[Token, str | set[str]]] = {}
        self._clock = clock
        self._replica = (state or StateHub()).replica(stream, self.apply, self._reset, self.capture, self.restore)
        self.shared = self._replica.shared
        self._inside = threading.local()  # depth of this thread's exclusive sections (caught up on entry)

    def _catch_up(self) -> None:
        """Shared: apply the other processes' units first (not inside an interaction, which caught up on entry)."""
        if self.shared and not getattr(self._inside, "depth", 0):
            self._replica.sync()

    def now(self) -> datetime:
        moment = self._clock() if self._clock is not None else None
        return moment or datetime.now(UTC)

    # reads --------------------------------------------------------------------------------------
    def current(self, resource_type: str, resource_id: str) -> Version | None:
        self._catch_up()
        return self._current(resource_type, resource_id)

    def _current(self, resource_type: str, resource_id: str) -> Version | None:
        with self._lock:
            history = self._versions.get((resource_type, resource_id))
            return history[-1] if history else None

    def read(self, resource_type: str, resource_id: str) -> Version:
        """The current version (HTTP 404 unknown, HTTP 410 deleted)."""
        found = self.current(resource_type, resource_id)
        return _readable(found, resource_type, resource_id)

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> Version:
        self._catch_up()
        with self._lock:
            history = list(self._versions.get((resource_type, resource_id), ()))
        for version in history:
            if str(version.version_id) == version_id:
                if version.deleted:
                    raise fail(
                        410, IssueCode.DELETED, f"{resource_type}/{resource_id} version {version_id} : suppression"
                    )
                return version
        raise fail(
            404,
            IssueCode.NOT_FOUND,
            f"{resource_type}/{resource_id}/_history/{version_id} inconnu",
            error_code="FHIR-NOT-FOUND",
        )

    def history(self, resource_type: str, resource_id: str) -> list[Version]:
        self._catch_up()
        with self._lock:
            return list(self._versions.get((resource_type, resource_id), ()))

    def all(self, resource_type: str) -> list[Version]:
        """Current, non-deleted versions of every resource of a type, in creation order."""
        self._catch_up()
        with self._lock:
            ids = list(self._by_type.get(resource_type, ()))
            out = [self._versions[(resource_type, i)][-1] for i in ids]
        return [v for v in out if not v.deleted]

    def scan(self, resource_type: str) -> Iterator[Version]:
        """:meth:`all`, lazily: the ids are taken at once, each version read when the caller gets to it (a search
        that stops at its page does not read the rest)."""
        self._catch_up()
        with self._lock:
            order = self._order.get(resource_type, [])
            known = len(order)  # append-only: the first ``known`` ids never change, nothing to copy
        for rank in range(known):
            version = self._current(resource_type, order[rank])
            if version is not None and not version.deleted:
                yield version

    def among(self, resource_type: str, ids: set[str]) -> Among:
        """Current, non-deleted versions of the given ids (unknown ones skipped), in creation order, read lazily as
        :meth:`scan` does (a search that stops at its page reads only that far): the cost follows ``len(ids)``, not
        the size of the store (a search narrowed by an index). The creation ranks are heaped, not sorted: a page
        of ``k`` costs ``k`` pops of ``log n`` (a full sort of 921 ranks was a quarter of a search)."""
        self._catch_up()
        with self._lock:
            ranks = self._by_type.get(resource_type, {})
            order = self._order.get(resource_type, [])  # append-only: the ranks taken here stay valid
            try:  # the ids of the reference index are all known: no intersection to build (half the cost)
                heap = list(map(ranks.__getitem__, ids))
            except KeyError:
                heap = list(map(ranks.__getitem__, ranks.keys() & ids))
        heapq.heapify(heap)
        return Among(self._current, resource_type, order, heap)

    def referencing(self, resource_type: str, target: str) -> set[str]:
        """Ids of the current resources of ``resource_type`` that reference ``target`` (``Type/id``) anywhere."""
        self._catch_up()
        with self._lock:
            return set(self._refs.get(resource_type, {}).get(target, ()))

    def among_referencing(self, resource_type: str, target: str) -> Among:
        """``among(resource_type, referencing(resource_type, target))`` without their per-call cost (issue 18: the
        copy of the index's ids and their heaped ranks grew with the notes of a person, a third of a search of
        3,000): the creation ranks of the resources referencing ``target`` are kept sorted, and a sorted list is
        already a heap."""
        self._catch_up()
        with self._lock:
            ranked = self._ranked.get((resource_type, target))
            if ranked is None:
                ranks = self._by_type.get(resource_type, {})
                ids = self._refs.get(resource_type, {}).get(target, ())
                ranked = self._ranked[(resource_type, target)] = sorted(ranks[i] for i in ids if i in ranks)
            return Among(self._current, resource_type, self._order.get(resource_type, []), list(ranked))

    def identified(self, resource_type: str, token: Token) -> set[str]:
        """Ids of the current resources of ``resource_type`` a token criterion on an element of
        :data:`IDENTIFIER_ELEMENTS` may match for one value, ``token`` = ``(element, system, code)`` as the search
        value gives them (``system|code``, ``|code`` -> ``""``, ``code`` -> ``None``, ``system|`` -> ``None``): a
        superset, whatever the size of the store — a value is looked up by its code alone (the system is left to
        the matcher), ``system|`` by its system (:func:`identifier_tokens`)."""
        element, system, code = token
        key = (element, None, code) if code is not None else (element, system, None)
        self._catch_up()
        with self._lock:
            ids = self._tokens.get(resource_type, {}).get(key)
        return set() if ids is None else {ids} if isinstance(ids, str) else set(ids)

    def count(self, resource_type: str | None = None) -> int:
        self._catch_up()
        with self._lock:
            types = [resource_type] if resource_type else list(self._by_type)
            return sum(1 for t in types for i in self._by_type.get(t, ()) if not self._versions[(t, i)][-1].deleted)

    # writes -------------------------------------------------------------------------------------
    def begin(self) -> UnitOfWork:
        return UnitOfWork(self)

    @contextmanager
    def exclusive(self) -> Iterator[UnitOfWork]:
        """A unit of work inside the store's critical section (the one the server holds while it processes an
        interaction, journals it and applies it): a simulator's own writes (seeding, a partner's note) and their
        journal entry cannot interleave with a DUI's request. The caller commits. Shared, it first catches up with
        the other processes (once: the reads inside do not query the log again)."""
        with self._replica.locked(sync=self.shared), self._lock:  # always the replica's lock first, then the store's
            self._inside.depth = getattr(self._inside, "depth", 0) + 1
            try:
                yield self.begin()
            finally:
                self._inside.depth -= 1

    def _commit(self, staged: dict[Key, list[Version]], expected: dict[Key, int]) -> None:
        """One operation for a unit of work: the versions as they are locally, as JSON when shared."""
        if not self.shared:  # never serialised
            self._replica.do({"op": "commit", "staged": staged, "expected": expected})
            return
        self._replica.do(
            {
                "op": "commit",
                "versions": [
                    [v.resource_type, v.id, v.version_id, v.last_updated.isoformat(), v.resource]
                    for versions in staged.values()
                    for v in versions
                ],
                "expected": [[rtype, rid, version_id] for (rtype, rid), version_id in expected.items()],
            }
        )

    def apply(self, op: Operation) -> None:
        """Apply one committed unit of work (deterministic; HTTP 409 before any change when a resource it read has
        another version now)."""
        if "staged" in op:
            staged: dict[Key, list[Version]] = op["staged"]
            expected: dict[Key, int] = op["expected"]
        else:
            staged = {}
            for rtype, rid, version_id, last_updated, resource in op["versions"]:
                version = Version(rtype, rid, version_id, datetime.fromisoformat(last_updated), resource)
                staged.setdefault((rtype, rid), []).append(version)
            expected = {(rtype, rid): version_id for rtype, rid, version_id in op["expected"]}
        with self._lock:
            for key, version_id in expected.items():
                history = self._versions.get(key)
                now_at = history[-1].version_id if history else 0
                if now_at != version_id:
                    raise fail(
                        409,
                        IssueCode.CONFLICT,
                        f"{key[0]}/{key[1]} modifié par une autre requête pendant le traitement (version {now_at})",
                        error_code="FHIR-CONFLICT",
                    )
            for key, versions in staged.items():
                history = self._versions.setdefault(key, [])
                before = history[-1].resource if history else None
                history.extend(versions)
                ranks = self._by_type.setdefault(key[0], {})
                if key[1] not in ranks:
                    ranks[key[1]] = len(ranks)
                    self._order.setdefault(key[0], []).append(key[1])
                index = self._refs.setdefault(key[0], {})
                targets = reference_targets(before), reference_targets(versions[-1].resource)
                for target in targets[0]:
                    index.get(target, set()).discard(key[1])
                for target in targets[1]:
                    index.setdefault(target, set()).add(key[1])
                for target in targets[0] | targets[1]:
                    self._rerank(key, target, ranks[key[1]], key[1] in index.get(target, ()))
                self._index_tokens(key, before, versions[-1].resource)

    def _index_tokens(self, key: Key, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        """The identifier index as it now is for ``key`` (its resource was ``before``, is ``after``)."""
        old, new = identifier_tokens(before), identifier_tokens(after)
        if old == new:  # no identifier, or the same ones (most updates)
            return
        index, rid = self._tokens.setdefault(key[0], {}), key[1]
        for token in old - new:
            ids = index.get(token)
            if ids == rid:
                del index[token]
            elif isinstance(ids, set):
                ids.discard(rid)
                if len(ids) == 1:
                    index[token] = ids.pop()
        for token in new - old:
            ids = index.get(token)
            if ids is None:
                index[token] = rid
            elif isinstance(ids, set):
                ids.add(rid)
            elif ids != rid:
                index[token] = {ids, rid}

    def _rerank(self, key: Key, target: str, rank: int, referencing: bool) -> None:
        """Keep the sorted ranks of ``target`` (when a search made them) as the index now is for ``key``."""
        ranked = self._ranked.get((key[0], target))
        if ranked is None:
            return
        at = bisect.bisect_left(ranked, rank)
        listed = at < len(ranked) and ranked[at] == rank
        if referencing and not listed:
            ranked.insert(at, rank)  # a new resource: at the end
        elif listed and not referencing:
            del ranked[at]

    def _reset(self) -> None:
        with self._lock:
            self._versions, self._by_type, self._order, self._refs, self._ranked = {}, {}, {}, {}, {}
            self._tokens = {}

    def snapshot(self) -> dict[str, Any]:
        """The whole store as JSON (harness.core.state snapshot): per type, in creation order, each resource's
        history ``[versionId, lastUpdated, resource or None]``; and the reference index (``{type: {target: ids}}``,
        kept rather than walked again through every resource on restore)."""
        return self.capture().build()

    def capture(self) -> Deferred:
        """:meth:`snapshot` in two steps: under the store's lock, a copy of its containers (a :class:`Version` is
        frozen and its resource never changed once stored, so their references suffice); the JSON built by
        :meth:`Deferred.build`, which :class:`~harness.core.state.Replica` runs outside its locks."""
        with self._lock:
            resources = [
                (rtype, [(rid, list(self._versions[(rtype, rid)])) for rid in order])
                for rtype, order in self._order.items()
            ]
            refs = [
                (rtype, [(target, list(ids)) for target, ids in index.items()]) for rtype, index in self._refs.items()
            ]

        def build() -> dict[str, Any]:
            return {
                "resources": {
                    rtype: [
                        [rid, [[v.version_id, v.last_updated.isoformat(), v.resource] for v in versions]]
                        for rid, versions in history
                    ]
                    for rtype, history in resources
                },
                "refs": {rtype: {target: sorted(ids) for target, ids in index} for rtype, index in refs},
            }

        return Deferred(build)

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the whole store by a :meth:`snapshot`. The identifier index is not in it: it is made again from
        the current versions (a few top-level elements of each, not a walk of the whole resource as the references
        would take), so a snapshot keeps its form, taken before the index existed or after."""
        with self._lock:
            self._reset()
            for rtype, resources in state["resources"].items():
                ranks, order = self._by_type.setdefault(rtype, {}), self._order.setdefault(rtype, [])
                for rid, history in resources:
                    versions = [Version(rtype, rid, int(n), datetime.fromisoformat(at), res) for n, at, res in history]
                    self._versions[(rtype, rid)] = versions
                    ranks[rid] = len(ranks)
                    order.append(rid)
                    self._index_tokens((rtype, rid), None, versions[-1].resource)
            self._refs = {
                rtype: {target: set(ids) for target, ids in index.items()} for rtype, index in state["refs"].items()
            }


class Among:
    """:meth:`ResourceStore.among`: ids in creation order, each current version read when the caller gets to it
    (deleted ones skipped); ``len`` is the number of ids, an upper bound of the versions iterated. ``ranks`` is a
    heap (:mod:`heapq`) of creation ranks, indexes into ``order`` (the type's ids in creation order)."""

    def __init__(
        self, read: Callable[[str, str], Version | None], resource_type: str, order: list[str], ranks: list[int]
    ) -> None:
        self.read, self.resource_type, self.order, self.ranks = read, resource_type, order, ranks

    def __len__(self) -> int:
        return len(self.ranks)

    def __iter__(self) -> Iterator[Version]:
        heap = list(self.ranks)  # each iteration pops its own copy, in creation order
        while heap:
            version = self.read(self.resource_type, self.order[heapq.heappop(heap)])
            if version is not None and not version.deleted:
                yield version


def reference_targets(resource: Any) -> set[str]:
    """Every ``Type/id`` a resource references (absolute URLs and ``/_history`` reduced; contained ones ignored)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            ref = value.get("reference")
            if isinstance(ref, str) and not ref.startswith("#"):
                parts = [p for p in ref.split("/_history/")[0].split("/") if p]
                if len(parts) >= 2:
                    found.add(f"{parts[-2]}/{parts[-1]}")
            for key, item in value.items():
                if key != "contained":
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(resource)
    return found


IDENTIFIER_ELEMENTS = frozenset({"identifier", "groupIdentifier", "masterIdentifier", "focus.identifier"})
"""The elements of type ``Identifier`` the store indexes (dotted paths, as search parameters give them), by their
token values (:func:`token_pairs`).

FHIR R4 search §3.1.1.4.10 (token): on an ``Identifier``, ``[system]|[code]`` matches ``Identifier.system`` and
``Identifier.value``, ``|[code]`` a value without a system, ``[code]`` a value in any system, ``[system]|`` any
value of the system. These elements are the paths of the identifier search parameters the simulators declare:
``identifier`` (``Resource.identifier``: Patient-, Organization-, Device-, RelatedPerson-, PractitionerRole-identifier;
with ``DocumentReference.masterIdentifier``: clinical-identifier), and the e-Prescription's ``group-identifier``
(``MedicationRequest.groupIdentifier``, the EPU) and ``focus-identifier`` (``Task.focus.identifier``, the EPU a DUI's
confirmation names: a logical reference, R4 Reference.identifier). A search on one of them is answered by the index
(:meth:`ResourceStore.identified`) instead of a pass over every resource of the type (issue 18). Other token
parameters (``status``, ``type``: a few codes shared by most resources) are not indexed: they narrow little."""


def token_pairs(value: Any) -> list[tuple[Any, Any]]:
    """The ``(system, code)`` pairs a token search compares with one value of an element (FHIR R4 search
    §3.1.1.4.10): the codings of a ``CodeableConcept``, the system and value of an ``Identifier`` (or
    ``ContactPoint``), the system and code of a ``Coding``; a ``code``, ``boolean`` or other scalar has no system.
    One definition for the search (:mod:`harness.fhir.search`) and the store's identifier index."""
    candidates: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        if "coding" in value:
            candidates.extend(
                (c.get("system"), c.get("code")) for c in value.get("coding") or [] if isinstance(c, dict)
            )
        if "value" in value or "system" in value:  # Identifier (or ContactPoint)
            candidates.append((value.get("system"), value.get("value") if "value" in value else value.get("code")))
        if "code" in value and "coding" not in value:  # Coding
            candidates.append((value.get("system"), value.get("code")))
    elif isinstance(value, bool):
        candidates.append((None, "true" if value else "false"))
    elif isinstance(value, str | int | float):
        candidates.append((None, str(value)))
    return candidates


def identifier_tokens(resource: dict[str, Any] | None) -> set[Token]:
    """The keys of the identifier index for ``resource``, ``(element, system, code)``: ``(element, None, code)``
    for each code (value) of an element of :data:`IDENTIFIER_ELEMENTS`, whatever its system, which a search of
    ``system|code``, ``|code`` or ``code`` looks up (:meth:`ResourceStore.identified`); ``(element, system,
    None)`` for each system (``""`` for none; not for a system that is no string, which equals no searched one),
    which ``system|`` looks up. Every resource a token value matches is under its key (the pairs are the
    matcher's, :func:`token_pairs`); keying by the code alone keeps one key per value, not two."""
    found: set[Token] = set()
    if resource is None:
        return found
    for element in IDENTIFIER_ELEMENTS:
        for item in values_at(resource, element):
            for have_system, have_code in token_pairs(item):
                system = have_system or ""
                code = None if have_code is None else str(have_code)
                if code is not None:
                    found.add((element, None, code))
                if isinstance(system, str):
                    found.add((element, system, None))
    return found


def values_at(resource: Any, path: str) -> list[Any]:
    """Values at a dotted path, lists flattened (``name.given`` -> every given name): what a search parameter's
    path reads (:mod:`harness.fhir.search`) and what the identifier index keys (``focus.identifier`` -> the
    identifier of the Reference(s) in focus)."""
    current: list[Any] = [resource]
    for step in path.split("."):
        nxt: list[Any] = []
        for item in current:
            if isinstance(item, dict) and step in item:
                value = item[step]
                nxt.extend(value if isinstance(value, list) else [value])
        current = nxt
    return current


def _readable(found: Version | None, resource_type: str, resource_id: str) -> Version:
    if found is None:
        raise fail(404, IssueCode.NOT_FOUND, f"{resource_type}/{resource_id} inconnu", error_code="FHIR-NOT-FOUND")
    if found.deleted:
        raise fail(410, IssueCode.DELETED, f"{resource_type}/{resource_id} a été supprimé", error_code="FHIR-DELETED")
    return found


class UnitOfWork:
    """Staged writes on a :class:`ResourceStore`; reads see the staged state. Nothing is visible before commit.

    A child unit (:meth:`child`) reads through its parent and is merged into it with :meth:`absorb` (the entries
    of a batch: each one succeeds or fails alone)."""

    def __init__(self, store: ResourceStore, parent: UnitOfWork | None = None) -> None:
        self.store = store
        self.parent = parent
        self._staged: dict[Key, list[Version]] = {}
        self._expected: dict[Key, int] = {}  # store version each touched key was read at (conflict check)
        self._fresh: set[Key] = set()  # keys of the resources created here under a server-assigned id
        self._committed = False
        self.now = parent.now if parent is not None else store.now()

    def child(self) -> UnitOfWork:
        return UnitOfWork(self.store, self)

    def absorb(self, child: UnitOfWork) -> None:
        for key, versions in child._staged.items():
            self._staged.setdefault(key, []).extend(versions)
        for key, version_id in child._expected.items():
            self._expected.setdefault(key, version_id)
        self._fresh |= child._fresh

    def current(self, resource_type: str, resource_id: str) -> Version | None:
        staged = self._staged.get((resource_type, resource_id))
        if staged:
            return staged[-1]
        if self.parent is not None:
            return self.parent.current(resource_type, resource_id)
        return self.store.current(resource_type, resource_id)

    def read(self, resource_type: str, resource_id: str) -> Version:
        return _readable(self.current(resource_type, resource_id), resource_type, resource_id)

    def exists(self, resource_type: str, resource_id: str) -> bool:
        found = self.current(resource_type, resource_id)
        return found is not None and not found.deleted

    def all(self, resource_type: str) -> list[Version]:
        base = {
            v.id: v
            for v in (self.parent.all(resource_type) if self.parent is not None else self.store.all(resource_type))
        }
        for (rtype, rid), versions in self._staged.items():
            if rtype != resource_type:
                continue
            if versions[-1].deleted:
                base.pop(rid, None)
            else:
                base[rid] = versions[-1]
        return list(base.values())

    def scan(self, resource_type: str) -> Iterator[Version]:
        """:meth:`all`, lazily when nothing of the type is staged here or in a parent (see
        :meth:`ResourceStore.scan`)."""
        if resource_type in self.staged_types():
            return iter(self.all(resource_type))
        return self.store.scan(resource_type)

    def among(self, resource_type: str, ids: set[str]) -> Among | list[Version]:
        """:meth:`ResourceStore.among` seen through this unit (staged writes of the type come last, as in
        :meth:`all`; then a list)."""
        base = (
            self.parent.among(resource_type, ids) if self.parent is not None else self.store.among(resource_type, ids)
        )
        staged = {
            rid: versions[-1]
            for (rtype, rid), versions in self._staged.items()
            if rtype == resource_type and rid in ids
        }
        if not staged:
            return base
        out = {v.id: v for v in base}
        for rid, version in staged.items():
            if version.deleted:
                out.pop(rid, None)
            else:
                out[rid] = version
        return list(out.values())

    def among_referencing(self, resource_type: str, target: str) -> Among | list[Version]:
        """:meth:`among` of the ids referencing ``target`` in the store's index (:meth:`ResourceStore.referencing`),
        through :meth:`ResourceStore.among_referencing` when nothing of the type is staged here or in a parent."""
        if resource_type in self.staged_types():
            return self.among(resource_type, self.store.referencing(resource_type, target))
        return self.store.among_referencing(resource_type, target)

    def among_identified(self, resource_type: str, token: Token) -> Among | list[Version]:
        """:meth:`among` of the ids the store's identifier index gives for ``token`` (:meth:`ResourceStore.identified`:
        a superset of the resources it names, the caller still compares the identifiers), or every resource of the
        type (:meth:`all`) when writes of it are staged here or in a parent: the index does not see them yet."""
        if resource_type in self.staged_types():
            return self.all(resource_type)
        return self.among(resource_type, self.store.identified(resource_type, token))

    def _touch(self, key: Key) -> int:
        """Remember the store version of ``key`` (conflict check) and return the version the next write follows."""
        if key not in self._expected:
            base = self.store.current(*key)
            self._expected[key] = base.version_id if base else 0
        found = self.current(*key)
        return found.version_id if found is not None else 0

    def _stage(self, resource_type: str, resource_id: str, resource: dict[str, Any] | None) -> Version:
        key = (resource_type, resource_id)
        version_id = self._touch(key) + 1
        body = None
        if resource is not None:
            body = json_copy(resource)
            body["resourceType"] = resource_type
            body["id"] = resource_id
            meta = dict(body.get("meta") or {})
            meta["versionId"] = str(version_id)
            meta["lastUpdated"] = instant(self.now)
            body["meta"] = meta
        version = Version(resource_type, resource_id, version_id, self.now, body)
        self._staged.setdefault(key, []).append(version)
        return version

    def create(self, resource_type: str, resource: dict[str, Any], *, resource_id: str | None = None) -> Version:
        """A new resource with a server-assigned id (the ``id`` sent by the client is ignored, FHIR §3.1.0.5)."""
        new_id = resource_id or str(uuid.uuid4())
        version = self._stage(resource_type, new_id, resource)
        if resource_id is None:
            self._fresh.add((resource_type, new_id))
        return version

    def update(
        self, resource_type: str, resource_id: str, resource: dict[str, Any], *, if_match: str | None = None
    ) -> tuple[Version, bool]:
        """Update (or create with the client's id); ``if_match`` is the bare version id. Returns (version, created)."""
        found = self.current(resource_type, resource_id)
        self._touch((resource_type, resource_id))
        if if_match is not None and (found is None or found.deleted or str(found.version_id) != if_match):
            at = "inexistante" if found is None or found.deleted else f"version courante {found.version_id}"
            raise fail(
                412,
                IssueCode.CONFLICT,
                f'If-Match W/"{if_match}" ne correspond pas à {resource_type}/{resource_id} ({at}) : '
                "la ressource a changé depuis sa lecture",
                error_code="FHIR-PRECONDITION",
            )
        created = found is None or found.deleted
        return self._stage(resource_type, resource_id, resource), created

    def delete(self, resource_type: str, resource_id: str, *, if_match: str | None = None) -> Version | None:
        """Delete (``None`` when nothing to delete: FHIR answers 200/204 all the same)."""
        found = self.current(resource_type, resource_id)
        self._touch((resource_type, resource_id))
        if if_match is not None and (found is None or found.deleted or str(found.version_id) != if_match):
            raise fail(
                412,
                IssueCode.CONFLICT,
                f'If-Match W/"{if_match}" ne correspond pas à {resource_type}/{resource_id}',
                error_code="FHIR-PRECONDITION",
            )
        if found is None or found.deleted:
            return None
        return self._stage(resource_type, resource_id, None)

    def staged_types(self) -> set[str]:
        """Types with staged writes here or in a parent unit (an index of the store does not see them)."""
        own = {rtype for rtype, _ in self._staged}
        return own | (self.parent.staged_types() if self.parent is not None else set())

    @property
    def only_created(self) -> bool:
        """Whether every write staged here creates a resource under an id the server has just drawn (and no write is
        staged at all otherwise): no other unit can read, change or conflict with these resources before this one
        is committed (the id is known to nobody else)."""
        return bool(self._staged) and self._staged.keys() <= self._fresh

    @property
    def changes(self) -> list[Version]:
        return [v for versions in self._staged.values() for v in versions]

    def commit(self) -> None:
        if self._committed:
            raise RuntimeError("unit of work already committed")
        self.store._commit(self._staged, self._expected)  # noqa: SLF001 - the store's own commit path
        self._committed = True
