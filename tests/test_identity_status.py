"""Identity status (RNIV): the DUI-reported document check combined with the INSi evidence of the journal, and the
MSSanté warning for an INS whose identity the DUI has not qualified."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.core.config import HarnessConfig, package_root
from harness.core.journal import Direction, Exchange, JournalFilter, Outcome, open_journal
from harness.fields.identity import OID_INS_NIA
from harness.fields.identity_status import (
    IdentityStatus,
    IdentityStatusBook,
    IdentityTally,
    document_check_exchange,
    document_kind,
    ins_status,
    status_from_exchanges,
    tddui_document,
    tddui_validation_mode,
    unqualified_ins_finding,
)
from harness.fields.pki import TestPKI
from harness.fields.testdata import load_testdata
from harness.runtime.drivers import make_driver
from harness.runtime.environment import SocleEnvironment
from harness.sut.base import ActionStatus, InsiSearch, MssanteSend, SutEnvironment
from harness.sut.control_api import BY_NAME
from harness.sut.http_driver import data_errors
from harness.sut.insi_actions import traits_of_person
from harness.validators import Severity

X = "238047505612394"
TIQ = {
    "nom_naissance": "MARTIN",
    "liste_prenoms": "JEANNE MARIE",
    "sexe": "F",
    "date_naissance": "1938-04-12",
    "lieu_naissance": "75056",
}
SEARCH = {"nom_naissance": "MARTIN", "prenoms": ["JEANNE"], "sexe": "F", "date_naissance": "1938-04-12"}
ESSMS = "990000016"


def answer(
    *, ins: str = X, oid: str = "1.2.250.1.213.1.4.10", cr: str = "00", outcome: Outcome = Outcome.ACCEPTED
) -> Exchange:
    details: dict[str, Any] = {"cr": cr, "request": SEARCH}
    if cr == "00":
        details.update(ins={"value": ins, "oid": oid}, tiq=TIQ)
    return Exchange(
        service="insi",
        operation="soap.rechercherInsAvecTraitsIdentite",
        direction=Direction.FROM_DUI,
        outcome=outcome,
        essms=ESSMS,
        person=ins if cr == "00" else None,
        details=details,
    )


def document(kind: str = "CN", *, ins: str = X) -> Exchange:
    return document_check_exchange(
        essms=ESSMS, ins_value=ins, document=kind, reported_status="qualifiée", source="pilote"
    )


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        ([], IdentityStatus.PROVISIONAL),
        ([answer(cr="01")], IdentityStatus.PROVISIONAL),
        ([answer()], IdentityStatus.RECOVERED),  # INS from INSi, no document
        ([answer(), answer()], IdentityStatus.RECOVERED),  # two INSi calls are still no document check
        ([document()], IdentityStatus.VALIDATED),  # document checked, no INSi
        ([document(), answer()], IdentityStatus.QUALIFIED),  # document + one INSi call
        ([answer(), document("PA")], IdentityStatus.QUALIFIED),  # the order does not matter
        ([document("AN"), answer(), answer()], IdentityStatus.QUALIFIED),
        ([document("CS"), answer()], IdentityStatus.RECOVERED),  # not a document of the INS value set
        ([document(ins="123456789012345"), answer()], IdentityStatus.RECOVERED),  # another person's document
        ([document(), answer(ins="123456789012345")], IdentityStatus.VALIDATED),  # INSi returned another INS
        ([document(), answer(outcome=Outcome.REJECTED)], IdentityStatus.VALIDATED),
        ([document(), answer(oid="1.2.250.1.213.1.4.9")], IdentityStatus.PROVISIONAL),  # a NIA is never an INS
    ],
)
def test_status_from_exchanges(sequence: list[Exchange], expected: IdentityStatus) -> None:
    assert status_from_exchanges(sequence, X) is expected


def test_recovered_and_validated_are_parallel_states() -> None:
    assert [s.label for s in IdentityStatus] == ["provisoire", "récupérée", "validée", "qualifiée"]
    assert IdentityStatus.combine(insi=True, document=False) is IdentityStatus.RECOVERED
    assert IdentityStatus.combine(insi=False, document=True) is IdentityStatus.VALIDATED
    assert IdentityStatus.combine(insi=True, document=True) is IdentityStatus.QUALIFIED
    assert IdentityStatus.combine(insi=False, document=False) is IdentityStatus.PROVISIONAL
    assert not IdentityStatus.RECOVERED.includes(IdentityStatus.VALIDATED)
    assert not IdentityStatus.VALIDATED.includes(IdentityStatus.RECOVERED)
    assert IdentityStatus.QUALIFIED.includes(IdentityStatus.RECOVERED)
    assert IdentityStatus.QUALIFIED.includes(IdentityStatus.VALIDATED)
    assert IdentityStatus.RECOVERED.includes(IdentityStatus.PROVISIONAL)
    assert IdentityStatus.from_label("Qualifiee") is IdentityStatus.QUALIFIED
    assert IdentityStatus.from_label("récupérée") is IdentityStatus.RECOVERED
    with pytest.raises(ValueError):
        IdentityStatus.from_label("douteuse")


def test_document_kinds_are_the_fr_core_ins_value_set() -> None:
    assert [document_kind(v) for v in ("CN", "passeport", "Livret de famille", "AN", "CS", "permis", "", None)] == [
        "CN",
        "PA",
        "LE",
        "AN",
        None,
        None,
        None,
        None,
    ]
    unknown = document("CS")
    assert unknown.outcome is Outcome.REJECTED and unknown.error_code == "RNIV-PIECE-NON-RECONNUE"
    known = document("passeport")
    assert (known.service, known.operation, known.person, known.essms) == (
        "dui",
        "rniv.controle-piece-identite",
        X,
        ESSMS,
    )
    assert known.details == {
        "document": "PA",
        "document_label": "passeport",
        "statut_declare": "qualifiée",
        "source": "pilote",
    }


def test_tddui_validation_mode_reads_the_fr_core_identity_reliability_extension() -> None:
    patient = {
        "resourceType": "Patient",
        "extension": [
            {"url": "http://example.org/other", "valueString": "x"},
            {
                "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
                "extension": [
                    {"url": "identityStatus", "valueCoding": {"code": "VALI"}},
                    {"url": "validationMode", "valueCoding": {"code": "CN"}},
                ],
            },
        ],
    }
    assert tddui_validation_mode(patient) == "CN"
    assert tddui_validation_mode({"resourceType": "Patient"}) is None
    patient["extension"][1]["extension"][1]["valueCoding"]["code"] = "PC"  # permis de conduire: not high-trust
    assert tddui_validation_mode(patient) is None


def test_tddui_document_reads_the_last_export_of_the_person(tmp_path: Path) -> None:
    journal = open_journal(f"sqlite:///{tmp_path}/j.sqlite")
    reliability = {
        "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
        "extension": [{"url": "validationMode", "valueCoding": {"code": "PA"}}],
    }
    patient = {"resourceType": "Patient", "identifier": [{"value": X}], "extension": [reliability]}
    other = {"resourceType": "Patient", "identifier": [{"value": "123456789012345"}], "extension": [reliability]}
    bundle = json.dumps({"resourceType": "Bundle", "entry": [{"resource": other}, {"resource": patient}]}).encode()
    [stored] = journal.record_many(
        [
            Exchange(
                service="tddui",
                operation="fhir.transaction",
                direction=Direction.FROM_DUI,
                outcome=Outcome.ACCEPTED,
                essms=ESSMS,
                payload=bundle,
            )
        ]
    )
    fact = Exchange(
        service="tddui",
        operation="fhir.create.usager",
        direction=Direction.FROM_DUI,
        outcome=Outcome.ACCEPTED,
        essms=ESSMS,
        person=X,
        digest=stored.digest,
    )
    assert tddui_document(journal, essms=ESSMS, ins_value=X) is None  # no usager fact yet
    journal.record(fact)
    assert tddui_document(journal, essms=ESSMS, ins_value=X) == "PA"
    assert tddui_document(journal, essms="990000024", ins_value=X) is None
    assert tddui_document(journal, essms=ESSMS, ins_value="123456789012345") is None  # no usager fact for it
    journal.close()


def test_status_is_per_run_and_per_establishment(tmp_path: Path) -> None:
    journal = open_journal(f"sqlite:///{tmp_path}/j.sqlite")
    for exchange, run in ((answer(), "r1"), (document(), "r1"), (answer(), "r2"), (document(), "r3")):
        journal.record(replace(exchange, run_id=run))
    assert ins_status(journal, run_id="r1", essms=ESSMS, ins_value=X) is IdentityStatus.QUALIFIED
    assert ins_status(journal, run_id="r2", essms=ESSMS, ins_value=X) is IdentityStatus.RECOVERED
    assert ins_status(journal, run_id="r3", essms=ESSMS, ins_value=X) is IdentityStatus.VALIDATED
    assert ins_status(journal, run_id="r1", essms="990000024", ins_value=X) is IdentityStatus.PROVISIONAL
    assert ins_status(journal, run_id="r1", essms=None, ins_value=X) is IdentityStatus.PROVISIONAL
    assert unqualified_ins_finding(journal, run_id="r1", essms=ESSMS, ins_value=X) is None
    finding = unqualified_ins_finding(journal, run_id="r2", essms=ESSMS, ins_value=X)
    assert finding is not None and (finding.code, finding.severity) == ("INS-NON-QUALIFIE", Severity.WARNING)
    assert finding.message == (
        f"l'INS {X} est utilisé alors que l'identité n'est pas qualifiée pour ce DUI dans cette campagne : statut "
        "récupérée (1 réponse(s) INSi renvoyant l'INS ; aucun contrôle de pièce d'identité déclaré) ; qualifiée = "
        "pièce d'identité à haut niveau de confiance contrôlée et INS récupéré ou vérifié par le téléservice INSi (RNIV)"
    )
    validated = unqualified_ins_finding(journal, run_id="r3", essms=ESSMS, ins_value=X)
    assert validated is not None and "statut validée (aucun appel INSi ; pièce contrôlée : carte nationale" in (
        validated.message
    )
    assert unqualified_ins_finding(journal, run_id="r2", essms=ESSMS, ins_value=None) is None
    journal.close()


def test_the_book_keeps_each_status_up_to_date_incrementally(tmp_path: Path) -> None:
    journal = open_journal(f"sqlite:///{tmp_path}/j.sqlite")
    book = IdentityStatusBook(journal)
    other = "190017512345678"

    def check(run: str, expected: IdentityTally, essms: str = ESSMS, ins: str = X) -> None:
        assert book.tally(run_id=run, essms=essms, ins_value=ins) == expected
        # the same verdict, word for word, as the full journal query
        assert book.unqualified_ins_finding(run_id=run, essms=essms, ins_value=ins) == unqualified_ins_finding(
            journal, run_id=run, essms=essms, ins_value=ins
        )

    check("r1", IdentityTally())
    journal.record(replace(answer(), run_id="r1"))
    check("r1", IdentityTally(insi=1))
    journal.record(replace(answer(), run_id="r1"))  # a second answer is counted once, with the first kept
    journal.record(replace(answer(), run_id="r2"))  # another run
    journal.record(replace(answer(ins=other), run_id="r1"))  # another person
    journal.record(replace(answer(), essms="990000024", run_id="r1"))  # another establishment
    check("r1", IdentityTally(insi=2))
    check("r1", IdentityTally(insi=2))  # nothing new: nothing counted twice
    journal.record(replace(document("XX"), run_id="r1"))  # not a high-trust document (rejected check)
    check("r1", IdentityTally(insi=2))
    journal.record(replace(document("PA"), run_id="r1"))
    check("r1", IdentityTally(insi=2, document="PA"))
    assert book.unqualified_ins_finding(run_id="r1", essms=ESSMS, ins_value=X) is None  # qualifiée
    journal.record(replace(document("CN"), run_id="r1"))  # the last document checked is the one shown
    check("r1", IdentityTally(insi=2, document="CN"))
    journal.record(replace(answer(oid=OID_INS_NIA), run_id="r1"))  # returned as a NIA: never an INS
    check("r1", IdentityTally(insi=2, nia=True, document="CN"))
    assert book.tally(run_id="r1", essms=ESSMS, ins_value=X).status is IdentityStatus.PROVISIONAL
    check("r2", IdentityTally(insi=1))
    check("r1", IdentityTally(insi=1), ins=other)
    check("r1", IdentityTally(insi=1), essms="990000024")
    assert book.tally(run_id="r1", essms=None, ins_value=X) == IdentityTally()
    assert book.unqualified_ins_finding(run_id="r1", essms=ESSMS, ins_value=None) is None
    journal.close()


def test_a_forgotten_tally_is_counted_again_from_the_journal(tmp_path: Path) -> None:
    journal = open_journal(f"sqlite:///{tmp_path}/j.sqlite")
    book = IdentityStatusBook(journal, max_entries=1)
    journal.record(replace(answer(), run_id="r1"))
    assert book.tally(run_id="r1", essms=ESSMS, ins_value=X) == IdentityTally(insi=1)
    assert book.tally(run_id="r2", essms=ESSMS, ins_value=X) == IdentityTally()  # r1 is forgotten
    journal.record(replace(answer(), run_id="r1"))
    journal.record(replace(document(), run_id="r2"))
    assert book.tally(run_id="r1", essms=ESSMS, ins_value=X) == IdentityTally(insi=2)
    assert book.tally(run_id="r2", essms=ESSMS, ins_value=X) == IdentityTally(document="CN")
    journal.close()


# --------------------------------------------------------------------------------------------------------------
# end to end: the MSSanté simulator flags (never refuses) an INS the DUI did not qualify


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    tmp = tmp_path_factory.mktemp("identity-status")
    env = SocleEnvironment(
        HarnessConfig(
            run_dir=tmp,
            journal=f"sqlite:///{tmp}/j.sqlite",
            services=("insi", "mssante"),
            settings={"insi": {"synthetic_identities": 0}},
        )
    )
    env.start()
    yield env
    env.stop()


def _last_submission(env: SocleEnvironment) -> Exchange:
    return env.journal.query(JournalFilter(service="mssante", operation="smtp.submit"))[-1]


def _codes(exchange: Exchange) -> list[str]:
    return [f["code"] for f in exchange.details.get("findings", [])]


def test_mssante_warns_about_an_unqualified_ins_and_not_after_qualification(env: SocleEnvironment) -> None:
    dui = make_driver("reference")
    dui.setup(env.sut_environment())
    person = env.testdata.person("P002")
    establishment = env.testdata.establishment(person.essms)
    send = MssanteSend(person, establishment, "DLU", ("jean.dupont@medecin.mssante.fr",))

    sent = dui.send_mssante(send)
    assert sent.status is ActionStatus.DONE
    first = _last_submission(env)
    assert first.outcome is Outcome.ACCEPTED and "INS-NON-QUALIFIE" in _codes(first)
    flagged = next(f for f in first.details["findings"] if f["code"] == "INS-NON-QUALIFIE")
    assert flagged["severity"] == "warning"

    searched = dui.search_ins(InsiSearch(traits_of_person(person), establishment))
    assert searched.data["statut"] == "récupérée"
    assert dui.send_mssante(send).status is ActionStatus.DONE
    assert "INS-NON-QUALIFIE" in _codes(_last_submission(env))  # recovered is not enough

    # two INSi calls without a document check: still récupérée (RNIV), still flagged
    assert dui.qualify_identity(InsiSearch(traits_of_person(person), establishment)).data["statut"] == "récupérée"
    assert dui.send_mssante(send).status is ActionStatus.DONE
    assert "INS-NON-QUALIFIE" in _codes(_last_submission(env))

    qualified = dui.qualify_identity(InsiSearch(traits_of_person(person), establishment, identity_document="CN"))
    assert (qualified.data["statut"], qualified.data["piece_identite"]) == ("qualifiée", "CN")
    # the reference DUI's answers follow the data schemas its plugins publish (they cannot drift apart)
    answers = {"mssante-send": sent, "insi-search": searched, "insi-qualify": qualified}
    assert {name: data_errors(BY_NAME[name], a.data) for name, a in answers.items()} == dict.fromkeys(answers, [])
    assert qualified.data["ins"] == person.ins.value
    env.journal.record(
        document_check_exchange(
            essms=establishment.finess,
            ins_value=person.ins.value,
            document="CN",
            reported_status="qualifiée",
            source="pilote",
            run_id=env.run_id,
        )
    )
    assert (
        ins_status(env.journal, run_id=env.run_id, essms=establishment.finess, ins_value=person.ins.value)
        is IdentityStatus.QUALIFIED
    )
    assert dui.send_mssante(send).status is ActionStatus.DONE
    assert "INS-NON-QUALIFIE" not in _codes(_last_submission(env))
    dui.close()


def test_qualification_by_another_establishment_does_not_count(env: SocleEnvironment) -> None:
    dui = make_driver("reference")
    dui.setup(env.sut_environment())
    person = env.testdata.person("P005")  # EHPAD Les Tilleuls
    other = env.testdata.establishment("SSIAD du Val")
    assert (
        dui.qualify_identity(InsiSearch(traits_of_person(person), other, identity_document="PA")).data["statut"]
        == "qualifiée"
    )
    env.journal.record(
        document_check_exchange(
            essms=other.finess,
            ins_value=person.ins.value,
            document="PA",
            reported_status=None,
            source="pilote",
            run_id=env.run_id,
        )
    )
    home = env.testdata.establishment(person.essms)
    assert (
        dui.send_mssante(MssanteSend(person, home, "DLU", ("jean.dupont@medecin.mssante.fr",))).status
        is ActionStatus.DONE
    )
    assert "INS-NON-QUALIFIE" in _codes(_last_submission(env))
    dui.close()


# --------------------------------------------------------------------------------------------------------------
# guided recette: the operator says which identity document the DUI's user checked


def test_guided_recette_asks_the_operator_which_document_was_checked(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.front.cli", "run", "--sut", "manual", "-k", "qualifie and obtenu"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert process.stdin is not None

    def events() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for path in (tmp_path / ".socle").glob("events-*.jsonl"):
            found += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return found

    def wait(predicate: Any) -> dict[str, Any]:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            matching = [e for e in events() if predicate(e)]
            if matching:
                return matching[-1]
            assert process.poll() is None
            time.sleep(0.05)
        raise AssertionError("the guided run did not get there in time")

    started = wait(lambda e: e["kind"] == "run_started")
    action = wait(lambda e: e["kind"] == "operator_prompt" and e["mode"] == "action")
    assert "carte nationale d'identité" in action["text"] and "Lucie BONNET".split()[1] in action["text"]
    # what the person at the DUI does: check the CNI and obtain the INS from INSi (the reference DUI stands for it)
    pki = TestPKI.load(tmp_path / ".socle" / "pki")
    data = load_testdata(package_root() / "fixtures")
    dui = make_driver("reference")
    dui.setup(
        SutEnvironment(
            started["endpoints"],
            pki.ca_bundle_path,
            {n: (c.cert_path, c.key_path) for n, c in pki.clients.items()},
            {},
        )
    )
    person = data.person("Lucie BONNET")
    done = dui.qualify_identity(
        InsiSearch(traits_of_person(person), data.establishment(person.essms), identity_document="CN")
    )
    assert done.data["statut"] == "qualifiée"
    question = wait(lambda e: e["kind"] == "operator_prompt" and e["mode"] == "question")
    assert question["choices"] == ["PA", "CN", "AN", "LE", "aucune"]
    process.stdin.write("cn\n")
    process.stdin.flush()
    wait(lambda e: e["kind"] == "operator_prompt" and e["mode"] == "question" and "qualifiée" in e["text"])
    process.stdin.write("o\n")
    process.stdin.flush()
    out, _ = process.communicate(timeout=120)
    results = json.loads((tmp_path / "reports" / "results.json").read_text(encoding="utf-8"))
    [scenario] = results["scenarios"]
    assert process.returncode == 0 and scenario["status"] == "passed", out
    answers = [
        e["text"] for step in scenario["steps"] for e in step["evidence"] if e["label"] == "Réponse de l'opérateur"
    ]
    assert [a.rsplit("→ ", 1)[1] for a in answers] == ["CN", "oui"]
