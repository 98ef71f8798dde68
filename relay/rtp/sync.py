"""Places every track's RTP timestamps on the stream's one timeline (RFC 3550 6.4.1).

RTP timestamps start at a random value per track and wrap at 2^32; only RTCP sender reports tie
them to a common (NTP) clock. Each track is first anchored at the arrival time of its first
packet; once the reference track (video) and another track both have a sender report, that track
is re-anchored so the two line up as the source's NTP clock says. Anchors are seconds since the
stream's epoch, so a reconnect simply continues the timeline.

Sources lie: DVRs re-stamp by hours, cameras jump after an NTP sync. A timestamp step that
disagrees with the arrival clock by more than ``JUMP_THRESHOLD`` re-anchors the track at its
arrival time (counted in ``restamped``) instead of tearing the outputs down. Decode times handed
on never go backwards per track (``monotonic``; counted in ``clamped``).
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.rtp.timing import TimestampUnwrapper

REALIGN_THRESHOLD = 0.020
"""Re-anchor a track when the sender reports say it is off by more than this (seconds)."""
JUMP_THRESHOLD = 5.0
"""A timestamp step this much larger or smaller than the arrival step is a source clock jump."""


@dataclass(slots=True)
class _TrackClock:
    clock_rate: int
    unwrapper: TimestampUnwrapper
    base_ext: int | None = None
    base_ticks: int = 0
    last_ext: int = 0
    last_arrival: float = 0.0
    last_dts: int | None = None
    report: tuple[int, float] | None = None  # (extended RTP timestamp, NTP seconds) of last SR

    def ticks(self, ext: int) -> int:
        assert self.base_ext is not None
        return self.base_ticks + ext - self.base_ext

    def anchor(self, ext: int, now: float) -> None:
        self.base_ext = ext
        self.base_ticks = round(now * self.clock_rate)
        if self.last_dts is not None:
            self.base_ticks = max(self.base_ticks, self.last_dts + 1)


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
        self.restamped = 0

    def add_track(self, index: int, clock_rate: int) -> None:
        if index not in self._clocks or self._clocks[index].clock_rate != clock_rate:
            self._clocks[index] = _TrackClock(clock_rate, TimestampUnwrapper())

    def place(self, index: int, rtp_timestamp: int, now: float) -> int:
        """Timeline ticks of a frame with this RTP timestamp; ``now`` is seconds since epoch.

        Presentation times may go backwards (B-frames); see ``monotonic`` for decode times.
        """
        clock = self._clocks[index]
        ext = clock.unwrapper.unwrap(rtp_timestamp)
        if clock.base_ext is None:
            clock.anchor(ext, now)
        else:
            step = (ext - clock.last_ext) / clock.clock_rate
            if abs(step - (now - clock.last_arrival)) > JUMP_THRESHOLD:
                clock.anchor(ext, now)
                clock.report = None
                self.restamped += 1
        clock.last_ext = ext
        clock.last_arrival = now
        return clock.ticks(ext)

    def monotonic(self, index: int, dts: int) -> int:
        """``dts``, or just after the track's previous one if it would go backwards."""
        clock = self._clocks[index]
        if clock.last_dts is not None and dts <= clock.last_dts:
            dts = clock.last_dts + 1
            self.clamped += 1
        clock.last_dts = dts
        return dts

    def sender_report(self, index: int, rtp_timestamp: int, ntp_seconds: float) -> None:
        """Record a sender report's NTP/RTP pair and re-anchor tracks it shows misaligned."""
        clock = self._clocks.get(index)
        if clock is None or clock.base_ext is None:
            return
        clock.report = (clock.unwrapper.unwrap(rtp_timestamp), ntp_seconds)
        ref = self._clocks.get(self.reference) if self.reference is not None else None
        if ref is None or ref.report is None or ref.base_ext is None:
            return
        for other in self._clocks.values():
            if other is not ref and other.report is not None and other.base_ext is not None:
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
        """Forget RTP anchors (a new session), keeping each track's last decode time."""
        for clock in self._clocks.values():
            clock.unwrapper = TimestampUnwrapper()
            clock.base_ext = None
            clock.report = None
