"""``socle-harness validate``: the simulators' verdict on files, offline (CDA, XDM, e-mail, MDN, FHIR, VIHF, INSi,
HL7 v2), one file or whole folders, as a French table, JSON, JUnit or HTML. Exit code 0 without error, 1 with
at least one error, 2 on a usage error (unreadable path, bad option).
"""

from __future__ import annotations

import html
import json
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from xml.etree import ElementTree

import typer
from rich.console import Console
from rich.table import Table

from harness.core.config import HarnessConfig, load_config
from harness.core.messages import bilingual
from harness.validators import Finding, Severity
from harness.validators.artefact_kind import ArtefactKind

if TYPE_CHECKING:  # the validators are imported when the command runs, not at every start of the CLI
    from harness.validators.artefacts import ArtefactReport, ValidationSettings

#: Below this many files, validate in this process (starting workers costs more than it saves).
PARALLEL_FROM = 4
_SKIPPED_SUFFIXES = {".sch", ".xsl", ".xslt", ".xsd", ".md", ".txt", ".pdf", ".png", ".jpg"}


@dataclass(frozen=True)
class SettingsSpec:
    """What a worker process needs to build its :class:`ValidationSettings` (picklable, paths only)."""

    cda_xsd_dir: str | None
    schematron_dir: str | None
    strict: bool
    ca_files: tuple[str, ...]
    jdv_dir: str | None = None  # ANS value sets (JDV_*.xml) the XDS metadata of an ITI-41 request is checked with

    def build(self) -> ValidationSettings:
        from cryptography import x509

        from harness.validators.artefacts import ValidationSettings
        from harness.validators.cda import CdaSchema
        from harness.validators.schematron import SchematronEngine
        from harness.validators.xds_metadata import ValueSets

        anchors: list[x509.Certificate] = []
        for name in self.ca_files:
            anchors.extend(x509.load_pem_x509_certificates(Path(name).read_bytes()))
        return ValidationSettings(
            cda_schema=CdaSchema(self.cda_xsd_dir) if self.cda_xsd_dir else None,
            schematron=SchematronEngine(self.schematron_dir) if self.schematron_dir else None,
            value_sets=ValueSets(self.jdv_dir) if self.jdv_dir and Path(self.jdv_dir).is_dir() else None,
            strict=self.strict,
            trust_anchors=tuple(anchors),
        )


class _Worker:
    """One process's settings, built once: the schematrons compile once per process and stay warm."""

    settings: ValidationSettings | None = None

    @classmethod
    def start(cls, spec: SettingsSpec) -> None:
        cls.settings = spec.build()

    @classmethod
    def validate(cls, job: tuple[str, str | None]) -> ArtefactReport:
        path, kind = job
        assert cls.settings is not None
        return validate_file(Path(path), ArtefactKind(kind) if kind else None, cls.settings)


def validate_file(path: Path, kind: ArtefactKind | None, settings: ValidationSettings) -> ArtefactReport:
    from harness.validators.artefacts import ArtefactReport, validate_artefact

    try:
        data = path.read_bytes()
    except OSError as exc:
        report = ArtefactReport(str(path), kind)
        report.findings.append(Finding("ARTEFACT-LECTURE", f"fichier illisible : {exc.strerror}", location=str(path)))
        return report
    return validate_artefact(data, name=str(path), kind=kind, settings=settings)


def collect(paths: Sequence[str]) -> Iterator[Path]:
    """Files named, and the files of folders named (recursively, hidden ones and specification files skipped)."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if (
                    found.is_file()
                    and not any(part.startswith(".") for part in found.relative_to(path).parts)
                    and found.suffix.lower() not in _SKIPPED_SUFFIXES
                ):
                    yield found
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(name)


def run_validation(
    files: Sequence[Path], kind: ArtefactKind | None, spec: SettingsSpec, *, jobs: int
) -> list[ArtefactReport]:
    if jobs <= 1 or len(files) < PARALLEL_FROM:
        settings = spec.build()
        return [validate_file(path, kind, settings) for path in files]
    work = [(str(path), kind.value if kind else None) for path in files]
    with ProcessPoolExecutor(max_workers=jobs, initializer=_Worker.start, initargs=(spec,)) as pool:
        return list(pool.map(_Worker.validate, work, chunksize=max(1, len(work) // (jobs * 4))))


# ------------------------------------------------------------------------------------------------ writers
_SEVERITY_FR = {Severity.ERROR: "erreur", Severity.WARNING: "avertissement", Severity.INFO: "info"}


def write_table(reports: Sequence[ArtefactReport], out: Console) -> None:
    for report in reports:
        verdict = "[green]conforme[/]" if report.ok else f"[red]non conforme ({len(report.errors)} erreur(s))[/]"
        kind = report.kind.label if report.kind else "type inconnu"
        out.print(f"[bold]{report.name}[/] — {kind} — {verdict}")
        if not report.findings:
            continue
        table = Table(show_lines=False, expand=False)
        table.add_column("gravité / severity", no_wrap=True)
        table.add_column("code", no_wrap=True, overflow="fold")
        table.add_column("constat / finding", overflow="fold")
        table.add_column("emplacement / location", overflow="fold")
        for finding in report.findings:
            table.add_row(_SEVERITY_FR[finding.severity], finding.code, finding.message, finding.location)
        out.print(table)
    failed = sum(not r.ok for r in reports)
    out.print(f"{len(reports)} fichier(s), {len(reports) - failed} conforme(s), {failed} non conforme(s)")


def to_json(reports: Sequence[ArtefactReport]) -> str:
    return json.dumps(
        {"files": [r.to_dict() for r in reports], "failed": sum(not r.ok for r in reports)},
        ensure_ascii=False,
        indent=2,
    )


def to_junit(reports: Sequence[ArtefactReport]) -> str:
    suite = ElementTree.Element(
        "testsuite",
        name="socle-harness validate",
        tests=str(len(reports)),
        failures=str(sum(not r.ok for r in reports)),
    )
    for report in reports:
        case = ElementTree.SubElement(
            suite, "testcase", classname=report.kind.value if report.kind else "inconnu", name=report.name
        )
        if not report.ok:
            failure = ElementTree.SubElement(
                case, "failure", message="; ".join(f"{f.code}: {f.message}" for f in report.errors)[:2000]
            )
            failure.text = "\n".join(str(f) for f in report.findings)
        elif report.findings:
            ElementTree.SubElement(case, "system-out").text = "\n".join(str(f) for f in report.findings)
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)


def to_html(reports: Sequence[ArtefactReport]) -> str:
    rows = []
    for report in reports:
        status = "conforme" if report.ok else "non conforme"
        rows.append(
            f'<h2 class="{"ok" if report.ok else "ko"}">{html.escape(report.name)} — '
            f"{html.escape(report.kind.label if report.kind else 'type inconnu')} — {status}</h2>"
        )
        if report.findings:
            rows.append("<table><tr><th>gravité</th><th>code</th><th>constat</th><th>emplacement</th></tr>")
            rows.extend(
                f"<tr class='{f.severity.value}'><td>{_SEVERITY_FR[f.severity]}</td><td>{html.escape(f.code)}</td>"
                f"<td>{html.escape(f.message)}</td><td>{html.escape(f.location)}</td></tr>"
                for f in report.findings
            )
            rows.append("</table>")
    failed = sum(not r.ok for r in reports)
    return (
        '<!doctype html><html lang="fr"><meta charset="utf-8"><title>socle-harness validate</title>'
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:left}.ok{color:#176a2a}.ko,.error{color:#a11}.warning{color:#8a5a00}</style>"
        f"<h1>Validation : {len(reports)} fichier(s), {failed} non conforme(s)</h1>{''.join(rows)}</html>"
    )


# ------------------------------------------------------------------------------------------------ command
def _default_ca(config: HarnessConfig) -> tuple[str, ...]:
    bundle = config.run_dir / "pki" / "ca-bundle.pem"
    return (str(bundle),) if bundle.is_file() else ()


def validate(
    paths: Annotated[
        list[str],
        typer.Argument(
            help=bilingual(
                "Fichiers ou dossiers à valider, '-' pour l'entrée standard",
                "files or folders to validate, '-' for standard input.",
            )
        ),
    ],
    kind: Annotated[
        ArtefactKind | None,
        typer.Option(
            "--type", "-t", help=bilingual("Type imposé (sinon détecté d'après le contenu)", "force the type.")
        ),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help=bilingual("table (défaut), json, junit ou html", "table (default), json, junit or html."),
        ),
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help=bilingual("Écrire le rapport dans ce fichier", "write the report to this file.")
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict/--lenient",
            help=bilingual(
                "Sévérité des simulateurs : strict (défaut) ou tolérant",
                "simulators' severity: strict (default) or lenient.",
            ),
        ),
    ] = True,
    cda_xsd_dir: Annotated[
        Path | None,
        typer.Option(
            help=bilingual(
                "Dossier de CDA_extended.xsd (défaut : [settings.dmp] cda_xsd_dir)", "folder of CDA_extended.xsd."
            )
        ),
    ] = None,
    schematron_dir: Annotated[
        Path | None,
        typer.Option(
            help=bilingual(
                "Dossier des schématrons CI-SIS (défaut : [settings.dmp] schematron_dir)",
                "folder of the CI-SIS schematrons.",
            )
        ),
    ] = None,
    jdv_dir: Annotated[
        Path | None,
        typer.Option(
            help=bilingual(
                "Dossier des jeux de valeurs ANS JDV_*.xml (défaut : [settings.dmp] jdv_dir, sinon jeuxDeValeurs "
                "à côté des schématrons)",
                "folder of the ANS JDV_*.xml value sets.",
            )
        ),
    ] = None,
    ca: Annotated[
        list[Path] | None,
        typer.Option(
            help=bilingual(
                "Certificat(s) CA (PEM) pour vérifier les signatures VIHF (défaut : la PKI de test)",
                "CA certificate(s) (PEM) to verify VIHF signatures (default: the test PKI).",
            )
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help=bilingual("Processus parallèles pour les dossiers", "parallel processes for folders."),
        ),
    ] = (os.cpu_count() or 1),
    config_path: Annotated[
        Path | None,
        typer.Option("--config", "-c", help=bilingual("Fichier de configuration TOML", "TOML configuration file.")),
    ] = None,
) -> None:
    """Valider des fichiers comme les simulateurs les jugent / validate files as the simulators judge them.

    Détecte CDA R2, archive IHE XDM, e-mail MSSanté (.eml), MDN, FHIR R4 (JSON ou XML), assertion VIHF, requête
    ou réponse INSi, message HL7 v2, requête ITI-41 du DMP (enveloppe SOAP, corps MTOM ou entité MIME). Code de sortie : 0 sans erreur, 1 si au moins une erreur, 2 usage.
    """
    err = Console(stderr=True, highlight=False)
    if output_format not in {"table", "json", "junit", "html"}:
        err.print(f"[red]--format {output_format!r} inconnu[/] : table, json, junit ou html")
        raise typer.Exit(2)
    from harness.sut.plugins import check_settings
    from harness.validators.artefacts import validate_artefact

    try:
        config = load_config(config_path)
        check_settings(config.settings)
    except ValueError as exc:
        err.print(f"[red]Configuration invalide / invalid configuration:[/] {exc}")
        raise typer.Exit(2) from exc
    from mock_services.dmp.settings import DmpSettings  # the DMP plugin's settings type

    dmp = DmpSettings.from_mapping(config.settings.get("dmp", {}))
    spec = SettingsSpec(
        cda_xsd_dir=str(cda_xsd_dir or dmp.cda_xsd_dir or "") or None,
        schematron_dir=str(schematron_dir or dmp.schematron_dir or "") or None,
        jdv_dir=str(jdv_dir or dmp.jdv_dir or "") or None,
        strict=strict,
        ca_files=tuple(str(p) for p in ca) if ca else _default_ca(config),
    )
    if spec.jdv_dir is None and spec.schematron_dir:  # as the DMP simulator: jeuxDeValeurs beside schematrons/
        spec = replace(spec, jdv_dir=str(Path(spec.schematron_dir).parent / "jeuxDeValeurs"))
    for folder in (spec.cda_xsd_dir, spec.schematron_dir, jdv_dir):
        if folder and not Path(folder).is_dir():
            err.print(f"[red]dossier introuvable :[/] {folder}")
            raise typer.Exit(2)
    reports: list[ArtefactReport] = []
    if "-" in paths:
        reports.append(validate_artefact(sys.stdin.buffer.read(), name="-", kind=kind, settings=spec.build()))
    try:
        files = list(collect([p for p in paths if p != "-"]))
    except FileNotFoundError as exc:
        err.print(f"[red]chemin introuvable :[/] {exc.args[0]} (fichier ou dossier attendu)")
        raise typer.Exit(2) from exc
    if not files and not reports:
        err.print("[red]aucun fichier à valider[/] dans les chemins donnés")
        raise typer.Exit(2)
    reports.extend(run_validation(files, kind, spec, jobs=jobs))
    if output_format == "table":
        out = (
            Console(file=output.open("w", encoding="utf-8"), width=160)
            if output
            else Console(highlight=False, width=None if sys.stdout.isatty() else 200)
        )
        write_table(reports, out)
    else:
        text = {"json": to_json, "junit": to_junit, "html": to_html}[output_format](reports)
        if output:
            output.write_text(text, encoding="utf-8")
        else:
            typer.echo(text)
    raise typer.Exit(0 if all(r.ok for r in reports) else 1)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
