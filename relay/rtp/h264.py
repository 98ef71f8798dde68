"""H.264 over RTP (RFC 6184): depacketizer and packetizer for packetization modes 0 and 1
(single NAL unit 5.6, STAP-A 5.7.1, FU-A 5.8), and SDP fmtp parameters (8.1).

Interleaved mode (STAP-B, MTAP, FU-B) is not supported: such packets are counted and dropped.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import replace

from relay.codecs import h264
from relay.codecs.h264 import AUD, FU_A, IDR, PPS, SEI, SPS, STAP_A, VCL_TYPES
from relay.errors import RemoteProtocolError, UnsupportedError
from relay.media import Codec, Track
from relay.rtp.nal import (
    MAX_ACCESS_UNIT_SIZE,
    MAX_NALS_PER_ACCESS_UNIT,
    NalDepacketizer,
    NalPacketizer,
    NalUnit,
    nal_roles,
)
from relay.rtp.packet import RtpPacket

_INTERLEAVED_TYPES = frozenset((h264.STAP_B, h264.MTAP16, h264.MTAP24, h264.FU_B))

__all__ = ["H264Depacketizer", "H264Packetizer", "h264_fmtp", "h264_track"]

_ROLES = nal_roles(lambda b: b & 0x1F, AUD, SEI, VCL_TYPES, frozenset((IDR,)), (SPS, PPS))


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


class H264Depacketizer(NalDepacketizer):
    """Reassembles access units from RTP packets in sequence order.

    Args:
        track: the track as described by SDP; replaced when in-band parameter sets differ.

    Attributes:
        track: the current Track.
        dropped: access units dropped as incomplete or corrupt (loss, missing fragments,
            oversize, malformed aggregation, a bad in-band SPS, an oversized parameter set).
        oversized_parameter_sets: access units dropped for an in-band SPS or PPS over
            MAX_PARAMETER_SET_SIZE (65535 bytes: more than avcC can carry).
        waiting_for_keyframe: complete access units dropped before the first keyframe.
        unsupported: interleaved-mode packets (STAP-B, MTAP, FU-B) seen.
        bad: payloads that broke RFC 6184's rules (their access units are dropped).
    """

    def __init__(self, track: Track) -> None:
        super().__init__(
            track,
            _ROLES,
            2,
            h264.has_recovery_point,
            MAX_ACCESS_UNIT_SIZE,
            MAX_NALS_PER_ACCESS_UNIT,
        )
        params = track.parameter_sets
        self._sps: bytes | None = params[0] if len(params) == 2 else None
        self._pps: bytes | None = params[1] if len(params) == 2 else None
        self._dims = (track.width, track.height)

    def _opens_access_unit(self, payload: bytes | memoryview) -> bool:
        return _starts_access_unit(payload)

    def _consume(self, payload: bytes | memoryview) -> None:
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            if self._fu is not None:
                self._break()  # the fragmented NAL unit never got its end
            else:
                self._add(payload)
        elif kind == FU_A:
            if len(payload) < 2:
                self._malformed()
                return
            header = payload[1]
            start = bytearray(((payload[0] & 0xE0) | (header & 0x1F),)) if header & 0x80 else None
            self._fragment(start, payload[2:], header & 0x40)
        elif kind == STAP_A:
            self._aggregate(payload, 1, 0, 0, 1, 1)
        elif kind in _INTERLEAVED_TYPES:
            self.unsupported += 1
            self._break()
        # types 0, 30 and 31 are undefined: ignored (RFC 6184 5.4)

    def _update_parameter_sets(self, found: list[NalUnit | None]) -> bool:
        sps, pps, _ = found
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


class H264Packetizer(NalPacketizer):
    """Splits access units (their NAL units) into RTP packets (packetization mode 1).

    Takes the arguments of NalPacketizer: payload_type, ssrc, mtu (header included), sequence.
    """

    def packetize(self, nals: Sequence[NalUnit], timestamp: int) -> list[RtpPacket]:
        """RTP packets for one access unit (its non-empty NAL units); the marker is set on the last.

        Small neighbouring NAL units (SPS and PPS, say) go together in STAP-A packets, a NAL
        unit that fits goes alone, a larger one is cut into FU-A fragments.
        """
        limit = self.max_payload
        payloads: list[bytes] = []
        for group in self._groups(nals, 1, 2):
            if len(group) >= 2:
                header = max(n[0] & 0x60 for n in group) | STAP_A
                parts: list[NalUnit] = [bytes((header,))]
                for nal in group:
                    parts += (len(nal).to_bytes(2, "big"), nal)
                payloads.append(b"".join(parts))
                continue
            nal = group[0]
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
        return self._packets(payloads, timestamp)


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
