"""CI-SIS schematrons (ISO Schematron, ``queryBinding="xslt2"``) run with an XSLT 2.0+ engine.

The ANS publishes one ``CI-SIS_<volet>.sch`` per document model (TestContenuCDA package, ``schematrons/``
folder, beside ``jeuxDeValeurs/``). They declare ``queryBinding="xslt2"``: lxml's ISO Schematron (XSLT 1.0
only) cannot run them. The route used here: the ISO Schematron "skeleton" XSLT 1.0 stylesheets shipped inside
the installed lxml package (``iso_dsdl_include`` -> ``iso_abstract_expand`` -> ``iso_svrl_for_xslt1``, ISO/IEC
19757-3:2006 reference implementation) are run by Saxon (saxonche, XSLT 3.0); the query binding is relabelled
``xslt`` for the skeleton and the generated validator is declared XSLT 2.0, so the XPath 2.0 of the rules runs
natively. The result is SVRL; each ``failed-assert`` / ``successful-report`` becomes a :class:`Finding`.

Safety: Saxon's own XML parser resolves external entities by default, so (1) the processor is configured with
the Xerces feature ``disallow-doctype-decl`` and (2) the CDA document handed to Saxon is always re-serialised
from a tree parsed by :func:`harness.fields.xmlsafe.parse_xml`. Saxon's loop-lifting optimisation is switched off
(``optimizationLevel=-l``): with it, SaxonC-HE 13.1 aborts the process while compiling some generated
validators. Compiled validators are cached per volet; compiling is done once under a lock.
"""

from __future__ import annotations

import difflib
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from lxml import etree

from harness.validators import Finding, Severity

SCH = "http://purl.oclc.org/dsdl/schematron"
SVRL = "http://purl.oclc.org/dsdl/svrl"
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_DISALLOW_DOCTYPE = "http://saxon.sf.net/feature/parserFeature?uri=http://apache.org/xml/features/disallow-doctype-decl"
_OPTIMIZATION = "http://saxon.sf.net/feature/optimizationLevel"
_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)
_INCLUDE_RE = re.compile(r'<(?:sch:)?include\s+href="([^"]+)"')
_JDV_RE = re.compile(r"value\s*=\s*\"'(\.\./jeuxDeValeurs/[^']+)'\"")
_ROLE_SEVERITY = {
    "warning": Severity.WARNING,
    "warn": Severity.WARNING,
    "info": Severity.INFO,
    "information": Severity.INFO,
}


_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)
_VERSION_RE = re.compile(r"^(?P<volet>.+)_(?P<version>[0-9]{4}\.[0-9]{2})$")
# A document-level CI-SIS template (1.2.250.1.213.1.1.1.x) required by a rule, optionally with its version.
_TEMPLATE_RE = re.compile(
    r"templateId\s*\[\s*@root\s*=\s*['\"](1\.2\.250\.1\.213\.1\.1\.1\.[0-9]+(?:\.[0-9]+)*)['\"]"
    r"(?:\s+and\s+@extension\s*=\s*['\"]([^'\"]+)['\"])?"
)
_SCHSCHEMA_RE = re.compile(r'SCHSchema\s*=\s*"[^"]*?CI-SIS_([^"/]+)\.sch"')
CISIS_HEADER_TEMPLATE = "1.2.250.1.213.1.1.1.1"  # "modèle d'en-tête CI-SIS": every document declares it

#: Volets whose schematron does not name its templateId (the rule is commented out or absent): the root each ANS
#: example of the volet declares (ansforge/TestContenuCDA-3-0 ``ExemplesCDA/``, cross-checked with the
#: ``mapping.properties`` of the validator the ANS CI runs, M-Priour/validateCDA). Roots only: versions always come
#: from the schematron's file name.
UNNAMED_VOLET_ROOTS = MappingProxyType(
    {
        "BIO-CR-BIO": "1.2.250.1.213.1.1.1.55",
        "LDL-EES": "1.2.250.1.213.1.1.1.21",
        "LDL-SES": "1.2.250.1.213.1.1.1.29",
        "CSE-CS8": "1.2.250.1.213.1.1.1.5.1",
        "CSE-MDE": "1.2.250.1.213.1.1.1.5.4",
        "CANCER-FRCP": "1.2.250.1.213.1.1.1.8",
        "CANCER-CR-GM": "1.2.250.1.213.1.1.1.32",
        "OPH-CR-RTN": "1.2.250.1.213.1.1.1.18",
    }
)
#: Versions a document declares in templateId/@extension that a schematron names otherwise: the VSM 1.4 model is
#: "VSM 2013" (header comment of CI-SIS_VSM_1.4_2022.01.sch), declared ``extension="201310"`` by the ANS example.
DECLARED_VERSION_ALIASES = MappingProxyType({"VSM_1.4_2022.01": ("201310",)})


@dataclass(frozen=True)
class SchematronVolet:
    """What one ``CI-SIS_<volet>_<version>.sch`` of the folder checks: the document templateId and its version(s)."""

    name: str  # file stem after "CI-SIS_", the engine's key (BIO-CR-BIO_2021.01)
    volet: str  # BIO-CR-BIO
    version: str | None  # 2021.01 (from the file name)
    template_id: str | None  # None: the schematron names no document templateId (cannot be chosen)
    declared_versions: tuple[str, ...] = ()  # templateId/@extension values this schematron is chosen for
    source: str = ""  # where the templateId came from (the .sch file that requires it, or the fallback table)


@dataclass(frozen=True)
class SchematronChoice:
    """The schematron a document is judged with, or why none: ``name`` is None when no schematron checks it."""

    name: str | None
    reason: str  # French, for findings and the journal
    template_id: str | None = None
    declared_version: str | None = None


class SchematronUnavailable(Exception):
    """The volet's schematron cannot run (missing file, compile error); the message says why, in French."""


@dataclass(frozen=True)
class CompiledSchematron:
    volet: str
    path: Path
    phase: str
    compile_seconds: float
    executable: object  # saxonche.PyXsltExecutable


def _iso_skeleton_dir() -> Path:
    import lxml.isoschematron

    return Path(lxml.isoschematron.__file__).parent / "resources" / "xsl" / "iso-schematron-xslt1"


class SchematronEngine:
    """Runs the CI-SIS schematrons of ``folder`` (the ANS ``schematrons/`` folder, ``jeuxDeValeurs/`` beside it).

    One engine per simulator instance (no module-level state); thread-safe.
    """

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"dossier de schématrons introuvable: {self.folder} (réglage schematron_dir)")
        self._lock = threading.Lock()
        self._cache: dict[str, CompiledSchematron] = {}
        self._failed: dict[str, str] = {}
        self._processor = None
        self._skeleton: tuple[object, object, object] | None = None
        self._builders = threading.local()  # one Saxon DocumentBuilder per thread (s9api builders are not shared)
        self._volets: tuple[SchematronVolet, ...] | None = None

    # ------------------------------------------------------------------ which schematron checks what
    def volets(self) -> tuple[SchematronVolet, ...]:
        """Every ``CI-SIS_*.sch`` of the folder with the document templateId and version it checks (read once).

        The templateId is the one the schematron's own rules require at document level (the top file and its
        ``include/specificationsVolets`` includes, comments ignored); when several are required (CSE: ``.5`` and
        ``.5.3``) the most specific. The version is the file name's ``_YYYY.NN`` suffix, or the ``@extension`` the
        rule requires.
        """
        with self._lock:
            if self._volets is None:
                self._volets = tuple(_scan_volet(path) for path in sorted(self.folder.glob("CI-SIS_*.sch")))
            return self._volets

    def select(self, root: etree._Element) -> SchematronChoice:
        """The schematron of the volet and version a CDA document declares (IHE / CI-SIS: templateId root +
        extension). Never another version: a version the folder does not hold, or an undeclared version among
        several, gives no schematron and says why."""
        declared: dict[str, str | None] = {}
        for template in root.findall("{urn:hl7-org:v3}templateId"):
            oid = template.get("root", "")
            if oid and oid != CISIS_HEADER_TEMPLATE and declared.get(oid) is None:
                declared[oid] = template.get("extension") or None  # the first extension given for the root
        volets = [v for v in self.volets() if v.template_id in declared]
        if not volets:
            roots = ", ".join(sorted(declared)) or "aucun"
            return SchematronChoice(
                None, f"aucun schématron CI-SIS du dossier ne porte sur les templateId déclarés ({roots})"
            )
        template = max({v.template_id for v in volets}, key=len)  # the most specific declared volet
        volets = [v for v in volets if v.template_id == template]
        version = declared[template]
        label = volets[0].volet
        if version:
            chosen = [v for v in volets if version in v.declared_versions]
            if chosen:
                return SchematronChoice(chosen[0].name, f"volet {label} version {version} déclarée", template, version)
            present = ", ".join(sorted(v.version or v.name for v in volets))
            return SchematronChoice(
                None,
                f"volet {label} (templateId {template}) version {version} : aucun schématron de cette version dans le "
                f"dossier (versions présentes : {present}), aucune autre version n'est substituée",
                template,
                version,
            )
        named = _schschema_names(root)
        chosen = [v for v in volets if v.name in named]
        if chosen:
            return SchematronChoice(
                chosen[0].name,
                f"volet {label} sans version dans templateId, version déclarée par l'instruction SCHSchema",
                template,
            )
        if len(volets) == 1:
            return SchematronChoice(
                volets[0].name, f"volet {label} sans version déclarée, seul schématron du dossier", template
            )
        present = ", ".join(sorted(v.version or v.name for v in volets))
        return SchematronChoice(
            None,
            f"volet {label} (templateId {template}) sans version déclarée (templateId sans extension) et plusieurs "
            f"versions dans le dossier ({present}) : aucune n'est choisie à la place du document",
            template,
        )

    # ------------------------------------------------------------------ compiling
    def _saxon(self):  # noqa: ANN202 - saxonche types
        if self._processor is None:
            from saxonche import PySaxonProcessor

            processor = PySaxonProcessor(license=False)
            processor.set_configuration_property(_DISALLOW_DOCTYPE, "true")
            processor.set_configuration_property(_OPTIMIZATION, "-l")
            xslt = processor.new_xslt30_processor()
            iso = _iso_skeleton_dir()
            self._skeleton = tuple(
                xslt.compile_stylesheet(stylesheet_file=str(iso / name))
                for name in ("iso_dsdl_include.xsl", "iso_abstract_expand.xsl", "iso_svrl_for_xslt1.xsl")
            )  # type: ignore[assignment]
            self._processor = processor
        return self._processor

    def _builder(self):  # noqa: ANN202 - saxonche types
        """This thread's Saxon document builder for the documents to validate: line numbering off (the SVRL
        locations are XPaths, never line numbers), same processor and so the same parser settings (no DOCTYPE)."""
        builder = getattr(self._builders, "builder", None)
        if builder is None:
            builder = self._saxon().new_document_builder()
            builder.set_line_numbering(False)
            self._builders.builder = builder
        return builder

    def path_of(self, volet: str) -> Path:
        return self.folder / f"CI-SIS_{volet}.sch"

    def missing_files(self, volet: str) -> list[str]:
        """Files the volet's schematron needs (includes, value sets) that are absent from the folder."""
        start = self.path_of(volet)
        if not start.is_file():
            return [start.name]
        missing: list[str] = []
        seen: set[Path] = set()
        todo = [start]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            if not current.is_file():
                missing.append(
                    str(current.relative_to(self.folder.parent))
                    if current.is_relative_to(self.folder.parent)
                    else str(current)
                )
                continue
            # commented-out includes and value sets are not needed (CI-SIS_EP-MED-DM_2024.01.sch comments out its
            # JDV_SeverityObservation include and its let naming JDV_HL7_SeverityObservation-CISIS.xml)
            text = _COMMENT_RE.sub("", current.read_text(encoding="utf-8", errors="replace"))
            todo.extend((current.parent / href).resolve() for href in _INCLUDE_RE.findall(text))
            for jdv in _JDV_RE.findall(text):
                if not (self.folder / jdv).resolve().is_file():
                    missing.append(jdv.removeprefix("../"))
        return sorted(set(missing))

    def _name_near(self, missing: str) -> str:
        """A missing file (relative to the folder's parent, as :meth:`missing_files` names it), with the file of a
        close name beside it: the ANS package ships ``JDV_HL7_SeverityObservationCode_CISIS.xml`` where a
        schematron names ``JDV_HL7_SeverityObservation-CISIS.xml``."""
        folder = (self.folder.parent / missing).parent
        if not folder.is_dir():
            return missing
        near = difflib.get_close_matches(Path(missing).name, [f.name for f in folder.iterdir()], n=1, cutoff=0.8)
        return f"{missing} (le dossier contient {near[0]})" if near else missing

    def compile(self, volet: str) -> CompiledSchematron:
        """The compiled validator of ``volet`` (cached); raises :class:`SchematronUnavailable`."""
        with self._lock:
            if volet in self._cache:
                return self._cache[volet]
            if volet in self._failed:
                raise SchematronUnavailable(self._failed[volet])
            try:
                compiled = self._compile(volet)
            except SchematronUnavailable as exc:
                self._failed[volet] = str(exc)
                raise
            self._cache[volet] = compiled
            return compiled

    def _compile(self, volet: str) -> CompiledSchematron:
        path = self.path_of(volet)
        if not path.is_file():
            raise SchematronUnavailable(f"schématron {path.name} absent du dossier {self.folder}")
        missing = self.missing_files(volet)
        if missing:
            raise SchematronUnavailable(
                f"schématron {path.name} incomplet, fichiers absents: {', '.join(self._name_near(m) for m in missing)}"
            )
        started = time.perf_counter()
        processor = self._saxon()
        include, expand, svrl = self._skeleton  # type: ignore[misc]
        from saxonche import PySaxonApiError

        try:
            included = include.transform_to_string(xdm_node=processor.parse_xml(xml_file_name=str(path)))
            expanded = expand.transform_to_string(xdm_node=processor.parse_xml(xml_text=included))
            schema = etree.fromstring(expanded.encode("utf-8"))
            schema.set("queryBinding", "xslt")  # the skeleton only accepts "xslt"; the validator is made XSLT 2.0 below
            phases = [p.get("id") for p in schema.findall(f"{{{SCH}}}phase")]
            phase = next(
                (p for p in phases if p in (f"CI-SIS_{volet}", volet)),
                phases[0] if len(phases) == 1 else "#ALL",
            )
            svrl.set_parameter("phase", processor.make_string_value(phase))
            # svrl:fired-rule elements are not read (only failed-assert / successful-report are findings): not
            # generating them makes every report smaller to write and to read back
            svrl.set_parameter("generate-fired-rule", processor.make_string_value("false"))
            # each pattern selects its rules' contexts with one XPath 2.0 expression, //(context1|context2...),
            # instead of walking every node and attribute of the document in each pattern's mode: the skeleton's
            # own XSLT 2 option (select-contexts), same nodes in the same document order, the same rule (the
            # first matching, by priority) fires on each; 3.5x faster on the FLUDT volet
            svrl.set_parameter("select-contexts", processor.make_string_value("//"))
            generated = svrl.transform_to_string(xdm_node=processor.parse_xml(xml_text=etree.tostring(schema).decode()))
            stylesheet = etree.fromstring(generated.encode("utf-8"))
            stylesheet.set("version", "2.0")
            stylesheet.set(XML_BASE, path.resolve().as_uri())  # value-set paths resolve against the .sch file
            executable = processor.new_xslt30_processor().compile_stylesheet(
                stylesheet_text=etree.tostring(stylesheet).decode()
            )
        except (PySaxonApiError, etree.XMLSyntaxError) as exc:
            raise SchematronUnavailable(f"compilation du schématron {path.name} impossible: {exc}") from exc
        return CompiledSchematron(volet, path, phase, time.perf_counter() - started, executable)

    # ------------------------------------------------------------------ running
    def validate(self, root: etree._Element, volet: str, *, location: str = "") -> list[Finding]:
        """Run the volet's schematron on a document parsed by :func:`harness.fields.xmlsafe.parse_xml`."""
        try:
            compiled = self.compile(volet)
        except SchematronUnavailable as exc:
            return [
                Finding("SCH-UNAVAILABLE", f"contenu non vérifié par schématron : {exc}", Severity.WARNING, location)
            ]
        from saxonche import PySaxonApiError

        builder = self._builder()
        text = etree.tostring(root.getroottree(), encoding="unicode")  # re-serialised: no DOCTYPE, no entity
        try:
            node = builder.parse_xml(xml_text=text, encoding="UTF-8")
            output = compiled.executable.transform_to_string(xdm_node=node)  # type: ignore[attr-defined]
        except PySaxonApiError as exc:
            return [
                Finding(
                    "SCH-RUNTIME",
                    f"exécution du schématron CI-SIS_{volet} impossible: {exc}",
                    Severity.WARNING,
                    location,
                )
            ]
        return _svrl_findings(output or "", volet, location)

    def status(self) -> dict[str, str]:
        """Every ``CI-SIS_*.sch`` of the folder -> ``"ok"`` or why it cannot run (static check, no compiling)."""
        out = {}
        for path in sorted(self.folder.glob("CI-SIS_*.sch")):
            volet = path.stem.removeprefix("CI-SIS_")
            missing = self.missing_files(volet)
            out[volet] = "ok" if not missing else "fichiers absents: " + ", ".join(missing)
        return out


def _scan_volet(path: Path) -> SchematronVolet:
    name = path.stem.removeprefix("CI-SIS_")
    match = _VERSION_RE.match(name)
    volet, version = (match["volet"], match["version"]) if match else (name, None)
    required: dict[str, set[str]] = {}
    sources: dict[str, str] = {}
    top = _COMMENT_RE.sub("", path.read_text(encoding="utf-8", errors="replace"))
    files = [(path, top)]
    for href in _INCLUDE_RE.findall(top):
        if href.startswith("include/specificationsVolets/"):
            included = path.parent / href
            if included.is_file():
                files.append((included, _COMMENT_RE.sub("", included.read_text(encoding="utf-8", errors="replace"))))
    for file, text in files:
        for root_oid, extension in _TEMPLATE_RE.findall(text):
            if root_oid == CISIS_HEADER_TEMPLATE:
                continue
            required.setdefault(root_oid, set())
            if extension:
                required[root_oid].add(extension)
            sources.setdefault(root_oid, file.name)
    # the most specific: CSE requires both 1.2.250.1.213.1.1.1.5 (family) and 1.2.250.1.213.1.1.1.5.3 (CS24); a
    # member's OID extends its family's, so the longest required root is the most specific one
    if required:
        template: str | None = max(required, key=len)
        source = sources[template]
    else:
        template = UNNAMED_VOLET_ROOTS.get(volet)
        source = "UNNAMED_VOLET_ROOTS" if template else ""
    declared = tuple(sorted(required.get(template or "", set())))
    if not declared:
        declared = tuple(v for v in (version,) if v)
    declared = (*declared, *DECLARED_VERSION_ALIASES.get(name, ()))
    return SchematronVolet(name, volet, version, template, declared, source)


def _schschema_names(root: etree._Element) -> set[str]:
    """The CI-SIS schematrons a document names in ``<?oxygen SCHSchema="...CI-SIS_X.sch"?>`` (the ANS examples
    declare their model version this way when the templateId carries none)."""
    names = set()
    for node in root.itersiblings(preceding=True):
        if isinstance(node, etree._ProcessingInstruction):  # noqa: SLF001 - lxml's public node type
            names.update(_SCHSCHEMA_RE.findall(node.text or ""))
    return names


def _svrl_findings(svrl: str, volet: str, location: str) -> list[Finding]:
    try:
        report = etree.fromstring(svrl.encode("utf-8"))
    except etree.XMLSyntaxError as exc:
        return [Finding("SCH-RUNTIME", f"rapport SVRL illisible: {exc}", Severity.WARNING, location)]
    findings = []
    for item in report.iter(f"{{{SVRL}}}failed-assert", f"{{{SVRL}}}successful-report"):
        text = " ".join("".join(item.itertext()).split())
        severity = _ROLE_SEVERITY.get((item.get("role") or "").lower(), Severity.ERROR)
        where = item.get("location") or ""
        where = re.sub(r"\*\[local-name\(\)='([^']+)' and namespace-uri\(\)='[^']*'\]", r"\1", where)
        findings.append(Finding(f"SCH-{volet}", text, severity, f"{location} {where}".strip()))
    return findings
