"""The control API's OpenAPI document (issue 16 item 13): every action has a request example and a success and a
failure answer example that validate against their schemas, the closed vocabularies are enumerations taken from
the modules that own them, and each action's ``data`` has the typed schema its plugin declares (issue 13 item 1),
with examples the simulators serve for the fixtures where the plugin computes them, marked illustrative
otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from harness.fields.identity_status import HIGH_TRUST_DOCUMENTS
from harness.fields.testdata import MailboxType
from harness.sut.control_api import ACTIONS, openapi
from harness.sut.control_api_examples import sample
from harness.sut.dmp_actions import CHANGES, STATUS_CHANGES
from harness.sut.plugins import dui_sides
from harness.validators.cda import DOCUMENT_TYPES
from harness.validators.cdl import NOTE_TYPES, VISIBILITY_CODES
from mock_services.eprescription.dui_side import example_prescription

REPO = Path(__file__).resolve().parents[1]
DOCUMENT = openapi()
SCHEMAS = DOCUMENT["components"]["schemas"]


def _validator(schema: dict[str, Any]) -> Any:
    """A JSON Schema 2020-12 validator of ``schema`` whose ``#/components/...`` references resolve in the document."""
    return jsonschema_rs.Draft202012Validator({**schema, "components": DOCUMENT["components"]})


def _operation(action: str) -> dict[str, Any]:
    return DOCUMENT["paths"][f"/socle/v1/actions/{action}"]["post"]


@pytest.mark.parametrize("action", [spec.name for spec in ACTIONS])
def test_every_action_has_examples_that_follow_its_schemas(action: str) -> None:
    operation = _operation(action)
    body = operation["requestBody"]["content"]["application/json"]
    assert _validator(body["schema"]).is_valid(body["example"]), list(
        _validator(body["schema"]).iter_errors(body["example"])
    )
    answer = operation["responses"]["200"]["content"]["application/json"]
    assert sorted(answer["examples"]) == ["echec", "fait"]
    validator = _validator(answer["schema"])
    for example in answer["examples"].values():
        assert validator.is_valid(example["value"]), list(validator.iter_errors(example["value"]))
    spec = next(s for s in ACTIONS if s.name == action)
    data_name = answer["schema"]["allOf"][1]["properties"]["data"]["$ref"].rsplit("/", 1)[-1]
    assert sorted(SCHEMAS[data_name]["properties"]) == sorted(spec.facts)
    assert sorted(answer["examples"]["fait"]["value"]["data"]) == sorted(spec.facts)
    assert "required" not in SCHEMAS[data_name]  # a failure answer carries no data


def test_the_examples_are_the_fixtures_as_the_harness_sends_them() -> None:
    person, establishment = sample().person, sample().establishment
    example = _operation("mssante-send")["requestBody"]["content"]["application/json"]["example"]
    assert (example["person"]["ins"], example["person"]["local_id"]) == (person.ins.value, person.id)
    assert (example["establishment"]["finess"], example["document_kind"]) == (establishment.finess, "DLU")
    assert (
        example["recipients"] == [sample().recipient]
        and sample().recipient.split("@")[1] != establishment.mailbox.split("@")[1]
    )
    assert _operation("psc-refresh")["requestBody"]["content"]["application/json"]["example"] == {}
    retrieve = _operation("dmp-retrieve")["requestBody"]["content"]["application/json"]["example"]
    assert retrieve["unique_id"] == "2.25.161584537046245364163226004573180318221"
    assert (
        _operation("insi-qualify")["requestBody"]["content"]["application/json"]["example"]["identity_document"] == "CN"
    )
    tddui = _operation("tddui-export")["requestBody"]["content"]["application/json"]["example"]
    assert (tddui["exported_at"], tddui["records"][0]["local_id"]) == ("2025-04-30T18:00:00+00:00", person.id)


def test_closed_vocabularies_are_enumerations_from_their_owners() -> None:
    kinds = list(DOCUMENT_TYPES)
    assert SCHEMAS["MssanteSend"]["properties"]["document_kind"]["enum"] == kinds
    assert SCHEMAS["MssanteSend"]["properties"]["extra_kinds"]["items"]["enum"] == kinds
    assert SCHEMAS["DmpFeed"]["properties"]["document_kind"]["enum"] == kinds
    assert SCHEMAS["MssanteRelay"]["properties"]["message_type"]["enum"] == ["ORU^R01", "MDM^T02"]
    assert SCHEMAS["DmpUpdate"]["properties"]["change"]["enum"] == [*CHANGES, *STATUS_CHANGES]
    assert SCHEMAS["CdlNotePost"]["properties"]["note_type"]["enum"] == list(NOTE_TYPES)
    assert SCHEMAS["CdlNotePost"]["properties"]["visibility"]["anyOf"] == [
        {"type": "string", "enum": list(VISIBILITY_CODES)},
        {"type": "null"},
    ]
    assert SCHEMAS["InsiSearch"]["properties"]["identity_document"]["anyOf"][0]["enum"] == list(HIGH_TRUST_DOCUMENTS)
    assert SCHEMAS["DirectoryLookup"]["properties"]["mailbox_type"]["anyOf"][0]["enum"] == ["PER", "ORG", "APP", "CAB"]
    assert SCHEMAS["MssanteReceive"]["properties"]["auth"]["enum"] == ["password", "certificate"]
    assert SCHEMAS["InsiTraits"]["properties"]["sex"]["enum"] == ["M", "F"]
    assert MailboxType.PAT.value not in SCHEMAS["DirectoryLookup"]["properties"]["mailbox_type"]["description"]
    assert SCHEMAS["DmpUpdate"]["properties"]["change"]["description"].startswith(
        "`masquer`: confidentialityCode N, MASQUE_PS; "
    )


def test_the_schemas_refuse_what_the_contract_does_not_allow() -> None:
    operation = _operation("mssante-send")["requestBody"]["content"]["application/json"]
    wrong_kind = {**operation["example"], "document_kind": "LETTRE"}
    assert not _validator(operation["schema"]).is_valid(wrong_kind)
    answer = _operation("insi-verify")["responses"]["200"]["content"]["application/json"]
    wrong = {"status": "done", "data": {"verifie": "oui"}}  # a boolean is declared
    assert not _validator(answer["schema"]).is_valid(wrong)
    assert not _validator(answer["schema"]).is_valid({"status": "fini"})


def _fait(action: str) -> dict[str, Any]:
    return _operation(action)["responses"]["200"]["content"]["application/json"]["examples"]["fait"]


def test_the_answer_examples_are_what_the_simulators_serve_for_the_fixtures() -> None:
    from mock_services.eprescription.prescriptions import fhir_resources
    from mock_services.psc.model import load_fixtures

    person, establishment = sample().person, sample().establishment
    login = _fait("psc-login")["value"]["data"]
    professional = next(
        u for u in load_fixtures(REPO / "fixtures" / "psc").users if establishment.finess in u.finess_sites
    )
    assert (login["id_nat_ps"], login["rpps"], login["nom"], login["finess"], login["sub"]) == (
        professional.id_nat_ps,
        professional.rpps,
        professional.display_name,  # as the reference DUI shows it (given and family names)
        establishment.finess,
        professional.userinfo()["sub"],
    )
    # the EPU asked for is the one the simulator's generator gives this person; the lines are its MedicationRequests
    imported = _fait("eprescription-import")["value"]["data"]
    asked = _operation("eprescription-import")["requestBody"]["content"]["application/json"]["example"]["identifier"]
    assert imported["epu"] == asked and len(asked) == 18
    # the lines as the reference DUI shows them from the simulator's FHIR resources: Medication.code.text — dosage
    resources = fhir_resources(example_prescription(person))
    medications = {f"Medication/{r['id']}": r for r in resources if r["resourceType"] == "Medication"}
    requests = [r for r in resources if r["resourceType"] == "MedicationRequest"]
    assert [r["groupIdentifier"]["value"] for r in requests] == [asked]
    assert imported["lignes"] == [
        f"{medications[r['medicationReference']['reference']]['code']['text']} — {r['dosageInstruction'][0]['text']}"
        for r in requests
    ]
    search = _fait("insi-search")["value"]["data"]
    assert (search["ins"], search["oid"]) == (person.ins.value, person.ins.oid)


def test_illustrative_values_are_marked_so() -> None:
    assert _fait("psc-login")["description"] == (
        "`detail` is illustrative (the DUI's own words); so is `data` `kid`, `sid` (not served by the simulators); "
        "the other `data` values are what the simulators serve for the synthetic fixtures."
    )
    assert _fait("eprescription-import")["description"] == (
        "`detail` is illustrative (the DUI's own words); the `data` values are what the simulators serve for the "
        "synthetic fixtures."
    )
    assert _fait("dmp-update")["description"] == "`detail` is illustrative (the DUI's own words)."
    assert not any(f.real for f in dui_sides()["dmp"].actions[0].facts.values())


def test_nothing_service_specific_is_central() -> None:
    """The examples module only assembles: it names no action, no request type or field, no closed list and no
    data key of a service (each plugin declares them)."""
    source = (REPO / "harness" / "sut" / "control_api_examples.py").read_text(encoding="utf-8")
    words = {spec.name for spec in ACTIONS} | {key for spec in ACTIONS for key in spec.facts}
    words |= {spec.request.__name__ for spec in ACTIONS if spec.request is not None}
    words |= {name for side in dui_sides().values() for _, name in side.vocabularies}
    assert len(words) > 40
    quoted = sorted(w for w in words if f'"{w}"' in source)
    named = sorted(
        w for w in ("InsiTraits", "DOCUMENT_TYPES", "NOTE_TYPES", "CHANGES", "traits_of_person") if w in source
    )
    assert (quoted, named) == ([], [])
