"""A command whose plain options are read without typer's coercion (issue 18: the cold start of ``serve``, the
spawn of ``run``'s scenario processes).

Typer (0.29) converts every option's value, ``None`` included, through a pydantic ``TypeAdapter`` it builds for the
option: importing pydantic and building those validators was some 15 % of ``socle-harness serve``'s start, and
delayed ``run``'s children by 0.15 s, although the options of both are usually strings, integers, paths, names and
flags given as they are. A command declared with ``cls=PlainOptionsCommand`` parses its arguments with the same
click parser and, when every value is plain (:func:`plain_value`), hands the command exactly what typer would have:
the string, the integer of a decimal number within the option's bounds, the ``Path`` of a readable or absent path,
the list of strings of a repeated option, the flag as parsed, the default of an absent option. Anything else
(``--help``, an unknown option, a missing or extra argument, a value to convert or refuse, an option with a
callback, a prompt, an environment variable, a computed default or a parser of its own) is parsed by typer as
before, which converts it or reports the error as before.
"""

from __future__ import annotations

import inspect
import os
import re
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typer.core import TyperCommand
from typer.models import ParameterInfo

if TYPE_CHECKING:
    from typer._click import Context, Parameter  # typer's own click

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,17}")  # what int() and pydantic read alike (no sign, space, _ or zeros)
_NOT_PLAIN = object()
# Path options as typer declares them by default: no existence, permission or resolution rule but readability
_PLAIN_PATH = {"exists": False, "file_okay": True, "dir_okay": True, "writable": False, "resolve_path": False}


class PlainOptionsCommand(TyperCommand):
    """A typer command whose arguments, when they are all plain, are read without typer's pydantic coercion."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        values = plain_values(self, ctx, args)
        if values is None:
            return super().parse_args(ctx, args)
        ctx.params.update(values)
        ctx.args = []
        return []


def plain_values(command: TyperCommand, ctx: Context, args: list[str]) -> dict[str, Any] | None:
    """The values typer would hand ``command`` for ``args`` (parameter name → value) when every one is plain,
    else ``None`` (typer must parse them)."""
    if ctx.resilient_parsing or ctx.default_map or ctx.auto_envvar_prefix or command.callback is None:
        return None
    try:
        options, rest, _ = command.make_parser(ctx).parse_args(args=list(args))
    except Exception:  # a usage error: typer reports it
        return None
    if rest:
        return None
    hints = typing.get_type_hints(inspect.unwrap(command.callback), include_extras=True)
    values: dict[str, Any] = {}
    for param in command.get_params(ctx):
        given = options.get(param.name) if param.name else None
        if not param.expose_value:  # --help
            if given is not None:
                return None
            continue
        if param.name not in hints or param.callback is not None or callable(param.default):
            return None
        if any(getattr(param, name, None) for name in ("envvar", "prompt", "deprecated")):
            return None  # a value from the environment or the terminal, a warning: typer's
        value = plain_value(param, hints[param.name], given)
        if value is _NOT_PLAIN:
            return None
        values[param.name] = value
    return values


def plain_value(param: Parameter, hint: Any, given: Any) -> Any:
    """What typer makes of ``given`` (``None``: absent) for ``param`` annotated ``hint``, or ``_NOT_PLAIN``."""
    annotation, info = _annotation_and_info(hint)
    if info is None or getattr(info, "parser", None) is not None:
        return _NOT_PLAIN
    if param.multiple:
        if given is None:
            return ()
        item = typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else None
        if item is not str or not all(type(value) is str for value in given):
            return _NOT_PLAIN
        return list(given)
    value = param.default if given is None else given
    if value is None:
        return _NOT_PLAIN if param.required else None
    if annotation is bool:
        return value if type(value) is bool else _NOT_PLAIN
    if annotation is str:
        return value if type(value) is str else _NOT_PLAIN
    if annotation is int:
        return _plain_int(value, info)
    if annotation is Path:
        return _plain_path(value, info)
    return _NOT_PLAIN


def _annotation_and_info(hint: Any) -> tuple[Any, ParameterInfo | None]:
    """``Annotated[X | None, typer.Option(...)]`` → (``X``, the option's info)."""
    info = None
    if typing.get_origin(hint) is typing.Annotated:
        hint, *extras = typing.get_args(hint)
        info = next((extra for extra in extras if isinstance(extra, ParameterInfo)), None)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        others = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        hint = others[0] if len(others) == 1 else hint
    return hint, info


def _plain_int(value: Any, info: ParameterInfo) -> Any:
    if type(value) is str and _DECIMAL.fullmatch(value):
        value = int(value)
    if type(value) is not int or getattr(info, "clamp", False):
        return _NOT_PLAIN
    low, high = getattr(info, "min", None), getattr(info, "max", None)
    if (low is not None and value < low) or (high is not None and value > high):
        return _NOT_PLAIN  # typer refuses it, with its message
    return value


def _plain_path(value: Any, info: ParameterInfo) -> Any:
    if type(value) is not str or not value or "\0" in value or value == "-":
        return _NOT_PLAIN
    if getattr(info, "path_type", None) is not None or getattr(info, "allow_dash", False):
        return _NOT_PLAIN
    if any(getattr(info, name, default) != default for name, default in _PLAIN_PATH.items()):
        return _NOT_PLAIN
    if getattr(info, "readable", True) and os.path.exists(value) and not os.access(value, os.R_OK):
        return _NOT_PLAIN  # typer refuses an unreadable path
    return Path(value)
