"""The arm and alarm state file under the driver's state folder, written atomically."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from gateway.atomicfile import write_atomic

log = logging.getLogger(__name__)

STATE_FILE = "ir_beam_state.json"


def load_state(path: Path) -> dict[str, Any]:
    """The saved state, or {} when there is none or it cannot be read (logged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.error("ir_beam state file %s unreadable, starting from the config: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Replace the state file atomically and durably (`gateway.atomicfile.write_atomic`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(state, indent=1, sort_keys=True))
