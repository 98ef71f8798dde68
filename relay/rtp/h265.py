"""H.265/HEVC over RTP (RFC 7798): depacketizer and packetizer for single NAL unit packets (4.4.1),
aggregation packets (AP, 4.4.2) and fragmentation units (FU, 4.4.3), and SDP fmtp parameters (7.1).

DONL/DOND fields (present when ``sprop-max-don-diff`` > 0, 7.1) are skipped, not used to reorder:
NAL units are passed on in transmission order. PACI packets (4.4.4) are counted and dropped.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace

from relay.codecs import h265
from relay.codecs.h265 import AP, AUD, FU, PACI, PPS, SEI_PREFIX, SPS, VPS
from relay.errors import RemoteProtocolError
from relay.media import Codec, Frame, Track
from relay.rtp.packet import HEADER_SIZE, RtpPacket

MAX_ACCESS_UNIT_SIZE = 8 * 1024 * 1024
MAX_NALS_PER_ACCESS_UNIT = 4096
MAX_DON_DIFF = 32767  # RFC 7798 7.1: sprop-max-don-diff is 0..32767
STALE_WINDOW = 1000
"""A packet this many sequence numbers behind the expected one is stale, not a restart."""

__all__ = ["H265Depacketizer", "H265Packetizer", "h265_fmtp", "h265_track", "make"]

NalUnit = bytes | bytearray | memoryview


def _is_vcl(kind: int) -> bool:
    return kind < 32


def _starts_with(kind: int, next_byte: int | None) -> bool:
    """Whether a NAL unit of this type (with ``next_byte`` after its header) can open an access
    unit (7.4.2.4.4)."""
    if kind in (AUD, VPS, SPS, PPS, SEI_PREFIX):
        return True
    # a slice segment opens its picture when first_slice_segment_in_pic_flag, its first bit, is 1
    return _is_vcl(kind) and next_byte is not None and bool(next_byte & 0x80)


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


class H265Depacketizer:
    """Reassembles access units from RTP packets in sequence order.

    Args:
        track: the track as described by SDP; replaced when in-band parameter sets differ.
        donl: True when the packets carry DONL/DOND fields (``sprop-max-don-diff`` > 0).

    Attributes:
        track: the current Track.
        dropped: access units dropped as incomplete or corrupt (loss, missing fragments,
            oversize, malformed aggregation, a bad in-band SPS, a PACI packet).
        waiting_for_keyframe: complete access units dropped before the first keyframe.
        unsupported: PACI packets seen.
        late: packets dropped as older than ones already processed.
    """

    def __init__(self, track: Track, *, donl: bool = False) -> None:
        self.track = track
        self.dropped = 0
        self.waiting_for_keyframe = 0
        self.unsupported = 0
        self.late = 0
        self._donl = 2 if donl else 0
        self._expected: int | None = None
        self._ts: int | None = None
        self._nals: list[NalUnit] = []
        self._size = 0
        self._fu: bytearray | None = None
        self._broken = False
        self._have_keyframe = False
        params = track.parameter_sets
        has_params = len(params) == 3
        self._vps: bytes | None = params[0] if has_params else None
        self._sps: bytes | None = params[1] if has_params else None
        self._pps: bytes | None = params[2] if has_params else None
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
            self._broken = gap and not _starts_access_unit(payload, self._donl)
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
        if len(payload) < 2:
            self._break()  # shorter than the payload header
            return
        kind = (payload[0] >> 1) & 0x3F
        if kind < AP:
            if self._fu is not None:
                self._break()  # the fragmented NAL unit never got its end
            elif self._donl:
                if len(payload) < 2 + self._donl:
                    self._break()
                else:
                    self._add(bytes(payload[:2]) + payload[2 + self._donl :])
            else:
                self._add(payload)
        elif kind == AP:
            self._consume_ap(payload)
        elif kind == FU:
            self._consume_fu(payload)
        elif kind == PACI:
            self.unsupported += 1
            self._break()
        # types 51..63 are unspecified: ignored (RFC 7798 4.4)

    def _consume_ap(self, payload: bytes | memoryview) -> None:
        if self._fu is not None:
            self._break()
            return
        offset, end = 2, len(payload)
        field = self._donl  # DONL before the first unit, one-byte DOND before the others
        nals = []
        while offset < end:
            offset += field
            if offset + 2 > end:
                self._break()
                return
            size = payload[offset] << 8 | payload[offset + 1]
            offset += 2
            if size < 2 or offset + size > end:
                self._break()
                return
            nals.append(payload[offset : offset + size])
            offset += size
            field = self._donl // 2
        if len(nals) < 2:
            self._break()  # RFC 7798 4.4.2: an AP carries at least two NAL units
            return
        for nal in nals:
            if not self._broken:
                self._add(nal)

    def _consume_fu(self, payload: bytes | memoryview) -> None:
        if len(payload) < 3:
            self._break()  # no FU header
            return
        header = payload[2]
        start, end = header & 0x80, header & 0x40
        if start:
            if self._fu is not None or end:
                self._break()  # S and E both set is forbidden (4.4.3)
                return
            if len(payload) < 3 + self._donl:
                self._break()
                return
            self._fu = bytearray(((payload[0] & 0x81) | (header & 0x3F) << 1, payload[1]))
            self._fu += payload[3 + self._donl :]
        elif self._fu is None:
            self._break()  # a middle or end fragment whose start was not seen
            return
        else:
            self._fu += payload[3:]
        if self._size + len(self._fu) > MAX_ACCESS_UNIT_SIZE:
            self._break()
            return
        if end:
            nal, self._fu = self._fu, None
            self._add(nal)

    def _add(self, nal: NalUnit) -> None:
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

    def _frame(self, nals: list[NalUnit], timestamp: int) -> Frame | None:
        keep: list[NalUnit] = []
        vps = sps = pps = None
        key = has_slice = False
        for nal in nals:
            kind = (nal[0] >> 1) & 0x3F
            if kind == AUD:
                continue
            if kind == VPS:
                vps = nal
            elif kind == SPS:
                sps = nal
            elif kind == PPS:
                pps = nal
            elif _is_vcl(kind):
                has_slice = True
                key = key or h265.is_irap(kind)
            keep.append(nal)
        has_params = vps is not None or sps is not None or pps is not None
        if has_params and not self._update_parameter_sets(vps, sps, pps):
            self.dropped += 1
            return None
        if not has_slice:
            return None  # parameter sets or SEI alone (some cameras send them with a marker)
        if key:
            params = self.track.parameter_sets
            if len(params) < 3:
                self.waiting_for_keyframe += 1
                return None
            if vps is None or sps is None or pps is None:
                keep = [*params, *(n for n in keep if (n[0] >> 1) & 0x3F not in (VPS, SPS, PPS))]
            self._have_keyframe = True
        elif not self._have_keyframe:
            self.waiting_for_keyframe += 1
            return None
        return Frame(self.track, timestamp, timestamp, key, h265.to_annexb(keep))

    def _update_parameter_sets(
        self, vps: NalUnit | None, sps: NalUnit | None, pps: NalUnit | None
    ) -> bool:
        """Takes in-band parameter sets; False (nothing changed) when they do not parse."""
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


class H265Packetizer:
    """Splits Annex B access units into RTP packets.

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
        if mtu < HEADER_SIZE + 16:
            raise ValueError(f"mtu {mtu} too small")
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.max_payload = mtu - HEADER_SIZE
        self.sequence = sequence % 65536
        self.donl = donl
        self._don = 0

    def packetize(self, access_unit: bytes, timestamp: int) -> list[RtpPacket]:
        """RTP packets for one access unit; the marker is set on the last.

        Small neighbouring NAL units (VPS, SPS and PPS, say) go together in aggregation packets,
        a NAL unit that fits goes alone, a larger one is cut into fragmentation units.
        """
        nals = [n for n in h265.split_annexb(access_unit) if len(n) >= 2]
        limit = self.max_payload
        donl = 2 if self.donl else 0
        dond = 1 if self.donl else 0
        payloads: list[bytes] = []
        i = 0
        while i < len(nals):
            j, size = i, 2 + donl - dond
            while j < len(nals) and size + dond + 2 + len(nals[j]) <= limit:
                size += dond + 2 + len(nals[j])
                j += 1
            if j - i >= 2:
                group = nals[i:j]
                # F is set if any unit's is, LayerId and TID are the lowest ones (4.4.2)
                forbidden = max(n[0] & 0x80 for n in group)
                layer = min((n[0] & 1) << 5 | n[1] >> 3 for n in group)
                tid = min(n[1] & 7 for n in group)
                header = bytes((forbidden | AP << 1 | layer >> 5, (layer & 31) << 3 | tid))
                parts: list[bytes | memoryview] = [header]
                for n, nal in enumerate(group):
                    if donl:
                        parts.append(self._don_field(n == 0))
                    parts += (len(nal).to_bytes(2, "big"), nal)
                payloads.append(b"".join(parts))
                i = j
                continue
            nal = nals[i]
            i += 1
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
