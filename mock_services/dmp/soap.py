"""HTTP side of the DMP web services: bounded body reading and the SOAP 1.2 / MTOM replies.

Specifications: SOAP 1.2 Part 2 HTTP binding (``env:Sender`` faults answered with HTTP 400, ``env:Receiver`` with
500), WS-Addressing 1.0 (fault action, ``wsa:RelatesTo``), XOP 1.0 / SOAP MTOM for the ITI-43 answer. The request
parsing itself (envelope, MTOM, XOP) is the field library :mod:`harness.fields.soap12`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping

from lxml import etree

from harness.fields.soap12 import SOAP12, WSA, WSSE, SoapFault, SoapLimits, SoapRequest, parse_soap_request


def content_length(headers: Mapping[str, str]) -> int | None:
    raw = headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise SoapFault("Sender", f"Content-Length invalide: {raw!r}", error_code="HTTP-CONTENT-LENGTH") from None


async def read_body(
    headers: Mapping[str, str], stream: AsyncIterator[bytes], limits: SoapLimits = SoapLimits()
) -> bytes:
    """Read the request body, bounded: a declared Content-Length over the limit is refused before reading anything,
    and reading stops as soon as the bytes received pass it (chunked bodies included)."""
    declared = content_length(headers)
    if declared is not None and declared > limits.max_request_bytes:
        raise SoapFault(
            "Sender",
            f"requête trop volumineuse ({declared} octets > {limits.max_request_bytes})",
            error_code="HTTP-TOO-LARGE",
        )
    body = bytearray()
    async for chunk in stream:
        body += chunk
        if len(body) > limits.max_request_bytes:
            raise SoapFault(
                "Sender", f"requête trop volumineuse (> {limits.max_request_bytes} octets)", error_code="HTTP-TOO-LARGE"
            )
    return bytes(body)


async def read_soap_request(
    content_type: str, headers: Mapping[str, str], stream: AsyncIterator[bytes], limits: SoapLimits = SoapLimits()
) -> SoapRequest:
    """Read (bounded) and parse a SOAP 1.2 request in one go (see :func:`read_body`, :func:`parse_soap_request`)."""
    return parse_soap_request(content_type, await read_body(headers, stream, limits), limits)


# ------------------------------------------------------------------------------------------------- responses
def _envelope(action: str, relates_to: str | None, body: etree._Element) -> etree._Element:
    env = etree.Element(f"{{{SOAP12}}}Envelope", nsmap={"env": SOAP12, "wsa": WSA})
    header = etree.SubElement(env, f"{{{SOAP12}}}Header")
    action_el = etree.SubElement(header, f"{{{WSA}}}Action")
    action_el.set(f"{{{SOAP12}}}mustUnderstand", "true")
    action_el.text = action
    etree.SubElement(header, f"{{{WSA}}}MessageID").text = f"urn:uuid:{uuid.uuid4()}"
    if relates_to:
        etree.SubElement(header, f"{{{WSA}}}RelatesTo").text = relates_to
    etree.SubElement(env, f"{{{SOAP12}}}Body").append(body)
    return env


def soap_bytes(action: str, relates_to: str | None, body: etree._Element) -> bytes:
    return etree.tostring(_envelope(action, relates_to, body), xml_declaration=True, encoding="UTF-8")


def mtom_bytes(
    action: str, relates_to: str | None, body: etree._Element, attachments: Mapping[str, bytes]
) -> tuple[bytes, str]:
    """A ``multipart/related`` MTOM message; ``attachments`` maps Content-ID -> bytes. Returns (body, content type)."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    root_id = f"root.{uuid.uuid4().hex}@dmp.simulateur"
    out = bytearray()
    out += (
        f'--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n'
        f"Content-Transfer-Encoding: binary\r\nContent-ID: <{root_id}>\r\n\r\n"
    ).encode("ascii")
    out += soap_bytes(action, relates_to, body)
    for cid, data in attachments.items():
        out += f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <{cid}>\r\n\r\n".encode(
            "ascii"
        )
        out += data
    out += f"\r\n--{boundary}--\r\n".encode("ascii")
    content_type = (
        f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; start="<{root_id}>"; '
        f'start-info="application/soap+xml"; action="{action}"'
    )
    return bytes(out), content_type


def fault_bytes(fault: SoapFault, relates_to: str | None = None) -> bytes:
    """A SOAP 1.2 ``env:Fault`` envelope (WS-Addressing fault action)."""
    body = etree.Element(f"{{{SOAP12}}}Fault", nsmap={"env": SOAP12, "wsa": WSA, "wsse": WSSE})
    code = etree.SubElement(body, f"{{{SOAP12}}}Code")
    etree.SubElement(code, f"{{{SOAP12}}}Value").text = f"env:{fault.code}"
    if fault.subcode:
        sub = etree.SubElement(code, f"{{{SOAP12}}}Subcode")
        etree.SubElement(sub, f"{{{SOAP12}}}Value").text = fault.subcode
    reason = etree.SubElement(body, f"{{{SOAP12}}}Reason")
    text = etree.SubElement(reason, f"{{{SOAP12}}}Text")
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "fr")
    text.text = fault.reason
    detail = etree.SubElement(body, f"{{{SOAP12}}}Detail")
    etree.SubElement(detail, "errorCode").text = fault.error_code
    return soap_bytes("http://www.w3.org/2005/08/addressing/soap/fault", relates_to, body)
