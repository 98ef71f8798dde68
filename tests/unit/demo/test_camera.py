"""The demo camera, checked by decoding what it makes with PyAV's (FFmpeg's) decoders."""

from __future__ import annotations

import math
from array import array
from fractions import Fraction

import av
import pytest

from relay.codecs.h264 import to_annexb
from relay.demo.camera import TestCamera
from relay.errors import ConfigError
from relay.media import Codec, Frame


def split(frames: list[Frame]) -> tuple[list[Frame], list[Frame]]:
    return [f for f in frames if f.track.index == 0], [f for f in frames if f.track.index == 1]


def decode_video(frames: list[Frame]) -> list[av.VideoFrame]:
    dec = av.CodecContext.create("h264", "r")
    pictures: list[av.VideoFrame] = []
    for f in frames:
        pictures.extend(dec.decode(av.Packet(to_annexb(f.data))))
    pictures.extend(dec.decode(None))
    return pictures


def luma(picture: av.VideoFrame) -> list[bytes]:
    plane = picture.planes[0]
    data = bytes(plane)
    stride, width = plane.line_size, picture.width
    return [data[y * stride : y * stride + width] for y in range(picture.height)]


def mean_abs_diff(a: list[bytes], b: list[bytes], rows: range) -> float:
    total = count = 0
    for y in rows:
        total += sum(abs(p - q) for p, q in zip(a[y], b[y]))
        count += len(a[y])
    return total / count


@pytest.fixture(scope="module")
def three_seconds() -> tuple[TestCamera, list[Frame]]:
    camera = TestCamera()
    return camera, camera.encode_until(3.0)


def test_tracks_describe_the_streams(three_seconds: tuple[TestCamera, list[Frame]]) -> None:
    camera, _ = three_seconds
    v, a = camera.video_track, camera.audio_track
    assert (v.index, v.codec, v.clock_rate, v.width, v.height) == (0, Codec.H264, 90000, 640, 360)
    sps, pps = v.parameter_sets
    assert sps[0] & 0x1F == 7 and pps[0] & 0x1F == 8
    assert (a.index, a.codec, a.clock_rate) == (1, Codec.AAC, 48000)
    assert (a.sample_rate, a.channels) == (48000, 1)
    # AudioSpecificConfig: object type 2 (AAC-LC), frequency index 3 (48 kHz), 1 channel.
    assert a.audio_config[0] >> 3 == 2
    assert (a.audio_config[0] & 7) << 1 | a.audio_config[1] >> 7 == 3
    assert (a.audio_config[1] >> 3) & 0xF == 1


def test_video_decodes_with_keyframe_every_second(
    three_seconds: tuple[TestCamera, list[Frame]],
) -> None:
    camera, frames = three_seconds
    video, _ = split(frames)
    assert len(video) == 75
    assert [f.pts for f in video] == [n * 3600 for n in range(75)]
    assert all(f.dts == f.pts for f in video)
    assert [n for n, f in enumerate(video) if f.key] == [0, 25, 50]
    pictures = decode_video(video)
    assert len(pictures) == 75
    assert all((p.width, p.height, p.format.name) == (640, 360, "yuv420p") for p in pictures)
    assert [n for n, p in enumerate(pictures) if p.key_frame] == [0, 25, 50]


def test_video_is_nal_units_with_parameter_sets_before_each_keyframe(
    three_seconds: tuple[TestCamera, list[Frame]],
) -> None:
    camera, frames = three_seconds
    video, _ = split(frames)
    for f in video:
        nals = f.data
        assert isinstance(nals, tuple) and all(type(n) is bytes and n for n in nals)
        assert not any(n.startswith(b"\x00\x00\x01") for n in nals)  # no start codes left
        types = [nal[0] & 0x1F for nal in nals]
        slices = [t for t in types if t in (1, 5)]
        assert len(slices) == 1, types  # one slice per picture
        assert (slices[0] == 5) == f.key
        if f.key:
            assert nals[:2] == camera.video_track.parameter_sets
        else:
            assert 7 not in types and 8 not in types


def test_gop_seconds_sets_the_keyframe_interval() -> None:
    camera = TestCamera(width=320, height=180, fps=10, gop_seconds=0.5)
    video, _ = split(camera.encode_until(2.0))
    assert [n for n, f in enumerate(video) if f.key] == [0, 5, 10, 15]
    assert [(p.width, p.height) for p in decode_video(video)] == [(320, 180)] * 20
    assert [f.pts for f in video] == [n * 9000 for n in range(20)]


def test_audio_decodes_and_beeps_at_1khz(three_seconds: tuple[TestCamera, list[Frame]]) -> None:
    camera, frames = three_seconds
    _, audio = split(frames)
    assert [f.pts for f in audio] == [k * 1024 for k in range(len(audio))]
    assert audio[-1].pts < 3 * 48000 <= audio[-1].pts + 1024
    assert all(f.key and f.data[:2] != b"\xff\xf1" for f in audio)  # raw, no ADTS
    dec = av.CodecContext.create("aac", "r")
    dec.extradata = camera.audio_track.audio_config
    samples = array("f")
    for f in audio:
        for out in dec.decode(av.Packet(f.data)):
            assert (out.sample_rate, out.layout.nb_channels, out.format.name) == (48000, 1, "fltp")
            samples.extend(array("f", bytes(out.planes[0]))[: out.samples])
    assert len(samples) == len(audio) * 1024

    def rms(start: float, end: float) -> float:
        window = samples[int(start * 48000) : int(end * 48000)]
        return math.sqrt(sum(x * x for x in window) / len(window))

    for second in (1, 2):
        assert rms(second + 0.01, second + 0.09) > 0.25  # beep: sine of amplitude 0.5
        assert rms(second + 0.2, second + 0.9) < 0.01  # silence between beeps
    beep = samples[48000 + 480 : 48000 + 4320]  # 10..90 ms into second 1
    crossings = sum(1 for x, y in zip(beep, beep[1:]) if (x < 0) != (y < 0))
    assert abs(crossings / 0.08 / 2 - 1000) < 30


def test_burned_in_clock_changes_the_picture() -> None:
    times = iter([0.0, 0.0, 3723.456])
    stepped = split(TestCamera(wallclock=lambda: next(times)).encode_until(3 / 25))[0]
    steady = split(TestCamera(wallclock=lambda: 0.0).encode_until(3 / 25))[0]
    assert [f.data for f in stepped[:2]] == [f.data for f in steady[:2]]  # deterministic
    a, b = luma(decode_video(stepped)[2]), luma(decode_video(steady)[2])
    band = range(144, 216)  # the clock band at 640x360
    assert mean_abs_diff(a, b, band) > 10
    assert mean_abs_diff(a, b, range(0, 130)) < 2  # the bars above it are the same
    band_pixels = b"".join(a[y] for y in band)
    assert max(band_pixels) > 200 and min(band_pixels) < 40  # white ink on black


def test_frames_interleave_by_time_and_split_calls_match_one_call() -> None:
    whole = TestCamera(wallclock=lambda: 0.0).encode_until(2.0)
    camera = TestCamera(wallclock=lambda: 0.0)
    parts: list[Frame] = []
    for t in (0.0, 0.013, 0.053, 0.353, 0.353, 0.374, 0.874, 2.0):
        got = camera.encode_until(t)
        assert all(Fraction(f.pts, f.track.clock_rate) < Fraction(t) for f in got)
        parts.extend(got)
    assert [(f.track.index, f.pts, f.data) for f in parts] == [
        (f.track.index, f.pts, f.data) for f in whole
    ]
    times = [(Fraction(f.pts, f.track.clock_rate), f.track.index) for f in whole]
    assert times == sorted(times)
    for track in (0, 1):
        pts = [f.pts for f in whole if f.track.index == track]
        assert all(p < q for p, q in zip(pts, pts[1:]))
    assert camera.encode_until(2.0) == []


@pytest.mark.parametrize(
    "kwargs", [{"width": 641}, {"height": 0}, {"width": 64}, {"fps": 0}, {"gop_seconds": 0}]
)
def test_bad_parameters_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        TestCamera(**kwargs)  # type: ignore[arg-type]
