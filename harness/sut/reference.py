"""The built-in reference DUI and its faulty twin.

The reference DUI is an in-process client that performs every exchange the way a conformant DUI does, over
the real protocols. It is the default SUT and the harness's self-test: every scenario must pass against it,
and fail against at least one named defect of :class:`FaultyDUI`. Each capability is a mixin in its own
module (``mssante_actions.py``...) that declares its defects and checks them with :meth:`ReferenceDUI.has`.
"""

from __future__ import annotations

from types import MappingProxyType

from harness.sut.base import Defect, SutEnvironment
from harness.sut.dmp_actions import DMP_DEFECTS, DmpActions
from harness.sut.eparcours_actions import EPARCOURS_DEFECTS, EparcoursActions
from harness.sut.eprescription_actions import EPRESCRIPTION_DEFECTS, EprescriptionActions
from harness.sut.insi_actions import INSI_DEFECTS, InsiActions
from harness.sut.mssante_actions import MSSANTE_DEFECTS, MssanteActions
from harness.sut.psc_actions import PSC_DEFECTS, PscActions
from harness.sut.tddui_actions import TDDUI_DEFECTS, TdduiActions

#: Named defects the faulty DUI can switch on (``--sut faulty:<name>[,<name>]``), all capabilities together.
DEFECTS: MappingProxyType[str, Defect] = MappingProxyType(
    {
        d.name: d
        for group in (
            MSSANTE_DEFECTS,
            PSC_DEFECTS,
            INSI_DEFECTS,
            DMP_DEFECTS,
            TDDUI_DEFECTS,
            EPRESCRIPTION_DEFECTS,
            EPARCOURS_DEFECTS,
        )
        for d in group
    }
)


class ReferenceDUI(
    MssanteActions, PscActions, InsiActions, DmpActions, TdduiActions, EprescriptionActions, EparcoursActions
):
    """A DUI that does everything right."""

    name = "reference"
    defects: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.env: SutEnvironment | None = None

    def has(self, defect: str) -> bool:
        return defect in self.defects

    def setup(self, env: SutEnvironment) -> None:
        self.env = env

    def close(self) -> None:
        self.env = None


class FaultyDUI(ReferenceDUI):
    """The reference DUI with named defects switched on (see :data:`DEFECTS`)."""

    def __init__(self, defects: frozenset[str]) -> None:
        super().__init__()
        unknown = sorted(defects - set(DEFECTS))
        if unknown:
            raise ValueError(
                f"défaut inconnu / unknown defect: {', '.join(unknown)} (disponibles / available: {', '.join(DEFECTS)})"
            )
        self.defects = defects
        self.name = "faulty:" + ",".join(sorted(defects))
