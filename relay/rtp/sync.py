"""Places every track's RTP timestamps on the stream's one timeline (RFC 3550 6.4.1), on which
each track's decode times only move forward.

RTP timestamps start at a random value per track and wrap at 2^32; only RTCP sender reports tie
them to a common (NTP) clock. ``place`` gives a frame's source time: its track is anchored at
the arrival time of its first packet and follows RTP from there. ``stamp`` gives the times the
outputs carry: source time plus the track's offset. Once the reference track (video) and another
track both have a sender report, that track's target offset is set so the two line up as the
source's NTP clock says. The offset never jumps to its target: each frame moves it by at most
``SLEW_FRACTION`` of the frame's step from the one before, so a correction is spread over a few
frames and a decode time never goes back (RFC 3550 6.4.1 leaves the how of synchronisation to
the receiver; players cope with audio timestamps a little closer together, not with ones that
repeat or go back).

Sources lie: DVRs re-stamp by hours, cameras jump after an NTP sync, a reconnect starts new RTP
clocks. A timestamp step that disagrees with the arrival clock by more than ``JUMP_THRESHOLD``
re-anchors the track so it continues by the arrival clock (counted in ``restamped``). Whatever
the source does, a decode time that would land less than ``MIN_STEP`` after the track's last one
is moved forward to that distance by raising the offset (counted in ``nudged``), and the slew
brings the offset back to its target afterwards. Anchors are seconds since the stream's epoch,
so a reconnect continues the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.rtp.timing import TimestampUnwrapper

REALIGN_THRESHOLD = 0.005
"""Re-target a track when the sender reports say it is off by more than this (seconds); less is
noise. Corrections are slewed, so even a small one costs the viewer nothing."""
MAX_REALIGN = 5.0
"""A sender-report correction larger than this (seconds) is not believed: reports that far apart
come from a broken source, and following one would slew the track for twice as long."""
JUMP_THRESHOLD = 5.0
"""A timestamp step this much larger or smaller than the arrival step is a source clock jump."""
SLEW_FRACTION = 0.5
"""Most an offset moves per frame, as a fraction of that frame's step: decode times keep at
least half their spacing, and 300 ms is absorbed within 0.6 s of media."""
MIN_STEP = 0.001
"""Least distance (seconds) between a track's decode times: the millisecond FLV counts in."""


@dataclass(slots=True)
class _TrackClock:
    clock_rate: int
    unwrapper: TimestampUnwrapper
    base_ext: int | None = None
    base_ticks: int = 0
    last_ext: int = 0
    last_arrival: float = 0.0
    offset: int = 0  # ticks added to source times now
    target: int = 0  # where the offset slews to: where the track belongs
    last_source_dts: int | None = None
    last_dts: int | None = None
    report: tuple[int, float] | None = None  # (extended RTP timestamp, NTP seconds) of last SR

    def ticks(self, ext: int) -> int:
        assert self.base_ext is not None
        return self.base_ticks + ext - self.base_ext


class Timeline:
    """Maps (track, RTP timestamp) to timeline ticks in that track's clock units.

    Args:
        reference: index of the track the others are aligned to (the video track), if any.

    Attributes:
        realigned: target offsets changed by sender reports.
        disbelieved: sender-report corrections over ``MAX_REALIGN``, ignored.
        restamped: source clock jumps re-anchored.
        nudged: decode times moved forward to keep ``MIN_STEP`` after the track's last one.
    """

    def __init__(self, reference: int | None = None) -> None:
        self.reference = reference
        self._clocks: dict[int, _TrackClock] = {}
        self.realigned = 0
        self.disbelieved = 0
        self.restamped = 0
        self.nudged = 0

    def add_track(self, index: int, clock_rate: int) -> None:
        """Declare a track (each session); a track keeps its last decode time across sessions."""
        old = self._clocks.get(index)
        if old is not None and old.clock_rate == clock_rate:
            return
        clock = _TrackClock(clock_rate, TimestampUnwrapper())
        if old is not None and old.last_dts is not None:  # the same track at a new clock rate
            clock.last_dts = -(-old.last_dts * clock_rate // old.clock_rate)
        self._clocks[index] = clock

    def place(self, index: int, rtp_timestamp: int, now: float) -> int:
        """Source time (ticks) of a frame with this RTP timestamp; ``now`` is seconds since
        epoch. Presentation order: it may go backwards (B-frames); ``stamp`` makes output times.
        """
        clock = self._clocks[index]
        ext = clock.unwrapper.unwrap(rtp_timestamp)
        if clock.base_ext is None:
            clock.base_ext = ext
            clock.base_ticks = round(now * clock.clock_rate)
        else:
            arrival = now - clock.last_arrival
            if abs((ext - clock.last_ext) / clock.clock_rate - arrival) > JUMP_THRESHOLD:
                clock.base_ticks = clock.ticks(clock.last_ext) + round(arrival * clock.clock_rate)
                clock.base_ext = ext
                clock.report = None
                self.restamped += 1
        clock.last_ext = ext
        clock.last_arrival = now
        return clock.ticks(ext)

    def stamp(self, index: int, pts: int, dts: int) -> tuple[int, int]:
        """Output (pts, dts) of a frame in decoding order, from its source times (``place``,
        and a DTS derived from them, ``dts <= pts``). The decode time is at least ``MIN_STEP``
        after the track's previous one; the offset slews toward its target."""
        clock = self._clocks[index]
        previous = clock.last_source_dts
        if previous is not None and dts > previous and clock.offset != clock.target:
            room = int((dts - previous) * SLEW_FRACTION)
            clock.offset += max(-room, min(room, clock.target - clock.offset))
        clock.last_source_dts = dts
        last = clock.last_dts
        if last is not None:
            earliest = last + max(1, round(MIN_STEP * clock.clock_rate))
            if dts + clock.offset < earliest:
                clock.offset = earliest - dts
                self.nudged += 1
        clock.last_dts = dts + clock.offset
        return pts + clock.offset, clock.last_dts

    def sender_report(self, index: int, rtp_timestamp: int, ntp_seconds: float) -> None:
        """Record a sender report's NTP/RTP pair and re-target tracks it shows misaligned."""
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
        # where the reference belongs at the NTP instant of the other track's report
        ref_ticks = ref.ticks(ref_ext) + ref.target + (other_ntp - ref_ntp) * ref.clock_rate
        wanted = round(ref_ticks * other.clock_rate / ref.clock_rate)
        error = wanted - (other.ticks(other_ext) + other.target)
        if abs(error) > MAX_REALIGN * other.clock_rate:
            self.disbelieved += 1
        elif abs(error) > REALIGN_THRESHOLD * other.clock_rate:
            other.target += error
            self.realigned += 1

    def reset(self) -> None:
        """Forget RTP anchors (a new session), keeping each track's offsets and decode times."""
        for clock in self._clocks.values():
            clock.unwrapper = TimestampUnwrapper()
            clock.base_ext = None
            clock.report = None
