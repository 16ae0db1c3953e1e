"""Cahier de liaison (``ans.fhir.fr.cdl`` 3.0.0) rules of :mod:`harness.validators.cdl`, judged on the EXACT findings
(code, severity, location, in order) and on the literal identifiers of the guide (canonical URLs, TRE_R234 / TRE_A07
systems, JDV codes) — not on the module's own constants, so that a wrong constant fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.validators import Finding, Severity
from harness.validators import cdl as C

E, W = Severity.ERROR, Severity.WARNING
Json = dict[str, Any]

# the guide's identifiers, written out (ans.fhir.fr.cdl 3.0.0; NOS TRE_R234 / TRE_A07; JDV_J23 OID)
CDL = "https://interop.esante.gouv.fr/ig/fhir/cdl"
IS_EMERGENCY = "https://interop.esante.gouv.fr/ig/fhir/cdl/StructureDefinition/cdl-ext-is-emergency"
R234 = "https://mos.esante.gouv.fr/NOS/TRE_R234-TypeNote/FHIR/TRE-R234-TypeNote"
R234_OID = "urn:oid:1.2.250.1.213.1.1.4.334"
J23_OID = "urn:oid:1.2.250.1.213.1.1.5.98"
A07 = "https://mos.esante.gouv.fr/NOS/TRE_A07-StatusVisibiliteDocument/FHIR/TRE-A07-StatusVisibiliteDocument"
A07_OID = "urn:oid:1.2.250.1.213.1.1.4.13"
WHERE = "Bundle.entry[0].resource"


def triples(items: list[Finding]) -> list[tuple[str, Severity, str]]:
    return [(f.code, f.severity, f.location) for f in items]


def note(**changes: Any) -> Json:
    """A valid note, with top-level elements replaced (``None`` removes one)."""
    base: Json = {
        "resourceType": "DocumentReference",
        "extension": [{"url": IS_EMERGENCY, "valueBoolean": True}],
        "status": "current",
        "type": {"coding": [{"system": R234, "code": "GEN"}]},
        "subject": {"reference": "Patient/p1"},
        "author": [{"reference": "Practitioner/a1"}],
        "securityLabel": [{"coding": [{"system": A07, "code": "MASQUE_PS"}]}],
        "content": [{"attachment": {"contentType": "text/plain", "data": "Qm9u"}}],
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def test_the_guide_identifiers() -> None:
    assert C.PROFILE_DOCUMENT_REFERENCE == f"{CDL}/StructureDefinition/cdl-document-reference"
    assert C.PROFILE_BUNDLE_CREATION == f"{CDL}/StructureDefinition/cdl-bundle-creation-note"
    assert C.IMPLEMENTATION_GUIDE == f"{CDL}/ImplementationGuide/ans.fhir.fr.cdl"
    assert C.NOTE_TYPES == {
        "DEM-AVIS": "Demande d'avis",
        "GEN": "Note générale",
        "INST": "Instruction",
        "INTERV": "Note d'intervention",
        "OBS": "Note d'observation",
    }
    assert C.VISIBILITY_CODES == {
        "MASQUE_PS": "Masqué aux professionnels de santé",
        "INVISIBLE_PATIENT": "Non visible par le patient",
        "INVISIBLE_REPRESENTANTS_LEGAUX": "Non visible par les représentants légaux du patient",
        "CONNEXION_SECRETE": "Connexion secrète",
    }


@pytest.mark.parametrize("code", ["DEM-AVIS", "GEN", "INST", "INTERV", "OBS"])
@pytest.mark.parametrize("system", [R234, R234_OID])
def test_every_note_type_of_jdv_j23_is_accepted(system: str, code: str) -> None:
    resource = note(type={"coding": [{"system": system, "code": code}]})
    assert C.note_type(resource) == code
    assert C.check_note(resource) == []


@pytest.mark.parametrize("code", ["DEM-AVIS", "OBS"])
def test_the_value_set_oid_as_system_is_a_warning(code: str) -> None:
    resource = note(type={"coding": [{"system": J23_OID, "code": code}]})
    assert C.note_type(resource) == code
    got = C.check_note(resource)
    assert triples(got) == [("CDL-TYPE-SYSTEM", W, "DocumentReference.type")]
    assert got[0].message == f"système {J23_OID} (OID du jeu de valeurs) au lieu de {R234}"


@pytest.mark.parametrize(
    "code", ["MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX", "CONNEXION_SECRETE"]
)
@pytest.mark.parametrize("system", [A07, A07_OID])
def test_every_visibility_code_is_accepted(system: str, code: str) -> None:
    resource = note(securityLabel=[{"coding": [{"system": system, "code": code}]}])
    assert C.visibility(resource) == code
    assert C.check_note(resource) == []


@pytest.mark.parametrize(
    "author",
    [
        {"reference": "Device/d"},
        {"reference": "RelatedPerson/r"},
        {"reference": "Patient/p"},
        {"reference": "Practitioner/p"},
        {"reference": "PractitionerRole/r"},
        {"reference": "Organization/o"},
        {"reference": "urn:uuid:a"},
        {"reference": "urn:uuid:a", "type": "RelatedPerson"},
        {"type": "Organization", "identifier": {"value": "1"}},
    ],
)
def test_every_author_type_is_accepted(author: Json) -> None:
    assert C.check_note(note(author=[author])) == []


@pytest.mark.parametrize(
    ("author", "message"),
    [
        ({"reference": "Location/l"}, "type d'auteur non permis : Location"),
        ({"reference": "urn:uuid:a", "type": "Location"}, "type d'auteur non permis : Location"),
        ({"type": "Group", "identifier": {"value": "1"}}, "type d'auteur non permis : Group"),
        ({"type": 3}, "type d'auteur non permis : référence illisible"),
        ({"reference": "p1"}, "type d'auteur non permis : référence illisible"),
        ({"reference": "https://x/fhir/Location/l/_history/1"}, "type d'auteur non permis : Location"),
        ({"reference": "https://x/fhir/location/l"}, "type d'auteur non permis : référence illisible"),
    ],
)
def test_authors_outside_the_profile(author: Json, message: str) -> None:
    got = C.check_note(note(author=[{"reference": "Patient/p"}, author]), where=WHERE)
    assert triples(got) == [("CDL-AUTHOR-TYPE", E, f"{WHERE}.author[1]")]
    assert got[0].message == f"{message} (Device, RelatedPerson, Patient, Practitioner, PractitionerRole, Organization)"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ({"reference": "Patient/p"}, []),
        ({"reference": "urn:uuid:p"}, []),
        ({"reference": "urn:uuid:p", "type": "Patient"}, []),
        ({"type": "Patient", "identifier": {"value": "1"}}, []),
        ({"reference": "urn:uuid:p", "type": "Group"}, ["Group"]),
        ({"reference": "Practitioner/p"}, ["Practitioner"]),
        ({"type": "Group"}, ["Group"]),
        ({"reference": "Patient"}, ["une référence illisible"]),
        ({}, ["une référence illisible"]),
    ],
)
def test_subject_must_be_a_patient(subject: Json, expected: list[str]) -> None:
    got = C.check_note(note(subject=subject), where=WHERE)
    assert triples(got) == [("CDL-SUBJECT-TYPE", E, f"{WHERE}.subject")] * len(expected)
    assert [f.message for f in got] == [f"le sujet doit être un Patient, reçu {kind}" for kind in expected]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"type": None}, [("CDL-TYPE-ABSENT", E, "type")]),
        ({"type": {"coding": ["GEN"]}}, [("CDL-TYPE-ABSENT", E, "type")]),
        ({"type": {"text": "note"}}, [("CDL-TYPE-ABSENT", E, "type")]),
        ({"type": {"coding": [{"system": R234, "code": "X"}]}}, [("CDL-TYPE-JDV", E, "type")]),
        ({"type": {"coding": [{"system": "http://loinc.org", "code": "GEN"}]}}, [("CDL-TYPE-JDV", E, "type")]),
        ({"type": {"coding": ["x", {"system": R234, "code": "OBS"}]}}, []),
        (
            {"type": {"coding": [{"system": J23_OID, "code": "X"}, {"system": R234, "code": "GEN"}]}},
            [("CDL-TYPE-SYSTEM", W, "type")],
        ),
        ({"subject": None}, [("CDL-SUBJECT-ABSENT", E, "subject")]),
        ({"author": None}, [("CDL-AUTHOR-ABSENT", E, "author")]),
        ({"docStatus": "final"}, [("CDL-INTERDIT", E, "docStatus")]),
        ({"authenticator": {}}, [("CDL-INTERDIT", E, "authenticator")]),
        ({"custodian": {}}, [("CDL-INTERDIT", E, "custodian")]),
        (
            {"docStatus": "final", "authenticator": {}, "custodian": {}},
            [("CDL-INTERDIT", E, "docStatus"), ("CDL-INTERDIT", E, "authenticator"), ("CDL-INTERDIT", E, "custodian")],
        ),
        ({"securityLabel": None}, []),
        ({"securityLabel": [None]}, []),
        ({"securityLabel": [{"coding": ["MASQUE_PS"]}]}, []),
        (
            {"securityLabel": [{"coding": [{"system": A07, "code": "MASQUE_PS"}]}] * 2},
            [("CDL-SECURITYLABEL-CARD", E, "securityLabel")],
        ),
        (
            {"securityLabel": [{}, {"coding": [{"system": "urn:x", "code": "MASQUE_PS"}]}]},
            [("CDL-SECURITYLABEL-CARD", E, "securityLabel"), ("CDL-SECURITYLABEL-JDV", E, "securityLabel[1]")],
        ),
        (
            {"securityLabel": [{"coding": [{"system": A07, "code": "N"}, {"code": "MASQUE_PS"}]}]},
            [("CDL-SECURITYLABEL-JDV", W, "securityLabel[0]"), ("CDL-SECURITYLABEL-JDV", E, "securityLabel[0]")],
        ),
        ({"extension": None}, []),
        ({"extension": ["x", {"url": "urn:other", "valueString": "oui"}]}, []),
        ({"extension": [{"url": IS_EMERGENCY, "valueBoolean": False}]}, []),
        (
            {"extension": [{"url": "urn:other"}, {"url": IS_EMERGENCY, "valueString": "true"}]},
            [("CDL-URGENCE", E, "extension[1]")],
        ),
        ({"content": None}, []),
        ({"content": [{"attachment": {"url": "https://x/doc"}}]}, []),
        ({"content": [{"attachment": {"data": "", "url": "https://x/doc"}}]}, []),
        ({"content": [{"attachment": {"data": "Qm9u", "contentType": "text/plain", "url": "u"}}]}, []),
        ({"content": [None]}, [("CDL-CONTENT-VIDE", W, "content[0].attachment")]),
        ({"content": [{"attachment": {"data": "", "url": ""}}]}, [("CDL-CONTENT-VIDE", W, "content[0].attachment")]),
        (
            {"content": [{"attachment": {"url": "u"}}, {"attachment": {"data": "Qm9u", "url": "u"}}]},
            [("CDL-CONTENT-TYPE", W, "content[1].attachment")],
        ),
        ({"status": "superseded"}, []),
        ({"status": "entered-in-error"}, []),
        ({"status": "draft"}, [("CDL-STATUS", E, "status")]),
        ({"status": None}, [("CDL-STATUS", E, "status")]),
    ],
)
def test_each_note_rule_exactly(changes: Json, expected: list[tuple[str, Severity, str]]) -> None:
    resource = note(**changes)
    assert triples(C.check_note(resource, where=WHERE)) == [(c, s, f"{WHERE}.{loc}") for c, s, loc in expected]
    assert triples(C.check_note(resource)) == [(c, s, f"DocumentReference.{loc}") for c, s, loc in expected]


def test_every_finding_of_a_bad_note_in_order() -> None:
    resource = note(
        type=None,
        subject=None,
        author=None,
        docStatus="final",
        securityLabel=[{"coding": [{"system": "urn:x", "code": "N"}]}, {}],
        extension=[{"url": IS_EMERGENCY}],
        content=[{"attachment": {}}],
        status="draft",
    )
    assert [(f.code, f.severity) for f in C.check_note(resource)] == [
        ("CDL-TYPE-ABSENT", E),
        ("CDL-SUBJECT-ABSENT", E),
        ("CDL-AUTHOR-ABSENT", E),
        ("CDL-INTERDIT", E),
        ("CDL-SECURITYLABEL-CARD", E),
        ("CDL-SECURITYLABEL-JDV", E),
        ("CDL-URGENCE", E),
        ("CDL-CONTENT-VIDE", W),
        ("CDL-STATUS", E),
    ]


def test_note_messages() -> None:
    def message(**changes: Any) -> str:
        (finding,) = C.check_note(note(**changes))
        return finding.message

    assert message(type={"coding": [{"system": "urn:x", "code": "Z"}, {"code": "Y"}]}) == (
        "type de note hors du jeu de valeurs JDV_J23 TypeNoteCahierLiaison (urn:x|Z, None|Y); attendu "
        f"{R234} parmi DEM-AVIS, GEN, INST, INTERV, OBS"
    )
    assert message(securityLabel=[{"coding": [{"system": "urn:x"}]}]) == "securityLabel hors JDV_J110 (système 'urn:x')"
    assert message(securityLabel=[{"coding": [{"system": A07, "code": "N"}]}]) == (
        "code de visibilité inconnu 'N' (MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX, "
        "CONNEXION_SECRETE)"
    )
    assert message(securityLabel=[{}, {}]) == "2 securityLabel (0..1 au plus)"
    assert message(custodian={}) == "custodian interdit dans une note du cahier de liaison (0..0)"
    assert message(status="draft") == "statut de note invalide 'draft'"


def test_note_readers() -> None:
    assert C.is_emergency(note()) is True
    assert C.is_emergency(note(extension=[{"url": IS_EMERGENCY, "valueBoolean": False}])) is False
    assert C.is_emergency(note(extension=["x", {"url": "urn:o", "valueBoolean": True}])) is None
    assert (
        C.is_emergency(note(extension=[{"url": IS_EMERGENCY}, {"url": IS_EMERGENCY, "valueBoolean": False}])) is False
    )
    assert C.is_emergency(note(extension=None)) is None
    assert C.note_type(note(type={"coding": ["GEN", {"system": R234, "code": "INST"}]})) == "INST"
    assert C.note_type(note(type={"coding": [{"system": "urn:x", "code": "GEN"}]})) is None
    assert C.note_type(note(type=None)) is None
    labels = [{"coding": [{"system": A07}, "x", {"code": "CONNEXION_SECRETE"}]}]
    assert C.visibility(note(securityLabel=labels)) == "CONNEXION_SECRETE"
    assert C.visibility(note(securityLabel=[None, {"coding": [{"code": "MASQUE_PS"}]}])) == "MASQUE_PS"
    assert C.visibility(note(securityLabel=None)) is None


# ---------------------------------------------------------------------------------------------------- Bundles


def entry(resource_type: str, method: str | None = "POST", **extra: Any) -> Json:
    out: Json = {"fullUrl": f"urn:uuid:{resource_type.lower()}", "resource": {"resourceType": resource_type}, **extra}
    if method is not None:
        out["request"] = {"method": method, "url": resource_type}
    return out


def bundle(*entries: Json, kind: str = "transaction") -> Json:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


@pytest.mark.parametrize(
    ("entries", "update", "expected"),
    [
        ([entry("DocumentReference")], None, []),
        ([entry("DocumentReference", "put")], None, []),
        ([entry("DocumentReference")], False, []),
        ([entry("DocumentReference", "PUT")], True, []),
        ([entry("DocumentReference", "PUT")], False, [("CDL-BUNDLE-METHOD", "Bundle.entry[0].request.method")]),
        ([entry("DocumentReference")], True, [("CDL-BUNDLE-METHOD", "Bundle.entry[0].request.method")]),
        ([entry("DocumentReference", None)], None, [("CDL-BUNDLE-METHOD", "Bundle.entry[0].request.method")]),
        (
            ["x", entry("Patient"), entry("DocumentReference", "GET")],
            None,
            [("CDL-BUNDLE-METHOD", "Bundle.entry[1].request.method")],
        ),
        ([entry("Patient")], None, [("CDL-BUNDLE-NOTE", "Bundle.entry")]),
        (
            [entry("DocumentReference"), entry("DocumentReference", "PUT")],
            None,
            [("CDL-BUNDLE-NOTE", "Bundle.entry")],
        ),
        (
            [entry("DocumentReference"), *(entry(t, "PUT") for t in C.ACTOR_TYPES)],
            None,
            [],
        ),
        (
            [
                entry("DocumentReference"),
                entry("Patient", "PUT"),
                entry("Practitioner"),
                entry("PractitionerRole", "put"),
                entry("Organization"),
                entry("RelatedPerson"),
                entry("Device", "post"),
            ],
            None,
            [],
        ),
        (
            [entry("DocumentReference"), entry("Device", "DELETE"), entry("RelatedPerson", None)],
            None,
            [("CDL-REQ-MET-1", "Bundle.entry[1].request.method"), ("CDL-REQ-MET-1", "Bundle.entry[2].request.method")],
        ),
        (
            [entry("DocumentReference"), entry("Observation"), entry("Organization")],
            None,
            [("CDL-BUNDLE-RESSOURCE", "Bundle.entry[1]")],
        ),
        (
            [entry("DocumentReference"), entry("Observation", response={"status": "201"})],
            None,
            [("CDL-BUNDLE-RESSOURCE", "Bundle.entry[1]"), ("CDL-BUNDLE-RESPONSE", "Bundle.entry[1].response")],
        ),
        (
            [entry("DocumentReference"), entry("Patient", "PATCH", response={})],
            None,
            [("CDL-REQ-MET-1", "Bundle.entry[1].request.method"), ("CDL-BUNDLE-RESPONSE", "Bundle.entry[1].response")],
        ),
        ([entry("DocumentReference", response={"status": "201"})], None, []),
    ],
)
def test_each_bundle_rule_exactly(entries: list, update: bool | None, expected: list[tuple[str, str]]) -> None:
    got = C.check_bundle(bundle(*entries), update=update)
    assert [(f.code, f.location) for f in got] == [code_location for code_location in expected]
    severities = {"CDL-BUNDLE-RESSOURCE": W}
    assert [f.severity for f in got] == [severities.get(code, E) for code, _ in expected]


def test_bundle_type_and_messages() -> None:
    got = C.check_bundle(bundle(kind="batch"))
    assert triples(got) == [("CDL-BUNDLE-TYPE", E, "Bundle.type"), ("CDL-BUNDLE-NOTE", E, "Bundle.entry")]
    assert [f.message for f in got] == [
        "Bundle de note de type 'batch' (attendu transaction)",
        "0 DocumentReference dans le Bundle (exactement 1 attendue)",
    ]
    assert triples(C.check_bundle({"entry": [entry("DocumentReference")]})) == [("CDL-BUNDLE-TYPE", E, "Bundle.type")]

    def message(update: bool | None, method: str | None) -> str:
        (finding,) = C.check_bundle(bundle(entry("DocumentReference", method)), update=update)
        return finding.message

    assert message(None, "GET") == "la note doit être envoyée en POST ou PUT, reçu GET"
    assert message(True, "POST") == "la note doit être envoyée en PUT, reçu POST"
    assert message(False, None) == "la note doit être envoyée en POST, reçu rien"
    (actor,) = C.check_bundle(bundle(entry("DocumentReference"), entry("Device", "patch")))
    assert actor.message == "acteur Device : POST si nouvel élément, PUT s'il existe (reçu PATCH)"
    (bare,) = C.check_bundle(bundle(entry("DocumentReference"), entry("RelatedPerson", None)))
    assert bare.message == "acteur RelatedPerson : POST si nouvel élément, PUT s'il existe (reçu rien)"
    (other,) = C.check_bundle(bundle(entry("DocumentReference"), {"resource": None}))
    assert (other.code, other.message) == ("CDL-BUNDLE-RESSOURCE", "ressource None inattendue dans un Bundle de note")


# ---------------------------------------------------------------------------------------------------- transactions

PATIENT: Json = {
    "resourceType": "Patient",
    "id": "p",
    "identifier": [{"use": "official", "system": "urn:oid:1.2.250.1.213.1.4.10", "value": "238047505612394"}],
    "name": [{"family": "MARTIN", "given": ["Jeanne"]}],
    "gender": "female",
    "birthDate": "1938-04-12",
}


def test_entry_findings_apply_the_rules_of_each_resource_type() -> None:
    where = "Bundle.entry[2].resource"
    assert triples(C.entry_findings(note(status="draft"), where=where)) == [("CDL-STATUS", E, f"{where}.status")]
    assert C.entry_findings(PATIENT, where=where) == []
    patient = triples(C.entry_findings({**PATIENT, "gender": "x"}, where=where))
    assert patient and all(loc.startswith(where) for _, _, loc in patient)
    assert C.entry_findings({"resourceType": "Organization"}, where=where) != []
    assert C.entry_findings({"resourceType": "Practitioner"}, where=where) != []
    assert C.entry_findings({"resourceType": "Device"}, where=where) == []
    assert C.entry_findings({}, where=where) == []


def transaction(subject: str, *, patient_method: str = "POST", patient_url: str = "urn:uuid:pat") -> Json:
    resource = note(subject={"reference": subject}, author=[{"reference": "urn:uuid:dev"}])
    return bundle(
        {"fullUrl": "urn:uuid:note", "resource": resource, "request": {"method": "POST", "url": "DocumentReference"}},
        {"fullUrl": patient_url, "resource": PATIENT, "request": {"method": patient_method, "url": "Patient"}},
        {"fullUrl": "urn:uuid:dev", "resource": {"resourceType": "Device", "id": "d"}, "request": {"method": "POST"}},
    )


def test_posted_id_references() -> None:
    assert C.posted_id_references(transaction("urn:uuid:pat")) == []
    got = C.posted_id_references(transaction("Patient/p"))
    assert triples(got) == [("FHIR-REFERENCE", E, "Bundle.entry[0].resource.subject")]
    assert got[0].message == (
        "référence non résolue : Patient/p — l'entrée urn:uuid:pat est créée par POST et reçoit un nouvel id ; "
        "la référencer par son fullUrl (urn:uuid:pat)"
    )
    assert C.posted_id_references(transaction("Patient/p", patient_method="put")) == []
    assert triples(C.posted_id_references(transaction("Patient/p", patient_method="post"))) == triples(got)
    assert C.posted_id_references(transaction("Patient/p", patient_url="https://x/fhir/Patient/p")) == []
    assert triples(C.posted_id_references(transaction("Patient/p", patient_url="urn:oid:1.2.3"))) == triples(got)
    odd = transaction("Patient/p")
    odd["entry"][1]["fullUrl"] = None
    assert C.posted_id_references(odd) == []
    odd["entry"][1:1] = ["x", {"resource": "Patient/p"}]
    odd["entry"][3]["fullUrl"] = "urn:uuid:pat"
    assert triples(C.posted_id_references(odd)) == triples(got)
    odd["entry"].append({"resource": [{"reference": "Patient/p"}]})  # not a resource: its references are not read
    assert triples(C.posted_id_references(odd)) == triples(got)


def test_check_transaction_gathers_the_bundle_the_entries_and_the_references() -> None:
    assert C.check_transaction(transaction("urn:uuid:pat")) == []
    bad = transaction("Patient/p")
    bad["entry"][0]["resource"]["status"] = "draft"
    bad["entry"][2]["request"]["method"] = "PATCH"
    bad["entry"].append("x")
    bad["entry"].append({"resource": None})
    assert triples(C.check_transaction(bad)) == [
        ("CDL-REQ-MET-1", E, "Bundle.entry[2].request.method"),
        ("CDL-BUNDLE-RESSOURCE", W, "Bundle.entry[3]"),
        ("CDL-STATUS", E, "Bundle.entry[0].resource.status"),
        ("FHIR-REFERENCE", E, "Bundle.entry[0].resource.subject"),
    ]
    assert triples(C.check_transaction(transaction("urn:uuid:pat"), update=True)) == [
        ("CDL-BUNDLE-METHOD", E, "Bundle.entry[0].request.method")
    ]
