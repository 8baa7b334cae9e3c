"""Register maps: decoding against hand-computed registers, word orders, scaling, validation."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest

from gateway.configfile import Problems
from drivers.fire_pump.regmap import (BUILTIN_MAPS, DecodeError, Point, ReadBlock, decode, decode_block,
                                      encode, load_map, parse_map, plan_reads)


def pt(**kw) -> Point:
    base = dict(name="x", role="reading", fc=4, address=0)
    base.update(kw)
    return Point(**base)


# 123456.0 as float32 is 0x47F12000: bytes A=47 B=F1 C=20 D=00
@pytest.mark.parametrize("order, words", [
    ("ABCD", [0x47F1, 0x2000]),
    ("CDAB", [0x2000, 0x47F1]),
    ("BADC", [0xF147, 0x0020]),
    ("DCBA", [0x0020, 0xF147]),
])
def test_float32_in_every_word_order(order, words):
    assert decode(pt(type="float32", word_order=order), words) == 123456.0
    assert encode(pt(type="float32", word_order=order), 123456.0) == words


# 305419896 = 0x12345678
@pytest.mark.parametrize("order, words", [
    ("ABCD", [0x1234, 0x5678]), ("CDAB", [0x5678, 0x1234]),
    ("BADC", [0x3412, 0x7856]), ("DCBA", [0x7856, 0x3412]),
])
def test_uint32_in_every_word_order(order, words):
    assert decode(pt(type="uint32", word_order=order), words) == 0x12345678


def test_int32_negative_and_scaled():
    # -2 = 0xFFFFFFFE, CDAB -> [0xFFFE, 0xFFFF]; scale 0.5 offset 10 -> 9.0
    assert decode(pt(type="int32", word_order="CDAB", scale=0.5, offset=10), [0xFFFE, 0xFFFF]) == 9.0


def test_x10_scaling_of_16_bit_values():
    assert decode(pt(type="uint16", scale=0.1), [3805]) == pytest.approx(380.5)
    assert decode(pt(type="int16", scale=0.1), [0xFFF6]) == pytest.approx(-1.0)   # -10 x 0.1
    assert decode(pt(type="uint16", scale=0.1, offset=-20), [250]) == pytest.approx(5.0)


def test_bits_of_a_word_and_active_low():
    word = 0b1000_0000_0000_0101
    assert decode(pt(role="alarm", fc=3, type="bit", bit=0), [word]) is True
    assert decode(pt(role="alarm", fc=3, type="bit", bit=1), [word]) is False
    assert decode(pt(role="alarm", fc=3, type="bit", bit=15), [word]) is True
    assert decode(pt(role="alarm", fc=3, type="bit", bit=2, active_low=True), [word]) is False
    assert decode(pt(role="alarm", fc=2, type="bool"), [1]) is True


def test_wrong_word_order_gives_a_data_fault_not_a_reading():
    # the panel sends 2.5 bar as uint32 ABCD x0.001 (2500 = 0x000009C4: registers 0x0000, 0x09C4);
    # a map that says CDAB reads 0x09C40000 x 0.001 = 163,840 bar: refused, never a reading
    panel = pt(type="uint32", word_order="ABCD", scale=0.001, min=0, max=40)
    regs = encode(panel, 2.5)
    assert regs == [0x0000, 0x09C4]
    assert decode(panel, regs) == 2.5
    wrong = pt(type="uint32", word_order="CDAB", scale=0.001, min=0, max=40)
    with pytest.raises(DecodeError, match="above the possible 40"):
        decode(wrong, regs)
    with pytest.raises(DecodeError, match="above"):
        decode(pt(type="uint16", scale=1, max=40), [6000])


def test_nan_and_infinity_are_data_faults():
    nan = list(struct.unpack(">HH", struct.pack(">f", math.nan)))
    inf = list(struct.unpack(">HH", struct.pack(">f", math.inf)))
    for regs in (nan, inf):
        with pytest.raises(DecodeError, match="not a number"):
            decode(pt(type="float32"), regs)


def test_unknown_enum_value_is_a_data_fault():
    mode = pt(role="mode", fc=3, values={0: "off", 1: "manual", 2: "auto"})
    assert decode(mode, [2]) == "auto"
    with pytest.raises(DecodeError):
        decode(mode, [7])


def test_decode_block_reports_short_replies_per_point():
    p1, p2 = pt(name="a", address=0), pt(name="b", address=1)
    block = ReadBlock(4, 0, 2, (p1, p2))
    assert decode_block(block, [5, 6]) == ({"a": 5, "b": 6}, {})
    values, faults = decode_block(block, [5])
    assert values == {} and set(faults) == {"a", "b"} and "short reply" in faults["a"]


def test_plan_reads_groups_points_per_function_code():
    pts = [pt(name="a", address=0), pt(name="b", address=1, type="uint32"),
           pt(name="c", address=200), pt(name="d", fc=3, address=5), pt(name="e", fc=2, address=3, type="bool")]
    blocks = [(b.fc, b.address, b.count) for b in plan_reads(pts)]
    assert blocks == [(2, 3, 1), (3, 5, 1), (4, 0, 3), (4, 200, 1)]


@pytest.mark.parametrize("name", BUILTIN_MAPS)
def test_builtin_maps_load_and_are_marked_verify_on_site(name):
    problems = Problems()
    m = load_map(name, problems)
    assert not problems, problems.items
    assert m is not None and m.verify_on_site
    assert m.by_role("running"), "every map tells whether the pump runs"
    text = Path(m.source).read_text()
    assert "VERIFY ON SITE" in text


def test_builtin_maps_cover_the_alarms_the_issue_names():
    electric = {p.name for p in load_map("electric", Problems()).by_role("alarm")}
    assert {"phase_loss", "phase_reversal", "power_loss", "fail_to_start", "locked_rotor", "undervoltage",
            "overvoltage", "overcurrent", "undercurrent", "low_suction", "pressure_high", "pressure_low",
            "transducer_fault"} <= electric
    diesel = {p.name for p in load_map("diesel", Problems()).by_role("alarm")}
    assert {"battery_fault", "charger_fault", "low_fuel", "overspeed", "low_oil_pressure",
            "high_coolant_temp", "fail_to_start"} <= diesel


def test_bad_map_reports_every_problem_with_its_key(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('''
name = "bad"
colour = "red"
[[point]]
name = "p"
role = "alarm"
fc = 5
address = 1
[[point]]
name = "q"
role = "reading"
fc = 4
address = 2
type = "float64"
word_order = "ACBD"
[[point]]
name = "m"
role = "mode"
fc = 3
address = 3
values = { 0 = "sleep" }
''')
    problems = Problems()
    assert load_map(str(f), problems) is None
    text = "\n".join(map(str, problems.items))
    assert "map(bad.toml).colour: unknown key" in text
    assert "map(bad.toml).point[0].fc: must be at most 4" in text
    assert "map(bad.toml).point[1].type" in text
    assert "map(bad.toml).point[1].word_order" in text
    assert "map(bad.toml).point[2].values.0" in text


def test_missing_map_file_is_one_problem(tmp_path):
    problems = Problems()
    assert load_map(str(tmp_path / "nope.toml"), problems, "fire_pump[0].map") is None
    assert problems.items[0].key == "fire_pump[0].map" and "not found" in problems.items[0].message


def test_a_point_name_used_twice_is_refused_on_the_second_point() -> None:
    problems = Problems()
    parse_map({"name": "m", "point": [{"name": "in_auto", "role": "in_auto", "fc": 2, "address": 1},
                                      {"name": "in_auto", "role": "alarm", "fc": 2, "address": 2}]}, problems)
    assert "map.point[1].name: duplicate point name 'in_auto'" in [str(p) for p in problems.items]
