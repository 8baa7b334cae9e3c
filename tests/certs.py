"""Throwaway test PKI made with the `openssl` command line: a CA, a server
certificate for 127.0.0.1 and localhost, and a client certificate (mTLS).

For the TLS tests against a real mosquitto (`sim.broker.BrokerTls`) and the
gateway's `[mqtt.tls]` settings:

    pki = make_test_pki(tmp_path / "pki")
    BrokerTls(ca_file=pki.ca_cert, cert_file=pki.server_cert, key_file=pki.server_key,
              require_client_cert=True)
    [mqtt.tls] ca_file = pki.ca_cert, cert_file = pki.client_cert, key_file = pki.client_key

`make_ca` and `issue_cert` are there for the negative cases: a second,
untrusted CA whose client certificate the broker must refuse, a server
certificate for the wrong name. Keys are EC P-256 (fast to make); private key
files are mode 0600 from the moment they exist, so they also pass the
gateway's "secret file readable by others" check.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence


class OpenSSLMissing(RuntimeError):
    """The `openssl` command is not installed (Debian: apt-get install openssl)."""


@dataclass(frozen=True)
class CertAuthority:
    name: str
    cert: Path
    key: Path


@dataclass(frozen=True)
class IssuedCert:
    name: str
    cert: Path
    key: Path
    key_passphrase: str | None = None


@dataclass(frozen=True)
class TestPki:
    """Paths of a complete test PKI (all PEM)."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_name: str                      # the client certificate's CN (mosquitto's
                                          # use_identity_as_username makes it the username)
    client_key_passphrase: str | None = None


def openssl() -> str:
    exe = shutil.which("openssl")
    if exe is None:
        raise OpenSSLMissing("the openssl command is not installed (Debian: apt-get install openssl)")
    return exe


def _run(*args: str | Path, cwd: Path) -> None:
    r = subprocess.run([openssl(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed: {r.stderr.strip()}")


def _private_file(path: Path) -> None:
    """Create (or truncate) `path` as an empty mode-0600 file, so openssl writes
    the key into a file nobody else could ever read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def _new_key(path: Path, passphrase: str | None, cwd: Path) -> None:
    _private_file(path)
    args: list[str | Path] = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                              "-out", path]
    if passphrase is not None:
        args += ["-aes-256-cbc", "-pass", f"pass:{passphrase}"]
    _run(*args, cwd=cwd)
    os.chmod(path, 0o600)


def make_ca(directory: Path, name: str = "anfang-test-ca", days: int = 30) -> CertAuthority:
    """A self-signed CA certificate and its key in `directory`, files `<name>.crt/.key`."""
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _new_key(key, None, directory)
    _run("req", "-new", "-x509", "-key", key, "-out", cert, "-days", str(days), "-sha256",
         "-subj", f"/O=anfang tests/CN={name}",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-addext", "subjectKeyIdentifier=hash", cwd=directory)
    return CertAuthority(name=name, cert=cert, key=key)


def issue_cert(ca: CertAuthority, directory: Path, name: str, kind: Literal["server", "client"], *,
               hosts: Sequence[str] = (), days: int = 30, passphrase: str | None = None) -> IssuedCert:
    """A certificate signed by `ca`: `<name>.crt` and `<name>.key` in `directory`.

    `kind` sets the extended key usage (serverAuth or clientAuth); `hosts`
    (IP addresses or DNS names) go into subjectAltName, which is what TLS
    clients check. `passphrase` encrypts the key file (AES-256).
    """
    directory.mkdir(parents=True, exist_ok=True)
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    _new_key(key, passphrase, directory)
    pass_args = ["-passin", f"pass:{passphrase}"] if passphrase is not None else []
    _run("req", "-new", "-key", key, *pass_args, "-out", csr, "-subj", f"/O=anfang tests/CN={name}",
         cwd=directory)
    sans = []
    for h in hosts:
        try:
            ipaddress.ip_address(h)
            sans.append(f"IP:{h}")
        except ValueError:
            sans.append(f"DNS:{h}")
    ext = directory / f"{name}.ext"
    lines = ["basicConstraints=critical,CA:FALSE",
             "keyUsage=critical,digitalSignature,keyEncipherment",
             f"extendedKeyUsage={'serverAuth' if kind == 'server' else 'clientAuth'}",
             "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid"]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    _run("x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
         "-out", cert, "-days", str(days), "-sha256", "-extfile", ext, cwd=directory)
    csr.unlink()
    ext.unlink()
    return IssuedCert(name=name, cert=cert, key=key, key_passphrase=passphrase)


def make_test_pki(directory: Path, *, client_name: str = "building-7",
                  server_hosts: Sequence[str] = ("127.0.0.1", "localhost", "::1"),
                  client_key_passphrase: str | None = None) -> TestPki:
    """A CA, a server certificate for `server_hosts` and a client certificate
    with CN `client_name`, all in `directory` (created if needed)."""
    openssl()  # fail early and clearly when it is missing
    ca = make_ca(directory)
    server = issue_cert(ca, directory, "server", "server", hosts=server_hosts)
    client = issue_cert(ca, directory, client_name, "client", passphrase=client_key_passphrase)
    return TestPki(ca_cert=ca.cert, ca_key=ca.key, server_cert=server.cert, server_key=server.key,
                   client_cert=client.cert, client_key=client.key, client_name=client_name,
                   client_key_passphrase=client_key_passphrase)
