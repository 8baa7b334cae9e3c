"""Start-up of the `anfang` command: what the entry-point plug-ins cost, and that `anfang run` does not pay it.

The gateway's own commands (`run`, `check-config`, ...) build their parser
without loading any `anfang.commands` entry point; `anfang --help` loads them
all, `anfang sim --help` only the simulator's. Each figure is the CPU time
(user + system) of one whole command, the median of several runs, against a
bare interpreter started the same way (`python -c pass`), so the machine's
load weighs on both alike. Idle memory of `anfang run` is in bench_forwarder.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys

from tests.benchmarks.common import Figure, main


def cpu_seconds(argv: list[str], runs: int) -> float:
    """Median CPU time (user + system) of running `argv` to completion."""
    times = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(times)


def run(quick: bool = False) -> list[Figure]:
    runs = 5 if quick else 15
    bare = cpu_seconds([sys.executable, "-c", "pass"], runs) * 1000
    anfang = [sys.executable, "-m", "gateway.cli"]
    figures = []
    for words, what in ((["run", "--help"], "gateway command (no plug-in loaded)"),
                        (["sim", "--help"], "one plug-in's command (its entry point only)"),
                        (["--help"], "every command listed (all plug-ins)")):
        ms = cpu_seconds([*anfang, *words], runs) * 1000
        figures.append(Figure(f"anfang {' '.join(words)}: start-up CPU, {what}", ms, "ms", bare, "bare python"))
    return figures


if __name__ == "__main__":
    main(run)
