"""TDDUI: the DUI-side Bundle, its validation, and the simulator's HTTP behaviour and journal records."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fhir_access import essms, presenting
from starlette.testclient import TestClient

from harness.core.journal import JournalFilter, Outcome, SQLiteJournal
from harness.fields import dui
from harness.fields.dui import AgendaEvent, DuiRecord, EventStatus, PersonalPlan, PlanStatus, Stay
from harness.fields.identity import parse_ins
from harness.fields.testdata import Establishment, Person
from harness.fields.testdata import TestData as Fixtures
from harness.host.simulator import Fault, FaultBoard, RunState, SimulatorContext
from harness.sut.base import TdduiExport
from harness.sut.tddui_actions import build_tddui_bundle
from harness.validators.tddui import validate_bundle
from mock_services.tddui import TdduiSimulator

PARIS = ZoneInfo("Europe/Paris")
EST = Establishment(
    finess="990000016",
    finess_juridique="990000008",
    name="EHPAD Les Tilleuls",
    category="EHPAD",
    mailbox="secretariat@ehpad-tilleuls.mssante.fr",
    dui_mailbox="dui@ehpad-tilleuls.mssante.fr",
)
JEANNE = Person(
    id="P001",
    family="MARTIN",
    given="Jeanne",
    sex="F",
    birth_date=date(1938, 4, 12),
    ins=parse_ins("238047505612394", "1.2.250.1.213.1.4.10"),
    essms=EST.finess,
    patient_mailbox=True,
)
PAUL = Person(
    id="P002",
    family="LEROY",
    given="Paul",
    sex="M",
    birth_date=date(1942, 3, 30),
    ins=parse_ins("142036912304505", "1.2.250.1.213.1.4.10"),
    essms=EST.finess,
    patient_mailbox=True,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS)


def records() -> tuple[DuiRecord, ...]:
    return (
        DuiRecord(
            JEANNE,
            "U1",
            (at("2025-04-03T10:00"),),
            (Stay("1", date(2024, 6, 1)),),
            (
                PersonalPlan("1", PlanStatus.EN_PREPARATION, at("2024-06-10T14:00")),
                PersonalPlan("1", PlanStatus.ENCOURS, at("2024-12-01T14:00")),
            ),
            (
                AgendaEvent("1", at("2025-04-10T10:00"), at("2025-04-10T11:00"), at("2025-04-10T11:05")),
                AgendaEvent(
                    "2", at("2025-04-12T10:00"), at("2025-04-12T11:00"), at("2025-04-11T09:00"), EventStatus.ANNULE
                ),
            ),
        ),
        DuiRecord(PAUL, "U2", (at("2025-02-01T10:00"),), (Stay("2", date(2024, 9, 15), date(2025, 4, 10)),)),
    )


def export(**switches: bool) -> dict:
    return build_tddui_bundle(TdduiExport(EST, records(), at("2025-04-30T20:00")), **switches)


def as_bytes(bundle: dict) -> bytes:
    return json.dumps(bundle).encode()


# ------------------------------------------------------------------------------------------ validator
def test_reference_bundle_is_valid_and_facts_carry_the_producers_dates() -> None:
    report = validate_bundle(as_bytes(export()))
    assert report.findings == ()
    facts = {(f.kind, f.person): f for f in report.facts}
    stay = facts[(dui.FactKind.SEJOUR, PAUL.ins.value)]
    assert (stay.essms, stay.start, stay.end, stay.date) == (EST.finess, "2024-09-15", "2025-04-10", "2025-04-10")
    plan = facts[(dui.FactKind.PROJET, JEANNE.ins.value)]  # only the status in force at the export is sent
    assert (plan.status, plan.date) == ("active", "2024-12-01")
    usager = facts[(dui.FactKind.USAGER, JEANNE.ins.value)]
    assert usager.date == "2025-04-03" and usager.essms == EST.finess
    events = sorted((f.start, f.status, f.date) for f in report.facts if f.kind is dui.FactKind.EVENEMENT)
    assert events == [("2025-04-10", "finished", "2025-04-10"), ("2025-04-12", "cancelled", "2025-04-11")]
    assert report.essms == (EST.finess,) and len(report.entries) == 1 + 2 + 2 + 1 + 2


def test_faulty_exports_are_visible_in_the_facts() -> None:
    stamped = validate_bundle(as_bytes(export(stamp_export_time=True)))
    assert {f.date for f in stamped.facts} == {"2025-04-30"}
    no_exits = validate_bundle(as_bytes(export(omit_exits=True)))
    assert PAUL.ins.value not in {f.person for f in no_exits.facts}
    no_draft = build_tddui_bundle(TdduiExport(EST, records(), at("2024-07-01T20:00")), omit_draft_plans=True)
    assert not [f for f in validate_bundle(as_bytes(no_draft)).facts if f.kind is dui.FactKind.PROJET]


def test_profile_name_in_request_url_is_tolerated_with_a_warning() -> None:
    report = validate_bundle(as_bytes(export(profile_in_url=True)))
    assert not report.errors and report.facts
    assert {f.code for f in report.warnings} == {"TDDUI-URL-PROFIL"}
    assert report.warnings[0].location.startswith("Bundle.entry[")


@pytest.mark.parametrize(
    ("mutate", "code", "structural"),
    [
        (lambda b: b.update(type="batch"), "TDDUI-BUNDLE-TYPE", True),
        (lambda b: b.update(resourceType="Patient"), "TDDUI-BUNDLE", True),
        (lambda b: b["entry"][1]["resource"].update(gender=12), "FHIR-STRUCTURE", True),
        (lambda b: b["entry"][1]["request"].update(method="PUT"), "TDDUI-METHOD", False),
        (lambda b: b["entry"][1]["request"].update(url="Observation"), "TDDUI-URL", False),
        (
            lambda b: b["entry"][2]["resource"].update(subject={"reference": "urn:uuid:nowhere"}),
            "TDDUI-REFERENCE",
            False,
        ),
        (lambda b: b["entry"][1]["resource"]["identifier"][0].update(value="238047505612395"), "TDDUI-INS", False),
        (lambda b: b["entry"][0]["resource"].update(identifier=[]), "TDDUI-FINESS", False),
        (lambda b: b["entry"][2]["resource"].pop("period"), "TDDUI-SEJOUR-DEBUT", False),
    ],
)
def test_invalid_bundles_are_refused_with_a_stable_code(mutate, code: str, structural: bool) -> None:  # noqa: ANN001
    bundle = export()
    mutate(bundle)
    report = validate_bundle(as_bytes(bundle))
    assert code in {f.code for f in report.errors}, report.findings
    assert report.structural is structural


def test_garbage_never_raises() -> None:
    for data in (
        b"",
        b"{",
        b"[]",
        b"\xff\xfe",
        json.dumps(
            {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Nope"}}]}
        ).encode(),
    ):
        report = validate_bundle(data)
        assert report.errors


def test_bundle_without_profiles_is_read_with_warnings() -> None:
    bundle = export()
    for entry in bundle["entry"]:
        entry["resource"].pop("meta", None)
    report = validate_bundle(as_bytes(bundle))
    assert not report.errors
    assert "TDDUI-PROFIL-ABSENT" in {f.code for f in report.warnings}
    assert {f.kind for f in report.facts} == set(dui.FactKind)
    assert {f.code for f in report.warnings} >= {"TDDUI-DATE-ABSENTE"}  # no meta.lastUpdated on the Patient


# ------------------------------------------------------------------------------------------ simulator
@pytest.fixture
def sim(tmp_path: Path):  # noqa: ANN201
    yield from _sim(tmp_path, {})


def _sim(tmp_path: Path, settings: dict):  # noqa: ANN202
    journal = SQLiteJournal(tmp_path / "journal.sqlite")
    ctx = SimulatorContext(
        settings=settings,
        name="tddui",
        journal=journal,
        pki=None,
        bind_host="127.0.0.1",
        ports={},  # type: ignore[arg-type]
        http_base="https://127.0.0.1/tddui",
        faults=FaultBoard(),
        run=RunState("run1"),
        testdata=Fixtures((), (EST,), (), "G", "G"),
    )
    simulator = TdduiSimulator(ctx)
    with TestClient(presenting(simulator.http_app(), essms(EST.finess))) as client:
        yield client, journal, ctx
    journal.close()


HEADERS = {"Content-Type": "application/fhir+json"}


def test_transaction_is_journaled_then_answered(sim) -> None:  # noqa: ANN001
    client, journal, ctx = sim
    ctx.run.clock = lambda: at("2025-04-30T20:00")
    body = as_bytes(export())
    response = client.post("/", content=body, headers=HEADERS)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/fhir+json")
    answer = response.json()
    assert answer["type"] == "transaction-response" and len(answer["entry"]) == len(export()["entry"])
    assert all(e["response"]["status"] == "201 Created" for e in answer["entry"])
    [bundle] = journal.query(JournalFilter(service="tddui", operation=dui.OP_TRANSACTION))
    assert bundle.outcome is Outcome.ACCEPTED and bundle.month == "2025-04" and bundle.run_id == "run1"
    assert journal.payload(bundle.digest or "") == body
    facts = journal.query(JournalFilter(service="tddui", operation=str(dui.FactKind.SEJOUR)))
    assert {f.person for f in facts} == {JEANNE.ins.value, PAUL.ins.value}
    assert all(f.digest == bundle.digest and f.details[dui.BUNDLE] == bundle.id for f in facts)
    # the server's own time is in the answer (lastModified), never in the facts: they keep the DUI's dates
    server_day = answer["entry"][0]["response"]["lastModified"][:10]
    assert {f.details[dui.FACT][dui.DATE] for f in facts} == {"2024-06-01", "2025-04-10"}
    assert server_day not in {f.details[dui.FACT][dui.DATE] for f in facts}


def test_profile_quirk_answered_with_an_outcome_per_entry(sim) -> None:  # noqa: ANN001
    client, journal, _ = sim
    response = client.post("/", content=as_bytes(export(profile_in_url=True)), headers=HEADERS)
    assert response.status_code == 200
    outcomes = [e["response"].get("outcome") for e in response.json()["entry"]]
    assert all(o and o["issue"][0]["severity"] == "warning" for o in outcomes)
    [bundle] = journal.query(JournalFilter(operation=dui.OP_TRANSACTION))
    assert {f["code"] for f in bundle.details["findings"]} == {"TDDUI-URL-PROFIL"}


@pytest.mark.parametrize(
    ("body", "headers", "status", "issue_code"),
    [
        (b"{}", {"Content-Type": "text/plain"}, 415, "not-supported"),
        (b"not json", HEADERS, 400, "structure"),
        (json.dumps({"resourceType": "Bundle", "type": "collection"}).encode(), HEADERS, 400, "structure"),
    ],
)
def test_refusals_are_operation_outcomes_and_journaled(
    sim, body: bytes, headers: dict, status: int, issue_code: str
) -> None:  # noqa: ANN001
    client, journal, _ = sim
    response = client.post("/", content=body, headers=headers)
    assert response.status_code == status
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == issue_code
    [exchange] = journal.query(JournalFilter(operation=dui.OP_TRANSACTION))
    assert exchange.outcome is Outcome.REJECTED and exchange.error_code == str(status)
    assert journal.count(JournalFilter(service="tddui")) == 1  # no fact of a refused transaction


def test_business_rule_violation_is_422_and_nothing_is_created(sim) -> None:  # noqa: ANN001
    client, journal, _ = sim
    bundle = export()
    bundle["entry"][1]["resource"]["identifier"][0]["value"] = "238047505612395"  # wrong INS key
    response = client.post("/", content=as_bytes(bundle), headers=HEADERS)
    assert response.status_code == 422
    assert any("TDDUI-INS" in i["diagnostics"] for i in response.json()["issue"])
    assert journal.count(JournalFilter(service="tddui", outcome=Outcome.ACCEPTED)) == 0


def test_fault_injection_and_metadata(sim) -> None:  # noqa: ANN001
    client, journal, ctx = sim
    ctx.faults.inject("tddui", Fault("fhir.reply", {"status": 503, "message": "maintenance"}))
    refused = client.post("/", content=as_bytes(export()), headers=HEADERS)
    assert refused.status_code == 503
    assert [(i["severity"], i["code"]) for i in refused.json()["issue"]] == [("error", "transient")]
    assert refused.json()["issue"][0]["diagnostics"].startswith("TDDUI-PANNE")
    assert client.post("/", content=as_bytes(export()), headers=HEADERS).status_code == 200
    assert client.get("/metadata").json()["fhirVersion"] == "4.0.1"
    assert [e.outcome for e in journal.query(JournalFilter(operation=dui.OP_TRANSACTION))] == [
        Outcome.REJECTED,
        Outcome.ACCEPTED,
    ]
    first = journal.query(JournalFilter(operation=dui.OP_TRANSACTION))[0]
    assert (first.error_code, [f["code"] for f in first.details["findings"]]) == ("503", ["TDDUI-PANNE"])


@pytest.mark.parametrize(("policy", "status", "severity"), [("warn", 200, "warning"), ("refuse", 422, "error")])
def test_a_production_ins_follows_the_harness_wide_policy(
    tmp_path: Path, policy: str, status: int, severity: str
) -> None:
    """issue 20: one production-INS policy for every simulator; the default ``warn`` accepts with a finding."""
    client, journal, _ = next(_sim(tmp_path, {"production_ins": policy}))
    bundle = export()
    bundle["entry"][1]["resource"]["identifier"][0]["system"] = "urn:oid:1.2.250.1.213.1.4.8"
    response = client.post("/", content=as_bytes(bundle), headers=HEADERS)
    assert response.status_code == status
    text = response.text
    assert "INS-PRODUCTION" in text and "INS de production" in text
    issues = [
        i
        for outcome in (
            [response.json()]
            if status != 200
            else [e["response"].get("outcome") or {} for e in response.json()["entry"]]
        )
        for i in outcome.get("issue", [])
        if "INS-PRODUCTION" in i.get("diagnostics", "")
    ]
    assert [i["severity"] for i in issues] == [severity]
