"""Sequence-number continuity of one RTP stream (RFC 3550 5.1): how many packets were lost just
before each packet, and which packets come too late to use. The ingest keeps one per track and
hands the count to the depacketizer, which resets what the loss broke.
"""

from __future__ import annotations

SEQ_MOD = 1 << 16
STALE_WINDOW = 1000
"""A packet up to this many sequence numbers behind the expected one is stale (a duplicate or a
straggler), not a source restart: it is dropped. Further behind is a restart, taken as a gap."""

__all__ = ["STALE_WINDOW", "SequenceCheck"]


class SequenceCheck:
    """Expected next sequence number of one RTP stream.

    Attributes:
        late: packets refused as stale (duplicates and stragglers).
    """

    __slots__ = ("expected", "late")

    def __init__(self) -> None:
        self.expected: int | None = None
        """The next sequence number in order; the per-packet caller may test it inline and
        advance it itself, calling ``lost_before`` only when it differs."""
        self.late = 0

    def lost_before(self, sequence: int) -> int:
        """Packets lost between the previous packet and this one (0 for the first packet);
        -1 for a stale packet, which the caller drops."""
        expected = self.expected
        self.expected = (sequence + 1) % SEQ_MOD
        if expected is None or sequence == expected:
            return 0
        lost = (sequence - expected) % SEQ_MOD
        if SEQ_MOD - lost <= STALE_WINDOW:
            self.expected = expected
            self.late += 1
            return -1
        return lost
