"""Examples, closed vocabularies and ``data`` schemas of the DUI control API's OpenAPI document
(:func:`harness.sut.control_api.openapi`).

Only the assembly lives here; what is service-specific is declared by each service plugin's
:class:`~harness.sut.plugins.ActionSpec`. Every request example is an action dataclass built from the synthetic
fixtures (``fixtures/``: a test person with a test INS, her establishment, an MSSanté address of another one) and
the fields the action's ``example`` sets, serialised by the harness's own
:func:`~harness.sut.control_api.to_payload`: the example is what the harness sends. The answer's ``data`` schema
and example come from the action's ``data`` dataclass (:func:`~harness.sut.plugins.fact`): a value the simulators
serve for the fixtures where the plugin computes one, otherwise an illustrative value the document marks so. The
vocabularies are the plugins' ``DuiSide.vocabularies``, taken from the modules that own them (CI-SIS document
models, JDV_J23 / JDV_J110, FR Core identity documents, ITI-57 changes), never copied.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from harness.core.config import package_root
from harness.fields.testdata import Establishment, MailboxType, Person, TestData, load_testdata
from harness.sut.json_schema import object_schema
from harness.sut.plugins import ActionSpec


@dataclass(frozen=True)
class Sample:
    """The fixtures an example draws from."""

    person: Person
    establishment: Establishment
    recipient: str  # an MSSanté address of another establishment


@cache
def sample() -> Sample:
    data: TestData = load_testdata(package_root() / "fixtures")
    person = data.persons[0]
    establishment = next(e for e in data.establishments if e.finess == person.essms)
    recipient = next(
        m.address for m in data.mailboxes if m.type is not MailboxType.PAT and m.finess not in (None, person.essms)
    )
    return Sample(person, establishment, recipient)


def vocabularies() -> Mapping[tuple[str, str], Mapping[str, str]]:
    """``(request class name, field) -> {code: meaning}``: the closed lists every service plugin declares."""
    from harness.sut.plugins import dui_sides

    return {
        (cls.__name__, name): codes for side in dui_sides().values() for (cls, name), codes in side.vocabularies.items()
    }


def request_example(spec: ActionSpec) -> Any:
    """An instance of the action's request dataclass: the fields the plugin's ``ActionSpec.example`` sets, the
    person and the establishment of the fixtures' sample, the other fields' defaults."""
    s = sample()
    request = spec.request
    if request is None:
        raise TypeError(f"action {spec.name!r} has no request body")
    given = dict(spec.example(s)) if spec.example is not None else {}
    hints = typing.get_type_hints(request)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(request):
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        if f.name in given:
            values[f.name] = given.pop(f.name)
        elif hints[f.name] is Person:
            values[f.name] = s.person
        elif hints[f.name] is Establishment:
            values[f.name] = s.establishment
        elif not has_default:
            raise TypeError(
                f"no example for {request.__name__}.{f.name}: set it in the example of the action {spec.name!r}"
            )
    if given:
        raise TypeError(f"the example of the action {spec.name!r} sets unknown fields: {', '.join(sorted(given))}")
    return request(**values)


def data_schema(spec: ActionSpec, components: dict[str, Any]) -> dict[str, Any]:
    """The schema of an action's ``data``: the keys its ``data`` dataclass declares, typed, none required (other
    keys are allowed: the DUI may say more); nested dataclasses go to ``components``."""
    if spec.data is None:
        return {"type": "object", "properties": {}}
    schema = object_schema(spec.data, components, required=False)
    schema.pop("description", None)
    return schema


def data_example(spec: ActionSpec) -> dict[str, Any]:
    """The ``data`` example of an action's answer, from its declared facts."""
    s = sample()
    return {key: fact.example(s) for key, fact in spec.facts.items()}


def illustrative(spec: ActionSpec) -> list[str]:
    """The ``data`` keys whose example values are illustrative (not what the simulators serve for the fixtures)."""
    return [key for key, fact in spec.facts.items() if not fact.real]
