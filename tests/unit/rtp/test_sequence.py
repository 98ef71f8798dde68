"""SequenceCheck: the one place RTP loss is detected (RFC 3550 5.1, 16-bit sequence numbers)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relay.rtp.sequence import STALE_WINDOW, SequenceCheck


def test_in_order_gaps_wrap_and_stale_packets() -> None:
    check = SequenceCheck()
    assert check.lost_before(65534) == 0  # the first packet: nothing known before it
    assert check.lost_before(65535) == 0
    assert check.lost_before(2) == 2  # 0 and 1 lost across the wrap
    assert check.lost_before(1) == -1 and check.late == 1  # a straggler is refused...
    assert check.lost_before(3) == 0  # ...and leaves the expected number alone
    assert check.lost_before(3) == -1 and check.late == 2  # a duplicate
    assert check.lost_before((4 - STALE_WINDOW - 1) % 65536) == 65536 - STALE_WINDOW - 1
    # further back than the window: a restart, followed from there


@given(st.integers(0, 65535), st.lists(st.integers(1, 65536 - STALE_WINDOW - 1), max_size=50))
def test_any_forward_step_reports_the_packets_skipped(first: int, steps: list[int]) -> None:
    check = SequenceCheck()
    assert check.lost_before(first) == 0
    sequence = first
    for step in steps:
        sequence = (sequence + step) % 65536
        assert check.lost_before(sequence) == step - 1
    assert check.late == 0
