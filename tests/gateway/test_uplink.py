"""The uplink process: the broker connection in a child process, and the in-thread option."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest

from gateway.clock import SystemClock
from gateway.driver import Emission
from gateway.forwarder import Forwarder
from gateway.lanes import TelemetryReading
from gateway.uplink import Uplink
from sim.broker import LocalBroker
from tests.gateway.gw_helpers import RunningGateway, gateway_config
from tests.gateway.test_delivery import emit_from_threads
from tests.helpers import PREFIX, Subscriber, process_alive, seq_report, wait_until

CLOCK = SystemClock()


def test_the_connection_runs_in_a_child_process_by_default(tmp_path: Path, broker: LocalBroker) -> None:
    sub = Subscriber(broker.host, broker.port, [f"{PREFIX}/event/#", f"{PREFIX}/telemetry/#"])
    with RunningGateway(gateway_config(tmp_path, broker)) as gw:
        uplink = gw.supervisor.forwarder
        assert isinstance(uplink, Uplink)
        wait_until(lambda: uplink.pid is not None, 10, message="the uplink process started")
        assert uplink.pid != os.getpid() and process_alive(uplink.pid)
        emit_from_threads(gw.supervisor.store, threads=4, per_thread=100)
        gw.supervisor.telemetry.put(TelemetryReading("fire_pump", "pump-1", CLOCK.now(), {"bar": 6.5}))
        events = sub.wait_events(lambda evs: len({e["seq"] for e in evs}) >= 401, timeout=30)
        tele = wait_until(lambda: sub.received("/telemetry/fire_pump/pump-1"), 10, message="telemetry")
        wait_until(lambda: gw.supervisor.store.count == 0, 10, message="acknowledged events deleted")
        child = uplink.pid
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert seq_report(events)[1] == []
    assert tele[0].json()["values"] == {"bar": 6.5}
    wait_until(lambda: not process_alive(child), 10, message="the uplink process gone after a clean stop")
    sub.close()


def test_a_killed_uplink_process_is_started_again_and_nothing_is_lost(
        tmp_path: Path, broker: LocalBroker, caplog: pytest.LogCaptureFixture) -> None:
    sub = Subscriber(broker.host, broker.port, f"{PREFIX}/event/#")
    cfg = gateway_config(tmp_path, broker, probes=[{"name": "p", "interval": 0.005}])
    with RunningGateway(cfg) as gw:
        uplink = gw.supervisor.forwarder
        wait_until(lambda: len(sub.received()) >= 100, 15, message="events flowing")
        first = uplink.pid
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: uplink.restarts >= 1 and uplink.pid != first and uplink.stats.connected, 15,
                   message="the uplink process started again and connected")
        target = gw.supervisor.store.last_seq + 50
        events = sub.wait_events(lambda evs: max((e["seq"] for e in evs), default=0) >= target, timeout=30)
    sub.close()
    seen, missing = seq_report(events)
    assert missing == [], f"events lost when the uplink process died: {missing[:10]}"
    assert any("uplink process exited" in r.getMessage() for r in caplog.records)


def test_a_hung_uplink_process_is_killed_and_replaced(tmp_path: Path, broker: LocalBroker,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.uplink as uplink_module
    monkeypatch.setattr(uplink_module, "SILENT_LIMIT", 1.5)
    monkeypatch.setattr(uplink_module, "CHECK_EVERY", 0.25)
    sub = Subscriber(broker.host, broker.port, f"{PREFIX}/event/#")
    with RunningGateway(gateway_config(tmp_path, broker, probes=[{"name": "p", "interval": 0.02}])) as gw:
        uplink = gw.supervisor.forwarder
        wait_until(lambda: len(sub.received()) >= 20, 15, message="events flowing")
        hung = uplink.pid
        os.kill(hung, signal.SIGSTOP)           # alive, but says nothing any more
        wait_until(lambda: uplink.restarts >= 1 and uplink.pid != hung and uplink.stats.connected, 20,
                   message="the hung uplink process replaced")
        assert not process_alive(hung)
        target = gw.supervisor.store.last_seq + 20
        events = sub.wait_events(lambda evs: max((e["seq"] for e in evs), default=0) >= target, timeout=30)
    sub.close()
    assert seq_report(events)[1] == [], "nothing lost while the uplink process hung"


def test_log_lines_of_the_uplink_process_reach_the_gateway_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    dead = LocalBroker()          # a port nobody listens on once closed
    dead.start()
    port = dead.port
    dead.close()
    cfg = gateway_config(tmp_path, dead)
    with RunningGateway(cfg) as gw:
        wait_until(lambda: gw.supervisor.forwarder.stats.last_error, 10, message="a connection error")
        wait_until(lambda: any(f"127.0.0.1:{port}" in r.getMessage() and r.name == "gateway.forwarder"
                               for r in caplog.records), 10, message="the child's warning in this log")


def test_in_thread_mode_delivers_in_order_without_a_child(tmp_path: Path, broker: LocalBroker) -> None:
    sub = Subscriber(broker.host, broker.port, f"{PREFIX}/event/#")
    with RunningGateway(gateway_config(tmp_path, broker, mqtt={"process": False})) as gw:
        assert type(gw.supervisor.forwarder) is Forwarder
        emit_from_threads(gw.supervisor.store, threads=4, per_thread=100)
        events = sub.wait_events(lambda evs: len({e["seq"] for e in evs}) >= 401, timeout=30)
    sub.close()
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert seq_report(events)[1] == []


def test_emit_many_commits_together_in_order(make_ctx) -> None:
    ctx = make_ctx("fire_pump", event_class="fire_pump")
    commits = ctx.store.commits
    events = ctx.emit_many([Emission("pump-1", "phase_loss", "alarm", {"phase": "L2"}),
                            Emission("pump-1", "not_in_auto", "warning"),
                            Emission("pump-2", "comm_loss", "warning", cls="fire_pump")])
    assert [e.seq for e in events] == [events[0].seq, events[0].seq + 1, events[0].seq + 2]
    assert [e.type for e in events] == ["phase_loss", "not_in_auto", "comm_loss"]
    assert events[0].data == {"phase": "L2"} and events[0].cls == "fire_pump"
    assert ctx.store.commits == commits + 1, "one transaction, one fsync"


def test_a_command_that_arrives_as_soon_as_the_gateway_is_online_is_answered(tmp_path: Path, broker: LocalBroker) -> None:
    """The gateway process learns that the child is connected from the child's stats, up to
    0.1 s later; a command the broker hands over before that must still get its reply."""
    from tests.helpers import request

    status = Subscriber(broker.host, broker.port, f"{PREFIX}/status")
    with RunningGateway(gateway_config(tmp_path, broker)):
        wait_until(lambda: any(m.json().get("state") == "online" for m in status.received()), 15,
                   message="the gateway's status online")
        reply = request(broker.host, broker.port, f"{PREFIX}/cmd/ping", b"{}", timeout=5.0)
    status.close()
    assert reply is not None, "no reply to a command sent right after the gateway came online"
    assert reply.json()["ok"] is True
