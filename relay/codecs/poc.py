"""Slice headers and picture order counts (POC): the output order of coded pictures.

H.264: the slice header up to its POC fields (ITU-T H.264 7.3.3, 7.4.3) and the three POC
derivations of 8.2.1 (8.2.1.1 type 0 with pic_order_cnt_lsb wrapping, 8.2.1.2 type 1 from
frame_num and the SPS offset cycle, 8.2.1.3 type 2, output order = decoding order).
H.265: the slice segment header up to slice_pic_order_cnt_lsb (7.3.6.1) and 8.3.1 (the MSB
follows the previous TemporalId 0 picture; IRAP pictures with NoRaslOutputFlag restart it).

A decoder here only reads the first slice of each access unit (a prefix of it: the fields sit in
the first few dozen bytes). Not handled: H.264 memory_management_control_operation 5 (a POC
reset deep in dec_ref_picture_marking, after the weight tables; no common encoder emits it, and
the DTS extractor survives the jump it causes) and H.265 multi-layer extensions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relay.codecs import h264, h265
from relay.codecs.bits import BitReader
from relay.errors import RemoteProtocolError

SLICE_HEAD_LIMIT = 128
"""Bytes of a slice NAL unit read for its header: the POC fields end well before this."""

H265_RASL_N, H265_RASL_R = 8, 9
H265_RADL_N, H265_RADL_R = 6, 7
H265_RSV_VCL_N14 = 14

__all__ = [
    "H264PocDecoder",
    "H264SliceHeader",
    "H265PocDecoder",
    "H265SliceHeader",
    "Picture",
    "first_slice",
]


@dataclass(frozen=True, slots=True)
class Picture:
    """One decoded picture's place in output order.

    Attributes:
        poc: PicOrderCnt of the picture (of the first field when fields come in pairs).
        reset: the POC numbering restarted here (H.264 IDR; H.265 IRAP with NoRaslOutputFlag):
            every picture before it in decoding order is output before it.
        skipped: an H.265 RASL picture of an IRAP that started decoding: not decodable, a
            decoder discards it.
    """

    poc: int
    reset: bool
    skipped: bool = False


def first_slice(
    nals: Sequence[bytes], vcl: frozenset[int], parameter_sets: frozenset[int], shift: int,
    mask: int,
) -> tuple[memoryview | None, list[bytes]]:
    """Finds the head of the first slice NAL unit of an access unit, and the parameter set NAL
    units before it.

    Of the slice only its first ``SLICE_HEAD_LIMIT`` bytes are taken (a view, no copy), so a
    large picture costs no more than a small one.

    Args:
        nals: the access unit's NAL units (``Frame.data``).
        vcl: NAL unit types that are slices.
        parameter_sets: NAL unit types to return whole.
        shift: right shift of the first header byte to its type field (0 H.264, 1 H.265).
        mask: mask of the type field after the shift.

    Returns:
        (head of the first slice NAL unit or None when there is none, parameter sets before it)
    """
    params: list[bytes] = []
    for nal in nals:
        if not nal:
            continue
        kind = (nal[0] >> shift) & mask
        if kind in vcl:
            return memoryview(nal)[:SLICE_HEAD_LIMIT], params
        if kind in parameter_sets:
            params.append(nal)
    return None, params


# --- H.264 -----------------------------------------------------------------------------------

_H264_VCL = frozenset((h264.NON_IDR, h264.IDR))  # data partitioning (2..4) is not carried
_H264_PARAMS = frozenset((h264.SPS, h264.PPS))


@dataclass(frozen=True, slots=True)
class H264SliceHeader:
    """The head of an H.264 slice header, up to its POC fields (7.3.3).

    Attributes:
        nal_unit_type: 1 (non-IDR) or 5 (IDR).
        nal_ref_idc: 0 for a picture no other picture refers to.
        first_mb_in_slice: address of the slice's first macroblock.
        slice_type: slice_type (0..9).
        pps_id: pic_parameter_set_id.
        frame_num: frame_num.
        field_pic: field_pic_flag.
        bottom_field: bottom_field_flag.
        idr_pic_id: idr_pic_id (IDR only, else 0).
        poc_lsb: pic_order_cnt_lsb (POC type 0).
        delta_poc_bottom: delta_pic_order_cnt_bottom (POC type 0).
        delta_poc: delta_pic_order_cnt[0] and [1] (POC type 1).
    """

    nal_unit_type: int
    nal_ref_idc: int
    first_mb_in_slice: int
    slice_type: int
    pps_id: int
    frame_num: int
    field_pic: bool
    bottom_field: bool
    idr_pic_id: int
    poc_lsb: int
    delta_poc_bottom: int
    delta_poc: tuple[int, int]

    @classmethod
    def parse(
        cls,
        nal: bytes | bytearray | memoryview,
        sps_by_id: dict[int, h264.SpsOrderInfo],
        pps_by_id: dict[int, h264.PpsOrderInfo],
    ) -> H264SliceHeader:
        """Parses the head of a slice NAL unit (1-byte NAL header, no start code).

        Raises:
            RemoteProtocolError: not a slice, truncated, a field out of range, or the PPS or
                SPS it names is unknown.
        """
        if len(nal) < 2:
            raise RemoteProtocolError("H.264 slice: too short")
        kind, ref_idc = nal[0] & 0x1F, (nal[0] >> 5) & 3
        if kind not in _H264_VCL or nal[0] & 0x80:
            raise RemoteProtocolError(f"H.264 slice: NAL unit type {kind} is not a slice")
        if kind == h264.IDR and ref_idc == 0:
            raise RemoteProtocolError("H.264 slice: IDR with nal_ref_idc 0")
        r = BitReader(h264.unescape_rbsp(nal[1:SLICE_HEAD_LIMIT]), "H.264 slice header")
        first_mb = r.ue(h264.MAX_DIMENSION_MBS * h264.MAX_DIMENSION_MBS * 2)
        slice_type = r.ue(9)
        pps_id = r.ue(255)
        pps = pps_by_id.get(pps_id)
        if pps is None:
            raise RemoteProtocolError(f"H.264 slice: unknown PPS {pps_id}")
        sps = sps_by_id.get(pps.sps_id)
        if sps is None:
            raise RemoteProtocolError(f"H.264 slice: unknown SPS {pps.sps_id}")
        if sps.separate_colour_plane:
            r.skip(2)  # colour_plane_id
        frame_num = r.u(sps.log2_max_frame_num)
        field_pic = bottom = False
        if not sps.frame_mbs_only:
            field_pic = r.flag()
            if field_pic:
                bottom = r.flag()
        idr_pic_id = r.ue(65535) if kind == h264.IDR else 0
        lsb = delta_bottom = delta0 = delta1 = 0
        both = pps.bottom_field_pic_order_in_frame_present and not field_pic
        if sps.poc_type == 0:
            lsb = r.u(sps.log2_max_poc_lsb)
            if both:
                delta_bottom = r.se()
        elif sps.poc_type == 1 and not sps.delta_pic_order_always_zero:
            delta0 = r.se()
            if both:
                delta1 = r.se()
        return cls(
            nal_unit_type=kind,
            nal_ref_idc=ref_idc,
            first_mb_in_slice=first_mb,
            slice_type=slice_type,
            pps_id=pps_id,
            frame_num=frame_num,
            field_pic=field_pic,
            bottom_field=bottom,
            idr_pic_id=idr_pic_id,
            poc_lsb=lsb,
            delta_poc_bottom=delta_bottom,
            delta_poc=(delta0, delta1),
        )


class H264PocDecoder:
    """Follows 8.2.1 across the access units of one H.264 stream, in decoding order.

    Parameter sets come from ``add_parameter_set`` (out of band) and from the access units
    themselves (in band, taking precedence as they arrive).
    """

    __slots__ = (
        "_prev_frame_num",
        "_prev_frame_num_offset",
        "_prev_msb",
        "_prev_lsb",
        "latest_sps",
        "pps_by_id",
        "sps_by_id",
    )

    def __init__(self) -> None:
        self.latest_sps: h264.SpsOrderInfo | None = None
        self.sps_by_id: dict[int, h264.SpsOrderInfo] = {}
        self.pps_by_id: dict[int, h264.PpsOrderInfo] = {}
        self._prev_msb = self._prev_lsb = 0
        self._prev_frame_num = self._prev_frame_num_offset = 0

    def add_parameter_set(self, nal: bytes | bytearray | memoryview) -> None:
        """Takes an SPS or PPS NAL unit; other NAL unit types are ignored.

        Raises:
            RemoteProtocolError: the parameter set does not parse.
        """
        kind = h264.nal_type(nal)
        if kind == h264.SPS:
            sps = h264.parse_sps_order(nal)
            old = self.sps_by_id.get(sps.sps_id)
            self.sps_by_id[sps.sps_id] = self.latest_sps = sps if sps != old else old
        elif kind == h264.PPS:
            pps = h264.parse_pps_order(nal)
            self.pps_by_id[pps.pps_id] = pps

    def decode(self, access_unit: Sequence[bytes]) -> Picture:
        """The POC of an access unit (its NAL units), from its first slice.

        Raises:
            RemoteProtocolError: no slice, a garbled slice header or parameter set, or a
                parameter set missing.
        """
        head, params = first_slice(access_unit, _H264_VCL, _H264_PARAMS, 0, 0x1F)
        for nal in params:
            self.add_parameter_set(nal)
        if head is None:
            raise RemoteProtocolError("H.264 access unit: no slice")
        header = H264SliceHeader.parse(head, self.sps_by_id, self.pps_by_id)
        sps = self.sps_by_id[self.pps_by_id[header.pps_id].sps_id]
        return self.picture(header, sps)

    def picture(self, s: H264SliceHeader, sps: h264.SpsOrderInfo) -> Picture:
        """Advances the POC state by one picture (8.2.1) and returns its POC."""
        idr = s.nal_unit_type == h264.IDR
        if sps.poc_type == 0:
            if idr:
                self._prev_msb = self._prev_lsb = 0
            max_lsb = 1 << sps.log2_max_poc_lsb
            lsb, prev = s.poc_lsb, self._prev_lsb
            if lsb < prev and prev - lsb >= max_lsb // 2:
                msb = self._prev_msb + max_lsb
            elif lsb > prev and lsb - prev > max_lsb // 2:
                msb = self._prev_msb - max_lsb
            else:
                msb = self._prev_msb
            if not s.field_pic:
                top = msb + lsb
                poc = min(top, top + s.delta_poc_bottom)
            else:
                poc = msb + lsb
            if s.nal_ref_idc:
                self._prev_msb, self._prev_lsb = msb, lsb
        else:
            max_frame_num = 1 << sps.log2_max_frame_num
            if idr:
                offset = 0
            elif self._prev_frame_num > s.frame_num:
                offset = self._prev_frame_num_offset + max_frame_num
            else:
                offset = self._prev_frame_num_offset
            if sps.poc_type == 1:
                poc = self._type1(s, sps, offset)
            elif idr:
                poc = 0
            else:
                poc = 2 * (offset + s.frame_num) - (0 if s.nal_ref_idc else 1)
            self._prev_frame_num, self._prev_frame_num_offset = s.frame_num, offset
        return Picture(poc, idr)

    @staticmethod
    def _type1(s: H264SliceHeader, sps: h264.SpsOrderInfo, offset: int) -> int:
        cycle = sps.offsets_for_ref_frame
        abs_frame_num = offset + s.frame_num if cycle else 0
        if s.nal_ref_idc == 0 and abs_frame_num > 0:
            abs_frame_num -= 1
        expected = 0
        if abs_frame_num > 0:
            cycles, in_cycle = divmod(abs_frame_num - 1, len(cycle))
            expected = cycles * sum(cycle) + sum(cycle[: in_cycle + 1])
        if s.nal_ref_idc == 0:
            expected += sps.offset_for_non_ref_pic
        if not s.field_pic:
            top = expected + s.delta_poc[0]
            return min(top, top + sps.offset_for_top_to_bottom_field + s.delta_poc[1])
        if s.bottom_field:
            return expected + sps.offset_for_top_to_bottom_field + s.delta_poc[0]
        return expected + s.delta_poc[0]


# --- H.265 -----------------------------------------------------------------------------------

_H265_VCL = frozenset(range(0, 32))
_H265_PARAMS = frozenset((h265.SPS, h265.PPS))


@dataclass(frozen=True, slots=True)
class H265SliceHeader:
    """The head of an H.265 slice segment header, up to its POC field (7.3.6.1).

    Attributes:
        nal_unit_type: the slice's NAL unit type (0..31).
        temporal_id: nuh_temporal_id_plus1 - 1.
        pps_id: slice_pic_parameter_set_id.
        slice_type: slice_type (0 B, 1 P, 2 I).
        poc_lsb: slice_pic_order_cnt_lsb (0 for IDR pictures, which do not send it).
    """

    nal_unit_type: int
    temporal_id: int
    pps_id: int
    slice_type: int
    poc_lsb: int

    @classmethod
    def parse(
        cls,
        nal: bytes | bytearray | memoryview,
        sps_by_id: dict[int, h265.HevcSpsOrderInfo],
        pps_by_id: dict[int, h265.HevcPpsOrderInfo],
    ) -> H265SliceHeader:
        """Parses the head of the first slice segment of a picture (2-byte NAL header).

        Raises:
            RemoteProtocolError: not a first slice segment, truncated, a field out of range, a
                reserved NAL unit type, or the PPS or SPS it names is unknown.
        """
        if len(nal) < 3:
            raise RemoteProtocolError("H.265 slice: too short")
        kind = (nal[0] >> 1) & 0x3F
        layer = ((nal[0] & 1) << 5) | (nal[1] >> 3)
        temporal_id = (nal[1] & 7) - 1
        if nal[0] & 0x80 or temporal_id < 0:
            raise RemoteProtocolError("H.265 slice: bad NAL unit header")
        if not (kind <= H265_RASL_R or h265.BLA_W_LP <= kind <= h265.CRA_NUT):
            raise RemoteProtocolError(f"H.265 slice: reserved NAL unit type {kind}")
        if layer:
            raise RemoteProtocolError(f"H.265 slice: layer {layer} (multi-layer) not supported")
        r = BitReader(h264.unescape_rbsp(nal[2:SLICE_HEAD_LIMIT]), "H.265 slice header")
        if not r.flag():  # first_slice_segment_in_pic_flag
            raise RemoteProtocolError("H.265 access unit: first slice segment missing")
        if h265.is_irap(kind):
            r.skip(1)  # no_output_of_prior_pics_flag
        pps_id = r.ue(63)
        pps = pps_by_id.get(pps_id)
        if pps is None:
            raise RemoteProtocolError(f"H.265 slice: unknown PPS {pps_id}")
        sps = sps_by_id.get(pps.sps_id)
        if sps is None:
            raise RemoteProtocolError(f"H.265 slice: unknown SPS {pps.sps_id}")
        r.skip(pps.num_extra_slice_header_bits)  # slice_reserved_flag[i]
        slice_type = r.ue(2)
        if pps.output_flag_present:
            r.skip(1)  # pic_output_flag
        if sps.separate_colour_plane:
            r.skip(2)  # colour_plane_id
        lsb = 0
        if kind not in (h265.IDR_W_RADL, h265.IDR_N_LP):
            lsb = r.u(sps.log2_max_poc_lsb)
        return cls(kind, temporal_id, pps_id, slice_type, lsb)


class H265PocDecoder:
    """Follows 8.3.1 across the access units of one H.265 stream, in decoding order.

    The first IRAP picture gets NoRaslOutputFlag = 1 (8.1.3), as IDR and BLA pictures always do:
    the RASL pictures that follow it are marked ``skipped``. (An end of sequence NAL unit, which
    would give the next CRA the same, sits after the slices of the access unit before and is not
    looked for: the POC of such a CRA's pictures may come out offset, which the DTS extractor
    absorbs.)
    """

    __slots__ = (
        "_prev_tid0_poc", "_skip_rasl", "_started", "latest_sps", "pps_by_id", "sps_by_id"
    )

    def __init__(self) -> None:
        self.latest_sps: h265.HevcSpsOrderInfo | None = None
        self.sps_by_id: dict[int, h265.HevcSpsOrderInfo] = {}
        self.pps_by_id: dict[int, h265.HevcPpsOrderInfo] = {}
        self._prev_tid0_poc = 0
        self._started = False
        self._skip_rasl = False

    def add_parameter_set(self, nal: bytes | bytearray | memoryview) -> None:
        """Takes an SPS or PPS NAL unit; other NAL unit types (the VPS) are ignored.

        Raises:
            RemoteProtocolError: the parameter set does not parse.
        """
        kind = h265.nal_type(nal)
        if kind == h265.SPS:
            sps = h265.parse_sps_order(nal)
            old = self.sps_by_id.get(sps.sps_id)
            self.sps_by_id[sps.sps_id] = self.latest_sps = sps if sps != old else old
        elif kind == h265.PPS:
            pps = h265.parse_pps_order(nal)
            self.pps_by_id[pps.pps_id] = pps

    def decode(self, access_unit: Sequence[bytes]) -> Picture:
        """The POC of an access unit (its NAL units), from its first slice segment.

        Raises:
            RemoteProtocolError: no slice, a garbled slice header or parameter set, or a
                parameter set missing.
        """
        head, params = first_slice(access_unit, _H265_VCL, _H265_PARAMS, 1, 0x3F)
        for nal in params:
            self.add_parameter_set(nal)
        if head is None:
            raise RemoteProtocolError("H.265 access unit: no slice")
        header = H265SliceHeader.parse(head, self.sps_by_id, self.pps_by_id)
        sps = self.sps_by_id[self.pps_by_id[header.pps_id].sps_id]
        return self.picture(header, sps)

    def picture(self, s: H265SliceHeader, sps: h265.HevcSpsOrderInfo) -> Picture:
        """Advances the POC state by one picture (8.3.1) and returns its POC."""
        kind = s.nal_unit_type
        irap = h265.is_irap(kind)
        if not self._started and not irap:
            raise RemoteProtocolError("H.265: picture before the first IRAP picture")
        # IDR, BLA, or a CRA that starts decoding: NoRaslOutputFlag = 1
        restart = irap and (not self._started or kind < h265.CRA_NUT)
        if irap:
            self._started = True
            self._skip_rasl = restart
        max_lsb = 1 << sps.log2_max_poc_lsb
        if restart:
            msb = 0
        else:
            prev_lsb = self._prev_tid0_poc & (max_lsb - 1)
            prev_msb = self._prev_tid0_poc - prev_lsb
            if s.poc_lsb < prev_lsb and prev_lsb - s.poc_lsb >= max_lsb // 2:
                msb = prev_msb + max_lsb
            elif s.poc_lsb > prev_lsb and s.poc_lsb - prev_lsb > max_lsb // 2:
                msb = prev_msb - max_lsb
            else:
                msb = prev_msb
        poc = msb + s.poc_lsb
        leading = H265_RADL_N <= kind <= H265_RASL_R
        sub_layer_non_ref = kind <= H265_RSV_VCL_N14 and kind % 2 == 0
        if s.temporal_id == 0 and not leading and not sub_layer_non_ref:
            self._prev_tid0_poc = poc
        skipped = kind in (H265_RASL_N, H265_RASL_R) and self._skip_rasl
        return Picture(poc, restart, skipped)
