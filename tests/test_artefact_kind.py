"""The kinds of ``socle-harness validate --kind`` (:mod:`harness.validators.artefact_kind`): their values are the CLI's
contract (the table of :mod:`harness.validators.artefacts`, the editors' CI scripts), their labels what the text and
HTML reports print. Written out here, so that a renamed kind or label fails."""

from __future__ import annotations

from harness.validators.artefact_kind import ArtefactKind

KINDS = {
    "cda": "document CDA R2",
    "xdm": "archive IHE XDM",
    "eml": "message MSSanté (.eml)",
    "mdn": "accusé de lecture (MDN)",
    "fhir": "ressource FHIR R4",
    "vihf": "assertion VIHF",
    "insi-request": "requête INSi",
    "insi-response": "réponse INSi",
    "hl7v2": "message HL7 v2",
    "iti41": "requête ITI-41 (DMP)",
}


def test_each_kind_has_its_cli_value_and_label_in_order() -> None:
    assert [(kind.value, kind.label) for kind in ArtefactKind] == list(KINDS.items())


def test_a_kind_is_read_from_its_cli_value() -> None:
    for value, label in KINDS.items():
        kind = ArtefactKind(value)
        assert kind == value and str(kind) == value and kind.label == label
