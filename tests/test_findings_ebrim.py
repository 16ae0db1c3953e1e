"""The ebRIM vocabulary of XDS metadata (harness/validators/ebrim.py): each identifier as IHE ITI TF-3 Rev. 19.0
§4.2.5 ("Metadata Identifiers"), §4.2.2 (association types) and ebRS 3.0 publish it, written out here rather than
read from the module, and the lenient readers on a hand-written ExtrinsicObject.
"""

from __future__ import annotations

import pytest
from lxml import etree

from harness.validators import ebrim as E

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"

PUBLISHED = {
    # namespaces (ebXML Registry 3.0, IHE XDS.b)
    "LCM": "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0",
    "RIM": RIM,
    "RS": "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0",
    "QUERY": "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0",
    "XDSB": "urn:ihe:iti:xds-b:2007",
    # ITI TF-3 §4.2.5
    "DOC_ENTRY_OBJECT_TYPE": "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1",
    "SUBMISSION_SET_NODE": "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd",
    "DOC_PATIENT_ID": "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427",
    "DOC_UNIQUE_ID": "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab",
    "SS_PATIENT_ID": "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446",
    "SS_UNIQUE_ID": "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8",
    "SS_SOURCE_ID": "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832",
    "SS_AUTHOR": "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d",
    "SS_CONTENT_TYPE": "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500",
    "CLASS_CODE": "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a",
    "TYPE_CODE": "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983",
    "FORMAT_CODE": "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d",
    "CONFIDENTIALITY_CODE": "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f",
    "HEALTHCARE_FACILITY_TYPE": "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1",
    "PRACTICE_SETTING": "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead",
    "DOC_AUTHOR": "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d",
    # ITI TF-3 §4.2.2, ITI TF-2b §3.57 (UpdateAvailabilityStatus)
    "HAS_MEMBER": "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember",
    "RPLC": "urn:ihe:iti:2007:AssociationType:RPLC",
    "SIGNS": "urn:ihe:iti:2007:AssociationType:signs",
    "UPDATE_AVAILABILITY_STATUS": "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus",
    # ebRIM 3.0 StatusType, ebRS 3.0 RegistryResponse
    "STATUS_APPROVED": "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved",
    "STATUS_DEPRECATED": "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated",
    "RESPONSE_SUCCESS": "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success",
    "RESPONSE_FAILURE": "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure",
    "RESPONSE_PARTIAL": "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess",
    "SEVERITY_ERROR": "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error",
    "SEVERITY_WARNING": "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning",
}


@pytest.mark.parametrize(("name", "value"), sorted(PUBLISHED.items()))
def test_each_identifier_is_the_published_one(name: str, value: str) -> None:
    assert getattr(E, name) == value


def test_the_prefixes_the_xpaths_use() -> None:
    assert E.NS == {
        "lcm": PUBLISHED["LCM"],
        "rim": RIM,
        "rs": PUBLISHED["RS"],
        "query": PUBLISHED["QUERY"],
        "xdsb": PUBLISHED["XDSB"],
    }
    assert E.rim("Slot") == f"{{{RIM}}}Slot"


ENTRY = f"""<rim:ExtrinsicObject xmlns:rim="{RIM}" id="D1">
  <rim:Slot name="languageCode"><rim:ValueList><rim:Value>fr-FR</rim:Value></rim:ValueList></rim:Slot>
  <rim:Slot name="sourcePatientInfo"><rim:ValueList>
    <rim:Value>PID-5|DUPONT^JEAN</rim:Value><rim:Value/><rim:Value>PID-8|M</rim:Value>
  </rim:ValueList></rim:Slot>
  <rim:Slot name="languageCode"><rim:ValueList><rim:Value>en-GB</rim:Value></rim:ValueList></rim:Slot>
  <rim:Slot name="empty"/>
  <rim:Name><rim:LocalizedString value="Premier titre"/><rim:LocalizedString value="Second"/></rim:Name>
  <rim:Classification classificationScheme="S1" nodeRepresentation="N">
    <rim:Slot name="other"><rim:ValueList><rim:Value>x</rim:Value></rim:ValueList></rim:Slot>
    <rim:Slot name="codingScheme"><rim:ValueList><rim:Value>2.16.840.1.113883.5.25</rim:Value>
      <rim:Value>ignored</rim:Value></rim:ValueList></rim:Slot>
  </rim:Classification>
  <rim:Classification classificationScheme="S2"/>
  <rim:Classification classificationScheme="S1" nodeRepresentation="MASQUE_PS"/>
  <rim:Classification classificationScheme="S3" nodeRepresentation="C3">
    <rim:Slot name="codingScheme"><rim:ValueList><rim:Value/></rim:ValueList></rim:Slot>
  </rim:Classification>
  <rim:ExternalIdentifier identificationScheme="P" value="first"/>
  <rim:ExternalIdentifier identificationScheme="U" value="1.2.3"/>
  <rim:ExternalIdentifier identificationScheme="P" value="second"/>
  <rim:ExternalIdentifier identificationScheme="V"/>
  <rim:Other><rim:Slot name="deep"><rim:ValueList><rim:Value>no</rim:Value></rim:ValueList></rim:Slot></rim:Other>
</rim:ExtrinsicObject>"""


@pytest.fixture
def entry() -> etree._Element:
    return etree.fromstring(ENTRY.encode())


def test_slot_reads_the_first_slot_of_that_name_only_directly_under(entry: etree._Element) -> None:
    assert E.slot(entry, "languageCode") == ["fr-FR"]
    assert E.slot(entry, "sourcePatientInfo") == ["PID-5|DUPONT^JEAN", "", "PID-8|M"]
    assert E.slot(entry, "empty") == []
    assert E.slot(entry, "deep") == []
    assert E.slot(entry, "absent") == []


def test_external_id_reads_the_first_identifier_of_the_scheme(entry: etree._Element) -> None:
    assert [E.external_id(entry, s) for s in ("P", "U", "V", "W")] == ["first", "1.2.3", None, None]


def test_classifications_and_their_codes(entry: etree._Element) -> None:
    assert [c.get("nodeRepresentation") for c in E.classifications(entry, "S1")] == ["N", "MASQUE_PS"]
    assert E.classifications(entry, "S9") == []
    assert [E.classification_code(entry, s) for s in ("S1", "S2", "S3", "S9")] == ["N", None, "C3", None]
    assert E.coded_values(entry, "S1") == [("N", "2.16.840.1.113883.5.25"), ("MASQUE_PS", "")]
    assert E.coded_values(entry, "S2") == [("", "")]
    assert E.coded_values(entry, "S3") == [("C3", "")]
    assert E.coded_values(entry, "S9") == []


def test_localized_name_is_the_first_string(entry: etree._Element) -> None:
    assert E.localized_name(entry) == "Premier titre"
    assert E.localized_name(etree.Element(E.rim("ExtrinsicObject"))) is None
