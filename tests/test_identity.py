"""Tests for harness.fields.identity: INS key, OIDs, renderings and test-identity generation."""

from __future__ import annotations

import random
import re
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.fields.identity import (
    INS,
    INS_OIDS,
    OID_INS_NIA,
    OID_INS_NIR,
    OID_INS_NIR_DEMO,
    OID_INS_NIR_TEST,
    InsError,
    InsKind,
    compute_key,
    generate_test_ins,
    is_valid_ins,
    parse_ins,
    parse_xds_patient_id,
    refuse_production,
)
from harness.fields.xmlsafe import parse_xml

# Public test identities (INSi qualification environment) whose keys match 97 - (N mod 97).
PUBLIC_IDENTITIES = [
    ("297022A020778", "78"),
    ("160012B020777", "13"),
    ("2360663220836", "56"),
    ("180032B020401", "23"),
]


@pytest.mark.parametrize(("number", "key"), PUBLIC_IDENTITIES)
def test_public_identities_validate(number: str, key: str) -> None:
    assert compute_key(number) == key
    ins = parse_ins(number + key, OID_INS_NIR)
    assert ins.value == number + key
    assert ins.kind is InsKind.NIR
    assert not ins.is_test


@pytest.mark.parametrize(("number", "key"), PUBLIC_IDENTITIES)
def test_one_digit_change_breaks_the_key(number: str, key: str) -> None:
    value = number + key
    for position, char in enumerate(value):
        if not char.isdigit():
            continue
        mutated = value[:position] + str((int(char) + 1) % 10) + value[position + 1 :]
        assert not is_valid_ins(mutated, OID_INS_NIR), mutated


@pytest.mark.parametrize(
    ("number", "listed_key", "computed_key"),
    [("1090763220834", "39", "89"), ("1810363220456", "10", "76")],
)
def test_listed_identities_with_inconsistent_keys(number: str, listed_key: str, computed_key: str) -> None:
    # Listed as INSi test identities, but their keys do not satisfy 97 - (N mod 97): refused, not fudged.
    assert compute_key(number) == computed_key
    with pytest.raises(InsError) as info:
        parse_ins(number + listed_key, OID_INS_NIR)
    assert info.value.code == "INS-KEY"


def test_textbook_nir_example() -> None:
    assert compute_key("1841276451089") == "46"


def test_corsica_substitution() -> None:
    # 2A counts as 19 and 2B as 18 for the key only.
    assert compute_key("297022A020778") == f"{97 - 2970219020778 % 97:02d}"
    assert compute_key("160012B020777") == f"{97 - 1600118020777 % 97:02d}"
    assert parse_ins("2 97 02 2a 020 778 78", OID_INS_NIR).number == "297022A020778"
    # Same digits with the Corsican code swapped: the key no longer matches.
    assert not is_valid_ins("297022B020778" + "78", OID_INS_NIR)


@pytest.mark.parametrize(
    "bad",
    [
        "29702",  # too short
        "297022A0207781",  # 14 characters
        "5970275020778XX",  # sex digit 5, key not digits
        "297132A02077878",  # month 13
        "297002A02077878",  # month 00
        "297022C02077878",  # department 2C
        "29702A202077878",  # letter out of place
        "２９７０２２Ａ０２０７７８７８",  # full-width digits
    ],
)
def test_format_errors(bad: str) -> None:
    with pytest.raises(InsError) as info:
        parse_ins(bad, OID_INS_NIR)
    assert info.value.code == "INS-FORMAT"


def test_pseudo_months_and_special_sex_digits_accepted() -> None:
    for number in ("1853075056123", "2854475056123", "7859975056123", "3852075056123"):
        assert is_valid_ins(number + compute_key(number))


def test_wrong_oid() -> None:
    for oid in ("1.2.250.1.71.4.2.7", "1.2.250.1.213.1.4.2", "", "1.2.250.1.213.1.4.8.1"):
        with pytest.raises(InsError) as info:
            parse_ins("297022A02077878", oid)
        assert info.value.code == "INS-OID"
        assert "autorité d'affectation" in info.value.message
    with pytest.raises(InsError) as info:
        INS(number="297022A020778", key="78", oid="1.2.3")
    assert info.value.code == "INS-OID"


def test_wrong_key_code() -> None:
    with pytest.raises(InsError) as info:
        parse_ins("297022A02077879", OID_INS_NIR)
    assert info.value.code == "INS-KEY"
    assert isinstance(info.value, ValueError)


def test_oid_table_is_read_only() -> None:
    assert dict(INS_OIDS) == {
        "1.2.250.1.213.1.4.8": InsKind.NIR,
        "1.2.250.1.213.1.4.9": InsKind.NIA,
        "1.2.250.1.213.1.4.10": InsKind.NIR_TEST,
        "1.2.250.1.213.1.4.11": InsKind.NIR_DEMO,
    }
    with pytest.raises(TypeError):
        INS_OIDS["1.2.3"] = InsKind.NIR  # type: ignore[index]


def test_renderings() -> None:
    ins = parse_ins("297022A02077878")
    assert ins.oid == OID_INS_NIR_TEST and ins.is_test and ins.kind is InsKind.NIR_TEST
    assert ins.to_cda_id() == {"root": "1.2.250.1.213.1.4.10", "extension": "297022A02077878"}
    assert ins.to_xds() == "297022A02077878^^^&1.2.250.1.213.1.4.10&ISO^NH"
    assert ins.to_hl7v2_cx() == "297022A02077878^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS"
    assert ins.to_hl7v2_cx("NH") == "297022A02077878^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^NH"
    assert ins.to_fhir_identifier() == {"system": "urn:oid:1.2.250.1.213.1.4.10", "value": "297022A02077878"}
    assert ins.patient_mailbox() == "297022A02077878@patient.mssante.fr"


@pytest.mark.parametrize(
    ("oid", "authority"),
    [
        (OID_INS_NIR, "ASIP-SANTE-INS-NIR"),
        (OID_INS_NIR_TEST, "ASIP-SANTE-INS-NIR"),
        (OID_INS_NIA, "ASIP-SANTE-INS-NIA"),
        (OID_INS_NIR_DEMO, "ASIP-SANTE-INS-NIR"),
    ],
)
def test_hl7_authority_names(oid: str, authority: str) -> None:
    ins = parse_ins("160012B02077713", oid)
    assert ins.to_hl7v2_cx() == f"160012B02077713^^^{authority}&{oid}&ISO^INS"


def test_xds_round_trip() -> None:
    for oid in INS_OIDS:
        ins = parse_ins("2360663220836 56", oid)
        assert parse_xds_patient_id(ins.to_xds()) == ins


@pytest.mark.parametrize(
    "cx",
    [
        "",
        "297022A02077878",
        "297022A02077878^^^&1.2.250.1.213.1.4.10&ISO",  # no ^NH
        "297022A02077878^^^&1.2.250.1.213.1.4.10&ISO^PI",
        "297022A02077878^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^NH",  # namespace not allowed
        "297022A02077878^^^&1.2.250.1.213.1.4.10&DNS^NH",
        "297022A02077878^^&1.2.250.1.213.1.4.10&ISO^NH",
        "297022A02077878^^^&1.2.250.1.213.1.4.10&ISO^NH^extra",
        "297022A 02077878^^^&1.2.250.1.213.1.4.10&ISO^NH",
        "^^^&1.2.250.1.213.1.4.10&ISO^NH",
        "<script>^^^&1.2.250.1.213.1.4.10&ISO^NH",
    ],
)
def test_xds_garbage_refused(cx: str) -> None:
    with pytest.raises(InsError):
        parse_xds_patient_id(cx)


def test_xds_local_identifier_is_not_an_ins() -> None:
    with pytest.raises(InsError) as info:
        parse_xds_patient_id("297022A02077878^^^&1.2.250.1.71.4.2.7&ISO^NH")
    assert info.value.code == "INS-OID"
    with pytest.raises(InsError) as info:
        parse_xds_patient_id("297022A02077879^^^&1.2.250.1.213.1.4.8&ISO^NH")
    assert info.value.code == "INS-KEY"


def test_generate_is_deterministic_and_uses_the_test_oid() -> None:
    first = generate_test_ins(random.Random(42), sex="F", birth_date=date(1997, 2, 3), department="2A")
    again = generate_test_ins(random.Random(42), sex="F", birth_date=date(1997, 2, 3), department="2A")
    assert first == again
    assert first.oid == OID_INS_NIR_TEST
    assert first.number.startswith("297022A056")
    with pytest.raises(InsError):
        generate_test_ins(random.Random(1), sex="X", birth_date=date(2000, 1, 1))
    with pytest.raises(InsError):
        generate_test_ins(random.Random(1), sex="M", birth_date=date(2000, 1, 1), department="2C")
    with pytest.raises(InsError):
        generate_test_ins(random.Random(1), sex="M", birth_date=date(2000, 1, 1), commune="56")


def test_refuse_production() -> None:
    production = parse_ins("297022A02077878", OID_INS_NIR)
    with pytest.raises(InsError) as info:
        refuse_production(production)
    assert info.value.code == "INS-PRODUCTION"
    with pytest.raises(InsError):
        refuse_production(parse_ins("297022A02077878", OID_INS_NIA))
    refuse_production(production, allow=True)
    refuse_production(parse_ins("297022A02077878", OID_INS_NIR_TEST))
    refuse_production(parse_ins("297022A02077878", OID_INS_NIR_DEMO))


# -- property tests ---------------------------------------------------------------------------------

departments = st.one_of(
    st.integers(min_value=0, max_value=99).map(lambda n: f"{n:02d}"),
    st.sampled_from(["2A", "2B"]),
)
generated = st.builds(
    lambda seed, sex, birth, department, commune: generate_test_ins(
        random.Random(seed), sex=sex, birth_date=birth, department=department, commune=f"{commune:03d}"
    ),
    st.integers(),
    st.sampled_from(["M", "F"]),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
    departments,
    st.integers(min_value=0, max_value=999),
)
numbers13 = st.from_regex(r"[123478][0-9]{2}(0[1-9]|1[0-2]|[2-9][0-9])([0-9]{2}|2[AB])[0-9]{6}", fullmatch=True)


@given(generated)
def test_generated_ins_is_valid_and_round_trips(ins: INS) -> None:
    assert ins.is_test and ins.kind is InsKind.NIR_TEST
    assert is_valid_ins(ins.value, ins.oid)
    assert parse_ins(ins.value, ins.oid) == ins
    assert parse_xds_patient_id(ins.to_xds()) == ins
    assert parse_ins(ins.to_cda_id()["extension"], ins.to_cda_id()["root"]) == ins
    fhir = ins.to_fhir_identifier()
    assert parse_ins(fhir["value"], fhir["system"].removeprefix("urn:oid:")) == ins


@given(numbers13)
def test_compute_key_in_range(number: str) -> None:
    key = compute_key(number)
    assert len(key) == 2 and 1 <= int(key) <= 97
    assert is_valid_ins(number + key)


@given(generated, st.data())
def test_any_single_digit_mutation_is_detected(ins: INS, data: st.DataObject) -> None:
    value = ins.value
    positions = [i for i, char in enumerate(value) if char.isdigit()]
    position = data.draw(st.sampled_from(positions))
    digit = data.draw(st.sampled_from([d for d in "0123456789" if d != value[position]]))
    mutated = value[:position] + digit + value[position + 1 :]
    assert not is_valid_ins(mutated, ins.oid)


# -- INS key and format rules against the public corpus (INSi qualification identities) ---------------------

_CORPUS_INS = re.compile(r"\b([0-9]{6}[0-9AB][0-9]{6}) ([0-9]{2})\b")
# Listed in the corpus, but their keys fail 97 - (N mod 97): served as given by the INSi simulator, and flagged.
_INCONSISTENT_IN_CORPUS = {
    ("1090763220834", "39"),  # README table (the response TEST_2.04 gives 89, which is right)
    ("1810363220456", "10"),  # README table
    ("1810363220456", "60"),  # response TEST_2.08 cas 2 (active and history)
    ("2810363220456", "60"),  # README table (history)
    ("2810363220456", "10"),  # response TEST_2.08 cas 2 (history)
}


def _corpus_matricules(corpus: Path) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    readme = corpus / "README.md"
    if readme.is_file():
        found |= set(_CORPUS_INS.findall(readme.read_text(encoding="utf-8")))
    for response in sorted((corpus / "insi" / "responses").glob("*.xml")):
        root = parse_xml(response.read_bytes())
        ns = {"r": "http://www.cnamts.fr/INSiResultat"}
        for ident in root.iterfind(".//r:IdIndividu", ns):
            number, key = ident.findtext("r:NumIdentifiant", namespaces=ns), ident.findtext("r:Cle", namespaces=ns)
            if number and key:
                found.add((number, key))
    return found


def test_corpus_matricules_follow_the_key_rule_except_the_known_inconsistencies(corpus_dir: Path) -> None:
    matricules = _corpus_matricules(corpus_dir)
    if not matricules:
        pytest.skip("aucun matricule INS lisible dans le corpus")
    wrong = {(n, k) for n, k in matricules if compute_key(n) != k}
    assert wrong <= _INCONSISTENT_IN_CORPUS, wrong - _INCONSISTENT_IN_CORPUS
    assert ("1090763220834", "89") in matricules  # the key the response gives for ECETINSI is the right one
    for number, key in matricules - wrong:
        assert is_valid_ins(number + key, OID_INS_NIR)


def test_identity_base_flags_exactly_the_keys_that_fail_the_rule() -> None:
    from mock_services.insi.identities import QUALIFICATION_IDENTITIES

    for identity in QUALIFICATION_IDENTITIES:
        entries = [(identity.number, identity.key), *((h.number, h.key) for h in identity.history)]
        bad = {n + " " + k for n, k in entries if compute_key(n) != k}
        flagged = {f.split(": ", 1)[1].split(" (")[0] for f in identity.flags if f.startswith("CLE-NON-CONFORME")}
        assert flagged == bad, identity.birth_name
    hermann = next(i for i in QUALIFICATION_IDENTITIES if i.birth_name == "HERMANN")
    assert hermann.flags and (hermann.number, hermann.key) == ("1810363220456", "60")


@given(numbers13)
def test_exactly_one_key_validates_a_number(number: str) -> None:
    valid = [f"{k:02d}" for k in range(100) if is_valid_ins(number + f"{k:02d}")]
    assert valid == [compute_key(number)]


@given(numbers13)
def test_key_formula_with_corsica_substitution(number: str) -> None:
    digits = number[:5] + {"2A": "19", "2B": "18"}.get(number[5:7], number[5:7]) + number[7:]
    assert int(compute_key(number)) == 97 - int(digits) % 97


@given(numbers13, st.data())
def test_adjacent_transpositions_in_the_number_are_detected(number: str, data: st.DataObject) -> None:
    value = number + compute_key(number)
    swappable = [i for i in range(12) if value[i].isdigit() and value[i + 1].isdigit() and value[i] != value[i + 1]]
    if not swappable:
        return
    i = data.draw(st.sampled_from(swappable))
    swapped = value[:i] + value[i + 1] + value[i] + value[i + 2 :]
    assert not is_valid_ins(swapped)


@given(numbers13, st.lists(st.integers(min_value=0, max_value=15), max_size=4))
def test_spaces_and_lower_case_corsica_do_not_change_the_ins(number: str, cuts: list[int]) -> None:
    value = number + compute_key(number)
    spaced = value
    for cut in sorted(set(cuts), reverse=True):
        spaced = spaced[:cut] + " " + spaced[cut:]
    assert parse_ins(spaced.lower()) == parse_ins(value)


def test_synthetic_insi_identities_carry_valid_test_ins_consistent_with_their_traits() -> None:
    from mock_services.insi.identities import synthetic_identities

    identities = synthetic_identities(300, 12345)
    assert len(identities) == 300 and len({i.number for i in identities}) == 300
    assert identities == synthetic_identities(300, 12345)  # seeded: reproducible
    for identity in identities:
        ins = parse_ins(identity.value, identity.oid)
        assert ins.oid == OID_INS_NIR_TEST and ins.is_test and not identity.flags
        assert ins.number[0] == {"M": "1", "F": "2"}[identity.sex]
        assert ins.number[1:5] == identity.birth_date[2:4] + identity.birth_date[5:7]
        assert identity.birth_place == ins.number[5:10]
        assert identity.birth_name == identity.birth_name.upper() and identity.birth_name.isascii()
