"""Driver: a stream's latest video keyframe, decoded and written as a small JPEG every few seconds.

Subscribes to the bus and keeps a reference to the newest video keyframe (its Annex B payload
carries the parameter sets, so it decodes alone). Every ``interval`` it decodes that keyframe
with PyAV (h264/hevc), scales it to ``THUMBNAIL_WIDTH`` pixels wide and encodes a JPEG (FFmpeg's
mjpeg encoder, yuvj420p), off the trio loop in a worker thread, then replaces ``out_path``
atomically (temp file + ``os.replace``) so the web process never serves half an image. A tick
with no new keyframe costs nothing. A keyframe that does not decode is logged once per run of
failures and skipped; the driver goes on with the next one. A write the disk refuses is
recorded in the stream's ``DiskErrors`` (one line per outage) and the next thumbnail tries again.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import trio

from relay.bus import Stream
from relay.codecs.h264 import to_annexb
from relay.files import DiskErrors
from relay.media import Codec, Frame, Kind

log = logging.getLogger("relay.thumbnails")

THUMBNAIL_WIDTH = 320
JPEG_QSCALE = 5
"""FFmpeg's mjpeg quantiser (2 best .. 31 worst): about 10-20 kB at 320x180."""
QUEUE_FRAMES = 64
"""A thumbnail only needs keyframes: a subscriber this far behind drops to the next one."""
DECODERS: dict[Codec, Literal["h264", "hevc"]] = {Codec.H264: "h264", Codec.H265: "hevc"}
"""FFmpeg's decoder per codec (literal names, so PyAV's types know a video decoder comes back)."""


class ThumbnailError(Exception):
    """A keyframe that did not decode to a picture."""


def encode_thumbnail(frame: Frame, width: int = THUMBNAIL_WIDTH) -> bytes:
    """Decode one video keyframe and return it as a JPEG ``width`` pixels wide.

    Args:
        frame: a video keyframe whose NAL units start with its parameter sets.
        width: the thumbnail's width; the height keeps the aspect ratio (rounded to even).

    Returns:
        The JPEG file's bytes.

    Raises:
        ThumbnailError: the codec is not video, or FFmpeg produced no picture.
    """
    name = DECODERS.get(frame.track.codec)
    if name is None:
        raise ThumbnailError(f"no video decoder for {frame.track.codec}")
    nals = frame.data
    assert isinstance(nals, tuple), "a video Frame carries NAL units"
    decoder = av.CodecContext.create(name, "r")
    try:
        pictures = decoder.decode(av.Packet(to_annexb(nals)))
        pictures += decoder.decode(None)  # flush: the decoder holds the picture back otherwise
    except av.FFmpegError as exc:
        raise ThumbnailError(f"{name} decode failed: {exc}") from None
    if not pictures:
        raise ThumbnailError(f"{name} decoder returned no picture")
    picture = pictures[0]
    height = max(2, round(picture.height * width / picture.width / 2) * 2)
    scaled = picture.reformat(width=width, height=height, format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"qscale": str(JPEG_QSCALE)}
    encoder.qmin = encoder.qmax = JPEG_QSCALE  # a fixed quality without a global_quality flag
    scaled.pts = 0
    packets = encoder.encode(scaled) + encoder.encode(None)
    if not packets:
        raise ThumbnailError("mjpeg encoder returned no image")
    return bytes(packets[0])


def save_thumbnail(data: bytes, out_path: Path, disk: DiskErrors) -> None:
    """Replace ``out_path`` atomically (its folder made again if a cleaner removed it)."""
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        disk.failed("thumbnail", out_path, exc)
        return
    disk.write("thumbnail", out_path, data)


async def run_thumbnails(
    stream: Stream,
    out_path: Path,
    interval: float = 5.0,
    width: int = THUMBNAIL_WIDTH,
    *,
    disk: DiskErrors | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep ``out_path`` a JPEG of ``stream``'s latest keyframe until cancelled or it closes.

    The first thumbnail is written as soon as the first keyframe arrives (the GOP cache makes
    that immediate on a running stream), later ones at most every ``interval`` seconds and only
    when a newer keyframe came in.

    Args:
        stream: the bus stream.
        out_path: the JPEG to write (the web process serves ``RUNTIME/thumbnails/NAME.jpg``).
        interval: seconds between thumbnails.
        width: thumbnail width in pixels.
        disk: where failed writes are recorded (the stream's, kept across restarts).
        task_status: ``started()`` once subscribed.
    """
    disk = disk if disk is not None else DiskErrors(f"stream={stream.name}")
    latest: list[Frame] = []  # the newest keyframe not yet turned into a thumbnail
    arrived = trio.Event()
    failing = False
    with stream.subscribe(QUEUE_FRAMES, name="thumbnails") as subscription:
        task_status.started()
        async with trio.open_nursery() as nursery:

            async def keep_latest() -> None:
                async for frame in subscription:
                    if frame.key and frame.track.kind is Kind.VIDEO:
                        latest[:] = [frame]
                        arrived.set()
                nursery.cancel_scope.cancel()  # the stream closed: nothing more to show

            nursery.start_soon(keep_latest)
            while True:
                await arrived.wait()
                arrived = trio.Event()
                frame = latest.pop()
                try:
                    data = await trio.to_thread.run_sync(encode_thumbnail, frame, width)
                except ThumbnailError as exc:
                    if not failing:
                        log.warning("stream=%s thumbnail failed: %s", stream.name, exc)
                    failing = True
                else:
                    if failing:
                        log.info("stream=%s thumbnails work again", stream.name)
                    failing = False
                    await trio.to_thread.run_sync(save_thumbnail, data, out_path, disk)
                await trio.sleep(interval)
