"""e-Parcours simulator: the regional platform's cahier de liaison (mounted ``/eparcours``).

The simulator is the *gestionnaire* of the ANS "Cahier de liaison" FHIR guide (``ans.fhir.fr.cdl`` 3.0.0, FHIR R4
4.0.1; ``input/pagecontent/construction_des_flux.md``, ``input/fsh/``) with both options the guide requires of it:

- **RESTful**: actors (``Patient``, ``RelatedPerson``, ``Practitioner``, ``PractitionerRole``, ``Organization``,
  ``Device``) created by ``POST`` / updated by ``PUT`` (flux 1a / 2a); notes (``DocumentReference``, profile
  CdLDocumentReference: ``type`` from JDV_J23, ``isEmergency`` extension, visibility ``securityLabel`` from
  JDV_J110) created by ``POST`` (1b, 201) and updated by ``PUT`` (2b, 200; ``meta.versionId`` incremented,
  ``ETag``, ``If-Match`` mismatch -> 412), deleted by ``DELETE`` (flux 3, optional; conditional delete on
  ``identifier``);
- **transaction**: ``POST [base]`` with a CdLBundleCreationNote / CdLBundleMAJNote Bundle (1c / 2c; actors
  included with POST — ``ifNoneExist`` honoured — or PUT), answered 200 with a ``transaction-response``;
- **search** (flux 4/5): ``GET [base]/DocumentReference`` with ``patient.identifier`` / ``subject:Patient.identifier``,
  ``author:<Type>.identifier`` / ``.family`` / ``.given``, ``date``, ``type``, ``security-label``, ``_include``
  (``DocumentReference:subject``, ``DocumentReference:author``, ``*``) -> ``searchset`` Bundle.

Both directions: the DUI posts notes, and the platform's partners post notes (``EparcoursService.publish_note``,
used by the scenarios) that the DUI must find and read. Every create / update / read / search / delete of a note by
the DUI is one ``cdl.<verb>`` exchange in the journal (see :mod:`mock_services.eparcours.service`).

Base URL ``https://host:port/eparcours/fhir``; ``GET [base]/metadata`` is the CapabilityStatement,
``GET /eparcours/openapi.json`` the OpenAPI description. The DUI presents its establishment's organisation
certificate (``ESSMS-<FINESS>``, issued at start) so that the journal knows which ESSMS exchanges.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from harness.fhir.access import ensure_establishment_certificates
from harness.host.simulator import Simulator, SimulatorContext
from mock_services.eparcours.service import FAULTS, EparcoursService, EparcoursSettings


class EparcoursSimulator(Simulator):
    fault_catalogue = FAULTS
    session_faults = frozenset(FAULTS)  # taken once the caller's certificate is read (harness.fhir.server)
    name = "eparcours"
    title = "e-Parcours (cahier de liaison)"
    http_error_shape = "fhir"

    def __init__(self, ctx: SimulatorContext) -> None:
        super().__init__(ctx)
        self.service = EparcoursService(ctx, EparcoursSettings.from_mapping(dict(ctx.settings)))

    def http_app(self) -> ASGIApp:
        return self.service.app()

    def http_endpoints(self) -> dict[str, str]:
        return {"fhir": "/fhir", "openapi": "/openapi.json"}

    async def start(self) -> dict[str, str]:
        ensure_establishment_certificates(self.ctx.pki, [e.finess for e in self.ctx.testdata.establishments])
        return {}
