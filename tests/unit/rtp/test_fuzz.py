"""Hostile input: random bytes into every parser of network input; only project errors escape,
and no input makes a parser allocate more than FUZZ_MEMORY_LIMIT."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.codecs.aac import AudioSpecificConfig
from relay.codecs.h264 import parse_sps, split_annexb
from relay.errors import RemoteProtocolError
from relay.media import Codec, Track
from relay.rtp.aac import AacDepacketizer
from relay.rtp.h264 import H264Depacketizer
from relay.rtp.packet import RtpPacket
from relay.rtp.registry import make_depacketizer
from relay.rtp.rtcp import parse_compound
from tests.unit.rtp.sequenced import push_sequenced

from ..memory import memory_bounded
from .h264_samples import PPS_360P_HIGH, SPS_360P_HIGH

H264_TRACK = Track(0, Codec.H264, 90000, parameter_sets=(SPS_360P_HIGH, PPS_360P_HIGH))
AAC_TRACK = Track(1, Codec.AAC, 48000, audio_config=b"\x11\x90", sample_rate=48000, channels=2)


@given(st.binary(max_size=200))
@memory_bounded
def test_rtp_packet_parse(data: bytes) -> None:
    try:
        RtpPacket.parse(data)
    except RemoteProtocolError:
        pass


@given(st.integers(0x80, 0xBF), st.binary(max_size=200))
@memory_bounded
def test_rtp_packet_parse_version_2(first: int, rest: bytes) -> None:
    try:
        packet = RtpPacket.parse(bytes((first,)) + rest)
    except RemoteProtocolError:
        return
    assert len(packet.payload) <= len(rest)


@given(st.binary(max_size=300))
@memory_bounded
def test_parse_compound(data: bytes) -> None:
    try:
        parse_compound(data)
    except RemoteProtocolError:
        pass


@given(
    st.lists(
        st.tuples(st.integers(0x80, 0xBF), st.integers(200, 204), st.binary(max_size=120)),
        min_size=1,
        max_size=4,
    )
)
@memory_bounded
def test_parse_compound_with_plausible_headers(parts) -> None:
    data = b"".join(
        bytes((first, kind)) + (len(body) // 4).to_bytes(2, "big") + body[: len(body) // 4 * 4]
        for first, kind, body in parts
    )
    try:
        parse_compound(data)
    except RemoteProtocolError:
        pass


@given(st.binary(max_size=100))
@memory_bounded
def test_parse_sps(data: bytes) -> None:
    try:
        parse_sps(b"\x67" + data)
    except RemoteProtocolError:
        pass


@given(st.integers(0, len(SPS_360P_HIGH) - 1), st.integers(0, 255))
@memory_bounded
def test_parse_sps_with_one_byte_changed(index: int, value: int) -> None:
    sps = bytearray(SPS_360P_HIGH)
    sps[index] = value
    try:
        parse_sps(bytes(sps))
    except RemoteProtocolError:
        pass


@given(st.binary(max_size=300))
@memory_bounded
def test_split_annexb(data: bytes) -> None:
    for nal in split_annexb(data):
        assert len(nal) > 0


@given(st.binary(max_size=40))
@memory_bounded
def test_audio_specific_config(data: bytes) -> None:
    try:
        AudioSpecificConfig.parse(data)
    except RemoteProtocolError:
        pass


@given(st.text(max_size=40))
@memory_bounded
def test_audio_specific_config_from_hex(text: str) -> None:
    try:
        AudioSpecificConfig.from_hex(text)
    except RemoteProtocolError:
        pass


packets = st.builds(
    RtpPacket,
    marker=st.booleans(),
    payload_type=st.just(96),
    sequence=st.integers(0, 12),
    timestamp=st.sampled_from([0, 3000, 6000]),
    ssrc=st.just(1),
    payload=st.one_of(
        st.binary(max_size=60),
        # payloads that start like the real thing, to reach deeper
        st.tuples(
            st.sampled_from([0x65, 0x41, 0x67, 0x68, 0x78, 0x7C, 0x5C, 0x79]),
            st.binary(max_size=60),
        ).map(lambda t: bytes((t[0],)) + t[1]),
        st.tuples(st.sampled_from([0x85, 0x45, 0x05, 0x81, 0x41]), st.binary(max_size=60)).map(
            lambda t: b"\x7c" + bytes((t[0],)) + t[1]
        ),
    ),
)


@settings(max_examples=300)
@given(st.lists(packets, max_size=20))
@memory_bounded
def test_h264_depacketizer(stream: list[RtpPacket]) -> None:
    d = H264Depacketizer(dataclasses.replace(H264_TRACK))
    for packet in stream:
        track = d.track
        frames = push_sequenced(d, [packet])
        for frame in frames:
            assert isinstance(frame.data, tuple) and all(type(n) is bytes and n for n in frame.data)
        # a frame carries the track in force when it completed: the access unit the same
        # packet completes next may bring new parameter sets (and a new track)
        assert all(f.track in (track, d.track) for f in frames)


aac_payloads = st.one_of(
    st.binary(max_size=60),
    st.tuples(st.integers(0, 64), st.binary(max_size=60)).map(
        lambda t: t[0].to_bytes(2, "big") + t[1]
    ),
)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 12), st.sampled_from([0, 1024]), aac_payloads),
        max_size=20,
    ),
    st.sampled_from(
        [
            {"sizelength": "13", "indexlength": "3", "indexdeltalength": "3"},
            {"sizelength": "6", "indexlength": "2", "indexdeltalength": "2"},
            {
                "sizelength": "13",
                "ctsdeltalength": "3",
                "dtsdeltalength": "2",
                "randomaccessindication": "1",
                "auxiliarydatasizelength": "7",
            },
            {"indexlength": "3"},
            {},
        ]
    ),
)
@memory_bounded
def test_aac_depacketizer(stream, fmtp) -> None:
    d = AacDepacketizer(AAC_TRACK, fmtp)
    for marker, seq, ts, payload in stream:
        for frame in push_sequenced(d, [RtpPacket(marker, 97, seq, ts, 1, payload)]):
            assert frame.key and len(frame.data) <= 65536


@given(
    st.sampled_from(["H264", "mpeg4-generic"]),
    st.dictionaries(
        st.sampled_from(
            ["sprop-parameter-sets", "packetization-mode", "config", "mode", "sizelength"]
        ),
        st.text(max_size=30),
    ),
)
@memory_bounded
def test_registry_with_hostile_fmtp(encoding: str, fmtp: dict[str, str]) -> None:
    from relay.errors import RelayError

    try:
        make_depacketizer(0, encoding, 90000, 1, fmtp)
    except RelayError:
        pass
