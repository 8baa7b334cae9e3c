"""Config validation: every problem named by its full key, as `anfang check-config` prints it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from gateway.configfile import Problems
from drivers.fire_pump import FirePumpDriver

EXAMPLE = Path(__file__).parents[3] / "examples" / "fire_pump.toml"


def parse(text: str, base: Path | None = None):
    problems = Problems()
    cfg = FirePumpDriver.parse_config(tomllib.loads(text), problems, base)
    return cfg, [str(p) for p in problems.items]


def test_example_config_is_valid():
    cfg, problems = parse(EXAMPLE.read_text(), EXAMPLE.parent)
    assert problems == []
    assert [p.name for p in cfg.panels] == ["pump-room-electric", "pump-room-diesel", "pump-room-sprinkler"]
    assert cfg.panels[1].pump_type == "diesel" and cfg.panels[1].compliance.minimum == 1800
    assert cfg.panels[0].compliance.minimum == 600 and cfg.panels[0].writable == {}


def test_problems_name_their_keys(tmp_path):
    _, problems = parse('''
[[fire_pump]]
name = "a"
host = "10.0.0.1"
map = "electric"
serial_port = "/dev/ttyUSB0"
polling = 3
[[fire_pump]]
name = "b"
transport = "rtu"
serial_port = "/dev/ttyUSB0"
unit = 300
map = "nope"
[[fire_pump]]
name = "c"
transport = "rtu"
serial_port = "/dev/ttyUSB1"
unit = 2
[[fire_pump]]
name = "d"
transport = "rtu"
serial_port = "/dev/ttyUSB1"
unit = 2
baud = 19200
[[fire_pump]]
name = "a"
host = "10.0.0.2"
[[fire_pump.write]]
address = 5
allow = true
''', tmp_path)
    text = "\n".join(problems)
    assert 'fire_pump[0].serial_port: only for transport = "rtu"' in text
    assert "fire_pump[0].polling: unknown key" in text
    assert "fire_pump[1].unit: must be at most 247" in text
    assert "fire_pump[1].map: unknown map 'nope'" in text
    assert "fire_pump[3].unit: unit 2 on /dev/ttyUSB1 is already panel 'c'" in text
    assert "fire_pump[3].baud: serial settings differ" in text
    assert "fire_pump[4].write[0].allow: unknown key" in text


def test_duplicate_names_refused():
    _, problems = parse('''
[[fire_pump]]
name = "a"
host = "10.0.0.1"
[[fire_pump]]
name = "a"
host = "10.0.0.2"
''')
    assert problems == ["fire_pump[1].name: duplicate panel name 'a'"]


def test_technician_map_relative_to_config(tmp_path):
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "acme.toml").write_text('''
name = "acme"
[[point]]
name = "running"
role = "running"
fc = 2
address = 0
''')
    cfg, problems = parse('''
[[fire_pump]]
name = "a"
host = "10.0.0.1"
map = "maps/acme.toml"
''', tmp_path)
    assert problems == [] and cfg.panels[0].regmap.name == "acme"


def test_old_key_spellings_are_refused_naming_the_new_key():
    _, problems = parse('''
[[fire_pump]]
name = "a"
transport = "rtu"
serial_port = "/dev/ttyUSB0"
baudrate = 19200
period_s = 2.0
telemetry_period_s = 30.0
map = "electric"
''')
    assert problems == ["fire_pump[0].baudrate: renamed: use 'baud' instead",
                        "fire_pump[0].period_s: renamed: use 'poll_s' instead",
                        "fire_pump[0].telemetry_period_s: renamed: use 'telemetry_s' instead"]
