"""EM4100 / RDM6300 frames: known-good frames by hand, resynchronisation, fuzzing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.patrol.em4100 import Em4100Parser, Em4100Read, em4100_frame

# data 01 00 D5 07 D0: 0x01 ^ 0x00 ^ 0xD5 ^ 0x07 ^ 0xD0 = 0x03, worked out by hand:
# 01 ^ 00 = 01; 01 ^ D5 = D4; D4 ^ 07 = D3; D3 ^ D0 = 03
KNOWN = b"\x02" + b"0100D507D0" + b"03" + b"\x03"


def test_known_frame_by_hand():
    assert em4100_frame(0x01, 0x00D507D0) == KNOWN
    reads = Em4100Parser().feed(KNOWN)
    assert reads == [Em4100Read(version=0x01, tag=0x00D507D0)]
    assert reads[0].card_id == "0100D507D0"


def test_lower_case_hex_is_accepted():
    assert Em4100Parser().feed(b"\x020100d507d003\x03")[0].card_id == "0100D507D0"


def test_bad_checksum_is_rejected_and_counted():
    p = Em4100Parser()
    assert p.feed(b"\x020100D507D004\x03") == []
    assert p.bad_checksum == 1 and p.frames_ok == 0


def test_byte_by_byte_and_repeats_while_tag_present():
    p = Em4100Parser()
    out = []
    for b in KNOWN * 3:
        out += p.feed(bytes([b]))
    assert len(out) == 3 and p.frames_ok == 3


def test_resynchronises_after_garbage_second_stx_and_non_hex():
    p = Em4100Parser()
    stream = (b"\xff\x00junk" + b"\x020100D5" + KNOWN          # cut off by a second STX
              + b"\x020100G507D003\x03" + KNOWN                 # a non-hex byte inside
              + b"\x020100D507D003X" + KNOWN)                   # no ETX
    reads = p.feed(stream)
    assert [r.card_id for r in reads] == ["0100D507D0"] * 3
    assert p.bad_frames == 3


@given(st.binary(max_size=400))
@settings(max_examples=300)
def test_no_byte_stream_crashes_the_parser(data):
    p = Em4100Parser()
    for r in p.feed(data):
        assert len(r.card_id) == 10


@given(st.lists(st.tuples(st.binary(max_size=30), st.integers(0, 255), st.integers(0, 2**32 - 1)),
                min_size=1, max_size=8))
@settings(max_examples=200)
def test_valid_frames_in_garbage_are_found(parts):
    """Garbage without STX between frames never hides a frame."""
    p = Em4100Parser()
    stream = b""
    expected = []
    for garbage, version, tag in parts:
        stream += garbage.replace(b"\x02", b"") + em4100_frame(version, tag)
        expected.append(f"{version:02X}{tag:08X}")
    assert [r.card_id for r in p.feed(stream)] == expected


@given(st.binary(max_size=60), st.integers(0, 255), st.integers(0, 2**32 - 1))
def test_a_frame_after_any_garbage_is_found(garbage, version, tag):
    """Even garbage holding STX bytes: the frame after it is still read."""
    reads = Em4100Parser().feed(garbage + em4100_frame(version, tag))
    assert reads and reads[-1].card_id == f"{version:02X}{tag:08X}"
