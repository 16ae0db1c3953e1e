"""The INSi simulator's fault catalogue: what a scenario (or ``/_harness/faults``) injects, ``insi.<fault>``."""

from __future__ import annotations

from harness.host.simulator import FaultSpec

FAULT_UNAVAILABLE = "insi.indisponible"  # insi_102 SOAP fault, or HTTP 503 when params.mode = "http"
FAULT_DELAY = "insi.delai"  # the answer comes params.seconds late (bounded by max_delay_seconds)
FAULT_SOAP = "insi.faute"  # the next request gets the SOAP fault of params.code

FAULTS = (
    FaultSpec(
        FAULT_UNAVAILABLE, "le téléservice est indisponible : faute insi_102, ou HTTP 503 (mode http)", ("mode",)
    ),
    FaultSpec(FAULT_DELAY, "la réponse arrive après le délai donné (borné par max_delay_seconds)", ("seconds",)),
    FaultSpec(FAULT_SOAP, "la prochaine requête reçoit la faute SOAP de ce code", ("code", "message")),
)
