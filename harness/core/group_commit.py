"""Group commit of the journal rows of one event-loop turn (issue 18): the requests that an asyncio server
handles together share one journal transaction, and each is answered only once its own rows are committed.

A handler that has decided its answer hands its exchanges to :meth:`GroupCommit.add` and awaits the future it
gets; the first one to wait on a loop schedules :meth:`GroupCommit.flush` there (``loop.call_soon``), which runs
after the callbacks already ready on that loop, i.e. after the other requests of the same turn have decided too.
The flush records all the waiting exchanges with one call of the recorder (one transaction); if that fails, each
handler's exchanges alone, so that one refused batch fails alone. Then each handler's ``after`` action (the FHIR
server applies its created resources there), then each future resolved: ``None`` when committed, else the error.
Used by the FHIR server (:mod:`harness.fhir.server`, reads, searches and creates) and the INSi simulator
(:mod:`mock_services.insi.service`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

from harness.core.journal import Exchange

Recorder = Callable[[list[Exchange]], object]


@dataclass(eq=False, slots=True)
class _Waiting:
    """A handler whose exchanges wait for the next flush, with what to do once they are committed; ``done`` gets
    ``None`` once committed (and ``after`` done), or the error that refused them."""

    exchanges: list[Exchange]
    after: Callable[[], object] | None
    done: asyncio.Future[BaseException | None]


class GroupCommit:
    """The exchanges waiting on each event loop for their shared commit (see the module's documentation)."""

    def __init__(self, record: Recorder) -> None:
        self.record = record
        self._lock = threading.Lock()  # one list per event loop serving the owner
        self._waiting: dict[asyncio.AbstractEventLoop, list[_Waiting]] = {}

    def add(
        self, exchanges: list[Exchange], after: Callable[[], object] | None = None
    ) -> asyncio.Future[BaseException | None]:
        """Queue ``exchanges`` for the next flush on the running loop; ``after`` runs once they are committed
        (an error it raises refuses this handler alone). Await the result before answering."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[BaseException | None] = loop.create_future()
        with self._lock:
            queue = self._waiting.setdefault(loop, [])
            queue.append(_Waiting(exchanges, after, done))
            first = len(queue) == 1
        if first:
            loop.call_soon(self.flush, loop)
        return done

    def flush(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Commit (and apply) the exchanges waiting on ``loop`` (the running one by default)."""
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
        with self._lock:
            group = self._waiting.pop(loop, [])
        if not group:
            return
        failures: list[BaseException | None] = [None] * len(group)
        try:
            try:
                self.record([e for waiting in group for e in waiting.exchanges])
            except Exception as exc:  # noqa: BLE001 - each batch alone: one refused batch fails alone
                if len(group) == 1:
                    failures[0] = exc
                else:
                    for index, waiting in enumerate(group):
                        try:
                            self.record(waiting.exchanges)
                        except Exception as alone:  # noqa: BLE001 - the handler answers it
                            failures[index] = alone
            for index, waiting in enumerate(group):
                if failures[index] is None and waiting.after is not None:
                    try:
                        waiting.after()
                    except Exception as exc:  # noqa: BLE001 - the handler answers it
                        failures[index] = exc
        except BaseException as exc:
            failures = [failure or exc for failure in failures]
            raise
        finally:
            for waiting, failure in zip(group, failures, strict=True):
                if not waiting.done.done():
                    waiting.done.set_result(failure)


__all__ = ["GroupCommit", "Recorder"]
