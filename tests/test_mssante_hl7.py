"""HL7 v2: the ANS official examples parse and round-trip (read from ../shared/corpus, skipped when absent), and
the MSSanté HL7 v2 relay answers over MLLP — ACK, routing to the mailboxes, ZAM^Z02/Z03 business
acknowledgements — with protocol-correct answers to broken framing and unusable messages."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.core.config import HarnessConfig
from harness.core.journal import JournalFilter, Outcome
from harness.core.sessions import Members
from harness.fields import hl7v2
from harness.runtime.environment import SocleEnvironment
from harness.sut.base import ActionStatus, MssanteRelay
from harness.sut.mssante_hl7 import RelayOptions, build_document_message, relay_document

DOCTOR = "jean.dupont@medecin.mssante.fr"
FRAME_TIMEOUT = 1.0  # seconds from a block's start byte to its end (setting hl7_frame_timeout)


def corpus_messages(corpus: Path) -> list[Path]:
    folder = corpus / "hl7v2"
    if not folder.is_dir():
        pytest.skip(f"exemples HL7 v2 absents: {folder}")
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and (p.suffix in (".hl7", ".er7") or p.name.startswith("Message metier"))
    )


def _trimmed(text: str) -> list[str]:
    """Segments with trailing empty fields / components dropped (HL7 v2 §2.5.3: they carry no value)."""
    out = []
    for segment in hl7v2.normalise(text).split("\r"):
        fields = []
        for field in segment.split("|"):
            reps = ["^".join(c.rstrip("&") for c in rep.split("^")).rstrip("^") for rep in field.split("~")]
            fields.append("~".join(reps).rstrip("~"))
        out.append("|".join(fields).rstrip("|"))
    return out


def test_official_examples_parse_and_round_trip(corpus_dir: Path) -> None:
    files = corpus_messages(corpus_dir)
    assert len(files) >= 15
    for path in files:
        raw = path.read_bytes()
        message = hl7v2.parse(raw)
        assert message.message_type.split("^")[0] in {"ORU", "MDM", "ACK", "ZAM"}, path
        assert _trimmed(message.to_er7()) == _trimmed(raw.decode("utf-8")), path
        again = hl7v2.parse(message.to_er7())
        assert again.to_er7() == message.to_er7()
        for obx in message.all("OBX"):
            if hl7v2.fields_of(obx)[2] == "ED":
                assert hl7v2.ed_data(obx), path


def _built_answers() -> list[str]:
    received = hl7v2.Header("DUI", "EHPAD", "PFI-SOCLE", "SIMULATEUR", "DUI42", "R01", "2.5")
    item = hl7v2.ZamItem("ACK_RECEPTION_MSS", "Accusé | réception", True, "DESTINATAIRE_MSS", "Destinataire", DOCTOR)
    return [
        hl7v2.build_ack(received, "AA", control_id="A1"),
        hl7v2.build_ack(received, "AE", control_id="A2", error=("103", "type ^ inconnu", "E"), location="PID^1^3"),
        hl7v2.build_zam("Z02", received, control_id="Z1", items=[item, item], original_control_id="DUI42"),
    ]


def test_scan_reads_every_field_as_parse_does(corpus_dir: Path) -> None:
    """The reference DUI reads the platform's answers with ``scan`` (no hl7apy tree): every field of every segment,
    the message type, control id and answer header come out as ``parse`` gives them (up to the trailing empty
    fields and components hl7apy drops or pads, which carry no value)."""
    texts = [*_built_answers(), *(p.read_bytes().decode("utf-8") for p in corpus_messages(corpus_dir))]
    for text in texts:
        parsed, scanned = hl7v2.parse(text), hl7v2.scan(text)
        assert [s.name for s in scanned.segments] == [s.name for s in parsed.segments]
        assert (scanned.message_type, scanned.control_id, scanned.version) == (
            parsed.message_type,
            parsed.control_id,
            parsed.version,
        )
        header = hl7v2.Header.of(scanned)
        assert header == hl7v2.Header.of(parsed)
        for ours, theirs in zip(scanned.segments, parsed.segments, strict=True):
            if ours.name == "MSH":  # parse reads MSH-12 as 2.7 (module docstring); the version is kept aside
                continue
            for number in range(40):
                assert _trimmed(hl7v2.field_text(ours, number)) == _trimmed(hl7v2.field_text(theirs, number))
        assert _trimmed(scanned.to_er7()) == _trimmed(text)


def test_scan_refuses_what_parse_refuses_for_want_of_an_msh() -> None:
    for bad, code in ((b"PID|1", "100"), (b"MSH|^~\\&|A|B", "101")):
        for read in (hl7v2.parse, hl7v2.scan):
            with pytest.raises(hl7v2.Hl7Error) as caught:
                read(bad)
            assert caught.value.code == code


def test_business_acknowledgements_match_the_examples(corpus_dir: Path) -> None:
    folder = corpus_dir / "hl7v2" / "TRANS_DOC_CDA_HL7V2-V2.1" / "ORU" / "Transmission initiale ORU"
    if not folder.is_dir():
        pytest.skip("exemple ZAM absent")
    example = hl7v2.parse((folder / "Message metier reception MSS").read_bytes())
    ours = hl7v2.parse(
        hl7v2.build_zam(
            "Z02",
            hl7v2.Header("SIL-Y", "labo", "PFI-X", "Organisation-X", "015", "R01"),
            control_id="018",
            original_control_id="015",
            items=[
                hl7v2.ZamItem(
                    "ACK_RECEPTION_MSS",
                    "Accusé de réception MSSanté",
                    True,
                    "DESTINATAIRE_MSS",
                    "Destinataire MSSanté",
                    "adam.hoda@test-ci-sis.mssante.fr",
                    "801234567897",
                )
            ],
        )
    )
    assert ours.message_type == example.message_type == "ZAM^Z02"
    for mine, theirs in zip(ours.all("OBX"), example.all("OBX"), strict=True):
        assert hl7v2.fields_of(mine)[2:6] == hl7v2.fields_of(theirs)[2:6]


# --------------------------------------------------------------------------------------------------------------
# the relay over MLLP


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    tmp = tmp_path_factory.mktemp("mssante-hl7")
    cfg = HarnessConfig(
        run_dir=tmp,
        journal=f"sqlite:///{tmp}/journal.sqlite",
        services=("mssante",),
        settings={"mssante": {"hl7_ack_timeout": 1.0, "hl7_frame_timeout": FRAME_TIMEOUT}},
    )
    env = SocleEnvironment(cfg)
    env.start()
    yield env
    env.stop()


def connect(env: SocleEnvironment) -> socket.socket:
    host, _, port = env.endpoints["mssante"]["mllp"].rpartition(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_block(sock: socket.socket, buffer: bytearray) -> hl7v2.Hl7Message:
    while not hl7v2.split_frames(bytes(buffer)):
        chunk = sock.recv(65536)
        assert chunk, "connexion fermée sans réponse"
        buffer += chunk
    block = hl7v2.split_frames(bytes(buffer))[0]
    del buffer[: buffer.find(hl7v2.FS + hl7v2.CR) + 2]
    return hl7v2.parse(block)


def document(env: SocleEnvironment, **overrides: object) -> str:
    fields = {
        "person": env.testdata.person("P001"),
        "establishment": env.testdata.establishment("990000016"),
        "document_kind": "DLU",
        "recipients": (DOCTOR,),
        "to_patient": True,
    }
    fields.update(overrides)
    return build_document_message(MssanteRelay(**fields), "CTRL-1")  # type: ignore[arg-type]


def _zam_rows(env: SocleEnvironment, since: int) -> list[tuple[str, Outcome]]:
    rows = env.journal.query(JournalFilter(run_id=env.run_id, operation="hl7.zam", since_seq=since))
    return sorted((r.details["trigger"], r.outcome) for r in rows)


@pytest.mark.parametrize(
    ("message_type", "to_patient", "acknowledge", "expected"),
    [
        (
            "ORU^R01",
            True,
            True,
            [("ZAM^Z02", Outcome.ACCEPTED), ("ZAM^Z02", Outcome.ACCEPTED), ("ZAM^Z03", Outcome.ACCEPTED)],
        ),
        ("ORU^R01", False, True, [("ZAM^Z02", Outcome.ACCEPTED), ("ZAM^Z03", Outcome.ACCEPTED)]),
        (
            "ORU^R01",
            True,
            False,
            [("ZAM^Z02", Outcome.REJECTED), ("ZAM^Z02", Outcome.REJECTED), ("ZAM^Z03", Outcome.REJECTED)],
        ),
        ("MDM^T02", False, True, [("ZAM^Z02", Outcome.ACCEPTED)]),  # LPS volet: no flags, no read receipt
    ],
)
def test_reference_dui_relay_returns_once_the_platform_has_journaled_every_zam(
    env: SocleEnvironment, message_type: str, to_patient: bool, acknowledge: bool, expected: list[tuple[str, Outcome]]
) -> None:
    """The reference DUI knows which ZAMs it is owed (one Z02 per recipient, one Z03 per professional): it stops
    reading when they are in, half-closes, and returns once the platform has closed, i.e. after the last ZAM's
    journal row: nothing to wait for afterwards (no quiet delay, no late row)."""
    since = env.journal.last_seq()
    action = MssanteRelay(
        env.testdata.person("P001"),
        env.testdata.establishment("990000016"),
        "DLU",
        (DOCTOR,),
        to_patient=to_patient,
        message_type=message_type,
    )
    result = relay_document(env.sut_environment(), action, RelayOptions(acknowledge_zam=acknowledge))
    assert result.status is ActionStatus.DONE
    assert sorted(result.data["zam"]) == [t for t, _ in expected]
    assert _zam_rows(env, since) == expected  # already journaled when the action reports


def test_oru_is_acknowledged_routed_and_followed_by_zams(env: SocleEnvironment) -> None:
    sim = env.host.simulators["mssante"]
    sock, buffer = connect(env), bytearray()
    sock.sendall(hl7v2.frame(document(env)))
    ack = read_block(sock, buffer)
    assert hl7v2.field_text(ack.first("MSA"), 1) == "AA" and hl7v2.field_text(ack.first("MSA"), 2) == "CTRL-1"
    zams = []
    for _ in range(3):  # Z02 for the doctor and the patient, Z03 for the doctor
        zam = read_block(sock, buffer)
        zams.append(zam.message_type)
        sock.sendall(hl7v2.frame(hl7v2.build_ack(hl7v2.Header.of(zam), "AA", control_id="DUI-ACK")))
    sock.close()
    assert sorted(zams) == ["ZAM^Z02", "ZAM^Z02", "ZAM^Z03"]
    relayed = env.journal.query(JournalFilter(run_id=env.run_id, operation="smtp.relay"))[-1]
    assert relayed.details["recipient_counts"] == {"patient": 1, "professional": 1}
    assert any(m.exchange_id == relayed.id for m in sim.store.messages(DOCTOR))  # type: ignore[attr-defined]
    for _ in range(50):
        journaled = env.journal.query(JournalFilter(run_id=env.run_id, operation="hl7.zam", outcome=Outcome.ACCEPTED))
        if len(journaled) >= 3:
            break
        __import__("time").sleep(0.05)
    assert len(journaled) >= 3


def test_flags_outside_the_matrix_are_refused_with_an_error(env: SocleEnvironment) -> None:
    text = document(env).replace(
        "DESTMSSANTEPAT^Destinataire Patient^MetaDMPMSS||Y", "DESTMSSANTEPAT^Destinataire Patient^MetaDMPMSS||N"
    )
    sock, buffer = connect(env), bytearray()
    sock.sendall(hl7v2.frame(text))
    ack = read_block(sock, buffer)
    assert hl7v2.field_text(ack.first("MSA"), 1) == "AE"
    assert hl7v2.component(hl7v2.field_text(ack.first("ERR"), 3), 1) == "207"
    sock.close()


@pytest.mark.parametrize(
    "payload", [b"ceci n'est pas du HL7", b"MSH|^~\\&|X", "MSH|^~\\&|A|B|C|D|2026||ZZZ^Z99|1|P|2.5".encode()]
)
def test_unusable_messages_get_an_ack_ar(env: SocleEnvironment, payload: bytes) -> None:
    sock, buffer = connect(env), bytearray()
    sock.sendall(hl7v2.VT + payload + hl7v2.FS + hl7v2.CR)
    ack = read_block(sock, buffer)
    assert hl7v2.field_text(ack.first("MSA"), 1) == "AR" and ack.first("ERR") is not None
    sock.sendall(
        hl7v2.frame(document(env, to_patient=False, recipients=(DOCTOR,))).replace(
            b"INVISIBLE_PATIENT^Document Non Visible par le patient^MetaDMPMSS||N",
            b"INVISIBLE_PATIENT^Document Non Visible par le patient^MetaDMPMSS||Y",
        )
    )
    assert hl7v2.field_text(read_block(sock, buffer).first("MSA"), 1) == "AA"  # same connection still served
    sock.close()


def test_bytes_outside_blocks_and_unterminated_blocks_are_journaled(env: SocleEnvironment) -> None:
    before = [e.id for e in env.journal.query(JournalFilter(run_id=env.run_id))]
    sock, buffer = connect(env), bytearray()
    sock.sendall(b"GARBAGE\r\n" + hl7v2.frame(document(env)))
    assert hl7v2.field_text(read_block(sock, buffer).first("MSA"), 1) == "AA"
    sock.close()
    sock = connect(env)
    sock.sendall(hl7v2.VT + b"MSH|^~\\&|never ends")
    sock.shutdown(socket.SHUT_WR)
    assert sock.recv(100) == b""
    sock.close()
    for _ in range(50):
        framing = env.journal.query(JournalFilter(run_id=env.run_id, operation="hl7.framing"))
        if len(framing) >= 2:
            break
        __import__("time").sleep(0.05)
    assert {e.error_message for e in framing} >= {"octets hors bloc MLLP ignorés"}
    assert any("FS CR" in (e.error_message or "") for e in framing)
    assert [e.id for e in env.journal.query(JournalFilter(run_id=env.run_id))][: len(before)] == before


def test_a_block_trickled_past_the_frame_deadline_is_cut_off_and_others_are_served(env: SocleEnvironment) -> None:
    """A client opening a block (0x0B) and sending a byte every 0.1 s is closed once hl7_frame_timeout is over,
    whatever its pace; the refusal is journaled (hl7.framing) and another connection is served meanwhile."""
    import time

    mark = env.journal.last_seq()
    slow = connect(env)
    slow.sendall(hl7v2.VT + b"MSH|^~\\&|")
    started, closed_after = time.monotonic(), None
    other, buffer = connect(env), bytearray()
    other.sendall(hl7v2.frame(document(env, to_patient=False)))
    assert hl7v2.field_text(read_block(other, buffer).first("MSA"), 1) == "AA"  # served while the other trickles
    other.close()
    served_in = time.monotonic() - started  # the trickle below starts then: a loaded machine may take seconds
    try:
        for _ in range(40):
            slow.sendall(b"x")
            time.sleep(0.1)
    except OSError:  # reset by the server
        closed_after = time.monotonic() - started
    if closed_after is None:
        slow.settimeout(2)
        assert slow.recv(100) == b""
        closed_after = time.monotonic() - started
    slow.close()
    assert FRAME_TIMEOUT <= closed_after < max(FRAME_TIMEOUT, served_in) + 1.5
    for _ in range(50):
        framing = [
            (e.outcome, e.error_code, e.error_message)
            for e in env.journal.query(JournalFilter(since_seq=mark, operation="hl7.framing"))
        ]
        if framing:
            break
        time.sleep(0.05)
    assert framing == [(Outcome.REJECTED, "MLLP", "bloc MLLP inachevé après 1 s (délai d'un bloc dépassé)")]


def test_corpus_oru_with_real_cda_gets_a_protocol_answer(env: SocleEnvironment, corpus_dir: Path) -> None:
    matches = [p for p in corpus_messages(corpus_dir) if "INIT" in p.name and "Base64" in p.name]
    if not matches:
        pytest.skip("exemple ORU avec CDA en base64 absent")
    sock, buffer = connect(env), bytearray()
    sock.sendall(hl7v2.frame(hl7v2.normalise(matches[0].read_bytes())))
    ack = read_block(sock, buffer)
    assert hl7v2.field_text(ack.first("MSA"), 2) == hl7v2.parse(matches[0].read_bytes()).control_id
    assert hl7v2.field_text(ack.first("MSA"), 1) in {"AA", "AE"}
    sock.close()


# --------------------------------------------------------------------------------------------------------------
# identities: PID-3 against the CDA documents (issue 14 items 1-2), volet v2.0 (item 3)


def err(ack: hl7v2.Hl7Message) -> list[str]:
    """ERR-2, ERR-3.1, ERR-4, ERR-5.1 of an ACK."""
    fields = hl7v2.fields_of(ack.first("ERR"))
    fields += [""] * (6 - len(fields))
    return [fields[2], hl7v2.component(fields[3], 1), fields[4], hl7v2.component(fields[5], 1)]


def exchange_once(env: SocleEnvironment, text: str) -> tuple[hl7v2.Hl7Message, bytes]:
    """Send one message, read its ACK, then whatever else the relay sends within 0.5 s (ZAMs)."""
    sock, buffer = connect(env), bytearray()
    try:
        sock.sendall(hl7v2.frame(text))
        ack = read_block(sock, buffer)
        sock.settimeout(0.5)
        try:
            while chunk := sock.recv(65536):
                buffer += chunk
        except TimeoutError:
            pass
    finally:
        sock.close()
    return ack, bytes(buffer)


def test_build_ack_carries_location_and_application_error() -> None:
    header = hl7v2.Header("DUI", "990000016", "PFI", "SIM", "C-9", "R01", "2.5")
    text = hl7v2.build_ack(
        header,
        "AE",
        control_id="PFI1",
        error=("207", "INS différent", "E"),
        location="PID^1^3^1",
        application_error=("904", "L'INS transmis ne correspond pas"),
    )
    assert text.split("\r")[1:] == [
        "MSA|AE|C-9",
        "ERR||PID^1^3^1|207^INS différent^HL70357|E|904^L'INS transmis ne correspond pas^applicationErrorCondition",
    ]


@pytest.mark.parametrize("message_type", ["ORU^R01", "MDM^T02"])
def test_pid_ins_of_another_person_is_refused_and_nothing_is_sent(env: SocleEnvironment, message_type: str) -> None:
    sim = env.host.simulators["mssante"]
    p001, p002 = env.testdata.person("P001"), env.testdata.person("P002")
    text = document(env, message_type=message_type)
    assert text.count(p001.ins.to_hl7v2_cx()) == 1
    text = text.replace(p001.ins.to_hl7v2_cx(), p002.ins.to_hl7v2_cx())
    mark = env.journal.last_seq()
    before = {m.uid for m in sim.store.messages(p002.mailbox)}  # type: ignore[attr-defined]
    ack, rest = exchange_once(env, text)
    assert hl7v2.field_text(ack.first("MSA"), 1) == "AE"
    assert err(ack) == ["PID^1^3^1", "207", "E", "904"]
    assert rest == b""  # no ZAM: nothing was sent
    (refusal,) = env.journal.query(JournalFilter(since_seq=mark, operation="hl7.document"))
    assert (refusal.operation, refusal.outcome, refusal.error_code) == ("hl7.document", Outcome.REJECTED, "AE 207")
    assert refusal.error_message == (
        f"INS de PID-3 ({p002.ins.value}, OID {p002.ins.oid}) différent de l'INS du document CDA "
        f"({p001.ins.value}, OID {p001.ins.oid}): aucun envoi (904)"
    )
    assert (refusal.details["pid_ins"], refusal.details["cda_ins"]) == (p002.ins.value, [p001.ins.value])
    assert refusal.person is None
    assert {m.uid for m in sim.store.messages(p002.mailbox)} == before  # type: ignore[attr-defined]


@pytest.mark.parametrize("to_patient", [True, False], ids=["DESTMSSANTEPAT=Y", "DESTMSSANTEPAT=N"])
def test_pid_ins_with_a_wrong_key_is_refused_naming_the_key(env: SocleEnvironment, to_patient: bool) -> None:
    p001 = env.testdata.person("P001")
    wrong = f"{int(p001.ins.key) % 97 + 1:02d}"
    text = document(env, to_patient=to_patient, **({} if to_patient else {"recipients": (DOCTOR,)}))
    if not to_patient:  # the matrix wants INVISIBLE_PATIENT=Y when only professionals receive the document
        assert "INVISIBLE_PATIENT^Document Non Visible par le patient^MetaDMPMSS||Y" in text
    text = text.replace(f"{p001.ins.value}^^^", f"{p001.ins.number}{wrong}^^^", 1)
    mark = env.journal.last_seq()
    ack, rest = exchange_once(env, text)
    assert hl7v2.field_text(ack.first("MSA"), 1) == "AE"
    assert err(ack) == ["PID^1^3^1", "102", "E", ""]
    assert rest == b""
    (refusal,) = env.journal.query(JournalFilter(since_seq=mark, operation="hl7.document"))
    assert refusal.error_code == "AE 102"
    assert refusal.error_message == (
        f"INS de PID-3 invalide ({p001.ins.number}{wrong}): clé de contrôle INS incorrecte pour "
        f"{p001.ins.number} : attendue {p001.ins.key}, reçue {wrong}"
    )
    assert refusal.details["pid_ins"] == f"{p001.ins.number}{wrong}"


def test_matching_identities_are_journaled_with_the_person(env: SocleEnvironment) -> None:
    p001 = env.testdata.person("P001")
    mark = env.journal.last_seq()
    ack, _ = exchange_once(env, document(env, to_patient=False))
    assert hl7v2.field_text(ack.first("MSA"), 1) == "AA"
    accepted = env.journal.query(JournalFilter(since_seq=mark, operation="hl7.document"))[0]
    assert (accepted.person, accepted.details["pid_ins"], accepted.details["cda_ins"]) == (
        p001.ins.value,
        p001.ins.value,
        [p001.ins.value],
    )
    assert accepted.details["volet"] == "2.1"


def volet_20(text: str, status: str = "F") -> str:
    """The same message in the shape of volet v2.0 (ansforge/hl7V2-exemples V2.0): MSH-21 2.0, ORC-1 SC, the request
    in OBX-11 of the document, flags valued ``Y^^HL70136``."""
    segments = []
    for segment in text.split("\r"):
        if segment.startswith("MSH|"):
            segment = segment.replace("2.1^CISIS_CDA_HL7_V2", "2.0^CISIS_CDA_HL7_V2")
        elif segment.startswith("ORC|NW|"):
            segment = "ORC|SC|" + segment[len("ORC|NW|") :]
        elif segment.startswith("OBX|") and segment.split("|")[2] == "ED":
            fields = segment.split("|")
            fields[11] = status
            segment = "|".join(fields)
        segments.append(segment.replace("^^expandedYes-NoIndicator", "^^HL70136"))
    return "\r".join(segments)


def test_volet_20_messages_are_relayed(env: SocleEnvironment) -> None:
    text = volet_20(document(env))
    assert "ORC|SC|" in text and "2.0^CISIS_CDA_HL7_V2" in text
    mark = env.journal.last_seq()
    ack, _ = exchange_once(env, text)
    assert hl7v2.field_text(ack.first("MSA"), 1) == "AA"
    document_exchange = env.journal.query(JournalFilter(since_seq=mark, operation="hl7.document"))[0]
    assert (document_exchange.details["volet"], document_exchange.details["event"]) == ("2.0", "initial")
    relayed = env.journal.query(JournalFilter(since_seq=mark, operation="smtp.relay"))
    assert [r.details["document"] for r in relayed] == [document_exchange.id]


def test_volet_20_deletion_sends_no_mail(env: SocleEnvironment) -> None:
    mark = env.journal.last_seq()
    ack, _ = exchange_once(env, volet_20(document(env), "D"))
    assert hl7v2.field_text(ack.first("MSA"), 1) == "AA"
    assert [e.details["event"] for e in env.journal.query(JournalFilter(since_seq=mark, operation="hl7.document"))] == [
        "suppression"
    ]
    assert env.journal.query(JournalFilter(since_seq=mark, operation="smtp.relay")) == []


def test_volet_20_with_an_unknown_obx_11_is_refused_with_the_reason(env: SocleEnvironment) -> None:
    ack, _ = exchange_once(env, volet_20(document(env), "X"))
    assert hl7v2.field_text(ack.first("MSA"), 1) == "AE"
    assert err(ack) == ["OBX^1^11", "103", "E", ""]
    text = hl7v2.component(hl7v2.field_text(ack.first("ERR"), 3), 2)
    assert text == "volet 2.0 (ORC-1 SC): OBX-11 des documents ['X'], attendu F, C ou D"


def test_volet_20_refused_with_a_clear_message_when_switched_off(env: SocleEnvironment) -> None:
    relay = env.host.simulators["mssante"].relay  # type: ignore[attr-defined]
    relay.accept_v20 = False
    try:
        mark = env.journal.last_seq()
        ack, _ = exchange_once(env, volet_20(document(env)))
    finally:
        relay.accept_v20 = True
    assert hl7v2.field_text(ack.first("MSA"), 1) == "AR"
    assert err(ack) == ["MSH^1^21", "203", "E", ""]
    (refusal,) = env.journal.query(JournalFilter(since_seq=mark, operation="hl7.document"))
    assert (refusal.error_code, refusal.error_message) == (
        "AR 203",
        "version 2.0 du volet non prise en charge, 2.1 attendue",
    )


def _corpus_file(corpus: Path, *parts: str) -> bytes:
    path = corpus.joinpath("hl7v2", *parts)
    if not path.is_file():
        pytest.skip(f"exemple HL7 v2 absent: {path}")
    return path.read_bytes()


def test_official_oru_whose_pid_and_cda_name_two_persons_is_refused(env: SocleEnvironment, corpus_dir: Path) -> None:
    """The ANS V2.1 ORU replacement example carries PID-3 279035121518989 (NIR de test) but CDA documents about
    277076322082910 (NIR .4.8): an official example's defect, refused with the reason."""
    raw = _corpus_file(
        corpus_dir,
        "TRANS_DOC_CDA_HL7V2-V2.1",
        "ORU",
        "Remplacement ORU",
        "message_ORU_CR_Bio_RPLC_N1_Base64_N3_Base64.er7",
    )
    mark = env.journal.last_seq()
    ack, _ = exchange_once(env, hl7v2.normalise(raw))
    assert hl7v2.field_text(ack.first("MSA"), 1) == "AE"
    assert err(ack) == ["PID^1^3^1", "207", "E", "904"]
    (refusal,) = env.journal.query(JournalFilter(since_seq=mark, operation="hl7.document"))
    assert refusal.error_message == (
        "INS de PID-3 (279035121518989, OID 1.2.250.1.213.1.4.10) différent de l'INS du document CDA "
        "(277076322082910, OID 1.2.250.1.213.1.4.8): aucun envoi (904)"
    )
    assert (refusal.details["pid_ins"], refusal.details["cda_ins"]) == ("279035121518989", ["277076322082910"])


def test_official_mdm_with_a_wrong_pid_key_is_refused_naming_it(env: SocleEnvironment, corpus_dir: Path) -> None:
    """The ANS LPS MDM example messageDocB64.hl7 has PID-3 276037510669380: key 80, 26 expected."""
    raw = _corpus_file(corpus_dir, "Trans_LPS_CDA_MSSante", "V1.0", "MDM", "messageDocB64.hl7")
    mark = env.journal.last_seq()
    ack, _ = exchange_once(env, hl7v2.normalise(raw))
    assert hl7v2.field_text(ack.first("MSA"), 1) == "AE"
    assert err(ack) == ["PID^1^3^1", "102", "E", ""]
    (refusal,) = env.journal.query(JournalFilter(since_seq=mark, operation="hl7.document"))
    assert refusal.error_message == (
        "INS de PID-3 invalide (276037510669380): clé de contrôle INS incorrecte pour 2760375106693 : "
        "attendue 26, reçue 80"
    )


@pytest.mark.parametrize("policy", ["warn", "refuse"])
def test_production_ins_follows_the_harness_policy(env: SocleEnvironment, policy: str) -> None:
    """Issue 14 item 8: the production-INS policy of harness.fields.identity (setting production_ins)."""
    from dataclasses import replace

    from harness.fields.identity import INS, OID_INS_NIR, ProductionInsPolicy

    p001 = env.testdata.person("P001")
    person = replace(p001, ins=INS(p001.ins.number, p001.ins.key, OID_INS_NIR))
    relay = env.host.simulators["mssante"].relay  # type: ignore[attr-defined]
    relay.production_ins = ProductionInsPolicy(policy)
    try:
        mark = env.journal.last_seq()
        ack, _ = exchange_once(env, document(env, person=person, to_patient=False))
    finally:
        relay.production_ins = ProductionInsPolicy.WARN
    message = (
        f"INS de production {p001.ins.value} (OID {OID_INS_NIR}, INS-NIR) : une campagne de test n'utilise que des "
        "identités de test (OID 1.2.250.1.213.1.4.10 ou 1.2.250.1.213.1.4.11)"
    )
    exchange = env.journal.query(JournalFilter(since_seq=mark, operation="hl7.document"))[0]
    if policy == "warn":
        assert hl7v2.field_text(ack.first("MSA"), 1) == "AA"
        assert exchange.details["findings"] == [
            {"code": "INS-PRODUCTION", "severity": "warning", "message": message, "location": "PID-3"}
        ]
    else:
        refused = f'{message} ; refusé (réglage production_ins = "refuse")'
        assert hl7v2.field_text(ack.first("MSA"), 1) == "AE"
        assert err(ack) == ["PID^1^3^1", "207", "E", ""]
        assert (exchange.error_code, exchange.error_message) == ("AE 207", refused)


def test_a_recipient_of_another_session_is_not_delivered_and_its_zam_z02_says_so(env: SocleEnvironment) -> None:
    """Issue 19 item 4: the relaying establishment in one open session, the doctor's mailbox in another: the e-mail
    goes to the patient only, the doctor's ZAM^Z02 reports no reception (and no Z03), the relay row says why."""
    book = env.host.sessions
    mine = book.create("DUI de l'EHPAD", Members(essms=("990000016",)))
    theirs = book.create("Autre DUI", Members(mailboxes=(DOCTOR,)))
    try:
        sock, buffer = connect(env), bytearray()
        sock.sendall(hl7v2.frame(document(env)))
        assert hl7v2.field_text(read_block(sock, buffer).first("MSA"), 1) == "AA"
        received: dict[str, str] = {}  # recipient -> OBX-5 of ACK_RECEPTION_MSS (Y / N)
        for _ in range(2):  # one Z02 per recipient; no Z03: the doctor received nothing
            zam = read_block(sock, buffer)
            assert zam.message_type == "ZAM^Z02"
            lines = zam.to_er7().replace("\n", "\r").split("\r")
            answer = next(line.split("|")[5] for line in lines if "ACK_RECEPTION_MSS" in line)
            address = next(line.split("|")[5].rpartition("^")[2] for line in lines if "^X.400^" in line)
            received[address] = answer
            sock.sendall(hl7v2.frame(hl7v2.build_ack(hl7v2.Header.of(zam), "AA", control_id="DUI-ACK")))
        sock.close()
        assert received == {
            DOCTOR: "N^^expandedYes-NoIndicator",
            f"{env.testdata.person('P001').ins.value}@patient.mssante.fr": "Y^^expandedYes-NoIndicator",
        }
        relayed = env.journal.query(JournalFilter(run_id=env.run_id, operation="smtp.relay"))[-1]
        doctor = next(r for r in relayed.details["recipients"] if r["address"] == DOCTOR)
        assert doctor["autre_session"] == (
            f"boîte aux lettres {DOCTOR} appartient à une autre session de test que ESSMS 990000016 (session "
            f"{mine.id}) : ses données ne lui sont pas accessibles / the data belongs to another test session"
        )
        sim = env.host.simulators["mssante"]
        assert not any(m.exchange_id == relayed.id for m in sim.store.messages(DOCTOR))  # type: ignore[attr-defined]
    finally:
        book.close(theirs.id)
        book.close(mine.id)
