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

from harness.validators import Severity
from harness.validators.tddui import validate_bundle

E, W = Severity.ERROR, Severity.WARNING
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
