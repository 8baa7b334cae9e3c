"""`python -m sim.facade render ...`: one clip of generator B on disk, ready for `anfang detect`.

Writes into DIR: `clip.npz` (frames, fps) or, with --bitrate, `clip.mp4`
(H.264 as an IP camera streams it), `calibration.toml` (what a technician
would mark) and `truth.json` (what really happened), so an integrator can run

    anfang detect DIR/clip.npz --calibration DIR/calibration.toml --json

and compare with the truth. Bad arguments give one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from sim.facade.clip import calibration, render_clip
from sim.facade.codec import parse_bitrate, write_mp4
from sim.facade.draw import DISTRACTOR_KINDS, random_clip


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"bad --size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    if w < 64 or h < 64 or w % 2 or h % 2:
        raise ValueError(f"bad --size {text!r}: width and height must be even and at least 64")
    return w, h


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.facade", description="Generator B: facade scenes.")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="render one clip with its calibration and truth")
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--kind", default="throw", help=f"throw or a distractor kind: {', '.join(DISTRACTOR_KINDS)}")
    r.add_argument("--companion", help="a distractor kind to add to a throw")
    r.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT (even)")
    r.add_argument("--seconds", type=float, default=6.0)
    r.add_argument("--bitrate", help="write an H.264 clip.mp4 at this rate (e.g. 4M) instead of clip.npz")
    r.add_argument("--size-bin", type=int, choices=range(4), help="throw size bin: 0 2-3, 1 3-6, 2 6-12, 3 12+ px")
    r.add_argument("--out", type=Path, required=True, help="directory to write into")
    args = parser.parse_args(argv)
    try:
        w, h = parse_size(args.size)
        bitrate = parse_bitrate(args.bitrate) if args.bitrate else None
        if args.seconds <= 0:
            raise ValueError(f"bad --seconds {args.seconds}: must be positive")
        spec = random_clip(args.seed, args.kind, w, h, companion=args.companion, size_bin=args.size_bin,
                           seconds=args.seconds)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        frames, fps, truth = render_clip(spec)
        args.out.mkdir(parents=True, exist_ok=True)
        if bitrate:
            write_mp4(args.out / "clip.mp4", frames, fps, bitrate)
        else:
            np.savez_compressed(args.out / "clip.npz", frames=frames, fps=np.float64(fps))
        (args.out / "calibration.toml").write_text(calibration(spec).to_toml())
        (args.out / "truth.json").write_text(truth.to_json() + "\n")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(args.out / ("clip.mp4" if bitrate else "clip.npz"))
    return 0
