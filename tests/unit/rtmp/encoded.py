"""Real H.264 + AAC encoded with PyAV, turned into FLV tag bodies with relay.rtmp.flv.

Shared by the FLV unit test and the nginx interop test.
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass
from fractions import Fraction

import av

from relay.codecs.h264 import split_annexb
from relay.rtmp import flv

WIDTH, HEIGHT, FPS = 640, 360, 25
SAMPLE_RATE, CHANNELS, AAC_FRAME = 48000, 2, 1024


@dataclass(frozen=True)
class Tag:
    kind: int  # flv.TAG_AUDIO / flv.TAG_VIDEO
    timestamp_ms: int  # decode time
    body: bytes


@functools.lru_cache(maxsize=4)
def encode(seconds: float) -> tuple[tuple[Tag, ...], bytes, bytes]:
    """Tags interleaved by decode time (sequence headers first) and the (sps, pps) used."""
    video = av.CodecContext.create("libx264", "w")
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    video.time_base = Fraction(1, FPS)
    video.framerate = FPS
    # B-frames give non-zero composition times, which the tags must carry.
    video.options = {"preset": "veryfast",
                     "x264-params": f"keyint={FPS}:bframes=2:b-adapt=0:scenecut=0"}
    packets = []
    count = round(seconds * FPS)
    for i in range(count + 1):
        frame = None
        if i < count:
            frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
            for index, plane in enumerate(frame.planes):
                # A gradient moving 4 pixels a frame: motion for the encoder to predict.
                row = bytes((x + i * 4 * (index == 0) + 60 * index) % 256
                            for x in range(plane.line_size))
                plane.update(row * (plane.buffer_size // plane.line_size))
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
        packets += video.encode(frame)
    sps = pps = b""
    for nal in split_annexb(bytes(packets[0])):
        if nal[0] & 0x1F == 7:
            sps = bytes(nal)
        elif nal[0] & 0x1F == 8:
            pps = bytes(nal)
    ms = 1000 // FPS
    shift = -min(p.dts for p in packets) * ms  # B-frames start DTS below zero
    tags = [Tag(flv.TAG_VIDEO, 0, flv.avc_sequence_header(sps, pps))]
    for p in packets:
        nals = tuple(map(bytes, split_annexb(bytes(p))))  # the encoder's Annex B, split once
        body = flv.avc_nalus(nals, p.is_keyframe, (p.pts - p.dts) * ms)
        tags.append(Tag(flv.TAG_VIDEO, p.dts * ms + shift, body))

    audio = av.CodecContext.create("aac", "w")
    audio.sample_rate, audio.layout, audio.format = SAMPLE_RATE, "stereo", "fltp"
    audio.time_base = Fraction(1, SAMPLE_RATE)
    apackets = []
    for i in range(round(seconds * SAMPLE_RATE / AAC_FRAME) + 1):
        aframe = None
        if i < round(seconds * SAMPLE_RATE / AAC_FRAME):
            tone = struct.pack(f"<{AAC_FRAME}f", *(
                0.3 * math.sin(2 * math.pi * 440 * (n + i * AAC_FRAME) / SAMPLE_RATE)
                for n in range(AAC_FRAME)))
            aframe = av.AudioFrame(format="fltp", layout="stereo", samples=AAC_FRAME)
            for plane in aframe.planes:
                plane.update(tone)
            aframe.sample_rate = SAMPLE_RATE
            aframe.pts = i * AAC_FRAME
        apackets += audio.encode(aframe)
    first = apackets[0].pts
    tags.append(Tag(flv.TAG_AUDIO, 0, flv.aac_sequence_header(bytes(audio.extradata))))
    for p in apackets:
        ts = round((p.pts - first) * 1000 / SAMPLE_RATE) + shift
        tags.append(Tag(flv.TAG_AUDIO, ts, flv.aac_raw(bytes(p))))
    # Sequence headers first, then by decode time (stable: video before audio at a tie).
    ordered = sorted(tags, key=lambda t: (t.body[1:2] != b"\x00", t.timestamp_ms))
    return tuple(ordered), sps, pps


def metadata() -> dict[str, object]:
    return flv.metadata(width=WIDTH, height=HEIGHT, framerate=FPS,
                        videocodecid=flv.VIDEO_CODEC_AVC, audiocodecid=flv.SOUND_FORMAT_AAC,
                        audiosamplerate=SAMPLE_RATE, audiochannels=CHANNELS)
