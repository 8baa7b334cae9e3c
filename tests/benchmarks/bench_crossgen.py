"""Cross-generator evaluation of the thrown-object detector: tuned on one scene generator, reported on the other.

    .venv/bin/python -m tests.benchmarks.bench_crossgen [--quick] [--json] [--jobs 2]
    .venv/bin/python -m tests.benchmarks.bench_crossgen --tune-on facade [--out FILE]
    .venv/bin/python -m tests.benchmarks.bench_crossgen --from-rows ROWS.jsonl [...]   (figures of saved runs)

A detector's figures on the renderer it was tuned on say little about a site.
Two generators written apart: A (`sim/scene.py`, the detector's defaults were
tuned on it) and B (`sim/facade/`, written independently). Two directions:

- "tuned on A, reported on B": the detector's default settings on B's clips;
- "tuned on B, reported on A": settings chosen on B's TUNING seeds by a small
  search (`--tune-on facade`, written to `TUNED_ON_FACADE`), on A's clips.

Each headline figure is the WORSE of the two directions, and says so.

Seeds: each generator has a REPORT set (figures) and a disjoint TUNING set
(only `--tune-on` uses it): A reports on seeds 0.. (its tuning seeds start at
100000, see bench_detection), B reports on seeds 0.. and tunes on 500000...

Clips: per generator and resolution, half throw clips (B: sizes drawn evenly
over the bins 2-3, 3-6, 6-12, 12+ px; every other throw clip has a companion
distractor, half of those rain) and half distractor-only clips, each kind in
turn. Each clip is rendered once, then run uncompressed and round-tripped
through H.264 (x264 veryfast/zerolatency, yuv420p, GOP 50) at the headline
rate (4 Mbit/s at 720p, 8 Mbit/s at 1080p); B's throw clips also at every
rate of the table (2, 4, 8, 16 Mbit/s) for recall vs size bin x bit rate.

Figures: recall for objects >= 3 px and per size bin, recall in rain, false
alarms per distractor clip (and per kind where there were any), floor within
+-1 of detected throws; each with k/n and a Wilson 95 % interval.

Knobs (environment): CROSSGEN_CLIPS (clips per generator at the first
resolution, default 24; --quick 12), CROSSGEN_CLIPS_HD (at the others,
default 8; --quick 4), CROSSGEN_SIZES ("1280x720,1920x1080"),
CROSSGEN_TABLE_RATES ("2M,4M,8M,16M"; "" for none; --quick none),
CROSSGEN_SEEDS=tuning (run the tuning seeds instead: for looking, not for
reporting), CROSSGEN_SETTINGS_A (a settings file to use on A instead of
TUNED_ON_FACADE), CROSSGEN_ROWS=FILE (every clip's result as JSON lines),
CROSSGEN_GENERATORS ("facade,scene": one of them runs one direction only),
CROSSGEN_SEED_OFFSET (start further into the report seeds, to add clips to an
earlier run's rows).
`--jobs 2` renders clips in a pool of two processes. The defaults take about
15 minutes on one core (H.264 encoding is half of it); the intervals are wide
at those counts: raise CROSSGEN_CLIPS for a tighter figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detection.detector import ThrowDetector
from detection.settings import DetectorSettings, load_settings
from tests.benchmarks.bench_detection import counted, wilson
from tests.benchmarks.common import Figure, format_table, machine

TUNED_ON_FACADE = Path(__file__).parent / "data" / "tuned_on_facade.toml"
REPORT_SEED0 = {"scene": 0, "facade": 0}
TUNING_SEED0 = {"scene": 100_000, "facade": 500_000}
HEADLINE_RATE = {720: "4M", 1080: "8M"}         # what IP cameras stream at these sizes
SIZE_BIN_NAMES = ("2-3", "3-6", "6-12", "12+")
SIZE_EDGES = (2.0, 3.0, 6.0, 12.0)
LABEL = {"facade": "tuned on A, reported on B", "scene": "tuned on B, reported on A"}

# the search of `--tune-on facade`: a few named settings, a few values each, one pass of coordinate ascent
TUNING_GRID: dict[str, tuple[float, ...]] = {
    "noise_k": (4.5, 5.5, 7.0),
    "diff_threshold_min": (10, 14, 18),
    "max_fit_rms_px": (1.4, 1.8, 2.6),
    "accel_min_ratio": (0.5, 0.6, 0.7),
    "streak_min_width_px": (2, 3, 4),
    "min_floors_fallen": (1.5, 2.0, 3.0),
    "max_unseen_fall_s": (0.3, 0.6),
    "stitch_max_gap_s": (0.0, 0.5),
}
TUNING_CLIPS = 48
TUNING_SIZE = (640, 360)
FALSE_ALARM_PENALTY = 10.0      # objective = recall (>= 3 px) - penalty x (distractor clips with a false alarm)


def size_bin(px: float) -> int:
    """Index of the size bin (0: 2-3 px ... 3: 12+ px); objects under 2 px fall in the first."""
    return max(0, sum(px >= e for e in SIZE_EDGES) - 1)


# -- the two generators behind one interface ------------------------------------------------------------

def a_kinds() -> tuple[tuple[str, ...], str]:
    from sim.scene import DISTRACTOR_KINDS, LIGHTING_KINDS
    return tuple(DISTRACTOR_KINDS) + ("shake",) + tuple(LIGHTING_KINDS), "rain"


def b_kinds() -> tuple[tuple[str, ...], str]:
    from sim.facade import DISTRACTOR_KINDS
    return tuple(DISTRACTOR_KINDS), "rain"


@dataclass(frozen=True)
class ClipJob:
    generator: str               # "scene" (A) or "facade" (B)
    seed: int
    kind: str                    # "throw" or a distractor kind
    companion: str               # "none" or a distractor kind
    width: int
    height: int
    rates: tuple[str, ...]       # "" is uncompressed
    size_bin: int | None = None  # B: the throw's size bin


def plan(generator: str, n: int, seed0: int, width: int, height: int, rates_throw: tuple[str, ...],
         rates_other: tuple[str, ...], first: int = 0) -> list[ClipJob]:
    """The clips of one generator at one size: throws and distractor-only clips alternating.

    Clip i (from `first`) has seed seed0 + i, so a run that starts further on
    continues the cycle of kinds and sizes where an earlier one stopped.
    """
    kinds, rain = a_kinds() if generator == "scene" else b_kinds()
    others = [k for k in kinds if k != rain]
    jobs = []
    for i in range(first, first + n):
        seed = seed0 + i
        j = i // 2
        if i % 2 == 0:
            companion = ("none", rain, "none", others[(j // 4) % len(others)])[j % 4]
            jobs.append(ClipJob(generator, seed, "throw", companion, width, height, rates_throw,
                                size_bin=(j + j // 4) % 4 if generator == "facade" else None))
        else:
            jobs.append(ClipJob(generator, seed, kinds[j % len(kinds)], "none", width, height, rates_other))
    return jobs


def render(job: ClipJob) -> tuple[np.ndarray, float, list[dict], object, bool]:
    """(frames, fps, throws as dicts with floor/t_release/t_land/size_px, calibration, night)."""
    if job.generator == "scene":
        from sim.scene import random_scene, render_clip, scene_calibration
        spec = random_scene(job.seed, job.kind, width=job.width, height=job.height,
                            with_distractor=None if job.companion == "none" else job.companion)
        frames, fps, truth = render_clip(spec)
        throws = [{"floor": t.floor, "t_release": t.t_release, "t_land": t.t_land, "size_px": t.size_px}
                  for t in truth.throws]
        return frames, fps, throws, scene_calibration(spec), bool(spec.night)
    from sim.facade import calibration, random_clip, render_clip
    spec = random_clip(job.seed, job.kind, job.width, job.height,
                       companion=None if job.companion == "none" else job.companion, size_bin=job.size_bin)
    frames, fps, truth = render_clip(spec)
    throws = [{"floor": t.floor, "t_release": t.t_release, "t_land": t.t_land, "size_px": t.size_px}
              for t in truth.throws]
    return frames, fps, throws, calibration(spec), truth.night


def detect(frames: np.ndarray, fps: float, cal, settings: DetectorSettings | None) -> list:
    det = ThrowDetector(cal, settings=settings, fps=fps)
    found = []
    for i, f in enumerate(frames):
        found += det.process(f, i / fps)
    return found + det.flush()


def score(found: list, throws: list[dict]) -> dict:
    """Detected (a detection overlapping the fall), its floor within +-1, and false alarms."""
    if not throws:
        return {"detected": False, "floor_ok": False, "false_alarms": len(found), "floor_found": None}
    tt = throws[0]
    match = [d for d in found if d.t_start - 1.0 <= tt["t_land"] and d.t_end >= tt["t_release"]]
    if not match:
        return {"detected": False, "floor_ok": False, "false_alarms": len(found), "floor_found": None}
    best = min(match, key=lambda d: abs(d.floor - tt["floor"]))
    return {"detected": True, "floor_ok": abs(best.floor - tt["floor"]) <= 1, "false_alarms": len(found) - 1,
            "floor_found": best.floor}


def settings_for(generator: str) -> tuple[DetectorSettings | None, str]:
    """The settings of a direction: defaults (tuned on A) on B; the facade-tuned file on A."""
    if generator == "facade":
        return None, "defaults"
    path = Path(os.environ.get("CROSSGEN_SETTINGS_A", TUNED_ON_FACADE))
    if path.exists():
        return load_settings(path), path.name
    return None, "defaults (NOT tuned on B: run --tune-on facade)"


def run_job(job: ClipJob) -> list[dict]:
    """Render one clip, run the detector on it at each rate, one row per rate."""
    from sim.facade.codec import h264_roundtrip
    frames, fps, throws, cal, night = render(job)
    settings, _ = settings_for(job.generator)
    rows = []
    for rate in job.rates:
        seen = h264_roundtrip(frames, fps, rate) if rate else frames
        found = detect(seen, fps, cal, settings)
        row = {"generator": job.generator, "seed": job.seed, "kind": job.kind, "companion": job.companion,
               "width": job.width, "height": job.height, "rate": rate, "night": night,
               "size_px": throws[0]["size_px"] if throws else 0.0, "floor": throws[0]["floor"] if throws else 0}
        row.update(score(found, throws))
        rows.append(row)
    return rows


def run_jobs(jobs: list[ClipJob], n_proc: int, progress: bool) -> list[dict]:
    rows: list[dict] = []
    if n_proc > 1:
        with multiprocessing.get_context("spawn").Pool(n_proc) as pool:
            for r in pool.imap_unordered(run_job, jobs):
                rows += r
    else:
        for i, job in enumerate(jobs):
            rows += run_job(job)
            if progress:
                print(f"# {i + 1}/{len(jobs)} {job}", file=sys.stderr, flush=True)
    return rows


# -- figures ---------------------------------------------------------------------------------------------

@dataclass
class Ratio:
    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def low(self) -> float:
        return wilson(self.k, self.n)[0]


def measures(rows: list[dict]) -> dict[str, Ratio]:
    """The figures of one direction at one size and rate."""
    throws = [r for r in rows if r["kind"] == "throw"]
    distr = [r for r in rows if r["kind"] != "throw"]
    big = [r for r in throws if r["size_px"] >= 3.0]
    out = {"recall >= 3 px": Ratio(sum(r["detected"] for r in big), len(big)),
           "recall in rain, >= 3 px": Ratio(sum(r["detected"] for r in big if r["companion"] == "rain"),
                                            sum(1 for r in big if r["companion"] == "rain")),
           "false alarms per distractor clip": Ratio(sum(1 for r in distr if r["false_alarms"]), len(distr)),
           "floor within +-1 of detected throws": Ratio(sum(r["floor_ok"] for r in throws if r["detected"]),
                                                        sum(r["detected"] for r in throws))}
    for b, name in enumerate(SIZE_BIN_NAMES):
        sub = [r for r in throws if size_bin(r["size_px"]) == b]
        out[f"recall {name} px"] = Ratio(sum(r["detected"] for r in sub), len(sub))
    return out


LOWER_IS_BETTER = {"false alarms per distractor clip"}
TARGETS = {"recall >= 3 px": ">= 0.95", "recall in rain, >= 3 px": ">= 0.95",
           "false alarms per distractor clip": "<= 0.01", "floor within +-1 of detected throws": ">= 0.90"}


def meets(name: str, value: float) -> bool | None:
    t = TARGETS.get(name)
    if not t:
        return None
    op, v = t.split()
    return value >= float(v) if op == ">=" else value <= float(v)


def worse(name: str, a: Ratio, b: Ratio) -> Ratio:
    if a.n == 0:
        return b
    if b.n == 0:
        return a
    if name in LOWER_IS_BETTER:
        return a if a.value >= b.value else b
    return a if a.value <= b.value else b


def config_name(width: int, height: int, rate: str) -> str:
    return f"{width}x{height} {'uncompressed' if not rate else 'H.264 ' + rate.replace('M', ' Mbit/s')}"


def figures(rows: list[dict]) -> list[Figure]:
    figs: list[Figure] = []
    _, settings_a = settings_for("scene")
    sizes = sorted({(r["width"], r["height"]) for r in rows})
    for w, h in sizes:
        head_rate = HEADLINE_RATE.get(h, "4M")
        for rate in ("", head_rate):
            sel = [r for r in rows if (r["width"], r["height"]) == (w, h) and r["rate"] == rate]
            by_gen = {g: measures([r for r in sel if r["generator"] == g]) for g in ("facade", "scene")}
            cfg = config_name(w, h, rate)
            for name in by_gen["facade"]:
                a, b = by_gen["facade"][name], by_gen["scene"][name]
                hw = worse(name, a, b)
                if hw.n == 0:
                    continue
                which = "A->B" if hw is a else "B->A"
                figs.append(Figure(f"{cfg}: {name} ({counted(hw.k, hw.n)}; worse of A->B {a.k}/{a.n}, "
                                   f"B->A {b.k}/{b.n}: {which})", hw.value, "ratio", target=TARGETS.get(name, ""),
                                   ok=meets(name, hw.value)))
            # false alarms by kind, each direction, where there were any (all kinds at the uncompressed size)
            for g in ("facade", "scene"):
                by_kind: dict[str, list[dict]] = defaultdict(list)
                for r in sel:
                    if r["generator"] == g and r["kind"] != "throw":
                        by_kind[r["kind"]].append(r)
                for k, sub in sorted(by_kind.items()):
                    k_fa = sum(1 for r in sub if r["false_alarms"])
                    if k_fa or not rate:
                        figs.append(Figure(f"  {cfg}, {LABEL[g]}: {k} only, false-alarm clips ({counted(k_fa, len(sub))})",
                                           k_fa / len(sub), "ratio", target="<= 0.01"))
    # recall vs size bin x bit rate (B's throws; A's where they were run at those rates)
    for g in ("facade", "scene"):
        for w, h in sizes:
            rates = sorted({r["rate"] for r in rows if r["generator"] == g and (r["width"], r["height"]) == (w, h)
                            and r["kind"] == "throw"}, key=lambda x: float(x[:-1]) if x else 0.0)
            if len(rates) <= 2:
                continue
            for rate in rates:
                sel = [r for r in rows if r["generator"] == g and (r["width"], r["height"]) == (w, h)
                       and r["rate"] == rate and r["kind"] == "throw"]
                m = measures(sel)
                cells = ", ".join(f"{n} px {m[f'recall {n} px'].k}/{m[f'recall {n} px'].n}" for n in SIZE_BIN_NAMES)
                figs.append(Figure(f"  table {LABEL[g]}, {config_name(w, h, rate)}: recall by size ({cells})",
                                   m["recall >= 3 px"].value, "ratio", target="(recall >= 3 px)"))
    figs.append(Figure(f"settings: A->B defaults; B->A {settings_a}", 0.0, "-"))
    return figs


def size_rate_table(rows: list[dict], generator: str = "facade") -> str:
    """Markdown table of recall by size bin x bit rate, per frame size (for docs/camera.md)."""
    lines = ["| frame size | stream | " + " | ".join(f"{n} px" for n in SIZE_BIN_NAMES) + " |",
             "|---|---|" + "---|" * len(SIZE_BIN_NAMES)]
    sel = [r for r in rows if r["generator"] == generator and r["kind"] == "throw"]
    for w, h in sorted({(r["width"], r["height"]) for r in sel}):
        for rate in sorted({r["rate"] for r in sel if (r["width"], r["height"]) == (w, h)},
                           key=lambda x: float(x[:-1]) if x else 0.0):
            m = measures([r for r in sel if (r["width"], r["height"]) == (w, h) and r["rate"] == rate])
            cells = []
            for n in SIZE_BIN_NAMES:
                q = m[f"recall {n} px"]
                cells.append(f"{q.k}/{q.n} ({q.value:.2f})" if q.n else "-")
            lines.append(f"| {w}x{h} | {'uncompressed' if not rate else rate.replace('M', ' Mbit/s')} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def env_list(name: str, default: str) -> list[str]:
    return [x.strip() for x in os.environ.get(name, default).split(",") if x.strip()]


def build_jobs(quick: bool) -> list[ClipJob]:
    sizes = [tuple(int(v) for v in s.split("x")) for s in env_list("CROSSGEN_SIZES", "1280x720,1920x1080")]
    n_first = int(os.environ.get("CROSSGEN_CLIPS", 12 if quick else 24))
    n_hd = int(os.environ.get("CROSSGEN_CLIPS_HD", 4 if quick else 8))
    table = env_list("CROSSGEN_TABLE_RATES", "" if quick else "2M,4M,8M,16M")
    tuning = os.environ.get("CROSSGEN_SEEDS", "report") == "tuning"
    jobs = []
    for i, (w, h) in enumerate(sizes):
        n = n_first if i == 0 else n_hd
        head = HEADLINE_RATE.get(h, "4M")
        for g in env_list("CROSSGEN_GENERATORS", "facade,scene"):
            seed0 = (TUNING_SEED0 if tuning else REPORT_SEED0)[g]
            rates_throw = ("",) + tuple(dict.fromkeys([head] + (table if g == "facade" else [])))
            jobs += plan(g, n, seed0, w, h, rates_throw, ("", head), first=int(os.environ.get("CROSSGEN_SEED_OFFSET", 0)))
    return jobs


def run(quick: bool = False, jobs: int = 1) -> list[Figure]:
    if jobs <= 1:
        try:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})      # one core
        except (AttributeError, OSError):
            pass
    t0 = time.perf_counter()
    rows = run_jobs(build_jobs(quick), jobs, progress=bool(os.environ.get("BENCH_VERBOSE")))
    if os.environ.get("CROSSGEN_ROWS"):
        Path(os.environ["CROSSGEN_ROWS"]).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    print(size_rate_table(rows), file=sys.stderr)
    figs = figures(rows)
    figs.append(Figure(f"run time ({len({(r['generator'], r['seed'], r['width']) for r in rows})} clips)",
                       time.perf_counter() - t0, "s"))
    return figs


# -- the search: tuned on B ------------------------------------------------------------------------------

def tune_on_facade(out: Path, n: int = TUNING_CLIPS, progress: bool = True) -> dict[str, float]:
    """Choose values for TUNING_GRID's settings on B's tuning seeds; write them as a settings file."""
    w, h = TUNING_SIZE
    fields = {f.name for f in dataclasses.fields(DetectorSettings)}
    grid = {k: v for k, v in TUNING_GRID.items() if k in fields}
    clips = []
    for job in plan("facade", n, TUNING_SEED0["facade"], w, h, ("",), ("",)):
        frames, fps, throws, cal, _ = render(job)
        clips.append((job, frames, fps, throws, cal))

    def objective(values: dict[str, float]) -> float:
        settings = dataclasses.replace(DetectorSettings(), **values)
        rows = []
        for job, frames, fps, throws, cal in clips:
            row = {"kind": job.kind, "companion": job.companion, "size_px": throws[0]["size_px"] if throws else 0.0}
            row.update(score(detect(frames, fps, cal, settings), throws))
            rows.append(row)
        m = measures(rows)
        return m["recall >= 3 px"].value - FALSE_ALARM_PENALTY * m["false alarms per distractor clip"].value

    defaults = DetectorSettings()
    best = {k: getattr(defaults, k) for k in grid}
    best_score = objective(best)
    if progress:
        print(f"# defaults {best}: {best_score:.3f}", file=sys.stderr, flush=True)
    for name, values in grid.items():
        for v in values:
            if v == best[name]:
                continue
            trial = {**best, name: type(getattr(defaults, name))(v)}
            s = objective(trial)
            if progress:
                print(f"# {name} = {v}: {s:.3f}", file=sys.stderr, flush=True)
            if s > best_score + 1e-9:
                best, best_score = trial, s
    out.parent.mkdir(parents=True, exist_ok=True)
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in best.items())
    out.write_text(f"# Detector settings chosen on generator B's tuning seeds ({n} clips from seed "
                   f"{TUNING_SEED0['facade']}, {w}x{h}) by tests/benchmarks/bench_crossgen.py --tune-on facade:\n"
                   f"# one pass over {', '.join(grid)}, objective recall(>= 3 px) - {FALSE_ALARM_PENALTY:g} x "
                   f"false-alarm clips = {best_score:.3f}\n{body}\n")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller, faster run")
    parser.add_argument("--json", action="store_true", help="print figures as JSON lines")
    parser.add_argument("--jobs", type=int, default=1, help="render and detect clips in this many processes")
    parser.add_argument("--tune-on", choices=["facade"], help="choose settings on this generator's tuning seeds")
    parser.add_argument("--out", type=Path, default=TUNED_ON_FACADE, help="where --tune-on writes the settings")
    parser.add_argument("--from-rows", type=Path, nargs="+", help="figures from saved CROSSGEN_ROWS files, no run")
    args = parser.parse_args()
    if args.tune_on:
        best = tune_on_facade(args.out, n=int(os.environ.get("CROSSGEN_TUNING_CLIPS", TUNING_CLIPS)))
        print(json.dumps(best))
        return
    if args.from_rows:
        rows = [json.loads(line) for p in args.from_rows for line in p.read_text().splitlines() if line.strip()]
        print(size_rate_table(rows), file=sys.stderr)
        figs = figures(rows)
    else:
        figs = run(quick=args.quick, jobs=args.jobs)
    if args.json:
        for f in figs:
            print(json.dumps({**dataclasses.asdict(f), "ratio": f.ratio}))
    else:
        print(f"# {machine()}")
        print(format_table(figs))


if __name__ == "__main__":
    main()
