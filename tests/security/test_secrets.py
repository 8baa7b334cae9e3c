"""Secrets never leave the gateway: not in logs, events, health, status, replies or check-config.

A real `anfang run` (debug logging) with an MQTT password and an encrypted
client key's passphrase, against a mosquitto requiring client certificates;
everything it says is captured and searched for the secret text. And secret
files that others may read are refused, for the password and the passphrase.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.configfile import ConfigError
from sim.broker import BrokerTls, LocalBroker
from sim.registry import driver_types
from tests.certs import make_test_pki
from tests.helpers import PREFIX, Subscriber, wait_until

PASSWORD = "pw-7Qz-NEVER-PRINT-ME"
PASSPHRASE = "pp-k3y-NEVER-PRINT-ME"
PROBE = driver_types({"sim_probe": []})    # the config below runs the simulator's probe driver


def _secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def _config(tmp_path: Path, pki, port: int, pw_mode: int = 0o600, pp_mode: int = 0o600) -> Path:
    pw = _secret_file(tmp_path / "mqtt-password", PASSWORD, pw_mode)
    pp = _secret_file(tmp_path / "key-passphrase", PASSPHRASE, pp_mode)
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f"""
[gateway]
site = "s1"
id = "gw1"
state_dir = "{tmp_path / 'state'}"

[mqtt]
url = "mqtts://127.0.0.1:{port}"
username = "gw1"
password_file = "{pw}"
health_interval_s = 1.0
reconnect_min_s = 0.05
reconnect_max_s = 0.5

[mqtt.tls]
ca_file = "{pki.ca_cert}"
cert_file = "{pki.client_cert}"
key_file = "{pki.client_key}"
key_passphrase_file = "{pp}"

[[sim_probe]]
name = "tick"
interval = 0.1
""")
    return cfg


@pytest.fixture
def pki(tmp_path_factory: pytest.TempPathFactory):
    return make_test_pki(tmp_path_factory.mktemp("pki"), client_key_passphrase=PASSPHRASE)


def test_no_secret_in_logs_events_health_status_or_replies(tmp_path: Path, pki,
                                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    broker = LocalBroker(workdir=tmp_path_factory.mktemp("sbroker"),
                         tls=BrokerTls(pki.ca_cert, pki.server_cert, pki.server_key, require_client_cert=True))
    broker.start()
    tls = {"ca_certs": str(pki.ca_cert), "certfile": str(pki.client_cert), "keyfile": str(pki.client_key),
           "keyfile_password": PASSPHRASE}
    sub = Subscriber(broker.host, broker.port, ["anfang/#"], tls=tls)
    cfg = _config(tmp_path, pki, broker.port)
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "--log-level", "debug", "run", "--sim-drivers", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: len(sub.events()) >= 10 and sub.received(f"{PREFIX}/health"), 20,
                   message=lambda: f"events and health over mTLS; have {len(sub.events())}")
        # ask for health over a command too (the reply lands on reply/health: MQTT 3.1.1-style, no response topic)
        sub.client.publish(f"{PREFIX}/cmd/health", b"{}", qos=1)
        sub.client.publish(f"{PREFIX}/cmd/ping", b'{"x": 1}', qos=1)
        wait_until(lambda: len(sub.received("/reply/")) >= 2, 10, message="command replies")
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        sub.close()
    check = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", "--sim-drivers", str(cfg)],
                           capture_output=True, text=True, timeout=60)
    broker.close()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert check.returncode == 0, check.stderr
    assert b"running with drivers" in err, "the log was captured"
    said = {"log": err.decode(errors="replace") + out.decode(errors="replace"),
            "check-config": check.stdout + check.stderr,
            "mqtt": "\n".join(m.payload.decode(errors="replace") for m in sub.received()),
            "config repr": repr(load_config(cfg, PROBE))}
    assert json.loads(sub.received(f"{PREFIX}/health")[-1].payload)["buffer"]
    assert any(json.loads(m.payload).get("command") == "health" for m in sub.received("/reply/"))
    for where, text in said.items():
        for secret in (PASSWORD, PASSPHRASE):
            assert secret not in text, f"{secret!r} appears in {where}"
            assert secret[3:-3] not in text, f"part of {secret!r} appears in {where}"


@pytest.mark.parametrize("which,key", [("password", "mqtt.password_file"),
                                       ("passphrase", "mqtt.tls.key_passphrase_file")])
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_secret_files_readable_by_others_are_refused(tmp_path: Path, pki, which: str, key: str, mode: int) -> None:
    cfg = _config(tmp_path, pki, 8883, pw_mode=mode if which == "password" else 0o600,
                  pp_mode=mode if which == "passphrase" else 0o600)
    with pytest.raises(ConfigError) as exc:
        load_config(cfg, PROBE)
    problems = [str(p) for p in exc.value.problems]
    assert len(problems) == 1 and problems[0].startswith(key), problems
    assert "readable by others" in problems[0] and "chmod 600" in problems[0]
    assert PASSWORD not in problems[0] and PASSPHRASE not in problems[0]
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", "--sim-drivers", str(cfg)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and key in r.stderr and PASSWORD not in r.stderr and PASSPHRASE not in r.stderr
