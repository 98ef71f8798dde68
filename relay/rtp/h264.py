"""H.264 over RTP (RFC 6184): depacketizer and packetizer for packetization modes 0 and 1
(single NAL unit 5.6, STAP-A 5.7.1, FU-A 5.8), and SDP fmtp parameters (8.1).

Interleaved mode (STAP-B, MTAP, FU-B) is not supported: such packets are counted and dropped.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace

from relay.codecs import h264
from relay.codecs.h264 import AUD, FU_A, IDR, PPS, SEI, SPS, STAP_A, VCL_TYPES
from relay.errors import RemoteProtocolError, UnsupportedError
from relay.media import Codec, Frame, Track
from relay.rtp.packet import HEADER_SIZE, RtpPacket

MAX_ACCESS_UNIT_SIZE = 8 * 1024 * 1024
MAX_NALS_PER_ACCESS_UNIT = 4096
STALE_WINDOW = 1000
"""A packet this many sequence numbers behind the expected one is stale, not a restart."""
_INTERLEAVED_TYPES = frozenset((h264.STAP_B, h264.MTAP16, h264.MTAP24, h264.FU_B))

__all__ = ["H264Depacketizer", "H264Packetizer", "h264_fmtp", "h264_track"]


def _starts_with(nal_type: int, next_byte: int | None) -> bool:
    """Whether a NAL unit of this type (followed by ``next_byte``) can open an access unit."""
    if nal_type in (AUD, SPS, PPS, SEI):
        return True
    # a slice opens its picture when first_mb_in_slice == 0, i.e. its ue(v) code is a lone '1'
    return nal_type in VCL_TYPES and next_byte is not None and bool(next_byte & 0x80)


def _starts_access_unit(payload: bytes | memoryview) -> bool:
    """Whether an RTP payload begins with the first NAL unit of an access unit (7.4.1.2.3)."""
    size = len(payload)
    if size < 2:
        return False
    kind = payload[0] & 0x1F
    if kind == STAP_A:
        return size > 3 and _starts_with(payload[3] & 0x1F, payload[4] if size > 4 else None)
    if kind == FU_A:
        return size > 2 and bool(payload[1] & 0x80) and _starts_with(payload[1] & 0x1F, payload[2])
    return _starts_with(kind, payload[1])


class H264Depacketizer:
    """Reassembles access units from RTP packets in sequence order.

    Args:
        track: the track as described by SDP; replaced when in-band parameter sets differ.

    Attributes:
        track: the current Track.
        dropped: access units dropped as incomplete or corrupt (loss, missing fragments,
            oversize, malformed aggregation, a bad in-band SPS).
        waiting_for_keyframe: complete access units dropped before the first keyframe.
        unsupported: interleaved-mode packets (STAP-B, MTAP, FU-B) seen.
        late: packets dropped as older than ones already processed.
    """

    def __init__(self, track: Track) -> None:
        self.track = track
        self.dropped = 0
        self.waiting_for_keyframe = 0
        self.unsupported = 0
        self.late = 0
        self._expected: int | None = None
        self._ts: int | None = None
        self._nals: list[bytes | bytearray | memoryview] = []
        self._size = 0
        self._fu: bytearray | None = None
        self._broken = False
        self._have_keyframe = False
        params = track.parameter_sets
        self._sps: bytes | None = params[0] if len(params) == 2 else None
        self._pps: bytes | None = params[1] if len(params) == 2 else None
        self._dims = (track.width, track.height)

    def push(self, packet: RtpPacket) -> list[Frame]:
        """Takes the next packet; returns the access units it completes (usually 0 or 1)."""
        seq = packet.sequence
        gap = self._expected is None or seq != self._expected
        if self._expected is not None and 0 < (self._expected - seq) % 65536 <= STALE_WINDOW:
            self.late += 1
            return []
        self._expected = (seq + 1) % 65536
        out: list[Frame] = []
        if self._ts is not None and packet.timestamp != self._ts:
            # the previous access unit ended without its marker; after a loss it may lack its tail
            if gap:
                self._discard()
            else:
                self._finish(out)
        payload = packet.payload
        if self._ts is None:
            self._ts = packet.timestamp
            self._broken = gap and not _starts_access_unit(payload)
            if self._broken:
                self.dropped += 1
        elif gap:
            self._break()
        if not self._broken and payload:
            self._consume(payload)
        if packet.marker:
            self._finish(out)
        return out

    def _consume(self, payload: bytes | memoryview) -> None:
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            if self._fu is not None:
                self._break()  # the fragmented NAL unit never got its end
            else:
                self._add(payload)
        elif kind == STAP_A:
            self._consume_stap_a(payload)
        elif kind == FU_A:
            self._consume_fu_a(payload)
        elif kind in _INTERLEAVED_TYPES:
            self.unsupported += 1
            self._break()
        # types 0, 30 and 31 are undefined: ignored (RFC 6184 5.4)

    def _consume_stap_a(self, payload: bytes | memoryview) -> None:
        if self._fu is not None:
            self._break()
            return
        offset, end = 1, len(payload)
        nals = []
        while offset < end:
            if offset + 2 > end:
                self._break()
                return
            size = payload[offset] << 8 | payload[offset + 1]
            offset += 2
            if size == 0 or offset + size > end:
                self._break()
                return
            nals.append(payload[offset : offset + size])
            offset += size
        if not nals:
            self._break()
        for nal in nals:
            if not self._broken:
                self._add(nal)

    def _consume_fu_a(self, payload: bytes | memoryview) -> None:
        if len(payload) < 2:
            self._break()
            return
        header = payload[1]
        if header & 0x80:
            if self._fu is not None:
                self._break()
                return
            self._fu = bytearray(((payload[0] & 0xE0) | (header & 0x1F),))
        elif self._fu is None:
            self._break()  # a middle or end fragment whose start was not seen
            return
        self._fu += payload[2:]
        if self._size + len(self._fu) > MAX_ACCESS_UNIT_SIZE:
            self._break()
            return
        if header & 0x40:
            nal, self._fu = self._fu, None
            self._add(nal)

    def _add(self, nal: bytes | bytearray | memoryview) -> None:
        self._size += len(nal)
        if self._size > MAX_ACCESS_UNIT_SIZE or len(self._nals) >= MAX_NALS_PER_ACCESS_UNIT:
            self._break()
        else:
            self._nals.append(nal)

    def _break(self) -> None:
        """Marks the access unit being assembled as corrupt and frees what it held."""
        if not self._broken:
            self._broken = True
            self.dropped += 1
        self._nals = []
        self._fu = None
        self._size = 0

    def _reset(self) -> None:
        self._ts = None
        self._nals = []
        self._fu = None
        self._size = 0
        self._broken = False

    def _discard(self) -> None:
        if not self._broken and (self._nals or self._fu is not None):
            self.dropped += 1
        self._reset()

    def _finish(self, out: list[Frame]) -> None:
        if self._fu is not None:
            self._break()  # the access unit ended inside a fragmented NAL unit
        nals, timestamp, broken = self._nals, self._ts, self._broken
        self._reset()
        if broken or not nals or timestamp is None:
            return
        frame = self._frame(nals, timestamp)
        if frame is not None:
            out.append(frame)

    def _frame(self, nals: list[bytes | bytearray | memoryview], timestamp: int) -> Frame | None:
        keep: list[bytes | bytearray | memoryview] = []
        sps = pps = None
        key = has_slice = False
        for nal in nals:
            kind = nal[0] & 0x1F
            if kind == AUD:
                continue
            if kind == SPS:
                sps = nal
            elif kind == PPS:
                pps = nal
            elif kind in VCL_TYPES:
                has_slice = True
                key = key or kind == IDR
            keep.append(nal)
        if (sps is not None or pps is not None) and not self._update_parameter_sets(sps, pps):
            self.dropped += 1
            return None
        if not has_slice:
            return None  # parameter sets or SEI alone (some cameras send them with a marker)
        if key:
            params = self.track.parameter_sets
            if len(params) < 2:
                self.waiting_for_keyframe += 1
                return None
            if sps is None or pps is None:
                keep = [*params, *(n for n in keep if n[0] & 0x1F not in (SPS, PPS))]
            self._have_keyframe = True
        elif not self._have_keyframe:
            self.waiting_for_keyframe += 1
            return None
        return Frame(self.track, timestamp, timestamp, key, h264.to_annexb(keep))

    def _update_parameter_sets(
        self, sps: bytes | bytearray | memoryview | None, pps: bytes | bytearray | memoryview | None
    ) -> bool:
        if sps is not None and sps != self._sps:
            try:
                info = h264.parse_sps(sps)
            except RemoteProtocolError:
                return False
            self._sps = bytes(sps)
            self._dims = (info.width, info.height)
        if pps is not None:
            self._pps = bytes(pps)
        if self._sps and self._pps and (self._sps, self._pps) != self.track.parameter_sets:
            width, height = self._dims
            self.track = replace(
                self.track, parameter_sets=(self._sps, self._pps), width=width, height=height
            )
        return True


class H264Packetizer:
    """Splits Annex B access units into RTP packets (packetization mode 1).

    Args:
        payload_type: RTP payload type.
        ssrc: RTP SSRC.
        mtu: largest RTP packet to produce, header included.
        sequence: first sequence number.
    """

    def __init__(self, payload_type: int, ssrc: int, mtu: int = 1200, sequence: int = 0) -> None:
        if mtu < HEADER_SIZE + 16:
            raise ValueError(f"mtu {mtu} too small")
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.max_payload = mtu - HEADER_SIZE
        self.sequence = sequence % 65536

    def packetize(self, access_unit: bytes, timestamp: int) -> list[RtpPacket]:
        """RTP packets for one access unit; the marker is set on the last.

        Small neighbouring NAL units (SPS and PPS, say) go together in STAP-A packets, a NAL
        unit that fits goes alone, a larger one is cut into FU-A fragments.
        """
        nals = h264.split_annexb(access_unit)
        limit = self.max_payload
        payloads: list[bytes] = []
        i = 0
        while i < len(nals):
            j, size = i, 1
            while j < len(nals) and size + 2 + len(nals[j]) <= limit:
                size += 2 + len(nals[j])
                j += 1
            if j - i >= 2:
                group = nals[i:j]
                header = max(n[0] & 0x60 for n in group) | STAP_A
                parts: list[bytes | memoryview] = [bytes((header,))]
                for nal in group:
                    parts += (len(nal).to_bytes(2, "big"), nal)
                payloads.append(b"".join(parts))
                i = j
                continue
            nal = nals[i]
            i += 1
            if len(nal) <= limit:
                payloads.append(bytes(nal))
                continue
            indicator = (nal[0] & 0xE0) | FU_A
            body = nal[1:]
            step = limit - 2
            for offset in range(0, len(body), step):
                fu_header = nal[0] & 0x1F
                if offset == 0:
                    fu_header |= 0x80
                if offset + step >= len(body):
                    fu_header |= 0x40
                payloads.append(bytes((indicator, fu_header)) + body[offset : offset + step])
        packets = []
        for n, payload in enumerate(payloads):
            packets.append(
                RtpPacket(
                    marker=n == len(payloads) - 1,
                    payload_type=self.payload_type,
                    sequence=self.sequence,
                    timestamp=timestamp & 0xFFFFFFFF,
                    ssrc=self.ssrc,
                    payload=payload,
                )
            )
            self.sequence = (self.sequence + 1) % 65536
        return packets


def h264_track(index: int, clock_rate: int, fmtp: dict[str, str]) -> Track:
    """A Track from an SDP media description's fmtp parameters (RFC 6184 8.1).

    ``sprop-parameter-sets`` that do not decode are ignored: in-band parameter sets will do.

    Raises:
        UnsupportedError: packetization-mode 2 (interleaved).
    """
    params = {k.lower(): v for k, v in fmtp.items()}
    mode = params.get("packetization-mode", "0").strip()
    if mode not in ("0", "1"):
        raise UnsupportedError(f"H.264 packetization-mode {mode} is not supported")
    track = Track(index=index, codec=Codec.H264, clock_rate=clock_rate)
    sps = pps = None
    for item in params.get("sprop-parameter-sets", "").split(","):
        try:
            nal = base64.b64decode(item.strip(), validate=True)
        except (binascii.Error, ValueError):
            continue
        if nal and nal[0] & 0x1F == SPS and sps is None:
            sps = nal
        elif nal and nal[0] & 0x1F == PPS and pps is None:
            pps = nal
    if sps is None or pps is None:
        return track
    try:
        info = h264.parse_sps(sps)
    except RemoteProtocolError:
        return track
    return replace(track, parameter_sets=(sps, pps), width=info.width, height=info.height)


def h264_fmtp(track: Track) -> str:
    """The fmtp value describing ``track`` (packetization mode 1, its parameter sets)."""
    parts = ["packetization-mode=1"]
    if len(track.parameter_sets) >= 2:
        sps, pps = track.parameter_sets[:2]
        parts.append(f"profile-level-id={sps[1:4].hex().upper()}")
        sets = ",".join(base64.b64encode(p).decode() for p in (sps, pps))
        parts.append(f"sprop-parameter-sets={sets}")
    return ";".join(parts)
