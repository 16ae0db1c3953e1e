"""The provider's signing keys: one RS256 (RSA 2048) and one ES256 (P-256) key, rotated on demand.

Keys are JWKs (RFC 7517) built with joserfc; ``kid`` is the RFC 7638 thumbprint. After a rotation the retired
keys stay in the published JWKS for ``grace_seconds`` so that tokens signed just before still verify
(OpenID Connect Core 1.0 §10.1.1, signing key rotation), then disappear.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


def _generate(alg: str, now: float, rsa_bits: int) -> SigningKey:
    if alg == "RS256":
        key: RSAKey | ECKey = RSAKey.generate_key(rsa_bits, auto_kid=True)
    elif alg == "ES256":
        key = ECKey.generate_key("P-256", auto_kid=True)
    else:  # pragma: no cover - ALGORITHMS is closed
        raise ValueError(alg)
    return SigningKey(alg=alg, key=key, created=now)


class KeyRing:
    """Current and recently retired signing keys; thread-safe."""

    def __init__(
        self, grace_seconds: float = 600.0, rsa_bits: int = 2048, clock: Callable[[], float] = time.time
    ) -> None:
        self.grace_seconds = grace_seconds
        self._rsa_bits = rsa_bits
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._keys: list[SigningKey] = [_generate(alg, now, rsa_bits) for alg in ALGORITHMS]

    def current(self, alg: str) -> SigningKey:
        with self._lock:
            for key in reversed(self._keys):
                if key.alg == alg and key.retired_at is None:
                    return key
        raise KeyError(f"aucune clé de signature {alg}")

    def _published(self, now: float) -> list[SigningKey]:
        return [k for k in self._keys if k.retired_at is None or now - k.retired_at < self.grace_seconds]

    def published(self) -> list[SigningKey]:
        with self._lock:
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
