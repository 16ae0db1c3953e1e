"""Which scenarios of the catalogue a run plays: tag expressions over Gherkin tags (requirement ids included),
title filters, and the listing of the catalogue (``socle-harness list``).

Gherkin tags such as ``@exigence:MSS-ENVOI-PRO`` are not Python identifiers, so pytest's ``-m`` cannot select
them; this module evaluates its own small expression language instead (Cucumber tag expressions, without the
leading ``@``): ``mssante and not lent``, ``exigence:MSS-ENVOI-PRO or exigence:DMP-INS``, ``(dmp or insi) and
observable``. A bare requirement id (``MSS-ENVOI-PRO``) also matches its ``exigence:`` tag.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.messages import bilingual

REQUIREMENT_PREFIX = "exigence:"
_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


class TagExpressionError(ValueError):
    """A tag expression that cannot be read; the message says where."""


@dataclass(frozen=True)
class TagExpression:
    """A parsed tag expression: ``evaluate(tags)`` says whether a scenario with these tags is selected."""

    text: str
    _tree: tuple = field(repr=False, default=())

    @classmethod
    def parse(cls, text: str) -> TagExpression:
        tokens = [m.group(1) for m in _TOKEN.finditer(text)]
        if not tokens:
            raise TagExpressionError(bilingual("expression d'étiquettes vide", "empty tag expression"))
        parser = _Parser(tokens, text)
        tree = parser.expression()
        if parser.position != len(tokens):
            raise TagExpressionError(
                f"{text!r} : « {tokens[parser.position]} » " + bilingual("inattendu", "unexpected token")
            )
        return cls(text, tree)

    def evaluate(self, tags: Iterable[str]) -> bool:
        present = {t.lstrip("@") for t in tags}
        present |= {t[len(REQUIREMENT_PREFIX) :] for t in present if t.startswith(REQUIREMENT_PREFIX)}
        return _evaluate(self._tree, present)


class _Parser:
    """expression := term ("or" term)* ; term := factor ("and" factor)* ; factor := "not" factor | "(" expression ")" | tag"""

    def __init__(self, tokens: list[str], text: str) -> None:
        self.tokens = tokens
        self.text = text
        self.position = 0

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise TagExpressionError(f"{self.text!r} : " + bilingual("expression incomplète", "incomplete expression"))
        self.position += 1
        return token

    def expression(self) -> tuple:
        node = self.term()
        while self._peek() == "or":
            self._take()
            node = ("or", node, self.term())
        return node

    def term(self) -> tuple:
        node = self.factor()
        while self._peek() == "and":
            self._take()
            node = ("and", node, self.factor())
        return node

    def factor(self) -> tuple:
        token = self._take()
        if token == "not":
            return ("not", self.factor())
        if token == "(":
            node = self.expression()
            if self._take() != ")":
                raise TagExpressionError(f"{self.text!r} : « ) » attendue / ')' expected")
            return node
        if token in {")", "and", "or"}:
            raise TagExpressionError(f"{self.text!r} : « {token} » " + bilingual("inattendu", "unexpected token"))
        return ("tag", token.lstrip("@"))


def _evaluate(node: tuple, present: set[str]) -> bool:
    match node:
        case ("tag", name):
            return name in present
        case ("not", inner):
            return not _evaluate(inner, present)
        case ("and", left, right):
            return _evaluate(left, present) and _evaluate(right, present)
        case ("or", left, right):
            return _evaluate(left, present) or _evaluate(right, present)
    raise TagExpressionError(f"noeud inconnu {node!r}")


def item_tags(item: Any) -> list[str]:
    """The Gherkin tags of a collected scenario (a pytest item), kept as ``socle_tag`` marks by the plugin."""
    return [mark.args[0] for mark in item.iter_markers("socle_tag") if mark.args]


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a title, for ``--titre``."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def title_matches(title: str, wanted: str) -> bool:
    return fold(wanted) in fold(title)


@dataclass(frozen=True)
class ScenarioInfo:
    """One scenario of the catalogue, as ``socle-harness list`` shows it."""

    feature_file: str
    feature: str
    title: str
    tags: tuple[str, ...]
    line: int

    @property
    def requirements(self) -> tuple[str, ...]:
        return tuple(t[len(REQUIREMENT_PREFIX) :] for t in self.tags if t.startswith(REQUIREMENT_PREFIX))

    def to_dict(self) -> dict[str, object]:
        return {
            "feature_file": self.feature_file,
            "feature": self.feature,
            "title": self.title,
            "tags": list(self.tags),
            "requirements": list(self.requirements),
            "line": self.line,
        }


def catalogue(scenarios_dir: Path) -> list[ScenarioInfo]:
    """Every scenario of the ``.feature`` files of ``scenarios_dir`` (feature tags included), in file order."""
    from pytest_bdd.parser import FeatureParser

    found: list[ScenarioInfo] = []
    for path in sorted(Path(scenarios_dir).glob("*.feature")):
        feature = FeatureParser(str(path.parent), path.name).parse()
        for scenario in feature.scenarios.values():
            tags = tuple(sorted(set(feature.tags) | set(scenario.tags)))
            found.append(ScenarioInfo(path.name, feature.name, scenario.name, tags, scenario.line_number))
    return found


def select(
    scenarios: Iterable[ScenarioInfo], *, tags: TagExpression | None = None, title: str | None = None
) -> list[ScenarioInfo]:
    return [
        s
        for s in scenarios
        if (tags is None or tags.evaluate(s.tags)) and (title is None or title_matches(s.title, title))
    ]
