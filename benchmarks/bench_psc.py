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

Peer comparison (issue 18 goal: PSC token endpoint >= 1x ``oidc-provider`` 9 under the same load). When ``node`` and
``npm`` are on the PATH, ``oidc-provider@9`` is installed with npm into a temporary folder (removed afterwards) and
``benchmarks/oidc_provider_server.mjs`` serves it, configured like the simulator's realm (same TLS server certificate,
client ``dui-reference`` with client_secret_basic, PKCE S256 required, scopes ``openid scope_all``, JWT access token
RS256 + id token RS256, refresh tokens rotated on every use, in-memory storage). The simulator runs as
``socle-harness serve --service psc`` in a child process too, so that each server has its own process and the client
(the same K keep-alive httpx threads in this process) loads both alike. For each grant (authorization_code
redemption, refresh_token), the two servers are measured alternately for ``--rounds`` rounds of N requests; figures:
median requests/s and the server process's CPU time per request (``/proc/<pid>/stat``, the honest measure on a
loaded machine), and the ratio harness / oidc-provider of each. Without node or npm, or if the install fails, the
reason is printed and only the harness side is measured.

Run from the repository root:
  python benchmarks/bench_psc.py [--requests N] [--clients K] [--repeat R] [--peer-requests N] [--rounds R] [--peer-only]
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
# peer comparison: the simulator (socle-harness serve, child process) against node oidc-provider 9 (child process)
PEER_SCRIPT = Path(__file__).with_name("oidc_provider_server.mjs")
PEER_PACKAGE = "oidc-provider@9"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _install_peer(folder: Path) -> tuple[Path | None, str]:
    """Install oidc-provider 9 into ``folder``; returns (script path, version) or (None, why not)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None, "node / npm absents du PATH : oidc-provider non mesuré (node and npm not found)"
    try:
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(folder), PEER_PACKAGE],
            capture_output=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"npm install {PEER_PACKAGE} impossible : {exc}"
    manifest = folder / "node_modules" / "oidc-provider" / "package.json"
    if done.returncode != 0 or not manifest.exists():
        return None, f"npm install {PEER_PACKAGE} a échoué : {done.stderr.decode(errors='replace')[-300:]}"
    script = folder / PEER_SCRIPT.name  # next to node_modules so that the import resolves
    shutil.copyfile(PEER_SCRIPT, script)
    return script, str(json.loads(manifest.read_text(encoding="utf-8"))["version"])


def _wait_file(path: Path, proc: subprocess.Popen[bytes], what: str) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if path.exists():
            with contextlib.suppress(ValueError):
                return dict(json.loads(path.read_text(encoding="utf-8")))
        if proc.poll() is not None:
            raise RuntimeError(f"{what} s'est arrêté au démarrage (code {proc.returncode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} pas prêt après {START_TIMEOUT} s")
        time.sleep(0.02)


@contextlib.contextmanager
def _child(
    cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env or None
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _code(http: httpx.Client, authorize: str, params: dict[str, str]) -> str:
    """Follow the authorization redirects (at most 6) until the client's redirect URI; returns the code."""
    response = http.get(authorize, params=params)
    for _ in range(6):
        location = response.headers.get("location", "")
        if location.startswith(REDIRECT):
            return parse_qs(urlparse(location).query)["code"][0]
        if response.status_code not in (302, 303) or not location:
            raise RuntimeError(f"autorisation refusée: {response.status_code} {response.text[:200]}")
        response = http.get(response.url.join(location))
    raise RuntimeError("trop de redirections à l'autorisation")


def _peer_bodies(
    grant: str, endpoints: dict[str, str], extra: dict[str, str], ctx: ssl.SSLContext, n: int
) -> list[dict[str, str]]:
    """N token request bodies of ``grant`` for a server (codes obtained and, for refresh, redeemed: untimed)."""
    bodies = []
    with httpx.Client(verify=ctx, timeout=60) as http:
        for _ in range(n):
            verifier, challenge = _pkce()
            params = {
                "client_id": CLIENT[0],
                "redirect_uri": REDIRECT,
                "response_type": "code",
                "scope": "openid scope_all",
                "state": "s",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                **extra,
            }
            body = {
                "grant_type": "authorization_code",
                "code": _code(http, endpoints["authorize"], params),
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            }
            if grant == "refresh_token":
                answer = http.post(endpoints["token"], data=body, auth=CLIENT)
                body = {"grant_type": "refresh_token", "refresh_token": answer.json()["refresh_token"]}
            bodies.append(body)
    return bodies


def _measure(
    proc: subprocess.Popen[bytes], url: str, ctx: ssl.SSLContext, bodies: list[dict[str, str]], clients: int
) -> dict[str, float]:
    cpu = _cpu_seconds(proc.pid)
    seconds, ok = _load(len(bodies), clients, ctx, url, bodies)
    cpu = _cpu_seconds(proc.pid) - cpu
    return {"rps": len(bodies) / seconds, "cpu_ms": cpu * 1000 / len(bodies), "ok": ok}


@contextlib.contextmanager
def _harness_child(work: Path, tree: Path | None) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str], Path]]:
    """``socle-harness serve --service psc`` in ``work`` (from source tree ``tree`` when given); yields the process,
    its PSC endpoints and its PKI folder."""
    work.mkdir(parents=True)
    (work / "c.toml").write_text(
        f'journal = "sqlite:///{work}/run/journal.sqlite"\nrun_dir = "{work}/run"\n'
        "[settings.psc]\ncode_ttl = 600\n",  # codes obtained before the timed part must outlive it
        encoding="utf-8",
    )
    ready = work / "endpoints.json"
    cmd = [*_cli(), "serve", "--ephemeral", "--service", "psc", "--endpoints-file", str(ready)]
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree is not None else None
    with _child([*cmd, "--config", str(work / "c.toml")], work, work / "serve.log", env) as proc:
        yield proc, _wait_file(ready, proc, "socle-harness serve")["psc"], work / "run" / "pki"


def peer_comparison(requests: int, clients: int, rounds: int, tree: Path | None = None) -> dict[str, Any]:
    """The simulator and oidc-provider 9 (when node is present) under the same load; see the module docstring.
    With ``tree``, the simulator served from that source tree (e.g. an export of main) is measured too."""
    work = Path(tempfile.mkdtemp(prefix="bench-psc-peer-"))
    out: dict[str, Any] = {"requests": requests, "clients": clients, "rounds": rounds}
    psc_login = {"acr_values": "eidas1", "login_hint": "claire.durand"}
    try:
        with contextlib.ExitStack() as stack:
            proc, endpoints, pki_dir = stack.enter_context(_harness_child(work / "harness", None))
            pki = TestPKI.load(pki_dir)
            ctx = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
            servers: dict[str, tuple[subprocess.Popen[bytes], dict[str, str], dict[str, str], ssl.SSLContext]] = {
                "harness": (proc, endpoints, psc_login, ctx)
            }
            if tree is not None:
                other, other_endpoints, other_pki = stack.enter_context(_harness_child(work / "tree", tree))
                other_ctx = ssl.create_default_context(cafile=str(other_pki / "ca-bundle.pem"))
                servers[f"harness@{tree.name}"] = (other, other_endpoints, psc_login, other_ctx)
            script, version = _install_peer(work / "peer")
            out["peer"] = version if script is not None else None
            if script is None:
                out["peer_missing"] = version
            else:
                ready = work / "peer-ready.json"
                cmd = ["node", str(script), "0", str(pki.server.key_path), str(pki.server.chain_path), str(ready)]
                node = stack.enter_context(_child(cmd, script.parent, work / "peer.log"))
                servers["oidc-provider"] = (node, _wait_file(ready, node, "oidc-provider"), {}, ctx)
            for grant in ("authorization_code", "refresh_token"):
                samples: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
                for _ in range(rounds):
                    for name, (child, eps, extra, tls) in servers.items():
                        bodies = _peer_bodies(grant, eps, extra, tls, requests)
                        samples[name].append(_measure(child, eps["token"], tls, bodies, clients))
                out[grant] = {
                    name: {
                        "rps": round(statistics.median(s["rps"] for s in runs), 1),
                        "cpu_ms_per_request": round(statistics.median(s["cpu_ms"] for s in runs), 3),
                        "ok": int(sum(s["ok"] for s in runs)),
                        "requests": requests * rounds,
                    }
                    for name, runs in samples.items()
                }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def print_peer(peer: dict[str, Any]) -> None:
    print(
        f"Token endpoint vs oidc-provider — {peer['requests']} requests x {peer['rounds']} rounds (alternated, median), "
        f"{peer['clients']} keep-alive TLS clients in this process, each server in its own process"
    )
    if peer.get("peer") is None:
        print(f"  {peer['peer_missing']}")
    for grant in ("authorization_code", "refresh_token"):
        row = peer[grant]
        o = row.get("oidc-provider")
        for name, r in row.items():
            line = (
                f"  grant_type={grant:<19} {name:<22} {r['rps']:7.1f} req/s {r['cpu_ms_per_request']:6.2f} ms CPU/req"
            )
            if o is not None and name != "oidc-provider":
                line += (
                    f"  | / oidc-provider {peer['peer']}: {r['rps'] / o['rps']:.2f}x req/s, "
                    f"{o['cpu_ms_per_request'] / r['cpu_ms_per_request']:.2f}x CPU efficiency"
                )
            if r["ok"] != r["requests"]:
                line += f"  (only {r['ok']}/{r['requests']} answered 200)"
            print(line)


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
    parser.add_argument("--peer-requests", type=int, default=300, help="requests per round vs oidc-provider (300)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds vs oidc-provider (default 3)")
    parser.add_argument("--peer-only", action="store_true", help="only the comparison with oidc-provider")
    parser.add_argument(
        "--tree",
        type=Path,
        default=None,
        help="also serve the simulator from this source tree (PYTHONPATH) in the comparison, e.g. an export of main",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if not (
        1 <= args.clients <= 64
        and args.clients <= min(args.requests, args.peer_requests)
        and max(args.requests, args.peer_requests) <= 100_000
        and 1 <= args.repeat <= 20
        and 1 <= args.rounds <= 20
    ):
        parser.error("1 <= clients <= 64, clients <= requests, peer-requests <= 100000, 1 <= repeat, rounds <= 20")
    figures: dict[str, Any] = {"benchmark": "psc"}
    ok = True
    if not args.peer_only:
        tp = figures["throughput"] = throughput(args.requests, args.clients)
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
        ok = all(tp[n]["ok"] == tp[n]["requests"] for n in tp)
    peer = figures["peer"] = peer_comparison(args.peer_requests, args.clients, args.rounds, args.tree)
    print_peer(peer)
    ok = ok and all(r["ok"] == r["requests"] for g in ("authorization_code", "refresh_token") for r in peer[g].values())
    if not args.peer_only:
        cs = figures["cold_start"] = cold_start(args.repeat)
        print(f"Cold start to the first 200 — median of {args.repeat}, fresh temp folder each (new PKI, journal, keys)")
        print(
            f"  baseline: bare python + uvicorn + Starlette (TLS)  median {cs['bare']['median_s'] * 1000:6.0f} ms  min {cs['bare']['min_s'] * 1000:6.0f} ms"
        )
        print(
            f"  socle-harness serve --service psc (discovery)     median {cs['harness']['median_s'] * 1000:6.0f} ms  min {cs['harness']['min_s'] * 1000:6.0f} ms"
        )
        print(f"  harness / baseline = {cs['harness']['median_s'] / cs['bare']['median_s']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
