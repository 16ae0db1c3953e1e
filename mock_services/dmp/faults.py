"""The DMP simulator's fault catalogue: what a scenario (or ``/_harness/faults``) injects, ``dmp.<fault>``."""

from __future__ import annotations

from harness.host.simulator import FaultSpec

FAULT_CLOSED = "dmp.closed"  # the person's DMP is closed at the next feed
FAULT_AUTHORISATION_REFUSED = "dmp.authorisation_refused"  # access authorisation refused at the next feed
FAULT_SOAP = "dmp.soap_fault"  # the next request gets a SOAP 1.2 fault (params.code, params.reason)
FAULT_TIMEOUT = "dmp.timeout"  # the next request has no answer before params.seconds, then HTTP 504

FAULTS = (
    FaultSpec(FAULT_CLOSED, "le DMP de la personne est fermé au prochain versement"),
    FaultSpec(FAULT_AUTHORISATION_REFUSED, "l'autorisation d'accès est refusée au prochain versement"),
    FaultSpec(FAULT_SOAP, "la prochaine requête reçoit une faute SOAP 1.2", ("code", "reason")),
    FaultSpec(
        FAULT_TIMEOUT, "la prochaine requête n'a pas de réponse avant le délai donné (puis HTTP 504)", ("seconds",)
    ),
)
