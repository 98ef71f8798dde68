"""G.711 over RTP (RFC 3551 4.5.14): depacketizer, fixed-ptime packetizer, round trips, fuzz."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.errors import RemoteProtocolError, UnsupportedError
from relay.media import Codec
from relay.rtp import g711
from relay.rtp.g711 import G711Depacketizer, G711Packetizer, g711_track
from relay.rtp.packet import RtpPacket
from tests.unit.memory import memory_bounded

# V=2 | M=1 PT=8 | seq 7 | ts 0x00000140 | ssrc 0x11223344 | 4 A-law samples
PCMA_PACKET = bytes.fromhex("8088 0007 00000140 11223344 d5d5 5455")


def test_one_frame_per_packet_with_the_samples() -> None:
    dep = g711.make_pcma(3, 8000, 1, {})
    assert dep.track == g711_track(3, Codec.PCMA)
    assert (dep.track.clock_rate, dep.track.sample_rate, dep.track.channels) == (8000, 8000, 1)
    [frame] = dep.push(RtpPacket.parse(PCMA_PACKET))
    assert (frame.pts, frame.dts, frame.key) == (0x140, 0x140, True)
    assert frame.data == bytes.fromhex("d5d55455") and isinstance(frame.data, bytes)
    assert frame.track is dep.track and dep.dropped == 0


def test_pcmu_and_rtpmap_rate_and_channels() -> None:
    dep = g711.make_pcmu(0, 16000, 2, {})
    assert (dep.track.codec, dep.track.clock_rate, dep.track.channels) == (Codec.PCMU, 16000, 2)
    packet = RtpPacket(True, 0, 1, 99, 5, b"\xff\x7f\xff\x7f")
    assert dep.push(packet)[0].data == b"\xff\x7f\xff\x7f"
    assert dep.push(RtpPacket(True, 0, 2, 101, 5, b"\xff\x7f\xff")) == []  # not 2 channels
    assert dep.bad == 1


def test_empty_payload_is_counted_not_framed() -> None:
    dep = g711.make_pcma(0, 8000, 1, {})
    assert dep.push(RtpPacket(False, 8, 1, 0, 5, b"")) == []
    assert dep.dropped == 1


@pytest.mark.parametrize("rate, channels", [(0, 1), (8000, 0), (8000, 9), (10**6, 1)])
def test_absurd_rtpmap_is_unsupported(rate: int, channels: int) -> None:
    with pytest.raises(UnsupportedError):
        g711_track(0, Codec.PCMU, rate, channels)


def test_not_a_g711_codec() -> None:
    with pytest.raises(UnsupportedError):
        g711_track(0, Codec.AAC)


def test_packetizer_cuts_fixed_20ms_packets() -> None:
    track = g711_track(0, Codec.PCMA)
    pay = G711Packetizer(track, 8, 0xABC, sequence=65535, timestamp=0xFFFFFF00)
    assert pay.push(bytes(100)) == []
    packets = pay.push(bytes(300))
    assert [len(p.payload) for p in packets] == [160, 160]
    assert [p.sequence for p in packets] == [65535, 0]
    assert [p.timestamp for p in packets] == [0xFFFFFF00, (0xFFFFFF00 + 160) & 0xFFFFFFFF]
    assert [p.marker for p in packets] == [True, False]
    assert all(p.payload_type == 8 and p.ssrc == 0xABC for p in packets)
    [tail] = pay.flush()
    assert len(tail.payload) == 80 and tail.sequence == 1 and tail.timestamp == 0x40
    assert pay.flush() == []
    pay.restart(1000)
    [again] = pay.push(bytes(160))
    assert again.marker and again.timestamp == 1000 and again.sequence == 2


def test_stereo_packetizer_counts_sample_frames() -> None:
    pay = G711Packetizer(g711_track(0, Codec.PCMU, 8000, 2), 0, 1, ptime=0.010)
    packets = pay.push(bytes(161 * 2 + 1))
    assert [len(p.payload) for p in packets] == [160, 160]
    assert [p.timestamp for p in packets] == [0, 80]
    [tail] = pay.flush()  # the odd byte is half a sample frame: not sent
    assert len(tail.payload) == 2 and tail.timestamp == 160


@given(
    samples=st.binary(max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=8),
    channels=st.sampled_from([1, 2]),
    start=st.integers(0, 2**32 - 1),
    ptime=st.sampled_from([0.010, 0.020, 0.030]),
)
def test_round_trip_through_the_wire(
    samples: bytes, cuts: list[int], channels: int, start: int, ptime: float
) -> None:
    samples = samples[: len(samples) // channels * channels]
    track = g711_track(0, Codec.PCMU, 8000, channels)
    pay = G711Packetizer(track, 0, 42, timestamp=start, ptime=ptime)
    packets = []
    edges = sorted({0, len(samples), *(c for c in cuts if c < len(samples))})
    for a, b in zip(edges, edges[1:]):
        packets += pay.push(samples[a:b])
    packets += pay.flush()
    dep = G711Depacketizer(track)
    frames = [f for p in packets for f in dep.push(RtpPacket.parse(bytes(p)))]
    assert b"".join(f.data for f in frames) == samples
    position = start
    for frame in frames:
        assert frame.pts == frame.dts == position & 0xFFFFFFFF and frame.key
        position += len(frame.data) // channels
    assert all(len(f.data) == pay.samples_per_packet * channels for f in frames[:-1])


@given(st.binary(max_size=64), st.sampled_from([1, 2, 3]))
@memory_bounded
def test_fuzz_depacketizer(datagram: bytes, channels: int) -> None:
    dep = G711Depacketizer(g711_track(0, Codec.PCMA, 8000, channels))
    try:
        packet = RtpPacket.parse(bytes.fromhex("8008000100000000") + datagram)
    except RemoteProtocolError:
        return
    frames = dep.push(packet)  # never raises: a bad payload is counted in .bad
    assert all(len(f.data) % channels == 0 and f.data for f in frames)
    assert len(frames) + dep.bad + dep.dropped == 1
