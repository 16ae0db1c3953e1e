"""The DMP scenarios (``@dmp``). The runs configure the CDA XSD and the CI-SIS schematrons from the public corpus
when it is present (``[settings.dmp]``), and the reference run then checks that every DLU accepted went through
both without a finding; without the corpus these layers are reported as not configured and the scenarios run."""

from pathlib import Path

from catalogue_matrix import Matrix

from harness.core.journal import JournalFilter, Outcome, open_journal
from tests.conftest import CORPUS

VERSEMENT = "Versement d'un DLU dans le DMP actif de la personne"
FERME = "Le DMP de la personne est fermé : le DUI affiche le refus"
FERME_ENTRE_TEMPS = "Le DMP se ferme entre le test d'existence et le versement : le DUI affiche le refus"
REMPLACEMENT = "Remplacement d'un document par une nouvelle version"
MASQUAGE = "Masquage d'un document aux professionnels"
INS = "Le patientId transmis au DMP est l'INS de la personne, avec une clé valide"
SIGNATURE = "Le lot versé contient le document de signature XAdES relié au lot"
CONSULTATION = "Recherche et récupération du document versé"

CDA = "Le document versé est déclaré comme document CDA R2 et vérifié comme tel"
LECTURE = "La consultation du DMP porte sur le patient du VIHF"
STRUCTURE = (
    "Le versement est rattaché à la structure authentifiée (certificat TLS, signataire du VIHF, Identifiant_Structure)"
)
MTOM = "Le versement ITI-41 est transmis en MTOM/XOP"
PRODUCTION = "Sous la politique « refuse », le DUI ne transmet au DMP que des INS de test"
JDV = "Les codes du versement sont dans les jeux de valeurs du DMP"
FAUTE_SOAP = "Le DMP répond par une faute SOAP : le DUI affiche le refus et aucun document n'est versé"
SIGNEE = "La signature du lot est vérifiée (structure signataire et empreintes des documents)"

FEEDING = {VERSEMENT, REMPLACEMENT, MASQUAGE, INS, SIGNATURE, CONSULTATION, CDA, LECTURE, STRUCTURE, MTOM, PRODUCTION}
FEEDING |= {JDV, SIGNEE}
ALL = FEEDING | {FERME, FERME_ENTRE_TEMPS, FAUTE_SOAP}

EXPECTED_FAILURES = {
    "vihf-non-signe": ALL - {FAUTE_SOAP},  # the SOAP fault comes before the VIHF check
    "cle-ins-erronee-dmp": FEEDING | {FERME_ENTRE_TEMPS},  # refused as XDSUnknownPatientId, not DMPClosed
    "sans-document-signature": FEEDING,
    "typecode-errone": FEEDING,
    "ignore-dmp-ferme": {FERME, FERME_ENTRE_TEMPS, FAUTE_SOAP},
    "remplacement-sans-rplc": {REMPLACEMENT},
    "masquage-errone": {MASQUAGE},
    "recherche-sans-statut": {CONSULTATION, LECTURE},
    "mimetype-pdf": FEEDING,
    "lecture-autre-patient": {CONSULTATION, LECTURE},
    "vihf-autre-structure": ALL - {FAUTE_SOAP},  # every request is the VIHF security fault, after the SOAP one
    "sans-mtom": FEEDING,
    "ins-production-dmp": ALL - {FAUTE_SOAP},  # the production INS has no DMP: TD0.2 answers NF, nothing is fed
    "classcode-hors-jdv": FEEDING,
    "signature-falsifiee": FEEDING,
}

_XSD = CORPUS / "cisis-cda" / "infrastructure" / "cda"
_SCHEMATRONS = CORPUS / "cisis-cda" / "schematrons"
CONFIG = (
    f'[settings.dmp]\ncda_xsd_dir = "{_XSD}"\n'
    + (f'schematron_dir = "{_SCHEMATRONS}"\n' if _SCHEMATRONS.is_dir() else "")
    if _XSD.is_dir()
    else ""
)


def every_dlu_went_through_xsd_and_schematron(run: Path) -> None:
    """After the reference run: each accepted DLU was checked by the XSD and its own schematron, without a finding."""
    if not _SCHEMATRONS.is_dir():
        return
    journal = open_journal(f"sqlite:///{run}/journal.sqlite")
    try:
        feeds = journal.query(JournalFilter(service="dmp", operation="iti41.provide_and_register"))
    finally:
        journal.close()
    accepted = [e for e in feeds if e.outcome is Outcome.ACCEPTED]
    assert accepted
    for exchange in accepted:
        [cda] = [v for v in exchange.details["validation"] if v["kind"] == "cda"]
        assert cda["layers"] == ["xml", "header", "xsd", "schematron:DLU-EHPAD-DLU_2022.01"], cda
        assert [f for f in exchange.details["findings"] if f["code"].startswith(("SCH-", "CDA-"))] == []


MATRIX = Matrix(
    tag="dmp",
    service="dmp",
    scenarios=frozenset(ALL),
    failures={defect: frozenset(failed) for defect, failed in EXPECTED_FAILURES.items()},
    config=CONFIG,
    reference_check=every_dlu_went_through_xsd_and_schematron,
)
