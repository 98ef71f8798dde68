"""H.265/HEVC over RTP (RFC 7798): depacketizer and packetizer for single NAL unit packets (4.4.1),
aggregation packets (AP, 4.4.2) and fragmentation units (FU, 4.4.3), and SDP fmtp parameters (7.1).

DONL/DOND fields (present when ``sprop-max-don-diff`` > 0, 7.1) are skipped, not used to reorder:
NAL units are passed on in transmission order. PACI packets (4.4.4) are counted and dropped.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import replace

from relay.codecs import h265
from relay.codecs.h265 import AP, AUD, FU, PACI, PPS, SEI_PREFIX, SPS, VPS
from relay.errors import RemoteProtocolError
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

MAX_DON_DIFF = 32767  # RFC 7798 7.1: sprop-max-don-diff is 0..32767

__all__ = ["H265Depacketizer", "H265Packetizer", "h265_fmtp", "h265_track", "make"]

_ROLES = nal_roles(
    lambda b: b >> 1 & 0x3F,
    AUD,
    SEI_PREFIX,
    frozenset(range(32)),  # VCL types (7.4.2.2)
    frozenset(range(h265.IRAP_FIRST, h265.IRAP_LAST + 1)),
    (VPS, SPS, PPS),
)


def _is_vcl(kind: int) -> bool:
    return kind < 32


def _starts_with(kind: int, next_byte: int | None) -> bool:
    """Whether a NAL unit of this type (with ``next_byte`` after its header) can open an access
    unit (7.4.2.4.4)."""
    if kind in (AUD, VPS, SPS, PPS, SEI_PREFIX):
        return True
    # a slice segment opens its picture when first_slice_segment_in_pic_flag, its first bit, is 1
    return _is_vcl(kind) and next_byte is not None and bool(next_byte & 0x80)


def _has_recovery_point(sei: NalUnit) -> bool:
    return h265.has_recovery_point(sei, 2)


def _at(payload: bytes | memoryview, index: int) -> int | None:
    return payload[index] if index < len(payload) else None


def _starts_access_unit(payload: bytes | memoryview, donl: int) -> bool:
    """Whether an RTP payload begins with the first NAL unit of an access unit."""
    if len(payload) < 3:
        return False
    kind = (payload[0] >> 1) & 0x3F
    if kind == AP:
        first = 4 + donl  # PayloadHdr, DONL, NALU size
        return len(payload) > first + 1 and _starts_with(
            (payload[first] >> 1) & 0x3F, _at(payload, first + 2)
        )
    if kind == FU:
        header = payload[2]
        return bool(header & 0x80) and _starts_with(header & 0x3F, _at(payload, 3 + donl))
    return _starts_with(kind, _at(payload, 2 + donl))


class H265Depacketizer(NalDepacketizer):
    """Reassembles access units from RTP packets in sequence order.

    Args:
        track: the track as described by SDP; replaced when in-band parameter sets differ.
        donl: True when the packets carry DONL/DOND fields (``sprop-max-don-diff`` > 0).

    Attributes:
        track: the current Track.
        dropped: access units dropped as incomplete or corrupt (loss, missing fragments,
            oversize, malformed aggregation, a bad in-band SPS, a PACI packet, an oversized
            parameter set).
        oversized_parameter_sets: access units dropped for an in-band VPS, SPS or PPS over
            relay.codecs.h265.MAX_PARAMETER_SET_SIZE (4096 bytes).
        waiting_for_keyframe: complete access units dropped before the first keyframe.
        unsupported: PACI packets seen.
        bad: payloads that broke RFC 7798's rules (their access units are dropped).
    """

    def __init__(self, track: Track, *, donl: bool = False) -> None:
        super().__init__(
            track,
            _ROLES,
            3,
            _has_recovery_point,
            MAX_ACCESS_UNIT_SIZE,
            MAX_NALS_PER_ACCESS_UNIT,
            h265.MAX_PARAMETER_SET_SIZE,  # what hvcC is built from (relay.codecs.h265)
        )
        self._donl = 2 if donl else 0
        params = track.parameter_sets
        has_params = len(params) == 3
        self._vps: bytes | None = params[0] if has_params else None
        self._sps: bytes | None = params[1] if has_params else None
        self._pps: bytes | None = params[2] if has_params else None
        self._dims = (track.width, track.height)

    def _opens_access_unit(self, payload: bytes | memoryview) -> bool:
        return _starts_access_unit(payload, self._donl)

    def _consume(self, payload: bytes | memoryview) -> None:
        if len(payload) < 2:
            self._malformed()  # shorter than the payload header
            return
        kind = (payload[0] >> 1) & 0x3F
        if kind < AP:
            if self._fu is not None:
                self._break()  # the fragmented NAL unit never got its end
            elif self._donl:
                if len(payload) < 2 + self._donl:
                    self._malformed()
                else:
                    self._add(bytes(payload[:2]) + payload[2 + self._donl :])
            else:
                self._add(payload)
        elif kind == FU:
            if len(payload) < 3:
                self._malformed()  # no FU header
                return
            header = payload[2]
            end = header & 0x40
            if not header & 0x80:
                self._fragment(None, payload[3:], end)
            elif end or len(payload) < 3 + self._donl:
                self._malformed()  # S and E both set is forbidden (4.4.3), or no room for DONL
            else:
                start = bytearray(((payload[0] & 0x81) | (header & 0x3F) << 1, payload[1]))
                self._fragment(start, payload[3 + self._donl :], end)
        elif kind == AP:
            # DONL before the first unit, one-byte DOND before the others; at least two (4.4.2)
            self._aggregate(payload, 2, self._donl, self._donl // 2, 2, 2)
        elif kind == PACI:
            self.unsupported += 1
            self._break()
        # types 51..63 are unspecified: ignored (RFC 7798 4.4)

    def _update_parameter_sets(self, found: list[NalUnit | None]) -> bool:
        vps, sps, pps = found
        new_vps = self._vps if vps is None else bytes(vps)
        new_sps = self._sps if sps is None else bytes(sps)
        new_pps = self._pps if pps is None else bytes(pps)
        dims = self._dims
        if new_sps is not None and new_sps != self._sps:
            try:
                info = h265.parse_sps(new_sps)
            except RemoteProtocolError:
                return False
            dims = (info.width, info.height)
        if new_vps is not None and new_sps is not None and new_pps is not None:
            params = (new_vps, new_sps, new_pps)
            if params != self.track.parameter_sets:
                try:  # a Track's parameter sets always make an hvcC (RTMP and MP4 need one)
                    h265.hevc_decoder_configuration(*params)
                except RemoteProtocolError:
                    return False
                self.track = replace(
                    self.track, parameter_sets=params, width=dims[0], height=dims[1]
                )
        self._vps, self._sps, self._pps, self._dims = new_vps, new_sps, new_pps, dims
        return True


class H265Packetizer(NalPacketizer):
    """Splits access units (their NAL units) into RTP packets.

    Args:
        payload_type: RTP payload type.
        ssrc: RTP SSRC.
        mtu: largest RTP packet to produce, header included.
        sequence: first sequence number.
        donl: write DONL/DOND fields (for a session that signals ``sprop-max-don-diff`` > 0);
            decoding order numbers then simply count NAL units.
    """

    def __init__(
        self,
        payload_type: int,
        ssrc: int,
        mtu: int = 1200,
        sequence: int = 0,
        *,
        donl: bool = False,
    ) -> None:
        super().__init__(payload_type, ssrc, mtu, sequence)
        self.donl = donl
        self._don = 0

    def packetize(self, access_unit: Sequence[NalUnit], timestamp: int) -> list[RtpPacket]:
        """RTP packets for one access unit (its NAL units); the marker is set on the last.

        Small neighbouring NAL units (VPS, SPS and PPS, say) go together in aggregation packets,
        a NAL unit that fits goes alone, a larger one is cut into fragmentation units.
        """
        nals = [n for n in access_unit if len(n) >= 2]
        limit = self.max_payload
        donl = 2 if self.donl else 0
        dond = 1 if self.donl else 0
        payloads: list[bytes] = []
        for group in self._groups(nals, 2 + donl - dond, dond + 2):
            if len(group) >= 2:
                # F is set if any unit's is, LayerId and TID are the lowest ones (4.4.2)
                forbidden = max(n[0] & 0x80 for n in group)
                layer = min((n[0] & 1) << 5 | n[1] >> 3 for n in group)
                tid = min(n[1] & 7 for n in group)
                header = bytes((forbidden | AP << 1 | layer >> 5, (layer & 31) << 3 | tid))
                parts: list[NalUnit] = [header]
                for n, nal in enumerate(group):
                    if donl:
                        parts.append(self._don_field(n == 0))
                    parts += (len(nal).to_bytes(2, "big"), nal)
                payloads.append(b"".join(parts))
                continue
            nal = group[0]
            if len(nal) + donl <= limit:
                payloads.append(bytes(nal[:2]) + self._don_field(True) + nal[2:])
                continue
            header = bytes(((nal[0] & 0x81) | FU << 1, nal[1]))
            kind = (nal[0] >> 1) & 0x3F
            body = nal[2:]
            offset = 0
            while offset < len(body):
                fu_header = kind
                first = offset == 0
                step = limit - 3 - (donl if first else 0)
                if first:
                    fu_header |= 0x80
                if offset + step >= len(body):
                    fu_header |= 0x40
                don = self._don_field(True) if first else b""
                chunk = body[offset : offset + step]
                payloads.append(header + bytes((fu_header,)) + don + chunk)
                offset += step
        return self._packets(payloads, timestamp)

    def _don_field(self, full: bool) -> bytes:
        """The next NAL unit's DONL (``full``) or DOND (0: the previous DON plus one)."""
        if not self.donl:
            return b""
        self._don = (self._don + 1) % 65536
        return self._don.to_bytes(2, "big") if full else b"\x00"


def h265_track(index: int, clock_rate: int, fmtp: dict[str, str]) -> Track:
    """A Track from an SDP media description's fmtp parameters (RFC 7798 7.1).

    ``sprop-vps``/``sprop-sps``/``sprop-pps`` that do not decode are ignored: in-band parameter
    sets will do.
    """
    params = {k.lower(): v for k, v in fmtp.items()}
    track = Track(index=index, codec=Codec.H265, clock_rate=clock_rate)
    found: list[bytes] = []
    for name, kind in (("sprop-vps", VPS), ("sprop-sps", SPS), ("sprop-pps", PPS)):
        for item in params.get(name, "").split(","):
            try:
                nal = base64.b64decode(item.strip(), validate=True)
            except (binascii.Error, ValueError):
                continue
            if len(nal) > 2 and (nal[0] >> 1) & 0x3F == kind:
                found.append(nal)
                break
    if len(found) != 3:
        return track
    try:
        info = h265.parse_sps(found[1])
        h265.hevc_decoder_configuration(*found)
    except RemoteProtocolError:
        return track
    return replace(track, parameter_sets=tuple(found), width=info.width, height=info.height)


def h265_fmtp(track: Track) -> str:
    """The fmtp value describing ``track`` (profile, tier and level, its parameter sets)."""
    if len(track.parameter_sets) < 3:
        return ""
    vps, sps, pps = track.parameter_sets[:3]
    parts = []
    try:
        ptl = h265.parse_sps(sps).ptl
    except RemoteProtocolError:
        pass
    else:
        parts += [
            f"profile-space={ptl.profile_space}",
            f"profile-id={ptl.profile_idc}",
            f"tier-flag={int(ptl.tier_flag)}",
            f"level-id={ptl.level_idc}",
        ]
    for name, nal in (("sprop-vps", vps), ("sprop-sps", sps), ("sprop-pps", pps)):
        parts.append(f"{name}={base64.b64encode(nal).decode()}")
    return ";".join(parts)


def _max_don_diff(fmtp: dict[str, str]) -> int:
    value = fmtp.get("sprop-max-don-diff", "0").strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 5 or int(value) > MAX_DON_DIFF:
        raise RemoteProtocolError(f"H.265 fmtp: bad sprop-max-don-diff {value[:16]!r}")
    return int(value)


def make(index: int, clock_rate: int, channels: int, fmtp: dict[str, str]) -> H265Depacketizer:
    """The depacketizer for an SDP ``H265/90000`` media description (registry factory).

    Raises:
        RemoteProtocolError: sprop-max-don-diff is not a number in 0..32767.
    """
    params = {k.lower(): v for k, v in fmtp.items()}
    donl = _max_don_diff(params) > 0
    return H265Depacketizer(h265_track(index, clock_rate, params), donl=donl)
