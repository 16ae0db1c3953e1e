"""Every finding of the IHE XDM validator (ITI TF-1 §16, ITI TF-2b §3.32, ebRIM metadata of ITI TF-3 §4), one row
per rejection path on a conformant archive built by :mod:`harness.sut.documents`, asserting the EXACT findings
(codes and severities, in order); plus the defensive ZIP reader's bounds at their exact limits.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable

import pytest
from hostile import zip_entries
from lxml import etree

from harness.core.config import package_root
from harness.fields.testdata import load_testdata
from harness.sut.documents import build_cda, build_xdm
from harness.validators import Finding, Severity
from harness.validators import xdm as X
from harness.validators.xdm import XdmLimits, read_zip, validate_xdm

E, W = Severity.ERROR, Severity.WARNING
META = "IHE_XDM/SUBSET01/METADATA.XML"
DOC = "IHE_XDM/SUBSET01/DOC0001.XML"
NS = X.NS
Entries = dict[str, bytes]


@pytest.fixture(scope="module")
def good() -> Entries:
    testdata = load_testdata(package_root() / "fixtures")
    person = testdata.person("P001")
    establishment = testdata.establishment(person.essms)
    return zip_entries(build_xdm(person, establishment, "DLU", build_cda(person, establishment, "DLU")))


def make_zip(entries: Entries, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, content in entries.items():
            archive.writestr(zipfile.ZipInfo(name), content, compress_type=method)
    return buffer.getvalue()


def findings(items: list[Finding]) -> list[tuple[str, Severity]]:
    return [(f.code, f.severity) for f in items]


# ---------------------------------------------------------------------------------------------------------------
# corruptions of one conformant archive


def meta(edit: Callable[[etree._Element], None]) -> Callable[[Entries], None]:
    def apply(entries: Entries) -> None:
        root = etree.fromstring(entries[META])
        edit(root)
        entries[META] = etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    return apply


def drop(xpath: str) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        found = root.xpath(xpath, namespaces=NS)
        assert found, xpath
        for element in found:
            element.getparent().remove(element)

    return edit


def set_attr(xpath: str, name: str, value: str) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        (element,) = root.xpath(xpath, namespaces=NS)
        element.set(name, value)

    return edit


def slot_text(name: str, value: str) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        (element,) = root.xpath(f"//rim:ExtrinsicObject/rim:Slot[@name='{name}']//rim:Value", namespaces=NS)
        element.text = value

    return edit


def add_uri_value(root: etree._Element) -> None:
    (values,) = root.xpath("//rim:ExtrinsicObject/rim:Slot[@name='URI']/rim:ValueList", namespaces=NS)
    etree.SubElement(values, f"{{{X.RIM}}}Value").text = "DOC0002.XML"


def second_package(root: etree._Element) -> None:
    (package,) = root.xpath("//rim:RegistryPackage", namespaces=NS)
    twin = etree.fromstring(etree.tostring(package))
    twin.set("id", "SubmissionSet02")
    package.addnext(twin)
    etree.SubElement(
        twin, f"{{{X.RIM}}}Classification", classifiedObject="SubmissionSet02", classificationNode=X.SUBMISSION_SET_NODE
    )


def inline_classification(root: etree._Element) -> None:
    """The SubmissionSet classified by a Classification inside the RegistryPackage (the other ebRIM form)."""
    (outer,) = root.xpath("rim:RegistryObjectList/rim:Classification", namespaces=NS)
    (package,) = root.xpath("//rim:RegistryPackage", namespaces=NS)
    outer.getparent().remove(outer)
    package.append(outer)


def upper_hash(root: etree._Element) -> None:
    (value,) = root.xpath("//rim:ExtrinsicObject/rim:Slot[@name='hash']//rim:Value", namespaces=NS)
    value.text = value.text.upper()


def padded_size(root: etree._Element) -> None:
    (value,) = root.xpath("//rim:ExtrinsicObject/rim:Slot[@name='size']//rim:Value", namespaces=NS)
    value.text = f"  {value.text} "


def wrong_size(root: etree._Element) -> None:
    (value,) = root.xpath("//rim:ExtrinsicObject/rim:Slot[@name='size']//rim:Value", namespaces=NS)
    value.text = str(int(value.text) - 1)


def wrong_hash(root: etree._Element) -> None:
    (value,) = root.xpath("//rim:ExtrinsicObject/rim:Slot[@name='hash']//rim:Value", namespaces=NS)
    value.text = ("1" if value.text[0] == "0" else "0") + value.text[1:]


def patient(scheme: str, value: str) -> Callable[[etree._Element], None]:
    return set_attr(f"//rim:ExternalIdentifier[@identificationScheme='{scheme}']", "value", value)


def without(*names: str) -> Callable[[Entries], None]:
    def apply(entries: Entries) -> None:
        for name in names:
            del entries[name]

    return apply


def adding(name: str, content: bytes = b"x") -> Callable[[Entries], None]:
    return lambda entries: entries.__setitem__(name, content)


def replacing_meta(content: bytes) -> Callable[[Entries], None]:
    return lambda entries: entries.__setitem__(META, content)


def eid(scheme: str) -> str:
    return f"//rim:ExternalIdentifier[@identificationScheme='{scheme}']"


P = "238047505612394"  # P001's INS (test OID)
BAD_KEY = P[:13] + "95"
EO = "//rim:ExtrinsicObject"


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        pytest.param(lambda e: None, [], id="clean"),
        pytest.param(meta(inline_classification), [], id="inline-submission-set-classification"),
        pytest.param(meta(upper_hash), [], id="hash-in-upper-case"),
        pytest.param(meta(padded_size), [], id="size-with-blanks"),
        pytest.param(meta(slot_text("URI", "SUBSET01/DOC0001.XML")), [], id="uri-relative-to-IHE_XDM"),
        pytest.param(meta(slot_text("URI", "doc0001.xml")), [], id="uri-lower-case"),
        pytest.param(adding("IHE_XDM/SUBSET01/"), [], id="directory-entry"),
        pytest.param(without("README.TXT"), [("XDM-LAYOUT", E)], id="no-readme"),
        pytest.param(without("INDEX.HTM"), [("XDM-LAYOUT", E)], id="no-index"),
        pytest.param(without("README.TXT", "INDEX.HTM"), [("XDM-LAYOUT", E), ("XDM-LAYOUT", E)], id="no-readme-index"),
        pytest.param(without(META, DOC), [("XDM-LAYOUT", E)], id="no-subset-folder"),
        pytest.param(without(META), [("XDM-METADATA-MISSING", E)], id="no-metadata"),
        pytest.param(replacing_meta(b"<oops"), [("XML-MALFORMED", E)], id="metadata-not-xml"),
        pytest.param(
            replacing_meta(b'<rim:RegistryObjectList xmlns:rim="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"/>'),
            [("XDM-METADATA-ROOT", E)],
            id="metadata-root",
        ),
        pytest.param(
            meta(drop("rim:RegistryObjectList/rim:Classification")), [("XDM-SUBMISSION-SET", E)], id="no-package"
        ),
        pytest.param(meta(second_package), [("XDM-SUBMISSION-SET", E)], id="two-packages"),
        pytest.param(
            meta(drop(f"//rim:RegistryPackage{eid(X.SS_UNIQUE_ID)[1:]}")), [("XDM-SUBMISSION-SET", E)], id="ss-uid"
        ),
        pytest.param(
            meta(drop(f"//rim:RegistryPackage{eid(X.SS_SOURCE_ID)[1:]}")), [("XDM-SUBMISSION-SET", E)], id="ss-source"
        ),
        pytest.param(meta(drop(eid(X.SS_PATIENT_ID))), [("XDM-NO-PATIENT-ID", E)], id="ss-patient-absent"),
        pytest.param(
            meta(patient(X.SS_PATIENT_ID, f"{P}^^^&1.2.250.1.213.1.4.10&ISO")), [("XDM-INS-FORMAT", E)], id="ss-cx"
        ),
        pytest.param(
            meta(patient(X.SS_PATIENT_ID, f"{BAD_KEY}^^^&1.2.250.1.213.1.4.10&ISO^NH")),
            [("XDM-INS-KEY", E)],
            id="ss-key",
        ),
        pytest.param(meta(patient(X.SS_PATIENT_ID, f"{P}^^^&1.2.250.1.999&ISO^NH")), [("XDM-INS-OID", E)], id="ss-oid"),
        pytest.param(meta(drop(EO)), [("XDM-NO-DOCUMENT", E)], id="no-document-entry"),
        pytest.param(
            meta(set_attr(EO, "objectType", "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248")),
            [("XDM-NO-DOCUMENT", E)],
            id="on-demand-entry",
        ),
        pytest.param(meta(drop("//rim:Association")), [("XDM-ASSOCIATION", E)], id="no-association"),
        pytest.param(
            meta(set_attr("//rim:Association", "associationType", "urn:ihe:iti:2007:AssociationType:RPLC")),
            [("XDM-ASSOCIATION", E)],
            id="association-not-hasmember",
        ),
        pytest.param(
            meta(set_attr("//rim:Association", "targetObject", "Document99")),
            [("XDM-ASSOCIATION", E)],
            id="association-elsewhere",
        ),
        pytest.param(meta(drop(f"{EO}/rim:Slot[@name='URI']")), [("XDM-URI", E)], id="uri-absent"),
        pytest.param(meta(add_uri_value), [("XDM-URI", E)], id="uri-twice"),
        pytest.param(meta(slot_text("URI", "")), [("XDM-URI", E)], id="uri-empty"),
        pytest.param(meta(slot_text("URI", "DOC9999.XML")), [("XDM-DOCUMENT-MISSING", E)], id="uri-to-nothing"),
        pytest.param(without(DOC), [("XDM-DOCUMENT-MISSING", E)], id="document-removed"),
        pytest.param(meta(wrong_size), [("XDM-SIZE", E)], id="size"),
        pytest.param(meta(wrong_hash), [("XDM-HASH", E)], id="hash"),
        pytest.param(meta(drop(f"{EO}/rim:Slot[@name='size']")), [("XDM-SIZE-HASH-MISSING", W)], id="size-absent"),
        pytest.param(meta(drop(f"{EO}/rim:Slot[@name='hash']")), [("XDM-SIZE-HASH-MISSING", W)], id="hash-absent"),
        pytest.param(
            meta(drop(f"{EO}/rim:Slot[@name='hash' or @name='size']")), [("XDM-SIZE-HASH-MISSING", W)], id="both-absent"
        ),
        pytest.param(meta(drop(f"{EO}{eid(X.DOC_UNIQUE_ID)[1:]}")), [("XDM-UNIQUE-ID", E)], id="entry-unique-id"),
        pytest.param(meta(drop(f"{EO}{eid(X.DOC_PATIENT_ID)[1:]}")), [("XDM-NO-PATIENT-ID", E)], id="entry-patient"),
        pytest.param(
            meta(patient(X.DOC_PATIENT_ID, f"{BAD_KEY}^^^&1.2.250.1.213.1.4.10&ISO^NH")),
            [("XDM-INS-KEY", E)],
            id="entry-key",
        ),
        pytest.param(adding("../EVIL.TXT"), [("XDM-UNSAFE-PATH", E)], id="dot-dot"),
        pytest.param(adding("/etc/passwd"), [("XDM-UNSAFE-PATH", E)], id="absolute"),
        pytest.param(adding("IHE_XDM\\SUBSET01\\DOC.XML"), [("XDM-UNSAFE-PATH", E)], id="backslash"),
        pytest.param(adding("C:/A.XML"), [("XDM-UNSAFE-PATH", E)], id="drive-letter"),
        pytest.param(adding("IHE_XDM/A:B.TXT"), [], id="colon-after-the-first-component"),
        pytest.param(adding("IHE_XDM/SUBSET01/../../X.XML"), [("XDM-UNSAFE-PATH", E)], id="dot-dot-inside"),
        pytest.param(adding(""), [("XDM-UNSAFE-PATH", E)], id="empty-name"),
    ],
)
def test_each_corruption_gives_exactly_its_findings(
    good: Entries, corrupt: Callable[[Entries], None], expected: list[tuple[str, Severity]]
) -> None:
    entries = dict(good)
    corrupt(entries)
    report = validate_xdm(make_zip(entries))
    assert findings(report.findings) == expected, [str(f) for f in report.findings]
    assert report.ok is (not any(s is E for _, s in expected))


def test_the_clean_archive_is_read_completely(good: Entries) -> None:
    report = validate_xdm(make_zip(good))
    assert report.subsets == ["SUBSET01"] and report.ok
    [doc] = report.documents
    assert (doc.entry_id, doc.path, doc.mime_type) == ("Document01", DOC, "text/xml")
    assert doc.data == good[DOC] and doc.unique_id and doc.unique_id.startswith("2.25.")
    assert doc.patient is not None and doc.patient.value == P and doc.type_code == "74207-2"
    assert report.submission_patient == doc.patient


def test_a_submission_set_id_is_matched_as_a_value_not_as_xpath(good: Entries) -> None:
    """The SubmissionSet classified beside it (``classifiedObject``) is found whatever its id holds: an id with an
    apostrophe once broke the XPath built around it (an internal error instead of a verdict)."""

    def rename(root: etree._Element) -> None:
        (package,) = root.xpath("//rim:RegistryPackage", namespaces=NS)
        old, new = package.get("id"), "Lot d'O'Brien"
        package.set("id", new)
        for attribute in ("classifiedObject", "sourceObject"):
            for element in root.xpath(f"//*[@{attribute}=$old]", namespaces=NS, old=old):
                element.set(attribute, new)

    entries = dict(good)
    meta(rename)(entries)
    report = validate_xdm(make_zip(entries))
    assert findings(report.findings) == [] and report.submission_patient is not None


def test_files_outside_a_submission_set_folder_are_no_submission_set(good: Entries) -> None:
    """Only ``IHE_XDM/<lot>/...`` makes a submission set: neither a file directly in IHE_XDM/ nor another tree."""
    entries = dict(good) | {"IHE_XDM/NOTES.TXT": b"x", "DOCS/SUBSET02/METADATA.XML": b"<x/>", "SUBSET03/A.XML": b"y"}
    report = validate_xdm(make_zip(entries))
    assert report.subsets == ["SUBSET01"] and findings(report.findings) == []
    only_stray = validate_xdm(make_zip({"README.TXT": b"r", "INDEX.HTM": b"i", "IHE_XDM/NOTES.TXT": b"x"}))
    assert only_stray.subsets == [] and findings(only_stray.findings) == [("XDM-LAYOUT", E)]


def test_two_submission_sets_are_each_checked(good: Entries) -> None:
    entries = dict(good)
    entries["IHE_XDM/SUBSET02/METADATA.XML"] = entries[META]
    entries["IHE_XDM/SUBSET02/DOC0001.XML"] = entries[DOC]
    entries["IHE_XDM/SUBSET03/DOC0001.XML"] = entries[DOC]
    report = validate_xdm(make_zip(entries))
    assert report.subsets == ["SUBSET01", "SUBSET02", "SUBSET03"]
    assert findings(report.findings) == [("XDM-METADATA-MISSING", E)]
    assert report.findings[0].location == "IHE_XDM/SUBSET03/"
    assert [d.path for d in report.documents] == [DOC, "IHE_XDM/SUBSET02/DOC0001.XML"]


# ---------------------------------------------------------------------------------------------------------------
# the ZIP reader's bounds


def test_not_a_zip_and_an_empty_zip() -> None:
    assert findings(validate_xdm(b"PK\x05\x06" + b"\x00" * 10).findings) == [("XDM-NOT-ZIP", E)]
    assert findings(validate_xdm(make_zip({})).findings) == [("XDM-EMPTY", E)]
    assert findings(validate_xdm(make_zip({"IHE_XDM/": b""})).findings) == [("XDM-EMPTY", E)]
    only_unsafe = validate_xdm(make_zip({"../x": b"x"}))
    assert findings(only_unsafe.findings) == [("XDM-UNSAFE-PATH", E)]  # no XDM-EMPTY on top


def test_entry_count_bound_is_inclusive(good: Entries) -> None:
    data = make_zip(good)  # 4 entries
    assert findings(validate_xdm(data, XdmLimits(max_entries=4)).findings) == []
    assert findings(validate_xdm(data, XdmLimits(max_entries=3)).findings) == [("XDM-TOO-MANY-ENTRIES", E)]
    files, found = read_zip(data, XdmLimits(max_entries=3))
    assert files == {} and "4 entrées (maximum 3)" in found[0].message


def test_total_size_bound_is_inclusive(good: Entries) -> None:
    total = sum(len(v) for v in good.values())
    data = make_zip(good)
    assert findings(validate_xdm(data, XdmLimits(max_total_bytes=total)).findings) == []
    assert findings(validate_xdm(data, XdmLimits(max_total_bytes=total - 1)).findings) == [("XDM-TOO-LARGE", E)]


CONTENT = bytes(range(256)) * 4  # 1024 bytes, hardly compressible


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_entry_of_exactly_the_maximum_size_is_read_whole(method: int) -> None:
    data = make_zip({"A.BIN": CONTENT}, method)
    files, found = read_zip(data, XdmLimits(max_entry_bytes=len(CONTENT)))
    assert found == [] and files == {"A.BIN": CONTENT}
    files, found = read_zip(data, XdmLimits(max_entry_bytes=len(CONTENT) - 1))
    assert files == {} and findings(found) == [("XDM-ZIP-BOMB", E)]


def test_compression_ratio_bound_is_inclusive() -> None:
    data = make_zip({"Z.BIN": b"\x00" * 100_000})
    info = zipfile.ZipFile(io.BytesIO(data)).infolist()[0]
    ratio = info.file_size / info.compress_size
    assert findings(read_zip(data, XdmLimits(max_ratio=int(ratio)))[1]) == [("XDM-ZIP-BOMB", E)]
    files, found = read_zip(data, XdmLimits(max_ratio=int(ratio) + 1))
    assert found == [] and files == {"Z.BIN": b"\x00" * 100_000}


def lying_size(method: int, declared: int, crc_of: bytes) -> bytes:
    """A one-entry ZIP whose local and central headers declare ``declared`` bytes and the CRC of ``crc_of``."""
    data = bytearray(make_zip({"A.BIN": CONTENT}, method))
    central, local = data.index(b"PK\x01\x02"), data.index(b"PK\x03\x04")
    crc = zlib.crc32(crc_of)
    struct.pack_into("<I", data, central + 16, crc)
    struct.pack_into("<I", data, central + 24, declared)
    struct.pack_into("<I", data, local + 14, crc)
    struct.pack_into("<I", data, local + 22, declared)
    return bytes(data)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_an_entry_larger_than_declared_is_never_cut_short(method: int) -> None:
    """zipfile stops at the declared size: with the CRC of the declared prefix the entry was accepted, truncated."""
    limits = XdmLimits(max_entry_bytes=4096)
    prefix = lying_size(method, 100, CONTENT[:100])
    files, found = read_zip(prefix, limits)
    assert files == {} and findings(found) == [("XDM-ENTRY-UNREADABLE", E)]  # the stream's CRC is not the prefix's
    whole = lying_size(method, 100, CONTENT)
    files, found = read_zip(whole, limits)
    assert files == {} and findings(found) == [("XDM-ZIP-BOMB", E)]
    assert found[0].message == "entrée plus grande que déclarée" and found[0].location == "A.BIN"


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_an_entry_shorter_than_declared_is_unreadable(method: int) -> None:
    files, found = read_zip(lying_size(method, 2000, CONTENT), XdmLimits(max_entry_bytes=4096))
    assert files == {} and findings(found) == [("XDM-ENTRY-UNREADABLE", E)]
    assert "plus courte que déclarée (1024 octets sur 2000)" in found[0].message


def test_default_limits() -> None:
    assert XdmLimits() == XdmLimits(
        max_entries=200, max_total_bytes=50 * 1024 * 1024, max_entry_bytes=25 * 1024 * 1024, max_ratio=200
    )


def test_ratio_bound_is_inclusive_at_an_exact_ratio() -> None:
    stored = make_zip({"A.BIN": CONTENT}, zipfile.ZIP_STORED)  # ratio exactly 1
    assert read_zip(stored, XdmLimits(max_ratio=1)) == ({"A.BIN": CONTENT}, [])
    assert findings(read_zip(stored, XdmLimits(max_ratio=0))[1]) == [("XDM-ZIP-BOMB", E)]


def test_metadata_size_bound(good: Entries) -> None:
    """METADATA.XML is parsed with a 5 MiB bound (hardened parser): exactly 5 MiB is read, one byte more is not."""
    bound = 5 * 1024 * 1024
    for size, expected in ((bound, []), (bound + 1, [("XML-TOO-LARGE", E)])):
        entries = dict(good)
        padding = size - len(good[META]) - len(b"<!---->")
        entries[META] = good[META] + b"<!--" + b" " * padding + b"-->"
        assert len(entries[META]) == size
        limits = XdmLimits(max_ratio=100_000)
        assert findings(validate_xdm(make_zip(entries), limits).findings) == expected


def test_submission_set_messages(good: Entries) -> None:
    for scheme, message in (
        (X.SS_UNIQUE_ID, "SubmissionSet sans uniqueId"),
        (X.SS_SOURCE_ID, "SubmissionSet sans sourceId"),
    ):
        entries = dict(good)
        meta(drop(f"//rim:RegistryPackage{eid(scheme)[1:]}"))(entries)
        [finding] = validate_xdm(make_zip(entries)).findings
        assert (finding.message, finding.location) == (message, META)
    entries = dict(good)
    meta(drop(eid(X.SS_PATIENT_ID)))(entries)
    [finding] = validate_xdm(make_zip(entries)).findings
    assert finding.message == "SubmissionSet: patientId absent"
    entries = dict(good)
    meta(drop(f"{EO}{eid(X.DOC_PATIENT_ID)[1:]}"))(entries)
    [finding] = validate_xdm(make_zip(entries)).findings
    assert (finding.message, finding.location) == ("DocumentEntry: patientId absent", f"{META}#Document01")


def test_entry_without_id_nor_mime_type(good: Entries) -> None:
    entries = dict(good)
    meta(both_edits(set_attr(EO, "id", "x"), drop_attr(EO, "id"), drop_attr(EO, "mimeType")))(entries)
    report = validate_xdm(make_zip(entries))
    assert findings(report.findings) == [("XDM-ASSOCIATION", E)] and report.findings[0].location == f"{META}#?"
    [doc] = report.documents
    assert (doc.entry_id, doc.mime_type) == ("?", "")


def drop_attr(xpath: str, name: str) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        (element,) = root.xpath(xpath, namespaces=NS)
        del element.attrib[name]

    return edit


def both_edits(*edits: Callable[[etree._Element], None]) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        for one in edits:
            one(root)

    return edit
