"""Timestamp unwrapping and reception statistics (RFC 3550 A.1, A.3, A.8)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.rtp.timing import LossWindow, ReceptionStats, TimestampUnwrapper

WRAP = 1 << 32


def test_unwrap_forward_wrap_and_b_frames() -> None:
    u = TimestampUnwrapper()
    assert u.unwrap(WRAP - 3000) == WRAP - 3000
    assert u.unwrap(3000) == WRAP + 3000  # wrapped forward
    assert u.unwrap(WRAP - 100) == WRAP - 100  # slightly earlier (a B-frame): not a wrap
    assert u.unwrap(6000) == WRAP + 6000


def test_unwrap_backward_wrap() -> None:
    u = TimestampUnwrapper()
    assert u.unwrap(100) == 100
    assert u.unwrap(WRAP - 100) == -100


@given(st.integers(0, WRAP - 1), st.lists(st.integers(-(2**31) + 1, 2**31 - 1), max_size=50))
def test_unwrap_follows_any_walk_of_steps_under_half_the_range(
    start: int, steps: list[int]
) -> None:
    u = TimestampUnwrapper()
    assert u.unwrap(start) == start
    true = start
    for step in steps:
        true += step
        assert u.unwrap(true % WRAP) == true


def feed(stats: ReceptionStats, seqs: list[int], step: int = 3000, rate: int = 90000) -> None:
    for n, seq in enumerate(seqs):
        stats.update(seq % 65536, n * step, n * step / rate)


def test_probation_then_counting_in_order() -> None:
    s = ReceptionStats(90000)
    feed(s, list(range(100, 200)))
    # A.1: the first packet of a new source only starts its probation, it is not counted
    assert s.received == 99 and s.lost == 0 and s.extended_highest == 199
    assert s.jitter < 1e-6


def test_loss_and_fraction_lost_per_interval() -> None:
    s = ReceptionStats(90000)
    feed(s, [s for s in range(101) if s % 4 != 3])  # every fourth packet lost
    assert s.extended_highest == 100
    assert s.lost == 25
    block = s.report_block(0x1234, last_sr=77, delay_since_last_sr=88)
    assert block.cumulative_lost == 25 and block.highest_sequence == 100
    assert block.fraction_lost == (25 << 8) // 100
    assert (block.ssrc, block.last_sr, block.delay_since_last_sr) == (0x1234, 77, 88)
    s.update(101, 0, 0)
    s.update(102, 0, 0)
    assert s.report_block(0x1234, 0, 0).fraction_lost == 0  # nothing lost since the last report


def test_sequence_wrap_extends_highest() -> None:
    s = ReceptionStats(8000)
    feed(s, list(range(65530, 65546)))
    assert s.extended_highest == 65536 + 9
    assert s.lost == 0 and s.received == 15
    assert s.report_block(1, 0, 0).highest_sequence == 65545


def test_duplicates_never_make_lost_negative() -> None:
    s = ReceptionStats(8000)
    feed(s, [1, 2, 3, 3, 3, 4])
    assert s.lost == 0
    assert s.report_block(1, 0, 0).cumulative_lost == -2  # the wire field is signed


def test_source_restart_after_two_sequential_packets() -> None:
    s = ReceptionStats(8000)
    feed(s, list(range(10, 20)))
    s.update(40000, 0, 1.0)  # one stray packet far away: ignored
    assert s.extended_highest == 19 and s.received == 9
    s.update(40001, 0, 1.0)  # not sequential to the stray? it is: restart
    assert s.extended_highest == 40001
    assert s.received == 1 and s.lost == 0


def test_reordered_packet_within_misorder_is_counted() -> None:
    s = ReceptionStats(8000)
    feed(s, [0, 1, 2, 4, 3, 5])
    assert s.received == 5 and s.lost == 0 and s.extended_highest == 5


def test_jitter_follows_a8() -> None:
    s = ReceptionStats(1000)
    arrivals = [0.0, 0.010, 0.025, 0.030]  # timestamps advance 10 units (10 ms) each
    for n, arrival in enumerate(arrivals):
        s.update(n, n * 10, arrival)
    # the first packet is only probation; transit differences after that: 5, 5 (units)
    expected = 0.0
    for d in (5.0, 5.0):
        expected += (d - expected) / 16
    assert abs(s.jitter - expected) < 1e-9
    assert s.report_block(1, 0, 0).jitter == int(expected)


def test_jitter_across_timestamp_wrap() -> None:
    s = ReceptionStats(90000)
    for n in range(5):
        s.update(n, (WRAP - 6000 + n * 3000) % WRAP, n / 30)
    assert s.jitter < 1


def second_of_packets(stats: ReceptionStats, first: int, lose_every: int | None) -> int:
    """100 packets from ``first`` (every ``lose_every``-th lost); the next sequence number."""
    for seq in range(first, first + 100):
        if lose_every is None or seq % lose_every:
            stats.update(seq % 65536, seq * 900, seq / 100)
    return first + 100


def test_loss_window_needs_the_whole_window_and_forgets_what_left_it() -> None:
    stats, window = ReceptionStats(90000), LossWindow(10.0)
    seq = second_of_packets(stats, 0, None)
    fractions = []
    for second in range(1, 31):
        seq = second_of_packets(stats, seq, 20 if 5 <= second < 20 else None)  # 5 % lost
        fractions.append(window.sample(stats, float(second)))
    assert fractions[:10] == [None] * 10  # the samples do not span 10 s yet
    assert fractions[10] == pytest.approx(0.035)  # seconds 2-11: 7 lossy seconds of 10
    assert fractions[15] == pytest.approx(0.05)  # seconds 7-16: all lossy
    assert fractions[29] == 0.0  # the loss left the window
    assert len(window._samples) <= 11  # bounded by the window over the sampling period


def test_loss_window_restarts_with_the_source() -> None:
    stats, window = ReceptionStats(90000), LossWindow(2.0)
    second_of_packets(stats, 1000, 10)
    assert window.sample(stats, 0.0) is None
    stats.update(40000, 0, 2.0)  # far jump: the source restarted (A.1, two in a row)
    stats.update(40001, 900, 2.01)
    assert window.sample(stats, 2.0) is None  # counts began again: so does the window
    second_of_packets(stats, 40002, None)
    assert window.sample(stats, 4.0) == 0.0
