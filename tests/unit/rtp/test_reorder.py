"""The reorder buffer: sequence order, bounded waiting, 16-bit wrap."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.rtp.packet import RtpPacket
from relay.rtp.reorder import ReorderBuffer


def pkt(seq: int) -> RtpPacket:
    return RtpPacket(False, 96, seq % 65536, 0, 1, b"")


def seqs(packets: list[RtpPacket]) -> list[int]:
    return [p.sequence for p in packets]


def test_in_order_packets_pass_at_once() -> None:
    b = ReorderBuffer()
    for s in range(10):
        assert seqs(b.push(pkt(s), 0.0)) == [s]
    assert b.deadline() is None


def test_swapped_pair_released_in_order() -> None:
    b = ReorderBuffer()
    assert seqs(b.push(pkt(1), 0.0)) == [1]
    assert b.push(pkt(3), 0.0) == []
    assert b.deadline() == 0.2
    assert seqs(b.push(pkt(2), 0.01)) == [2, 3]
    assert b.deadline() is None and b.skipped == 0


def test_duplicates_and_late_packets_are_dropped_and_counted() -> None:
    b = ReorderBuffer()
    b.push(pkt(1), 0.0)
    b.push(pkt(3), 0.0)
    assert b.push(pkt(3), 0.0) == []
    assert b.duplicates == 1
    assert b.push(pkt(1), 0.0) == []
    assert b.late == 1


def test_gap_given_up_after_max_delay() -> None:
    b = ReorderBuffer(max_delay=0.1)
    b.push(pkt(1), 0.0)
    b.push(pkt(4), 1.0)
    b.push(pkt(5), 1.05)
    assert b.release_due(1.09) == []
    assert b.deadline() == 1.1
    assert seqs(b.release_due(1.1)) == [4, 5]
    assert b.skipped == 2
    assert b.push(pkt(2), 1.2) == [] and b.late == 1  # too late now
    assert seqs(b.push(pkt(6), 1.2)) == [6]


def test_release_due_only_releases_what_waited_long_enough() -> None:
    b = ReorderBuffer(max_delay=0.1)
    b.push(pkt(1), 0.0)
    b.push(pkt(3), 0.0)
    b.push(pkt(6), 0.05)
    assert seqs(b.release_due(0.1)) == [3]
    assert b.deadline() == pytest.approx(0.15)
    assert seqs(b.release_due(0.16)) == [6]
    assert b.skipped == 3


def test_full_buffer_releases_the_oldest_skipping_the_gap() -> None:
    b = ReorderBuffer(max_packets=4)
    b.push(pkt(0), 0.0)
    for s in (2, 3, 4, 5):
        assert b.push(pkt(s), 0.0) == []
    assert seqs(b.push(pkt(6), 0.0)) == [2, 3, 4, 5, 6]
    assert b.skipped == 1


def test_wrap_around() -> None:
    b = ReorderBuffer()
    b.push(pkt(65534), 0.0)
    assert b.push(pkt(0), 0.0) == []
    assert seqs(b.push(pkt(65535), 0.0)) == [65535, 0]


def test_source_restart_far_ahead_and_far_behind() -> None:
    b = ReorderBuffer(max_packets=8)
    b.push(pkt(100), 0.0)
    b.push(pkt(102), 0.0)
    assert seqs(b.push(pkt(5000), 0.0)) == [102, 5000]  # far ahead: give up and follow
    assert b.resets == 1
    assert b.push(pkt(10), 0.0) == []  # far behind once: a stray
    assert seqs(b.push(pkt(11), 0.0)) == [11]  # twice in a row: the source restarted
    assert b.resets == 2
    assert seqs(b.push(pkt(12), 0.0)) == [12]


def test_flush_releases_everything_in_order() -> None:
    b = ReorderBuffer()
    b.push(pkt(0), 0.0)
    b.push(pkt(5), 0.0)
    b.push(pkt(3), 0.0)
    assert seqs(b.flush()) == [3, 5]
    assert b.deadline() is None


@given(
    st.integers(0, 65535),
    st.integers(1, 300),
    st.randoms(use_true_random=False),
    st.integers(1, 32),
)
def test_any_local_shuffle_comes_out_in_order(start: int, count: int, rnd, spread: int) -> None:
    # displace each packet by at most `spread` places: reordering a network can do
    keys = [i + rnd.uniform(0, spread) for i in range(count)]
    shuffled = [s for _, s in sorted(zip(keys, range(count)))]
    shuffled.remove(0)
    b = ReorderBuffer(max_packets=64, max_delay=10.0)
    out: list[int] = []
    for s in [0, *shuffled]:  # the buffer starts from the first packet it sees
        out += seqs(b.push(pkt(start + s), 0.0))
    assert out == [(start + s) % 65536 for s in range(count)]
    assert (b.skipped, b.late, b.duplicates, b.deadline()) == (0, 0, 0, None)
