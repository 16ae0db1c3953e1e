"""Scenario runtime: the environment and scenario context, the pytest plugin, the catalogue, observe-only and guided modes."""
