"""Every refusal of the shared FHIR layer (HL7 FHIR R4 RESTful API §3.1.0: read, update, delete, conditional
create / delete, search, transaction and batch; HTTP semantics of RFC 9110 / RFC 9111), one row per rejection path,
asserting the EXACT answer: HTTP status, the OperationOutcome's issues (severity, code) and the error codes the
journal records for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from test_fhir_layer import INS, JSON, Recorder, make_server, note, patient

from harness.core.journal import Outcome
from harness.fhir import (
    FhirHooks,
    FhirInteraction,
    FhirServer,
    Interaction,
    ResourceStore,
    ResourceType,
)

CONDITION = f"identifier={INS['system']}|{INS['value']}"
P = patient()


@pytest.fixture
def seeded() -> Iterator[tuple[TestClient, FhirServer, Recorder]]:
    """Two patients with the same INS (p1, p2), one deleted (gone), two notes about p1; the journal emptied."""
    server, recorder = make_server()
    with TestClient(server.app()) as client:
        for pid in ("p1", "p2", "gone"):
            assert client.put(f"/Patient/{pid}", json={**P, "id": pid}, headers=JSON).status_code == 201
        assert client.delete("/Patient/gone").status_code == 200
        for _ in range(2):
            assert client.post("/DocumentReference", json=note("Patient/p1"), headers=JSON).status_code == 201
        recorder.exchanges.clear()
        yield client, server, recorder


def bundle(*entries: Any, kind: str = "transaction") -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": kind, "entry": list(entries)}).encode()


def entry(method: str, url: str, resource: dict[str, Any] | None = None, **request: str) -> dict[str, Any]:
    out: dict[str, Any] = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        out["resource"] = resource
    return out


FORM = {"content-type": "application/x-www-form-urlencoded"}
E = "error"
ROWS: list[tuple[str, str, str, bytes, dict[str, str], int, list[tuple[str, str]], list[str]]] = [
    ("unknown path", "GET", "/Patient/p1/_history/1/x", b"", {}, 404, [(E, "not-found")], ["FHIR-UNKNOWN-PATH"]),
    ("unknown type", "POST", "/Observation", b"{}", JSON, 404, [(E, "not-supported")], ["FHIR-UNKNOWN-TYPE"]),
    ("method", "PATCH", "/Patient/p1", b"{}", JSON, 405, [(E, "not-supported")], ["FHIR-NOT-ALLOWED"]),
    ("format", "GET", "/Patient?_format=yaml", b"", {}, 406, [(E, "not-supported")], ["FHIR-FORMAT"]),
    ("media type", "POST", "/Patient", json.dumps(P).encode(), {"content-type": "text/plain"}, 415,
     [(E, "not-supported")], ["FHIR-CONTENT-TYPE"]),
    ("deleted", "GET", "/Patient/gone", b"", {}, 410, [(E, "deleted")], ["FHIR-DELETED"]),
    ("id syntax", "PUT", "/Patient/a_b", json.dumps({**P, "id": "a_b"}).encode(), JSON, 400, [(E, "invalid")],
     ["FHIR-ID"]),
    ("id mismatch", "PUT", "/Patient/p1", json.dumps({**P, "id": "p9"}).encode(), JSON, 400, [(E, "invalid")],
     ["FHIR-ID"]),
    ("if-match syntax", "PUT", "/Patient/p1", json.dumps({**P, "id": "p1"}).encode(), {**JSON, "If-Match": "W/"},
     400, [(E, "invalid")], ["FHIR-IF-MATCH"]),
    ("stale update", "PUT", "/Patient/p1", json.dumps({**P, "id": "p1"}).encode(), {**JSON, "If-Match": 'W/"7"'},
     412, [(E, "conflict")], ["FHIR-PRECONDITION"]),
    ("stale delete", "DELETE", "/Patient/p1", b"", {"If-Match": 'W/"7"'}, 412, [(E, "conflict")],
     ["FHIR-PRECONDITION"]),
    ("conditional create, two matches", "POST", "/Patient", json.dumps(P).encode(), {**JSON, "If-None-Exist": CONDITION},
     412, [(E, "duplicate")], ["FHIR-CONDITIONAL"]),
    ("conditional create, no criterion", "POST", "/Patient", json.dumps(P).encode(),
     {**JSON, "If-None-Exist": "_count=1"}, 400, [(E, "invalid")], ["FHIR-CONDITIONAL"]),
    ("conditional create, unknown parameter", "POST", "/Patient", json.dumps(P).encode(),
     {**JSON, "If-None-Exist": "foo=bar"}, 400, [(E, "not-supported")], ["FHIR-SEARCH-PARAM"]),
    ("conditional delete not offered", "DELETE", f"/Patient?{CONDITION}", b"", {}, 405, [(E, "not-supported")],
     ["FHIR-NOT-ALLOWED"]),
    ("conditional delete, two matches", "DELETE", "/DocumentReference?patient=Patient/p1", b"", {}, 412,
     [(E, "duplicate")], ["FHIR-CONDITIONAL"]),
    ("POST _search as JSON", "POST", "/Patient/_search", b"family=x", JSON, 415, [(E, "not-supported")],
     ["FHIR-CONTENT-TYPE"]),
    ("POST _search not UTF-8", "POST", "/Patient/_search", b"\xff=1", FORM, 400, [(E, "invalid")], ["FHIR-SEARCH"]),
    ("_count", "GET", "/Patient?_count=abc", b"", {}, 400, [(E, "invalid")], ["FHIR-SEARCH-COUNT"]),
    ("_total", "GET", "/Patient?_total=parfois", b"", {}, 400, [(E, "invalid")], ["FHIR-SEARCH-TOTAL"]),
    ("date", "GET", "/Patient?birthdate=ge2024-13-01", b"", {}, 400, [(E, "invalid")], ["FHIR-SEARCH-DATE"]),
    ("chained date", "GET", "/DocumentReference?patient.birthdate=hier", b"", {}, 400, [(E, "invalid")],
     ["FHIR-SEARCH-DATE"]),
    ("JSON depth", "POST", "/Patient", b"[" * 101 + b"]" * 101, JSON, 400, [(E, "structure")],
     ["FHIR-JSON-PROFONDEUR"]),
    ("bundle type", "POST", "/", json.dumps({"resourceType": "Bundle", "type": "collection"}).encode(), JSON, 400,
     [(E, "invalid")], ["FHIR-BUNDLE-TYPE"]),
    ("entry without request", "POST", "/", bundle({"resource": P}), JSON, 400, [(E, "required")],
     ["FHIR-BUNDLE-REQUEST"]),
    ("entry method", "POST", "/", bundle(entry("FOO", "Patient")), JSON, 400, [(E, "not-supported")],
     ["FHIR-BUNDLE-REQUEST"]),
    ("entry PATCH", "POST", "/", bundle(entry("PATCH", "Patient/p1")), JSON, 400, [(E, "not-supported")],
     ["FHIR-BUNDLE-REQUEST"]),
    ("entry url empty", "POST", "/", bundle(entry("GET", "/")), JSON, 400, [(E, "invalid")], ["FHIR-BUNDLE-REQUEST"]),
    ("entry url too deep", "POST", "/", bundle(entry("GET", "a/b/c/d/e")), JSON, 400, [(E, "invalid")],
     ["FHIR-BUNDLE-REQUEST"]),
    ("entry PUT without id", "POST", "/", bundle(entry("PUT", "Patient", P)), JSON, 400, [(E, "invalid")],
     ["FHIR-BUNDLE-REQUEST"]),
    ("entry POST without resource", "POST", "/", bundle(entry("POST", "Patient")), JSON, 400, [(E, "required")],
     ["FHIR-BUNDLE-RESOURCE"]),
    ("one target twice", "POST", "/", bundle(entry("PUT", "Patient/p1", {**P, "id": "p1"}), entry("DELETE",
     "Patient/p1")), JSON, 400, [(E, "duplicate")], ["FHIR-BUNDLE-DUPLICATE"]),
    ("one fullUrl twice", "POST", "/", bundle({**entry("POST", "Patient", P), "fullUrl": "urn:uuid:1"},
     {**entry("POST", "Patient", P), "fullUrl": "urn:uuid:1"}), JSON, 400, [(E, "duplicate")],
     ["FHIR-BUNDLE-DUPLICATE"]),
    ("transaction ifNoneExist, two matches", "POST", "/", bundle(entry("POST", "Patient", P, ifNoneExist=CONDITION)),
     JSON, 412, [(E, "duplicate")], ["FHIR-CONDITIONAL"]),
    ("transaction conditional update, two matches", "POST", "/", bundle(entry("PUT", f"Patient?{CONDITION}", P)), JSON,
     412, [(E, "duplicate")], ["FHIR-CONDITIONAL", "FHIR-CONDITIONAL"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "issues", "codes"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_each_refusal_is_named_exactly(
    seeded: tuple[TestClient, FhirServer, Recorder],
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    issues: list[tuple[str, str]],
    codes: list[str],
) -> None:
    client, server, recorder = seeded
    count = server.store.count()
    response = client.request(method, path, content=body or None, headers=headers)
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [(i["severity"], i["code"]) for i in outcome["issue"]] == issues
    assert [e.error_code for e in recorder.exchanges] == codes
    assert {e.outcome for e in recorder.exchanges} == {Outcome.REJECTED}
    assert server.store.count() == count  # nothing written


def test_a_batch_entry_refused_leaves_the_others(seeded: tuple[TestClient, FhirServer, Recorder]) -> None:
    client, server, recorder = seeded
    body = bundle(entry("POST", "Patient", P, ifNoneExist=CONDITION), entry("GET", "Patient/p2"), kind="batch")
    response = client.post("/", content=body, headers=JSON)
    assert response.status_code == 200
    answers = [e["response"] for e in response.json()["entry"]]
    assert [a["status"] for a in answers] == ["412 Precondition Failed", "200 OK"]
    assert [(i["severity"], i["code"]) for i in answers[0]["outcome"]["issue"]] == [("error", "duplicate")]
    assert [(e.error_code, e.outcome) for e in recorder.exchanges] == [
        (None, Outcome.ACCEPTED),
        ("FHIR-CONDITIONAL", Outcome.REJECTED),
        (None, Outcome.ACCEPTED),
    ]


def test_an_unknown_search_parameter_is_a_journaled_warning(seeded: tuple[TestClient, FhirServer, Recorder]) -> None:
    client, _, recorder = seeded
    response = client.get("/Patient", params={"foo": "bar", "identifier": CONDITION.split("=", 1)[1]})
    assert response.status_code == 200 and "total" not in response.json()
    assert [e["resource"]["id"] for e in response.json()["entry"] if e["search"]["mode"] == "match"] == ["p1", "p2"]
    [searched] = recorder.exchanges
    assert searched.outcome is Outcome.ACCEPTED
    assert [(f["code"], f["severity"]) for f in searched.details["findings"]] == [("FHIR-SEARCH-PARAM", "warning")]


def test_an_interaction_the_type_does_not_offer() -> None:
    server, recorder = make_server()
    server.resources["Organization"] = ResourceType("Organization", frozenset({Interaction.READ}))
    with TestClient(server.app()) as client:
        response = client.post("/Organization", json={"resourceType": "Organization"}, headers=JSON)
    assert response.status_code == 405
    assert [e.error_code for e in recorder.exchanges] == ["FHIR-NOT-ALLOWED"]


class _Broken(FhirHooks):
    def after_interaction(self, item: FhirInteraction, **_: object) -> None:
        if item.interaction is Interaction.CREATE:
            raise RuntimeError("bogue")


def test_a_bug_is_a_500_journaled_and_the_service_keeps_running() -> None:
    server, recorder = make_server()
    server.hooks = _Broken()
    with TestClient(server.app(), raise_server_exceptions=False) as client:
        response = client.post("/Patient", json=P, headers=JSON)
        assert response.status_code == 500
        assert [(i["severity"], i["code"]) for i in response.json()["issue"]] == [("error", "exception")]
        assert client.get("/metadata").status_code == 200
    assert [(e.error_code, e.outcome) for e in recorder.exchanges][:1] == [("FHIR-INTERNAL", Outcome.REJECTED)]
    assert server.store.count() == 0


def test_a_write_over_a_concurrent_change_is_a_conflict() -> None:
    """Optimistic concurrency of the store: a unit of work that read version 1 cannot commit over version 2."""
    store = ResourceStore()
    first = store.begin()
    first.create("Patient", {**P, "id": "p1"}, resource_id="p1")
    first.commit()
    slow, fast = store.begin(), store.begin()
    slow.update("Patient", "p1", {**P, "id": "p1", "active": True})
    fast.update("Patient", "p1", {**P, "id": "p1", "active": False})
    fast.commit()
    with pytest.raises(Exception) as caught:
        slow.commit()
    assert (caught.value.status, caught.value.error_code) == (409, "FHIR-CONFLICT")  # type: ignore[attr-defined]
    assert store.read("Patient", "p1").version_id == 2 and store.read("Patient", "p1").resource["active"] is False


def test_an_invalid_chained_date_is_refused_even_when_nothing_could_match() -> None:
    """Before, a chained date was only parsed while matching: with no Patient in the store the same query was a 200."""
    server, recorder = make_server()
    with TestClient(server.app()) as client:
        response = client.get("/DocumentReference", params={"patient.birthdate": "hier"})
    assert response.status_code == 400
    assert [e.error_code for e in recorder.exchanges] == ["FHIR-SEARCH-DATE"]
