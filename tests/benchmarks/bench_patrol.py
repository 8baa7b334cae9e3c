"""Patrol parsers and engine: how fast, against a bare loop over the same bytes in the same run.

A reader at 9600 baud delivers under 1 kB/s and a site a few check-ins a minute,
so these figures are headroom: what matters is that the parsers are far above
line rate even on a Pi, and the engine far above any site's check-in rate.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, time as dtime, timedelta, timezone

from tests.benchmarks.common import Figure, main

from drivers.patrol import pn532
from drivers.patrol.em4100 import Em4100Parser, em4100_frame
from drivers.patrol.engine import PatrolEngine
from drivers.patrol.plan import Checkpoint, Guard, Leg, Plan, Registry, Route, Schedule


def _rate(fn, data: bytes, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(data)
        best = min(best, time.perf_counter() - t)
    return len(data) / best


def _bare(data: bytes) -> None:
    n = 0
    for b in data:         # the least a per-byte Python parser must do
        n += b
    return None


def run(quick: bool = False) -> list[Figure]:
    rng = random.Random(1)
    n = 2000 if quick else 20000
    em = b"".join(bytes(rng.randrange(256) for _ in range(rng.randrange(4))) + em4100_frame(1, rng.getrandbits(32))
                  for _ in range(n))
    pn = b"".join(pn532.ACK + pn532.response(0x4A, bytes([1, 1, 0, 0x44, 0, 7]) + rng.randbytes(7)) for _ in range(n))
    repeat = 3 if quick else 5
    bare_em = _rate(_bare, em, repeat)
    em_rate = _rate(lambda d: Em4100Parser().feed(d), em, repeat)
    bare_pn = _rate(_bare, pn, repeat)
    pn_rate = _rate(lambda d: pn532.Pn532Parser().feed(d), pn, repeat)
    line = 960.0   # bytes/s at 9600 8N1
    figures = [
        Figure("EM4100 parser", em_rate / 1e6, "MB/s", bare_em / 1e6, "bare Python byte loop",
               ">= 100 x 9600-baud line rate", em_rate >= 100 * line),
        Figure("PN532 parser", pn_rate / 1e6, "MB/s", bare_pn / 1e6, "bare Python byte loop",
               ">= 100 x 115200-baud line rate", pn_rate >= 100 * 11520),
    ]
    # the engine: a big site, 40 checkpoints on 4 routes, check-ins as fast as they come
    cps = [f"cp{i}" for i in range(40)]
    reg = Registry(guards=(Guard("g", ("C0",)),), checkpoints=tuple(Checkpoint(c, c, f"r{c}") for c in cps),
                   guard_by_card={"C0": "g"}, checkpoint_by_reader={f"r{c}": c for c in cps})
    routes = {f"route{k}": Route(f"route{k}", f"route{k}", tuple(cps[k * 10:(k + 1) * 10]),
                                 tuple(Leg(c, 0, 10) for c in cps[k * 10 + 1:(k + 1) * 10]), 5) for k in range(4)}
    scheds = tuple(Schedule(f"s{k}", f"route{k}", tuple(dtime(h, 0) for h in range(24)),
                            30, 10, False, 60) for k in range(4))
    eng = PatrolEngine(reg, Plan(routes, scheds), "Asia/Shanghai", dedup_seconds=0)
    wall = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)
    mono = 1000.0
    scans = 2000 if quick else 20000
    t = time.perf_counter()
    for i in range(scans):
        wall += timedelta(seconds=30)
        mono += 30
        eng.scan(f"r{cps[i % 40]}", "C0", wall, mono)
    per_s = scans / (time.perf_counter() - t)
    figures.append(Figure("engine check-ins", per_s, "1/s", None, "", ">= 1000/s", per_s >= 1000))
    return figures


if __name__ == "__main__":
    main(run)
