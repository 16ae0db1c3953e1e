"""socle-harness: interoperability simulators and conformance scenarios for French DUI software."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("socle-harness")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
