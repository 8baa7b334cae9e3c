"""Reconnect backoff: exponential, capped, jittered (so a fleet does not reconnect in step)."""

import random

from gateway.forwarder import backoff_delay


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
