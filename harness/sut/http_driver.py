"""The HTTP driver: drives a real DUI's test build through its socle-harness control API (contract v1).

The contract is published in ``docs/control-api.openapi.json`` (OpenAPI 3.1). In short:

- ``POST {base}/socle/v1/session``: the harness gives the DUI the simulators' endpoints, the test CA (PEM),
  the organisation client certificates and the test credentials; the DUI answers 200/204 once configured.
  Before it, the driver opens the harness's test session of this DUI (:mod:`harness.core.sessions`) with the
  run's ESSMS, mailboxes, patients and PSC client, and closes it with the driver: the run's exchanges carry it.
- ``POST {base}/socle/v1/actions/{action}``: one business action (``mssante-send``...), with an
  ``Idempotency-Key`` header; the DUI performs it against the simulators and answers
  ``{"status": "done" | "failed" | "delegated", "detail": "...", "data": {...}}`` — ``failed`` meaning the DUI
  itself reports the failure to its user (a conformant behaviour when the service refused), not a crash.
- An unknown action is 404; anything else than 200 with a valid body (its ``data`` following the action's
  ``data`` schema, JSON Schema 2020-12, checked with jsonschema-rs) is a *SUT error*; a connection that cannot
  be established (after retries) is *SUT unreachable*. Both are reported as errors, never as conformance
  failures, and the run goes on with the next scenario.

Retries: only when the request could not be delivered (connection refused / reset before sending), so that an
action is never performed twice; a read timeout is not retried. The DUI should also deduplicate on
``Idempotency-Key``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from functools import cache, partial
from typing import Any

import httpx
import jsonschema_rs

from harness.core.messages import bilingual
from harness.core.sessions import SessionConflictError
from harness.sut.base import ActionResult, ActionStatus, SutEnvironment
from harness.sut.control_api import CONTRACT_VERSION, PREFIX, ActionSpec, contract, to_payload
from harness.sut.control_api_examples import data_schema

_STATUSES = {"done": ActionStatus.DONE, "failed": ActionStatus.FAILED, "delegated": ActionStatus.DELEGATED}


class HttpDriver:
    """A :class:`~harness.sut.base.SutDriver` speaking the control API over HTTP(S).

    Every driver method (``send_mssante``, ``dmp_feed``...) comes from the action table of
    :mod:`harness.sut.control_api` (assembled from the service plugins): it posts the action dataclass as JSON to
    its URL.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = f"http:{self.base_url}"
        self.retries = retries
        self.backoff = backoff
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)
        self._env: SutEnvironment | None = None
        self._session_sent = False
        self.harness_session: str | None = None  # the test session opened for this DUI (harness.core.sessions)

    # SutDriver ----------------------------------------------------------------------------------
    def setup(self, env: SutEnvironment) -> None:
        """Remember the environment; it is sent lazily before the first action, so that a DUI that is down at
        the start makes each scenario an error of its own instead of aborting the run."""
        self._close_harness_session()
        self._env = env
        self._session_sent = False

    def close(self) -> None:
        self._close_harness_session()
        self._client.close()

    def _close_harness_session(self) -> None:
        if self.harness_session is not None and self._env is not None and self._env.sessions is not None:
            self._env.sessions.close(self.harness_session)
        self.harness_session = None

    def __getattr__(self, method: str) -> Callable[..., ActionResult]:
        spec = contract().by_method.get(method)
        if spec is None:
            raise AttributeError(f"{type(self).__name__} has no attribute {method!r}")
        return partial(_call, self, spec)

    # Protocol -----------------------------------------------------------------------------------
    def perform(self, action: str, payload: dict[str, Any]) -> ActionResult:
        if not self._session_sent:
            failure = self._send_session()
            if failure is not None:
                return failure
        response = self._post(f"{PREFIX}/actions/{action}", payload, {"Idempotency-Key": uuid.uuid4().hex})
        if isinstance(response, ActionResult):
            return response
        if response.status_code == 404:
            return ActionResult(
                ActionStatus.ERROR, f"le DUI n'implémente pas l'action « {action} » (404) / action not implemented"
            )
        if response.status_code != 200:
            return ActionResult(
                ActionStatus.ERROR, f"réponse HTTP {response.status_code} du DUI: {response.text[:300]}"
            )
        return parse_outcome(response, contract().by_name.get(action))

    def _send_session(self) -> ActionResult | None:
        if self._env is None:
            raise RuntimeError("setup() must be called before any action")
        refused = self._open_harness_session(self._env)
        if refused is not None:
            return refused
        response = self._post(f"{PREFIX}/session", session_payload(self._env), {})
        if isinstance(response, ActionResult):
            return response
        if response.status_code not in (200, 204):
            return ActionResult(
                ActionStatus.ERROR,
                f"le DUI a refusé la session de test (HTTP {response.status_code}): {response.text[:300]}",
            )
        self._session_sent = True
        return None

    def _open_harness_session(self, env: SutEnvironment) -> ActionResult | None:
        """Open the DUI's test session with the run's identities before its own session starts, so that every
        exchange it makes with them is attributed to it; refused (an error of the scenario, the message naming the
        session holding a member) when another open session holds one of them. A session of this same DUI (its
        URL) still open is an earlier run that could not close it (interrupted): it is closed and replaced."""
        if self.harness_session is not None or env.sessions is None or not env.members.pairs():
            return None
        for stale in env.sessions.open_sessions():
            if stale.dui == self.base_url:
                env.sessions.close(stale.id)
        try:
            self.harness_session = env.sessions.create(self.base_url, env.members).id
        except SessionConflictError as exc:
            return ActionResult(ActionStatus.ERROR, str(exc))
        return None

    def _post(self, path: str, payload: dict[str, Any], headers: dict[str, str]) -> httpx.Response | ActionResult:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                return self._client.post(path, json=payload, headers={"X-Socle-Contract": CONTRACT_VERSION, **headers})
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # never delivered: safe to retry
                last = exc
                if attempt < self.retries:
                    time.sleep(self.backoff * (2**attempt))
            except httpx.TimeoutException as exc:
                return ActionResult(ActionStatus.UNREACHABLE, f"le DUI n'a pas répondu à temps ({path}): {exc!r}")
            except httpx.HTTPError as exc:
                return ActionResult(ActionStatus.UNREACHABLE, f"échange HTTP interrompu avec le DUI ({path}): {exc!r}")
        return ActionResult(
            ActionStatus.UNREACHABLE,
            f"DUI injoignable à {self.base_url} après {self.retries + 1} tentative(s): {last!r} / SUT unreachable",
        )


def _call(driver: HttpDriver, spec: ActionSpec, action: Any = None) -> ActionResult:
    """``POST {PREFIX}/actions/<spec.name>`` with the action as JSON (an empty object for actions without body)."""
    return driver.perform(spec.name, {} if spec.request is None else to_payload(action))


@cache
def _data_validator(spec: ActionSpec) -> Any:
    """The JSON Schema validator of the ``data`` an action's answer carries (the schema the document publishes)."""
    components: dict[str, Any] = {}
    schema = data_schema(spec, components)
    return jsonschema_rs.Draft202012Validator({**schema, "components": {"schemas": components}})


def data_errors(spec: ActionSpec, data: dict[str, Any]) -> list[str]:
    """Where and why an answer's ``data`` leaves the schema the action declares (``data.documents[0]: ...``);
    empty when it follows it. The reference DUI's answers are held to it too (tests)."""
    out = []
    for error in _data_validator(spec).iter_errors(data):
        where = "data" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.instance_path)
        out.append(f"{where}: {error.message}")
    return out


def parse_outcome(response: httpx.Response, spec: ActionSpec | None = None) -> ActionResult:
    """Validate the action outcome body: ``{"status", "detail"?, "data"?}``, ``data`` against the schema of the
    action ``spec`` declares."""
    try:
        body = response.json()
    except ValueError:
        return ActionResult(ActionStatus.ERROR, f"réponse du DUI qui n'est pas du JSON: {response.text[:200]!r}")
    if not isinstance(body, dict) or body.get("status") not in _STATUSES:
        return ActionResult(
            ActionStatus.ERROR, f"réponse du DUI hors contrat (status attendu done|failed|delegated): {str(body)[:200]}"
        )
    detail, data = body.get("detail", ""), body.get("data", {})
    if not isinstance(detail, str) or not isinstance(data, dict):
        return ActionResult(
            ActionStatus.ERROR, "réponse du DUI hors contrat: detail doit être une chaîne et data un objet"
        )
    errors = data_errors(spec, data) if spec is not None else []
    if spec is not None and errors:
        where, message = errors[0].split(": ", 1)
        return ActionResult(
            ActionStatus.ERROR,
            bilingual(
                f"réponse du DUI hors contrat ({spec.name}) : {where}", f"answer outside the contract: {message}"
            ),
        )
    return ActionResult(_STATUSES[body["status"]], detail, data)


def session_payload(env: SutEnvironment) -> dict[str, Any]:
    return {
        "contract": CONTRACT_VERSION,
        "endpoints": env.endpoints,
        "ca_bundle_pem": env.ca_bundle.read_text(encoding="ascii"),
        "client_certificates": {
            name: {"cert_pem": cert.read_text(encoding="ascii"), "key_pem": key.read_text(encoding="ascii")}
            for name, (cert, key) in env.client_certificates.items()
        },
        "credentials": env.credentials,
        **({"psc_client": env.psc_client} if env.psc_client else {}),
    }
