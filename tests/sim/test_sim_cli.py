"""`anfang sim`: the real supervisor with simulated devices, events printed as forwarded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sim.scenario import builtin_scenarios, load_scenario

PROBE_SCENARIO = """
description = "probe ticks through a broker outage"
duration = 6
[[device]]
kind = "probe"
name = "tick"
params = { interval = 0.1 }
[[action]]
at = 1.5
do = "broker_down"
until = 3.5
"""


def run_sim(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "sim", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def test_sim_prints_forwarded_events_as_json_lines_through_a_broker_outage(tmp_path: Path) -> None:
    scenario = tmp_path / "outage.toml"
    scenario.write_text(PROBE_SCENARIO)
    r = run_sim("--scenario", str(scenario), "--state-dir", str(tmp_path / "state"))
    assert r.returncode == 0, r.stderr[-2000:]
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events, r.stderr[-2000:]
    assert events[0]["type"] == "gateway_started"
    ticks = [e for e in events if e["type"] == "sim_tick"]
    assert len(ticks) >= 20
    seqs = sorted({e["seq"] for e in events})
    # events made during the outage arrive after it, none missing up to the last one printed
    assert seqs == list(range(1, seqs[-1] + 1))
    assert {e["site"] for e in events} == {"sim"}


def test_flood_scenario_exists_and_default_scenario_is_valid() -> None:
    names = builtin_scenarios()
    assert "default" in names and "flood" in names
    default = load_scenario("default")
    kinds = {d.kind for d in default.devices}
    assert "probe" in kinds
    assert load_scenario("flood").devices


def test_unknown_scenario_is_one_clear_line(tmp_path: Path) -> None:
    r = run_sim("--scenario", "no-such-scenario", "--duration", "1")
    assert r.returncode == 2
    assert "no-such-scenario" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[[action]]\nat = 1\ndo = "intrude"\ndevice = "ghost"\n')
    r = run_sim("--scenario", str(bad), "--duration", "1")
    assert r.returncode == 2 and "action[0].device" in r.stderr
