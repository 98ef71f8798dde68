"""H.265/HEVC bitstream knowledge: NAL unit types (ITU-T H.265 7.4.2.2, Table 7-1), the 2-byte
NAL unit header (7.3.1.2), VPS/SPS parsing up to what a remuxer needs (7.3.2.1, 7.3.2.2.1,
profile_tier_level 7.3.3, conformance window 7.4.3.2.1) and the hvcC decoder configuration
record (ISO/IEC 14496-15 8.3.3.1).

Annex B helpers (``split_annexb``, ``to_annexb``, ``unescape_rbsp``) and the recovery point SEI
parser (``has_recovery_point``, header size 2) are codec-neutral and shared with H.264
(``relay.codecs.h264``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from relay.codecs.bits import BitReader
from relay.codecs.h264 import has_recovery_point, split_annexb, to_annexb, unescape_rbsp
from relay.errors import RemoteProtocolError

# NAL unit types (Table 7-1) and the RTP payload types sharing the 6-bit field (RFC 7798 4.4).
TRAIL_N = 0
TRAIL_R = 1
BLA_W_LP = 16
BLA_W_RADL = 17
BLA_N_LP = 18
IDR_W_RADL = 19
IDR_N_LP = 20
CRA_NUT = 21
IRAP_FIRST = 16
IRAP_LAST = 23  # 22 and 23 are reserved IRAP types
VPS = 32
SPS = 33
PPS = 34
AUD = 35
EOS = 36
EOB = 37
FD = 38
SEI_PREFIX = 39
SEI_SUFFIX = 40
AP = 48
FU = 49
PACI = 50

PARAMETER_SET_TYPES = (VPS, SPS, PPS)
START_CODE = b"\x00\x00\x00\x01"
MAX_PARAMETER_SET_SIZE = 4096
MAX_DIMENSION = 16384  # level 6.2 allows 8192x4320; twice that is a generous ceiling
MAX_SUB_LAYERS = 7

__all__ = [
    "HevcSpsInfo",
    "HevcVpsInfo",
    "ProfileTierLevel",
    "has_recovery_point",
    "hevc_decoder_configuration",
    "is_irap",
    "nal_type",
    "HevcPpsOrderInfo",
    "HevcSpsOrderInfo",
    "parse_pps_order",
    "parse_sps",
    "parse_sps_order",
    "parse_vps",
    "split_annexb",
    "to_annexb",
    "unescape_rbsp",
]


def nal_type(nal: bytes | bytearray | memoryview) -> int:
    """The ``nal_unit_type`` of a NAL unit (no start code), from its 2-byte header (7.3.1.2).

    Raises:
        RemoteProtocolError: the NAL unit is shorter than its header.
    """
    if len(nal) < 2:
        raise RemoteProtocolError("H.265 NAL unit: shorter than its 2-byte header")
    return (nal[0] >> 1) & 0x3F


def is_irap(nal_unit_type: int) -> bool:
    """True for the intra random access point types (BLA, IDR, CRA: 16..23), where decoding may
    start."""
    return IRAP_FIRST <= nal_unit_type <= IRAP_LAST


@dataclass(frozen=True, slots=True)
class ProfileTierLevel:
    """The general part of profile_tier_level() (7.3.3); sub-layer fields are skipped.

    Attributes:
        profile_space: general_profile_space (0 in every published profile).
        tier_flag: general_tier_flag (False main tier, True high tier).
        profile_idc: general_profile_idc (1 Main, 2 Main 10, 3 Main Still Picture, 4 RExt...).
        compatibility_flags: the 32 general_profile_compatibility_flag bits, flag 0 the MSB.
        constraint_flags: the 48 bits from general_progressive_source_flag on, as an integer.
        level_idc: general_level_idc, level times 30 (93 = level 3.1).
    """

    profile_space: int
    tier_flag: bool
    profile_idc: int
    compatibility_flags: int
    constraint_flags: int
    level_idc: int


def _profile_tier_level(r: BitReader, max_sub_layers_minus1: int) -> ProfileTierLevel:
    ptl = ProfileTierLevel(
        profile_space=r.u(2),
        tier_flag=r.flag(),
        profile_idc=r.u(5),
        compatibility_flags=r.u(32),
        constraint_flags=r.u(48),
        level_idc=r.u(8),
    )
    present = [(r.flag(), r.flag()) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1 > 0:
        r.skip(2 * (8 - max_sub_layers_minus1))  # reserved_zero_2bits
    for profile_present, level_present in present:
        if profile_present:
            r.skip(88)  # sub_layer profile space .. sub_layer_inbld_flag
        if level_present:
            r.skip(8)  # sub_layer_level_idc
    return ptl


@dataclass(frozen=True, slots=True)
class HevcVpsInfo:
    """What the hvcC record needs from a video parameter set (7.3.2.1).

    Attributes:
        vps_id: vps_video_parameter_set_id.
        max_sub_layers: vps_max_sub_layers_minus1 + 1.
        temporal_id_nesting: vps_temporal_id_nesting_flag.
        ptl: the general profile, tier and level.
    """

    vps_id: int
    max_sub_layers: int
    temporal_id_nesting: bool
    ptl: ProfileTierLevel


@dataclass(frozen=True, slots=True)
class HevcSpsInfo:
    """What the relay needs from a sequence parameter set.

    Attributes:
        vps_id: sps_video_parameter_set_id.
        sps_id: sps_seq_parameter_set_id.
        max_sub_layers: sps_max_sub_layers_minus1 + 1.
        temporal_id_nesting: sps_temporal_id_nesting_flag.
        ptl: the general profile, tier and level.
        chroma_format_idc: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
        bit_depth_luma: bits per luma sample.
        bit_depth_chroma: bits per chroma sample.
        width: displayed width in pixels, after the conformance window.
        height: displayed height in pixels, after the conformance window.
    """

    vps_id: int
    sps_id: int
    max_sub_layers: int
    temporal_id_nesting: bool
    ptl: ProfileTierLevel
    chroma_format_idc: int
    bit_depth_luma: int
    bit_depth_chroma: int
    width: int
    height: int

    @property
    def general_profile_idc(self) -> int:
        return self.ptl.profile_idc

    @property
    def general_level_idc(self) -> int:
        return self.ptl.level_idc

    @property
    def codec_string(self) -> str:
        """RFC 6381 ``hvc1.`` string (ISO/IEC 14496-15 E.3), as HLS ``CODECS`` attributes want
        it, e.g. ``hvc1.1.6.L93.B0``."""
        ptl = self.ptl
        space = ("", "A", "B", "C")[ptl.profile_space]
        compat = int(f"{ptl.compatibility_flags:032b}"[::-1], 2)
        constraints = ptl.constraint_flags.to_bytes(6, "big").rstrip(b"\x00")
        parts = [
            "hvc1",
            f"{space}{ptl.profile_idc}",
            f"{compat:X}",
            f"{'H' if ptl.tier_flag else 'L'}{ptl.level_idc}",
            *(f"{b:X}" for b in constraints),
        ]
        return ".".join(parts)


def _rbsp(nal: bytes | bytearray | memoryview, expected: int, what: str) -> BitReader:
    if len(nal) > MAX_PARAMETER_SET_SIZE:
        raise RemoteProtocolError(f"{what}: {len(nal)} bytes, over {MAX_PARAMETER_SET_SIZE}")
    if len(nal) < 3 or nal_type(nal) != expected:
        raise RemoteProtocolError(f"{what}: wrong NAL unit type")
    return BitReader(unescape_rbsp(nal[2:]), what)


def parse_vps(vps: bytes | bytearray | memoryview) -> HevcVpsInfo:
    """Parses the head of a video parameter set NAL unit (2-byte header, no start code).

    Raises:
        RemoteProtocolError: not a VPS, truncated, or a field out of range.
    """
    r = _rbsp(vps, VPS, "H.265 VPS")
    vps_id = r.u(4)
    r.skip(2 + 6)  # vps_base_layer_internal/available flags, vps_max_layers_minus1
    max_sub_layers_minus1 = r.u(3)
    if max_sub_layers_minus1 >= MAX_SUB_LAYERS:
        raise RemoteProtocolError("H.265 VPS: vps_max_sub_layers_minus1 over 6")
    nesting = r.flag()
    r.skip(16)  # vps_reserved_0xffff_16bits
    ptl = _profile_tier_level(r, max_sub_layers_minus1)
    return HevcVpsInfo(vps_id, max_sub_layers_minus1 + 1, nesting, ptl)


def parse_sps(sps: bytes | bytearray | memoryview) -> HevcSpsInfo:
    """Parses a sequence parameter set NAL unit (2-byte header, no start code) up to the bit
    depths: everything after (POC, reference picture sets, VUI) is not needed to remux.

    Raises:
        RemoteProtocolError: not an SPS, truncated, or a field out of range.
    """
    return _parse_sps(_rbsp(sps, SPS, "H.265 SPS"))


def _parse_sps(r: BitReader) -> HevcSpsInfo:
    """Reads an SPS up to its bit depths, leaving ``r`` at log2_max_pic_order_cnt_lsb_minus4."""
    vps_id = r.u(4)
    max_sub_layers_minus1 = r.u(3)
    if max_sub_layers_minus1 >= MAX_SUB_LAYERS:
        raise RemoteProtocolError("H.265 SPS: sps_max_sub_layers_minus1 over 6")
    nesting = r.flag()
    ptl = _profile_tier_level(r, max_sub_layers_minus1)
    sps_id = r.ue(15)
    chroma_format_idc = r.ue(3)
    separate_colour_plane = chroma_format_idc == 3 and r.flag()
    width = r.ue(MAX_DIMENSION)
    height = r.ue(MAX_DIMENSION)
    if width == 0 or height == 0:
        raise RemoteProtocolError("H.265 SPS: zero picture size")
    if r.flag():  # conformance_window_flag
        left, right, top, bottom = (r.ue(MAX_DIMENSION) for _ in range(4))
        # SubWidthC, SubHeightC (Table 6-1); 1 for monochrome and separate colour planes.
        chroma = 0 if separate_colour_plane else chroma_format_idc
        sub_width = 2 if chroma in (1, 2) else 1
        sub_height = 2 if chroma == 1 else 1
        width -= sub_width * (left + right)
        height -= sub_height * (top + bottom)
        if width <= 0 or height <= 0:
            raise RemoteProtocolError("H.265 SPS: conformance window leaves no picture")
    bit_depth_luma = 8 + r.ue(8)
    bit_depth_chroma = 8 + r.ue(8)
    return HevcSpsInfo(
        vps_id=vps_id,
        sps_id=sps_id,
        max_sub_layers=max_sub_layers_minus1 + 1,
        temporal_id_nesting=nesting,
        ptl=ptl,
        chroma_format_idc=chroma_format_idc,
        bit_depth_luma=bit_depth_luma,
        bit_depth_chroma=bit_depth_chroma,
        width=width,
        height=height,
    )


@dataclass(frozen=True, slots=True)
class HevcSpsOrderInfo:
    """The SPS fields that slice headers and picture order counts need (7.4.3.2.1).

    Attributes:
        sps_id: sps_seq_parameter_set_id.
        separate_colour_plane: separate_colour_plane_flag (slices carry colour_plane_id).
        log2_max_poc_lsb: log2_max_pic_order_cnt_lsb_minus4 + 4.
        max_dec_pic_buffering: sps_max_dec_pic_buffering_minus1 + 1 for the highest sub-layer.
        max_num_reorder_pics: sps_max_num_reorder_pics for the highest sub-layer.
    """

    sps_id: int
    separate_colour_plane: bool
    log2_max_poc_lsb: int
    max_dec_pic_buffering: int
    max_num_reorder_pics: int


MAX_DPB_SIZE = 16  # MaxDpbSize never exceeds 16 (A.4.2)


def parse_sps_order(sps: bytes | bytearray | memoryview) -> HevcSpsOrderInfo:
    """Parses the SPS fields that picture order counts need, the reorder limits included.

    Raises:
        RemoteProtocolError: not an SPS, truncated, or a field out of range.
    """
    r = _rbsp(sps, SPS, "H.265 SPS")
    info = _parse_sps(r)
    log2_max_poc_lsb = r.ue(12) + 4
    all_layers = r.flag()  # sps_sub_layer_ordering_info_present_flag
    buffering = reorder = 0
    for _ in range(info.max_sub_layers if all_layers else 1):
        buffering = r.ue(MAX_DPB_SIZE - 1) + 1
        reorder = r.ue(MAX_DPB_SIZE - 1)
        r.ue()  # sps_max_latency_increase_plus1
    if reorder >= buffering:
        raise RemoteProtocolError("H.265 SPS: sps_max_num_reorder_pics not below the DPB size")
    return HevcSpsOrderInfo(
        sps_id=info.sps_id,
        separate_colour_plane=info.chroma_format_idc == 3 and _separate_colour_plane(sps),
        log2_max_poc_lsb=log2_max_poc_lsb,
        max_dec_pic_buffering=buffering,
        max_num_reorder_pics=reorder,
    )


def _separate_colour_plane(sps: bytes | bytearray | memoryview) -> bool:
    r = _rbsp(sps, SPS, "H.265 SPS")
    r.skip(4)
    max_sub_layers_minus1 = r.u(3)
    r.skip(1)
    _profile_tier_level(r, max_sub_layers_minus1)
    r.ue(15)
    r.ue(3)
    return r.flag()


@dataclass(frozen=True, slots=True)
class HevcPpsOrderInfo:
    """The PPS fields a slice segment header needs up to its picture order count (7.3.2.3.1).

    Attributes:
        pps_id: pps_pic_parameter_set_id.
        sps_id: pps_seq_parameter_set_id.
        dependent_slice_segments_enabled: dependent_slice_segments_enabled_flag.
        output_flag_present: output_flag_present_flag (slices carry pic_output_flag).
        num_extra_slice_header_bits: num_extra_slice_header_bits.
    """

    pps_id: int
    sps_id: int
    dependent_slice_segments_enabled: bool
    output_flag_present: bool
    num_extra_slice_header_bits: int


def parse_pps_order(pps: bytes | bytearray | memoryview) -> HevcPpsOrderInfo:
    """Parses the head of a picture parameter set NAL unit (2-byte header, no start code).

    Raises:
        RemoteProtocolError: not a PPS, truncated, or a field out of range.
    """
    r = _rbsp(pps[:24], PPS, "H.265 PPS")
    pps_id = r.ue(63)
    sps_id = r.ue(15)
    return HevcPpsOrderInfo(pps_id, sps_id, r.flag(), r.flag(), r.u(3))


_HVCC_HEAD = struct.Struct(">BB4s6sBHBBBBHB")


def hevc_decoder_configuration(vps: bytes, sps: bytes, pps: bytes) -> bytes:
    """Builds an HEVCDecoderConfigurationRecord (hvcC) with 4-byte NAL lengths.

    Profile, tier and level combine the VPS and SPS as FFmpeg does (highest tier, profile and
    level; compatibility and constraint flags both set). min_spatial_segmentation_idc and
    parallelismType are written as 0 (unknown) and avgFrameRate/constantFrameRate as 0
    (unspecified), all of which 14496-15 allows. Each parameter set array is marked complete, as
    the ``hvc1`` sample entry requires.

    Raises:
        RemoteProtocolError: the VPS or SPS does not parse, or a parameter set is empty or too
            large.
    """
    vps_info = parse_vps(vps)
    sps_info = parse_sps(sps)
    if len(pps) < 3 or len(pps) > MAX_PARAMETER_SET_SIZE or nal_type(pps) != PPS:
        raise RemoteProtocolError("H.265 PPS: wrong NAL unit type or size")
    a, b = vps_info.ptl, sps_info.ptl
    general = (
        (b.profile_space << 6) | (max(a.tier_flag, b.tier_flag) << 5)
        | max(a.profile_idc, b.profile_idc)
    )
    layers = max(vps_info.max_sub_layers, sps_info.max_sub_layers)
    nested = vps_info.temporal_id_nesting and sps_info.temporal_id_nesting
    head = _HVCC_HEAD.pack(
        1,  # configurationVersion
        general,
        (a.compatibility_flags & b.compatibility_flags).to_bytes(4, "big"),
        (a.constraint_flags & b.constraint_flags).to_bytes(6, "big"),
        max(a.level_idc, b.level_idc),
        0xF000,  # reserved '1111' + min_spatial_segmentation_idc
        0xFC,  # reserved '111111' + parallelismType
        0xFC | sps_info.chroma_format_idc,
        0xF8 | (sps_info.bit_depth_luma - 8),
        0xF8 | (sps_info.bit_depth_chroma - 8),
        0,  # avgFrameRate
        (layers << 3) | (nested << 2) | 3,  # constantFrameRate 0, lengthSizeMinusOne 3
    )
    parts = [head, b"\x03"]  # numOfArrays
    for kind, nal in ((VPS, vps), (SPS, sps), (PPS, pps)):
        parts.append(struct.pack(">BHH", 0x80 | kind, 1, len(nal)))
        parts.append(bytes(nal))
    return b"".join(parts)
