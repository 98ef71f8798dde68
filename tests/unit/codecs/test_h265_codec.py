"""H.265 bitstream knowledge: NAL headers, VPS/SPS parsing and hvcC, against libx265 and FFmpeg."""

from __future__ import annotations

import functools
import struct
from fractions import Fraction

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.codecs import h265
from relay.codecs.bits import BitWriter
from relay.errors import RemoteProtocolError
from tests.unit.memory import memory_bounded
from tests.unit.rtp.h264_samples import escape

# Parameter sets by libx265 4.2 (PyAV wheel, preset medium): 640x360 and 1920x1080, 4:2:0 8-bit.
VPS_360 = bytes.fromhex("40010c01ffff01600000030090000003000003003f959809")
SPS_360 = bytes.fromhex(
    "42010101600000030090000003000003003fa00502016965959a4932b9a02000000300200000030321"
)
VPS_1080 = bytes.fromhex("40010c01ffff016000000300900000030000030078959809")
SPS_1080 = bytes.fromhex(
    "420101016000000300900000030000030078a003c08010e596566924cae68080000003008000000c84"
)
PPS_X265 = bytes.fromhex("4401c172b46240")


@functools.lru_cache(maxsize=8)
def encode_hevc(
    width: int, height: int, count: int = 12, params: str = "", pix_fmt: str = "yuv420p"
) -> tuple[tuple[bytes, int, bool], ...]:
    """Encodes FFmpeg's testsrc2 with libx265; returns (Annex B access unit, pts, key) in
    decoding order."""
    assert "libx265" in av.codecs_available
    source = av.open(f"testsrc2=size={width}x{height}:rate=25", format="lavfi")
    ctx = av.CodecContext.create("libx265", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = Fraction(1, 25)
    ctx.options = {
        "preset": "ultrafast",
        "x265-params": ":".join(filter(None, ["log-level=error", "keyint=6", params])),
    }
    out: list[tuple[bytes, int, bool]] = []
    try:
        for i, frame in enumerate(source.decode(video=0)):
            if i == count:
                break
            frame = frame.reformat(format=pix_fmt)
            frame.pts, frame.time_base = i, Fraction(1, 25)
            frame.pict_type = av.video.frame.PictureType.NONE  # lavfi marks every frame I
            out += [(bytes(p), p.pts, p.is_keyframe) for p in ctx.encode(frame)]
        out += [(bytes(p), p.pts, p.is_keyframe) for p in ctx.encode(None)]
    finally:
        source.close()
    return tuple(out)


def nals_of(annexb: bytes) -> list[bytes]:
    return [bytes(n) for n in h265.split_annexb(annexb)]


# --- NAL header ------------------------------------------------------------------------------


def test_nal_type_reads_the_six_bits_after_the_forbidden_bit() -> None:
    assert h265.nal_type(VPS_360) == h265.VPS
    assert h265.nal_type(SPS_360) == h265.SPS
    assert h265.nal_type(PPS_X265) == h265.PPS
    assert h265.nal_type(b"\x26\x01") == h265.IDR_W_RADL
    assert h265.nal_type(memoryview(b"\xff\xff")) == 63
    with pytest.raises(RemoteProtocolError):
        h265.nal_type(b"\x40")


def test_irap_range() -> None:
    assert [t for t in range(64) if h265.is_irap(t)] == list(range(16, 24))


# --- SPS / VPS -------------------------------------------------------------------------------


def test_parse_sps_of_libx265_640x360_applies_the_conformance_window() -> None:
    info = h265.parse_sps(SPS_360)
    assert (info.width, info.height) == (640, 360)  # coded as 640x368, 8 rows cropped
    assert info.general_profile_idc == 1  # Main
    assert info.general_level_idc == 63  # level 2.1
    assert info.ptl.tier_flag is False
    assert info.ptl.compatibility_flags == 0x60000000  # Main and Main 10 compatible
    assert (info.chroma_format_idc, info.bit_depth_luma, info.bit_depth_chroma) == (1, 8, 8)
    assert (info.vps_id, info.sps_id, info.max_sub_layers) == (0, 0, 1)
    assert info.codec_string == "hvc1.1.6.L63.90"


def test_parse_sps_of_libx265_1920x1080() -> None:
    info = h265.parse_sps(SPS_1080)
    assert (info.width, info.height) == (1920, 1080)
    assert (info.general_profile_idc, info.general_level_idc) == (1, 120)
    assert info.codec_string == "hvc1.1.6.L120.90"
    vps = h265.parse_vps(VPS_1080)
    assert (vps.max_sub_layers, vps.ptl) == (1, info.ptl)


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080), (352, 288)])
def test_parse_sps_of_fresh_libx265_output(size: tuple[int, int]) -> None:
    nals = nals_of(encode_hevc(*size, count=1)[0][0])
    assert [h265.nal_type(n) for n in nals[:3]] == [h265.VPS, h265.SPS, h265.PPS]
    info = h265.parse_sps(nals[1])
    assert (info.width, info.height) == size


def test_parse_sps_with_temporal_sub_layers_and_10_bit() -> None:
    """Sub-layer fields in profile_tier_level shift everything after them: a real encoder's
    three temporal layers must still give the right picture size and bit depth."""
    aus = encode_hevc(320, 240, count=8, params="temporal-layers=3:b-pyramid=1",
                      pix_fmt="yuv420p10le")
    vps, sps = nals_of(aus[0][0])[:2]
    info = h265.parse_sps(sps)
    assert info.max_sub_layers == 3 and h265.parse_vps(vps).max_sub_layers == 3
    assert (info.width, info.height) == (320, 240)
    assert (info.general_profile_idc, info.bit_depth_luma, info.bit_depth_chroma) == (2, 10, 10)
    decoder = av.CodecContext.create("hevc", "r")
    for data, _, _ in aus:
        decoder.decode(av.Packet(data))
    assert decoder.profile == "Main 10"


def _ue(w: BitWriter, value: int) -> None:
    code = value + 1
    w.u(code.bit_length() - 1, 0)
    w.u(code.bit_length(), code)


@st.composite
def sps_fields(draw: st.DrawFn) -> dict[str, int]:
    sub = draw(st.integers(0, 6))
    chroma = draw(st.integers(0, 3))
    return {
        "vps_id": draw(st.integers(0, 15)),
        "sub": sub,
        "nesting": draw(st.integers(0, 1)),
        "space": draw(st.integers(0, 3)),
        "tier": draw(st.integers(0, 1)),
        "profile": draw(st.integers(0, 31)),
        "compat": draw(st.integers(0, 2**32 - 1)),
        "constraints": draw(st.integers(0, 2**48 - 1)),
        "level": draw(st.integers(0, 255)),
        "sub_flags": draw(st.integers(0, 2 ** (2 * sub) - 1)),
        "sps_id": draw(st.integers(0, 15)),
        "chroma": chroma,
        "separate": draw(st.integers(0, 1)) if chroma == 3 else 0,
        "width": draw(st.integers(64, 8192)),
        "height": draw(st.integers(64, 4320)),
        "window": draw(st.booleans()),
        "crop": draw(st.tuples(*[st.integers(0, 15)] * 4)),
        "depth_luma": draw(st.integers(0, 8)),
        "depth_chroma": draw(st.integers(0, 8)),
    }


def build_sps(f: dict[str, int]) -> bytes:
    """An SPS NAL unit written bit by bit from ``f`` (7.3.2.2.1 up to the bit depths)."""
    w = BitWriter()
    w.u(4, f["vps_id"])
    w.u(3, f["sub"])
    w.u(1, f["nesting"])
    w.u(2, f["space"])
    w.u(1, f["tier"])
    w.u(5, f["profile"])
    w.u(32, f["compat"])
    w.u(48, f["constraints"])
    w.u(8, f["level"])
    flags = [(f["sub_flags"] >> (2 * i)) & 3 for i in range(f["sub"])]
    for flag in flags:
        w.u(2, flag)  # sub_layer_profile_present_flag, sub_layer_level_present_flag
    if f["sub"]:
        w.u(2 * (8 - f["sub"]), 0)
    for i, flag in enumerate(flags):
        if flag & 2:
            w.u(8, 0xA5)
            w.u(32, 0xFFFFFFFF)
            w.u(48, i)
        if flag & 1:
            w.u(8, 0xFF)
    _ue(w, f["sps_id"])
    _ue(w, f["chroma"])
    if f["chroma"] == 3:
        w.u(1, f["separate"])
    _ue(w, f["width"])
    _ue(w, f["height"])
    w.u(1, int(f["window"]))
    if f["window"]:
        for offset in f["crop"]:
            _ue(w, offset)
    _ue(w, f["depth_luma"])
    _ue(w, f["depth_chroma"])
    _ue(w, 4)  # log2_max_pic_order_cnt_lsb_minus4, not parsed
    w.u(1, 1)  # rbsp_stop_one_bit
    return b"\x42\x01" + escape(bytes(w))


@settings(max_examples=300)
@given(sps_fields())
def test_parse_sps_reads_back_every_written_field(f: dict[str, int]) -> None:
    info = h265.parse_sps(build_sps(f))
    chroma = 0 if f["separate"] else f["chroma"]
    sub_w, sub_h = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}[chroma]
    left, right, top, bottom = f["crop"] if f["window"] else (0, 0, 0, 0)
    assert info.width == f["width"] - sub_w * (left + right)
    assert info.height == f["height"] - sub_h * (top + bottom)
    assert info.ptl == h265.ProfileTierLevel(
        f["space"], bool(f["tier"]), f["profile"], f["compat"], f["constraints"], f["level"]
    )
    assert (info.vps_id, info.sps_id, info.max_sub_layers) == (f["vps_id"], f["sps_id"],
                                                                f["sub"] + 1)
    assert info.temporal_id_nesting == bool(f["nesting"])
    assert info.chroma_format_idc == f["chroma"]
    assert (info.bit_depth_luma, info.bit_depth_chroma) == (8 + f["depth_luma"],
                                                            8 + f["depth_chroma"])


def test_parse_sps_rejects_garbage_with_remote_protocol_errors() -> None:
    cases = [
        b"",
        b"\x42",
        PPS_X265,  # wrong type
        SPS_360[:20],  # truncated inside profile_tier_level
        b"\x42\x01" + bytes(5000),  # over the size limit
        b"\x42\x01\x0e" + bytes(40),  # sps_max_sub_layers_minus1 == 7
    ]
    for case in cases:
        with pytest.raises(RemoteProtocolError, match="H.265"):
            h265.parse_sps(case)
    zero_width = dict(vps_id=0, sub=0, nesting=1, space=0, tier=0, profile=1, compat=0,
                      constraints=0, level=93, sub_flags=0, sps_id=0, chroma=1, separate=0,
                      width=0, height=64, window=False, crop=(0, 0, 0, 0), depth_luma=0,
                      depth_chroma=0)
    with pytest.raises(RemoteProtocolError, match="zero picture size"):
        h265.parse_sps(build_sps(zero_width))
    cropped_away = {**zero_width, "width": 64, "window": True, "crop": (16, 16, 0, 0)}
    with pytest.raises(RemoteProtocolError, match="conformance window"):
        h265.parse_sps(build_sps(cropped_away))


@settings(max_examples=500)
@given(st.binary(max_size=200), st.sampled_from([b"", b"\x42\x01", b"\x40\x01"]))
@memory_bounded
def test_fuzz_parsers_raise_only_remote_protocol_error(data: bytes, prefix: bytes) -> None:
    for parse in (h265.parse_sps, h265.parse_vps):
        try:
            parse(prefix + data)
        except RemoteProtocolError:
            pass
    try:
        h265.hevc_decoder_configuration(VPS_360, b"\x42\x01" + data, PPS_X265)
    except RemoteProtocolError:
        pass


# --- hvcC ------------------------------------------------------------------------------------


def test_hvcc_fields_from_libx265_parameter_sets() -> None:
    record = h265.hevc_decoder_configuration(VPS_1080, SPS_1080, PPS_X265)
    assert record[0] == 1  # configurationVersion
    assert record[1] == 0x01  # profile space 0, main tier, Main
    assert record[2:6] == b"\x60\x00\x00\x00"
    assert record[6:12] == b"\x90\x00\x00\x00\x00\x00"
    assert record[12] == 120
    assert record[13:15] == b"\xf0\x00"  # min_spatial_segmentation_idc 0
    assert record[15] == 0xFC  # parallelismType 0
    assert record[16:19] == b"\xfd\xf8\xf8"  # 4:2:0, 8-bit luma and chroma
    assert record[19:21] == b"\x00\x00"
    assert record[21] == 0b00_001_1_11  # 1 temporal layer, nested, 4-byte lengths
    assert record[22] == 3
    offset, arrays = 23, []
    for _ in range(3):
        kind, count, size = struct.unpack_from(">BHH", record, offset)
        arrays.append((kind, count, record[offset + 5 : offset + 5 + size]))
        offset += 5 + size
    assert offset == len(record)
    assert arrays == [(0x80 | 32, 1, VPS_1080), (0x80 | 33, 1, SPS_1080), (0x80 | 34, 1, PPS_X265)]


def test_hvcc_rejects_a_bad_pps() -> None:
    with pytest.raises(RemoteProtocolError, match="PPS"):
        h265.hevc_decoder_configuration(VPS_360, SPS_360, SPS_360)


def to_length_prefixed(nals: list[bytes]) -> bytes:
    return b"".join(len(n).to_bytes(4, "big") + n for n in nals)


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080)])
def test_ffmpeg_decodes_length_prefixed_frames_with_our_hvcc(size: tuple[int, int]) -> None:
    """FFmpeg reads the parameter sets from our hvcC only: they are stripped from the frames."""
    aus = encode_hevc(*size)
    vps, sps, pps = nals_of(aus[0][0])[:3]
    decoder = av.CodecContext.create("hevc", "r")
    decoder.extradata = h265.hevc_decoder_configuration(vps, sps, pps)
    decoded = []
    for data, _, _ in aus:
        nals = [n for n in nals_of(data) if h265.nal_type(n) not in h265.PARAMETER_SET_TYPES]
        decoded += decoder.decode(av.Packet(to_length_prefixed(nals)))
    decoded += decoder.decode(None)
    assert len(decoded) == len(aus)
    assert {(f.width, f.height) for f in decoded} == {size}
    assert decoder.profile == "Main"


def test_ffmpeg_rejects_frames_without_parameter_sets_and_without_hvcc() -> None:
    """The control for the test above: stripped frames need the hvcC to decode."""
    aus = encode_hevc(640, 360)
    decoder = av.CodecContext.create("hevc", "r")
    decoded = []
    for data, _, _ in aus:
        nals = [n for n in nals_of(data) if h265.nal_type(n) not in h265.PARAMETER_SET_TYPES]
        try:
            decoded += decoder.decode(av.Packet(to_length_prefixed(nals)))
        except av.FFmpegError:
            pass
    assert decoded == []
