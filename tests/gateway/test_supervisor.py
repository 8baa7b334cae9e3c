"""The supervisor: driver faults and stalls are reported and restarted; sd_notify; commands."""

from __future__ import annotations

import socket
from pathlib import Path

from gateway.sdnotify import SdNotifier
from sim.broker import LocalBroker
from tests.gateway.gw_helpers import RunningGateway, gateway_config, probe_orders
from tests.helpers import PREFIX, Subscriber, request, wait_until


def test_crashing_driver_is_reported_and_restarted_without_touching_others(tmp_path: Path, broker: LocalBroker) -> None:
    resources: dict = {}
    orders = probe_orders(resources, "flaky")
    cfg = gateway_config(tmp_path, broker, probes=[{"name": "flaky", "interval": 0.05}])
    sub = Subscriber(broker.host, broker.port, f"{PREFIX}/event/#")
    with RunningGateway(cfg, resources=resources) as gw:
        sub.wait_events(lambda evs: any(e["type"] == "sim_tick" for e in evs))
        orders.put(("crash", {}))
        fault = sub.wait_events(lambda evs: any(e["type"] == "driver_fault" for e in evs))
        fault = next(e for e in fault if e["type"] == "driver_fault")
        assert fault["class"] == "gateway" and fault["device"] == "sim_probe"
        assert fault["data"]["reason"] == "simulated crash" and fault["data"]["restarts"] == 1
        restarted = sub.wait_events(lambda evs: any(e["type"] == "driver_restarted" for e in evs))
        restart_seq = next(e["seq"] for e in restarted if e["type"] == "driver_restarted")
        # the new instance works: ticks after the restart
        sub.wait_events(lambda evs: any(e["type"] == "sim_tick" and e["seq"] > restart_seq for e in evs))
        assert gw.supervisor.slots[0].state == "running"
    sub.close()


def test_stalled_driver_is_detected_by_missing_progress(tmp_path: Path, broker: LocalBroker) -> None:
    resources: dict = {}
    orders = probe_orders(resources, "sleepy")
    cfg = gateway_config(tmp_path, broker, probes=[{"name": "sleepy", "interval": 0.05}])
    sub = Subscriber(broker.host, broker.port, f"{PREFIX}/event/#")
    with RunningGateway(cfg, resources=resources):
        orders.put(("stall", {}))
        evs = sub.wait_events(lambda evs: any(e["type"] == "driver_fault" for e in evs), timeout=15)
        fault = next(e for e in evs if e["type"] == "driver_fault")
        assert "no progress" in fault["data"]["reason"]
    sub.close()


def test_sd_notify_ready_status_and_watchdog(tmp_path: Path, broker: LocalBroker) -> None:
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.settimeout(5)
    notifier = SdNotifier.from_env({"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"})
    cfg = gateway_config(tmp_path / "gw", broker, probes=[{"name": "p", "interval": 0.1}])
    messages: list[str] = []

    def seen(prefix: str) -> bool:
        while True:
            try:
                listener.settimeout(0.05)
                messages.append(listener.recv(4096).decode())
            except (socket.timeout, BlockingIOError):
                break
        return any(m.startswith(prefix) or f"\n{prefix}" in m for m in messages)

    with RunningGateway(cfg, notifier=notifier):
        wait_until(lambda: seen("READY=1"), 10, message="READY=1")
        wait_until(lambda: seen("WATCHDOG=1"), 10, message="WATCHDOG=1")
        wait_until(lambda: any("STATUS=" in m and "broker connected" in m for m in messages) or seen("STATUS=broker connected"),
                   10, message="STATUS line")
    wait_until(lambda: seen("STOPPING=1"), 5, message="STOPPING=1")
    status = [m for m in messages if "STATUS=" in m]
    assert all("\n" not in m.split("STATUS=", 1)[1].strip() for m in status), "STATUS is one line"
    listener.close()


def test_no_watchdog_while_a_driver_is_stalled(tmp_path: Path, broker: LocalBroker) -> None:
    resources: dict = {}
    probe_orders(resources, "p")
    # the supervisor's own restart would hide the stall: give it a long watch interval
    cfg = gateway_config(tmp_path, broker, probes=[{"name": "p", "interval": 0.05}], watch_interval=60)
    with RunningGateway(cfg, resources=resources) as gw:
        sup = gw.supervisor
        wait_until(lambda: sup.slots[0].state == "running" and sup.healthy(), 10, message="healthy gateway")
        # a driver instance that stopped making progress makes the gateway unhealthy
        slot = sup.slots[0]
        driver = slot.driver
        with driver._health_lock:
            driver._health.last_progress -= 3600
        assert not sup.healthy()


def _request(broker: LocalBroker, name: str, payload: bytes) -> dict:
    reply = request(broker.host, broker.port, f"{PREFIX}/cmd/{name}", payload, correlation=b"corr-42")
    assert reply is not None, f"no reply to {name}"
    assert reply.properties.CorrelationData == b"corr-42"
    return reply.json()


def test_commands_answer_over_mqtt5_request_response(tmp_path: Path, broker: LocalBroker) -> None:
    cfg = gateway_config(tmp_path, broker, probes=[{"name": "p", "interval": 0.1}])
    with RunningGateway(cfg) as gw:
        wait_until(lambda: gw.supervisor.forwarder.stats.connected and "probe_count" in gw.supervisor.commands.names(),
                   10, message="commands ready")
        pong = _request(broker, "ping", b"")
        assert pong["ok"] is True and pong["result"]["version"]
        counts = _request(broker, "probe_count", b'{"device": "p"}')
        assert counts["ok"] and counts["result"]["counts"]["p"] >= 1
        unknown = _request(broker, "reboot", b"{}")
        assert unknown["ok"] is False and "unknown command 'reboot'" in unknown["error"]
        assert "ping" in unknown["error"], "the refusal lists the allowed commands"
        bad_json = _request(broker, "probe_count", b"{not json")
        assert bad_json["ok"] is False and "not JSON" in bad_json["error"]
        bad_arg = _request(broker, "probe_count", b'{"device": "p", "rm": "-rf"}')
        assert bad_arg["ok"] is False and "unknown argument" in bad_arg["error"]
        not_object = _request(broker, "ping", b"[1, 2]")
        assert not_object["ok"] is False
