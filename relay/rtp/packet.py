"""RTP packets (RFC 3550 5.1 fixed header, 5.3.1 header extension, padding).

``RtpPacket.parse`` does not copy the payload: it is a ``memoryview`` slice of the datagram.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relay.errors import RemoteProtocolError

RTP_VERSION = 2
HEADER_SIZE = 12
_FIXED = struct.Struct(">BBHII")  # V P X CC | M PT | sequence | timestamp | SSRC
_EXTENSION = struct.Struct(">HH")  # profile-defined | length in 32-bit words

__all__ = ["HEADER_SIZE", "RtpPacket"]


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet.

    Attributes:
        marker: the M bit (end of an access unit for video payload formats).
        payload_type: 7-bit payload type.
        sequence: 16-bit sequence number.
        timestamp: 32-bit RTP timestamp.
        ssrc: synchronization source.
        payload: the payload, padding removed (a view into the parsed datagram).
        csrc: contributing sources.
        extension: header extension as (profile-defined 16 bits, data), data a multiple of 4 bytes.
        padding: number of padding octets, including the count octet itself; 0 for none.
    """

    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes | memoryview
    csrc: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RtpPacket:
        """Parses one RTP packet (a whole datagram or interleaved frame).

        Raises:
            RemoteProtocolError: too short, wrong version, or lengths past the end.
        """
        view = data if isinstance(data, memoryview) else memoryview(data)
        size = len(view)
        if size < HEADER_SIZE:
            raise RemoteProtocolError(f"RTP packet: {size} bytes, shorter than the header")
        first, second, sequence, timestamp, ssrc = _FIXED.unpack_from(view)
        if first == 0x80 and cls is RtpPacket:
            # The common case (no CSRC, extension or padding) skips the generic checks and the
            # frozen dataclass __init__ (one object.__setattr__ per field): half the cost.
            return _plain(second, sequence, timestamp, ssrc, view[HEADER_SIZE:])
        if first >> 6 != RTP_VERSION:
            raise RemoteProtocolError(f"RTP packet: version {first >> 6}")
        offset = HEADER_SIZE
        csrc: tuple[int, ...] = ()
        count = first & 0x0F
        if count:
            end = offset + 4 * count
            if end > size:
                raise RemoteProtocolError("RTP packet: CSRC list past the end")
            csrc = struct.unpack_from(f">{count}I", view, offset)
            offset = end
        extension = None
        if first & 0x10:
            if offset + 4 > size:
                raise RemoteProtocolError("RTP packet: header extension past the end")
            profile, words = _EXTENSION.unpack_from(view, offset)
            end = offset + 4 + 4 * words
            if end > size:
                raise RemoteProtocolError("RTP packet: header extension past the end")
            extension = (profile, bytes(view[offset + 4 : end]))
            offset = end
        padding = 0
        if first & 0x20:
            padding = view[size - 1]
            if padding == 0 or offset + padding > size:
                raise RemoteProtocolError(f"RTP packet: bad padding count {padding}")
        return cls(
            marker=bool(second & 0x80),
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=view[offset : size - padding],
            csrc=csrc,
            extension=extension,
            padding=padding,
        )

    def __bytes__(self) -> bytes:
        first = RTP_VERSION << 6 | len(self.csrc)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        parts: list[bytes | memoryview] = [
            _FIXED.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence,
                self.timestamp,
                self.ssrc,
            )
        ]
        if self.csrc:
            parts.append(struct.pack(f">{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            profile, ext = self.extension
            if len(ext) % 4:
                raise ValueError("RTP header extension data must be a multiple of 4 bytes")
            parts.append(_EXTENSION.pack(profile, len(ext) // 4))
            parts.append(ext)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


_new = object.__new__


def _slot_setter(name: str) -> Callable[[RtpPacket, Any], None]:
    """The slot descriptor's __set__, which skips the frozen dataclass __setattr__ (see _plain)."""
    setter: Callable[[RtpPacket, Any], None] = vars(RtpPacket)[name].__set__
    return setter


_set_marker = _slot_setter("marker")
_set_payload_type = _slot_setter("payload_type")
_set_sequence = _slot_setter("sequence")
_set_timestamp = _slot_setter("timestamp")
_set_ssrc = _slot_setter("ssrc")
_set_payload = _slot_setter("payload")
_set_csrc = _slot_setter("csrc")
_set_extension = _slot_setter("extension")
_set_padding = _slot_setter("padding")

def _plain(second: int, sequence: int, timestamp: int, ssrc: int, payload: memoryview
           ) -> RtpPacket:
    """An RtpPacket with no CSRC, extension or padding, built through the slot descriptors."""
    packet = _new(RtpPacket)
    _set_marker(packet, second >= 0x80)
    _set_payload_type(packet, second & 0x7F)
    _set_sequence(packet, sequence)
    _set_timestamp(packet, timestamp)
    _set_ssrc(packet, ssrc)
    _set_payload(packet, payload)
    _set_csrc(packet, ())
    _set_extension(packet, None)
    _set_padding(packet, 0)
    return packet
