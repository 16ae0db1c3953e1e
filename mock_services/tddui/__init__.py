"""TDDUI simulator: the national endpoint that receives a DUI's "transfert de données DUI" (ANS TDDUI guide).

FHIR R4 over the host's shared HTTPS port, on :mod:`harness.fhir` (:mod:`mock_services.tddui.service`):
``POST <base>/`` (``https://host:port/tddui/``) with a TDDUIBundle transaction (``application/fhir+json``, or
``application/fhir+xml``) answers ``200`` with a ``transaction-response`` Bundle, or ``4xx`` with an
OperationOutcome — 403: no client certificate, not the establishment's ``ESSMS-<FINESS>``, or a Bundle whose
organisation is another establishment's (:mod:`harness.fhir.access`); 400: not JSON / not a transaction / FHIR
structure; 413: body or entries beyond the bounds, refused before the body is read when ``Content-Length`` says so;
415: media type; 422: profile rules, unresolvable references, invalid or production INS. ``GET <base>/metadata``
returns the CapabilityStatement. Validation: :mod:`harness.validators.tddui`.

Journal (:mod:`harness.fields.dui`): one ``fhir.transaction`` exchange per Bundle (payload = the Bundle, findings),
and, when accepted, one exchange per entry the usage indicators use (``fhir.create.<kind>``, ``essms`` = the
authenticated establishment, ``person`` = INS, the producer's facts in ``details["fact"]``), all committed together
before the answer. The ``lastModified`` the response gives is the server's; the facts keep the DUI's own dates.

Fault ``tddui.reply`` (former name ``fhir.reply``), params ``status`` and ``message``: the next transaction is
refused with that HTTP status and an OperationOutcome.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from harness.fhir.access import ensure_establishment_certificates
from harness.host.simulator import Simulator, SimulatorContext
from mock_services.tddui.service import FAULTS, TdduiService, TdduiSettings

__all__ = ["FAULTS", "TdduiService", "TdduiSettings", "TdduiSimulator"]


class TdduiSimulator(Simulator):
    name = "tddui"
    fault_catalogue = FAULTS
    session_faults = frozenset(FAULTS)  # taken once the caller's certificate is read
    title = "TDDUI (transfert de données DUI, FHIR)"
    http_error_shape = "fhir"

    def __init__(self, ctx: SimulatorContext) -> None:
        super().__init__(ctx)
        self.service = TdduiService(ctx, TdduiSettings.from_mapping(dict(ctx.settings)))

    def http_app(self) -> ASGIApp:
        return self.service.fhir.app()

    def http_endpoints(self) -> dict[str, str]:
        return {"fhir": "/", "metadata": "/metadata"}

    async def start(self) -> dict[str, str]:
        if self.ctx.pki is not None:
            ensure_establishment_certificates(self.ctx.pki, [e.finess for e in self.ctx.testdata.establishments])
        return {}
