"""MQTT 3.1.1 as an option, the last will, username/password, and the README's driver example."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.clock import SystemClock
from gateway.configfile import Problems
from gateway.events import EventDraft
from sim.broker import LocalBroker
from tests.gateway.gw_helpers import RunningGateway, gateway_config
from tests.helpers import PREFIX, Subscriber, wait_until

REPO = Path(__file__).resolve().parents[2]


def test_mqtt_311_delivers_events_and_answers_commands_on_the_reply_topic(tmp_path: Path, broker: LocalBroker) -> None:
    sub = Subscriber(broker.host, broker.port, [f"{PREFIX}/event/#", f"{PREFIX}/reply/#"])
    with RunningGateway(gateway_config(tmp_path, broker, mqtt={"protocol": "3.1.1"})) as gw:
        gw.supervisor.store.append(EventDraft(cls="patrol", device="gate", type="checkin", severity="info",
                                              ts=SystemClock().now(), data={"guard": "Wang"}))
        sub.wait_events(lambda evs: any(e["type"] == "checkin" for e in evs))
        wait_until(lambda: gw.supervisor.forwarder.stats.connected, 5)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv311)
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        pub.publish(f"{PREFIX}/cmd/ping", b"", qos=1).wait_for_publish(5)
        reply = wait_until(lambda: sub.received("/reply/ping"), 10, message="reply on reply/ping")[0]
        assert reply.json()["ok"] is True
        pub.loop_stop()
        pub.disconnect()
    sub.close()


def test_last_will_says_offline_when_the_gateway_is_killed(tmp_path: Path, broker: LocalBroker) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f'[gateway]\nsite = "s1"\nid = "gw1"\nstate_dir = "{tmp_path / "state"}"\n'
                   f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n')
    sub = Subscriber(broker.host, broker.port, f"{PREFIX}/status")
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: any(m.json()["state"] == "online" for m in sub.received("/status")), 20,
                   message="online status")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        wait_until(lambda: sub.received("/status")[-1].json()["state"] == "offline", 10,
                   message="the last will")
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()


def test_username_and_password_from_a_file(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    passwd_tool = next((p for p in ("/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd") if os.path.exists(p)), None)
    if passwd_tool is None:
        pytest.skip("mosquitto_passwd not installed")
    work = tmp_path_factory.mktemp("authbroker")
    pwfile = work / "passwd"
    subprocess.run([passwd_tool, "-c", "-b", str(pwfile), "building-7", "s3cret-pw"], check=True,
                   capture_output=True)
    pwfile.chmod(0o600)
    broker = LocalBroker(workdir=work, extra_config=f"password_file {pwfile}")
    broker._write_config = _without_anonymous(broker._write_config)  # type: ignore[method-assign]
    broker.start()
    try:
        secret = tmp_path / "mqtt-password"
        secret.write_text("s3cret-pw\n")
        secret.chmod(0o600)
        with RunningGateway(gateway_config(tmp_path / "gw", broker,
                                           mqtt={"username": "building-7", "password_file": str(secret)})) as gw:
            wait_until(lambda: gw.supervisor.forwarder.stats.connected, 10, message="authenticated connection")
        wrong = tmp_path / "wrong"
        wrong.write_text("nope")
        wrong.chmod(0o600)
        with RunningGateway(gateway_config(tmp_path / "gw2", broker,
                                           mqtt={"username": "building-7", "password_file": str(wrong)})) as gw:
            err = wait_until(lambda: gw.supervisor.forwarder.stats.last_error, 10, message="refusal")
            assert not gw.supervisor.forwarder.stats.connected
            assert "nope" not in err and "s3cret" not in err
    finally:
        broker.close()


def _without_anonymous(write_config):
    def patched() -> Path:
        conf = write_config()
        conf.write_text(conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
        return conf
    return patched


def test_the_readme_driver_example_works(tmp_path: Path, make_ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worked example in the README's "How to add a driver" runs as printed."""
    from gpiozero.pins.mock import MockFactory
    readme = (REPO / "README.md").read_text()
    code = re.search(r"```python\n(# my_doors/driver.py.*?)```", readme, re.S).group(1)
    module_path = tmp_path / "my_doors_driver.py"
    module_path.write_text(code)
    spec = importlib.util.spec_from_file_location("my_doors_driver", module_path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "my_doors_driver", module)
    spec.loader.exec_module(module)
    problems = Problems()
    config = module.DoorDriver.parse_config({"door": [{"name": "stair-a", "pin": 17}]}, problems)
    assert not problems
    bad = Problems()
    module.DoorDriver.parse_config({"door": [{"name": "x", "pin": 99, "colour": "red"}]}, bad)
    assert {p.key for p in bad.items} == {"door[0].pin", "door[0].colour"}
    factory = MockFactory()
    ctx = make_ctx("door", event_class="ir_beam", resources={"gpio_pin_factory": factory})
    driver = module.DoorDriver("door", config, ctx)
    driver.start()
    try:
        wait_until(lambda: driver.health().state == "ok", 5, message="driver running")
        factory.pin(17).drive_high()
        ev = ctx.wait_event("door_open")
        assert ev.device == "stair-a" and ev.severity == "warning"
        factory.pin(17).drive_low()
        ctx.wait_event("door_closed")
    finally:
        driver.stop()


def test_the_window_respects_the_brokers_receive_maximum(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """paho does not honour MQTT 5's Receive Maximum; the forwarder does, so a strict broker is never overrun."""
    broker = LocalBroker(workdir=tmp_path_factory.mktemp("rmbroker"), extra_config="max_inflight_messages 10")
    broker.start()
    sub = Subscriber(broker.host, broker.port, f"{PREFIX}/event/#")
    try:
        with RunningGateway(gateway_config(tmp_path, broker)) as gw:
            store = gw.supervisor.store
            for i in range(300):
                store.append(EventDraft(cls="ir_beam", device="w", type="alarm", severity="alarm",
                                        ts=SystemClock().now(), data={"i": i}))
            events = sub.wait_events(lambda evs: len({e["seq"] for e in evs}) >= 301, timeout=30)
            wait_until(lambda: gw.supervisor.forwarder.stats.window == 10 - 4, 5, message="the window in use")
            assert gw.supervisor.forwarder.stats.disconnects == 0
        assert sorted({e["seq"] for e in events}) == list(range(1, 302))
    finally:
        sub.close()
        broker.close()
