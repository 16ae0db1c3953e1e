"""The service plugins (issue 13 item 1): every registered service declares all its parts, the harness's tables
are assembled from them, and a plugin that is incomplete, mistyped or clashes with another is refused with an
error naming it, when loaded."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from harness.host.simulator import FaultSpec, Simulator, available_simulators
from harness.runtime.drivers import make_driver
from harness.steps import SHARED_STEP_MODULES
from harness.sut.base import ActionResult, ActionStatus, Defect, MssanteSend
from harness.sut.control_api import ACTIONS, openapi
from harness.sut.plugins import (
    ActionSpec,
    DuiSide,
    PluginError,
    ServicePlugin,
    check_together,
    dui_side,
    dui_sides,
    fact,
    load,
    services,
    validate,
)
from harness.sut.reference import DEFECTS, FaultyDUI, ReferenceDUI

REPO = Path(__file__).resolve().parents[1]
SERVICES = ["dmp", "eparcours", "eprescription", "insi", "mssante", "psc", "tddui"]


def test_every_registered_service_declares_all_its_parts() -> None:
    plugins = services()
    assert list(plugins) == SERVICES
    for name, plugin in plugins.items():
        assert validate(plugin, name) is plugin
        assert plugin.simulator.name == name and issubclass(plugin.simulator, Simulator)
        assert plugin.settings and all(isinstance(s.from_mapping({}), s) for s in plugin.settings), name
        assert all(isinstance(f, FaultSpec) and f.description for f in plugin.faults), name
        dui = dui_side(plugin)
        assert dui is dui_sides()[name]
        assert dui.actions and dui.defects, f"{name}: a service asks something of the DUI"
        for spec in dui.actions:
            assert spec.summary and callable(spec.instruction) and callable(getattr(dui.reference, spec.method))
        assert all(d.description for d in dui.defects), name
    assert available_simulators() == {name: plugin.simulator for name, plugin in plugins.items()}


def test_the_tables_are_assembled_from_the_plugins() -> None:
    sides = dui_sides().values()
    assert ACTIONS == tuple(spec for side in sides for spec in side.actions)
    assert list(DEFECTS) == [d.name for side in sides for d in side.defects] and len(DEFECTS) == sum(
        len(side.defects) for side in sides
    )
    assert all(issubclass(ReferenceDUI, side.reference) for side in sides)
    assert issubclass(FaultyDUI, ReferenceDUI)
    endpoints = openapi()["components"]["schemas"]["Session"]["properties"]["endpoints"]["description"]
    assert endpoints.startswith("One object per simulator (dmp, eparcours, eprescription, insi, mssante, psc, tddui) ")
    from harness.runtime import pytest_plugin

    assert pytest_plugin.pytest_plugins == [
        "harness.steps.common",
        "harness.steps.dmp",
        "harness.steps.eparcours",
        "harness.steps.eprescription",
        "harness.steps.insi",
        "harness.steps.mssante",
        "harness.steps.psc",
        "harness.steps.indicateurs",
    ]


def test_every_step_module_is_shared_or_named_by_a_plugin() -> None:
    modules = {f"harness.steps.{p.stem}" for p in (REPO / "harness" / "steps").glob("*.py") if p.stem != "__init__"}
    assert modules == set(SHARED_STEP_MODULES) | {p.steps for p in services().values()}


@pytest.mark.parametrize(
    "sut", ["reference", "faulty:xdm-hash-faux", "http:http://dui.test", "manual", "observe:2026-01-01/2026-01-02"]
)
def test_every_driver_answers_every_action_of_the_plugins(sut: str) -> None:
    driver = make_driver(sut)
    for spec in ACTIONS:
        assert callable(getattr(driver, spec.method)), (sut, spec.method)


def test_faulty_dui_names_the_unknown_defect() -> None:
    with pytest.raises(ValueError, match=r"^défaut inconnu / unknown defect: pas-un-defaut \(disponibles"):
        make_driver("faulty:pas-un-defaut")


def _fault_kinds_taken(package: Path) -> set[str]:
    """The fault kinds a simulator package takes from the board (``take_fault("kind")``, or
    ``simulated_unavailability(ctx, kind)`` for the FHIR services; the kind literal or a module constant)."""
    kinds: set[str] = set()
    trees = [ast.parse(module.read_text(encoding="utf-8")) for module in package.rglob("*.py")]
    constants = {  # module-level string constants of the package (FAULT_DOWN = "psc.down")
        t.id: node.value.value
        for tree in trees
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            if getattr(node.func, "attr", None) == "take_fault" and node.args:
                arg = node.args[0]
            elif getattr(node.func, "id", None) == "simulated_unavailability" and len(node.args) > 1:
                arg = node.args[1]  # harness.fhir.server.simulated_unavailability(ctx, kind) takes it for the service
            else:
                continue
            kinds.add(arg.value if isinstance(arg, ast.Constant) else constants[arg.id])
    return kinds


@pytest.mark.parametrize("name", SERVICES)
def test_the_fault_catalogue_is_what_the_simulator_takes(name: str) -> None:
    declared = {f.name for f in services()[name].faults}
    assert declared == _fault_kinds_taken(REPO / "mock_services" / name)


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_declares_its_faults_for_the_host(name: str) -> None:
    """Each service's faults are named ``<service>.<fault>`` and are all in its simulator's ``fault_catalogue``, which
    ``/_harness/faults`` lists and injects (a former name, such as TDDUI's ``fhir.reply``, is only an alias)."""
    plugin = services()[name]
    named = {f.name for f in plugin.faults if f.name.startswith(f"{name}.")}
    assert set(plugin.simulator.fault_catalogue) == named != set()
    assert [f.name for f in plugin.faults if f.name not in named] == (["fhir.reply"] if name == "tddui" else [])


def test_the_steps_inject_only_declared_faults() -> None:
    catalogue = {name: {f.name for f in p.faults} for name, p in services().items()}
    pattern = re.compile(r'SERVICE, Fault\("([a-z_.-]+)"')
    for plugin in services().values():
        source = (REPO / (plugin.steps.replace(".", "/") + ".py")).read_text(encoding="utf-8")
        service = re.search(r'^SERVICE = "([a-z]+)"', source, re.M)
        for kind in pattern.findall(source):
            assert service is not None and kind in catalogue[service.group(1)], (plugin.steps, kind)


def test_simulator_modules_never_import_the_upper_layers() -> None:
    """Only a service's ``plugin.py`` (its composition root, loaded by entry point), its ``dui_side.py`` (the DUI
    side that ``plugin.py`` imports when asked for) and the DUI-side and step modules its plugin names see the
    layers above the simulators; no other simulator module imports a plugin or a DUI side."""
    upper = ("harness.sut", "harness.steps", "harness.runtime", "harness.front", "harness.analytics", "harness.reports")
    above = {p.steps for p in services().values()} | {side.reference.__module__ for side in dui_sides().values()}
    for module in (REPO / "mock_services").rglob("*.py"):
        name = ".".join(module.relative_to(REPO).with_suffix("").parts)
        if module.name in ("plugin.py", "dui_side.py") or name in above:
            continue
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {m for m in imported if m.startswith(upper) or m.endswith((".plugin", ".dui_side"))}, module


# -- validation of a plugin, as pluggy validates hook implementations ------------------------------------------
class EchoSimulator(Simulator):
    name = "echo"
    title = "Écho"


class DeafEchoSimulator(EchoSimulator):
    fault_catalogue = {"echo.sourd": "n'entend rien"}


class MuteEchoSimulator(EchoSimulator):
    fault_catalogue = {"muet": "n'écrit rien"}


@dataclass(frozen=True)
class EchoSettings:
    @classmethod
    def from_mapping(cls, raw: dict) -> EchoSettings:
        return cls()


@dataclass(frozen=True)
class EchoAsk:
    text: str


@dataclass(frozen=True)
class EchoData:
    text: str = fact("the text repeated", example="bonjour")


@dataclass(frozen=True)
class EchoDataUndeclared:
    text: str = ""  # not declared with fact(): no description, no example


@dataclass(frozen=True)
class EchoDataUntyped:
    when: complex = fact("a type JSON cannot carry", example=0)


@dataclass(frozen=True)
class EchoDataEmpty:
    pass


class EchoActions:
    def has(self, defect: str) -> bool:
        raise NotImplementedError

    def echo(self, action: EchoAsk) -> ActionResult:
        return ActionResult(ActionStatus.DONE, action.text)


ECHO = ServicePlugin(
    name="echo",
    title="Écho",
    simulator=EchoSimulator,
    settings=(EchoSettings,),
    faults=(FaultSpec("echo.muet", "n'écrit rien"),),
    dui=DuiSide(
        actions=(
            ActionSpec(
                "echo-ask",
                "echo",
                EchoAsk,
                "Echo.",
                lambda a, env: f"Répétez « {a.text} ».",
                data=EchoData,
                example=lambda s: {"text": "bonjour"},
            ),
        ),
        reference=EchoActions,
        defects=(Defect("echo-muet", "ne répète pas"),),
    ),
    steps="harness.steps.common",
)


def test_a_complete_plugin_is_loaded_beside_the_others() -> None:
    registry = load([*((n, lambda p=p: p) for n, p in services().items()), ("echo", lambda: ECHO)])
    assert list(registry)[:3] == ["dmp", "echo", "eparcours"] and registry["echo"] is ECHO


def _error(plugin: object, name: str = "echo") -> str:
    with pytest.raises(PluginError) as caught:
        validate(plugin, name)
    return str(caught.value)


PREFIX = "plugin de service « echo » / service plugin 'echo': "


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (replace(ECHO, steps=None), "part 'steps' is missing"),
        (replace(ECHO, dui=None), "part 'dui' is missing"),
        (replace(ECHO, simulator=object), "simulator must be a Simulator subclass, not <class 'object'>"),
        (replace(ECHO, name="autre"), "declares the name 'autre' but is registered as 'echo'"),
        (replace(ECHO, settings=EchoSettings), "settings must be a tuple of type, not type"),
        (replace(ECHO, settings=(object,)), "settings type object has no from_mapping(mapping) constructor"),
        (replace(ECHO, faults=("echo.muet",)), "faults must hold FaultSpec only, found 'echo.muet'"),
        (replace(ECHO, faults=ECHO.faults * 2), "fault 'echo.muet' is declared twice"),
        (
            replace(ECHO, simulator=DeafEchoSimulator),
            "faults must hold the simulator's fault_catalogue, missing echo.sourd",
        ),
        (
            replace(ECHO, simulator=MuteEchoSimulator, faults=(FaultSpec("muet", "n'écrit rien"),)),
            "fault_catalogue kinds are named echo.<fault>, not muet",
        ),
        (
            replace(ECHO, steps="harness.steps.inexistant"),
            "steps must name an importable module, not 'harness.steps.inexistant'",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, reference=None)),
            "dui.reference must be the reference DUI's mixin class, not None",
        ),
        (replace(ECHO, dui=replace(ECHO.dui, defects=ECHO.dui.defects * 2)), "defect 'echo-muet' is declared twice"),
        (
            replace(ECHO, dui=replace(ECHO.dui, actions=(replace(ECHO.dui.actions[0], method="crier"),))),
            "action 'echo-ask': EchoActions has no method 'crier'",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, actions=(replace(ECHO.dui.actions[0], request=str),))),
            "action 'echo-ask': request must be a dataclass or None, not <class 'str'>",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, actions=(replace(ECHO.dui.actions[0], instruction="Répétez"),))),
            "action 'echo-ask': instruction must be callable",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, actions=ECHO.dui.actions * 2)),
            "action 'echo-ask' is declared twice",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, actions=(replace(ECHO.dui.actions[0], data={"text": "x"}),))),
            "action 'echo-ask': data must be a dataclass of the answer's data or None, not {'text': 'x'}",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, actions=(replace(ECHO.dui.actions[0], data=EchoDataEmpty),))),
            "action 'echo-ask': data EchoDataEmpty declares no key (use None)",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, actions=(replace(ECHO.dui.actions[0], data=EchoDataUndeclared),))),
            "action 'echo-ask': data key 'text' must be declared with fact(...)",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, actions=(replace(ECHO.dui.actions[0], data=EchoDataUntyped),))),
            "action 'echo-ask': data EchoDataUntyped has no JSON schema: no JSON schema for <class 'complex'>",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, actions=(replace(ECHO.dui.actions[0], example={"text": "x"}),))),
            "action 'echo-ask': example must be a function of the fixtures' sample",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, vocabularies=[("text", "x")])),
            "dui.vocabularies must be a mapping, not list",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, vocabularies={"EchoAsk.text": {"x": "y"}})),
            "dui.vocabularies: 'EchoAsk.text' must be (request dataclass, field name)",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, vocabularies={(EchoAsk, "texte"): {"x": "y"}})),
            "dui.vocabularies: EchoAsk has no field 'texte'",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, vocabularies={(EchoAsk, "text"): {}})),
            "dui.vocabularies: EchoAsk.text must map codes to meanings (str -> str)",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, vocabularies={(EchoAsk, "text"): {"x": 1}})),
            "dui.vocabularies: EchoAsk.text must map codes to meanings (str -> str)",
        ),
    ],
)
def test_an_incomplete_or_mistyped_plugin_is_refused_naming_it(broken: ServicePlugin, message: str) -> None:
    assert _error(broken) == PREFIX + message


def test_a_data_key_has_exactly_one_example() -> None:
    with pytest.raises(TypeError) as neither:
        fact("sans exemple")
    with pytest.raises(TypeError) as both:
        fact("deux exemples", example="a", real=lambda s: "b")
    assert str(neither.value) == str(both.value).replace("deux exemples", "sans exemple")
    assert str(neither.value) == "fact 'sans exemple': give exactly one of example= (illustrative) or real="


def test_an_entry_point_that_is_not_a_plugin_is_refused() -> None:
    assert _error(EchoSimulator) == PREFIX + "the entry point must name a ServicePlugin, not type"


def test_what_two_plugins_declare_twice_is_refused_naming_both() -> None:
    mssante = services()["mssante"]
    taken = replace(ECHO.dui.actions[0], name="mssante-send")
    cases = [
        (
            replace(ECHO, dui=replace(ECHO.dui, actions=(taken,))),
            "action 'mssante-send' is already declared by the plugin 'mssante'",
        ),
        (
            replace(ECHO, dui=replace(ECHO.dui, defects=(Defect("fin-ignore", "x"),))),
            "defect 'fin-ignore' is already declared by the plugin 'mssante'",
        ),
        (replace(ECHO, requires=("ror",)), "requires the service(s) ror, not registered"),
        (
            replace(ECHO, dui=replace(ECHO.dui, vocabularies={(MssanteSend, "document_kind"): {"X": "x"}})),
            "vocabulary of 'MssanteSend.document_kind' is already declared by the plugin 'mssante'",
        ),
    ]
    for plugin, message in cases:
        with pytest.raises(PluginError) as caught:
            check_together([mssante, plugin])
        assert str(caught.value) == PREFIX + message

    class Clashing(EchoActions):
        def _env(self) -> None: ...  # MssanteActions already has it: the composed reference DUI would pick one

    clash = replace(ECHO, dui=replace(ECHO.dui, reference=Clashing))
    with pytest.raises(PluginError) as caught:
        check_together([mssante, clash])
    assert str(caught.value) == PREFIX + "reference DUI attribute '_env' is already declared by the plugin 'mssante'"


# -- a DUI side declared by a function: resolved and checked where a DUI is driven or described ------------------
def test_a_dui_side_declared_by_a_function_is_loaded_and_checked_like_an_inline_one() -> None:
    deferred = replace(ECHO, dui=lambda: ECHO.dui)
    assert validate(deferred, "echo") is deferred
    assert dui_side(deferred) is ECHO.dui
    registry = load([*((n, lambda p=p: p) for n, p in services().items()), ("echo", lambda: deferred)])
    assert registry["echo"] is deferred


def _missing_dui() -> DuiSide:
    import harness.sut.echo_actions  # noqa: F401  (no such module)

    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("dui", "message"),
    [
        (
            _missing_dui,
            "dui: the DUI side cannot be loaded: ModuleNotFoundError: No module named 'harness.sut.echo_actions'",
        ),
        (lambda: ECHO.dui.actions, "dui must be a DuiSide, not tuple"),
        (
            lambda: replace(ECHO.dui, actions=(replace(ECHO.dui.actions[0], method="crier"),)),
            "action 'echo-ask': EchoActions has no method 'crier'",
        ),
    ],
)
def test_a_broken_deferred_dui_side_is_refused_naming_the_plugin_where_it_is_needed(dui: object, message: str) -> None:
    broken = replace(ECHO, dui=dui)
    assert validate(broken, "echo") is broken  # the service part alone is sound: serve may start it
    registry = load([("mssante", lambda: services()["mssante"]), ("echo", lambda: broken)], dui=False)
    assert registry["echo"] is broken
    for check in (lambda: dui_side(broken), lambda: load([("echo", lambda: broken)])):
        with pytest.raises(PluginError) as caught:
            check()
        assert str(caught.value) == PREFIX + message


@pytest.mark.parametrize("dui", ["mock_services.echo:DUI", EchoActions])
def test_a_dui_part_that_is_neither_a_dui_side_nor_a_function_is_refused(dui: object) -> None:
    assert _error(replace(ECHO, dui=dui)) == PREFIX + (
        f"dui must be a DuiSide or a function returning one, not {type(dui).__name__}"
    )


def test_serve_loads_the_simulators_without_the_dui_side() -> None:
    """The service host's registry (services, available_simulators) and the scenario environment import no
    reference-DUI mixin, no DUI side of a plugin and not the DUI's action types; the control API's contract
    imports them all (issue 18, cold start)."""
    dui_modules = "m.endswith(('_actions', '.dui_side')) or m == 'harness.sut.base'"
    code = (
        "import sys\n"
        "from harness.host.simulator import available_simulators\n"
        "from harness.sut.plugins import services\n"
        "import harness.runtime.environment\n"
        "services(); available_simulators()\n"
        f"print(sorted(m for m in sys.modules if {dui_modules}))\n"
        "from harness.sut.control_api import ACTIONS\n"
        "print(len(sorted(m for m in sys.modules if m.startswith('harness.sut.') and m.endswith('_actions'))))\n"
        "print(len(sorted(m for m in sys.modules if m.endswith('.dui_side'))), 'harness.sut.base' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", str(len(SERVICES)), f"{len(SERVICES)} True"]
