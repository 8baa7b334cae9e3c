"""Hypothesis settings for the fuzz tests: bounded in the default suite, bigger under `make soak`.

No deadline (a loaded CI machine must not turn slowness into failures); the
default profile is a bounded number of examples so the whole fuzz folder runs
in seconds; `SOAK` is used by the soak-marked twins of each target.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

CI = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.filter_too_much])
SOAK = settings(max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                            HealthCheck.filter_too_much])
