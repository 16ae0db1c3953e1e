"""SOAP 1.2 + WS-Addressing 1.0 + MTOM/XOP requests as the DMP web services receive them: parsing, bounded.

Specifications: SOAP 1.2 Part 1 (W3C 2007: envelope, ``env:Fault`` with ``Code/Value``, ``Subcode``, ``Reason``;
``mustUnderstand``), SOAP 1.2 Part 2 HTTP binding (``application/soap+xml``), WS-Addressing 1.0 SOAP Binding (W3C
2006: ``wsa:MessageID``, ``wsa:To``, ``wsa:Action``), XOP 1.0 and SOAP MTOM (W3C 2005: ``multipart/related;
type="application/xop+xml"``, parts named by ``Content-ID`` and referenced by ``xop:Include href="cid:..."``), IHE
ITI TF-2x Appendix V (Web Services for IHE Transactions).

Field library (bytes in): the DMP simulator parses what it receives with it (:mod:`mock_services.dmp.soap` keeps the
HTTP side and the replies), ``socle-harness validate`` parses a saved ITI-41 request with it
(:mod:`harness.validators.iti41`). A problem is a :class:`SoapFault` whose ``error_code`` is stable.

No server-side MTOM library exists on PyPI: the ``multipart/related`` body is split by python-multipart's
low-level streaming :class:`MultipartParser` (callbacks), with every size bounded while bytes arrive.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from lxml import etree
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from harness.fields.xmlsafe import XMLSafetyError, parse_xml

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"
XOP = "http://www.w3.org/2004/08/xop/include"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS = {"env": SOAP12, "wsa": WSA, "xop": XOP, "wsse": WSSE}
UNDERSTOOD_HEADERS = frozenset({WSA, WSSE})


@dataclass(frozen=True)
class SoapLimits:
    max_request_bytes: int = 64 * 1024 * 1024
    max_parts: int = 64
    max_envelope_bytes: int = 16 * 1024 * 1024
    max_header_size: int = 8 * 1024


class SoapFault(Exception):
    """A SOAP 1.2 fault to answer with. ``code`` is ``Sender`` / ``Receiver`` / ``MustUnderstand`` /
    ``VersionMismatch``; ``subcode`` a QName string like ``wsa:ActionNotSupported``; ``reason`` is French."""

    def __init__(
        self,
        code: str,
        reason: str,
        *,
        subcode: str | None = None,
        error_code: str | None = None,
        findings: list | None = None,
    ) -> None:
        super().__init__(reason)
        self.findings = findings or []  # the validator findings behind the fault (VIHF deviations), for the journal
        self.code = code
        self.reason = reason
        self.subcode = subcode
        self.error_code = error_code or (subcode.split(":")[-1] if subcode else f"SOAP-{code.upper()}")

    @property
    def http_status(self) -> int:
        return 500 if self.code == "Receiver" else 400


@dataclass
class MimePart:
    """One part of a ``multipart/related`` body: its headers and its content, kept as views of the received body
    where the parser hands them out so (one copy when the content is read, not one per chunk and another then)."""

    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes | memoryview] = field(default_factory=list)

    @property
    def data(self) -> bytes:
        """The part's content (a new ``bytes``)."""
        return (
            self.chunks[0].tobytes()
            if len(self.chunks) == 1 and isinstance(self.chunks[0], memoryview)
            else (b"".join(self.chunks))
        )

    @property
    def content_id(self) -> str | None:
        value = self.headers.get("content-id")
        return value.strip().strip("<>").strip() if value else None


@dataclass
class SoapRequest:
    """A received SOAP 1.2 message: the envelope, its MTOM attachments, and the WS-Addressing headers."""

    envelope: etree._Element
    header: etree._Element | None
    body: etree._Element
    attachments: dict[str, bytes]  # Content-ID -> bytes
    message_id: str | None
    to: str | None
    action: str | None
    mtom: bool
    size: int
    raw: bytes = field(default=b"", repr=False)  # the request body as received (journal evidence)

    @property
    def payload(self) -> etree._Element | None:
        """The first element child of ``env:Body``."""
        return next((c for c in self.body if isinstance(c.tag, str)), None)

    @property
    def security(self) -> etree._Element | None:
        return self.header.find("wsse:Security", NS) if self.header is not None else None


class _PartCollector:
    def __init__(self, limits: SoapLimits, body: bytes = b"") -> None:
        self.limits = limits
        self.body = body  # what the parser is given whole: chunks of it are kept as views
        self.parts: list[MimePart] = []
        self._field = bytearray()
        self._value = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._begin,
            "on_part_data": self._data,
            "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
            "on_header_end": self._header_end,
        }

    def _begin(self) -> None:
        if len(self.parts) >= self.limits.max_parts:
            raise SoapFault(
                "Sender", f"trop de parties MIME (maximum {self.limits.max_parts})", error_code="MTOM-TOO-MANY-PARTS"
            )
        self.parts.append(MimePart())

    def _data(self, data: bytes, start: int, end: int) -> None:
        # python-multipart hands out slices of the buffer given to write() (the body), or of its own look-behind
        # buffer (reused: copied)
        chunk = memoryview(data)[start:end] if data is self.body else bytes(data[start:end])
        self.parts[-1].chunks.append(chunk)

    def _header_end(self) -> None:
        name = self._field.decode("latin-1").strip().lower()
        self.parts[-1].headers[name] = self._value.decode("latin-1").strip()
        self._field.clear()
        self._value.clear()


def parse_soap_request(content_type: str, body: bytes, limits: SoapLimits = SoapLimits()) -> SoapRequest:
    """Parse a SOAP 1.2 request, plain or MTOM; raise :class:`SoapFault` on any problem (CPU-bound: run it off
    the event loop)."""
    media, params = parse_options_header(content_type or "")
    media_type = media.decode("latin-1").lower()
    if media_type == "multipart/related":
        request = _parse_mtom(params, body, limits)
    elif media_type == "application/soap+xml":
        if len(body) > limits.max_envelope_bytes:
            raise SoapFault(
                "Sender",
                f"enveloppe SOAP trop volumineuse (> {limits.max_envelope_bytes} octets)",
                error_code="HTTP-TOO-LARGE",
            )
        request = parse_envelope(body, {}, mtom=False, size=len(body), limits=limits)
    elif media_type == "text/xml":
        raise SoapFault(
            "VersionMismatch",
            "text/xml (SOAP 1.1) reçu: le DMP parle SOAP 1.2 (application/soap+xml)",
            error_code="SOAP-VERSION",
        )
    else:
        raise SoapFault(
            "Sender",
            f"Content-Type {media_type or 'absent'} non pris en charge (attendu multipart/related MTOM ou application/soap+xml)",
            error_code="HTTP-CONTENT-TYPE",
        )
    request.raw = body
    return request


def _parse_mtom(params: dict[bytes, bytes], body: bytes, limits: SoapLimits) -> SoapRequest:
    boundary = params.get(b"boundary")
    if not boundary:
        raise SoapFault("Sender", "multipart/related sans paramètre boundary", error_code="MTOM-BOUNDARY")
    part_type = params.get(b"type", b"").decode("latin-1").lower()
    if part_type and part_type != "application/xop+xml":
        raise SoapFault(
            "Sender",
            f"multipart/related type={part_type!r}: application/xop+xml attendu (MTOM)",
            error_code="MTOM-TYPE",
        )
    start = params.get(b"start", b"").decode("latin-1").strip().strip("<>") or None
    collector = _PartCollector(limits, body)
    try:
        parser = MultipartParser(boundary, collector.callbacks(), max_header_size=limits.max_header_size)
    except Exception as exc:  # FormParserError: boundary too long
        raise SoapFault("Sender", f"boundary MIME invalide: {exc}", error_code="MTOM-BOUNDARY") from None
    try:
        parser.write(body)
        parser.finalize()
    except SoapFault:
        raise
    except Exception as exc:  # python-multipart raises MultipartParseError and friends
        raise SoapFault("Sender", f"corps multipart/related illisible: {exc}", error_code="MTOM-MALFORMED") from None
    if parser.state != MultipartState.END or not collector.parts:
        raise SoapFault(
            "Sender", "corps multipart/related incomplet (délimiteur de fin absent)", error_code="MTOM-MALFORMED"
        )
    parts = collector.parts
    root = next((p for p in parts if start and p.content_id == start), None) if start else parts[0]
    if root is None:
        raise SoapFault("Sender", f"partie racine start=<{start}> introuvable", error_code="MTOM-START")
    root_type, _ = parse_options_header(root.headers.get("content-type", ""))
    if root_type.decode("latin-1").lower() != "application/xop+xml":
        raise SoapFault("Sender", "la partie racine MTOM doit être application/xop+xml", error_code="MTOM-ROOT-TYPE")
    attachments: dict[str, bytes] = {}
    for part in parts:
        if part is root:
            continue
        cid = part.content_id
        if not cid:
            raise SoapFault("Sender", "partie MIME sans Content-ID", error_code="MTOM-CONTENT-ID")
        if cid in attachments:
            raise SoapFault("Sender", f"Content-ID <{cid}> en double", error_code="MTOM-CONTENT-ID")
        encoding = part.headers.get("content-transfer-encoding", "binary").strip().lower()
        data = part.data
        if encoding == "base64":
            try:
                data = base64.b64decode(b"".join(data.split()), validate=True)
            except (binascii.Error, ValueError):
                raise SoapFault(
                    "Sender", f"partie <{cid}>: contenu base64 invalide", error_code="MTOM-BASE64"
                ) from None
        elif encoding not in {"binary", "8bit", "7bit"}:
            raise SoapFault(
                "Sender",
                f"partie <{cid}>: Content-Transfer-Encoding {encoding!r} non pris en charge",
                error_code="MTOM-ENCODING",
            )
        attachments[cid] = data
    return parse_envelope(root.data, attachments, mtom=True, size=len(body), limits=limits)


def parse_envelope(
    data: bytes, attachments: dict[str, bytes], *, mtom: bool, size: int, limits: SoapLimits = SoapLimits()
) -> SoapRequest:
    try:
        envelope = parse_xml(data, max_bytes=limits.max_envelope_bytes)
    except XMLSafetyError as exc:
        raise SoapFault("Sender", f"enveloppe SOAP refusée: {exc.message_fr}", error_code=exc.code) from None
    if envelope.tag == f"{{{SOAP11}}}Envelope":
        raise SoapFault("VersionMismatch", "enveloppe SOAP 1.1 reçue: SOAP 1.2 attendu", error_code="SOAP-VERSION")
    if envelope.tag != f"{{{SOAP12}}}Envelope":
        raise SoapFault(
            "Sender", f"élément racine {envelope.tag}: env:Envelope SOAP 1.2 attendu", error_code="SOAP-ENVELOPE"
        )
    header = envelope.find("env:Header", NS)
    body = envelope.find("env:Body", NS)
    if body is None:
        raise SoapFault("Sender", "env:Body absent de l'enveloppe SOAP", error_code="SOAP-NO-BODY")
    if header is not None:
        for block in header:
            if not isinstance(block.tag, str):
                continue
            must = block.get(f"{{{SOAP12}}}mustUnderstand") or block.get("mustUnderstand")
            namespace = etree.QName(block).namespace
            if must in {"true", "1"} and namespace not in UNDERSTOOD_HEADERS:
                raise SoapFault(
                    "MustUnderstand",
                    f"en-tête {block.tag} marqué mustUnderstand non compris",
                    error_code="SOAP-MUST-UNDERSTAND",
                )

    def wsa(name: str) -> str | None:
        if header is None:
            return None
        value = header.findtext(f"wsa:{name}", namespaces=NS)
        return value.strip() if value is not None else None

    return SoapRequest(
        envelope=envelope,
        header=header,
        body=body,
        attachments=attachments,
        message_id=wsa("MessageID"),
        to=wsa("To"),
        action=wsa("Action"),
        mtom=mtom,
        size=size,
    )


def resolve_xop(element: etree._Element, attachments: Mapping[str, bytes]) -> bytes:
    """The bytes an ``xdsb:Document`` carries: an ``xop:Include`` to an attachment, or inline base64 text."""
    include = element.find("xop:Include", NS)
    if include is not None:
        href = include.get("href", "")
        if not href.startswith("cid:"):
            raise SoapFault("Sender", f"xop:Include href={href!r}: référence cid: attendue", error_code="XOP-HREF")
        cid = unquote(href[4:]).strip("<>")
        if cid not in attachments:
            raise KeyError(cid)
        return attachments[cid]
    text = "".join(element.itertext())
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SoapFault(
            "Sender", f"document {element.get('id')!r}: contenu base64 invalide", error_code="XDS-BASE64"
        ) from None


def addressing_fault(soap: SoapRequest, actions: Sequence[str], service: str) -> SoapFault | None:
    """WS-Addressing 1.0 SOAP Binding §3 / §6.4: the request's ``wsa:Action`` must be one the ``service`` endpoint
    serves (``wsa:ActionNotSupported``), ``wsa:MessageID`` and ``wsa:To`` present
    (``wsa:MessageAddressingHeaderRequired``). The first problem as a fault, ``None`` when none."""
    if soap.action not in actions:
        return SoapFault(
            "Sender",
            f"Action {soap.action!r} non prise en charge par le service {service}",
            subcode="wsa:ActionNotSupported" if soap.action else "wsa:MessageAddressingHeaderRequired",
        )
    if not soap.message_id:
        return SoapFault(
            "Sender", "en-tête WS-Addressing MessageID absent", subcode="wsa:MessageAddressingHeaderRequired"
        )
    if not soap.to:
        return SoapFault("Sender", "en-tête WS-Addressing To absent", subcode="wsa:MessageAddressingHeaderRequired")
    return None
