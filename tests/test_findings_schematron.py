"""The CI-SIS schematron engine on a small folder of hand-written ISO Schematron files (ISO/IEC 19757-3:2006,
``queryBinding="xslt2"``, laid out as the ANS TestContenuCDA ``schematrons/`` + ``jeuxDeValeurs/`` folders):
which schematron a document is judged with (templateId root + extension, the SCHSchema processing instruction,
never another version), and every finding the engine itself emits, asserting the EXACT findings.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from harness.validators import Severity
from harness.validators.schematron import (
    SchematronChoice,
    SchematronEngine,
    SchematronVolet,
    _svrl_findings,
)

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO  # noqa: E741
ROOT = "1.2.250.1.213.1.1.1.99"  # a document templateId of the CI-SIS arc no real volet uses
FAMILY, MEMBER, SINGLE = "1.2.250.1.213.1.1.1.98", "1.2.250.1.213.1.1.1.98.1", "1.2.250.1.213.1.1.1.97"
HEADER = "1.2.250.1.213.1.1.1.1"
INCLUDED = "1.2.250.1.213.1.1.1.94"


def _sch(rules: str, comment: str = "") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<schema xmlns="http://purl.oclc.org/dsdl/schematron" queryBinding="xslt2">\n'
        '  <ns prefix="cda" uri="urn:hl7-org:v3"/>\n  <ns prefix="xs" uri="http://www.w3.org/2001/XMLSchema"/>\n'
        f"  {comment}\n"
        f'  <pattern id="p"><rule context="cda:ClinicalDocument">{rules}</rule></pattern>\n</schema>\n'
    )


def _requires(root: str, extension: str | None = None) -> str:
    test = f"@root='{root}'" + (f" and @extension='{extension}'" if extension else "")
    return f'<assert test="cda:templateId[{test}]">templateId {root} attendu</assert>'


RT_RULES = (
    '<assert test="xs:integer(string(cda:code/@code)) gt 0">code <emph>positif</emph> attendu</assert>'
    '<report test="cda:title" role="warning">titre présent</report>'
    '<report test="cda:id" role="info">identifiant présent</report>'
    '<assert test="cda:effectiveTime" role="fatal">effectiveTime attendu</assert>'
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("testcontenucda")
    schematrons = base / "schematrons"
    schematrons.mkdir()
    (base / "jeuxDeValeurs").mkdir()
    (base / "jeuxDeValeurs" / "JDV_Present-CISIS.xml").write_text("<valueSet/>")
    files = {
        "TEST-RT_2024.01": _sch(_requires(ROOT, "2024.01") + RT_RULES),
        "TEST-RT_2023.01": _sch(_requires(ROOT) + RT_RULES),
        "TEST-FAM_2024.01": _sch(_requires(FAMILY)),
        "TEST-SUB_2024.01": _sch(_requires(FAMILY) + _requires(MEMBER)),
        "TEST-ONE": _sch(_requires(SINGLE), comment=f"<!-- {_requires(MEMBER)} -->"),
        "TEST-JDV_2024.01": _sch(
            '<let name="a" value="\'../jeuxDeValeurs/JDV_Present-CISIS.xml\'"/>'
            '<let name="b" value="\'../jeuxDeValeurs/JDV_Absent-CISIS.xml\'"/>' + _requires("1.2.250.1.213.1.1.1.96")
        ),
        "TEST-BROKEN_2024.01": _sch('<assert test="cda:x[">jamais</assert>' + _requires("1.2.250.1.213.1.1.1.95")),
        # the templateId is required by an included volet specification, not by the top file
        "TEST-INC_2024.01": _sch('<assert test="true()">x</assert>').replace(
            '<pattern id="p">', '<include href="include/specificationsVolets/TEST-INC.sch"/><pattern id="p">'
        ),
        "TEST-LOST_2024.01": _sch(_requires("1.2.250.1.213.1.1.1.93")).replace(
            '<pattern id="p">', '<include href="include/absent.sch"/><pattern id="p">'
        ),
        # no templateId in the rules: the fallback table names BIO-CR-BIO's root; VSM 1.4's "201310" alias
        "BIO-CR-BIO_2099.01": _sch('<assert test="true()">x</assert>'),
        "VSM_1.4_2022.01": _sch(_requires("1.2.250.1.213.1.1.1.92", "2022.01")),
        # the rule's extension, not the file name, says which version it checks
        "TEST-EXT_2021.01": _sch(_requires("1.2.250.1.213.1.1.1.91", "2021.03")),
        # every document requires the CI-SIS header template: it never names the volet
        "TEST-HDR_2024.01": _sch(_requires(HEADER) + _requires("1.2.250.1.213.1.1.1.8")),
        # no templateId, no fallback: it can never be chosen
        "TEST-NOTPL_2024.01": _sch('<assert test="true()">x</assert>'),
        # an include cycle, and a comment in Latin-1 (read with replacement characters)
        "TEST-CYCLE_2024.01": _sch(_requires("1.2.250.1.213.1.1.1.90"), comment="<!-- résumé -->").replace(
            '<pattern id="p">', '<include href="include/cycle.sch"/><pattern id="p">'
        ),
    }
    volets = schematrons / "include" / "specificationsVolets"
    volets.mkdir(parents=True, exist_ok=True)
    (volets / "TEST-INC.sch").write_bytes(  # a volet specification in Latin-1 (read with replacement characters)
        f'<pattern xmlns="http://purl.oclc.org/dsdl/schematron" id="inc"><!-- spécification -->'
        f'<rule context="x">{_requires(INCLUDED)}</rule></pattern>'.encode("latin-1")
    )
    for name, text in files.items():
        (schematrons / f"CI-SIS_{name}.sch").write_bytes(text.encode("latin-1" if "CYCLE" in name else "utf-8"))
    (schematrons / "include" / "cycle.sch").write_text(
        '<pattern xmlns="http://purl.oclc.org/dsdl/schematron"><include href="cycle.sch"/></pattern>'
    )
    (base / "jeuxDeValeurs" / "JDV_Absent-CISlS.xml").write_text("<valueSet/>")  # a near name, not the right one
    return schematrons


@pytest.fixture(scope="module")
def engine(folder: Path) -> SchematronEngine:
    return SchematronEngine(folder)


def document(*templates: tuple[str, str | None], code: str = "12", pi: str = "", extra: str = "") -> etree._Element:
    ids = "".join(f'<templateId root="{r}"' + (f' extension="{e}"' if e else "") + "/>" for r, e in templates)
    text = f'{pi}<ClinicalDocument xmlns="urn:hl7-org:v3">{ids}<code code="{code}"/>{extra}</ClinicalDocument>'
    return etree.fromstring(text.encode()).getroottree().getroot()


# --------------------------------------------------------------------------------------------- what each file checks
def test_each_schematron_is_read_for_its_template_and_versions(engine: SchematronEngine) -> None:
    volets = {v.name: v for v in engine.volets()}
    assert volets["TEST-RT_2024.01"] == SchematronVolet(
        "TEST-RT_2024.01", "TEST-RT", "2024.01", ROOT, ("2024.01",), "CI-SIS_TEST-RT_2024.01.sch"
    )
    assert volets["TEST-RT_2023.01"] == SchematronVolet(
        "TEST-RT_2023.01", "TEST-RT", "2023.01", ROOT, ("2023.01",), "CI-SIS_TEST-RT_2023.01.sch"
    )
    assert volets["TEST-SUB_2024.01"].template_id == MEMBER  # the most specific of the two required
    assert volets["TEST-FAM_2024.01"].template_id == FAMILY
    # no version in the file name, and the commented-out requirement is not read
    assert volets["TEST-ONE"] == SchematronVolet("TEST-ONE", "TEST-ONE", None, SINGLE, (), "CI-SIS_TEST-ONE.sch")
    assert volets["TEST-INC_2024.01"] == SchematronVolet(
        "TEST-INC_2024.01", "TEST-INC", "2024.01", INCLUDED, ("2024.01",), "TEST-INC.sch"
    )
    assert volets["BIO-CR-BIO_2099.01"] == SchematronVolet(
        "BIO-CR-BIO_2099.01", "BIO-CR-BIO", "2099.01", "1.2.250.1.213.1.1.1.55", ("2099.01",), "UNNAMED_VOLET_ROOTS"
    )
    assert volets["VSM_1.4_2022.01"].declared_versions == ("2022.01", "201310")
    assert volets["TEST-EXT_2021.01"].declared_versions == ("2021.03",)
    assert volets["TEST-NOTPL_2024.01"] == SchematronVolet(
        "TEST-NOTPL_2024.01", "TEST-NOTPL", "2024.01", None, ("2024.01",), ""
    )
    assert volets["TEST-CYCLE_2024.01"].template_id == "1.2.250.1.213.1.1.1.90"
    assert volets["TEST-HDR_2024.01"].template_id == "1.2.250.1.213.1.1.1.8"
    assert sorted(volets) == sorted(p.stem.removeprefix("CI-SIS_") for p in engine.folder.glob("*.sch"))


SELECTIONS = [
    (
        "declared version",
        document((HEADER, "2.0"), (ROOT, "2024.01")),
        SchematronChoice("TEST-RT_2024.01", "volet TEST-RT version 2024.01 déclarée", ROOT, "2024.01"),
    ),
    (
        "other declared version",
        document((ROOT, "2023.01")),
        SchematronChoice("TEST-RT_2023.01", "volet TEST-RT version 2023.01 déclarée", ROOT, "2023.01"),
    ),
    (
        "version absent from the folder",
        document((ROOT, "2022.01")),
        SchematronChoice(
            None,
            f"volet TEST-RT (templateId {ROOT}) version 2022.01 : aucun schématron de cette version dans le dossier "
            "(versions présentes : 2023.01, 2024.01), aucune autre version n'est substituée",
            ROOT,
            "2022.01",
        ),
    ),
    (
        "version named by SCHSchema",
        document((ROOT, None), pi='<?oxygen SCHSchema="../schematrons/CI-SIS_TEST-RT_2023.01.sch"?>'),
        SchematronChoice(
            "TEST-RT_2023.01",
            "volet TEST-RT sans version dans templateId, version déclarée par l'instruction SCHSchema",
            ROOT,
        ),
    ),
    (
        "no version, several in the folder",
        document((ROOT, None), pi='<?oxygen RNGSchema="CI-SIS_TEST-RT_2023.01.rng"?>'),
        SchematronChoice(
            None,
            f"volet TEST-RT (templateId {ROOT}) sans version déclarée (templateId sans extension) et plusieurs "
            "versions dans le dossier (2023.01, 2024.01) : aucune n'est choisie à la place du document",
            ROOT,
        ),
    ),
    (
        "no version, a single schematron",
        document((SINGLE, None)),
        SchematronChoice("TEST-ONE", "volet TEST-ONE sans version déclarée, seul schématron du dossier", SINGLE),
    ),
    (
        "the most specific declared volet",
        document((FAMILY, None), (MEMBER, "2024.01")),
        SchematronChoice("TEST-SUB_2024.01", "volet TEST-SUB version 2024.01 déclarée", MEMBER, "2024.01"),
    ),
    (
        "the first extension of a repeated templateId",
        document((ROOT, "2023.01"), (ROOT, "2024.01")),
        SchematronChoice("TEST-RT_2023.01", "volet TEST-RT version 2023.01 déclarée", ROOT, "2023.01"),
    ),
    (
        "an extension after a bare templateId",
        document((ROOT, None), (ROOT, "2024.01")),
        SchematronChoice("TEST-RT_2024.01", "volet TEST-RT version 2024.01 déclarée", ROOT, "2024.01"),
    ),
    (
        "header only",
        document((HEADER, None)),
        SchematronChoice(None, "aucun schématron CI-SIS du dossier ne porte sur les templateId déclarés (aucun)"),
    ),
    (
        "templateId without root",
        etree.fromstring(
            b'<ClinicalDocument xmlns="urn:hl7-org:v3"><templateId extension="2024.01"/></ClinicalDocument>'
        ),
        SchematronChoice(None, "aucun schématron CI-SIS du dossier ne porte sur les templateId déclarés (aucun)"),
    ),
    (
        "unknown volet",
        document(("1.2.250.1.213.1.1.1.5", None), ("", None)),
        SchematronChoice(
            None, "aucun schématron CI-SIS du dossier ne porte sur les templateId déclarés (1.2.250.1.213.1.1.1.5)"
        ),
    ),
]


@pytest.mark.parametrize(("root", "expected"), [s[1:] for s in SELECTIONS], ids=[s[0] for s in SELECTIONS])
def test_selection(engine: SchematronEngine, root: etree._Element, expected: SchematronChoice) -> None:
    assert engine.select(root) == expected


# --------------------------------------------------------------------------------------------- findings
def _findings(engine: SchematronEngine, root: etree._Element, volet: str) -> list[tuple[str, Severity, str]]:
    return [(f.code, f.severity, f.location) for f in engine.validate(root, volet, location="doc.xml")]


def test_a_clean_document_has_no_finding(engine: SchematronEngine) -> None:
    root = document((ROOT, "2024.01"), extra='<effectiveTime value="20240101"/>')
    assert _findings(engine, root, "TEST-RT_2024.01") == []


def test_asserts_and_reports_become_findings_with_their_role(engine: SchematronEngine) -> None:
    """A failed assert without role is an error, role="fatal" too; reports with role warning / info keep it."""
    root = document((ROOT, "2023.01"), code="0", extra='<id root="1.2.3"/><title>t</title>')
    findings = engine.validate(root, "TEST-RT_2023.01", location="doc.xml")
    assert [(f.code, f.severity, f.location, f.message) for f in findings] == [
        ("SCH-TEST-RT_2023.01", E, "doc.xml /ClinicalDocument", "code positif attendu"),
        ("SCH-TEST-RT_2023.01", W, "doc.xml /ClinicalDocument", "titre présent"),
        ("SCH-TEST-RT_2023.01", I, "doc.xml /ClinicalDocument", "identifiant présent"),
        ("SCH-TEST-RT_2023.01", E, "doc.xml /ClinicalDocument", "effectiveTime attendu"),
    ]


def test_findings_carry_no_location_unless_given(engine: SchematronEngine) -> None:
    findings = engine.validate(document((ROOT, "2023.01"), code="0", extra="<effectiveTime/>"), "TEST-RT_2023.01")
    assert [(f.code, f.location) for f in findings] == [("SCH-TEST-RT_2023.01", "/ClinicalDocument")]
    missing = engine.validate(document((ROOT, "2023.01")), "TEST-NONE_2024.01")
    assert [(f.code, f.location) for f in missing] == [("SCH-UNAVAILABLE", "")]


def test_a_dynamic_error_is_a_runtime_warning(engine: SchematronEngine) -> None:
    """xs:integer('abc') raises FORG0001 while the validator runs: the content is reported not verified."""
    root = document((ROOT, "2024.01"), code="abc", extra='<effectiveTime value="20240101"/>')
    assert _findings(engine, root, "TEST-RT_2024.01") == [("SCH-RUNTIME", W, "doc.xml")]
    # the engine keeps working for the next document
    assert _findings(engine, document((ROOT, "2024.01"), extra="<effectiveTime/>"), "TEST-RT_2024.01") == []


def test_svrl_reports_are_read_whole() -> None:
    """SVRL (ISO/IEC 19757-3 Annex D): the text of every child (svrl:text with emph, diagnostic references) makes
    the message; the role gives the severity; a namespace-qualified location is shortened to element names."""
    svrl = (
        '<svrl:schematron-output xmlns:svrl="http://purl.oclc.org/dsdl/svrl">'
        "<svrl:failed-assert location=\"/*[local-name()='ClinicalDocument' and namespace-uri()='urn:hl7-org:v3']\" "
        'role="WARN"><svrl:text>un <svrl:emph>deux</svrl:emph></svrl:text>\n  '
        '<svrl:diagnostic-reference diagnostic="d">trois</svrl:diagnostic-reference></svrl:failed-assert>'
        '<svrl:successful-report location="/x" role="information"><svrl:text>quatre</svrl:text></svrl:successful-report>'
        "<svrl:failed-assert><svrl:text>cinq</svrl:text></svrl:failed-assert>"
        '<svrl:fired-rule context="x"/></svrl:schematron-output>'
    )
    assert [(f.code, f.severity, f.location, f.message) for f in _svrl_findings(svrl, "V", "doc.xml")] == [
        ("SCH-V", W, "doc.xml /ClinicalDocument", "un deux trois"),
        ("SCH-V", I, "doc.xml /x", "quatre"),
        ("SCH-V", E, "doc.xml", "cinq"),
    ]


def test_an_unreadable_svrl_report_is_a_runtime_warning() -> None:
    assert [(f.code, f.severity) for f in _svrl_findings("", "X", "doc.xml")] == [("SCH-RUNTIME", W)]
    assert [(f.code, f.severity) for f in _svrl_findings("<svrl", "X", "doc.xml")] == [("SCH-RUNTIME", W)]


@pytest.mark.parametrize(
    ("volet", "why"),
    [
        ("TEST-NONE_2024.01", "schématron CI-SIS_TEST-NONE_2024.01.sch absent du dossier"),
        (
            "TEST-JDV_2024.01",
            "schématron CI-SIS_TEST-JDV_2024.01.sch incomplet, fichiers absents: jeuxDeValeurs/JDV_Absent-CISIS.xml "
            "(le dossier contient JDV_Absent-CISlS.xml)",
        ),
        ("TEST-BROKEN_2024.01", "compilation du schématron CI-SIS_TEST-BROKEN_2024.01.sch impossible"),
    ],
)
def test_a_schematron_that_cannot_run_is_named(engine: SchematronEngine, volet: str, why: str) -> None:
    for _ in range(2):  # the second time from the engine's memory of the failure
        findings = engine.validate(document((ROOT, "2024.01")), volet, location="doc.xml")
        assert [(f.code, f.severity, f.location) for f in findings] == [("SCH-UNAVAILABLE", W, "doc.xml")]
        assert findings[0].message.startswith(f"contenu non vérifié par schématron : {why}")


def test_status_names_what_each_schematron_lacks(engine: SchematronEngine) -> None:
    status = engine.status()
    assert status["TEST-JDV_2024.01"] == "fichiers absents: jeuxDeValeurs/JDV_Absent-CISIS.xml"
    assert status["TEST-LOST_2024.01"] == "fichiers absents: schematrons/include/absent.sch"
    assert {name for name, state in status.items() if state != "ok"} == {"TEST-JDV_2024.01", "TEST-LOST_2024.01"}


def test_a_missing_folder_is_refused_with_the_setting_name(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="réglage schematron_dir"):
        SchematronEngine(tmp_path / "absent")
