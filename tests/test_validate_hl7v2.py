"""``socle-harness validate`` on HL7 v2 document messages: the MSSanté relay's rules (harness/validators/
hl7v2_relay.py) give the same findings offline as the relay journals, and the relay answers each one with its ACK.

For each message — built ones for every rule, and the ANS examples — the relay (over MLLP) journals the findings
up to the one it refuses on; ``validate`` reports all of them: the relay's list is exactly ``validate``'s, cut after
its first error, and the relay's ACK is the one :data:`ACK_ERRORS` names for that finding."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from harness.core.config import HarnessConfig
from harness.core.journal import JournalFilter
from harness.fields import hl7v2
from harness.fields.identity import INS, OID_INS_NIR
from harness.runtime.environment import SocleEnvironment
from harness.validators.artefacts import validate_artefact
from harness.validators.hl7v2_relay import ACK_ERRORS
from tests.test_mssante_hl7 import corpus_messages, document, err, exchange_once, volet_20

RELAY_CODES = {*ACK_ERRORS, "INS-PRODUCTION"}
PAT_Y = "DESTMSSANTEPAT^Destinataire Patient^MetaDMPMSS||Y"
DMP_N = "DESTDMP^Destinataire DMP^MetaDMPMSS||N"
PS_Y = "DESTMSSANTEPS^Destinataire (Professionnel de Santé, organisation ou BAL applicative)^MetaDMPMSS||Y"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    tmp = tmp_path_factory.mktemp("validate-hl7")
    cfg = HarnessConfig(
        run_dir=tmp,
        journal=f"sqlite:///{tmp}/journal.sqlite",
        services=("mssante",),
        settings={"mssante": {"hl7_ack_timeout": 0.5}},
    )
    env = SocleEnvironment(cfg)
    env.start()
    yield env
    env.stop()


def _relay(env: SocleEnvironment, text: str) -> tuple[hl7v2.Hl7Message, list[tuple[str, str, str]]]:
    mark = env.journal.last_seq()
    ack, _ = exchange_once(env, text)
    (exchange,) = env.journal.query(JournalFilter(since_seq=mark, operation="hl7.document"))
    return ack, [(f["code"], f["severity"], f["message"]) for f in exchange.details.get("findings", [])]


def _ours(text: str) -> list[tuple[str, str, str]]:
    """validate's findings of the relay's rules, up to (and with) the first error."""
    out = []
    for finding in validate_artefact(text.encode("utf-8")).findings:
        if finding.code in RELAY_CODES:
            out.append((finding.code, finding.severity.value, finding.message))
            if finding.severity.value == "error":
                break
    return out


def _variants(env: SocleEnvironment) -> dict[str, str]:
    p001, p002 = env.testdata.person("P001"), env.testdata.person("P002")
    base = document(env)
    production = replace(p001, ins=INS(p001.ins.number, p001.ins.key, OID_INS_NIR))
    wrong_key = f"{int(p001.ins.key) % 97 + 1:02d}"
    assert DMP_N in base
    nobody = base.replace(PAT_Y, PAT_Y[:-1] + "N").replace(PS_Y, PS_Y[:-1] + "N")
    return {
        "accepted": document(env, to_patient=False),
        "production INS": document(env, person=production, to_patient=False),
        "PID-3 of another person": base.replace(p001.ins.to_hl7v2_cx(), p002.ins.to_hl7v2_cx()),
        "PID-3 with a wrong key": base.replace(f"{p001.ins.value}^^^", f"{p001.ins.number}{wrong_key}^^^", 1),
        "flags outside the matrix": base.replace(PAT_Y, PAT_Y[:-1] + "N"),
        "no MSSanté recipient": nobody,
        "unknown ORC-1": base.replace("\rORC|NW|", "\rORC|ZZ|"),
        "volet 2.0 without OBX-11": volet_20(base, status="X"),
        "volet 2.0": volet_20(base),
        "MDM": document(env, message_type="MDM^T02"),
    }


def test_each_rule_gives_the_relay_finding_and_its_ack(env: SocleEnvironment) -> None:
    expected_first = {
        "accepted": None,
        "production INS": None,
        "PID-3 of another person": "HL7-PID-INS-DIFFERENT",
        "PID-3 with a wrong key": "HL7-PID-INS-INVALIDE",
        "flags outside the matrix": "HL7-DRAPEAUX-HORS-MATRICE",
        "no MSSanté recipient": "HL7-AUCUN-DESTINATAIRE-MSS",
        "unknown ORC-1": "HL7-ORC-1",
        "volet 2.0 without OBX-11": "HL7-OBX-11",
        "volet 2.0": None,
        "MDM": None,
    }
    variants = _variants(env)
    assert set(variants) == set(expected_first)
    for name, text in variants.items():
        ack, journaled = _relay(env, text)
        ours = _ours(text)
        assert journaled == ours, name
        errors = [code for code, severity, _ in ours if severity == "error"]
        assert errors == ([expected_first[name]] if expected_first[name] else []), name
        msa = hl7v2.field_text(ack.first("MSA"), 1)
        if not errors:
            assert msa == "AA", name
            continue
        answer = ACK_ERRORS[errors[0]]
        assert msa == answer.ack_code, name
        assert err(ack)[:2] == [answer.location, answer.err_code], name
        assert err(ack)[3] == (answer.application_error[0] if answer.application_error else ""), name
    assert ("INS-PRODUCTION", "warning") in {(c, s) for c, s, _ in _ours(variants["production INS"])}


def test_a_message_for_the_dmp_alone_is_not_a_matrix_error_offline(env: SocleEnvironment) -> None:
    """DESTDMP=Y without MSSanté recipient is a message of the volet an MSSanté relay cannot route: the relay
    refuses it (it has nobody to send it to), ``validate`` does not call it an error."""
    text = document(env).replace(PAT_Y, PAT_Y[:-1] + "N").replace(PS_Y, PS_Y[:-1] + "N")
    assert DMP_N in text
    text = text.replace(DMP_N, DMP_N[:-1] + "Y")
    ack, journaled = _relay(env, text)
    assert hl7v2.field_text(ack.first("MSA"), 1) == "AE"
    assert [c for c, _, _ in journaled] == ["HL7-AUCUN-DESTINATAIRE-MSS"]
    assert validate_artefact(text.encode()).ok


def test_the_official_examples_get_the_relay_findings(env: SocleEnvironment, corpus_dir: Path) -> None:
    """The ANS ORU / MDM examples through the relay and through validate: the same findings, cut at the first
    error (the relay's identity refusals of four examples, the OBX-5 placeholders of four others)."""
    messages = [
        p for p in corpus_messages(corpus_dir) if hl7v2.parse(p.read_bytes()).message_type[:3] in {"ORU", "MDM"}
    ]
    assert len(messages) >= 10
    refused = set()
    for path in messages:
        text = hl7v2.normalise(path.read_bytes())
        ack, journaled = _relay(env, text)
        ours = _ours(text)
        assert journaled == ours, path.name
        errors = [c for c, s, _ in journaled if s == "error"]
        assert (hl7v2.field_text(ack.first("MSA"), 1) == "AA") == (not errors), path.name
        refused |= set(errors)
    assert refused == {"HL7-PID-INS-DIFFERENT", "HL7-PID-INS-INVALIDE", "HL7-SANS-DOCUMENT"}
