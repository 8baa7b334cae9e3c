"""PN532 frames: built by hand, LCS/DCS checks, ACK/NACK, InListPassiveTarget, fuzzing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.patrol import pn532
from drivers.patrol.pn532 import Pn532Parser, parse_in_list_passive_target


def test_sam_configuration_frame_by_hand():
    # TFI D4, SAMConfiguration 14, mode 01, timeout 14, IRQ 01: LEN 5, LCS 0x100-5 = FB,
    # DCS = -(D4+14+01+14+01) = -(0xFE) = 02
    assert pn532.SAM_CONFIGURATION == bytes.fromhex("0000FF05FBD414011401 0200".replace(" ", ""))


def test_in_list_passive_target_frame_by_hand():
    # D4 4A 01 00: LEN 4, LCS FC, DCS = -(D4+4A+01) = -(0x11F) & FF = E1
    assert pn532.IN_LIST_PASSIVE_TARGET == bytes.fromhex("0000FF04FCD44A0100E100")


def test_response_with_a_7_byte_uid():
    params = bytes([1, 1, 0x00, 0x44, 0x00, 7]) + bytes.fromhex("04A1B2C3D4E580")
    frame = pn532.response(0x4A, params)
    frames = Pn532Parser().feed(pn532.ACK + frame)
    assert [f.kind for f in frames] == ["ack", "data"]
    assert frames[1].tfi == 0xD5 and frames[1].code == 0x4B
    targets = parse_in_list_passive_target(frames[1].payload[1:])
    assert [t.card_id for t in targets] == ["04A1B2C3D4E580"]
    assert targets[0].sens_res == 0x0044


def test_no_target_and_malformed():
    assert parse_in_list_passive_target(b"\x00") == []
    assert parse_in_list_passive_target(b"\x01\x01\x00\x04\x08\x04\xde\xad") is None   # UID cut short
    assert parse_in_list_passive_target(b"") is None


def test_nack_error_and_bad_checksums():
    p = Pn532Parser()
    good = pn532.response(0x14)
    bad_dcs = good[:-2] + bytes([good[-2] ^ 0xFF, 0])
    bad_lcs = good[:4] + bytes([good[4] ^ 1]) + good[5:]
    frames = p.feed(pn532.NACK + bad_dcs + bad_lcs + pn532.ERROR_FRAME + good)
    assert [f.kind for f in frames] == ["nack", "error", "data"]
    assert p.bad_dcs == 1 and p.bad_lcs == 1


def test_split_anywhere():
    stream = pn532.ACK + pn532.response(0x4A, b"\x00") + pn532.response(0x14)
    for cut in range(len(stream)):
        p = Pn532Parser()
        frames = p.feed(stream[:cut]) + p.feed(stream[cut:])
        assert [f.kind for f in frames] == ["ack", "data", "data"], cut


@given(st.binary(max_size=400))
@settings(max_examples=300)
def test_no_byte_stream_crashes_the_parser(data):
    p = Pn532Parser()
    for f in p.feed(data):
        if f.kind == "data" and f.code == 0x4B:
            parse_in_list_passive_target(f.payload[1:])


@given(st.lists(st.tuples(st.binary(max_size=20), st.binary(min_size=4, max_size=4)), min_size=1, max_size=6))
@settings(max_examples=200)
def test_valid_frames_in_garbage_are_found(parts):
    """Garbage (without the 00 FF start code) between frames never hides a frame."""
    p = Pn532Parser()
    stream, expected = b"", []
    for garbage, uid in parts:
        garbage = garbage.replace(b"\xff", b"\xfe")
        params = bytes([1, 1, 0, 4, 8, 4]) + uid
        stream += garbage + pn532.response(0x4A, params)
        expected.append(uid.hex().upper())
    found = []
    for f in p.feed(stream):
        if f.kind == "data":
            found += [t.card_id for t in parse_in_list_passive_target(f.payload[1:])]
    assert found == expected
