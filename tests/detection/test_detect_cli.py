"""`anfang detect` through its argparse sub-command, on small npz clips."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from detection.cli import add_commands
from detection.clip import ClipError, load_clip, save_npz
from sim.scene import SceneSpec, ThrowSpec, render_clip, scene_calibration


def run(argv):
    parser = argparse.ArgumentParser(prog="anfang")
    add_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def throw_clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip")
    spec = SceneSpec(width=400, height=225, seconds=4.0, seed=2, throws=[ThrowSpec(floor=12, t_release=0.9)])
    frames, fps, _ = render_clip(spec)
    save_npz(d / "throw.npz", frames, fps)
    (d / "cal.toml").write_text(scene_calibration(spec).to_toml())
    return d


def test_detect_prints_one_json_object_per_throw(throw_clip, capsys):
    rc = run(["detect", str(throw_clip / "throw.npz"), "--calibration", str(throw_clip / "cal.toml"), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(out) == 1
    obj = json.loads(out[0])
    assert abs(obj["floor"] - 12) <= 1
    lo, hi = obj["floor_range"]
    assert lo <= obj["floor"] <= hi
    assert 0 <= obj["confidence"] <= 1
    assert obj["t_start"] < obj["t_end"] <= 4.0
    assert all(len(p) == 3 for p in obj["track"])


def test_detect_human_output_and_settings(throw_clip, capsys):
    (throw_clip / "s.toml").write_text("[detection]\nmin_floors_fallen = 40.0\n")
    rc = run(["detect", str(throw_clip / "throw.npz"), "--calibration", str(throw_clip / "cal.toml"),
              "--settings", str(throw_clip / "s.toml")])
    out = capsys.readouterr().out
    assert rc == 0 and out.startswith("0 throw(s)")             # nobody falls 40 floors here


def test_detect_without_calibration_still_runs(throw_clip, capsys):
    assert run(["detect", str(throw_clip / "throw.npz"), "--json"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1


@pytest.mark.parametrize("setup,message", [
    (lambda p: None, "clip not found"),
    (lambda p: p.write_bytes(b"not a zip"), "not a readable npz"),
    (lambda p: np.savez(p, frames=np.zeros((2, 4, 4), np.uint8)), "needs 'frames' and 'fps'"),
    (lambda p: np.savez(p, frames=np.zeros((4, 4), np.uint8), fps=25.0), "N x H x W"),
])
def test_bad_clips_are_one_line_and_exit_2(tmp_path, capsys, setup, message):
    p = tmp_path / "bad.npz"
    setup(p)
    assert run(["detect", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_bad_calibration_names_the_key(throw_clip, tmp_path, capsys):
    cal = tmp_path / "cal.toml"
    cal.write_text("floors = [{floor = 1, y = 100}]\n")
    assert run(["detect", str(throw_clip / "throw.npz"), "--calibration", str(cal)]) == 2
    assert "floors: needs at least two floors" in capsys.readouterr().err


def test_video_files_need_pyav(tmp_path):
    p = tmp_path / "x.mp4"
    p.write_bytes(b"\x00" * 10)
    try:
        import av  # noqa: F401
    except ImportError:
        with pytest.raises(ClipError, match="video"):
            load_clip(p)
    else:
        with pytest.raises(ClipError):
            load_clip(p)
