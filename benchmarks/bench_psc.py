"""Pro Santé Connect simulator: token endpoint throughput and cold start, each against a bare Starlette baseline
measured in the same run.

Throughput. Both servers run in this process on their own uvicorn loop thread, over TLS with the same test-PKI
server certificate, and receive the same kind of request: ``POST`` form-encoded, HTTP Basic client
authentication. K client threads (one keep-alive ``httpx.Client`` each) send N requests in total.
  - simulator, ``authorization_code`` grant: N codes are obtained first (authorize + ``login_hint``, untimed),
    then the N code exchanges are timed (client authentication, PKCE S256 check, RS256 access token + id token
    signatures, journal commit before answering);
  - simulator, ``refresh_token`` grant (the same work without the code bookkeeping, plus rotation);
  - baseline: a bare Starlette endpoint that parses the form and returns a fixed JSON token response.

Cold start. Spawn ``socle-harness serve --ephemeral --service psc`` in a fresh temp folder (new PKI, journal,
signing keys) and poll until the discovery document answers 200; baseline: a bare Python process starting
uvicorn + Starlette on TLS with the same kind of certificate and serving one JSON route. Median of R runs each.

The optional comparison with ``oidc-provider`` (npm) is not done: it needs a Node.js runtime and a provider
configuration (clients, PKCE, adapters) comparable to this one, beyond a quick check.

Run from the repository root:  python benchmarks/bench_psc.py [--requests N] [--clients K] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlparse

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness.core.config import HarnessConfig
from harness.fields.pki import TestPKI
from harness.runtime.environment import SocleEnvironment

CLIENT = ("dui-reference", "dui-reference-secret-essai")
REDIRECT = "https://dui-reference.test/psc/callback"
START_TIMEOUT = 60.0


# ---------------------------------------------------------------------------------------------------------------
# baseline server
async def _bare_token(request: Request) -> JSONResponse:
    body = await request.body()
    form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    if not request.headers.get("authorization", "").startswith("Basic ") or "grant_type" not in form:
        return JSONResponse({"error": "invalid_request"}, status_code=400)
    return JSONResponse(
        {
            "access_token": "a" * 600,
            "token_type": "Bearer",
            "expires_in": 300,
            "refresh_token": "r" * 43,
            "id_token": "i" * 700,
        },
        headers={"Cache-Control": "no-store"},
    )


@contextlib.contextmanager
def bare_server(pki: TestPKI) -> Iterator[str]:
    app = Starlette(routes=[Route("/token", _bare_token, methods=["POST"])])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ssl_certfile=str(pki.server.chain_path),
        ssl_keyfile=str(pki.server.key_path),
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}/token"
    finally:
        server.should_exit = True
        thread.join(10)
        loop.close()


# ---------------------------------------------------------------------------------------------------------------
# load generation
def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _load(n: int, clients: int, ctx: ssl.SSLContext, url: str, bodies: list[dict[str, str]]) -> tuple[float, int]:
    """Send ``bodies`` to ``url`` from ``clients`` threads; returns (seconds, number of 200 answers)."""
    chunks = [bodies[i::clients] for i in range(clients)]

    def worker(chunk: list[dict[str, str]]) -> int:
        ok = 0
        with httpx.Client(verify=ctx, timeout=60) as http:
            http.post(url, data={"grant_type": "warm-up"}, auth=CLIENT)  # TLS handshake outside the timing
            barrier.wait()
            for body in chunk:
                ok += http.post(url, data=body, auth=CLIENT).status_code == 200
        return ok

    barrier = threading.Barrier(clients + 1)
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(worker, c) for c in chunks]
        barrier.wait()
        start = time.perf_counter()
        ok = sum(f.result() for f in futures)
        elapsed = time.perf_counter() - start
    return elapsed, ok


def _codes(env: SocleEnvironment, ctx: ssl.SSLContext, n: int) -> list[dict[str, str]]:
    ep = env.endpoints["psc"]
    bodies = []
    with httpx.Client(verify=ctx, timeout=60) as http:
        for _ in range(n):
            verifier, challenge = _pkce()
            r = http.get(
                ep["authorize"],
                params={
                    "client_id": CLIENT[0],
                    "redirect_uri": REDIRECT,
                    "response_type": "code",
                    "scope": "openid scope_all",
                    "acr_values": "eidas1",
                    "state": "s",
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                    "login_hint": "claire.durand",
                },
            )
            code = parse_qs(urlparse(r.headers["location"]).query)["code"][0]
            bodies.append(
                {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
            )
    return bodies


def _refresh_tokens(env: SocleEnvironment, ctx: ssl.SSLContext, n: int) -> list[dict[str, str]]:
    bodies = _codes(env, ctx, n)
    out = []
    with httpx.Client(verify=ctx, timeout=60) as http:
        for body in bodies:
            token = http.post(env.endpoints["psc"]["token"], data=body, auth=CLIENT).json()["refresh_token"]
            out.append({"grant_type": "refresh_token", "refresh_token": token})
    return out


def throughput(requests: int, clients: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-psc-"))
    env = SocleEnvironment(HarnessConfig(run_dir=work, journal=f"sqlite:///{work}/journal.sqlite", services=("psc",)))
    env.start()
    ctx = ssl.create_default_context(cafile=str(env.pki.ca_bundle_path))
    out: dict[str, Any] = {}
    try:
        with bare_server(env.pki) as bare_url:
            runs: dict[str, Callable[[], tuple[float, int]]] = {
                "baseline": lambda: _load(
                    requests,
                    clients,
                    ctx,
                    bare_url,
                    [
                        {
                            "grant_type": "authorization_code",
                            "code": "x" * 43,
                            "redirect_uri": REDIRECT,
                            "code_verifier": "v" * 64,
                        }
                    ]
                    * requests,
                ),
                "authorization_code": lambda: _load(
                    requests, clients, ctx, env.endpoints["psc"]["token"], _codes(env, ctx, requests)
                ),
                "refresh_token": lambda: _load(
                    requests, clients, ctx, env.endpoints["psc"]["token"], _refresh_tokens(env, ctx, requests)
                ),
            }
            for name, run in runs.items():
                seconds, ok = run()
                out[name] = {
                    "requests": requests,
                    "ok": ok,
                    "seconds": round(seconds, 3),
                    "rps": round(requests / seconds, 1),
                }
    finally:
        env.stop()
        shutil.rmtree(work, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------------------------------------------
# cold start
BARE_PROCESS = r"""
import json, sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from harness.fields.pki import TestPKI
from pathlib import Path
pki = TestPKI.ensure(Path(sys.argv[2]))
async def doc(request):
    return JSONResponse({"issuer": "https://127.0.0.1/bare"})
config = uvicorn.Config(Starlette(routes=[Route("/doc", doc)]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                        ssl_certfile=str(pki.server.chain_path), ssl_keyfile=str(pki.server.key_path))
uvicorn.Server(config).run()
"""


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("socle-harness")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from harness.front.cli import app; app()"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cold(kind: str) -> float:
    work = Path(tempfile.mkdtemp(prefix=f"bench-psc-cold-{kind}-"))
    ready = work / "endpoints.json"
    log = (work / "server.log").open("wb")
    try:
        if kind == "harness":
            (work / "c.toml").write_text(
                f'journal = "sqlite:///{work}/run/journal.sqlite"\nrun_dir = "{work}/run"\n', encoding="utf-8"
            )
            cmd = [
                *_cli(),
                "serve",
                "--ephemeral",
                "--service",
                "psc",
                "--endpoints-file",
                str(ready),
                "--config",
                str(work / "c.toml"),
            ]
            ca = work / "run" / "pki" / "ca-bundle.pem"
        else:
            port = _free_port()
            cmd = [sys.executable, "-c", BARE_PROCESS, str(port), str(work / "pki")]
            ca = work / "pki" / "ca-bundle.pem"
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "COLUMNS": "120"},
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{kind} exited early: {(work / 'server.log').read_text(errors='replace')[-500:]}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} not ready after {START_TIMEOUT} s")
                url = None
                if kind == "harness" and ready.exists():
                    url = json.loads(ready.read_text(encoding="utf-8"))["psc"]["wallet_discovery"]
                elif kind == "bare" and ca.exists():
                    url = f"https://127.0.0.1:{port}/doc"
                if url:
                    with contextlib.suppress(httpx.HTTPError, ssl.SSLError, OSError):
                        if (
                            httpx.get(url, verify=ssl.create_default_context(cafile=str(ca)), timeout=5).status_code
                            == 200
                        ):
                            return time.perf_counter() - start
                time.sleep(0.005)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def cold_start(repeat: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"bare": [], "harness": []}
    for _ in range(repeat):
        for kind in samples:
            samples[kind].append(_cold(kind))
    return {k: {"median_s": round(statistics.median(v), 3), "min_s": round(min(v), 3)} for k, v in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600, help="token requests per measurement (default 600)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="cold starts of each kind (default 3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 64 and args.clients <= args.requests <= 100_000 and 1 <= args.repeat <= 20):
        parser.error("1 <= clients <= 64, clients <= requests <= 100000, 1 <= repeat <= 20")
    tp = throughput(args.requests, args.clients)
    base = tp["baseline"]["rps"]
    print(
        f"Token endpoint — {args.requests} requests, {args.clients} keep-alive TLS clients, same process, same certificate"
    )
    print(f"  baseline: bare Starlette form endpoint           {base:8.1f} req/s")
    for name in ("authorization_code", "refresh_token"):
        r = tp[name]
        print(
            f"  PSC simulator, grant_type={name:<19} {r['rps']:8.1f} req/s  ({r['rps'] / base:.0%} of baseline, "
            f"{r['ok']}/{r['requests']} answered 200)"
        )
    cs = cold_start(args.repeat)
    print(f"Cold start to the first 200 — median of {args.repeat}, fresh temp folder each (new PKI, journal, keys)")
    print(
        f"  baseline: bare python + uvicorn + Starlette (TLS)  median {cs['bare']['median_s'] * 1000:6.0f} ms  min {cs['bare']['min_s'] * 1000:6.0f} ms"
    )
    print(
        f"  socle-harness serve --service psc (discovery)     median {cs['harness']['median_s'] * 1000:6.0f} ms  min {cs['harness']['min_s'] * 1000:6.0f} ms"
    )
    print(f"  harness / baseline = {cs['harness']['median_s'] / cs['bare']['median_s']:.2f}x")
    print("  (oidc-provider from npm: not compared — needs a Node.js runtime and an equivalent provider configuration)")
    if args.json:
        args.json.write_text(
            json.dumps({"benchmark": "psc", "throughput": tp, "cold_start": cs}, indent=2), encoding="utf-8"
        )
    ok = all(tp[n]["ok"] == tp[n]["requests"] for n in tp)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
