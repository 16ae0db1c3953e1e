"""One declared plugin per socle service: what it brings, registered once, checked when loaded.

A service (MSSanté, DMP...) is declared by one :class:`ServicePlugin` object, registered under its name in the
entry-point group ``socle_harness.services`` (one line in ``pyproject.toml``; the object usually lives in
``mock_services/<service>/plugin.py``). It names every part of the service:

- ``simulator``: its :class:`~harness.host.simulator.Simulator` subclass (the service host mounts it);
- ``settings``: the types its ``[settings.<service>]`` table is read into: frozen dataclasses whose fields are
  the table's keys (:mod:`harness.core.settings`), each with a ``from_mapping`` constructor the simulator calls;
  :func:`check_settings` refuses at load a key none of them declares and a value of the wrong type;
- ``faults``: its fault catalogue, the :class:`~harness.host.simulator.FaultSpec` kinds it takes from the board
  (at least the simulator's own ``fault_catalogue``, which the host's ``/_harness/faults`` injects, every kind
  named ``<service>.<fault>``);
- ``dui``: the DUI side (:class:`DuiSide`): the control-API actions (:class:`ActionSpec`: request dataclass and
  its example, summary, the typed ``data`` of the answer with its examples, French guided-recette instruction),
  the reference DUI's mixin implementing them and the named defects of the faulty DUI; or a function without
  argument returning it, called (once) when the reference DUI, the control API or a check first asks for it
  (:func:`dui_side`): ``socle-harness serve`` starts the simulators without importing the DUI side (issue 18);
- ``steps``: the module of its bilingual Gherkin steps (a pytest plugin module).

Everything the harness used to list by hand is assembled from the loaded plugins: the reference and faulty
DUIs (:mod:`harness.sut.reference`), the control API and its OpenAPI document (:mod:`harness.sut.control_api`),
the guided-recette instructions (:mod:`harness.sut.manual`), the step modules (:mod:`harness.runtime.pytest_plugin`)
and the simulator registry (:func:`harness.host.simulator.available_simulators` reads the ``simulator`` part).

Like pluggy checking hook implementations at registration, :func:`validate` refuses a plugin with a missing or
mistyped part, and :func:`check_together` refuses duplicate action, method or defect names, two reference mixins
defining the same attribute, or a dependency on an unregistered service; every error names the plugin. A DUI side
declared by a function is checked the same way when it is resolved: by :func:`dui_sides` (the reference DUI, the
control API, ``socle-harness run``) and by :func:`load` unless told the DUI side is not needed (:func:`services`,
which the service host reads).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any

from harness.core.messages import bilingual
from harness.core.settings import SettingsError, nearest, settings_keys, unknown_keys
from harness.host.connections import ConnectionLimits
from harness.host.simulator import FaultSpec, Simulator
from harness.sut.contract import Defect, SutEnvironment
from harness.sut.json_schema import object_schema

ENTRY_POINT_GROUP = "socle_harness.services"

#: A guided-recette instruction: ``(action dataclass or None, the DUI's environment or None) -> French text``.
Instruction = Callable[[Any, SutEnvironment | None], str]

#: ``[settings.host]``: the service host's own table (bounds of every listener), beside the services' tables
HOST_SETTINGS: Mapping[str, tuple[type, ...]] = MappingProxyType({"host": (ConnectionLimits,)})

# attributes every reference mixin may declare (the shared driver state and the defect predicate)
_SHARED_MIXIN_ATTRIBUTES = frozenset({"has", "env", "tls_context"})


class PluginError(TypeError):
    """A service plugin that does not declare what it must (raised when the plugins are loaded)."""


#: ``metadata`` key of a field of an action's ``data`` dataclass that holds its :class:`Fact`
FACT = "socle_fact"
_UNSET: Any = object()


@dataclass(frozen=True)
class Fact:
    """One key of an action's answer ``data``: what it says and its example in the OpenAPI document.

    ``example`` maps the fixtures' sample (:class:`harness.sut.control_api_examples.Sample`) to the value;
    ``real``: that value is what the simulators serve for those fixtures (a fixture's INS, a PSC test
    professional's claims...); otherwise it is illustrative (an identifier a service assigns at run time), and the
    document says so."""

    description: str
    example: Callable[[Any], Any]
    real: bool


def fact(description: str, *, example: Any = _UNSET, real: Callable[[Any], Any] | None = None) -> Any:
    """Declare a field of an action's ``data`` dataclass: ``real(sample)`` gives the value the simulators serve
    for the fixtures, or ``example`` is an illustrative value (exactly one of the two). No key is required: the
    field defaults to ``None`` (the dataclass only declares; the DUI may leave a key out, or say more)."""
    if (example is _UNSET) == (real is None):
        raise TypeError(f"fact {description!r}: give exactly one of example= (illustrative) or real=")
    value = Fact(description, real, True) if real is not None else Fact(description, lambda s: example, False)
    return field(default=None, metadata={FACT: value, "description": description})


def facts(data: type | None) -> Mapping[str, Fact]:
    """The :class:`Fact` of every key of a ``data`` dataclass (none for ``None``)."""
    if data is None:
        return MappingProxyType({})
    return MappingProxyType({f.name: f.metadata[FACT] for f in dataclasses.fields(data)})


@dataclass(frozen=True)
class ActionSpec:
    """One action of the DUI control API: URL segment (``mssante-send``), :class:`~harness.sut.base.SutDriver`
    method (``send_mssante``), request dataclass (``None``: empty body), what it asks of the DUI, the French
    instruction a recette operator follows in guided mode, and the ``data`` the harness reads back.

    ``data``: a dataclass whose fields are the keys of the answer's ``data`` the harness reads, typed as the
    reference DUI builds them, each declared with :func:`fact` (description and example); ``None``: no key.
    ``example``: ``sample -> {field: value}``, the request fields its OpenAPI example sets beyond the person, the
    establishment and the INSi traits (filled from the fixtures' sample) and the fields' defaults."""

    name: str
    method: str
    request: type | None
    summary: str
    instruction: Instruction
    data: type | None = None
    example: Callable[[Any], Mapping[str, Any]] | None = None

    @property
    def facts(self) -> Mapping[str, Fact]:
        return facts(self.data)


#: ``(request dataclass, field name) -> {code: meaning}``: the closed list of values of a request field
Vocabularies = Mapping[tuple[type, str], Mapping[str, str]]


@dataclass(frozen=True)
class DuiSide:
    """What a service asks of the DUI: its control-API actions, the reference DUI's mixin that implements each
    action's method, and the named defects that mixin can switch on (``self.has(name)``). ``vocabularies``: the
    request fields whose values are a closed list, each code explained (enumerations of the OpenAPI document),
    taken from the modules that own them (a CI-SIS model list, a JDV...), never copied."""

    actions: tuple[ActionSpec, ...]
    reference: type
    defects: tuple[Defect, ...]
    vocabularies: Vocabularies = field(default_factory=dict)


@dataclass(frozen=True)
class ServicePlugin:
    """The declaration of one socle service (see the module docstring). ``requires``: other services whose
    actions this service's reference mixin calls (the INSi mixin sends by MSSanté after qualifying)."""

    name: str
    title: str
    simulator: type[Simulator]
    settings: tuple[type, ...]
    faults: tuple[FaultSpec, ...]
    dui: DuiSide | Callable[[], DuiSide]
    steps: str
    requires: tuple[str, ...] = ()


def _fail(plugin: str, message: str) -> PluginError:
    return PluginError(bilingual(f"plugin de service « {plugin} »", f"service plugin {plugin!r}") + f": {message}")


def _tuple_of(plugin: str, part: str, value: Any, kind: type) -> None:
    if not isinstance(value, tuple):
        raise _fail(plugin, f"{part} must be a tuple of {kind.__name__}, not {type(value).__name__}")
    wrong = [item for item in value if not isinstance(item, kind)]
    if wrong:
        raise _fail(plugin, f"{part} must hold {kind.__name__} only, found {wrong[0]!r}")


def validate(plugin: object, registered_as: str | None = None) -> ServicePlugin:
    """Check one plugin's parts (presence and types); return it. Raises :class:`PluginError` naming the plugin."""
    label = registered_as or getattr(plugin, "name", None) or repr(plugin)
    if not isinstance(plugin, ServicePlugin):
        raise _fail(label, f"the entry point must name a ServicePlugin, not {type(plugin).__name__}")
    for part in dataclasses.fields(ServicePlugin):
        if getattr(plugin, part.name, None) is None:
            raise _fail(label, f"part {part.name!r} is missing")
    if registered_as is not None and plugin.name != registered_as:
        raise _fail(label, f"declares the name {plugin.name!r} but is registered as {registered_as!r}")
    if not (isinstance(plugin.simulator, type) and issubclass(plugin.simulator, Simulator)):
        raise _fail(label, f"simulator must be a Simulator subclass, not {plugin.simulator!r}")
    if getattr(plugin.simulator, "name", None) != plugin.name:
        raise _fail(label, f"simulator {plugin.simulator.__name__}.name must be {plugin.name!r}")
    _tuple_of(label, "settings", plugin.settings, type)
    if not plugin.settings:
        raise _fail(label, "settings must name at least one settings type")
    for settings in plugin.settings:
        if not callable(getattr(settings, "from_mapping", None)):
            raise _fail(label, f"settings type {settings.__name__} has no from_mapping(mapping) constructor")
        if not dataclasses.is_dataclass(settings):
            raise _fail(label, f"settings type {settings.__name__} must be a dataclass (its fields are the keys)")
    _unique(label, "settings key", (key for settings in plugin.settings for key in settings_keys(settings)))
    _tuple_of(label, "faults", plugin.faults, FaultSpec)
    _unique(label, "fault", (f.name for f in plugin.faults))
    undeclared = sorted(set(getattr(plugin.simulator, "fault_catalogue", {})) - {f.name for f in plugin.faults})
    if undeclared:
        raise _fail(label, f"faults must hold the simulator's fault_catalogue, missing {', '.join(undeclared)}")
    unprefixed = sorted(
        k for k in getattr(plugin.simulator, "fault_catalogue", {}) if not k.startswith(f"{plugin.name}.")
    )
    if unprefixed:
        raise _fail(label, f"fault_catalogue kinds are named {plugin.name}.<fault>, not {', '.join(unprefixed)}")
    if isinstance(plugin.dui, DuiSide):
        _validate_dui(label, plugin.dui)
    elif isinstance(plugin.dui, type) or not callable(plugin.dui):
        raise _fail(label, f"dui must be a DuiSide or a function returning one, not {type(plugin.dui).__name__}")
    if not isinstance(plugin.steps, str) or importlib.util.find_spec(plugin.steps) is None:
        raise _fail(label, f"steps must name an importable module, not {plugin.steps!r}")
    _tuple_of(label, "requires", plugin.requires, str)
    return plugin


def _validate_dui(label: str, dui: object) -> DuiSide:
    """Check one plugin's DUI side (actions, reference mixin, defects, vocabularies); return it."""
    if not isinstance(dui, DuiSide):
        raise _fail(label, f"dui must be a DuiSide, not {type(dui).__name__}")
    _tuple_of(label, "dui.actions", dui.actions, ActionSpec)
    _tuple_of(label, "dui.defects", dui.defects, Defect)
    if not isinstance(dui.reference, type):
        raise _fail(label, f"dui.reference must be the reference DUI's mixin class, not {dui.reference!r}")
    for spec in dui.actions:
        if spec.request is not None and not (isinstance(spec.request, type) and dataclasses.is_dataclass(spec.request)):
            raise _fail(label, f"action {spec.name!r}: request must be a dataclass or None, not {spec.request!r}")
        _check_data(label, spec)
        if spec.example is not None and not callable(spec.example):
            raise _fail(label, f"action {spec.name!r}: example must be a function of the fixtures' sample")
        if not callable(spec.instruction):
            raise _fail(label, f"action {spec.name!r}: instruction must be callable")
        if not callable(getattr(dui.reference, spec.method, None)):
            raise _fail(label, f"action {spec.name!r}: {dui.reference.__name__} has no method {spec.method!r}")
    _check_vocabularies(label, dui.vocabularies)
    _unique(label, "action", (s.name for s in dui.actions))
    _unique(label, "driver method", (s.method for s in dui.actions))
    _unique(label, "defect", (d.name for d in dui.defects))
    return dui


@cache
def _declared_dui(factory: Callable[[], DuiSide]) -> object:
    """What a plugin's DUI-side function returns, called once per process (it imports the DUI side)."""
    return factory()


def dui_side(plugin: ServicePlugin) -> DuiSide:
    """The plugin's DUI side, checked (:class:`PluginError` naming the plugin when its function fails, returns
    something else than a :class:`DuiSide` or a broken one)."""
    if isinstance(plugin.dui, DuiSide):
        return plugin.dui
    try:
        declared = _declared_dui(plugin.dui)
    except Exception as exc:
        raise _fail(plugin.name, f"dui: the DUI side cannot be loaded: {type(exc).__name__}: {exc}") from exc
    return _validate_dui(plugin.name, declared)


def _check_data(plugin: str, spec: ActionSpec) -> None:
    """The ``data`` of an action: a dataclass whose every field is a :func:`fact` of a type JSON Schema can
    describe (:mod:`harness.sut.json_schema`)."""
    if spec.data is None:
        return
    if not (isinstance(spec.data, type) and dataclasses.is_dataclass(spec.data)):
        raise _fail(
            plugin, f"action {spec.name!r}: data must be a dataclass of the answer's data or None, not {spec.data!r}"
        )
    if not dataclasses.fields(spec.data):
        raise _fail(plugin, f"action {spec.name!r}: data {spec.data.__name__} declares no key (use None)")
    for f in dataclasses.fields(spec.data):
        if not isinstance(f.metadata.get(FACT), Fact):
            raise _fail(plugin, f"action {spec.name!r}: data key {f.name!r} must be declared with fact(...)")
    try:
        object_schema(spec.data, {}, required=False)
    except (NameError, TypeError) as exc:
        raise _fail(plugin, f"action {spec.name!r}: data {spec.data.__name__} has no JSON schema: {exc}") from None


def _check_vocabularies(plugin: str, vocabularies: object) -> None:
    """Each key a (request dataclass, one of its fields), each value a non-empty ``{code: meaning}`` of strings."""
    if not isinstance(vocabularies, Mapping):
        raise _fail(plugin, f"dui.vocabularies must be a mapping, not {type(vocabularies).__name__}")
    for key, codes in vocabularies.items():
        cls, name = key if isinstance(key, tuple) and len(key) == 2 else (None, None)
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise _fail(plugin, f"dui.vocabularies: {key!r} must be (request dataclass, field name)")
        if name not in {f.name for f in dataclasses.fields(cls)}:
            raise _fail(plugin, f"dui.vocabularies: {cls.__name__} has no field {name!r}")
        if not (
            isinstance(codes, Mapping)
            and codes
            and all(isinstance(c, str) and isinstance(m, str) for c, m in codes.items())
        ):
            raise _fail(plugin, f"dui.vocabularies: {cls.__name__}.{name} must map codes to meanings (str -> str)")


def _unique(plugin: str, what: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise _fail(plugin, f"{what} {name!r} is declared twice")
        seen.add(name)


def check_together(plugins: Iterable[ServicePlugin]) -> None:
    """Refuse what two plugins declare twice (action, driver method, defect, reference mixin attribute) and
    dependencies on services that are not registered. Errors name both plugins."""
    plugins = list(plugins)
    owners: dict[tuple[str, str], str] = {}

    def claim(kind: str, name: str, plugin: str) -> None:
        other = owners.setdefault((kind, name), plugin)
        if other != plugin:
            raise _fail(plugin, f"{kind} {name!r} is already declared by the plugin {other!r}")

    _check_requires(plugins)
    for plugin in plugins:
        dui = dui_side(plugin)
        for spec in dui.actions:
            claim("action", spec.name, plugin.name)
            claim("driver method", spec.method, plugin.name)
        for defect in dui.defects:
            claim("defect", defect.name, plugin.name)
        for cls, name in dui.vocabularies:
            claim("vocabulary of", f"{cls.__name__}.{name}", plugin.name)
        for attribute in vars(dui.reference):
            if not attribute.startswith("__") and attribute not in _SHARED_MIXIN_ATTRIBUTES:
                claim("reference DUI attribute", attribute, plugin.name)


def _check_requires(plugins: Iterable[ServicePlugin]) -> None:
    plugins = list(plugins)
    names = {p.name for p in plugins}
    for plugin in plugins:
        missing = [name for name in plugin.requires if name not in names]
        if missing:
            raise _fail(plugin.name, f"requires the service(s) {', '.join(missing)}, not registered")


def load(found: Iterable[tuple[str, Callable[[], object]]], *, dui: bool = True) -> Mapping[str, ServicePlugin]:
    """Validate ``(registered name, loader)`` pairs into the registry, sorted by name. ``dui=False``: the DUI sides
    declared by a function are neither imported nor checked here (:func:`dui_sides` does it when they are needed)."""
    plugins = [validate(loader(), name) for name, loader in found]
    _unique("*", "service", (p.name for p in plugins))
    if dui:
        check_together(plugins)
    else:
        _check_requires(plugins)
    return MappingProxyType({p.name: p for p in sorted(plugins, key=lambda p: p.name)})


@cache
def services() -> Mapping[str, ServicePlugin]:
    """The registered service plugins (entry-point group ``socle_harness.services``), validated, by name; their
    DUI sides are checked by :func:`dui_sides`, which everything that drives or describes a DUI goes through.

    Loaded once per process: entry points do not change while it runs."""
    found = [(ep.name, ep.load) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    if not found:
        raise PluginError(
            bilingual(
                f"aucun service enregistré (groupe d'entry points {ENTRY_POINT_GROUP}) : réinstallez le paquet avec "
                "« pip install -e . »",
                "no service plugin registered: reinstall the package",
            )
        )
    return load(found, dui=False)


@cache
def dui_sides() -> Mapping[str, DuiSide]:
    """Every registered service's DUI side, by service name, each checked and all checked together
    (:func:`check_together`): what the reference DUI, the control API and the guided recette are built from."""
    registry = services()
    check_together(registry.values())
    return MappingProxyType({name: dui_side(plugin) for name, plugin in registry.items()})


def check_settings(tables: Mapping[str, Any], registry: Mapping[str, ServicePlugin] | None = None) -> None:
    """Refuse (ValueError, French and English) what the ``[settings.*]`` tables would silently get wrong: a table
    for no registered service, a key no settings type of its service declares (with the nearest valid one) and a
    value of the wrong type (with its key), by building every settings type as the simulator will. Without any
    table there is nothing to refuse: the service plugins are not loaded (``socle-harness run`` checks its
    configuration in a process that never starts a simulator)."""
    if not tables:
        return
    owners = {name: plugin.settings for name, plugin in (registry or services()).items()} | dict(HOST_SETTINGS)
    unknown = sorted(set(tables) - set(owners))
    if unknown:
        raise ValueError(
            bilingual("sections [settings.*] inconnues", "unknown settings sections")
            + ": "
            + ", ".join(f"[settings.{name}]{nearest(name, owners)}" for name in unknown)
            + f" — sections : {', '.join(sorted(owners))}"
        )
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            raise ValueError(
                bilingual(f"[settings.{name}] doit être une table", "must be a table") + f", not {table!r}"
            )
        wrong = unknown_keys(owners[name], table)
        if wrong:
            valid = sorted(key for settings in owners[name] for key in settings_keys(settings))
            raise ValueError(
                bilingual(f"clés inconnues dans [settings.{name}]", "unknown keys")
                + f": {', '.join(wrong)} — clés valides : "
                + ", ".join(valid)
            )
        for settings in owners[name]:
            try:
                settings.from_mapping(table)
            except SettingsError as exc:
                raise ValueError(
                    bilingual(f"valeur invalide dans [settings.{name}]", "invalid value")
                    + f": {exc.key} : {exc.reason}"
                ) from None
