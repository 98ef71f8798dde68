"""MPEG-4 audio as MP4A-LATM over RTP (RFC 6416 6.1, 7.3 and 7.4): depacketizer and packetizer.

Each RTP payload holds one or more audioMuxElements (ISO/IEC 14496-3 1.7.3); an element too big
for one packet is split, the marker set on the packet with its last fragment. With
``cpresent=0`` the StreamMuxConfig comes from SDP ``config=`` (hex) and elements are byte
aligned: PayloadLengthInfo (a run of 0xFF octets plus a last one) then the access unit, per
sub-frame. With ``cpresent=1`` each element starts with useSameStreamMux and may carry a new
StreamMuxConfig in-band, so the rest is read bit by bit. Supported: audioMuxVersion 0 and 1
(audioMuxVersionA 0), one program with one layer, allStreamsSameTimeFraming, frameLengthType 0
(byte lengths): what encoders and cameras send. The RTP timestamp is the first access unit's;
the ``numSubFrames + 1`` units of an element follow one frame length apart.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from relay.codecs.aac import (
    GA_OBJECT_TYPES,
    PS,
    SBR,
    AudioSpecificConfig,
    _read_object_type,
    _read_sample_rate,
)
from relay.codecs.bits import BitReader, BitWriter
from relay.errors import RemoteProtocolError, UnsupportedError
from relay.media import Codec, Frame, Track
from relay.rtp.packet import HEADER_SIZE, RtpPacket

MAX_CONFIG_SIZE = 256
MAX_ELEMENT_SIZE = 1 << 18
"""Bytes a fragmented audioMuxElement may reach (64 sub-frames of 8-channel AAC fit)."""
MAX_UNITS_PER_PAYLOAD = 256
"""Access units one payload may carry: four elements of the most sub-frames (64); senders put
one element in a packet. Each unit becomes a Frame, so this bounds the work per packet."""
_ER_OBJECT_TYPES = frozenset((17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 39))

__all__ = ["LatmDepacketizer", "LatmPacketizer", "StreamMuxConfig", "audio_mux_element",
           "latm_fmtp", "latm_track", "make"]


def _latm_value(r: BitReader) -> int:
    """LatmGetValue(): 2 bits of byte count minus one, then that many bytes."""
    value = 0
    for _ in range(r.u(2) + 1):
        value = value << 8 | r.u(8)
    return value


def _write_latm_value(w: BitWriter, value: int) -> None:
    size = max(1, (value.bit_length() + 7) // 8)
    if size > 4:
        raise ValueError(f"LatmGetValue cannot carry {value}")
    w.u(2, size - 1)
    w.u(8 * size, value)


def _skip_ga_specific_config(r: BitReader, object_type: int, channel_config: int) -> None:
    """Reads past GASpecificConfig (ISO/IEC 14496-3 4.4.1)."""
    r.skip(1)  # frameLengthFlag
    if r.flag():  # dependsOnCoreCoder
        r.skip(14)  # coreCoderDelay
    extension = r.flag()
    if channel_config == 0:
        raise UnsupportedError("LATM: AudioSpecificConfig with a program config element")
    if object_type in (6, 20):
        r.skip(3)  # layerNr
    if extension:
        if object_type == 22:
            r.skip(16)  # numOfSubFrame, layer_length
        if object_type in (17, 19, 20, 23):
            r.skip(3)  # the three resilience flags
        r.skip(1)  # extensionFlag3


def _asc_bits(r: BitReader) -> int:
    """Reads past one AudioSpecificConfig of unknown length (1.6.2.1); returns its bit count.

    Without a length there is no backward-compatible extension to look for (that needs
    bits_to_decode()), which is what audioMuxVersion 0 implies.
    """
    start = r.bits_left
    object_type = _read_object_type(r)
    _read_sample_rate(r)
    channel_config = r.u(4)
    if object_type in (SBR, PS):
        _read_sample_rate(r)
        object_type = _read_object_type(r)
        if object_type == 22:
            r.skip(4)
    if object_type not in GA_OBJECT_TYPES:
        raise UnsupportedError(f"LATM: audio object type {object_type}")
    _skip_ga_specific_config(r, object_type, channel_config)
    if object_type in _ER_OBJECT_TYPES and r.u(2) in (2, 3):  # epConfig
        raise UnsupportedError("LATM: error protection config")
    return start - r.bits_left


def _sync_extension_bits(r: BitReader) -> int:
    """Reads past an ASC's backward-compatible SBR/PS signalling (1.6.2.1) if one follows.

    audioMuxVersion 0 gives no ASC length, but senders (GStreamer) write the whole ASC of
    FFmpeg's encoder, sync extension included. Its 0x2b7 marker starts with frameLengthType 2,
    a reserved value, so finding it there is unambiguous.
    """
    if r.bits_left < 16 or r.peek(11) != 0x2B7:
        return 0
    start = r.bits_left
    r.skip(11)
    extension_type = _read_object_type(r)
    if extension_type == SBR:
        if r.flag():
            _read_sample_rate(r)
            if r.bits_left >= 12 and r.peek(11) == 0x548:
                r.skip(12)  # syncExtensionType, psPresentFlag
    elif extension_type == 22:
        if r.flag():
            _read_sample_rate(r)
        r.skip(4)
    return start - r.bits_left


def _take_bits(data: bytes | memoryview, start: int, count: int) -> bytes:
    """``count`` bits of ``data`` from bit ``start``, as bytes padded with zero bits."""
    r = BitReader(data, "LATM")
    r.skip(start)
    pad = -count % 8
    return (r.u(count) << pad).to_bytes((count + pad) // 8, "big")


@dataclass(frozen=True, slots=True)
class StreamMuxConfig:
    """StreamMuxConfig (ISO/IEC 14496-3 1.7.3.1) for one program with one layer.

    Attributes:
        audio_mux_version: 0 or 1 (audioMuxVersionA is always 0).
        num_sub_frames: access units per audioMuxElement, minus one.
        audio_config: the AudioSpecificConfig bytes (for version 0 the bits the parser walked,
            zero-padded to a byte; for version 1 the ascLen bits).
        latm_buffer_fullness: frameLengthType 0's buffer fullness (0xFF: variable rate).
        other_data_bits: length of the other data after each element's payloads, 0 if none.
        crc: crcCheckSum, or None.
        tara_buffer_fullness: version 1's taraBufferFullness.
    """

    audio_mux_version: int
    num_sub_frames: int
    audio_config: bytes
    latm_buffer_fullness: int = 0xFF
    other_data_bits: int = 0
    crc: int | None = None
    tara_buffer_fullness: int = 0xFF

    @property
    def asc(self) -> AudioSpecificConfig:
        return AudioSpecificConfig.parse(self.audio_config)

    @classmethod
    def parse(cls, data: bytes | memoryview) -> StreamMuxConfig:
        """Parses the config as SDP carries it (RFC 6416 7.3, ``config=``).

        Raises:
            RemoteProtocolError: truncated or malformed.
            UnsupportedError: a valid config this depacketizer cannot follow.
        """
        if not data or len(data) > MAX_CONFIG_SIZE:
            raise RemoteProtocolError(f"LATM config: {len(data)} bytes")
        return cls.read(BitReader(data, "LATM config"), data, lenient=True)

    @classmethod
    def from_hex(cls, text: str) -> StreamMuxConfig:
        """Parses the hex ``config=`` fmtp value.

        Raises:
            RemoteProtocolError: not hex, or not a valid config.
            UnsupportedError: a valid config this depacketizer cannot follow.
        """
        if len(text) > 2 * MAX_CONFIG_SIZE:
            raise RemoteProtocolError("LATM config: hex string too long")
        try:
            data = binascii.unhexlify(text.strip())
        except (binascii.Error, ValueError) as exc:
            raise RemoteProtocolError(f"LATM config: not hex: {text[:40]!r}") from exc
        return cls.parse(data)

    @classmethod
    def read(cls, r: BitReader, data: bytes | memoryview, lenient: bool = False) -> StreamMuxConfig:
        """Reads a config from ``r``, a reader over ``data`` (needed to copy the ASC bits).

        ``lenient`` accepts a config that stops after the ASC (defaults for the rest).
        """
        version = r.u(1)
        if version == 1 and r.u(1):
            raise UnsupportedError("LATM: audioMuxVersionA 1")
        tara = _latm_value(r) if version == 1 else 0xFF
        if not r.flag():
            raise UnsupportedError("LATM: allStreamsSameTimeFraming 0")
        num_sub_frames = r.u(6)
        if r.u(4) != 0:
            raise UnsupportedError("LATM: more than one program")
        if r.u(3) != 0:
            raise UnsupportedError("LATM: more than one layer")
        if version == 0:
            start = r.position
            length = _asc_bits(r)
            length += _sync_extension_bits(r)
        else:
            length = _latm_value(r)
            start = r.position
            if not 0 < length <= 8 * MAX_CONFIG_SIZE:
                raise RemoteProtocolError(f"LATM config: ascLen {length}")
            r.skip(length)
        asc = _take_bits(data, start, length)
        AudioSpecificConfig.parse(asc)  # validates
        if lenient and r.bits_left < 13:
            # GStreamer's rtpmp4apay ends the SDP config right after the ASC's last octet
            if r.bits_left >= 3 and r.u(3) != 0:
                raise UnsupportedError("LATM: frameLengthType other than 0")
            return cls(version, num_sub_frames, asc, tara_buffer_fullness=tara)
        if r.u(3) != 0:
            raise UnsupportedError("LATM: frameLengthType other than 0")
        fullness = r.u(8)
        other_bits = 0
        if r.flag():  # otherDataPresent
            if version == 1:
                other_bits = _latm_value(r)
            else:
                while True:
                    escape = r.flag()
                    other_bits = other_bits << 8 | r.u(8)
                    if not escape:
                        break
                    if other_bits > MAX_ELEMENT_SIZE * 8:
                        raise RemoteProtocolError("LATM config: otherDataLenBits too large")
        crc = r.u(8) if r.flag() else None
        return cls(version, num_sub_frames, asc, fullness, other_bits, crc, tara)

    def write(self, w: BitWriter) -> None:
        """Appends the config's bits to ``w``."""
        w.u(1, self.audio_mux_version)
        if self.audio_mux_version == 1:
            w.u(1, 0)
            _write_latm_value(w, self.tara_buffer_fullness)
        w.u(1, 1)  # allStreamsSameTimeFraming
        w.u(6, self.num_sub_frames)
        w.u(4, 0)  # numProgram
        w.u(3, 0)  # numLayer
        asc = self.audio_config
        if self.audio_mux_version == 0:
            r = BitReader(asc, "AAC config")
            length = _asc_bits(r) + _sync_extension_bits(r)
        else:
            length = 8 * len(asc)
            _write_latm_value(w, length)
        w.u(length, int.from_bytes(asc, "big") >> (8 * len(asc) - length))
        w.u(3, 0)  # frameLengthType
        w.u(8, self.latm_buffer_fullness)
        w.u(1, 1 if self.other_data_bits else 0)
        if self.other_data_bits:
            if self.audio_mux_version == 1:
                _write_latm_value(w, self.other_data_bits)
            else:
                chunks = self.other_data_bits.to_bytes(
                    max(1, (self.other_data_bits.bit_length() + 7) // 8), "big")
                for i, chunk in enumerate(chunks):
                    w.u(1, 1 if i < len(chunks) - 1 else 0)
                    w.u(8, chunk)
        w.u(1, 0 if self.crc is None else 1)
        if self.crc is not None:
            w.u(8, self.crc)

    def __bytes__(self) -> bytes:
        w = BitWriter()
        self.write(w)
        return bytes(w)

    def hex(self) -> str:
        return bytes(self).hex()


def latm_track(index: int, clock_rate: int, channels: int, config: StreamMuxConfig | None) -> Track:
    """An AAC Track for an MP4A-LATM stream (``audio_config`` empty while the config is unknown)."""
    if config is None:
        return Track(index, Codec.AAC, clock_rate, sample_rate=clock_rate, channels=channels)
    asc = config.asc
    return Track(index, Codec.AAC, clock_rate, audio_config=config.audio_config,
                 sample_rate=asc.sample_rate, channels=asc.channels or channels)


def _check_unit_count(units: list[bytes] | list[memoryview]) -> None:
    if len(units) > MAX_UNITS_PER_PAYLOAD:
        raise RemoteProtocolError(
            f"LATM: over {MAX_UNITS_PER_PAYLOAD} access units in one RTP payload "
            "(MAX_UNITS_PER_PAYLOAD)"
        )


def _length_info(size: int) -> bytes:
    return b"\xff" * (size // 255) + bytes((size % 255,))


def audio_mux_element(config: StreamMuxConfig, access_units: list[bytes],
                      mux_config_present: bool = False, send_config: bool = True) -> bytes:
    """One AudioMuxElement (1.7.3.1) carrying ``num_sub_frames + 1`` access units.

    Args:
        config: the stream's config.
        access_units: the units, as many as the config's sub-frames.
        mux_config_present: the ``cpresent=1`` form (useSameStreamMux first).
        send_config: with ``mux_config_present``, include the config (else useSameStreamMux).
    """
    if len(access_units) != config.num_sub_frames + 1:
        raise ValueError(f"{len(access_units)} units for {config.num_sub_frames + 1} sub-frames")
    if not mux_config_present and not config.other_data_bits:
        return b"".join(_length_info(len(au)) + au for au in access_units)
    w = BitWriter()
    if mux_config_present:
        w.u(1, 0 if send_config else 1)
        if send_config:
            config.write(w)
    for au in access_units:
        w.octets(_length_info(len(au)))
        w.octets(au)
    if config.other_data_bits:
        w.u(config.other_data_bits, 0)
    return bytes(w)


class LatmDepacketizer:
    """Reassembles audioMuxElements from RTP packets and hands on their access units.

    Args:
        track: the AAC Track (replaced when an in-band config changes it).
        config: the StreamMuxConfig from SDP; None with ``cpresent=1`` and no ``config=``.
        mux_config_present: True for ``cpresent=1`` (in-band configs).

    Attributes:
        track: the current Track.
        config: the current StreamMuxConfig (None until known).
        dropped: elements lost: partial ones after a gap, oversize, or before any config.
        bad: payloads holding a malformed element (their units are dropped).
    """

    def __init__(self, track: Track, config: StreamMuxConfig | None,
                 mux_config_present: bool) -> None:
        self.track = track
        self.config: StreamMuxConfig | None = None
        self._step = 0.0
        if config is not None:
            self._set_config(config)
        self.mux_config_present = mux_config_present
        self.dropped = 0
        self.bad = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._ts = 0
        self._skip_ts: int | None = None

    def push(self, packet: RtpPacket, lost: int = 0) -> list[Frame]:
        """Takes the next packet in sequence order, ``lost`` packets missing just before it
        (``SequenceCheck``); returns the access units of the elements it completes."""
        if lost and self._parts:
            self.dropped += 1
            self._skip_ts = self._ts  # the lost packets may hold this element's middle
            self._parts, self._size = [], 0
        ts = packet.timestamp
        if self._skip_ts is not None:
            if ts == self._skip_ts:
                return []
            self._skip_ts = None
        payload = packet.payload
        if self._parts and ts != self._ts:
            self.dropped += 1  # the previous element never got its marker
            self._parts, self._size = [], 0
        if not self._parts and packet.marker:
            return self._elements(payload, ts)
        if self._size + len(payload) > MAX_ELEMENT_SIZE:
            self.dropped += 1
            self._parts, self._size = [], 0
            self._skip_ts = None if packet.marker else ts
            return []
        if not self._parts:
            self._ts = ts
        self._parts.append(bytes(payload))
        self._size += len(payload)
        if not packet.marker:
            return []
        data = b"".join(self._parts)
        self._parts, self._size = [], 0
        return self._elements(data, ts)

    def _set_config(self, config: StreamMuxConfig) -> None:
        asc = config.asc
        self.config = config
        self._step = asc.frame_length * self.track.clock_rate / asc.sample_rate

    def _elements(self, data: bytes | memoryview, ts: int) -> list[Frame]:
        units: list[bytes] | list[memoryview]
        try:
            units = self._split_bits(data) if self.mux_config_present else self._split_bytes(data)
        except RemoteProtocolError:
            self.bad += 1
            return []
        if not units:
            return []
        step = self._step
        track = self.track
        return [
            Frame(track, t, t, True, bytes(au))
            for i, au in enumerate(units)
            for t in ((ts + round(i * step)) & 0xFFFFFFFF,)
        ]

    def _split_bytes(self, data: bytes | memoryview) -> list[memoryview]:
        """Access units of byte-aligned elements (cpresent=0)."""
        assert self.config is not None
        view = data if isinstance(data, memoryview) else memoryview(data)
        size = len(view)
        subframes = self.config.num_sub_frames + 1
        other = (self.config.other_data_bits + 7) // 8
        units: list[memoryview] = []
        pos = 0
        while pos < size:
            for _ in range(subframes):
                length = 0
                while True:
                    if pos >= size:
                        raise RemoteProtocolError("LATM: PayloadLengthInfo past the end")
                    octet = view[pos]
                    pos += 1
                    length += octet
                    if octet != 0xFF or pos + length > size:  # a run past the end stops early
                        break
                if length == 0 or pos + length > size:
                    raise RemoteProtocolError(f"LATM: {length}-byte access unit at {pos}/{size}")
                units.append(view[pos : pos + length])
                pos += length
            if pos + other > size:
                raise RemoteProtocolError("LATM: other data past the end")
            pos += other
            _check_unit_count(units)
        return units

    def _split_bits(self, data: bytes | memoryview) -> list[bytes]:
        """Access units of elements that may carry a config (cpresent=1)."""
        r = BitReader(data, "LATM element")
        units: list[bytes] = []
        while r.bits_left >= 8:
            if not r.flag():  # useSameStreamMux
                try:
                    config = StreamMuxConfig.read(r, data)
                except UnsupportedError as exc:
                    raise RemoteProtocolError(f"LATM in-band config: {exc}") from exc
                if config != self.config:
                    self._set_config(config)
                    self.track = latm_track(self.track.index, self.track.clock_rate,
                                            self.track.channels, config)
            if self.config is None:
                self.dropped += 1
                return []
            for _ in range(self.config.num_sub_frames + 1):
                length = 0
                while True:
                    octet = r.u(8)
                    length += octet
                    if octet != 0xFF or 8 * length > r.bits_left:  # a run past the end stops early
                        break
                if length == 0 or 8 * length > r.bits_left:
                    raise RemoteProtocolError(f"LATM: access unit of {length} bytes past the end")
                units.append(r.octets(length))
            r.skip(self.config.other_data_bits)
            r.skip(r.bits_left % 8)  # ByteAlign(): elements start on octets
            _check_unit_count(units)
        return units


class LatmPacketizer:
    """Sends access units as MP4A-LATM: one element per packet, split at ``max_payload``.

    Args:
        config: the StreamMuxConfig (``num_sub_frames + 1`` units go in each element).
        payload_type: the dynamic payload type.
        ssrc: the synchronization source.
        sequence: the first sequence number.
        mtu: largest RTP packet in bytes.
        mux_config_present: send ``cpresent=1`` elements, the config in every element.
    """

    def __init__(self, config: StreamMuxConfig, payload_type: int, ssrc: int, sequence: int = 0,
                 mtu: int = 1400, mux_config_present: bool = False) -> None:
        self.config = config
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.sequence = sequence & 0xFFFF
        self.max_payload = mtu - HEADER_SIZE
        self.mux_config_present = mux_config_present

    def packetize(self, access_units: list[bytes], timestamp: int) -> list[RtpPacket]:
        """Packets for one element of ``num_sub_frames + 1`` units starting at ``timestamp``."""
        element = audio_mux_element(self.config, access_units, self.mux_config_present)
        step = self.max_payload
        packets = []
        for offset in range(0, len(element), step):
            packets.append(RtpPacket(
                marker=offset + step >= len(element), payload_type=self.payload_type,
                sequence=self.sequence, timestamp=timestamp & 0xFFFFFFFF, ssrc=self.ssrc,
                payload=element[offset : offset + step],
            ))
            self.sequence = (self.sequence + 1) & 0xFFFF
        return packets


def latm_fmtp(config: StreamMuxConfig, mux_config_present: bool = False) -> str:
    """The fmtp value for a stream sent by LatmPacketizer (RFC 6416 7.3)."""
    if mux_config_present:
        return "profile-level-id=30;cpresent=1"
    return f"profile-level-id=30;cpresent=0;config={config.hex()}"


def make(index: int, clock_rate: int, channels: int, fmtp: dict[str, str]) -> LatmDepacketizer:
    """A depacketizer for an SDP ``MP4A-LATM`` media description (RFC 6416 7.3).

    ``cpresent`` defaults to 1 as the RFC says, except when ``config=`` is given: every
    sender seen (FFmpeg, GStreamer, live555) then means 0, and FFmpeg reads it so.

    Raises:
        RemoteProtocolError: ``cpresent`` not 0/1, ``cpresent=0`` without a valid ``config``.
        UnsupportedError: a config this depacketizer cannot follow (several programs...).
    """
    params = {k.lower(): v.strip() for k, v in fmtp.items()}
    text = params.get("config")
    cpresent = params.get("cpresent", "0" if text else "1")
    if cpresent not in ("0", "1"):
        raise RemoteProtocolError(f"SDP MP4A-LATM cpresent: {cpresent[:20]!r}")
    if cpresent == "0" and not text:
        raise RemoteProtocolError("SDP MP4A-LATM: cpresent=0 without config=")
    config = StreamMuxConfig.from_hex(text) if text else None
    track = latm_track(index, clock_rate, channels or 1, config)
    return LatmDepacketizer(track, config, cpresent == "1")

