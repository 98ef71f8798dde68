"""LL-HLS: the part/segment cutter, the LL playlists (RFC 8216bis 4.4.3-4.4.5, 6.2.5.1) and
their CMAF fMP4, on real H.264 (B-frames too), H.265 and AAC frames."""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import m3u8
import pytest

from relay.codecs import h265
from relay.hls.ll import LlPlaylist, LlRestart, Part, PartCutter, part_name, segment_name
from relay.media import Codec, Frame, Track

from .encoded import FPS, HEIGHT, WIDTH, av_frames

FFPROBE = shutil.which("ffprobe")
START = datetime(2026, 1, 1, tzinfo=UTC)


def cut(frames: list[Frame], part_seconds: float) -> tuple[PartCutter, list[Part]]:
    tracks = list({f.track.index: f.track for f in frames}.values())
    cutter = PartCutter(tracks, part_seconds)
    parts: list[Part] = []
    for frame in frames:
        parts += cutter.push(frame)
    return cutter, parts


def listed(cutter: PartCutter, parts: list[Part], window: int = 12) -> LlPlaylist:
    assert cutter.target_duration is not None
    assert cutter.part_target is not None
    playlist = LlPlaylist(cutter.target_duration, cutter.part_target, window)
    for part in parts:
        playlist.add(part, START + timedelta(seconds=part.start))
    return playlist


@functools.lru_cache(maxsize=2)
def hevc_frames(seconds: float) -> list[Frame]:
    """x265 frames (2 B-frames, 1 s GOP) as the relay carries them."""
    ctx = av.CodecContext.create("libx265", "w")
    ctx.width, ctx.height, ctx.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    ctx.time_base = Fraction(1, FPS)
    ctx.framerate = FPS
    ctx.options = {"x265-params": f"keyint={FPS}:min-keyint={FPS}:bframes=2:scenecut=0:"
                   "log-level=error:repeat-headers=1", "preset": "ultrafast"}
    packets = []
    count = round(seconds * FPS)
    for i in range(count + 1):
        picture = None
        if i < count:
            picture = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
            for p, plane in enumerate(picture.planes):
                plane.update(bytes([(i * 5 + p * 70) % 256]) * plane.buffer_size)
            picture.pts = i
        packets += ctx.encode(picture)
    units = [tuple(bytes(n) for n in h265.split_annexb(bytes(p))) for p in packets]
    params = tuple(n for n in units[0] if h265.nal_type(n) in (h265.VPS, h265.SPS, h265.PPS))
    track = Track(0, Codec.H265, 90000, parameter_sets=params, width=WIDTH, height=HEIGHT)
    step = 90000 // FPS
    return [Frame(track, p.pts * step, p.dts * step, p.is_keyframe, data)
            for p, data in zip(packets, units, strict=True)]


# (name, frames, part_seconds, expected target duration, expected segment seconds)
CASES = [
    ("1 s GOP", lambda: av_frames(8.0), 0.333, 1, 1.0),
    ("1 s GOP, B-frames, 0.2 s parts", lambda: av_frames(8.0, bframes=2), 0.2, 1, 1.0),
    ("0.48 s GOP: segments of three", lambda: av_frames(8.0, keyint=12), 0.5, 1, 1.44),
    ("0.28 s GOP, 0.2 s parts: a keyframe inside a part", lambda: av_frames(8.0, keyint=7), 0.2,
     1, 1.12),
    ("2 s GOP", lambda: av_frames(12.0, keyint=50), 0.333, 2, 2.0),
    ("H.265 with B-frames", lambda: hevc_frames(6.0), 0.333, 1, 1.0),
    ("audio only", lambda: av_frames(6.0, video=False), 0.5, 1, 1.0),
]


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def case(request: pytest.FixtureRequest) -> tuple[PartCutter, list[Part], list[Frame], tuple]:
    name, make, part_seconds, target, segment = request.param
    frames = make()
    cutter, parts = cut(frames, part_seconds)
    return cutter, parts, frames, (part_seconds, target, segment)


def segments_of(parts: list[Part]) -> dict[int, list[Part]]:
    out: dict[int, list[Part]] = {}
    for part in parts:
        out.setdefault(part.msn, []).append(part)
    return out


def test_cut_rules(case: tuple) -> None:
    cutter, parts, frames, (part_seconds, target, segment) = case
    assert cutter.target_duration == target
    assert cutter.overlong_parts == cutter.cuts_without_keyframe == cutter.short_parts == 0
    assert cutter.part_target is not None and cutter.part_target <= part_seconds * 1.001
    # 4.4.4.9: no part longer than PART-TARGET; none under 85 % of it unless INDEPENDENT=YES
    # or the last of its segment
    assert all(0 < p.duration <= cutter.part_target for p in parts)
    assert all(p.duration >= 0.85 * cutter.part_target for p in parts
               if not p.independent and not p.closes_segment)
    video = any(f.track.codec is not Codec.AAC for f in frames)
    keys = {f.dts / f.track.clock_rate for f in frames
            if f.key and (f.track.codec is not Codec.AAC or not video)}
    for part in parts:
        # INDEPENDENT=YES exactly on parts that start with a keyframe
        assert part.independent == (round(part.start, 6) in {round(k, 6) for k in keys})
    for msn, members in segments_of(parts).items():
        assert [p.index for p in members] == list(range(len(members)))
        assert members[0].independent  # every segment starts at a keyframe
        complete = members[-1].closes_segment
        assert complete or msn == max(p.msn for p in parts)
        if complete:
            total = sum(p.duration for p in members)
            assert round(total) <= target  # 4.4.3.1 EXTINF rounds to <= target
            assert total == pytest.approx(segment, abs=0.05)
        for a, b in zip(members, members[1:], strict=False):
            assert b.start == pytest.approx(a.start + a.duration)  # parts add up, no gap


def test_playlist_parses_and_follows_rfc8216bis(case: tuple) -> None:
    cutter, parts, _, (part_seconds, target, _) = case
    playlist = listed(cutter, parts)
    text = playlist.render()
    parsed = m3u8.loads(text)
    assert parsed.version == 9
    assert parsed.target_duration == target
    assert parsed.server_control.can_block_reload == "YES"
    assert parsed.part_inf.part_target == pytest.approx(cutter.part_target, abs=1e-5)
    assert parsed.server_control.part_hold_back >= 3 * parsed.part_inf.part_target - 1e-5
    assert parsed.server_control.can_skip_until >= 6 * target
    assert parsed.segment_map[0].uri == "init.mp4"
    listed_parts = [p for s in parsed.segments for p in s.parts]
    assert all(p.duration <= parsed.part_inf.part_target for p in listed_parts)
    by_uri = {part_name(p.msn, p.index): p for p in parts}
    for lp in listed_parts:
        assert (lp.independent == "YES") == by_uri[lp.uri].independent
    for seg in parsed.segments:
        if seg.uri:
            assert round(seg.duration) <= target
            assert seg.program_date_time is not None
            if seg.parts:
                assert sum(p.duration for p in seg.parts) == pytest.approx(seg.duration)
                assert seg.uri == segment_name(int(seg.parts[0].uri[1:].split(".")[0]))
    last = parts[-1]
    following = ((last.msn + 1, 0) if last.closes_segment else (last.msn, last.index + 1))
    assert parsed.preload_hint.hint_type == "PART"
    assert parsed.preload_hint.uri == part_name(*following)
    assert playlist.last == (last.msn, last.index)


def test_fmp4_parts_and_segments_decode(case: tuple, tmp_path: Path) -> None:
    _, parts, frames, _ = case
    init = parts[0].init
    assert all(p.init == init for p in parts)  # one EXT-X-MAP for the whole stream
    whole = init + b"".join(p.media for p in parts)
    counts = {"video": 0, "audio": 0}
    with av.open(io.BytesIO(whole)) as container:
        for packet in container.demux():
            if packet.size:
                counts[packet.stream.type] += 1
    muxed = sum(counts.values())
    end = parts[-1].start + parts[-1].duration
    lead = frames[0].track.index
    closing = next(i for i, f in enumerate(frames)
                   if f.track.index == lead and f.dts / f.track.clock_rate == pytest.approx(end))
    assert muxed == closing  # every frame that came before the last part closed, once
    assert FFPROBE, "ffprobe missing: run `make system-deps` (Debian package ffmpeg)"
    for msn, members in list(segments_of(parts).items())[:3]:
        for part in members[:2]:
            path = tmp_path / part_name(part.msn, part.index)
            path.write_bytes(init + part.media)
            probe(path, decode=part.independent)  # the others need the parts before them
        path = tmp_path / segment_name(msn)
        path.write_bytes(init + b"".join(p.media for p in members))
        info = probe(path)
        tags = {s["codec_tag_string"] for s in info["streams"]}
        assert tags <= {"avc1", "hvc1", "mp4a"}


def probe(path: Path, decode: bool = True) -> dict:
    """ffprobe reads every stream of ``path``: decodes frames, or with ``decode`` False (a part
    that does not start with a keyframe) demuxes packets."""
    assert FFPROBE
    count = "frames" if decode else "packets"
    result = subprocess.run([FFPROBE, "-v", "error", "-show_streams", f"-count_{count}", "-of",
                             "json", str(path)], capture_output=True, text=True, check=True)
    # a part without its references makes the probing decoder complain; it must still demux
    assert result.stderr == "" or not decode, result.stderr
    info: dict = json.loads(result.stdout)
    assert all(int(s[f"nb_read_{count}"]) > 0 for s in info["streams"]), info
    return info


def test_hevc_is_hvc1() -> None:
    _, parts = cut(hevc_frames(2.0), 0.333)
    assert b"hvc1" in parts[0].init and b"hvcC" in parts[0].init


def test_skip_playlist_per_6_2_5_1() -> None:
    cutter, parts = cut(av_frames(16.0), 0.333)
    playlist = listed(cutter, parts)
    full = m3u8.loads(playlist.render())
    delta_text = playlist.render(skip=True)
    delta = m3u8.loads(delta_text)
    skipped = delta.skip.skipped_segments
    assert skipped and delta.media_sequence == full.media_sequence
    kept = [s for s in full.segments if s.uri]
    end = sum(s.duration for s in kept) + sum(p.duration for p in full.segments[-1].parts
                                              if not full.segments[-1].uri)
    starts = [sum(s.duration for s in kept[:i]) for i in range(len(kept))]
    # skipped segments all start at least CAN-SKIP-UNTIL before the end, the first kept not
    assert all(end - start >= 6 * playlist.target_duration for start in starts[:skipped])
    assert end - starts[skipped] < 6 * playlist.target_duration
    assert [s.uri for s in delta.segments if s.uri] == [s.uri for s in kept[skipped:]]
    assert "#EXT-X-SKIP" not in playlist.render()


def test_parts_and_segments_leave_the_listing() -> None:
    cutter, parts = cut(av_frames(20.0), 0.333)
    playlist = LlPlaylist(1, 0.333, window=12)
    gone: list[str] = []
    for part in parts:
        gone += playlist.add(part, START)
    parsed = m3u8.loads(playlist.render())
    uris = [s.uri for s in parsed.segments if s.uri]
    assert len(uris) == 11 and not parsed.segments[-1].uri  # the window holds the open one
    assert segment_name(0) in gone and segment_name(parts[-1].msn - 12) in gone
    with_parts = [s for s in parsed.segments if s.parts]
    assert len(with_parts) == 4  # the last three complete segments and the open one
    # parts are deleted one segment after they are unlisted
    deleted = {g for g in gone if g.startswith("p")}
    assert part_name(0, 0) in deleted
    listed_names = {p.uri for s in with_parts for p in s.parts}
    assert not deleted & listed_names
    oldest_listed = min(int(u[1:].split(".")[0]) for u in listed_names)
    assert part_name(oldest_listed - 1, 0) not in deleted


def test_discontinuity_and_new_parameters_restart() -> None:
    frames = av_frames(3.0)
    cutter, parts = cut(frames[:60], 0.333)
    assert parts
    with pytest.raises(LlRestart, match="discontinuity"):
        cutter.push(dataclasses.replace(frames[60], discontinuity=True))
    cutter, _ = cut(frames[:60], 0.333)
    changed = dataclasses.replace(frames[0].track, width=320)
    with pytest.raises(LlRestart, match="parameters"):
        cutter.push(next(dataclasses.replace(f, track=changed) for f in frames[60:]
                         if f.track.index == 0))
    cutter, _ = cut(frames[:60], 0.333)
    later = next(f for f in frames[60:] if f.track.index == 0)
    with pytest.raises(LlRestart, match="decode time"):
        cutter.push(dataclasses.replace(later, dts=0, pts=0))


def test_part_seconds_bounds() -> None:
    track = av_frames(1.0)[0].track
    for bad in (0.05, 2.5):
        with pytest.raises(ValueError, match="part_seconds"):
            PartCutter([track], bad)


def test_no_carried_track_is_refused() -> None:
    track = Track(0, Codec.PCMA, 8000, sample_rate=8000, channels=1)
    with pytest.raises(ValueError, match="none that LL-HLS can carry"):
        PartCutter([track], 0.333)


# (video frame step in 90 kHz ticks, part_seconds, PART-TARGET: whole frames that fit)
PART_TARGETS = [
    (3600, 0.2, 0.2),  # 25 fps
    (3600, 0.333, 0.32),
    (3750, 0.2, 0.6 / 3.6),  # 24 fps: 4 frames, not 0.2 with parts of 83 %
    (3003, 0.2, 0.2002),  # 29.97 fps: 6 frames
    (7500, 0.2, 0.6 / 3.6),  # 12 fps: 2 frames
    (45000, 0.2, 0.5),  # 2 fps: one frame is longer than part_seconds
]


@pytest.mark.parametrize(("step", "part_seconds", "expected"), PART_TARGETS)
def test_part_target_is_whole_frames_and_parts_keep_85_percent(
        step: int, part_seconds: float, expected: float) -> None:
    frames = [dataclasses.replace(f, pts=f.pts // 3600 * step, dts=f.dts // 3600 * step)
              for f in av_frames(3.0, audio=False)]
    cutter, parts = cut(frames, part_seconds)
    assert cutter.part_target == pytest.approx(expected, abs=1e-6)
    assert cutter.overlong_parts == cutter.short_parts == 0
    assert all(p.duration <= cutter.part_target + 1e-9 for p in parts)
    assert all(p.duration >= 0.85 * cutter.part_target for p in parts
               if not p.independent and not p.closes_segment)


# (the GOP the bus measured, EXT-X-TARGETDURATION before the first frame) for 1 s LL segments
EARLY_TARGETS = [(0.0, None), (0.48, 1), (1.0, 1), (1.49, 1), (2.0, 2), (2.6, 3)]


@pytest.mark.parametrize(("gop", "expected"), EARLY_TARGETS)
def test_target_duration_is_known_up_front_from_the_gop(gop: float, expected: int | None) -> None:
    frames = av_frames(3.0, keyint=round(gop * 25) or 25)
    cutter = PartCutter([frames[0].track], 0.2, gop=gop)
    assert cutter.target_duration == expected  # the segmenter's rule, before any frame
    first: list[Part] = []
    for frame in frames:
        first += cutter.push(frame)
        if first:
            break
    # a playlist can be written with the first part, before its segment closes
    assert not first[0].closes_segment and cutter.target_duration == (expected or None)
