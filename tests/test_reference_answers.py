"""The reference DUI's answers follow the ``data`` schemas the service plugins publish in the control API
(issue 13 item 1): the declarations cannot drift from the implementation. The DMP, INSi and MSSanté sending
answers are checked in ``test_dmp.py`` and ``test_identity_status.py``; here the PSC, MSSanté directory,
e-Prescription and e-Parcours ones, against the running simulators."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.core.config import HarnessConfig
from harness.runtime.drivers import make_driver
from harness.runtime.environment import SocleEnvironment
from harness.sut.base import (
    ActionResult,
    ActionStatus,
    CdlNotePost,
    CdlNotesRead,
    CdlNoteUpdate,
    DirectoryLookup,
    EprescriptionImport,
    PscLogin,
)
from harness.sut.control_api import BY_NAME
from harness.sut.control_api_examples import sample
from harness.sut.http_driver import data_errors


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SocleEnvironment]:
    tmp = tmp_path_factory.mktemp("reference-answers")
    env = SocleEnvironment(
        HarnessConfig(
            run_dir=tmp,
            journal=f"sqlite:///{tmp}/j.sqlite",
            services=("psc", "mssante", "eprescription", "eparcours"),
        )
    )
    env.start()
    yield env
    env.stop()


def test_the_reference_dui_answers_follow_the_published_data_schemas(env: SocleEnvironment) -> None:
    dui = make_driver("reference")
    dui.setup(env.sut_environment())
    person, establishment = sample().person, sample().establishment  # those of the document's examples
    epu = env.host.simulators["eprescription"].service.issue(person, lines=2).epu  # type: ignore[attr-defined]

    env.host.simulators["psc"].provider.set_next_login("claire.durand")  # type: ignore[attr-defined]
    answers: dict[str, ActionResult] = {"psc-login": dui.psc_login(PscLogin(establishment))}
    answers["psc-logout"] = dui.psc_logout()
    answers["mssante-directory-lookup"] = dui.lookup_directory(DirectoryLookup("dupont"))
    answers["eprescription-import"] = dui.import_eprescription(EprescriptionImport(person, establishment, epu))
    posted = dui.cdl_post_note(CdlNotePost(person, establishment, "OBS", "Chute sans gravité ce matin.", urgent=True))
    answers["cdl-note-post"] = posted
    note = str(posted.data.get("note_id"))
    answers["cdl-note-update"] = dui.cdl_update_note(CdlNoteUpdate(person, establishment, note, "Chute, revue."))
    answers["cdl-notes-read"] = dui.cdl_read_notes(CdlNotesRead(person, establishment))
    dui.close()

    statuses = {name: (answer.status, answer.detail) for name, answer in answers.items()}
    assert {name: status for name, (status, _) in statuses.items()} == dict.fromkeys(answers, ActionStatus.DONE), (
        statuses
    )
    # every declared key present (the actions succeeded), and of its declared type
    assert {name: sorted(set(BY_NAME[name].facts) - set(a.data)) for name, a in answers.items()} == {
        name: [] for name in answers
    }
    assert {name: data_errors(BY_NAME[name], a.data) for name, a in answers.items()} == {name: [] for name in answers}
    assert (
        answers["eprescription-import"].data["epu"] == epu and len(answers["eprescription-import"].data["lignes"]) == 2
    )
    assert answers["cdl-notes-read"].data["urgentes"] == [note]
    # the document's login example is what the reference DUI got for the same fixture professional
    login = BY_NAME["psc-login"]
    real = {key: fact.example(sample()) for key, fact in login.facts.items() if fact.real}
    assert sorted(real) == ["finess", "id_nat_ps", "nom", "rpps", "sub"]
    assert {key: answers["psc-login"].data[key] for key in real} == real
