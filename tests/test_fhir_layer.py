"""The shared FHIR layer (harness.fhir): REST interactions, versioning, search, transaction/batch, formats, and bad
input answered with an OperationOutcome and the right HTTP status — every request journaled, the service alive."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from harness.core.journal import Exchange, Outcome
from harness.fhir import FhirHooks, FhirServer, Interaction, Limits, ResourceStore, ResourceType
from harness.fhir.model import narrative_findings
from harness.fhir.outcome import FhirError
from harness.fhir.search import (
    Criterion,
    Matcher,
    ParamType,
    SearchParam,
    SearchRegistry,
    Total,
    date_range,
    searchset,
)
from harness.fhir.server import searchset_json
from harness.fhir.wire import Format, parse_json, render

JSON = {"content-type": "application/fhir+json"}
XML = {"content-type": "application/fhir+xml"}
INS = {"system": "urn:oid:1.2.250.1.213.1.4.10", "value": "238047505612394"}
ALL = frozenset(Interaction) - {
    Interaction.TRANSACTION,
    Interaction.BATCH,
    Interaction.CAPABILITIES,
    Interaction.INVALID,
}


class Recorder:
    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.fail = False

    def __call__(self, exchanges: list[Exchange]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.exchanges.extend(exchanges)


TEST_LIMITS = Limits(max_body_bytes=256 * 1024, max_bundle_entries=50)


def make_server(
    limits: Limits = TEST_LIMITS, search_total: Total | None = None, *, group_commit: bool = False
) -> tuple[FhirServer, Recorder]:
    """The test server; ``search_total`` None: the FhirServer's own default."""
    recorder = Recorder()
    server = FhirServer(
        resources=[
            ResourceType(
                "Patient",
                ALL,
                (
                    SearchParam("identifier", ParamType.TOKEN, ("identifier",)),
                    SearchParam("family", ParamType.STRING, ("name.family",)),
                    SearchParam("name", ParamType.STRING, ("name",)),
                    SearchParam("birthdate", ParamType.DATE, ("birthDate",)),
                ),
            ),
            ResourceType("Practitioner", ALL, (SearchParam("identifier", ParamType.TOKEN, ("identifier",)),)),
            ResourceType(
                "DocumentReference",
                ALL,
                (
                    SearchParam("patient", ParamType.REFERENCE, ("subject",), ("Patient",)),
                    SearchParam("subject", ParamType.REFERENCE, ("subject",), ("Patient",)),
                    SearchParam("author", ParamType.REFERENCE, ("author",), ("Practitioner", "Patient")),
                    SearchParam("date", ParamType.DATE, ("date",)),
                    SearchParam("type", ParamType.TOKEN, ("type",)),
                    SearchParam("identifier", ParamType.TOKEN, ("masterIdentifier",)),
                ),
                conditional_delete=True,
            ),
        ],
        store=ResourceStore(),
        hooks=FhirHooks(),
        record=recorder,
        base_url=lambda: "https://test/fhir",
        limits=limits,
        group_commit=group_commit,
        **({} if search_total is None else {"search_total": search_total}),
    )
    return server, recorder


@pytest.fixture(params=[False, True], ids=["direct", "grouped"])
def fhir(request: pytest.FixtureRequest) -> Iterator[tuple[TestClient, FhirServer, Recorder]]:
    """The test server and its client, creates journaled in their own commit or through the group commit (one
    request at a time: groups of one, the same answers and rows)."""
    server, recorder = make_server(group_commit=request.param)
    with TestClient(server.app()) as client:
        yield client, server, recorder


def patient(family: str = "Dupré", ins: dict[str, str] = INS, birth: str = "1938-04-12") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [ins],
        "name": [{"family": family, "given": ["Élise"]}],
        "birthDate": birth,
    }


def note(
    subject: str, *, code: str = "OBS", date: str = "2024-03-05T10:00:00+01:00", author: str | None = None
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": subject},
        "date": date,
        "type": {
            "coding": [
                {"system": "https://mos.esante.gouv.fr/NOS/TRE_R234-TypeNote/FHIR/TRE-R234-TypeNote", "code": code}
            ]
        },
        "content": [{"attachment": {"contentType": "text/plain", "data": "Qm9uam91cg=="}}],
    }
    if author:
        resource["author"] = [{"reference": author}]
    return resource


def outcome_of(response) -> dict[str, Any]:  # noqa: ANN001
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"] and all(i["severity"] and i["code"] for i in body["issue"])
    return body


# ------------------------------------------------------------------------------------------ CRUD + versions
def test_create_read_update_delete_with_versions_and_etags(fhir) -> None:  # noqa: ANN001
    client, server, recorder = fhir
    created = client.post("/Patient", json=patient(), headers=JSON)
    assert created.status_code == 201
    pid = created.json()["id"]
    assert created.headers["etag"] == 'W/"1"'
    assert created.headers["location"] == f"https://test/fhir/Patient/{pid}/_history/1"
    assert created.json()["meta"]["versionId"] == "1" and created.json()["meta"]["lastUpdated"].endswith("Z")
    read = client.get(f"/Patient/{pid}")
    assert read.status_code == 200 and read.headers["etag"] == 'W/"1"' and read.headers["last-modified"]
    changed = {**read.json(), "active": True}
    stale = client.put(f"/Patient/{pid}", json=changed, headers={**JSON, "If-Match": 'W/"7"'})
    assert stale.status_code == 412 and outcome_of(stale)["issue"][0]["code"] == "conflict"
    updated = client.put(f"/Patient/{pid}", json=changed, headers={**JSON, "If-Match": 'W/"1"'})
    assert updated.status_code == 200 and updated.headers["etag"] == 'W/"2"'
    assert client.get(f"/Patient/{pid}/_history/1").json().get("active") is None
    assert client.get(f"/Patient/{pid}/_history/2").json()["active"] is True
    history = client.get(f"/Patient/{pid}/_history").json()
    assert history["type"] == "history" and history["total"] == 2
    assert client.delete(f"/Patient/{pid}", headers={"If-Match": 'W/"1"'}).status_code == 412
    assert client.delete(f"/Patient/{pid}").status_code == 200
    gone = client.get(f"/Patient/{pid}")
    assert gone.status_code == 410 and outcome_of(gone)["issue"][0]["code"] == "deleted"
    assert client.get("/Patient/unknown-id").status_code == 404
    operations = [(e.operation, e.outcome) for e in recorder.exchanges]
    assert ("fhir.create.Patient", Outcome.ACCEPTED) in operations and (
        "fhir.update.Patient",
        Outcome.REJECTED,
    ) in operations
    assert server.store.count("Patient") == 0


def test_update_creates_with_the_client_id_and_checks_the_id(fhir) -> None:  # noqa: ANN001
    client, _, _ = fhir
    assert client.put("/Patient/p-1", json={**patient(), "id": "p-1"}, headers=JSON).status_code == 201
    assert client.put("/Patient/p-1", json={**patient(), "id": "p-2"}, headers=JSON).status_code == 400
    assert client.put("/Patient/p-1", json=patient(), headers=JSON).status_code == 400  # no id in the body


def test_conditional_create_and_conditional_delete(fhir) -> None:  # noqa: ANN001
    client, server, _ = fhir
    condition = {"If-None-Exist": f"identifier={INS['system']}|{INS['value']}"}
    first = client.post("/Patient", json=patient(), headers={**JSON, **condition})
    again = client.post("/Patient", json=patient(), headers={**JSON, **condition})
    assert (first.status_code, again.status_code) == (201, 200) and again.json()["id"] == first.json()["id"]
    pid = first.json()["id"]
    doc = {**note(f"Patient/{pid}"), "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:n1"}}
    assert client.post("/DocumentReference", json=doc, headers=JSON).status_code == 201
    assert (
        client.delete("/DocumentReference", params={"identifier": "urn:ietf:rfc:3986|urn:uuid:n1"}).status_code == 200
    )
    assert server.store.count("DocumentReference") == 0
    assert client.delete("/Patient", params={"identifier": "x"}).status_code == 405  # not allowed for Patient


# ------------------------------------------------------------------------------------------ bad input
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<Patient xmlns="http://hl7.org/fhir"><name><family value="&xxe;"/></name></Patient>'
)
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>'
    b'<Patient xmlns="http://hl7.org/fhir"><name><family value="&lol2;"/></name></Patient>'
)


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "issue"),
    [
        ("POST", "/Patient", b"{not json", JSON, 400, "structure"),
        ("POST", "/Patient", b"[1, 2]", JSON, 400, "structure"),
        ("POST", "/Patient", b'{"name": []}', JSON, 400, "structure"),
        ("POST", "/Patient", b'{"resourceType": "Patient", "birthDate": NaN}', JSON, 400, "structure"),
        ("POST", "/Patient", b"", JSON, 400, "structure"),
        ("POST", "/Patient", b"\xff\xfe\x00garbage", JSON, 400, "structure"),
        (
            "POST",
            "/Patient",
            json.dumps({"resourceType": "Observation", "status": "final", "code": {}}).encode(),
            JSON,
            400,
            "invalid",
        ),
        (
            "POST",
            "/Patient",
            json.dumps({"resourceType": "Patient", "birthDate": "12/04/1938"}).encode(),
            JSON,
            400,
            "structure",
        ),
        (
            "POST",
            "/Patient",
            json.dumps({"resourceType": "Patient", "gender": ["male"]}).encode(),
            JSON,
            400,
            "structure",
        ),
        ("POST", "/Patient", b'{"resourceType": "Patient"}', {"content-type": "text/plain"}, 415, "not-supported"),
        ("POST", "/Patient", b'{"resourceType": "Patient"}', {}, 415, "not-supported"),
        ("POST", "/Patient", XXE, XML, 400, "security"),
        ("POST", "/Patient", LAUGHS, XML, 400, "security"),
        ("POST", "/Patient", b"<Patient xmlns='http://hl7.org/fhir'><name>", XML, 400, "structure"),
        ("POST", "/Patient", b"<Patient xmlns='urn:other'/>", XML, 400, "structure"),
        ("POST", "/Patient", b"<Nope xmlns='http://hl7.org/fhir'/>", XML, 400, "not-supported"),
        ("POST", "/Observation", b'{"resourceType": "Observation"}', JSON, 404, "not-supported"),
        ("PATCH", "/Patient/x", b"{}", JSON, 405, "not-supported"),
        ("GET", "/Patient?_format=yaml", b"", {}, 406, "not-supported"),
        (
            "PUT",
            "/Patient/p1",
            json.dumps({**patient(), "id": "p1"}).encode(),
            {**JSON, "If-Match": 'garbage""'},
            400,
            "invalid",
        ),
        ("POST", "/DocumentReference", json.dumps(note("Patient/does-not-exist")).encode(), JSON, 422, "not-found"),
        ("POST", "/DocumentReference", json.dumps(note("urn:uuid:0000")).encode(), JSON, 422, "not-found"),
        ("POST", "/", json.dumps({"resourceType": "Bundle", "type": "collection"}).encode(), JSON, 400, "invalid"),
        ("POST", "/", json.dumps(patient()).encode(), JSON, 400, "invalid"),
        ("GET", "/Patient?birthdate=yesterday", b"", {}, 400, "invalid"),
        ("GET", "/Patient?_count=-1", b"", {}, 400, "invalid"),
    ],
)
def test_bad_input_gets_an_operation_outcome_and_is_journaled(
    fhir,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],  # noqa: ANN001
    status: int,
    issue: str,
) -> None:
    client, server, recorder = fhir
    before = len(recorder.exchanges)
    response = client.request(method, path, content=body or None, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert outcome_of(response)["issue"][0]["code"] == issue
    journaled = recorder.exchanges[before:]
    assert len(journaled) == 1 and journaled[0].outcome is Outcome.REJECTED and journaled[0].error_code
    if body:
        assert journaled[0].payload == body  # the refused request is kept as evidence
    assert server.store.count() == 0
    assert client.get("/metadata").status_code == 200  # the service keeps running


def test_body_and_bundle_bounds_are_checked_before_processing() -> None:
    server, recorder = make_server(Limits(max_body_bytes=8 * 1024 * 1024, max_bundle_entries=1000))
    entries = [{"request": {"method": "GET", "url": "Patient/1"}}] * 100_000
    bundle = json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries}).encode()
    xml = (
        b'<Bundle xmlns="http://hl7.org/fhir"><type value="batch"/>'
        + b'<entry><request><method value="GET"/><url value="Patient/1"/></request></entry>' * 100_000
        + b"</Bundle>"
    )
    with TestClient(server.app()) as client:
        for body, headers in ((bundle, JSON), (xml, XML)):
            response = client.post("/", content=body, headers=headers)
            assert response.status_code == 413, response.text[:300]
            assert outcome_of(response)["issue"][0]["code"] == "too-costly"
        small, _ = make_server(Limits(max_body_bytes=1024))
        with TestClient(small.app()) as tiny:
            big = tiny.post(
                "/Patient",
                content=json.dumps({**patient(), "text": {"status": "generated", "div": "x" * 5000}}),
                headers=JSON,
            )
            assert big.status_code == 413
    assert [e.error_code for e in recorder.exchanges] == ["FHIR-TOO-MANY-ENTRIES", "FHIR-TOO-MANY-ENTRIES"]


def test_a_journal_failure_is_a_500_and_leaves_the_store_untouched(fhir) -> None:  # noqa: ANN001
    client, server, recorder = fhir
    recorder.fail = True
    response = client.post("/Patient", json=patient(), headers=JSON)
    assert response.status_code == 500 and outcome_of(response)["issue"][0]["code"] == "exception"
    assert server.store.count("Patient") == 0
    recorder.fail = False
    assert client.post("/Patient", json=patient(), headers=JSON).status_code == 201


def test_concurrent_interactions_share_one_journal_commit_and_creates_are_seen_only_once_committed() -> None:
    """``group_commit``: the creates and searches that arrive together are journaled in one commit; no create is in
    the store while its row is being written, each is answered once stored; a batch the journal refuses fails alone
    (500, not stored) and the others are committed; a search of the same moment does not see the creates not yet
    answered; an interaction that cannot share the commit (a conditional create) first commits those waiting, so
    it sees them and its row follows theirs."""
    server, _ = make_server(group_commit=True)
    calls: list[list[str]] = []
    seen: list[int] = []

    def record(exchanges: list[Exchange]) -> None:
        seen.append(server.store.count("Patient"))
        names = [json.loads(e.payload or b"{}").get("name", [{}])[0].get("family", "") for e in exchanges]
        calls.append(names)
        if "Refusé" in names:
            raise OSError("disk full")

    server.record = record

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=server.app())
        async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
            requests = [client.post("/Patient", json=patient(name), headers=JSON) for name in ("A", "Refusé", "B")]
            requests.append(client.get("/Patient?identifier=238047505612394"))
            condition = {**JSON, "if-none-exist": "identifier=urn:oid:1.2.250.1.213.1.4.10|238047505612394"}
            requests.append(client.post("/Patient", json=patient("C"), headers=condition))
            return list(await asyncio.gather(*requests))

    a, refused, b, search, conditional = asyncio.run(scenario())
    assert [r.status_code for r in (a, refused, b, search, conditional)] == [201, 500, 201, 200, 412]
    assert calls == [["A", "Refusé", "B", ""], ["A"], ["Refusé"], ["B"], [""], ["C"]]  # one commit, then each alone
    assert seen == [0, 0, 0, 0, 0, 2]  # nothing stored before its row was committed
    assert server.store.count("Patient") == 2
    assert "entry" not in search.json()  # processed before the creates were answered
    assert {v.id for v in server.store.all("Patient")} == {a.json()["id"], b.json()["id"]}


# ------------------------------------------------------------------------------------------ formats
def test_xml_in_and_out(fhir) -> None:  # noqa: ANN001
    client, _, _ = fhir
    xml = (
        b'<?xml version="1.0" encoding="ISO-8859-1"?><Patient xmlns="http://hl7.org/fhir">'
        b'<identifier><system value="urn:oid:1.2.250.1.213.1.4.10"/><value value="238047505612394"/></identifier>'
        b'<name><family value="Dupr\xe9"/><given value="\xc9lise"/><given value="Marie"/></name></Patient>'
    )
    created = client.post("/Patient", content=xml, headers={**XML, "accept": "application/fhir+xml"})
    assert created.status_code == 201 and created.headers["content-type"].startswith("application/fhir+xml")
    assert b'<family value="Dupr\xc3\xa9"/>' in created.content
    pid = created.headers["location"].split("/")[-3]
    as_json = client.get(f"/Patient/{pid}").json()
    assert as_json["name"][0]["given"] == ["Élise", "Marie"]  # a repeated XML element is a JSON array
    assert client.get(f"/Patient/{pid}?_format=xml").text.startswith("<?xml")
    assert (
        client.get("/metadata", headers={"accept": "application/fhir+xml"})
        .headers["content-type"]
        .startswith("application/fhir+xml")
    )


# ------------------------------------------------------------------------------------------ search
@pytest.fixture
def seeded(fhir):  # noqa: ANN001, ANN201
    client, server, recorder = fhir
    ids = {}
    for family, value, birth in (
        ("Dupré", "238047505612394", "1938-04-12"),
        ("Leroy", "142036912304505", "1942-03-30"),
    ):
        ids[family] = client.post(
            "/Patient", json=patient(family, {**INS, "value": value}, birth), headers=JSON
        ).json()["id"]
    ids["dr"] = client.post(
        "/Practitioner",
        json={
            "resourceType": "Practitioner",
            "identifier": [{"system": "urn:oid:1.2.250.1.71.4.2.1", "value": "810000000001"}],
        },
        headers=JSON,
    ).json()["id"]
    for name, code, when, who in (
        ("n1", "OBS", "2024-03-05T10:00:00+01:00", "Dupré"),
        ("n2", "GEN", "2024-04-01T08:00:00Z", "Dupré"),
        ("n3", "OBS", "2023-12-31T09:00:00Z", "Leroy"),
    ):
        ids[name] = client.post(
            "/DocumentReference",
            json=note(f"Patient/{ids[who]}", code=code, date=when, author=f"Practitioner/{ids['dr']}"),
            headers=JSON,
        ).json()["id"]
    return client, ids


def _ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["resourceType"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def _matched(bundle: dict[str, Any]) -> list[str]:
    """The ids of a searchset's matches, in order."""
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def _found(client: TestClient, path: str, params: Any) -> list[str]:
    """The ids a search matches; the Bundle carries no ``total`` (none asked: the server's default ``none``)."""
    bundle = client.get(path, params=params).json()
    assert bundle["type"] == "searchset" and "total" not in bundle, bundle
    return _matched(bundle)


def test_search_by_token_string_date_chain_and_include(seeded) -> None:  # noqa: ANN001
    client, ids = seeded
    dupre, leroy, n1, n2, n3 = ids["Dupré"], ids["Leroy"], ids["n1"], ids["n2"], ids["n3"]
    assert _found(client, "/Patient", {"family": "dupre"}) == [dupre]  # accent- and case-insensitive prefix
    assert _found(client, "/Patient", {"family:exact": "dupre"}) == []
    assert _found(client, "/Patient", {"name": "lis"}) == []
    assert _found(client, "/Patient", {"name:contains": "lis"}) == [dupre, leroy]
    assert _found(client, "/Patient", {"identifier": f"{INS['system']}|142036912304505"}) == [leroy]
    assert _found(client, "/Patient", {"identifier": "142036912304505,238047505612394"}) == [dupre, leroy]
    assert _found(client, "/Patient", {"birthdate": "lt1940"}) == [dupre]
    chained = {"patient.identifier": f"{INS['system']}|238047505612394"}
    assert _found(client, "/DocumentReference", chained) == [n1, n2]
    assert _found(client, "/DocumentReference", {"subject:Patient.family": "leroy"}) == [n3]
    assert _found(client, "/DocumentReference", {"author:Practitioner.identifier": "810000000001"}) == [n1, n2, n3]
    assert _found(client, "/DocumentReference", {"date": "ge2024-03", "type": "OBS"}) == [n1]
    assert _found(client, "/DocumentReference", {"date": "2024"}) == [n1, n2]
    assert _found(client, "/DocumentReference", {"date": "sa2024-03-31"}) == [n2]
    assert _found(client, "/DocumentReference", {"subject": f"Patient/{leroy}"}) == [n3]
    assert _found(client, "/DocumentReference", {"subject": leroy}) == [n3]
    included = client.get(
        "/DocumentReference",
        params=[
            ("patient.identifier", "238047505612394"),
            ("_include", "DocumentReference:subject"),
            ("_include", "DocumentReference:author"),
        ],
    ).json()
    assert sorted(_ids(included, "include")) == ["Patient", "Practitioner"]  # each included resource once
    star = client.get("/DocumentReference", params={"_include": "*", "type": "GEN"}).json()
    assert sorted(_ids(star, "include")) == ["Patient", "Practitioner"]
    assert _found(client, "/DocumentReference", {"_count": "1", "_sort": "-date"}) == [n2]  # the latest note
    counted = client.get("/DocumentReference", params={"_count": "1", "_sort": "-date", "_total": "accurate"}).json()
    assert (counted["total"], _matched(counted)) == (3, [n2])
    posted = client.post(
        "/DocumentReference/_search", content="type=GEN", headers={"content-type": "application/x-www-form-urlencoded"}
    ).json()
    assert "total" not in posted and _matched(posted) == [n2]


def test_a_json_searchset_is_rendered_with_each_match_rendered_once_per_version(seeded) -> None:  # noqa: ANN001
    """The JSON of a searchset answer is ``render`` of its Bundle, byte for byte (matches, includes, an outcome entry,
    non-ASCII text), its matches' JSON taken from their versions' rendering (the one a read answers)."""
    client, ids = seeded
    params = [
        ("patient.identifier", "238047505612394"),
        ("_include", "DocumentReference:subject"),
        ("_include", "DocumentReference:author"),
        ("unknown-param", "x"),
    ]
    first, again = (client.get("/DocumentReference", params=params) for _ in range(2))
    for response in (first, again):
        bundle = response.json()
        assert response.content == render(bundle, Format.JSON)
        assert [e["search"]["mode"] for e in bundle["entry"]] == ["match", "match", "include", "include", "outcome"]
        assert _matched(bundle) == [ids["n1"], ids["n2"]]
    read = client.get(f"/Patient/{ids['Dupré']}")
    searched = client.get("/Patient", params={"family": "dupré", "_format": "json"})
    assert searched.content == render(searched.json(), Format.JSON) and read.content in searched.content
    store = ResourceStore()
    with store.exclusive() as uow:
        versions = [uow.create("Patient", patient(family)) for family in ("Çà", "Öß")]
        uow.commit()
    bundle = searchset("https://b/fhir", "x=1", "Patient", versions, [patient("Inclus")], None, [], "id", "now")
    assert searchset_json(bundle, versions) == render(bundle, Format.JSON)
    assert searchset_json({"resourceType": "Bundle", "entry": []}, []) == b'{"resourceType":"Bundle","entry":[]}'


def _links(bundle: dict[str, Any]) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle["link"]}


def _page(client: TestClient, url: str) -> dict[str, Any]:
    response = client.get(url.removeprefix("https://test/fhir"))
    assert response.status_code == 200, response.text
    return response.json()


def test_search_pages_follow_next_links_to_the_last_page(seeded) -> None:  # noqa: ANN001
    client, ids = seeded
    every = [e["resource"]["id"] for e in client.get("/DocumentReference").json()["entry"]]
    assert len(every) == 3
    assert every == [ids["n1"], ids["n2"], ids["n3"]]
    first = client.get("/DocumentReference", params={"_count": "1"}).json()
    assert "total" not in first and [e["resource"]["id"] for e in first["entry"]] == every[:1]
    assert _links(first)["self"] == "https://test/fhir/DocumentReference?_count=1"
    assert _links(first)["next"] == "https://test/fhir/DocumentReference?_count=1&_offset=1"
    second = _page(client, _links(first)["next"])
    assert "total" not in second and [e["resource"]["id"] for e in second["entry"]] == every[1:2]
    last = _page(client, _links(second)["next"])
    assert [e["resource"]["id"] for e in last["entry"]] == every[2:]
    assert set(_links(last)) == {"self"}  # the last page has no next link
    beyond = _page(client, "/DocumentReference?_count=1&_offset=7")
    assert "total" not in beyond and "entry" not in beyond and set(_links(beyond)) == {"self"}
    # a page of two, sorted: the next link keeps the criteria and the sort
    sorted_page = client.get("/DocumentReference", params={"_count": "2", "_sort": "date"}).json()
    assert [e["resource"]["date"] for e in sorted_page["entry"]] == [
        "2023-12-31T09:00:00Z",
        "2024-03-05T10:00:00+01:00",
    ]
    tail = _page(client, _links(sorted_page)["next"])
    assert [e["resource"]["date"] for e in tail["entry"]] == ["2024-04-01T08:00:00Z"]
    # POST _search: the next link is a GET carrying the criteria sent in the body
    posted = client.post(
        "/DocumentReference/_search",
        content=f"subject=Patient/{ids['Dupré']}&_count=1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ).json()
    assert "total" not in posted and _matched(posted) == [ids["n1"]]
    nxt = _links(posted)["next"]
    assert nxt == f"https://test/fhir/DocumentReference?subject=Patient%2F{ids['Dupré']}&_count=1&_offset=1"
    assert _page(client, nxt)["entry"][0]["resource"]["subject"] == {"reference": f"Patient/{ids['Dupré']}"}


def test_search_total_none_count_zero_and_bad_paging_parameters(seeded) -> None:  # noqa: ANN001
    client, _ = seeded
    uncounted = client.get("/DocumentReference", params={"_count": "1", "_total": "none"}).json()
    assert "total" not in uncounted and len(uncounted["entry"]) == 1
    assert _links(uncounted)["next"] == "https://test/fhir/DocumentReference?_count=1&_total=none&_offset=1"
    last = _page(client, "/DocumentReference?_count=1&_total=none&_offset=2")
    assert "total" not in last and len(last["entry"]) == 1 and set(_links(last)) == {"self"}
    accurate = client.get("/DocumentReference", params={"_count": "1", "_total": "accurate"}).json()
    assert (accurate["total"], len(accurate["entry"])) == (3, 1)
    assert _links(accurate)["next"] == "https://test/fhir/DocumentReference?_count=1&_total=accurate&_offset=1"
    assert _page(client, _links(accurate)["next"])["total"] == 3  # every page of an accurate search is counted
    # estimate without an index narrowing the candidates: every note is read, the count is exact
    assert client.get("/DocumentReference", params={"_count": "1", "_total": "estimate"}).json()["total"] == 3
    # _count=0 is _summary=count (R4 search.html §3.1.1.5.3): counted although the client sends no _total
    only_count = client.get("/DocumentReference", params={"_count": "0"}).json()
    assert only_count["total"] == 3 and "entry" not in only_count and set(_links(only_count)) == {"self"}
    nothing = client.get("/DocumentReference", params={"_count": "0", "_total": "none"}).json()
    assert "total" not in nothing and "entry" not in nothing and set(_links(nothing)) == {"self"}
    for params in ({"_count": "abc"}, {"_count": "1.5"}, {"_offset": "-2"}, {"_offset": "x"}, {"_total": "maybe"}):
        response = client.get("/DocumentReference", params=params)
        assert response.status_code == 400, params
        assert [i["code"] for i in outcome_of(response)["issue"]] == ["invalid"]


def test_chained_search_narrowed_by_the_index_still_reads_the_parameter_path(seeded) -> None:  # noqa: ANN001
    """A note referencing the searched person elsewhere than at ``subject`` is in the reference index for her; the
    chained ``patient.identifier`` must still not find it."""
    client, ids = seeded
    elsewhere = note(f"Patient/{ids['Leroy']}", author=f"Patient/{ids['Dupré']}")
    n4 = client.post("/DocumentReference", json=elsewhere, headers=JSON).json()["id"]
    chained = {"patient.identifier": f"{INS['system']}|238047505612394"}
    assert _found(client, "/DocumentReference", chained) == [ids["n1"], ids["n2"]]
    assert _found(client, "/DocumentReference", {"author:Patient.family": "dupre"}) == [n4]
    # _total=estimate stops at the page + 1 like none and gives the index superset (the three notes referencing
    # Dupré anywhere), an upper bound of the two that match; accurate counts them
    by_ref = {"subject": f"Patient/{ids['Dupré']}", "_count": "1"}
    estimated = client.get("/DocumentReference", params={**by_ref, "_total": "estimate"}).json()
    assert (estimated["total"], _matched(estimated), "next" in _links(estimated)) == (3, [ids["n1"]], True)
    accurate = client.get("/DocumentReference", params={**by_ref, "_total": "accurate"}).json()
    assert (accurate["total"], _matched(accurate)) == (2, [ids["n1"]])
    # a short result is read to its end: the estimate is then exact
    short = client.get("/DocumentReference", params={**by_ref, "_count": "5", "_total": "estimate"}).json()
    assert (short["total"], _matched(short)) == (2, [ids["n1"], ids["n2"]])


@pytest.mark.parametrize(("option", "total"), [(None, None), (Total.NONE, None), (Total.ACCURATE, 3)])
def test_search_total_option_decides_the_count_when_the_client_asks_none(
    option: Total | None, total: int | None
) -> None:
    """Issue 18: no full count unless asked, by default; ``search_total="accurate"`` counts every search. Either way
    the client's own ``_total`` wins, and the page is the same."""
    server, _ = make_server(search_total=option)
    with TestClient(server.app()) as client:
        pid = client.post("/Patient", json=patient(), headers=JSON).json()["id"]
        notes = [
            client.post("/DocumentReference", json=note(f"Patient/{pid}"), headers=JSON).json()["id"] for _ in "abc"
        ]
        page = client.get("/DocumentReference", params={"subject": f"Patient/{pid}", "_count": "2"}).json()
        assert (page.get("total"), _matched(page)) == (total, notes[:2])
        assert _links(page)["next"].endswith(f"?subject=Patient%2F{pid}&_count=2&_offset=2")
        asked = client.get("/DocumentReference", params={"_count": "2", "_total": "none"}).json()
        assert ("total" in asked, _matched(asked)) == (False, notes[:2])
        asked = client.get("/DocumentReference", params={"_count": "2", "_total": "accurate"}).json()
        assert (asked["total"], _matched(asked)) == (3, notes[:2])


def test_unknown_search_parameters_are_warned_or_refused_when_strict(seeded) -> None:  # noqa: ANN001
    client, ids = seeded
    lenient = client.get("/Patient", params={"shoe-size": "42"}).json()
    assert "total" not in lenient and _ids(lenient, "outcome") == ["OperationOutcome"]
    assert _matched(lenient) == [ids["Dupré"], ids["Leroy"]]
    strict = client.get("/Patient", params={"shoe-size": "42"}, headers={"prefer": "handling=strict"})
    assert strict.status_code == 400 and outcome_of(strict)["issue"][0]["code"] == "not-supported"


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2024", "2024-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
        ("2024-02", "2024-02-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00"),
        ("2024-12-31", "2024-12-31T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
        ("2024-03-05T10:00:00+01:00", "2024-03-05T10:00:00+01:00", "2024-03-05T10:00:01+01:00"),
    ],
)
def test_partial_dates_are_ranges(text: str, start: str, end: str) -> None:
    found = date_range(text)
    assert found is not None and (found[0].isoformat(), found[1].isoformat()) == (start, end)
    assert date_range("2024-13") is None and date_range("hier") is None


# ------------------------------------------------------------------------------------------ transaction / batch
def _transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def test_transaction_rewrites_references_and_answers_in_request_order(fhir) -> None:  # noqa: ANN001
    client, server, recorder = fhir
    bundle = _transaction(
        {
            "fullUrl": "urn:uuid:n",
            "resource": note("urn:uuid:p"),
            "request": {"method": "POST", "url": "DocumentReference"},
        },
        {
            "fullUrl": "urn:uuid:p",
            "resource": patient(),
            "request": {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": f"identifier={INS['system']}|{INS['value']}",
            },
        },
    )
    response = client.post("/", json=bundle, headers=JSON)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    assert [e["response"]["status"] for e in result["entry"]] == ["201 Created", "201 Created"]
    note_location, patient_location = (e["response"]["location"] for e in result["entry"])
    assert note_location.startswith("DocumentReference/") and patient_location.startswith("Patient/")
    stored = server.store.all("DocumentReference")[0].resource
    assert stored["subject"]["reference"] == patient_location.split("/_history")[0]
    again = client.post("/", json=bundle, headers=JSON).json()  # the Patient exists now: reused, not duplicated
    assert again["entry"][1]["response"]["status"] == "200 OK" and server.store.count("Patient") == 1
    assert server.store.count("DocumentReference") == 2
    assert [e.operation for e in recorder.exchanges[:3]] == [
        "fhir.transaction",
        "fhir.create.DocumentReference",
        "fhir.create.Patient",
    ]


def test_transaction_is_all_or_nothing(fhir) -> None:  # noqa: ANN001
    client, server, recorder = fhir
    bundle = _transaction(
        {"fullUrl": "urn:uuid:p", "resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        {"resource": note("Patient/nowhere"), "request": {"method": "POST", "url": "DocumentReference"}},
    )
    response = client.post("/", json=bundle, headers=JSON)
    assert response.status_code == 422
    assert outcome_of(response)["issue"][0]["expression"] == ["Bundle.entry[1].resource.subject"]
    assert server.store.count() == 0
    assert [(e.operation, e.outcome) for e in recorder.exchanges] == [
        ("fhir.transaction", Outcome.REJECTED),
        ("fhir.create.Patient", Outcome.REJECTED),
        ("fhir.create.DocumentReference", Outcome.REJECTED),
    ]
    duplicate = _transaction(
        *[{"resource": {**patient(), "id": "a"}, "request": {"method": "PUT", "url": "Patient/a"}}] * 2
    )
    assert client.post("/", json=duplicate, headers=JSON).status_code == 400
    missing = _transaction({"resource": patient()})
    assert client.post("/", json=missing, headers=JSON).status_code == 400
    stale = _transaction(
        {"resource": {**patient(), "id": "a"}, "request": {"method": "PUT", "url": "Patient/a", "ifMatch": 'W/"3"'}}
    )
    assert client.post("/", json=stale, headers=JSON).status_code == 412
    assert server.store.count() == 0


def test_batch_entries_succeed_or_fail_alone(fhir) -> None:  # noqa: ANN001
    client, server, _ = fhir
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {"resource": note("Patient/nowhere"), "request": {"method": "POST", "url": "DocumentReference"}},
            {"request": {"method": "GET", "url": "Patient?family=dupre"}},
            {"request": {"method": "GET", "url": "Patient/nope"}},
        ],
    }
    response = client.post("/", json=bundle, headers=JSON)
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[0] == "201 Created" and statuses[1].startswith("422") and statuses[3].startswith("404")
    assert response.json()["entry"][2]["resource"]["type"] == "searchset"
    assert server.store.count("Patient") == 1 and server.store.count("DocumentReference") == 0


def test_capability_statement_describes_the_server(fhir) -> None:  # noqa: ANN001
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    client, server, _ = fhir
    statement = client.get("/metadata").json()
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1" and {"application/fhir+json", "application/fhir+xml"} <= set(
        statement["format"]
    )
    documents = next(r for r in statement["rest"][0]["resource"] if r["type"] == "DocumentReference")
    assert documents["versioning"] == "versioned-update" and documents["conditionalDelete"] == "single"
    assert {"patient", "date", "type"} <= {p["name"] for p in documents["searchParam"]}
    assert "DocumentReference:subject" in documents["searchInclude"]
    assert {i["code"] for i in statement["rest"][0]["interaction"]} == {"transaction", "batch"}


def test_a_narrative_smuggling_a_doctype_in_json_is_refused(fhir) -> None:  # noqa: ANN001
    client, server, _ = fhir
    div = '<!DOCTYPE div [<!ENTITY e SYSTEM "file:///etc/passwd">]><div xmlns="http://www.w3.org/1999/xhtml">&e;</div>'
    response = client.post("/Patient", json={**patient(), "text": {"status": "generated", "div": div}}, headers=JSON)
    assert response.status_code == 400 and outcome_of(response)["issue"][0]["code"] == "structure"
    assert server.store.count() == 0
    safe = {
        **patient(),
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Élise</div>'},
    }
    created = client.post("/Patient", json=safe, headers={**JSON, "accept": "application/fhir+xml"})
    assert created.status_code == 201 and b'<div xmlns="http://www.w3.org/1999/xhtml">' in created.content


def test_json_nesting_and_narratives_are_checked_whatever_the_shortcuts() -> None:
    """``parse_json`` refuses a nesting beyond 100 (not 100 itself), also when strings hold more brackets than the
    value nests; ``narrative_findings`` finds an unsafe ``div`` wherever it is, and nothing without one."""
    nested = lambda depth: b"[" * depth + b"]" * depth  # noqa: E731
    with pytest.raises(FhirError) as refused:
        parse_json(b'{"resourceType":"Basic","x":' + nested(100) + b"}")
    assert refused.value.error_code == "FHIR-JSON-PROFONDEUR"
    assert parse_json(b'{"resourceType":"Basic","x":' + nested(99) + b"}")["resourceType"] == "Basic"
    brackets = json.dumps({"resourceType": "Basic", "text": "{[" * 200, "x": [[{"y": [1]}]]}).encode()
    assert parse_json(brackets)["text"] == "{[" * 200
    unsafe = '<!DOCTYPE div [<!ENTITY e "x">]><div xmlns="http://www.w3.org/1999/xhtml">&e;</div>'
    resource = {"resourceType": "Patient", "contained": [{"resourceType": "Basic", "text": {"div": unsafe}}]}
    assert [f.location for f in narrative_findings(resource, "Patient")] == ["Patient.contained[0].text.div"]
    assert narrative_findings({**resource, "contained": [{"text": {"div": {"div": unsafe}}}]}, "P")[0].location == (
        "P.contained[0].text.div.div"
    )
    assert narrative_findings({"resourceType": "Patient", "contained": [{"text": {"status": "empty"}}]}) == []


def test_a_settled_chain_and_includes_read_each_reference_once_with_the_same_results() -> None:
    """``Matcher``: a settled chain matches by the ``Type/id`` of a reference (relative, absolute, versioned; not a
    contained or untyped one), worked out once per reference; ``included`` resolves a reference shared by several
    matches once and still gives each target once, never a match."""
    resolved: list[tuple[str, str]] = []
    store = {("Patient", "p1"): {"resourceType": "Patient", "id": "p1"}, ("Device", "d1"): {"resourceType": "Device"}}

    def resolve(rtype: str, rid: str) -> dict[str, Any] | None:
        resolved.append((rtype, rid))
        return store.get((rtype, rid))

    registry = SearchRegistry()
    subject = SearchParam("subject", ParamType.REFERENCE, ("subject",), ("Patient",))
    registry.add("Observation", [subject])
    criterion = Criterion(subject, None, ("x",), "identifier")
    matcher = Matcher(registry, resolve)
    matcher.settle(criterion, ["Patient/p1"])
    refs = ["Patient/p1", "https://b/fhir/Patient/p1/_history/2", "Patient/p2", "#p1", "p1", "Patient/p1"]
    notes = [{"resourceType": "Observation", "id": f"o{n}", "subject": {"reference": r}} for n, r in enumerate(refs)]
    assert [matcher.matches(n, criterion) for n in notes] == [True, True, False, False, False, True]
    included = matcher.included([*notes, {"resourceType": "Patient", "id": "p1"}], [("Observation", "subject", None)])
    assert included == []  # p1 is a match itself: not included
    assert resolved == [("Patient", "p1"), ("Patient", "p1"), ("Patient", "p2")]  # once per reference written
    included = matcher.included(notes, [("Observation", "subject", None)])
    assert included == [store[("Patient", "p1")]] and len(resolved) == 6


def test_among_reads_the_indexed_ids_lazily_in_creation_order() -> None:
    """``ResourceStore.among``: creation order whatever the set's order, unknown and deleted ids skipped, ``len`` the
    ids known (the estimate's upper bound), each version read only when reached (a later write is seen)."""
    store = ResourceStore()
    with store.exclusive() as uow:
        ids = [uow.create("Patient", patient(f"P{n}")).id for n in range(5)]
        uow.commit()
    with store.exclusive() as uow:
        uow.delete("Patient", ids[3])
        uow.commit()
    found = store.among("Patient", {ids[4], ids[0], ids[3], ids[2], "unknown"})
    assert len(found) == 4
    first = iter(found)
    assert next(first).id == ids[0]
    with store.exclusive() as uow:
        uow.update("Patient", ids[2], {**patient("Changed"), "id": ids[2]})
        uow.commit()
    rest = list(first)
    assert [v.id for v in rest] == [ids[2], ids[4]]
    assert rest[0].resource is not None and rest[0].resource["name"][0]["family"] == "Changed"
    assert [v.id for v in found] == [ids[0], ids[2], ids[4]]  # read again from the start: each iteration its own
    assert [v.id for v in store.among("Patient", {ids[4], ids[1]})] == [ids[1], ids[4]]  # every id known


def test_among_referencing_follows_the_reference_index_as_it_changes() -> None:
    """``ResourceStore.among_referencing``: what ``among`` gives for the ids of ``referencing``, also once its
    sorted ranks are kept and the index changes after them (a new referrer, one moved to another target, a deletion,
    one moved back), and through a unit of work with staged writes of the type."""
    store = ResourceStore()

    def observation(subject: str) -> dict[str, Any]:
        return {"resourceType": "Observation", "status": "final", "subject": {"reference": subject}}

    def same(target: str) -> list[str]:
        expected = [v.id for v in store.among("Observation", store.referencing("Observation", target))]
        assert [v.id for v in store.among_referencing("Observation", target)] == expected
        assert len(store.among_referencing("Observation", target)) == len(store.referencing("Observation", target))
        return expected

    with store.exclusive() as uow:
        ids = [uow.create("Observation", observation(f"Patient/p{n % 2}")).id for n in range(6)]
        uow.commit()
    assert same("Patient/p0") == [ids[0], ids[2], ids[4]] and same("Patient/p1") == [ids[1], ids[3], ids[5]]
    with store.exclusive() as uow:
        ids.append(uow.create("Observation", observation("Patient/p0")).id)
        uow.update("Observation", ids[0], {**observation("Patient/p1"), "id": ids[0]})
        uow.delete("Observation", ids[2])
        uow.commit()
    assert same("Patient/p0") == [ids[4], ids[6]] and same("Patient/p1") == [ids[0], ids[1], ids[3], ids[5]]
    with store.exclusive() as uow:
        uow.update("Observation", ids[0], {**observation("Patient/p0"), "id": ids[0]})
        uow.commit()
    assert same("Patient/p0") == [ids[0], ids[4], ids[6]] and same("Patient/p9") == []
    with store.exclusive() as uow:
        staged = uow.create("Observation", observation("Patient/p0")).id
        uow.update("Observation", ids[4], {**observation("Patient/p1"), "id": ids[4]})
        seen = [v.id for v in uow.among_referencing("Observation", "Patient/p0")]
        assert seen == [v.id for v in uow.among("Observation", store.referencing("Observation", "Patient/p0"))]
        assert seen == [ids[0], ids[4], ids[6]] and staged not in seen  # the store's index, read through the unit


def test_a_version_body_is_an_independent_deep_copy() -> None:
    """``Version.body`` (and the copy a write stores) share no dict or list with the store: a caller changing what
    it got, or what it wrote, leaves the stored resource as it was."""
    store = ResourceStore()
    written = {**patient("Dupré"), "extension": [{"url": "x", "valueCodeableConcept": {"coding": [{"code": "a"}]}}]}
    with store.exclusive() as uow:
        pid = uow.create("Patient", written).id
        uow.commit()
    written["name"][0]["given"].append("écrit")
    body = store.read("Patient", pid).body()
    body["name"][0]["given"].append("lu")
    body["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = "b"
    stored = store.read("Patient", pid).resource
    assert stored is not None and stored["name"][0]["given"] == ["Élise"]
    assert stored["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "a"
    assert store.read("Patient", pid).body() == {**stored}


def test_a_captured_store_snapshot_is_the_state_at_capture_time() -> None:
    """``ResourceStore.capture()`` (taken under the replica's lock, harness.core.state) copies the histories and
    the reference index: its ``build()``, run afterwards outside the locks, gives the state at capture time."""
    from harness.core.state import Deferred

    store = ResourceStore()

    def put(rid: str, target: str) -> None:
        with store.exclusive() as uow:
            note = {"resourceType": "DocumentReference", "id": rid, "subject": {"reference": target}}
            uow.update("DocumentReference", rid, note)
            uow.commit()

    put("d0", "Patient/p1")
    put("d1", "Patient/p1")
    before = store.snapshot()
    captured = store.capture()
    assert isinstance(captured, Deferred)
    put("d1", "Patient/p2")  # a new version of d1, the reference index changed
    put("d2", "Patient/p1")  # a new resource, p1's index set grows
    with store.exclusive() as uow:
        uow.delete("DocumentReference", "d0")
        uow.commit()
    assert captured.build() == before != store.snapshot()
    assert before["refs"] == {"DocumentReference": {"Patient/p1": ["d0", "d1"]}}


def test_a_read_answers_its_version_as_stored_and_renders_it_once(fhir) -> None:  # noqa: ANN001
    """The JSON of a version read is rendered once (issue 18), byte for byte what rendering the resource gives, in
    read and vread, and an update's new version gets its own."""
    client, server, _ = fhir
    pid = client.post("/Patient", json=patient(), headers=JSON).json()["id"]
    stored = server.store.read("Patient", pid)
    expected = json.dumps(stored.resource, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    first, again = client.get(f"/Patient/{pid}"), client.get(f"/Patient/{pid}/_history/1")
    assert first.content == again.content == expected
    assert stored.derived("fhir.json", lambda _: b"not computed again") == expected
    changed = {**first.json(), "active": True}
    assert client.put(f"/Patient/{pid}", json=changed, headers={**JSON, "If-Match": 'W/"1"'}).status_code == 200
    assert client.get(f"/Patient/{pid}").json()["active"] is True
    assert client.get(f"/Patient/{pid}/_history/1").content == expected
    assert b"<Patient" in client.get(f"/Patient/{pid}", headers={"Accept": "application/fhir+xml"}).content


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/Patient/1", b""),
        ("/Patient/é", b"name=Dupr%C3%A9&_format=json"),
        ("/a?b", b""),
        ("/a#b", b"x"),
        ("/a\\b", b""),
        ("/a\tb\n", b"q=\r1"),
        ("/a", b"x#y"),
        ("//double", b""),
        ("no-slash", b"a=b"),
    ],
)
def test_request_path_and_query_are_what_the_starlette_url_gives(path: str, query: bytes) -> None:
    from starlette.requests import Request

    from harness.fhir.server import path_and_query

    for server_address in (("127.0.0.1", 8443), None):
        for host in (b"localhost:8443", b"bad host"):
            scope = {
                "type": "http",
                "method": "GET",
                "scheme": "https",
                "path": path,
                "query_string": query,
                "headers": [(b"host", host)],
                "server": server_address,
            }
            assert path_and_query(Request(scope)) == (Request(scope).url.path, Request(scope).url.query)
