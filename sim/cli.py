"""The simulator's sub-commands of `anfang`: `sim` and `chaos`.

    anfang sim [--scenario NAME|FILE] [--broker URL] [--duration S] [--state-dir DIR]
    anfang chaos [--minutes N] [--seed S] [--scenario NAME] [--faults F,...] [--keep DIR]

Registered under the entry-point group `anfang.commands` like every family's
commands, so the gateway's own CLI never imports the simulator: `anfang run`
stays as lean as a gateway without it. `chaos` exits 0 when the verdict holds
(every event delivered in order, or its loss reported), 1 when it does not,
2 on bad usage; see sim/chaos.py and docs/faults.md.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from sim.chaos import FAULTS


def cmd_sim(args: argparse.Namespace) -> int:
    from sim.runner import SimRun
    from sim.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    run = SimRun(scenario, broker_url=args.broker, state_dir=Path(args.state_dir) if args.state_dir else None,
                 duration=args.duration)

    def on_signal(_signum: int, _frame: Any) -> None:
        run.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return run.run()


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
    p = subparsers.add_parser("sim", help="run the real gateway against simulated devices, printing forwarded events")
    p.add_argument("--scenario", default="default", help="built-in scenario name or scenario file")
    p.add_argument("--broker", help="mqtt://HOST:PORT of a broker (default: start a local mosquitto)")
    p.add_argument("--duration", type=float, help="seconds to run (default: the scenario's)")
    p.add_argument("--state-dir", help="keep the gateway's state here (default: a temporary folder)")
    p.set_defaults(func=cmd_sim)

    p = subparsers.add_parser("chaos", help="run the default scenario with random faults; verdict on every event")
    p.add_argument("--minutes", type=float, default=5.0, help="how long to inject faults (default 5)")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same seed, the same faults")
    p.add_argument("--scenario", default="default", help="built-in scenario or scenario file (default: default)")
    p.add_argument("--faults", help=f"comma-separated subset of: {', '.join(FAULTS)}")
    p.add_argument("--keep", metavar="DIR", help="keep the work folder (gateway logs, state, broker) here")
    p.set_defaults(func=cmd_chaos)
