"""DMP verdicts that hold on the official material (issue 20): no mimeType bypass, reads bound to the VIHF patient,
patient = (value, OID), one identity chain, MTOM required, production-INS policy, DMP value sets, signature."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from lxml import etree

from harness.core.journal import JournalFilter
from harness.fields.identity import (
    INS,
    OID_INS_NIA,
    OID_INS_NIR,
    OID_INS_NIR_DEMO,
    ProductionInsPolicy,
    parse_ins,
    production_ins,
    production_ins_policy,
)
from harness.sut import dmp_messages as M
from harness.sut.base import ActionStatus, DmpFeed, DmpQuery
from harness.sut.documents import build_cda
from harness.sut.reference import FaultyDUI
from mock_services.dmp.store import Authorisation, DmpState
from tests.conftest import CORPUS
from tests.test_dmp import ITI41, TESTDATA, XSD_DIR, Dmp

SOAP = "{http://www.w3.org/2003/05/soap-envelope}"
ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
TD02 = "urn:hl7-org:v3:PRPA_IN201307UV02"


@pytest.fixture(scope="module")
def dmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dmp]:
    running = Dmp(tmp_path_factory.mktemp("dmp-verdicts"))
    yield running
    running.background.stop()
    running.journal.close()


def _person(index: int):  # noqa: ANN202
    person = TESTDATA.persons[index]
    return person, TESTDATA.establishment(person.essms)


def _errors(response: httpx.Response) -> tuple[str, list[tuple[str, str, str]]]:
    """(status, [(errorCode, severity, codeContext)]) of the RegistryResponse / AdhocQueryResponse."""
    body, _ = M.read_response(response.headers["content-type"], response.content)
    status, errors = M.registry_errors(body)
    return status.rsplit(":", 1)[-1], [(code, severity, context) for code, context, severity in errors]


def _fault(response: httpx.Response) -> tuple[int, str, str]:
    root = etree.fromstring(response.content)
    return (
        response.status_code,
        root.findtext(f".//{SOAP}Detail/errorCode") or "",
        root.findtext(f".//{SOAP}Subcode/{SOAP}Value") or "",
    )


def _send(
    dmp: Dmp,
    body: etree._Element,
    vihf_person,  # noqa: ANN001
    establishment,  # noqa: ANN001
    action: str,
    service: str,
    attachments: dict[str, bytes] | None = None,
    *,
    signer: M.OrgCredentials | None = None,
    tls: M.OrgCredentials | None = None,
    mtom: bool = True,
) -> httpx.Response:
    """One request with a VIHF naming ``vihf_person`` and ``establishment``, signed by ``signer``, over TLS with
    ``tls`` (both default to the establishment's organisation certificate)."""
    own = dmp.credentials_of(establishment.finess)
    vihf = M.build_vihf(vihf_person, establishment, signer or own)
    envelope = M.envelope(action, dmp.url(service), body, vihf)
    if mtom:
        content, content_type = M.mtom(envelope, attachments or {}, action)
    else:
        content, content_type = M.inline(envelope, attachments or {}, action)
    context = ssl.create_default_context(cafile=str(dmp.pki.ca_bundle_path))
    chosen = tls or own
    context.load_cert_chain(chosen.cert_path, chosen.key_path)
    with httpx.Client(verify=context, timeout=30.0) as client:
        return client.post(dmp.url(service), content=content, headers={"Content-Type": content_type})


def _feed(dmp: Dmp, index: int, **options: object) -> tuple[httpx.Response, str]:
    person, establishment = _person(index)
    cda = options.pop("cda", None) or build_cda(person, establishment, "DLU")
    credentials = dmp.credentials_of(establishment.finess)
    body, attachments, _, unique_id = M.build_iti41(
        person,
        establishment,
        "DLU",
        cda,  # type: ignore[arg-type]
        credentials,
        options=M.FeedOptions(**options),  # type: ignore[arg-type]
    )
    return _send(dmp, body, person, establishment, ITI41, "repository", attachments, mtom=True), unique_id


def _last(dmp: Dmp, operation: str):  # noqa: ANN202
    return dmp.journal.query(JournalFilter(service="dmp", operation=operation))[-1]


# --------------------------------------------------------------------------------------------- item 3: mimeType
def test_a_cda_of_another_patient_declared_pdf_is_checked_and_refused(dmp: Dmp) -> None:
    other, other_establishment = _person(1)
    foreign = build_cda(other, other_establishment, "DLU")
    broken = foreign.replace(b"<legalAuthenticator>", b"<legalAuthenticator><bogus/>", 1)
    for mime in ("application/pdf", "text/plain", "application/octet-stream"):
        response, _ = _feed(dmp, 0, cda=broken, mime_type=mime)
        status, errors = _errors(response)
        xsd = [("InvalidDocumentContent", "Error")] if XSD_DIR.is_dir() else []  # <bogus/> breaks the XSD
        assert status == "Failure", mime
        assert [(code, severity) for code, severity, _ in errors] == [
            ("XDSRegistryMetadataError", "Error"),
            *xsd,
            ("InvalidDocumentContent", "Warning"),  # SCH-NON-VERIFIE: no schematron folder in this DMP
            ("XDSPatientIdDoesNotMatch", "Error"),
        ]
        [mime_error] = [c for code, _, c in errors if code == "XDSRegistryMetadataError"]
        assert mime_error == (
            f"mimeType {mime!r} : le DMP n'accepte que des documents CDA R2 (text/xml) ; le contenu est vérifié "
            "comme un document CDA"
        )
    person = TESTDATA.persons[0]
    assert not [d for d in dmp.sim.store.documents() if d.patient == person.ins.value and d.mime_type != "text/xml"]


def test_a_pdf_is_not_a_cda(dmp: Dmp) -> None:
    person, establishment = _person(0)
    cda = build_cda(person, establishment, "DLU")
    body, attachments, _, _ = M.build_iti41(
        person,
        establishment,
        "DLU",
        cda,
        dmp.credentials_of(establishment.finess),
        options=M.FeedOptions(mime_type="application/pdf"),
    )
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF"
    attachments = {cid: (pdf if data == cda else data) for cid, data in attachments.items()}
    status, errors = _errors(_send(dmp, body, person, establishment, ITI41, "repository", attachments))
    assert status == "Failure"
    assert sorted({(code, severity) for code, severity, _ in errors}) == [
        ("InvalidDocumentContent", "Error"),
        ("XDSRegistryMetadataError", "Error"),
        ("XDSRepositoryMetadataError", "Error"),  # size and hash declared for the CDA, not the PDF
    ]
    assert [x.split("]")[0] for c, _, x in errors if c == "InvalidDocumentContent"] == [
        "[XML-MALFORMED",
        "[DSG-EMPREINTE",
    ]


# --------------------------------------------------------------------------------------------- item 4: reads bound
def test_reads_are_bound_to_the_vihf_patient(dmp: Dmp) -> None:
    person, establishment = _person(0)
    other, _ = _person(1)
    fed = dmp.dui.dmp_feed(DmpFeed(person, establishment, "DLU"))
    assert fed.status is ActionStatus.DONE, fed.detail
    unique_id = fed.data["unique_id"]
    find = M.build_find_documents(person)
    status, errors = _errors(_send(dmp, find, other, establishment, ITI18, "registry"))
    assert status == "Failure"
    assert [(code, severity) for code, severity, _ in errors] == [("DMPAccessDenied", "Error")]
    journaled = _last(dmp, "iti18.registry_stored_query")
    assert journaled.error_code == "DMPAccessDenied" and journaled.details["results"] == []
    assert (journaled.details["vihf_patient"], journaled.details["requested_patient"]) == (
        other.ins.to_xds(),
        person.ins.to_xds(),
    )
    retrieve = M.build_retrieve(dmp.sim.repository_unique_id, unique_id)
    response = _send(dmp, retrieve, other, establishment, ITI43, "repository")
    status, errors = _errors(response)
    assert status == "Failure" and [(c, s) for c, s, _ in errors] == [("DMPAccessDenied", "Error")]
    assert b"<ClinicalDocument" not in response.content
    journaled = _last(dmp, "iti43.retrieve_document_set")
    assert journaled.details["retrieved"] == [] and journaled.details["vihf_patient"] == other.ins.to_xds()
    response = _send(dmp, M.build_td02(person, establishment), other, establishment, TD02, "patients")
    facts = M.read_td02(M.read_response(response.headers["content-type"], response.content)[0])
    assert (facts["ack"], facts["query_response"], facts["detail"]) == ("AE", "AE", "DMPAccessDenied")
    # the reference DUI reads with its own patient's VIHF: allowed
    assert dmp.dui.dmp_find(DmpQuery(person, establishment)).status is ActionStatus.DONE


def test_the_faulty_dui_reading_with_another_patients_vihf_is_refused(dmp: Dmp) -> None:
    person, establishment = _person(0)
    faulty = FaultyDUI(frozenset({"lecture-autre-patient"}))
    faulty.setup(dmp.env)
    result = faulty.dmp_find(DmpQuery(person, establishment))
    assert result.status is ActionStatus.FAILED and result.detail.startswith("refus du DMP: DMPAccessDenied")


# --------------------------------------------------------------------------------------------- item 5: (value, OID)
def test_the_patient_is_the_value_and_oid_pair(dmp: Dmp) -> None:
    person, establishment = _person(2)
    fed = dmp.dui.dmp_feed(DmpFeed(person, establishment, "DLU"))
    assert fed.status is ActionStatus.DONE, fed.detail
    production = replace(person, ins=INS(person.ins.number, person.ins.key, OID_INS_NIR))
    assert dmp.sim.store.documents(production.ins) == []
    assert fed.data["unique_id"] in [d.unique_id for d in dmp.sim.store.documents(person.ins)]
    status, errors = _errors(
        _send(dmp, M.build_find_documents(production), production, establishment, ITI18, "registry")
    )
    assert status == "Failure" and [(c, s) for c, s, _ in errors] == [("XDSUnknownPatientId", "Error")]


# --------------------------------------------------------------------------------------------- item 6: identity chain
def test_a_vihf_signed_by_another_structure_is_the_vihf_security_fault(dmp: Dmp) -> None:
    person, establishment = _person(0)
    other = next(e for e in TESTDATA.establishments if e.finess != establishment.finess)
    body, attachments, _, _ = M.build_iti41(
        person, establishment, "DLU", build_cda(person, establishment, "DLU"), dmp.credentials_of(establishment.finess)
    )
    response = _send(
        dmp, body, person, establishment, ITI41, "repository", attachments, signer=dmp.credentials_of(other.finess)
    )
    assert _fault(response) == (400, "VIHF-STRUCTURE", "wsse:InvalidSecurity")
    journaled = _last(dmp, "iti41.provide_and_register")
    assert journaled.error_code == "VIHF-STRUCTURE"
    assert journaled.error_message == (
        "VIHF refusé: la structure authentifiée n'est pas la même partout (certificat TLS "
        f"1{establishment.finess}, signataire du VIHF 1{other.finess}, Identifiant_Structure 1{establishment.finess})"
    )
    faulty = FaultyDUI(frozenset({"vihf-autre-structure"}))
    faulty.setup(dmp.env)
    result = faulty.dmp_feed(DmpFeed(person, establishment, "DLU"))
    assert result.status is ActionStatus.FAILED and result.detail.startswith("faute SOAP du DMP: VIHF-STRUCTURE")


def test_an_insi_certificate_is_refused_by_the_dmp(dmp: Dmp) -> None:
    person, establishment = _person(0)
    insi = dmp.pki.client("INSI-AUTO")
    credentials = M.OrgCredentials(str(insi.cert_path), str(insi.key_path))
    response = _send(
        dmp,
        M.build_find_documents(person),
        person,
        establishment,
        ITI18,
        "registry",
        signer=credentials,
        tls=credentials,
    )
    assert _fault(response) == (400, "TLS-CERT-ROLE", "wsse:FailedAuthentication")


def test_the_journal_essms_is_the_authenticated_structure(dmp: Dmp) -> None:
    person, establishment = _person(3)
    other = next(e for e in TESTDATA.establishments if e.finess != establishment.finess)
    cda = build_cda(person, establishment, "DLU")
    credentials = dmp.credentials_of(establishment.finess)
    body, attachments, _, _ = M.build_iti41(person, other, "DLU", cda, credentials)  # authorInstitution: other
    status, errors = _errors(_send(dmp, body, person, establishment, ITI41, "repository", attachments))
    assert status == "Success"
    assert errors == [
        (
            "XDSRegistryMetadataError",
            "Warning",
            f"[DMP-AUTEUR-STRUCTURE] authorInstitution déclare la structure {other.finess}, la structure "
            "authentifiée (certificat TLS, signataire et Identifiant_Structure du VIHF) est "
            f"{establishment.finess} : le versement est compté pour {establishment.finess}",
        ),
        ("InvalidDocumentContent", "Warning", errors[1][2]),
    ]
    assert errors[1][2].startswith("[SCH-NON-VERIFIE] contenu non vérifié par schématron")
    journaled = _last(dmp, "iti41.provide_and_register")
    assert (journaled.essms, journaled.details["declared_structure"]) == (establishment.finess, other.finess)


# --------------------------------------------------------------------------------------------- item 7: MTOM
def test_iti41_without_mtom_is_refused_in_strict_mode(dmp: Dmp) -> None:
    person, establishment = _person(0)
    cda = build_cda(person, establishment, "DLU")
    body, attachments, _, _ = M.build_iti41(person, establishment, "DLU", cda, dmp.credentials_of(establishment.finess))
    status, errors = _errors(_send(dmp, body, person, establishment, ITI41, "repository", attachments, mtom=False))
    assert status == "Failure"
    assert [(c, s, x) for c, s, x in errors if s == "Error"] == [
        (
            "XDSRepositoryError",
            "Error",
            "[MTOM-REQUIRED] ITI-41 reçu sans MTOM/XOP (application/soap+xml) : IHE ITI TF-2b §3.41 impose "
            "multipart/related MTOM",
        )
    ]
    assert _last(dmp, "iti41.provide_and_register").details["mtom"] is False


def test_iti41_without_mtom_is_a_warning_in_lenient_mode(tmp_path: Path) -> None:
    lenient = Dmp(tmp_path, settings={"mtom": "lenient"})
    try:
        person, establishment = _person(0)
        cda = build_cda(person, establishment, "DLU")
        credentials = lenient.credentials_of(establishment.finess)
        body, attachments, _, _ = M.build_iti41(person, establishment, "DLU", cda, credentials)
        status, errors = _errors(
            _send(lenient, body, person, establishment, ITI41, "repository", attachments, mtom=False)
        )
        assert status == "Success"
        assert ("XDSRepositoryError", "Warning") in [(c, s) for c, s, _ in errors]
        faulty = FaultyDUI(frozenset({"sans-mtom"}))
        faulty.setup(lenient.env)
        assert faulty.dmp_feed(DmpFeed(person, establishment, "DLU")).status is ActionStatus.DONE
    finally:
        lenient.background.stop()
        lenient.journal.close()


# --------------------------------------------------------------------------------------------- production INS
def test_the_production_ins_policy() -> None:
    assert production_ins_policy({}) is ProductionInsPolicy.WARN
    assert production_ins_policy({"production_ins": "refuse"}) is ProductionInsPolicy.REFUSE
    with pytest.raises(ValueError, match="réglage production_ins = 'non' invalide"):
        production_ins_policy({"production_ins": "non"})
    test = parse_ins("279035121518989", "1.2.250.1.213.1.4.10")
    assert production_ins(test) is None
    assert production_ins(parse_ins("279035121518989", OID_INS_NIR_DEMO)) is None
    warn = production_ins(parse_ins("279035121518989", OID_INS_NIR))
    assert warn is not None and (warn.code, warn.refuse) == ("INS-PRODUCTION", False)
    refuse = production_ins(parse_ins("279035121518989", OID_INS_NIA), ProductionInsPolicy.REFUSE)
    assert refuse is not None and refuse.refuse
    assert refuse.message.endswith('; refusé (réglage production_ins = "refuse")')


def test_a_production_ins_is_warned_by_default_and_refused_under_refuse(dmp: Dmp) -> None:
    person, establishment = _person(4)
    production = replace(person, ins=INS(person.ins.number, person.ins.key, OID_INS_NIR))
    dmp.sim.set_person(production.ins, state=DmpState.ACTIVE, authorisation=Authorisation.VALID)
    assert dmp.dui.dmp_feed(DmpFeed(production, establishment, "DLU")).status is ActionStatus.DONE
    warned = _last(dmp, "iti41.provide_and_register")
    assert [f["severity"] for f in warned.details["findings"] if f["code"] == "INS-PRODUCTION"] == ["warning"]
    dmp.sim.production_ins = ProductionInsPolicy.REFUSE
    try:
        result = dmp.dui.dmp_feed(DmpFeed(production, establishment, "DLU"))
    finally:
        dmp.sim.production_ins = ProductionInsPolicy.WARN
    assert result.status is ActionStatus.FAILED and result.detail == "la personne n'a pas de DMP : document non versé"
    td02 = _last(dmp, "td02.test_existence")
    assert td02.error_code == "XDSUnknownPatientId"  # the XDS code of INS-PRODUCTION
    assert [(f["code"], f["severity"]) for f in td02.details["findings"]] == [("INS-PRODUCTION", "error")]


# --------------------------------------------------------------------------------------------- value sets, signature
def test_a_class_code_outside_j57_is_refused(dmp: Dmp) -> None:
    response, _ = _feed(dmp, 0, class_code="99")
    status, errors = _errors(response)
    assert status == "Failure"
    assert [(c, s, x) for c, s, x in errors if s == "Error"] == [
        (
            "XDSRegistryMetadataError",
            "Error",
            "classCode '99' (1.2.250.1.213.1.1.4.1) absent du jeu de valeurs JDV_J57-ClassCode-DMP",
        )
    ]


def test_a_forged_signature_is_refused(dmp: Dmp) -> None:
    response, unique_id = _feed(dmp, 0, forged_signature=True)
    status, errors = _errors(response)
    assert status == "Failure"
    assert [(c, s, x) for c, s, x in errors if s == "Error"] == [
        (
            "InvalidDocumentContent",
            "Error",
            f"[DSG-EMPREINTE] document {unique_id}: l'empreinte signée ne correspond pas au document reçu",
        )
    ]


def test_an_update_of_another_patients_document_is_refused(dmp: Dmp) -> None:
    person, establishment = _person(1)
    other, _ = _person(2)
    fed = dmp.dui.dmp_feed(DmpFeed(person, establishment, "DLU"))
    assert fed.status is ActionStatus.DONE, fed.detail
    stored = dmp.sim.store.by_unique_id(fed.data["unique_id"])
    body = M.build_status_update(
        person, establishment, stored.entry_uuid, stored.status, "urn:asip:ci-sis:2010:StatusType:Archived"
    )
    status, errors = _errors(_send(dmp, body, other, establishment, "urn:ihe:iti:2010:UpdateDocumentSet", "registry"))
    assert status == "Failure" and [(c, s) for c, s, _ in errors] == [("DMPAccessDenied", "Error")]
    assert dmp.sim.store.by_unique_id(fed.data["unique_id"]).status == stored.status  # unchanged
    journaled = _last(dmp, "iti57.update_document_set")
    assert (
        journaled.details["vihf_patient"],
        journaled.details["requested_patient"],
        journaled.details["changes"],
    ) == (
        other.ins.to_xds(),
        person.ins.to_xds(),
        [{"document": fed.data["unique_id"], "status": "urn:asip:ci-sis:2010:StatusType:Archived"}],
    )


def test_a_tls_certificate_of_another_structure_than_the_vihf_is_refused(dmp: Dmp) -> None:
    person, establishment = _person(0)
    other = next(e for e in TESTDATA.establishments if e.finess != establishment.finess)
    response = _send(
        dmp,
        M.build_find_documents(person),
        person,
        establishment,
        ITI18,
        "registry",
        tls=dmp.credentials_of(other.finess),  # VIHF signed by the structure and naming it, TLS as another one
    )
    assert _fault(response) == (400, "VIHF-STRUCTURE", "wsse:InvalidSecurity")
    assert _last(dmp, "iti18.registry_stored_query").error_message == (
        "VIHF refusé: la structure authentifiée n'est pas la même partout (certificat TLS "
        f"1{other.finess}, signataire du VIHF 1{establishment.finess}, Identifiant_Structure 1{establishment.finess})"
    )


def test_the_official_edisp_example_under_the_production_nir_is_accepted_by_default(dmp: Dmp) -> None:
    """eDISP-MED (ANS example) names its patient under .4.8: accepted under the default policy, with the warning."""
    if not CORPUS.is_dir():
        pytest.skip(f"corpus absent: {CORPUS}")
    data = (CORPUS / "cisis-cda" / "examples" / "eDISP-MED_2024.01.xml").read_bytes()
    ins_el = etree.fromstring(data).find("{urn:hl7-org:v3}recordTarget/{urn:hl7-org:v3}patientRole/{urn:hl7-org:v3}id")
    person, establishment = _person(3)
    patient = replace(person, ins=parse_ins(ins_el.get("extension"), ins_el.get("root")))
    assert patient.ins.oid == OID_INS_NIR
    dmp.sim.set_person(patient.ins, state=DmpState.ACTIVE, authorisation=Authorisation.VALID)
    credentials = dmp.credentials_of(establishment.finess)
    body, attachments, _, _ = M.build_iti41(patient, establishment, "EDISP-MED", data, credentials)
    status, errors = _errors(_send(dmp, body, patient, establishment, ITI41, "repository", attachments))
    assert status == "Success"
    assert [(c, s, x.split("]")[0]) for c, s, x in errors] == [
        ("XDSUnknownPatientId", "Warning", "[INS-PRODUCTION"),
        ("InvalidDocumentContent", "Warning", "[SCH-NON-VERIFIE"),
    ]


def test_a_format_code_that_does_not_fit_the_cda_template_is_refused(dmp: Dmp) -> None:
    """ASS_A11: a DLU (templateId 1.2.250.1.213.1.1.1.22) declared with the VSM formatCode (urn:asip:ci-sis:vsm:2012,
    in JDV_J60 but not the DLU's)."""
    from harness.validators import ebrim as E

    person, establishment = _person(0)
    cda = build_cda(person, establishment, "DLU")
    body, attachments, entry_id, _ = M.build_iti41(
        person, establishment, "DLU", cda, dmp.credentials_of(establishment.finess)
    )
    [format_code] = [
        c
        for c in body.iter(E.rim("Classification"))
        if c.get("classificationScheme") == E.FORMAT_CODE and c.get("classifiedObject") == entry_id
    ]
    format_code.set("nodeRepresentation", "urn:asip:ci-sis:vsm:2012")
    status, errors = _errors(_send(dmp, body, person, establishment, ITI41, "repository", attachments))
    assert status == "Failure"
    assert [(c, s, x) for c, s, x in errors if s == "Error"] == [
        (
            "XDSRegistryMetadataError",
            "Error",
            "formatCode 'urn:asip:ci-sis:vsm:2012' (1.2.250.1.213.1.1.4.2.282) incohérent avec le modèle du document "
            "CDA : urn:asip:ci-sis:dlu:2015 (1.2.250.1.213.1.1.4.2.282) attendu (ASS_A11-CorresModeleCDA-XdsFormatCode)",
        )
    ]
