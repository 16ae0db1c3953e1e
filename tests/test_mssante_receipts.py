"""MDN validation (RFC 8098 + ANS volet), MDN submissions judged by the simulator, mail sent to the DUI, the
directory FHIR search and the SMTP faults a scenario can inject."""

from __future__ import annotations

import json
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email import policy
from email.header import Header
from email.parser import BytesParser

import pytest

from harness.core.config import HarnessConfig
from harness.core.journal import JournalFilter, Outcome
from harness.core.sessions import Members
from harness.host.admin import admin_headers
from harness.host.simulator import Fault
from harness.runtime.environment import SocleEnvironment
from harness.sut.mssante_messages import MdnOptions, build_mdn, build_message
from harness.validators import Severity
from harness.validators.mdn import validate_mdn

DUI = "dui@ehpad-tilleuls.mssante.fr"
DUI_PASSWORD = "dui-tilleuls-test"
DOCTOR = "jean.dupont@medecin.mssante.fr"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    tmp = tmp_path_factory.mktemp("mssante-receipts")
    env = SocleEnvironment(HarnessConfig(run_dir=tmp, journal=f"sqlite:///{tmp}/journal.sqlite", services=("mssante",)))
    env.start()
    yield env
    env.stop()


def original(env: SocleEnvironment) -> bytes:
    person = env.testdata.person("P001")
    partner = env.testdata.establishment("990000016")
    return build_message(person, partner, DOCTOR, [DUI], ("DLU",), read_receipt_to=DOCTOR).as_bytes()


def submit(
    env: SocleEnvironment, data: bytes, recipients: list[str], sender: str = DUI, envelope_sender: str | None = None
) -> tuple[int, str]:
    host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")
    with smtplib.SMTP(host, int(port), timeout=15) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=str(env.pki.ca_bundle_path)))
        smtp.login(sender, DUI_PASSWORD)
        code, text = smtp.mail(sender if envelope_sender is None else envelope_sender)
        if code != 250:
            return code, text.decode("ascii", "replace")
        for rcpt in recipients:
            smtp.rcpt(rcpt)
        code, text = smtp.data(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))  # CRLF on the wire
    return code, text.decode("ascii", "replace")


# --------------------------------------------------------------------------------------------------------------
# the validator alone


@pytest.mark.parametrize("legacy", [False, True])
def test_error_mdn_in_both_volet_forms(legacy: bool) -> None:
    mdn = build_mdn(
        b"Message-ID: <a@b>\r\nSubject: XDM/1.0/DDM+DLU\r\nDisposition-Notification-To: x@y\r\n\r\nbody",
        reporter=DUI,
        reporter_name="EHPAD",
        error=("904", "INS discordant"),
        options=MdnOptions(legacy_error_form=legacy),
    )
    report = validate_mdn(mdn.as_bytes())
    assert report.errors == [] and report.error_code == "904" and not report.processed
    assert report.original_message_id == "<a@b>" and report.final_recipient == DUI


def test_processed_mdn_is_clean() -> None:
    report = validate_mdn(
        build_mdn(b"Message-ID: <a@b>\r\nSubject: s\r\n\r\nx", reporter=DUI, reporter_name="E").as_bytes()
    )
    assert report.processed and report.errors == []


def _mdn(
    disposition: str,
    *,
    subject: str = "XDM/1.0/DDM+x",
    raw_subject: bool = False,
    text: str = "lisible",
    extra: str = "",
    content_type: str = "multipart/report; report-type=disposition-notification",
) -> bytes:
    """An MDN; a non-ASCII ``subject`` is RFC 2047-encoded (a 7-bit header), or sent as raw UTF-8 if asked."""
    if not raw_subject and not subject.isascii():
        subject = Header(subject, "utf-8").encode()
    return (
        f"From: {DUI}\r\nTo: {DOCTOR}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: {content_type}; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: text/plain\r\n\r\n{text}\r\n"
        "--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
        f"Final-Recipient: rfc822;{DUI}\r\nOriginal-Recipient: rfc822;{DUI}\r\nOriginal-Message-ID: <m@x>\r\n"
        f"Disposition: {disposition}\r\n{extra}\r\n--b--\r\n"
    ).encode("utf-8")


E902 = "automatic-action/MDN-sent-automatically; processed/Error: 902^Identifiant patient inconnu"
KO_904 = "[KO Intégration système !][904] x"
E, W = Severity.ERROR, Severity.WARNING


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            _mdn(
                "automatic-action/MDN-sent-automatically; processed/Error: 999^inconnu",
                subject="[KO Intégration système !][999] x",
            ),
            [("MDN-ERROR-CODE", E), ("MDN-TEXT-CODE", W)],
            id="code-outside-table",
        ),
        pytest.param(
            _mdn("automatic-action/MDN-sent-automatically; processed/error"), [("MDN-ERROR-FIELD", E)], id="no-error"
        ),
        pytest.param(_mdn(E902, text="erreur 902"), [("MDN-SUBJECT", E)], id="no-ko-subject"),
        pytest.param(_mdn(E902, subject=KO_904, text="erreur 902"), [("MDN-SUBJECT", E)], id="904-vs-902-rfc2047"),
        pytest.param(
            _mdn(E902, subject=KO_904, raw_subject=True, text="erreur 902"),
            [("MIME-8BIT-HEADER", E), ("MDN-SUBJECT", E)],
            id="904-vs-902-raw-utf8",
        ),
        pytest.param(_mdn("n'importe quoi"), [("MDN-DISPOSITION", E)], id="illegible"),
        pytest.param(
            _mdn("automatic-action/MDN-sent-automatically; displayed"), [("MDN-NOT-PROCESSED", E)], id="displayed"
        ),
        pytest.param(
            _mdn("automatic-action/MDN-sent-automatically; processed", content_type="multipart/mixed"),
            [("MDN-NOT-REPORT", E)],
            id="mixed",
        ),
        pytest.param(b"\xff\xfe\x00garbage\r\n\r\n", [("MDN-NOT-REPORT", E)], id="garbage"),
    ],
)
def test_bad_mdns_give_exactly_their_findings(data: bytes, expected: list[tuple[str, Severity]]) -> None:
    assert [(f.code, f.severity) for f in validate_mdn(data).findings] == expected


@pytest.mark.parametrize("raw_subject", [False, True], ids=["rfc2047", "raw-utf8"])
def test_subject_code_904_against_disposition_902_is_the_code_mismatch(raw_subject: bool) -> None:
    """The finding names the mismatch itself (904 in the Subject, 902 in Disposition), whichever way the accents
    travel: RFC 2047 encoded words, or raw UTF-8 (read per RFC 6532 §3.2, with a warning)."""
    report = validate_mdn(_mdn(E902, subject=KO_904, raw_subject=raw_subject, text="erreur 902"))
    [mismatch] = [f for f in report.findings if f.code == "MDN-SUBJECT"]
    assert mismatch.message == "code 904 dans l'objet mais 902 dans Disposition"
    assert report.subject == KO_904 and report.error_code == "902"
    same_code = validate_mdn(_mdn(E902, subject=KO_904.replace("904", "902"), raw_subject=raw_subject, text="902"))
    assert [f.code for f in same_code.findings] == (["MIME-8BIT-HEADER"] if raw_subject else [])


def test_broken_boundaries_and_8bit_headers_do_not_crash() -> None:
    broken = _mdn("automatic-action/MDN-sent-automatically; processed").replace(b"--b--", b"")
    broken = broken.replace(b"Subject: XDM", b"Subject: \xe9\xff XDM")
    report = validate_mdn(broken)
    assert report.is_mdn  # still read; the missing close boundary is not fatal for the fields
    assert [(f.code, f.severity) for f in report.findings] == [("MIME-8BIT-HEADER", E)]
    assert report.subject == "\ufffd\ufffd XDM/1.0/DDM+x"


# --------------------------------------------------------------------------------------------------------------
# the simulator


def test_mdn_for_a_message_sent_to_the_dui_is_accepted_and_delivered(env: SocleEnvironment) -> None:
    sim = env.host.simulators["mssante"]
    inbound = sim.flow.send_to_dui(original(env), sender=DOCTOR, mailbox=DUI, person="238047505612394")  # type: ignore[attr-defined]
    copy = sim.store.messages(DUI)[-1]  # type: ignore[attr-defined]
    assert copy.exchange_id == inbound.exchange.id and copy.data.startswith(b"Return-Path: <" + DOCTOR.encode())
    mdn = build_mdn(
        inbound.message.data,
        reporter=DUI,
        reporter_name="EHPAD Les Tilleuls",
        error=("902", "Identifiant patient inconnu"),
    )
    code, text = submit(env, mdn.as_bytes(), [DOCTOR])
    assert code == 250, text
    [judged] = [
        e
        for e in env.journal.query(JournalFilter(run_id=env.run_id, operation="smtp.mdn"))
        if e.details.get("original_exchange") == inbound.exchange.id
    ]
    assert (
        judged.outcome is Outcome.ACCEPTED
        and judged.details["error_code"] == "902"
        and judged.person == "238047505612394"
    )
    assert any(m.exchange_id == judged.id for m in sim.store.messages(DOCTOR))  # type: ignore[attr-defined]


def test_mdn_with_a_null_envelope_sender_is_accepted_but_only_for_read_receipts(env: SocleEnvironment) -> None:
    """RFC 8098 §3: the envelope sender of an MDN is null (MAIL FROM:<>); the authenticated mailbox answers for it."""
    sim = env.host.simulators["mssante"]
    inbound = sim.flow.send_to_dui(original(env), sender=DOCTOR, mailbox=DUI, person="238047505612394")  # type: ignore[attr-defined]
    mdn = build_mdn(inbound.message.data, reporter=DUI, reporter_name="EHPAD Les Tilleuls")
    code, text = submit(env, mdn.as_bytes(), [DOCTOR], envelope_sender="")
    assert code == 250, text
    [judged] = [
        e
        for e in env.journal.query(JournalFilter(run_id=env.run_id, operation="smtp.mdn"))
        if e.details.get("original_exchange") == inbound.exchange.id
    ]
    assert judged.outcome is Outcome.ACCEPTED and judged.details["from"] is None
    code, text = submit(env, original(env), [DOCTOR], envelope_sender="")  # not a read receipt
    assert code == 550 and "RFC 8098" in text
    refused = env.journal.query(JournalFilter(run_id=env.run_id, operation="smtp.submit", outcome=Outcome.REJECTED))
    assert refused and refused[-1].error_code == "550 5.7.1"


def test_mdn_referencing_an_unknown_message_is_refused(env: SocleEnvironment) -> None:
    mdn = build_mdn(
        b"Message-ID: <jamais-vu@nulle-part>\r\nSubject: s\r\nDisposition-Notification-To: "
        + DOCTOR.encode()
        + b"\r\n\r\nx",
        reporter=DUI,
        reporter_name="E",
    )
    code, text = submit(env, mdn.as_bytes(), [DOCTOR])
    assert code == 554 and "MDN-ORIGINAL-UNKNOWN" in text
    refused = env.journal.query(JournalFilter(run_id=env.run_id, operation="smtp.mdn", outcome=Outcome.REJECTED))
    assert refused and refused[-1].error_code == "554 5.6.0"


def test_mdn_sent_to_the_wrong_address_is_refused(env: SocleEnvironment) -> None:
    sim = env.host.simulators["mssante"]
    inbound = sim.flow.send_to_dui(original(env), sender=DOCTOR, mailbox=DUI)  # type: ignore[attr-defined]
    mdn = build_mdn(inbound.message.data, reporter=DUI, reporter_name="E")
    code, text = submit(env, mdn.as_bytes(), ["claire.bernard@ch-exemple.mssante.fr"])
    assert code == 554 and "MDN-TO" in text


def test_directory_fhir_search(env: SocleEnvironment) -> None:
    base = env.endpoints["mssante"]["directory"]
    ctx = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))

    def get(query: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"{base}/PractitionerRole?{query}", context=ctx, timeout=15) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, bundle = get("mailbox-mss=jean.dupont")
    assert (
        status == 200 and bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset" and bundle["total"] == 1
    )
    telecom = bundle["entry"][0]["resource"]["telecom"][0]
    assert telecom["value"] == DOCTOR and telecom["extension"][0]["extension"][0] == {
        "url": "type",
        "valueString": "PER",
    }
    assert get("mailbox-mss:exact=JEAN.DUPONT@medecin.mssante.fr")[1]["total"] == 0
    assert get("mailbox-mss:contains=ehpad-tilleuls&mailbox-mss-type=ORG,APP")[1]["total"] == 2
    assert get("mailbox-mss:contains=patient.mssante.fr")[1]["total"] == 0  # patient mailboxes are not published
    status, outcome = get("name=dupont")
    assert status == 400 and outcome["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("fault", "stage_code"),
    [
        (Fault("mssante.mailbox_full", {"address": DOCTOR}), 552),
        (Fault("mssante.tls_required"), 530),
        (Fault("mssante.smtp_reply", {"code": "451 4.3.0", "message": "reessayez"}), 451),
    ],
)
def test_smtp_faults_give_the_protocol_reply_and_are_journaled(
    env: SocleEnvironment, fault: Fault, stage_code: int
) -> None:
    env.host.faults.inject("mssante", fault)
    person = env.testdata.person("P001")
    establishment = env.testdata.establishment("990000016")
    msg = build_message(person, establishment, DUI, [DOCTOR], ("DLU",))
    before = env.journal.count(JournalFilter(run_id=env.run_id, outcome=Outcome.REJECTED))
    host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")
    with smtplib.SMTP(host, int(port), timeout=15) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=str(env.pki.ca_bundle_path)))
        smtp.login(DUI, DUI_PASSWORD)
        with pytest.raises(
            (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused)
        ) as caught:
            smtp.send_message(msg, from_addr=DUI, to_addrs=[DOCTOR])
    exc = caught.value
    code = exc.recipients[DOCTOR][0] if isinstance(exc, smtplib.SMTPRecipientsRefused) else exc.smtp_code
    assert code == stage_code
    assert env.journal.count(JournalFilter(run_id=env.run_id, outcome=Outcome.REJECTED)) == before + 1
    env.host.faults.clear()


def test_a_mailbox_full_fault_for_another_recipient_keeps_exactly_its_occurrences(env: SocleEnvironment) -> None:
    """``mailbox_full`` for DOCTOR, twice: a message to someone else first takes and gives back one occurrence;
    DOCTOR is then refused exactly twice, and the third message goes through (the occurrence given back used to
    carry the count from before the take: 2 + 2 occurrences)."""
    env.host.faults.inject("mssante", Fault("mssante.mailbox_full", {"address": DOCTOR}, remaining=2))
    other = "secretariat@ehpad-tilleuls.mssante.fr"
    host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")

    def rcpt(address: str) -> int:
        with smtplib.SMTP(host, int(port), timeout=15) as smtp:
            smtp.starttls(context=ssl.create_default_context(cafile=str(env.pki.ca_bundle_path)))
            smtp.login(DUI, DUI_PASSWORD)
            smtp.mail(DUI)
            code, _ = smtp.rcpt(address)
            smtp.rset()
            return code

    try:
        assert [rcpt(other), rcpt(DOCTOR), rcpt(DOCTOR), rcpt(DOCTOR)] == [250, 552, 552, 250]
    finally:
        env.host.faults.clear()


def _timed_data(env: SocleEnvironment, data: bytes) -> tuple[int, float]:
    """Submit one message; the SMTP reply code to DATA and the seconds that reply took."""
    host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")
    with smtplib.SMTP(host, int(port), timeout=15) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=str(env.pki.ca_bundle_path)))
        smtp.login(DUI, DUI_PASSWORD)
        smtp.mail(DUI)
        smtp.rcpt(DOCTOR)
        started = time.monotonic()
        code, _ = smtp.data(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        return code, time.monotonic() - started


def test_slow_server_delays_its_data_reply_then_accepts(env: SocleEnvironment) -> None:
    """``server.slow``: the reply to DATA comes ``seconds`` late (then 250); the next message is answered at once."""
    msg = build_message(env.testdata.person("P001"), env.testdata.establishment("990000016"), DUI, [DOCTOR], ("DLU",))
    env.host.faults.inject("mssante", Fault("mssante.slow_server", {"seconds": 1.0}))
    slow_code, slow = _timed_data(env, msg.as_bytes())
    normal_code, normal = _timed_data(env, msg.as_bytes())
    assert (slow_code, normal_code) == (250, 250)
    assert slow >= 1.0 and slow - normal >= 0.5, (slow, normal)


def test_certificate_refused_fault_on_smtp_starttls(env: SocleEnvironment) -> None:
    env.host.faults.inject("mssante", Fault("mssante.tls_certificate_refused"))
    host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")
    ctx = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    issued = env.pki.client("MSS-990000016")
    ctx.load_cert_chain(issued.chain_path, issued.key_path)
    with pytest.raises((ssl.SSLError, smtplib.SMTPException, OSError)):
        with smtplib.SMTP(host, int(port), timeout=15) as smtp:
            smtp.starttls(context=ctx)
            smtp.ehlo()
            smtp.noop()
    assert env.journal.query(JournalFilter(run_id=env.run_id, operation="smtp.starttls", outcome=Outcome.REJECTED))
    msg = build_message(env.testdata.person("P001"), env.testdata.establishment("990000016"), DUI, [DOCTOR], ("DLU",))
    assert submit(env, msg.as_bytes(), [DOCTOR])[0] == 250  # the next client is served normally


def test_external_auth_on_smtp_with_the_organisation_certificate(env: SocleEnvironment) -> None:
    host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")
    ctx = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    issued = env.pki.client("MSS-990000016")
    ctx.load_cert_chain(issued.chain_path, issued.key_path)
    with smtplib.SMTP(host, int(port), timeout=15) as smtp:
        smtp.starttls(context=ctx)
        smtp.ehlo()
        code, _ = smtp.auth("EXTERNAL", lambda challenge=None: DUI)
        assert code == 235
    parsed = BytesParser(policy=policy.compat32).parsebytes(original(env))
    assert parsed["Disposition-Notification-To"] == DOCTOR


def test_mdn_for_another_mailbox_is_refused_as_sent_by_the_wrong_mailbox(env: SocleEnvironment) -> None:
    """The message went to the SSIAD's DUI; the EHPAD's DUI (another establishment: it may not send as it) answers
    the read receipt: MDN-FROM (RFC 8098 §2.1: the MDN comes from the recipient's mailbox), and nothing else."""
    sim = env.host.simulators["mssante"]
    other = "dui@ssiad-val.mssante.fr"
    inbound = sim.flow.send_to_dui(original(env), sender=DOCTOR, mailbox=other)  # type: ignore[attr-defined]
    mdn = build_mdn(inbound.message.data, reporter=other, reporter_name="DUI SSIAD du Val")
    code, text = submit(env, mdn.as_bytes(), [DOCTOR])
    assert code == 554 and "MDN-FROM" in text
    [judged] = [
        e
        for e in env.journal.query(JournalFilter(run_id=env.run_id, operation="smtp.mdn"))
        if e.details.get("original_exchange") == inbound.exchange.id
    ]
    assert judged.outcome is Outcome.REJECTED
    assert [(f["code"], f["severity"]) for f in judged.details["findings"]] == [("MDN-FROM", "error")]


def _rcpt(env: SocleEnvironment, address: str, sender: str = DUI, password: str = DUI_PASSWORD) -> int:
    """The reply code to ``RCPT TO:<address>`` in a transaction of ``sender`` (then RSET)."""
    host, _, port = env.endpoints["mssante"]["smtp"].rpartition(":")
    with smtplib.SMTP(host, int(port), timeout=15) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=str(env.pki.ca_bundle_path)))
        smtp.login(sender, password)
        smtp.mail(sender)
        code, _ = smtp.rcpt(address)
        smtp.rset()
        return code


def test_two_mailbox_full_faults_for_two_recipients_each_refuse_their_own(env: SocleEnvironment) -> None:
    """The second recipient's fault is taken at its first RCPT: a fault aimed at another recipient is passed over,
    not taken (the board used to take DOCTOR's, put it back, and let OTHER through: 250)."""
    other = "secretariat@ehpad-tilleuls.mssante.fr"
    env.host.faults.inject("mssante", Fault("mssante.mailbox_full", {"address": DOCTOR}))
    env.host.faults.inject("mssante", Fault("mssante.mailbox_full", {"address": other}))
    try:
        assert [_rcpt(env, other), _rcpt(env, DOCTOR), _rcpt(env, other), _rcpt(env, DOCTOR)] == [552, 552, 250, 250]
    finally:
        env.host.faults.clear()


def _inject(env: SocleEnvironment, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        env.endpoints["harness"]["base"] + "/_harness/faults",
        data=json.dumps(body).encode(),
        headers={**admin_headers(env.admin_token), "Content-Type": "application/json"},
        method="POST",
    )
    context = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    try:
        with urllib.request.urlopen(request, context=context, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_a_fault_aimed_at_a_session_is_taken_by_that_sessions_transactions_only(env: SocleEnvironment) -> None:
    """``/_harness/faults`` with ``session``: the mailbox is full for the DUI of that session only; another mailbox
    (in no session, or in another one) still reaches the recipient. The injection is journaled in the session."""
    secretariat, password = "secretariat@ehpad-tilleuls.mssante.fr", "tilleuls-test"
    mine = env.host.sessions.create("DUI A", Members(mailboxes=(DUI,)))
    try:
        status, answer = _inject(
            env,
            {"service": "mssante", "kind": "mssante.mailbox_full", "params": {"address": DOCTOR}, "session": mine.id},
        )
        assert (status, answer) == (
            201,
            {"service": "mssante", "kind": "mssante.mailbox_full", "count": 1, "session": mine.id},
        )
        [journaled] = env.journal.query(JournalFilter(service="harness", session=mine.id))
        assert (journaled.operation, journaled.outcome) == ("admin.fault", Outcome.ACCEPTED)
        assert _rcpt(env, DOCTOR, secretariat, password) == 250  # a mailbox of no session
        theirs = env.host.sessions.create("DUI B", Members(mailboxes=(secretariat,)))
        assert _rcpt(env, DOCTOR, secretariat, password) == 250  # of another session
        env.host.sessions.close(theirs.id)
        assert [_rcpt(env, DOCTOR), _rcpt(env, DOCTOR)] == [552, 250]  # the session's own: once
    finally:
        env.host.faults.clear()
        env.host.sessions.close(mine.id)


def test_a_fault_aimed_at_a_session_is_refused_when_it_cannot_be_told_apart(env: SocleEnvironment) -> None:
    mine = env.host.sessions.create("DUI A", Members(mailboxes=(DUI,)))
    try:
        assert _inject(env, {"service": "mssante", "kind": "mssante.slow_server", "session": mine.id}) == (
            400,
            {
                "erreur": "la panne mssante.slow_server survient avant que le DUI ne s'identifie : elle ne peut viser "
                "une session (pannes de mssante qui le peuvent : ['mssante.mailbox_full', 'mssante.reply_lost', "
                "'mssante.smtp_reply', 'mssante.tls_required'])"
            },
        )
        assert _inject(env, {"service": "mssante", "kind": "mssante.tls_required", "session": "nulle-part"}) == (
            400,
            {
                "erreur": "session « nulle-part » : aucune session de test ouverte de ce nom (socle-harness session list)"
            },
        )
    finally:
        env.host.sessions.close(mine.id)
    assert _rcpt(env, DOCTOR) == 250  # nothing was injected
