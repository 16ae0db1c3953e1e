"""The harness's FHIR R4 layer, shared by the FHIR simulators (e-Prescription, e-Parcours cahier de liaison, and
TDDUI).

Specification: HL7 FHIR R4 (4.0.1) RESTful API and search (http://hl7.org/fhir/R4/http.html, search.html).
Modules, lower first:

- :mod:`~harness.fhir.outcome`: ``OperationOutcome`` and :class:`~harness.fhir.outcome.FhirError` (status + issues);
- :mod:`~harness.fhir.access`: the calling establishment (client certificate ``ESSMS-<FINESS>``) and whom it may act for;
- :mod:`~harness.fhir.wire`: bounded body reading, JSON / XML (XML only through :func:`harness.fields.xmlsafe.parse_xml`,
  then the ``fhir.resources`` R4B models), content negotiation, :class:`~harness.fhir.wire.Limits`;
- :mod:`~harness.fhir.model`: structure checks against the R4B models, reference helpers;
- :mod:`~harness.fhir.store`: the per-run versioned store (``meta.versionId``, ``ETag``, ``If-Match``, units of work);
- :mod:`~harness.fhir.search`: search parameters, chains, ``_include``;
- :mod:`~harness.fhir.interaction`: one interaction, :class:`~harness.fhir.interaction.FhirHooks` (authentication,
  profile checks, business rules, visibility, journal entries) and the seam the Bundle processor runs entries through;
- :mod:`~harness.fhir.bundle`: ``transaction`` (all or nothing) and ``batch``;
- :mod:`~harness.fhir.server`: the Starlette server, :mod:`~harness.fhir.capability` (``/metadata``),
  :mod:`~harness.fhir.openapi`.

Profile rules of the French guides live in :mod:`harness.validators` (``frcore``, ``eprescription``, ``cdl``).
"""

from harness.fhir.access import EstablishmentAccess
from harness.fhir.interaction import (
    FhirHooks,
    FhirInteraction,
    Interaction,
    RequestInfo,
    ResourceType,
    default_exchange,
)
from harness.fhir.outcome import FhirError, Issue, IssueCode, IssueSeverity, fail, operation_outcome
from harness.fhir.search import ParamType, SearchParam, Total
from harness.fhir.server import FhirServer
from harness.fhir.store import ResourceStore, UnitOfWork, Version
from harness.fhir.wire import Format, Limits

__all__ = [
    "EstablishmentAccess",
    "FhirError",
    "FhirHooks",
    "FhirInteraction",
    "FhirServer",
    "Format",
    "Interaction",
    "Issue",
    "IssueCode",
    "IssueSeverity",
    "Limits",
    "ParamType",
    "RequestInfo",
    "ResourceStore",
    "ResourceType",
    "SearchParam",
    "Total",
    "UnitOfWork",
    "Version",
    "default_exchange",
    "fail",
    "operation_outcome",
]
