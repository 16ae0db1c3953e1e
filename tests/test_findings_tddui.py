"""Every finding of the TDDUI Bundle validator (ANS IG "Transfert de données DUI" 2.x, TDDUIBundle transaction; FHIR
R4B Bundle), one row per rejection path on the reference export, asserting the EXACT findings (code, severity,
location, in order) and whether the refusal is structural (the whole Bundle) or per entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from test_tddui import as_bytes, export

from harness.fields.dui import FactKind
from harness.fields.identity import ProductionInsPolicy
from harness.validators import Severity
from harness.validators.tddui import (
    MAX_BYTES,
    PROFILE_BASE,
    DuiFact,
    _Bundle,
    _day,
    _finess_of_organization,
    _identifier_key,
    _infer_kind,
    _profile_kind,
    validate_bundle,
)

E, W = Severity.ERROR, Severity.WARNING
LOCAL_ID_SYSTEM = "https://identifiant-medicosocial-localusager.esante.gouv.fr"  # TDDUI guide, local usager id
Bundle = dict[str, Any]
# the reference export's entries: 0 Organization, 1 Patient (Jeanne), 2 séjour (Jeanne), 3 CarePlan (Jeanne),
# 4-5 événements (Jeanne, partOf 2), 6 Patient (Paul), 7 séjour (Paul)
PAUL_STAY, JEANNE_STAY, PLAN, EVENT = 7, 2, 3, 4


def res(bundle: Bundle, index: int) -> dict[str, Any]:
    return bundle["entry"][index]["resource"]


def _no_resource(b: Bundle) -> None:
    b["entry"][5] = {"request": {"method": "POST", "url": "Encounter"}}


def _event_without_structure(b: Bundle) -> None:
    """No serviceProvider, and its séjour (partOf) is gone: Jeanne then has no stay to take the ESSMS from."""
    res(b, EVENT).pop("serviceProvider")
    del b["entry"][JEANNE_STAY]


def _plan_without_structure(b: Bundle) -> None:
    """A local identifier without the 3+FINESS prefix, and no stay of Jeanne to take the ESSMS from."""
    res(b, PLAN)["identifier"][0]["value"] = "PPER-1"
    del b["entry"][JEANNE_STAY]


def _plan_from_the_single_stay(b: Bundle) -> None:
    res(b, PLAN)["identifier"][0]["value"] = "PPER-1"


ROWS: list[tuple[str, Callable[[Bundle], object], list[tuple[str, Severity, str]], bool]] = [
    ("bundle type", lambda b: b.update(type="batch"), [("TDDUI-BUNDLE-TYPE", E, "Bundle.type")], True),
    ("not a bundle", lambda b: b.update(resourceType="Patient"), [("TDDUI-BUNDLE", E, "")], True),
    (
        "datatype",
        lambda b: res(b, 1).update(gender=12),
        [("FHIR-STRUCTURE", E, "Bundle.entry.1.resource.gender")],
        True,
    ),
    ("entry without resource", _no_resource, [("TDDUI-ENTRY", E, "Bundle.entry[5]")], False),
    ("entry without fullUrl", lambda b: b["entry"][5].pop("fullUrl"), [("TDDUI-FULLURL", E, "Bundle.entry[5]")], False),
    (
        "method",
        lambda b: b["entry"][1]["request"].update(method="PUT"),
        [("TDDUI-METHOD", E, "Bundle.entry[1].request.method")],
        False,
    ),
    (
        "url",
        lambda b: b["entry"][1]["request"].update(url="Observation"),
        [("TDDUI-URL", E, "Bundle.entry[1].request.url")],
        False,
    ),
    (
        "url is a profile name",
        lambda b: b["entry"][1]["request"].update(url="TDDUIPatientINS"),
        [("TDDUI-URL-PROFIL", W, "Bundle.entry[1].request.url")],
        False,
    ),
    (
        "subject nowhere",
        lambda b: res(b, JEANNE_STAY).update(subject={"reference": "urn:uuid:nowhere"}),
        [("TDDUI-REFERENCE", E, "Bundle.entry[2].resource.subject")],
        False,
    ),
    (
        "bad INS key",
        lambda b: res(b, 1)["identifier"][0].update(value="238047505612395"),
        [("TDDUI-INS", E, "Bundle.entry[2].resource")],
        False,
    ),
    (
        "usager without identifier",
        lambda b: res(b, 6).update(identifier=[]),
        [("TDDUI-USAGER-ID", E, "Bundle.entry[7].resource")],
        False,
    ),
    (
        "séjour without serviceProvider",
        lambda b: res(b, PAUL_STAY).pop("serviceProvider"),
        [("TDDUI-SEJOUR-ESSMS", E, "Bundle.entry[7].resource.serviceProvider")],
        False,
    ),
    (
        "séjour without start",
        lambda b: res(b, JEANNE_STAY).pop("period"),
        [("TDDUI-SEJOUR-DEBUT", E, "Bundle.entry[2].resource.period.start")],
        False,
    ),
    (
        "événement without period",
        lambda b: res(b, EVENT).pop("period"),
        [("TDDUI-EVENEMENT-PERIODE", E, "Bundle.entry[4].resource.period.start")],
        False,
    ),
    (
        "événement without structure",
        _event_without_structure,
        [("TDDUI-EVENEMENT-ESSMS", E, "Bundle.entry[3].resource")],
        False,
    ),
    (
        "projet without structure",
        _plan_without_structure,
        [("TDDUI-PROJET-ESSMS", E, "Bundle.entry[2].resource")],
        False,
    ),
    ("projet from the single stay", _plan_from_the_single_stay, [], False),
]


@pytest.mark.parametrize(("edit", "expected", "structural"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_each_rejection_path_is_named_exactly(
    edit: Callable[[Bundle], object], expected: list[tuple[str, Severity, str]], structural: bool
) -> None:
    bundle = export()
    edit(bundle)
    report = validate_bundle(as_bytes(bundle))
    assert [(f.code, f.severity, f.location) for f in report.findings] == expected
    assert report.structural is structural


def test_an_organization_without_finess_is_named_at_every_reference() -> None:
    """Both séjours and both événements point at it: each says so, and no fact is kept for them."""
    bundle = export()
    res(bundle, 0).update(identifier=[])
    report = validate_bundle(as_bytes(bundle))
    provider = "Bundle.entry[{}].resource.serviceProvider"
    assert [(f.code, f.location) for f in report.findings] == [
        ("TDDUI-FINESS", provider.format(2)),
        ("TDDUI-SEJOUR-ESSMS", provider.format(2)),
        ("TDDUI-FINESS", provider.format(7)),
        ("TDDUI-SEJOUR-ESSMS", provider.format(7)),
        ("TDDUI-FINESS", provider.format(4)),
        ("TDDUI-EVENEMENT-ESSMS", "Bundle.entry[4].resource"),
        ("TDDUI-FINESS", provider.format(5)),
        ("TDDUI-EVENEMENT-ESSMS", "Bundle.entry[5].resource"),
    ]
    assert {f.severity for f in report.findings} == {E}


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"{", "FHIR-JSON"), (b"\xff", "FHIR-JSON"), (b"[]", "TDDUI-BUNDLE"), (json.dumps(export()).encode(), None)],
)
def test_unreadable_input(data: bytes, code: str | None) -> None:
    report = validate_bundle(data)
    assert [f.code for f in report.findings] == ([code] if code else [])
    assert report.structural is (code is not None)


def test_size_bound_is_exact() -> None:
    data = as_bytes(export())
    assert validate_bundle(data, max_bytes=len(data)).findings == ()
    report = validate_bundle(data, max_bytes=len(data) - 1)
    assert [(f.code, f.severity) for f in report.findings] == [("TDDUI-TAILLE", E)] and report.structural


# ------------------------------------------------------------------------------------------ the readers
# (the helpers every fact goes through, on their own: each branch of the TDDUI guide's identifiers and profiles)


def test_the_size_bound_is_50_mib() -> None:
    assert [f.code for f in validate_bundle(b" " * MAX_BYTES).findings] == ["FHIR-JSON"]
    assert MAX_BYTES == 50 * 1024 * 1024
    assert [f.code for f in validate_bundle(b" " * (50 * 1024 * 1024 + 1)).findings] == ["TDDUI-TAILLE"]


@pytest.mark.parametrize(
    ("value", "end", "expected"),
    [
        ("2024-03-05T10:00:00+02:00", False, "2024-03-05"),
        ("2024-02", False, "2024-02-01"),
        ("2024-02", True, "2024-02-29"),
        ("2023-02", True, "2023-02-28"),
        ("2024", False, "2024-01-01"),
        ("2024", True, "2024-12-31"),
        ("hier", False, None),
        (20240305, False, None),
    ],
)
def test_day(value: object, end: bool, expected: str | None) -> None:
    assert _day(value, end=end) == expected
    if not end:
        assert _day(value) == expected


def test_profile_kind() -> None:
    def kind(*profiles: object) -> tuple[FactKind | None, str]:
        return _profile_kind({"meta": {"profile": list(profiles)}})

    assert kind(PROFILE_BASE + "tddui-patient") == (FactKind.USAGER, "tddui-patient")
    assert kind(PROFILE_BASE + "tddui-patient-ins|2.0.0") == (FactKind.USAGER, "tddui-patient-ins")
    assert kind(5, "http://autre/StructureDefinition/x", PROFILE_BASE + "tddui-encounter-sejour") == (
        FactKind.SEJOUR,
        "tddui-encounter-sejour",
    )
    assert kind(PROFILE_BASE + "tddui-organization") == (None, "tddui-organization")
    assert kind("http://autre/StructureDefinition/x") == (None, "")
    assert _profile_kind({}) == (None, "")


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ({"resourceType": "Patient"}, FactKind.USAGER),
        ({"resourceType": "CarePlan"}, FactKind.PROJET),
        ({"resourceType": "Encounter", "partOf": {"reference": "x"}}, FactKind.EVENEMENT),
        ({"resourceType": "Encounter", "serviceProvider": {"reference": "x"}}, FactKind.SEJOUR),
        (
            {
                "resourceType": "Encounter",
                "identifier": [5, {"system": "https://identifiant-medicosocial-sejour.esante.gouv.fr"}],
            },
            FactKind.SEJOUR,
        ),
        (
            {
                "resourceType": "Encounter",
                "identifier": [{"system": "https://identifiant-medicosocial-sejour.cnsa.fr"}],
            },
            FactKind.SEJOUR,
        ),
        ({"resourceType": "Encounter", "identifier": [{"system": "https://autre"}]}, None),
        ({"resourceType": "Encounter"}, None),
        ({"resourceType": "Organization"}, None),
    ],
)
def test_kind_without_profile(resource: dict, expected: FactKind | None) -> None:
    assert _infer_kind(resource) is expected


def test_identifier_key() -> None:
    assert _identifier_key({"identifier": [5, {"system": "s"}, {"system": "s2", "value": "v"}]}, "f") == "s2|v"
    assert _identifier_key({"identifier": [{"value": "v"}]}, "f") == "|v"
    assert _identifier_key({"identifier": {"system": "s", "value": "v"}}, "f") == "s|v"
    assert _identifier_key({"identifier": {"value": "v"}}, "f") == "|v"
    assert _identifier_key({"identifier": {"system": "s"}}, "f") == "f"
    assert _identifier_key({}, "urn:uuid:1") == "urn:uuid:1"


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        ({"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "1990000016"}, "990000016"),
        ({"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "2990000016"}, None),
        ({"system": "urn:oid:1.2.250.1.71.4.2.2", "value": "199000001"}, None),
        ({"system": "https://finess.esante.gouv.fr", "value": "990000016"}, "990000016"),
        ({"system": "http://finess.esante.gouv.fr", "value": "2A0000016"}, "2A0000016"),
        ({"system": "urn:oid:1.2.250.1.71.4.2.2.1", "value": "990000016"}, "990000016"),
        ({"system": "https://finess.esante.gouv.fr", "value": "1990000016"}, None),
        ({"system": "https://autre", "value": "990000016"}, None),
        ({"system": "https://finess.esante.gouv.fr"}, None),
    ],
)
def test_finess_of_organization(identifier: dict, expected: str | None) -> None:
    assert _finess_of_organization({"identifier": [5, identifier]}) == expected


def test_a_local_identifier_is_known_by_its_system_alone() -> None:
    bundle = export()
    res(bundle, 6)["identifier"] = [{"system": LOCAL_ID_SYSTEM, "value": "3990000016/U9"}]
    report = validate_bundle(as_bytes(bundle))
    assert report.findings == ()
    assert {f.person for f in report.facts if f.kind is FactKind.SEJOUR} == {
        "238047505612394",
        "3990000016/U9",
    }


def test_references_inside_the_bundle() -> None:
    patient = {"resourceType": "Patient", "id": "p1"}
    anonymous = {"resourceType": "Patient"}
    bundle = _Bundle(
        [
            {"fullUrl": "urn:uuid:vide"},
            {"fullUrl": 7, "resource": {"resourceType": "Patient", "id": "p7"}},
            {"fullUrl": "urn:uuid:1", "resource": patient},
            {"fullUrl": "https://dui/fhir/Patient/p2", "resource": anonymous},
        ]
    )
    assert set(bundle.by_url) == {"urn:uuid:1", "https://dui/fhir/Patient/p2"}
    assert bundle.resolve({"reference": "urn:uuid:1"}) is patient
    assert bundle.resolve({"reference": "Patient/p1"}) is patient  # by type and id
    assert bundle.resolve({"reference": "Patient/p2"}) is anonymous  # by the end of an absolute fullUrl
    assert bundle.resolve({"reference": "Patient/p7"}) is None
    for nothing in ({"reference": 5}, {"reference": ""}, {}, "Patient/p1", None):
        assert bundle.resolve(nothing) is None


def test_a_fact_has_no_full_url_nor_profile_unless_given() -> None:
    fact = DuiFact(FactKind.USAGER, "990000016", "p", "k", None)
    assert (fact.full_url, fact.profile, fact.start, fact.end, fact.status) == ("", "", None, None, None)


def test_a_production_ins_under_warn_is_a_warning_and_the_person_is_kept() -> None:
    bundle = export()
    res(bundle, 1)["identifier"][0]["system"] = "urn:oid:1.2.250.1.213.1.4.8"
    report = validate_bundle(as_bytes(bundle))
    assert [(f.code, f.severity) for f in report.findings] == [("INS-PRODUCTION", W)]
    assert "238047505612394" in {f.person for f in report.facts}
    refused = validate_bundle(as_bytes(bundle), production_ins=ProductionInsPolicy.REFUSE)
    assert [(f.code, f.severity) for f in refused.findings] == [("INS-PRODUCTION", E)]
    assert "238047505612394" not in {f.person for f in refused.facts}


def test_a_local_identifier_without_value_is_no_identifier() -> None:
    bundle = export()
    res(bundle, 6)["identifier"] = [{"type": {"coding": [{"code": "PLI"}]}, "system": LOCAL_ID_SYSTEM}]
    assert [f.code for f in validate_bundle(as_bytes(bundle)).findings] == ["TDDUI-USAGER-ID"]


def test_an_empty_full_url_is_no_full_url() -> None:
    bundle = export()
    bundle["entry"][5]["fullUrl"] = ""
    report = validate_bundle(as_bytes(bundle))
    assert [(f.code, f.location) for f in report.findings] == [("TDDUI-FULLURL", "Bundle.entry[5]")]
    assert report.entries[5].full_url == "" and report.entries[4].full_url == bundle["entry"][4]["fullUrl"]


def test_structural_findings_quote_what_was_received() -> None:
    bundle = export()
    bundle["entry"][1]["request"]["method"] = "PUT"
    assert [f.message for f in validate_bundle(as_bytes(bundle)).findings] == [
        "request.method POST attendu (le guide n'autorise que la création), reçu 'PUT'"
    ]
    bundle = export()
    bundle["type"] = "batch"
    assert [f.message for f in validate_bundle(as_bytes(bundle)).findings] == [
        "Bundle.type 'transaction' attendu (TDDUIBundle), reçu 'batch'"
    ]
    bundle["resourceType"] = "Patient"
    assert [f.message for f in validate_bundle(as_bytes(bundle)).findings] == [
        "ressource Bundle attendue, reçu 'Patient'"
    ]
    assert [f.message for f in validate_bundle(b"[]").findings] == ["ressource Bundle attendue, reçu 'list'"]


def test_an_other_tddui_profile_is_not_read_as_a_fact() -> None:
    """A TDDUI profile that is not one of the fact profiles: the Patient is no usager fact (no guess from its type)."""
    bundle = export()
    res(bundle, 6)["meta"]["profile"] = [PROFILE_BASE + "tddui-autre"]
    report = validate_bundle(as_bytes(bundle))
    assert report.findings == ()
    assert {f.person for f in report.facts if f.kind is FactKind.USAGER} == {"238047505612394"}
    res(bundle, 6).pop("meta")
    assert [(f.code, f.message) for f in validate_bundle(as_bytes(bundle)).findings] == [
        ("TDDUI-PROFIL-ABSENT", "meta.profile absent: Patient lu comme usager"),
        ("TDDUI-DATE-ABSENTE", "usager sans meta.lastUpdated: date de mise à jour du dossier inconnue"),
    ]


def test_a_reference_finding_quotes_the_subject() -> None:
    bundle = export()
    res(bundle, JEANNE_STAY)["subject"] = {"reference": "urn:uuid:nowhere"}
    assert [f.message for f in validate_bundle(as_bytes(bundle)).findings] == [
        "subject {'reference': 'urn:uuid:nowhere'} ne désigne aucun Patient du Bundle"
    ]


@pytest.mark.parametrize("errors", [20, 21])
def test_structure_findings_are_capped_at_20(errors: int) -> None:
    bundle = export()
    res(bundle, 1)["identifier"] = [{"value": n} for n in range(errors)]  # a number where a string is due
    findings = validate_bundle(as_bytes(bundle)).findings
    assert [(f.code, f.location) for f in findings[:2]] == [
        ("FHIR-STRUCTURE", "Bundle.entry.1.resource.identifier.0.value"),
        ("FHIR-STRUCTURE", "Bundle.entry.1.resource.identifier.1.value"),
    ]
    assert findings[0].message == "Input should be a valid string"
    assert len(findings) == min(errors, 21) and {f.code for f in findings} == {"FHIR-STRUCTURE"}
    assert (findings[-1].message == "… et 1 autres erreurs") is (errors == 21)


def test_an_unknown_resource_type_is_one_structure_finding() -> None:
    for rtype in ("Nope", "N" * 400):
        data = json.dumps(
            {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": rtype}}]}
        )
        [finding] = validate_bundle(data.encode()).findings
        assert (finding.code, finding.severity, finding.location) == ("FHIR-STRUCTURE", E, "Bundle")
        assert finding.message.startswith("ressource non reconnue (KeyError: ")
        assert len(finding.message) <= len("ressource non reconnue (KeyError: ") + 300 + 1
    assert len(finding.message) == len("ressource non reconnue (KeyError: ") + 300 + 1  # the long one, cut at 300


def _facts(bundle: Bundle, kind: FactKind) -> list[tuple[str, str, str | None, str | None, str | None]]:
    report = validate_bundle(as_bytes(bundle))
    assert report.errors == [], report.findings
    return sorted((f.essms, f.person, f.start, f.end, f.status) for f in report.facts if f.kind is kind)


def test_a_stay_dates_its_entry_by_the_admission_extension_and_ends_at_the_month_end() -> None:
    bundle = export()
    stay = res(bundle, PAUL_STAY)
    stay["period"] = {"end": "2025-04"}
    stay["extension"] = [
        {"url": "https://autre/x", "valueDate": "2020-01-01"},
        {
            "url": "https://interop.esante.gouv.fr/ig/fhir/tddui/StructureDefinition/tddui-admission-date",
            "valueDateTime": "2024-09-15T08:00:00+02:00",
        },
    ]
    stay["status"] = "finished"
    assert ("990000016", "142036912304505", "2024-09-15", "2025-04-30", "finished") in _facts(bundle, FactKind.SEJOUR)
    stay["extension"] = [{"url": "http://x/tddui-admission-date", "valueDate": "2024-09"}]
    assert ("990000016", "142036912304505", "2024-09-01", "2025-04-30", "finished") in _facts(bundle, FactKind.SEJOUR)


def test_a_usager_is_known_where_its_local_identifier_says() -> None:
    bundle = export()
    del bundle["entry"][PAUL_STAY]  # Paul has no stay left: only his local identifier names an establishment
    paul = res(bundle, 6)
    paul["identifier"] = [
        {"system": LOCAL_ID_SYSTEM},
        {"system": LOCAL_ID_SYSTEM, "value": "3990000024/U2"},
        {"system": "https://autre", "value": "3990000032/U2"},
    ]
    assert [(e, p) for e, p, *_ in _facts(bundle, FactKind.USAGER)] == [
        ("990000016", "238047505612394"),
        ("990000024", "3990000024/U2"),
    ]
    paul["identifier"][1]["system"] = "https://autre"
    paul["identifier"][2] = {"system": LOCAL_ID_SYSTEM, "value": "U2"}
    paul["identifier"].append({"type": {"coding": [{"code": "PLI"}]}, "value": "U2-bis"})
    report = validate_bundle(as_bytes(bundle))
    assert {f.person for f in report.facts if f.kind is FactKind.USAGER} == {"238047505612394"}


def test_an_event_takes_the_establishment_of_its_stay() -> None:
    """Jeanne has stays in two establishments: an event without serviceProvider is where its partOf stay is."""
    bundle = export()
    organization = json.loads(json.dumps(bundle["entry"][0]))
    organization["fullUrl"] = "urn:uuid:org-2"
    organization["resource"]["identifier"][0]["value"] = "1990000024"
    stay = json.loads(json.dumps(bundle["entry"][JEANNE_STAY]))
    stay["fullUrl"] = "urn:uuid:stay-2"
    stay["resource"]["serviceProvider"] = {"reference": "urn:uuid:org-2"}
    stay["resource"]["identifier"][0]["value"] = "3990000024/U1-SEJOUR-9"
    bundle["entry"] += [organization, stay]
    res(bundle, EVENT).pop("serviceProvider")
    assert [e for e, *_ in _facts(bundle, FactKind.EVENEMENT)] == ["990000016", "990000016"]
    res(bundle, EVENT)["partOf"] = {"reference": "urn:uuid:stay-2"}
    assert [e for e, *_ in _facts(bundle, FactKind.EVENEMENT)] == ["990000016", "990000024"]


def test_an_event_ends_at_the_end_of_what_its_period_end_names() -> None:
    bundle = export()
    res(bundle, EVENT)["period"] = {"start": "2025-04-10T10:00:00+02:00", "end": "2025-04"}
    events = _facts(bundle, FactKind.EVENEMENT)
    assert ("990000016", "238047505612394", "2025-04-10", "2025-04-30") in [e[:4] for e in events]


def test_a_plan_is_dated_by_last_update_then_created_then_period_start() -> None:
    bundle = export()
    plan = res(bundle, PLAN)
    plan["identifier"][0]["value"] = "3990000024/U1-PPER-1"  # its own establishment, from its identifier
    plan["period"] = {"start": "2024-06", "end": "2025-02"}
    plan["meta"].pop("lastUpdated", None)
    plan.pop("created", None)

    def projet() -> tuple[tuple[str, str | None, str | None, str | None, str | None], tuple]:
        report = validate_bundle(as_bytes(bundle))
        [fact] = [f for f in report.facts if f.kind is FactKind.PROJET]
        return (fact.essms, fact.date, fact.start, fact.end, fact.status), tuple(
            (f.code, f.severity, f.location) for f in report.findings
        )

    assert projet() == (("990000024", "2024-06-01", "2024-06-01", "2025-02-28", plan.get("status")), ())
    plan["created"] = "2024-05-20T09:00:00+02:00"
    assert projet()[0][1] == "2024-05-20"
    plan["meta"]["lastUpdated"] = "2024-12-01T14:00:00+01:00"
    assert projet()[0][1] == "2024-12-01"
    plan["meta"].pop("lastUpdated")
    plan.pop("created")
    plan.pop("period")
    assert projet() == (
        ("990000024", None, None, None, plan.get("status")),
        (("TDDUI-DATE-ABSENTE", W, "Bundle.entry[3].resource.meta.lastUpdated"),),
    )


def test_the_operation_outcome_of_findings() -> None:
    from harness.validators import Finding
    from harness.validators.tddui import operation_outcome

    findings = [
        Finding("TDDUI-INS", "INS invalide", Severity.ERROR, "Bundle.entry[1]"),
        Finding("TDDUI-URL-PROFIL", "toléré", Severity.WARNING),
        Finding("X-INFO", "pour information", Severity.INFO, "Bundle"),
        Finding("FHIR-JSON", "illisible", Severity.ERROR),
        Finding("FHIR-STRUCTURE", "type", Severity.ERROR),
        Finding("TDDUI-BUNDLE", "pas un Bundle", Severity.ERROR),
        Finding("TDDUI-BUNDLE-TYPE", "batch", Severity.ERROR),
    ]
    assert operation_outcome(findings).to_json() == {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "TDDUI-INS: INS invalide",
                "expression": ["Bundle.entry[1]"],
            },
            {"severity": "warning", "code": "invalid", "diagnostics": "TDDUI-URL-PROFIL: toléré"},
            {
                "severity": "information",
                "code": "invalid",
                "diagnostics": "X-INFO: pour information",
                "expression": ["Bundle"],
            },
            {"severity": "error", "code": "structure", "diagnostics": "FHIR-JSON: illisible"},
            {"severity": "error", "code": "structure", "diagnostics": "FHIR-STRUCTURE: type"},
            {"severity": "error", "code": "structure", "diagnostics": "TDDUI-BUNDLE: pas un Bundle"},
            {"severity": "error", "code": "structure", "diagnostics": "TDDUI-BUNDLE-TYPE: batch"},
        ],
    }
    assert operation_outcome(findings[:1], code="business-rule").to_json()["issue"][0]["code"] == "business-rule"


def test_a_local_identifier_is_known_by_its_pli_type_alone() -> None:
    bundle = export()
    res(bundle, 6)["identifier"] = [
        {"type": {"coding": [{"code": "XX"}]}, "system": "https://autre", "value": "U1"},
        {"type": {"coding": [{"code": "PLI"}]}, "system": "https://autre", "value": "U2"},
    ]
    assert {f.person for f in validate_bundle(as_bytes(bundle)).facts if f.kind is FactKind.SEJOUR} == {
        "238047505612394",
        "U2",
    }


def test_a_plan_identifier_may_hold_a_bar() -> None:
    bundle = export()
    res(bundle, PLAN)["identifier"][0]["value"] = "3990000024/PP|1"
    assert {f.essms for f in validate_bundle(as_bytes(bundle)).facts if f.kind is FactKind.PROJET} == {"990000024"}


@pytest.mark.parametrize(
    "rtype",
    [
        "CarePlan", "Consent", "DocumentReference", "Encounter", "Goal", "Observation", "Organization", "Patient",
        "Practitioner", "PractitionerRole", "QuestionnaireResponse", "RelatedPerson", "Schedule", "ServiceRequest",
        "Slot", "Task",
    ],
)  # fmt: skip
def test_profile_names_stand_for_their_resource_type(rtype: str) -> None:
    """The guide's profile names are "TDDUI" + resource type + qualifier (the longest type wins)."""
    from harness.validators.tddui import profile_name_type

    assert profile_name_type(f"TDDUI{rtype}") == rtype
    assert profile_name_type(f"TDDUI{rtype}Qualifie") == rtype
    assert profile_name_type(rtype) is None


def test_names_that_are_no_profile_name() -> None:
    from harness.validators.tddui import profile_name_type

    assert [profile_name_type(n) for n in ("TDDUI", "TDDUIAutre", "tdduiPatient")] == [None, None, None]
