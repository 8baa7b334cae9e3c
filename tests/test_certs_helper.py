"""The test PKI helper (tests/certs.py): its certificates verify with
`openssl verify`, name what TLS clients check, and work in a real mutual-TLS
handshake and against a real mosquitto."""

from __future__ import annotations

import shutil
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from tests.certs import TestPki, issue_cert, make_ca, make_test_pki

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=30)


def test_certificates_verify_against_the_ca(pki: TestPki) -> None:
    for purpose, cert in (("sslserver", pki.server_cert), ("sslclient", pki.client_cert)):
        r = openssl("verify", "-CAfile", pki.ca_cert, "-purpose", purpose, cert)
        assert r.returncode == 0 and r.stdout.strip().endswith(": OK"), r.stdout + r.stderr
    # and the server certificate is not good for a client, nor the other way round
    r = openssl("verify", "-CAfile", pki.ca_cert, "-purpose", "sslclient", pki.server_cert)
    assert r.returncode != 0


def test_server_certificate_names_loopback(pki: TestPki) -> None:
    r = openssl("verify", "-CAfile", pki.ca_cert, "-verify_ip", "127.0.0.1", pki.server_cert)
    assert r.returncode == 0, r.stdout + r.stderr
    r = openssl("verify", "-CAfile", pki.ca_cert, "-verify_hostname", "localhost", pki.server_cert)
    assert r.returncode == 0, r.stdout + r.stderr
    r = openssl("verify", "-CAfile", pki.ca_cert, "-verify_ip", "10.1.2.3", pki.server_cert)
    assert r.returncode != 0


def test_client_certificate_carries_its_name(pki: TestPki) -> None:
    r = openssl("x509", "-in", pki.client_cert, "-noout", "-subject")
    assert f"CN = {pki.client_name}" in r.stdout


def test_private_keys_are_mode_0600(pki: TestPki) -> None:
    for key in (pki.ca_key, pki.server_key, pki.client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_another_ca_does_not_verify(pki: TestPki, tmp_path: Path) -> None:
    rogue_ca = make_ca(tmp_path, "rogue-ca")
    rogue = issue_cert(rogue_ca, tmp_path, "intruder", "client")
    r = openssl("verify", "-CAfile", pki.ca_cert, rogue.cert)
    assert r.returncode != 0


def _serve_once(pki: TestPki, result: dict[str, object]) -> tuple[socket.socket, threading.Thread]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    ctx.load_verify_locations(pki.ca_cert)
    ctx.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                peer = tls.getpeercert()
                result["peer_cn"] = dict(x[0] for x in peer["subject"])["commonName"]
                tls.sendall(b"hello")
        except (ssl.SSLError, OSError) as exc:
            result["error"] = exc

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return listener, t


@pytest.mark.parametrize("server_name", ["127.0.0.1", "localhost"])
def test_mutual_tls_handshake(tmp_path: Path, server_name: str) -> None:
    pki = make_test_pki(tmp_path, client_key_passphrase="s3cret")
    result: dict[str, object] = {}
    listener, t = _serve_once(pki, result)
    try:
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(pki.client_cert, pki.client_key, password=pki.client_key_passphrase)
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                assert tls.recv(5) == b"hello"
        t.join(timeout=10)
    finally:
        listener.close()
    assert result.get("peer_cn") == pki.client_name, result


def test_encrypted_client_key_needs_its_passphrase(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path, client_key_passphrase="s3cret")
    assert b"ENCRYPTED" in pki.client_key.read_bytes()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(ssl.SSLError):
        ctx.load_cert_chain(pki.client_cert, pki.client_key, password="wrong")


def test_mosquitto_accepts_the_client_certificate_and_refuses_a_rogue_one(
    pki: TestPki, tmp_path: Path
) -> None:
    paho = pytest.importorskip("paho.mqtt.client")
    from sim.broker import BrokerTls, BrokerUnavailable, LocalBroker

    rogue = issue_cert(make_ca(tmp_path, "rogue-ca"), tmp_path, "intruder", "client")
    tls = BrokerTls(ca_file=pki.ca_cert, cert_file=pki.server_cert, key_file=pki.server_key,
                    require_client_cert=True)
    try:
        (tmp_path / "broker").mkdir()
        broker = LocalBroker(tls=tls, workdir=tmp_path / "broker")
        broker.start()
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))

    def connect(cert: Path, key: Path) -> object:
        done = threading.Event()
        outcome: dict[str, object] = {}
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"t-{cert.stem}",
                        protocol=paho.MQTTv5)
        c.tls_set(ca_certs=str(pki.ca_cert), certfile=str(cert), keyfile=str(key))

        def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object = None) -> None:
            outcome["reason"] = reason
            done.set()

        def on_disconnect(_c: object, _u: object, _f: object, reason: object, _p: object = None) -> None:
            outcome.setdefault("reason", reason)   # refused after the handshake (TLS 1.3)
            done.set()

        c.on_connect = on_connect
        c.on_disconnect = on_disconnect
        try:
            c.connect(broker.host, broker.port, keepalive=10)
            c.loop_start()
            done.wait(10)
        except (ssl.SSLError, OSError) as exc:
            outcome["error"] = exc
        finally:
            c.loop_stop()
            c.disconnect()
        return outcome.get("reason", outcome.get("error"))

    try:
        ok = connect(pki.client_cert, pki.client_key)
        assert ok is not None and not getattr(ok, "is_failure", True), ok
        refused = connect(rogue.cert, rogue.key)
        assert isinstance(refused, Exception) or getattr(refused, "is_failure", False), refused
    finally:
        broker.close()
