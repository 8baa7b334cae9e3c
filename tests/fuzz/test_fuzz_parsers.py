"""Every parser fuzzed: Modbus values, commands, config, scenarios, and the patrol readers' frames.

Each target is a plain function checking one property over arbitrary input;
each runs twice: bounded (`CI` profile) in the default suite, and with the
`SOAK` profile under `make soak`. The property is always the same: bad input
is reported the documented way (a DecodeError / fault, a refusal with a
reason, a ConfigError naming keys), never any other exception.
"""

from __future__ import annotations

import json
import math
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.fire_pump.regmap import DecodeError, decode, decode_block, load_map, plan_reads, put
from drivers.patrol.em4100 import Em4100Parser
from drivers.patrol.pn532 import Pn532Parser
from drivers.patrol.wiegand import WiegandDecoder
from gateway.commands import CommandRouter
from gateway.config import parse_config
from gateway.configfile import ConfigError, Problems
from gateway.driver import CommandRefused
from sim.scenario import GATEWAY_ACTIONS, Scenario, scenario_from_raw
from tests.fuzz.profiles import CI, SOAK

# -- Modbus values -------------------------------------------------------------------
MAPS = {name: load_map(name, Problems()) for name in ("electric", "diesel", "generic")}
POINTS = [p for m in MAPS.values() if m is not None for p in m.points]
assert POINTS, "the built-in register maps load"

words = st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=130)


def check_modbus_block(map_name: str, data: list[int], as_bits: bool) -> None:
    regmap = MAPS[map_name]
    for block in plan_reads(list(regmap.points)):
        payload: list[Any] = [bool(x & 1) for x in data] if as_bits and block.fc in (1, 2) else data
        values, faults = decode_block(block, payload[:block.count + 2])
        assert set(values) | set(faults) == {p.name for p in block.points}
        assert not set(values) & set(faults)
        for name, v in values.items():
            p = regmap.point(name)
            assert p is not None
            if isinstance(v, float):
                assert math.isfinite(v)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                assert p.min is None or v >= p.min - 1e-6
                assert p.max is None or v <= p.max + 1e-6
        for msg in faults.values():
            assert isinstance(msg, str) and msg


def check_point_roundtrip(index: int, ws: list[int]) -> None:
    p = POINTS[index % len(POINTS)]
    regs = (ws + [0] * 2)[:p.width]
    try:
        v = decode(p, regs)
    except DecodeError as exc:
        assert str(exc)
        return
    table = [0] * (p.address + p.width)
    put(p, v, table)                     # what a panel holding this value sends
    back = decode(p, table[p.address:p.address + p.width])
    if isinstance(v, (bool, str)):
        assert back == v
    else:
        assert math.isclose(float(back), float(v), rel_tol=1e-5, abs_tol=abs(p.scale) + 1e-6)


@pytest.mark.parametrize("profile", [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)])
def test_modbus_values_decode_or_fault(profile) -> None:
    profile(given(st.sampled_from(sorted(MAPS)), words, st.booleans())(check_modbus_block))()
    profile(given(st.integers(0, 10_000), st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2))
            (check_point_roundtrip))()


# -- commands -------------------------------------------------------------------------
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                           max_leaves=12)


def _router() -> CommandRouter:
    router = CommandRouter("anfang/v1/s1/gw1")
    router.register("gateway", {"ping": lambda args: {"pong": True}})

    def strict(args: Any) -> dict[str, Any]:
        unknown = set(args) - {"zone", "minutes"}
        if unknown:
            raise CommandRefused(f"unknown argument(s): {', '.join(sorted(unknown))}")
        m = args.get("minutes", 1)
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 60:
            raise CommandRefused("minutes: a whole number from 1 to 60")
        return {"zone": str(args.get("zone", "")), "minutes": m}
    router.register("ir_beam", {"bypass": strict})
    return router


names = st.sampled_from(["ping", "bypass", "health", "", "PING", "ping/x", "+", "#"]) | st.text(max_size=70)
payloads = st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()) | \
    st.dictionaries(st.sampled_from(["device", "zone", "minutes", "rm"]), json_values, max_size=3).map(
        lambda d: json.dumps(d).encode())


def check_command(ROUTER: CommandRouter, name: str, payload: bytes) -> None:
    before = ROUTER.handled + ROUTER.refused
    reply = ROUTER.execute(name, payload)
    assert ROUTER.handled + ROUTER.refused == before + 1
    assert reply["command"] == name and isinstance(reply["ok"], bool)
    json.dumps(reply)                                   # always a sendable reply
    if reply["ok"]:
        assert name in ROUTER.names() and isinstance(reply["result"], dict)
    else:
        assert isinstance(reply["error"], str) and reply["error"]
        assert not reply["error"].startswith("command failed in"), f"a handler crashed: {reply['error']}"
    if name not in ROUTER.names():
        assert reply["ok"] is False and "allowed:" in reply["error"]


@pytest.mark.parametrize("profile", [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)])
def test_command_payloads_are_answered_never_raise(profile) -> None:
    router = _router()
    profile(given(names, payloads)(lambda name, payload: check_command(router, name, payload)))()


def check_ir_beam_command(action: str, args: Any) -> None:
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from drivers.ir_beam.config import parse_config as ir_parse
    from drivers.ir_beam.engine import BadCommand, Engine
    problems = Problems()
    cfg = ir_parse({"ir_beam": [{"zone": "north-1", "alarm_pin": 17, "tamper_pin": 27, "group": "north"},
                                {"zone": "east-1", "alarm_pin": 18, "tamper_pin": 19, "group": "east"}]}, problems)
    assert not problems, problems.items
    engine = Engine(cfg, ZoneInfo("Asia/Shanghai"))
    wall = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)
    engine.begin(0.0, wall)
    try:
        reply, _outs = engine.command(action, args, 1.0, wall)
    except BadCommand as exc:
        assert str(exc)
        return
    json.dumps(reply)


ir_args = st.dictionaries(st.sampled_from(["zone", "zones", "group", "minutes", "until", "reason", "x"]),
                          json_values | st.sampled_from(["north-1", "east-1", "north", "all", ["north-1"]]),
                          max_size=3) | json_values


@pytest.mark.parametrize("profile", [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)])
def test_ir_beam_command_arguments_are_validated(profile) -> None:
    profile(given(st.sampled_from(["arm", "disarm", "bypass"]) | st.text(max_size=8), ir_args)(check_ir_beam_command))()


# -- config ---------------------------------------------------------------------------
KEYS = ["gateway", "mqtt", "store", "supervisor", "site", "id", "state_dir", "timezone", "url", "host", "port",
        "protocol", "tls", "ca_file", "cert_file", "key_file", "key_passphrase_file", "key_passphrase_env",
        "password", "password_file", "password_env", "username", "keepalive_s", "inflight", "max_events", "max_mb",
        "max_db_mb", "evidence_spool_mb", "watch_interval_s", "restart_backoff_min_s", "ir_beam", "patrol",
        "fire_pump", "camera", "sim_probe", "name", "interval", "emitters", "severity", "pins", "alarm_pin",
        "readers", "map", "transport", "unit", "zones", "calibration", "source"]
scalars = (st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats() | st.text(max_size=12)
           | st.sampled_from(["s1", "gw1", "mqtt://127.0.0.1:1883", "/tmp", "electric", "tcp", "5", "info"]))
toml_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), kids, max_size=5),
                           max_leaves=25)
configs = st.dictionaries(st.sampled_from(KEYS), toml_values, max_size=6)
base = {"gateway": {"site": "s1", "id": "gw1", "state_dir": "/tmp/anfang-fuzz"}}


def check_config(raw: dict[str, Any], with_base: bool) -> None:
    doc = {**base, **raw} if with_base else raw
    try:
        parse_config(doc, base_dir=Path("/nonexistent-fuzz-dir"))
    except ConfigError as exc:
        assert exc.problems
        for p in exc.problems:
            text = str(p)
            assert text
            assert "failed to read its config" not in text, f"a driver's validator crashed: {text}"


@pytest.mark.parametrize("profile", [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)])
def test_config_only_ever_raises_config_error(profile) -> None:
    profile(given(configs, st.booleans())(check_config))()


# -- scenarios ------------------------------------------------------------------------
actions = st.fixed_dictionaries({"at": st.floats(-5, 100) | st.text(max_size=3),
                                 "do": st.sampled_from([*GATEWAY_ACTIONS, "intrude", "burst"]) | st.text(max_size=8)},
                                optional={"device": st.sampled_from(["tick", "ghost"]) | st.integers(),
                                          "until": scalars, "seconds": scalars, "latency": scalars,
                                          "headroom_kb": scalars, "count": scalars, "bogus": scalars})
devices = st.fixed_dictionaries({"kind": st.sampled_from(["probe", "ir_beam"]) | scalars,
                                 "name": st.sampled_from(["tick", "bad name!"]) | scalars},
                                optional={"params": toml_values, "extra": scalars})
scenario_docs = st.fixed_dictionaries({}, optional={
    "description": scalars, "duration": scalars, "seed": scalars,
    "device": st.lists(devices, max_size=3) | scalars, "action": st.lists(actions, max_size=5) | scalars,
    "other": toml_values})


def check_scenario(doc: dict[str, Any]) -> None:
    try:
        sc = scenario_from_raw([("", doc)], Scenario("fuzz"))
    except ConfigError as exc:
        assert exc.problems and all(str(p) for p in exc.problems)
        return
    assert [a.at for a in sc.actions] == sorted(a.at for a in sc.actions)
    for a in sc.actions:
        assert a.device is not None or a.do in GATEWAY_ACTIONS


@pytest.mark.parametrize("profile", [pytest.param(CI, id="ci"), pytest.param(SOAK, id="soak", marks=pytest.mark.soak)])
def test_scenarios_load_or_raise_config_error(profile) -> None:
    profile(given(scenario_docs)(check_scenario))()


def test_scenario_files_of_any_text_load_or_raise_config_error(tmp_path: Path) -> None:
    from sim.scenario import load_scenario

    @CI
    @given(st.text(alphabet=string.printable, max_size=200))
    def check(text: str) -> None:
        f = tmp_path / "s.toml"
        f.write_text(text)
        try:
            load_scenario(str(f))
        except ConfigError as exc:
            assert exc.problems
    check()


# -- patrol frames (property tests live beside each parser; here the long runs) -------
def check_serial_parsers(chunks: list[bytes]) -> None:
    em, pn = Em4100Parser(), Pn532Parser()
    for c in chunks:
        for r in em.feed(c):
            assert len(r.card_id) == 10
        pn.feed(c)


def check_wiegand(bits: list[tuple[int, float]]) -> None:
    d = WiegandDecoder()
    t = 0.0
    for bit, dt in bits:
        t += dt
        d.feed(bit, t)


@pytest.mark.soak
def test_patrol_frames_long_run() -> None:
    SOAK(given(st.lists(st.binary(max_size=64), max_size=20))(check_serial_parsers))()
    SOAK(given(st.lists(st.tuples(st.integers(0, 1), st.floats(0, 0.1)), max_size=300))(check_wiegand))()


def test_patrol_frames_bounded() -> None:
    CI(given(st.lists(st.binary(max_size=64), max_size=20))(check_serial_parsers))()
    CI(given(st.lists(st.tuples(st.integers(0, 1), st.floats(0, 0.1)), max_size=300))(check_wiegand))()
