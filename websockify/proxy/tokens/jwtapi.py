"""JWTTokenApi: the token is a JWT whose claims `host` and `port` name the target.

The source is a key file: a PEM public or private key (RSA, EC, Ed25519), a
JWK in JSON, or a symmetric key. The key is read once, and again on reload()
(upstream read it for every lookup). Accepted tokens:

- JWS signed with the key, using an algorithm of the key's family only
  (HS* for a symmetric key, RS*/PS* for RSA, ES* for EC, EdDSA for OKP), so
  `alg: none` and algorithm confusion are refused;
- JWE decryptable with the same key whose payload is such a JWS (as upstream:
  a JWE alone proves nothing when anyone holding the public key can make one).

A JWE whose protected header has `zip` (compressed, DEF) is refused before
anything is decrypted: a few KB of token would inflate to megabytes.

`nbf` and `exp` are honoured, without leeway, as upstream did. A token that is
invalid, expired, not yet valid or signed with another key is an unknown
token (None). A valid one gives its claims `(host, port)` as upstream did,
unchecked: the server checks them (a malformed port is a 500).

A key file that does not exist at start is waited for, as upstream read it at
every lookup: until it appears a lookup returns None with `not_ready` set, and
the server answers 503; the key is read at the first lookup after.

A symmetric key file is read as upstream reads it, as the base64url `k` of a
JWK; its bytes as they are (a trailing newline removed) are tried too, which
is what most JWT libraries call the secret.
"""
from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import re
import time
from typing import Any

from ...errors import ConfigError
from .base import BasePlugin, TokenBackendUnavailable, missing_library, require_source, shorten, token_hint

log = logging.getLogger(__name__)

MAX_TOKEN = 16 * 1024
_COMPACT = re.compile(r"[A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]*){2,4}")
_BASE64URL = re.compile(rb"[A-Za-z0-9_\-]+")

SIGNING_ALGS = {
    "oct": ["HS256", "HS384", "HS512"],
    "RSA": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
    "EC": ["ES256", "ES384", "ES512"],
    "OKP": ["EdDSA"],
}
_CONTENT_ENCRYPTION = ["A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512", "A128GCM", "A192GCM", "A256GCM"]
_ECDH = ["ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW"]
# No RSA1_5 (padding oracle) and no PBES2 (a password KDF whose cost the token sets).
ENCRYPTION_ALGS = {
    "oct": ["dir", "A128KW", "A192KW", "A256KW", "A128GCMKW", "A192GCMKW", "A256GCMKW"] + _CONTENT_ENCRYPTION,
    "RSA": ["RSA-OAEP", "RSA-OAEP-256"] + _CONTENT_ENCRYPTION,
    "EC": _ECDH + _CONTENT_ENCRYPTION,
    "OKP": _ECDH + _CONTENT_ENCRYPTION,
}


class JWTTokenApi(BasePlugin):
    def __init__(self, src: str | None) -> None:
        super().__init__(require_source(src, "JWTTokenApi", "KEY_FILE"))
        try:
            # By name: jwcrypto is an optional extra, and ships no type stubs.
            self._jwk, self._jws, self._jwe = (importlib.import_module(f"jwcrypto.{name}")
                                               for name in ("jwk", "jws", "jwe"))
        except ImportError:
            raise missing_library("JWTTokenApi", "jwcrypto", "jwt") from None
        # (keys, key type), replaced as one by reload(); None until the key file exists.
        self._keyring: tuple[list[Any], str] | None = None
        if os.path.exists(str(self.source)):
            self._keyring = self._load()  # a key file that is there but unusable: refused at start
        else:
            self.not_ready = f"key file {self.source} does not exist"
            log.warning("--token-source %s does not exist yet: clients get 503 until it does", self.source)

    def reload(self) -> None:
        """Read the key file again; on failure (ConfigError) the old key stays."""
        self._keyring = self._load()
        self.not_ready = None

    def _keys(self) -> tuple[list[Any], str] | None:
        """The key, read at the first lookup after its file appears (None until then)."""
        if self._keyring is None and os.path.exists(str(self.source)):
            try:
                self.reload()
            except ConfigError as exc:
                raise TokenBackendUnavailable(str(exc)) from None
        return self._keyring

    def _load(self) -> tuple[list[Any], str]:
        path = str(self.source)
        try:
            with open(path, "rb") as handle:
                data = handle.read().strip()
        except OSError as exc:
            raise ConfigError(f"--token-source: cannot read key file {path}: {exc.strerror}") from None
        if not data:
            raise ConfigError(f"--token-source: key file {path} is empty")
        JWK = self._jwk.JWK
        try:
            if b"-----BEGIN" in data:
                keys = [JWK.from_pem(data)]
            elif data.startswith(b"{"):
                keys = [JWK.from_json(data)]
            else:
                keys = self._symmetric_keys(data, path)
        except ConfigError:
            raise
        except Exception as exc:  # jwcrypto and cryptography raise many types for a bad key
            raise ConfigError(f"--token-source: key file {path} is not a key JWTTokenApi can use "
                              f"(PEM without a passphrase, JWK JSON, or a symmetric key): {exc}") from None
        kty = keys[0].get("kty")
        if kty not in SIGNING_ALGS:
            raise ConfigError(f"--token-source: key file {path} holds a {kty} key; "
                              f"JWTTokenApi takes RSA, EC, OKP or symmetric keys")
        return keys, kty

    def _symmetric_keys(self, data: bytes, path: str) -> list[Any]:
        """The keys a symmetric key file may mean, each reading tried on its own.

        Upstream's reading (the file is the base64url `k`) is decoded here, leniently
        as jwcrypto did up to 1.6.1, and handed to jwcrypto in canonical form: 1.6.2
        refuses a `k` whose last character carries stray bits, and one refused
        reading must not cost the other.
        """
        readings: list[tuple[str, bytes]] = []
        if _BASE64URL.fullmatch(data) and len(data) % 4 != 1:
            readings.append(("base64url", base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))))
        readings.append(("raw bytes", data))
        keys: list[Any] = []
        refusals: list[str] = []
        for reading, secret in readings:
            try:
                keys.append(self._jwk.JWK(kty="oct", k=_b64url(secret)))
            except Exception as exc:  # as in _load
                refusals.append(f"as {reading}: {exc}")
        if not keys:
            raise ConfigError(f"--token-source: key file {path} is not a symmetric key jwcrypto accepts "
                              f"({'; '.join(refusals)})")
        longest = max(len(secret) for _, secret in readings)
        if longest < 32:  # jwcrypto refuses HMAC keys shorter than the hash
            log.warning("key file %s: a %d-byte secret is too short for HS256 (32 bytes at least); "
                        "tokens signed with it will be refused", path, longest)
        return keys

    def lookup(self, token: str) -> tuple[Any, Any] | None:
        """The claims `(host, port)` as the token has them (the server checks them), or None."""
        keyring = self._keys()
        if keyring is None:
            return None  # as upstream without its key file; `not_ready` makes it a 503
        keys, kty = keyring
        token = token.strip()
        if len(token) > MAX_TOKEN or not _COMPACT.fullmatch(token):
            return None
        if token.count(".") == 4:
            header = _protected_header(token)
            if header is None:
                return None
            if "zip" in header:
                log.info("token %s: compressed JWE (zip) refused", token_hint(token))
                return None
            inner = self._decrypt(token, keys, kty)
            if inner is None or not _COMPACT.fullmatch(inner) or inner.count(".") != 2:
                log.debug("token %s: not a JWE holding a JWS signed with the key", token_hint(token))
                return None
            token = inner
        if token.count(".") != 2:
            return None
        payload = self._verify(token, keys, kty)
        if payload is None:
            return None
        return self._target(token, payload)

    def _verify(self, token: str, keys: list[Any], kty: str) -> bytes | None:
        for key in keys:
            signed = self._jws.JWS()
            signed.allowed_algs = SIGNING_ALGS[kty]
            try:
                signed.deserialize(token)
                signed.verify(key)
            except Exception as exc:  # a forged, damaged or foreign token: all mean "unknown"
                log.debug("token %s: signature not accepted: %s", token_hint(token), shorten(exc))
                continue
            payload: bytes = signed.payload
            return payload
        return None

    def _decrypt(self, token: str, keys: list[Any], kty: str) -> str | None:
        for key in keys:
            sealed = self._jwe.JWE()
            sealed.allowed_algs = ENCRYPTION_ALGS[kty]
            try:
                sealed.deserialize(token, key)
                return bytes(sealed.payload).decode("ascii").strip()
            except Exception as exc:  # as in _verify
                log.debug("token %s: cannot decrypt: %s", token_hint(token), shorten(exc))
        return None

    def _target(self, token: str, payload: bytes) -> tuple[Any, Any] | None:
        try:
            claims = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(claims, dict):
            return None
        now = time.time()
        for name, late in (("nbf", False), ("exp", True)):
            if name in claims:
                value = claims[name]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    log.info("token %s: claim %r is not a number", token_hint(token), name)
                    return None
                if (now > value) if late else (now < value):
                    log.info("token %s: %s", token_hint(token), "expired" if late else "not valid yet")
                    return None
        if "host" not in claims or "port" not in claims:
            log.info("token %s: signed, but has no 'host' and 'port' claims", token_hint(token))
            return None
        return claims["host"], claims["port"]


def _protected_header(token: str) -> dict[str, Any] | None:
    """The JOSE header of a compact token (its first part), or None if it is not a JSON object."""
    part = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except ValueError:  # bad base64 (binascii.Error), bad UTF-8 or bad JSON
        return None
    return header if isinstance(header, dict) else None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
