"""The INSi simulator over real HTTPS with mutual TLS: answers, SOAP 1.2 faults on bad input, mTLS and IDAM checks,
faults on demand, and "the service stays up, no exchange lost" under hostile and concurrent requests."""

from __future__ import annotations

import http.client
import ssl
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from hostile import BILLION_LAUGHS
from starlette.requests import Request

from harness.core.config import HarnessConfig
from harness.core.journal import Exchange, JournalFilter, Outcome, response_of
from harness.core.sessions import Members
from harness.fields.xmlsafe import parse_xml
from harness.host.simulator import Fault
from harness.runtime.environment import SocleEnvironment
from harness.sut.base import InsiTraits
from harness.sut.insi_actions import REFERENCE_IDAM, build_request
from harness.validators.insi import InsiFault, InsiResult, parse_result, validate_result
from mock_services.insi.service import REFERENCE_DUI_IDAM, content_type_of

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
ACTION = "urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecTraitsIdentite"
CONTENT_TYPE = f'application/soap+xml; charset=utf-8; action="{ACTION}"'
MARTIN = InsiTraits("MARTIN", ("JEANNE",), "F", "1938-04-12")
TILLEULS = "990000016"


# --------------------------------------------------------------------------------------------------------------
# environment and client


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    tmp = tmp_path_factory.mktemp("insi")
    cfg = HarnessConfig(
        run_dir=tmp,
        journal=f"sqlite:///{tmp}/journal.sqlite",
        services=("insi", "mssante"),
        settings={"insi": {"synthetic_identities": 50, "max_delay_seconds": 1.5}},
    )
    env = SocleEnvironment(cfg)
    env.start()
    yield env
    env.stop()


@pytest.fixture(autouse=True)
def _no_pending_fault(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "env" in request.fixturenames:
        request.getfixturevalue("env").host.faults.clear()


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]

    @property
    def parsed(self) -> InsiResult | InsiFault | None:
        return parse_result(self.body)

    @property
    def fault(self) -> InsiFault:
        parsed = self.parsed
        assert isinstance(parsed, InsiFault), self.body[:500]
        return parsed

    @property
    def result(self) -> InsiResult:
        parsed = self.parsed
        assert isinstance(parsed, InsiResult), self.body[:500]
        return parsed


def context(env: SocleEnvironment, certificate: str | None = "INSI-AUTO") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    if certificate is not None:
        client = env.pki.client(certificate)
        ctx.load_cert_chain(str(client.cert_path), str(client.key_path))
    return ctx


def post(
    env: SocleEnvironment,
    body: bytes,
    *,
    certificate: str | None = "INSI-AUTO",
    content_type: str = CONTENT_TYPE,
    method: str = "POST",
    timeout: float = 30.0,
) -> Answer:
    url = env.endpoints["insi"]["soap"]
    port = int(url.split(":")[2].split("/")[0])
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context(env, certificate), timeout=timeout)
    try:
        connection.request(method, "/insi/lps", body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        return Answer(
            response.status,
            response.getheader("Content-Type") or "",
            response.read(),
            {k.lower(): v for k, v in response.getheaders()},
        )
    finally:
        connection.close()


def request(traits: InsiTraits = MARTIN, **shape: object) -> bytes:
    options = {
        "emitter": TILLEULS,
        "idam": REFERENCE_IDAM,
        "instance": str(uuid.uuid4()),
        "message_id": str(uuid.uuid4()),
    }
    options.update(shape)
    return build_request(traits, **options)  # type: ignore[arg-type]


def envelope(header: str, body: str, *, soap_ns: str = SOAP12) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{soap_ns}"><soap:Header>{header}</soap:Header>'
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()


def headers(*, idam: str = REFERENCE_IDAM, bam: bool = True, lps: bool = True, extra: str = "") -> str:
    parts = []
    if bam:
        parts.append(
            '<ctxbam:ContexteBAM xmlns:ctxbam="urn:siram:bam:ctxbam" Version="01_02"><ctxbam:Id>1</ctxbam:Id>'
            f"<ctxbam:Temps>2024-01-01T10:00:00.000Z</ctxbam:Temps><ctxbam:Emetteur>{TILLEULS}</ctxbam:Emetteur>"
            "<ctxbam:COUVERTURE/></ctxbam:ContexteBAM>"
        )
    if lps:
        parts.append(
            '<ctxlps:ContexteLPS xmlns:ctxlps="urn:siram:lps:ctxlps" Nature="CTXLPS" Version="01_00"><ctxlps:Id>2</ctxlps:Id>'
            f"<ctxlps:Temps>2024-01-01T10:00:00Z</ctxlps:Temps><ctxlps:Emetteur>{TILLEULS}</ctxlps:Emetteur><ctxlps:LPS>"
            f'<ctxlps:IDAM R="4">{idam}</ctxlps:IDAM><ctxlps:Version>1</ctxlps:Version><ctxlps:Instance>i-1</ctxlps:Instance>'
            "<ctxlps:Nom>urn:lps:test:1</ctxlps:Nom></ctxlps:LPS></ctxlps:ContexteLPS>"
        )
    parts.append('<wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">uuid:m-1</wsa:MessageID>')
    return "".join(parts) + extra


def recsans(
    name: str = "MARTIN",
    first: str = "JEANNE",
    sex: str = "F",
    birth: str = "1938-04-12",
    *,
    ns: str = "http://www.cnamts.fr/INSiRecSans",
) -> str:
    return (
        f'<RECSANSVITALE xmlns="{ns}"><NomNaissance>{name}</NomNaissance><Prenom>{first}</Prenom>'
        f"<Sexe>{sex}</Sexe><DateNaissance>{birth}</DateNaissance></RECSANSVITALE>"
    )


def journal_since(env: SocleEnvironment, mark: int) -> list[Exchange]:
    return env.journal.query(JournalFilter(service="insi", since_seq=mark))


def assert_fault(
    answer: Answer, soap_code: str, error_code: str, *, status: int = 500, subcode: str | None = None
) -> InsiFault:
    assert answer.status == status, (answer.status, answer.body[:400])
    assert answer.content_type.startswith("application/soap+xml"), answer.content_type
    fault = answer.fault
    assert (fault.code, fault.error_code) == (soap_code, error_code), fault
    if subcode is not None:
        assert fault.subcode == subcode
    # the Value is a QName in the SOAP 1.2 envelope namespace (env:Sender...)
    root = parse_xml(answer.body)
    value = root.find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault/{{{SOAP12}}}Code/{{{SOAP12}}}Value")
    assert value is not None and value.text == f"env:{soap_code}" and value.nsmap.get("env") == SOAP12
    return fault


# --------------------------------------------------------------------------------------------------------------
# answers


def test_reference_idam_is_authorised_by_default() -> None:
    assert REFERENCE_IDAM == REFERENCE_DUI_IDAM


def test_search_returns_one_identity_and_is_journaled_before_the_answer(env: SocleEnvironment) -> None:
    mark = env.journal.last_seq()
    answer = post(env, request())
    assert answer.status == 200 and answer.content_type.startswith("application/soap+xml")
    result = answer.result
    assert (result.code, result.label) == ("00", "OK")
    assert (
        result.active is not None
        and result.active.value == "238047505612394"
        and result.active.oid == "1.2.250.1.213.1.4.10"
    )
    assert result.tiq == {
        "NomNaissance": "MARTIN",
        "ListePrenom": "JEANNE",
        "Sexe": "F",
        "DateNaissance": "1938-04-12",
        "LieuNaissance": "75056",
    }
    assert validate_result(answer.body) == []
    [exchange] = journal_since(env, mark)
    assert exchange.outcome is Outcome.ACCEPTED and exchange.person == "238047505612394" and exchange.essms == TILLEULS
    assert exchange.operation == "soap.rechercherInsAvecTraitsIdentite"
    assert exchange.actor and exchange.actor.startswith(REFERENCE_IDAM + "/")
    assert exchange.details["client_cn"] == "INSI-AUTO" and exchange.details["cr"] == "00"
    # the answer is evidence named by its digest, not a copy in details (issue 18: a 2 KB row per search before)
    assert "response" not in exchange.details and exchange.details["response_bytes"] == len(answer.body)
    assert response_of(env.journal, exchange) == answer.body
    assert env.journal.payload(exchange.digest or "") == request_body_of(exchange, env)


def request_body_of(exchange: Exchange, env: SocleEnvironment) -> bytes | None:
    return env.journal.payload(exchange.digest or "")


def test_insi_manu_certificate_is_accepted(env: SocleEnvironment) -> None:
    assert post(env, request(), certificate="INSI-MANU").result.code == "00"


@pytest.mark.parametrize(
    ("traits", "code"),
    [
        (InsiTraits("DE VINCI", ("LEONARDO",), "M", "2014-02-01"), "01"),
        (InsiTraits("DURAND", ("CAMILLE",), "F", "1948-05-10"), "02"),
        (InsiTraits("DURAND", ("CAMILLE",), "F", "1948-05-10", "13055"), "00"),
        (InsiTraits("TCHITCHI", ("OLA",), "F", "1936-06-21"), "01"),  # OLA is not her first first name
        (InsiTraits("TCHITCHI", ("CATARINA",), "F", "1936-06-21"), "00"),
        (InsiTraits("tchitchi", ("Catarina", "Bella"), "F", "1936-06-21"), "00"),  # whole list, case-insensitive
        (InsiTraits("ADRTROIS", ("TOUSSAINT",), "F", "1960-01-01"), "01"),  # wrong sex
        (InsiTraits("HOUILLES", ("PIERRE",), "M", "1993-01-27"), "01"),
        (
            InsiTraits("LEROY", ("PAUL",), "M", "1942-03-30"),
            "00",
        ),  # PAUL triggers CR 01 for qualification identities only
        (InsiTraits("ANYONE", ("MATRICULE",), "M", "2001-01-01"), "00"),  # qualification trigger: provisional NIA
    ],
)
def test_search_outcomes(env: SocleEnvironment, traits: InsiTraits, code: str) -> None:
    answer = post(env, request(traits, with_place=True))
    assert answer.result.code == code
    assert validate_result(answer.body) == []


def test_responses_have_the_corpus_shape(env: SocleEnvironment) -> None:
    """Same envelope layout as the qualification responses; XSD order IdIndividu, OID, DateDeb, DateFin."""
    body = post(env, request(InsiTraits("ECETINSI", ("PIERRE-ALAIN",), "M", "2009-07-14"))).body.decode()
    assert body.startswith(
        '<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">'
        '<S:Body xmlns:S="http://www.w3.org/2003/05/soap-envelope"><RESULTAT xmlns:ns3="http://www.cnamts.fr/INSiRecVit" '
        'xmlns:ns2="http://www.cnamts.fr/INSiRecSans" xmlns="http://www.cnamts.fr/INSiResultat"><CR><CodeCR>00</CodeCR>'
    )
    assert (
        "<INSHISTO><IdIndividu><NumIdentifiant>2090763220834</NumIdentifiant><Cle>39</Cle></IdIndividu>"
        "<OID>1.2.250.1.213.1.4.8</OID><DateDeb>2019-03-01</DateDeb><DateFin>2019-02-28</DateFin></INSHISTO>"
    ) in body
    cr01 = post(env, request(InsiTraits("DE VINCI", ("LEONARDO",), "M", "2014-02-01"))).body.decode()
    assert cr01.endswith(
        "<CR><CodeCR>01</CodeCR><LibelleCR>Aucune identite trouvee</LibelleCR></CR></RESULTAT></S:Body></soap:Envelope>"
    )


def test_flagged_corpus_identity_is_served_as_given_and_flagged_in_the_journal(env: SocleEnvironment) -> None:
    mark = env.journal.last_seq()
    result = post(env, request(InsiTraits("HERMANN", ("GATIEN",), "M", "1981-03-24"))).result
    assert result.active is not None and (result.active.number, result.active.key) == ("1810363220456", "60")
    assert [h.value for h in result.history] == ["181036322045660", "281036322045610"]
    [exchange] = journal_since(env, mark)
    flags = exchange.details["identity_flags"]
    assert any(f.startswith("CLE-NON-CONFORME: 1810363220456 60") for f in flags)
    assert any(f.startswith("CLE-NON-CONFORME: 2810363220456 10") for f in flags)


def test_a_repeated_search_gets_the_same_answer_and_row_as_the_first(env: SocleEnvironment) -> None:
    """The answer of an identity is built once (issue 18): the second search of it, and of a CR 01, gets the same
    bytes and the same answer facts in its row as the first."""
    hermann = InsiTraits("HERMANN", ("GATIEN",), "M", "1981-03-24")
    nobody = InsiTraits("PERSONNE", ("AUCUN",), "M", "1950-01-01")
    for traits, code in ((hermann, "00"), (nobody, "01"), (MARTIN, "00")):
        mark = env.journal.last_seq()
        first, second = post(env, request(traits)), post(env, request(traits))
        assert first.status == second.status == 200 and first.body == second.body
        assert first.result.code == code
        rows = journal_since(env, mark)
        assert len(rows) == 2
        facts = [
            {k: row.details.get(k) for k in ("cr", "ins", "history", "tiq", "identity_flags", "response_bytes")}
            for row in rows
        ]
        assert facts[0] == facts[1] and rows[0].person == rows[1].person
        assert bool(facts[0]["identity_flags"]) is (traits is hermann)  # a flagged identity's flags, kept too
        assert [response_of(env.journal, row) for row in rows] == [first.body, first.body]


def test_the_content_type_is_read_as_starlette_reads_it() -> None:
    """:func:`mock_services.insi.service.content_type_of`: the first ``content-type`` header, ``""`` without one."""
    for raw in (
        [(b"host", b"x"), (b"content-type", b'application/soap+xml; action="a"'), (b"content-type", b"text/xml")],
        [(b"host", b"x")],
        [],
        [(b"content-type", b"caf\xe9")],
    ):
        scope = {"type": "http", "method": "POST", "path": "/", "headers": raw}
        assert content_type_of(scope) == Request(scope).headers.get("content-type", "")


# --------------------------------------------------------------------------------------------------------------
# mutual TLS and software authorisation


def test_no_client_certificate_is_refused_with_desir_560(env: SocleEnvironment) -> None:
    mark = env.journal.last_seq()
    assert_fault(post(env, request(), certificate=None), "Sender", "desir_560", subcode="siram_100")
    [exchange] = journal_since(env, mark)
    assert exchange.outcome is Outcome.REJECTED and exchange.details["client_cn"] is None


def test_a_certificate_that_is_not_an_insi_one_is_refused_with_desir_560(env: SocleEnvironment) -> None:
    fault = assert_fault(
        post(env, request(), certificate="ORG-ETABLISSEMENT"), "Sender", "desir_560", subcode="siram_100"
    )
    assert fault.error_text == "Niveau d'accès insuffisant."


def test_unknown_idam_gets_the_real_fault(env: SocleEnvironment) -> None:
    mark = env.journal.last_seq()
    answer = post(env, request(idam="INCONNU-42", message_id="abc"))
    fault = assert_fault(answer, "Sender", "desir_550", subcode="siram_100")
    assert fault.error_text == "Numéro d'autorisation du logiciel inconnu."
    assert fault.reason.startswith("L'accès par ce progiciel au service n'est pas autorisé.")
    assert b'messageID="uuid:abc"' in answer.body and b'severite="erreur"' in answer.body
    assert b"socle-harness.toml" not in answer.body  # the hint is the harness's, never in the CNAM answer
    # the journal (its reason column) says what the operator does: declare the IDAM in the configuration
    [exchange] = journal_since(env, mark)
    remedy = (
        "IDAM « INCONNU-42 » non déclaré au simulateur : si c'est le numéro d'autorisation de votre DUI, "
        'déclarez-le dans socle-harness.toml, [settings.insi] authorised_idam = ["INCONNU-42"]'
    )
    assert (exchange.details["idam_refused"], exchange.details["remedy"]) == ("INCONNU-42", remedy)
    assert exchange.error_message == (f"env:Sender/siram_100: Numéro d'autorisation du logiciel inconnu. — {remedy}")


def test_a_client_certificate_from_another_ca_fails_the_handshake(env: SocleEnvironment, tmp_path: Path) -> None:
    from harness.fields.pki import TestPKI

    other = TestPKI.create(tmp_path / "other", organisation_clients=("INSI-AUTO",))
    ctx = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    ctx.load_cert_chain(str(other.client("INSI-AUTO").cert_path), str(other.client("INSI-AUTO").key_path))
    port = int(env.endpoints["insi"]["soap"].split(":")[2].split("/")[0])
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        connection.request("POST", "/insi/lps", body=request(), headers={"Content-Type": CONTENT_TYPE})
        connection.getresponse().read()
    connection.close()
    assert post(env, request()).result.code == "00"  # still serving


# --------------------------------------------------------------------------------------------------------------
# bad input: SOAP 1.2 faults, service up, nothing lost

XXE = b"""<?xml version="1.0"?><!DOCTYPE soap:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>&xxe;</soap:Body></soap:Envelope>"""

BAD_INPUTS = {
    "missing ContexteBAM": (envelope(headers(bam=False), recsans()), "Sender", "INSI-ENTETE-ABSENTE", 500),
    "missing ContexteLPS": (envelope(headers(lps=False), recsans()), "Sender", "INSI-ENTETE-ABSENTE", 500),
    "no header at all": (envelope("", recsans()), "Sender", "INSI-ENTETE-ABSENTE", 500),
    "unknown envelope namespace": (
        envelope(headers(), recsans(), soap_ns="urn:pas-soap"),
        "VersionMismatch",
        "INSI-SOAP-VERSION",
        500,
    ),
    "Cyrillic name": (envelope(headers(), recsans(name="ИВАНОВ")), "Sender", "INSI-TRAIT-INVALIDE", 500),
    "Greek first name": (envelope(headers(), recsans(first="ΕΛΕΝΗ")), "Sender", "INSI-TRAIT-INVALIDE", 500),
    "CJK name": (envelope(headers(), recsans(name="王")), "Sender", "INSI-TRAIT-INVALIDE", 500),
    "Arabic name": (envelope(headers(), recsans(name="محمد")), "Sender", "INSI-TRAIT-INVALIDE", 500),
    "Hebrew name": (envelope(headers(), recsans(name="כהן")), "Sender", "INSI-TRAIT-INVALIDE", 500),
    "birth date after today": (envelope(headers(), recsans(birth="2099-01-01")), "Sender", "INSI-TRAIT-INVALIDE", 500),
    "ContexteBAM Version 01_01": (
        envelope(headers().replace('Version="01_02"', 'Version="01_01"'), recsans()),
        "Sender",
        "INSI-ENTETE-INVALIDE",
        500,
    ),
    "ContexteLPS Version 2": (
        envelope(headers().replace('Version="01_00"', 'Version="2"'), recsans()),
        "Sender",
        "INSI-ENTETE-INVALIDE",
        500,
    ),
    "body in no namespace": (envelope(headers(), recsans(ns="")), "Sender", "INSI-CORPS-INVALIDE", 500),
    "body in the response namespace": (
        envelope(headers(), recsans(ns="http://www.cnamts.fr/INSiResultat")),
        "Sender",
        "INSI-CORPS-INVALIDE",
        500,
    ),
    "headers in the wrong namespace": (
        envelope(headers().replace("urn:siram:bam:ctxbam", "urn:x"), recsans()),
        "Sender",
        "INSI-ENTETE-ABSENTE",
        500,
    ),
    "date 1990-13-45": (envelope(headers(), recsans(birth="1990-13-45")), "Sender", "INSI-TRAIT-INVALIDE", 500),
    "date 31/12/1990": (envelope(headers(), recsans(birth="31/12/1990")), "Sender", "INSI-TRAIT-INVALIDE", 500),
    "10,000-character name": (envelope(headers(), recsans(name="A" * 10_000)), "Sender", "INSI-TRAIT-INVALIDE", 500),
    "10,000-character first name": (
        envelope(headers(), recsans(first="B" * 10_000)),
        "Sender",
        "INSI-TRAIT-INVALIDE",
        500,
    ),
    "digits in the name": (envelope(headers(), recsans(name="MART1N")), "Sender", "INSI-TRAIT-INVALIDE", 500),
    "sex X": (envelope(headers(), recsans(sex="X")), "Sender", "INSI-TRAIT-INVALIDE", 500),
    "no birth date": (
        envelope(headers(), recsans().replace("<DateNaissance>1938-04-12</DateNaissance>", "")),
        "Sender",
        "INSI-TRAIT-ABSENT",
        500,
    ),
    "traits out of order": (
        envelope(
            headers(),
            recsans().replace("<Sexe>F</Sexe>", "").replace("</RECSANSVITALE>", "<Sexe>F</Sexe></RECSANSVITALE>"),
        ),
        "Sender",
        "INSI-CORPS-INVALIDE",
        500,
    ),
    "IDAM missing": (
        envelope(headers().replace('<ctxlps:IDAM R="4">' + REFERENCE_IDAM + "</ctxlps:IDAM>", ""), recsans()),
        "Sender",
        "INSI-LPS-INCOMPLET",
        500,
    ),
    "Temps not a dateTime": (
        envelope(headers().replace("2024-01-01T10:00:00Z", "hier"), recsans()),
        "Sender",
        "INSI-ENTETE-INVALIDE",
        500,
    ),
    "unknown mustUnderstand header": (
        envelope(headers(extra='<x:Secret xmlns:x="urn:x" soap:mustUnderstand="true"/>'), recsans()),
        "MustUnderstand",
        "INSI-MUST-UNDERSTAND",
        500,
    ),
    "XXE": (XXE, "Sender", "INSI-XML-DOCTYPE", 500),
    "billion laughs": (BILLION_LAUGHS, "Sender", "INSI-XML-DOCTYPE", 500),
    "not XML": (b"\x00\xffnot xml at all", "Sender", "INSI-XML-MALFORME", 500),
    "truncated XML": (request()[:300], "Sender", "INSI-XML-MALFORME", 500),
    "empty body": (b"", "Sender", "INSI-XML-MALFORME", 500),
    "not an envelope": (b"<RECSANSVITALE/>", "Sender", "INSI-SOAP-ENVELOPPE", 500),
    "body of another operation": (
        envelope(headers(), '<RECVITALE xmlns="http://www.cnamts.fr/INSiRecVit"/>'),
        "Sender",
        "INSI-ACTION-INCONNUE",
        500,
    ),
    "too large": (b"<a>" + b"x" * 300_000 + b"</a>", "Sender", "INSI-XML-TROP-VOLUMINEUX", 413),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_a_soap_12_fault_is_journaled_and_the_service_stays_up(env: SocleEnvironment, case: str) -> None:
    body, soap_code, error_code, status = BAD_INPUTS[case]
    mark = env.journal.last_seq()
    assert_fault(post(env, body), soap_code, error_code, status=status)
    [exchange] = journal_since(env, mark)
    assert exchange.outcome is Outcome.REJECTED and exchange.error_code == error_code
    assert post(env, request()).result.code == "00"


def test_wrong_action_and_content_type(env: SocleEnvironment) -> None:
    assert_fault(
        post(env, request(), content_type='application/soap+xml; action="urn:autre"'), "Sender", "INSI-ACTION-INCONNUE"
    )
    assert_fault(
        post(env, request(), content_type="text/xml; charset=utf-8"), "Sender", "INSI-CONTENT-TYPE", status=415
    )
    assert post(env, request(), content_type="application/soap+xml").result.code == "00"  # action only in wsa:Action


def test_carte_vitale_operation_is_not_simulated(env: SocleEnvironment) -> None:
    body = envelope(headers(), '<RECVITALE xmlns="http://www.cnamts.fr/INSiRecVit"/>')
    action = "urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecCarteVitale"
    assert_fault(
        post(env, body, content_type=f'application/soap+xml; action="{action}"'), "Sender", "INSI-OPERATION-NON-SIMULEE"
    )


def test_version_mismatch_carries_the_upgrade_header(env: SocleEnvironment) -> None:
    body = post(env, BAD_INPUTS["unknown envelope namespace"][0]).body
    root = parse_xml(body)
    supported = root.find(f"{{{SOAP12}}}Header/{{{SOAP12}}}Upgrade/{{{SOAP12}}}SupportedEnvelope")
    assert supported is not None and supported.get("qname") == "ns1:Envelope"


SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"


@pytest.mark.parametrize("content_type", ["text/xml; charset=utf-8", CONTENT_TYPE])
def test_a_soap_11_envelope_gets_a_soap_11_version_mismatch(env: SocleEnvironment, content_type: str) -> None:
    """SOAP 1.2 Part 1 §5.4.7 / appendix A: a SOAP/1.1 fault (faultcode VersionMismatch) with the Upgrade header."""
    mark = env.journal.last_seq()
    answer = post(env, envelope(headers(), recsans(), soap_ns=SOAP11), content_type=content_type)
    assert answer.status == 500 and answer.content_type == "text/xml; charset=utf-8"
    root = parse_xml(answer.body)
    assert root.tag == f"{{{SOAP11}}}Envelope"
    [fault] = root.findall(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert [child.tag for child in fault] == ["faultcode", "faultstring"]
    code = fault.findtext("faultcode")
    prefix, _, local = code.partition(":")
    assert local == "VersionMismatch" and fault.nsmap[prefix] == SOAP11
    [supported] = root.findall(f"{{{SOAP11}}}Header/{{{SOAP12}}}Upgrade/{{{SOAP12}}}SupportedEnvelope")
    qprefix, _, qlocal = supported.get("qname").partition(":")
    assert qlocal == "Envelope" and supported.nsmap[qprefix] == SOAP12
    [exchange] = journal_since(env, mark)
    assert exchange.outcome is Outcome.REJECTED and exchange.error_code == "INSI-SOAP-VERSION"
    assert exchange.details["fault"]["soap_code"] == "env:VersionMismatch"
    assert exchange.details["fault"]["soap_version"] == "1.1"
    assert response_of(env.journal, exchange) == answer.body  # the fault sent is evidence too
    assert post(env, request()).result.code == "00"


def test_trait_and_date_refusals_name_the_problem(env: SocleEnvironment) -> None:
    cyrillic = post(env, envelope(headers(), recsans(name="ИВАНОВ"))).fault
    assert cyrillic.error_text == (
        "Body/RECSANSVITALE/NomNaissance: NomNaissance : caractères hors du jeu de caractères INSi ('И' (U+0418), "
        "'В' (U+0412), 'А' (U+0410), 'Н' (U+041D), 'О' (U+041E)) : lettres latines (accents admis), espace, tiret et "
        "apostrophe seulement"
    )
    future = post(env, envelope(headers(), recsans(birth="2099-01-01"))).fault
    today = date.today().isoformat()
    assert future.error_text == (
        f"Body/RECSANSVITALE/DateNaissance: DateNaissance '2099-01-01' postérieure à la date du jour ({today}) : "
        "une date de naissance est passée"
    )


def test_french_names_with_diacritics_and_ligatures_are_in_the_insi_character_set(env: SocleEnvironment) -> None:
    answer = post(env, envelope(headers(), recsans(name="Œuvré D’Arc-Lefèvre", first="Hélène")))
    assert answer.status == 200 and answer.result.code == "01"


def test_must_understand_fault_names_the_header(env: SocleEnvironment) -> None:
    body = post(env, BAD_INPUTS["unknown mustUnderstand header"][0]).body
    root = parse_xml(body)
    [block] = root.findall(f"{{{SOAP12}}}Header/{{{SOAP12}}}NotUnderstood")
    prefix, _, local = block.get("qname").partition(":")
    assert local == "Secret" and block.nsmap[prefix] == "urn:x"


def test_get_is_not_allowed(env: SocleEnvironment) -> None:
    answer = post(env, b"", method="GET")
    assert answer.status == 405


def test_concurrent_hostile_and_valid_requests_lose_nothing(env: SocleEnvironment) -> None:
    bodies = [BAD_INPUTS[name][0] for name in sorted(BAD_INPUTS)] * 2 + [request() for _ in range(40)]
    mark = env.journal.last_seq()
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda b: post(env, b), bodies))
    recorded = journal_since(env, mark)
    assert len(recorded) == len(bodies)
    assert sum(a.status == 200 for a in answers) == 40 == sum(e.outcome is Outcome.ACCEPTED for e in recorded)
    assert sorted(response_of(env.journal, e) for e in recorded if e.outcome is Outcome.ACCEPTED) == sorted(
        a.body for a in answers if a.status == 200
    )
    assert post(env, request()).result.code == "00"


# --------------------------------------------------------------------------------------------------------------
# faults on demand


def test_service_unavailable_soap_fault(env: SocleEnvironment) -> None:
    env.host.faults.inject("insi", Fault("insi.indisponible"))
    fault = assert_fault(post(env, request()), "Receiver", "insi_102", subcode="siram_40")
    assert fault.severity == "fatale" and fault.reason.startswith("Le service est temporairement inaccessible.")
    assert post(env, request()).result.code == "00"


def test_a_fault_aimed_at_a_session_is_taken_by_its_establishments_requests_only(env: SocleEnvironment) -> None:
    """Issue 19 item 4: the establishment the request's Emetteur names is the exchange's session."""
    book = env.host.sessions
    other = book.create("DUI du SSIAD", Members(essms=("990000024",)))
    mine = book.create("DUI de l'EHPAD", Members(essms=(TILLEULS,)))
    try:
        env.host.faults.inject("insi", Fault("insi.indisponible", session=other.id))
        assert post(env, request()).result.code == "00"  # the EHPAD's request: not taken
        env.host.faults.inject("insi", Fault("insi.indisponible", session=mine.id))
        assert_fault(post(env, request()), "Receiver", "insi_102", subcode="siram_40")
        assert post(env, request()).result.code == "00"
    finally:
        book.close(mine.id)
        book.close(other.id)


def test_service_unavailable_http_503(env: SocleEnvironment) -> None:
    mark = env.journal.last_seq()
    env.host.faults.inject("insi", Fault("insi.indisponible", {"mode": "http"}))
    answer = post(env, request())
    assert answer.status == 503 and answer.headers.get("retry-after") == "30"
    [exchange] = journal_since(env, mark)
    assert exchange.outcome is Outcome.REJECTED and exchange.error_code == "HTTP 503"


@pytest.mark.parametrize("code", ["desir_550", "desir_560", "insi_102"])
def test_injected_cnam_faults(env: SocleEnvironment, code: str) -> None:
    env.host.faults.inject("insi", Fault("insi.faute", {"code": code}))
    mark = env.journal.last_seq()
    assert post(env, request()).fault.error_code == code
    [exchange] = journal_since(env, mark)
    assert "remedy" not in exchange.details  # a fault the scenario asked for is no configuration problem


def test_delay_makes_the_client_time_out_but_the_exchange_is_recorded(env: SocleEnvironment) -> None:
    mark = env.journal.last_seq()
    env.host.faults.inject("insi", Fault("insi.delai", {"seconds": 1}))
    with pytest.raises(TimeoutError):
        post(env, request(), timeout=0.3)
    [exchange] = journal_since(env, mark)
    assert exchange.details["delay_seconds"] == 1 and exchange.outcome is Outcome.ACCEPTED
    assert post(env, request()).result.code == "00"  # the delayed answer does not block other calls


# --------------------------------------------------------------------------------------------------------------
# settings


def test_qualification_identities_can_be_switched_off(tmp_path: Path) -> None:
    cfg = HarnessConfig(
        run_dir=tmp_path,
        journal=f"sqlite:///{tmp_path}/j.sqlite",
        services=("insi",),
        settings={"insi": {"qualification_identities": False, "synthetic_identities": 0, "authorised_idam": ["*"]}},
    )
    env = SocleEnvironment(cfg)
    env.start()
    try:
        assert post(env, request(InsiTraits("TCHITCHI", ("CATARINA",), "F", "1936-06-21"))).result.code == "01"
        assert post(env, request(InsiTraits("X", ("MATRICULE",), "M", "2001-01-01"))).result.code == "01"
        assert post(env, request(idam="ANY")).result.code == "00"  # "*" authorises any IDAM
    finally:
        env.stop()


def test_injected_delay_is_capped(env: SocleEnvironment) -> None:
    # max_delay_seconds (1.5 s in this module, 120 s by default) caps an injected delay.
    mark = env.journal.last_seq()
    env.host.faults.inject("insi", Fault("insi.delai", {"seconds": 10_000}))
    with pytest.raises(TimeoutError):
        post(env, request(), timeout=0.3)
    [exchange] = journal_since(env, mark)
    assert exchange.details["delay_seconds"] == 1.5


def test_emitter_mailbox_maps_to_the_establishment(env: SocleEnvironment) -> None:
    mark = env.journal.last_seq()
    post(env, request(emitter="dui@ssiad-val.mssante.fr"))
    [exchange] = journal_since(env, mark)
    assert exchange.essms == "990000024"
