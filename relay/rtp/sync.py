"""Places every track's RTP timestamps on the stream's one timeline (RFC 3550 6.4.1).

RTP timestamps start at a random value per track and wrap at 2^32; only RTCP sender reports tie
them to a common (NTP) clock. Each track is first anchored at the arrival time of its first
packet; once the reference track (video) and another track both have a sender report, that track
is re-anchored so the two line up as the source's NTP clock says. Anchors are seconds since the
stream's epoch, so a reconnect simply continues the timeline. Output times per track never go
backwards: a re-anchor or a jumping source is clamped, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.rtp.timing import TimestampUnwrapper

REALIGN_THRESHOLD = 0.020
"""Re-anchor a track when the sender reports say it is off by more than this (seconds)."""


@dataclass(slots=True)
class _TrackClock:
    clock_rate: int
    unwrapper: TimestampUnwrapper
    base_ext: int | None = None
    base_ticks: int = 0
    last_ticks: int | None = None
    report: tuple[int, float] | None = None  # (extended RTP timestamp, NTP seconds) of last SR

    def ticks(self, ext: int) -> int:
        assert self.base_ext is not None
        return self.base_ticks + ext - self.base_ext


class Timeline:
    """Maps (track, RTP timestamp) to timeline ticks in that track's clock units.

    Args:
        reference: index of the track the others are aligned to (the video track), if any.
    """

    def __init__(self, reference: int | None = None) -> None:
        self.reference = reference
        self._clocks: dict[int, _TrackClock] = {}
        self.clamped = 0
        self.realigned = 0

    def add_track(self, index: int, clock_rate: int) -> None:
        self._clocks[index] = _TrackClock(clock_rate, TimestampUnwrapper())

    def place(self, index: int, rtp_timestamp: int, now: float) -> int:
        """Timeline ticks of a frame with this RTP timestamp; ``now`` is seconds since epoch."""
        clock = self._clocks[index]
        ext = clock.unwrapper.unwrap(rtp_timestamp)
        if clock.base_ext is None:
            clock.base_ext = ext
            clock.base_ticks = round(now * clock.clock_rate)
            if clock.last_ticks is not None:
                clock.base_ticks = max(clock.base_ticks, clock.last_ticks + 1)
        ticks = clock.ticks(ext)
        if clock.last_ticks is not None and ticks <= clock.last_ticks:
            ticks = clock.last_ticks + 1
            self.clamped += 1
        clock.last_ticks = ticks
        return ticks

    def sender_report(self, index: int, rtp_timestamp: int, ntp_seconds: float) -> None:
        """Record a sender report's NTP/RTP pair and re-anchor tracks it shows misaligned."""
        clock = self._clocks.get(index)
        if clock is None or clock.base_ext is None:
            return
        clock.report = (clock.unwrapper.unwrap(rtp_timestamp), ntp_seconds)
        ref = self._clocks.get(self.reference) if self.reference is not None else None
        if ref is None or ref.report is None or ref.base_ext is None:
            return
        for other_index, other in self._clocks.items():
            if other is ref or other.report is None or other.base_ext is None:
                continue
            self._align(ref, other)

    def _align(self, ref: _TrackClock, other: _TrackClock) -> None:
        assert ref.report is not None and other.report is not None
        ref_ext, ref_ntp = ref.report
        other_ext, other_ntp = other.report
        # where the reference timeline is at the NTP instant of the other track's report
        ref_seconds = (ref.ticks(ref_ext) + (other_ntp - ref_ntp) * ref.clock_rate) / ref.clock_rate
        wanted = round(ref_seconds * other.clock_rate)
        current = other.ticks(other_ext)
        if abs(wanted - current) > REALIGN_THRESHOLD * other.clock_rate:
            other.base_ticks += wanted - current
            self.realigned += 1

    def reset(self) -> None:
        """Forget RTP anchors (a new session), keeping each track's last output time."""
        for clock in self._clocks.values():
            clock.unwrapper = TimestampUnwrapper()
            clock.base_ext = None
            clock.report = None
