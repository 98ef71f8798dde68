"""NAL units as views of the packets they arrived in: what those views keep alive is bounded,
and what reaches a Frame is bytes of its own, copied once."""

from __future__ import annotations

import dataclasses

from relay.media import Frame
from relay.rtp.h264 import H264Depacketizer
from relay.rtp.nal import MAX_ACCESS_UNIT_SIZE
from relay.rtp.packet import RtpPacket
from tests.unit.rtp.test_fuzz import H264_TRACK

READ = 65536  # one TCP read, as the RTSP driver's reads are
SLICES = 2 * MAX_ACCESS_UNIT_SIZE // READ + 1  # each in a read of its own: over the limit


def packets(buffers: list[bytes]) -> list[RtpPacket]:
    """One IDR slice of 2 bytes at the start of each buffer, one access unit."""
    return [RtpPacket(n == len(buffers) - 1, 96, n, 0, 1, memoryview(b)[:2])
            for n, b in enumerate(buffers)]


def push(buffers: list[bytes]) -> tuple[H264Depacketizer, list[Frame]]:
    d = H264Depacketizer(dataclasses.replace(H264_TRACK))
    return d, [f for p in packets(buffers) for f in d.push(p)]


def test_tiny_units_each_holding_a_whole_read_are_dropped() -> None:
    """A few hundred 2-byte slices, each keeping a 64 KiB read alive, would hold 20 MB; the
    same slices from one read pass, as bytes of their own."""
    d, frames = push([b"\x65\x88" + bytes(READ - 2) for _ in range(SLICES)])
    assert frames == [] and d.dropped == 1
    shared = b"\x65\x88" + bytes(READ - 2)
    d, frames = push([shared] * SLICES)
    assert len(frames) == 1 and d.dropped == 0
    data = frames[0].data
    assert isinstance(data, tuple) and all(type(n) is bytes for n in data)
    assert data[-1] == b"\x65\x88"


def test_a_fragmented_unit_is_joined_once_into_bytes() -> None:
    """The fragments are held as views and joined at the end (a guard of that path)."""
    body = b"\x88" + bytes(range(256)) * 8  # first_mb_in_slice 0: the picture's first slice
    fragments = [body[i:i + 500] for i in range(0, len(body), 500)]
    d = H264Depacketizer(dataclasses.replace(H264_TRACK))
    frames: list[Frame] = []
    for n, part in enumerate(fragments):
        header = 0x05 | (0x80 if n == 0 else 0) | (0x40 if n == len(fragments) - 1 else 0)
        payload = memoryview(bytes((0x7C, header)) + part)
        frames += d.push(RtpPacket(n == len(fragments) - 1, 96, n, 0, 1, payload))
    assert len(frames) == 1
    data = frames[0].data
    assert isinstance(data, tuple) and data[-1] == b"\x65" + body and type(data[-1]) is bytes
