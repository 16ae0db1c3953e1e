"""Simulators of the national socle services, one sub-package per service.

Each sub-package exposes a :class:`harness.host.simulator.Simulator` subclass and declares the whole service in its
``plugin.py`` (:class:`harness.sut.plugins.ServicePlugin`), registered in the ``socle_harness.services``
entry-point group of ``pyproject.toml``.
"""
