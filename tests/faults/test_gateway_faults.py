"""Gateway-level faults from `anfang sim` scenarios: what the gateway reports, and that nothing is lost.

Each test plays a fault scenario on the real supervisor with real mosquitto
(and the fault proxy for network faults), watches the status line / health /
events while the fault lasts, lets it recover, and then checks every event the
broker delivered: each seq from 1 to the last delivered, or named by an
`events_dropped` event (or still in the buffer when the run stopped); first
deliveries in order; duplicates identical.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from gateway.clock import parse_iso_utc
from tests.faults.fault_helpers import SimInThread, assert_no_loss, probe_devices
from tests.helpers import wait_until


def test_broker_down_buffers_reports_disconnected_and_delivers_everything_after(tmp_path: Path) -> None:
    scenario = probe_devices() + """
[[action]]
at = 1.0
do = "broker_down"
until = 4.0
"""
    with SimInThread(tmp_path, scenario) as sim:
        line = sim.wait_status("broker DISCONNECTED", timeout=10)
        wait_until(lambda: sim.sup.health()["buffer"]["events"] >= 20, 10, message="a backlog during the outage")
        health = sim.sup.health()
        assert "event(s) buffered" in line
        assert health["forwarder"]["connected"] is False and health["forwarder"]["last_error"]
        assert health["buffer"]["oldest_unsent_age_s"] is not None
        sim.wait_status("broker connected", timeout=15)
        sim.wait_drained()
        assert sim.sup.health()["forwarder"]["disconnects"] >= 1
    v = sim.verdict()
    assert_no_loss(v)
    assert v.distinct >= 60 and v.dropped_named == 0


def test_network_blackhole_is_found_by_keepalive_and_nothing_is_lost(tmp_path: Path) -> None:
    scenario = probe_devices() + """
[[action]]
at = 2.0
do = "network_blackhole"
until = 15.0
"""
    with SimInThread(tmp_path, scenario) as sim:
        assert sim.run.proxy is not None, "network actions put a fault proxy between gateway and broker"
        sim.wait_status("broker connected", timeout=2)
        # packets vanish without a reset: only the MQTT keepalive (5 s here) can tell
        line = sim.wait_status("broker DISCONNECTED", timeout=16)
        assert 2.0 < sim.t() < 15.0, "the dead link must be found while the blackhole lasts"
        assert "event(s) buffered" in line
        wait_until(lambda: "no CONNACK" in sim.sup.health()["forwarder"]["last_error"]
                   or "lost" in sim.sup.health()["forwarder"]["last_error"], 10,
                   message=lambda: f"the reason in health; it says {sim.sup.health()['forwarder']['last_error']!r}")
        assert sim.sup.health()["buffer"]["oldest_unsent_age_s"] >= 3
        sim.wait_status("broker connected", timeout=20)
        sim.wait_drained()
    v = sim.verdict()
    assert_no_loss(v)
    assert v.distinct >= 150


def test_network_slow_delays_but_keeps_the_connection_and_the_order(tmp_path: Path) -> None:
    scenario = probe_devices(interval=0.1) + """
[[action]]
at = 1.0
do = "network_slow"
latency = 1.5
until = 6.0
"""
    with SimInThread(tmp_path, scenario) as sim:
        wait_until(lambda: sim.t() > 4.0, 10)
        health = sim.sup.health()
        assert health["forwarder"]["connected"] is True, "seconds of latency are not a dead link"
        assert health["buffer"]["events"] >= 5, "events wait for their PUBACK while the link is slow"
        wait_until(lambda: sim.t() > 6.5, 10)
        sim.wait_drained()
        assert sim.sup.health()["forwarder"]["disconnects"] == 0
    delays = [t - sim.run.started for t, e in sim.out.items if e["type"] == "sim_tick"]
    v = sim.verdict()
    assert_no_loss(v)
    # the subscriber is not behind the proxy: an event is late by the proxy's latency one way
    lateness = [(t - parse_iso_utc(e["ts"]).timestamp()) for t, e in _wall_items(sim)]
    assert max(lateness) >= 1.4 and delays


def _wall_items(sim: SimInThread) -> list[tuple[float, dict]]:
    offset = time.time() - time.monotonic()
    return [(t + offset, e) for t, e in sim.out.items]


def test_network_reset_reconnects_and_resends_from_the_oldest_unacknowledged(tmp_path: Path) -> None:
    scenario = probe_devices(interval=0.02) + """
[[action]]
at = 1.0
do = "network_reset"
until = 3.0
"""
    with SimInThread(tmp_path, scenario) as sim:
        wait_until(lambda: sim.sup.health()["forwarder"]["disconnects"] >= 1, 10, message="a reset seen")
        assert sim.run.proxy.resets >= 1
        wait_until(lambda: sim.t() > 3.2, 10)
        sim.wait_status("broker connected", timeout=15)
        sim.wait_drained()
        health = sim.sup.health()
        assert health["forwarder"]["connects"] >= 2
        assert "lost" in health["forwarder"]["last_error"] or "cannot reach" in health["forwarder"]["last_error"] \
            or "refused" in health["forwarder"]["last_error"]
    v = sim.verdict()
    assert_no_loss(v)
    assert v.distinct >= 100


def test_wall_clock_stepped_forward_and_back_changes_ts_only(tmp_path: Path) -> None:
    scenario = probe_devices(interval=0.05) + """
[[action]]
at = 1.0
do = "clock_step"
seconds = 3600

[[action]]
at = 2.5
do = "clock_step"
seconds = -7200
"""
    with SimInThread(tmp_path, scenario) as sim:
        wait_until(lambda: sim.t() > 4.0, 10)
        sim.wait_drained()
        health = sim.sup.health()
        assert all(d["supervisor_state"] == "running" and d["restarts"] == 0 for d in health["drivers"].values()), \
            "a wall-clock step is not a stall: supervision runs on the monotonic clock"
        assert health["uptime_s"] < 60
    v = sim.verdict()
    assert_no_loss(v)
    events = sorted({e["seq"]: e for e in sim.out.events()}.values(), key=lambda e: e["seq"])
    ts = [parse_iso_utc(e["ts"]) for e in events]
    jumps = [b - a for a, b in zip(ts, ts[1:])]
    assert any(j > timedelta(minutes=55) for j in jumps), "the step forward shows in ts"
    assert any(j < -timedelta(minutes=115) for j in jumps), "the step back shows in ts"
    assert not any(e["type"] == "driver_fault" for e in events)


def test_disk_full_drops_low_severity_and_names_the_gap(tmp_path: Path) -> None:
    scenario = probe_devices(interval=0.05) + """
[[device]]
kind = "probe"
name = "alarmer"
params = { interval = 0.2, severity = "alarm" }

[[action]]
at = 0.5
do = "broker_down"
until = 6.0

[[action]]
at = 1.0
do = "disk_full"
headroom_kb = 16
until = 6.0

[[action]]
at = 1.5
device = "tick"
do = "burst"
count = 3000
"""
    with SimInThread(tmp_path, scenario) as sim:
        wait_until(lambda: sim.sup.store.dropped_total > 0, 20, message="eviction under a full disk")
        health = sim.sup.health()
        assert health["buffer"]["dropped_total"] > 0
        wait_until(lambda: sim.t() > 6.5, 10)
        sim.wait_status("broker connected", timeout=15)
        sim.wait_drained(timeout=60)
    v = sim.verdict()
    assert_no_loss(v)
    assert v.dropped_named > 0
    reports = [e for e in sim.out.events() if e["type"] == "events_dropped"]
    assert reports and {r["data"]["reason"] for r in reports} == {"disk_full"}
    assert all(r["severity"] == "warning" and r["data"]["ranges"] for r in reports)
    dropped = {s for r in reports for lo, hi in r["data"]["ranges"] for s in range(lo, hi + 1)}
    assert dropped.isdisjoint(e["seq"] for e in sim.out.events() if e["device"] == "alarmer")
    assert all("alarm" not in r["data"]["by_severity"] for r in reports), "info goes before alarm"
    alarms = [e for e in sim.out.events() if e["device"] == "alarmer"]
    assert alarms and max(e["data"]["n"] for e in alarms) - len({e["id"] for e in alarms}) <= 2, \
        "alarm events were kept while info events made room"
