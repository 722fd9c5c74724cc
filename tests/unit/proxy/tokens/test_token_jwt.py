"""JWTTokenApi against tokens made with jwcrypto: signed, encrypted, expired, forged."""
import base64
import json
import pathlib
import time

import pytest
from jwcrypto import jwe, jwk, jws

from websockify.errors import ConfigError
from websockify.proxy.tokens import normalize_target
from websockify.token_plugins import JWTTokenApi

CLAIMS = {"host": "127.0.0.1", "port": 5901}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Key pairs and their files, as a deployment would have them."""
    directory = tmp_path_factory.mktemp("keys")
    made = {"rsa": jwk.JWK.generate(kty="RSA", size=2048), "ec": jwk.JWK.generate(kty="EC", crv="P-256"),
            "other_rsa": jwk.JWK.generate(kty="RSA", size=2048)}
    files = {}
    for name, key in made.items():
        files[f"{name}_private"] = directory / f"{name}_private.pem"
        files[f"{name}_private"].write_bytes(key.export_to_pem(private_key=True, password=None))
        files[f"{name}_public"] = directory / f"{name}_public.pem"
        files[f"{name}_public"].write_bytes(key.export_to_pem())
    # Upstream's fixture: the file holds the key base64url-encoded (the JWK's `k`), no newline.
    files["upstream_secret"] = directory / "symmetric.key"
    files["upstream_secret"].write_text("secret_sauce_secret_sauce_secret_sauce_secret_sauce")
    # The key jwcrypto up to 1.6.1 made of it: the last character's stray bits dropped
    # (1.6.2 refuses such a `k`, so the key is built from the decoded bytes).
    made["upstream_secret"] = jwk.JWK(kty="oct", k=b64(base64.urlsafe_b64decode(
        "secret_sauce_secret_sauce_secret_sauce_secret_sauce" + "=")))
    files["raw_secret"] = directory / "raw.key"
    files["raw_secret"].write_bytes(b"s3cr+t/with*chars that are not base64url!\n")
    made["raw_secret"] = jwk.JWK(kty="oct", k=b64(b"s3cr+t/with*chars that are not base64url!"))
    return made, {name: str(path) for name, path in files.items()}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(key, alg, claims=CLAIMS):
    token = jws.JWS(json.dumps(claims).encode())
    token.add_signature(key, alg=alg, protected=json.dumps({"alg": alg}))
    return token.serialize(compact=True)


def encrypted(key, payload: str, alg="RSA-OAEP", enc="A256GCM"):
    token = jwe.JWE(payload.encode(), protected=json.dumps({"alg": alg, "enc": enc}))
    token.add_recipient(key)
    return token.serialize(compact=True)


@pytest.mark.parametrize("key_name, source, alg", [
    ("rsa", "rsa_public", "RS256"),
    ("rsa", "rsa_private", "RS256"),  # a private key verifies too
    ("rsa", "rsa_public", "PS384"),
    ("ec", "ec_public", "ES256"),
    ("upstream_secret", "upstream_secret", "HS256"),
    ("raw_secret", "raw_secret", "HS256"),
])
def test_signed_tokens(keys, key_name, source, alg):
    made, files = keys
    plugin = JWTTokenApi(files[source])
    assert plugin.lookup(signed(made[key_name], alg)) == ("127.0.0.1", 5901)
    assert plugin.lookup(signed(made[key_name], alg, {"host": "::1", "port": "5902"})) == ("::1", "5902")


def test_a_base64url_secret_is_also_taken_as_raw_bytes(keys):
    """Most JWT libraries use the secret's bytes as the HMAC key; upstream decoded it first."""
    _, files = keys
    raw = jwk.JWK(kty="oct", k=b64(b"secret_sauce_secret_sauce_secret_sauce_secret_sauce"))
    assert JWTTokenApi(files["upstream_secret"]).lookup(signed(raw, "HS256")) == ("127.0.0.1", 5901)


def test_a_secret_that_is_no_base64url_is_still_read_as_bytes(tmp_path):
    """33 base64url characters decode to nothing (a length of 4n+1): that reading is
    refused, and the raw-bytes reading still makes the key."""
    secret = b"A" * 32 + b"B"
    (tmp_path / "odd.key").write_bytes(secret)
    raw = jwk.JWK(kty="oct", k=b64(secret))
    assert JWTTokenApi(str(tmp_path / "odd.key")).lookup(signed(raw, "HS256")) == ("127.0.0.1", 5901)


def test_time_claims(keys):
    made, files = keys
    plugin = JWTTokenApi(files["rsa_public"])
    now = int(time.time())
    cases = {
        "valid window": ({"nbf": now - 60, "exp": now + 60}, ("127.0.0.1", 5901)),
        "expired": ({"exp": now - 5}, None),
        "not yet valid": ({"nbf": now + 60}, None),
        "exp not a number": ({"exp": "tomorrow"}, None),
        "nbf a boolean": ({"nbf": True}, None),
    }
    for name, (extra, expected) in cases.items():
        assert plugin.lookup(signed(made["rsa"], "RS256", {**CLAIMS, **extra})) == expected, name


def test_forged_and_foreign_tokens_are_unknown(keys):
    made, files = keys
    rsa_plugin = JWTTokenApi(files["rsa_public"])
    assert rsa_plugin.lookup(signed(made["other_rsa"], "RS256")) is None  # another key
    assert rsa_plugin.lookup(signed(made["ec"], "ES256")) is None
    # `alg: none`, unsigned.
    header = b64(json.dumps({"alg": "none"}).encode())
    assert rsa_plugin.lookup(f"{header}.{b64(json.dumps(CLAIMS).encode())}.") is None
    # Algorithm confusion: HMAC keyed with the public key file's bytes.
    confused = jwk.JWK(kty="oct", k=b64(pathlib.Path(files["rsa_public"]).read_bytes()))
    assert rsa_plugin.lookup(signed(confused, "HS256")) is None
    # An RSA token offered to a symmetric key, and a token whose signature was altered.
    assert JWTTokenApi(files["upstream_secret"]).lookup(signed(made["rsa"], "RS256")) is None
    good = signed(made["rsa"], "RS256")
    assert rsa_plugin.lookup(good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")) is None
    # Claims without a target, and tokens that are not JWTs at all.
    assert rsa_plugin.lookup(signed(made["rsa"], "RS256", {"sub": "someone"})) is None
    for junk in ("", "abc", "a.b.c", "a.b.c.d.e", "{}", "x" * 20000, "..", "a.b.c.d.e.f"):
        assert rsa_plugin.lookup(junk) is None, junk


def test_a_signed_target_is_returned_as_claimed_and_checked_by_the_server(keys):
    """Upstream returned the claims unchecked; a direct caller gets them so, the server refuses them."""
    made, files = keys
    claimed = JWTTokenApi(files["rsa_public"]).lookup(signed(made["rsa"], "RS256", {"host": "h", "port": "remote_port"}))
    assert claimed == ("h", "remote_port")
    with pytest.raises(ValueError, match="port"):
        normalize_target(claimed)


def test_encrypted_tokens(keys):
    made, files = keys
    plugin = JWTTokenApi(files["rsa_private"])
    inner = signed(made["rsa"], "RS256")
    public = jwk.JWK.from_pem(made["rsa"].export_to_pem())
    assert plugin.lookup(encrypted(public, inner)) == ("127.0.0.1", 5901)
    assert plugin.lookup(encrypted(public, inner, "RSA-OAEP-256", "A128CBC-HS256")) == ("127.0.0.1", 5901)
    # Anyone with the public key can encrypt: the payload must be signed by the key as well.
    assert plugin.lookup(encrypted(public, json.dumps(CLAIMS))) is None
    assert plugin.lookup(encrypted(public, signed(made["other_rsa"], "RS256"))) is None
    assert plugin.lookup(encrypted(public, encrypted(public, json.dumps(CLAIMS)))) is None
    # The public key alone cannot decrypt.
    assert JWTTokenApi(files["rsa_public"]).lookup(encrypted(public, inner)) is None


def test_encrypted_with_a_symmetric_key(keys):
    made, files = keys
    key = jwk.JWK(kty="oct", k=b64(b"0123456789abcdef0123456789abcdef"))
    path = pathlib.Path(files["raw_secret"]).with_name("aes.key")
    path.write_bytes(b"0123456789abcdef0123456789abcdef")
    plugin = JWTTokenApi(str(path))
    assert plugin.lookup(encrypted(key, signed(key, "HS256"), "dir", "A256GCM")) == ("127.0.0.1", 5901)
    assert plugin.lookup(encrypted(key, signed(key, "HS256"), "A256KW", "A256GCM")) == ("127.0.0.1", 5901)


def test_rsa1_5_encryption_is_refused(keys):
    made, files = keys
    public = jwk.JWK.from_pem(made["rsa"].export_to_pem())
    inner = signed(made["rsa"], "RS256")
    token = jwe.JWE(inner.encode(), protected=json.dumps({"alg": "RSA1_5", "enc": "A256CBC-HS512"}),
                    algs=["RSA1_5", "A256CBC-HS512"])
    token.add_recipient(public)
    assert JWTTokenApi(files["rsa_private"]).lookup(token.serialize(compact=True)) is None


def test_reload_swaps_the_key(tmp_path, keys):
    made, files = keys
    source = tmp_path / "key.pem"
    source.write_bytes(pathlib.Path(files["rsa_public"]).read_bytes())
    plugin = JWTTokenApi(str(source))
    old_token, new_token = signed(made["rsa"], "RS256"), signed(made["other_rsa"], "RS256")
    assert plugin.lookup(old_token) and plugin.lookup(new_token) is None
    source.write_bytes(pathlib.Path(files["other_rsa_public"]).read_bytes())
    assert plugin.lookup(old_token), "the key is read once, not per lookup"
    plugin.reload()
    assert plugin.lookup(old_token) is None and plugin.lookup(new_token)
    source.write_text("-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match="not a key"):
        plugin.reload()
    assert plugin.lookup(new_token), "a failed reload keeps the key"


def test_a_key_file_that_does_not_exist_yet_is_waited_for(tmp_path, keys):
    """Upstream started and returned None per lookup; so do we, with `not_ready` for a 503."""
    made, files = keys
    path = tmp_path / "later.pem"
    plugin = JWTTokenApi(str(path))
    token = signed(made["rsa"], "RS256")
    assert plugin.lookup(token) is None and "does not exist" in plugin.not_ready
    path.write_bytes(open(files["rsa_public"], "rb").read())
    assert plugin.lookup(token) == ("127.0.0.1", 5901) and plugin.not_ready is None


def test_bad_key_files(tmp_path):
    (tmp_path / "unreadable").mkdir()
    with pytest.raises(ConfigError, match="cannot read key file"):
        JWTTokenApi(str(tmp_path / "unreadable"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        JWTTokenApi(str(tmp_path / "empty"))
    encrypted_pem = jwk.JWK.generate(kty="EC", crv="P-256").export_to_pem(private_key=True, password=b"pw")
    (tmp_path / "locked.pem").write_bytes(encrypted_pem)
    with pytest.raises(ConfigError, match="PEM without a passphrase"):
        JWTTokenApi(str(tmp_path / "locked.pem"))
    with pytest.raises(ConfigError, match="needs --token-source"):
        JWTTokenApi(None)


def test_a_compressed_jwe_is_refused_before_decryption(keys, monkeypatch):
    """Issue 17 item 8: `zip: DEF` made a token of a few KB inflate to megabytes."""
    made, files = keys
    plugin = JWTTokenApi(files["rsa_private"])
    public = jwk.JWK.from_pem(made["rsa"].export_to_pem())
    inner = signed(made["rsa"], "RS256")
    token = jwe.JWE(inner.encode(), protected=json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM", "zip": "DEF"}))
    token.add_recipient(public)
    compressed = token.serialize(compact=True)
    decrypted = []
    real = jwe.JWE.deserialize
    monkeypatch.setattr(jwe.JWE, "deserialize", lambda self, *args, **kw: (decrypted.append(1),
                                                                            real(self, *args, **kw))[1])
    assert plugin.lookup(compressed) is None
    assert decrypted == []  # refused from the header, nothing decrypted or inflated
    assert plugin.lookup(encrypted(public, inner)) == ("127.0.0.1", 5901)  # uncompressed still works
    assert decrypted == [1]


@pytest.mark.parametrize("header", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_a_jwe_whose_header_is_not_a_json_object_is_unknown(keys, header):
    made, files = keys
    token = ".".join([b64(header), "a", "b", "c", "d"])
    assert JWTTokenApi(files["rsa_private"]).lookup(token) is None
