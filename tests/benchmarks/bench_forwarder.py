"""Store-and-forward benchmarks against a real local mosquitto.

Figures (issue 2):
- sustained throughput, emit -> committed (synchronous=FULL) -> PUBACK -> deleted,
  against raw paho-mqtt QoS 1 publishing the same payloads to the same broker, as
  `anfang run` is built (the connection in its uplink process), in two load shapes:
  events committed in groups (`emit_many`, 50 a call from 4 threads) and one event
  per `emit()` call from 16 threads; and, for comparison, the forwarder in a thread;
- latency from emit() to a subscriber's receipt at a steady 200 events/s (p50, p99);
- draining a backlog of 100,000 events after an outage, against the sustained rate;
- `anfang sim --scenario flood` end to end (8 probe threads handing events over with
  `ctx.submit`, the supervisor, the store, the uplink process), in a process of its own
  against the same broker, and the same with every fsync made 10 ms slow (an SD card)
  by an LD_PRELOAD shim built here with gcc;
- idle cost of `anfang run` with no devices (both its processes): CPU share of one
  core and memory (RSS summed, and PSS), against a bare Python interpreter.

    .venv/bin/python -m tests.benchmarks.bench_forwarder [--quick]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.clock import SystemClock
from gateway.context import GatewayContext
from gateway.driver import Emission
from gateway.mqttconfig import MqttConfig
from gateway.events import EventDraft
from gateway.forwarder import Forwarder
from gateway.lanes import EvidenceSpool, TelemetryLane
from gateway.store import EventStore
from gateway.uplink import Uplink
from sim.broker import LocalBroker
from tests.benchmarks.common import Figure, main
from tests.helpers import poll_until, wait_until

CLOCK = SystemClock()
PREFIX = "anfang/v1/bench/gw1"

NOTES = """
How to read the throughput rows. Each is events committed with `synchronous=FULL`,
published, PUBACKed and deleted, per second, against raw paho publishing the same
payload with QoS 1 from one thread in the same run.
- `emit_many(50)`: drivers that find several events at once commit them together
  (the fire-pump driver commits each poll this way). This is the sustained rate of
  the store-and-forward pipeline itself, the issue's figure.
- `emit()` one event per call from 16 threads: every call parks its thread until
  its event is on disk, so each event costs a thread wake-up in the gateway
  process. That process is not CPU-bound here (about 0.6 of a core, the uplink
  process about 0.5): CPython wakes parked threads one at a time, at some tens of
  microseconds each, and that, not the disk (about 230 us a commit, 16 events a
  commit), sets this rate.
- forwarder in a thread: the same pipeline with `[mqtt] process = false`.
- flood: `anfang sim --scenario flood` in a process of its own (the broker is this
  run's), events PUBACKed per second over a window after a warm-up. Its probes use
  `ctx.submit`: nothing parks, the group commit takes whatever was handed over
  while the last fsync ran. With the fsync shim (every fsync and fdatasync 10 ms
  late, as on an SD card) the rate holds because each commit carries more events
  (the events per commit in the row's name show it). Its sources never wait, so
  the gateway process takes about a core whatever the link's speed, and the
  uplink process shares the rest with the broker: the rows name each process's
  share of a core, and on a loaded machine the uplink's share sets the rate.
"""

FLOOD_WARMUP_S = 3.0     # seconds of the flood before the window: start-up, the first connection
SLOW_FSYNC_MS = 10       # an SD card's fsync: 5 to 20 ms

SLOW_FSYNC_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

/* fsync and fdatasync made slow on purpose: FSYNC_DELAY_MS milliseconds each, then the real call. */
static void slow_down(void) {
    const char *ms = getenv("FSYNC_DELAY_MS");
    long n = ms ? atol(ms) : 0;
    if (n > 0) {
        struct timespec t = { n / 1000, (n % 1000) * 1000000L };
        while (nanosleep(&t, &t) != 0) {}
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    slow_down();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    slow_down();
    return real(fd);
}
"""


def build_slow_fsync_shim(folder: Path) -> Path:
    """Compile the fsync shim into `folder`; returns the .so for LD_PRELOAD (needs gcc)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeError("the slow-fsync shim needs gcc (apt-get install gcc)")
    src = folder / "slow_fsync.c"
    lib = folder / "slow_fsync.so"
    src.write_text(SLOW_FSYNC_SHIM)
    subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src), "-ldl"], check=True)
    return lib


def slow_fsync_env(lib: Path, delay_ms: int) -> dict[str, str]:
    return {**os.environ, "LD_PRELOAD": str(lib), "FSYNC_DELAY_MS": str(delay_ms)}


def sample_payload() -> bytes:
    ev = EventDraft(cls="ir_beam", device="north-wall-1", type="alarm", severity="alarm", ts=CLOCK.now(),
                    data={"zone": "north", "duration_ms": 420, "armed": True})
    from gateway.events import number
    return number(ev, 123456, "bench", "gw1").to_json()


def raw_paho_rate(broker: LocalBroker, n: int, inflight: int = 20) -> float:
    """paho-mqtt alone, QoS 1, MQTT 5, one thread publishing as fast as it can.

    `inflight` defaults to paho's own default (20), i.e. raw paho as shipped.
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    done = threading.Event()
    acked = [0]

    def on_publish(*_a: object) -> None:
        acked[0] += 1
        if acked[0] >= n:
            done.set()

    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    client.loop_start()
    payload = sample_payload()
    t0 = time.perf_counter()
    for _ in range(n):
        client.publish(f"{PREFIX}/event/ir_beam/north-wall-1", payload, qos=1)
    done.wait(300)
    dt = time.perf_counter() - t0
    client.loop_stop()
    client.disconnect()
    return n / dt


def make_pipeline(broker: LocalBroker, state: Path, process: bool = True) -> tuple[EventStore, Forwarder | Uplink]:
    """The store and the uplink as `anfang run` builds them (process=False: the forwarder in a thread)."""
    store = EventStore(state / "events.db", site="bench", gateway="gw1")
    cfg = MqttConfig(host=broker.host, port=broker.port, inflight=200, health_interval=3600, process=process)
    kind = Uplink if process else Forwarder
    fwd = kind(cfg, PREFIX, store, TelemetryLane(), EvidenceSpool(state / "spool"), site="bench", gateway="gw1")
    return store, fwd


def wait_drained(store: EventStore, fwd: Forwarder | Uplink, last_seq: int, timeout: float = 600) -> None:
    poll_until(lambda: fwd.stats.last_seq_acked >= last_seq, timeout, 0.005)


def ours_rate(broker: LocalBroker, n: int, emitters: int, batch: int = 1, process: bool = True) -> float:
    """Events/s from `emitters` threads through commit, publish, PUBACK and deletion.

    The threads use a driver's context, as drivers do: batch=1, `ctx.emit()` per
    event; batch>1, `ctx.emit_many()` with `batch` events a call (one commit).
    """
    with tempfile.TemporaryDirectory() as tmp:
        store, fwd = make_pipeline(broker, Path(tmp), process)
        ctx = GatewayContext(site="bench", gateway="gw1", clock=CLOCK, state_dir=Path(tmp) / "driver",
                             timezone="Asia/Shanghai", store=store, telemetry_lane=TelemetryLane(),
                             evidence_spool=fwd.evidence, event_class="ir_beam")
        fwd.start()
        wait_until(lambda: fwd.stats.connected, 30, message="the forwarder connected")
        per = n // emitters
        data = {"zone": "north", "duration_ms": 420, "armed": True}

        def emitter(k: int) -> None:
            if batch == 1:
                for i in range(per):
                    ctx.emit("north-wall-1", "alarm", "alarm", data)
            else:
                group = [Emission("north-wall-1", "alarm", "alarm", data)] * batch
                for i in range(per // batch):
                    ctx.emit_many(group)

        threads = [threading.Thread(target=emitter, args=(k,)) for k in range(emitters)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wait_drained(store, fwd, store.last_seq)
        dt = time.perf_counter() - t0
        fwd.stop()
        store.close()
        return store.last_seq / dt


def latency(broker: LocalBroker, rate: float, seconds: float) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store, fwd = make_pipeline(broker, Path(tmp))
        sent: dict[int, float] = {}
        got: dict[int, float] = {}
        sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        ready = threading.Event()
        sub.on_subscribe = lambda *_a: ready.set()
        import json

        def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
            got.setdefault(json.loads(msg.payload)["seq"], time.perf_counter())

        sub.on_message = on_message
        sub.connect(broker.host, broker.port)
        sub.loop_start()
        sub.subscribe(f"{PREFIX}/event/#", qos=1)
        ready.wait(10)
        fwd.start()
        wait_until(lambda: fwd.stats.connected, 30, message="the forwarder connected")
        period = 1.0 / rate
        n = int(rate * seconds)
        t_next = time.perf_counter()
        for _ in range(n):
            now = time.perf_counter()
            if now < t_next:
                time.sleep(t_next - now)
            t_next += period
            t = time.perf_counter()
            ev = store.append(EventDraft(cls="ir_beam", device="north-wall-1", type="alarm", severity="alarm",
                                         ts=CLOCK.now(), data={"i": 1}))
            sent[ev.seq] = t
        poll_until(lambda: len(got) >= n, 30)
        lat = sorted((got[s] - sent[s]) * 1000 for s in sent if s in got)
        sub.loop_stop()
        fwd.stop()
        store.close()
        p50 = statistics.median(lat)
        p99 = lat[int(len(lat) * 0.99) - 1]
        return p50, p99, len(lat) / n


def backlog_drain(broker: LocalBroker, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store, fwd = make_pipeline(broker, Path(tmp))
        batch = [EventDraft(cls="fire_pump", device="pump-1", type="pressure_low", severity="warning",
                            ts=CLOCK.now(), data={"bar": 5.1}) for _ in range(1000)]
        for _ in range(n // 1000):
            store.append_many([EventDraft(cls=d.cls, device=d.device, type=d.type, severity=d.severity,
                                          ts=d.ts, data=d.data) for d in batch])
        last = store.last_seq
        t0 = time.perf_counter()
        fwd.start()            # the outage ends
        wait_drained(store, fwd, last)
        dt = time.perf_counter() - t0
        fwd.stop()
        store.close()
        return n / dt


def flood_in_this_process(host: str, port: int, warmup: float, seconds: float) -> None:
    """`anfang sim --scenario flood` against the broker at host:port, without printing
    events; prints one JSON line: events PUBACKed per second over `seconds` after `warmup`."""
    import logging

    from sim.runner import SimRun
    from sim.scenario import load_scenario

    logging.basicConfig(level=logging.ERROR)
    run = SimRun(load_scenario("flood"), broker_url=f"mqtt://{host}:{port}", duration=warmup + seconds + 120,
                 print_events=False)
    threading.Thread(target=run.run, name="flood", daemon=True).start()
    def connected() -> bool:
        sup = run.supervisor
        return bool(sup is not None and sup.store is not None and sup.forwarder is not None
                    and sup.forwarder.stats.connected)

    if not poll_until(connected, 60, 0.05):
        raise SystemExit("the flood gateway did not connect")
    sup = run.supervisor
    store, link = sup.store, sup.forwarder
    uplink_pid = getattr(link, "pid", None) or os.getpid()
    time.sleep(warmup)

    def sample() -> tuple[float, ...]:
        return (link.stats.acked, store.commits, store.last_seq, time.monotonic(),
                _proc_cpu_and_mem(os.getpid())[0], _proc_cpu_and_mem(uplink_pid)[0])

    a0, c0, s0, t0, g0, u0 = sample()
    time.sleep(seconds)
    a1, c1, s1, t1, g1, u1 = sample()
    wall = t1 - t0
    print(json.dumps({"rate": (a1 - a0) / wall, "committed_rate": (s1 - s0) / wall,
                      "events_per_commit": (s1 - s0) / max(1, c1 - c0), "pending_at_end": store.pending,
                      "gateway_cores": (g1 - g0) / wall, "uplink_cores": (u1 - u0) / wall}), flush=True)
    run.request_stop()


def flood_rate(broker: LocalBroker, seconds: float, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run the flood in a process of its own (LD_PRELOAD reaches only a new process)."""
    code = ("from tests.benchmarks.bench_forwarder import flood_in_this_process as f; "
            f"f({broker.host!r}, {broker.port}, {FLOOD_WARMUP_S}, {seconds})")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=seconds + 300, cwd=Path(__file__).resolve().parents[2])
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"flood run failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def _proc_cpu_and_mem(pid: int) -> tuple[float, float, float]:
    """(CPU seconds, RSS MB, PSS MB) of one process."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss_kb = pss_kb = 0
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Rss:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss_kb = int(line.split()[1])
    return cpu, rss_kb / 1024, pss_kb / 1024


def _family(pid: int) -> list[int]:
    """The process and its children (the gateway and its uplink process)."""
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids += [int(k) for k in fh.read().split()]
    except OSError:
        pass
    return [pid] + kids


def _family_cpu_and_mem(pid: int) -> tuple[float, float, float]:
    parts = [_proc_cpu_and_mem(p) for p in _family(pid)]
    return sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts)


def idle_cost(broker: LocalBroker, seconds: float) -> dict[str, float]:
    """CPU share of one core, RSS and PSS (MB) of `anfang run` with no devices (the gateway
    process and its uplink child together), and of a bare Python interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "gw.toml"
        cfg.write_text(f'[gateway]\nsite = "bench"\nid = "gw1"\nstate_dir = "{tmp}/state"\n'
                       f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n')
        procs = {
            "gateway": subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(cfg)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            "bare": subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)"]),
        }
        time.sleep(5)   # let start-up finish before measuring idle
        start = {k: _family_cpu_and_mem(p.pid) for k, p in procs.items()}
        processes = len(_family(procs["gateway"].pid))
        t0 = time.monotonic()
        time.sleep(seconds)
        end = {k: _family_cpu_and_mem(p.pid) for k, p in procs.items()}
        wall = time.monotonic() - t0
        for p in procs.values():
            p.terminate()
            p.wait(10)
        return {"cpu": (end["gateway"][0] - start["gateway"][0]) / wall * 100,
                "rss": end["gateway"][1], "pss": end["gateway"][2], "processes": processes,
                "bare_cpu": (end["bare"][0] - start["bare"][0]) / wall * 100,
                "bare_rss": end["bare"][1], "bare_pss": end["bare"][2]}


def run(quick: bool = False) -> list[Figure]:
    n = 10_000 if quick else 40_000
    figures: list[Figure] = []
    with LocalBroker() as broker:
        # interleave baseline and ours, three rounds, and take medians: the machine's
        # load changes during a run, and a ratio of two medians is steadier than one pair
        raws, singles, batched, in_thread, floods, slow_floods = [], [], [], [], [], []
        flood_s = 5 if quick else 10
        with tempfile.TemporaryDirectory() as shim_dir:
            slow_env = slow_fsync_env(build_slow_fsync_shim(Path(shim_dir)), SLOW_FSYNC_MS)
            for _ in range(3):
                raws.append(raw_paho_rate(broker, n))
                batched.append(ours_rate(broker, n, emitters=4, batch=50))
                singles.append(ours_rate(broker, n, emitters=16))
                in_thread.append(ours_rate(broker, n, emitters=4, batch=50, process=False))
                floods.append(flood_rate(broker, flood_s))
                slow_floods.append(flood_rate(broker, flood_s, slow_env))
        raw = statistics.median(raws)
        ours = statistics.median(singles)
        ours_b = statistics.median(batched)
        ours_t = statistics.median(in_thread)
        base = "raw paho QoS 1 (paho defaults)"
        figures.append(Figure("store-and-forward, emit_many(50) from 4 threads, synchronous=FULL, uplink process",
                              ours_b, "msg/s", raw, base, ">= 0.8 x raw paho", ours_b / raw >= 0.8))
        figures.append(Figure("store-and-forward, emit() one event per call from 16 threads, uplink process",
                              ours, "msg/s", raw, base, ">= 0.8 x raw paho", ours / raw >= 0.8))
        figures.append(Figure("store-and-forward, emit_many(50) from 4 threads, forwarder in a thread "
                              "(mqtt.process = false)", ours_t, "msg/s", raw, base))
        for runs, name in ((floods, "anfang sim --scenario flood end to end (8 threads, ctx.submit)"),
                           (slow_floods, f"the same flood, every fsync {SLOW_FSYNC_MS} ms late (LD_PRELOAD shim)")):
            rate = statistics.median(f["rate"] for f in runs)
            how = ", ".join(f"{statistics.median(f[key] for f in runs):{fmt}} {label}" for key, fmt, label in (
                ("events_per_commit", ".0f", "events/commit"), ("committed_rate", ",.0f", "committed/s"),
                ("gateway_cores", ".2f", "core gateway"), ("uplink_cores", ".2f", "core uplink")))
            figures.append(Figure(f"{name}; {how}", rate, "msg/s", raw, base, ">= 0.8 x raw paho", rate / raw >= 0.8))
        p50, p99, frac = latency(broker, 200, 5 if quick else 20)
        figures.append(Figure("emit -> subscriber latency p50 @200 ev/s", p50, "ms"))
        figures.append(Figure("emit -> subscriber latency p99 @200 ev/s", p99, "ms", target="<= 25 ms",
                              ok=p99 <= 25 and frac == 1.0))
        backlog = 20_000 if quick else 100_000
        drain = backlog_drain(broker, backlog)
        figures.append(Figure(f"backlog drain ({backlog:,} events after an outage)", drain, "msg/s", ours_b,
                              "sustained (emit_many)", ">= sustained rate", drain >= 0.9 * ours_b))
        idle = idle_cost(broker, 10 if quick else 30)
        both = f"anfang run, {idle['processes']:.0f} processes (gateway + uplink)"
        figures.append(Figure(f"idle CPU, {both}, no devices", idle["cpu"], "%core", idle["bare_cpu"],
                              "bare python", "< 1 %core", idle["cpu"] < 1.0))
        figures.append(Figure(f"idle memory, {both}: RSS summed", idle["rss"], "MB", idle["bare_rss"],
                              "bare python", "< 60 MB", idle["rss"] < 60))
        figures.append(Figure(f"idle memory, {both}: PSS (shared pages counted once)", idle["pss"], "MB",
                              idle["bare_pss"], "bare python"))
    return figures


if __name__ == "__main__":
    main(run)
