"""The event streams of a parallel run's children, merged into one stream in catalogue order (issue 18).

``socle-harness run --jobs N`` plays the catalogue in N child processes (:mod:`harness.runtime.claims`); each
writes its own event stream. The handlers (console, JUnit, JSON, HTML, Cucumber) see one run, as if one process
had played it: one ``RunStarted`` once every child has started (or ended), the scenarios in the catalogue's order
(the scenario at the head of the order is passed on live, the ones after it are held until it finishes), one
``RunFinished`` once every child has finished, its counts the sum of theirs. The reports are therefore the same,
scenario for scenario and in the same order, whatever child played which scenario.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from harness.core.events import (
    Event,
    RunFinished,
    RunStarted,
    ScenarioFinished,
    ScenarioStarted,
    Status,
    StepFinished,
)


class OrderedMerge:
    """Feed it each child's events (``feed(part, event)``); it calls ``emit`` with the merged stream."""

    def __init__(self, parts: int, order: Callable[[], list[str]], emit: Callable[[Event], None]) -> None:
        self._parts = parts
        self._order_source = order
        self._order: list[str] = []
        self._emit = emit
        self._started: dict[int, RunStarted] = {}
        self._finished: dict[int, RunFinished] = {}
        self._ended: set[int] = set()  # children whose process has exited
        self._run_started = False
        self._held: list[Event] = []  # scenario events that came before the merged RunStarted
        self._events: dict[str, list[Event]] = {}  # scenario id -> its events not yet passed on
        self._done: set[str] = set()  # scenarios whose ScenarioFinished has come
        self._head = 0  # index in the order of the first scenario not yet fully passed on

    def feed(self, part: int, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._started[part] = event
            self._maybe_start()
        elif isinstance(event, RunFinished):
            self._finished[part] = event
        elif isinstance(event, ScenarioStarted | StepFinished | ScenarioFinished):
            scenario = event.scenario_id
            self._events.setdefault(scenario, []).append(event)
            if isinstance(event, ScenarioFinished):
                self._done.add(scenario)
            self._advance()
        else:  # an operator's prompt is never held (a parallel run has no operator; kept for completeness)
            self._pass(event)

    def child_ended(self, part: int) -> None:
        """The child's process has exited: it will send nothing more."""
        self._ended.add(part)
        self._maybe_start()

    def only_first(self, parts: int) -> None:
        """The children after the first ``parts`` were never started (``run --jobs auto`` on a small selection)."""
        self._parts = parts
        self._maybe_start()

    def flush(self) -> None:
        """Pass on every event held so far, in catalogue order (the run ends: finished, or stopped by Ctrl-C)."""
        self._maybe_start(force=True)
        self._advance(flush=True)

    def finish(self, duration: float) -> RunFinished | None:
        """Every child has exited: pass on what is left and the merged ``RunFinished`` (None, and no
        ``RunFinished`` passed on, if a child ended without its own: that run could not complete)."""
        self.flush()
        if len(self._finished) < self._parts:
            return None
        counts = {status.value: 0 for status in Status}
        for finished in self._finished.values():
            for status, count in finished.counts.items():
                counts[status] = counts.get(status, 0) + count
        first = self._finished[min(self._finished)]
        merged = RunFinished(
            run_id=first.run_id or self._run_id(),
            finished_at=max(f.finished_at for f in self._finished.values()),
            duration=duration,
            counts=counts,
            interrupted=any(f.interrupted for f in self._finished.values()),
        )
        self._emit(merged)
        return merged

    # internals -------------------------------------------------------------------------------------
    def _run_id(self) -> str:
        return next((s.run_id for s in self._started.values() if s.run_id), "")

    def _maybe_start(self, force: bool = False) -> None:
        if self._run_started:
            return
        waiting = any(p not in self._started and p not in self._ended for p in range(self._parts))
        if not force and (waiting or not self._started):
            return
        if self._started:
            self._emit(self._merged_start())
        self._run_started = True
        for event in self._held:
            self._emit(event)
        self._held.clear()

    def _merged_start(self) -> RunStarted:
        """The first child that played a scenario gives the run's fields; the others' simulators, each child's
        own on its own ports, are listed under « processus 2 », « processus 3 »… (``service.name`` -> URL)."""
        parts = sorted(self._started)
        playing = [p for p in parts if self._started[p].run_id] or parts
        base = self._started[playing[0]]
        endpoints = dict(base.endpoints)
        for part in playing[1:]:
            endpoints[f"processus {part + 1}"] = {
                f"{service}.{name}": url
                for service, named in sorted(self._started[part].endpoints.items())
                for name, url in named.items()
            }
        total = max(s.scenarios_total for s in self._started.values())
        return replace(base, endpoints=endpoints, scenarios_total=total)

    def _pass(self, event: Event) -> None:
        if self._run_started:
            self._emit(event)
        else:
            self._held.append(event)

    def _advance(self, flush: bool = False) -> None:
        if not self._order:
            self._order = self._order_source()
        while self._head < len(self._order):
            scenario = self._order[self._head]
            for event in self._events.pop(scenario, []):
                self._pass(event)
            if scenario not in self._done:
                if not flush:
                    return
            self._head += 1
        if flush or self._order:
            for scenario in list(self._events):  # not in the order (should not happen): in arrival order
                for event in self._events.pop(scenario):
                    self._pass(event)
