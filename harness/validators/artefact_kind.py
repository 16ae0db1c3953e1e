"""The kinds of artefact ``socle-harness validate`` reads (:mod:`harness.validators.artefacts`), apart from the
validators themselves: the CLI declares its ``--kind`` option without importing every validator."""

from __future__ import annotations

from enum import StrEnum


class ArtefactKind(StrEnum):
    CDA = "cda"
    XDM = "xdm"
    EML = "eml"
    MDN = "mdn"
    FHIR = "fhir"
    VIHF = "vihf"
    INSI_REQUEST = "insi-request"
    INSI_RESPONSE = "insi-response"
    HL7V2 = "hl7v2"
    ITI41 = "iti41"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    ArtefactKind.CDA: "document CDA R2",
    ArtefactKind.XDM: "archive IHE XDM",
    ArtefactKind.EML: "message MSSanté (.eml)",
    ArtefactKind.MDN: "accusé de lecture (MDN)",
    ArtefactKind.FHIR: "ressource FHIR R4",
    ArtefactKind.VIHF: "assertion VIHF",
    ArtefactKind.INSI_REQUEST: "requête INSi",
    ArtefactKind.INSI_RESPONSE: "réponse INSi",
    ArtefactKind.HL7V2: "message HL7 v2",
    ArtefactKind.ITI41: "requête ITI-41 (DMP)",
}
