"""H.264 bitstream knowledge: NAL unit types (ITU-T H.264 7.4.1), Annex B byte streams,
SPS parsing (7.3.2.1.1, 7.4.2.1.1, frame cropping in 7.4.2.1.1 eq. 7-19..7-22) and the avcC
decoder configuration record (ISO/IEC 14496-15 5.3.3.1).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from relay.codecs.bits import BitReader
from relay.errors import RemoteProtocolError

# NAL unit types (Table 7-1) and the RTP payload types sharing the 5-bit field (RFC 6184 5.2).
NON_IDR = 1
PARTITION_A = 2
PARTITION_B = 3
PARTITION_C = 4
IDR = 5
SEI = 6
SPS = 7
PPS = 8
AUD = 9
END_OF_SEQUENCE = 10
END_OF_STREAM = 11
FILLER = 12
SPS_EXT = 13
STAP_A = 24
STAP_B = 25
MTAP16 = 26
MTAP24 = 27
FU_A = 28
FU_B = 29

VCL_TYPES = frozenset((NON_IDR, PARTITION_A, PARTITION_B, PARTITION_C, IDR))
START_CODE = b"\x00\x00\x00\x01"
MAX_SPS_SIZE = 4096
MAX_DIMENSION_MBS = 1024  # 16384 pixels each way; level 6.2 allows about 8192x4320
HIGH_PROFILES = frozenset((100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135))

__all__ = [
    "PpsOrderInfo",
    "SpsInfo",
    "SpsOrderInfo",
    "avc_decoder_configuration",
    "has_recovery_point",
    "nal_type",
    "parse_pps_order",
    "parse_sps",
    "parse_sps_order",
    "split_annexb",
    "to_annexb",
    "unescape_rbsp",
]


def nal_type(nal: bytes | bytearray | memoryview) -> int:
    """The ``nal_unit_type`` of a NAL unit (no start code).

    Raises:
        RemoteProtocolError: the NAL unit is empty.
    """
    if not nal:
        raise RemoteProtocolError("H.264 NAL unit: empty")
    return nal[0] & 0x1F


def split_annexb(data: bytes | bytearray | memoryview) -> list[memoryview]:
    """Splits an Annex B byte stream into NAL units (views into ``data``, no copies).

    Accepts 3- and 4-byte start codes; bytes before the first start code and trailing zero bytes
    (``trailing_zero_8bits``, B.1) are dropped, and so are empty NAL units.
    """
    buf = bytes(data) if not isinstance(data, bytes) else data
    view = memoryview(buf)
    out: list[memoryview] = []
    pos = buf.find(b"\x00\x00\x01")
    while pos >= 0:
        start = pos + 3
        nxt = buf.find(b"\x00\x00\x01", start)
        end = len(buf) if nxt < 0 else nxt
        while end > start and buf[end - 1] == 0:
            end -= 1
        if end > start:
            out.append(view[start:end])
        pos = nxt
    return out


def to_annexb(nals: Iterable[bytes | bytearray | memoryview]) -> bytes:
    """Joins NAL units into an Annex B byte stream with 4-byte start codes."""
    return START_CODE.join((b"", *nals))  # one join, no loop: a start code before each


def unescape_rbsp(nal: bytes | bytearray | memoryview) -> bytes:
    """Removes emulation prevention bytes (``00 00 03`` -> ``00 00``, 7.4.1)."""
    return bytes(nal).replace(b"\x00\x00\x03", b"\x00\x00")


SEI_RECOVERY_POINT = 6
"""payloadType of the recovery point SEI message (D.1.8; H.265 D.2.8)."""


def has_recovery_point(sei: bytes | bytearray | memoryview, header_size: int = 1) -> bool:
    """Whether an SEI NAL unit carries a recovery point message.

    Intra-refresh encoders (and cameras built on them) send an IDR only at their start: their
    later random-access points are pictures announced by this message, where a decoder starts
    and shows a clean picture after a refresh period. The sei_message() syntax is the same in
    H.264 (7.3.2.3.1) and H.265 (7.3.5), hence one parser. Linear in the NAL unit's size; a
    malformed SEI is not a recovery point.

    Args:
        sei: the SEI NAL unit, header included, no start code.
        header_size: the NAL unit header's size: 1 for H.264, 2 for H.265.
    """
    data = unescape_rbsp(sei[header_size:])
    pos, end = 0, len(data)
    while pos < end - 1:  # the last byte is rbsp_trailing_bits
        values = []
        for _ in range(2):  # payloadType, then payloadSize: 0xFF bytes add 255 each
            value = 0
            while pos < end and data[pos] == 0xFF:
                value += 255
                pos += 1
            if pos >= end:
                return False
            values.append(value + data[pos])
            pos += 1
        kind, size = values
        if kind == SEI_RECOVERY_POINT:
            return pos + size <= end
        pos += size
    return False


@dataclass(frozen=True, slots=True)
class SpsInfo:
    """What the relay needs from a sequence parameter set.

    Attributes:
        profile_idc: profile (66 baseline, 77 main, 100 high...).
        constraint_flags: the byte of constraint_set flags after profile_idc.
        level_idc: level times ten (31 = level 3.1).
        sps_id: seq_parameter_set_id.
        chroma_format_idc: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
        bit_depth_luma: bits per luma sample.
        bit_depth_chroma: bits per chroma sample.
        frame_mbs_only: False when the stream may be interlaced.
        width: displayed width in pixels, after cropping.
        height: displayed height in pixels, after cropping.
    """

    profile_idc: int
    constraint_flags: int
    level_idc: int
    sps_id: int
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    frame_mbs_only: bool
    width: int
    height: int

    @property
    def codec_string(self) -> str:
        """RFC 6381 ``avc1.PPCCLL`` string, as HLS ``CODECS`` attributes want it."""
        return f"avc1.{self.profile_idc:02X}{self.constraint_flags:02X}{self.level_idc:02X}"


def _skip_scaling_list(r: BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt != 0:
            delta = r.se(128)
            nxt = (last + delta + 256) % 256
        last = nxt if nxt != 0 else last


def parse_sps(sps: bytes | bytearray | memoryview) -> SpsInfo:
    """Parses a sequence parameter set NAL unit (with its 1-byte NAL header, no start code).

    Raises:
        RemoteProtocolError: not an SPS, truncated, or a field out of range.
    """
    if len(sps) > MAX_SPS_SIZE:
        raise RemoteProtocolError(f"H.264 SPS: {len(sps)} bytes, over {MAX_SPS_SIZE}")
    if len(sps) < 4 or sps[0] & 0x1F != SPS:
        raise RemoteProtocolError("H.264 SPS: not a sequence parameter set")
    r = BitReader(unescape_rbsp(sps[1:]), "H.264 SPS")
    profile_idc = r.u(8)
    constraint_flags = r.u(8)
    level_idc = r.u(8)
    sps_id = r.ue(31)
    chroma_format_idc, separate_colour_plane = 1, False
    bit_depth_luma = bit_depth_chroma = 8
    if profile_idc in HIGH_PROFILES:
        chroma_format_idc = r.ue(3)
        if chroma_format_idc == 3:
            separate_colour_plane = r.flag()
        bit_depth_luma = 8 + r.ue(6)
        bit_depth_chroma = 8 + r.ue(6)
        r.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if r.flag():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue(12)  # log2_max_frame_num_minus4
    poc_type = r.ue(2)
    if poc_type == 0:
        r.ue(12)  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.skip(1)  # delta_pic_order_always_zero_flag
        r.se()  # offset_for_non_ref_pic
        r.se()  # offset_for_top_to_bottom_field
        for _ in range(r.ue(255)):
            r.se()  # offset_for_ref_frame[i]
    r.ue(32)  # max_num_ref_frames
    r.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue(MAX_DIMENSION_MBS - 1) + 1
    height_map_units = r.ue(MAX_DIMENSION_MBS - 1) + 1
    frame_mbs_only = r.flag()
    if not frame_mbs_only:
        r.skip(1)  # mb_adaptive_frame_field_flag
    r.skip(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if r.flag():  # frame_cropping_flag
        left, right, top, bottom = (r.ue(8 * MAX_DIMENSION_MBS) for _ in range(4))
        chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
        if chroma_array_type == 0:
            crop_x, crop_y = 1, 2 - frame_mbs_only
        else:
            sub_width = 1 if chroma_array_type == 3 else 2
            sub_height = 2 if chroma_array_type == 1 else 1
            crop_x, crop_y = sub_width, sub_height * (2 - frame_mbs_only)
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
        if width <= 0 or height <= 0:
            raise RemoteProtocolError("H.264 SPS: cropping leaves no picture")
    r.skip(1)  # vui_parameters_present_flag: the VUI itself is not needed
    return SpsInfo(
        profile_idc=profile_idc,
        constraint_flags=constraint_flags,
        level_idc=level_idc,
        sps_id=sps_id,
        chroma_format_idc=chroma_format_idc,
        bit_depth_luma=bit_depth_luma,
        bit_depth_chroma=bit_depth_chroma,
        frame_mbs_only=frame_mbs_only,
        width=width,
        height=height,
    )


def avc_decoder_configuration(sps: bytes, pps: bytes) -> bytes:
    """Builds an AVCDecoderConfigurationRecord (avcC) with 4-byte NAL lengths.

    High profiles get the chroma format and bit depth fields that ISO/IEC 14496-15 5.3.3.1.2
    adds for profile_idc 100, 110, 122 and 144.

    Raises:
        RemoteProtocolError: the SPS does not parse or a parameter set is over 65535 bytes.
    """
    info = parse_sps(sps)
    if not pps or len(pps) > 0xFFFF:
        raise RemoteProtocolError("H.264 PPS: empty or over 65535 bytes")
    sps, pps = bytes(sps), bytes(pps)
    record = (
        struct.pack(">BBBBBBH", 1, sps[1], sps[2], sps[3], 0xFF, 0xE1, len(sps))
        + sps
        + struct.pack(">BH", 1, len(pps))
        + pps
    )
    if info.profile_idc in (100, 110, 122, 144):
        record += bytes(
            (
                0xFC | info.chroma_format_idc,
                0xF8 | (info.bit_depth_luma - 8),
                0xF8 | (info.bit_depth_chroma - 8),
                0,  # numOfSequenceParameterSetExt
            )
        )
    return record


MAX_REORDER_FRAMES = 16  # MaxDpbFrames never exceeds 16 (A.3.1 item h)


@dataclass(frozen=True, slots=True)
class SpsOrderInfo:
    """The SPS fields that slice headers and picture order counts depend on (7.4.2.1.1, E.2.1).

    Attributes:
        sps_id: seq_parameter_set_id.
        separate_colour_plane: separate_colour_plane_flag (slices carry colour_plane_id).
        log2_max_frame_num: log2_max_frame_num_minus4 + 4.
        poc_type: pic_order_cnt_type (0, 1 or 2).
        log2_max_poc_lsb: log2_max_pic_order_cnt_lsb_minus4 + 4 (type 0 only, else 0).
        delta_pic_order_always_zero: delta_pic_order_always_zero_flag (type 1).
        offset_for_non_ref_pic: offset_for_non_ref_pic (type 1).
        offset_for_top_to_bottom_field: offset_for_top_to_bottom_field (type 1).
        offsets_for_ref_frame: offset_for_ref_frame[] (type 1).
        frame_mbs_only: frame_mbs_only_flag (False: slices may be field pictures).
        max_num_reorder_frames: from the VUI's bitstream restriction, None when absent.
        max_dec_frame_buffering: from the VUI's bitstream restriction, None when absent.
    """

    sps_id: int
    separate_colour_plane: bool
    log2_max_frame_num: int
    poc_type: int
    log2_max_poc_lsb: int
    delta_pic_order_always_zero: bool
    offset_for_non_ref_pic: int
    offset_for_top_to_bottom_field: int
    offsets_for_ref_frame: tuple[int, ...]
    frame_mbs_only: bool
    max_num_reorder_frames: int | None
    max_dec_frame_buffering: int | None


def _skip_hrd_parameters(r: BitReader) -> None:
    # E.1.2
    count = r.ue(31) + 1
    r.skip(8)  # bit_rate_scale, cpb_size_scale
    for _ in range(count):
        r.ue()  # bit_rate_value_minus1
        r.ue()  # cpb_size_value_minus1
        r.skip(1)  # cbr_flag
    r.skip(20)  # four delay / length fields of 5 bits


def _vui_reorder(r: BitReader) -> tuple[int, int] | None:
    """Walks vui_parameters() (E.1.1) to the bitstream restriction; None when it is absent."""
    if r.flag() and r.u(8) == 255:  # aspect_ratio_info_present_flag, aspect_ratio_idc
        r.skip(32)  # sar_width, sar_height
    if r.flag():  # overscan_info_present_flag
        r.skip(1)
    if r.flag():  # video_signal_type_present_flag
        r.skip(4)  # video_format, video_full_range_flag
        if r.flag():  # colour_description_present_flag
            r.skip(24)
    if r.flag():  # chroma_loc_info_present_flag
        r.ue(5)
        r.ue(5)
    if r.flag():  # timing_info_present_flag
        r.skip(65)
    nal_hrd = r.flag()
    if nal_hrd:
        _skip_hrd_parameters(r)
    vcl_hrd = r.flag()
    if vcl_hrd:
        _skip_hrd_parameters(r)
    if nal_hrd or vcl_hrd:
        r.skip(1)  # low_delay_hrd_flag
    r.skip(1)  # pic_struct_present_flag
    if not r.flag():  # bitstream_restriction_flag
        return None
    r.skip(1)  # motion_vectors_over_pic_boundaries_flag
    for _ in range(4):  # max_bytes_per_pic_denom .. log2_max_mv_length_vertical
        r.ue()
    reorder = r.ue(MAX_REORDER_FRAMES)
    return reorder, r.ue(MAX_REORDER_FRAMES)


def parse_sps_order(sps: bytes | bytearray | memoryview) -> SpsOrderInfo:
    """Parses the SPS fields that picture order counts need, the VUI's reorder limits included.

    A VUI that is cut short or malformed counts as absent (some cameras truncate it); the fields
    before it must parse.

    Raises:
        RemoteProtocolError: not an SPS, truncated before the VUI, or a field out of range.
    """
    if len(sps) > MAX_SPS_SIZE:
        raise RemoteProtocolError(f"H.264 SPS: {len(sps)} bytes, over {MAX_SPS_SIZE}")
    if len(sps) < 4 or sps[0] & 0x1F != SPS:
        raise RemoteProtocolError("H.264 SPS: not a sequence parameter set")
    r = BitReader(unescape_rbsp(sps[1:]), "H.264 SPS")
    profile_idc = r.u(8)
    r.skip(16)  # constraint flags, level_idc
    sps_id = r.ue(31)
    separate_colour_plane = False
    if profile_idc in HIGH_PROFILES:
        chroma_format_idc = r.ue(3)
        if chroma_format_idc == 3:
            separate_colour_plane = r.flag()
        r.ue(6)  # bit_depth_luma_minus8
        r.ue(6)  # bit_depth_chroma_minus8
        r.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if r.flag():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    log2_max_frame_num = r.ue(12) + 4
    poc_type = r.ue(2)
    log2_max_poc_lsb = 0
    always_zero = False
    non_ref = top_to_bottom = 0
    offsets: tuple[int, ...] = ()
    if poc_type == 0:
        log2_max_poc_lsb = r.ue(12) + 4
    elif poc_type == 1:
        always_zero = r.flag()
        non_ref = r.se()
        top_to_bottom = r.se()
        offsets = tuple(r.se() for _ in range(r.ue(255)))
    r.ue(32)  # max_num_ref_frames
    r.skip(1)  # gaps_in_frame_num_value_allowed_flag
    r.ue(MAX_DIMENSION_MBS - 1)  # pic_width_in_mbs_minus1
    r.ue(MAX_DIMENSION_MBS - 1)  # pic_height_in_map_units_minus1
    frame_mbs_only = r.flag()
    if not frame_mbs_only:
        r.skip(1)  # mb_adaptive_frame_field_flag
    r.skip(1)  # direct_8x8_inference_flag
    if r.flag():  # frame_cropping_flag
        for _ in range(4):
            r.ue(8 * MAX_DIMENSION_MBS)
    restriction = None
    if r.flag():  # vui_parameters_present_flag
        try:
            restriction = _vui_reorder(r)
        except RemoteProtocolError:
            restriction = None
    return SpsOrderInfo(
        sps_id=sps_id,
        separate_colour_plane=separate_colour_plane,
        log2_max_frame_num=log2_max_frame_num,
        poc_type=poc_type,
        log2_max_poc_lsb=log2_max_poc_lsb,
        delta_pic_order_always_zero=always_zero,
        offset_for_non_ref_pic=non_ref,
        offset_for_top_to_bottom_field=top_to_bottom,
        offsets_for_ref_frame=offsets,
        frame_mbs_only=frame_mbs_only,
        max_num_reorder_frames=None if restriction is None else restriction[0],
        max_dec_frame_buffering=None if restriction is None else restriction[1],
    )


@dataclass(frozen=True, slots=True)
class PpsOrderInfo:
    """The PPS fields a slice header needs up to its picture order count (7.3.2.2).

    Attributes:
        pps_id: pic_parameter_set_id.
        sps_id: seq_parameter_set_id of the SPS it refers to.
        bottom_field_pic_order_in_frame_present: the slice header carries
            delta_pic_order_cnt_bottom / delta_pic_order_cnt[1].
    """

    pps_id: int
    sps_id: int
    bottom_field_pic_order_in_frame_present: bool


def parse_pps_order(pps: bytes | bytearray | memoryview) -> PpsOrderInfo:
    """Parses the head of a picture parameter set NAL unit (1-byte header, no start code).

    Raises:
        RemoteProtocolError: not a PPS, truncated, or a field out of range.
    """
    if len(pps) > MAX_SPS_SIZE:
        raise RemoteProtocolError(f"H.264 PPS: {len(pps)} bytes, over {MAX_SPS_SIZE}")
    if len(pps) < 2 or pps[0] & 0x1F != PPS:
        raise RemoteProtocolError("H.264 PPS: not a picture parameter set")
    r = BitReader(unescape_rbsp(pps[1:16]), "H.264 PPS")
    pps_id = r.ue(255)
    sps_id = r.ue(31)
    r.skip(1)  # entropy_coding_mode_flag
    return PpsOrderInfo(pps_id, sps_id, r.flag())
