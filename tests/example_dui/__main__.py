"""Start the example DUI test build: ``python tests/example_dui [--host 127.0.0.1] [--port 8780]``.

Then, in a second terminal, the catalogue through the control API (the example DUI's INSi authorisation number
must be declared to the simulator, see ``docs/ci.md``)::

    socle-harness run --sut http:http://127.0.0.1:8780 --config tests/example_dui/socle-harness.toml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package imports itself as ``example_dui``

import uvicorn  # noqa: E402

from example_dui import ExampleDUI  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/example_dui", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="adresse d'écoute / bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8780, help="port de l'API de pilotage / control API port")
    args = parser.parse_args(argv)
    dui = ExampleDUI()
    print(f"DUI d'exemple / example DUI: http://{args.host}:{args.port}  (Ctrl-C pour arrêter / to stop)", flush=True)
    try:
        uvicorn.run(dui.app(), host=args.host, port=args.port, log_level="warning", lifespan="off")
    finally:
        dui.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
