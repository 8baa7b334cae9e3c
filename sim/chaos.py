"""`anfang chaos`: the default scenario under random faults, ending with a verdict on every event.

Three processes' worth of parts, run from this one:

- this process (the conductor) owns a persistent mosquitto, a `FaultProxy`
  the gateway reaches it through, and a verdict subscriber (a persistent MQTT
  session straight to the broker, so it misses nothing across outages);
- a child process runs the gateway with the `default` scenario's simulated
  devices (`python -m sim.chaos --child`, a `SimRun` pointed at the proxy).
  It is a separate process so that it can be SIGKILLed at random instants
  and started again on the same state directory; it takes fault orders as
  JSON lines on its stdin (`clock_step`, `disk_full`, device actions);
- at the end, after every fault is undone and the child stopped with SIGTERM,
  a drain gateway (no drivers, same state directory) runs in this process
  until the buffer is empty, so that every event ever made has had its chance.

Faults, picked at random (seeded) every few seconds, overlapping freely:
broker outage, network blackhole / slow / reset, SIGKILL and restart, wall
clock stepped forward or back, state disk full (under a blackhole and a burst,
so that it bites), a patrol reader unplugged, a Modbus panel answering
garbage, the camera freezing.

The verdict (`check_events`) holds the delivery promises of docs/mqtt.md to
account: every `seq` from 1 to the last one given was delivered, or named in
an `events_dropped` event; first deliveries arrive in `seq` order; a
duplicate `id` always carries the same content; one `seq` is one `id`. Exit 0
when it holds, 1 when not.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

from sim.subscriber import EventSubscriber

log = logging.getLogger(__name__)

PREFIX = "anfang/v1/sim/gw1"     # sim.runner's SITE and GATEWAY
CHILD_OVERRIDES = {"mqtt": {"keepalive_s": 5, "connect_timeout_s": 3.0, "reconnect_max_s": 2.0,
                            "health_interval_s": 5.0}}


# -- the verdict -------------------------------------------------------------------
@dataclass
class Verdict:
    delivered: int = 0                 # messages received (with duplicates)
    distinct: int = 0                  # distinct seqs delivered
    last_seq: int = 0
    duplicates: int = 0
    dropped_named: int = 0             # seqs named by events_dropped and never delivered
    missing: list[int] = field(default_factory=list)       # neither delivered nor named
    buffered: list[int] = field(default_factory=list)      # still in the gateway's buffer
    out_of_order: list[tuple[int, int]] = field(default_factory=list)   # (previous, this) first deliveries
    conflicts: list[str] = field(default_factory=list)      # same id, different content / one seq, two ids

    @property
    def ok(self) -> bool:
        return not (self.missing or self.out_of_order or self.conflicts) and self.last_seq > 0

    def lines(self) -> list[str]:
        def head(xs: list[Any]) -> str:
            return ", ".join(map(str, xs[:10])) + (" ..." if len(xs) > 10 else "")
        out = [f"events delivered: {self.delivered} messages, {self.distinct} distinct seq, "
               f"last seq {self.last_seq}, {self.duplicates} duplicate(s) (same id, same content)",
               f"dropped and reported (events_dropped): {self.dropped_named}"]
        out.append(f"missing (gap not reported): {len(self.missing)}" + (f": {head(self.missing)}" if self.missing else ""))
        if self.buffered:
            out.append(f"still buffered, not delivered: {len(self.buffered)}: {head(self.buffered)}")
        out.append(f"out of order first deliveries: {len(self.out_of_order)}"
                   + (f": {head(self.out_of_order)}" if self.out_of_order else ""))
        out.append(f"conflicting duplicates: {len(self.conflicts)}" + (f": {head(self.conflicts)}" if self.conflicts else ""))
        out.append("VERDICT: " + ("OK: every event delivered in order, or its loss reported"
                                  if self.ok else "FAILED"))
        return out


def check_events(events: Iterable[dict[str, Any]], *, last_seq: int = 0,
                 buffered: Iterable[int] = ()) -> Verdict:
    """Check events in arrival order against the delivery promises (docs/mqtt.md; see the module docstring).

    `last_seq`: the last seq the gateway gave (from its store), if known;
    `buffered`: seqs still in its buffer (not lost, but not delivered: listed
    apart, and counted as missing since a finished run must have drained).
    """
    v = Verdict()
    by_id: dict[str, dict[str, Any]] = {}
    by_seq: dict[int, str] = {}
    named: set[int] = set()
    prev_first = 0
    for ev in events:
        v.delivered += 1
        seq, eid = ev.get("seq"), ev.get("id")
        if not isinstance(seq, int) or not isinstance(eid, str):
            v.conflicts.append(f"malformed event {str(ev)[:80]}")
            continue
        if eid in by_id:
            v.duplicates += 1
            if by_id[eid] != ev:
                v.conflicts.append(f"id {eid} (seq {seq}) delivered with different content")
            continue
        by_id[eid] = ev
        if by_seq.setdefault(seq, eid) != eid:
            v.conflicts.append(f"seq {seq} given to two ids ({by_seq[seq]}, {eid})")
            continue
        if seq <= prev_first:
            v.out_of_order.append((prev_first, seq))
        prev_first = max(prev_first, seq)
        if ev.get("type") == "events_dropped" and ev.get("class") == "gateway":
            for rng in (ev.get("data") or {}).get("ranges", []):
                try:
                    lo, hi = int(rng[0]), int(rng[1])
                except (TypeError, ValueError, IndexError):
                    v.conflicts.append(f"events_dropped seq {seq} has a malformed range {rng!r}")
                    continue
                named.update(range(lo, hi + 1))
    seqs = set(by_seq)
    v.distinct = len(seqs)
    v.last_seq = max([last_seq, *seqs, 0])
    v.buffered = sorted(set(buffered) - seqs)
    v.dropped_named = len(named - seqs)
    v.missing = [s for s in range(1, v.last_seq + 1) if s not in seqs and s not in named]
    return v


# -- the verdict subscriber ----------------------------------------------------------
class EventRecorder:
    """Records every event a persistent session on the gateway's event topics receives, in arrival order."""

    def __init__(self, host: str, port: int, prefix: str = PREFIX) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.subscriber = EventSubscriber(host, port, prefix, self._record, name="anfang-chaos-verdict",
                                          on_malformed=lambda payload: self._record(
                                              {"malformed": payload[:80].decode(errors="replace")}),
                                          reconnect_max_s=1.0, keepalive_s=10).start()

    def _record(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)

    def wait_subscribed(self, timeout: float = 10.0) -> bool:
        return self.subscriber.wait_subscribed(timeout)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def max_seq(self) -> int:
        with self._lock:
            return max((e.get("seq", 0) for e in self.events if isinstance(e.get("seq"), int)), default=0)

    def close(self) -> None:
        self.subscriber.close()


# -- the child: a SimRun taking fault orders on stdin ---------------------------------
def child_main(argv: list[str]) -> int:
    import argparse

    from sim.runner import SimRun
    from sim.scenario import Action, load_scenario

    p = argparse.ArgumentParser(prog="python -m sim.chaos --child")
    p.add_argument("--child", action="store_true")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--broker", required=True)
    p.add_argument("--scenario", default="default")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    scenario = load_scenario(args.scenario)
    scenario.seed = args.seed
    run = SimRun(scenario, broker_url=args.broker, state_dir=Path(args.state_dir), duration=10 ** 7,
                 print_events=False, proxy=False, config_overrides=CHILD_OVERRIDES)

    def orders() -> None:
        run.ready.wait()
        for line in sys.stdin:
            try:
                order = json.loads(line)
                device = order.pop("device", None)
                do = order.pop("do")
                if device is None:
                    run.perform_gateway(do, order)
                else:
                    run.perform(Action(at=0.0, do=do, device=device, params=order))
            except Exception as exc:
                log.error("chaos order %s failed: %s", line.strip(), exc)
        run.request_stop()      # the conductor went away

    threading.Thread(target=orders, name="chaos-orders", daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_a: run.request_stop())
    return run.run()


# -- the conductor ------------------------------------------------------------------------
FAULTS = ("broker_outage", "network_blackhole", "network_slow", "network_reset", "sigkill",
          "clock_step", "disk_full", "serial_unplug", "modbus_garbage", "camera_freeze")


class ChaosRun:
    """One `anfang chaos` run; `run()` returns the exit code (0: the verdict holds)."""

    def __init__(self, minutes: float, seed: int, *, workdir: Path | None = None, out: TextIO = sys.stdout,
                 scenario: str = "default", faults: Iterable[str] = FAULTS, gap_s: tuple[float, float] = (2.0, 6.0),
                 drain_timeout: float = 120.0) -> None:
        self.seconds = minutes * 60.0
        self.seed = seed
        self.rng = random.Random(seed)
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="anfang-chaos-")
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.out = out
        self.scenario_name = scenario
        self.faults = tuple(faults)
        self.gap_s = gap_s
        self.drain_timeout = drain_timeout
        self.child: subprocess.Popen[bytes] | None = None
        self.generation = 0
        self.lives = 0
        self.injected: dict[str, int] = {}
        self._agenda: list[tuple[float, int, Callable[[], None]]] = []
        self._n = 0
        self.t0 = 0.0
        self.devices: dict[str, list[str]] = {}
        self._deck: list[str] = []
        self._net_token = 0

    # -- output ----------------------------------------------------------------
    def say(self, text: str) -> None:
        t = time.monotonic() - self.t0 if self.t0 else 0.0
        self.out.write(f"[{t:6.1f} s] {text}\n")
        self.out.flush()

    # -- the child -------------------------------------------------------------
    def start_child(self) -> None:
        self.generation += 1
        self.lives += 1
        logf = open(self.workdir / f"gateway-life-{self.lives}.log", "wb")
        self.child = subprocess.Popen(
            [sys.executable, "-m", "sim.chaos", "--child", "--state-dir", str(self.workdir / "state"),
             "--broker", self.proxy.url, "--scenario", self.scenario_name, "--seed", str(self.seed + self.lives)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=logf)
        logf.close()

    def order(self, payload: dict[str, Any], generation: int | None = None) -> bool:
        child = self.child
        if child is None or child.poll() is not None or (generation is not None and generation != self.generation):
            return False
        try:
            assert child.stdin is not None
            child.stdin.write((json.dumps(payload) + "\n").encode())
            child.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def stop_child(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        child, self.child = self.child, None
        if child is None:
            return
        if child.poll() is None:
            child.send_signal(sig)
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)
        if child.stdin:
            try:
                child.stdin.close()
            except OSError:
                pass

    # -- agenda ----------------------------------------------------------------
    def later(self, delay: float, fn: Callable[[], None]) -> None:
        self._n += 1
        heapq.heappush(self._agenda, (time.monotonic() + delay, self._n, fn))

    def _run_due(self, until: float) -> None:
        while True:
            now = time.monotonic()
            if self._agenda and self._agenda[0][0] <= now:
                _due, _n, fn = heapq.heappop(self._agenda)
                try:
                    fn()
                except Exception as exc:
                    self.say(f"(fault step failed: {exc})")
                continue
            nxt = min(self._agenda[0][0] if self._agenda else until, until)
            if now >= until:
                return
            time.sleep(max(0.0, min(0.1, nxt - now)))

    # -- faults ------------------------------------------------------------------
    def inject(self, fault: str) -> None:
        r = self.rng
        gen = self.generation
        self.injected[fault] = self.injected.get(fault, 0) + 1
        if fault == "broker_outage":
            d = r.uniform(2, 8)
            self.say(f"broker down for {d:.1f} s")
            self.broker.stop()
            self.later(d, self._broker_up)
        elif fault in ("network_blackhole", "network_slow", "network_reset"):
            mode = fault.removeprefix("network_")
            d = r.uniform(0.5, 3) if mode == "reset" else r.uniform(3, 10)
            latency = r.uniform(0.5, 3.0)
            self.say(f"network {mode} for {d:.1f} s" + (f" ({latency:.1f} s latency)" if mode == "slow" else ""))
            self._set_network(mode, latency)
            self.later(d, self._network_undo(self._net_token))
        elif fault == "sigkill":
            d = r.uniform(0.2, 2.0)
            self.say(f"SIGKILL the gateway (life {self.lives}); restart in {d:.1f} s")
            self.stop_child(signal.SIGKILL)
            self.later(d, self._restart)
        elif fault == "clock_step":
            step = r.choice([-1, 1]) * r.choice([30, 300, 3600, 86400])
            self.say(f"wall clock stepped {step:+d} s")
            self.order({"do": "clock_step", "seconds": step})
        elif fault == "disk_full":
            d = r.uniform(4, 10)
            self.say(f"state disk full for {d:.1f} s (under a network blackhole and a burst of events)")
            self._set_network("blackhole", None)
            self.order({"do": "disk_full", "headroom_kb": 32})
            for probe in self.devices.get("probe", []):
                self.order({"device": probe, "do": "burst", "count": 1500})
            self.later(d, lambda: self.order({"do": "disk_ok"}, gen))
            self.later(d, self._network_undo(self._net_token))
        elif fault == "serial_unplug" and self.devices.get("patrol"):
            dev = r.choice(self.devices["patrol"])
            d = r.uniform(2, 8)
            self.say(f"patrol reader 1 of {dev} unplugged for {d:.1f} s")
            self.order({"device": dev, "do": "unplug", "reader": 1})
            self.later(d, lambda: self.order({"device": dev, "do": "replug", "reader": 1}, gen))
        elif fault == "modbus_garbage" and self.devices.get("fire_pump"):
            dev = r.choice(self.devices["fire_pump"])
            mode = r.choice(["crc", "short", "noise", "exception"])
            d = r.uniform(2, 6)
            self.say(f"Modbus panel {dev} answers garbage ({mode}) for {d:.1f} s")
            self.order({"device": dev, "do": "garbage_replies", "mode": mode, "duration": d})
        elif fault == "camera_freeze" and self.devices.get("camera"):
            dev = r.choice(self.devices["camera"])
            d = r.uniform(3, 10)
            self.say(f"camera {dev} frozen for {d:.1f} s")
            self.order({"device": dev, "do": "freeze", "duration": d})
        else:
            self.injected[fault] -= 1

    def _broker_up(self) -> None:
        if not self.broker.running:
            self.broker.start()
            self.say("broker up")

    def _set_network(self, mode: str, latency: float | None) -> None:
        self._net_token += 1
        self.proxy.set_mode(mode, latency=latency)

    def _network_undo(self, token: int) -> Callable[[], None]:
        """Undo a network fault unless a later one has taken its place (that one undoes itself)."""
        def undo() -> None:
            if token == self._net_token:
                self._network_ok()
        return undo

    def next_fault(self) -> str:
        """Faults are dealt from a shuffled deck: every kind comes once before any comes twice."""
        if not self._deck:
            self._deck = list(self.faults)
            self.rng.shuffle(self._deck)
        return self._deck.pop()

    def _network_ok(self) -> None:
        if self.proxy.mode != "pass":
            self.proxy.set_mode("pass")
            self.say("network ok")

    def _restart(self) -> None:
        if self.child is None:
            self.start_child()
            self.say(f"gateway started again (life {self.lives})")

    # -- the run -------------------------------------------------------------------
    def run(self) -> int:
        from sim.broker import LocalBroker
        from sim.faults import FaultProxy
        from sim.scenario import load_scenario

        scenario = load_scenario(self.scenario_name)
        for d in scenario.devices:
            self.devices.setdefault(d.kind, []).append(d.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.broker = LocalBroker(workdir=self.workdir / "broker", persistent=True)
        self.broker.workdir.mkdir(parents=True, exist_ok=True)
        self.broker.start()
        self.proxy = FaultProxy(self.broker.host, self.broker.port).start()
        recorder = EventRecorder(self.broker.host, self.broker.port)
        logging.getLogger("sim.faults").setLevel(logging.WARNING)
        try:
            if not recorder.wait_subscribed(10):
                raise RuntimeError("the verdict subscriber could not subscribe")
            self.t0 = time.monotonic()
            self.say(f"chaos run: scenario {self.scenario_name}, {self.seconds / 60:.1f} min, seed {self.seed}; "
                     f"work folder {self.workdir}")
            self.start_child()
            end = self.t0 + self.seconds
            self._run_due(min(end, time.monotonic() + 5.0))      # let it come up first
            while time.monotonic() < end:
                if self.child is not None and self.child.poll() is not None:
                    self.say(f"the gateway exited by itself with {self.child.returncode}; starting it again")
                    self.child = None
                    self._restart()
                self.inject(self.next_fault())
                self._run_due(min(end, time.monotonic() + self.rng.uniform(*self.gap_s)))
            return self._finish(recorder)
        finally:
            self.stop_child(signal.SIGKILL, 5)
            recorder.close()
            self.proxy.close()
            self.broker.close()
            if self._tmp:
                self._tmp.cleanup()

    def _finish(self, recorder: EventRecorder) -> int:
        from gateway.config import parse_config
        from gateway.store import read_outbox
        from gateway.supervisor import Supervisor

        self.say("time is up: undoing every fault")
        self._agenda.clear()
        self._network_ok()
        self._broker_up()
        self.stop_child(signal.SIGTERM)
        state = self.workdir / "state" / "gateway"
        self.say("draining the buffer with a gateway without drivers")
        cfg = parse_config({"gateway": {"site": "sim", "id": "gw1", "state_dir": str(state)},
                            "mqtt": {"host": self.broker.host, "port": self.broker.port, "reconnect_max_s": 1.0}},
                           driver_types={})
        sup = Supervisor(cfg)
        stop = threading.Event()
        t = threading.Thread(target=sup.run, args=(stop,), name="drain", daemon=True)
        t.start()
        deadline = time.monotonic() + self.drain_timeout
        next_note = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            store = sup.store
            if store is not None and store.count == 0 and recorder.max_seq() >= store.last_seq > 0:
                break
            if store is not None and time.monotonic() >= next_note:
                next_note += 5.0
                self.say(f"draining: {store.count} event(s) buffered, last seq {store.last_seq}, "
                         f"subscriber at seq {recorder.max_seq()}")
            time.sleep(0.2)
        stop.set()
        t.join(30)
        # the subscriber may still be receiving the last of them
        settle, seen = time.monotonic() + 3.0, -1
        while time.monotonic() < settle and len(recorder.snapshot()) != seen:
            seen = len(recorder.snapshot())
            time.sleep(0.3)
        depth, buffered = read_outbox(state / "events.db", limit=10 ** 7)
        verdict = check_events(recorder.snapshot(), last_seq=depth.last_seq, buffered=[e.seq for e in buffered])
        if verdict.buffered:
            verdict.missing = sorted(set(verdict.missing) | set(verdict.buffered))
        self.say("faults injected: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.injected.items()) if v)
                 + f"; gateway lives: {self.lives}")
        for line in verdict.lines():
            self.say(line)
        self.verdict = verdict
        return 0 if verdict.ok else 1


def main(argv: list[str] | None = None) -> int:
    """`python -m sim.chaos --child ...`: the gateway side of a chaos run (`anfang chaos` is sim/cli.py)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--child" not in argv:
        print("python -m sim.chaos runs only the child of a chaos run (--child); use `anfang chaos`",
              file=sys.stderr)
        return 2
    return child_main(argv)


if __name__ == "__main__":
    sys.exit(main())
