"""Reconnect backoff: exponential, capped, jittered (so a fleet does not reconnect in step).

Every part of the gateway that retries uses `gateway.backoff`; the forwarder's
reconnects and the supervisor's driver restarts follow the same rule.
"""

import random

from gateway.backoff import Backoff, backoff_delay
from drivers.patrol.transport import ReopeningPort


def test_backoff_grows_exponentially_up_to_the_cap_with_full_jitter() -> None:
    rng = random.Random(3)
    for attempt in range(12):
        cap = min(30.0, 0.5 * 2 ** attempt)
        delays = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(200)]
        assert all(0.5 <= d <= cap for d in delays)
        if cap > 1:
            assert max(delays) > 0.8 * cap, "the upper end of the window is used"
            assert len({round(d, 3) for d in delays}) > 150, "delays are spread, not in step"
    assert backoff_delay(1000, 0.5, 30.0, rng) <= 30.0


def test_the_forwarder_reconnects_with_the_one_backoff() -> None:
    import gateway.forwarder
    import gateway.uplink

    assert gateway.forwarder.backoff_delay is backoff_delay
    assert gateway.uplink.backoff_delay is backoff_delay


def test_a_serial_reader_reopens_after_the_shared_doubling_delays() -> None:
    """A patrol reader whose port cannot be opened tries again after 0.5, 1, 2 ... s, capped."""
    now = [0.0]
    tries: list[float] = []

    def opener(**_: object) -> object:
        tries.append(now[0])
        raise OSError("no such device")

    port = ReopeningPort("/dev/ttyUSB9", 9600, lambda: now[0], Backoff(0.5, 2.0), opener=opener)
    while now[0] < 10.0:
        port.ensure_open()
        now[0] = round(now[0] + 0.05, 2)
    gaps = [round(b - a, 2) for a, b in zip(tries, tries[1:])]
    assert gaps[:3] == [0.5, 1.0, 2.0] and set(gaps[3:]) == {2.0}
