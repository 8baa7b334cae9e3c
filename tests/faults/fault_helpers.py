"""Running `anfang sim` in-process on a fault scenario, and judging what reached the broker.

`SimInThread` runs a `SimRun` (its own persistent mosquitto, the real
supervisor, simulated devices, the fault proxy when the scenario uses network
actions) in a thread, keeps every event the sim's subscriber prints (with the
time it arrived), and lets the test look at the live supervisor: its status
line, its health, its store.
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

from gateway.store import read_outbox
from sim.chaos import Verdict, check_events
from sim.runner import SimRun
from sim.scenario import load_scenario
from tests.helpers import wait_until


class Lines(io.TextIOBase):
    """A text sink that keeps each JSON line with the monotonic time it arrived."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buf = ""
        self.items: list[tuple[float, dict[str, Any]]] = []

    def write(self, s: str) -> int:
        with self._lock:
            self._buf += s
            while "\n" in self._buf:
                line, self._buf = self._buf.split("\n", 1)
                if line.strip():
                    self.items.append((time.monotonic(), json.loads(line)))
        return len(s)

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e for _t, e in self.items]


class SimInThread:
    def __init__(self, tmp_path: Path, scenario_toml: str, *, duration: float = 300.0,
                 overrides: dict[str, Any] | None = None) -> None:
        path = tmp_path / "scenario.toml"
        path.write_text(scenario_toml)
        self.state = tmp_path / "state"
        self.out = Lines()
        self.run = SimRun(load_scenario(str(path)), state_dir=self.state, duration=duration, out=self.out,
                          config_overrides={"mqtt": {"keepalive_s": 5, "connect_timeout_s": 2.0, "reconnect_max_s": 1.0,
                                                     "health_interval_s": 1.0},
                                            "supervisor": {"watch_interval_s": 0.2}, **(overrides or {})})
        self.rc: int | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        self.rc = self.run.run()

    def __enter__(self) -> "SimInThread":
        self.thread.start()
        wait_until(self.run.ready.is_set, 30, message="the simulated gateway to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def sup(self):  # noqa: ANN201 - the live Supervisor
        return self.run.supervisor

    def t(self) -> float:
        """Seconds since the scenario's start (the clock of its `at` times)."""
        return time.monotonic() - self.run.started

    def wait_status(self, text: str, timeout: float = 20.0) -> str:
        return wait_until(lambda: (lambda s: s if text in s else None)(self.sup.status_line()), timeout,
                          message=lambda: f"status line with {text!r}; it says {self.sup.status_line()!r}")

    def wait_drained(self, timeout: float = 30.0) -> None:
        """Until the subscriber has every event made so far (the devices keep making more)."""
        target = self.sup.store.last_seq

        def drained() -> bool:
            return max((e["seq"] for e in self.out.events()), default=0) >= target
        wait_until(drained, timeout, interval=0.1,
                   message=lambda: f"delivery up to seq {target}: {self.sup.status_line()}")

    def stop(self) -> None:
        self.run.request_stop()
        self.thread.join(60)
        # let the subscriber settle was done by the runner

    def verdict(self) -> Verdict:
        """Everything printed, against the store's last seq; events still buffered at the stop count as kept."""
        depth, buffered = read_outbox(self.state / "gateway" / "events.db", limit=10 ** 7)
        v = check_events(self.out.events(), last_seq=depth.last_seq, buffered=[e.seq for e in buffered])
        v.missing = [s for s in v.missing if s not in set(v.buffered)]
        return v


def assert_no_loss(v: Verdict) -> None:
    assert v.ok, "\n".join(v.lines())


def probe_devices(interval: float = 0.05, names: tuple[str, ...] = ("tick",)) -> str:
    return "".join(f'[[device]]\nkind = "probe"\nname = "{n}"\nparams = {{ interval = {interval} }}\n\n'
                   for n in names)
