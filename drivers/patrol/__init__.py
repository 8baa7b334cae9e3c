"""Guard patrol: RFID checkpoint readers (EM4100, Wiegand, PN532) and live patrol-plan compliance.

The entry point `patrol = drivers.patrol:PatrolDriver` owns the `[[patrol]]`
readers and the `[patrol_plan]` table of the gateway config. See docs/patrol.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PatrolDriver"]


def __getattr__(name: str) -> Any:
    # imported on first use so the pure parsers load without the driver's dependencies
    if name == "PatrolDriver":
        from drivers.patrol.driver import PatrolDriver
        return PatrolDriver
    raise AttributeError(name)
