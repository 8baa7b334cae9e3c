"""Simulated IR beams end to end: `anfang sim` with a scenario of our own, a real broker,
the real driver on MockFactory contact pins; and the simulated receiver's contacts alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from sim.base import SimWorld, UnknownAction
from sim.ir_beam import IrBeamSim
from sim.scenario import load_scenario
from tests.helpers import Subscriber, wait_until

SCENARIO = """
description = "an intruder over the north wall, a tampered receiver"
duration = 30
[[device]]
kind = "ir_beam"
name = "nw-1"
params = { alarm_pin = 16, tamper_pin = 17, adjacent = ["nw-2"], group = "north" }
[[device]]
kind = "ir_beam"
name = "nw-2"
params = { alarm_pin = 18, tamper_pin = 19, group = "north" }
[[action]]
at = 2.0
device = "nw-1"
do = "intrude"
duration = 0.5
[[action]]
at = 3.5
device = "nw-2"
do = "intrude"
duration = 0.5
[[action]]
at = 5.0
device = "nw-2"
do = "tamper"
duration = 0.5
"""

PREFIX = "anfang/v1/sim/gw1"


def test_alarm_reaches_the_broker_through_anfang_sim_and_commands_answer(tmp_path: Path, broker: Any) -> None:
    scenario = tmp_path / "wall.toml"
    scenario.write_text(SCENARIO)
    sub = Subscriber(broker.host, broker.port, [f"{PREFIX}/event/ir_beam/#", f"{PREFIX}/reply/#", "test/reply"])
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "sim", "--scenario", str(scenario),
                             "--broker", broker.url, "--duration", "30", "--state-dir", str(tmp_path / "state")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        def events() -> list[dict[str, Any]]:
            return [m.json() for m in sub.received("/event/ir_beam/")]

        def types() -> list[tuple[str, str]]:
            return [(e["device"], e["type"]) for e in events()]

        wait_until(lambda: ("nw-2", "tamper_restore") in types(), timeout=40,
                   message=lambda: f"ir_beam events upstream; got {types()}")
        evs = events()
        alarm = next(e for e in evs if e["type"] == "alarm" and e["device"] == "nw-1")
        assert alarm["class"] == "ir_beam" and alarm["severity"] == "alarm" and alarm["site"] == "sim"
        restore = next(e for e in evs if e["type"] == "restore" and e["device"] == "nw-1")
        assert 0.4 < restore["data"]["duration_s"] < 0.7
        confirmed = next(e for e in evs if e["type"] == "intrusion_confirmed")
        assert confirmed["severity"] == "critical" and confirmed["data"]["zones"] == ["nw-1", "nw-2"]
        tamper = next(e for e in evs if e["type"] == "tamper")
        assert tamper["device"] == "nw-2" and tamper["severity"] == "alarm"

        # cmd/disarm with an MQTT 5 response topic and correlation data
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.connect(broker.host, broker.port)
        client.loop_start()
        try:
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = "test/reply"
            props.CorrelationData = b"42"
            client.publish(f"{PREFIX}/cmd/disarm", json.dumps({"group": "north"}), qos=1, properties=props)
            reply = wait_until(lambda: sub.received("test/reply"), timeout=10, message="command reply")[0]
            body = reply.json()
            assert body["ok"] is True, body
            assert [c["zone"] for c in body["result"]["changed"]] == ["nw-1", "nw-2"]
            assert reply.properties.CorrelationData == b"42"
            client.publish(f"{PREFIX}/cmd/arm", json.dumps({"zones": ["nowhere"]}), qos=1, properties=props)
            refused = wait_until(lambda: sub.received("test/reply")[1:], timeout=10, message="refusal")[0].json()
            assert refused["ok"] is False and "nowhere" in refused["error"]
        finally:
            client.loop_stop()
            client.disconnect()
        wait_until(lambda: ("nw-2", "disarmed") in types()[2:], timeout=10, message="disarmed event")
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        sub.client.loop_stop()
        sub.client.disconnect()


def test_default_scenario_has_intrusions_and_every_action_is_known() -> None:
    default = load_scenario("default")
    beams = [d for d in default.devices if d.kind == "ir_beam"]
    assert len(beams) >= 2
    names = {d.name for d in beams}
    acts = [a for a in default.actions if a.device in names]
    assert sum(a.do == "intrude" for a in acts) >= 2
    assert {a.do for a in acts} <= set(IrBeamSim.actions)
    assert {"tamper", "fog"} <= {a.do for a in acts}


def test_simulated_contacts_follow_the_actions(tmp_path: Path) -> None:
    world = SimWorld(tmp_path)
    dev = IrBeamSim("w", {"env": True}, world)
    other = IrBeamSim("v", {"contact": "no", "pull": "down"}, world)
    frag = dev.config()
    entry = frag["ir_beam"][0]
    assert frag["ir_beam_settings"] == {"pin_factory": "mock"}
    assert len({entry["alarm_pin"], entry["tamper_pin"], entry["env_pin"],
                other.config()["ir_beam"][0]["alarm_pin"]}) == 4          # no pin handed out twice
    alarm = dev.pins["alarm"]
    alarm.function = "input"
    alarm.pull = "up"
    assert alarm.state is False                       # NC contact closed: pulled to ground
    dev.start()
    try:
        dev.act("intrude", {"duration": 0.2})
        assert alarm.state is True                    # open: the pull-up wins
        wait_until(lambda: alarm.state is False, timeout=3, message="beam restored")
        dev.act("cut_cable", {})
        assert all(p.state for p in dev.pins.values())
        dev.act("intrude", {"duration": 0.1})
        dev.act("realign", {})
        assert not any(p.state for p in dev.pins.values())
        try:
            dev.act("levitate", {})
        except UnknownAction as exc:
            assert "intrude" in str(exc)
        else:
            raise AssertionError("unknown action accepted")
        no = other.pins["alarm"]
        no.function = "input"
        no.pull = "down"
        assert no.state is False                      # NO contact open, pulled down
        other.act("intrude", {"duration": 5})
        assert no.state is True
    finally:
        dev.stop()
        other.stop()
