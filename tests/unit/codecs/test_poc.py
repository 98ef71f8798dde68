"""Slice headers and picture order counts: against libx264 / libx265 output (whose PTS order the
POC must reproduce), hand-built type 1 and field streams, and fuzzed bytes."""

from __future__ import annotations

import functools
from fractions import Fraction

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.codecs import h264, h265
from relay.codecs.bits import BitWriter
from relay.codecs.poc import (
    H264PocDecoder,
    H264SliceHeader,
    H265PocDecoder,
    H265SliceHeader,
    Picture,
)
from relay.errors import RemoteProtocolError
from tests.unit.memory import memory_bounded

X264_CASES = {
    # b-pyramid, keyint over 32 frames: pic_order_cnt_lsb (6 bits) wraps inside a GOP
    "bf2-pyramid": {"bf": "2", "x264-params": "keyint=50:b-pyramid=normal"},
    "bf3-strict": {"x264-params": "bframes=3:b-pyramid=strict:keyint=25"},
    "bf3-none": {"x264-params": "bframes=3:b-pyramid=none:keyint=25"},
    "mbaff-bf2": {"x264-params": "interlaced=1:bframes=2:keyint=25"},  # frame_mbs_only 0
    "mbaff-p": {"x264-params": "interlaced=1:bframes=0:keyint=25"},  # POC type 0, no B
    "zerolatency": {"tune": "zerolatency", "x264-params": "keyint=40"},  # POC type 2
}
X265_CASES = {
    # open GOP: CRA keyframes followed by RASL pictures
    "bf4": {"x265-params": "bframes=4:keyint=25:log-level=error"},
    "bf4-closed": {"x265-params": "bframes=4:keyint=25:open-gop=0:log-level=error"},
    "zerolatency": {"tune": "zerolatency", "x265-params": "keyint=25:open-gop=0:log-level=error"},
}

Packet = tuple[tuple[bytes, ...], int, int, bool]  # NAL units, pts, dts (90 kHz), key


def nal_units(annexb: bytes) -> tuple[bytes, ...]:
    """An encoder's Annex B access unit as the relay carries it (``Frame.data``)."""
    return tuple(map(bytes, h264.split_annexb(annexb)))


@functools.lru_cache(maxsize=16)
def encode(codec: str, case: str, count: int = 100) -> tuple[Packet, ...]:
    """Encodes FFmpeg's testsrc2 at 25 fps; returns the encoder's packets in decoding order,
    with the PTS and DTS it chose (90 kHz)."""
    options = (X264_CASES if codec == "libx264" else X265_CASES)[case]
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = 160, 96, "yuv420p"
    ctx.time_base = Fraction(1, 90000)
    ctx.framerate = Fraction(25)
    ctx.options = dict(options)
    source = av.open("testsrc2=size=160x96:rate=25", format="lavfi")
    out: list[Packet] = []
    try:
        for i, frame in enumerate(source.decode(video=0)):
            if i == count:
                break
            frame.pts, frame.time_base = i * 3600, Fraction(1, 90000)
            frame.pict_type = av.video.frame.PictureType.NONE  # let the encoder choose
            out += [(nal_units(bytes(p)), p.pts, p.dts, p.is_keyframe) for p in ctx.encode(frame)]
        out += [(nal_units(bytes(p)), p.pts, p.dts, p.is_keyframe) for p in ctx.encode(None)]
    finally:
        source.close()
    assert len(out) == count
    return tuple(out)


def parameter_sets(codec: str, nals: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The parameter sets at the head of a keyframe, in Track order."""
    if codec == "libx264":
        return tuple(n for n in nals if h264.nal_type(n) in (h264.SPS, h264.PPS))
    return tuple(n for n in nals if h265.nal_type(n) in h265.PARAMETER_SET_TYPES)


def decoder_for(codec: str) -> H264PocDecoder | H265PocDecoder:
    return H264PocDecoder() if codec == "libx264" else H265PocDecoder()


@pytest.mark.parametrize(
    ("codec", "case"),
    [("libx264", c) for c in X264_CASES] + [("libx265", c) for c in X265_CASES],
)
def test_poc_orders_pictures_as_the_encoder_did(codec: str, case: str) -> None:
    packets = encode(codec, case)
    decoder = decoder_for(codec)
    periods: list[list[tuple[int, int]]] = []
    for data, pts, _, key in packets:
        picture = decoder.decode(data)
        assert not picture.skipped
        if codec == "libx264":
            assert picture.reset == key  # IDR <=> POC reset
        elif picture.reset:
            assert key
        if picture.reset:
            periods.append([])
        periods[-1].append((picture.poc, pts))
    keyframes = sum(key for _, _, _, key in packets)
    assert keyframes > 1
    assert len(periods) == (1 if case == "bf4" else keyframes)  # open GOP: CRA keeps the POC
    for period in periods:
        by_poc = sorted(period)
        assert [pts for _, pts in by_poc] == sorted(pts for _, pts in period)
        assert len({poc for poc, _ in period}) == len(period)  # no two pictures share a POC


def test_x265_open_gop_has_leading_pictures_and_continues_the_poc() -> None:
    decoder = H265PocDecoder()
    pocs = [decoder.decode(data).poc for data, _, _, _ in encode("libx265", "bf4")]
    assert pocs[0] == 0
    assert any(b < a for a, b in zip(pocs, pocs[1:]))  # reordering happens
    assert max(pocs) == 99  # POC counted through the CRA pictures (no reset)


def test_x265_rasl_pictures_after_a_starting_cra_are_skipped() -> None:
    packets = encode("libx265", "bf4")
    start = next(i for i, p in enumerate(packets) if i and p[3])
    assert h265.nal_type(packets[start][0][-1]) == h265.CRA_NUT
    decoder = H265PocDecoder()
    pictures = [decoder.decode(data) for data, _, _, _ in packets[start:]]
    assert pictures[0].reset
    skipped = [i for i, p in enumerate(pictures) if p.skipped]
    assert skipped and all(pictures[i].poc < pictures[0].poc for i in skipped)
    kinds = [h265.nal_type(packets[start + i][0][0]) for i in skipped]
    assert set(kinds) <= {8, 9}


def test_h265_picture_before_the_first_irap_is_refused() -> None:
    packets = encode("libx265", "bf4")
    decoder = H265PocDecoder()
    for nal in parameter_sets("libx265", packets[0][0]):
        decoder.add_parameter_set(nal)
    with pytest.raises(RemoteProtocolError, match="before the first IRAP"):
        decoder.decode(packets[1][0])


def test_sps_order_fields_from_the_encoders() -> None:
    sps = parameter_sets("libx264", encode("libx264", "bf3-strict")[0][0])[0]
    info = h264.parse_sps_order(sps)
    assert (info.poc_type, info.log2_max_poc_lsb, info.frame_mbs_only) == (0, 6, True)
    assert (info.max_num_reorder_frames, info.max_dec_frame_buffering) == (2, 4)
    assert h264.parse_sps(sps).width == 160  # the original parser still agrees
    zero_sps = parameter_sets("libx264", encode("libx264", "zerolatency")[0][0])[0]
    zero = h264.parse_sps_order(zero_sps)
    assert (zero.poc_type, zero.max_num_reorder_frames) == (2, 0)
    assert not h264.parse_sps_order(
        parameter_sets("libx264", encode("libx264", "mbaff-bf2")[0][0])[0]
    ).frame_mbs_only
    _, sps5, pps5 = parameter_sets("libx265", encode("libx265", "bf4")[0][0])
    info5 = h265.parse_sps_order(sps5)
    assert (info5.max_num_reorder_pics, info5.log2_max_poc_lsb) == (2, 8)
    assert info5.max_dec_pic_buffering > info5.max_num_reorder_pics
    assert h265.parse_pps_order(pps5).sps_id == info5.sps_id
    assert h265.parse_sps_order(
        parameter_sets("libx265", encode("libx265", "zerolatency")[0][0])[1]
    ).max_num_reorder_pics == 0


# --- hand-built H.264 streams: POC type 1 and field pictures ----------------------------------


def ue(w: BitWriter, value: int) -> None:
    bits = (value + 1).bit_length()
    w.u(bits - 1, 0)
    w.u(bits, value + 1)


def se(w: BitWriter, value: int) -> None:
    ue(w, 2 * value - 1 if value > 0 else -2 * value)


def rbsp(w: BitWriter) -> bytes:
    w.u(1, 1)  # rbsp_stop_one_bit
    return bytes(w)


def build_sps(poc_type: int, frame_mbs_only: bool = True) -> bytes:
    w = BitWriter()
    w.u(8, 77)  # Main
    w.u(16, 30)  # constraint flags, level 3.0
    ue(w, 0)  # sps id
    ue(w, 0)  # log2_max_frame_num_minus4: frame_num wraps at 16
    ue(w, poc_type)
    if poc_type == 0:
        ue(w, 0)  # log2_max_pic_order_cnt_lsb_minus4: lsb wraps at 16
    elif poc_type == 1:
        w.u(1, 0)  # delta_pic_order_always_zero_flag
        se(w, -2)  # offset_for_non_ref_pic
        se(w, 1)  # offset_for_top_to_bottom_field
        ue(w, 1)
        se(w, 4)  # offset_for_ref_frame[0]
    ue(w, 2)  # max_num_ref_frames
    w.u(1, 0)
    ue(w, 9)  # 160 wide
    ue(w, 5 if frame_mbs_only else 2)
    w.u(1, frame_mbs_only)
    if not frame_mbs_only:
        w.u(1, 0)
    w.u(1, 1)  # direct_8x8_inference_flag
    w.u(1, 0)  # frame_cropping_flag
    w.u(1, 0)  # vui_parameters_present_flag
    return b"\x67" + rbsp(w)


def build_pps(bottom_field_pic_order: bool = False) -> bytes:
    w = BitWriter()
    ue(w, 0)
    ue(w, 0)
    w.u(1, 0)
    w.u(1, bottom_field_pic_order)
    w.u(7, 0)  # the rest does not matter here
    return b"\x68" + rbsp(w)


def build_slice(
    idr: bool, ref: bool, frame_num: int, *, lsb: int | None = None, delta: tuple[int, ...] = (),
    field: bool | None = None, bottom: bool = False, slice_type: int = 5,
) -> tuple[bytes]:
    """An access unit of one slice NAL unit (a 1-tuple, so that fields' slices add up)."""
    w = BitWriter()
    ue(w, 0)  # first_mb_in_slice
    ue(w, slice_type)
    ue(w, 0)  # pps id
    w.u(4, frame_num)
    if field is not None:
        w.u(1, field)
        if field:
            w.u(1, bottom)
    if idr:
        ue(w, 0)
    if lsb is not None:  # POC type 0
        w.u(4, lsb)
    for d in delta:
        se(w, d)
    w.u(16, 0xABCD)  # the rest of the slice
    header = (0x60 if ref else 0) | (5 if idr else 1)
    return (bytes([header]) + rbsp(w),)


def test_poc_type_1_follows_the_offset_cycle_through_frame_num_wraps() -> None:
    decoder = H264PocDecoder()
    decoder.add_parameter_set(build_sps(1))
    decoder.add_parameter_set(build_pps())
    got = [decoder.decode(build_slice(True, True, 0, delta=(0,))).poc]
    expected = [0]
    for k in range(1, 40):  # P (reference) then B (non-reference), frame_num wrapping at 16
        p_num = k % 16
        got.append(decoder.decode(build_slice(False, True, p_num, delta=(0,))).poc)
        got.append(decoder.decode(build_slice(False, False, (k + 1) % 16, delta=(0,))).poc)
        expected += [4 * k, 4 * k - 2]
    assert got == expected
    # delta_pic_order_cnt[0] moves the picture
    assert decoder.decode(build_slice(False, True, 8, delta=(3,))).poc == 4 * 40 + 3


def test_poc_type_0_wraps_lsb_and_takes_the_min_of_both_fields() -> None:
    decoder = H264PocDecoder()
    decoder.add_parameter_set(build_sps(0))
    decoder.add_parameter_set(build_pps(bottom_field_pic_order=True))
    idr = build_slice(True, True, 0, lsb=0, delta=(0,))
    assert decoder.decode(idr) == Picture(0, True)
    pocs = [decoder.decode(build_slice(False, True, i % 16, lsb=(2 * i) % 16, delta=(0,))).poc
            for i in range(1, 30)]
    assert pocs == [2 * i for i in range(1, 30)]
    # delta_pic_order_cnt_bottom -1: the bottom field comes first, the frame POC is its POC
    assert decoder.decode(build_slice(False, True, 14, lsb=(60 % 16), delta=(-1,))).poc == 59


def test_field_pictures_take_the_first_field() -> None:
    decoder = H264PocDecoder()
    decoder.add_parameter_set(build_sps(0, frame_mbs_only=False))
    decoder.add_parameter_set(build_pps())
    pair = build_slice(True, True, 0, lsb=0, field=True) + build_slice(
        False, True, 0, lsb=1, field=True, bottom=True
    )
    assert decoder.decode(pair).poc == 0
    second = build_slice(False, True, 1, lsb=4, field=True) + build_slice(
        False, True, 1, lsb=5, field=True, bottom=True
    )
    assert decoder.decode(second).poc == 4
    frame = build_slice(False, False, 2, lsb=2, field=False)
    assert decoder.decode(frame).poc == 2


def test_poc_type_2_is_decoding_order() -> None:
    decoder = H264PocDecoder()
    decoder.add_parameter_set(build_sps(2))
    decoder.add_parameter_set(build_pps())
    pocs = [decoder.decode(build_slice(True, True, 0)).poc]
    for i in range(1, 40):
        pocs.append(decoder.decode(build_slice(False, i % 3 != 0, i % 16)).poc)
    assert pocs == sorted(pocs) and len(set(pocs)) == len(pocs)


def test_slice_naming_an_unknown_pps_or_missing_slice_is_refused() -> None:
    decoder = H264PocDecoder()
    with pytest.raises(RemoteProtocolError, match="unknown PPS"):
        decoder.decode(build_slice(True, True, 0, delta=(0,)))
    with pytest.raises(RemoteProtocolError, match="no slice"):
        decoder.decode((build_sps(0),))
    decoder.add_parameter_set(build_sps(0))  # in band from now on
    decoder.decode((build_pps(), *build_slice(True, True, 0, lsb=0)))


# --- fuzz ---------------------------------------------------------------------------------


def h264_maps() -> tuple[dict[int, h264.SpsOrderInfo], dict[int, h264.PpsOrderInfo]]:
    sps, pps = parameter_sets("libx264", encode("libx264", "mbaff-bf2")[0][0])
    return {0: h264.parse_sps_order(sps)}, {0: h264.parse_pps_order(pps)}


def h265_maps() -> tuple[dict[int, h265.HevcSpsOrderInfo], dict[int, h265.HevcPpsOrderInfo]]:
    _, sps, pps = parameter_sets("libx265", encode("libx265", "bf4")[0][0])
    return {0: h265.parse_sps_order(sps)}, {0: h265.parse_pps_order(pps)}


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 255))
@memory_bounded
def test_fuzz_slice_headers_raise_only_protocol_errors(body: bytes, header: int) -> None:
    for parse, maps, head in (
        (H264SliceHeader.parse, h264_maps(), bytes([header])),
        (H265SliceHeader.parse, h265_maps(), bytes([header & 0x7E, 1])),
    ):
        try:
            parse(head + body, *maps)  # type: ignore[operator]
        except RemoteProtocolError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
@memory_bounded
def test_fuzz_parameter_sets_raise_only_protocol_errors(body: bytes) -> None:
    for parse, head in (
        (h264.parse_sps_order, b"\x67"),
        (h264.parse_pps_order, b"\x68"),
        (h265.parse_sps_order, b"\x42\x01"),
        (h265.parse_pps_order, b"\x44\x01"),
    ):
        try:
            parse(head + body)  # type: ignore[operator]
        except RemoteProtocolError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=6), st.sampled_from(["libx264", "libx265"]))
@memory_bounded
def test_fuzz_decoders_with_garbage_access_units(units: list[bytes], codec: str) -> None:
    packets = encode(codec, "bf4" if codec == "libx265" else "bf2-pyramid")
    decoder = decoder_for(codec)
    decoder.decode(packets[0][0])
    for unit in units:
        try:
            decoder.decode((unit,))
        except RemoteProtocolError:
            pass
