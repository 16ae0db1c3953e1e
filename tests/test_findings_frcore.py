"""FR Core rules (``hl7.fhir.fr.core`` 2.x, :mod:`harness.validators.frcore`) row by row, asserting the EXACT findings
(code, severity, location) and the identifiers read: the INS of a patient (``fr-core-patient-ins``: system one of the
four INS assigning authorities ``urn:oid:1.2.250.1.213.1.4.8`` / ``.9`` / ``.10`` / ``.11``, 15-character value with its
key, ``use`` official), the IDNPS of a professional (``urn:oid:1.2.250.1.71.4.2.1``) and the FINESS of a structure
(``http(s)://finess.esante.gouv.fr`` or idNat_Struct ``urn:oid:1.2.250.1.71.4.2.2`` = ``1`` + FINESS). The system URIs
are written out here, never taken from the module under test.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.validators import Finding, Severity
from harness.validators import frcore as F

E, W = Severity.ERROR, Severity.WARNING
INS = "238047505612394"  # a valid INS (key 94)
NIR, NIA, NIR_TEST, NIR_DEMO = (f"urn:oid:1.2.250.1.213.1.4.{n}" for n in (8, 9, 10, 11))
IDNPS = "urn:oid:1.2.250.1.71.4.2.1"
IDNST = "urn:oid:1.2.250.1.71.4.2.2"
TRAITS: dict[str, Any] = {
    "name": [{"family": "MARTIN", "given": ["Jeanne"]}],
    "gender": "female",
    "birthDate": "1938-04-12",
}


def triples(items: list[Finding]) -> list[tuple[str, Severity, str]]:
    return [(f.code, f.severity, f.location) for f in items]


def patient(*identifiers: Any, **traits: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": list(identifiers), **{**TRAITS, **traits}}


@pytest.mark.parametrize("system", [NIR, NIA, NIR_TEST, NIR_DEMO])
def test_the_four_ins_authorities_are_read(system: str) -> None:
    identifier = {"use": "official", "system": system, "value": INS}
    assert F.check_patient(patient(identifier)) == []
    assert F.ins_identifiers(patient("x", {"system": "urn:oid:1.2.3", "value": INS}, identifier)) == [identifier]
    found = F.patient_ins(patient(identifier))
    assert found is not None and (found.value, found.oid) == (INS, system.removeprefix("urn:oid:"))


PATIENTS: list[tuple[str, dict[str, Any], list[tuple[str, Severity, str]]]] = [
    ("gender male", patient({"system": NIR_TEST, "value": INS}, gender="male"), []),
    ("gender other", patient({"system": NIR_TEST, "value": INS}, gender="other"), []),
    ("gender unknown", patient({"system": NIR_TEST, "value": INS}, gender="unknown"), []),
    (
        "no gender",
        patient({"system": NIR_TEST, "value": INS}, gender=None),
        [("FRCORE-INS-TRAITS", W, "Patient.gender")],
    ),
    (
        "no birth date",
        patient({"system": NIR_TEST, "value": INS}, birthDate=""),
        [("FRCORE-INS-TRAITS", W, "Patient.birthDate")],
    ),
    (
        "no family",
        patient({"system": NIR_TEST, "value": INS}, name=[{"given": ["Jeanne"]}]),
        [("FRCORE-INS-TRAITS", W, "Patient.name")],
    ),
    (
        "no given",
        patient({"system": NIR_TEST, "value": INS}, name=[{"family": "MARTIN"}]),
        [("FRCORE-INS-TRAITS", W, "Patient.name")],
    ),
    (
        "name not an object",
        patient({"system": NIR_TEST, "value": INS}, name=["MARTIN Jeanne"]),
        [("FRCORE-INS-TRAITS", W, "Patient.name")],
    ),
    (
        "second name complete",
        patient({"system": NIR_TEST, "value": INS}, name=[{"family": "MARTIN"}, {"family": "M", "given": ["J"]}]),
        [],
    ),
    ("use official", patient({"use": "official", "system": NIR_TEST, "value": INS}), []),
    (
        "use usual",
        patient({"use": "usual", "system": NIR_TEST, "value": INS}),
        [("FRCORE-INS-USE", W, "Patient.identifier[0].use")],
    ),
    ("no value", patient({"system": NIR_TEST}), [("FRCORE-INS-FORMAT", E, "Patient.identifier[0].value")]),
    (
        "bad key",
        patient({"system": NIR_TEST, "value": INS[:13] + "95"}),
        [("FRCORE-INS-KEY", E, "Patient.identifier[0].value")],
    ),
    (
        "second INS invalid, after another system",
        patient(
            {"system": "urn:oid:1.2.3", "value": "IPP"},
            {"system": NIR_TEST, "value": INS},
            {"system": NIA, "value": "1"},
        ),
        [("FRCORE-INS-FORMAT", E, "Patient.identifier[2].value")],
    ),
    ("identifier not an object", patient("x", {"system": NIR_TEST, "value": INS}), []),
    (
        "only another system",
        patient({"system": "urn:oid:1.2.3", "value": INS}),
        [("FRCORE-INS-ABSENT", W, "Patient.identifier")],
    ),
    (
        "no identifier",
        patient(),
        [("FRCORE-INS-ABSENT", W, "Patient.identifier"), ("FRCORE-IDENTIFIER-ABSENT", W, "Patient.identifier")],
    ),
]


@pytest.mark.parametrize(("resource", "expected"), [p[1:] for p in PATIENTS], ids=[p[0] for p in PATIENTS])
def test_each_patient_rule(resource: dict[str, Any], expected: list[tuple[str, Severity, str]]) -> None:
    assert triples(F.check_patient(resource)) == expected


def test_patient_findings_say_what_is_wrong_and_where() -> None:
    got = F.check_patient({"identifier": [{"use": "old", "system": NIR_TEST}]}, where="Bundle.entry[0]")
    assert [(f.code, f.message, f.location) for f in got] == [
        (
            "FRCORE-INS-FORMAT",
            "INS invalide '' : matricule INS de 15 caractères attendu, reçu ''",
            "Bundle.entry[0].identifier[0].value",
        ),
        ("FRCORE-INS-USE", "identifier.use de l'INS : 'old' (attendu official)", "Bundle.entry[0].identifier[0].use"),
        ("FRCORE-INS-TRAITS", "patient avec INS sans nom de famille et prénom", "Bundle.entry[0].name"),
        ("FRCORE-INS-TRAITS", "patient avec INS sans date de naissance", "Bundle.entry[0].birthDate"),
        ("FRCORE-INS-TRAITS", "patient avec INS sans sexe (gender)", "Bundle.entry[0].gender"),
    ]
    assert triples(F.check_patient({}, where="P", require_ins=True)) == [
        ("FRCORE-INS-ABSENT", E, "P.identifier"),
        ("FRCORE-IDENTIFIER-ABSENT", W, "P.identifier"),
    ]


def test_patient_ins_reads_valid_values_only_nir_first() -> None:
    nia = {"system": NIA, "value": INS}
    demo = {"system": NIR_DEMO, "value": INS}
    assert F.patient_ins(patient(nia, demo)).oid == "1.2.250.1.213.1.4.11"  # type: ignore[union-attr]
    assert F.patient_ins(patient(nia, {"system": NIR_TEST})).oid == "1.2.250.1.213.1.4.9"  # type: ignore[union-attr]
    assert F.patient_ins({"identifier": None}) is None and F.patient_ins({}) is None


FINESS = "990000016"


@pytest.mark.parametrize(
    ("identifiers", "expected"),
    [
        ([{"system": "http://finess.esante.gouv.fr", "value": FINESS}], FINESS),
        ([{"system": "https://finess.esante.gouv.fr", "value": FINESS}], FINESS),
        ([{"system": "http://finess.esante.gouv.fr", "value": "2A0000016"}], "2A0000016"),
        ([{"system": "http://finess.esante.gouv.fr", "value": "99000001"}], None),
        ([{"system": "http://finess.esante.gouv.fr", "value": "9900000167"}], None),
        ([{"system": "http://finess.esante.gouv.fr"}], None),
        ([{"system": IDNST, "value": "1" + FINESS}], FINESS),
        ([{"system": IDNST, "value": "3" + FINESS}], None),
        ([{"system": IDNST, "value": "1" + FINESS[1:]}], None),
        ([{"system": IDNST, "value": FINESS}], None),
        ([{"system": IDNPS, "value": "1" + FINESS}], None),
        (["x", {"system": IDNST, "value": "1" + FINESS}], FINESS),
        (
            [{"system": IDNST, "value": "1X"}, {"system": "http://finess.esante.gouv.fr", "value": "310000013"}],
            "310000013",
        ),
        ([], None),
    ],
)
def test_organization_finess(identifiers: list[Any], expected: str | None) -> None:
    organization = {"resourceType": "Organization", "identifier": identifiers}
    assert F.organization_finess(organization) == expected
    assert triples(F.check_organization(organization, where="O")) == (
        [] if expected else [("FRCORE-FINESS-ABSENT", W, "O.identifier")]
    )
    if len(identifiers) == 1:
        assert F.identifier_finess(identifiers[0]) == expected


def test_no_organization_no_finess() -> None:
    assert F.organization_finess(None) is None and F.organization_finess({"identifier": None}) is None
    assert F.identifier_finess(None) is None


@pytest.mark.parametrize(
    ("identifiers", "expected"),
    [
        ([{"system": IDNPS, "value": "810001234567"}], "810001234567"),
        ([{"system": IDNPS, "value": 810001234567}], "810001234567"),
        ([{"system": IDNST, "value": "810001234567"}], None),
        ([{"system": IDNPS}], None),
        (["x", {"system": IDNPS, "value": ""}, {"system": IDNPS, "value": "3990000016/A"}], "3990000016/A"),
        ([], None),
    ],
)
def test_practitioner_idnps(identifiers: list[Any], expected: str | None) -> None:
    practitioner = {"resourceType": "Practitioner", "identifier": identifiers}
    assert F.practitioner_idnps(practitioner) == expected
    assert triples(F.check_practitioner(practitioner, where="PR")) == (
        [] if expected else [("FRCORE-IDNPS-ABSENT", W, "PR.identifier")]
    )


def test_the_default_locations_name_the_resource() -> None:
    assert triples(F.check_organization({})) == [("FRCORE-FINESS-ABSENT", W, "Organization.identifier")]
    assert triples(F.check_practitioner({})) == [("FRCORE-IDNPS-ABSENT", W, "Practitioner.identifier")]
    assert triples(F.check_patient({"identifier": [{"system": "urn:oid:1.2.3"}]})) == [
        ("FRCORE-INS-ABSENT", W, "Patient.identifier")
    ]
