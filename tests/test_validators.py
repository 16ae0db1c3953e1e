"""Tests for the validators as plain library code: bytes in, findings out (XDM, MSSanté message, CDA header).

Each corruption is applied alone to a conformant artefact built by :mod:`harness.sut.documents` and must give
its own finding code. The CDA header reader is also run on the ANS CI-SIS public examples (read from
``../shared/corpus/cisis-cda/examples``, never copied).
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hostile import corrupt_stream, zip_entries
from lxml import etree

from harness.core.config import package_root
from harness.fields.identity import INS_OIDS
from harness.fields.testdata import Establishment, Person, load_testdata
from harness.fields.testdata import (
    TestData as Fixtures,  # not named Test* so that pytest does not try to collect it
)
from harness.sut.documents import (
    BuildOptions,
    build_cda,
    build_message,
    build_metadata,
    build_xdm,
)
from harness.validators import Finding, Severity
from harness.validators import xdm as X
from harness.validators.cda import read_cda_header
from harness.validators.mssante_message import validate_message
from harness.validators.xdm import validate_xdm

DOCTOR = "jean.dupont@medecin.mssante.fr"
META = "IHE_XDM/SUBSET01/METADATA.XML"
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "cisis-cda" / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.xml")) if EXAMPLES_DIR.is_dir() else []


# --------------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def testdata() -> Fixtures:
    return load_testdata(package_root() / "fixtures")


@pytest.fixture(scope="module")
def p001(testdata: Fixtures) -> tuple[Person, Establishment]:
    person = testdata.person("P001")
    return person, testdata.establishment(person.essms)


def error_codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings if f.severity is Severity.ERROR]


def make_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(zipfile.ZipInfo(name), content)
    return buffer.getvalue()


def edit_metadata(metadata: bytes, edit: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(metadata)
    edit(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def slot_value(root: etree._Element, name: str) -> etree._Element:
    (value,) = root.xpath(f"//rim:ExtrinsicObject/rim:Slot[@name='{name}']/rim:ValueList/rim:Value", namespaces=X.NS)
    return value


def external_id(root: etree._Element, scheme: str) -> etree._Element:
    (element,) = root.xpath(f"//rim:ExternalIdentifier[@identificationScheme='{scheme}']", namespaces=X.NS)
    return element


def bad_key(ins_value: str) -> str:
    """The same matricule with a wrong (but well-formed) 2-digit key."""
    key = (int(ins_value[13:]) % 97) + 1
    return ins_value[:13] + f"{key:02d}"


def replace_xdm(msg: EmailMessage, archive: bytes) -> EmailMessage:
    for part in msg.iter_attachments():
        if (part.get_filename() or "").upper() == "IHE_XDM.ZIP":
            part.set_content(archive, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
            return msg
    raise AssertionError("no IHE_XDM.ZIP attachment in the built message")


# --------------------------------------------------------------------------------------------------------------
# IHE XDM archive


@pytest.fixture(scope="module")
def good_archive(p001: tuple[Person, Establishment]) -> bytes:
    person, establishment = p001
    return build_xdm(person, establishment, "DLU", build_cda(person, establishment, "DLU"))


def test_reference_archive_is_clean(good_archive: bytes, p001: tuple[Person, Establishment]) -> None:
    report = validate_xdm(good_archive)
    assert report.findings == []
    assert report.ok
    assert report.subsets == ["SUBSET01"]
    assert [d.path for d in report.documents] == ["IHE_XDM/SUBSET01/DOC0001.XML"]
    assert report.submission_patient is not None and report.submission_patient.value == p001[0].ins.value
    assert report.documents[0].patient == p001[0].ins


def _without(name: str) -> Callable[[dict[str, bytes]], None]:
    return lambda entries: entries.pop(name)


def _meta(edit: Callable[[etree._Element], None]) -> Callable[[dict[str, bytes]], None]:
    def apply(entries: dict[str, bytes]) -> None:
        entries[META] = edit_metadata(entries[META], edit)

    return apply


def _wrong_hash(root: etree._Element) -> None:
    value = slot_value(root, "hash")
    value.text = ("0" if value.text[0] != "0" else "1") + value.text[1:]


def _wrong_size(root: etree._Element) -> None:
    value = slot_value(root, "size")
    value.text = str(int(value.text) + 1)


def _missing_uri(root: etree._Element) -> None:
    slot_value(root, "URI").text = "DOC9999.XML"


def _bad_key_in(scheme: str) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        element = external_id(root, scheme)
        value, sep, rest = element.get("value").partition("^")
        element.set("value", bad_key(value) + sep + rest)

    return edit


@pytest.mark.parametrize(
    ("corrupt", "code"),
    [
        pytest.param(_without("README.TXT"), "XDM-LAYOUT", id="no-README.TXT"),
        pytest.param(_without("INDEX.HTM"), "XDM-LAYOUT", id="no-INDEX.HTM"),
        pytest.param(_without(META), "XDM-METADATA-MISSING", id="no-METADATA.XML"),
        pytest.param(_meta(_wrong_hash), "XDM-HASH", id="wrong-hash"),
        pytest.param(_meta(_wrong_size), "XDM-SIZE", id="wrong-size"),
        pytest.param(_meta(_missing_uri), "XDM-DOCUMENT-MISSING", id="uri-to-missing-file"),
        pytest.param(_without("IHE_XDM/SUBSET01/DOC0001.XML"), "XDM-DOCUMENT-MISSING", id="document-removed"),
        pytest.param(_meta(_bad_key_in(X.DOC_PATIENT_ID)), "XDM-INS-KEY", id="entry-patientId-bad-key"),
        pytest.param(_meta(_bad_key_in(X.SS_PATIENT_ID)), "XDM-INS-KEY", id="submission-patientId-bad-key"),
    ],
)
def test_single_archive_corruption_gives_its_code(
    good_archive: bytes, corrupt: Callable[[dict[str, bytes]], None], code: str
) -> None:
    entries = zip_entries(good_archive)
    corrupt(entries)
    report = validate_xdm(make_zip(entries))
    assert error_codes(report.findings) == [code], [str(f) for f in report.findings]
    assert not report.ok


def test_builder_defect_switches_give_their_codes(p001: tuple[Person, Establishment]) -> None:
    person, establishment = p001
    cda = build_cda(person, establishment, "DLU")
    no_meta = validate_xdm(build_xdm(person, establishment, "DLU", cda, options=BuildOptions(xdm_metadata=False)))
    assert error_codes(no_meta.findings) == ["XDM-METADATA-MISSING"]
    wrong_hash = validate_xdm(build_xdm(person, establishment, "DLU", cda, options=BuildOptions(xdm_wrong_hash=True)))
    assert error_codes(wrong_hash.findings) == ["XDM-HASH"]


@pytest.mark.parametrize(
    "data",
    [b"", b"not a zip at all", b"PK\x03\x04" + b"\x00" * 40, b"%PDF-1.4\n%%EOF\n"],
    ids=["empty", "text", "truncated-local-header", "pdf"],
)
def test_not_a_zip(data: bytes) -> None:
    report = validate_xdm(data)
    assert error_codes(report.findings) == ["XDM-NOT-ZIP"]


@pytest.mark.parametrize(
    "method",
    [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA],
    ids=["deflate", "bzip2", "lzma"],
)
def test_corrupt_compressed_stream_is_a_finding(good_archive: bytes, method: int) -> None:
    """zlib.error / OSError (bz2) / LZMAError while inflating must become a finding, never escape."""
    report = validate_xdm(corrupt_stream(good_archive, "IHE_XDM/SUBSET01/DOC0001.XML", method))
    assert error_codes(report.findings) == ["XDM-ENTRY-UNREADABLE", "XDM-DOCUMENT-MISSING"]
    assert report.findings[0].location == "IHE_XDM/SUBSET01/DOC0001.XML"


def test_unsupported_zip_version_is_not_a_zip(good_archive: bytes) -> None:
    """A central directory asking for "version needed to extract" 24.5 (zipfile raises NotImplementedError)."""
    data = bytearray(good_archive)
    central = data.index(b"PK\x01\x02")
    data[central + 6 : central + 8] = struct.pack("<H", 245)
    assert error_codes(validate_xdm(bytes(data)).findings) == ["XDM-NOT-ZIP"]


def test_patient_id_with_foreign_oid_is_refused(good_archive: bytes) -> None:
    def local_oid(root: etree._Element) -> None:
        element = external_id(root, X.DOC_PATIENT_ID)
        element.set("value", element.get("value").replace("&1.2.250.1.213.1.4.10&", "&1.2.250.1.999.1.1&"))

    entries = zip_entries(good_archive)
    _meta(local_oid)(entries)
    report = validate_xdm(make_zip(entries))
    assert error_codes(report.findings) == ["XDM-INS-OID"]


# --------------------------------------------------------------------------------------------------------------
# MSSanté message


def _message(p001: tuple[Person, Establishment], recipients: list[str], **kwargs: object) -> EmailMessage:
    person, establishment = p001
    return build_message(person, establishment, establishment.dui_mailbox, recipients, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("to_patient", [False, True], ids=["to-doctor", "to-doctor-and-patient"])
def test_reference_message_has_no_error(p001: tuple[Person, Establishment], to_patient: bool) -> None:
    person, _ = p001
    recipients = [DOCTOR, person.mailbox] if to_patient else [DOCTOR]
    msg = _message(p001, recipients, end_of_exchange=to_patient)
    report = validate_message(msg.as_bytes(policy=policy.SMTP), recipients=recipients)
    assert error_codes(report.findings) == [], [str(f) for f in report.findings]
    assert report.person == person.ins
    assert [h.code for h in report.cda] == ["74207-2"]
    assert "IHE_XDM.ZIP" in report.attachments
    assert report.message_id == msg["Message-ID"]


def test_folded_headers_are_unfolded(p001: tuple[Person, Establishment]) -> None:
    """``Subject:`` / ``Message-ID:`` whose value starts on a continuation line (RFC 5322 §2.2.3 folding)."""
    msg = _message(p001, [DOCTOR])
    data = msg.as_bytes(policy=policy.SMTP)
    subject = str(msg["Subject"]).encode()
    data = data.replace(b"Subject: " + subject, b"Subject:\r\n " + subject)
    assert b"Subject:\r\n XDM/1.0/DDM+" in data
    report = validate_message(data, recipients=[DOCTOR])
    assert report.subject == str(msg["Subject"])
    assert report.message_id == str(msg["Message-ID"]).strip()
    assert "MSS-SUBJECT" not in [f.code for f in report.findings]


def test_codecda_mismatch(p001: tuple[Person, Establishment]) -> None:
    msg = _message(p001, [DOCTOR], options=BuildOptions(codecda_override="11502-2"))
    report = validate_message(msg.as_bytes(policy=policy.SMTP), recipients=[DOCTOR])
    assert error_codes(report.findings) == ["MSS-CODECDA-MISMATCH"]


def test_ins_flag_value(p001: tuple[Person, Establishment]) -> None:
    msg = _message(p001, [DOCTOR])
    msg.replace_header("X-MSS-INS", "Z")
    report = validate_message(msg.as_bytes(policy=policy.SMTP), recipients=[DOCTOR])
    assert error_codes(report.findings) == ["MSS-INS-VALUE"]


def test_two_persons_in_one_message(testdata: Fixtures, p001: tuple[Person, Establishment]) -> None:
    """Two submission sets, each consistent, for two different persons: one person per message is broken."""
    first, establishment = p001
    second = testdata.person("P002")
    entries = zip_entries(build_xdm(first, establishment, "DLU", build_cda(first, establishment, "DLU")))
    vsm = build_cda(second, establishment, "VSM")
    entries["IHE_XDM/SUBSET02/METADATA.XML"] = build_metadata(second, establishment, "VSM", vsm)
    entries["IHE_XDM/SUBSET02/DOC0001.XML"] = vsm
    msg = replace_xdm(_message(p001, [DOCTOR]), make_zip(entries))
    msg.replace_header("X-MSS-CODECDA", "74207-2,SYNTH")
    report = validate_message(msg.as_bytes(policy=policy.SMTP), recipients=[DOCTOR])
    assert error_codes(report.findings) == ["MSS-ONE-PERSON"], [str(f) for f in report.findings]
    assert report.person is None


def test_cda_and_metadata_of_different_persons(testdata: Fixtures, p001: tuple[Person, Establishment]) -> None:
    person, establishment = p001
    other = testdata.person("P002")
    archive = build_xdm(other, establishment, "DLU", build_cda(person, establishment, "DLU"))
    msg = replace_xdm(_message(p001, [DOCTOR]), archive)
    codes = error_codes(validate_message(msg.as_bytes(policy=policy.SMTP), recipients=[DOCTOR]).findings)
    assert sorted(codes) == ["MSS-INS-METADATA-CDA", "MSS-ONE-PERSON"]


def test_patient_mailbox_of_another_person(testdata: Fixtures, p001: tuple[Person, Establishment]) -> None:
    other = testdata.person("P002")
    recipients = [DOCTOR, other.mailbox]
    msg = _message(p001, recipients)
    report = validate_message(msg.as_bytes(policy=policy.SMTP), recipients=recipients)
    assert error_codes(report.findings) == ["MSS-PATIENT-MAILBOX"]
    assert other.mailbox in next(f.message for f in report.findings if f.code == "MSS-PATIENT-MAILBOX")


def test_patient_mailbox_without_key(p001: tuple[Person, Establishment]) -> None:
    """The faulty DUI's defect: the patient mailbox built from the 13-digit number, without the key."""
    person, _ = p001
    recipients = [f"{person.ins.number}@patient.mssante.fr"]
    msg = _message(p001, recipients)
    report = validate_message(msg.as_bytes(policy=policy.SMTP), recipients=recipients)
    assert error_codes(report.findings) == ["MSS-PATIENT-MAILBOX"]


# --------------------------------------------------------------------------------------------------------------
# CDA header on the ANS CI-SIS public examples


def test_corpus_examples_present() -> None:
    if not EXAMPLES_DIR.is_dir():
        pytest.skip(
            f"corpus folder absent: {EXAMPLES_DIR} (ANS CI-SIS CDA examples, ../shared/corpus/cisis-cda/examples)"
        )
    assert EXAMPLES, f"no *.xml in {EXAMPLES_DIR}"


@pytest.mark.parametrize("path", EXAMPLES or [None], ids=[p.name for p in EXAMPLES] or ["corpus-absent"])
def test_read_cda_header_on_corpus_example(path: Path | None) -> None:
    if path is None:
        pytest.skip(
            f"corpus folder absent: {EXAMPLES_DIR} (ANS CI-SIS CDA examples, ../shared/corpus/cisis-cda/examples)"
        )
    header = read_cda_header(path.read_bytes(), location=path.name)
    assert error_codes(header.findings) == [], [str(f) for f in header.findings]
    assert header.ok
    assert header.code and header.code_system
    assert header.ins is not None
    assert header.ins.oid in INS_OIDS
    assert len(header.ins.value) == 15


def test_read_cda_header_on_reference_cda(p001: tuple[Person, Establishment]) -> None:
    person, establishment = p001
    header = read_cda_header(build_cda(person, establishment, "DLU"))
    assert header.findings == []
    assert (header.code, header.ins) == ("74207-2", person.ins)
    assert "1.2.250.1.213.1.1.1.22" in header.template_ids


def test_read_cda_header_with_local_oid_only(p001: tuple[Person, Establishment]) -> None:
    person, establishment = p001
    header = read_cda_header(
        build_cda(person, establishment, "DLU", options=BuildOptions(patient_id_oid="1.2.250.1.999.1.1"))
    )
    assert error_codes(header.findings) == ["CDA-NO-INS"]
    assert header.ins is None


@pytest.mark.parametrize(
    "finding",
    [
        Finding("XDM-HASH", "empreinte différente", Severity.ERROR, "IHE_XDM/SUBSET01/DOC0001.XML"),
        Finding("MSS-PDF-MISSING", "pas de PDF", Severity.WARNING),
        Finding("INS-INFO", "note", Severity.INFO, "Bundle.entry[0]"),
    ],
)
def test_a_journaled_finding_reads_back_as_itself(finding: Finding) -> None:
    """The scenario steps read the findings a simulator recorded (``details["findings"]``) instead of judging the
    message again: the journaled form must give the same finding back."""
    assert Finding.from_dict(finding.to_dict()) == finding
