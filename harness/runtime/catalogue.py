"""The scenario catalogue as a pytest module: collected only by the runner (``socle-harness run``).

The folder comes from ``SOCLE_SCENARIOS_DIR`` (set by the runner) or the configured default.
"""

from __future__ import annotations

import os

from pytest_bdd import scenarios

from harness.core.config import HarnessConfig

scenarios(os.environ.get("SOCLE_SCENARIOS_DIR") or str(HarnessConfig().scenarios_dir))
