"""RTP timestamp unwrapping and reception statistics (RFC 3550 A.1 sequence validation,
A.3 loss, A.8 interarrival jitter), the numbers a receiver report carries (6.4.1), and the
loss over a sliding window that tells sustained loss from a burst.
"""

from __future__ import annotations

from collections import deque

from relay.rtp.rtcp import ReportBlock

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2

__all__ = ["LossWindow", "ReceptionStats", "TimestampUnwrapper"]


class TimestampUnwrapper:
    """Extends 32-bit RTP timestamps to unbounded integers.

    Each timestamp is placed within half the 32-bit range of the previous one, so a wrap in
    either direction is followed, and a slightly earlier timestamp (B-frames) stays earlier.
    The first timestamp is returned unchanged.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: int | None = None

    def unwrap(self, ts32: int) -> int:
        """The extended value of ``ts32``."""
        if self._last is None:
            self._last = ts32
            return ts32
        delta = (ts32 - self._last) & 0xFFFFFFFF
        if delta >= 0x80000000:
            delta -= 1 << 32
        self._last += delta
        return self._last


class ReceptionStats:
    """Per-source reception statistics for receiver reports.

    Args:
        clock_rate: RTP timestamp units per second, for jitter.
    """

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.received = 0
        self.jitter = 0.0
        self._started = False
        self._probation = MIN_SEQUENTIAL
        self._max_seq = 0
        self._cycles = 0
        self._base_seq = 0
        self._bad_seq = RTP_SEQ_MOD + 1
        self._expected_prior = 0
        self._received_prior = 0
        self._last_timestamp: int | None = None
        self._last_arrival = 0.0

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = RTP_SEQ_MOD + 1
        self._cycles = 0
        self.received = 0
        self._received_prior = 0
        self._expected_prior = 0

    def _update_seq(self, seq: int) -> bool:
        # RFC 3550 A.1, as printed there
        udelta = (seq - self._max_seq) % RTP_SEQ_MOD
        if self._probation:
            if seq == (self._max_seq + 1) % RTP_SEQ_MOD:
                self._probation -= 1
                self._max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self._probation = MIN_SEQUENTIAL - 1
                self._max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self._max_seq:
                self._cycles += RTP_SEQ_MOD
            self._max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self._bad_seq:
                self._init_seq(seq)  # the source restarted: two sequential packets agree
            else:
                self._bad_seq = (seq + 1) % RTP_SEQ_MOD
                return False
        self.received += 1
        return True

    def update(self, sequence: int, rtp_timestamp: int, arrival: float) -> None:
        """Accounts for one received packet.

        Args:
            sequence: its RTP sequence number.
            rtp_timestamp: its RTP timestamp.
            arrival: its arrival time in seconds (any epoch, the same for every call).
        """
        if not self._started:
            self._started = True
            self._init_seq(sequence)
            self._max_seq = (sequence - 1) % RTP_SEQ_MOD
        if not self._update_seq(sequence):
            return
        if self._last_timestamp is not None:
            ts_delta = (rtp_timestamp - self._last_timestamp) & 0xFFFFFFFF
            if ts_delta >= 0x80000000:
                ts_delta -= 1 << 32
            d = abs((arrival - self._last_arrival) * self.clock_rate - ts_delta)
            self.jitter += (d - self.jitter) / 16
        self._last_timestamp = rtp_timestamp
        self._last_arrival = arrival

    @property
    def extended_highest(self) -> int:
        """Highest sequence number received, extended with the wrap count."""
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        if self.received == 0:
            return 0
        return self.extended_highest - self._base_seq + 1

    @property
    def lost(self) -> int:
        """Packets expected and not received (duplicates can hide losses, never below 0)."""
        return max(0, self.expected - self.received)

    def report_block(self, ssrc: int, last_sr: int, delay_since_last_sr: int) -> ReportBlock:
        """A report block for this source; starts a new interval for ``fraction_lost`` (A.3).

        Args:
            ssrc: the source reported on.
            last_sr: middle 32 bits of the NTP timestamp of its last SR, 0 if none.
            delay_since_last_sr: time since that SR in 1/65536 s, 0 if none.
        """
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=fraction,
            cumulative_lost=max(-0x800000, min(0x7FFFFF, expected - self.received)),
            highest_sequence=self.extended_highest & 0xFFFFFFFF,
            jitter=int(self.jitter) & 0xFFFFFFFF,
            last_sr=last_sr & 0xFFFFFFFF,
            delay_since_last_sr=delay_since_last_sr & 0xFFFFFFFF,
        )


class LossWindow:
    """The fraction of packets lost over the last ``seconds``, from samples of a
    ``ReceptionStats`` taken by a periodic task (RFC 3550 A.3's expected minus received, over
    a sliding window instead of between receiver reports). Holds one sample per call still in
    the window, so its size is the window over the sampling period.

    Args:
        seconds: the window's length.
    """

    __slots__ = ("_samples", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._samples: deque[tuple[float, int, int]] = deque()

    def sample(self, stats: ReceptionStats, now: float) -> float | None:
        """Records ``stats`` as of ``now`` (seconds, any epoch, never decreasing).

        Returns:
            The fraction lost since the oldest sample at least ``seconds`` old; None until
            the samples span the window (and again after the source restarted its sequence).
        """
        samples = self._samples
        expected, received = stats.expected, stats.received
        if samples and expected < samples[-1][1]:
            samples.clear()  # the source restarted (RFC 3550 A.1): its counts began again
        samples.append((now, expected, received))
        while len(samples) > 1 and samples[1][0] <= now - self.seconds:
            samples.popleft()
        then, first_expected, first_received = samples[0]
        if now - then < self.seconds:
            return None
        span = expected - first_expected
        if span <= 0:
            return 0.0
        return max(0, span - (received - first_received)) / span
