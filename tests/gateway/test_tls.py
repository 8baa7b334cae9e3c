"""TLS and mutual TLS to a real mosquitto with its own test CA."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.clock import SystemClock
from gateway.events import EventDraft
from sim.broker import BrokerTls, LocalBroker
from tests.certs import make_ca, make_test_pki
from tests.gateway.gw_helpers import RunningGateway, gateway_config
from tests.helpers import PREFIX, Subscriber, wait_until


@pytest.fixture
def pki(tmp_path_factory: pytest.TempPathFactory):
    return make_test_pki(tmp_path_factory.mktemp("pki"), client_key_passphrase="correct horse")


@pytest.fixture
def mtls_broker(pki, tmp_path_factory: pytest.TempPathFactory):
    b = LocalBroker(workdir=tmp_path_factory.mktemp("tlsbroker"),
                    tls=BrokerTls(pki.ca_cert, pki.server_cert, pki.server_key, require_client_cert=True))
    b.start()
    yield b
    b.close()


def _tls_subscriber(broker: LocalBroker, pki) -> Subscriber:
    return Subscriber(broker.host, broker.port, f"{PREFIX}/event/#",
                      tls={"ca_certs": str(pki.ca_cert), "certfile": str(pki.client_cert),
                           "keyfile": str(pki.client_key), "keyfile_password": pki.client_key_passphrase})


def _emit(gw: RunningGateway, n: int = 5) -> None:
    for i in range(n):
        gw.supervisor.store.append(EventDraft(cls="ir_beam", device="north-wall-1", type="alarm",
                                              severity="alarm", ts=SystemClock().now(), data={"i": i}))


def test_events_flow_over_mutual_tls_with_an_encrypted_client_key(tmp_path: Path, pki, mtls_broker: LocalBroker) -> None:
    passphrase = tmp_path / "key-passphrase"
    passphrase.write_text(pki.client_key_passphrase)
    passphrase.chmod(0o600)
    sub = _tls_subscriber(mtls_broker, pki)
    cfg = gateway_config(tmp_path / "gw", mtls_broker, mqtt={"tls": {
        "ca_file": str(pki.ca_cert), "cert_file": str(pki.client_cert), "key_file": str(pki.client_key),
        "key_passphrase_file": str(passphrase)}})
    with RunningGateway(cfg) as gw:
        _emit(gw)
        events = sub.wait_events(lambda evs: len([e for e in evs if e["class"] == "ir_beam"]) >= 5)
    assert [e["data"]["i"] for e in events if e["class"] == "ir_beam"] == [0, 1, 2, 3, 4]
    sub.close()


def test_without_a_client_certificate_the_gateway_keeps_events_and_says_why(tmp_path: Path, pki,
                                                                              mtls_broker: LocalBroker) -> None:
    cfg = gateway_config(tmp_path / "gw", mtls_broker, mqtt={"tls": {"ca_file": str(pki.ca_cert)}})
    with RunningGateway(cfg) as gw:
        _emit(gw, 3)
        fwd = gw.supervisor.forwarder
        wait_until(lambda: fwd.stats.last_error, 10, message="a connection error")
        assert not fwd.stats.connected
        assert gw.supervisor.store.count >= 4   # gateway_started + 3 alarms, all still on disk
        assert "broker connected" not in gw.supervisor.status_line()


def test_a_broker_certificate_from_another_ca_is_refused(tmp_path: Path, pki, mtls_broker: LocalBroker,
                                                         tmp_path_factory: pytest.TempPathFactory,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rogue = make_ca(tmp_path_factory.mktemp("rogue"), name="rogue-ca")
    # a client that trusts only the rogue CA must not talk to this broker
    monkeypatch.setenv("ANFANG_TEST_KEY_PASS", pki.client_key_passphrase)
    cfg = gateway_config(tmp_path / "gw", mtls_broker, mqtt={"tls": {
        "ca_file": str(rogue.cert), "cert_file": str(pki.client_cert), "key_file": str(pki.client_key),
        "key_passphrase_env": "ANFANG_TEST_KEY_PASS"}})
    with RunningGateway(cfg) as gw:
        fwd = gw.supervisor.forwarder
        error = wait_until(lambda: fwd.stats.last_error, 10, message="a TLS error")
        assert "certificate" in error.lower() or "ssl" in error.lower(), error
        assert fwd.stats.connects == 0
