"""Every refusal of the DMP's SOAP 1.2 / MTOM reader (SOAP 1.2 Part 1 and Part 2 HTTP binding, W3C 2007; XOP 1.0
and SOAP MTOM, W3C 2005; IHE ITI TF-2x Appendix V), one row per rejection path, asserting the EXACT fault: SOAP
code, HTTP status and the journal's error code; and the bounds at their exact limits.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest
from lxml import etree

from harness.fields.soap12 import NS, SoapFault, SoapLimits, SoapRequest, parse_soap_request, resolve_xop
from mock_services.dmp.soap import content_length, read_body

SOAP12 = NS["env"]
ENVELOPE = (
    f'<env:Envelope xmlns:env="{SOAP12}" xmlns:wsa="{NS["wsa"]}"><env:Header>'
    '<wsa:Action env:mustUnderstand="true">urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b</wsa:Action>'
    "<wsa:MessageID>urn:uuid:1</wsa:MessageID><wsa:To>https://dmp/</wsa:To></env:Header>"
    '<env:Body><doc xmlns:xop="http://www.w3.org/2004/08/xop/include"><xop:Include href="cid:doc1"/></doc></env:Body>'
    "</env:Envelope>"
)
ROOT_HEADERS = 'Content-Type: application/xop+xml; type="application/soap+xml"\r\nContent-ID: <root>\r\n'
MTOM = 'multipart/related; boundary="B"; type="application/xop+xml"; start="<root>"'


def multipart(*parts: tuple[str, bytes], close: bool = True) -> bytes:
    out = b"".join(b"--B\r\n" + headers.encode() + b"\r\n" + data + b"\r\n" for headers, data in parts)
    return out + (b"--B--\r\n" if close else b"")


def root(envelope: str = ENVELOPE) -> tuple[str, bytes]:
    return ROOT_HEADERS, envelope.encode()


def attachment(cid: str | None = "doc1", data: bytes = b"%PDF", encoding: str | None = None) -> tuple[str, bytes]:
    headers = "Content-Type: application/pdf\r\n"
    headers += f"Content-ID: <{cid}>\r\n" if cid else ""
    headers += f"Content-Transfer-Encoding: {encoding}\r\n" if encoding else ""
    return headers, data


def fault(content_type: str, body: bytes, limits: SoapLimits | None = None) -> tuple[str, int, str]:
    with pytest.raises(SoapFault) as caught:
        parse_soap_request(content_type, body, limits or SoapLimits())
    return caught.value.code, caught.value.http_status, caught.value.error_code


def test_a_well_formed_mtom_request_is_read() -> None:
    request = parse_soap_request(MTOM, multipart(root(), attachment(), attachment("doc2", b"AQID", "base64")))
    assert isinstance(request, SoapRequest) and request.mtom
    assert request.attachments == {"doc1": b"%PDF", "doc2": b"\x01\x02\x03"}
    assert (request.action, request.message_id, request.to) == (
        "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b",
        "urn:uuid:1",
        "https://dmp/",
    )
    assert resolve_xop(request.payload, request.attachments) == b"%PDF"
    # without a start parameter, the first part is the root
    request = parse_soap_request('multipart/related; boundary="B"', multipart(root(), attachment()))
    assert request.attachments == {"doc1": b"%PDF"}
    plain = parse_soap_request("application/soap+xml; charset=utf-8", ENVELOPE.encode())
    assert not plain.mtom and plain.attachments == {} and plain.raw == ENVELOPE.encode()


SOAP11_ENVELOPE = '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>'
UNKNOWN_HEADER = ENVELOPE.replace("<wsa:To>", '<x:Trace xmlns:x="urn:autre" env:mustUnderstand="1">1</x:Trace><wsa:To>')
ROWS: list[tuple[str, str, bytes, tuple[str, int, str]]] = [
    ("no content type", "", ENVELOPE.encode(), ("Sender", 400, "HTTP-CONTENT-TYPE")),
    ("json", "application/json", b"{}", ("Sender", 400, "HTTP-CONTENT-TYPE")),
    ("soap 1.1 media type", "text/xml", ENVELOPE.encode(), ("VersionMismatch", 400, "SOAP-VERSION")),
    ("soap 1.1 envelope", "application/soap+xml", SOAP11_ENVELOPE.encode(), ("VersionMismatch", 400, "SOAP-VERSION")),
    ("not an envelope", "application/soap+xml", b"<Envelope/>", ("Sender", 400, "SOAP-ENVELOPE")),
    (
        "no body",
        "application/soap+xml",
        f'<env:Envelope xmlns:env="{SOAP12}"><env:Header/></env:Envelope>'.encode(),
        ("Sender", 400, "SOAP-NO-BODY"),
    ),
    (
        "must understand",
        "application/soap+xml",
        UNKNOWN_HEADER.encode(),
        ("MustUnderstand", 400, "SOAP-MUST-UNDERSTAND"),
    ),
    ("malformed xml", "application/soap+xml", b"<env:Envelope", ("Sender", 400, "XML-MALFORMED")),
    ("no boundary", "multipart/related", multipart(root()), ("Sender", 400, "MTOM-BOUNDARY")),
    (
        "boundary too long",
        f'multipart/related; boundary="{"B" * 257}"',
        multipart(root()),
        ("Sender", 400, "MTOM-BOUNDARY"),
    ),
    (
        "type is not xop",
        'multipart/related; boundary="B"; type="text/xml"',
        multipart(root()),
        ("Sender", 400, "MTOM-TYPE"),
    ),
    ("no closing delimiter", MTOM, multipart(root(), close=False), ("Sender", 400, "MTOM-MALFORMED")),
    ("garbage", MTOM, b"--B\r\nno header end", ("Sender", 400, "MTOM-MALFORMED")),
    ("no part at all", MTOM, b"--B--\r\n", ("Sender", 400, "MTOM-MALFORMED")),
    ("start names no part", MTOM.replace("<root>", "<other>"), multipart(root()), ("Sender", 400, "MTOM-START")),
    (
        "root is not xop",
        MTOM,
        multipart(("Content-Type: text/xml\r\nContent-ID: <root>\r\n", ENVELOPE.encode())),
        ("Sender", 400, "MTOM-ROOT-TYPE"),
    ),
    ("part without content-id", MTOM, multipart(root(), attachment(None)), ("Sender", 400, "MTOM-CONTENT-ID")),
    ("duplicate content-id", MTOM, multipart(root(), attachment(), attachment()), ("Sender", 400, "MTOM-CONTENT-ID")),
    ("bad base64", MTOM, multipart(root(), attachment(data=b"@@@", encoding="base64")), ("Sender", 400, "MTOM-BASE64")),
    (
        "unknown encoding",
        MTOM,
        multipart(root(), attachment(encoding="quoted-printable")),
        ("Sender", 400, "MTOM-ENCODING"),
    ),
]


@pytest.mark.parametrize(("content_type", "body", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_each_refusal_is_named(content_type: str, body: bytes, expected: tuple[str, int, str]) -> None:
    assert fault(content_type, body) == expected


def test_the_part_count_bound_is_exact() -> None:
    body = multipart(root(), attachment("a"), attachment("b"))
    assert len(parse_soap_request(MTOM, body, SoapLimits(max_parts=3)).attachments) == 2
    assert fault(MTOM, body, SoapLimits(max_parts=2)) == ("Sender", 400, "MTOM-TOO-MANY-PARTS")


def test_the_envelope_bound_is_exact() -> None:
    data = ENVELOPE.encode()
    assert parse_soap_request("application/soap+xml", data, SoapLimits(max_envelope_bytes=len(data))).body is not None
    limits = SoapLimits(max_envelope_bytes=len(data) - 1)
    assert fault("application/soap+xml", data, limits) == ("Sender", 400, "HTTP-TOO-LARGE")


async def _chunks(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _read(headers: dict[str, str], *chunks: bytes, limit: int = 10) -> bytes:
    return asyncio.run(read_body(headers, _chunks(*chunks), SoapLimits(max_request_bytes=limit)))


def test_the_request_bound_is_exact_declared_or_streamed() -> None:
    assert _read({"content-length": "10"}, b"12345", b"67890") == b"1234567890"
    assert _read({}, b"12345", b"67890") == b"1234567890"
    for headers, chunks in (({"content-length": "11"}, ()), ({}, (b"12345", b"678901"))):
        with pytest.raises(SoapFault) as caught:
            _read(headers, *chunks)
        assert (caught.value.code, caught.value.error_code) == ("Sender", "HTTP-TOO-LARGE")


@pytest.mark.parametrize("value", ["dix", "", "1e3"])
def test_an_unreadable_content_length_is_refused(value: str) -> None:
    with pytest.raises(SoapFault) as caught:
        content_length({"content-length": value})
    assert (caught.value.code, caught.value.http_status, caught.value.error_code) == (
        "Sender",
        400,
        "HTTP-CONTENT-LENGTH",
    )
    assert content_length({}) is None and content_length({"content-length": "12"}) == 12


def test_document_references() -> None:
    """xop:Include must say cid:; an unknown cid is the caller's KeyError (its own XDS code); inline text is base64."""
    xop = NS["xop"]
    include = etree.fromstring(f'<doc xmlns:xop="{xop}"><xop:Include href="http://x/doc1"/></doc>')
    with pytest.raises(SoapFault) as caught:
        resolve_xop(include, {"doc1": b"x"})
    assert (caught.value.code, caught.value.error_code) == ("Sender", "XOP-HREF")
    quoted = etree.fromstring(f'<doc xmlns:xop="{xop}"><xop:Include href="cid:%3Cdoc1%3E"/></doc>')
    assert resolve_xop(quoted, {"doc1": b"x"}) == b"x"
    with pytest.raises(KeyError):
        resolve_xop(quoted, {})
    inline = etree.fromstring(f"<doc>{base64.b64encode(b'%PDF').decode()}</doc>")
    assert resolve_xop(inline, {}) == b"%PDF"
    with pytest.raises(SoapFault) as caught:
        resolve_xop(etree.fromstring('<doc id="d1">pas du base64</doc>'), {})
    assert (caught.value.code, caught.value.error_code) == ("Sender", "XDS-BASE64")
