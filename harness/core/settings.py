"""Typed ``[settings.<service>]`` tables of the harness configuration.

A settings type is a frozen dataclass: its fields are the keys it reads from the table (each prefixed with the
class attribute ``settings_prefix`` when it has one: ``imap_`` for the MSSanté IMAP settings, or named by the
field's metadata ``{"key": "smtp_idle_timeout"}``), its annotations their types. :func:`read_settings` builds one from a table, pydantic checking every value against its annotation
(a nested dataclass reads a nested table, ``auth_backoff = {free_failures = 3}``); a wrong value raises
:class:`SettingsError` naming the key. :func:`unknown_keys` lists the keys of a table no settings type declares,
each with the nearest valid one, so that a misspelt key is refused at load instead of silently ignored.

The simulators read their settings with the same function the configuration check uses: what the check accepts
is exactly what the simulator receives. A table whose values already have their fields' types (a string for a
``str``, an integer for an ``int``, a member's value for a string enumeration; absent keys keep their defaults) is
read without pydantic: that is what ``serve`` meets at start (``production_ins`` handed to every simulator, or no
table at all), and importing pydantic and building its validators for it was some 15 % of the start (issue 18,
cold start). Any other value goes through pydantic, which converts it or names the key it refuses.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import types
import typing
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    """A value of a settings table that does not have its declared type; ``key`` is the table's key (dotted for a
    nested table: ``auth_backoff.max_delay``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"réglage {key} : {message}")
        self.key = key
        self.reason = message


def settings_prefix(settings_type: type) -> str:
    return str(getattr(settings_type, "settings_prefix", ""))


def _keys(settings_type: type) -> dict[str, str]:
    """Field name → table key (the metadata's ``key``, else the prefixed field name)."""
    prefix = settings_prefix(settings_type)
    return {f.name: f.metadata.get("key", prefix + f.name) for f in dataclasses.fields(settings_type)}


def settings_keys(settings_type: type) -> tuple[str, ...]:
    """The table keys ``settings_type`` reads."""
    return tuple(_keys(settings_type).values())


@cache
def _adapter(settings_type: type) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(settings_type)


@cache
def _defaulted_hints(settings_type: type) -> dict[str, Any] | None:
    """The field annotations of ``settings_type`` when every field is an ``__init__`` argument with a default
    (what :func:`_plain_values` needs to build it without pydantic), else ``None``."""
    if not all(
        f.init and (f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)
        for f in dataclasses.fields(settings_type)
    ):
        return None
    try:
        return typing.get_type_hints(settings_type)
    except NameError:  # an annotation only a type checker resolves: pydantic reads this type
        return None


_NOT_PLAIN = object()


def _plain_value(value: Any, annotation: Any) -> Any:
    """``value`` as pydantic would validate it for ``annotation`` when that needs no conversion (``Any``; an exact
    ``str``, ``int``, ``float`` or ``bool``; a ``Path``; a member of a string enumeration, or its value as a string;
    a tuple ``tuple[X, ...]`` or a dict ``dict[K, V]`` whose items are such values unchanged), else ``_NOT_PLAIN``:
    every other case (an ``int`` for a ``float``, a list for a tuple, a nested table...) is pydantic's."""
    if annotation is Any:
        return value
    if annotation in (str, int, float, bool):
        return value if type(value) is annotation else _NOT_PLAIN
    if annotation is Path:
        return value if isinstance(value, Path) else _NOT_PLAIN
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum) and issubclass(annotation, str):
        if isinstance(value, annotation):
            return value
        if type(value) is str:
            return next((member for member in annotation if member.value == value), _NOT_PLAIN)
        return _NOT_PLAIN
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and type(value) is tuple:
        return value if all(_plain_value(item, args[0]) is item for item in value) else _NOT_PLAIN
    if origin is dict and len(args) == 2 and type(value) is dict:
        unchanged = all(
            _plain_value(key, args[0]) is key and _plain_value(item, args[1]) is item for key, item in value.items()
        )
        return value if unchanged else _NOT_PLAIN
    return _NOT_PLAIN


def plainly_valid(value: Any, annotation: Any) -> bool:
    """Whether ``value`` certainly passes pydantic's validation as ``annotation`` (:func:`_plain_value`: what a usual
    TOML file holds), so that a check need not import pydantic; ``False`` when pydantic must decide."""
    return _plain_value(value, annotation) is not _NOT_PLAIN


def _plain_values(settings_type: type, values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``__init__`` arguments of ``settings_type`` for ``values`` (field name -> value) when every value is
    plain (:func:`_plain_value`), else ``None``."""
    hints = _defaulted_hints(settings_type)
    if hints is None:
        return None
    plain = {name: _plain_value(value, hints[name]) for name, value in values.items()}
    return None if any(value is _NOT_PLAIN for value in plain.values()) else plain


def read_settings(settings_type: type[T], raw: Mapping[str, Any]) -> T:
    """``settings_type`` built from the keys of ``raw`` it declares (absent keys keep their defaults, other keys
    are not its business); a value of the wrong type raises :class:`SettingsError` naming the key."""
    keys = _keys(settings_type)
    values = {name: raw[key] for name, key in keys.items() if key in raw}
    plain = _plain_values(settings_type, values)
    if plain is not None:  # the values pydantic would return unchanged: no pydantic (issue 18, cold start)
        return settings_type(**plain)
    from pydantic import ValidationError

    try:
        return _adapter(settings_type).validate_python(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        first, *inner = (str(part) for part in error["loc"])
        key = ".".join((keys.get(first, first), *inner))
        raise SettingsError(key, f"{error['msg']} (reçu {error.get('input')!r})") from None


def unknown_keys(settings_types: Iterable[type], raw: Mapping[str, Any], extra: Iterable[str] = ()) -> list[str]:
    """The keys of ``raw`` (and of its nested tables read into nested dataclasses) that none of ``settings_types``
    declares, each followed by the nearest valid key when one is close: ``authorized_idam (vouliez-vous dire
    « authorised_idam » ? / did you mean 'authorised_idam'?)``. ``extra``: other keys the table may hold."""
    declared: dict[str, Any] = {key: None for key in extra}
    for settings_type in settings_types:
        hints = typing.get_type_hints(settings_type)
        for name, key in _keys(settings_type).items():
            declared[key] = _nested_dataclass(hints.get(name))
    found: list[str] = []
    for key, value in raw.items():
        if key not in declared:
            found.append(f"{key}{nearest(key, declared)}")
        elif declared[key] is not None and isinstance(value, Mapping):
            found.extend(f"{key}.{inner}" for inner in unknown_keys((declared[key],), value))
    return found


def _nested_dataclass(annotation: Any) -> type | None:
    """The dataclass a field holds (``BackoffPolicy``, ``BackoffPolicy | None``), else ``None``."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def nearest(name: str, valid: Iterable[str]) -> str:
    """`` (vouliez-vous dire « x » ? / did you mean 'x'?)`` when a valid name is close to ``name``, else ``""``."""
    close = difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.6)
    return f" (vouliez-vous dire « {close[0]} » ? / did you mean {close[0]!r}?)" if close else ""
