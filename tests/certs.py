"""Test certificates made with the openssl command: a CA, server and client certificates."""
from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def _key(name: str, cwd: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", name, cwd=cwd)


def make_ca(cwd: Path, name: str) -> None:
    _key(f"{name}.key", cwd)
    _openssl("req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN={name}", cwd=cwd)


def make_cert(cwd: Path, name: str, common_name: str, ca: str, server: bool = True) -> None:
    _key(f"{name}.key", cwd)
    _openssl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={common_name}", cwd=cwd)
    ext = cwd / f"{name}.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n" if server else
                   "extendedKeyUsage=clientAuth\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", ext.name, cwd=cwd)
    (cwd / f"{name}.pem").write_text((cwd / f"{name}.crt").read_text() + (cwd / f"{name}.key").read_text())


def make_all(cwd: Path) -> Path:
    make_ca(cwd, "ca")
    make_ca(cwd, "otherca")
    make_cert(cwd, "server", "one", "ca")
    make_cert(cwd, "server2", "two", "ca")
    make_cert(cwd, "alice", "alice", "ca", server=False)
    make_cert(cwd, "mallory", "mallory", "otherca", server=False)
    _openssl("pkey", "-in", "server.key", "-aes256", "-passout", "pass:secret", "-out", "server-enc.key", cwd=cwd)
    return cwd
