"""FHIR ``Reference.reference`` values inside a resource held as JSON (FHIR R4 4.0.1 §2.3.0 References).

Plain value-level code shared by the FHIR server (:mod:`harness.fhir`) and the profile validators
(:mod:`harness.validators`).
"""

from __future__ import annotations

from typing import Any


def references_in(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every ``Reference.reference`` string inside ``value``, with its dotted path (contained resources excluded)."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str):  # in FHIR only the Reference datatype has an element named "reference"
            found.append((path or "reference", ref))
        for key, item in value.items():
            if key in ("contained", "reference"):
                continue
            found.extend(references_in(item, f"{path}.{key}" if path else key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(references_in(item, f"{path}[{index}]"))
    return found
