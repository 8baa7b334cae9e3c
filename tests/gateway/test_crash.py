"""SIGKILL in the middle of a burst, restart on the same state: no gap in seq, ever.

Some of the probes hand their events over without waiting (`ctx.submit`): what
reached the broker from them must have been on disk before, or the restarted
gateway would give its seq again to another event ("one seq, one event").
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.store import read_outbox
from sim.broker import LocalBroker
from tests.helpers import PREFIX, Subscriber, child_pids, process_alive, wait_until


def write_config(path: Path, state: Path, broker: LocalBroker) -> Path:
    path.write_text(f"""
[gateway]
site = "s1"
id = "gw1"
state_dir = "{state}"

[mqtt]
host = "127.0.0.1"
port = {broker.port}
reconnect_min_s = 0.05
reconnect_max_s = 0.5

[[sim_probe]]
name = "burst-a"
interval = 0.0
emitters = 2

[[sim_probe]]
name = "burst-b"
interval = 0.001
severity = "alarm"

[[sim_probe]]
name = "handed-over"
interval = 0.0005
emitters = 2
wait = false
""")
    return path


def start_gateway(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--sim-drivers", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_during_bursts_never_leaves_a_gap(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    broker = LocalBroker(workdir=tmp_path_factory.mktemp("kbroker"), persistent=True)
    broker.start()
    sub = Subscriber(broker.host, broker.port, f"{PREFIX}/event/#", persistent_id="crash-watcher")
    state = tmp_path / "state"
    config = write_config(tmp_path / "gw.toml", state, broker)
    rng = random.Random(42)
    proc: subprocess.Popen[bytes] | None = None
    try:
        def starts() -> int:
            return len({e["id"] for e in sub.events() if e["type"] == "gateway_started"})
        for _round in range(4):
            before = len(sub.received())
            started_before = starts()
            proc = start_gateway(config)
            # kill at a random instant once this run has forwarded a few hundred events (the
            # subscriber may still be catching up with the last run: this one's start must be seen)
            target = before + rng.randint(200, 2000)
            wait_until(lambda: (len(sub.received()) >= target and starts() > started_before)
                       or proc.poll() is not None, 30, message="events from the gateway")
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            uplinks = child_pids(proc.pid)
            assert uplinks, "the broker connection runs in a child process"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            proc.stderr.close()
            # the orphaned uplink process must go at once: it may not outlive the gateway
            wait_until(lambda: not any(process_alive(p) for p in uplinks), 5, message="the uplink process to exit")
        # last run: stop cleanly with SIGTERM
        started_before = starts()
        proc = start_gateway(config)
        # a gateway_started of the last killed run may still be on its way to the subscriber:
        # the uplink process of this run is the proof that it got past start-up (signal handlers first)
        wait_until(lambda: starts() > started_before and child_pids(proc.pid), 20, message="restarted gateway")
        uplinks = child_pids(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        proc.stderr.close()
        assert uplinks and not any(process_alive(p) for p in uplinks), "a clean stop stops the uplink process first"
        depth, buffered = read_outbox(state / "events.db", limit=10**7)

        def missing() -> list[int]:
            seqs = {e["seq"] for e in sub.events()} | {e.seq for e in buffered}
            return sorted(set(range(1, depth.last_seq + 1)) - seqs)
        # what the broker acknowledged may still be on its way to the subscriber
        wait_until(lambda: not missing(), 30, interval=0.5, message=lambda: f"missing seq: {missing()[:20]}")
        delivered = sub.events()
        by_id: dict[str, dict] = {}
        for e in delivered:
            assert by_id.setdefault(e["id"], e) == e, "a duplicate must be the same event"
        by_seq: dict[int, str] = {}
        for e in delivered:
            assert by_seq.setdefault(e["seq"], e["id"]) == e["id"], "one seq, one event"
        started = {e["id"] for e in delivered if e["type"] == "gateway_started"} | \
            {e.id for e in buffered if e.type == "gateway_started"}
        assert len(started) >= 5
        assert any(e["device"] == "handed-over" for e in delivered), "submitted events were forwarded too"
    finally:
        if proc is not None and proc.poll() is None:     # a failed assertion must not leave it running
            proc.kill()
            proc.wait(10)
        sub.close()
        broker.close()
