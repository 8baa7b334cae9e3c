"""The `anfang chaos` sub-command: the default scenario under random faults, then a verdict.

    anfang chaos [--minutes N] [--seed S] [--scenario NAME] [--keep DIR]

Exit 0 when the verdict holds (every event delivered in order, or its loss
reported), 1 when it does not, 2 on bad usage. See sim/chaos.py and docs/faults.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sim.chaos import FAULTS


def cmd_chaos(args: argparse.Namespace) -> int:
    from sim.chaos import ChaosRun

    if args.minutes <= 0:
        print("anfang: --minutes must be more than 0", file=sys.stderr)
        return 2
    faults = tuple(args.faults.split(",")) if args.faults else FAULTS
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        print(f"anfang: unknown fault(s) {', '.join(unknown)} (known: {', '.join(FAULTS)})", file=sys.stderr)
        return 2
    run = ChaosRun(args.minutes, args.seed, workdir=Path(args.keep) if args.keep else None,
                   scenario=args.scenario, faults=faults)
    return run.run()


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("chaos", help="run the default scenario with random faults; verdict on every event")
    p.add_argument("--minutes", type=float, default=5.0, help="how long to inject faults (default 5)")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same seed, the same faults")
    p.add_argument("--scenario", default="default", help="built-in scenario or scenario file (default: default)")
    p.add_argument("--faults", help=f"comma-separated subset of: {', '.join(FAULTS)}")
    p.add_argument("--keep", metavar="DIR", help="keep the work folder (gateway logs, state, broker) here")
    p.set_defaults(func=cmd_chaos)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="anfang")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["chaos", *argv])
    return cmd_chaos(args)
