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
from harness.fields import hl7v2
from harness.runtime.environment import SocleEnvironment
from harness.sut.base import MssanteRelay
from harness.sut.mssante_hl7 import build_document_message
from harness.sut.reference import ReferenceDUI

DOCTOR = "jean.dupont@medecin.mssante.fr"


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
        settings={"mssante": {"hl7_ack_timeout": 1.0}},
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
    dui = ReferenceDUI()
    fields = {
        "person": env.testdata.person("P001"),
        "establishment": env.testdata.establishment("990000016"),
        "document_kind": "DLU",
        "recipients": (DOCTOR,),
        "to_patient": True,
    }
    fields.update(overrides)
    return build_document_message(dui, MssanteRelay(**fields), "CTRL-1")  # type: ignore[arg-type]


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
