"""Access-unit assembly shared by the NAL-unit payload formats, H.264 (RFC 6184) and H.265
(RFC 7798): the end of an access unit on the marker bit or a timestamp change
(RFC 6184 5.1, RFC 7798 4.1), aggregation and fragmentation buffering, size limits, and the
Frame built from an access unit's NAL units. The subclasses parse their own payload headers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Sized
from typing import cast

from relay.media import Frame, Track
from relay.rtp.packet import HEADER_SIZE, RtpPacket

MAX_ACCESS_UNIT_SIZE = 8 * 1024 * 1024
MAX_NALS_PER_ACCESS_UNIT = 4096
MAX_PARAMETER_SET_SIZE = 0xFFFF
"""The largest in-band parameter set: avcC and hvcC give each one a 16-bit length (ISO/IEC
14496-15 5.3.3.1.2, 8.3.3.1.2), and RTMP and MP4 need them there. An H.264 PPS with a slice
group map may come close (3 bits a macroblock); each codec may pass a smaller limit."""

NalUnit = bytes | bytearray | memoryview

# NAL unit roles: slices OR together (a key slice has both bits), parameter sets are
# _PARAMETER_SET plus their index in Track.parameter_sets (at most 3)
_OTHER, _SLICE, _SEI, _KEY, _PARAMETER_SET, _AUD = 0, 1, 2, 3, 4, 8

__all__ = ["NalDepacketizer", "NalPacketizer", "NalUnit", "nal_roles"]


def nal_roles(
    kind: Callable[[int], int],
    aud: int,
    sei: int,
    slices: frozenset[int],
    keys: frozenset[int],
    parameter_sets: tuple[int, ...],
) -> tuple[int, ...]:
    """The role of a NAL unit for each value of its first byte (a table, for speed).

    Args:
        kind: the NAL unit type from the first byte.
        aud: the access unit delimiter type (dropped).
        sei: the SEI type that may carry a recovery point (H.265: the prefix SEI).
        slices: the VCL types.
        keys: the VCL types a decoder may start from.
        parameter_sets: the types a Track's ``parameter_sets`` hold, in order.
    """
    roles = []
    for byte in range(256):
        k = kind(byte)
        if k == aud:
            roles.append(_AUD)
        elif k == sei:
            roles.append(_SEI)
        elif k in keys:
            roles.append(_KEY)
        elif k in slices:
            roles.append(_SLICE)
        elif k in parameter_sets:
            roles.append(_PARAMETER_SET + parameter_sets.index(k))
        else:
            roles.append(_OTHER)
    return tuple(roles)


class NalDepacketizer:
    """Reassembles access units of NAL units from RTP packets in sequence order.

    An access unit that lost packets is kept with what arrived, for the decoder to conceal the
    rest (counted in ``damaged``): its whole NAL units, and a fragmented slice cut where the
    loss began. Dropping it instead leaves every later picture of the GOP predicted from a
    picture the decoder never had, and a lost keyframe (a keyframe spans tens of packets) a
    whole GOP without a start: what a viewer sees is worse, for longer (docs/loss.md).
    ``dropped`` counts access units that yield nothing: malformed, over a limit, or damaged
    with no slice left; ``bad`` the payloads that broke their format's rules.

    Nothing is copied until the Frame is built: NAL units and the fragments of a fragmented
    one are views of the packets (of the reads they arrived in, over TCP), joined or copied
    once into the Frame's bytes. What those views keep alive is counted, and an access unit
    that would hold more than twice ``max_size`` of receive buffers (tiny units each in a
    read of its own) is dropped like an oversized one.

    Subclasses implement ``_opens_access_unit``, ``_consume`` (one payload into NAL units,
    through ``_add``, ``_aggregate`` and ``_fragment``) and ``_update_parameter_sets``.

    Args:
        track: the track as described by SDP; replaced when in-band parameter sets differ.
        roles: what a NAL unit is by its first byte, from ``nal_roles``.
        parameter_set_count: how many parameter sets a Track holds (one of each type).
        recovery_point: whether an SEI NAL unit announces a recovery point, which makes its
            access unit a random-access point (``Frame.key``) like an IDR/IRAP picture.
        max_size: the largest access unit, in bytes.
        max_nals: the most NAL units in one access unit.
        max_parameter_set_size: the largest in-band parameter set: an access unit with a
            larger one is dropped, counted in ``oversized_parameter_sets``, and the Track keeps
            what it had.
    """

    def __init__(
        self,
        track: Track,
        roles: tuple[int, ...],
        parameter_set_count: int,
        recovery_point: Callable[[NalUnit], bool],
        max_size: int,
        max_nals: int,
        max_parameter_set_size: int = MAX_PARAMETER_SET_SIZE,
    ) -> None:
        self.track = track
        self.dropped = 0
        self.damaged = 0
        self.oversized_parameter_sets = 0
        self.waiting_for_keyframe = 0
        self.unsupported = 0
        self.bad = 0
        self._roles = roles
        self._parameter_set_count = parameter_set_count
        self._recovery_point = recovery_point
        self._max_size = max_size
        self._max_nals = max_nals
        self._max_parameter_set_size = max_parameter_set_size
        self._started = False
        self._ts: int | None = None
        self._nals: list[NalUnit] = []
        self._size = 0
        self._fu: list[NalUnit] | None = None  # a fragmented NAL unit: its header, its pieces
        self._fu_size = 0
        self._held = 0  # bytes of the buffers the views of this access unit keep alive
        self._held_buffer: object = None  # the buffer counted last (a read holds many units)
        self._broken = False
        self._damaged = False
        self._have_keyframe = False

    def push(self, packet: RtpPacket, lost: int = 0) -> list[Frame]:
        """Takes the next packet in sequence order, ``lost`` packets missing just before it
        (``SequenceCheck``); returns the access units it completes (usually 0 or 1)."""
        first = not self._started
        self._started = True
        gap = lost > 0 or first
        out: list[Frame] = []
        if self._ts is not None and packet.timestamp != self._ts:
            # the previous access unit ended without its marker; after a loss it may lack its tail
            if gap:
                self._damage()
            self._finish(out)
        payload = packet.payload
        if self._ts is None:
            self._ts = packet.timestamp
            if gap and not self._opens_access_unit(payload):
                if first:
                    self._break()  # joined mid access unit: no picture yet to conceal from
                else:
                    self._damage()
        elif gap:
            self._damage()
        if not self._broken and payload:
            self._consume(payload)
        if packet.marker:
            self._finish(out)
        return out

    def _opens_access_unit(self, payload: bytes | memoryview) -> bool:
        """Whether an RTP payload begins with the first NAL unit of an access unit."""
        raise NotImplementedError

    def _consume(self, payload: bytes | memoryview) -> None:
        """Takes the NAL units (or fragment) of one non-empty payload."""
        raise NotImplementedError

    def _update_parameter_sets(self, found: list[NalUnit | None]) -> bool:
        """Takes in-band parameter sets (3 places, in Track order, None where the access unit
        has none); False (nothing changed) when they are bad."""
        raise NotImplementedError

    def _aggregate(
        self,
        payload: bytes | memoryview,
        offset: int,
        first_skip: int,
        skip: int,
        min_size: int,
        min_count: int,
    ) -> None:
        """Takes the NAL units of an aggregation packet: from ``offset``, each one is a skipped
        field (``first_skip`` bytes before the first unit, ``skip`` before the others), a 16-bit
        size of at least ``min_size``, then the unit; at least ``min_count`` units."""
        if self._fu is not None:
            self._break()
            return
        end = len(payload)
        field = first_skip
        nals = []
        while offset < end:
            offset += field
            if offset + 2 > end:
                self._malformed()
                return
            size = payload[offset] << 8 | payload[offset + 1]
            offset += 2
            if size < min_size or offset + size > end:
                self._malformed()
                return
            nals.append(payload[offset : offset + size])
            offset += size
            field = skip
        if len(nals) < min_count:
            self._malformed()
            return
        if not self._hold(payload):
            return
        for nal in nals:
            if not self._broken:
                self._add(nal, held=True)

    def _fragment(self, start: bytearray | None, data: bytes | memoryview, end: int) -> None:
        """Takes one fragment of a NAL unit: ``start`` is the rebuilt NAL header on the first
        fragment (None on the others), ``data`` what follows, ``end`` true on the last."""
        if start is not None:
            if self._fu is not None:
                self._break()
                return
            self._fu = [start]
            self._fu_size = len(start)
        elif self._fu is None:
            if not self._damaged:
                self._break()  # a middle or end fragment whose start was never sent
            return  # or was lost: skipped
        self._fu.append(data)
        self._fu_size += len(data)
        if self._size + self._fu_size > self._max_size or not self._hold(data):
            self._break()
            return
        if end:
            fu, self._fu = self._fu, None
            self._add(b"".join(fu), held=True)

    def _hold(self, data: NalUnit) -> bool:
        """Counts the buffer a view of ``data`` keeps alive; False (the access unit broken)
        past twice ``max_size``."""
        buffer: Sized = cast("Sized", data.obj) if isinstance(data, memoryview) else data
        if buffer is not self._held_buffer:
            self._held_buffer = buffer
            self._held += len(buffer)
            if self._held > 2 * self._max_size:
                self._break()
                return False
        return True

    def _add(self, nal: NalUnit, held: bool = False) -> None:
        """Takes a whole NAL unit (``held``: its buffer is already counted)."""
        self._size += len(nal)
        if self._size > self._max_size or len(self._nals) >= self._max_nals:
            self._break()
        elif held or self._hold(nal):
            self._nals.append(nal)

    def _break(self) -> None:
        """Marks the access unit being assembled as corrupt and frees what it held."""
        if not self._broken:
            self._broken = True
            self.dropped += 1
        self._nals = []
        self._fu = None
        self._size = 0
        self._held = 0
        self._held_buffer = None

    def _malformed(self) -> None:
        """A payload that breaks its format's rules: counted in ``bad``, its access unit
        dropped."""
        self.bad += 1
        self._break()

    def _damage(self) -> None:
        """Notes a loss in the access unit being assembled; a slice it was inside is kept up
        to the loss (its header and first macroblocks decode; the decoder conceals the rest)."""
        fu, self._fu = self._fu, None
        if fu is not None and self._roles[fu[0][0]] in (_SLICE, _KEY) and not self._broken:
            self._add(b"".join(fu), held=True)
        self._damaged = True

    def _reset(self) -> None:
        self._ts = None
        self._nals = []
        self._fu = None
        self._size = 0
        self._held = 0
        self._held_buffer = None
        self._broken = False
        self._damaged = False

    def _finish(self, out: list[Frame]) -> None:
        if self._fu is not None:
            self._break()  # the access unit ended inside a fragmented NAL unit
        nals, timestamp, broken, damaged = self._nals, self._ts, self._broken, self._damaged
        self._reset()
        if broken or timestamp is None:
            return
        counted = self.dropped + self.waiting_for_keyframe
        frame = self._frame(nals, timestamp) if nals else None
        if damaged:
            if frame is not None:
                self.damaged += 1
            elif self.dropped + self.waiting_for_keyframe == counted:
                self.dropped += 1  # no slice of it arrived
        if frame is not None:
            out.append(frame)

    def _frame(self, nals: list[NalUnit], timestamp: int) -> Frame | None:
        roles = self._roles
        keep: list[NalUnit] = []
        found: list[NalUnit | None] | None = None
        seen = slices = 0
        recovery = False
        for nal in nals:
            role = roles[nal[0]]
            if role == _SEI:
                recovery = recovery or self._recovery_point(nal)
            elif role < _PARAMETER_SET:  # a slice or an other NAL unit
                slices |= role
            elif role == _AUD:
                continue
            else:
                if len(nal) > self._max_parameter_set_size:
                    self.oversized_parameter_sets += 1
                    self.dropped += 1
                    return None
                if found is None:
                    found = [None, None, None]
                if found[role - _PARAMETER_SET] is None:
                    seen += 1
                found[role - _PARAMETER_SET] = nal
            keep.append(nal)
        if found is not None and not self._update_parameter_sets(found):
            self.dropped += 1
            return None
        if not slices:
            return None  # parameter sets or SEI alone (some cameras send them with a marker)
        key = slices == _KEY or recovery
        if key:
            params = self.track.parameter_sets
            count = self._parameter_set_count
            if len(params) < count:
                self.waiting_for_keyframe += 1
                return None
            if seen < count:
                keep = [*params, *(n for n in keep if roles[n[0]] < _PARAMETER_SET)]
            self._have_keyframe = True
        elif not self._have_keyframe:
            self.waiting_for_keyframe += 1
            return None
        # bytes() copies each view out of its packet once (and returns bytes as they are), so a
        # cached Frame holds its own NAL units, not the receive buffers they arrived in
        return Frame(self.track, timestamp, timestamp, key, tuple(map(bytes, keep)))


class NalPacketizer:
    """What the NAL-unit packetizers share: settings, and payloads made RTP packets.

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

    def _groups(
        self, nals: Sequence[NalUnit], header: int, per_unit: int
    ) -> list[Sequence[NalUnit]]:
        """An access unit's NAL units, one packet's worth each: a run of neighbours that fit
        together in one aggregation packet (``header`` bytes, then ``per_unit`` bytes before
        each unit), or else a single NAL unit."""
        limit = self.max_payload
        groups = []
        i, count = 0, len(nals)
        while i < count:
            j, size = i, header
            while j < count and size + per_unit + len(nals[j]) <= limit:
                size += per_unit + len(nals[j])
                j += 1
            if j - i < 2:
                j = i + 1
            groups.append(nals[i:j])
            i = j
        return groups

    def _packets(self, payloads: list[bytes], timestamp: int) -> list[RtpPacket]:
        """One access unit's payloads as RTP packets, the marker set on the last."""
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
