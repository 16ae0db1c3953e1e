"""Identity status (RNIV) derived from the journal, and the MSSanté warning for an INS the DUI never qualified."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.core.config import HarnessConfig
from harness.core.journal import Direction, Exchange, JournalFilter, Outcome, open_journal
from harness.fields.identity_status import (
    IdentityStatus,
    ins_status,
    is_verification,
    status_from_exchanges,
    unqualified_ins_finding,
)
from harness.runtime.environment import SocleEnvironment
from harness.sut import make_driver
from harness.sut.base import ActionStatus, InsiSearch, MssanteSend
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
SEARCH = {
    "nom_naissance": "MARTIN",
    "prenoms": ["JEANNE"],
    "sexe": "F",
    "date_naissance": "1938-04-12",
    "lieu_naissance": None,
}
VERIFY = {
    "nom_naissance": "martin",
    "prenoms": ["Jeanne", "Marie"],
    "sexe": "F",
    "date_naissance": "1938-04-12",
    "lieu_naissance": "75056",
}


def answer(
    request: dict[str, Any],
    *,
    ins: str = X,
    oid: str = "1.2.250.1.213.1.4.10",
    cr: str = "00",
    outcome: Outcome = Outcome.ACCEPTED,
) -> Exchange:
    details: dict[str, Any] = {"cr": cr, "request": request}
    if cr == "00":
        details.update(ins={"value": ins, "oid": oid}, tiq=TIQ)
    return Exchange(
        service="insi",
        operation="soap.rechercherInsAvecTraitsIdentite",
        direction=Direction.FROM_DUI,
        outcome=outcome,
        essms="990000016",
        person=ins if cr == "00" else None,
        details=details,
    )


def test_verification_means_the_complete_reference_traits() -> None:
    assert is_verification(answer(VERIFY))
    assert not is_verification(answer(SEARCH))
    assert not is_verification(answer({**VERIFY, "lieu_naissance": None}))  # the base knows a birth place
    assert not is_verification(answer({**VERIFY, "prenoms": ["JEANNE", "MARIE", "LOUISE"]}))
    assert not is_verification(answer(VERIFY, cr="01"))


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        ([], IdentityStatus.PROVISIONAL),
        ([answer(SEARCH, cr="01")], IdentityStatus.PROVISIONAL),
        ([answer(SEARCH)], IdentityStatus.RECOVERED),
        ([answer(SEARCH), answer(SEARCH)], IdentityStatus.RECOVERED),
        ([answer(VERIFY)], IdentityStatus.VALIDATED),
        ([answer(SEARCH), answer(VERIFY)], IdentityStatus.QUALIFIED),
        ([answer(VERIFY), answer(VERIFY)], IdentityStatus.QUALIFIED),
        ([answer(VERIFY), answer(SEARCH)], IdentityStatus.VALIDATED),  # a later plain search does not verify
        ([answer(SEARCH), answer(VERIFY, ins="123456789012345")], IdentityStatus.RECOVERED),  # another INS
        (
            [answer(SEARCH, oid="1.2.250.1.213.1.4.9"), answer(VERIFY, oid="1.2.250.1.213.1.4.9")],
            IdentityStatus.PROVISIONAL,
        ),  # NIA
        ([answer(SEARCH), answer(VERIFY, outcome=Outcome.REJECTED)], IdentityStatus.RECOVERED),
    ],
)
def test_status_from_exchanges(sequence: list[Exchange], expected: IdentityStatus) -> None:
    assert status_from_exchanges(sequence, X) is expected


def test_status_labels() -> None:
    assert [s.label for s in IdentityStatus] == ["provisoire", "récupérée", "validée", "qualifiée"]
    assert IdentityStatus.from_label("Qualifiee") is IdentityStatus.QUALIFIED
    with pytest.raises(ValueError):
        IdentityStatus.from_label("douteuse")


def test_status_is_per_run_and_per_establishment(tmp_path: Path) -> None:
    journal = open_journal(f"sqlite:///{tmp_path}/j.sqlite")
    for exchange, run in ((answer(SEARCH), "r1"), (answer(VERIFY), "r1"), (answer(SEARCH), "r2")):
        journal.record(replace(exchange, run_id=run))
    assert ins_status(journal, run_id="r1", essms="990000016", ins_value=X) is IdentityStatus.QUALIFIED
    assert ins_status(journal, run_id="r2", essms="990000016", ins_value=X) is IdentityStatus.RECOVERED
    assert ins_status(journal, run_id="r1", essms="990000024", ins_value=X) is IdentityStatus.PROVISIONAL
    assert ins_status(journal, run_id="r1", essms=None, ins_value=X) is IdentityStatus.PROVISIONAL
    assert unqualified_ins_finding(journal, run_id="r1", essms="990000016", ins_value=X) is None
    finding = unqualified_ins_finding(journal, run_id="r2", essms="990000016", ins_value=X)
    assert finding is not None and finding.code == "INS-NON-QUALIFIE" and finding.severity is Severity.WARNING
    assert unqualified_ins_finding(journal, run_id="r2", essms="990000016", ins_value=None) is None
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

    assert dui.send_mssante(send).status is ActionStatus.DONE
    first = _last_submission(env)
    assert first.outcome is Outcome.ACCEPTED and "INS-NON-QUALIFIE" in _codes(first)
    flagged = next(f for f in first.details["findings"] if f["code"] == "INS-NON-QUALIFIE")
    assert flagged["severity"] == "warning"

    assert dui.search_ins(InsiSearch(traits_of_person(person), establishment)).data["statut"] == "récupérée"
    assert dui.send_mssante(send).status is ActionStatus.DONE
    assert "INS-NON-QUALIFIE" in _codes(_last_submission(env))  # recovered is not enough

    assert dui.qualify_identity(InsiSearch(traits_of_person(person), establishment)).data["statut"] == "qualifiée"
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
    assert dui.qualify_identity(InsiSearch(traits_of_person(person), other)).data["statut"] == "qualifiée"
    home = env.testdata.establishment(person.essms)
    assert (
        dui.send_mssante(MssanteSend(person, home, "DLU", ("jean.dupont@medecin.mssante.fr",))).status
        is ActionStatus.DONE
    )
    assert "INS-NON-QUALIFIE" in _codes(_last_submission(env))
    dui.close()
