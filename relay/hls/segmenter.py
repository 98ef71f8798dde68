"""Cut bus frames into MPEG-TS media segments for HLS (RFC 8216 section 3, 3.2; section 6.2.1).

Pure: frames in, ``Segment`` objects out; the only work besides bookkeeping is PyAV muxing each
segment's packets into MPEG-TS in memory (no hand-written TS muxer). Rules:

- EXT-X-TARGETDURATION (``target_duration``, fixed with the first segment, RFC 8216 4.3.3.1) is
  the configured target rounded up, larger only when the camera's keyframe interval (GOP) is
  longer: a segment lasts less than ``target_duration + 0.5`` s, so that its EXTINF rounds to no
  more than it. The first segment waits up to ``LONGEST_GOP_SECONDS`` for a second keyframe to
  measure the GOP; a camera that sends none by then gets the configured target, and the frames
  held so far are cut by it. Why the target is larger than configured, or why segments start
  without keyframes, is said once in ``target_warning``.
- With video, a segment is cut at the first keyframe (``Frame.key``: IDR/IRAP or recovery
  point) at or after the configured target; a keyframe within half a frame interval of it
  counts as on target, so timestamps rounded to the 90 kHz clock (steps of 3599 and 3600 ticks)
  still give segments of the target. A segment that would grow past EXT-X-TARGETDURATION is cut
  at the last keyframe it holds (the frames from there on stay open as the next segment), so a
  GOP that does not divide the target (10 s segments, 3 s GOP: 9 s segments) or a keyframe lost
  on the way keeps segments within the target.
- A segment without such a keyframe (an intra-refresh camera without recovery point SEIs, a
  camera that sends an IDR only on request, a GOP that grew) is cut anyway, at its first video
  frame at EXT-X-TARGETDURATION (after a discontinuity, a segment starts at a video frame once
  none came for that long), and so is a segment holding ``MAX_SEGMENT_BYTES``: the playlist
  keeps moving and memory stays bounded. Such a segment
  starts on a frame not flagged as a keyframe (its TS has no random_access_indicator there); a
  player reading on from the segment before decodes straight through, one that joins at it shows
  pictures from the next keyframe on (hls.js and FFmpeg skip to it). The playlist never claims
  EXT-X-INDEPENDENT-SEGMENTS, so no client may assume otherwise (RFC 8216 4.3.5.1). Both cuts
  are counted. Audio-only streams are cut on time.
- ``Frame.discontinuity``, a change of a track's parameters, or a broken timeline (decode time
  stepping back, or a gap over ``MAX_GAP_SECONDS``) closes the open segment; the next one, which
  again starts on a keyframe, is flagged ``discontinuity`` (RFC 8216 4.3.2.3).
- Timestamps stay absolute across segments (stream time plus ``TS_OFFSET_SECONDS``, so that
  B-frame or priming DTS before zero stay positive): segment N+1 continues where N ended.
- Only H.264, H.265 and AAC can be carried; other tracks are skipped and counted.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from relay.codecs.h264 import to_annexb
from relay.media import Codec, Frame, Kind, Track

TS_OFFSET_SECONDS = 1
"""Added to every timestamp written, so that DTS slightly below stream time zero stays valid."""

MAX_GAP_SECONDS = 5.0
"""A decode-time jump forward larger than this, within one track, is taken as a discontinuity."""

LONGEST_GOP_SECONDS = 30.0
"""The longest keyframe interval taken as the camera's GOP when EXT-X-TARGETDURATION is fixed:
the first segment waits this long for its second keyframe (holding its frames, within
``MAX_SEGMENT_BYTES``); a camera that sends none by then is taken to send none."""

MAX_SEGMENT_BYTES = 64 * 1024 * 1024
"""The open segment is cut at its next video frame once its frames hold this many bytes (about
50 s of a 10 Mbit/s camera): the most a segmenter buffers, besides one frame."""

_FRAME_COST = 128
"""Bytes a buffered frame costs besides its payload (the Frame object and its list slot), so that
a flood of tiny frames meets the byte bound too."""

CARRIED = (Codec.H264, Codec.H265, Codec.AAC)

_MUX_OPTIONS = {"mpegts_copyts": "1", "avoid_negative_ts": "disabled"}

_Mark = tuple[int, int, int]
"""A frame of the lead track where the open segment may be split: its index in the segment's
frames, its pts, the segment's bytes before it."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One finished media segment.

    Attributes:
        data: the MPEG-TS bytes.
        duration: seconds, for EXTINF.
        start: seconds on the stream timeline of the segment's first (key)frame.
        discontinuity: True if the timeline or parameters changed before this segment.
        frames: number of frames muxed into it.
    """

    data: bytes
    duration: float
    start: float
    discontinuity: bool
    frames: int


class _Open:
    """The segment being collected."""

    __slots__ = ("frames", "lead", "start_pts", "max_pts", "last_dts", "interval", "tracks",
                 "discontinuity", "size", "key", "due")

    def __init__(self, first: Frame, discontinuity: bool) -> None:
        self.frames: list[Frame] = []
        self.lead = first.track.index  # the track whose keyframes / times cut segments
        self.start_pts = first.pts
        self.max_pts = first.pts
        self.last_dts: dict[int, int] = {}
        self.interval = 0  # lead track's last frame interval, in its clock units (0: unknown)
        self.tracks: dict[int, Track] = {}
        self.discontinuity = discontinuity
        self.size = 0  # bytes held, with _FRAME_COST per frame
        self.key: _Mark | None = None  # the last keyframe after the first
        self.due: _Mark | None = None  # the first frame at EXT-X-TARGETDURATION


class Segmenter:
    """Turns frames into segments; feed it every frame of one subscription in order.

    Attributes:
        has_video: whether the stream has a video track (set by the driver from the bus when a
            subscription starts or resumes); without video, segments start on any frame and
            are cut on time.
        max_gop: the longest keyframe-to-keyframe interval seen, in seconds (0.0 until known).
        target_duration: EXT-X-TARGETDURATION, whole seconds, that no segment's duration
            rounds above: fixed when the first segment is finished (None before), from the
            target and the longest GOP seen by then (``target_duration_for``).
        target_warning: why EXT-X-TARGETDURATION is longer than configured or segments start
            without keyframes (the camera's GOP), in one line; set once, None if neither.
        cuts_without_keyframe: segments cut (or, after a discontinuity, started) at a frame that
            is not a keyframe because none came within ``target_duration``.
        cuts_for_size: segments cut early at ``MAX_SEGMENT_BYTES``.
        frames_dropped: frames dropped (before a keyframe, non-increasing DTS).
        frames_skipped: frames of codecs that MPEG-TS for HLS cannot carry.
        segments_failed: segments FFmpeg refused to mux (dropped, next one flagged).
    """

    def __init__(self, segment_seconds: float = 10.0, *, has_video: bool = True) -> None:
        if not segment_seconds > 0:
            raise ValueError(f"segment_seconds: must be > 0, got {segment_seconds}")
        self.segment_seconds = segment_seconds
        self.has_video = has_video
        self.max_gop = 0.0
        self.frames_dropped = 0
        self.frames_skipped = 0
        self.segments_failed = 0
        self.target_duration: int | None = None
        self.target_warning: str | None = None
        self.cuts_without_keyframe = 0
        self.cuts_for_size = 0
        self._open: _Open | None = None
        self._tracks: dict[int, Track] = {}  # last seen Track per index
        self._pending_discontinuity = False
        self._last_key_pts: int | None = None
        self._last_key_index = -1  # track of _last_key_pts
        self._interval = 0  # lead track's frame interval, carried across segments
        self._waiting_from: int | None = None  # pts of the first video frame dropped waiting
        self._templates = StreamTemplates()

    def push(self, frame: Frame) -> list[Segment]:
        """Add one frame.

        Args:
            frame: the next frame from the bus.

        Returns:
            The segments this frame closed: usually none; several when the first segment's
            frames are cut by a target fixed without a measured GOP.
        """
        track = frame.track
        if track.codec not in CARRIED:
            self.frames_skipped += 1
            return []
        if frame.pts < frame.dts or frame.dts < -TS_OFFSET_SECONDS * track.clock_rate:
            self.frames_dropped += 1  # the muxer would refuse it
            return []
        out: list[Segment] = []
        previous = self._tracks.get(track.index)
        if previous is not track:
            self._tracks[track.index] = track
            if previous is not None and _params_differ(previous, track):
                self._break(out)
        if frame.discontinuity:
            self._break(out)
        seg = self._open
        if seg is not None:
            last = seg.last_dts.get(track.index)
            if last is not None:
                step = frame.dts - last
                if step <= 0 and -step > track.clock_rate:
                    self._break(out)  # the timeline went back: a new one started
                elif step <= 0:
                    self.frames_dropped += 1  # mpegts refuses non-increasing DTS
                    return out
                elif step > MAX_GAP_SECONDS * track.clock_rate:
                    self._break(out)
        seg = self._open
        is_key_video = frame.key and track.kind is Kind.VIDEO
        if is_key_video:
            self._note_keyframe(frame)
        size = frame.size
        if seg is None:
            if self.has_video and not is_key_video and not self._may_start(frame):
                self.frames_dropped += 1
                return out
            seg = self._start(frame)
        elif track.index == seg.lead:
            seg = self._cut(seg, frame, is_key_video, size, out)
        self._add(seg, frame, size)
        return out

    def _may_start(self, frame: Frame) -> bool:
        """Whether a segment may start at this frame that is not a keyframe: a video frame
        once video has come without a keyframe for as long as a segment may last."""
        track = frame.track
        if track.kind is not Kind.VIDEO:
            return False
        if self._waiting_from is None or frame.pts < self._waiting_from:
            self._waiting_from = frame.pts
        if frame.pts - self._waiting_from < self._longest() * track.clock_rate:
            return False
        self.cuts_without_keyframe += 1
        return True

    def _longest(self) -> float:
        """The longest a segment may last, in whole seconds: EXT-X-TARGETDURATION once fixed,
        before that the one the GOP measured so far gives, ``LONGEST_GOP_SECONDS`` until one
        is measured."""
        if self.target_duration is not None:
            return self.target_duration
        if self.max_gop:
            return target_duration_for(self.segment_seconds, self.max_gop)
        return LONGEST_GOP_SECONDS

    def _cut(self, seg: _Open, frame: Frame, is_key_video: bool, size: int,
             out: list[Segment]) -> _Open:
        """Apply the cut rules at a frame of the open segment's lead track.

        Returns:
            The open segment the frame joins: ``seg``, one starting at the frame, or the part
            of ``seg`` from its last keyframe (or the frame at the target) on. ``size`` is the
            frame's.
        """
        rate = frame.track.clock_rate
        span = frame.pts - seg.start_pts
        half = seg.interval // 2
        if self.has_video:
            on_target = (is_key_video and span > 0
                         and span >= self.segment_seconds * rate - half)
        else:
            on_target = span >= self.segment_seconds * rate
        if on_target:
            return self._restart(seg, frame, span, out)
        if self.has_video and self.target_duration is None and not self.max_gop:
            # No GOP measured yet: wait for the second keyframe, within bounds.
            if span + seg.interval <= LONGEST_GOP_SECONDS * rate:
                if seg.size + size <= MAX_SEGMENT_BYTES:
                    return seg
            return self._cut(self._settle(out), frame, is_key_video, size, out)
        if seg.size + size > MAX_SEGMENT_BYTES:
            self.cuts_for_size += 1
            return self._restart(seg, frame, span, out)
        if self.has_video and frame.pts > seg.max_pts:
            longest = self._longest()
            # EXTINF rounds to at most the target: the segment must stay under it + 0.5 s
            if 2 * (span + seg.interval) >= (2 * longest + 1) * rate:
                mark = seg.key or seg.due
                if seg.key is None:
                    self.cuts_without_keyframe += 1
                if mark is None:
                    return self._restart(seg, frame, span, out)
                seg = self._split(seg, mark, out)
            elif seg.due is None and span >= longest * rate - half:
                seg.due = (len(seg.frames), frame.pts, seg.size)
        if is_key_video and frame.pts > seg.start_pts:
            seg.key = (len(seg.frames), frame.pts, seg.size)
        return seg

    def _restart(self, seg: _Open, frame: Frame, span: int, out: list[Segment]) -> _Open:
        """Finish ``seg`` before ``frame``, which starts the next segment."""
        self._finish(seg, span / frame.track.clock_rate, out)
        return self._start(frame)

    def _split(self, seg: _Open, mark: _Mark, out: list[Segment]) -> _Open:
        """Finish the frames of ``seg`` before ``mark`` as a segment; those from the marked
        frame on stay open as the next segment."""
        index, pts, size = mark
        frames = seg.frames
        seg.frames = frames[:index]
        seg.tracks = _tracks_of(seg.frames)
        self._finish(seg, (pts - seg.start_pts) / seg.tracks[seg.lead].clock_rate, out)
        rest = self._start(frames[index])
        rest.frames = frames[index:]
        rest.tracks = _tracks_of(rest.frames)
        rest.max_pts = seg.max_pts
        rest.last_dts = seg.last_dts
        rest.size = seg.size - size
        return rest

    def _settle(self, out: list[Segment]) -> _Open:
        """Fix EXT-X-TARGETDURATION at the configured target when no GOP was measured (no
        second keyframe in ``LONGEST_GOP_SECONDS``, ``MAX_SEGMENT_BYTES`` or before a flush)
        and cut the frames held so far by it.

        Returns:
            The open segment after those frames.
        """
        seg = self._open
        assert seg is not None
        self.target_duration = math.ceil(self.segment_seconds)
        held = self._estimated_duration(seg)
        self.target_warning = (f"no keyframe in {held:.1f} s after the first: segments are cut "
                               f"without one at EXT-X-TARGETDURATION {self.target_duration} s")
        self._pending_discontinuity = seg.discontinuity
        frames = seg.frames
        lead = seg.lead
        again = self._start(frames[0])
        self._add(again, frames[0], frames[0].size)
        for frame in frames[1:]:
            size = frame.size
            if frame.track.index == lead:
                again = self._cut(again, frame, frame.key and frame.track.kind is Kind.VIDEO,
                                  size, out)
            self._add(again, frame, size)
        return again

    def flush(self) -> list[Segment]:
        """Close the open segment (at shutdown); the next frame then starts a new one.

        Returns:
            The closed segment, if one was open and not empty.
        """
        out: list[Segment] = []
        seg = self._open
        if seg is not None:
            held = self._estimated_duration(seg)
            if (self.has_video and self.target_duration is None and not self.max_gop
                    and 2 * held >= 2 * math.ceil(self.segment_seconds) + 1):
                seg = self._settle(out)
            self._finish(seg, self._estimated_duration(seg), out)
        return out

    def mark_discontinuity(self) -> None:
        """Flag the next segment as a discontinuity (e.g. after a restart of the writer)."""
        self._pending_discontinuity = True

    def _break(self, out: list[Segment]) -> None:
        """Close the open segment on a discontinuity; the next segment carries the flag."""
        out.extend(self.flush())
        self._pending_discontinuity = True
        self._last_key_pts = None

    def _start(self, frame: Frame) -> _Open:
        seg = _Open(frame, self._pending_discontinuity)
        self._waiting_from = None
        seg.interval = self._interval
        self._pending_discontinuity = False
        self._open = seg
        return seg

    def _note_keyframe(self, frame: Frame) -> None:
        index = frame.track.index
        if self._last_key_pts is not None and self._last_key_index == index:
            gop = (frame.pts - self._last_key_pts) / frame.track.clock_rate
            if gop > self.max_gop:
                self.max_gop = gop
                target = self.target_duration
                if (target is not None and self.target_warning is None
                        and target_duration_for(target, gop) > target):
                    self.target_warning = (f"keyframe interval grew to {gop:.2f} s, past "
                                           f"EXT-X-TARGETDURATION {target} s: segments are "
                                           "cut without one")
        self._last_key_pts = frame.pts
        self._last_key_index = index

    @staticmethod
    def _add(seg: _Open, frame: Frame, size: int) -> None:
        index = frame.track.index
        if index == seg.lead:
            last = seg.last_dts.get(index)
            if last is not None:
                seg.interval = frame.dts - last
            if frame.pts > seg.max_pts:
                seg.max_pts = frame.pts
        seg.last_dts[index] = frame.dts
        seg.tracks[index] = frame.track
        seg.frames.append(frame)
        seg.size += size + _FRAME_COST

    @staticmethod
    def _estimated_duration(seg: _Open) -> float:
        # The lead track's last frame lasts as long as the one before it.
        rate = seg.tracks[seg.lead].clock_rate
        return (seg.max_pts + seg.interval - seg.start_pts) / rate

    def _finish(self, seg: _Open, duration: float, out: list[Segment]) -> None:
        self._open = None
        self._interval = seg.interval
        try:
            data = mux_ts(seg.frames, seg.tracks, self._templates)
        except av.FFmpegError:
            # Frames FFmpeg refuses (the checks in push should leave none): lose this
            # segment, not the sink.
            self.segments_failed += 1
            self._pending_discontinuity = True
            return
        start = seg.start_pts / seg.tracks[seg.lead].clock_rate
        if self.target_duration is None:
            self.target_duration = target_duration_for(self.segment_seconds, self.max_gop)
            if self.target_duration > math.ceil(self.segment_seconds):
                self.target_warning = (
                    f"keyframe interval {self.max_gop:.2f} s is longer than the "
                    f"{self.segment_seconds:g} s segment target: EXT-X-TARGETDURATION "
                    f"{self.target_duration} s")
        out.append(Segment(data, duration, start, seg.discontinuity, len(seg.frames)))


def _params_differ(a: Track, b: Track) -> bool:
    return (
        a.codec != b.codec
        or a.clock_rate != b.clock_rate
        or a.parameter_sets != b.parameter_sets
        or a.audio_config != b.audio_config
    )


def _tracks_of(frames: list[Frame]) -> dict[int, Track]:
    return {frame.track.index: frame.track for frame in frames}


def target_duration_for(segment_seconds: float, gop: float) -> int:
    """The tightest EXT-X-TARGETDURATION for this target and GOP (RFC 8216 4.3.3.1).

    Each EXTINF, rounded to the nearest integer, must not exceed it: the configured target
    rounded up, or more when a GOP (a segment between keyframes) would round above that.

    Args:
        segment_seconds: the configured target.
        gop: the longest keyframe interval seen (``Segmenter.max_gop``), 0 if unknown.

    Returns:
        Whole seconds, at least ``ceil(segment_seconds)``.
    """
    return max(math.ceil(segment_seconds), math.floor(gop + 0.5))


class StreamTemplates:
    """A never-opened output stream per codec, in a container never written: a segment's
    streams are copied from them, so PyAV opens no encoder. Each Segmenter holds its own."""

    def __init__(self) -> None:
        self._container: Any = None  # made at the first use
        self._streams: dict[Codec, Any] = {}

    def get(self, codec: Codec) -> Any:
        """The template stream for ``codec``."""
        stream = self._streams.get(codec)
        if stream is None:
            if self._container is None:
                self._container = av.open(io.BytesIO(), "w", format="mpegts")
            stream = self._streams[codec] = self._container.add_stream(codec.value)
        return stream


def add_track_streams(container: Any, tracks: dict[int, Track],
                      templates: StreamTemplates) -> tuple[dict[int, Any], dict[int, Fraction]]:
    """Add one output stream per track to a PyAV container (TS or fMP4), in index order.

    Returns:
        Each track index's stream and time base (1 / clock rate).
    """
    streams: dict[int, Any] = {}
    time_bases: dict[int, Fraction] = {}
    for index in sorted(tracks):
        track = tracks[index]
        # A stream copied from a template is marked initialised, so no encoder is opened.
        stream = container.add_stream_from_template(templates.get(track.codec), opaque=True)
        ctx = stream.codec_context
        if track.kind is Kind.VIDEO:
            ctx.width = track.width
            ctx.height = track.height
        else:
            ctx.sample_rate = track.sample_rate or track.clock_rate
            if 0 < track.channels <= 8:
                ctx.layout = f"{track.channels}c"  # FFmpeg's default layout for n
            if track.audio_config:
                ctx.extradata = track.audio_config
        time_bases[index] = stream.time_base = Fraction(1, track.clock_rate)
        streams[index] = stream
    return streams, time_bases


def mux_ts(frames: list[Frame], tracks: dict[int, Track], templates: StreamTemplates) -> bytes:
    """Mux frames into one self-contained MPEG-TS segment (PAT/PMT first), in memory.

    Args:
        frames: the segment's frames in arrival order, DTS increasing per track; a video
            frame's NAL units are joined once here, as Annex B (what TS carries).
        tracks: the Track of each index present in ``frames``.
        templates: the caller's stream templates, reused from segment to segment.

    Returns:
        The TS bytes.
    """
    buffer = io.BytesIO()
    container = av.open(buffer, "w", format="mpegts", options=_MUX_OPTIONS)
    try:
        streams, time_bases = add_track_streams(container, tracks, templates)
        offsets = {i: TS_OFFSET_SECONDS * track.clock_rate for i, track in tracks.items()}
        for frame in frames:
            index = frame.track.index
            data = frame.data
            packet = av.Packet(data if isinstance(data, bytes) else to_annexb(data))
            offset = offsets[index]
            packet.pts = frame.pts + offset
            packet.dts = frame.dts + offset
            packet.time_base = time_bases[index]
            packet.stream = streams[index]
            packet.is_keyframe = frame.key
            container.mux_one(packet)
    finally:
        container.close()
    return buffer.getvalue()
