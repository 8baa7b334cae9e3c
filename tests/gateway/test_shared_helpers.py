"""The shared helpers every family uses: backoff, atomic file replacement, renamed config keys."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from gateway.atomicfile import write_atomic
from gateway.backoff import Backoff, backoff_delay
from gateway.configfile import Problems, Section


def test_backoff_doubles_to_its_cap_and_a_success_starts_it_again() -> None:
    b = Backoff(initial=0.5, maximum=4.0)
    assert [b.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next() == 0.5


def test_jittered_backoff_stays_inside_its_window_and_is_spread() -> None:
    b = Backoff(initial=1.0, maximum=8.0, jitter=True, rng=random.Random(1))
    for _ in range(4):
        b.next()
    delays = []
    for _ in range(200):
        b.attempts = 4
        delays.append(b.next())
    assert all(1.0 <= d <= 8.0 for d in delays)
    assert len({round(d, 3) for d in delays}) > 150


def test_backoff_delay_without_rng_is_the_top_of_the_window() -> None:
    assert backoff_delay(0, 0.5, 30.0) == 0.5
    assert backoff_delay(3, 0.5, 30.0) == 4.0
    assert backoff_delay(99, 0.5, 30.0) == 30.0


def test_write_atomic_replaces_whole_and_keeps_the_previous(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, '{"v": 1}')
    write_atomic(target, b'{"v": 2}', keep_previous=".prev")
    assert target.read_text() == '{"v": 2}'
    assert (tmp_path / "state.json.prev").read_text() == '{"v": 1}'
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_write_atomic_names_the_file_it_could_not_write(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = tmp_path / "missing-dir" / "x.json"       # root ignores permissions: use a missing folder
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        target = ro / "x.json"
    with pytest.raises(OSError, match="x.json"):
        write_atomic(target, "x")


def test_an_old_key_spelling_is_refused_naming_the_new_one() -> None:
    problems = Problems()
    sec = Section({"baudrate": 9600}, "patrol[0]", problems)
    sec.renamed("baudrate", "baud")
    sec.int("baud", 9600)
    sec.finish()
    assert [str(p) for p in problems.items] == ["patrol[0].baudrate: renamed: use 'baud' instead"]
