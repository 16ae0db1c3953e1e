"""Property tests of the FHIR simulators against their generated OpenAPI description (schemathesis, bounded and
deterministic): whatever the request, no server error, only documented statuses and content types, and every
error body an OperationOutcome."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from fhir_access import EHPAD, essms, presenting
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from harness.core.journal import SQLiteJournal
from harness.fhir.openapi import openapi_document
from harness.fields.testdata import load_testdata
from harness.host.simulator import FaultBoard, RunState, SimulatorContext
from mock_services.eparcours import EparcoursSimulator
from mock_services.eprescription import EprescriptionSimulator

REPO = Path(__file__).resolve().parents[1]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _schema(simulator_class: type, name: str, title: str) -> schemathesis.BaseSchema:
    testdata = load_testdata(REPO / "fixtures")
    ctx = SimulatorContext(
        name=name,
        journal=SQLiteJournal(":memory:"),
        pki=None,
        bind_host="127.0.0.1",
        ports={},  # type: ignore[arg-type]
        http_base=f"https://127.0.0.1/{name}",
        faults=FaultBoard(),
        run=RunState("openapi"),
        testdata=testdata,
    )
    simulator = simulator_class(ctx)
    if name == "eprescription":
        simulator.service.issue(testdata.person("P001"))
    else:
        simulator.service.publish_note(testdata.person("P001"), note_type="OBS", text="note de départ")
    schema = schemathesis.openapi.from_dict(openapi_document(simulator.service.fhir, title=title, server_url="/fhir"))
    schema.app = presenting(simulator.http_app(), essms(EHPAD))
    return schema


EPRESCRIPTION = _schema(EprescriptionSimulator, "eprescription", "e-Prescription")
EPARCOURS = _schema(EparcoursSimulator, "eparcours", "e-Parcours")
BOUNDED = settings(
    max_examples=4, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@EPRESCRIPTION.parametrize()
@BOUNDED
def test_eprescription_fhir_api_conforms_to_its_openapi(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)


@EPARCOURS.parametrize()
@BOUNDED
def test_eparcours_fhir_api_conforms_to_its_openapi(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)


def test_openapi_documents_every_resource_type() -> None:
    for schema, types in (
        (EPRESCRIPTION, {"MedicationRequest", "Task"}),
        (EPARCOURS, {"DocumentReference", "Patient", "Device"}),
    ):
        paths = set(schema.raw_schema["paths"])
        assert {"/metadata", "/"} <= paths
        assert {f"/{t}" for t in types} <= paths and {f"/{t}/{{id}}" for t in types} <= paths


@pytest.mark.parametrize("name", ["eprescription", "eparcours"])
def test_openapi_is_served(name: str) -> None:
    from starlette.testclient import TestClient

    schema = EPRESCRIPTION if name == "eprescription" else EPARCOURS
    with TestClient(schema.app) as client:
        served = client.get("/openapi.json").json()
    assert served["openapi"] == "3.0.3" and served["servers"][0]["url"].endswith(f"/{name}/fhir")
