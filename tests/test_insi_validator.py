"""harness.validators.insi against the real INSi schemas of the public corpus (read, never copied), and the
simulator's answers and the reference DUI's requests against the same schemas."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from harness.fields.xmlsafe import parse_xml
from harness.sut.base import InsiTraits
from harness.sut.insi_actions import REFERENCE_IDAM, build_request
from harness.validators import Severity
from harness.validators.insi import (
    InsiFault,
    InsiResult,
    Traits,
    birth_date_problem,
    is_lunar_date,
    normalise_trait,
    parse_request,
    parse_result,
    trait_characters_problem,
    validate_result,
)
from mock_services.insi.identities import (
    HOMONYMS,
    QUALIFICATION_IDENTITIES,
    synthetic_identities,
)
from mock_services.insi.soap import (
    KNOWN_FAULTS,
    fault_envelope,
    request_fault,
    result_envelope,
)

NS_RECSANS = "http://www.cnamts.fr/INSiRecSans"
NS_RES = "http://www.cnamts.fr/INSiResultat"
NS_BAM = "urn:siram:bam:ctxbam"
NS_LPS = "urn:siram:lps:ctxlps"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"


# --------------------------------------------------------------------------------------------------------------
# the corpus schemas


def _schema(corpus: Path, relative: str) -> etree.XMLSchema:
    path = corpus / "insi" / "wsdl" / "xsd" / relative
    if not path.is_file():
        pytest.skip(f"schéma INSi absent du corpus : {path}")
    return etree.XMLSchema(parse_xml(path.read_bytes()))


@pytest.fixture(scope="module")
def schemas(corpus_dir: Path) -> dict[str, etree.XMLSchema]:
    return {
        "recsans": _schema(corpus_dir, "ServiceIdentiteCertifiee/INSi_RECSANS_INS.xsd"),
        "resultat": _schema(corpus_dir, "ServiceIdentiteCertifiee/INSi_RESULTAT_INS.xsd"),
        "bam": _schema(corpus_dir, "CTX/ROOT_ctxbam_CTXBAM_V01_02.xsd"),
        "lps": _schema(corpus_dir, "CTX/ROOT_ctxlps_CTXLPS_V01_00.xsd"),
        "fault": _schema(corpus_dir, "schema_faultSOAP_V01_01.xsd"),
    }


@pytest.fixture(scope="module")
def corpus_responses(corpus_dir: Path) -> dict[str, bytes]:
    folder = corpus_dir / "insi" / "responses"
    if not folder.is_dir():
        pytest.skip(f"réponses INSi absentes du corpus : {folder}")
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.xml"))}


def _detached(element: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(element))


def _parts(envelope: bytes) -> dict[str, etree._Element]:
    root = parse_xml(envelope)
    found: dict[str, etree._Element] = {}
    for child in root.iter():
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        if name in ("ContexteBAM", "ContexteLPS", "RECSANSVITALE", "RESULTAT", "Erreur"):
            found[name] = _detached(child)
    return found


def _validate(schema: etree.XMLSchema, element: etree._Element) -> list[str]:
    schema.validate(element)
    return [f"{e.line}: {e.message}" for e in schema.error_log]


MARTIN = InsiTraits("MARTIN", ("JEANNE",), "F", "1938-04-12", "75056")


@pytest.mark.parametrize("shape", [{}, {"with_place": True}, {"all_first_names": True}])
def test_reference_dui_requests_are_valid_against_the_corpus_xsds(
    schemas: dict[str, etree.XMLSchema], shape: dict[str, bool]
) -> None:
    traits = InsiTraits("ECETINSI", ("PIERRE-ALAIN", "MURIEL", "FLORIANT"), "M", "2009-07-14", "63220")
    body = build_request(
        traits,
        emitter="990000016",
        idam=REFERENCE_IDAM,
        instance=str(uuid.uuid4()),
        message_id=str(uuid.uuid4()),
        **shape,
    )
    parts = _parts(body)
    assert _validate(schemas["bam"], parts["ContexteBAM"]) == []
    assert _validate(schemas["lps"], parts["ContexteLPS"]) == []
    assert _validate(schemas["recsans"], parts["RECSANSVITALE"]) == []
    report = parse_request(body)
    assert report.ok and report.findings == [], report.findings
    assert report.traits is not None and report.lps is not None and report.lps.lps is not None
    assert report.lps.lps.idam == REFERENCE_IDAM and report.bam is not None and report.bam.emetteur == "990000016"


ALL_IDENTITIES = [*QUALIFICATION_IDENTITIES, *HOMONYMS, *synthetic_identities(25, 7)]


@pytest.mark.parametrize("identity", ALL_IDENTITIES, ids=lambda i: f"{i.birth_name}-{i.first_name}-{i.number}")
def test_simulator_answers_are_valid_against_the_resultat_xsd(
    schemas: dict[str, etree.XMLSchema], identity: object
) -> None:
    body = result_envelope("00", identity)  # type: ignore[arg-type]
    assert _validate(schemas["resultat"], _parts(body)["RESULTAT"]) == []
    assert validate_result(body) == []


@pytest.mark.parametrize("code", ["01", "02"])
def test_no_identity_answers_are_valid(schemas: dict[str, etree.XMLSchema], code: str) -> None:
    body = result_envelope(code)
    assert _validate(schemas["resultat"], _parts(body)["RESULTAT"]) == []
    assert validate_result(body) == []


@pytest.mark.parametrize(
    "fault",
    [*KNOWN_FAULTS.values(), request_fault("INSI-TRAIT-INVALIDE", 'date <invalide> & "x"')],
    ids=lambda f: f.error_code,
)
def test_simulator_faults_carry_a_valid_siram_erreur(schemas: dict[str, etree.XMLSchema], fault: object) -> None:
    body = fault_envelope(fault, message_id="uuid:1")  # type: ignore[arg-type]
    assert _validate(schemas["fault"], _parts(body)["Erreur"]) == []
    parsed = parse_result(body)
    assert isinstance(parsed, InsiFault) and parsed.error_code == fault.error_code  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------------------
# the corpus responses: the hand-written checks agree with the XSD, and the simulator answers the same


def test_structural_checks_agree_with_the_xsd_on_the_corpus_responses(
    schemas: dict[str, etree.XMLSchema], corpus_responses: dict[str, bytes]
) -> None:
    verdicts = {}
    for name, data in corpus_responses.items():
        xsd_errors = _validate(schemas["resultat"], _parts(data)["RESULTAT"])
        findings = [f for f in validate_result(data) if f.severity is Severity.ERROR]
        assert bool(xsd_errors) == bool(findings), (name, xsd_errors, findings)
        verdicts[name] = not findings
    # TEST_2.04_cas2 puts DateDeb/DateFin before IdIndividu in its first INSHISTO: not valid against the XSD
    assert verdicts.get("TEST_2.04_cas2.xml") is False
    assert all(ok for name, ok in verdicts.items() if name != "TEST_2.04_cas2.xml")


CORPUS_CASES = {
    "REP_CR01.xml": Traits("DE VINCI", ("LEONARDO",), "M", "2014-02-01"),
    "TEST_2.04_cas2.xml": Traits("ECETINSI", ("PIERRE-ALAIN",), "M", "2009-07-14"),
    "TEST_2.05.xml": Traits("PROVISOIRE", ("MATRICULE",), "M", "2009-07-01"),
    "TEST_2.08_cas1.xml": Traits("CORSE", ("ANTHONY",), "M", "1980-03-02"),
    "TEST_2.08_cas2.xml": Traits("HERMANN", ("GATIEN",), "M", "1981-03-24"),
}


@pytest.mark.parametrize("name", sorted(CORPUS_CASES))
def test_simulator_answers_like_the_corpus_responses(corpus_responses: dict[str, bytes], name: str) -> None:
    from mock_services.insi.identities import build_identity_base

    if name not in corpus_responses:
        pytest.skip(f"{name} absent du corpus")
    expected = parse_result(corpus_responses[name])
    base = build_identity_base(None, synthetic=0)
    match = base.search(CORPUS_CASES[name])
    got = parse_result(result_envelope(match.code, match.identity))
    assert isinstance(expected, InsiResult) and isinstance(got, InsiResult)
    assert (got.code, got.label) == (expected.code, expected.label)
    assert got.active == expected.active
    assert got.history == expected.history
    assert got.tiq == expected.tiq


# --------------------------------------------------------------------------------------------------------------
# structural checks vs the XSD on generated requests (hypothesis)

RECSANS_CHILDREN = ["NomNaissance", "Prenom", "Sexe", "DateNaissance", "LieuNaissance", "Inconnu"]
VALUES = {
    "NomNaissance": "MARTIN",
    "Prenom": "JEANNE",
    "Sexe": "F",
    "DateNaissance": "1938-04-12",
    "LieuNaissance": "75056",
    "Inconnu": "x",
}


def _wrap(body: str, header_blocks: str = "") -> bytes:
    return (
        f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Header>{header_blocks}</soap:Header>'
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(RECSANS_CHILDREN), max_size=8))
def test_body_structure_verdict_matches_the_xsd(schemas: dict[str, etree.XMLSchema], children: list[str]) -> None:
    schema = schemas["recsans"]
    inner = "".join(f"<{c}>{VALUES[c]}</{c}>" for c in children)
    element = etree.fromstring(f'<RECSANSVITALE xmlns="{NS_RECSANS}">{inner}</RECSANSVITALE>')
    xsd_valid = schema.validate(element)
    report = parse_request(_wrap(etree.tostring(element).decode()))
    structural = [f for f in report.findings if f.code == "INSI-CORPS-INVALIDE"]
    assert xsd_valid == (not structural), (children, structural, schema.error_log)


LPS_CHILDREN = ["Id", "Temps", "Emetteur", "LPS", "Autre"]
LPS_VALUES = {
    "Id": "1",
    "Temps": "2024-01-01T10:00:00Z",
    "Emetteur": "990000016",
    "Autre": "x",
    "LPS": "<ctxlps:IDAM>I</ctxlps:IDAM><ctxlps:Version>1</ctxlps:Version><ctxlps:Instance>i</ctxlps:Instance><ctxlps:Nom>n</ctxlps:Nom>",
}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(LPS_CHILDREN), max_size=6), st.booleans())
def test_contexte_lps_structure_verdict_matches_the_xsd(
    schemas: dict[str, etree.XMLSchema], children: list[str], with_version: bool
) -> None:
    schema = schemas["lps"]
    inner = "".join(f"<ctxlps:{c}>{LPS_VALUES[c]}</ctxlps:{c}>" for c in children)
    version = ' Version="01_00"' if with_version else ""
    text = f'<ctxlps:ContexteLPS xmlns:ctxlps="{NS_LPS}"{version}>{inner}</ctxlps:ContexteLPS>'
    xsd_valid = schema.validate(etree.fromstring(text))
    report = parse_request(_wrap("<x/>", text))
    structural = [f for f in report.findings if f.code == "INSI-ENTETE-INVALIDE" and "ContexteLPS" in f.location]
    assert xsd_valid == (not structural), (children, with_version, structural, schema.error_log)


# --------------------------------------------------------------------------------------------------------------
# trait rules


@given(st.integers(1850, date.today().year - 1), st.integers(0, 12), st.integers(0, 31))
def test_every_lunar_date_is_accepted(year: int, month: int, day: int) -> None:
    assert is_lunar_date(f"{year:04d}-{month:02d}-{day:02d}")


TODAY = date(2026, 6, 15)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("2026-06-15", True),  # today
        ("2026-06-16", False),  # tomorrow: after today, in the same year
        ("2026-06-00", True),  # day unknown, this month
        ("2026-07-00", False),  # month after this one, day unknown
        ("2026-00-00", True),  # only the year known
        ("2027-00-00", False),
        ("2099-01-01", False),
    ],
)
def test_a_birth_date_after_today_is_refused(value: str, accepted: bool) -> None:
    assert is_lunar_date(value, today=TODAY) is accepted


def test_birth_date_problems_are_named() -> None:
    assert birth_date_problem("2099-01-01", today=TODAY) == (
        "DateNaissance '2099-01-01' postérieure à la date du jour (2026-06-15) : une date de naissance est passée"
    )
    assert birth_date_problem("1849-12-31", today=TODAY) == "DateNaissance '1849-12-31' : année antérieure à 1850"
    assert birth_date_problem("1990-13-01", today=TODAY) == (
        "DateNaissance '1990-13-01' : date lunaire AAAA-MM-JJ attendue (mois 00-12, jour 00-31)"
    )
    assert birth_date_problem("1990-00-00", today=TODAY) is None


@pytest.mark.parametrize(
    "value",
    ["MARTIN", "Hélène", "D'ARC", "D’Arc", "LE GOFF-ÉRIC", "Œdipe", "Lætitia", "Strauß", "àâäçéèêëîïôöùûüÿ"],
)
def test_the_insi_character_set_accepts_latin_names(value: str) -> None:
    assert trait_characters_problem(value) is None


@pytest.mark.parametrize(
    ("value", "bad"),
    [
        ("ИВАНОВ", "'И' (U+0418), 'В' (U+0412), 'А' (U+0410), 'Н' (U+041D), 'О' (U+041E)"),
        ("ΕΛΕΝΗ", "'Ε' (U+0395), 'Λ' (U+039B), 'Ν' (U+039D), 'Η' (U+0397)"),
        ("王", "'王' (U+738B)"),
        ("محمد", "'م' (U+0645), 'ح' (U+062D), 'د' (U+062F)"),
        ("כהן", "'כ' (U+05DB), 'ה' (U+05D4), 'ן' (U+05DF)"),
        ("MART1N", "'1' (U+0031)"),
        ("DUPONT.", "'.' (U+002E)"),
    ],
)
def test_the_insi_character_set_refuses_other_scripts_digits_and_punctuation(value: str, bad: str) -> None:
    assert trait_characters_problem(value) == (
        f"caractères hors du jeu de caractères INSi ({bad}) : lettres latines (accents admis), espace, tiret et "
        "apostrophe seulement"
    )


@given(st.integers(0, 9999), st.integers(13, 99), st.integers(0, 99))
def test_months_above_12_are_refused(year: int, month: int, day: int) -> None:
    assert not is_lunar_date(f"{year:04d}-{month:02d}-{day:02d}")


@pytest.mark.parametrize(
    "value", ["1990-13-45", "1990-01-32", "1849-01-01", "3000-01-01", "90-01-01", "1990-1-1", "1990/01/01", ""]
)
def test_invalid_dates(value: str) -> None:
    assert not is_lunar_date(value)


@given(st.text(alphabet=st.sampled_from("abcdeéèêàçôïAZ -'’"), max_size=40))
def test_normalisation_is_idempotent_upper_and_ascii(value: str) -> None:
    once = normalise_trait(value)
    assert normalise_trait(once) == once
    assert once == once.upper() and once.isascii() and "  " not in once and once == once.strip()


def test_normalisation_examples() -> None:
    assert normalise_trait("  de  Vinci ") == "DE VINCI"
    assert normalise_trait("Hélène-Zoé d’Arc") == "HELENE-ZOE D'ARC"
    assert normalise_trait("d`Arc\tde\nla  Tour") == "D'ARC DE LA TOUR"  # the ASCII path folds the backquote too


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=30))
def test_ascii_normalisation_is_the_unicode_one(value: str) -> None:
    """The ASCII fast path of normalise_trait gives what NFKD + combining marks + apostrophes give."""
    folded = unicodedata.normalize("NFKD", value.replace("`", "'"))
    assert normalise_trait(value) == " ".join(
        "".join(c for c in folded if not unicodedata.combining(c)).upper().split()
    )
