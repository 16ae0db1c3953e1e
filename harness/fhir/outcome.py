"""FHIR R4 ``OperationOutcome``: the error every FHIR endpoint of the harness answers with.

FHIR R4 (4.0.1) RESTful API §3.1.0.4 / §3.1.0.1.7: a server answers a failed interaction with an HTTP status and
an ``OperationOutcome`` whose ``issue.code`` comes from the ``issue-type`` value set
(http://hl7.org/fhir/R4/valueset-issue-type.html). :class:`FhirError` carries both; handlers raise it and the
server turns it into the response (and the journal entry) in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from harness.validators import Finding, Severity

#: Code system of the harness's stable error codes, carried in ``OperationOutcome.issue.details``.
ERROR_CODE_SYSTEM = "https://socle-harness.test/fhir/CodeSystem/error"


class IssueSeverity(StrEnum):
    FATAL = "fatal"
    ERROR = "error"
    WARNING = "warning"
    INFORMATION = "information"


class IssueCode(StrEnum):
    """The ``issue-type`` codes the harness uses (FHIR R4 value set http://hl7.org/fhir/issue-type)."""

    INVALID = "invalid"
    STRUCTURE = "structure"
    REQUIRED = "required"
    VALUE = "value"
    INVARIANT = "invariant"
    SECURITY = "security"
    LOGIN = "login"
    FORBIDDEN = "forbidden"
    NOT_SUPPORTED = "not-supported"
    DUPLICATE = "duplicate"
    NOT_FOUND = "not-found"
    DELETED = "deleted"
    TOO_LONG = "too-long"
    CODE_INVALID = "code-invalid"
    BUSINESS_RULE = "business-rule"
    CONFLICT = "conflict"
    TOO_COSTLY = "too-costly"
    PROCESSING = "processing"
    EXCEPTION = "exception"
    TRANSIENT = "transient"
    INFORMATIONAL = "informational"


@dataclass(frozen=True)
class Issue:
    """One ``OperationOutcome.issue``: severity, code, a human message (French) and where (FHIRPath)."""

    severity: IssueSeverity
    code: IssueCode
    diagnostics: str
    expression: str = ""
    detail: str = ""  # the harness's stable error code (``issue.details.coding``), e.g. ``EP-PATIENT-DIFFERENT``

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"severity": str(self.severity), "code": str(self.code)}
        if self.detail:
            data["details"] = {"coding": [{"system": ERROR_CODE_SYSTEM, "code": self.detail}]}
        data["diagnostics"] = self.diagnostics
        if self.expression:
            data["expression"] = [self.expression]
        return data


class FhirError(Exception):
    """A failed FHIR interaction: HTTP ``status`` and the issues of its ``OperationOutcome``.

    ``error_code`` is the stable code the journal records (a finding code such as ``CDL-TYPE`` or the issue code).
    """

    def __init__(
        self,
        status: int,
        issues: Sequence[Issue] | Issue,
        *,
        error_code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.issues: tuple[Issue, ...] = (issues,) if isinstance(issues, Issue) else tuple(issues)
        first = self.issues[0] if self.issues else Issue(IssueSeverity.ERROR, IssueCode.EXCEPTION, "erreur")
        self.error_code = error_code or str(first.code)
        self.headers = dict(headers or {})
        super().__init__(f"HTTP {status} {first.code}: {first.diagnostics}")

    @property
    def message(self) -> str:
        return "; ".join(
            i.diagnostics for i in self.issues if i.severity in (IssueSeverity.ERROR, IssueSeverity.FATAL)
        ) or (self.issues[0].diagnostics if self.issues else "")

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


def fail(
    status: int,
    code: IssueCode,
    diagnostics: str,
    *,
    expression: str = "",
    error_code: str | None = None,
    headers: dict[str, str] | None = None,
) -> FhirError:
    """A :class:`FhirError` with one error issue (``raise fail(404, IssueCode.NOT_FOUND, "...")``)."""
    return FhirError(
        status,
        Issue(IssueSeverity.ERROR, code, diagnostics, expression, error_code or ""),
        error_code=error_code,
        headers=headers,
    )


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """An R4 ``OperationOutcome`` (at least one issue: ``issue`` is 1..*)."""
    listed = [i.to_json() for i in issues] or [
        Issue(IssueSeverity.INFORMATION, IssueCode.INFORMATIONAL, "OK").to_json()
    ]
    return {"resourceType": "OperationOutcome", "issue": listed}


_SEVERITY = {
    Severity.ERROR: IssueSeverity.ERROR,
    Severity.WARNING: IssueSeverity.WARNING,
    Severity.INFO: IssueSeverity.INFORMATION,
}


@dataclass(frozen=True)
class FindingCodes:
    """How finding codes map to issue codes: a prefix table, first match wins (default ``invalid``)."""

    prefixes: tuple[tuple[str, IssueCode], ...] = field(
        default=(
            ("FHIR-STRUCTURE", IssueCode.STRUCTURE),
            ("FHIR-REQUIRED", IssueCode.REQUIRED),
            ("FHIR-JSON", IssueCode.STRUCTURE),
            ("XML-", IssueCode.STRUCTURE),
            ("FHIR-REFERENCE", IssueCode.NOT_FOUND),
        )
    )

    def code_of(self, finding: Finding) -> IssueCode:
        for prefix, code in self.prefixes:
            if finding.code.startswith(prefix):
                return code
        if finding.code.endswith(("-REQUIRED", "-ABSENT", "-MISSING")):
            return IssueCode.REQUIRED
        if finding.code.endswith(("-CODE", "-VALUESET", "-JDV")):
            return IssueCode.CODE_INVALID
        return IssueCode.INVALID


DEFAULT_FINDING_CODES = FindingCodes()


def issues_from_findings(findings: Iterable[Finding], codes: FindingCodes = DEFAULT_FINDING_CODES) -> list[Issue]:
    """Validator findings as ``OperationOutcome`` issues (``diagnostics`` = ``CODE: message``)."""
    return [
        Issue(
            _SEVERITY.get(f.severity, IssueSeverity.INFORMATION),
            codes.code_of(f),
            f"{f.code}: {f.message}",
            f.location,
            f.code,
        )
        for f in findings
    ]
