"""Recovery point SEIs: the random-access points of cameras without IDR frames (intra refresh).

The parser against hand-made and x264-made SEIs; then x264's intra-refresh stream, its IDR cut
off, through the RTP depacketizer and the HLS segmenter: keyframes at the recovery points,
segments cut there, each one decodable by FFmpeg.
"""

from __future__ import annotations

import io

import av
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.codecs import h264, h265
from relay.hls.segmenter import Segmenter
from relay.media import Frame
from relay.rtp.h264 import H264Depacketizer, H264Packetizer
from tests.unit.hls.encoded import FPS, video_packets
from tests.unit.rtp.h264_samples import escape

X264_RECOVERY_POINT = bytes.fromhex("0606020cc480")  # as GStreamer's x264enc intra-refresh sends
USER_DATA = bytes((h264.SEI, 5, 16)) + bytes(range(16)) + b"\x80"


def sei(*messages: tuple[int, bytes], header: bytes = bytes((h264.SEI,))) -> bytes:
    """An SEI NAL unit of (payloadType, payload) messages, escaped as on the wire."""
    rbsp = bytearray()
    for kind, payload in messages:
        for value in (kind, len(payload)):
            rbsp += b"\xff" * (value // 255) + bytes((value % 255,))
        rbsp += payload
    return header + escape(bytes(rbsp) + b"\x80")


def test_recovery_point_found_among_other_messages() -> None:
    assert h264.has_recovery_point(X264_RECOVERY_POINT)
    assert not h264.has_recovery_point(USER_DATA)
    assert h264.has_recovery_point(sei((1, b"\x01\x02"), (6, b"\x84")))
    assert not h264.has_recovery_point(sei((1, b"\x01\x02"), (5, bytes(300))))
    # payloadType 6 + 255 (0xFF then 6) is not a recovery point
    assert not h264.has_recovery_point(sei((261, b"\x84")))
    # escaped zeros in an earlier payload: sizes count unescaped bytes
    assert h264.has_recovery_point(sei((5, b"\x00\x00\x01\x00\x00\x02"), (6, b"\x84")))


def test_truncated_or_empty_sei_is_not_a_recovery_point() -> None:
    for nal in (b"\x06", b"\x06\x06", b"\x06\x06\x05\x84", b"\x06\xff\xff", b"\x06\x80"):
        assert not h264.has_recovery_point(nal)


def test_h265_prefix_sei() -> None:
    header = bytes((h265.SEI_PREFIX << 1, 1))
    assert h265.has_recovery_point(sei((6, b"\x84"), header=header), 2)
    assert not h265.has_recovery_point(sei((129, b"\x84"), header=header), 2)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.sampled_from([1, 2]))
def test_any_bytes_give_an_answer(data: bytes, header_size: int) -> None:
    assert h264.has_recovery_point(data, header_size) in (True, False)


def test_x264_intra_refresh_seis() -> None:
    _, packets = video_packets(2.0, intra_refresh=True)
    for _, _, key, nals in packets[1:]:
        seis = [n for n in nals if h264.nal_type(n) == h264.SEI]
        assert any(h264.has_recovery_point(n) for n in seis) is key


def test_stream_without_idr_gets_keyframes_and_segments_at_recovery_points() -> None:
    """x264 intra refresh, joined after its only IDR: RTP in, HLS segments out."""
    track, packets = video_packets(6.0, intra_refresh=True)
    assert packets[0][2] and [p[0] for p in packets if p[2]][1] == FPS * 3600
    packetizer = H264Packetizer(96, 0x1234)
    depacketizer = H264Depacketizer(track)
    frames: list[Frame] = []
    for pts, _, _, nals in packets[1:]:  # the IDR is gone
        assert h264.IDR not in {h264.nal_type(n) for n in nals}
        for packet in packetizer.packetize(nals, pts):
            frames += depacketizer.push(packet)
    # nothing before the first recovery point; a keyframe at each one (every second)
    assert frames[0].pts == FPS * 3600
    assert [f.pts for f in frames if f.key] == [n * FPS * 3600 for n in range(1, 6)]
    segmenter = Segmenter(2.0)
    segments = []
    for frame in frames:
        segments += segmenter.push(frame)
    segments += segmenter.flush()
    assert [s.start for s in segments] == [1.0, 3.0, 5.0]
    assert [round(s.duration, 6) for s in segments] == [2.0, 2.0, 1.0]
    for segment in segments:
        with av.open(io.BytesIO(segment.data), format="mpegts") as container:
            first = next(p for p in container.demux(video=0) if p.size)
            assert first.is_keyframe
        with av.open(io.BytesIO(segment.data), format="mpegts") as container:
            assert any(True for _ in container.decode(video=0))
