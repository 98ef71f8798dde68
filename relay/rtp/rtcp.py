"""RTCP packets (RFC 3550 6.4 SR/RR, 6.5 SDES, 6.6 BYE) and compound packets (6.1).

``parse_compound`` returns the packets it knows and skips other types (APP, feedback, XR).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from relay.errors import RemoteProtocolError

RTCP_VERSION = 2
SR, RR, SDES, BYE = 200, 201, 202, 203
CNAME = 1
MAX_COUNT = 31  # the 5-bit RC/SC field
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01

_HEADER = struct.Struct(">BBH")  # V P RC | PT | length in 32-bit words minus one
_BLOCK = struct.Struct(">IB3sIIII")
_SENDER_INFO = struct.Struct(">IQIII")

__all__ = [
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "middle_ntp",
    "ntp_to_seconds",
    "parse_compound",
    "receiver_report_compound",
    "seconds_to_ntp",
    "sender_report_compound",
]


def ntp_to_seconds(ntp64: int) -> float:
    """A 64-bit NTP timestamp as seconds since 1900."""
    return (ntp64 >> 32) + (ntp64 & 0xFFFFFFFF) / 2**32


def seconds_to_ntp(seconds: float) -> int:
    """Seconds since 1900 as a 64-bit NTP timestamp (use ``unix + NTP_UNIX_OFFSET``)."""
    return round(seconds * 2**32) & 0xFFFFFFFFFFFFFFFF


def middle_ntp(ntp64: int) -> int:
    """The middle 32 bits of an NTP timestamp, as report blocks carry them in LSR (6.4.1)."""
    return (ntp64 >> 16) & 0xFFFFFFFF


def _header(packet_type: int, count: int, body: bytes) -> bytes:
    if count > MAX_COUNT:
        raise ValueError(f"RTCP: {count} items, over {MAX_COUNT}")
    if len(body) % 4:
        raise ValueError("RTCP: body not a multiple of 4 bytes")
    return _HEADER.pack(RTCP_VERSION << 6 | count, packet_type, len(body) // 4) + body


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception report block (6.4.1); ``cumulative_lost`` is signed 24-bit."""

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    last_sr: int
    delay_since_last_sr: int

    @classmethod
    def parse(cls, data: bytes | memoryview) -> ReportBlock:
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data)
        cumulative = int.from_bytes(lost, "big", signed=True)
        return cls(ssrc, fraction, cumulative, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.cumulative_lost))
        return _BLOCK.pack(
            self.ssrc,
            self.fraction_lost,
            lost.to_bytes(3, "big", signed=True),
            self.highest_sequence,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        )


def _blocks(body: memoryview, offset: int, count: int) -> tuple[ReportBlock, ...]:
    if offset + count * _BLOCK.size > len(body):
        raise RemoteProtocolError("RTCP: report blocks past the end of the packet")
    return tuple(ReportBlock.parse(body[offset + i * 24 :]) for i in range(count))


@dataclass(frozen=True, slots=True)
class SenderReport:
    """Sender report (6.4.1); profile-specific extensions are ignored."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    @classmethod
    def _parse(cls, count: int, body: memoryview) -> SenderReport:
        if len(body) < _SENDER_INFO.size:
            raise RemoteProtocolError("RTCP SR: shorter than its sender info")
        ssrc, ntp, rtp, packets, octets = _SENDER_INFO.unpack_from(body)
        return cls(ssrc, ntp, rtp, packets, octets, _blocks(body, _SENDER_INFO.size, count))

    def __bytes__(self) -> bytes:
        body = _SENDER_INFO.pack(
            self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )
        body += b"".join(bytes(b) for b in self.reports)
        return _header(SR, len(self.reports), body)


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """Receiver report (6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    @classmethod
    def _parse(cls, count: int, body: memoryview) -> ReceiverReport:
        if len(body) < 4:
            raise RemoteProtocolError("RTCP RR: no SSRC")
        (ssrc,) = struct.unpack_from(">I", body)
        return cls(ssrc, _blocks(body, 4, count))

    def __bytes__(self) -> bytes:
        body = struct.pack(">I", self.ssrc) + b"".join(bytes(b) for b in self.reports)
        return _header(RR, len(self.reports), body)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk: a source and its items as (type, value) pairs."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    @property
    def cname(self) -> str | None:
        for kind, value in self.items:
            if kind == CNAME:
                return value.decode("utf-8", "replace")
        return None

    def __bytes__(self) -> bytes:
        out = bytearray(struct.pack(">I", self.ssrc))
        for kind, value in self.items:
            if not 0 < kind < 256 or len(value) > 255:
                raise ValueError("SDES item: type 1..255 and at most 255 bytes")
            out += bytes((kind, len(value))) + value
        out += bytes(4 - len(out) % 4)  # the null item, then padding to 32 bits (6.5)
        return bytes(out)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """Source description (6.5)."""

    chunks: tuple[SdesChunk, ...] = ()

    @classmethod
    def cname(cls, ssrc: int, cname: str) -> SourceDescription:
        return cls((SdesChunk(ssrc, ((CNAME, cname.encode()),)),))

    @classmethod
    def _parse(cls, count: int, body: memoryview) -> SourceDescription:
        chunks = []
        offset = 0
        for _ in range(count):
            if offset + 4 > len(body):
                raise RemoteProtocolError("RTCP SDES: chunk past the end")
            (ssrc,) = struct.unpack_from(">I", body, offset)
            offset += 4
            items = []
            while True:
                if offset >= len(body):
                    raise RemoteProtocolError("RTCP SDES: items without end")
                kind = body[offset]
                if kind == 0:
                    offset = (offset + 4) & ~3  # null item and padding to the next word
                    break
                if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                    raise RemoteProtocolError("RTCP SDES: item past the end")
                size = body[offset + 1]
                items.append((kind, bytes(body[offset + 2 : offset + 2 + size])))
                offset += 2 + size
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return cls(tuple(chunks))

    def __bytes__(self) -> bytes:
        return _header(SDES, len(self.chunks), b"".join(bytes(c) for c in self.chunks))


@dataclass(frozen=True, slots=True)
class Bye:
    """Goodbye (6.6)."""

    ssrcs: tuple[int, ...] = ()
    reason: str = ""

    @classmethod
    def _parse(cls, count: int, body: memoryview) -> Bye:
        end = 4 * count
        if end > len(body):
            raise RemoteProtocolError("RTCP BYE: SSRC list past the end")
        ssrcs = struct.unpack_from(f">{count}I", body)
        reason = ""
        if end < len(body):
            size = body[end]
            if end + 1 + size > len(body):
                raise RemoteProtocolError("RTCP BYE: reason past the end")
            reason = bytes(body[end + 1 : end + 1 + size]).decode("utf-8", "replace")
        return cls(ssrcs, reason)

    def __bytes__(self) -> bytes:
        body = struct.pack(f">{len(self.ssrcs)}I", *self.ssrcs)
        if self.reason:
            text = self.reason.encode()[:255]
            body += bytes((len(text),)) + text
            body += bytes(-len(body) % 4)
        return _header(BYE, len(self.ssrcs), body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye
_PARSERS: dict[int, Callable[[int, memoryview], RtcpPacket]] = {
    SR: SenderReport._parse,
    RR: ReceiverReport._parse,
    SDES: SourceDescription._parse,
    BYE: Bye._parse,
}


def parse_compound(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Parses a compound RTCP packet (one or more packets back to back, 6.1).

    Raises:
        RemoteProtocolError: a header is malformed or a packet overruns the datagram.
    """
    view = data if isinstance(data, memoryview) else memoryview(data)
    out: list[RtcpPacket] = []
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise RemoteProtocolError("RTCP: truncated header")
        first, packet_type, words = _HEADER.unpack_from(view, offset)
        if first >> 6 != RTCP_VERSION:
            raise RemoteProtocolError(f"RTCP: version {first >> 6}")
        end = offset + 4 + 4 * words
        if end > len(view):
            raise RemoteProtocolError("RTCP: packet length past the end of the datagram")
        body = view[offset + 4 : end]
        if first & 0x20:  # padding, allowed on the last packet only
            if end != len(view) or not body or not 0 < body[-1] <= len(body):
                raise RemoteProtocolError("RTCP: bad padding")
            body = body[: len(body) - body[-1]]
        parser = _PARSERS.get(packet_type)
        if parser is not None:
            out.append(parser(first & 0x1F, body))
        offset = end
    return out


def receiver_report_compound(ssrc: int, blocks: list[ReportBlock], cname: str) -> bytes:
    """An RR (several when over 31 blocks) followed by an SDES CNAME, as 6.1 requires."""
    reports = [
        bytes(ReceiverReport(ssrc, tuple(blocks[i : i + MAX_COUNT])))
        for i in range(0, max(len(blocks), 1), MAX_COUNT)
    ]
    return b"".join(reports) + bytes(SourceDescription.cname(ssrc, cname))


def sender_report_compound(report: SenderReport, cname: str) -> bytes:
    """An SR followed by an SDES CNAME (6.1)."""
    return bytes(report) + bytes(SourceDescription.cname(report.ssrc, cname))
