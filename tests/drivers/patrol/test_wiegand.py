"""Wiegand 26/34: bits worked out by hand, parity and length errors, gaps, fuzzing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from drivers.patrol.wiegand import WiegandDecoder, decode_bits, encode26, encode34


def bits_of(text: str) -> list[int]:
    return [int(c) for c in text.replace(" ", "")]


def test_w26_by_hand():
    # facility 1 = 00000001, card 1 = 0000000000000001
    # first 12 data bits 000000010000 hold one 1 -> even parity bit 1
    # last 12 data bits 000000000001 hold one 1 -> odd parity bit 0
    frame = bits_of("1 00000001 0000000000000001 0")
    assert encode26(1, 1) == frame
    r = decode_bits(frame)
    assert r.bits == 26 and r.facility == 1 and r.card == 1 and r.card_id == "001:00001"


def test_w26_facility_123_card_4567():
    r = decode_bits(encode26(123, 4567))
    assert (r.facility, r.card, r.card_id) == (123, 4567, "123:04567")


def test_w34_by_hand():
    # 0xDEADBEEF: first 16 bits DEAD have 11 ones -> even parity 1; BEEF has 13 -> odd parity 0
    frame = [1] + [int(b) for b in f"{0xDEADBEEF:032b}"] + [0]
    assert encode34(0xDEADBEEF) == frame
    assert decode_bits(frame).card_id == "DEADBEEF"


def test_parity_and_length_errors_are_rejected_and_counted():
    d = WiegandDecoder()
    t = 0.0
    bad = encode26(123, 4567)
    bad[0] ^= 1
    for frame in (bad, encode26(123, 4567)[:25], encode26(123, 4567)):
        for b in frame:
            assert d.feed(b, t) == []        # a rejected frame yields nothing; the good one ends at the flush
            t += 0.002
        t += 0.05
    out = d.flush(t)
    assert d.bad_parity == 1 and d.bad_length == 1 and d.frames_ok == 1
    assert [r.card_id for r in out] == ["123:04567"]


def test_frame_ends_only_after_the_gap():
    d = WiegandDecoder(gap_s=0.025)
    for i, b in enumerate(encode26(5, 6)):
        d.feed(b, i * 0.002)
    last = 25 * 0.002
    assert d.flush(last + 0.024) == []            # 24 ms after the last bit: maybe more bits
    assert d.flush(last + 0.025)[0].card == 6


def test_next_frame_closes_the_previous():
    d = WiegandDecoder()
    got = []
    for i, b in enumerate(encode26(1, 2)):
        got += d.feed(b, i * 0.002)
    for i, b in enumerate(encode26(3, 4)):
        got += d.feed(b, 1.0 + i * 0.002)
    got += d.flush(2.0)
    assert [(r.facility, r.card) for r in got] == [(1, 2), (3, 4)]


@given(st.lists(st.tuples(st.integers(0, 1), st.floats(0, 0.1)), max_size=300))
def test_no_bit_stream_crashes_the_decoder(events):
    d = WiegandDecoder()
    t = 0.0
    for bit, dt in events:
        t += dt
        for r in d.feed(bit, t):
            assert r.bits in (26, 34)
    d.flush(t + 1)
    assert d.frames_ok + d.bad_length + d.bad_parity <= len(events)


@given(st.integers(0, 255), st.integers(0, 65535), st.lists(st.integers(0, 1), max_size=40))
def test_valid_frames_after_noise_bursts_are_found(facility, card, noise):
    d = WiegandDecoder()
    t = 0.0
    for b in noise:                         # a noise burst, then a pause, then a real frame
        d.feed(b, t)
        t += 0.002
    t += 0.1
    got = []
    for b in encode26(facility, card):
        got += d.feed(b, t)
        t += 0.002
    got += d.flush(t + 0.1)
    assert got[-1].facility == facility and got[-1].card == card
