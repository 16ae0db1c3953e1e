"""``socle-harness validate``: detection, the verdict on every corpus file, the simulators' own findings, formats,
exit codes, folders in parallel, hostile files (harness/validators/artefacts.py, harness/front/cli_validate.py)."""

from __future__ import annotations

import io
import json
import zipfile
from email import policy
from pathlib import Path
from xml.etree import ElementTree

import pytest
from lxml import etree
from typer.testing import CliRunner

from harness.core.config import HarnessConfig, package_root
from harness.core.journal import JournalFilter
from harness.fields.pki import TestPKI
from harness.fields.testdata import load_testdata
from harness.front.cli import app
from harness.front.cli_validate import SettingsSpec, run_validation, validate_file
from harness.runtime.environment import SocleEnvironment
from harness.sut import dmp_messages as M
from harness.sut.documents import build_cda, build_message, build_xdm
from harness.sut.mssante_messages import build_mdn
from harness.validators import Severity
from harness.validators.artefacts import ArtefactKind, ValidationSettings, detect, validate_artefact
from harness.validators.cda import CdaSchema
from harness.validators.schematron import SchematronEngine
from tests.hostile import BILLION_LAUGHS

TESTDATA = load_testdata(package_root() / "fixtures")
PERSON = TESTDATA.persons[0]
ESTABLISHMENT = TESTDATA.establishment(PERSON.essms)
SENDER = "dui@ehpad-tilleuls.mssante.fr"
DOCTOR = "jean.dupont@medecin.mssante.fr"
runner = CliRunner()


def codes(report) -> list[tuple[str, str]]:  # noqa: ANN001
    return [(f.code, f.severity.value) for f in report.findings]


def cda() -> bytes:
    return build_cda(PERSON, ESTABLISHMENT, "DLU")


def eml() -> bytes:
    return build_message(PERSON, ESTABLISHMENT, SENDER, [DOCTOR]).as_bytes(policy=policy.SMTP)


# ------------------------------------------------------------------------------------------------ detection
def test_detection_reads_the_content_never_the_name(tmp_path: Path) -> None:
    mdn = build_mdn(eml(), reporter=DOCTOR, reporter_name="Dr Dupont").as_bytes()
    patient = json.dumps({"resourceType": "Patient", "id": "p"}).encode()
    assert detect(cda()) is ArtefactKind.CDA
    assert detect(b"\xef\xbb\xbf" + cda()) is ArtefactKind.CDA  # a UTF-8 byte order mark, as ANS files have
    assert detect(build_xdm(PERSON, ESTABLISHMENT, "DLU", cda())) is ArtefactKind.XDM
    assert detect(eml()) is ArtefactKind.EML
    assert detect(mdn) is ArtefactKind.MDN
    assert detect(patient) is ArtefactKind.FHIR
    assert detect(b'<Patient xmlns="http://hl7.org/fhir"><id value="p"/></Patient>') is ArtefactKind.FHIR
    assert detect(b"MSH|^~\\&|A|B|C|D|20240101||ACK|1|P|2.5\r") is ArtefactKind.HL7V2
    assert detect(b"\x0bMSH|^~\\&|A|B|C|D|20240101||ACK|1|P|2.5\r\x1c\r") is ArtefactKind.HL7V2
    assert detect(b"%PDF-1.7") is None
    assert detect(b"<root/>") is None


def test_an_unknown_file_is_a_finding_that_asks_for_a_type() -> None:
    report = validate_artefact(b"%PDF-1.7", name="x.pdf")
    assert codes(report) == [("ARTEFACT-INCONNU", "error")]
    assert "--type" in report.findings[0].message


@pytest.mark.parametrize("data", [b"MSH|^~\\&|A\r", b"\x0bMSH|\x1c\r"])
def test_an_unreadable_hl7v2_message_is_one_finding(data: bytes) -> None:
    report = validate_artefact(data, name="m.hl7")
    assert report.kind is ArtefactKind.HL7V2 and codes(report) == [("HL7-ILLISIBLE", "error")]


def test_the_size_bound_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.validators import artefacts

    data = b"MSH|^~\\&|A|B|C|D|20240101||ACK|1|P|2.5\r"
    monkeypatch.setattr(artefacts, "MAX_ARTEFACT_BYTES", len(data))
    assert codes(validate_artefact(data)) == []
    monkeypatch.setattr(artefacts, "MAX_ARTEFACT_BYTES", len(data) - 1)
    report = validate_artefact(data, name="gros.hl7")
    assert codes(report) == [("ARTEFACT-TAILLE", "error")] and report.kind is None


def test_an_unreadable_file_is_a_finding(tmp_path: Path) -> None:
    for path in (tmp_path / "absent.xml", tmp_path):  # missing, and a folder given as a file
        report = validate_file(path, None, ValidationSettings())
        assert codes(report) == [("ARTEFACT-LECTURE", "error")] and report.findings[0].location == str(path)


def test_the_reference_dui_artefacts_pass_and_say_what_was_not_run() -> None:
    report = validate_artefact(cda())
    assert report.kind is ArtefactKind.CDA
    assert codes(report) == [("CDA-XSD-NOT-CONFIGURED", "warning"), ("SCH-NON-VERIFIE", "warning")]
    assert report.ok
    assert codes(validate_artefact(eml())) == []
    assert codes(validate_artefact(build_xdm(PERSON, ESTABLISHMENT, "DLU", cda()))) == []


def test_type_override_judges_the_bytes_as_that_kind() -> None:
    report = validate_artefact(cda(), kind=ArtefactKind.FHIR)
    assert report.kind is ArtefactKind.FHIR
    assert codes(report) == [("FHIR-XML-NAMESPACE", "error")]  # a CDA read as FHIR XML: wrong namespace


# ------------------------------------------------------------------------------------------------ FHIR
def test_fhir_resources_go_through_their_profile_rules() -> None:
    bad_ins = {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.10", "value": "123456789012345"}],
    }
    report = validate_artefact(json.dumps(bad_ins).encode())
    assert report.detail["profile"] == "FR Core Patient"
    assert [f.severity for f in report.findings] and not report.ok
    unknown = validate_artefact(json.dumps({"resourceType": "Device"}).encode())
    assert codes(unknown) == [("FHIR-PROFIL-INCONNU", "info")]
    broken = validate_artefact(json.dumps({"resourceType": "Patient", "gender": 12}).encode())
    assert {c for c, _ in codes(broken)} == {"FHIR-STRUCTURE"}


def test_nested_json_and_bad_json_are_findings_not_crashes() -> None:
    deep = b'{"resourceType":"Patient","extension":' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert codes(validate_artefact(deep)) == [("FHIR-JSON", "error")]
    assert codes(validate_artefact(b'{"resourceType": ')) == [("FHIR-JSON", "error")]
    assert codes(validate_artefact(b'{"a": 1}')) == [("FHIR-RESOURCETYPE", "error")]


# ------------------------------------------------------------------------------------------------ hostile
def test_hostile_files_give_findings() -> None:
    bomb = validate_artefact(BILLION_LAUGHS, kind=ArtefactKind.CDA)
    assert not bomb.ok and bomb.findings[0].code.startswith("XML-")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("IHE_XDM/SUBSET01/DOC0001.XML", b"0" * (60 * 1024 * 1024))
    zipped = validate_artefact(buffer.getvalue())
    assert zipped.kind is ArtefactKind.XDM and not zipped.ok
    assert codes(validate_artefact(b"x" * 10, kind=ArtefactKind.VIHF))[0][1] == "error"


# ------------------------------------------------------------------------------------------------ VIHF
def test_vihf_signature_is_checked_against_the_given_authorities(tmp_path: Path) -> None:
    pki = TestPKI.ensure(tmp_path / "pki")
    client = pki.client(sorted(pki.clients)[0])
    assertion = M.build_vihf(PERSON, ESTABLISHMENT, M.OrgCredentials(str(client.cert_path), str(client.key_path)))
    data = etree.tostring(assertion)
    assert detect(data) is ArtefactKind.VIHF
    trusted = validate_artefact(data, settings=ValidationSettings(trust_anchors=(pki.intermediate.cert,)))
    assert trusted.ok, [str(f) for f in trusted.findings]
    assert "VIHF-ANCRES-ABSENTES" not in [c for c, _ in codes(trusted)]
    other = TestPKI.ensure(tmp_path / "other")
    untrusted = validate_artefact(data, settings=ValidationSettings(trust_anchors=(other.intermediate.cert,)))
    assert not untrusted.ok
    blind = validate_artefact(data)
    assert ("VIHF-ANCRES-ABSENTES", "warning") in codes(blind)


# ------------------------------------------------------------------------------------------------ corpus
#: Files of the corpus that are refused, with why (official examples have defects too).
KNOWN_BAD = {
    # the CR-BIO documents of the HL7 v2 relay examples (v2, replacement and deletion) carry the IHE XD-LAB
    # templates only, not the CI-SIS volet templateId 1.2.250.1.213.1.1.1.55
    "Remplacement ORU/CR_Bio_CDA_Niv3_v2.XML": {"CDA-TEMPLATE-MISSING"},
    # ... and these two ORU carry PID-3 279035121518989 (test NIR) but CDA documents about 277076322082910 (.4.8):
    # the relay's identity rule (tests/test_mssante_hl7.py refuses the replacement with AE 207 / 904)
    "Remplacement ORU/message_ORU_CR_Bio_RPLC_N1_Base64_N3_Base64.er7": {
        "CDA-TEMPLATE-MISSING",
        "HL7-PID-INS-DIFFERENT",
    },
    "Suppression ORU/CR_Bio_CDA_Niv1_v2.XML": {"CDA-TEMPLATE-MISSING"},
    "Suppression ORU/CR_Bio_CDA_Niv3_v2.XML": {"CDA-TEMPLATE-MISSING"},
    "Suppression ORU/message_ORU_CR_Bio_DEL_N1_Base64_N3_Base64.er7": {"CDA-TEMPLATE-MISSING", "HL7-PID-INS-DIFFERENT"},
    # the two LPS MDM examples have PID-3 276037510669380, whose INS key is 26, not 80
    "MDM/messageDocB64.hl7": {"CDA-TEMPLATE-MISSING", "HL7-PID-INS-INVALIDE"},
    # the OBX-5 Base64 of this example is cut after 35 characters: the CDA is not XML
    "MDM/message.hl7": {"XML-MALFORMED", "HL7-PID-INS-INVALIDE"},
    # the "_N1_N3" / "_N1" examples put a placeholder in OBX-5 (Base64 of « Document medcial au format CDA niveau
    # 1 »), not a CDA: a relay has no document to send (AE 101)
    "Remplacement ORU/message_ORU_CR_Bio_RPLC_N1_N3.er7": {"HL7-SANS-DOCUMENT"},
    "Transmission initiale ORU/message_ORU_CR_Bio_INIT_N1_N3.hl7": {"HL7-SANS-DOCUMENT"},
    "Remplacement MDM/message_MDM__LPS_MSS_CR_Radio_RPLC_N1.er7": {"HL7-SANS-DOCUMENT"},
    "Transmission initiale MDM/message_MDM__LPS_MSS_CR_Radio_INIT_N1.er7": {"HL7-SANS-DOCUMENT"},
    # the radiology reports of the MSSanté relay examples have no setId (CI-SIS header, setId 1..1)
    "Remplacement MDM/CR_Radio_CDAN1_v2.XML": {"CDA-SETID"},
    "Suppression MDM/CR_Radio_CDAN1_v2.XML": {"CDA-SETID"},
    "Transmission initiale MDM/CR_Radio_CDAN1_v1.XML": {"CDA-SETID"},
    "Transmission initiale MDM/message_MDM__LPS_MSS_CR_Radio_INIT_N1_Base64.er7": {"CDA-SETID"},
    # TEST_2.04 case 2 writes IdIndividu / OID out of the order of INSi_RESULTAT_INS.xsd
    "responses/TEST_2.04_cas2.xml": {"INSI-REPONSE-STRUCTURE"},
}


def _corpus_files(corpus_dir: Path) -> list[Path]:
    folders = [corpus_dir / "cisis-cda" / "examples", corpus_dir / "hl7v2", corpus_dir / "insi" / "responses"]
    return sorted(
        p for folder in folders for p in folder.rglob("*") if p.is_file() and p.suffix.lower() not in {".txt", ".md"}
    )


def test_every_corpus_file_gets_its_expected_verdict(corpus_dir: Path) -> None:
    spec = SettingsSpec(
        cda_xsd_dir=str(corpus_dir / "cisis-cda" / "infrastructure" / "cda"),
        schematron_dir=str(corpus_dir / "cisis-cda" / "schematrons"),
        strict=True,
        ca_files=(),
    )
    files = _corpus_files(corpus_dir)
    assert len(files) >= 40
    reports = run_validation(files, None, spec, jobs=2)
    seen_bad = set()
    for path, report in zip(files, reports, strict=True):
        assert report.kind is not None, path
        key = next((k for k in KNOWN_BAD if str(path).endswith(k)), None)
        error_codes = {f.code for f in report.errors}
        if key:
            seen_bad.add(key)
            assert error_codes == KNOWN_BAD[key], (path, [str(f) for f in report.findings])
        else:
            assert error_codes == set(), (path, [str(f) for f in report.findings])
    assert seen_bad == set(KNOWN_BAD)
    kinds = {r.kind for r in reports}
    assert kinds == {ArtefactKind.CDA, ArtefactKind.HL7V2, ArtefactKind.INSI_RESPONSE}


def test_cda_examples_run_the_schematron_of_their_volet(corpus_dir: Path) -> None:
    settings = ValidationSettings(
        cda_schema=CdaSchema(corpus_dir / "cisis-cda" / "infrastructure" / "cda"),
        schematron=SchematronEngine(corpus_dir / "cisis-cda" / "schematrons"),
    )
    report = validate_artefact(
        (corpus_dir / "cisis-cda/examples/DLU-EHPAD-DLU_2022.01.xml").read_bytes(), settings=settings
    )
    assert report.ok and any(layer.startswith("schematron:") for layer in report.detail["layers"])
    assert "xsd" in report.detail["layers"]


# ------------------------------------------------------------------------------------------------ same code
@pytest.fixture(scope="module")
def mssante(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    tmp = tmp_path_factory.mktemp("validate-mssante")
    env = SocleEnvironment(HarnessConfig(run_dir=tmp, journal=f"sqlite:///{tmp}/journal.sqlite", services=("mssante",)))
    env.start()
    yield env
    env.stop()


def _submit(env: SocleEnvironment, data: bytes) -> dict:
    import smtplib
    import ssl

    host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")
    mark = env.journal.last_seq()
    smtp = smtplib.SMTP(host.strip("[]"), int(port), local_hostname="dui.test", timeout=15)
    try:
        smtp.starttls(context=ssl.create_default_context(cafile=str(env.pki.ca_bundle_path)))
        smtp.login(SENDER, "dui-tilleuls-test")
        try:
            smtp.sendmail(SENDER, [DOCTOR], data)
        except smtplib.SMTPDataError:
            pass
    finally:
        smtp.close()
    (exchange,) = [e for e in env.journal.query(JournalFilter(since_seq=mark)) if e.operation.startswith("smtp")]
    return exchange.details


def test_validate_gives_the_mssante_simulator_findings(mssante: SocleEnvironment) -> None:
    without_metadata = build_message(PERSON, ESTABLISHMENT, SENDER, [DOCTOR])
    for part in without_metadata.iter_attachments():
        if (part.get_filename() or "").upper() == "IHE_XDM.ZIP":
            archive = io.BytesIO()
            with zipfile.ZipFile(archive, "w") as z:
                z.writestr("IHE_XDM/SUBSET01/DOC0001.XML", cda())
            part.set_content(archive.getvalue(), maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    for data in (eml(), without_metadata.as_bytes(policy=policy.SMTP)):
        # INS-NON-QUALIFIE judges the DUI's identity status in the run (the journal), not the artefact's content
        journaled = [f for f in _submit(mssante, data)["findings"] if f["code"] != "INS-NON-QUALIFIE"]
        ours = validate_artefact(data).to_dict()["findings"]
        assert [(f["code"], f["severity"]) for f in ours] == [(f["code"], f["severity"]) for f in journaled]
    assert journaled and any(f["severity"] == "error" for f in journaled)


def test_every_corpus_document_gets_the_mssante_simulator_findings(mssante: SocleEnvironment, corpus_dir: Path) -> None:
    """Each official CDA example in an MSSanté message (its IHE_XDM.ZIP): ``validate`` on the .eml gives exactly
    the findings the SMTP simulator journals for the same bytes."""
    examples = sorted((corpus_dir / "cisis-cda" / "examples").glob("*.xml"))
    assert len(examples) == 13
    for example in examples:
        message = build_message(PERSON, ESTABLISHMENT, SENDER, [DOCTOR])
        archive = build_xdm(PERSON, ESTABLISHMENT, "DLU", example.read_bytes())
        for part in message.iter_attachments():
            if (part.get_filename() or "").upper() == "IHE_XDM.ZIP":
                part.set_content(archive, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
        data = message.as_bytes(policy=policy.SMTP)
        journaled = [f for f in _submit(mssante, data)["findings"] if f["code"] != "INS-NON-QUALIFIE"]
        ours = validate_artefact(data).to_dict()["findings"]
        assert [(f["code"], f["severity"], f["location"]) for f in ours] == [
            (f["code"], f["severity"], f["location"]) for f in journaled
        ], example.name


# ------------------------------------------------------------------------------------------------ command
def test_cli_exit_codes_and_formats(tmp_path: Path) -> None:
    good = tmp_path / "good.xml"
    good.write_bytes(cda())
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Patient", "gender": 12}')
    result = runner.invoke(app, ["validate", str(good)])
    assert result.exit_code == 0, result.output
    assert "conforme" in result.output and "SCH-NON-VERIFIE" in result.output
    result = runner.invoke(app, ["validate", str(good), str(bad), "--format", "json"])
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["failed"] == 1
    assert [f["ok"] for f in document["files"]] == [True, False]
    junit = tmp_path / "junit.xml"
    result = runner.invoke(app, ["validate", str(tmp_path), "--format", "junit", "--output", str(junit)])
    assert result.exit_code == 1
    suite = ElementTree.parse(junit).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    page = tmp_path / "report.html"
    runner.invoke(app, ["validate", str(bad), "--format", "html", "-o", str(page)])
    assert "FHIR-STRUCTURE" in page.read_text()
    result = runner.invoke(app, ["validate", "-", "--format", "json"], input=cda())
    assert result.exit_code == 0 and json.loads(result.output)["files"][0]["kind"] == "cda"


def test_cli_usage_errors_exit_2_with_one_clear_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "absent.xml")])
    assert result.exit_code == 2 and "chemin introuvable" in result.output
    result = runner.invoke(app, ["validate", str(tmp_path), "--format", "yaml"])
    assert result.exit_code == 2 and "--format" in result.output
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 2 and "aucun fichier" in result.output


def test_folders_in_parallel_give_the_sequential_verdicts(tmp_path: Path) -> None:
    for index in range(6):
        (tmp_path / f"doc{index}.xml").write_bytes(cda() if index % 2 else b"<ClinicalDocument/>")
    spec = SettingsSpec(cda_xsd_dir=None, schematron_dir=None, strict=True, ca_files=())
    files = sorted(tmp_path.glob("*.xml"))
    parallel = run_validation(files, None, spec, jobs=2)
    sequential = run_validation(files, None, spec, jobs=1)
    assert [r.to_dict() for r in parallel] == [r.to_dict() for r in sequential]
    assert [r.ok for r in parallel] == [False, True, False, True, False, True]
    assert all(f.severity in Severity for r in parallel for f in r.findings)


def test_assert_conform_for_editors_tests(tmp_path: Path) -> None:
    from harness.validators.artefacts import assert_conform

    path = tmp_path / "dlu.xml"
    path.write_bytes(cda())
    assert assert_conform(path).ok
    with pytest.raises(AssertionError, match=r"non conforme :\n  ERROR CDA-NOT-CDA: "):
        assert_conform(b"<ClinicalDocument/>", kind=ArtefactKind.CDA)
