"""INSi simulator: the CNAM teleservice that returns and verifies a person's INS (Identifiant National de Santé).

One SOAP 1.2 endpoint, ``POST <base>/lps`` (``https://host:port/insi/lps``), behind mutual TLS on the host's shared
HTTPS port: the DUI presents its ``INSI-AUTO`` (or ``INSI-MANU``) organisation certificate of the test PKI. See
:mod:`mock_services.insi.service` for the behaviour, :mod:`mock_services.insi.identities` for the identity base and
``docs/specs/insi.md`` for the sources.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from harness.host.simulator import Simulator, SimulatorContext, catalogue_of
from mock_services.insi.faults import FAULTS
from mock_services.insi.service import INSI_CERTIFICATE_NAMES, InsiService, InsiSettings

#: Organisation certificates the INSi simulator makes sure the run's test PKI holds: the two INSi profiles, and an
#: establishment certificate of the same CA that INSi must refuse (desir_560) — for the negative scenarios.
OTHER_ORGANISATION_CERTIFICATE = "ORG-ETABLISSEMENT"
REQUIRED_CLIENT_CERTIFICATES = (*INSI_CERTIFICATE_NAMES, OTHER_ORGANISATION_CERTIFICATE)


class InsiSimulator(Simulator):
    name = "insi"
    title = "INSi (téléservice INS de l'Assurance Maladie)"
    http_error_shape = "soap12"
    fault_catalogue = catalogue_of(FAULTS)
    # taken with the establishment the request's Emetteur names (after reading it): they may be aimed at a session
    session_faults = frozenset(catalogue_of(FAULTS))

    def __init__(self, ctx: SimulatorContext) -> None:
        super().__init__(ctx)
        self.service = InsiService(ctx, InsiSettings.from_mapping(dict(ctx.settings)))

    def http_app(self) -> ASGIApp:
        return self.service.app()

    def http_endpoints(self) -> dict[str, str]:
        return {"soap": "/lps"}

    async def start(self) -> dict[str, str]:
        for name in REQUIRED_CLIENT_CERTIFICATES:
            if name not in self.ctx.pki.clients:
                self.ctx.pki.issue_client(name)
        return {}
