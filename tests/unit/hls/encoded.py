"""Real H.264 + AAC frames for the HLS tests, encoded with PyAV (libx264, FFmpeg's aac)."""

from __future__ import annotations

import functools
from fractions import Fraction

import av

from relay.codecs.h264 import split_annexb
from relay.media import Codec, Frame, NalUnits, Track

WIDTH, HEIGHT, FPS = 640, 360, 25
SAMPLE_RATE = 48000
AAC_FRAME = 1024


def _nal_units(annexb: bytes) -> NalUnits:
    """An encoder's Annex B access unit as the relay carries it (``Frame.data``)."""
    return tuple(map(bytes, split_annexb(annexb)))


@functools.lru_cache(maxsize=8)
def video_packets(seconds: float, keyint: int = FPS, bframes: int = 0, shade: int = 0,
                  intra_refresh: bool = False
                  ) -> tuple[Track, tuple[tuple[int, int, bool, NalUnits], ...]]:
    """Encode ``seconds`` of changing pictures; returns the Track and (pts, dts, key, NAL units).

    With ``intra_refresh``, x264 sends one IDR, then a recovery point SEI every ``keyint``
    pictures (FFmpeg flags those pictures as keyframes).
    """
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    ctx.time_base = Fraction(1, FPS)
    ctx.framerate = FPS
    ctx.options = {"g": str(keyint), "keyint_min": str(keyint), "sc_threshold": "0",
                   "bf": str(bframes), "preset": "ultrafast" if not bframes else "veryfast",
                   "intra-refresh": "1" if intra_refresh else "0"}
    packets = []
    count = round(seconds * FPS)
    for i in range(count + 1):
        frame = None
        if i < count:
            frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
            for p, plane in enumerate(frame.planes):
                plane.update(bytes([(shade + i * 3 + p * 60) % 256]) * plane.buffer_size)
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
        packets += ctx.encode(frame)
    step = 90000 // FPS
    out = tuple((p.pts * step, p.dts * step, p.is_keyframe, _nal_units(bytes(p))) for p in packets)
    sps = pps = b""
    for nal in out[0][3]:
        if nal[0] & 0x1F == 7:
            sps = nal
        elif nal[0] & 0x1F == 8:
            pps = nal
    track = Track(0, Codec.H264, 90000, parameter_sets=(sps, pps), width=WIDTH, height=HEIGHT)
    return track, out


@functools.lru_cache(maxsize=8)
def audio_packets(seconds: float) -> tuple[Track, tuple[tuple[int, bytes], ...]]:
    """Encode ``seconds`` of a tone to raw AAC; returns the Track and (pts, data)."""
    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate, ctx.layout, ctx.format = SAMPLE_RATE, "mono", "fltp"
    ctx.time_base = Fraction(1, SAMPLE_RATE)
    packets = []
    count = round(seconds * SAMPLE_RATE / AAC_FRAME)
    import math
    import struct
    for i in range(count + 1):
        frame = None
        if i < count:
            frame = av.AudioFrame(format="fltp", layout="mono", samples=AAC_FRAME)
            n0 = i * AAC_FRAME
            samples = [0.3 * math.sin(2 * math.pi * 440 * (n0 + n) / SAMPLE_RATE)
                       for n in range(AAC_FRAME)]
            frame.planes[0].update(struct.pack(f"<{AAC_FRAME}f", *samples))
            frame.sample_rate = SAMPLE_RATE
            frame.pts = n0
        packets += ctx.encode(frame)
    # FFmpeg's encoder stamps its priming frame at -1024: put the first frame at 0.
    first = packets[0].pts
    out = tuple((p.pts - first, bytes(p)) for p in packets)
    track = Track(1, Codec.AAC, SAMPLE_RATE, audio_config=bytes(ctx.extradata),
                  sample_rate=SAMPLE_RATE, channels=1)
    return track, out


def av_frames(seconds: float, keyint: int = FPS, bframes: int = 0, audio: bool = True,
              video: bool = True, shade: int = 0) -> list[Frame]:
    """Video and audio frames interleaved by decode time, as a source would publish them."""
    items: list[tuple[float, int, Frame]] = []
    if video:
        vtrack, vpk = video_packets(seconds, keyint, bframes, shade)
        for pts, dts, key, data in vpk:
            items.append((dts / 90000, 0, Frame(vtrack, pts, dts, key, data)))
    if audio:
        atrack, apk = audio_packets(seconds)
        for pts, data in apk:
            items.append((pts / SAMPLE_RATE, 1, Frame(atrack, pts, pts, True, data)))
    items.sort(key=lambda item: (item[0], item[1]))
    return [frame for _, _, frame in items]
