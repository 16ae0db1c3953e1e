"""``socle-harness validate`` on ITI-41 requests (harness/validators/iti41.py): detection of the saved forms, every
rejection path, and the proof that the DMP simulator and ``validate`` give the same findings — for each corpus
CDA carried in an ITI-41 request, and for the CDA alone."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree
from typer.testing import CliRunner

from harness.core.journal import JournalFilter
from harness.fhir.access import ensure_establishment_certificates
from harness.fields.pki import TestPKI
from harness.fields.testdata import Establishment
from harness.front.cli import app
from harness.front.cli_validate import validate_file
from harness.sut import dmp_messages as M
from harness.sut.documents import build_cda
from harness.validators import Finding
from harness.validators.artefacts import ArtefactKind, ValidationSettings, detect, validate_artefact
from harness.validators.xds_metadata import ValueSets
from tests.hostile import BILLION_LAUGHS
from tests.test_dmp import TESTDATA, Dmp

ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
PERSON = TESTDATA.persons[0]
ESTABLISHMENT = TESTDATA.establishment(PERSON.essms)
OTHER = TESTDATA.persons[1]
NOT_CONFIGURED = [("CDA-XSD-NOT-CONFIGURED", "warning"), ("SCH-NON-VERIFIE", "warning")]
#: the checks of one DocumentEntry against its document (harness.validators.iti41.check_document)
METADATA_VS_CDA = {"XDSPatientIdDoesNotMatch", "XDSRegistryMetadataError", "XDSRepositoryMetadataError"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    pki = TestPKI.ensure(tmp_path_factory.mktemp("iti41") / "pki")
    ensure_establishment_certificates(pki, [ESTABLISHMENT.finess])
    return pki


def _credentials(pki: TestPKI) -> M.OrgCredentials:
    issued = pki.client(f"ESSMS-{ESTABLISHMENT.finess}")
    return M.OrgCredentials(str(issued.cert_path), str(issued.key_path))


def _request(
    pki: TestPKI,
    *,
    cda: bytes | None = None,
    vihf: bool = True,
    action: str = ITI41,
    vihf_structure: Establishment = ESTABLISHMENT,
    **options: object,
) -> tuple[etree._Element, dict[str, bytes]]:
    credentials = _credentials(pki)
    cda = cda or build_cda(PERSON, ESTABLISHMENT, "DLU")
    body, attachments, _, _ = M.build_iti41(
        PERSON, ESTABLISHMENT, "DLU", cda, credentials, options=M.FeedOptions(**options)
    )
    security = M.build_vihf(PERSON, vihf_structure, credentials) if vihf else None
    return M.envelope(action, "https://dmp.test/repository", body, security), attachments


def _mtom(envelope: etree._Element, attachments: dict[str, bytes]) -> tuple[bytes, str]:
    return M.mtom(copy.deepcopy(envelope), attachments, ITI41)


def _trusted(pki: TestPKI, *, strict: bool = True) -> ValidationSettings:
    return ValidationSettings(trust_anchors=(pki.intermediate.cert, pki.root.cert), strict=strict)


def codes(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.code, f.severity.value) for f in findings]


# ------------------------------------------------------------------------------------------------ forms
def test_the_saved_forms_of_a_request_are_detected_and_judged_alike(pki: TestPKI) -> None:
    envelope, attachments = _request(pki)
    body, content_type = _mtom(envelope, attachments)
    inline, _ = M.inline(copy.deepcopy(envelope), attachments, ITI41)
    mime_entity = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body
    for data in (body, mime_entity, b"\xef\xbb\xbf" + body, inline):
        assert detect(data) is ArtefactKind.ITI41
    for data in (body, mime_entity):
        report = validate_artefact(data, settings=_trusted(pki))
        assert report.kind is ArtefactKind.ITI41
        assert codes(report.findings) == NOT_CONFIGURED
        assert report.detail["mtom"] is True
        assert [v["kind"] for v in report.detail["validation"]] == ["cda", "signature"]
    # the envelope alone (base64 documents): IHE ITI TF-2b §3.41 asks for MTOM — refused strict, warned lenient
    assert codes(validate_artefact(inline, settings=_trusted(pki)).findings) == [
        ("MTOM-REQUIRED", "error"),
        *NOT_CONFIGURED,
    ]
    assert codes(validate_artefact(inline, settings=_trusted(pki, strict=False)).findings) == [
        ("MTOM-REQUIRED", "warning"),
        *NOT_CONFIGURED,
    ]


def test_without_trust_anchors_the_signatures_are_not_verified_and_it_says_so(pki: TestPKI) -> None:
    body, _ = _mtom(*_request(pki))
    assert codes(validate_artefact(body).findings) == [
        ("VIHF-CERTIFICAT-NON-RECONNU", "error"),
        *NOT_CONFIGURED,
        ("DSG-CERTIFICAT", "error"),
        ("VIHF-ANCRES-ABSENTES", "warning"),
    ]


# ------------------------------------------------------------------------------------------------ rejections
def test_metadata_that_disagree_with_the_document_are_findings(pki: TestPKI) -> None:
    other_cda = build_cda(OTHER, TESTDATA.establishment(OTHER.essms), "DLU")
    body, _ = _mtom(*_request(pki, cda=other_cda))
    report = validate_artefact(body, settings=_trusted(pki))
    entry = report.detail["documents"][0]["id"]
    assert [(f.code, f.location) for f in report.errors] == [("XDSPatientIdDoesNotMatch", f"DocumentEntry {entry}")]
    body, _ = _mtom(*_request(pki, type_code_override="11488-4"))
    report = validate_artefact(body, settings=_trusted(pki))
    assert [f.code for f in report.errors] == ["XDSRegistryMetadataError"]
    assert "typeCode '11488-4' incohérent" in report.errors[0].message
    body, _ = _mtom(*_request(pki, forged_signature=True))
    assert [f.code for f in validate_artefact(body, settings=_trusted(pki)).errors] == ["DSG-EMPREINTE"]


def test_size_hash_and_missing_parts_are_findings(pki: TestPKI) -> None:
    envelope, attachments = _request(pki)
    cid, cda = next(iter(attachments.items()))
    body, _ = _mtom(envelope, {**attachments, cid: cda + b"\n"})
    report = validate_artefact(body, settings=_trusted(pki))
    assert [(f.code, f.message) for f in report.errors][:2] == [
        ("XDSRepositoryMetadataError", f"size={len(cda)} mais le document fait {len(cda) + 1} octets"),
        ("XDSRepositoryMetadataError", "hash SHA-1 déclaré différent de celui du document"),
    ]
    body, _ = _mtom(envelope, {k: v for k, v in attachments.items() if k != cid})
    assert [f.code for f in validate_artefact(body, settings=_trusted(pki)).errors] == ["XDSMissingDocument"]


def test_envelope_addressing_and_vihf_problems_are_findings(pki: TestPKI) -> None:
    body, _ = _mtom(*_request(pki, vihf=False))
    assert [f.code for f in validate_artefact(body, settings=_trusted(pki)).errors] == ["VIHF-ABSENT"]
    other = next(e for e in TESTDATA.establishments if e.finess != ESTABLISHMENT.finess)
    body, _ = _mtom(*_request(pki, vihf_structure=other))
    # the VIHF names another structure than its signer: refused; the signature document, signed by the
    # certificate's structure, is not the one Identifiant_Structure authenticates either
    chain, signature = validate_artefact(body, settings=_trusted(pki)).errors
    assert (chain.code, chain.message) == (
        "VIHF-STRUCTURE",
        f"structures différentes : signataire du VIHF 1{ESTABLISHMENT.finess}, Identifiant_Structure 1{other.finess}",
    )
    assert signature.code == "DSG-SIGNATAIRE"
    body, _ = _mtom(*_request(pki, action="urn:ihe:iti:2007:RegistryStoredQuery"))
    assert [f.code for f in validate_artefact(body, settings=_trusted(pki)).errors] == ["ActionNotSupported"]
    not_iti41 = M.envelope(ITI41, "https://dmp.test", M.build_find_documents(PERSON), None)
    data = etree.tostring(not_iti41)
    assert detect(data) is None
    assert codes(validate_artefact(data, kind=ArtefactKind.ITI41).findings) == [("XDS-BODY", "error")]
    assert codes(validate_artefact(b"ni xml ni mime", kind=ArtefactKind.ITI41).findings) == [
        ("ITI41-ILLISIBLE", "error")
    ]
    assert codes(validate_artefact(b"Subject: x\r\n\r\nbody", kind=ArtefactKind.ITI41).findings) == [
        ("ITI41-ILLISIBLE", "error")
    ]
    soap11 = b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>'
    assert codes(validate_artefact(soap11, kind=ArtefactKind.ITI41).findings) == [("SOAP-VERSION", "error")]
    body, content_type = _mtom(*_request(pki))
    cut = body[: len(body) // 2]
    assert codes(validate_artefact(cut, kind=ArtefactKind.ITI41).findings) == [("MTOM-MALFORMED", "error")]


def test_the_command_line_judges_a_saved_request(pki: TestPKI, tmp_path: Path) -> None:
    body, _ = _mtom(*_request(pki))
    saved = tmp_path / "iti41.mtom"
    saved.write_bytes(body)
    ca = ["--ca", str(pki.ca_bundle_path)]
    result = CliRunner().invoke(app, ["validate", str(saved), "--format", "json", *ca])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.output)["files"]
    assert report["kind"] == "iti41"
    assert [f["code"] for f in report["findings"]] == ["CDA-XSD-NOT-CONFIGURED", "SCH-NON-VERIFIE"]
    inline, _ = M.inline(*_request(pki), ITI41)
    saved.write_bytes(inline)
    assert CliRunner().invoke(app, ["validate", str(saved), *ca]).exit_code == 1
    assert CliRunner().invoke(app, ["validate", str(saved), "--lenient", *ca]).exit_code == 0
    result = CliRunner().invoke(app, ["validate", str(saved), "--jdv-dir", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "dossier introuvable" in result.output


def test_hostile_requests_give_findings(pki: TestPKI) -> None:
    bomb = validate_artefact(BILLION_LAUGHS, kind=ArtefactKind.ITI41)
    assert [(f.code, f.location) for f in bomb.findings] == [("XML-DOCTYPE-FORBIDDEN", "env:Envelope")]
    parts = b"".join(b"--b\r\nContent-ID: <p%d>\r\n\r\nx\r\n" % i for i in range(100)) + b"--b--\r\n"
    assert codes(validate_artefact(parts, kind=ArtefactKind.ITI41).findings) == [("MTOM-TOO-MANY-PARTS", "error")]
    envelope, attachments = _request(pki)
    body, _ = _mtom(envelope, attachments)
    xxe = body.replace(
        b"<?xml version='1.0' encoding='UTF-8'?>", b'<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>', 1
    )
    assert xxe != body
    assert codes(validate_artefact(xxe, kind=ArtefactKind.ITI41).findings) == [("XML-DOCTYPE-FORBIDDEN", "error")]


# ------------------------------------------------------------------------------------------------ same code
@pytest.fixture(scope="module")
def dmp(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> Iterator[Dmp]:
    schematrons = corpus_dir / "cisis-cda" / "schematrons"
    running = Dmp(tmp_path_factory.mktemp("dmp-validate"), {"schematron_dir": str(schematrons)})
    yield running
    running.background.stop()
    running.journal.close()


def _submit(dmp: Dmp, data: bytes, content_type: str, saved: Path) -> list[dict[str, str]]:
    """Post a request to the DMP; its journaled findings. ``saved`` receives the request as the journal keeps it
    (the body, without the HTTP Content-Type)."""
    mark = dmp.journal.last_seq()
    dmp.post(data, content_type)
    (exchange,) = dmp.journal.query(JournalFilter(since_seq=mark, operation="iti41.provide_and_register"))
    assert exchange.digest is not None
    payload = dmp.journal.payload(exchange.digest)
    assert payload == data
    saved.write_bytes(payload)
    return exchange.details["findings"]


def _settings(dmp: Dmp) -> ValidationSettings:
    """The simulator's own XSD, schematron engine (compiled once for both) and value sets."""
    assert isinstance(dmp.sim.value_sets, ValueSets)  # jeuxDeValeurs beside the schematrons
    return ValidationSettings(
        cda_schema=dmp.sim.cda_schema,
        schematron=dmp.sim.schematron,
        value_sets=dmp.sim.value_sets,
        trust_anchors=tuple(dmp.sim.anchors),
    )


def _full(findings: list[dict[str, str]]) -> list[tuple[str, str, str, str]]:
    return [(f["code"], f["severity"], f["location"], f["message"]) for f in findings]


def test_every_corpus_document_gets_the_dmp_simulator_findings(dmp: Dmp, corpus_dir: Path, tmp_path: Path) -> None:
    """Each official CDA example in an ITI-41 request posted to the DMP simulator: ``validate`` on the request
    file (the journal's copy of the body) gives exactly the findings the simulator journals, and ``validate`` on the CDA alone
    gives exactly the findings the simulator reports on that document, the metadata-against-CDA ones aside."""
    settings = _settings(dmp)
    examples = sorted((corpus_dir / "cisis-cda" / "examples").glob("*.xml"))
    assert len(examples) == 13
    # and the CDA documents of the HL7 v2 examples, some known bad (tests/test_validate.py KNOWN_BAD)
    relayed = sorted(p for p in (corpus_dir / "hl7v2").rglob("*") if p.suffix.lower() == ".xml")
    assert len(relayed) >= 8
    seen_errors = set()
    for example in examples + relayed:
        cda = example.read_bytes()
        body, attachments = dmp.iti41(cda=cda)
        data, content_type = M.mtom(dmp.envelope(body), attachments, ITI41)
        saved = tmp_path / f"{example.stem}.iti41"
        journaled = _submit(dmp, data, content_type, saved)
        ours = validate_file(saved, None, settings)
        assert ours.kind is ArtefactKind.ITI41
        assert _full([f.to_dict() for f in ours.findings]) == _full(journaled), example.name
        entry = ours.detail["documents"][0]["id"]
        on_document = [f for f in journaled if f["location"] == f"DocumentEntry {entry}"]
        alone = validate_artefact(cda, settings=settings)
        assert alone.kind is ArtefactKind.CDA
        assert [(f.code, f.severity.value, f.message) for f in alone.findings] == [
            (f["code"], f["severity"], f["message"]) for f in on_document if f["code"] not in METADATA_VS_CDA
        ], example.name
        # the corpus documents are about other patients than the request's: the metadata check says so
        assert "XDSPatientIdDoesNotMatch" in {f["code"] for f in on_document}, example.name
        seen_errors |= {f["code"] for f in journaled if f["severity"] == "error"}
    assert {"XDSPatientIdDoesNotMatch", "CDA-TEMPLATE-MISSING", "CDA-SETID"} <= seen_errors


def test_rejected_requests_get_the_dmp_simulator_findings(dmp: Dmp, tmp_path: Path) -> None:
    """Requests the DMP refuses for their metadata, their transport or their signature: same findings."""
    settings = _settings(dmp)
    other = build_cda(OTHER, TESTDATA.establishment(OTHER.essms), "DLU")
    variants: list[tuple[bytes, str]] = []
    for kwargs in ({"cda": other}, {"options": M.FeedOptions(type_code_override="11488-4")}):
        body, attachments = dmp.iti41(**kwargs)
        variants.append(M.mtom(dmp.envelope(body), attachments, ITI41))
    body, attachments = dmp.iti41(options=M.FeedOptions(forged_signature=True))
    variants.append(M.inline(dmp.envelope(body), attachments, ITI41))
    saved = tmp_path / "request"
    for data, content_type in variants:
        journaled = _submit(dmp, data, content_type, saved)
        assert any(f["severity"] == "error" for f in journaled)
        assert _full([f.to_dict() for f in validate_file(saved, None, settings).findings]) == _full(journaled)
