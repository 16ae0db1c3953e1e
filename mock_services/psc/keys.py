"""The provider's signing keys: one RS256 (RSA 2048) and one ES256 (P-256) key, rotated on demand.

Keys are JWKs (RFC 7517) built with joserfc; ``kid`` is the RFC 7638 thumbprint. After a rotation the retired
keys stay in the published JWKS for ``grace_seconds`` so that tokens signed just before still verify
(OpenID Connect Core 1.0 §10.1.1, signing key rotation), then disappear.

Signing (:meth:`SigningKey.sign_jwt`) is the JWS compact serialisation of RFC 7515 §7.1 done directly with
``cryptography`` on the key object prepared once, the protected header segment encoded once per key: RS256 =
RSASSA-PKCS1-v1_5 with SHA-256, ES256 = ECDSA P-256 with SHA-256 and the 64-byte R || S signature (RFC 7518 §3.3,
§3.4). The token endpoint signs twice per answer; joserfc's generic path cost about a sixth of each signature.
Verification stays with joserfc (:mod:`mock_services.psc.tokens`).

The ring is replicated state (stream ``psc.keys``, :mod:`harness.core.state`): keys are generated before the
operation that installs them and travel in it as private JWKs, so that with a PostgreSQL journal every serving
process signs with the same keys and verifies the tokens the others signed.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from harness.core.state import StateHub

if TYPE_CHECKING:  # joserfc is imported with the first key built or read (issue 18: not before serve's ports answer)
    from joserfc.jwk import ECKey, KeySet, RSAKey

ALGORITHMS = ("RS256", "ES256")


@dataclass(frozen=True)
class SigningKey:
    alg: str
    key: RSAKey | ECKey
    created: float
    retired_at: float | None = None

    @property
    def kid(self) -> str:
        return str(self.key.kid)

    def public_jwk(self) -> dict[str, Any]:
        return {**self.key.as_dict(private=False), "use": "sig", "alg": self.alg}

    @functools.cached_property
    def _header_segment(self) -> bytes:
        return _b64(_json({"typ": "JWT", "alg": self.alg, "kid": self.kid})) + b"."

    def sign_jwt(self, claims: dict[str, Any]) -> str:
        """The compact JWS (RFC 7515 §7.1) of ``claims`` with header ``{"typ": "JWT", "alg", "kid"}``."""
        signing_input = self._header_segment + _b64(_json(claims))
        private = self.key.private_key
        if isinstance(private, ec.EllipticCurvePrivateKey):  # ES256: DER -> R || S, 32 bytes each
            r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            signature = private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr,call-arg]
        return (signing_input + b"." + _b64(signature)).decode("ascii")


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _generate(alg: str, now: float, rsa_bits: int) -> SigningKey:
    from joserfc.jwk import ECKey, RSAKey

    if alg == "RS256":
        key: RSAKey | ECKey = RSAKey.generate_key(rsa_bits, auto_kid=True)
    elif alg == "ES256":
        key = ECKey.generate_key("P-256", auto_kid=True)
    else:  # pragma: no cover - ALGORITHMS is closed
        raise ValueError(alg)
    return SigningKey(alg=alg, key=key, created=now)


def _imported(alg: str, jwk: Mapping[str, Any]) -> RSAKey | ECKey:
    """The key of a private JWK that another process (or an earlier snapshot) generated."""
    from joserfc.jwk import ECKey, RSAKey

    return RSAKey.import_key(jwk) if alg == "RS256" else ECKey.import_key(jwk)


KEYS_STREAM = "psc.keys"  # the key ring's replicated state (harness.core.state)


class KeyRingReady(Exception):
    """An ``init`` operation found the first keys already there (another process generated them first)."""


class KeyRing:
    """Current and recently retired signing keys; thread-safe, and replicated (stream :data:`KEYS_STREAM`).

    The first keys are generated when first needed (a token signed, the JWKS published) or by :meth:`warm`, which
    the simulator runs beside the listeners once they are up: an RSA 2048 key costs tens of milliseconds that
    ``socle-harness serve`` need not spend before its ports answer (issue 18, cold start).

    Keys are drawn before the operation that installs them and travel in it as private JWKs (RFC 7517 §6.3), so
    that with a PostgreSQL journal every serving process signs with the same keys and verifies the others' tokens;
    the process that generated them keeps the key objects it built (importing an RSA private JWK checks the key,
    about a tenth of a second). Of two processes generating the first keys at once, the first appended wins and
    the other adopts them. Signing uses the caught-up local ring (the host catches up every 0.5 s, and a retired
    key stays published during the grace); a ``kid`` not found locally is looked up again after catching up."""

    def __init__(
        self,
        grace_seconds: float = 600.0,
        rsa_bits: int = 2048,
        clock: Callable[[], float] = time.time,
        state: StateHub | None = None,
    ) -> None:
        self.grace_seconds = grace_seconds
        self._rsa_bits = rsa_bits
        self._clock = clock
        self._lock = threading.Lock()
        self._first = threading.Lock()  # one generation of the first keys per process
        self._keys: list[SigningKey] = []  # empty until the first keys are generated (never empty after)
        self._built: dict[str, RSAKey | ECKey] = {}  # keys this process generated, by kid, until installed
        hub = state if state is not None else StateHub()
        self._replica = hub.replica(KEYS_STREAM, self._apply, self._reset, self.snapshot, self.restore)

    def _generate(self, op: str) -> dict[str, Any]:
        """An operation installing fresh keys for every algorithm (drawn now, carried as private JWKs)."""
        now = self._clock()
        fresh = [_generate(alg, now, self._rsa_bits) for alg in ALGORITHMS]
        with self._lock:
            self._built.update({k.kid: k.key for k in fresh})
        return {"op": op, "now": now, "keys": [{"alg": k.alg, "jwk": k.key.as_dict(private=True)} for k in fresh]}

    def _installed(self, op: Mapping[str, Any]) -> list[SigningKey]:
        """The keys of an operation (lock held): the objects built here, else imported from their JWK."""
        keys = []
        for item in op["keys"]:
            jwk, alg = item["jwk"], item["alg"]
            key = self._built.pop(jwk["kid"], None)
            if key is None:
                key = _imported(alg, jwk)
            keys.append(SigningKey(alg=alg, key=key, created=float(op["now"])))
        return keys

    def _apply(self, op: Mapping[str, Any]) -> list[str]:
        action, now = op["op"], float(op["now"])
        with self._lock:
            if action == "init":
                if self._keys:
                    raise KeyRingReady("les premières clés existent déjà / the first keys exist already")
                self._keys = self._installed(op)
            elif action == "rotate":
                fresh = self._installed(op)
                self._keys = [
                    k if k.retired_at is not None else SigningKey(k.alg, k.key, k.created, now)
                    for k in self._published(now)
                ]
                self._keys.extend(fresh)
            else:
                raise ValueError(f"opération inconnue du trousseau / unknown key-ring operation: {action}")
            return [str(item["jwk"]["kid"]) for item in op["keys"]]

    def _reset(self) -> None:
        with self._lock:
            self._keys = []

    def snapshot(self) -> list[list[Any]]:
        """The ring as JSON (harness.core.state snapshot): ``[alg, private JWK, created, retired_at]`` in order."""
        with self._lock:
            return [[k.alg, k.key.as_dict(private=True), k.created, k.retired_at] for k in self._keys]

    def restore(self, state: list[list[Any]]) -> None:
        """Replace the ring by a :meth:`snapshot` (a key held here already is kept, not imported again)."""
        with self._lock:
            held = {k.kid: k.key for k in self._keys}
            keys = []
            for alg, jwk, created, retired_at in state:
                key = held.get(jwk["kid"])
                if key is None:
                    key = self._built.pop(jwk["kid"], None)
                if key is None:
                    key = _imported(alg, jwk)
                keys.append(SigningKey(alg, key, float(created), None if retired_at is None else float(retired_at)))
            self._keys = keys

    def _ensure(self) -> None:
        """Generate the first keys if nobody did yet (here or, shared, in another process)."""
        if self._keys:
            return
        with self._first:
            self._replica.sync()
            if self._keys:
                return
            op = self._generate("init")
            try:
                self._replica.do(op)
            except KeyRingReady:  # another process was first: its keys were applied here while catching up
                with self._lock:
                    self._built.clear()

    def warm(self) -> None:
        """Generate the first keys now if nothing asked for them yet."""
        self._ensure()

    def current(self, alg: str) -> SigningKey:
        self._ensure()
        with self._lock:
            for key in reversed(self._keys):
                if key.alg == alg and key.retired_at is None:
                    return key
        raise KeyError(f"aucune clé de signature {alg}")

    def _published(self, now: float) -> list[SigningKey]:
        return [k for k in self._keys if k.retired_at is None or now - k.retired_at < self.grace_seconds]

    def _local(self) -> list[SigningKey]:
        self._ensure()
        with self._lock:
            return self._published(self._clock())

    def published(self) -> list[SigningKey]:
        self._replica.sync()
        return self._local()

    def find(self, kid: str) -> SigningKey | None:
        """The published key with this ``kid`` (retired keys past their grace period are not found); a kid unknown
        here is looked up again after catching up with the other processes' rotations."""
        for attempt in (self._local, self.published):
            for key in attempt():
                if key.kid == kid:
                    return key
            if not self._replica.shared:
                break
        return None

    def rotate(self) -> list[str]:
        """New current keys for every algorithm; the previous ones are retired (still published during the grace)."""
        self._ensure()
        kids: list[str] = self._replica.do(self._generate("rotate"))
        return kids

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.published()]}

    def public_keyset(self) -> KeySet:
        from joserfc.jwk import KeySet

        return KeySet.import_key_set(self.jwks())  # type: ignore[arg-type]
