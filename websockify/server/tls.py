"""TLS contexts for the listening port (wss://, https://) and towards the target.

Contexts start from Python's secure defaults (create_default_context: TLS 1.2
at least) and options only change the settings they name (upstream's
--ssl-version replaced the whole option set). `--ssl-version tlsv1_1` is the one
that lowers a default, and OpenSSL 3's default security level still refuses TLS
1.1 unless --ssl-ciphers lowers that too. A context is built once at start and
again on SIGHUP, for new connections only: live sessions keep the context they
were accepted with.
"""
from __future__ import annotations

import ssl
from typing import Any

from ..config import DEFAULT_CERT, TlsSettings
from ..errors import ConfigError

MIN_VERSIONS = {
    "default": None,
    "tlsv1_1": ssl.TLSVersion.TLSv1_1,
    "tlsv1_2": ssl.TLSVersion.TLSv1_2,
    "tlsv1_3": ssl.TLSVersion.TLSv1_3,
}


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = getattr(exc, "reason", None) or str(exc)
    return str(text).lower().replace("_", " ")


class _KeyIsEncrypted(Exception):
    pass


def _no_password() -> str:
    raise _KeyIsEncrypted()


def _is_encrypted(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            return b"ENCRYPTED" in file.read(1 << 20)
    except OSError:
        return False


def _default_cert_missing(option: str, path: str, exc: OSError) -> str:
    """The user named no certificate: say which option wanted one, and where we looked."""
    state = "does not exist" if isinstance(exc, FileNotFoundError) else f"cannot be read: {_reason(exc)}"
    return (f"{option} needs a certificate: no --cert given, and the default, {DEFAULT_CERT} in the "
            f"working directory ({path}), {state}")


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """Build the listening side's context; ConfigError (exit 2) names what is wrong."""
    assert settings.cert is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    for path, what in ((settings.cert, "certificate"), (settings.key, "key")):
        if path is None:
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            if what == "certificate" and settings.default_cert_for is not None:
                raise ConfigError(_default_cert_missing(settings.default_cert_for, path, exc)) from None
            raise ConfigError(f"cannot read {what} file {path}: {_reason(exc)}") from None
    key_file = settings.key or settings.cert
    # Without a password, OpenSSL would prompt on the terminal for an encrypted key.
    password = settings.key_password if settings.key_password is not None else _no_password
    try:
        context.load_cert_chain(settings.cert, settings.key, password)
    except _KeyIsEncrypted:
        raise ConfigError(f"the key in {key_file} is encrypted: give --key-password") from None
    except ssl.SSLError as exc:
        reason = _reason(exc)
        if "mismatch" in reason:
            raise ConfigError(f"the key does not match the certificate in {settings.cert}") from None
        if settings.key_password is not None and _is_encrypted(key_file):
            raise ConfigError(f"cannot decrypt the key in {key_file}: wrong --key-password") from None
        raise ConfigError(f"cannot load certificate {settings.cert}"
                          f"{' and key ' + settings.key if settings.key else ''}: {reason}") from None
    except OSError as exc:
        raise ConfigError(f"cannot load certificate {settings.cert}: {_reason(exc)}") from None
    minimum = MIN_VERSIONS[settings.min_version]
    if minimum is not None:
        context.minimum_version = minimum
    if settings.ciphers:
        try:
            context.set_ciphers(settings.ciphers)
        except ssl.SSLError:
            raise ConfigError(f"--ssl-ciphers: no usable cipher in {settings.ciphers!r}") from None
    if settings.verify_client:
        context.verify_mode = ssl.CERT_REQUIRED
        if settings.cafile:
            try:
                context.load_verify_locations(cafile=settings.cafile)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load --cafile {settings.cafile}: {_reason(exc)}") from None
        else:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return context


def target_context() -> ssl.SSLContext:
    """--ssl-target: verify the target against the system CAs (or SSL_CERT_FILE) and its name."""
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH)


def peer_common_name(ssl_object: ssl.SSLObject | None) -> str | None:
    if ssl_object is None:
        return None
    cert: Any = ssl_object.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
