"""Tests for harness.fields.xmlsafe: the hardened parser refuses XXE, DTD fetches and entity bombs."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile import BILLION_LAUGHS
from lxml import etree

from harness.fields.xmlsafe import XMLSafetyError, parse_xml, text_of

CDA_NS = {"hl7": "urn:hl7-org:v3"}

NORMAL_DOC = b"""<?xml version="1.0" encoding="UTF-8"?>
<?xml-stylesheet type="text/xsl" href="cda.xsl"?>
<!-- document de test -->
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <recordTarget><patientRole>
    <id root="1.2.250.1.213.1.4.10" extension="297022A020778"/>
    <patient><name><given> H\xc3\xa9l\xc3\xa8ne </given><family>ZOE</family></name></patient>
  </patientRole></recordTarget>
</ClinicalDocument>
"""


QUADRATIC = b'<!DOCTYPE r [<!ENTITY a "' + b"x" * 50_000 + b'">]><r>' + b"&a;" * 50_000 + b"</r>"


def _xxe(target: str) -> bytes:
    return f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{target}">]><r>&x;</r>'.encode()


def test_normal_document_parses_with_pis_and_comments() -> None:
    root = parse_xml(NORMAL_DOC)
    assert root.tag == "{urn:hl7-org:v3}ClinicalDocument"
    assert text_of(root, ".//hl7:patient/hl7:name/hl7:given", CDA_NS) == "Hélène"
    assert text_of(root, ".//hl7:patientRole/hl7:id/@extension", CDA_NS) == "297022A020778"
    assert text_of(root, ".//hl7:nothing", CDA_NS) is None
    assert text_of(root, "string(.//hl7:family)", CDA_NS) == "ZOE"
    assert root.getprevious() is not None  # the comment and the stylesheet PI are kept


def test_utf8_bom_accepted() -> None:
    assert parse_xml(b"\xef\xbb\xbf<r>x</r>").text == "x"


def test_iso_8859_1_declared_encoding() -> None:
    data = '<?xml version="1.0" encoding="ISO-8859-1"?><r a="é">ça ô</r>'.encode("latin-1")
    root = parse_xml(data)
    assert root.text == "ça ô"
    assert root.get("a") == "é"


def test_bytes_only() -> None:
    with pytest.raises(TypeError):
        parse_xml("<r/>")  # type: ignore[arg-type]
    assert parse_xml(bytearray(b"<r/>")).tag == "r"


@pytest.mark.parametrize("target", ["file:///etc/passwd", "/etc/passwd"])
def test_xxe_refused_and_file_never_read(target: str) -> None:
    with pytest.raises(XMLSafetyError) as info:
        parse_xml(_xxe(target))
    assert info.value.code == "XML-DOCTYPE-FORBIDDEN"
    assert "root:" not in str(info.value)


def test_xxe_with_dtd_allowed_still_never_expands(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    for target in (secret.as_uri(), "file:///etc/passwd"):
        try:
            root = parse_xml(_xxe(target), forbid_dtd=False)
        except XMLSafetyError as exc:
            rendered = str(exc)
        else:
            rendered = etree.tostring(root, encoding="unicode") + "".join(root.itertext())
        assert "TOP-SECRET-MARKER" not in rendered
        assert "root:" not in rendered


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.hits.append(self.path)
        body = b'<!ENTITY leak "LEAKED">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str]]]:
    handler = type("Handler", (_CountingHandler,), {"hits": []})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("forbid_dtd", [True, False])
def test_external_dtd_and_entities_never_fetched(http_server: tuple[str, list[str]], forbid_dtd: bool) -> None:
    base, hits = http_server
    documents = [
        f'<!DOCTYPE r SYSTEM "{base}/x.dtd"><r>&leak;</r>'.encode(),
        f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{base}/p.dtd"> %p;]><r>&leak;</r>'.encode(),
        _xxe(f"{base}/e.txt"),
    ]
    for data in documents:
        try:
            root = parse_xml(data, forbid_dtd=forbid_dtd)
        except XMLSafetyError as exc:
            if forbid_dtd:
                assert exc.code == "XML-DOCTYPE-FORBIDDEN"
        else:
            assert not forbid_dtd
            assert "LEAKED" not in etree.tostring(root, encoding="unicode")
    assert hits == []


@pytest.mark.parametrize("forbid_dtd", [True, False])
def test_billion_laughs_refused_quickly(forbid_dtd: bool) -> None:
    start = time.perf_counter()
    with pytest.raises(XMLSafetyError) as info:
        parse_xml(BILLION_LAUGHS, forbid_dtd=forbid_dtd)
    assert time.perf_counter() - start < 1.0
    assert info.value.code == ("XML-DOCTYPE-FORBIDDEN" if forbid_dtd else "XML-ENTITY")


@pytest.mark.parametrize("forbid_dtd", [True, False])
def test_quadratic_blowup_refused(forbid_dtd: bool) -> None:
    start = time.perf_counter()
    with pytest.raises(XMLSafetyError) as info:
        parse_xml(QUADRATIC, forbid_dtd=forbid_dtd)
    assert time.perf_counter() - start < 1.0
    assert info.value.code == ("XML-DOCTYPE-FORBIDDEN" if forbid_dtd else "XML-ENTITY")


@pytest.mark.parametrize(
    "prolog",
    [
        b"",
        b'<?xml version="1.0"?>\n',
        b"\xef\xbb\xbf<!-- <r/> -->\n<?pi x?>\n",
    ],
)
def test_doctype_refused_after_comments_and_pis(prolog: bytes) -> None:
    with pytest.raises(XMLSafetyError) as info:
        parse_xml(prolog + b"<!DOCTYPE r><r/>")
    assert info.value.code == "XML-DOCTYPE-FORBIDDEN"


def test_doctype_refused_in_utf16() -> None:
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r><r>x</r>'.encode("utf-16")
    with pytest.raises(XMLSafetyError) as info:
        parse_xml(data)
    assert info.value.code == "XML-DOCTYPE-FORBIDDEN"
    assert parse_xml('<?xml version="1.0" encoding="UTF-16"?><r>x</r>'.encode("utf-16")).text == "x"


def test_doctype_text_in_cdata_is_not_a_doctype() -> None:
    root = parse_xml(b"<r><![CDATA[<!DOCTYPE html>]]></r>")
    assert root.text == "<!DOCTYPE html>"


def test_oversize_refused_before_parsing() -> None:
    with pytest.raises(XMLSafetyError) as info:
        parse_xml(b"<r>" + b"x" * 2000 + b"</r>", max_bytes=1000)
    assert info.value.code == "XML-TOO-LARGE"
    assert "octets" in str(info.value) and "bytes" in str(info.value)
    # Not even well-formed: the size check happens first.
    with pytest.raises(XMLSafetyError) as info:
        parse_xml(b"<" * 1001, max_bytes=1000)
    assert info.value.code == "XML-TOO-LARGE"


def test_excessive_depth_refused() -> None:
    with pytest.raises(XMLSafetyError) as info:
        parse_xml(b"<a>" * 300 + b"</a>" * 300)
    assert info.value.code == "XML-TOO-LARGE"


@pytest.mark.parametrize("data", [b"", b"<r>", b"<r></s>", b"not xml", b"<r a='1' a='2'/>", b"<r>AT&T</r>"])
def test_malformed(data: bytes) -> None:
    with pytest.raises(XMLSafetyError) as info:
        parse_xml(data)
    assert info.value.code == "XML-MALFORMED"
    assert isinstance(info.value, ValueError)


def test_undefined_entity() -> None:
    with pytest.raises(XMLSafetyError) as info:
        parse_xml(b"<r>&foo;</r>")
    assert info.value.code == "XML-ENTITY"
