"""The built-in reference DUI and its faulty twin, assembled from the service plugins.

The reference DUI is an in-process client that performs every exchange the way a conformant DUI does, over
the real protocols. It is the default SUT and the harness's self-test: every scenario must pass against it,
and fail against at least one named defect of :class:`FaultyDUI`. Each service plugin brings one capability
mixin (``harness.sut.mssante_actions.MssanteActions``...) and the defects it checks with
:meth:`ReferenceCore.has`; :func:`drivers` composes them (:mod:`harness.sut.plugins`).

``ReferenceDUI``, ``FaultyDUI`` and ``DEFECTS`` are read from this module as before; they are built when first
read, because the plugins themselves import the mixin modules of this package.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any

from harness.core.messages import bilingual
from harness.sut.base import Defect, SutEnvironment
from harness.sut.plugins import dui_sides


class ReferenceCore:
    """What the capability mixins share: the environment given at setup and the defect predicate."""

    name = "reference"
    defects: frozenset[str] = frozenset()
    #: Every action waits for the answers to all its requests (SMTP replies, HTTP responses, the HL7 relay closing
    #: its connection after its last ZAM is journaled) and never gives up early: when it returns, the journal holds
    #: all it caused (:class:`~harness.sut.base.SutDriver`). The faulty DUI does not promise it: one of its defects
    #: abandons a send after 1 s while the server may still accept the message.
    settled_on_return = True

    def __init__(self) -> None:
        self.env: SutEnvironment | None = None
        self._tls_contexts: dict[str | None, ssl.SSLContext] = {}

    def has(self, defect: str) -> bool:
        return defect in self.defects

    def setup(self, env: SutEnvironment) -> None:
        self.env = env
        self._tls_contexts = {}

    def close(self) -> None:
        self.env = None
        self._tls_contexts = {}

    def tls_context(self, certificate: str | None = None) -> ssl.SSLContext:
        """The client TLS context of the DUI: trusts the test PKI of its environment (``ca_bundle``), TLS 1.2 at
        least (RFC 8996 retires 1.0 and 1.1), and presents the client certificate ``certificate`` of the
        environment (``client_certificates``) when one is named. Built once per certificate and setup, as a DUI
        configures its TLS client once: loading the trust store and the key took 5-10 ms per action (issue 18)."""
        if self.env is None:
            raise RuntimeError("setup() must be called before any action")
        context = self._tls_contexts.get(certificate)
        if context is None:
            context = ssl.create_default_context(cafile=str(self.env.ca_bundle))
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if certificate is not None:
                if certificate not in self.env.client_certificates:
                    raise LookupError(f"certificat client {certificate} absent de l'environnement du DUI")
                cert, key = self.env.client_certificates[certificate]
                context.load_cert_chain(str(cert), str(key))
            self._tls_contexts[certificate] = context
        return context


@dataclass(frozen=True)
class Drivers:
    """The assembled reference and faulty DUI classes and every named defect (``--sut faulty:<name>[,<name>]``)."""

    reference: type[ReferenceCore]
    faulty: type[ReferenceCore]
    defects: Mapping[str, Defect]


@cache
def drivers() -> Drivers:
    """Compose the reference DUI from every plugin's mixin (in service-name order; the plugins are checked not to
    define the same attribute twice), and the faulty DUI on top of it."""
    sides = dui_sides().values()
    defects = MappingProxyType({d.name: d for side in sides for d in side.defects})
    mixins = tuple(side.reference for side in sides)
    reference = type(
        "ReferenceDUI",
        (ReferenceCore, *mixins),
        {"__doc__": "A DUI that does everything right.", "__module__": __name__},
    )

    def faulty_init(self: Any, defects_on: frozenset[str]) -> None:
        reference.__init__(self)
        unknown = sorted(defects_on - set(defects))
        if unknown:
            raise ValueError(
                bilingual("défaut inconnu", "unknown defect")
                + f": {', '.join(unknown)} ("
                + bilingual("disponibles", "available")
                + f": {', '.join(defects)})"
            )
        self.defects = defects_on
        self.name = "faulty:" + ",".join(sorted(defects_on))

    faulty = type(
        "FaultyDUI",
        (reference,),
        {
            "__doc__": "The reference DUI with named defects switched on (see ``DEFECTS``).",
            "__module__": __name__,
            "__init__": faulty_init,
            "settled_on_return": False,
        },
    )
    return Drivers(reference, faulty, defects)


def __getattr__(name: str) -> Any:
    if name == "ReferenceDUI":
        return drivers().reference
    if name == "FaultyDUI":
        return drivers().faulty
    if name == "DEFECTS":
        return drivers().defects
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
