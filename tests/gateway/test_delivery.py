"""Store-and-forward against a real mosquitto: order, completeness, outages, status, health."""

from __future__ import annotations

import json
import stat
import threading
import time
from pathlib import Path

import pytest

from gateway.clock import SystemClock
from gateway.events import EventDraft, event_schema
from gateway.signing import KEY_FILE, EvidenceKey
from sim.broker import LocalBroker
from tests.gateway.gw_helpers import RunningGateway, gateway_config
from tests.helpers import PREFIX, Subscriber, seq_report, wait_until

CLOCK = SystemClock()


def emit_from_threads(store, threads: int, per_thread: int, pause: float = 0.0) -> None:
    def emitter(k: int) -> None:
        for i in range(per_thread):
            store.append(EventDraft(cls="ir_beam", device=f"wall-{k}", type="alarm", severity="alarm",
                                    ts=CLOCK.now(), data={"i": i, "emitter": k}))
            if pause:
                time.sleep(pause)  # pacing the producer, not synchronisation

    ts = [threading.Thread(target=emitter, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def test_concurrent_emitters_arrive_in_seq_order_with_every_schema_field(tmp_path: Path, broker: LocalBroker) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    sub = Subscriber(broker.host, broker.port, f"{PREFIX}/event/#")
    with RunningGateway(gateway_config(tmp_path, broker)) as gw:
        emit_from_threads(gw.supervisor.store, threads=6, per_thread=200)
        events = sub.wait_events(lambda evs: len({e["seq"] for e in evs}) >= 1201, timeout=30)
    sub.close()
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs), "events must arrive in seq order"
    assert len(seqs) == len(set(seqs)), "no duplicates without a reconnect"
    _, missing = seq_report(events)
    assert missing == []
    schema = event_schema()
    for e in events:
        jsonschema.validate(e, schema)
    alarms = [e for e in events if e["class"] == "ir_beam"]
    assert len(alarms) == 1200
    assert {m.topic for m in sub.received("/event/ir_beam/")} == {f"{PREFIX}/event/ir_beam/wall-{k}" for k in range(6)}


@pytest.mark.parametrize("outage_s", [pytest.param(3.0, id="3s"), pytest.param(30.0, id="30s", marks=pytest.mark.soak)])
def test_broker_outage_loses_nothing(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, outage_s: float) -> None:
    broker = LocalBroker(workdir=tmp_path_factory.mktemp("pbroker"), persistent=True)
    broker.start()
    sub = Subscriber(broker.host, broker.port, f"{PREFIX}/event/#", persistent_id="outage-watcher")
    try:
        with RunningGateway(gateway_config(tmp_path / "gw", broker)) as gw:
            store = gw.supervisor.store
            emit_from_threads(store, threads=2, per_thread=50)
            sub.wait_events(lambda evs: len(evs) >= 101)
            broker.stop()
            outage_end = time.monotonic() + outage_s     # many reconnect attempts (reconnect_max 0.5 s)
            n = 0
            while time.monotonic() < outage_end:     # events keep coming during the outage
                store.append(EventDraft(cls="fire_pump", device="pump-1", type="pressure_low",
                                        severity="warning", ts=CLOCK.now(), data={"n": n}))
                n += 1
                time.sleep(0.05)                      # pacing the producer at 20 events/s
            assert store.count >= n - 5, "events made during the outage wait on disk"
            broker.start()
            last = store.last_seq
            events = sub.wait_events(lambda evs: {e["seq"] for e in evs} >= set(range(1, last + 1)), timeout=60)
            assert gw.supervisor.forwarder.stats.disconnects >= 1
        seqs, missing = seq_report(events)
        assert missing == []
        assert len([e for e in events if e["class"] == "fire_pump"]) >= n
        by_id: dict[str, dict] = {}
        for e in events:
            assert by_id.setdefault(e["id"], e) == e, "a redelivered event must be identical"
        # first deliveries are in seq order
        first_seen = []
        seen: set[int] = set()
        for e in events:
            if e["seq"] not in seen:
                seen.add(e["seq"])
                first_seen.append(e["seq"])
        assert first_seen == sorted(first_seen)
    finally:
        sub.close()
        broker.close()


def test_status_is_retained_online_then_offline_on_clean_stop(tmp_path: Path, broker: LocalBroker) -> None:
    gw = RunningGateway(gateway_config(tmp_path, broker)).__enter__()
    wait_until(lambda: gw.supervisor.forwarder.stats.connected, 10, message="connection")
    late = Subscriber(broker.host, broker.port, f"{PREFIX}/status")   # joins after: sees the retained one
    status = wait_until(lambda: late.received("/status"), 5, message="retained status")[0]
    assert status.retain and status.json()["state"] == "online" and status.json()["version"]
    gw.stop()
    wait_until(lambda: any(m.json()["state"] == "offline" for m in late.received("/status")), 5,
               message="offline status")
    late.close()
    again = Subscriber(broker.host, broker.port, f"{PREFIX}/status")
    retained = wait_until(lambda: again.received("/status"), 5, message="retained offline")[0]
    assert retained.json()["state"] == "offline"
    again.close()


def test_health_is_published_retained_with_buffer_and_drivers(tmp_path: Path, broker: LocalBroker) -> None:
    cfg = gateway_config(tmp_path, broker, probes=[{"name": "p1", "interval": 0.2}])
    with RunningGateway(cfg):
        sub = Subscriber(broker.host, broker.port, f"{PREFIX}/health")
        msg = wait_until(lambda: [m for m in sub.received("/health")
                                  if m.json()["drivers"].get("sim_probe", {}).get("state") == "ok"], 10,
                         message="health")[-1]
        h = msg.json()
        late = Subscriber(broker.host, broker.port, f"{PREFIX}/health")
        assert wait_until(lambda: late.received("/health"), 5, message="retained health")[0].retain
        late.close()
        assert h["uptime_s"] >= 0 and h["version"]
        assert {"events", "bytes", "oldest_unsent_age_s", "last_seq", "dropped_total", "uncommitted"} <= set(h["buffer"])
        assert h["drivers"]["sim_probe"]["state"] == "ok"
        assert h["forwarder"]["connected"] is True
        key_file = tmp_path / KEY_FILE      # made on this first start, private to the gateway's user
        assert h["evidence_key"] == EvidenceKey.load(key_file).public.to_dict()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        sub.close()


def test_an_unreadable_evidence_key_is_reported_and_the_gateway_runs_on(tmp_path: Path, broker: LocalBroker) -> None:
    (tmp_path / KEY_FILE).write_text("not a key\n")
    cfg = gateway_config(tmp_path, broker, probes=[{"name": "p1", "interval": 0.2}])
    with RunningGateway(cfg):
        sub = Subscriber(broker.host, broker.port, [f"{PREFIX}/health", f"{PREFIX}/event/#"])
        h = wait_until(lambda: [m.json() for m in sub.received("/health")], 10, message="health")[-1]
        assert list(h["evidence_key"]) == ["error"]
        assert h["evidence_key"]["error"].startswith(f"{tmp_path / KEY_FILE}: not a PEM private key")
        wait_until(lambda: any(m.json()["type"] == "sim_tick" for m in sub.received("/event/")), 10,
                   message="events still flow")
        sub.close()
    assert (tmp_path / KEY_FILE).read_text() == "not a key\n"     # never replaced


def test_telemetry_lane_latest_wins_and_never_blocks_events(tmp_path: Path, broker: LocalBroker) -> None:
    from gateway.lanes import TelemetryReading
    sub = Subscriber(broker.host, broker.port, [f"{PREFIX}/telemetry/#", f"{PREFIX}/event/#"])
    with RunningGateway(gateway_config(tmp_path, broker)) as gw:
        for v in range(1000):
            gw.supervisor.telemetry.put(TelemetryReading("fire_pump", "pump-1", CLOCK.now(), {"pressure_bar": v}))
        gw.supervisor.store.append(EventDraft(cls="fire_pump", device="pump-1", type="pump_started",
                                              severity="info", ts=CLOCK.now()))
        wait_until(lambda: sub.received("/event/fire_pump/"), 10, message="event")
        wait_until(lambda: any(m.json()["values"]["pressure_bar"] == 999 for m in sub.received("/telemetry/")), 10,
                   message="latest telemetry")
    telemetry = sub.received("/telemetry/fire_pump/pump-1")
    assert len(telemetry) < 1000, "unsent readings are replaced by newer ones"
    sub.close()


def test_evidence_is_sent_on_its_own_lane_and_leaves_the_spool(tmp_path: Path, broker: LocalBroker) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(bytes(range(256)) * 4000)
    sub = Subscriber(broker.host, broker.port, f"{PREFIX}/evidence/#")
    with RunningGateway(gateway_config(tmp_path / "gw", broker)) as gw:
        ev = gw.supervisor.store.append(EventDraft(cls="camera", device="cam-1", type="thrown_object",
                                                   severity="alarm", ts=CLOCK.now()))
        gw.supervisor.evidence.add(ev.id, clip, "video/mp4")
        msg = wait_until(lambda: sub.received(f"/evidence/{ev.id}"), 10, message="evidence")[0]
        assert msg.payload == clip.read_bytes()
        assert dict(msg.properties.UserProperty)["name"] == "clip.mp4"
        wait_until(lambda: not gw.supervisor.evidence.items(), 5, message="spool emptied")
    sub.close()
