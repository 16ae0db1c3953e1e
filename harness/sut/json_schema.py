"""JSON Schema (2020-12, as OpenAPI 3.1 uses it) of the typed dataclasses the DUI control API exchanges: the action
requests and the ``data`` of their answers. Shared by the OpenAPI document (:mod:`harness.sut.control_api`) and
the plugin check (:mod:`harness.sut.plugins`), so that a type the document cannot describe is refused when the
plugin is loaded."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any

from harness.fields.testdata import Person

#: ``(dataclass, field name) -> {code: meaning}`` or ``None``: the closed list of a field's values, if any.
Vocabulary = Callable[[type, str], Mapping[str, str] | None]


def _no_vocabulary(cls: type, name: str) -> None:
    return None


def schema_of(tp: Any, components: dict[str, Any], vocabulary: Vocabulary = _no_vocabulary) -> dict[str, Any]:
    """The schema of the type ``tp``; a dataclass becomes a ``#/components/schemas/<name>`` reference added to
    ``components``. Raises TypeError for a type JSON cannot carry."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = schema_of(options[0], components, vocabulary)
        return {"anyOf": [inner, {"type": "null"}]}
    if origin is tuple:
        return {"type": "array", "items": schema_of(typing.get_args(tp)[0], components, vocabulary)}
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return {"type": "object"}
    if origin is typing.Literal:
        return {"type": "string", "enum": list(typing.get_args(tp))}
    if tp is Person:
        return {"$ref": "#/components/schemas/Person"}
    if isinstance(tp, type) and issubclass(tp, Enum):
        return {"type": "string", "enum": [m.value for m in tp]}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is str:
        return {"type": "string"}
    if tp is datetime:
        return {"type": "string", "format": "date-time"}
    if tp is date:
        return {"type": "string", "format": "date"}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        name = tp.__name__
        if name not in components:
            components[name] = {}  # placeholder against recursion
            components[name] = object_schema(tp, components, vocabulary)
        return {"$ref": f"#/components/schemas/{name}"}
    raise TypeError(f"no JSON schema for {tp!r}")


def object_schema(
    cls: type, components: dict[str, Any], vocabulary: Vocabulary = _no_vocabulary, *, required: bool = True
) -> dict[str, Any]:
    """The object schema of the dataclass ``cls``: one property per field (its ``description`` from the field's
    ``metadata["description"]`` when given, its closed list from ``vocabulary``); ``required``: the fields
    without a default are required."""
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        schema = schema_of(hints[f.name], components, vocabulary)
        codes = vocabulary(cls, f.name)
        if codes is not None:
            schema = with_vocabulary(schema, codes)
        if "description" in f.metadata:
            schema = {**schema, "description": f.metadata["description"]}
        props[f.name] = schema
    schema: dict[str, Any] = {"type": "object"}
    if required:
        schema["required"] = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
    schema["properties"] = props
    doc = (cls.__doc__ or "").strip()
    if doc and not doc.startswith(f"{cls.__name__}("):
        schema["description"] = " ".join(doc.split())
    return schema


def with_vocabulary(schema: dict[str, Any], vocabulary: Mapping[str, str]) -> dict[str, Any]:
    """``schema`` restricted to the codes of ``vocabulary`` (an optional value stays nullable, a list's items are
    restricted), each code explained in the description."""
    enum = {"type": "string", "enum": list(vocabulary)}
    if "anyOf" in schema:
        schema = {**schema, "anyOf": [enum, *schema["anyOf"][1:]]}
    elif schema.get("type") == "array":
        schema = {**schema, "items": enum}
    else:
        schema = {**schema, **enum}
    return {**schema, "description": "; ".join(f"`{code}`: {meaning}" for code, meaning in vocabulary.items())}
