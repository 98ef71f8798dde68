"""H.264 test material: real parameter sets from libx264, an encoder, and bit-exact NAL builders."""

from __future__ import annotations

import functools
from fractions import Fraction

import av

from relay.codecs.bits import BitWriter

# SPS/PPS written by libx264 (through PyAV) for the named picture formats.
SPS_1080P_BASELINE = bytes.fromhex("6742c028da01e0089f961000000300100000030320f1832a")
PPS_1080P_BASELINE = bytes.fromhex("68ce0fc8")
SPS_1080P_HIGH = bytes.fromhex("67640028acd940780227e584000003000400000300c83c60c658")
SPS_360P_HIGH = bytes.fromhex("6764001eacd940a02ff961000003000100000300320f162d96")
PPS_360P_HIGH = bytes.fromhex("68ebe3cb22c0")
SPS_642X362_444 = bytes.fromhex("67f4001e919b281485fc7cf0800000030080000019078b16cb")
SPS_1080I_HIGH = bytes.fromhex("67640028acd94078044fdc20000003002000000643e2c5b2c0")
SPS_720P_422 = bytes.fromhex("677a001fbcd9405005ba1000000300100000030320f1831960")


def escape(rbsp: bytes) -> bytes:
    """Inserts emulation prevention bytes (H.264 7.4.1) so no start code can appear."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def nal(kind: int, body: bytes, nri: int = 3) -> bytes:
    """A NAL unit of ``kind`` whose payload is ``body`` made safe, ending in a stop bit."""
    return bytes((nri << 5 | kind,)) + escape(body + b"\x80")


class ExpGolombWriter(BitWriter):
    def ue(self, value: int) -> None:
        code = value + 1
        n = code.bit_length()
        self.u(n - 1, 0)
        self.u(n, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)


@functools.cache
def encode(
    width: int, height: int, frames: int, options: tuple[tuple[str, str], ...]
) -> list[bytes]:
    """Annex B access units from libx264 of a moving gradient, in decoding order."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = dict(options)
    out = []
    for i in range(frames):
        frame = av.VideoFrame(width, height, "yuv420p")
        for n, plane in enumerate(frame.planes):
            row = bytes((x + 4 * i + 50 * n) % 256 for x in range(plane.line_size))
            plane.update(row * (plane.buffer_size // plane.line_size))
        frame.pts = i
        out += [bytes(p) for p in ctx.encode(frame)]
    out += [bytes(p) for p in ctx.encode(None)]
    return out
