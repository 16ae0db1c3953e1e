"""Every refusal of :mod:`harness.fields.identity` (Référentiel INS, ANS; NIR structure per INSEE), one row per
path, asserting the EXACT code (INS-FORMAT, INS-KEY, INS-OID, INS-PRODUCTION); non-text input; immutability; the
key's range and formatting."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from datetime import date

import pytest

from harness.fields.identity import (
    INS,
    OID_INS_NIA,
    OID_INS_NIR,
    OID_INS_NIR_DEMO,
    OID_INS_NIR_TEST,
    PRODUCTION_INS_CODE,
    PRODUCTION_INS_SETTING,
    InsError,
    InsKind,
    ProductionInsPolicy,
    compute_key,
    generate_test_ins,
    is_valid_ins,
    parse_ins,
    parse_xds_patient_id,
    production_ins,
    production_ins_policy,
    refuse_production,
)

NUMBER, KEY = "297022A020778", "78"  # public INSi test identity (2A counted as 19)
VALUE = NUMBER + KEY
BASE = 1_850_175_056_000  # male, born 1985-01, Paris 75056, order 000: orders 000-199 stay well-formed


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(InsError) as info:
        call()
    assert isinstance(info.value, ValueError) and str(info.value).startswith(f"{info.value.code}: ")
    return info.value.code


@pytest.mark.parametrize(
    ("call", "code"),
    [
        # compute_key: the public function refuses what is not a 13-character NIR/NIA
        pytest.param(lambda: compute_key(None), "INS-FORMAT", id="key-of-None"),
        pytest.param(lambda: compute_key(2970220020778), "INS-FORMAT", id="key-of-int"),
        pytest.param(lambda: compute_key(NUMBER.encode()), "INS-FORMAT", id="key-of-bytes"),
        pytest.param(lambda: compute_key(NUMBER[:12]), "INS-FORMAT", id="key-of-12-chars"),
        pytest.param(lambda: compute_key(NUMBER + "0"), "INS-FORMAT", id="key-of-14-chars"),
        pytest.param(lambda: compute_key("5" + NUMBER[1:]), "INS-FORMAT", id="key-sex-5"),
        pytest.param(lambda: compute_key("29713" + NUMBER[5:]), "INS-FORMAT", id="key-month-13"),
        pytest.param(lambda: compute_key("2C".join([NUMBER[:5], NUMBER[7:]])), "INS-FORMAT", id="key-dept-2C"),
        pytest.param(lambda: compute_key(" " + NUMBER[1:]), "INS-FORMAT", id="key-blank"),
        # INS(): OID first, then the number, then the key's form, then its value
        pytest.param(lambda: INS(number=NUMBER, key=KEY, oid=[]), "INS-OID", id="oid-list"),
        pytest.param(lambda: INS(number=NUMBER, key=KEY, oid={}), "INS-OID", id="oid-dict"),
        pytest.param(lambda: INS(number=NUMBER, key=KEY, oid=None), "INS-OID", id="oid-None"),
        pytest.param(lambda: INS(number=NUMBER, key=KEY, oid="1.2.250.1.213.1.4.12"), "INS-OID", id="oid-unknown"),
        pytest.param(lambda: INS(number="x", key="1A", oid="1.2.3"), "INS-OID", id="oid-before-format"),
        pytest.param(lambda: INS(number=NUMBER[:12], key=KEY, oid=OID_INS_NIR), "INS-FORMAT", id="number-short"),
        pytest.param(lambda: INS(number="x", key="99", oid=OID_INS_NIR), "INS-FORMAT", id="number-before-key"),
        pytest.param(lambda: INS(number=NUMBER, key="1A", oid=OID_INS_NIR), "INS-FORMAT", id="key-1A"),
        pytest.param(lambda: INS(number=NUMBER, key="7", oid=OID_INS_NIR), "INS-FORMAT", id="key-one-digit"),
        pytest.param(lambda: INS(number=NUMBER, key="078", oid=OID_INS_NIR), "INS-FORMAT", id="key-three-digits"),
        pytest.param(lambda: INS(number=NUMBER, key=78, oid=OID_INS_NIR), "INS-FORMAT", id="key-int"),
        pytest.param(lambda: INS(number=NUMBER, key="79", oid=OID_INS_NIR), "INS-KEY", id="key-wrong"),
        # parse_ins
        pytest.param(lambda: parse_ins(None), "INS-FORMAT", id="parse-None"),
        pytest.param(lambda: parse_ins(int(VALUE.replace("A", "0"))), "INS-FORMAT", id="parse-int"),
        pytest.param(lambda: parse_ins(VALUE.encode()), "INS-FORMAT", id="parse-bytes"),
        pytest.param(lambda: parse_ins(VALUE[:14]), "INS-FORMAT", id="parse-14"),
        pytest.param(lambda: parse_ins(VALUE + "1"), "INS-FORMAT", id="parse-16"),
        pytest.param(lambda: parse_ins(NUMBER + "1A"), "INS-FORMAT", id="parse-key-1A"),
        pytest.param(lambda: parse_ins(NUMBER + "00"), "INS-KEY", id="parse-key-00"),
        pytest.param(lambda: parse_ins(VALUE, OID_INS_NIR + ".1"), "INS-OID", id="parse-oid"),
        # parse_xds_patient_id
        pytest.param(lambda: parse_xds_patient_id(None), "INS-FORMAT", id="xds-None"),
        pytest.param(lambda: parse_xds_patient_id(f"{VALUE}^^^&{OID_INS_NIR}&ISO"), "INS-FORMAT", id="xds-no-NH"),
        pytest.param(lambda: parse_xds_patient_id(f"{VALUE}^^^&{OID_INS_NIR}&DNS^NH"), "INS-FORMAT", id="xds-DNS"),
        pytest.param(lambda: parse_xds_patient_id(f"{VALUE}^^^{OID_INS_NIR}^NH"), "INS-FORMAT", id="xds-no-amp"),
        pytest.param(lambda: parse_xds_patient_id(f"{VALUE}^^^&1.2.3&ISO^NH"), "INS-OID", id="xds-local-oid"),
        pytest.param(lambda: parse_xds_patient_id(f"{NUMBER}79^^^&{OID_INS_NIR}&ISO^NH"), "INS-KEY", id="xds-key"),
        # generate_test_ins
        pytest.param(
            lambda: generate_test_ins(random.Random(1), sex="X", birth_date=date(2000, 1, 1)),
            "INS-FORMAT",
            id="gen-sex",
        ),
        pytest.param(
            lambda: generate_test_ins(random.Random(1), sex="M", birth_date=date(2000, 1, 1), department="2C"),
            "INS-FORMAT",
            id="gen-department",
        ),
        pytest.param(
            lambda: generate_test_ins(random.Random(1), sex="M", birth_date=date(2000, 1, 1), commune="56"),
            "INS-FORMAT",
            id="gen-commune",
        ),
        # refuse_production
        pytest.param(lambda: refuse_production(parse_ins(VALUE, OID_INS_NIR)), "INS-PRODUCTION", id="prod-NIR"),
        pytest.param(lambda: refuse_production(parse_ins(VALUE, OID_INS_NIA)), "INS-PRODUCTION", id="prod-NIA"),
    ],
)
def test_each_refusal_gives_exactly_its_code(call: Callable[[], object], code: str) -> None:
    assert code_of(call) == code


@pytest.mark.parametrize(
    ("value", "oid"),
    [
        (None, OID_INS_NIR),
        (123, OID_INS_NIR),
        (VALUE.encode(), OID_INS_NIR),
        ([VALUE], OID_INS_NIR),
        (VALUE, []),
        (VALUE, {}),
        (VALUE, None),
        (VALUE, 8),
        (NUMBER + "1A", OID_INS_NIR),
        (NUMBER + "79", OID_INS_NIR),
    ],
    ids=["None", "int", "bytes", "list", "oid-list", "oid-dict", "oid-None", "oid-int", "key-1A", "key-wrong"],
)
def test_is_valid_ins_answers_false_never_raises(value: object, oid: object) -> None:
    assert is_valid_ins(value, oid) is False  # type: ignore[arg-type]


def test_is_valid_ins_accepts_every_authority() -> None:
    for oid in (OID_INS_NIR, OID_INS_NIA, OID_INS_NIR_TEST, OID_INS_NIR_DEMO):
        assert is_valid_ins(VALUE, oid) is True
    assert is_valid_ins(" 2 97 02 2a 020 778 78 ") is True  # blanks and a lower-case Corsica letter


def test_the_number_is_judged_before_the_key_form() -> None:
    with pytest.raises(InsError) as info:
        INS(number="x", key="1A", oid=OID_INS_NIR)
    assert info.value.code == "INS-FORMAT" and info.value.message.startswith("matricule INS mal formé")
    with pytest.raises(InsError) as info:
        INS(number=NUMBER, key="1A", oid=OID_INS_NIR)
    assert info.value.message == "clé INS mal formée : 2 chiffres attendus, reçu '1A'"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_ins(VALUE[:14]), "matricule INS de 15 caractères attendu, reçu '297022A0207787'"),
        (lambda: parse_ins(VALUE + "1"), "matricule INS de 15 caractères attendu, reçu '297022A020778781'"),
        (lambda: parse_ins(None), "matricule INS attendu sous forme de texte, reçu NoneType"),
        (
            lambda: generate_test_ins(random.Random(1), sex="X", birth_date=date(2000, 1, 1)),
            "sexe 'M' ou 'F' attendu, reçu 'X'",
        ),
        (
            lambda: generate_test_ins(random.Random(1), sex="M", birth_date=date(2000, 1, 1), department="2C"),
            "département de 2 caractères attendu (75, 2A...), reçu '2C'",
        ),
        (
            lambda: generate_test_ins(random.Random(1), sex="M", birth_date=date(2000, 1, 1), commune="56"),
            "code commune de 3 chiffres attendu, reçu '56'",
        ),
    ],
)
def test_refusals_say_what_is_wrong(call: Callable[[], object], message: str) -> None:
    """The French message names the faulty part (the code alone is the same INS-FORMAT for all of them)."""
    with pytest.raises(InsError) as info:
        call()
    assert (info.value.code, info.value.message) == ("INS-FORMAT", message)


def test_kind_names_are_the_fr_core_slice_names() -> None:
    assert [str(k) for k in InsKind] == ["INS-NIR", "INS-NIA", "INS-NIR-TEST", "INS-NIR-DEMO"]


def test_ins_is_immutable() -> None:
    ins = parse_ins(VALUE, OID_INS_NIR_TEST)
    for name, value in (("number", "1" * 13), ("key", "01"), ("oid", OID_INS_NIR)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(ins, name, value)
    assert ins.value == VALUE and hash(ins) == hash(parse_ins(VALUE, OID_INS_NIR_TEST))


def test_key_edge_values() -> None:
    """97 when N is a multiple of 97, a leading zero below 10."""
    multiple = next(n for n in range(BASE, BASE + 200) if n % 97 == 0)
    assert compute_key(str(multiple)) == "97"
    low = next(n for n in range(BASE, BASE + 200) if 97 - n % 97 == 5)
    assert compute_key(str(low)) == "05"
    one = next(n for n in range(BASE, BASE + 200) if n % 97 == 96)
    assert compute_key(str(one)) == "01"
    assert compute_key("297022A020778") == "78" and compute_key("297022B020778") == f"{97 - 2970218020778 % 97:02d}"


def test_kinds_and_test_flags() -> None:
    kinds = {oid: parse_ins(VALUE, oid) for oid in (OID_INS_NIR, OID_INS_NIA, OID_INS_NIR_TEST, OID_INS_NIR_DEMO)}
    assert [i.kind for i in kinds.values()] == [InsKind.NIR, InsKind.NIA, InsKind.NIR_TEST, InsKind.NIR_DEMO]
    assert [i.is_test for i in kinds.values()] == [False, False, True, True]
    assert refuse_production(kinds[OID_INS_NIR], allow=True) is None
    assert refuse_production(kinds[OID_INS_NIR_TEST]) is None and refuse_production(kinds[OID_INS_NIR_DEMO]) is None


class _Bounds(random.Random):
    """Records the bounds asked of ``randint`` and answers the upper one."""

    def __init__(self) -> None:
        super().__init__(0)
        self.asked: list[tuple[int, int]] = []

    def randint(self, a: int, b: int) -> int:
        self.asked.append((a, b))
        return b


def test_generated_number_layout() -> None:
    rng = _Bounds()
    ins = generate_test_ins(rng, sex="F", birth_date=date(2007, 3, 9), department="2B", commune="005")
    assert rng.asked == [(1, 999)]
    assert ins.number == "207032B005999" and ins.key == compute_key("207032B005999") and ins.oid == OID_INS_NIR_TEST
    male = generate_test_ins(_Bounds(), sex="M", birth_date=date(1999, 12, 31))
    assert male.number == "199127505699" + "9" and male.number.startswith("1")


def test_production_ins_policy_setting() -> None:
    assert (
        production_ins_policy(None) is ProductionInsPolicy.WARN
        and production_ins_policy({}) is ProductionInsPolicy.WARN
    )
    assert production_ins_policy({"production_ins": " REFUSE "}) is ProductionInsPolicy.REFUSE
    assert production_ins_policy({"production_ins": "warn"}) is ProductionInsPolicy.WARN
    assert (PRODUCTION_INS_SETTING, PRODUCTION_INS_CODE) == ("production_ins", "INS-PRODUCTION")
    assert [str(p) for p in ProductionInsPolicy] == ["warn", "refuse"]
    with pytest.raises(ValueError) as info:
        production_ins_policy({"production_ins": "oui"})
    assert str(info.value) == 'réglage production_ins = \'oui\' invalide : "warn" ou "refuse" attendu'


def test_production_ins_verdicts() -> None:
    for oid in (OID_INS_NIR_TEST, OID_INS_NIR_DEMO):
        assert production_ins(parse_ins(VALUE, oid)) is None
        assert production_ins(parse_ins(VALUE, oid), ProductionInsPolicy.REFUSE) is None
    warned = production_ins(parse_ins(VALUE, OID_INS_NIR))
    assert warned is not None and (warned.code, warned.refuse) == ("INS-PRODUCTION", False)
    assert warned.message == (
        f"INS de production {VALUE} (OID {OID_INS_NIR}, INS-NIR) : une campagne de test n'utilise que des identités "
        f"de test (OID {OID_INS_NIR_TEST} ou {OID_INS_NIR_DEMO})"
    )
    refused = production_ins(parse_ins(VALUE, OID_INS_NIA), ProductionInsPolicy.REFUSE)
    assert refused is not None and (refused.code, refused.refuse) == ("INS-PRODUCTION", True)
    assert refused.message.endswith(
        "INS-NIA) : une campagne de test n'utilise que des identités de test (OID "
        f'{OID_INS_NIR_TEST} ou {OID_INS_NIR_DEMO}) ; refusé (réglage production_ins = "refuse")'
    )
