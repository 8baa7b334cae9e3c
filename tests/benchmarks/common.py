"""What every benchmark returns, and how figures are printed.

Each benchmark module under tests/benchmarks/ has
    def run(quick: bool = False) -> list[Figure]
and `if __name__ == "__main__": main(run)`, so
    .venv/bin/python -m tests.benchmarks.bench_NAME [--quick]
runs it alone, and `make bench` runs them all into one table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import asdict, dataclass
from typing import Callable


@dataclass
class Figure:
    name: str                    # what was measured, e.g. "store-and-forward throughput"
    value: float
    unit: str                    # "msg/s", "ms", "MB", "%core", "fps", "ratio"
    baseline: float | None = None      # the same-run baseline (raw paho, bare frame diff...)
    baseline_name: str = ""
    target: str = ""             # the figure to reach, e.g. ">= 0.8 x baseline"
    ok: bool | None = None       # whether the target is met

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline


def machine() -> str:
    import os
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"


def format_table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "baseline", "ratio", "target", "ok")]
    for f in figures:
        rows.append((f.name, f"{f.value:,.3g} {f.unit}" if abs(f.value) < 1000 else f"{f.value:,.0f} {f.unit}",
                     f"{f.baseline:,.4g} ({f.baseline_name})" if f.baseline is not None else "",
                     f"{f.ratio:.2f}" if f.ratio is not None else "", f.target,
                     {True: "yes", False: "NO", None: ""}[f.ok]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main(run: Callable[..., list[Figure]]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller, faster run")
    parser.add_argument("--json", action="store_true", help="print figures as JSON lines")
    args = parser.parse_args()
    figures = run(quick=args.quick)
    if args.json:
        for f in figures:
            print(json.dumps({**asdict(f), "ratio": f.ratio}))
    else:
        print(f"# {machine()}")
        print(format_table(figures))
    sys.exit(0)
