"""ebXML Registry (ebRIM / ebRS 3.0) vocabulary of IHE XDS metadata, shared by the XDM and XDS validators.

Identifiers from IHE ITI TF-3 §4.2.5 (Rev. 19.0, "Metadata Identifiers"): the classification schemes, external
identifier schemes and association types of DocumentEntry and SubmissionSet objects, plus the ebXML namespaces.
The readers below are lenient (missing slot = empty list); validators decide what is required.
"""

from __future__ import annotations

from lxml import etree

LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
XDSB = "urn:ihe:iti:xds-b:2007"
NS = {"lcm": LCM, "rim": RIM, "rs": RS, "query": QUERY, "xdsb": XDSB}

# ITI TF-3 §4.2.5: identifiers of the XDS metadata classifications and external identifiers.
DOC_ENTRY_OBJECT_TYPE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"  # stable DocumentEntry
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
DOC_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DOC_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
CONFIDENTIALITY_CODE = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
HEALTHCARE_FACILITY_TYPE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
PRACTICE_SETTING = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DOC_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"

# Association types (ITI TF-3 §4.2.2).
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
UPDATE_AVAILABILITY_STATUS = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"

# Availability status (ebRIM 3.0 StatusType).
STATUS_APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
STATUS_DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"

# ebRS 3.0 RegistryResponse status values.
RESPONSE_SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
RESPONSE_FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
RESPONSE_PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
SEVERITY_ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
SEVERITY_WARNING = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"


def rim(tag: str) -> str:
    """Clark name of an ebRIM element (``rim("Slot")``)."""
    return f"{{{RIM}}}{tag}"


_SLOT = f"{{{RIM}}}Slot"
_VALUE_LIST = f"{{{RIM}}}ValueList"
_VALUE = f"{{{RIM}}}Value"
_EXTERNAL_IDENTIFIER = f"{{{RIM}}}ExternalIdentifier"
_CLASSIFICATION = f"{{{RIM}}}Classification"


def slot(element: etree._Element, name: str) -> list[str]:
    """Values of the ``rim:Slot`` called ``name`` directly under ``element`` (``[]`` when absent)."""
    for child in element.iterchildren(_SLOT):
        if child.get("name") == name:
            return [v.text or "" for values in child.iterchildren(_VALUE_LIST) for v in values.iterchildren(_VALUE)]
    return []


def external_id(element: etree._Element, scheme: str) -> str | None:
    """Value of the ``rim:ExternalIdentifier`` of ``scheme`` under ``element``."""
    for child in element.iterchildren(_EXTERNAL_IDENTIFIER):
        if child.get("identificationScheme") == scheme:
            return child.get("value")
    return None


def classifications(element: etree._Element, scheme: str) -> list[etree._Element]:
    """The ``rim:Classification`` elements of ``scheme`` under ``element``."""
    return [c for c in element.iterchildren(_CLASSIFICATION) if c.get("classificationScheme") == scheme]


def classification_code(element: etree._Element, scheme: str) -> str | None:
    """``nodeRepresentation`` of the first classification of ``scheme`` (the code of a coded attribute)."""
    found = classifications(element, scheme)
    return found[0].get("nodeRepresentation") if found else None


def coded_values(element: etree._Element, scheme: str) -> list[tuple[str, str]]:
    """``(code, codingScheme)`` of every classification of ``scheme`` (``codingScheme`` slot, ``""`` if absent)."""
    out = []
    for cl in classifications(element, scheme):
        schemes = slot(cl, "codingScheme")
        out.append((cl.get("nodeRepresentation") or "", schemes[0] if schemes else ""))
    return out


def localized_name(element: etree._Element) -> str | None:
    """The first ``rim:Name/rim:LocalizedString/@value``."""
    found = element.xpath("rim:Name/rim:LocalizedString/@value", namespaces=NS)
    return str(found[0]) if found else None
