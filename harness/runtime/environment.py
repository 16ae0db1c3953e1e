"""The scenario runtime: the running environment of one run and the per-scenario context steps share.

:class:`SocleEnvironment` opens the journal, ensures the test PKI, loads the fixtures and starts the simulators
(on their own loop thread). :class:`ScenarioContext` is what every step receives: the chosen person and
establishment, the SUT driver's reports, the journal mark of the last action, and the evidence attached to
the current step.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from harness.core.config import HarnessConfig
from harness.core.journal import Exchange, Journal, JournalFilter, open_journal, wait_for
from harness.core.messages import bilingual
from harness.core.sessions import Members
from harness.fields.pki import DEFAULT_HOSTNAMES, TestPKI
from harness.fields.testdata import Establishment, Person, TestData, load_testdata
from harness.host.connections import ConnectionLimits
from harness.host.service_host import BackgroundHost, Endpoints, HostOptions, ServiceHost
from harness.host.simulator import Fault, RunState, Simulator
from harness.sut.contract import ActionResult, ActionStatus, SutEnvironment

if TYPE_CHECKING:  # the observation machinery (control API, message parsing) is imported when observing only,
    # the run events and the guided recette's channel when a step needs them: ``socle-harness serve`` builds a
    # SocleEnvironment and never runs a step (issue 18, cold start)
    from harness.core.events import Evidence, OperatorPrompt
    from harness.runtime.guided import OperatorChannel
    from harness.runtime.observe import Expectation, ObservationWindow
    from harness.sut.base import SutDriver  # with the action request types: not imported by serve (issue 18)


def ensure_pki(config: HarnessConfig) -> TestPKI:
    """The run folder's test PKI, created or completed (its server certificate names ``public_host`` too)."""
    hostnames = (*DEFAULT_HOSTNAMES, config.public_host) if config.public_host else DEFAULT_HOSTNAMES
    return TestPKI.ensure(Path(config.pki_dir), hostnames=hostnames)


class SutUnavailable(Exception):
    """The SUT could not be driven (unreachable, broken control API): no conformance verdict."""


class SocleEnvironment:
    """Journal + PKI + fixtures + running simulators for one run."""

    def __init__(
        self,
        config: HarnessConfig,
        run_id: str | None = None,
        *,
        admin_token: str = "",
        worker: int | None = None,
        share_state: bool = True,
    ) -> None:
        """``admin_token``: the one a supervising ``serve --workers`` chose for all its processes (empty: a fresh
        one); ``worker``: this process's number among them, its listeners then sharing the ports (SO_REUSEPORT);
        ``share_state``: False keeps the simulators' state in this process even on a PostgreSQL journal
        (``HostOptions.share_state``: ``run``)."""
        self.config = config
        self.run = RunState(run_id or uuid.uuid4().hex[:12])
        self.journal: Journal = open_journal(config.journal)
        self.pki = ensure_pki(config)
        self.testdata: TestData = load_testdata(Path(config.fixtures_dir))
        self.host = ServiceHost(
            self.journal,
            self.pki,
            self.testdata,
            HostOptions(
                bind_host=config.bind_host,
                public_host=config.public_host,
                http_port=config.http_port,
                tls=config.tls,
                services=config.services,
                ports=config.ports,
                settings=config.settings,
                common_settings={"production_ins": config.production_ins},
                connections=ConnectionLimits.from_mapping(config.settings.get("host", {})),
                admin_token=admin_token,
                reuse_port=worker is not None,
                worker=worker,
                state_snapshot_every=config.state_snapshot_every,
                share_state=share_state,
            ),
            self.run,
        )
        self._background = BackgroundHost(self.host)
        self.endpoints: Endpoints = {}

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def admin_token(self) -> str:
        """The token the simulators' ``/_admin`` endpoints require (:mod:`harness.host.admin`)."""
        return self.host.admin_token

    def start(self) -> Endpoints:
        self.endpoints = self._background.start()
        return self.endpoints

    def stop(self) -> None:
        self._background.stop()
        self.journal.close()

    def sut_environment(self) -> SutEnvironment:
        """What the DUI is given, with the run's test identities: the members of the test session a driver opens
        for it (the HTTP driver, :mod:`harness.core.sessions`)."""
        psc = self.psc_client()
        return SutEnvironment(
            endpoints=self.endpoints,
            ca_bundle=self.pki.ca_bundle_path,
            client_certificates={n: (c.cert_path, c.key_path) for n, c in self.pki.clients.items()},
            credentials={m.address: m.password for m in self.testdata.mailboxes if m.password},
            psc_client=psc,
            members=Members(
                essms=tuple(e.finess for e in self.testdata.establishments),
                mailboxes=tuple(m.address for m in self.testdata.mailboxes if m.password),
                patients=tuple(p.ins.value for p in self.testdata.persons),
                clients=(psc["client_id"],) if psc.get("client_id") else (),
            ),
            sessions=self.host.sessions,
        )

    def psc_client(self) -> dict[str, str]:
        """The DUI under test's registration at the PSC simulator: client ``[settings.psc] sut_client``
        (default ``dui-reference``) of ``clients.json`` in the PSC fixtures; empty when there is none."""
        from mock_services.psc.realm import Settings as PscSettings  # the PSC plugin's settings type

        settings = PscSettings.from_mapping(self.config.settings.get("psc", {}))
        folder = Path(settings.fixtures_dir or Path(self.config.fixtures_dir) / "psc")
        wanted = settings.sut_client
        try:
            clients = json.loads((folder / "clients.json").read_text(encoding="utf-8")).get("clients", [])
        except (OSError, ValueError):
            return {}
        for client in clients:
            if client.get("client_id") == wanted:
                return {
                    "client_id": client["client_id"],
                    "client_secret": client.get("client_secret", ""),
                    "redirect_uri": (client.get("redirect_uris") or [""])[0],
                    "post_logout_redirect_uri": (client.get("post_logout_redirect_uris") or [""])[0],
                    "token_endpoint_auth_method": (
                        client.get("token_endpoint_auth_methods") or ["client_secret_basic"]
                    )[0],
                }
        return {}


@dataclass
class ScenarioContext:
    """State shared by the steps of one scenario."""

    env: SocleEnvironment
    sut: SutDriver
    scenario_id: str
    person: Person | None = None
    establishment: Establishment | None = None
    last_action: ActionResult | None = None
    mark: int = 0  # journal sequence number before the last action
    prompt: OperatorPrompt | None = None  # the operator prompt of the last delegated action, until observed
    evidence: list[Evidence] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # shown beside a passed verdict (observe-only retries)
    observation_actions: int = 0  # observe-only mode: actions made since the recorder last looked

    def attach(self, label: str, text: str = "", exchange: Exchange | None = None) -> None:
        from harness.core.events import Evidence

        self.evidence.append(Evidence(label=label, text=text, exchange_id=exchange.id if exchange else None))

    def drain_evidence(self) -> list[Evidence]:
        drained, self.evidence = self.evidence, []
        return drained

    def inject_fault(self, service: str, fault: Fault) -> None:
        """Inject a fault for the exchanges this scenario causes: on a shared platform, aimed at the open test session
        of the scenario's establishment when there is one and the kind can be aimed (``Simulator.session_faults``),
        so that the other DUIs under test do not take it; else, and without sessions, for every exchange as before
        (issue 19 item 4)."""
        sim = self.env.host.simulators.get(service)
        if fault.session is None and sim is not None and fault.kind in type(sim).session_faults:
            finess = self.establishment.finess if self.establishment is not None else None
            session = self.env.host.sessions.session_of("essms", finess)
            if session is not None:
                fault = replace(fault, session=session)
        self.env.host.faults.inject(service, fault)

    def simulator(self, name: str) -> Simulator:
        """The running simulator ``name``; a configuration that did not start it is an error, not a verdict."""
        sim = self.env.host.simulators.get(name)
        if sim is None:
            raise LookupError(
                bilingual(
                    f"le simulateur « {name} » n'est pas démarré dans cette exécution (voir `services` dans la "
                    "configuration)",
                    "simulator not started in this run",
                )
            )
        return sim

    def _observed(self, window: ObservationWindow, service: str, operation: str | None, count: int) -> list[Exchange]:
        """The DUI's exchanges of the window that meet the last action's expectation (README « Mode observation »):
        a harness run's exchanges are set aside and counted; the retry rule (``observe_retry``) may forgive a
        refusal an accepted retry followed, shown as a warning."""
        from harness.runtime.observe import apply_retry_rule, describe_exchange, split_activity

        expectation: Expectation | None = self.last_action.data.get("expectation") if self.last_action else None
        flt = JournalFilter(service=service, ts_from=window.start, ts_to=window.end)
        # observing while the DUI works (the window ends in the future): wait for the exchange, at most step_timeout
        remaining = (window.end - datetime.now(UTC)).total_seconds()
        deadline = time.monotonic() + max(0.0, min(self.env.config.step_timeout, remaining))
        while True:
            # harness runs are told apart on the whole service's window (a run's scenario ids), then the operation
            activity, produced = split_activity(self.env.journal.query(flt))
            candidates = [e for e in activity if operation is None or e.operation == operation]
            found = [e for e in candidates if expectation is None or expectation.matches(e)]
            judged, forgiven = apply_retry_rule(found, self.env.config.observe_retry)
            if len(judged) >= count or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        what = expectation.describe() if expectation is not None else f"{service} {operation or ''}".strip()
        set_aside = sum(1 for e in produced if operation is None or e.operation == operation)
        aside = f" ; {set_aside} échange(s) d'une exécution du harnais écarté(s)" if set_aside else ""
        if len(judged) < count:
            near = [f"{describe_exchange(e)} — {expectation.mismatch(e)}" for e in candidates if e not in found]
            hint = f" ; échanges proches écartés : {' | '.join(near[:3])}" if near and expectation else ""
            not_observed(
                f"{len(judged)}/{count} échange(s) {service}/{operation or '*'} observé(s) pour « {what} » "
                f"dans la fenêtre {window.describe()}{aside}{hint}"
            )
        self.attach(
            "Observation",
            f"{len(judged)} échange(s) retenu(s) dans la fenêtre {window.describe()} pour « {what} »{aside}",
        )
        if forgiven:
            warning = (
                f"relance acceptée après {len(forgiven)} refus (règle de relance « {self.env.config.observe_retry} ») : "
                + " | ".join(describe_exchange(e) for e in forgiven)
            )
            self.attach("Avertissement", warning)
            if warning not in self.warnings:
                self.warnings.append(warning)
        return judged

    def require_person(self) -> Person:
        if self.person is None:
            raise AssertionError(
                "aucune personne accompagnée choisie (étape « Soit la personne accompagnée ... » manquante)"
            )
        return self.person

    def require_establishment(self) -> Establishment:
        if self.establishment is not None:
            return self.establishment
        return self.env.testdata.establishment(self.require_person().essms)

    def act(self, action: str, call) -> ActionResult:  # noqa: ANN001 - a zero-argument callable
        """Run a SUT action, remembering the journal mark so that steps judge only what follows.

        A delegated action (guided recette) is shown to the operator; the next wait for exchanges follows it.
        """
        self.mark = self.env.journal.last_seq()
        result: ActionResult = call()
        self.last_action = result
        self.attach(f"DUI: {action}", f"{result.status}: {result.detail}")
        if self.observation() is not None:
            self.observation_actions += 1
        if result.status in (ActionStatus.UNREACHABLE, ActionStatus.ERROR):
            raise SutUnavailable(f"SUT {result.status}: {result.detail}")
        channel = self._channel()
        if result.status is ActionStatus.DELEGATED and channel is not None:
            self.prompt = channel.ask(self.scenario_id, action, result.detail)
        return result

    def _settle_timeout(self, delegated: bool) -> float:
        """How long a step waits for exchanges the last action may still cause (a check that finds fewer than it
        asks for, e.g. « the DUI never sent X », waits all of it).

        - the in-process reference DUI (``settled_on_return``): 0 — its action returned after the answers to all
          its requests, and the simulators journal before they answer, so the journal is complete (a barrier);
        - another synchronous driver (``http:`` DUI behind the control API, the faulty DUI): 1 s — the control API
          may answer before the DUI's exchanges end, and nothing tells the harness when they do, so a short wait is
          the only correct option;
        - a delegated action without an operator channel (an external system): the configured step timeout."""
        if delegated:
            return self.env.config.step_timeout
        return 0.0 if getattr(self.sut, "settled_on_return", False) else 1.0

    def take_observation_actions(self) -> int:
        """Observe-only mode: how many actions became expectations since the last call (the recorder gives those
        steps their scenario's verdict: a ``Quand`` is what was observed, or not)."""
        taken, self.observation_actions = self.observation_actions, 0
        return taken

    def _channel(self) -> OperatorChannel | None:
        return getattr(self.sut, "channel", None)

    def observation(self) -> ObservationWindow | None:
        """The journal window judged in observe-only mode (``--sut observe:<from>/<to>``), else ``None``."""
        return getattr(self.sut, "window", None)

    def dui_reported_success(self, question: str) -> bool:
        """What the DUI showed its user: its own report, or the operator's answer in guided recette."""
        if self.last_action is None:
            raise AssertionError("le DUI n'a effectué aucune action dans ce scénario")
        if self.observation() is not None:
            not_observable(f"ce que le DUI montre à son utilisateur ({question})")
        channel = self._channel()
        if self.last_action.status is not ActionStatus.DELEGATED or channel is None:
            return self.last_action.reported_success
        reply = channel.answer(
            channel.ask(self.scenario_id, question, question, mode="question", choices=("oui", "non"))
        )
        if reply is None:
            from harness.runtime.guided import StepBlocked

            raise StepBlocked(
                bilingual("pas de réponse de l'opérateur dans le délai", "no answer from the operator in time")
            )
        self.attach("Réponse de l'opérateur", f"{question} → {reply.answer} {reply.comment}".strip())
        return reply.answer == "oui"

    def dui_shows(self, question: str, check: Callable[[dict[str, Any]], str | None]) -> None:
        """Judge what the DUI showed its user: ``check`` reads the driver's report (``data``) and returns an error
        or ``None``; in guided recette the operator answers ``question`` (oui/non) instead; in observe-only mode
        this cannot be judged (the scenario is skipped, never passed)."""
        if self.last_action is not None and self.last_action.status is ActionStatus.DELEGATED:
            if not self.dui_reported_success(question):
                raise AssertionError(f"{question} — réponse : non")
            return
        if self.last_action is None:
            raise AssertionError("le DUI n'a effectué aucune action dans ce scénario")
        error = check(self.last_action.data)
        if error:
            raise AssertionError(error)

    def exchanges_since_action(self, service: str, operation: str | None = None, *, count: int = 1) -> list[Exchange]:
        """The exchanges recorded for this scenario since the last action (waiting for them if needed).

        In observe-only mode: the exchanges of the observation window that meet the last action's expectation.
        """
        window = self.observation()
        if window is not None:
            return self._observed(window, service, operation, count)
        flt = JournalFilter(
            service=service,
            operation=operation,
            run_id=self.env.run_id,
            scenario_id=self.scenario_id,
            since_seq=self.mark,
        )
        delegated = self.last_action is not None and self.last_action.status is ActionStatus.DELEGATED
        prompt, channel = self.prompt, self._channel()
        if not (delegated and prompt is not None and channel is not None):
            return wait_for(self.env.journal, flt, count=count, timeout=self._settle_timeout(delegated))
        self.prompt = None
        deadline = prompt.asked_at + prompt.timeout
        while True:
            found = wait_for(self.env.journal, flt, count=count, timeout=0.0)
            if len(found) >= count:
                channel.close(prompt, "observed")
                return found
            reply = channel.reply(prompt)
            if reply is not None and reply.answer == "blocked":
                channel.close(prompt, "blocked", reply.comment)
                self.attach("Étape bloquée par l'opérateur", reply.comment)
                from harness.runtime.guided import StepBlocked

                raise StepBlocked(reply.comment or "sans commentaire")
            if time.time() >= deadline:
                channel.close(prompt, "timeout")
                return found
            time.sleep(0.1)


def not_observed(reason: str) -> NoReturn:
    """Observe-only mode: the exchange a step needs was not recorded in the window. The scenario is skipped
    (« non observé »), never passed."""
    import pytest

    pytest.skip(bilingual("non observé", "not observed") + f": {reason}")


def not_observable(reason: str) -> NoReturn:
    """Observe-only mode: a check that the journal cannot answer (what the DUI showed, an injected fault)."""
    import pytest

    pytest.skip(bilingual("non vérifiable en observation", "not checkable in observe-only mode") + f": {reason}")
