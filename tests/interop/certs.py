"""A throwaway test CA and server certificate (openssl CLI), for the TLS interop tests."""

from __future__ import annotations

import hashlib
import ssl
import subprocess
from pathlib import Path

from relay.drivers.net import format_fingerprint


def make_ca(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A test CA and a certificate for localhost/127.0.0.1 signed by it: (ca, cert, key)."""
    ca_key, ca_cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    key, csr, cert = tmp_path / "server.key", tmp_path / "server.csr", tmp_path / "server.pem"
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
        str(ca_cert), "-days", "2", "-subj", "/CN=Relay test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca_cert, cert, key


def fingerprint(cert: Path) -> str:
    """``sha256:AB:CD:...`` of a PEM certificate, as ``openssl x509 -fingerprint`` prints it."""
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return format_fingerprint(hashlib.sha256(der).digest())
