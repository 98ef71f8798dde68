"""RTCP packets and compound packets (RFC 3550 6.1, 6.4-6.6)."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.errors import RemoteProtocolError
from relay.rtp.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SenderReport,
    SourceDescription,
    middle_ntp,
    ntp_to_seconds,
    parse_compound,
    receiver_report_compound,
    seconds_to_ntp,
    sender_report_compound,
)

# SR, SC=0: ssrc, NTP 0x83aa7e80.80000000 (half a second past a whole second), rtp ts, packets,
# octets
SR_BYTES = bytes.fromhex("80c8 0006 11223344 83aa7e80 80000000 00015f90 0000000a 00000fa0")
# SDES, SC=1: ssrc, CNAME "cam@host" (8 bytes), null item + padding to the word
SDES_BYTES = bytes.fromhex("81ca 0004 11223344 0108") + b"cam@host" + bytes(2)


def test_sender_report_and_sdes_compound() -> None:
    sr, sdes = parse_compound(SR_BYTES + SDES_BYTES)
    assert sr == SenderReport(0x11223344, 0x83AA7E8080000000, 90000, 10, 4000, ())
    assert ntp_to_seconds(sr.ntp_timestamp) == 0x83AA7E80 + 0.5
    assert middle_ntp(sr.ntp_timestamp) == 0x7E808000
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].ssrc == 0x11223344 and sdes.chunks[0].cname == "cam@host"
    assert bytes(sr) == SR_BYTES and bytes(sdes) == SDES_BYTES


def test_receiver_report_with_blocks_and_negative_loss() -> None:
    block = ReportBlock(5, 64, -3, 0x1_0005, 123, 0x7E808000, 65536)
    rr = ReceiverReport(0xAABBCCDD, (block, block))
    data = bytes(rr)
    assert data[:4] == bytes.fromhex("82c9 000d")
    assert data[12:16] == bytes.fromhex("40fffffd")  # fraction 64, cumulative -3 (24-bit)
    assert parse_compound(data) == [rr]


def test_bye_with_reason_and_unknown_types_skipped() -> None:
    app = bytes.fromhex("80cc 0002 11223344") + b"name"  # APP (204): skipped
    bye = bytes.fromhex("81cb 0003 11223344 04") + b"gone" + bytes(3)
    assert parse_compound(app + bye) == [Bye((0x11223344,), "gone")]
    assert bytes(Bye((0x11223344,), "gone")) == bye


def test_padding_on_last_packet() -> None:
    padded = bytes.fromhex("a0c9 0002 00000001") + bytes.fromhex("00000004")
    assert parse_compound(padded) == [ReceiverReport(1, ())]


@pytest.mark.parametrize(
    "data",
    [
        SR_BYTES[:3],
        SR_BYTES[:-4],  # length says more than the datagram has
        bytes.fromhex("40c9 0001 00000001"),  # version 1
        bytes.fromhex("80c8 0000"),  # SR without sender info
        bytes.fromhex("81c9 0001 00000001"),  # RR whose block is missing
        bytes.fromhex("81ca 0001 00000001"),  # SDES chunk without end
        bytes.fromhex("81ca 0002 00000001 01ff0000"),  # SDES item past the end
        bytes.fromhex("82cb 0001 00000001"),  # BYE list past the end
        bytes.fromhex("81cb 0002 00000001 09000000"),  # BYE reason past the end
        bytes.fromhex("a0c9 0001 00000009"),  # padding larger than the packet
        bytes.fromhex("a0c9 0001 00000004") + bytes.fromhex("80c9 0001 00000001"),  # not last
    ],
)
def test_garbage_is_rejected(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="RTCP"):
        parse_compound(data)


def test_receiver_report_compound() -> None:
    block = ReportBlock(7, 0, 0, 100, 0, 0, 0)
    packets = parse_compound(receiver_report_compound(1, [block], "relay@host"))
    assert packets[0] == ReceiverReport(1, (block,))
    assert packets[1].chunks[0].cname == "relay@host"
    many = parse_compound(receiver_report_compound(1, [block] * 40, "x"))
    assert [len(p.reports) for p in many[:2]] == [31, 9]
    assert parse_compound(receiver_report_compound(1, [], "x"))[0] == ReceiverReport(1, ())


def test_sender_report_compound_and_ntp() -> None:
    ntp = seconds_to_ntp(3_900_000_000.25)
    assert ntp == (3_900_000_000 << 32) | (1 << 30)
    sr = SenderReport(9, ntp, 1, 2, 3)
    packets = parse_compound(sender_report_compound(sr, "demo"))
    assert packets[0] == sr and packets[1].chunks[0].cname == "demo"


u32 = st.integers(0, 0xFFFFFFFF)
blocks = st.builds(
    ReportBlock, u32, st.integers(0, 255), st.integers(-0x800000, 0x7FFFFF), u32, u32, u32, u32
)
block_lists = st.lists(blocks, max_size=31).map(tuple)
rtcp_packets = st.one_of(
    st.builds(SenderReport, u32, st.integers(0, 2**64 - 1), u32, u32, u32, block_lists),
    st.builds(ReceiverReport, u32, block_lists),
    st.builds(
        SourceDescription,
        st.lists(
            st.builds(
                SdesChunk,
                u32,
                st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=255)), max_size=4).map(
                    tuple
                ),
            ),
            max_size=31,
        ).map(tuple),
    ),
    st.builds(
        Bye,
        st.lists(u32, max_size=31).map(tuple),
        st.text(st.characters(codec="ascii"), max_size=255),
    ),
)


@given(st.lists(rtcp_packets, min_size=1, max_size=5))
def test_round_trip(packets: list) -> None:
    data = b"".join(bytes(p) for p in packets)
    assert parse_compound(data) == packets
    assert struct.unpack_from(">H", data, 2)[0] * 4 + 4 <= len(data)
