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

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from harness.validators import Finding, Severity

SCH = "http://purl.oclc.org/dsdl/schematron"
SVRL = "http://purl.oclc.org/dsdl/svrl"
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_DISALLOW_DOCTYPE = "http://saxon.sf.net/feature/parserFeature?uri=http://apache.org/xml/features/disallow-doctype-decl"
_OPTIMIZATION = "http://saxon.sf.net/feature/optimizationLevel"
_INCLUDE_RE = re.compile(r'<(?:sch:)?include\s+href="([^"]+)"')
_JDV_RE = re.compile(r"value\s*=\s*\"'(\.\./jeuxDeValeurs/[^']+)'\"")
_ROLE_SEVERITY = {
    "warning": Severity.WARNING,
    "warn": Severity.WARNING,
    "info": Severity.INFO,
    "information": Severity.INFO,
}


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
            text = current.read_text(encoding="utf-8", errors="replace")
            todo.extend((current.parent / href).resolve() for href in _INCLUDE_RE.findall(text))
            for jdv in _JDV_RE.findall(text):
                if not (self.folder / jdv).resolve().is_file():
                    missing.append(jdv.removeprefix("../"))
        return sorted(set(missing))

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
            raise SchematronUnavailable(f"schématron {path.name} incomplet, fichiers absents: {', '.join(missing)}")
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
            return [Finding("SCH-UNAVAILABLE", str(exc), Severity.WARNING, location)]
        from saxonche import PySaxonApiError

        processor = self._saxon()
        text = etree.tostring(root.getroottree(), encoding="unicode")  # re-serialised: no DOCTYPE, no entity
        try:
            node = processor.parse_xml(xml_text=text)
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
