"""Validators: plain library code that takes bytes and returns findings.

Simulators, scenario steps and the command line all call the same functions. A validator never raises on bad
input: it returns :class:`Finding` objects (the hardened XML helper's errors become findings too).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from harness.fields.identity import INS, InsError, ProductionInsPolicy, parse_ins, production_ins


class Severity(StrEnum):
    ERROR = "error"  # the real service would refuse the exchange
    WARNING = "warning"  # accepted, but not what the specification asks
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    """One observation about an artefact: a stable ``code``, a French message, where it was found."""

    code: str
    message: str
    severity: Severity = Severity.ERROR
    location: str = ""

    def to_dict(self, *, max_message: int | None = None) -> dict[str, str]:
        """The JSON form journaled in an exchange's ``details["findings"]``."""
        message = self.message if max_message is None else self.message[:max_message]
        return {"code": self.code, "severity": str(self.severity), "message": message, "location": self.location}

    def __str__(self) -> str:
        where = f" [{self.location}]" if self.location else ""
        return f"{self.severity.value.upper()} {self.code}{where}: {self.message}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """A finding back from its journaled form (:meth:`to_dict`): the steps read what a simulator recorded."""
        return cls(
            str(data.get("code", "")),
            str(data.get("message", "")),
            Severity(str(data.get("severity", Severity.ERROR))),
            str(data.get("location") or ""),
        )


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.ERROR]


def production_ins_findings(
    ins: INS | tuple[str | None, str | None] | None,
    policy: ProductionInsPolicy = ProductionInsPolicy.WARN,
    location: str = "",
) -> list[Finding]:
    """The harness-wide production-INS policy as a finding (``INS-PRODUCTION``: a warning under ``warn``, an error
    under ``refuse``) for an INS, or a (value, OID) pair; nothing for a test INS or an unreadable one (whose own
    check reports it)."""
    if isinstance(ins, tuple):
        try:
            ins = parse_ins(ins[0] or "", ins[1] or "")
        except InsError:
            return []
    verdict = production_ins(ins, policy) if ins is not None else None
    if verdict is None:
        return []
    return [Finding(verdict.code, verdict.message, Severity.ERROR if verdict.refuse else Severity.WARNING, location)]
