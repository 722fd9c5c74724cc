"""TLS contexts: what each setting changes, each error a user can act on, and the
client certificate's name (a real handshake, in memory)."""
from __future__ import annotations

import dataclasses
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from certs import make_all

from websockify.config import TlsSettings
from websockify.errors import ConfigError
from websockify.server.tls import peer_common_name, server_context, target_context


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("certs")
    make_all(where)
    subprocess.run(["openssl", "pkey", "-in", "server.key", "-aes256", "-passout", "pass:secret",
                    "-out", "encrypted.key"], cwd=where, check=True, capture_output=True, timeout=60)
    return where


def settings(certs: Path, **changes: Any) -> TlsSettings:
    return dataclasses.replace(TlsSettings(cert=str(certs / "server.pem")), **changes)


def refusal(tls: TlsSettings) -> str:
    with pytest.raises(ConfigError) as caught:
        server_context(tls)
    return str(caught.value)


# -- what each setting changes ------------------------------------------------------------

def test_the_defaults_are_pythons_secure_ones(certs):
    context = server_context(settings(certs))
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2 and context.verify_mode == ssl.CERT_NONE


def test_a_minimum_version_and_ciphers_change_only_themselves(certs):
    context = server_context(settings(certs, min_version="tlsv1_3", ciphers="ECDHE+AESGCM"))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    tls12 = [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all(name.startswith("ECDHE-") and "-GCM-" in name for name in tls12)


def test_a_separate_key_file(certs):
    server_context(settings(certs, cert=str(certs / "server.crt"), key=str(certs / "server.key")))


def test_an_encrypted_key_with_its_password(certs):
    server_context(settings(certs, cert=str(certs / "server.crt"), key=str(certs / "encrypted.key"),
                            key_password="secret"))


def test_verify_client_requires_a_certificate_from_the_cafile(certs):
    context = server_context(settings(certs, verify_client=True, cafile=str(certs / "ca.pem")))
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_the_target_side_verifies_names_and_certificates():
    context = target_context()
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


# -- errors a user can act on ----------------------------------------------------------------

def test_a_missing_certificate(certs):
    assert refusal(settings(certs, cert=str(certs / "nope.pem"))) == \
        f"cannot read certificate file {certs / 'nope.pem'}: No such file or directory"


def test_a_missing_default_certificate_says_which_option_wanted_one(certs):
    message = refusal(settings(certs, cert=str(certs / "self.pem"), default_cert_for="--ssl-only"))
    assert message.startswith("--ssl-only needs a certificate: no --cert given, and the default, self.pem")
    assert message.endswith("does not exist")


def test_a_key_that_does_not_match(certs):
    message = refusal(settings(certs, cert=str(certs / "server.crt"), key=str(certs / "alice.key")))
    assert message == f"the key does not match the certificate in {certs / 'server.crt'}"


def test_an_encrypted_key_without_or_with_a_wrong_password(certs):
    tls = settings(certs, cert=str(certs / "server.crt"), key=str(certs / "encrypted.key"))
    assert refusal(tls) == f"the key in {certs / 'encrypted.key'} is encrypted: give --key-password"
    assert refusal(dataclasses.replace(tls, key_password="wrong")) == \
        f"cannot decrypt the key in {certs / 'encrypted.key'}: wrong --key-password"


def test_ciphers_that_name_nothing_usable(certs):
    assert refusal(settings(certs, ciphers="NO-SUCH-CIPHER")) == "--ssl-ciphers: no usable cipher in 'NO-SUCH-CIPHER'"


def test_an_unreadable_cafile(certs):
    message = refusal(settings(certs, verify_client=True, cafile=str(certs / "nope.pem")))
    assert message.startswith(f"cannot load --cafile {certs / 'nope.pem'}: ")


# -- the client certificate's name ---------------------------------------------------------------

def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> ssl.SSLObject:
    """Both ends of a TLS handshake through memory buffers; the server's end."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_end = server.wrap_bio(to_server, to_client, server_side=True)
    client_end = client.wrap_bio(to_client, to_server, server_hostname="localhost")
    done = {"server": False, "client": False}
    for _ in range(10):  # a handshake takes a few flights; never a loop without end
        for name, end in (("client", client_end), ("server", server_end)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        if all(done.values()):
            return server_end
    raise AssertionError("the handshake did not finish")


def client_context(certs: Path, name: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if name is not None:
        context.load_cert_chain(str(certs / f"{name}.pem"))
    return context


def test_the_client_certificates_common_name(certs):
    server = server_context(settings(certs, verify_client=True, cafile=str(certs / "ca.pem")))
    assert peer_common_name(handshake(server, client_context(certs, "alice"))) == "alice"


def test_no_tls_or_no_client_certificate_has_no_name(certs):
    assert peer_common_name(None) is None
    server = server_context(settings(certs))
    assert peer_common_name(handshake(server, client_context(certs, None))) is None
