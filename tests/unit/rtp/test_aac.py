"""AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1) and mpeg4-generic RTP payloads (RFC 3640)."""

from __future__ import annotations

import array
import math
from fractions import Fraction

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.codecs.aac import SAMPLE_RATES, AudioSpecificConfig
from relay.errors import RemoteProtocolError, UnsupportedError
from relay.media import Codec, Track
from relay.rtp import aac as rtp_aac
from relay.rtp.aac import AacDepacketizer, AacPacketizer, AuHeaderFormat, aac_fmtp, aac_track
from relay.rtp.packet import RtpPacket

HBR = {
    "streamtype": "5",
    "mode": "AAC-hbr",
    "sizelength": "13",
    "indexlength": "3",
    "indexdeltalength": "3",
    "config": "1190",
}
TRACK = aac_track(1, 48000, 2, HBR)

# ---- AudioSpecificConfig ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "hex_, object_type, rate, channels, frame_length, ext_rate",
    [
        ("1190", 2, 48000, 2, 1024, 0),  # AAC-LC 48 kHz stereo
        ("1210", 2, 44100, 2, 1024, 0),
        ("1588", 2, 8000, 1, 1024, 0),
        ("1194", 2, 48000, 2, 960, 0),  # frameLengthFlag set
        ("13b8", 2, 22050, 8, 1024, 0),  # channelConfiguration 7: 7.1, 8 channels
        ("2b118800", 5, 24000, 2, 1024, 48000),  # explicit SBR: 24 kHz core, 48 kHz output
        ("17805dc010", 2, 48000, 2, 1024, 0),  # frequency index 15: explicit 24-bit rate
        ("f94840", 42, 44100, 2, 1024, 0),  # escape object type: 32 + 10
        ("1000", 2, 96000, 0, 1024, 0),  # channels from a program config element
    ],
)
def test_parse_config(hex_, object_type, rate, channels, frame_length, ext_rate) -> None:
    config = AudioSpecificConfig.from_hex(hex_)
    assert (config.object_type, config.sample_rate, config.channels) == (
        object_type,
        rate,
        channels,
    )
    assert (config.frame_length, config.extension_sample_rate) == (frame_length, ext_rate)
    assert bytes(config) == bytes.fromhex(hex_) and config.hex() == hex_


def test_config_built_in_code_writes_its_fields() -> None:
    assert bytes(AudioSpecificConfig(2, 48000, 2)) == bytes.fromhex("1190")
    assert bytes(AudioSpecificConfig(2, 48000, 2, frame_length=960)) == bytes.fromhex("1194")
    assert bytes(AudioSpecificConfig(42, 44100, 2)) == bytes.fromhex("f94840")
    assert bytes(AudioSpecificConfig(2, 48000, 2)) == bytes(AudioSpecificConfig.from_hex("1190"))


@pytest.mark.parametrize("hex_", ["", "00", "0790", "1f", "1788", "17800000", "zz", "1" * 600])
def test_bad_config_is_rejected(hex_: str) -> None:
    with pytest.raises(RemoteProtocolError, match="AAC config"):
        AudioSpecificConfig.from_hex(hex_)


configs = st.builds(
    AudioSpecificConfig,
    object_type=st.sampled_from([1, 2, 3, 4, 5, 6, 7, 17, 23, 29, 39, 42, 45]),
    sample_rate=st.sampled_from(SAMPLE_RATES) | st.integers(1, 2**24 - 1),
    channels=st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 24]),
    frame_length=st.sampled_from([1024, 960]),
    extension_sample_rate=st.sampled_from(SAMPLE_RATES),
)


@given(configs)
def test_config_round_trip(config: AudioSpecificConfig) -> None:
    ga = config.object_type in (1, 2, 3, 4, 5, 6, 7, 17, 23, 29)
    sbr = config.object_type in (5, 29)
    expected = AudioSpecificConfig(
        config.object_type,
        config.sample_rate,
        config.channels,
        config.frame_length if ga else 1024,
        config.extension_sample_rate if sbr else 0,
    )
    parsed = AudioSpecificConfig.parse(bytes(expected))
    assert parsed == expected and bytes(parsed) == bytes(expected)


# ---- depacketizer, by hand --------------------------------------------------------------------


def hbr_payload(aus: list[bytes], sizes: list[int] | None = None) -> bytes:
    sizes = sizes or [len(a) for a in aus]
    headers = b"".join((size << 3).to_bytes(2, "big") for size in sizes)
    return (16 * len(sizes)).to_bytes(2, "big") + headers + b"".join(aus)


def rtp(payload: bytes, seq: int, ts: int = 90000, marker: bool = True) -> RtpPacket:
    return RtpPacket(marker, 97, seq % 65536, ts, 2, payload)


def test_several_access_units_in_one_packet() -> None:
    d = AacDepacketizer(TRACK, HBR)
    frames = d.push(rtp(hbr_payload([b"one", b"three", b"2"]), 1, 2**32 - 1024))
    assert [f.data for f in frames] == [b"one", b"three", b"2"]
    assert [f.pts for f in frames] == [2**32 - 1024, 0, 1024]  # wraps like RTP timestamps
    assert all(f.key and f.pts == f.dts and f.track is TRACK for f in frames)


def test_frame_length_960_from_config() -> None:
    track = aac_track(1, 48000, 2, {**HBR, "config": "1194"})
    frames = AacDepacketizer(track, HBR).push(rtp(hbr_payload([b"a", b"b"]), 1, 0))
    assert [f.pts for f in frames] == [0, 960]


def test_fragmented_access_unit_is_reassembled() -> None:
    au = bytes(range(256)) * 10
    d = AacDepacketizer(TRACK, HBR)
    parts = [au[:1000], au[1000:2000], au[2000:]]
    packets = [rtp(hbr_payload([p], [len(au)]), 5 + i, 4096, i == 2) for i, p in enumerate(parts)]
    assert d.push(packets[0]) == [] and d.push(packets[1]) == []
    (frame,) = d.push(packets[2])
    assert frame.data == au and frame.pts == 4096


def test_gap_drops_only_the_fragmented_access_unit() -> None:
    au = bytes(3000)
    d = AacDepacketizer(TRACK, HBR)
    assert d.push(rtp(hbr_payload([au[:1000]], [3000]), 1, 0, False)) == []
    # packet 2 lost; 3 is the last fragment: the AU is gone, nothing corrupt comes out
    assert d.push(rtp(hbr_payload([au[2000:]], [3000]), 3, 0, True)) == []
    assert d.dropped == 1
    frames = d.push(rtp(hbr_payload([b"next"]), 4, 1024))
    assert [f.data for f in frames] == [b"next"]
    # a gap between whole-AU packets loses nothing the depacketizer holds
    assert [f.data for f in d.push(rtp(hbr_payload([b"after"]), 9, 9000))] == [b"after"]
    assert d.dropped == 1


def test_fragment_mismatch_and_short_end_are_dropped() -> None:
    d = AacDepacketizer(TRACK, HBR)
    d.push(rtp(hbr_payload([bytes(100)], [300]), 1, 0, False))
    # a packet of another timestamp: the fragment is given up, the packet itself is used
    assert [f.pts for f in d.push(rtp(hbr_payload([b"x", b"y"]), 2, 1024))] == [1024, 2048]
    assert d.dropped == 1
    d.push(rtp(hbr_payload([bytes(100)], [300]), 3, 4096, False))
    assert d.push(rtp(hbr_payload([bytes(100)], [300]), 4, 4096, True)) == []  # ended short
    assert d.dropped == 2


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00",  # no AU-headers-length
        b"\x00\x20\x00\x08",  # headers past the end
        hbr_payload([b"ab", b"c"], [2, 5]),  # second AU past the end
    ],
)
def test_malformed_payloads_are_counted(payload: bytes) -> None:
    d = AacDepacketizer(TRACK, HBR)
    assert d.push(rtp(payload, 1)) == []
    assert d.dropped == 1
    assert [f.data for f in d.push(rtp(hbr_payload([b"ok"]), 2))] == [b"ok"]


def test_access_unit_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtp_aac, "MAX_ACCESS_UNIT_SIZE", 100)
    d = AacDepacketizer(TRACK, HBR)
    assert d.push(rtp(hbr_payload([bytes(50)], [200]), 1, 0, False)) == []
    assert d.dropped == 1


def test_generic_header_sizes_lbr_and_optional_fields() -> None:
    lbr = {
        "mode": "AAC-lbr",
        "sizelength": "6",
        "indexlength": "2",
        "indexdeltalength": "2",
        "config": "1190",
    }
    # AU headers of 8 bits: size(6) index(2) / size(6) delta(2)
    payload = (16).to_bytes(2, "big") + bytes((3 << 2, 2 << 2 | 1)) + b"abc" + b"de"
    frames = AacDepacketizer(TRACK, lbr).push(rtp(payload, 1, 0))
    assert [(f.data, f.pts) for f in frames] == [(b"abc", 0), (b"de", 2048)]  # delta 1: one skipped
    rich = {
        "sizelength": "13",
        "indexlength": "3",
        "indexdeltalength": "3",
        "ctsdeltalength": "4",
        "dtsdeltalength": "4",
        "randomaccessindication": "1",
        "streamstateindication": "2",
    }
    # header: size13=2 index3=0 ctsflag=1 cts4 dtsflag=0 rap=1 state2 -> 13+3+5+1+1+2 = 25 bits
    bits = (2 << 12) | (0 << 9) | (1 << 8) | (5 << 4) | (0 << 3) | (1 << 2) | 0
    payload = (25).to_bytes(2, "big") + (bits << 7).to_bytes(4, "big") + b"xy"
    (frame,) = AacDepacketizer(TRACK, rich).push(rtp(payload, 1, 0))
    assert frame.data == b"xy"
    assert AacDepacketizer(TRACK, {"config": "1190"}).format == AuHeaderFormat()
    aux = {**HBR, "auxiliarydatasizelength": "8"}
    payload = hbr_payload([b"zz"])
    payload = payload[:4] + b"\x10\xaa\xbb" + payload[4:]  # 16 bits of auxiliary data
    assert [f.data for f in AacDepacketizer(TRACK, aux).push(rtp(payload, 1))] == [b"zz"]


def test_no_au_headers_means_one_access_unit() -> None:
    fmtp = {"sizelength": "0", "indexlength": "0", "indexdeltalength": "0", "config": "1190"}
    (frame,) = AacDepacketizer(TRACK, fmtp).push(rtp(b"whole", 1))
    assert frame.data == b"whole"


def test_bad_fmtp_sizes() -> None:
    with pytest.raises(RemoteProtocolError, match="sizelength"):
        AuHeaderFormat.from_fmtp({"sizelength": "x"})
    with pytest.raises(RemoteProtocolError, match="indexlength"):
        AuHeaderFormat.from_fmtp({"sizelength": "13", "indexlength": "99"})


def test_headers_that_consume_nothing_are_refused() -> None:
    d = AacDepacketizer(TRACK, {"indexlength": "3", "config": "1190"})
    assert d.push(rtp(b"\x00\x08\x00" + b"\x00\x08\x00", 1)) == []
    assert d.dropped == 1


def test_au_headers_per_packet_are_capped() -> None:
    # One-bit AU headers (a hostile fmtp): 65528 of them made as many Frames from one packet.
    fmtp = {"sizelength": "1", "indexlength": "0", "indexdeltalength": "0", "config": "1190"}
    d = AacDepacketizer(aac_track(1, 48000, 2, fmtp), fmtp)
    bits = 65528
    assert d.push(rtp(bits.to_bytes(2, "big") + bytes(bits // 8) + bytes(100), 1)) == []
    assert d.dropped == 1
    bits = rtp_aac.MAX_UNITS_PER_PACKET
    frames = d.push(rtp(bits.to_bytes(2, "big") + b"\xff" * (bits // 8) + bytes(bits), 2))
    assert len(frames) == rtp_aac.MAX_UNITS_PER_PACKET


# ---- packetizer and round trips ---------------------------------------------------------------


def test_packetizer_aggregates_and_fragments() -> None:
    p = AacPacketizer(97, 9, mtu=100, sequence=65535)
    packets = p.packetize([b"a" * 30, b"b" * 30, b"c" * 200, b"d" * 10], 1000)
    assert [len(bytes(x)) <= 100 for x in packets] == [True] * len(packets)
    assert [x.timestamp for x in packets] == [1000, 3048, 3048, 3048, 4072]
    assert [x.marker for x in packets] == [True, False, False, True, True]
    assert [x.sequence for x in packets] == [65535, 0, 1, 2, 3]
    with pytest.raises(ValueError):
        p.packetize([bytes(8192)], 0)


aus_strategy = st.lists(st.binary(min_size=1, max_size=8191), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(aus_strategy, st.integers(100, 1500), st.integers(0, 2**32 - 1))
def test_any_access_units_round_trip(aus: list[bytes], mtu: int, timestamp: int) -> None:
    packets = AacPacketizer(97, 9, mtu=mtu, sequence=timestamp % 65536).packetize(aus, timestamp)
    assert all(len(bytes(p)) <= mtu for p in packets)
    d = AacDepacketizer(TRACK, HBR)
    frames = [f for p in packets for f in d.push(RtpPacket.parse(bytes(p)))]
    assert [f.data for f in frames] == aus
    assert [f.pts for f in frames] == [(timestamp + i * 1024) % 2**32 for i in range(len(aus))]
    assert d.dropped == 0


def test_real_aac_stream_decodes_identically() -> None:
    enc = av.CodecContext.create("aac", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "fltp"
    enc.time_base = Fraction(1, 48000)
    units = []
    for n in range(20):
        frame = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
        tone = array.array(
            "f", (0.5 * math.sin(2 * math.pi * 440 * (n * 1024 + i) / 48000) for i in range(1024))
        )
        for plane in frame.planes:
            plane.update(tone.tobytes())
        frame.sample_rate, frame.pts = 48000, n * 1024
        units += [bytes(p) for p in enc.encode(frame)]
    units += [bytes(p) for p in enc.encode(None)]
    track = aac_track(1, 48000, 2, {**HBR, "config": enc.extradata.hex()})
    assert (track.sample_rate, track.channels) == (48000, 2)
    packets = AacPacketizer(97, 1, mtu=400).packetize(units, 0)
    d = AacDepacketizer(track, HBR)
    frames = [f for p in packets for f in d.push(p)]
    assert [f.data for f in frames] == units

    def decode(data: list[bytes]) -> list[bytes]:
        dec = av.CodecContext.create("aac", "r")
        dec.extradata = track.audio_config
        out = []
        for unit in [*data, None]:
            out += [
                b"".join(bytes(p) for p in f.planes)
                for f in dec.decode(av.Packet(unit) if unit else None)
            ]
        return out

    assert decode([f.data for f in frames]) == decode(units) and len(decode(units)) >= 20


# ---- SDP --------------------------------------------------------------------------------------


def test_aac_track_and_fmtp() -> None:
    assert TRACK == Track(
        1, Codec.AAC, 48000, audio_config=b"\x11\x90", sample_rate=48000, channels=2
    )
    text = aac_fmtp(TRACK)
    again = aac_track(1, 48000, 2, dict(kv.split("=", 1) for kv in text.split(";")))
    assert again == TRACK
    assert AuHeaderFormat.from_fmtp(dict(kv.split("=", 1) for kv in text.split(";"))) == (
        AuHeaderFormat()
    )


def test_aac_track_errors() -> None:
    with pytest.raises(RemoteProtocolError, match="config"):
        aac_track(0, 48000, 2, {"mode": "AAC-hbr"})
    with pytest.raises(RemoteProtocolError, match="AAC config"):
        aac_track(0, 48000, 2, {"mode": "AAC-hbr", "config": "xyz"})
    with pytest.raises(UnsupportedError, match="CELP"):
        aac_track(0, 48000, 2, {"mode": "CELP-cbr", "config": "1190"})
    assert aac_track(0, 8000, 1, {"config": "1000"}).channels == 1  # PCE: rtpmap's count
