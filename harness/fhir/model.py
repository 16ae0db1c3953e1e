"""Structure and datatype checks of FHIR resources against the ``fhir.resources`` R4B models.

``fhir.resources`` 8.x ships R5 by default plus ``fhir.resources.R4B``; there is no R4 (4.0.1) model set, and the
R4B models read the usual R4 payloads of the resources the harness serves (Patient, Practitioner,
PractitionerRole, Organization, RelatedPerson, Device, DocumentReference, MedicationRequest, Medication, Task,
AuditEvent, Bundle). Profile rules (FR Core, ANS guides) are separate validators in :mod:`harness.validators`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from harness.validators import Finding, Severity

MAX_REPORTED = 20


@lru_cache(maxsize=256)
def model_class(resource_type: str) -> type | None:
    """The R4B model class of a resource type (``None`` when unknown)."""
    from fhir.resources.R4B import get_fhir_model_class  # imported on first use (about 0.2 s)

    try:
        return get_fhir_model_class(resource_type)
    except (ValueError, KeyError, AttributeError, ImportError):
        return None


def narrative_findings(resource: Any, path: str = "") -> list[Finding]:
    """Narrative ``div`` strings that the hardened XML parser refuses (a DOCTYPE or entity smuggled in JSON would
    otherwise reach lxml's default parser when the resource is rendered as XML by the R4B models). Without any
    ``div`` key, nothing to find: the walk that names each element is skipped (issue 18: it was a twelfth of a
    note's create)."""
    return _narrative_findings(resource, path) if _names_a_div(resource) else []


def _names_a_div(value: Any) -> bool:
    """Whether a ``div`` key appears anywhere in ``value`` (iterative, no path built)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "div" in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _narrative_findings(resource: Any, path: str) -> list[Finding]:
    from harness.fields.xmlsafe import XMLSafetyError, parse_xml

    out: list[Finding] = []
    if isinstance(resource, dict):
        for key, value in resource.items():
            where = f"{path}.{key}" if path else key
            if key == "div" and isinstance(value, str):
                try:
                    parse_xml(value.encode("utf-8"), max_bytes=1024 * 1024)
                except XMLSafetyError as exc:
                    out.append(Finding(exc.code, f"narratif XHTML refusé : {exc.message_fr}", Severity.ERROR, where))
            else:
                out.extend(_narrative_findings(value, where))
    elif isinstance(resource, list):
        for index, item in enumerate(resource):
            out.extend(_narrative_findings(item, f"{path}[{index}]"))
    return out


def structure_findings(resource: dict[str, Any], *, location: str | None = None) -> list[Finding]:
    """Findings ``FHIR-STRUCTURE`` / ``FHIR-RESOURCETYPE`` for ``resource`` (empty when the model accepts it);
    unsafe narratives give the hardened parser's codes (``XML-DOCTYPE-FORBIDDEN``...)."""
    from pydantic import ValidationError

    resource_type = str(resource.get("resourceType", ""))
    where = location or resource_type or "resource"
    unsafe = narrative_findings(resource, where)
    if unsafe:
        return unsafe
    cls = model_class(resource_type)
    if cls is None:
        return [
            Finding(
                "FHIR-RESOURCETYPE", f"type de ressource inconnu : {resource_type or '(absent)'}", Severity.ERROR, where
            )
        ]
    try:
        cls.model_validate(resource)
    except ValidationError as exc:
        errors = exc.errors()
        out = [
            Finding(
                "FHIR-STRUCTURE",
                str(error.get("msg", "invalide"))[:300],
                Severity.ERROR,
                ".".join([where, *(str(p) for p in error.get("loc", ()) if p != "__root__")]),
            )
            for error in errors[:MAX_REPORTED]
        ]
        if len(errors) > MAX_REPORTED:
            out.append(
                Finding("FHIR-STRUCTURE", f"… et {len(errors) - MAX_REPORTED} autres erreurs", Severity.ERROR, where)
            )
        return out
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return [Finding("FHIR-STRUCTURE", str(exc)[:300], Severity.ERROR, where)]
    return []


def rewrite_references(value: Any, mapping: dict[str, str]) -> Any:
    """A copy of ``value`` with every ``reference`` found in ``mapping`` replaced (transaction ``urn:uuid:`` ids)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and item in mapping:
                out[key] = mapping[item]
            else:
                out[key] = rewrite_references(item, mapping)
        return out
    if isinstance(value, list):
        return [rewrite_references(item, mapping) for item in value]
    return value
