"""`anfang pump-report`: the fire pumps' test-run history from the gateway's state folder.

Reads the JSON-lines histories the driver writes (`<device>.pumptests.jsonl`
under `<state_dir>/drivers/fire_pump/`) and prints one line per recorded test
run, oldest first, or JSON lines with `--json`. Read-only; works while the
gateway runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from drivers.fire_pump.compliance import read_history

SUFFIX = ".pumptests.jsonl"


def find_histories(state_dir: Path) -> list[Path]:
    """History files under a gateway state folder (or the driver's own folder)."""
    for folder in (state_dir / "drivers" / "fire_pump", state_dir):
        files = sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []
        if files:
            return files
    return sorted(state_dir.rglob(f"*{SUFFIX}")) if state_dir.is_dir() else []


def format_run(rec: dict[str, Any]) -> str:
    def num(key: str, unit: str, fmt: str = "{:.1f}") -> str:
        v = rec.get(key)
        return "-" if v is None else fmt.format(v) + unit
    verdict = "ok" if rec.get("meets_minimum") else f"SHORT (< {rec.get('min_run_s', 0) / 60:g} min)"
    return (f"{rec.get('started', '?'):24}  {rec.get('device', '?'):16} {rec.get('kind', '?'):8} "
            f"run {num('run_s', ' s', '{:.0f}'):>7}  start {num('start_pressure', ' bar'):>8}  "
            f"to-running {num('time_to_running_s', ' s'):>7}  suction {num('suction_pressure', ' bar'):>8}  "
            f"discharge {num('discharge_pressure', ' bar'):>8}  {verdict}")


def cmd_pump_report(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    if not state_dir.is_dir():
        print(f"anfang: no such state folder: {state_dir}", file=sys.stderr)
        return 2
    files = find_histories(state_dir)
    records: list[dict[str, Any]] = []
    for f in files:
        for rec in read_history(f):
            rec.setdefault("device", f.name[:-len(SUFFIX)])
            if args.device and rec["device"] != args.device:
                continue
            records.append(rec)
    records.sort(key=lambda r: (str(r.get("started", "")), str(r.get("device", ""))))
    if args.json:
        for rec in records:
            print(json.dumps(rec, sort_keys=True))
        return 0
    if not records:
        what = f" of {args.device}" if args.device else ""
        print(f"no test runs{what} recorded under {state_dir}")
        return 0
    for rec in records:
        print(format_run(rec))
    return 0


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("pump-report", help="print the fire pumps' test-run history")
    p.add_argument("--state-dir", required=True, help="the gateway's state_dir")
    p.add_argument("--device", help="only this pump")
    p.add_argument("--json", action="store_true", help="one JSON object per test run")
    p.set_defaults(func=cmd_pump_report)
