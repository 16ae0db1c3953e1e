"""Start-up of a long-running command: the cyclic garbage collector paused while its modules load.

Starting the simulators imports some 900 modules and builds about 10^5 long-lived objects (modules, classes,
functions, dataclasses' generated methods). CPython's cyclic collector runs whenever allocations outnumber
deallocations by its threshold (700 by default, ``gc.get_threshold``), and its oldest-generation passes walk every
object tracked so far: during ``socle-harness serve``'s start that is some 200 collections, about 0.1 s of CPU that
reclaims nothing (issue 18, cold start). The start-up objects live as long as the process: :func:`collector_paused`
pauses the collector while they are built and, when the start succeeded, moves them to the permanent generation
(``gc.freeze``, Python documentation "gc — Garbage Collector interface") so that the serving process's later
collections never walk them again; the collector is then resumed as it was.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block; freeze what exists if the block succeeds; resume it as it was.

    On an exception nothing is frozen (the objects of a failed start may be garbage) and the collector is resumed.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if enabled:
            gc.enable()
