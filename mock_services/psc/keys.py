"""The provider's signing keys: one RS256 (RSA 2048) and one ES256 (P-256) key, rotated on demand.

Keys are JWKs (RFC 7517) built with joserfc; ``kid`` is the RFC 7638 thumbprint. After a rotation the retired
keys stay in the published JWKS for ``grace_seconds`` so that tokens signed just before still verify
(OpenID Connect Core 1.0 §10.1.1, signing key rotation), then disappear.

Signing (:meth:`SigningKey.sign_jwt`) is the JWS compact serialisation of RFC 7515 §7.1 done directly with
``cryptography`` on the key object prepared once, the protected header segment encoded once per key: RS256 =
RSASSA-PKCS1-v1_5 with SHA-256, ES256 = ECDSA P-256 with SHA-256 and the 64-byte R || S signature (RFC 7518 §3.3,
§3.4). The token endpoint signs twice per answer; joserfc's generic path cost about a sixth of each signature.
Verification stays with joserfc (:mod:`mock_services.psc.tokens`).
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
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
    if alg == "RS256":
        key: RSAKey | ECKey = RSAKey.generate_key(rsa_bits, auto_kid=True)
    elif alg == "ES256":
        key = ECKey.generate_key("P-256", auto_kid=True)
    else:  # pragma: no cover - ALGORITHMS is closed
        raise ValueError(alg)
    return SigningKey(alg=alg, key=key, created=now)


class KeyRing:
    """Current and recently retired signing keys; thread-safe.

    The first keys are generated when first needed (a token signed, the JWKS published) or by :meth:`warm`, which
    the simulator runs beside the listeners once they are up: an RSA 2048 key costs tens of milliseconds that
    ``socle-harness serve`` need not spend before its ports answer (issue 18, cold start)."""

    def __init__(
        self, grace_seconds: float = 600.0, rsa_bits: int = 2048, clock: Callable[[], float] = time.time
    ) -> None:
        self.grace_seconds = grace_seconds
        self._rsa_bits = rsa_bits
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = []  # empty until the first keys are generated (never empty after)

    def _ensure(self) -> None:
        """Generate the first keys if they were not yet (lock held)."""
        if not self._keys:
            now = self._clock()
            self._keys = [_generate(alg, now, self._rsa_bits) for alg in ALGORITHMS]

    def warm(self) -> None:
        """Generate the first keys now if nothing asked for them yet."""
        with self._lock:
            self._ensure()

    def current(self, alg: str) -> SigningKey:
        with self._lock:
            self._ensure()
            for key in reversed(self._keys):
                if key.alg == alg and key.retired_at is None:
                    return key
        raise KeyError(f"aucune clé de signature {alg}")

    def _published(self, now: float) -> list[SigningKey]:
        return [k for k in self._keys if k.retired_at is None or now - k.retired_at < self.grace_seconds]

    def published(self) -> list[SigningKey]:
        with self._lock:
            self._ensure()
            return self._published(self._clock())

    def find(self, kid: str) -> SigningKey | None:
        """The published key with this ``kid`` (retired keys past their grace period are not found)."""
        for key in self.published():
            if key.kid == kid:
                return key
        return None

    def rotate(self) -> list[str]:
        """New current keys for every algorithm; the previous ones are retired (still published during the grace)."""
        now = self._clock()
        fresh = [_generate(alg, now, self._rsa_bits) for alg in ALGORITHMS]
        with self._lock:
            self._ensure()
            self._keys = [
                k if k.retired_at is not None else SigningKey(k.alg, k.key, k.created, now)
                for k in self._published(now)
            ]
            self._keys.extend(fresh)
        return [k.kid for k in fresh]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.published()]}

    def public_keyset(self) -> KeySet:
        return KeySet.import_key_set(self.jwks())  # type: ignore[arg-type]
