"""The INSi simulator's identity base: sources, production-OID refusal, matching rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from harness.core.config import package_root
from harness.fields.identity import OID_INS_NIR, parse_ins
from harness.fields.testdata import Person, load_testdata
from harness.validators.insi import Traits
from mock_services.insi.identities import (
    QUALIFICATION_IDENTITIES,
    SOURCE_FIXTURES,
    SOURCE_SYNTHETIC,
    build_identity_base,
)

FIXTURES = load_testdata(package_root() / "fixtures")


def _traits(identity, *, all_names: bool = False, place: bool = False) -> Traits:
    names = tuple(identity.first_names.split(" ")) if all_names else (identity.first_name,)
    return Traits(
        identity.birth_name, names, identity.sex, identity.birth_date, identity.birth_place if place else None
    )


def test_every_identity_of_the_base_is_found_by_its_own_traits() -> None:
    base = build_identity_base(FIXTURES, synthetic=150, seed=3)
    assert len(base.of_source(SOURCE_SYNTHETIC)) == 150 and len(base.of_source(SOURCE_FIXTURES)) == len(
        FIXTURES.persons
    )
    for identity in base.identities:
        if identity.source == "homonymes":
            continue
        for traits in (_traits(identity), _traits(identity, all_names=True, place=True)):
            match = base.search(traits)
            assert (match.code, match.identity) == ("00", identity), (identity, match)


def test_homonyms_need_the_birth_place() -> None:
    base = build_identity_base(None, synthetic=0)
    traits = Traits("DURAND", ("CAMILLE",), "F", "1948-05-10")
    assert base.search(traits).code == "02" and base.search(traits).candidates == 2
    assert base.search(replace(traits, birth_place="13055")).identity.birth_place == "13055"  # type: ignore[union-attr]
    assert base.search(replace(traits, birth_place="75056")).code == "01"


def test_a_production_ins_outside_the_qualification_set_is_refused() -> None:
    real_looking = Person(
        "P999", "REEL", "Personne", "M", date(1950, 1, 1), parse_ins("150017505600118", OID_INS_NIR), "990000016", False
    )
    data = replace(FIXTURES, persons=(*FIXTURES.persons, real_looking))
    base = build_identity_base(data, synthetic=0)
    assert base.refused and base.refused[0].startswith("P999")
    assert base.search(Traits("REEL", ("PERSONNE",), "M", "1950-01-01")).code == "01"
    allowed = build_identity_base(data, synthetic=0, refuse_production_ins=False)
    assert allowed.search(Traits("REEL", ("PERSONNE",), "M", "1950-01-01")).code == "00"


def test_qualification_identities_can_be_left_out() -> None:
    base = build_identity_base(FIXTURES, synthetic=0, qualification=False)
    assert not set(base.identities) & set(QUALIFICATION_IDENTITIES)
    assert base.search(Traits("CORSE", ("ANTHONY",), "M", "1980-03-02")).code == "01"


def test_qualification_special_cases() -> None:
    base = build_identity_base(FIXTURES, synthetic=0)
    nia = base.search(Traits("N'IMPORTE", ("MATRICULE",), "F", "1990-00-00"))
    assert nia.code == "00" and nia.identity is not None and nia.identity.is_nia and nia.trigger == "MATRICULE"
    houilles = base.search(Traits("HOUILLES", ("PIERRE", "PAUL", "JACQUES"), "M", "1993-01-27"))
    assert houilles.code == "01" and houilles.trigger == "PIERRE PAUL JACQUES"
    assert base.search(Traits("LEROY", ("Paul",), "M", "1942-03-30")).code == "00"  # a fixture person named Paul


def test_identity_summaries_are_json_friendly() -> None:
    summary = QUALIFICATION_IDENTITIES[0].summary()
    assert summary["ins"] == "297022A02077878" and summary["flags"] == []
