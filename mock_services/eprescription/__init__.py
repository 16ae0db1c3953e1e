"""e-Prescription simulator: the ordonnance numérique service a DUI imports prescriptions from (mounted ``/eprescription``).

The CNAM teleservice API is not public: the simulator models what the DUI does with it. An ESSMS professional scans
the QR code of a prescription (its unique identifier, the "EPU": OID ``1.2.250.1.215.500.1.1``, 18 characters),
the DUI retrieves the prescription by that identifier, checks it is the right person's and still valid, integrates
it, then **confirms the integration** to the service. Only a confirmed integration is an import (the usage
indicator ``eprescription`` counts ``eprescription.import_confirmed`` exchanges); a retrieval alone is journaled
(``eprescription.retrieve``) but never counted.

Endpoints (FHIR R4 4.0.1, base ``https://host:port/eprescription/fhir``; JSON or XML; OperationOutcome errors):

- ``GET [base]/MedicationRequest?group-identifier=urn:oid:1.2.250.1.215.500.1.1|<EPU>&_include=MedicationRequest:medication&_include=MedicationRequest:subject&_include=MedicationRequest:requester``:
  the prescription's lines (``ans.fhir.fr.eprescription``: ``MedicationRequest`` grouped by ``groupIdentifier`` =
  EPU, each with its ``Medication``, the ``Patient`` with its INS and the prescribing ``Practitioner``); an unknown
  EPU gives an empty searchset; a cancelled prescription has every line ``status = cancelled``.
- ``GET [base]/Binary/<EPU>``: the same prescription as a CDA R2 eP-MED-DM 2024.01 document (``Accept`` other than
  FHIR: the XML document itself; ``application/fhir+json``: a ``Binary`` resource); 404 unknown, 410 cancelled.
- **Confirmation** — ``POST [base]/Task`` (harness contract)::

      {"resourceType": "Task", "status": "completed", "intent": "order",
       "code": {"coding": [{"system": "https://socle-harness.test/fhir/CodeSystem/eprescription-task", "code": "integration"}]},
       "focus": {"identifier": {"system": "urn:oid:1.2.250.1.215.500.1.1", "value": "<EPU>"}},
       "for": {"identifier": {"system": "urn:oid:1.2.250.1.213.1.4.10", "value": "<INS>"}},
       "owner": {"identifier": {"system": "http://finess.esante.gouv.fr", "value": "<FINESS>"}},
       "authoredOn": "<instant>"}

  ``201 Created`` = the integration is recorded (``eprescription.import_confirmed`` accepted). Refused with 422
  ``business-rule`` when the prescription is unknown, cancelled, for another INS than ``Task.for``, never
  retrieved before, or already integrated. ``status = rejected`` with ``statusReason.text`` tells that the DUI
  refused the prescription (``eprescription.import_refused``).
- ``GET [base]/metadata`` (CapabilityStatement), ``GET /eprescription/openapi.json`` (OpenAPI of the FHIR API).
- Manual recette: ``GET /eprescription/ordonnances`` and ``/ordonnances/<EPU>`` (printable page with the QR code to
  scan), ``/ordonnances/<EPU>/qr.png``, ``POST /eprescription/_admin/ordonnances`` (``{"personne": "P001"}``).
  The pages show the prescriptions of the presenting establishment's persons (another's: 404, as ``Binary``).

The DUI authenticates with its establishment's organisation certificate of the test PKI (``ESSMS-<FINESS>``, OU
``1`` + FINESS, issued at start): the journal's ``essms`` comes from it. Every endpoint requires it, the printable
pages included (a browser presents it once ``client-ESSMS-<FINESS>.pem`` / ``.key`` are imported, e.g. as PKCS#12):
without it, 403 OperationOutcome ``login`` ``FHIR-CERTIFICAT-ABSENT``, journaled (``eprescription.page`` for the
pages). The CNAM teleservice is reached only by authenticated professionals and structures (its API is not public);
the simulator asks the DUI's establishment certificate, as the ANS services it models beside it (DMP, MSSanté).
"""

from __future__ import annotations

from starlette.types import ASGIApp

from harness.fhir.access import ensure_establishment_certificates
from harness.host.simulator import Simulator, SimulatorContext
from mock_services.eprescription.service import FAULTS, EprescriptionService, EprescriptionSettings


class EprescriptionSimulator(Simulator):
    fault_catalogue = FAULTS
    session_faults = frozenset(FAULTS)  # taken once the caller's certificate is read (harness.fhir.server)
    name = "eprescription"
    title = "e-Prescription (ordonnance numérique)"
    http_error_shape = "fhir"

    def __init__(self, ctx: SimulatorContext) -> None:
        super().__init__(ctx)
        self.service = EprescriptionService(ctx, EprescriptionSettings.from_mapping(dict(ctx.settings)))

    def http_app(self) -> ASGIApp:
        return self.service.app()

    def http_endpoints(self) -> dict[str, str]:
        return {"fhir": "/fhir", "ordonnances": "/ordonnances", "openapi": "/openapi.json"}

    async def start(self) -> dict[str, str]:
        ensure_establishment_certificates(self.ctx.pki, [e.finess for e in self.ctx.testdata.establishments])
        return {}
