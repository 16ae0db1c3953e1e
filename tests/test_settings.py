"""Typed ``[settings.<service>]`` tables (issue 16 item 7): every key a table may hold is a field of one of its
service's settings types, the simulators read their settings only through those types, and the configuration
refuses at load an unknown key (naming the nearest valid one) or a value of the wrong type (naming the key)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, fields, replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.core.settings import SettingsError, read_settings, settings_keys, unknown_keys
from harness.fields.identity import ProductionInsPolicy
from harness.front.cli import app
from harness.host.connections import ConnectionLimits
from harness.sut.plugins import HOST_SETTINGS, PluginError, check_settings, services, validate
from mock_services.insi.service import InsiSettings
from mock_services.mssante.auth_backoff import BackoffPolicy
from mock_services.mssante.settings import Hl7RelaySettings, ImapSettings, MssanteSettings, SmtpSettings

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

MSSANTE_KEYS = (
    "auth_backoff, hl7_ack_timeout, hl7_frame_timeout, hl7_max_frame, hl7_volet_20, hostname, imap_content_cache, "
    "imap_hostname, imap_idle_timeout, imap_max_line_bytes, imap_max_literal_bytes, mailbox_quota_bytes, "
    "max_message_bytes, production_ins, smtp_idle_timeout, strict"
)
INSI_KEYS = (
    "authorised_idam, max_delay_seconds, max_request_bytes, qualification_identities, refuse_production_ins, seed, "
    "synthetic_identities"
)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '[settings.insi]\nauthorized_idam = ["DUI-X"]\n',
            "clés inconnues dans [settings.insi] / unknown keys: authorized_idam (vouliez-vous dire « authorised_idam »"
            f" ? / did you mean 'authorised_idam'?) — clés valides : {INSI_KEYS}",
        ),
        (
            "[settings.mssante]\nimap_max_line_byte = 8192\n",
            "clés inconnues dans [settings.mssante] / unknown keys: imap_max_line_byte (vouliez-vous dire « "
            f"imap_max_line_bytes » ? / did you mean 'imap_max_line_bytes'?) — clés valides : {MSSANTE_KEYS}",
        ),
        (  # a nested table is checked against its own dataclass
            "[settings.mssante]\nauth_backoff = { free_failure = 1 }\n",
            "clés inconnues dans [settings.mssante] / unknown keys: auth_backoff.free_failure (vouliez-vous dire « "
            f"free_failures » ? / did you mean 'free_failures'?) — clés valides : {MSSANTE_KEYS}",
        ),
        (
            "[settings.tddui]\ncouleur = 1\n",
            "clés inconnues dans [settings.tddui] / unknown keys: couleur — clés valides : max_bytes, max_entries, "
            "production_ins",
        ),
        (
            '[settings.insi]\nsynthetic_identities = "beaucoup"\n',
            "valeur invalide dans [settings.insi] / invalid value: synthetic_identities : Input should be a valid "
            "integer, unable to parse string as an integer (reçu 'beaucoup')",
        ),
        (  # a prefixed key is named as written in the table
            '[settings.mssante]\nhl7_ack_timeout = "vite"\n',
            "valeur invalide dans [settings.mssante] / invalid value: hl7_ack_timeout : Input should be a valid "
            "number, unable to parse string as a number (reçu 'vite')",
        ),
        (
            "[settings.mssante]\nauth_backoff = { max_delay = [1] }\n",
            "valeur invalide dans [settings.mssante] / invalid value: auth_backoff.max_delay : Input should be a "
            "valid number (reçu [1])",
        ),
        (
            '[settings.dmp]\nvihf = "souple"\n',
            "valeur invalide dans [settings.dmp] / invalid value: vihf : Input should be 'strict', 'lenient' or 'off'"
            " (reçu 'souple')",
        ),
        (
            '[settings.eparcours]\nproduction_ins = "refuser"\n',
            "valeur invalide dans [settings.eparcours] / invalid value: production_ins : Input should be 'warn' or "
            "'refuse' (reçu 'refuser')",
        ),
        (
            "[settings.host]\nmax_per_peer = 2.5\n",
            "valeur invalide dans [settings.host] / invalid value: max_per_peer : Input should be a valid integer, got"
            " a number with a fractional part (reçu 2.5)",
        ),
        (
            "[settings.pcs]\nsut_client = 'x'\n",
            "sections [settings.*] inconnues / unknown settings sections: [settings.pcs] (vouliez-vous dire « psc » ?"
            " / did you mean 'psc'?) — sections : dmp, eparcours, eprescription, host, insi, mssante, psc, tddui",
        ),
    ],
)
def test_a_wrong_settings_table_is_refused_at_load_naming_the_key(tmp_path: Path, table: str, message: str) -> None:
    config = tmp_path / "socle-harness.toml"
    config.write_text(table, encoding="utf-8")
    result = runner.invoke(app, ["list", "--config", str(config)], env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    assert " ".join(result.output.split()) == f"Configuration invalide / invalid configuration: {message}"


def test_every_documented_kind_of_table_is_accepted(tmp_path: Path) -> None:
    config = tmp_path / "socle-harness.toml"
    config.write_text(
        '[settings.insi]\nauthorised_idam = "DUI-X"\nsynthetic_identities = 0\n'
        "[settings.mssante]\nstrict = false\nimap_max_line_bytes = 8192\nhl7_volet_20 = false\nmailbox_quota_bytes = 1000\n"
        "auth_backoff = { free_failures = 1, base_delay = 0.4 }\n"
        '[settings.dmp]\nvihf = "lenient"\npersons = { "279035121518989" = { state = "closed" } }\n'
        '[settings.psc]\nsut_client = "dui-reference"\nfixtures_dir = "fixtures/psc"\n'
        "[settings.host]\nmax_per_peer = 2\nstream_idle_timeout = 0.5\n"
        '[settings.tddui]\nproduction_ins = "refuse"\n',
        encoding="utf-8",
    )
    result = runner.invoke(app, ["list", "--config", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output


def test_a_configuration_without_settings_tables_loads_without_the_service_plugins(tmp_path: Path) -> None:
    """``run`` loads its configuration before it can start its child: with no ``[settings.*]`` table there is nothing
    to check, and the service plugins (simulators, DUI sides: 0.1-0.2 s of imports, issue 18) stay unimported."""
    import subprocess
    import sys

    code = (
        "import sys; from harness.front.cli import _load; _load(None); "
        "print(sorted(m for m in sys.modules if m.startswith(('harness.sut.plugins', 'harness.host.simulator'))))"
    )
    found = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]", found.stderr


def test_check_settings_builds_what_the_simulators_build() -> None:
    check_settings({})
    with pytest.raises(ValueError) as refused:
        check_settings({"insi": ["DUI-X"]})
    assert str(refused.value) == "[settings.insi] doit être une table / must be a table, not ['DUI-X']"


# -------------------------------------------------------------------------------------------- the settings types
def test_every_plugin_declares_dataclass_settings_whose_defaults_are_read_from_an_empty_table() -> None:
    for plugin in services().values():
        for settings_type in plugin.settings:
            assert settings_type.from_mapping({}) == settings_type(), settings_type
            assert unknown_keys((settings_type,), {key: None for key in settings_keys(settings_type)}) == []
    assert settings_keys(ImapSettings)[:2] == ("imap_hostname", "imap_max_line_bytes")
    assert services()["mssante"].settings == (SmtpSettings, ImapSettings, Hl7RelaySettings, MssanteSettings)


def test_the_typed_readers_keep_what_the_tables_allowed_before() -> None:
    # one IDAM may be written as a string; the bounds are clamped; IMAP's literal defaults to the SMTP maximum
    insi = InsiSettings.from_mapping({"authorised_idam": "DUI-X", "synthetic_identities": 10**9, "seed": 7})
    assert (insi.authorised_idam, insi.synthetic_identities, insi.seed) == (("DUI-X",), 100_000, 7)
    assert ImapSettings.from_mapping({"max_message_bytes": 1000}).max_literal_bytes == 1000
    assert ImapSettings.from_mapping({"max_message_bytes": 1000, "imap_max_literal_bytes": 5}).max_literal_bytes == 5
    mssante = MssanteSettings.from_mapping({"auth_backoff": {"free_failures": 1}, "production_ins": "refuse"})
    assert mssante == MssanteSettings(ProductionInsPolicy.REFUSE, None, BackoffPolicy(free_failures=1))
    assert Hl7RelaySettings.from_mapping({"hl7_ack_timeout": 1, "ack_timeout": 9}).ack_timeout == 1.0
    # a key named by the field's metadata: SMTP's idle timeout is smtp_idle_timeout, not idle_timeout
    assert SmtpSettings.from_mapping({"smtp_idle_timeout": 0.5, "idle_timeout": 9}).idle_timeout == 0.5
    with pytest.raises(SettingsError) as wrong:
        SmtpSettings.from_mapping({"smtp_idle_timeout": "jamais"})
    assert wrong.value.key == "smtp_idle_timeout"
    assert ConnectionLimits.from_mapping({"max_per_peer": "3"}).max_per_peer == 3


def _all_settings_types() -> list[type]:
    found = [settings_type for plugin in services().values() for settings_type in plugin.settings]
    found.extend(settings_type for types in HOST_SETTINGS.values() for settings_type in types)
    found.append(BackoffPolicy)  # MSSanté's nested table
    return found


def test_a_table_read_without_pydantic_is_what_pydantic_reads() -> None:
    """Plain values (exact scalars, a string enumeration's value) are read without pydantic (issue 18, cold start):
    every settings type, from an empty table and from a table of each field's default written as TOML would, is
    built equal, with fields of the same types, to what pydantic validates from the same table; a value needing a
    conversion (an int for a float, a list for a tuple, a non-member) still goes through pydantic."""
    from enum import Enum

    from pydantic import TypeAdapter

    def as_written(value: object) -> object:
        return value.value if isinstance(value, Enum) else value

    for settings_type in _all_settings_types():
        scalars = {
            f.name: as_written(getattr(settings_type(), f.name))
            for f in fields(settings_type)
            if isinstance(getattr(settings_type(), f.name), (str, int, float, bool))
        }
        for values in ({}, scalars):
            keys = dict(zip((f.name for f in fields(settings_type)), settings_keys(settings_type), strict=True))
            raw = {keys[name]: value for name, value in values.items()}
            plain, validated = read_settings(settings_type, raw), TypeAdapter(settings_type).validate_python(values)
            assert plain == validated, settings_type
            for f in fields(settings_type):
                assert type(getattr(plain, f.name)) is type(getattr(validated, f.name)), (settings_type, f.name)
    assert MssanteSettings.from_mapping({"production_ins": "refuse"}).production_ins is ProductionInsPolicy.REFUSE
    smtp = SmtpSettings.from_mapping({"max_message_bytes": 10, "strict": False, "hostname": "mx.test"})
    assert smtp == SmtpSettings(strict=False, max_message_bytes=10, hostname="mx.test")
    converted = Hl7RelaySettings.from_mapping({"hl7_ack_timeout": 2})  # an int for a float: pydantic converts it
    assert converted.ack_timeout == 2.0 and type(converted.ack_timeout) is float
    with pytest.raises(SettingsError) as wrong:
        MssanteSettings.from_mapping({"production_ins": "parfois"})
    assert wrong.value.key == "production_ins"
    as_bool = SmtpSettings.from_mapping({"max_message_bytes": True})  # a bool is not a plain int: pydantic's
    assert as_bool.max_message_bytes == 1 and type(as_bool.max_message_bytes) is int


def test_a_wrong_value_raises_a_settings_error_naming_the_table_key() -> None:
    with pytest.raises(SettingsError) as wrong:
        read_settings(Hl7RelaySettings, {"hl7_volet_20": "peut-être"})
    assert (wrong.value.key, str(wrong.value)) == (
        "hl7_volet_20",
        "réglage hl7_volet_20 : Input should be a valid boolean, unable to interpret input (reçu 'peut-être')",
    )


def test_a_plugin_settings_type_must_be_a_dataclass_with_keys_of_its_own() -> None:
    class Loose:
        @classmethod
        def from_mapping(cls, raw: dict) -> Loose:
            return cls()

    @dataclass(frozen=True)
    class Twice:
        strict: bool = True

        @classmethod
        def from_mapping(cls, raw: dict) -> Twice:
            return read_settings(cls, raw)

    mssante = services()["mssante"]
    with pytest.raises(PluginError) as loose:
        validate(replace(mssante, settings=(Loose,)))
    assert str(loose.value).endswith("settings type Loose must be a dataclass (its fields are the keys)")
    with pytest.raises(PluginError) as twice:
        validate(replace(mssante, settings=(SmtpSettings, Twice)))
    assert str(twice.value).endswith("settings key 'strict' is declared twice")


def test_simulators_read_their_settings_only_through_their_settings_types() -> None:
    """No ``ctx.settings.get("key")`` left: every read of a simulator context's settings is the argument of a
    settings type's ``from_mapping`` (possibly through ``dict(...)``)."""
    for module in sorted((REPO / "mock_services").rglob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        allowed: set[int] = set()
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            if isinstance(call.func, ast.Attribute) and call.func.attr == "from_mapping":
                for arg in call.args:
                    inner = arg.args[0] if isinstance(arg, ast.Call) and arg.args else arg
                    allowed.add(id(inner))
        reads = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr == "settings"
            and ast.unparse(node.value).split(".")[-1] == "ctx"
        ]
        assert [ast.unparse(n) for n in reads if id(n) not in allowed] == [], module
    assert [f.name for f in fields(MssanteSettings)] == ["production_ins", "mailbox_quota_bytes", "auth_backoff"]


# -------------------------------------------------------------------------------------- the configuration's types
def test_the_configuration_types_are_checked_with_or_without_pydantic(tmp_path: Path) -> None:
    """A usual configuration (exact scalars, paths, lists of names, tables of ports) is accepted without pydantic
    (issue 18, cold start); a value needing a conversion is pydantic's to accept, and a wrong one is still refused
    naming its key."""
    from harness.core.config import load_config

    plain = tmp_path / "plain.toml"
    plain.write_text(
        'journal = "sqlite:///j.sqlite"\nrun_dir = "run"\nhttp_port = 8443\ntls = true\nservices = ["insi"]\n'
        "step_timeout = 2.5\n[ports.mssante]\nsmtp = 2587\n[settings.insi]\nseed = 7\n",
        encoding="utf-8",
    )
    config = load_config(plain)
    assert (config.http_port, config.services, config.ports, config.run_dir) == (
        8443,
        ("insi",),
        {"mssante": {"smtp": 2587}},
        tmp_path / "run",
    )
    converted = tmp_path / "converted.toml"
    converted.write_text("step_timeout = 5\n", encoding="utf-8")  # an int for a float: pydantic accepts it
    assert load_config(converted).step_timeout == 5
    for line, key in (
        ('http_port = "abc"', "http_port"),
        ('tls = "oui"', "tls"),
        ("services = [1]", "services.0"),
        ('step_timeout = "vite"', "step_timeout"),
        ('[ports.mssante]\nsmtp = "x"', "ports.mssante.smtp"),
    ):
        wrong = tmp_path / "wrong.toml"
        wrong.write_text(line + "\n", encoding="utf-8")
        with pytest.raises(ValueError) as refused:
            load_config(wrong)
        assert str(refused.value).startswith(f"valeurs invalides dans {wrong} / invalid values: {key} : "), line
