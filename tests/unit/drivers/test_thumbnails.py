"""Thumbnails from real keyframes (PyAV's libx264/libx265), decoded back to check the JPEG."""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path

import av
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.bus import Stream
from relay.codecs.h264 import split_annexb
from relay.drivers.control import Wants
from relay.drivers.thumbnails import (
    ThumbnailError,
    encode_thumbnail,
    run_thumbnails,
    save_thumbnail,
)
from relay.files import DiskErrors
from relay.media import Codec, Frame, NalUnits, Track

WIDTH, HEIGHT = 640, 360


def encode(codec: str, shades: list[int], keyint: int = 1000) -> list[tuple[bool, NalUnits]]:
    """One picture per shade (a flat grey), encoded; (key, NAL units) per packet."""
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"g": str(keyint), "bf": "0", "preset": "ultrafast"}
    if codec == "libx265":
        ctx.options = {"preset": "ultrafast",
                       "x265-params": f"keyint={keyint}:bframes=0:log-level=none"}
    packets = []
    for i, shade in enumerate([*shades, None]):
        frame = None
        if shade is not None:
            frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
            for p, plane in enumerate(frame.planes):
                plane.update(bytes([shade if p == 0 else 128]) * plane.buffer_size)
            frame.pts = i
        packets += ctx.encode(frame)
    return [(p.is_keyframe, tuple(map(bytes, split_annexb(bytes(p))))) for p in packets]


def video_frame(key: bool, data: NalUnits, codec: Codec = Codec.H264, pts: int = 0) -> Frame:
    return Frame(Track(0, codec, 90000, width=WIDTH, height=HEIGHT), pts, pts, key, data)


def decode_jpeg(data: bytes) -> av.VideoFrame:
    with av.open(io.BytesIO(data), format="mjpeg") as container:
        return next(container.decode(video=0))


def full_range(luma: int) -> float:
    """A video-range (16-235) luma as the full-range JPEG (yuvj420p) shows it."""
    return (luma - 16) * 255 / 219


def mean_luma(picture: av.VideoFrame) -> float:
    gray = picture.reformat(format="gray")
    plane = gray.planes[0]
    rows = bytes(plane)
    width = gray.width
    total = sum(sum(rows[y * plane.line_size:y * plane.line_size + width])
                for y in range(gray.height))
    return total / (width * gray.height)


@pytest.mark.parametrize("encoder,codec", [("libx264", Codec.H264), ("libx265", Codec.H265)])
def test_keyframe_to_jpeg(encoder: str, codec: Codec) -> None:
    key, data = encode(encoder, [200])[0]
    assert key
    jpeg = encode_thumbnail(video_frame(True, data, codec))
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    picture = decode_jpeg(jpeg)
    assert (picture.width, picture.height) == (320, 180)
    assert abs(mean_luma(picture) - full_range(200)) < 6
    assert len(jpeg) < 30_000


def test_not_video_or_not_decodable() -> None:
    aac = Frame(Track(1, Codec.AAC, 48000), 0, 0, True, b"\x21\x00")
    with pytest.raises(ThumbnailError, match="no video decoder"):
        encode_thumbnail(aac)
    with pytest.raises(ThumbnailError):
        encode_thumbnail(video_frame(True, ()))
    delta = encode("libx264", [10, 20])[1][1]  # a P frame alone has no picture to show
    with pytest.raises(ThumbnailError):
        encode_thumbnail(video_frame(True, delta))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.sampled_from([Codec.H264, Codec.H265]))
def test_garbage_raises_only_thumbnail_error(data: bytes, codec: Codec) -> None:
    try:
        jpeg = encode_thumbnail(video_frame(True, (data,), codec))
    except ThumbnailError:
        return
    assert jpeg[:2] == b"\xff\xd8"


async def wait_renewed(path: Path, old: os.stat_result | None) -> None:
    """Until ``path`` exists as a file other than ``old`` (the driver replaces it by rename)."""
    with trio.fail_after(10):
        while not path.exists() or (old is not None and path.stat().st_ino == old.st_ino):
            await trio.sleep(0.02)


async def test_run_thumbnails_only_when_wanted(tmp_path: Path) -> None:
    out = tmp_path / "thumbs" / "cam.jpg"
    dark = encode("libx264", [30, 31, 32])
    light = encode("libx264", [220])
    stream = Stream("cam")
    wants = Wants()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            done = trio.Event()

            async def run() -> None:
                await run_thumbnails(stream, out, wants)
                done.set()

            nursery.start_soon(run)
            for i, (key, data) in enumerate(dark):
                stream.publish(video_frame(key, data, pts=i * 3600))
            await trio.sleep(0.5)
            assert not out.exists()  # nobody asked: nothing decoded, nothing written
            wants.want("other")  # another stream's request is not this one's
            await trio.sleep(0.3)
            assert not out.exists()
            wants.want("cam")  # the GOP cache's keyframe answers at once
            await wait_renewed(out, None)
            first = out.stat()
            assert abs(mean_luma(decode_jpeg(out.read_bytes())) - full_range(30)) < 6
            await trio.sleep(0.5)
            assert out.stat().st_ino == first.st_ino  # one want, one thumbnail
            wants.want("cam")  # the same keyframe: the same picture, written anew for the asker
            await wait_renewed(out, first)
            assert abs(mean_luma(decode_jpeg(out.read_bytes())) - full_range(30)) < 6
            second = out.stat()
            stream.publish(video_frame(True, light[0][1], pts=9 * 3600))
            wants.want("cam")
            await wait_renewed(out, second)
            assert abs(mean_luma(decode_jpeg(out.read_bytes())) - full_range(220)) < 6
            assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
            stream.close()
            wants.want("cam")
            with trio.fail_after(5):
                await done.wait()


async def test_run_thumbnails_at_a_rate_from_the_next_keyframe(tmp_path: Path) -> None:
    """With ``interval`` a thumbnail comes unasked; with no keyframe cached, the next is used."""
    out = tmp_path / "cam.jpg"
    stream = Stream("cam")
    good = encode("libx264", [120])[0][1]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_thumbnails, stream, out, Wants(), 0.1)
            await trio.sleep(0.3)
            stream.publish(video_frame(True, (b"\x65garbage",)))
            await trio.sleep(0.3)
            assert not out.exists()
            stream.publish(video_frame(True, good, pts=3600))
            await wait_renewed(out, None)
            assert abs(mean_luma(decode_jpeg(out.read_bytes())) - full_range(120)) < 6
            stream.close()


def test_no_temp_files_left(tmp_path: Path) -> None:
    data = encode_thumbnail(video_frame(True, encode("libx264", [90])[0][1]))
    disk = DiskErrors("stream=cam")
    save_thumbnail(data, tmp_path / "thumbs" / "a.jpg", disk)
    assert (tmp_path / "thumbs" / "a.jpg").read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "thumbs").iterdir()) == ["a.jpg"]
    assert disk.count == 0
