"""RTP packet parsing and writing (RFC 3550 5.1, 5.3.1)."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.errors import RemoteProtocolError
from relay.rtp.packet import RtpPacket

# V=2 P=0 X=0 CC=0 | M=1 PT=96 | seq 0x1234 | ts 0xdeadbeef | ssrc 0x01020304 | payload
SIMPLE = bytes.fromhex("80e0 1234 deadbeef 01020304") + b"hello"


def test_parse_fixed_header() -> None:
    p = RtpPacket.parse(SIMPLE)
    assert (p.marker, p.payload_type, p.sequence, p.timestamp, p.ssrc) == (
        True,
        96,
        0x1234,
        0xDEADBEEF,
        0x01020304,
    )
    assert p.payload == b"hello" and p.csrc == () and p.extension is None and p.padding == 0
    assert bytes(p) == SIMPLE


def test_payload_is_a_view_without_copy() -> None:
    data = bytearray(SIMPLE)
    p = RtpPacket.parse(data)
    assert isinstance(p.payload, memoryview)
    data[-1] = ord("!")
    assert bytes(p.payload) == b"hell!"


def test_csrc_extension_and_padding() -> None:
    # V=2 P=1 X=1 CC=2, M=0 PT=8
    data = (
        bytes.fromhex("b2 08 0001 00000010 0000000a")
        + struct.pack(">II", 11, 12)
        + bytes.fromhex("bede 0001 10ff0000")  # RFC 8285 one-byte header extension, one word
        + b"abc"
        + b"\x00\x00\x03"  # three bytes of padding, the last one the count
    )
    p = RtpPacket.parse(data)
    assert p.csrc == (11, 12)
    assert p.extension == (0xBEDE, bytes.fromhex("10ff0000"))
    assert p.padding == 3 and p.payload == b"abc"
    assert not p.marker and p.payload_type == 8
    assert bytes(p) == data


@pytest.mark.parametrize(
    "data, why",
    [
        (SIMPLE[:11], "shorter"),
        (bytes.fromhex("40e0 1234 deadbeef 01020304"), "version 1"),
        (bytes.fromhex("83e0 1234 deadbeef 01020304 00000001"), "CSRC"),
        (bytes.fromhex("90e0 1234 deadbeef 01020304 bede"), "extension"),
        (bytes.fromhex("90e0 1234 deadbeef 01020304 bede0002 00000000"), "extension"),
        (bytes.fromhex("a0e0 1234 deadbeef 01020304 0000"), "padding"),
        (bytes.fromhex("a0e0 1234 deadbeef 01020304 0005"), "padding"),
    ],
)
def test_garbage_is_rejected(data: bytes, why: str) -> None:
    with pytest.raises(RemoteProtocolError, match="RTP packet"):
        RtpPacket.parse(data)


def test_empty_payload_with_all_padding() -> None:
    p = RtpPacket.parse(bytes.fromhex("a0e0 1234 deadbeef 01020304 00000004"))
    assert p.payload == b"" and p.padding == 4


packets = st.builds(
    RtpPacket,
    marker=st.booleans(),
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=1500),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.tuples(
        st.integers(0, 0xFFFF), st.binary(max_size=64).map(lambda b: b + bytes(-len(b) % 4))
    ),
    padding=st.integers(0, 255),
)


@given(packets)
def test_round_trip(packet: RtpPacket) -> None:
    data = bytes(packet)
    assert RtpPacket.parse(data) == packet
    assert bytes(RtpPacket.parse(data)) == data
