"""The chaos run: the default scenario under random faults, and the verdict that judges it.

`check_events` is tested on hand-made deliveries; the run itself once at a
short length in the default suite (it includes SIGKILLs of the gateway
process and its restart on the same state), longer under `make soak`.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from sim.chaos import FAULTS, ChaosRun, check_events


def ev(seq: int, id_: str | None = None, **kw: object) -> dict:
    return {"id": id_ or f"id-{seq}", "seq": seq, "class": "probe", "type": "sim_tick", "data": {}, **kw}


def test_verdict_accepts_duplicates_and_reported_gaps_and_rejects_the_rest() -> None:
    good = [ev(1), ev(2), ev(2), ev(5, cls="gateway"),
            {"id": "d", "seq": 6, "class": "gateway", "type": "events_dropped", "data": {"ranges": [[3, 4]]}}]
    v = check_events(good, last_seq=6)
    assert v.ok and v.duplicates == 1 and v.dropped_named == 2, v.lines()
    gap = check_events([ev(1), ev(3)])
    assert not gap.ok and gap.missing == [2]
    unseen_tail = check_events([ev(1)], last_seq=3, buffered=[3])
    assert unseen_tail.missing == [2, 3] and unseen_tail.buffered == [3]
    order = check_events([ev(1), ev(3), ev(2)])
    assert not order.ok and order.out_of_order == [(3, 2)]
    changed = check_events([ev(1), {**ev(1), "data": {"x": 1}}])
    assert not changed.ok and "different content" in changed.conflicts[0]
    two_ids = check_events([ev(1), ev(1, id_="other")])
    assert not two_ids.ok and "two ids" in two_ids.conflicts[0]
    assert "VERDICT: FAILED" in gap.lines()[-1] and "VERDICT: OK" in v.lines()[-1]


def _chaos(tmp_path: Path, minutes: float, seed: int) -> tuple[int, ChaosRun, str]:
    out = io.StringIO()
    run = ChaosRun(minutes, seed, workdir=tmp_path / "chaos", out=out)
    rc = run.run()
    return rc, run, out.getvalue()


def test_chaos_run_one_minute_every_event_accounted_for(tmp_path: Path) -> None:
    rc, run, text = _chaos(tmp_path, 1.0, seed=7)
    assert rc == 0, text
    assert run.verdict.ok and run.verdict.distinct >= 100, text
    assert run.injected.get("sigkill", 0) >= 1 and run.lives >= 2, text
    assert sum(1 for f in FAULTS if run.injected.get(f)) >= 5, f"too few kinds of fault: {run.injected}\n{text}"
    assert "VERDICT: OK" in text


@pytest.mark.soak
def test_chaos_run_fifteen_minutes(tmp_path: Path) -> None:
    rc, run, text = _chaos(tmp_path, 15.0, seed=11)
    assert rc == 0, text
    assert all(run.injected.get(f) for f in FAULTS), run.injected


def test_chaos_command_bad_usage_is_one_line() -> None:
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "chaos", "--minutes", "0"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "--minutes" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "chaos", "--faults", "meteor"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "meteor" in r.stderr and "sigkill" in r.stderr


@pytest.mark.parametrize("name", ["fault-network", "fault-outage", "fault-devices"])
def test_builtin_fault_scenarios_load(name: str) -> None:
    from sim.scenario import builtin_scenarios, load_scenario
    assert name in builtin_scenarios()
    sc = load_scenario(name)
    assert sc.actions and sc.devices and sc.duration
    assert all(a.at < sc.duration for a in sc.actions)
