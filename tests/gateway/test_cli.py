"""The `anfang` command as a technician uses it: exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

BASE = """
[gateway]
site = "s1"
id = "gw1"
state_dir = "{state}"
"""


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_valid_config_passes(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(BASE.format(state=tmp_path) + '\n[[sim_probe]]\nname = "p1"\n')
    r = run_cli("check-config", "--sim-drivers", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout and "sim_probe" in r.stdout


def test_the_simulators_probe_is_not_a_production_driver(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(BASE.format(state=tmp_path) + '\n[[sim_probe]]\nname = "p1"\n')
    r = run_cli("check-config", str(cfg))
    assert r.returncode == 2 and "sim_probe: unknown section" in r.stderr, r.stderr
    assert "sim_probe" not in r.stderr.split("known:")[1], "not offered among the known sections"


@pytest.mark.parametrize("body, key, words", [
    ('[gateway]\nsite = "S 1"\nid = "gw1"\n', "gateway.site", "does not match"),
    ('[gateway]\nsite = "s1"\n', "gateway.id", "is required"),
    (BASE + '[mqtt]\nport = "1883"\n', "mqtt.port", "expected an integer"),
    (BASE + '[mqtt]\nport = 70000\n', "mqtt.port", "at most 65535"),
    (BASE + '[mqtt]\nkeepalive_sec = 10\n', "mqtt.keepalive_sec", "unknown key"),
    (BASE + '[mqtt]\nkeepalive = 10\n', "mqtt.keepalive", "renamed: use 'keepalive_s' instead"),
    (BASE + '[supervisor]\nwatch_interval = 1\n', "supervisor.watch_interval", "use 'watch_interval_s'"),
    (BASE + '[mqtt]\npassword = "hunter2"\nusername = "u"\n', "mqtt.password", "not in the config"),
    (BASE + '[[sim_probe]]\nname = "p1"\ninterval = -1\n', "sim_probe[0].interval", "at least 0"),
    (BASE + '[[sim_probe]]\nname = "ok"\n[[sim_probe]]\nname = "p 2"\n', "sim_probe[1].name", "does not match"),
    (BASE + '[frobnicator]\nx = 1\n', "frobnicator", "unknown section"),
    (BASE + '[gateway.extra]\n', "gateway", ""),
    ('[gateway\nsite = 1', "", "not valid TOML"),
])
def test_malformed_config_exit_2_and_names_the_key(tmp_path: Path, body: str, key: str, words: str) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(body.format(state=tmp_path))
    r = run_cli("check-config", "--sim-drivers", str(cfg))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert key in r.stderr and words in r.stderr, r.stderr
    assert "hunter2" not in r.stderr + r.stdout, "a secret must never be printed"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text('[gateway]\nsite = "S"\n[mqtt]\nport = 0\nbogus = 1\n')
    r = run_cli("check-config", str(cfg))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) >= 4
    assert all(str(cfg) in line for line in lines), "one line per problem, each naming the file"


def test_secret_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret-value\n")
    secret.chmod(0o644)
    cfg = tmp_path / "gw.toml"
    cfg.write_text(BASE.format(state=tmp_path) + f'[mqtt]\nusername = "u"\npassword_file = "{secret}"\n')
    r = run_cli("check-config", str(cfg))
    assert r.returncode == 2 and "mqtt.password_file" in r.stderr and "chmod 600" in r.stderr
    secret.chmod(0o600)
    r = run_cli("check-config", str(cfg))
    assert r.returncode == 0, r.stderr
    loaded = load_config(cfg)
    assert loaded.mqtt.password.reveal() == "s3cret-value"
    assert "s3cret" not in repr(loaded)


def test_secret_from_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(BASE.format(state=tmp_path) + '[mqtt]\nusername = "u"\npassword_env = "ANFANG_TEST_PW"\n')
    assert run_cli("check-config", str(cfg)).returncode == 2
    assert run_cli("check-config", str(cfg), env={"ANFANG_TEST_PW": "x"}).returncode == 0


def _example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.toml"))


@pytest.mark.parametrize("example", _example_files(), ids=lambda p: p.name)
def test_example_configs_load(example: Path, tmp_path: Path) -> None:
    """Every example a technician may copy is a valid config (device fragments under a base)."""
    raw = tomllib.loads(example.read_text())
    if "gateway" in raw:
        target = example
    else:
        target = example.parent / f".check-{example.name}"
        target.write_text(BASE.format(state=tmp_path) + "\n" + example.read_text())
    try:
        r = run_cli("check-config", str(target))
    finally:
        if target != example:
            target.unlink()
    assert r.returncode == 0, r.stderr


def test_schema_command_prints_the_shipped_schema() -> None:
    r = run_cli("schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    assert set(schema["required"]) >= {"id", "seq", "ts", "site", "gateway", "class", "device", "type",
                                       "severity", "data"}


def test_outbox_lists_unsent_events(tmp_path: Path) -> None:
    from gateway.clock import SystemClock
    from gateway.events import EventDraft
    from gateway.store import EventStore
    store = EventStore(tmp_path / "events.db", site="s1", gateway="gw1")
    for i in range(3):
        store.append(EventDraft(cls="ir_beam", device="north-wall-1", type="alarm", severity="alarm",
                                ts=SystemClock().now()))
    store.close()
    r = run_cli("outbox", "--state-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "3 event(s) not yet acknowledged" in r.stdout and "ir_beam/north-wall-1" in r.stdout
    r = run_cli("outbox", "--state-dir", str(tmp_path), "--json")
    assert json.loads(r.stdout)["events"] == 3
    r = run_cli("outbox", "--state-dir", str(tmp_path / "nowhere"))
    assert r.returncode == 1 and "no event buffer" in r.stderr and "Traceback" not in r.stderr


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run"])
    assert exc.value.code == 2
    assert main([]) == 2


def test_help_lists_the_subcommands() -> None:
    r = run_cli("--help")
    assert r.returncode == 0
    for name in ("run", "check-config", "sim", "outbox", "schema"):
        assert name in r.stdout


def test_all_examples_together_make_one_valid_config(tmp_path: Path) -> None:
    """A technician building one gateway's config from every family's example gets a valid file."""
    parts = [EXAMPLES / "gateway.toml"] + [p for p in _example_files() if p.name != "gateway.toml"]
    combined = EXAMPLES / ".check-all.toml"
    combined.write_text("\n".join(p.read_text() for p in parts))
    try:
        r = run_cli("check-config", str(combined))
    finally:
        combined.unlink()
    assert r.returncode == 0, r.stderr
    for family in ("ir_beam", "patrol", "fire_pump", "camera"):
        assert family in r.stdout


def test_a_gateway_without_cameras_does_not_load_the_vision_stack(tmp_path: Path) -> None:
    """Idle memory: only the drivers a config names are imported (numpy/scipy only with cameras)."""
    code = f"""
import sys
from gateway.cli import build_parser
from gateway.config import parse_config
from sim.registry import driver_types
build_parser()
raw = {{"gateway": {{"site": "s1", "id": "gw1", "state_dir": "{tmp_path}"}}, "sim_probe": [{{"name": "p"}}]}}
cfg = parse_config(raw, driver_types=driver_types(raw))
print(sorted(m for m in ("numpy", "scipy", "detection.detector", "pymodbus", "drivers.camera") if m in sys.modules))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_sub_commands_come_from_entry_points_and_only_when_asked() -> None:
    """`anfang --help` lists every package's commands; `anfang run` imports none of their modules,
    `anfang sim` only the simulator's."""
    r = run_cli("--help")
    assert r.returncode == 0
    for command in ("run", "check-config", "outbox", "schema", "sim", "chaos", "detect", "patrol-verify",
                    "patrol-report", "pump-report"):
        assert re.search(rf"^\s+{command}\s", r.stdout, re.M), f"{command} missing from anfang --help"
    code = """
import sys
from gateway.cli import build_parser
build_parser(sys.argv[1])
print(sorted(m for m in ("sim.cli", "sim.chaos", "detection.cli", "drivers.patrol.cli", "drivers.fire_pump.cli")
             if m in sys.modules))
"""
    loaded = {word: subprocess.run([sys.executable, "-c", code, word], capture_output=True, text=True,
                                   timeout=60).stdout.strip() for word in ("run", "sim")}
    assert loaded == {"run": "[]", "sim": "['sim.chaos', 'sim.cli']"}
