"""``serve``'s and ``run``'s plain options are read without typer's pydantic coercion (issue 18: the cold start of
``serve``, the start of ``run``'s scenario processes), into exactly the values typer reads, and every other command
line is typer's as before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer.main
from typer.core import TyperCommand
from typer.testing import CliRunner

from harness.front.cli import app
from harness.front.plain_options import PlainOptionsCommand, plain_values

PLAIN_RUN = [
    [],
    ["--sut", "reference", "-k", "insi", "--tags", "mssante and not lent", "--jobs", "2", "--reports", "r"],
    ["--titre", "DLU", "-v", "--guide-port", "8080", "--keep-open", "--from", "2026-11-23T08:00", "--to", "2026-11-23"],
    ["-c", "c.toml", "--journal", "sqlite:///j.sqlite", "--scenarios", "s", "--host", "0.0.0.0", "--relance", "echec"],
    [
        "--https-port",
        "8443",
        "--smtp-port=2587",
        "--imap-port",
        "0",
        "--mllp-port",
        "2575",
        "--public-host",
        "dui.test",
    ],
]
NOT_PLAIN_RUN = [
    ["--help"],
    ["--step-timeout", "5"],  # a float: typer (pydantic) converts it
    ["--guide-port", "x"],
    ["--jobs"],  # missing value
    ["--sut", "reference", "catalogue"],  # an argument run does not take
]
PLAIN = [
    [],
    ["--ephemeral", "--endpoints-file", "ready.json", "--config", "c.toml"],
    ["-c", "c.toml", "--journal", "sqlite:///j.sqlite", "--host", "0.0.0.0", "--public-host", "dui.test"],
    ["--https-port", "8443", "--smtp-port=2587", "--imap-port", "0", "--mllp-port", "2575", "--no-tls"],
    ["--port", "9443", "-s", "insi", "--service", "dmp", "--workers", "2", "--state-snapshot-every", "50"],
    ["--no-ephemeral", "--ephemeral", "--endpoints-file", "/tmp/x/ready.json"],
]
NOT_PLAIN = [
    ["--help"],
    ["--bogus"],
    ["extra"],
    ["--https-port", "abc"],
    ["--https-port", "08443"],  # leading zero: typer (pydantic) decides
    ["--https-port", "-1"],
    ["--workers", "0"],  # below the option's minimum: typer refuses it
    ["--config", ""],
    ["--journal"],  # missing value
]


def _command(name: str) -> TyperCommand:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    assert isinstance(command, PlainOptionsCommand)
    return command


def _typer_params(command: TyperCommand, args: list[str]) -> dict[str, Any]:
    ctx = command.context_class(command, info_name=command.name)
    TyperCommand.parse_args(command, ctx, list(args))  # typer's own reading, pydantic coercion included
    return ctx.params


@pytest.mark.parametrize(("name", "args"), [("serve", args) for args in PLAIN] + [("run", args) for args in PLAIN_RUN])
def test_plain_options_are_read_as_typer_reads_them(name: str, args: list[str]) -> None:
    command = _command(name)
    plain = plain_values(command, command.context_class(command, info_name=name), list(args))
    assert plain is not None
    expected = _typer_params(command, args)
    assert plain == expected
    assert {name: type(value) for name, value in plain.items()} == {
        name: type(value) for name, value in expected.items()
    }


@pytest.mark.parametrize(
    ("name", "args"), [("serve", args) for args in NOT_PLAIN] + [("run", args) for args in NOT_PLAIN_RUN]
)
def test_other_command_lines_are_left_to_typer(name: str, args: list[str]) -> None:
    command = _command(name)
    assert plain_values(command, command.context_class(command, info_name=name), list(args)) is None


def test_options_read_from_elsewhere_than_the_command_line_are_left_to_typer() -> None:
    """A prompt, an environment variable or a computed default is typer's to read, whatever the command line."""
    other = typer.Typer()

    @other.command(cls=PlainOptionsCommand)
    def prompted(name: Annotated[str, typer.Option(prompt=True)] = "anonyme") -> None:
        typer.echo(f"name {name}")

    @other.command(cls=PlainOptionsCommand)
    def environment(token: Annotated[str | None, typer.Option(envvar="PLAIN_TOKEN")] = None) -> None:
        typer.echo(f"token {token}")

    @other.command(cls=PlainOptionsCommand)
    def computed(when: Annotated[str, typer.Option(default_factory=lambda: "now")]) -> None:
        typer.echo(f"when {when}")

    group = typer.main.get_command(other)
    for name in ("prompted", "environment", "computed"):
        command = group.commands[name]  # type: ignore[attr-defined]
        assert isinstance(command, PlainOptionsCommand)
        assert plain_values(command, command.context_class(command, info_name=name), []) is None, name
    runner = CliRunner()
    assert runner.invoke(other, ["prompted"], input="Zoé\n").output.endswith("name Zoé\n")
    assert runner.invoke(other, ["environment"], env={"PLAIN_TOKEN": "t"}).output == "token t\n"
    assert runner.invoke(other, ["computed"]).output == "when now\n"


@pytest.mark.parametrize(
    ("usual", "converted", "stop_at", "settings"),
    [
        (
            ["serve", "--ephemeral", "--endpoints-file", "r.json", "--config", "c.toml", "-s", "insi"],
            "--https-port=08443",
            "harness.front.preflight:check_journal",  # the last step before the simulators are imported
            "http_port = 8443\n",
        ),
        (
            ["run", "--config", "c.toml", "--reports", "reports", "--jobs", "2"],
            "--step-timeout=5",
            "harness.front.runner:play_children",  # spawns the scenario processes
            "",  # ephemeral ports: fixed ones would need --jobs 1 (a usage error, before the spawn)
        ),
    ],
)
def test_usual_command_lines_read_their_options_and_configuration_without_pydantic(
    tmp_path: Path, usual: list[str], converted: str, stop_at: str, settings: str
) -> None:
    """Up to the start of the simulators (``serve``) or of the scenario processes (``run``), a usual command line
    and configuration file never import pydantic (some 0.05-0.15 s of the start); a value to convert still goes
    through it."""
    (tmp_path / "c.toml").write_text(f'run_dir = "{tmp_path / "run"}"\n{settings}', encoding="utf-8")
    module, name = stop_at.split(":")
    code = (
        "import importlib, sys\n"
        "def stop(*args, **kwargs):\n"
        "    raise SystemExit(97)\n"  # reached: not a usage error (2) on the way
        f"setattr(importlib.import_module({module!r}), {name!r}, stop)\n"
        "from harness.front.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:])\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, 'pydantic' in sys.modules)\n"
    )
    for args, imported in ((usual, "False"), ([*usual, converted], "True")):
        found = subprocess.run(
            [sys.executable, "-c", code, *args], cwd=tmp_path, capture_output=True, text=True, check=True
        )
        assert found.stdout.split()[-2:] == ["97", imported], found.stdout + found.stderr
