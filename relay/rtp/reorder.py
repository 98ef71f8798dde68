"""Puts RTP packets back in sequence order (RFC 3550 5.1: sequence numbers detect loss and
restore order), waiting a bounded time or count for a missing packet before giving up on it.

The driver keeps one timer at ``deadline()`` and calls ``release_due`` when it fires.
"""

from __future__ import annotations

from relay.rtp.packet import RtpPacket

SEQ_MOD = 1 << 16
HALF = 1 << 15

__all__ = ["ReorderBuffer"]


class ReorderBuffer:
    """A jitter buffer for one RTP stream that reorders and never delays in-order packets.

    Args:
        max_packets: most packets held while waiting for a missing one.
        max_delay: most seconds a packet is held while waiting for a missing one.

    Attributes:
        duplicates: packets dropped because the same sequence number was already buffered.
        late: packets dropped because their sequence number was already released or skipped.
        skipped: sequence numbers given up on (counted as lost).
        resets: times the stream jumped so far that the buffer started over.
    """

    def __init__(self, max_packets: int = 64, max_delay: float = 0.2) -> None:
        if max_packets < 1:
            raise ValueError("max_packets must be at least 1")
        self.max_packets = max_packets
        self.max_delay = max_delay
        self.duplicates = 0
        self.late = 0
        self.skipped = 0
        self.resets = 0
        self._next: int | None = None
        self._held: dict[int, tuple[RtpPacket, float]] = {}
        self._bad: int | None = None

    def push(self, packet: RtpPacket, now: float) -> list[RtpPacket]:
        """Adds a packet; returns the packets now releasable, in sequence order.

        Args:
            packet: the packet received.
            now: the current time in seconds.
        """
        seq = packet.sequence
        if self._next is None:
            self._next = seq
        ahead = (seq - self._next) % SEQ_MOD
        if ahead == 0 and not self._held:  # the common case: in order, nothing waiting
            self._next = (seq + 1) % SEQ_MOD
            self._bad = None
            return [packet]
        out: list[RtpPacket] = []
        if ahead >= HALF:
            far = SEQ_MOD - ahead > 2 * self.max_packets
            # far behind, no reordering explains it: two in a row mean the source restarted
            if not far or self._bad != seq:
                self._bad = (seq + 1) % SEQ_MOD if far else None
                self.late += 1
                return []
            self.resets += 1
            out = self.flush()
            self._next = seq
        elif ahead >= 2 * self.max_packets:  # a jump forward no reordering explains
            self.resets += 1
            out = self.flush()
            self.skipped += (seq - self._next) % SEQ_MOD
            self._next = seq
        self._bad = None
        if seq in self._held:
            self.duplicates += 1
            return out
        self._held[seq] = (packet, now)
        self._drain(out)
        while len(self._held) > self.max_packets:
            self._skip_to(self._lowest(), out)
        return out

    def release_due(self, now: float) -> list[RtpPacket]:
        """Releases, skipping gaps, every packet held for ``max_delay`` or longer."""
        out: list[RtpPacket] = []
        while self._held:
            seq, (_, arrival) = min(self._held.items(), key=lambda item: item[1][1])
            if arrival + self.max_delay > now:
                break
            self._skip_to(seq, out)
        return out

    def deadline(self) -> float | None:
        """When ``release_due`` will next release something, or None if nothing is held."""
        if not self._held:
            return None
        return min(arrival for _, arrival in self._held.values()) + self.max_delay

    def flush(self) -> list[RtpPacket]:
        """Releases everything held, in order, skipping gaps (at teardown or a restart)."""
        out: list[RtpPacket] = []
        while self._held:
            self._skip_to(self._lowest(), out)
        return out

    def _lowest(self) -> int:
        assert self._next is not None
        base = self._next
        return min(self._held, key=lambda s: (s - base) % SEQ_MOD)

    def _skip_to(self, seq: int, out: list[RtpPacket]) -> None:
        """Gives up on every missing sequence number before ``seq`` and drains from there."""
        assert self._next is not None
        gap = (seq - self._next) % SEQ_MOD
        if gap < HALF:
            for missing in range(gap):
                held = self._held.pop((self._next + missing) % SEQ_MOD, None)
                if held is None:
                    self.skipped += 1
                else:
                    out.append(held[0])
            self._next = seq
        self._drain(out)

    def _drain(self, out: list[RtpPacket]) -> None:
        assert self._next is not None
        while self._next in self._held:
            out.append(self._held.pop(self._next)[0])
            self._next = (self._next + 1) % SEQ_MOD
