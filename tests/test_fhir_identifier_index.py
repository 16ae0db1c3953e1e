"""The store's identifier index (harness.fhir.store ``IDENTIFIER_ELEMENTS``, issue 18): a token search on
``identifier`` / ``group-identifier`` reads the resources the index names, not every resource of the type, and
answers exactly what the scan answers, for every form of a token value (FHIR R4 search §3.1.1.4.10) and after
updates, deletions, transactions, a restore and a replay of the operations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
from starlette.testclient import TestClient

from harness.fhir import FhirHooks, FhirServer, Interaction, Limits, ResourceStore, ResourceType
from harness.fhir.search import Matcher, ParamType, SearchParam, Total, parse_query, resolver_of, run_search
from harness.fhir.store import Among, Version, identifier_tokens

S1, S2 = "urn:oid:1.2.250.1.213.1.4.8", "https://sys.test/two"
EPU = "urn:oid:1.2.250.1.215.500.1.1"
ALL = frozenset(Interaction) - {Interaction.CAPABILITIES, Interaction.INVALID}
JSON = {"content-type": "application/fhir+json"}


class CountingStore(ResourceStore):
    """A store that counts the versions a search reads through it (a scan, an index's ids, ``all``)."""

    def __init__(self) -> None:
        super().__init__()
        self.visited = 0

    def _counted(self, read: Callable[[str, str], Version | None]) -> Callable[[str, str], Version | None]:
        def counted(resource_type: str, resource_id: str) -> Version | None:
            self.visited += 1
            return read(resource_type, resource_id)

        return counted

    def scan(self, resource_type: str) -> Iterator[Version]:
        for version in super().scan(resource_type):
            self.visited += 1
            yield version

    def all(self, resource_type: str) -> list[Version]:
        found = super().all(resource_type)
        self.visited += len(found)
        return found

    def among(self, resource_type: str, ids: set[str]) -> Among:
        found = super().among(resource_type, ids)
        return Among(self._counted(found.read), found.resource_type, found.order, found.ranks)

    def among_referencing(self, resource_type: str, target: str) -> Among:
        found = super().among_referencing(resource_type, target)
        return Among(self._counted(found.read), found.resource_type, found.order, found.ranks)


def make_server(store: ResourceStore) -> FhirServer:
    return FhirServer(
        resources=[
            ResourceType("Patient", ALL, (SearchParam("identifier", ParamType.TOKEN, ("identifier",)),)),
            ResourceType(
                "MedicationRequest",
                ALL,
                (
                    SearchParam("group-identifier", ParamType.TOKEN, ("groupIdentifier",)),
                    SearchParam("status", ParamType.TOKEN, ("status",)),
                    SearchParam("subject", ParamType.REFERENCE, ("subject",), ("Patient",)),
                ),
            ),
            ResourceType(
                "DocumentReference",
                ALL,
                (
                    SearchParam("identifier", ParamType.TOKEN, ("masterIdentifier", "identifier")),
                    SearchParam("subject", ParamType.REFERENCE, ("subject",), ("Patient",)),
                ),
            ),
            ResourceType(  # the e-Prescription's confirmations: the EPU in a logical reference
                "Task",
                ALL,
                (
                    SearchParam("focus-identifier", ParamType.TOKEN, ("focus.identifier",)),
                    SearchParam("status", ParamType.TOKEN, ("status",)),
                ),
            ),
        ],
        store=store,
        hooks=FhirHooks(),
        record=lambda exchanges: None,
        base_url=lambda: "https://test/fhir",
        limits=Limits(max_body_bytes=256 * 1024, max_bundle_entries=50),
    )


def identifiers(n: int) -> Any:
    """Every shape an ``identifier`` may take in a store (valid or not): the index must find what the matcher does."""
    shapes: list[Any] = [
        [{"system": S1, "value": f"v{n % 7}"}, {"system": S2, "value": f"w{n}"}],
        [{"value": f"v{n % 7}"}],  # no system
        {"system": S1, "value": f"v{n % 7}"},  # one, not a list
        [{"system": S1}],  # a system, no value
        [{"system": "", "value": f"v{n % 7}"}],  # an empty system: |value
        None,  # no identifier
        [{"system": S2, "value": n % 7}],  # a number
        [{"system": 5, "value": f"v{n % 7}"}, {"system": S1, "value": ""}],  # a system that is no string, empty value
        [{"coding": [{"system": S1, "code": f"v{n % 7}"}]}, "v1", True],  # not Identifiers at all
        [{"type": {"coding": [{"code": "NI"}]}, "system": S2, "value": f"v{n % 7}", "use": "official"}],
    ]
    return shapes[n % len(shapes)]


def seed(store: ResourceStore, n: int = 300) -> None:
    with store.exclusive() as uow:
        for i in range(n):
            patient: dict[str, Any] = {"resourceType": "Patient"}
            if identifiers(i) is not None:
                patient["identifier"] = identifiers(i)
            uow.update("Patient", f"p{i}", patient)
            for line in range(1 + i % 3):  # an e-Prescription: 1 to 3 lines under one EPU
                uow.update(
                    "MedicationRequest",
                    f"m{i}-{line}",
                    {
                        "resourceType": "MedicationRequest",
                        "status": "active" if line else "stopped",
                        "groupIdentifier": {"system": EPU, "value": f"E{i % 100}"},
                        "subject": {"reference": f"Patient/p{i % 7}"},
                    },
                )
            document: dict[str, Any] = {"resourceType": "DocumentReference", "subject": {"reference": f"Patient/p{i}"}}
            if i % 2:
                document["masterIdentifier"] = {"system": S1, "value": f"d{i % 20}"}
            if i % 3:
                document["identifier"] = [{"system": S2, "value": f"d{i % 20}"}]
            uow.update("DocumentReference", f"d{i}", document)
            uow.update(
                "Task", f"t{i}", {"resourceType": "Task", "status": "completed" if i % 2 else "failed", **focus(i)}
            )
        uow.commit()


def focus(n: int) -> dict[str, Any]:
    """The shapes of ``Task.focus`` (a Reference, its ``identifier`` the EPU), valid or not."""
    epu = f"E{n % 100}"
    shapes: list[dict[str, Any]] = [
        {"focus": {"identifier": {"system": EPU, "value": epu}}},
        {"focus": {"reference": f"MedicationRequest/m{n}-0", "identifier": {"system": EPU, "value": epu}}},
        {"focus": {"reference": f"MedicationRequest/m{n}-0"}},  # no identifier
        {"focus": {"identifier": {"value": epu}}},  # no system
        {"focus": [{"identifier": [{"system": EPU, "value": epu}, {"system": S1, "value": "x"}]}]},  # lists
        {"focus": {"identifier": {"system": EPU}}},  # a system, no value
        {"focus": None},
        {},
    ]
    return shapes[n % len(shapes)]


QUERIES = [
    ("Patient", f"identifier={S1}|v3"),
    ("Patient", "identifier=v3"),
    ("Patient", "identifier=|v3"),
    ("Patient", f"identifier={S1}|"),
    ("Patient", "identifier=|"),
    ("Patient", "identifier="),
    ("Patient", f"identifier={S2}|w21"),
    ("Patient", f"identifier={S2}|6"),
    ("Patient", "identifier=6"),
    ("Patient", "identifier=5|v3"),
    ("Patient", "identifier=true"),
    ("Patient", "identifier=v1"),
    ("Patient", f"identifier={S1}|v3,{S2}|w21,|v9"),  # OR
    ("Patient", f"identifier={S1}|v3&identifier=v3"),  # AND
    ("Patient", f"identifier={S1}|v3&identifier={S2}|w20"),  # AND, nothing has both
    ("Patient", f"identifier:not={S1}|v3"),
    ("Patient", "identifier:missing=true"),  # not supported on a token: ignored with a warning
    ("Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|NI|v3"),
    ("Patient", "identifier=nothing"),
    ("MedicationRequest", f"group-identifier={EPU}|E7"),
    ("MedicationRequest", "group-identifier=E7"),
    ("MedicationRequest", "group-identifier=|E7"),
    ("MedicationRequest", f"group-identifier={EPU}|E7,{EPU}|E8&status=active"),
    ("MedicationRequest", f"group-identifier={EPU}|E7&subject=Patient/p2"),  # with the reference index
    ("MedicationRequest", f"group-identifier={EPU}|E7&subject=Patient/p3"),
    ("MedicationRequest", f"group-identifier:not={EPU}|E7&subject=Patient/p3"),
    ("DocumentReference", f"identifier={S1}|d3"),  # masterIdentifier
    ("DocumentReference", f"identifier={S2}|d3"),  # identifier
    ("DocumentReference", "identifier=d3"),  # both
    ("DocumentReference", f"subject.identifier={S1}|v3"),  # chained: the Patients by the index
    ("DocumentReference", "subject.identifier=|v3,v9"),
    ("Patient", "_id=p3"),  # _id: the ids themselves
    ("Patient", "_id=p3,p5,nope"),
    ("Patient", "_id=p3&_id=p5"),  # AND: nothing
    ("Patient", f"_id=p3,p4&identifier={S1}|v3"),  # with the identifier index
    ("Patient", "_id=|p3"),
    ("Patient", f"_id={S1}|p3"),  # an id has no system
    ("Patient", f"_id={S1}|"),  # no code: the scan
    ("Patient", "_id:not=p3"),
    ("MedicationRequest", "_id=m3-0,m3-1,m4-0&subject=Patient/p3"),  # with the reference index
    ("DocumentReference", "subject._id=p3,p4"),  # chained
    ("Task", f"focus-identifier={EPU}|E7"),  # Task.focus.identifier
    ("Task", f"focus-identifier={EPU}|E8"),
    ("Task", "focus-identifier=E1"),
    ("Task", "focus-identifier=|E3"),
    ("Task", f"focus-identifier={EPU}|"),
    ("Task", f"focus-identifier={S1}|x"),
    ("Task", f"focus-identifier={EPU}|E7,{EPU}|E8&status=completed"),
    ("Task", f"focus-identifier:not={EPU}|E7"),
]


def expected(server: FhirServer, resource_type: str, query_string: str) -> list[str]:
    """The scan: every resource of the type judged by the matcher (chains evaluated on each)."""
    query = parse_query(resource_type, parse_qsl(query_string, keep_blank_values=True), server.registry)
    matcher = Matcher(server.registry, resolver_of(server.store.current))
    return [v.id for v in run_search(query, server.store.all(resource_type), matcher, total=Total.ACCURATE).matches]


def searched(client: TestClient, resource_type: str, query_string: str) -> tuple[list[str], int | None]:
    response = client.get(f"/{resource_type}?{query_string}&_count=1000&_total=accurate")
    assert response.status_code == 200, response.text
    bundle = response.json()
    ids = [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
    return ids, bundle.get("total")


@pytest.fixture(scope="module")
def seeded() -> Iterator[tuple[TestClient, FhirServer]]:
    server = make_server(CountingStore())
    seed(server.store)
    with TestClient(server.app()) as client:
        yield client, server


@pytest.mark.parametrize(("resource_type", "query_string"), QUERIES)
def test_an_indexed_search_answers_what_the_scan_answers(seeded, resource_type: str, query_string: str) -> None:  # noqa: ANN001
    client, server = seeded
    want = expected(server, resource_type, query_string)
    assert searched(client, resource_type, query_string) == (want, len(want))


def patients(server: FhirServer, query_string: str) -> list[str]:
    """The ids a Patient search finds, then how many versions it read."""
    store = server.store
    assert isinstance(store, CountingStore)
    before = store.visited
    with TestClient(server.app()) as client:
        ids, total = searched(client, "Patient", query_string)
    assert total == len(ids)
    return [*ids, f"visited {store.visited - before}"]


HAND = {
    "a": [{"system": S1, "value": "x"}],
    "b": [{"value": "x"}],
    "c": [{"system": S2, "value": "x"}, {"system": S1, "value": "y"}],
    "d": {"system": S1, "value": "x"},
    "e": [{"system": S1}],
    "f": None,
}


@pytest.fixture
def hand() -> FhirServer:
    server = make_server(CountingStore())
    with server.store.exclusive() as uow:
        for rid, identifier in HAND.items():
            uow.update(
                "Patient", rid, {"resourceType": "Patient", **({"identifier": identifier} if identifier else {})}
            )
        uow.commit()
    return server


def test_each_form_finds_the_patients_worked_out_by_hand_reading_only_them(hand: FhirServer) -> None:
    """The differential above compares with the matcher; here its answers on six patients, worked out from FHIR R4
    §3.1.1.4.10, so that both cannot be wrong together — and the versions read: the index's ids only (a value is
    looked up by its code, whatever its system: ``S1|x`` reads the four with a value ``x``), against every patient
    for a form the index does not answer (``:not``)."""
    assert patients(hand, f"identifier={S1}|x") == ["a", "d", "visited 4"]
    assert patients(hand, "identifier=x") == ["a", "b", "c", "d", "visited 4"]
    assert patients(hand, "identifier=|x") == ["b", "visited 4"]
    assert patients(hand, f"identifier={S1}|") == ["a", "c", "d", "e", "visited 4"]
    assert patients(hand, "identifier=|") == ["b", "visited 1"]
    assert patients(hand, f"identifier={S1}|x,{S2}|x") == ["a", "c", "d", "visited 4"]
    assert patients(hand, f"identifier={S1}|y&identifier=x") == ["c", "visited 1"]
    assert patients(hand, f"identifier={S1}|x&identifier={S2}|x") == ["visited 4"]
    assert patients(hand, "identifier=z") == ["visited 0"]
    assert patients(hand, f"identifier:not={S1}|x") == ["b", "c", "e", "f", "visited 6"]


def test_a_search_by_id_reads_the_resources_it_names_only(hand: FhirServer) -> None:
    """``_id`` (FHIR R4 §3.1.1.4.1, Resource-id: a token on the logical id) names its candidates: the search reads
    those, not every resource of the type; an unknown id reads nothing, ``:not`` and a value without a code
    (``system|``) still scan."""
    assert patients(hand, "_id=c") == ["c", "visited 1"]
    assert patients(hand, "_id=c,a,zz") == ["a", "c", "visited 2"]
    assert patients(hand, "_id=zz") == ["visited 0"]
    assert patients(hand, "_id=a&_id=b") == ["visited 0"]
    assert patients(hand, "_id=a,b&identifier=x") == ["a", "b", "visited 2"]
    assert patients(hand, f"_id={S1}|a") == ["visited 1"]
    assert patients(hand, f"_id={S1}|") == ["visited 6"]
    assert patients(hand, "_id:not=a") == ["b", "c", "d", "e", "f", "visited 6"]


def test_the_index_follows_updates_deletions_transactions_and_a_restore(hand: FhirServer) -> None:
    """An identifier changed: the old value no longer finds the resource, the new one does; a deletion; resources
    created by a transaction Bundle; a restored snapshot (the index made again) and the replay of the operations
    as the shared state sends them (JSON, not the staged versions)."""
    with TestClient(hand.app()) as client:
        changed = {"resourceType": "Patient", "id": "a", "identifier": [{"system": S1, "value": "z"}]}
        assert client.put("/Patient/a", json=changed, headers=JSON).status_code == 200
        assert client.delete("/Patient/d").status_code in (200, 204)
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:4a1e0f0e-0000-4000-8000-000000000001",
                    "resource": {"resourceType": "Patient", "identifier": [{"system": S1, "value": "x"}]},
                    "request": {"method": "POST", "url": "Patient"},
                },
                {
                    "resource": {"resourceType": "Patient", "id": "c", "identifier": [{"system": S2, "value": "q"}]},
                    "request": {"method": "PUT", "url": "Patient/c"},
                },
            ],
        }
        answer = client.post("/", json=bundle, headers=JSON)
        assert answer.status_code == 200, answer.text
        created = answer.json()["entry"][0]["response"]["location"].split("/")[1]
    assert patients(hand, f"identifier={S1}|x") == [created, "visited 2"]  # b has x without a system
    assert patients(hand, f"identifier={S1}|z") == ["a", "visited 1"]
    assert patients(hand, "identifier=x") == ["b", created, "visited 2"]
    assert patients(hand, f"identifier={S1}|y") == ["visited 0"]  # c's old identifier
    assert patients(hand, "identifier=q") == ["c", "visited 1"]
    assert hand.store.identified("Patient", ("identifier", None, "x")) == {"b", created}

    restored = make_server(CountingStore())
    restored.store.restore(hand.store.snapshot())
    for query_string in (f"identifier={S1}|x", f"identifier={S1}|z", "identifier=x", "identifier=q", "identifier=y"):
        assert patients(restored, query_string) == patients(hand, query_string)
    assert patients(restored, f"identifier={S1}|") == ["a", "e", created, "visited 3"]

    replayed = ResourceStore()
    for version in [v for rid in ("a", "b", "c", "d", "e", "f", created) for v in hand.store.history("Patient", rid)]:
        replayed.apply(
            {
                "op": "commit",
                "versions": [
                    ["Patient", version.id, version.version_id, version.last_updated.isoformat(), version.resource]
                ],
                "expected": [["Patient", version.id, version.version_id - 1]],
            }
        )
    for element, system, code in [("identifier", S1, "x"), ("identifier", S1, "z"), ("identifier", None, "x")]:
        wanted = hand.store.identified("Patient", (element, system, code))
        assert replayed.identified("Patient", (element, system, code)) == wanted != set()


def test_an_e_prescription_by_its_epu_reads_its_lines_only(seeded) -> None:  # noqa: ANN001
    """600 prescription lines: fetching the six of E7 reads those six (the scan, as ``:not`` still does, reads all
    600), with the reference index too (the lines of E7 for one patient), and a chained search reads the Patients
    the index names, then the notes referencing them."""
    client, server = seeded
    store = server.store
    for query_string, wanted, visits in [
        (f"group-identifier={EPU}|E7", ["m7-0", "m7-1", "m107-0", "m107-1", "m107-2", "m207-0"], 6),
        (f"group-identifier={EPU}|E7&subject=Patient/p2", ["m107-0", "m107-1", "m107-2"], 3),
        (
            f"group-identifier:not={EPU}|E7&subject=Patient/p2",
            None,
            len(store.referencing("MedicationRequest", "Patient/p2")),
        ),
    ]:
        before = store.visited
        ids, _ = searched(client, "MedicationRequest", query_string)
        if wanted is not None:
            assert ids == wanted
        assert store.visited - before == visits
    before = store.visited
    ids, _ = searched(client, "DocumentReference", f"subject.identifier={S2}|w20")
    assert ids == ["d20"] and store.visited - before == 2  # p20, then d20


def test_a_confirmation_by_its_epu_reads_its_tasks_only(seeded) -> None:  # noqa: ANN001
    """300 Tasks (the DUI's confirmations of e-Prescriptions, :func:`focus`): a search by EPU reads the Tasks whose
    ``focus.identifier`` has its value (whatever their system; the matcher then judges it), not the 300 (the scan,
    as ``:not`` still does)."""
    client, server = seeded
    store = server.store
    for query_string, wanted, visits in [
        (f"focus-identifier={EPU}|E8", ["t8", "t108", "t208"], 3),  # a Reference, a list, a Reference
        (f"focus-identifier={EPU}|E3", [], 2),  # t3 and t203 carry E3 without a system; t103 has no focus
        ("focus-identifier=E3", ["t3", "t203"], 2),
        (f"focus-identifier:not={EPU}|E8", None, 300),
    ]:
        before = store.visited
        ids, _ = searched(client, "Task", query_string)
        assert store.visited - before == visits, query_string
        assert ids == (wanted if wanted is not None else expected(server, "Task", query_string))


def test_identifier_tokens_are_the_lookup_keys_of_each_form() -> None:
    """``identifier_tokens``: for each (system, value) the keys ``value`` and ``system|`` (``""`` for no system);
    a system that is no string not at all; nothing outside ``IDENTIFIER_ELEMENTS``."""
    resource = {
        "identifier": [{"system": S1, "value": "x"}, {"value": 7}, {"system": 5, "value": "y"}],
        "groupIdentifier": {"system": EPU},
        "subject": {"identifier": {"system": S1, "value": "not indexed"}},
        "focus": {"reference": "MedicationRequest/m1", "identifier": {"system": EPU, "value": "E1"}},
        "status": "active",
    }
    assert identifier_tokens(resource) == {
        ("identifier", None, "x"),
        ("identifier", S1, None),
        ("identifier", None, "7"),
        ("identifier", "", None),
        ("identifier", None, "y"),
        ("groupIdentifier", EPU, None),
        ("focus.identifier", None, "E1"),
        ("focus.identifier", EPU, None),
    }
    assert identifier_tokens(None) == set()


def test_a_conditional_create_sees_a_patient_staged_earlier_in_the_same_batch(hand: FhirServer) -> None:
    """Writes staged in a unit of work are not in the store's index yet: a search of their type inside the unit
    (``ifNoneExist`` of a batch's entry, run after the earlier entries are staged — a transaction resolves its
    conditions first, on the store) reads every resource through the unit, as the reference index does, and finds
    the Patient created by an earlier entry; outside a batch it is narrowed by the index."""
    entry = {
        "resource": {"resourceType": "Patient", "identifier": [{"system": S1, "value": "new"}]},
        "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={S1}|new"},
    }
    first = {**entry, "fullUrl": "urn:uuid:4a1e0f0e-0000-4000-8000-000000000002"}
    second = {**entry, "fullUrl": "urn:uuid:4a1e0f0e-0000-4000-8000-000000000003"}
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [first, second]}
    with TestClient(hand.app()) as client:
        answer = client.post("/", json=bundle, headers=JSON)
        assert answer.status_code == 200, answer.text
        statuses = [e["response"]["status"] for e in answer.json()["entry"]]
    created = hand.store.identified("Patient", ("identifier", S1, "new"))
    assert statuses == ["201 Created", "200 OK"] and len(created) == 1
    store = hand.store
    assert isinstance(store, CountingStore)
    before = store.visited
    with TestClient(hand.app()) as client:
        again = client.post(
            "/Patient", json=entry["resource"], headers={**JSON, "If-None-Exist": f"identifier={S1}|new"}
        )
    assert again.status_code == 200 and again.json()["id"] == next(iter(created))
    assert store.visited - before == 1


def test_a_unit_of_work_finds_by_identifier_through_the_index_or_its_staged_writes() -> None:
    store = CountingStore()
    with store.exclusive() as uow:
        for n in range(50):
            uow.create("Patient", {"resourceType": "Patient", "identifier": [{"system": "urn:s", "value": f"v{n}"}]})
        uow.commit()
    store.visited = 0
    with store.exclusive() as uow:
        found = [
            v.resource["identifier"][0]["value"] for v in uow.among_identified("Patient", ("identifier", None, "v7"))
        ]
        assert (found, store.visited) == (["v7"], 1)  # the index's one id, read alone
        uow.create("Patient", {"resourceType": "Patient", "identifier": [{"system": "urn:s", "value": "v7"}]})
        store.visited = 0
        staged = list(uow.among_identified("Patient", ("identifier", None, "v7")))  # the index does not see it yet
        assert (len(staged), store.visited) == (51, 50)  # every Patient, the staged one among them (last)
        assert [v.resource["identifier"][0]["value"] for v in staged[-1:]] == ["v7"]
