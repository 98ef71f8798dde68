"""Driver: a stream's latest video keyframe, decoded and written as a small JPEG when someone looks.

When the web process asks (a dashboard card shows the stream; relay/drivers/control.py), or
every ``thumbnail_seconds`` if configured, it takes the newest video keyframe from the bus's GOP
cache, or the next one to arrive (its NAL units carry the parameter sets, so it decodes alone),
decodes it with PyAV (h264/hevc), scales it to ``THUMBNAIL_WIDTH`` pixels wide and encodes a
JPEG (FFmpeg's mjpeg encoder, yuvj420p), off the trio loop in a worker thread, then replaces
``out_path`` atomically (temp file + ``os.replace``) so the web process never serves half an
image. Nobody looking costs nothing: no subscription, no timer, no decode. A keyframe that
does not decode is logged once per run of failures and skipped; the driver goes on with the
next one. A write the disk refuses is
recorded in the stream's ``DiskErrors`` (one line per outage) and the next thumbnail tries again.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import trio

from relay.bus import Stream
from relay.codecs.h264 import to_annexb
from relay.drivers.control import Wants
from relay.files import DiskErrors
from relay.media import Codec, Frame, Kind

log = logging.getLogger("relay.thumbnails")

THUMBNAIL_WIDTH = 320
JPEG_QSCALE = 5
"""FFmpeg's mjpeg quantiser (2 best .. 31 worst): about 10-20 kB at 320x180."""
QUEUE_FRAMES = 64
"""A thumbnail only needs a keyframe: a subscriber this far behind drops to the next one."""
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


async def next_keyframe(stream: Stream) -> Frame:
    """The GOP cache's keyframe if there is one, else the next video keyframe to arrive.

    A subscription only for this call: an unwatched stream pays no per-frame cost for its
    thumbnails.

    Raises:
        trio.EndOfChannel, trio.ClosedResourceError: the stream closed first, or before.
    """
    with stream.subscribe(QUEUE_FRAMES, name="thumbnails") as subscription:
        while True:
            frame = await subscription.receive()
            if frame.key and frame.track.kind is Kind.VIDEO:
                return frame


async def run_thumbnails(
    stream: Stream,
    out_path: Path,
    wants: Wants,
    interval: float = 0.0,
    width: int = THUMBNAIL_WIDTH,
    *,
    disk: DiskErrors | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Write ``out_path`` from ``stream``'s latest keyframe each time one is wanted.

    The web process asks (``thumb NAME`` on the control socket) while a dashboard card shows the
    stream; with ``interval`` > 0 a thumbnail is also made every ``interval`` seconds. Nothing
    is decoded otherwise. A want answered by the keyframe already shown rewrites the same JPEG
    (the asker waits for the file to be renewed), without decoding again.

    Args:
        stream: the bus stream.
        out_path: the JPEG to write (the web process serves ``RUNTIME/thumbnails/NAME.jpg``).
        wants: the control socket's thumbnail requests.
        interval: seconds between unrequested thumbnails; 0: only on request.
        width: thumbnail width in pixels.
        disk: where failed writes are recorded (the stream's, kept across restarts).
        task_status: ``started()`` at once.
    """
    disk = disk if disk is not None else DiskErrors(f"stream={stream.name}")
    shown: Frame | None = None
    data = b""
    failing = False
    task_status.started()
    while True:
        await wants.wait(stream.name, interval if interval > 0 else math.inf)
        try:
            frame = await next_keyframe(stream)
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return  # the stream closed: nothing more to show
        if frame is not shown:
            try:
                data = await trio.to_thread.run_sync(encode_thumbnail, frame, width)
            except ThumbnailError as exc:
                if not failing:
                    log.warning("stream=%s thumbnail failed: %s", stream.name, exc)
                failing = True
                continue
            if failing:
                log.info("stream=%s thumbnails work again", stream.name)
            failing = False
            shown = frame
        await trio.to_thread.run_sync(save_thumbnail, data, out_path, disk)
