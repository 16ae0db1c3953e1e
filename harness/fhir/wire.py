"""FHIR R4 wire formats: bounded body reading, JSON and XML parsing, content negotiation, rendering.

FHIR R4 (4.0.1) §2.6 formats and RESTful API §3.1.0.1.5 (mime types ``application/fhir+json`` and
``application/fhir+xml``; ``application/json`` / ``application/xml`` accepted; ``_format`` overrides ``Accept``).

- Bodies are read with a byte bound before any parsing (HTTP 413 beyond it).
- JSON: an object with ``resourceType``; ``NaN``/``Infinity`` refused; nesting bombs end as a structure error.
- XML: only through :func:`harness.fields.xmlsafe.parse_xml` (no DTD, no entities: XXE refused), then converted to the
  JSON form with the ``fhir.resources`` R4B models (``fhir.resources`` 8 ships R5 by default and R4B, which reads
  the usual R4 payloads; there is no R4 4.0.1 model set).
- Rendering: JSON as is; XML through the R4B model of the resource.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.requests import Request

from harness.fhir.model import model_class, narrative_findings
from harness.fhir.outcome import FhirError, IssueCode, fail
from harness.fields.xmlsafe import XMLSafetyError, parse_xml

FHIR_NS = "http://hl7.org/fhir"
MIME_JSON = "application/fhir+json"
MIME_XML = "application/fhir+xml"
JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir", "text/json"})
XML_TYPES = frozenset({"application/fhir+xml", "application/xml", "application/xml+fhir", "text/xml"})
_FORMAT_ALIASES = {
    "json": "json",
    "application/json": "json",
    "application/fhir+json": "json",
    "application/json+fhir": "json",
    "text/json": "json",
    "xml": "xml",
    "application/xml": "xml",
    "application/fhir+xml": "xml",
    "application/xml+fhir": "xml",
    "text/xml": "xml",
}


class Format(StrEnum):
    JSON = "json"
    XML = "xml"

    @property
    def mime(self) -> str:
        return MIME_JSON if self is Format.JSON else MIME_XML


#: JSON nesting a FHIR resource never needs (a Bundle entry's contained resource's nested extensions stay
#: under 30); deeper is refused before any recursive processing (issue 15 item 7: 500 RecursionError at 1,000)
MAX_JSON_DEPTH = 100


@dataclass(frozen=True)
class Limits:
    """Bounds applied before any processing: body bytes and Bundle entries (HTTP 413 beyond them)."""

    max_body_bytes: int = 5 * 1024 * 1024
    max_bundle_entries: int = 1000
    max_search_results: int = 1000


def media_type(header: str | None) -> str:
    """``"application/fhir+json; charset=utf-8"`` -> ``"application/fhir+json"``."""
    return (header or "").split(";", 1)[0].strip().lower()


def body_format(content_type: str | None) -> Format:
    """The format of a request body from its ``Content-Type`` (HTTP 415 when not a FHIR format)."""
    mime = media_type(content_type)
    if mime in JSON_TYPES:
        return Format.JSON
    if mime in XML_TYPES:
        return Format.XML
    raise fail(
        415,
        IssueCode.NOT_SUPPORTED,
        f"type de contenu non pris en charge : {mime or 'absent'} (attendu {MIME_JSON} ou {MIME_XML})",
        error_code="FHIR-CONTENT-TYPE",
    )


def response_format(request: Request) -> Format:
    """``_format`` (query) first, then ``Accept``; JSON by default. An unknown ``_format`` is HTTP 406."""
    # no query string, no _format: its parsing is skipped on the reads (issue 18)
    requested = request.query_params.get("_format") if request.scope.get("query_string") else None
    if requested is not None:
        known = _FORMAT_ALIASES.get(requested.strip().lower())
        if known is None:
            raise fail(
                406, IssueCode.NOT_SUPPORTED, f"_format inconnu : {requested!r} (json ou xml)", error_code="FHIR-FORMAT"
            )
        return Format(known)
    accept = request.headers.get("accept", "")
    best: tuple[float, Format] | None = None
    for part in accept.split(","):
        mime, _, params = part.strip().partition(";")
        fmt = _FORMAT_ALIASES.get(mime.strip().lower())
        if fmt is None:
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, Format(fmt))
    return best[1] if best else Format.JSON


async def read_body(request: Request, limits: Limits) -> bytes:
    """The request body, refused with HTTP 413 as soon as it exceeds ``limits.max_body_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise fail(
                400, IssueCode.STRUCTURE, "en-tête Content-Length invalide", error_code="HTTP-CONTENT-LENGTH"
            ) from None
        if size > limits.max_body_bytes:
            raise _too_large(size, limits)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limits.max_body_bytes:
            raise _too_large(total, limits)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limits: Limits) -> FhirError:
    return fail(
        413,
        IssueCode.TOO_COSTLY,
        f"corps de requête trop volumineux ({size} octets > {limits.max_body_bytes})",
        error_code="FHIR-TOO-LARGE",
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"valeur JSON non permise : {name}")


def nesting_depth(value: Any, limit: int) -> int:
    """How deep objects and arrays nest in ``value`` (iterative: a hostile document cannot exhaust the stack),
    counting stops just beyond ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > limit:
                return depth
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def parse_json(data: bytes) -> dict[str, Any]:
    """A FHIR JSON resource (an object with ``resourceType``), or HTTP 400."""
    if not data.strip():
        raise fail(
            400, IssueCode.STRUCTURE, "corps de requête vide (une ressource FHIR est attendue)", error_code="FHIR-JSON"
        )
    try:
        text = data.decode("utf-8-sig")
        value = json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise fail(400, IssueCode.STRUCTURE, f"JSON invalide : {str(exc)[:300]}", error_code="FHIR-JSON") from None
    # each object or array of the value opened with a bracket of the text: no more brackets, no deeper nesting (the
    # walk was a twentieth of a note's create, issue 18)
    if text.count("{") + text.count("[") > MAX_JSON_DEPTH and nesting_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise fail(
            400,
            IssueCode.STRUCTURE,
            f"JSON imbriqué sur plus de {MAX_JSON_DEPTH} niveaux : aucune ressource FHIR n'en a besoin",
            error_code="FHIR-JSON-PROFONDEUR",
        )
    if not isinstance(value, dict):
        raise fail(
            400,
            IssueCode.STRUCTURE,
            "le JSON reçu n'est pas un objet (une ressource FHIR est attendue)",
            error_code="FHIR-JSON",
        )
    resource_type = value.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise fail(
            400, IssueCode.STRUCTURE, "resourceType absent", expression="resourceType", error_code="FHIR-RESOURCETYPE"
        )
    return value


def parse_xml_resource(data: bytes, *, max_bytes: int, max_entries: int | None = None) -> dict[str, Any]:
    """A FHIR XML resource, parsed by the hardened parser and converted to the FHIR JSON form, or HTTP 400.

    A ``Bundle`` with more than ``max_entries`` entries is refused (HTTP 413) before the conversion."""
    from fhir_core.xml_utils import Node
    from pydantic import ValidationError

    try:
        root = parse_xml(data, max_bytes=max_bytes)
    except XMLSafetyError as exc:
        raise fail(
            400,
            IssueCode.SECURITY if exc.code in ("XML-DOCTYPE-FORBIDDEN", "XML-ENTITY") else IssueCode.STRUCTURE,
            f"XML refusé : {exc.message_fr}",
            error_code=exc.code,
        ) from None
    tag = root.tag if isinstance(root.tag, str) else ""
    namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    if namespace != FHIR_NS:
        raise fail(
            400,
            IssueCode.STRUCTURE,
            f"élément racine hors de l'espace de noms FHIR ({FHIR_NS}) : {tag}",
            error_code="FHIR-XML-NAMESPACE",
        )
    if local == "Bundle" and max_entries is not None:
        count = sum(1 for child in root if child.tag == f"{{{FHIR_NS}}}entry")
        if count > max_entries:
            raise too_many_entries(count, max_entries)
    cls = model_class(local)
    if cls is None:
        raise fail(400, IssueCode.NOT_SUPPORTED, f"type de ressource inconnu : {local}", error_code="FHIR-RESOURCETYPE")
    try:
        model = Node.from_element(root, fhir_class=cls).to_fhir(cls)
    except (ValidationError, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise fail(
            400, IssueCode.STRUCTURE, f"XML FHIR invalide : {str(exc)[:400]}", error_code="FHIR-STRUCTURE"
        ) from None
    return model.model_dump(mode="json", exclude_none=True)


def parse_resource(data: bytes, content_type: str | None, limits: Limits) -> tuple[dict[str, Any], Format]:
    """Parse a request body by its ``Content-Type``: the resource (FHIR JSON form) and the format it came in."""
    fmt = body_format(content_type)
    if len(data) > limits.max_body_bytes:
        raise _too_large(len(data), limits)
    if fmt is Format.JSON:
        return parse_json(data), fmt
    return parse_xml_resource(data, max_bytes=limits.max_body_bytes, max_entries=limits.max_bundle_entries), fmt


def too_many_entries(count: int, maximum: int) -> FhirError:
    return fail(
        413,
        IssueCode.TOO_COSTLY,
        f"Bundle de {count} entrées refusé (au plus {maximum})",
        error_code="FHIR-TOO-MANY-ENTRIES",
    )


def check_entry_count(resource: dict[str, Any], limits: Limits) -> None:
    """HTTP 413 for a Bundle with more entries than ``limits.max_bundle_entries`` (checked before any processing)."""
    if resource.get("resourceType") == "Bundle":
        entries = resource.get("entry")
        if isinstance(entries, list) and len(entries) > limits.max_bundle_entries:
            raise too_many_entries(len(entries), limits.max_bundle_entries)


def render(resource: dict[str, Any], fmt: Format) -> bytes:
    """Serialise a resource; XML goes through its R4B model (JSON is kept when the model refuses it)."""
    if fmt is Format.XML:
        cls = model_class(str(resource.get("resourceType", "")))
        if cls is not None and not narrative_findings(resource):  # the R4B models re-parse narratives with lxml
            try:
                xml = cls.model_validate(resource).model_dump_xml()
                return xml if isinstance(xml, bytes) else xml.encode("utf-8")
            except Exception:  # noqa: BLE001 - a resource the R4B model refuses is sent as JSON rather than lost
                pass
    return render_json(resource)


# json.dumps(value, ensure_ascii=False, separators=(",", ":")) builds this encoder on every call (a JSONEncoder
# keeps only its options: one serves every thread)
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def render_json(value: Any) -> bytes:
    """The compact UTF-8 JSON :func:`render` gives, of any JSON value (a resource, or a part of one: a Bundle
    rendered by parts gives the same bytes)."""
    return _JSON_ENCODER.encode(value).encode("utf-8")


def rendered_mime(resource: dict[str, Any], fmt: Format, body: bytes) -> str:
    """The media type of what :func:`render` produced (XML falls back to JSON when the model refused it)."""
    if fmt is Format.XML and body.lstrip().startswith(b"<"):
        return f"{MIME_XML}; charset=utf-8"
    return f"{MIME_JSON}; charset=utf-8"
