"""A small registry and plan shared by the patrol tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.configfile import Problems

from drivers.patrol.plan import Plan, Registry, load_plan, load_registry
from tests.helpers import wait_until

TZ = "Asia/Shanghai"
ZHANG = "0100D507D0"      # EM4100 guard card
LI = "0100D507D1"
WANG = "123:04567"        # Wiegand 26 guard card
UNKNOWN = "0A0B0C0D0E"

REGISTRY = f"""
[[guard]]
name = "Zhang Wei"
cards = ["{ZHANG}"]
[[guard]]
name = "Li Na"
cards = ["{LI}"]
[[guard]]
name = "Wang Fang"
cards = ["{WANG}"]

[[checkpoint]]
id = "gate"
place = "Main gate"
reader = "r-gate"
[[checkpoint]]
id = "carpark"
place = "Car park"
reader = "r-carpark"
[[checkpoint]]
id = "garden"
place = "Garden"
reader = "r-garden"
[[checkpoint]]
id = "back"
place = "Back wall"
reader = "r-back"
"""

PLAN = """
[[route]]
id = "grounds"
name = "Grounds"
checkpoints = ["gate", "carpark", "garden", "back"]
max_minutes = 10
min_minutes = 1
late_grace_minutes = 5

[[schedule]]
name = "day"
route = "grounds"
starts = ["08:00", "14:00"]
start_window_minutes = 30
early_minutes = 10

[[schedule]]
name = "night"
route = "grounds"
starts = ["20:00", "02:00"]
start_window_minutes = 30
early_minutes = 10
two_guards = true
pair_s = 60
"""


def write_plan(tmp: Path, registry: str = REGISTRY, plan: str = PLAN) -> tuple[Path, Path]:
    reg, pl = tmp / "registry.toml", tmp / "plan.toml"
    reg.write_text(registry, encoding="utf-8")
    pl.write_text(plan, encoding="utf-8")
    return reg, pl


def load(tmp: Path, registry: str = REGISTRY, plan: str = PLAN) -> tuple[Registry, Plan]:
    reg_path, plan_path = write_plan(tmp, registry, plan)
    problems = Problems()
    reg = load_registry(reg_path, problems)
    pl = load_plan(plan_path, reg, problems)
    assert not problems, [str(p) for p in problems.items]
    return reg, pl


def reader_up(driver, name: str, timeout: float = 5.0) -> None:
    wait_until(lambda: driver.health().devices.get(name) == "ok", timeout, message=f"reader {name} open")


def local(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=ZoneInfo(TZ))
