"""AAC over RTP as mpeg4-generic (RFC 3640): AU header section (3.2.1), several access units per
packet (3.2.3.1) and fragmented access units (3.2.3.2); mode=AAC-hbr by default (3.3.6).

Interleaving is followed for timestamps (AU-Index-delta), not reordered: access units are handed
on in packet order, as every camera sends them.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.codecs.aac import AudioSpecificConfig
from relay.codecs.bits import BitReader
from relay.errors import RemoteProtocolError, UnsupportedError
from relay.media import Codec, Frame, Track
from relay.rtp.packet import HEADER_SIZE, RtpPacket

MAX_ACCESS_UNIT_SIZE = 65536
MAX_FIELD_BITS = 32
MAX_UNITS_PER_PACKET = 256
"""AU headers one packet may carry. AAC-hbr senders put a handful in a packet; a hostile fmtp
(sizeLength=1, no index) would make each bit a header and a Frame, 65535 of them a packet."""
HBR_SIZE_LENGTH, HBR_INDEX_LENGTH, HBR_INDEX_DELTA_LENGTH = 13, 3, 3

__all__ = ["AacDepacketizer", "AacPacketizer", "AuHeaderFormat", "aac_fmtp", "aac_track"]


def _lower(fmtp: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v.strip() for k, v in fmtp.items()}


@dataclass(frozen=True, slots=True)
class AuHeaderFormat:
    """Field sizes of the AU header section, in bits, from fmtp (RFC 3640 4.1)."""

    size_length: int = HBR_SIZE_LENGTH
    index_length: int = HBR_INDEX_LENGTH
    index_delta_length: int = HBR_INDEX_DELTA_LENGTH
    cts_delta_length: int = 0
    dts_delta_length: int = 0
    random_access_indication: bool = False
    stream_state_indication: int = 0
    auxiliary_data_size_length: int = 0

    @classmethod
    def from_fmtp(cls, fmtp: dict[str, str]) -> AuHeaderFormat:
        """Reads the sizes; absent ones are 0 (RFC 3640 4.1), all absent means AAC-hbr.

        Raises:
            RemoteProtocolError: a value that is not a number from 0 to 32.
        """
        params = _lower(fmtp)
        names = (
            "sizelength",
            "indexlength",
            "indexdeltalength",
            "ctsdeltalength",
            "dtsdeltalength",
            "randomaccessindication",
            "streamstateindication",
            "auxiliarydatasizelength",
        )
        if not any(name in params for name in names):
            return cls()
        values = []
        for name in names:
            text = params.get(name, "0")
            if not text.isdigit() or int(text) > MAX_FIELD_BITS:
                raise RemoteProtocolError(f"SDP fmtp {name}: {text[:20]!r} is not 0..32")
            values.append(int(text))
        return cls(
            values[0],
            values[1],
            values[2],
            values[3],
            values[4],
            bool(values[5]),
            values[6],
            values[7],
        )

    @property
    def has_headers(self) -> bool:
        return bool(
            self.size_length
            or self.index_length
            or self.index_delta_length
            or self.cts_delta_length
            or self.dts_delta_length
            or self.random_access_indication
            or self.stream_state_indication
        )


class AacDepacketizer:
    """Turns mpeg4-generic RTP packets into AAC access units (one Frame each).

    Args:
        track: the AAC track (``audio_config`` gives the frame length, 1024 or 960).
        fmtp: the SDP fmtp parameters (sizelength, indexlength, ...).

    Attributes:
        track: the Track (constant for AAC).
        dropped: access units lost to gaps, malformed packets or size limits.
        bad: payloads whose AU header section breaks RFC 3640 (their units are dropped).
    """

    def __init__(self, track: Track, fmtp: dict[str, str]) -> None:
        self.track = track
        self.format = AuHeaderFormat.from_fmtp(fmtp)
        self.frame_length = 1024
        if track.audio_config:
            try:
                self.frame_length = AudioSpecificConfig.parse(track.audio_config).frame_length
            except RemoteProtocolError:
                pass
        self.dropped = 0
        self.bad = 0
        self._fragment: bytearray | None = None
        self._fragment_size = 0
        self._fragment_ts = 0
        self._dropped_ts: int | None = None

    def push(self, packet: RtpPacket, lost: int = 0) -> list[Frame]:
        """Takes the next packet in sequence order, ``lost`` packets missing just before it
        (``SequenceCheck``); returns the access units it completes."""
        if lost and self._fragment is not None:
            self._drop_fragment()
        try:
            units = self._parse(packet.payload)
        except RemoteProtocolError:
            self.bad += 1
            self.dropped += 1
            if self._fragment is not None:
                self._drop_fragment()
            return []
        if self._fragment is not None:
            if self._continues_fragment(packet, units):
                return self._continue_fragment(packet, units[0][2])
            self._drop_fragment()
        if len(units) == 1 and units[0][0] > len(units[0][2]):
            size, _, data = units[0]
            if packet.marker or size > MAX_ACCESS_UNIT_SIZE:
                # the last fragment of an AU whose start was lost, or too big to collect
                self._count_drop(packet.timestamp)
                return []
            self._fragment = bytearray(data)
            self._fragment_size = size
            self._fragment_ts = packet.timestamp
            return []
        frames = []
        for _, offset, data in units:
            ts = (packet.timestamp + offset * self.frame_length) & 0xFFFFFFFF
            frames.append(Frame(self.track, ts, ts, True, bytes(data)))
        return frames

    def _drop_fragment(self) -> None:
        self._fragment = None
        self._count_drop(self._fragment_ts)

    def _count_drop(self, timestamp: int) -> None:
        """Counts a lost AU once, however many of its fragments are thrown away."""
        if timestamp != self._dropped_ts:
            self.dropped += 1
            self._dropped_ts = timestamp

    def _continues_fragment(
        self, packet: RtpPacket, units: list[tuple[int, int, memoryview]]
    ) -> bool:
        assert self._fragment is not None
        return (
            len(units) == 1
            and units[0][0] == self._fragment_size
            and packet.timestamp == self._fragment_ts
            and len(self._fragment) + len(units[0][2]) <= self._fragment_size
        )

    def _continue_fragment(self, packet: RtpPacket, data: memoryview) -> list[Frame]:
        assert self._fragment is not None
        self._fragment += data
        if len(self._fragment) < self._fragment_size:
            if packet.marker:
                self._drop_fragment()  # ended short
            return []
        whole, self._fragment = bytes(self._fragment), None
        return [Frame(self.track, packet.timestamp, packet.timestamp, True, whole)]

    def _parse(self, payload: bytes | memoryview) -> list[tuple[int, int, memoryview]]:
        """(AU-size, index offset from the first AU, data) for each AU header in ``payload``.

        The data of the last AU may be shorter than its size (a fragment).
        """
        view = payload if isinstance(payload, memoryview) else memoryview(payload)
        fmt = self.format
        if not fmt.has_headers:
            return [(len(view), 0, view)] if view else []
        if len(view) < 2:
            raise RemoteProtocolError("RFC 3640: no AU-headers-length")
        header_bits = view[0] << 8 | view[1]
        header_bytes = (header_bits + 7) // 8
        if 2 + header_bytes > len(view):
            raise RemoteProtocolError("RFC 3640: AU headers past the end of the packet")
        reader = BitReader(view[2 : 2 + header_bytes], "RFC 3640 AU header")
        headers: list[tuple[int, int]] = []
        index = 0
        consumed = 0
        while consumed < header_bits:
            start = reader.bits_left
            size = reader.u(fmt.size_length)
            if headers:
                index += reader.u(fmt.index_delta_length) + 1
            else:
                reader.u(fmt.index_length)
            if fmt.cts_delta_length and reader.flag():
                reader.u(fmt.cts_delta_length)
            if fmt.dts_delta_length and reader.flag():
                reader.u(fmt.dts_delta_length)
            if fmt.random_access_indication:
                reader.u(1)
            reader.u(fmt.stream_state_indication)
            used = start - reader.bits_left
            consumed += used
            if used == 0 or consumed > header_bits:
                raise RemoteProtocolError("RFC 3640: AU header overruns AU-headers-length")
            if len(headers) == MAX_UNITS_PER_PACKET:
                raise RemoteProtocolError(
                    f"RFC 3640: over {MAX_UNITS_PER_PACKET} AU headers in a packet "
                    "(MAX_UNITS_PER_PACKET)"
                )
            headers.append((size, index))
        offset = 2 + header_bytes
        if fmt.auxiliary_data_size_length:
            if offset + (fmt.auxiliary_data_size_length + 7) // 8 > len(view):
                raise RemoteProtocolError("RFC 3640: auxiliary section past the end")
            aux = BitReader(view[offset:], "RFC 3640 auxiliary section")
            aux_bits = aux.u(fmt.auxiliary_data_size_length)
            offset += (fmt.auxiliary_data_size_length + aux_bits + 7) // 8
        if not fmt.size_length:
            if len(headers) != 1:
                raise RemoteProtocolError("RFC 3640: several AUs without AU-size")
            return [(len(view) - offset, 0, view[offset:])] if offset <= len(view) else []
        units = []
        for size, index in headers:
            if size > MAX_ACCESS_UNIT_SIZE:
                raise RemoteProtocolError(f"RFC 3640: AU-size {size} over {MAX_ACCESS_UNIT_SIZE}")
            data = view[offset : offset + size]
            offset += size
            if len(data) < size and len(headers) > 1:
                raise RemoteProtocolError("RFC 3640: AU data past the end of the packet")
            units.append((size, index, data))
        return units


class AacPacketizer:
    """Puts AAC access units in mpeg4-generic AAC-hbr RTP packets.

    Args:
        payload_type: RTP payload type.
        ssrc: RTP SSRC.
        mtu: largest RTP packet to produce, header included.
        sequence: first sequence number.
        frame_length: samples per access unit (RTP timestamp step between AUs).
    """

    def __init__(
        self,
        payload_type: int,
        ssrc: int,
        mtu: int = 1200,
        sequence: int = 0,
        frame_length: int = 1024,
    ) -> None:
        if mtu < HEADER_SIZE + 16:
            raise ValueError(f"mtu {mtu} too small")
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.max_payload = mtu - HEADER_SIZE
        self.sequence = sequence % 65536
        self.frame_length = frame_length

    def _packet(self, payload: bytes, timestamp: int, marker: bool = True) -> RtpPacket:
        packet = RtpPacket(
            marker=marker,
            payload_type=self.payload_type,
            sequence=self.sequence,
            timestamp=timestamp & 0xFFFFFFFF,
            ssrc=self.ssrc,
            payload=payload,
        )
        self.sequence = (self.sequence + 1) % 65536
        return packet

    def packetize(self, access_units: list[bytes], timestamp: int) -> list[RtpPacket]:
        """RTP packets for consecutive access units, the first at ``timestamp``.

        Raises:
            ValueError: an access unit over 8191 bytes (the 13-bit AU-size) or empty.
        """
        packets: list[RtpPacket] = []
        group: list[bytes] = []
        group_ts = timestamp
        used = 2

        def flush() -> None:
            if group:
                headers = b"".join((len(au) << 3).to_bytes(2, "big") for au in group)
                length = (16 * len(group)).to_bytes(2, "big")
                packets.append(self._packet(length + headers + b"".join(group), group_ts))
                group.clear()

        for n, au in enumerate(access_units):
            if not 0 < len(au) < 1 << HBR_SIZE_LENGTH:
                raise ValueError(f"AAC access unit of {len(au)} bytes")
            ts = timestamp + n * self.frame_length
            if used + 2 + len(au) > self.max_payload:
                flush()
                used = 2
            if 4 + len(au) > self.max_payload:  # alone it does not fit either: fragment it
                header = b"\x00\x10" + (len(au) << 3).to_bytes(2, "big")
                step = self.max_payload - 4
                for offset in range(0, len(au), step):
                    last = offset + step >= len(au)
                    packets.append(self._packet(header + au[offset : offset + step], ts, last))
                continue
            if not group:
                group_ts = ts
            group.append(au)
            used += 2 + len(au)
        flush()
        return packets


def aac_track(index: int, clock_rate: int, channels: int, fmtp: dict[str, str]) -> Track:
    """A Track from an SDP mpeg4-generic media description (RFC 3640 4.1).

    Raises:
        RemoteProtocolError: ``config`` is missing or not a valid AudioSpecificConfig.
        UnsupportedError: a mode other than AAC (CELP, generic...).
    """
    params = _lower(fmtp)
    mode = params.get("mode", "AAC-hbr")
    if not mode.lower().startswith("aac"):
        raise UnsupportedError(f"codec mpeg4-generic mode={mode} is not supported")
    if "config" not in params:
        raise RemoteProtocolError("SDP mpeg4-generic: no config= parameter")
    config = AudioSpecificConfig.from_hex(params["config"])
    return Track(
        index=index,
        codec=Codec.AAC,
        clock_rate=clock_rate,
        audio_config=bytes(config),
        sample_rate=config.sample_rate,
        channels=config.channels or channels,
    )


def aac_fmtp(track: Track) -> str:
    """The fmtp value for ``track`` as AacPacketizer sends it (AAC-hbr)."""
    return (
        "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;"
        f"indexdeltalength=3;config={track.audio_config.hex()}"
    )
