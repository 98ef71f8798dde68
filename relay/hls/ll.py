"""Low-Latency HLS: cut bus frames into partial segments and write the LL playlists.

RFC 8216bis (HLS 2nd edition) sections 4.4.3.7-4.4.3.8 (EXT-X-PART-INF, EXT-X-SERVER-CONTROL),
4.4.4.9 (EXT-X-PART), 4.4.5.2-4.4.5.3 (EXT-X-SKIP, EXT-X-PRELOAD-HINT), 6.2.5 (delta updates).
Pure: frames in, parts (fMP4 bytes from ``relay.hls.fmp4``) out; wall times are passed in.

The cut rules, all on the lead track's decode times (video when the stream has it):

- PART-TARGET is the whole number of lead frame intervals that fits in ``part_seconds`` (at
  least one), fixed at the first cut: 0.2 s at 25 fps, 0.1667 s at 24 fps. 4.4.4.9 wants every
  part <= PART-TARGET and every part >= 85 % of it except INDEPENDENT=YES parts and the last part
  of a segment, so full parts must fill the target to the frame.
- A part ends before the frame that would take it past PART-TARGET (a single frame longer than
  it is counted as overlong), before the keyframe that ends a segment, and before a keyframe
  inside a segment once it holds 85 % of PART-TARGET (a shorter part there would break the floor;
  that keyframe then starts no part). A part that starts on a keyframe is ``INDEPENDENT=YES``.
- Segments follow the keyframes: a segment ends at the first keyframe at or after
  ``segment_seconds`` (1 s by default: a camera with a 1 s GOP gets 1 s segments, one with a 2 s
  GOP 2 s segments). EXT-X-TARGETDURATION is ``target_duration_for(segment_seconds, gop)``, the
  segmenter's one rule, fixed up front when the driver knows the stream's GOP (the bus measures
  it), so the playlist is published with the first part; else when the first segment ends. A
  later GOP too long for it is cut at a part boundary without a keyframe so that every EXTINF
  still rounds to no more than the target.
- A segment's duration is the sum of its parts' durations, by construction.
- A discontinuity (a dropped GOP, a source reconnect, new codec parameters, time going back or
  jumping) raises ``LlRestart``: the driver starts a new LL stream (new init section and numbers
  from the next keyframe) rather than mixing timelines in one init section.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime

from relay.config import PART_SECONDS_RANGE
from relay.hls.fmp4 import CARRIED, mux_fragment
from relay.hls.segmenter import MAX_GAP_SECONDS, StreamTemplates, target_duration_for
from relay.media import Frame, Kind, Track

SEGMENT_SECONDS = 1.0
"""An LL segment ends at the first keyframe at or after this."""
WINDOW = 12
"""Segments listed in ll.m3u8: enough that a delta update skips some (CAN-SKIP-UNTIL = 6 x
target) at any target."""
PART_SEGMENTS = 3
"""Finished segments whose EXT-X-PART lines (and part files) are kept, besides the open one."""
PART_FLOOR = 0.85
"""4.4.4.9: a part that is neither INDEPENDENT=YES nor its segment's last lasts at least this
share of PART-TARGET."""
MAX_PART_BYTES = 16 * 1024 * 1024
"""A part is closed at its next lead frame once it holds this many bytes (a flood of audio with
no video, or a huge frame), so one part bounds the memory held."""


class LlRestart(Exception):
    """The timeline or the tracks changed: the LL stream must start again from a keyframe."""


@dataclass(frozen=True, slots=True)
class Part:
    """One finished partial segment.

    Attributes:
        msn: Media Sequence Number of its parent segment.
        index: position in the parent segment, from 0.
        duration: seconds.
        start: stream seconds of its first lead frame.
        independent: starts with a keyframe (INDEPENDENT=YES).
        init: the init section (``EXT-X-MAP``), the same for the whole LL stream.
        media: ``moof`` + ``mdat``.
        closes_segment: the last part of its segment.
    """

    msn: int
    index: int
    duration: float
    start: float
    independent: bool
    init: bytes
    media: bytes
    closes_segment: bool


class PartCutter:
    """Frames of one subscription in, finished parts out.

    Args:
        tracks: the stream's tracks.
        part_seconds: the configured part target; PART-TARGET is the whole frames that fit in it.
        segment_seconds: the least LL segment duration.
        gop: the stream's keyframe interval in seconds when known (0.0: not yet), which fixes
            the target duration before the first segment ends.

    Attributes:
        target_duration: EXT-X-TARGETDURATION, None until known (``gop`` or the first segment).
        part_target: PART-TARGET seconds, None until the first cut.
        overlong_parts: parts longer than PART-TARGET (a single frame that long).
        short_parts: parts under 85 % of PART-TARGET that are neither independent nor last in
            their segment (frame times too uneven for the floor).
        cuts_without_keyframe: segments cut at a part boundary that is not a keyframe.
        frames_skipped: frames of codecs fMP4 here cannot carry.
    """

    def __init__(self, tracks: list[Track], part_seconds: float,
                 segment_seconds: float = SEGMENT_SECONDS, gop: float = 0.0) -> None:
        low, high = PART_SECONDS_RANGE
        if not low <= part_seconds <= high:
            raise ValueError(f"part_seconds: must be {low}-{high}, got {part_seconds}")
        self.part_seconds = part_seconds
        self.segment_seconds = segment_seconds
        self.target_duration = target_duration_for(segment_seconds, gop) if gop > 0 else None
        self.part_target: float | None = None
        self._part_ticks = 0  # PART-TARGET in lead clock ticks
        self.overlong_parts = 0
        self.short_parts = 0
        self.cuts_without_keyframe = 0
        self.frames_skipped = 0
        carried = [t for t in tracks if t.codec in CARRIED]
        videos = [t for t in carried if t.kind is Kind.VIDEO]
        if not carried:
            raise ValueError("tracks: none that LL-HLS can carry (H.264, H.265, AAC)")
        self._lead = (videos or carried)[0].index
        self._video = bool(videos)
        self._tracks = {t.index: t for t in carried}
        self._templates = StreamTemplates()
        self._frames: list[Frame] = []
        self._bytes = 0
        self._part_start: int | None = None  # lead dts of the open part's first frame
        self._part_key = False
        self._segment_start = 0  # lead dts
        self._msn = 0
        self._index = 0
        self._sequence = 1  # mfhd
        self._last_dts: dict[int, int] = {}
        self._interval: dict[int, int] = {}

    def push(self, frame: Frame) -> list[Part]:
        """Add one frame; returns the part it closed, if any.

        Raises:
            LlRestart: a discontinuity; this cutter is finished.
        """
        track = frame.track
        index = track.index
        known = self._tracks.get(index)
        if known is None:
            self.frames_skipped += 1
            return []
        if track != known:
            if self._sequence > 1:  # a part is out with the old init section
                raise LlRestart(f"track {index} parameters changed")
            self._tracks[index] = track
        if frame.discontinuity and self._part_start is not None:
            raise LlRestart("discontinuity")
        last = self._last_dts.get(index)
        if last is not None:
            step = frame.dts - last
            if step <= 0 or step > MAX_GAP_SECONDS * track.clock_rate:
                raise LlRestart(f"decode time of track {index} stepped by {step}")
            self._interval[index] = step
        elif self._part_start is None and (index != self._lead or not frame.key):
            return []  # before the first lead keyframe
        self._last_dts[index] = frame.dts
        out: list[Part] = []
        if index == self._lead:
            if self._part_start is None:
                self._part_start = self._segment_start = frame.dts
                self._part_key = frame.key
            else:
                self._maybe_cut(frame, out)
        self._frames.append(frame)
        self._bytes += frame.size
        return out

    def _maybe_cut(self, frame: Frame, out: list[Part]) -> None:
        assert self._part_start is not None
        rate = frame.track.clock_rate
        interval = self._interval[self._lead]
        if not self._part_ticks:  # the first interval: PART-TARGET in whole frames
            frames = max(1, round(self.part_seconds * rate * 1.001) // interval)
            self._part_ticks = frames * interval
            self.part_target = self._part_ticks / rate
        part_ticks = self._part_ticks
        key = frame.key and self._video  # every audio frame is a key: audio is cut on time
        segment_span = frame.dts - self._segment_start
        ends_segment = ((key or not self._video)
                        and segment_span >= self.segment_seconds * rate - interval // 2)
        if (not ends_segment and self.target_duration is not None
                and segment_span + interval >= (self.target_duration + 0.5) * rate):
            ends_segment = True  # EXTINF would round above the target
            self.cuts_without_keyframe += 1
        part_span = frame.dts - self._part_start
        ends_part = (ends_segment or self._bytes > MAX_PART_BYTES
                     or (key and part_span >= PART_FLOOR * part_ticks)
                     or part_span + interval > part_ticks)
        if not ends_part:
            return
        if part_span > part_ticks:
            self.overlong_parts += 1
        elif (not ends_segment and not self._part_key
              and part_span < PART_FLOOR * part_ticks):
            self.short_parts += 1
        if ends_segment and self.target_duration is None:
            self.target_duration = target_duration_for(self.segment_seconds, segment_span / rate)
        out.append(self._finish(frame.dts, rate, ends_segment))
        self._part_start = frame.dts
        self._part_key = frame.key
        if ends_segment:
            self._segment_start = frame.dts

    def _finish(self, end_dts: int, rate: int, closes_segment: bool) -> Part:
        assert self._part_start is not None
        durations = {i: self._interval.get(i, 0) for i in self._tracks}
        durations[self._lead] = end_dts - self._last_dts[self._lead]
        fragment = mux_fragment(self._frames, self._tracks, self._sequence, durations,
                                self._templates)
        part = Part(self._msn, self._index, (end_dts - self._part_start) / rate,
                    self._part_start / rate, self._part_key, fragment.init, fragment.media,
                    closes_segment)
        self._sequence += 1
        self._frames = []
        self._bytes = 0
        if closes_segment:
            self._msn += 1
            self._index = 0
        else:
            self._index += 1
        return part


@dataclass(slots=True)
class _Segment:
    msn: int
    parts: list[Part]
    program_date_time: datetime
    complete: bool = False

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.parts)


class LlPlaylist:
    """The LL media playlist (``ll.m3u8``) and its delta update (``ll_skip.m3u8``).

    Args:
        target_duration: EXT-X-TARGETDURATION (fixed for the playlist's life).
        part_target: PART-TARGET seconds, at least every part's duration.
        window: segments listed.
    """

    def __init__(self, target_duration: int, part_target: float, window: int = WINDOW) -> None:
        self.target_duration = target_duration
        self.part_target = part_target
        self.window = window
        self._segments: deque[_Segment] = deque()

    def add(self, part: Part, program_date_time: datetime) -> list[str]:
        """List a finished part; ``program_date_time`` is the wall time of its start.

        Returns:
            File names no longer listed that can be deleted (parts and segments).
        """
        if not self._segments or self._segments[-1].complete:
            self._segments.append(_Segment(part.msn, [], program_date_time))
        segment = self._segments[-1]
        segment.parts.append(replace(part, init=b"", media=b""))  # the listing, not the bytes
        segment.complete = part.closes_segment
        gone: list[str] = []
        while len(self._segments) > self.window:
            old = self._segments.popleft()
            gone.append(segment_name(old.msn))
        complete = [s for s in self._segments if s.complete]
        if part.index == 0 and len(complete) > PART_SEGMENTS + 1:
            # unlisted one segment ago: a player holding the previous playlist may still ask
            old = complete[-PART_SEGMENTS - 2]
            gone.extend(part_name(p.msn, p.index) for p in old.parts)
        return gone

    @property
    def last(self) -> tuple[int, int]:
        """(msn, part index) of the last finished part, for ll.json."""
        part = self._segments[-1].parts[-1]
        return part.msn, part.index

    def render(self, skip: bool = False) -> str:
        """The playlist text; with ``skip``, the delta update of 6.2.5.1."""
        target = self.target_duration
        lines = [
            "#EXTM3U",
            f"#EXT-X-TARGETDURATION:{target}",
            "#EXT-X-VERSION:9",
            f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={6 * target:.1f},"
            f"PART-HOLD-BACK={3 * self.part_target:.5f}",
            f"#EXT-X-PART-INF:PART-TARGET={self.part_target:.5f}",
            f"#EXT-X-MEDIA-SEQUENCE:{self._segments[0].msn}",
            '#EXT-X-MAP:URI="init.mp4"',
        ]
        segments = list(self._segments)
        skipped = 0
        if skip:
            # 6.2.5.1: only segments that start at least CAN-SKIP-UNTIL before the end
            end = sum(s.duration for s in segments)
            start = 0.0
            for segment in segments:
                if end - start < 6 * target or not segment.complete:
                    break
                skipped += 1
                start += segment.duration
            if skipped:
                lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")
        complete = [s for s in segments if s.complete]
        with_parts = {s.msn for s in complete[-PART_SEGMENTS:]}
        for segment in segments[skipped:]:
            lines.append("#EXT-X-PROGRAM-DATE-TIME:"
                         + segment.program_date_time.isoformat(timespec="milliseconds"))
            if segment.msn in with_parts or not segment.complete:
                for p in segment.parts:
                    independent = ",INDEPENDENT=YES" if p.independent else ""
                    lines.append(f'#EXT-X-PART:DURATION={p.duration:.5f},'
                                 f'URI="{part_name(p.msn, p.index)}"{independent}')
            if segment.complete:
                lines.append(f"#EXTINF:{segment.duration:.5f},")
                lines.append(segment_name(segment.msn))
        last = segments[-1].parts[-1]
        msn, index = (last.msn + 1, 0) if last.closes_segment else (last.msn, last.index + 1)
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{part_name(msn, index)}"')
        return "\n".join(lines) + "\n"


def part_name(msn: int, index: int) -> str:
    """The file name of a part (the shared contract with the web process)."""
    return f"p{msn}.{index}.m4s"


def segment_name(msn: int) -> str:
    """The file name of a whole segment: its parts concatenated."""
    return f"s{msn}.m4s"
