"""Hostile corpus, FHIR services (issue 15 item 9): e-Parcours cahier de liaison, e-Prescription and TDDUI.

Each case sends one hostile request to one endpoint and asserts the exact HTTP status and OperationOutcome issue
code of the FHIR R4 RESTful API (http://hl7.org/fhir/R4/http.html), that a journal row records it, and that the
service answers a normal request right after. Payloads: XML attacks (billion laughs, external entities, DOCTYPE,
foreign namespace), JSON nesting bombs and malformations, oversized bodies and Bundles, wrong media types, missing
or foreign client certificates; hostile searches (counts, chains, dates, strict handling).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir_access import EHPAD, certificate, essms, presenting
from hostile import BILLION_LAUGHS
from starlette.testclient import TestClient

from harness.core.journal import JournalFilter, SQLiteJournal
from harness.fields.testdata import load_testdata
from harness.host.simulator import FaultBoard, RunState, SimulatorContext
from mock_services.eparcours import EparcoursSimulator
from mock_services.eprescription import EprescriptionSimulator
from mock_services.tddui import TdduiSimulator

REPO = Path(__file__).resolve().parents[1]
FJSON = "application/fhir+json"
FXML = "application/fhir+xml"
XXE = b"""<?xml version="1.0"?><!DOCTYPE Bundle [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Bundle xmlns="http://hl7.org/fhir"><type value="&x;"/></Bundle>"""
DOCTYPE_ONLY = (
    b'<?xml version="1.0"?><!DOCTYPE Bundle><Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/></Bundle>'
)
FOREIGN_NS = b'<Bundle xmlns="urn:autre"><type value="transaction"/></Bundle>'
NOT_XML = b"<Bundle xmlns='http://hl7.org/fhir'><type value='transaction'></Bundle>"


def _nested(depth: int) -> bytes:
    return b'{"resourceType":"Bundle","type":"transaction","x":' + b"[" * depth + b"]" * depth + b"}"


def _bundle(entries: int) -> bytes:
    entry = {"request": {"method": "GET", "url": "Patient?identifier=x"}}
    return json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [entry] * entries}).encode()


NARRATIVE_XXE = json.dumps(
    {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "text": {
                        "status": "generated",
                        "div": '<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]><div xmlns="http://www.w3.org/1999/xhtml">&e;</div>',
                    },
                },
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
).encode()

#: (label, body, content type, expected status, expected issue code); the body goes to each write endpoint
BODIES: list[tuple[str, bytes, str, int, str]] = [
    ("billion-laughs", BILLION_LAUGHS, FXML, 400, "security"),
    ("xxe", XXE, FXML, 400, "security"),
    ("doctype", DOCTYPE_ONLY, FXML, 400, "security"),
    ("namespace", FOREIGN_NS, FXML, 400, "structure"),
    ("xml-malformed", NOT_XML, FXML, 400, "structure"),
    ("json-nested-1000", _nested(1000), FJSON, 400, "structure"),
    ("json-nested-150", _nested(150), FJSON, 400, "structure"),
    ("json-nested-100000", _nested(100_000), FJSON, 400, "structure"),
    ("json-nan", b'{"resourceType":"Bundle","type":"transaction","total":NaN}', FJSON, 400, "structure"),
    ("json-infinity", b'{"resourceType":"Bundle","type":"transaction","total":-Infinity}', FJSON, 400, "structure"),
    ("json-bad-utf8", b'{"resourceType":"Bundle","type":"\xff\xfe"}', FJSON, 400, "structure"),
    ("json-array", b"[1, 2, 3]", FJSON, 400, "structure"),
    ("json-empty", b"", FJSON, 400, "structure"),
    ("json-truncated", b'{"resourceType":"Bundle","type":"trans', FJSON, 400, "structure"),
    (
        "json-huge-int",
        b'{"resourceType":"Bundle","type":"transaction","total":' + b"9" * 5000 + b"}",
        FJSON,
        400,
        "structure",
    ),
    ("json-no-resource-type", b'{"type":"transaction"}', FJSON, 400, "structure"),
    ("media-text", b'{"resourceType":"Bundle"}', "text/plain", 415, "not-supported"),
    ("media-form", b"a=b", "application/x-www-form-urlencoded", 415, "not-supported"),
    ("media-absent", b'{"resourceType":"Bundle"}', "", 415, "not-supported"),
]
OVERSIZED = 6 * 1024 * 1024  # beyond the e-Parcours (2 MB) and e-Prescription (1 MB) bounds

SERVICES: dict[str, tuple[type, list[str]]] = {
    "eparcours": (EparcoursSimulator, ["/fhir", "/fhir/DocumentReference"]),
    "eprescription": (EprescriptionSimulator, ["/fhir/Task"]),
    "tddui": (TdduiSimulator, ["/"]),
}
PROBE = {"eparcours": "/fhir/metadata", "eprescription": "/fhir/metadata", "tddui": "/metadata"}


class Running:
    def __init__(self, tmp: Path, name: str) -> None:
        cls, self.paths = SERVICES[name]
        self.name = name
        self.journal = SQLiteJournal(tmp / f"{name}.sqlite")
        ctx = SimulatorContext(
            name=name,
            journal=self.journal,
            pki=None,  # type: ignore[arg-type]
            bind_host="127.0.0.1",
            ports={},
            http_base=f"https://127.0.0.1/{name}",
            faults=FaultBoard(),
            run=RunState("hostile"),
            testdata=load_testdata(REPO / "fixtures"),
        )
        self.app = cls(ctx).http_app()
        self.client = TestClient(presenting(self.app, essms(EHPAD)))

    def rows(self) -> int:
        return self.journal.count(JournalFilter(service=self.name))

    def still_answers(self) -> None:
        assert self.client.get(PROBE[self.name]).status_code == 200


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Running]]:
    tmp = tmp_path_factory.mktemp("hostile-fhir")
    services = {name: Running(tmp, name) for name in SERVICES}
    yield services
    for service in services.values():
        service.client.close()
        service.journal.close()


def _check(service: Running, response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text[:300]
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == code


WRITE_CASES = [(name, path, *body) for name, (_, paths) in SERVICES.items() for path in paths for body in BODIES]


@pytest.mark.parametrize(
    ("name", "path", "label", "body", "media", "status", "code"),
    WRITE_CASES,
    ids=[f"{c[0]}{c[1]}-{c[2]}" for c in WRITE_CASES],
)
def test_hostile_body(
    running: dict[str, Running], name: str, path: str, label: str, body: bytes, media: str, status: int, code: str
) -> None:
    service = running[name]
    before = service.rows()
    headers = {"content-type": media} if media else {}
    _check(service, service.client.post(path, content=body, headers=headers), status, code)
    assert service.rows() == before + 1
    service.still_answers()


OTHER_CASES = [
    (name, path, label)
    for name, (_, paths) in SERVICES.items()
    for path in paths
    for label in ("oversized", "too-many-entries", "no-certificate", "insi-certificate", "narrative-xxe")
]


@pytest.mark.parametrize(("name", "path", "label"), OTHER_CASES, ids=[f"{c[0]}{c[1]}-{c[2]}" for c in OTHER_CASES])
def test_hostile_request(running: dict[str, Running], name: str, path: str, label: str) -> None:
    service = running[name]
    before = service.rows()
    client = service.client
    if label == "oversized":
        expected = (413, "too-costly") if name != "tddui" else (400, "structure")  # TDDUI's bound is 50 MB
        response = client.post(path, content=b"{" * OVERSIZED, headers={"content-type": FJSON})
    elif label == "too-many-entries":
        expected = (413, "too-costly") if name != "tddui" else (422, "invalid")  # TDDUI bounds 200,000 entries
        response = client.post(
            path, content=_bundle(1001 if name == "tddui" else 1001), headers={"content-type": FJSON}
        )
        if name == "eprescription":  # a Task endpoint: a Bundle is the wrong resource
            expected = (413, "too-costly")
        if name == "eparcours" and path.endswith("DocumentReference"):
            expected = (413, "too-costly")
    elif label in ("no-certificate", "insi-certificate"):
        cert = None if label == "no-certificate" else certificate("INSI-AUTO")
        with TestClient(presenting(service.app, cert)) as anonymous:
            response = anonymous.post(path, content=b"{" * OVERSIZED, headers={"content-type": FJSON})
        expected = (403, "login" if cert is None else "forbidden")
    else:  # an external entity in a narrative: refused by the hardened XML parser before any rendering
        response = client.post(path, content=NARRATIVE_XXE, headers={"content-type": FJSON})
        expected = {
            "/fhir": (400, "structure"),  # XML-DOCTYPE-FORBIDDEN on Bundle.entry[0].resource.text.div
            "/fhir/DocumentReference": (400, "invalid"),  # a Bundle on the DocumentReference endpoint
            "/fhir/Task": (400, "invalid"),
            "/": (422, "invalid"),  # TDDUI never renders it; refused for its own rules (no fullUrl)
        }[path]
    _check(service, response, *expected)
    assert service.rows() == before + 1
    service.still_answers()


SEARCHES = [
    ("eparcours", "/fhir/DocumentReference?_count=-1", 400, "invalid"),
    ("eparcours", "/fhir/DocumentReference?_count=99999999999999999999", 200, ""),  # capped (R4 §3.1.1.5.6)
    ("eparcours", "/fhir/DocumentReference?date=pas-une-date", 400, "invalid"),
    ("eparcours", "/fhir/DocumentReference?" + "&".join(f"p{n}=v" for n in range(300)), 400, "not-supported"),
    (
        "eparcours",
        "/fhir/DocumentReference?subject:Patient.link:Patient.link:Patient.identifier=x",
        400,
        "not-supported",
    ),
    ("eparcours", "/fhir/DocumentReference?_include=" + ",".join(["*"] * 200), 400, "not-supported"),
    ("eparcours", "/fhir/DocumentReference/" + "a" * 300, 404, "not-found"),
    ("eparcours", "/fhir/DocumentReference?type=" + "x" * 10000, 200, ""),
    ("eparcours", "/fhir/DocumentReference?_format=application/x-autre", 406, "not-supported"),
    ("eprescription", "/fhir/MedicationRequest?group-identifier=" + "%00" * 100, 200, ""),
    ("eprescription", "/fhir/MedicationRequest?authoredon=ge2025-13-45", 400, "invalid"),
    ("eprescription", "/fhir/Binary/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404, "not-found"),
    ("tddui", "/Patient", 404, "not-supported"),
]


@pytest.mark.parametrize(
    ("name", "url", "status", "code"), SEARCHES, ids=[f"{s[0]}-{n}" for n, s in enumerate(SEARCHES)]
)
def test_hostile_search(running: dict[str, Running], name: str, url: str, status: int, code: str) -> None:
    service = running[name]
    before = service.rows()
    response = service.client.get(url, headers={"prefer": "handling=strict"})
    if status == 200:
        assert response.status_code == 200
        assert (response.json()["type"], response.json().get("entry")) == ("searchset", None)  # nothing matches
    else:
        _check(service, response, status, code)
    assert service.rows() == before + 1
    service.still_answers()


MALFORMED_NOTES = [
    {"resourceType": "DocumentReference", "type": "OBS", "subject": "Patient/1", "author": "x"},
    {"resourceType": "DocumentReference", "status": "current", "content": "texte", "securityLabel": "MASQUE_PS"},
    {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{"attachment": {"data": "!!pas du base64"}}],
    },
    {"resourceType": "DocumentReference", "status": "current", "content": [{}], "subject": {"reference": 42}},
    {"resourceType": "DocumentReference", "status": "current", "content": [{}], "extension": [{"url": None}]},
    {"resourceType": "DocumentReference", "id": "../../x", "status": "current", "content": [{}]},
    {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{}],
        "contained": [{"resourceType": "Bundle"}] * 50,
    },
]


@pytest.mark.parametrize("index", range(len(MALFORMED_NOTES)))
@pytest.mark.parametrize("as_bundle", [False, True], ids=["restful", "transaction"])
def test_malformed_note_is_refused_and_journaled(running: dict[str, Running], index: int, as_bundle: bool) -> None:
    service = running["eparcours"]
    before = service.rows()
    note = MALFORMED_NOTES[index]
    if as_bundle:
        body = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": note, "request": {"method": "POST", "url": "DocumentReference"}}],
        }
        response = service.client.post("/fhir", content=json.dumps(body), headers={"content-type": FJSON})
    else:
        response = service.client.post(
            "/fhir/DocumentReference", content=json.dumps(note), headers={"content-type": FJSON}
        )
    assert response.status_code in (400, 422), response.text[:300]  # a client error, never 500
    assert response.json()["resourceType"] == "OperationOutcome"
    assert service.rows() > before
    service.still_answers()


def test_tddui_refuses_a_body_beyond_its_bound_with_413_before_reading_it(tmp_path: Path) -> None:
    """Issue 15 item 6: TDDUI read 60 MB before answering 400 TDDUI-TAILLE; the bound is now the FHIR layer's
    (Content-Length checked first, the stream counted otherwise): 413 too-costly, journaled."""
    journal = SQLiteJournal(tmp_path / "j.sqlite")
    ctx = SimulatorContext(
        name="tddui",
        journal=journal,
        pki=None,  # type: ignore[arg-type]
        bind_host="127.0.0.1",
        ports={},
        http_base="https://127.0.0.1/tddui",
        faults=FaultBoard(),
        run=RunState("hostile"),
        testdata=load_testdata(REPO / "fixtures"),
        settings={"max_bytes": 1024 * 1024},
    )
    with TestClient(presenting(TdduiSimulator(ctx).http_app(), essms(EHPAD))) as client:
        declared = client.post(
            "/", content=b"{}", headers={"content-type": FJSON, "content-length": str(60 * 1024 * 1024)}
        )
        streamed = client.post("/", content=(b" " * 65536 for _ in range(40)), headers={"content-type": FJSON})
        assert client.get("/metadata").status_code == 200
    for response in (declared, streamed):
        assert (response.status_code, response.json()["issue"][0]["code"]) == (413, "too-costly")
    rows = journal.query(JournalFilter(service="tddui", operation="fhir.transaction"))
    assert [(r.error_code, r.details["findings"][0]["code"]) for r in rows] == [("413", "FHIR-TOO-LARGE")] * 2
    journal.close()
