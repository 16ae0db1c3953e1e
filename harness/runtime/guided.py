"""Guided recette: a person at the DUI performs each action the harness asks for, and answers its questions.

Two processes take part. The *child* (the pytest run) asks through an :class:`OperatorChannel`: it emits an
:class:`~harness.core.events.OperatorPrompt` event and polls a replies file. The *parent* (``socle-harness run --sut
manual``) shows the prompt in the terminal and on a local web page, and appends the operator's replies to that
file with :class:`ReplyBox`. A reply is ``done`` (I did it), ``blocked`` (with a comment), or a choice
(``oui``/``non``) for a question. The verdict still comes from the exchanges the simulators record.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.core.events import Event, OperatorPrompt, OperatorPromptClosed


@dataclass(frozen=True)
class OperatorReply:
    prompt_id: str
    answer: str  # "done" | "blocked" | one of the prompt's choices
    comment: str = ""
    at: float = 0.0


class ReplyBox:
    """An append-only JSON-lines file of operator replies, safe for one writer and several readers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def post(self, reply: OperatorReply) -> None:
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(reply), ensure_ascii=False) + "\n")

    def replies(self, prompt_id: str) -> list[OperatorReply]:
        if not self.path.exists():
            return []
        found = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                data = json.loads(line)
            except ValueError:
                continue  # a line being written
            if data.get("prompt_id") == prompt_id:
                found.append(OperatorReply(**data))
        return found


class StepBlocked(Exception):
    """The operator marked the step as blocked: no conformance verdict for this scenario."""


class OperatorChannel:
    """Child side: ask the operator, wait for the exchange or for a reply."""

    def __init__(self, emit: Callable[[Event], None], box: ReplyBox, *, timeout: float) -> None:
        self.emit = emit
        self.box = box
        self.timeout = timeout

    def ask(
        self, scenario_id: str, step: str, text: str, *, mode: str = "action", choices: tuple[str, ...] = ()
    ) -> OperatorPrompt:
        prompt = OperatorPrompt(
            prompt_id=uuid.uuid4().hex[:12],
            scenario_id=scenario_id,
            step=step,
            mode=mode,
            text=text,
            timeout=self.timeout,
            asked_at=time.time(),
            choices=list(choices),
        )
        self.emit(prompt)
        return prompt

    def close(self, prompt: OperatorPrompt, outcome: str, comment: str = "") -> None:
        self.emit(OperatorPromptClosed(prompt.prompt_id, outcome, comment))

    def reply(self, prompt: OperatorPrompt) -> OperatorReply | None:
        replies = self.box.replies(prompt.prompt_id)
        return replies[-1] if replies else None

    def answer(self, prompt: OperatorPrompt, poll: float = 0.1) -> OperatorReply | None:
        """Wait for the operator's answer to a question (None when the time runs out)."""
        deadline = prompt.asked_at + prompt.timeout
        while time.time() < deadline:
            reply = self.reply(prompt)
            if reply is not None:
                self.close(prompt, "blocked" if reply.answer == "blocked" else "answered", reply.comment)
                if reply.answer == "blocked":
                    raise StepBlocked(reply.comment or "sans commentaire")
                return reply
            time.sleep(poll)
        self.close(prompt, "timeout")
        return None
