"""Console output of a run: live progress and the final summary (French first, English second)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.core.events import Event, RunFinished, RunStarted, ScenarioFinished, ScenarioStarted, Status, StepFinished
from harness.core.messages import bilingual

_MARK = {
    Status.PASSED: f"[green]✔ {bilingual('réussi', 'passed')}[/]",
    Status.FAILED: f"[red]✘ {bilingual('échoué', 'failed')}[/]",
    Status.ERROR: f"[magenta]⚠ {bilingual('erreur', 'error')}[/]",
    Status.SKIPPED: f"[yellow]– {bilingual('ignoré', 'skipped')}[/]",
}


class ConsoleReporter:
    """Prints each scenario as it finishes, the failing step's message, and a totals table at the end."""

    def __init__(self, console: Console | None = None, *, verbose: bool = False) -> None:
        self.console = console or Console(highlight=False)
        self.verbose = verbose
        self._index = 0
        self._total = 0
        self._failed_step: dict[str, StepFinished] = {}
        self._status = None

    def handle(self, event: Event) -> None:
        c = self.console
        if isinstance(event, RunStarted):
            c.print(
                f"[bold]socle-harness {event.harness_version}[/] — {bilingual('exécution', 'run')} [cyan]{event.run_id}[/]"
            )
            c.print(f"  SUT: [bold]{event.sut}[/]   journal: {event.journal_url}")
            self._total = event.scenarios_total
            for service, endpoints in sorted(event.endpoints.items()):
                c.print(f"  {service}: " + ", ".join(f"{k}={v}" for k, v in endpoints.items()))
        elif isinstance(event, ScenarioStarted):
            self._index += 1
            if self.verbose:
                c.print(f"[dim]→ {self._index}. {event.feature} › {event.name}[/]")
        elif isinstance(event, StepFinished):
            if event.status in (Status.FAILED, Status.ERROR):
                self._failed_step[event.scenario_id] = event
            if self.verbose:
                c.print(f"     {event.keyword} {event.text}  [dim]{event.status}[/]")
        elif isinstance(event, ScenarioFinished):
            progress = f"[dim]{self._index}/{self._total}[/] " if self._total else ""
            c.print(f"{progress}{_MARK[event.status]}  {event.name} [dim]({event.duration:.2f} s)[/]")
            step = self._failed_step.get(event.scenario_id)
            if event.status in (Status.FAILED, Status.ERROR):
                where = f"{step.keyword} {step.text}: " if step else ""
                c.print(f"      [red]{where}{event.message or (step.message if step else '')}[/]", soft_wrap=True)
            elif event.message:  # why a scenario was skipped (« non observé »), a passed verdict's warning
                c.print(f"      [yellow]{escape(event.message)}[/]", soft_wrap=True)
        elif isinstance(event, RunFinished):
            table = Table(title=bilingual("Résumé", "Summary"), show_header=True)
            for label in (
                bilingual("réussis", "passed"),
                bilingual("échoués", "failed"),
                bilingual("erreurs", "errors"),
                bilingual("ignorés", "skipped"),
                bilingual("durée", "time"),
            ):
                table.add_column(label, justify="right")
            counts = event.counts
            table.add_row(
                str(counts.get("passed", 0)),
                str(counts.get("failed", 0)),
                str(counts.get("error", 0)),
                str(counts.get("skipped", 0)),
                f"{event.duration:.1f} s",
            )
            c.print(table)

    def close(self) -> None:
        return None
