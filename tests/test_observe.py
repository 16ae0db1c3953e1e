"""Observe-only mode: the @observable scenarios judge what the journal recorded in a window (harness/runtime/observe.py).

The activity is played as a grappe would see it: ``socle-harness serve``'s simulators (a :class:`SocleEnvironment`
started here, no scenario id, like ``serve``) and a DUI played by independent clients — the example DUI of
tests/example_dui (smtplib, its own XDS.b client, hand-written FHIR; it imports nothing from the harness) — with
the simulators' own APIs for their state (a person's DMP, the clock). Each case has its hour on a simulated
Monday, 23 November 2026 (Paris time), then ``run_catalogue`` in observe-only mode judges that window in a child
process, as ``socle-harness run --from … --to …`` does.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from example_dui import Session
from example_dui import dmp as dui_dmp
from example_dui import fhir_services as dui_fhir
from example_dui import mssante as dui_mssante
from typer.testing import CliRunner

from harness.core.config import HarnessConfig, package_root
from harness.core.events import ScenarioFinished, Status, StepFinished, event_from_json
from harness.core.journal import Direction, Exchange, JournalFilter, Outcome, open_journal
from harness.fields.testdata import Establishment, Person, load_testdata
from harness.front.cli import app
from harness.front.runner import RunResult, run_catalogue
from harness.runtime.drivers import make_driver
from harness.runtime.environment import SocleEnvironment
from harness.runtime.observe import (
    DEFAULT_RETRY_RULE,
    EXIT_NOTHING_OBSERVED,
    XDS_SD_TEMPLATE,
    Expectation,
    ExpectedDocument,
    ObservationWindow,
    ObserveDriver,
    apply_retry_rule,
    describe_exchange,
    expectation_of,
    split_activity,
    survey,
)
from harness.sut.base import ActionStatus, CdlNotePost, DmpFeed, MssanteSend
from harness.sut.control_api import to_payload
from harness.sut.http_driver import session_payload

XDM = "L'archive IHE_XDM.ZIP du message accepté est conforme (METADATA.XML et documents CDA)"
VSM = "Envoi d'un volet de synthèse médicale (VSM) au médecin traitant"
DOC_NS = "Envoi d'un document non structuré (CDA R2 niveau 1) à un professionnel"
DMP_INS = "Le patientId transmis au DMP est l'INS de la personne, avec une clé valide"
DMP_SIGNATURE = "Le lot versé contient le document de signature XAdES relié au lot"
CDL = "Écriture d'une note dans le cahier de liaison (transaction)"


def _observable() -> dict[str, str]:
    """Every @observable scenario of the catalogue -> the exchange it looks for (service/operation), by feature
    file: a new observable scenario is covered by the cases below, or fails them until it gets its own."""
    looked_for = {"dmp": "dmp/iti41.provide_and_register", "mssante": "mssante/smtp.submit",
                  "eparcours": "eparcours/cdl.create"}  # fmt: skip
    found: dict[str, str] = {}
    for feature in sorted((package_root() / "scenarios").glob("*.feature")):
        lines = feature.read_text(encoding="utf-8").splitlines()
        for tags, line in zip(lines, lines[1:], strict=False):
            if "@observable" in tags.split() and line.strip().startswith("Scénario:"):
                found[line.split(":", 1)[1].strip()] = looked_for[feature.stem.split("_")[0]]
    return found


OBSERVABLE_EXCHANGE = _observable()
OBSERVABLE = set(OBSERVABLE_EXCHANGE)
assert {XDM, VSM, DOC_NS, DMP_INS, DMP_SIGNATURE, CDL} <= OBSERVABLE

DOCTOR = "jean.dupont@medecin.mssante.fr"  # a professional's own mailbox (PER): no FINESS
HOSPITAL = "claire.bernard@ch-exemple.mssante.fr"  # idem
EHPAD, SSIAD = "990000016", "990000024"
DAY = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday; Paris is UTC+1 in November


def hour(h: int) -> tuple[datetime, datetime]:
    """The window of one case: [h:00, h+1:00) Paris time on the simulated Monday."""
    start = DAY + timedelta(hours=h - 1)
    return start, start + timedelta(hours=1)


# -- the grappe: simulators served, a DUI played by independent clients ---------------------------------------------
@dataclass
class Grappe:
    tmp: Path
    env: SocleEnvironment
    session: Session

    @property
    def config(self) -> HarnessConfig:
        return self.env.config

    def person(self, ref: str = "P001") -> Person:
        return self.env.testdata.person(ref)

    def establishment(self, finess: str = EHPAD) -> Establishment:
        return self.env.testdata.establishment(finess)

    def at(self, start: datetime) -> None:
        """The simulators stamp what follows from ``start`` on (their clock runs from there)."""
        origin = datetime.now(UTC)
        self.env.run.clock = lambda: start + (datetime.now(UTC) - origin)

    # the DUI's actions, through the example DUI's own clients
    def send(
        self,
        kind: str,
        to: str,
        *,
        person: str = "P001",
        finess: str = EHPAD,
        sender: str | None = None,
        tamper: Callable[[EmailMessage], None] | None = None,
    ) -> str | None:
        """An MSSanté message (SMTP submission); ``sender`` another mailbox than the establishment's DUI one;
        ``tamper`` changes the message before it leaves. The refusal the server gave, or ``None``."""
        body = to_payload(MssanteSend(self.person(person), self.establishment(finess), kind, (to,)))
        if sender is not None:
            body["establishment"]["dui_mailbox"] = sender
        if tamper is None:
            outcome = dui_mssante.mssante_send(self.session, body)
            return None if outcome["status"] == "done" else outcome["detail"]
        message = dui_mssante.build_message(
            body["person"], body["establishment"], body["establishment"]["dui_mailbox"], [to], [kind]
        )
        tamper(message)
        return dui_mssante.submit(self.session, message, body["establishment"]["dui_mailbox"], [to])

    def feed(self, kind: str, *, person: str = "P001", finess: str = EHPAD) -> dict[str, Any]:
        """A DMP feed (TD0.2 then ITI-41, SOAP 1.2 + MTOM + VIHF over mutual TLS)."""
        return dui_dmp.dmp_feed(
            self.session, to_payload(DmpFeed(self.person(person), self.establishment(finess), kind))
        )

    def note(self, note_type: str, *, person: str = "P001", finess: str = EHPAD) -> dict[str, Any]:
        """A cahier de liaison note (FHIR transaction Bundle), with the establishment's certificate."""
        action = CdlNotePost(self.person(person), self.establishment(finess), note_type, "Transmission : nuit calme.")
        return dui_fhir.ACTIONS["cdl-note-post"](self.session, to_payload(action))

    def observe(
        self, start: datetime, end: datetime, *, retry: str | None = None, tags: str | None = None
    ) -> RunResult:
        config = self.config.with_overrides(
            sut=f"observe:{start.isoformat()}/{end.isoformat()}", observe_retry=retry, reports_dir=self.tmp / "reports"
        )
        return run_catalogue(config, tags=tags, timeout=600)

    def cli(self, start: datetime, end: datetime, reports: str) -> Any:
        """``socle-harness run --from … --to …`` on the grappe's journal (in process, the catalogue in a child)."""
        args = ["run", "--from", start.isoformat(), "--to", end.isoformat(), "--journal", self.config.journal]
        return CliRunner().invoke(app, [*args, "--reports", str(self.tmp / reports)])

    def window(self, start: datetime, end: datetime) -> list[Exchange]:
        return self.env.journal.query(JournalFilter(ts_from=start, ts_to=end))


@pytest.fixture(scope="module")
def grappe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grappe]:
    tmp = tmp_path_factory.mktemp("grappe")
    config = HarnessConfig(run_dir=tmp / ".socle", journal=f"sqlite:///{tmp}/journal.sqlite", step_timeout=2.0)
    env = SocleEnvironment(config)  # what `socle-harness serve` starts: its exchanges carry no scenario id
    env.start()
    body = session_payload(env.sut_environment())
    session = Session(body, tmp / "dui")
    session.workdir.mkdir()
    session.ca_file.write_text(body["ca_bundle_pem"], encoding="ascii")
    for ref in ("P001", "P002"):  # the persons' DMP, open and authorising the structures (the DMP's own API)
        from mock_services.dmp.store import Authorisation, DmpState

        env.host.simulators["dmp"].set_person(
            env.testdata.person(ref).ins.value, state=DmpState.ACTIVE, authorisation=Authorisation.VALID
        )
    try:
        yield Grappe(tmp, env, session)
    finally:
        env.run.clock = None
        env.stop()


def statuses(result: RunResult) -> dict[str, Status]:
    return {s.name: s.status for s in result.scenarios}


def scenario(result: RunResult, name: str) -> ScenarioFinished:
    return next(s for s in result.scenarios if s.name == name)


def when_steps(result: RunResult) -> dict[str, StepFinished]:
    """The ``Quand`` step of each scenario, as the reports show it."""
    assert result.events_path is not None
    events = [event_from_json(line) for line in result.events_path.read_text(encoding="utf-8").splitlines() if line]
    names = {e.scenario_id: e.name for e in events if isinstance(e, ScenarioFinished)}
    return {names[e.scenario_id]: e for e in events if isinstance(e, StepFinished) and e.keyword == "Quand"}


# -- message defects (the DUI's own mistakes, made on the wire) ----------------------------------------------------
def _rezip(message: EmailMessage, change: Callable[[str, bytes], bytes | None]) -> None:
    for part in message.iter_attachments():
        if part.get_filename() == "IHE_XDM.ZIP":
            source = zipfile.ZipFile(io.BytesIO(part.get_content()))
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as archive:
                for name in source.namelist():
                    data = change(name, source.read(name))
                    if data is not None:
                        archive.writestr(name, data)
            part.set_content(out.getvalue(), maintype="application", subtype="zip", filename="IHE_XDM.ZIP")


def without_metadata(message: EmailMessage) -> None:
    _rezip(message, lambda name, data: None if name.endswith("METADATA.XML") else data)


def unreadable_zip(message: EmailMessage) -> None:
    for part in message.iter_attachments():
        if part.get_filename() == "IHE_XDM.ZIP":
            part.set_content(b"PK\x03\x04 ceci n'est pas une archive", maintype="application", subtype="zip",
                             filename="IHE_XDM.ZIP")  # fmt: skip


def wrong_codecda(message: EmailMessage) -> None:
    message.replace_header("X-MSS-CODECDA", "11490-0")  # not the code of the CDA it carries (ECO.2.4.1)


#: the code of the harness's « DOC-NS » (11488-4, compte rendu de consultation) in a structured CDA (IHE PCC
#: Medical Document templateId, structuredBody): not a CDA R2 level 1
STRUCTURED_CR = dui_mssante.Kind(
    "11488-4", dui_mssante.LOINC, "Compte rendu de consultation", "1.3.6.1.4.1.19376.1.5.3.1.1.1", None
)


def vihf_broken_on_call(n: int) -> Callable[..., Any]:
    """The example DUI's VIHF builder, whose ``n``-th assertion is altered after signing (Identifiant_Structure)."""
    build, calls = dui_dmp.build_vihf, []

    def built(*args: Any) -> Any:
        assertion = build(*args)
        calls.append(1)
        if len(calls) == n:
            for attribute in assertion.iter("{urn:oasis:names:tc:SAML:2.0:assertion}Attribute"):
                if attribute.get("Name") == "Identifiant_Structure":
                    attribute[0].text = "1" + SSIAD
        return assertion

    return built


# -- the cases -----------------------------------------------------------------------------------------------------
@pytest.mark.slow  # the grappe fixture replays a day of activity and runs the catalogue in child pytests
def test_conformant_activity_passes_and_refusals_no_scenario_can_be_tied_to_are_reported_beside(grappe: Grappe) -> None:
    """Items 6 and 9: the six pass on the DUI's own activity; refusals naming no person (an unreadable archive, an
    archive without METADATA.XML, an ITI-41 refused at the VIHF check) are listed beside the verdicts, another
    person's refusal is ignored, none is counted against them; each ``Quand`` shows its scenario's verdict."""
    start, end = hour(8)
    grappe.at(start + timedelta(minutes=1))
    assert grappe.send("DLU", HOSPITAL, tamper=unreadable_zip) == "refus du serveur MSSanté: 554 5.6.0 XDM-NOT-ZIP: " \
        "l'archive IHE_XDM.ZIP n'est pas un ZIP lisible: File is not a zip file"  # fmt: skip
    assert grappe.send("VSM", DOCTOR, tamper=without_metadata) is not None
    assert grappe.send("DLU", HOSPITAL, person="P002", tamper=wrong_codecda) is not None  # Paul LEROY's, refused
    with pytest.MonkeyPatch.context() as patch:  # TD0.2 passes, then the ITI-41's VIHF fails its signature check
        patch.setattr(dui_dmp, "build_vihf", vihf_broken_on_call(2))
        assert grappe.feed("DLU")["status"] == "failed"
    assert grappe.send("DLU", HOSPITAL) is None
    assert grappe.send("VSM", DOCTOR) is None
    assert grappe.send("DOC-NS", HOSPITAL) is None
    assert grappe.feed("DLU")["status"] == "done"
    assert grappe.note("OBS")["status"] == "done"

    result = grappe.observe(start, end)
    assert statuses(result) == dict.fromkeys(OBSERVABLE, Status.PASSED), [
        (s.name, s.message[:400]) for s in result.scenarios if s.status is not Status.PASSED
    ]
    assert {name: step.status for name, step in when_steps(result).items()} == dict.fromkeys(OBSERVABLE, Status.PASSED)

    found = survey(grappe.env.journal, ObservationWindow(start, end))
    assert found.set_aside == 0
    assert [(e.operation, e.essms, e.person, e.error_code) for e in found.unattributable] == [
        ("smtp.submit", EHPAD, None, "554 5.6.0"),
        ("smtp.submit", EHPAD, None, "554 5.6.0"),
        (FEED, None, None, "VIHF-SIGNATURE-INVALIDE"),
    ]
    assert [e.error_message.split(":")[0] for e in found.unattributable] == [
        "XDM-NOT-ZIP",
        "XDM-METADATA-MISSING",
        "VIHF refusé",
    ]
    assert [line.split(" : ")[0] for line in found.lines()[1:]] == ["refus non attribuable"] * 3

    # what `socle-harness run --from … --to …` shows beside the verdicts, and writes in reports/observation.json
    cli = grappe.cli(start, end, "reports-conformant")
    assert cli.exit_code == 0, cli.output
    shown = [line for line in cli.output.splitlines() if line.startswith("refus non attribuable")]
    assert [line.split(" [échange ")[0] for line in shown] == [
        f"refus non attribuable : {line.split(' [échange ')[0]}"
        for line in map(describe_exchange, found.unattributable)
    ]
    report = json.loads((grappe.tmp / "reports-conformant" / "observation.json").read_text(encoding="utf-8"))
    assert (report["retry_rule"], report["set_aside"]) == ("avertissement", 0)
    assert [r["id"] for r in report["unattributable_refusals"]] == [e.id for e in found.unattributable]


@pytest.mark.slow
def test_near_misses_never_pass(grappe: Grappe) -> None:
    """Items 1-3: wrong document type, wrong establishment, no establishment — accepted exchanges about the
    person, each close to one observable scenario's action: none of the six passes, all are « non observé », and
    each near miss is set aside for the exact reason."""
    start, end = hour(9)
    grappe.at(start + timedelta(minutes=1))
    # wrong document type
    assert grappe.send("VSM", HOSPITAL) is None  # MSS-XDM wants a DLU, DOC-NS an unstructured document
    assert grappe.send("LDL-SES", HOSPITAL) is None
    with pytest.MonkeyPatch.context() as patch:  # the example DUI learns a structured 11488-4
        patch.setitem(dui_mssante.DOCUMENTS, "CR-N3", STRUCTURED_CR)
        assert grappe.send("CR-N3", HOSPITAL) is None  # 11488-4, but a structured CDA
    assert grappe.send("DLU", DOCTOR) is None  # the VSM scenario wants a VSM
    assert grappe.feed("VSM")["status"] == "done"  # the DMP scenarios want a DLU
    assert grappe.note("INTERV")["status"] == "done"  # the note scenario writes an OBS
    # wrong establishment: the SSIAD du Val acting for Jeanne MARTIN, accompanied by the EHPAD
    assert grappe.send("DLU", HOSPITAL, finess=SSIAD) is None
    assert grappe.send("VSM", DOCTOR, finess=SSIAD) is None
    assert grappe.send("DOC-NS", HOSPITAL, finess=SSIAD) is None
    assert grappe.feed("DLU", finess=SSIAD)["status"] == "done"
    assert grappe.note("OBS", finess=SSIAD)["status"] == "done"
    # no establishment: a professional's own mailbox (no FINESS) writing about the person
    assert grappe.send("DLU", HOSPITAL, sender=DOCTOR) is None
    assert grappe.send("DOC-NS", HOSPITAL, sender=DOCTOR) is None
    assert grappe.send("VSM", DOCTOR, sender=HOSPITAL) is None

    exchanges = [e for e in grappe.window(start, end) if e.operation in ("smtp.submit", FEED, "cdl.create")]
    assert {e.outcome for e in exchanges} == {Outcome.ACCEPTED} and len(exchanges) == 14
    expected = {
        "xdm": expectation("send_mssante", MssanteSend(grappe.person(), grappe.establishment(), "DLU", (HOSPITAL,))),
        "vsm": expectation("send_mssante", MssanteSend(grappe.person(), grappe.establishment(), "VSM", (DOCTOR,))),
        "docns": expectation(
            "send_mssante", MssanteSend(grappe.person(), grappe.establishment(), "DOC-NS", (HOSPITAL,))
        ),
        "dmp": expectation("dmp_feed", DmpFeed(grappe.person(), grappe.establishment(), "DLU")),
        "cdl": expectation("cdl_post_note", CdlNotePost(grappe.person(), grappe.establishment(), "OBS", "")),
    }
    judged_by = {"smtp.submit": ("xdm", "vsm", "docns"), FEED: ("dmp",), "cdl.create": ("cdl",)}  # the steps' filters
    assert [(k, e.operation) for e in exchanges for k in judged_by[e.operation] if expected[k].matches(e)] == []
    other, none = f"ESSMS {SSIAD} au lieu de {EHPAD}", f"ESSMS absent au lieu de {EHPAD}"
    targets = ["xdm", "docns", "docns", "vsm", "dmp", "cdl", "xdm", "vsm", "docns", "dmp", "cdl", "xdm", "docns", "vsm"]
    assert [(e.operation, e.essms, expected[t].mismatch(e)) for e, t in zip(exchanges, targets, strict=True)] == [
        ("smtp.submit", EHPAD, "document DLU (74207-2) absent (documents : SYNTH)"),
        ("smtp.submit", EHPAD, "document DOC-NS (11488-4, CDA R2 niveau 1) absent (documents : 11490-0)"),
        ("smtp.submit", EHPAD, "document DOC-NS (11488-4, CDA R2 niveau 1) absent (documents : 11488-4)"),
        ("smtp.submit", EHPAD, "document VSM (SYNTH) absent (documents : 74207-2)"),
        (FEED, EHPAD, "document DLU (74207-2) absent (documents : SYNTH, E1762)"),
        ("cdl.create", EHPAD, "note de type INTERV au lieu de OBS"),
        ("smtp.submit", SSIAD, other),
        ("smtp.submit", SSIAD, other),
        ("smtp.submit", SSIAD, other),
        (FEED, SSIAD, other),
        ("cdl.create", SSIAD, other),
        ("smtp.submit", None, none),
        ("smtp.submit", None, none),
        ("smtp.submit", None, none),
    ]

    result = grappe.observe(start, end)
    assert statuses(result) == dict.fromkeys(OBSERVABLE, Status.SKIPPED)
    assert {s.name: s.message.split(" pour « ")[0] for s in result.scenarios} == NOT_OBSERVED
    assert "échanges proches écartés" in scenario(result, DOC_NS).message
    # item 9: the Quand step shows its scenario's status, not « réussi »
    steps = when_steps(result)
    assert {name: step.status for name, step in steps.items()} == dict.fromkeys(OBSERVABLE, Status.SKIPPED)
    assert {s.name: steps[s.name].message for s in result.scenarios} == {s.name: s.message for s in result.scenarios}


def expectation(method: str, action: object) -> Expectation:
    result = ObserveDriver(ObservationWindow(DAY, DAY + timedelta(days=1))).__getattr__(method)(action)
    return result.data["expectation"]


FEED = "iti41.provide_and_register"
NOT_OBSERVED = {
    name: f"non observé / not observed: 0/1 échange(s) {exchange} observé(s)"
    for name, exchange in OBSERVABLE_EXCHANGE.items()
}


@pytest.mark.slow
def test_a_harness_run_in_the_same_journal_is_set_aside_and_counted(grappe: Grappe) -> None:
    """Item 4: with no DUI activity, the reference DUI played by `socle-harness run` into the same journal gives
    six « non observé », and the exchanges it produced are counted as set aside."""
    start = datetime.now(UTC)
    grappe.env.run.clock = None
    harness_run = run_catalogue(grappe.config.with_overrides(sut="reference"), tags="observable", timeout=600)
    assert statuses(harness_run) == dict.fromkeys(OBSERVABLE, Status.PASSED)
    end = datetime.now(UTC) + timedelta(seconds=1)
    produced = [e for e in grappe.window(start, end) if e.run_id == harness_run.run_id]
    assert produced and all(e.scenario_id for e in produced)

    result = grappe.observe(start, end)
    assert statuses(result) == dict.fromkeys(OBSERVABLE, Status.SKIPPED)
    assert "d'une exécution du harnais écarté(s)" in scenario(result, XDM).message
    found = survey(grappe.env.journal, ObservationWindow(start, end))
    assert (found.set_aside, found.runs_set_aside) == (len(produced), (harness_run.run_id,))
    assert found.lines()[1] == (
        f"{len(produced)} échange(s) produit(s) par une exécution du harnais écarté(s) "
        f"(exécution(s) {harness_run.run_id}) : ce n'est pas l'activité du DUI"
    )


@pytest.mark.slow
def test_refused_exchanges_fail_and_the_retry_rule_is_an_option(grappe: Grappe) -> None:
    """Item 7 (and « refused exchanges fail »): a refused message of the person fails its scenario; a refusal then
    an accepted retry passes with a warning showing the refusal (default « avertissement »), fails under « echec »."""
    start, end = hour(12)
    grappe.at(start + timedelta(minutes=1))
    refusal = grappe.send("DLU", HOSPITAL, tamper=wrong_codecda)
    assert refusal is not None and refusal.startswith("refus du serveur MSSanté: 554 5.6.0 MSS-CODECDA-MISMATCH")
    assert grappe.send("VSM", DOCTOR, tamper=wrong_codecda) is not None  # never retried
    assert grappe.send("DLU", HOSPITAL) is None  # the retry of the first

    default = grappe.observe(start, end, tags="mssante")
    assert statuses(default) == {XDM: Status.PASSED, VSM: Status.FAILED, DOC_NS: Status.SKIPPED}
    assert scenario(default, XDM).message.startswith(
        "avertissement / warning : relance acceptée après 1 refus (règle de relance « avertissement ») : "
    )
    assert (
        "smtp.submit" in scenario(default, XDM).message
        and "554 5.6.0 MSS-CODECDA-MISMATCH" in scenario(default, XDM).message
    )
    assert scenario(default, VSM).message.startswith("la messagerie MSSanté a refusé: 554 5.6.0 MSS-CODECDA-MISMATCH")
    assert when_steps(default)[VSM].status is Status.FAILED

    strict = grappe.observe(start, end, retry="echec", tags="mssante")
    assert statuses(strict) == {XDM: Status.FAILED, VSM: Status.FAILED, DOC_NS: Status.SKIPPED}
    assert scenario(strict, XDM).message.startswith("la messagerie MSSanté a refusé: 554 5.6.0 MSS-CODECDA-MISMATCH")


def test_an_empty_window_exits_4_and_says_nothing_was_observed(grappe: Grappe) -> None:
    """Item 8: nothing passed -> exit code 4 (documented) and « rien d'observé »."""
    start, end = hour(14)
    result = grappe.cli(start, end, "reports-empty")
    assert result.exit_code == EXIT_NOTHING_OBSERVED == 4, result.output
    assert "Rien d'observé" in result.output
    assert "règle de relance « avertissement »" in result.output
    assert "0 échange(s) au journal" in result.output
    report = json.loads((grappe.tmp / "reports-empty" / "observation.json").read_text(encoding="utf-8"))
    assert (report["exchanges"], report["set_aside"], report["unattributable_refusals"]) == (0, 0, [])


# -- pure rules ----------------------------------------------------------------------------------------------------
def test_window_parsing_and_the_driver_form() -> None:
    window = ObservationWindow.parse("2026-11-23T08:00", "2026-11-23T18:00")
    assert window.start == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # Paris local time (UTC+1 in November)
    assert window.describe() == "23/11/2026 08:00 (+01:00) → 23/11/2026 18:00 (+01:00) (heure de Paris)"
    assert ObservationWindow.parse("2026-07-01", "2026-07-02T00:00+00:00").start == datetime(
        2026, 6, 30, 22, 0, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="vide"):
        ObservationWindow.parse("2026-11-23T18:00", "2026-11-23T08:00")
    with pytest.raises(ValueError, match="date invalide"):
        ObservationWindow.parse("hier", "2026-11-23")
    driver = make_driver("observe:2026-11-23T08:00/2026-11-23T18:00")
    assert isinstance(driver, ObserveDriver) and driver.window.end == datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="observe:<début>/<fin>"):
        make_driver("observe:2026-11-23")


def test_local_times_the_daylight_saving_changes_make_ambiguous_or_non_existent_need_an_offset() -> None:
    """Item 10: 25 October 2026 02:30 happens twice in Paris, 29 March 2026 02:30 never: both refused."""
    with pytest.raises(ValueError) as ambiguous:
        ObservationWindow.parse("2026-10-25T02:30", "2026-10-25T04:00")
    assert str(ambiguous.value) == (
        "début / --from: l'heure locale 2026-10-25T02:30 existe deux fois à Paris (passage à l'heure d'hiver : "
        "02:00-02:59 est vécu deux fois) ; précisez le décalage UTC : 2026-10-25T02:30+02:00 (la première) ou "
        "2026-10-25T02:30+01:00 (la seconde)"
    )
    with pytest.raises(ValueError) as missing:
        ObservationWindow.parse("2026-03-29T01:00", "2026-03-29T02:30")
    assert str(missing.value) == (
        "fin / --to: l'heure locale 2026-03-29T02:30 n'existe pas à Paris (passage à l'heure d'été : l'horloge "
        "saute de 02:00 à 03:00) ; précisez le décalage UTC, ex. 2026-03-29T02:30+01:00 ou 2026-03-29T02:30+02:00"
    )
    # with an offset, both occurrences of the repeated hour are one hour apart; the edges of the changes are fine
    first = ObservationWindow.parse("2026-10-25T02:30+02:00", "2026-10-25T02:30+01:00")
    assert (first.start, first.end - first.start) == (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), timedelta(hours=1))
    assert ObservationWindow.parse("2026-10-25T01:59", "2026-10-25T03:00").end == datetime(2026, 10, 25, 2, tzinfo=UTC)
    assert ObservationWindow.parse("2026-03-29T01:59", "2026-03-29T03:00").end == datetime(2026, 3, 29, 1, tzinfo=UTC)


def test_cli_refuses_an_ambiguous_local_time_and_needs_from_with_to() -> None:
    result = CliRunner().invoke(app, ["run", "--from", "2026-10-25T02:15", "--to", "2026-10-25T05:00"])
    assert result.exit_code == 2 and "existe deux fois à Paris" in result.output and "+01:00" in result.output
    result = CliRunner().invoke(app, ["run", "--from", "2026-11-23T08:00"])
    assert result.exit_code == 2 and "--to" in result.output
    result = CliRunner().invoke(app, ["run", "--from", "demain", "--to", "2026-11-23"])
    assert result.exit_code == 2 and "date invalide" in result.output
    result = CliRunner().invoke(app, ["run", "--from", "2026-11-23", "--to", "2026-11-24", "--relance", "parfois"])
    assert result.exit_code == 2 and "règle de relance inconnue 'parfois'" in result.output


def _exchange(**changes: Any) -> Exchange:
    base = Exchange(
        service="mssante",
        operation="smtp.submit",
        direction=Direction.FROM_DUI,
        outcome=Outcome.ACCEPTED,
        essms=EHPAD,
        person="238047505612394",
        details={
            "recipients": [{"address": "Jean.Dupont@medecin.mssante.fr"}],
            "documents": [{"code": "74207-2", "templates": ["1.2.250.1.213.1.1.1.22"]}],
        },
    )
    return replace(base, **changes)


def test_every_field_an_expectation_sets_must_be_present_and_equal() -> None:
    """Item 3: an empty person, establishment or document list never matches."""
    data = load_testdata(package_root() / "fixtures")
    person, establishment = data.person("P001"), data.establishment(EHPAD)
    expected = expectation_of("send_mssante", MssanteSend(person, establishment, "DLU", (DOCTOR,)))
    assert expected == Expectation(
        "mssante-send", person.ins.value, EHPAD, (DOCTOR,), (ExpectedDocument("DLU", "74207-2"),)
    )
    assert expected.matches(_exchange())
    assert expected.mismatch(_exchange(person=None)) == "personne absente au lieu de 238047505612394"
    assert expected.mismatch(_exchange(essms=None)) == "ESSMS absent au lieu de 990000016"
    assert expected.mismatch(_exchange(essms="")) == "ESSMS absent au lieu de 990000016"
    assert expected.mismatch(_exchange(details={**_exchange().details, "documents": []})) == (
        "document DLU (74207-2) absent (documents : aucun lisible)"
    )
    assert expected.mismatch(_exchange(details={"documents": _exchange().details["documents"]})) == (
        "destinataire(s) absent(s) : jean.dupont@medecin.mssante.fr"
    )
    unstructured = expectation_of("send_mssante", MssanteSend(person, establishment, "DOC-NS", (DOCTOR,)))
    assert unstructured.documents == (ExpectedDocument("DOC-NS", "11488-4", XDS_SD_TEMPLATE),)
    n1 = {"documents": [{"code": "11488-4", "templates": [XDS_SD_TEMPLATE]}], "recipients": [{"address": DOCTOR}]}
    assert unstructured.matches(_exchange(details=n1))
    assert not unstructured.matches(_exchange(details={**n1, "documents": [{"code": "11488-4"}]}))  # no templates
    dmp = expectation_of("dmp_feed", DmpFeed(person, establishment, "DLU"))
    assert dmp.matches(_exchange(details={"documents": [{"typeCode": "74207-2"}, {"typeCode": "E1762"}]}))
    assert not dmp.matches(_exchange(details={"documents": [{"typeCode": "SYNTH"}, {"typeCode": "E1762"}]}))


def test_harness_runs_are_told_apart_by_their_scenario_ids_and_simulation_run_ids() -> None:
    serve, run, between, simulated = (
        _exchange(run_id="a1b2c3"),
        _exchange(run_id="run-1", scenario_id="scenarios/x.feature::test_x"),
        _exchange(run_id="run-1"),
        _exchange(run_id="sim-7-abcdef"),
    )
    assert split_activity([serve, run, between, simulated]) == ([serve], [run, between, simulated])


def test_the_retry_rule_forgives_only_refusals_an_accepted_retry_followed() -> None:
    refused, accepted = _exchange(outcome=Outcome.REJECTED), _exchange()
    late = _exchange(outcome=Outcome.REJECTED)
    assert apply_retry_rule([refused, accepted, late], "avertissement") == ([accepted, late], [refused])
    assert apply_retry_rule([refused, accepted, late], "echec") == ([refused, accepted, late], [])
    assert apply_retry_rule([refused], "avertissement") == ([refused], [])
    with pytest.raises(ValueError, match="règle de relance inconnue"):
        apply_retry_rule([], "parfois")
    assert HarnessConfig().observe_retry == DEFAULT_RETRY_RULE == "avertissement"


def test_observe_window_filters_the_journal_by_recording_time(tmp_path: Path) -> None:
    journal = open_journal(f"sqlite:///{tmp_path}/j.sqlite")
    t0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    for minutes in (0, 30, 60, 61):
        journal.record(
            Exchange(
                service="insi",
                operation="insi.search",
                direction=Direction.FROM_DUI,
                outcome=Outcome.ACCEPTED,
                ts=t0 + timedelta(minutes=minutes, microseconds=minutes % 2),
            )
        )
    found = journal.query(JournalFilter(ts_from=t0, ts_to=t0 + timedelta(minutes=60)))
    assert [e.ts for e in found] == [t0, t0 + timedelta(minutes=30)]
    journal.close()


def test_the_observe_driver_delegates_every_action_as_an_expectation() -> None:
    data = load_testdata(package_root() / "fixtures")
    person = data.person("P001")
    result = make_driver("observe:2026-11-23/2026-11-24").send_mssante(
        MssanteSend(person, data.establishment(EHPAD), "DLU", ("patient", DOCTOR))
    )
    assert result.status is ActionStatus.DELEGATED
    assert result.detail == (
        "observation : échange attendu dans le journal (mssante-send ; personne 238047505612394 ; ESSMS 990000016 ; "
        "destinataires 238047505612394@patient.mssante.fr, jean.dupont@medecin.mssante.fr ; documents DLU (74207-2))"
    )
    assert json.dumps(dataclasses.asdict(result.data["expectation"]))  # plain data, reportable


@pytest.mark.slow
def test_notes_count_for_the_authenticated_establishment_only(grappe: Grappe) -> None:
    """Item 5 (cahier de liaison): notes naming the EHPAD as their author, sent with no certificate or with the
    SSIAD's, are journaled for the establishment the platform authenticated (none, the SSIAD): the EHPAD's note
    scenario is « non observé », and those refusals are reported as « refus non attribuable »."""
    start, end = hour(15)
    grappe.at(start + timedelta(minutes=1))
    for certificate in (None, f"ESSMS-{SSIAD}"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(
                dui_fhir,
                "_essms_client",
                lambda session, service, body, cert=certificate: dui_fhir.Fhir(
                    session, session.endpoint(service, "fhir"), cert
                ),
            )
            assert grappe.note("OBS")["status"] == "failed"  # the note names the EHPAD as its author

    assert [(e.operation, e.outcome, e.essms, e.person, e.error_code) for e in grappe.window(start, end)] == [
        ("fhir.transaction", Outcome.REJECTED, None, None, "FHIR-CERTIFICAT-ABSENT"),
        ("fhir.transaction", Outcome.REJECTED, SSIAD, None, "FHIR-FINESS-AUTRE-ESSMS"),
        ("cdl.create", Outcome.REJECTED, SSIAD, None, "FHIR-FINESS-AUTRE-ESSMS"),
    ]
    result = grappe.observe(start, end, tags="eparcours")
    assert statuses(result) == {CDL: Status.SKIPPED}
    assert scenario(result, CDL).message.split(" pour « ")[0] == NOT_OBSERVED[CDL]
    found = survey(grappe.env.journal, ObservationWindow(start, end))
    assert [e.error_code for e in found.unattributable] == [
        "FHIR-CERTIFICAT-ABSENT", "FHIR-FINESS-AUTRE-ESSMS", "FHIR-FINESS-AUTRE-ESSMS"
    ]  # fmt: skip


@pytest.mark.slow
def test_dmp_feeds_count_for_the_authenticated_establishment_only(grappe: Grappe) -> None:
    """Item 5 (DMP): feeds made with the SSIAD's certificate but declaring the EHPAD — in the VIHF's
    Identifiant_Structure (refused before the structure is settled: no establishment), or only as the submission's
    author (journaled for the SSIAD, the authenticated structure) — are not the EHPAD's: its DMP scenarios are
    « non observé »."""
    start, end = hour(16)
    grappe.at(start + timedelta(minutes=1))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dui_dmp, "certificate_name", lambda session, establishment: f"ESSMS-{SSIAD}")
        patch.setattr(dui_dmp, "check_dmp", lambda *args: None)  # straight to ITI-41, no TD0.2 first
        assert grappe.feed("DLU")["status"] == "failed"  # the EHPAD in the VIHF and as author
        ssiad, build = to_payload(grappe.establishment(SSIAD)), dui_dmp.build_vihf
        patch.setattr(dui_dmp, "build_vihf", lambda session, name, person, _: build(session, name, person, ssiad))
        assert grappe.feed("DLU")["status"] == "done"  # the SSIAD in the VIHF, the EHPAD only as the author

    assert [(e.operation, e.outcome, e.essms, e.person, e.error_code) for e in grappe.window(start, end)] == [
        (FEED, Outcome.REJECTED, None, None, "VIHF-STRUCTURE"),
        (FEED, Outcome.ACCEPTED, SSIAD, grappe.person().ins.value, None),
    ]
    result = grappe.observe(start, end, tags="dmp")
    dmp = {name for name, exchange in OBSERVABLE_EXCHANGE.items() if exchange.startswith("dmp/")}
    assert statuses(result) == dict.fromkeys(dmp, Status.SKIPPED)
    assert {s.name: s.message.split(" pour « ")[0] for s in result.scenarios} == {n: NOT_OBSERVED[n] for n in dmp}
    assert [e.error_code for e in survey(grappe.env.journal, ObservationWindow(start, end)).unattributable] == [
        "VIHF-STRUCTURE"
    ]
