"""The manual driver: a recette operator at the DUI does what each step asks (guided recette).

Each action becomes a French instruction with the data to use (person, INS, document, address): the instruction
each service plugin declares for its actions (:attr:`harness.sut.plugins.ActionSpec.instruction`). The driver
returns :attr:`ActionStatus.DELEGATED`; the step then waits for the resulting exchange on the simulators
(``step_timeout``), while the operator may mark the step as blocked with a comment.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from harness.sut.base import ActionResult, ActionStatus, SutEnvironment
from harness.sut.control_api import ActionSpec, contract


class OperatorLink(Protocol):
    """The operator's channel of a guided recette (:class:`harness.runtime.guided.OperatorChannel` is one): the
    steps ask through it; the driver only needs one to be there."""

    def ask(self, scenario_id: str, step: str, text: str, *, mode: str = ..., choices: tuple[str, ...] = ...) -> Any:
        """Show the operator one instruction or question."""


class ManualDriver:
    name = "manual"

    def __init__(self, channel: OperatorLink | None) -> None:
        self.channel = channel
        self.env: SutEnvironment | None = None

    def setup(self, env: SutEnvironment) -> None:
        if self.channel is None:
            raise RuntimeError(
                "le mode guidé se lance avec « socle-harness run --sut manual » / "
                "guided mode needs `socle-harness run --sut manual` (it provides the operator channel)"
            )
        self.env = env

    def close(self) -> None:
        self.env = None

    def __getattr__(self, method: str) -> Callable[..., ActionResult]:
        spec = contract().by_method.get(method)
        if spec is None:
            raise AttributeError(f"{type(self).__name__} has no attribute {method!r}")
        return partial(_delegate, self, spec)


def _delegate(driver: ManualDriver, spec: ActionSpec, action: Any = None) -> ActionResult:
    text = spec.instruction(action, driver.env)
    return ActionResult(ActionStatus.DELEGATED, text, {"instruction": text})
