"""The one hardened XML parser every validator and simulator uses.

Everything a DUI sends (CDA R2 documents, XDS/ebRIM metadata, SOAP envelopes, SAML assertions) is
untrusted input. :func:`parse_xml` applies the OWASP "XML External Entity Prevention" recommendations
for libxml2/lxml:

* the size is checked before any parsing (``XML-TOO-LARGE``);
* a ``<!DOCTYPE`` is refused (``XML-DOCTYPE-FORBIDDEN``): none of the CI-SIS / IHE XDS.b / HL7 CDA R2
  exchanges needs a DTD, and refusing it removes XXE, external-DTD fetches, billion laughs and
  quadratic blow-up at the root. The prolog is scanned *before* parsing, so entity definitions never
  reach libxml2, and ``docinfo`` is checked again after parsing;
* the parser never substitutes entities, never loads a DTD, never uses the network and keeps libxml2's
  default limits (no ``huge_tree``); libxml2 errors, including "Maximum entity amplification factor
  exceeded", become :class:`XMLSafetyError` (``XML-ENTITY`` / ``XML-MALFORMED``).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping

from lxml import etree

__all__ = ["DEFAULT_MAX_BYTES", "XMLSafetyError", "parse_xml", "text_of"]

DEFAULT_MAX_BYTES = 20 * 1024 * 1024

# XML 1.0 §2.8: the prolog is XMLDecl? Misc* (doctypedecl Misc*)?, Misc = Comment | PI | S.
# Possessive repetition (Python >= 3.11) keeps the scan linear even on hostile input.
_DOCTYPE_IN_PROLOG = re.compile(
    rb"(?:[ \t\r\n]|<\?.*?\?>|<!--.*?-->)*+<!(?i:DOCTYPE)",
    re.DOTALL,
)

# XML 1.0 Appendix F: encoding autodetection for the encodings that are not ASCII-compatible.
_WIDE_ENCODINGS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)


class XMLSafetyError(ValueError):
    """An XML payload refused by :func:`parse_xml`.

    ``code`` is one of ``XML-TOO-LARGE``, ``XML-DOCTYPE-FORBIDDEN``, ``XML-ENTITY``, ``XML-MALFORMED``;
    the message is bilingual (French / English) and safe to show in a report.
    """

    def __init__(self, code: str, message_fr: str, message_en: str) -> None:
        super().__init__(f"{code}: {message_fr} / {message_en}")
        self.code = code
        self.message_fr = message_fr
        self.message_en = message_en


def _make_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        dtd_validation=False,
        remove_pis=False,
    )


def _prolog_bytes(data: bytes) -> bytes:
    """The document as ASCII-compatible bytes, for the prolog scan only (UTF-16/32 are transcoded)."""
    for signature, encoding in _WIDE_ENCODINGS:
        if data.startswith(signature):
            return data.decode(encoding, errors="replace").encode("utf-8")
    return data.removeprefix(codecs.BOM_UTF8)


def _has_doctype(data: bytes) -> bool:
    return _DOCTYPE_IN_PROLOG.match(_prolog_bytes(data)) is not None


def _doctype_error() -> XMLSafetyError:
    return XMLSafetyError(
        "XML-DOCTYPE-FORBIDDEN",
        "déclaration DOCTYPE interdite (risque XXE / expansion d'entités)",
        "DOCTYPE declaration forbidden (XXE / entity expansion risk)",
    )


_ENTITY_ERRORS = frozenset(
    getattr(etree.ErrorTypes, name)
    for name in (
        "ERR_UNDECLARED_ENTITY",
        "WAR_UNDECLARED_ENTITY",
        "ERR_ENTITY_LOOP",
        "ERR_ENTITY_IS_EXTERNAL",
        "ERR_ENTITY_IS_PARAMETER",
        "ERR_ENTITY_PROCESSING",
        "ERR_UNPARSED_ENTITY",
    )
)


def _map_syntax_error(exc: etree.XMLSyntaxError) -> XMLSafetyError:
    # Use the exception's own code and message: ``exc.error_log`` may also hold earlier, unrelated errors.
    message = str(exc.msg or exc)
    if exc.code in _ENTITY_ERRORS or "amplification" in message.lower():
        return XMLSafetyError(
            "XML-ENTITY",
            f"entité XML refusée : {message}",
            f"XML entity refused: {message}",
        )
    if exc.code == etree.ErrorTypes.ERR_RESOURCE_LIMIT:
        # libxml2 defaults without XML_PARSE_HUGE: depth 256, text node / attribute 10 000 000 bytes.
        return XMLSafetyError(
            "XML-TOO-LARGE",
            f"limite de l'analyseur XML dépassée : {message}",
            f"XML parser limit exceeded: {message}",
        )
    return XMLSafetyError(
        "XML-MALFORMED",
        f"XML mal formé : {message}",
        f"malformed XML: {message}",
    )


def parse_xml(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    forbid_dtd: bool = True,
) -> etree._Element:
    """Parse untrusted XML bytes and return the root element, or raise :class:`XMLSafetyError`.

    Only bytes are accepted, so that the XML declaration's ``encoding`` (e.g. ``ISO-8859-1``) is honoured.
    With ``forbid_dtd=False`` a DOCTYPE is tolerated but still never loaded, fetched or expanded.
    """
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"parse_xml attend des octets (bytes) / expects bytes, not {type(data).__name__}")
    if len(data) > max_bytes:
        raise XMLSafetyError(
            "XML-TOO-LARGE",
            f"document XML trop volumineux ({len(data)} octets > {max_bytes})",
            f"XML document too large ({len(data)} bytes > {max_bytes})",
        )
    if forbid_dtd and _has_doctype(data):
        raise _doctype_error()
    try:
        root = etree.fromstring(data, _make_parser())
    except etree.XMLSyntaxError as exc:
        raise _map_syntax_error(exc) from None
    if root is None:  # pragma: no cover - lxml raises on an empty document
        raise XMLSafetyError("XML-MALFORMED", "document XML vide", "empty XML document")
    if forbid_dtd:
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
            raise _doctype_error()
    return root


def text_of(element: etree._Element, xpath: str, namespaces: Mapping[str, str]) -> str | None:
    """First XPath match, stripped: an element's text content, an attribute or a string result.

    Returns ``None`` when nothing matches (an empty element gives ``""``).
    """
    result = element.xpath(xpath, namespaces=dict(namespaces))
    if isinstance(result, list):
        if not result:
            return None
        result = result[0]
    if isinstance(result, etree._Element):  # noqa: SLF001 - lxml's public element type
        return "".join(result.itertext()).strip()
    if isinstance(result, bool):
        return "true" if result else "false"
    return str(result).strip()
