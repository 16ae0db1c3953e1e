"""Common steps: the establishment and the accompanied person of a scenario."""

from __future__ import annotations

from pytest_bdd import given, parsers

from harness.runtime.environment import ScenarioContext


@given(parsers.parse('l\'ESSMS "{name}" équipé du DUI sous test'))
@given(parsers.parse('the establishment "{name}" equipped with the DUI under test'))
def establishment(socle: ScenarioContext, name: str) -> None:
    socle.establishment = socle.env.testdata.establishment(name)
    socle.attach("ESSMS", f"{socle.establishment.name} (FINESS {socle.establishment.finess})")


@given(parsers.parse('la personne accompagnée "{ref}"'))
@given(parsers.parse('the accompanied person "{ref}"'))
def person(socle: ScenarioContext, ref: str) -> None:
    socle.person = socle.env.testdata.person(ref)
    socle.attach("Personne", f"{socle.person.display_name}, INS {socle.person.ins.value} ({socle.person.ins.oid})")
