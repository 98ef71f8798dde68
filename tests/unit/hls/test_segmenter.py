"""Segmenter: real H.264/AAC in, MPEG-TS out, checked with ffprobe and PyAV."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import subprocess
import time
from pathlib import Path

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.codecs import h264
from relay.hls.playlist import rounded_duration
from relay.hls.segmenter import (
    LONGEST_GOP_SECONDS,
    MAX_SEGMENT_BYTES,
    TS_OFFSET_SECONDS,
    Segment,
    Segmenter,
    StreamTemplates,
    mux_ts,
    target_duration_for,
)
from relay.media import Codec, Frame, Track

from .encoded import FPS, HEIGHT, SAMPLE_RATE, WIDTH, av_frames

FRAME_TICKS = 90000 // FPS
OFFSET = TS_OFFSET_SECONDS * 90000
FFPROBE = shutil.which("ffprobe")


def segment_all(frames: list[Frame], seconds: float, **kwargs: bool) -> list[Segment]:
    segmenter = Segmenter(seconds, **kwargs)
    out: list[Segment] = []
    for frame in frames:
        out += segmenter.push(frame)
    return out + segmenter.flush()


def demux(data: bytes) -> dict[str, list[av.Packet]]:
    """Packets per stream type, as PyAV (FFmpeg's demuxer) reads the segment."""
    packets: dict[str, list[av.Packet]] = {"video": [], "audio": []}
    with av.open(io.BytesIO(data), format="mpegts") as container:
        for packet in container.demux():
            if packet.size:
                packets[packet.stream.type].append(packet)
    return packets


def ffprobe(path: Path) -> dict:
    assert FFPROBE, "ffprobe missing: run `make system-deps` (Debian package ffmpeg)"
    result = subprocess.run(
        [FFPROBE, "-v", "error", "-show_streams", "-show_packets", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    assert result.stderr == "", result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def av_segments() -> list[Segment]:
    return segment_all(av_frames(13.0), 4.0)


def test_cuts_on_keyframes_at_target(av_segments: list[Segment]) -> None:
    assert [round(s.duration, 6) for s in av_segments] == [4.0, 4.0, 4.0, 1.0]
    assert [s.start for s in av_segments] == [0.0, 4.0, 8.0, 12.0]
    assert not any(s.discontinuity for s in av_segments)
    assert all(s.data[0] == 0x47 and len(s.data) % 188 == 0 for s in av_segments)


def test_ffprobe_reads_codecs_keyframes_and_continuous_pts(
    av_segments: list[Segment], tmp_path: Path
) -> None:
    previous_end = None
    for i, segment in enumerate(av_segments):
        path = tmp_path / f"seg{i}.ts"
        path.write_bytes(segment.data)
        probe = ffprobe(path)
        streams = {s["codec_type"]: s for s in probe["streams"]}
        video, audio = streams["video"], streams["audio"]
        assert (video["codec_name"], video["width"], video["height"]) == ("h264", WIDTH, HEIGHT)
        assert (audio["codec_name"], int(audio["sample_rate"]), audio["channels"]) == (
            "aac", SAMPLE_RATE, 1)
        assert audio["profile"] == "LC"
        vpackets = [p for p in probe["packets"] if p["codec_type"] == "video"]
        assert vpackets[0]["flags"].startswith("K")
        first_pts = int(vpackets[0]["pts"])
        assert first_pts == OFFSET + round(segment.start * 90000)
        if previous_end is not None:
            assert first_pts == previous_end  # last PTS + one frame
        previous_end = max(int(p["pts"]) for p in vpackets) + FRAME_TICKS
        span = (previous_end - first_pts) / 90000
        assert span == pytest.approx(segment.duration)


def test_pyav_decodes_every_segment(av_segments: list[Segment]) -> None:
    for segment in av_segments:
        packets = demux(segment.data)
        assert packets["video"][0].is_keyframe
        with av.open(io.BytesIO(segment.data), format="mpegts") as container:
            pictures = sum(1 for _ in container.decode(video=0))
        assert pictures == round(segment.duration * FPS)
        with av.open(io.BytesIO(segment.data), format="mpegts") as container:
            samples = sum(f.samples for f in container.decode(audio=0))
        assert abs(samples / SAMPLE_RATE - segment.duration) < 0.1


def test_gop_longer_than_target_makes_longer_segments() -> None:
    segments = segment_all(av_frames(9.0, keyint=3 * FPS), 2.0)
    assert [round(s.duration, 6) for s in segments] == [3.0, 3.0, 3.0]
    for segment in segments:
        assert demux(segment.data)["video"][0].is_keyframe


def test_bframes_keep_pts_continuous() -> None:
    segments = segment_all(av_frames(6.0, bframes=2), 2.0)
    assert len(segments) == 3
    end = None
    for segment in segments:
        video = demux(segment.data)["video"]
        assert video[0].is_keyframe
        assert min(p.dts for p in video) >= 0
        if end is not None:
            assert min(p.pts for p in video) == end
        end = max(p.pts for p in video) + FRAME_TICKS


def test_frames_before_first_keyframe_are_dropped() -> None:
    frames = av_frames(3.0)
    start = next(i for i, f in enumerate(frames) if f.track.codec is Codec.H264 and f.pts > 0)
    segmenter = Segmenter(1.0)
    out = []
    for frame in frames[start:]:
        out += segmenter.push(frame)
    out += segmenter.flush()
    assert out[0].start == 1.0
    assert segmenter.frames_dropped > 0
    assert demux(out[0].data)["video"][0].is_keyframe


def test_discontinuity_closes_segment_and_flags_next() -> None:
    frames = av_frames(4.0)
    # A reconnect at 2.5 s: the bus resumes on the next keyframe, at 3 s, flagged.
    resume = next(i for i, f in enumerate(frames) if f.key and f.track.index == 0
                  and f.pts == 3 * 90000)
    cut = next(i for i, f in enumerate(frames) if f.pts >= 2.5 * f.track.clock_rate)
    fed = frames[:cut] + [dataclasses.replace(frames[resume], discontinuity=True)]
    fed += frames[resume + 1:]
    segments = segment_all(fed, 2.0)
    assert [s.discontinuity for s in segments] == [False, False, True]
    assert segments[1].start == 2.0 and segments[2].start == 3.0
    assert segments[1].duration == pytest.approx(0.5, abs=0.05)


def test_parameter_change_cuts_with_discontinuity() -> None:
    frames = av_frames(3.0)
    old = frames[0].track
    new = dataclasses.replace(old, parameter_sets=(old.parameter_sets[0], b"\x68\xee\x3c\x81"))
    fed = [dataclasses.replace(f, track=new) if f.track is old and f.pts >= 90000 * 1.5 else f
           for f in frames]
    segments = segment_all(fed, 10.0)
    assert [(s.start, s.discontinuity) for s in segments] == [(0.0, False), (2.0, True)]
    # Frames of the new track between the change and the next keyframe were dropped.
    assert segments[0].duration == pytest.approx(1.5, abs=0.05)


def test_same_parameters_in_a_new_track_object_do_not_cut() -> None:
    frames = av_frames(3.0)
    old = frames[0].track
    copy = dataclasses.replace(old)
    fed = [dataclasses.replace(f, track=copy) if f.track is old and f.pts >= 45000 else f
           for f in frames]
    assert len(segment_all(fed, 10.0)) == 1


def test_audio_only_cuts_on_time() -> None:
    segments = segment_all(av_frames(5.0, video=False), 2.0, has_video=False)
    assert [s.discontinuity for s in segments] == [False, False, False]
    for segment in segments[:-1]:
        assert 2.0 <= segment.duration < 2.03
    packets = demux(segments[1].data)["audio"]
    assert packets[0].pts == round(segments[1].start * 90000) + OFFSET


def test_dts_not_increasing_dropped_and_timeline_reset_is_a_discontinuity() -> None:
    frames = [f for f in av_frames(4.0) if f.track.index == 0]
    repeat = frames[10]
    # The source restarts its clock without saying so: 1.5 s back, on a keyframe.
    assert frames[50].key
    back = [dataclasses.replace(f, pts=f.pts - 135000, dts=f.dts - 135000) for f in frames[50:]]
    segmenter = Segmenter(10.0)
    out = []
    for frame in frames[:20] + [repeat] + frames[20:50] + back:
        out += segmenter.push(frame)
    out += segmenter.flush()
    assert segmenter.frames_dropped == 1
    assert [s.discontinuity for s in out] == [False, True]


def test_unsupported_codec_skipped() -> None:
    pcma = Track(2, Codec.PCMA, 8000, sample_rate=8000, channels=1)
    frames = av_frames(2.0)
    fed = [Frame(pcma, i * 160, i * 160, True, bytes(160)) for i in range(3)] + frames
    segmenter = Segmenter(1.0)
    for frame in fed:
        segmenter.push(frame)
    assert segmenter.frames_skipped == 3
    assert {s.type for s in av.open(io.BytesIO(segmenter.flush()[0].data)).streams} == {
        "video", "audio"}


def test_target_duration_for() -> None:
    """The target rounded up; a GOP only when its EXTINF would round above that."""
    assert target_duration_for(10.0, 1.0) == 10
    assert target_duration_for(10.0, 0.0) == 10
    assert target_duration_for(2.0, 2.0) == 2
    assert target_duration_for(2.0, 2.49) == 2
    assert target_duration_for(2.0, 2.5) == 3
    assert target_duration_for(2.0, 12.0) == 12
    assert target_duration_for(2.5, 0.5) == 3
    assert target_duration_for(2.0, 3599 * 25 / 90000 * 2) == 2


def video_frames(seconds: float, gop: float | None, steps: tuple[int, ...] = (FRAME_TICKS,)
                 ) -> list[Frame]:
    """A 25 fps video track: a keyframe every ``gop`` seconds (only the first if None), frame
    steps cycling through ``steps`` ticks."""
    frames = []
    pts = 0
    per_gop = round(gop * FPS) if gop else 0
    for n in range(round(seconds * FPS)):
        key = n == 0 or bool(per_gop) and n % per_gop == 0
        frames.append(Frame(VIDEO, pts, pts, key, AUD))
        pts += steps[n % len(steps)]
    return frames


# segment s, GOP s (None: one keyframe only), declared target, segment durations before the last,
# what target_warning says (None: nothing)
TARGET_CASES = {
    "2 s, GOP 1 s": (2.0, 1.0, (), 2, 2.0, None),
    "2 s, GOP 2 s": (2.0, 2.0, (), 2, 2.0, None),
    "2 s, GOP 2 s, steps 3599/3600": (2.0, 2.0, (3599, 3600), 2, 1.9997, None),
    "2 s, GOP 10 s": (2.0, 10.0, (), 10, 10.0, "keyframe interval 10.00 s is longer than"),
    "2 s, GOP 12 s": (2.0, 12.0, (), 12, 12.0, "keyframe interval 12.00 s is longer than"),
    "2 s, no keyframe": (2.0, None, (), 2, 2.0, "no keyframe in 30.0 s after the first"),
    "2.5 s, GOP 2 s": (2.5, 2.0, (), 3, 2.0, None),
    "10 s, GOP 1 s": (10.0, 1.0, (), 10, 10.0, None),
    "10 s, GOP 2 s": (10.0, 2.0, (), 10, 10.0, None),
    "10 s, GOP 3 s: the last keyframe that fits": (10.0, 3.0, (), 10, 9.0, None),
    "10 s, GOP 10 s": (10.0, 10.0, (), 10, 10.0, None),
    "10 s, GOP 10.4 s: EXTINF rounds to 10": (10.0, 10.4, (), 10, 10.4, None),
    "10 s, GOP 12 s": (10.0, 12.0, (), 12, 12.0, "keyframe interval 12.00 s is longer than"),
    "10 s, no keyframe": (10.0, None, (), 10, 10.0, "no keyframe in 30.0 s after the first"),
}


@pytest.mark.parametrize(("seconds", "gop", "steps", "target", "duration", "warning"),
                         TARGET_CASES.values(), ids=TARGET_CASES.keys())
def test_tightest_target_duration(seconds: float, gop: float | None, steps: tuple[int, ...],
                                  target: int, duration: float, warning: str | None) -> None:
    """EXT-X-TARGETDURATION is the target rounded up (FFmpeg's 2 and 10 for a 2 s GOP), more
    only for a longer GOP, said once; every EXTINF rounds to no more than it; with keyframes,
    every segment starts on one."""
    frames = video_frames(72.0, gop, steps or (FRAME_TICKS,))
    keys = {f.pts / 90000 for f in frames if f.key}
    segmenter = Segmenter(seconds)
    out: list[Segment] = []
    for frame in frames:
        out += segmenter.push(frame)
        assert segmenter.target_duration in (None, target)  # fixed once, never changed
    out += segmenter.flush()
    assert segmenter.target_duration == target
    assert all(rounded_duration(s.duration) <= target for s in out)
    assert [round(s.duration, 4) for s in out[:-1]] == [duration] * (len(out) - 1)
    assert sum(s.frames for s in out) == len(frames)
    if gop is not None:
        assert all(s.start in keys for s in out)
        assert segmenter.cuts_without_keyframe == 0
    assert segmenter.target_warning == warning or (
        warning is not None and segmenter.target_warning is not None
        and segmenter.target_warning.startswith(warning)), segmenter.target_warning


AUD = (b"\x09\xf0",)
VIDEO = Track(0, Codec.H264, 90000, width=16, height=16)


@settings(max_examples=40, deadline=None)
@given(
    target=st.sampled_from([1.0, 2.0, 2.5, 4.0]),
    gops=st.lists(st.integers(min_value=1, max_value=120), min_size=2, max_size=12),
)
def test_segments_bounded_by_the_target_duration(target: float, gops: list[int]) -> None:
    """Whatever the GOP structure, every EXTINF rounds to no more than the target duration the
    segmenter fixed, itself at most what the longest GOP needs."""
    segmenter = Segmenter(target)
    out: list[Segment] = []
    n = 0
    for gop in gops:
        for i in range(gop):
            out += segmenter.push(Frame(VIDEO, n * FRAME_TICKS, n * FRAME_TICKS, i == 0, AUD))
            n += 1
    out += segmenter.flush()
    assert sum(s.frames for s in out) == n
    assert sum(s.duration for s in out) == pytest.approx(n / FPS)
    bound = target_duration_for(target, max(gops) / FPS)
    assert segmenter.target_duration is not None and segmenter.target_duration <= bound
    for segment in out:
        assert rounded_duration(segment.duration) <= segmenter.target_duration
    if max(gops) <= segmenter.target_duration * FPS:  # each cut at a keyframe that fits
        assert segmenter.cuts_without_keyframe == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-200_000, 2_000_000), st.integers(-5000, 5000),
                          st.booleans(), st.booleans(), st.booleans()), max_size=40))
def test_hostile_timestamps_never_break_the_muxer(
    events: list[tuple[int, int, bool, bool, bool]]
) -> None:
    """Any timestamps, flags and track mix: segments come out, no PyAV error escapes."""
    audio = Track(1, Codec.AAC, 48000, audio_config=b"\x11\x88", sample_rate=48000,
                  channels=1)
    segmenter = Segmenter(1.0)
    for dts, lag, key, disc, is_audio in events:
        if is_audio:
            frame = Frame(audio, dts, dts, True, b"\x21\x00\x49\x90", discontinuity=disc)
        else:
            frame = Frame(VIDEO, dts + lag, dts, key, AUD, discontinuity=disc)
        for segment in segmenter.push(frame):
            assert segment.frames > 0
    for segment in segmenter.flush():
        assert segment.data[:1] == b"\x47"


def test_mux_speed_per_packet() -> None:
    """Muxing a 4 s A/V segment (container set-up included) stays far below real time."""
    frames = av_frames(4.0)
    tracks = {f.track.index: f.track for f in frames}
    started = time.perf_counter()
    rounds = 5
    templates = StreamTemplates()
    for _ in range(rounds):
        mux_ts(frames, tracks, templates)
    per_packet = (time.perf_counter() - started) / (rounds * len(frames))
    print(f"mux: {per_packet * 1e6:.1f} us/packet")
    assert per_packet < 200e-6


def test_mux_ts_joins_the_nal_units_once_as_annex_b() -> None:
    """A video Frame's NAL units reach the TS as Annex B, each unit whole and in order (the
    muxer may put an access unit delimiter first, as FFmpeg's does)."""
    frames = av_frames(1.0, audio=False)
    assert all(isinstance(f.data, tuple) for f in frames)
    data = mux_ts(frames, {0: frames[0].track}, StreamTemplates())
    with av.open(io.BytesIO(data), format="mpegts") as container:
        packets = [bytes(p) for p in container.demux(video=0) if p.size]
    assert len(packets) == len(frames)
    for packet, frame in zip(packets, frames):
        nals = [bytes(n) for n in h264.split_annexb(packet) if h264.nal_type(n) != h264.AUD]
        assert nals == [n for n in frame.data if h264.nal_type(n) != h264.AUD]


def test_segment_ffmpeg_refuses_is_dropped_not_raised() -> None:
    """A video payload that is not NAL units (bytes: H.264 without start codes) is refused by
    FFmpeg's mpegts muxer: counted, flagged."""
    segmenter = Segmenter(1.0)
    segmenter.push(Frame(VIDEO, 0, 0, True, b"\x65\x88\x84\x00"))
    assert segmenter.flush() == []
    assert segmenter.segments_failed == 1
    segmenter.push(Frame(VIDEO, 3600, 3600, True, AUD))
    (segment,) = segmenter.flush()
    assert segment.discontinuity


def test_keyframe_half_a_frame_before_target_is_on_target() -> None:
    """Timestamps rounded to 90 kHz step 3599, 3600, ...: each 2 s GOP ends 25 ticks short."""
    segmenter = Segmenter(2.0)
    out: list[Segment] = []
    pts = 0
    for n in range(50 * 6):
        out += segmenter.push(Frame(VIDEO, pts, pts, n % 50 == 0, AUD))
        pts += 3599 if n % 2 == 0 else 3600
    out += segmenter.flush()
    assert [round(s.duration, 3) for s in out] == [2.0] * 6
    assert segmenter.target_duration == 2
    # a keyframe more than half a frame early is not on target
    early = Segmenter(2.0)
    for n in range(51):
        early.push(Frame(VIDEO, n * 3600 - (1801 if n == 50 else 0),
                         n * 3600 - (1801 if n == 50 else 0), n in (0, 50), AUD))
    assert early.flush()[0].frames == 51


def test_stream_without_keyframes_is_cut_at_target_duration() -> None:
    """One keyframe, then none: a second one is waited for LONGEST_GOP_SECONDS, then the frames
    held are cut at the configured target, and so is what follows."""
    segmenter = Segmenter(2.0)
    out: list[Segment] = []
    waited = round(LONGEST_GOP_SECONDS * FPS)
    for n in range(waited + 2 * FPS):
        out += segmenter.push(Frame(VIDEO, n * FRAME_TICKS, n * FRAME_TICKS, n == 0, AUD))
        if n < waited:
            assert not out
    assert segmenter.target_duration == 2
    assert len(out) == 15 and [round(s.duration, 2) for s in out] == [2.0] * 15
    assert segmenter.cuts_without_keyframe == 15
    assert not any(s.discontinuity for s in out)


def test_real_stream_without_keyframes_keeps_audio_and_video_continuous() -> None:
    """x264 with one IDR in 12 s, and AAC: segments of EXT-X-TARGETDURATION, PTS continuous;
    only the first starts on a keyframe."""
    segments = segment_all(av_frames(12.0, keyint=12 * FPS), 2.0)
    assert [round(s.duration, 6) for s in segments] == [2.0] * 6
    end = None
    for n, segment in enumerate(segments):
        packets = demux(segment.data)
        assert packets["video"][0].is_keyframe is (n == 0)
        assert packets["audio"]
        if end is not None:
            assert packets["video"][0].pts == end
        end = packets["video"][-1].pts + FRAME_TICKS


def test_gop_longer_than_target_duration_is_cut_without_keyframe() -> None:
    """A GOP that grows past EXT-X-TARGETDURATION after it was fixed: cut at the target, never
    overlong, said once."""
    segmenter = Segmenter(2.0)
    out: list[Segment] = []
    keys = {0, 50, 100, 400}  # 2 s GOPs, then one of 12 s
    for n in range(450):
        out += segmenter.push(Frame(VIDEO, n * FRAME_TICKS, n * FRAME_TICKS, n in keys, AUD))
    assert segmenter.target_duration == 2
    assert all(rounded_duration(s.duration) <= 2 for s in out)
    assert [s.start for s in out] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0]
    assert segmenter.cuts_without_keyframe == 5
    assert segmenter.target_warning == ("keyframe interval grew to 12.00 s, past "
                                        "EXT-X-TARGETDURATION 2 s: segments are cut without one")


def test_a_lost_keyframe_cuts_at_the_last_keyframe_that_fits() -> None:
    """1 s GOPs, 2 s segments, the keyframe at 4 s lost: the segment from 2 s is cut at its
    keyframe at 3 s, so every segment still starts on a keyframe and fits the target."""
    segmenter = Segmenter(2.0)
    out: list[Segment] = []
    for n in range(8 * FPS):
        out += segmenter.push(Frame(VIDEO, n * FRAME_TICKS, n * FRAME_TICKS,
                                    n % FPS == 0 and n != 4 * FPS, AUD))
    out += segmenter.flush()
    assert [(s.start, s.duration) for s in out] == [(0.0, 2.0), (2.0, 1.0), (3.0, 2.0),
                                                    (5.0, 2.0), (7.0, 1.0)]
    assert segmenter.target_duration == 2 and segmenter.cuts_without_keyframe == 0
    assert sum(s.frames for s in out) == 8 * FPS


def test_segmenter_bytes_bounded_without_keyframes() -> None:
    """4 MiB frames and no keyframe after the first: cut at MAX_SEGMENT_BYTES, not at 10 s."""
    big = (*AUD, b"\x0c" + b"\xff" * (4 * 1024 * 1024))  # filler NAL unit
    segmenter = Segmenter(10.0)
    out: list[Segment] = []
    for n in range(40):
        out += segmenter.push(Frame(VIDEO, n * FRAME_TICKS, n * FRAME_TICKS, n == 0, big))
    per_segment = MAX_SEGMENT_BYTES // sum(map(len, big))
    assert [s.frames for s in out] == [per_segment, per_segment]
    assert segmenter.cuts_for_size == 2
    assert all(len(s.data) < 1.1 * MAX_SEGMENT_BYTES for s in out)


def test_after_a_discontinuity_a_stream_without_keyframes_starts_again() -> None:
    """A reconnect mid-stream of a camera that sends no keyframe: a segment starts anyway, at a
    video frame once none came for EXT-X-TARGETDURATION, flagged as a discontinuity."""
    segmenter = Segmenter(2.0)
    out: list[Segment] = []
    for n in range(300):
        frame = Frame(VIDEO, n * FRAME_TICKS, n * FRAME_TICKS, n == 0, AUD,
                      discontinuity=n == 150)
        out += segmenter.push(frame)
    out += segmenter.flush()
    assert segmenter.target_duration == 2
    # 0-2, 2-4, 4-6 s (closed by the discontinuity, which fixes the target), then 6-8 s
    # dropped waiting, 8-10, 10-12 s
    assert [(s.start, s.discontinuity) for s in out] == [
        (0.0, False), (2.0, False), (4.0, False), (8.0, True), (10.0, False)]
    assert segmenter.frames_dropped == 50
