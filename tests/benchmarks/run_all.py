"""Run every benchmark (tests/benchmarks/bench_*.py), each in a fresh interpreter, and print one table of figures and ratios.

    .venv/bin/python -m tests.benchmarks.run_all [--quick] [--only NAME] [--output docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import tests.benchmarks as package
from tests.benchmarks.common import Figure, format_table, machine


def discover() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("bench_"))


def run_isolated(name: str, quick: bool) -> tuple[list[Figure], str]:
    """Run one benchmark in a fresh interpreter: what ran before (a large heap that
    slows the garbage collector, threads, children) must not weigh on its figures."""
    cmd = [sys.executable, "-m", f"tests.benchmarks.{name}", "--json"] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    figures = []
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            row.pop("ratio", None)
            figures.append(Figure(**row))
    if proc.returncode != 0:
        return figures, f"exit code {proc.returncode}\n" + proc.stderr[-3000:]
    return figures, ""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", help="run only these bench_NAME modules")
    parser.add_argument("--output", help="also write the report (Markdown) to this file")
    args = parser.parse_args()
    names = [n for n in discover() if not args.only or n in args.only or n.removeprefix("bench_") in args.only]
    sections: list[tuple[str, list[Figure], float, str]] = []
    failed = 0
    for name in names:
        print(f"== {name} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        figures, error = run_isolated(name, args.quick)
        if error:
            failed += 1
        sections.append((name, figures, time.monotonic() - t0, error))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Benchmarks", "", f"Run {stamp} on {machine()}{' (quick)' if args.quick else ''}.",
             f"Command: `make bench` (`.venv/bin/python -m tests.benchmarks.run_all`).", ""]
    for name, figures, secs, error in sections:
        lines += [f"## {name.removeprefix('bench_')} ({secs:.0f} s)", "", "```"]
        lines += [format_table(figures) if figures else "(no figures)"]
        if error:
            lines += ["FAILED:", error]
        lines += ["```", ""]
        notes = getattr(importlib.import_module(f"tests.benchmarks.{name}"), "NOTES", "")
        if notes:
            lines += [notes.strip(), ""]
    report = "\n".join(lines)
    print(report)
    if args.output:
        Path(args.output).write_text(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
