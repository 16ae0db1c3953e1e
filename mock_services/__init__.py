"""Simulators of the national socle services, one sub-package per service.

Each sub-package exposes a :class:`harness.host.simulator.Simulator` subclass registered in the
``socle_harness.simulators`` entry-point group of ``pyproject.toml``.
"""
