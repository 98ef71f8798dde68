"""H.264 bitstream helpers (ITU-T H.264) and RTP payload format (RFC 6184)."""

from __future__ import annotations

import base64
import dataclasses

import av
import av.logging
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.codecs import h264
from relay.codecs.h264 import avc_decoder_configuration, parse_sps, split_annexb, to_annexb
from relay.errors import RemoteProtocolError, UnsupportedError
from relay.media import Codec, Frame, Track
from relay.rtp import h264 as rtp_h264
from relay.rtp.h264 import H264Depacketizer, H264Packetizer, h264_fmtp, h264_track
from relay.rtp.packet import RtpPacket
from tests.unit.rtp.sequenced import check_of, push_sequenced

from .h264_samples import (
    PPS_360P_HIGH,
    PPS_1080P_BASELINE,
    SPS_360P_HIGH,
    SPS_642X362_444,
    SPS_720P_422,
    SPS_1080I_HIGH,
    SPS_1080P_BASELINE,
    SPS_1080P_HIGH,
    ExpGolombWriter,
    encode,
    escape,
    nal,
)

SPS, PPS = SPS_360P_HIGH, PPS_360P_HIGH
TRACK = Track(index=0, codec=Codec.H264, clock_rate=90000)
IDR = nal(5, b"\x88" + bytes(range(1, 60)))  # first_mb_in_slice == 0: the '1' bit leads
P_SLICE = nal(1, b"\x9a" + bytes(range(3, 40)))
P_SLICE_2ND = nal(1, b"\x40" + bytes(20))  # first_mb_in_slice == 1: not an AU start
SEI = nal(6, b"\x05\x10" + bytes(16))
AUD = bytes.fromhex("0910")


# ---- Annex B ----------------------------------------------------------------------------------


def test_split_annexb_three_and_four_byte_start_codes() -> None:
    data = b"junk\x00\x00\x00\x01\x67ab\x00\x00\x01\x68cd\x00\x00\x00\x00\x01\x65ef\x00\x00"
    assert [bytes(n) for n in split_annexb(data)] == [b"\x67ab", b"\x68cd", b"\x65ef"]
    assert split_annexb(b"") == [] and split_annexb(b"\x00\x00\x01") == []
    assert to_annexb([b"\x67ab", b"\x68"]) == b"\x00\x00\x00\x01\x67ab\x00\x00\x00\x01\x68"


def test_split_annexb_returns_views_of_the_input() -> None:
    data = b"\x00\x00\x01\x65abc"
    (view,) = split_annexb(data)
    assert isinstance(view, memoryview) and view.obj is data


@given(st.lists(st.tuples(st.integers(1, 23), st.binary(max_size=50)), max_size=8), st.data())
def test_split_annexb_inverts_to_annexb_with_either_start_code(items, data) -> None:
    nals = [nal(kind, body) for kind, body in items]
    stream = b"".join(
        data.draw(st.sampled_from([b"\x00\x00\x01", b"\x00\x00\x00\x01"])) + n for n in nals
    )
    assert [bytes(n) for n in split_annexb(stream)] == nals
    assert [bytes(n) for n in split_annexb(to_annexb(nals))] == nals


# ---- SPS --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sps, profile, level, chroma, progressive, width, height",
    [
        (SPS_1080P_BASELINE, 66, 40, 1, True, 1920, 1080),
        (SPS_1080P_HIGH, 100, 40, 1, True, 1920, 1080),
        (SPS_360P_HIGH, 100, 30, 1, True, 640, 360),
        (SPS_642X362_444, 244, 30, 3, True, 642, 362),
        (SPS_1080I_HIGH, 100, 40, 1, False, 1920, 1080),
        (SPS_720P_422, 122, 31, 2, True, 1280, 720),
    ],
)
def test_parse_sps_of_libx264(sps, profile, level, chroma, progressive, width, height) -> None:
    info = parse_sps(sps)
    assert (info.profile_idc, info.level_idc, info.chroma_format_idc) == (profile, level, chroma)
    assert info.frame_mbs_only is progressive
    assert (info.width, info.height) == (width, height)
    assert info.bit_depth_luma == info.bit_depth_chroma == 8


def test_sps_codec_string() -> None:
    assert parse_sps(SPS_1080P_BASELINE).codec_string == "avc1.42C028"


def build_sps(
    profile: int = 100,
    chroma: int = 1,
    scaling: list[list[int] | None] | None = None,
    poc_type: int = 0,
    poc_cycle: list[int] = (),
    width_mbs: int = 120,
    height_units: int = 68,
    frame_mbs_only: bool = True,
    crop: tuple[int, int, int, int] | None = (0, 0, 0, 4),
) -> bytes:
    w = ExpGolombWriter()
    w.u(8, profile)
    w.u(8, 0)
    w.u(8, 40)
    w.ue(0)
    if profile in h264.HIGH_PROFILES:
        w.ue(chroma)
        if chroma == 3:
            w.u(1, 0)
        w.ue(2)  # 10-bit luma
        w.ue(2)
        w.u(1, 0)
        w.u(1, scaling is not None)
        for deltas in scaling or []:
            w.u(1, deltas is not None)
            for d in deltas or []:
                w.se(d)
    w.ue(4)
    w.ue(poc_type)
    if poc_type == 0:
        w.ue(6)
    elif poc_type == 1:
        w.u(1, 0)
        w.se(-3)
        w.se(7)
        w.ue(len(poc_cycle))
        for v in poc_cycle:
            w.se(v)
    w.ue(4)
    w.u(1, 0)
    w.ue(width_mbs - 1)
    w.ue(height_units - 1)
    w.u(1, frame_mbs_only)
    if not frame_mbs_only:
        w.u(1, 1)
    w.u(1, 1)
    w.u(1, crop is not None)
    for c in crop or ():
        w.ue(c)
    w.u(1, 0)  # no VUI
    w.u(1, 1)  # rbsp_stop_one_bit
    return b"\x67" + escape(bytes(w))


def test_parse_sps_with_scaling_lists_and_poc_cycle() -> None:
    # list 0: a delta of -8 makes nextScale 0, which ends the list after one coefficient
    flat16 = [0] * 16
    scaling: list[list[int] | None] = [[-8], flat16, None, None, None, None, [0] * 64, None]
    sps = build_sps(scaling=scaling, poc_type=1, poc_cycle=[1, -2, 3])
    info = parse_sps(sps)
    assert (info.width, info.height, info.bit_depth_luma) == (1920, 1080, 10)


@given(
    chroma=st.integers(0, 3),
    width_mbs=st.integers(1, 200),
    height_units=st.integers(1, 100),
    frame_mbs_only=st.booleans(),
    crop=st.tuples(*[st.integers(0, 3)] * 4),
    profile=st.sampled_from([66, 77, 88, 100, 110, 122, 244]),
)
def test_parse_sps_cropping_table(chroma, width_mbs, height_units, frame_mbs_only, crop, profile):
    if profile not in h264.HIGH_PROFILES:
        chroma = 1
    sub_w = {0: 1, 1: 2, 2: 2, 3: 1}[chroma]
    sub_h = {0: 1, 1: 2, 2: 1, 3: 1}[chroma] * (2 - frame_mbs_only)
    width = width_mbs * 16 - sub_w * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_units * 16 - sub_h * (crop[2] + crop[3])
    sps = build_sps(profile, chroma, None, 2, (), width_mbs, height_units, frame_mbs_only, crop)
    if width <= 0 or height <= 0:
        with pytest.raises(RemoteProtocolError):
            parse_sps(sps)
    else:
        info = parse_sps(sps)
        assert (info.width, info.height) == (width, height)


def test_parse_sps_rejects_garbage() -> None:
    for bad in (b"", b"\x67", b"\x68\x64\x00\x1e\xac", b"\x67\x64\x00\x1e" + bytes(10)):
        with pytest.raises(RemoteProtocolError, match="H.264 SPS"):
            parse_sps(bad)
    with pytest.raises(RemoteProtocolError, match="over"):
        parse_sps(build_sps(width_mbs=2000))
    for end in range(len(SPS_1080P_HIGH)):  # every truncation: parsed or refused, nothing else
        try:
            parse_sps(SPS_1080P_HIGH[:end])
        except RemoteProtocolError:
            pass


# ---- avcC -------------------------------------------------------------------------------------


def test_avc_decoder_configuration_layout() -> None:
    avcc = avc_decoder_configuration(SPS, PPS)
    assert avcc[:6] == bytes((1, 0x64, 0x00, 0x1E, 0xFF, 0xE1))
    n = len(SPS)
    assert avcc[6:8] == n.to_bytes(2, "big") and avcc[8 : 8 + n] == SPS
    assert avcc[8 + n] == 1 and avcc[9 + n : 11 + n] == len(PPS).to_bytes(2, "big")
    assert avcc[11 + n : 11 + n + len(PPS)] == PPS
    assert avcc[11 + n + len(PPS) :] == bytes((0xFD, 0xF8, 0xF8, 0))  # high profile, 4:2:0, 8 bit
    baseline = avc_decoder_configuration(SPS_1080P_BASELINE, PPS_1080P_BASELINE)
    assert len(baseline) == 11 + len(SPS_1080P_BASELINE) + len(PPS_1080P_BASELINE)


def test_avcc_and_length_prefixed_nals_decode_with_ffmpeg() -> None:
    units = encode(640, 360, 5, (("x264-params", "keyint=25:bframes=0"),))
    nals = [bytes(n) for n in split_annexb(units[0])]
    sps = next(n for n in nals if h264.nal_type(n) == h264.SPS)
    pps = next(n for n in nals if h264.nal_type(n) == h264.PPS)
    ctx = av.CodecContext.create("h264", "r")
    ctx.extradata = avc_decoder_configuration(sps, pps)
    decoded = []
    for unit in units:
        avcc_unit = b"".join(len(n).to_bytes(4, "big") + n for n in split_annexb(unit))
        decoded += ctx.decode(av.Packet(avcc_unit))
    decoded += ctx.decode(None)
    assert len(decoded) == 5 and (decoded[0].width, decoded[0].height) == (640, 360)


# ---- RTP: packetizer and depacketizer share these cases ---------------------------------------

CASES = [
    # name, NAL units of one access unit, mtu, expected RTP payload types (first byte & 0x1f)
    ("small access unit in one packet", [SPS, PPS, IDR], 1200, [24]),
    (
        "parameter sets aggregated",
        [SPS, PPS, nal(5, b"\x88" + bytes(range(1, 235)) * 5)],
        1200,
        [24, 5],
    ),
    ("small slices aggregated", [P_SLICE, SEI], 1200, [24]),
    ("single", [P_SLICE], 1200, [1]),
    ("fragmented", [SPS, PPS, nal(5, b"\x88" + bytes(range(256)) * 10)], 1200, [24, 28, 28, 28]),
    ("tiny mtu", [SPS, PPS, IDR], 40, [7, 8, 28, 28, 28]),
]


@pytest.mark.parametrize("name, nals, mtu, kinds", CASES, ids=[c[0] for c in CASES])
def test_packetizer(name: str, nals: list[bytes], mtu: int, kinds: list[int]) -> None:
    packetizer = H264Packetizer(96, 0x1234, mtu=mtu, sequence=65534)
    packets = packetizer.packetize(nals, 0x1_0000_0005)
    assert [p.payload[0] & 0x1F for p in packets] == kinds
    assert [p.marker for p in packets] == [False] * (len(packets) - 1) + [True]
    assert [p.sequence for p in packets] == [(65534 + i) % 65536 for i in range(len(packets))]
    assert all(p.timestamp == 5 and p.ssrc == 0x1234 and p.payload_type == 96 for p in packets)
    assert all(len(bytes(p)) <= mtu for p in packets)
    if 28 in kinds:
        fu = [p.payload for p in packets if p.payload[0] & 0x1F == 28]
        assert fu[0][1] & 0xC0 == 0x80 and fu[-1][1] & 0xC0 == 0x40
        assert all(f[1] & 0xC0 == 0 for f in fu[1:-1])


@pytest.mark.parametrize("name, nals, mtu, kinds", CASES, ids=[c[0] for c in CASES])
def test_depacketizer_inverts_packetizer(name, nals, mtu, kinds) -> None:
    track = dataclasses.replace(TRACK, parameter_sets=(SPS, PPS), width=640, height=360)
    d = H264Depacketizer(track)
    d._have_keyframe = True  # the cases include lone P frames
    packets = H264Packetizer(96, 1, mtu=mtu).packetize(nals, 3000)
    frames = [f for p in packets for f in d.push(p)]
    assert len(frames) == 1
    assert frames[0].data == tuple(nals) and frames[0].pts == frames[0].dts == 3000
    assert frames[0].key == (IDR in nals or any(n[0] & 0x1F == 5 for n in nals))
    assert d.dropped == 0


def rtp(payload: bytes, seq: int, ts: int = 1000, marker: bool = False) -> RtpPacket:
    return RtpPacket(marker, 96, seq % 65536, ts, 1, payload)


def fu_a(nal_unit: bytes, pieces: int) -> list[bytes]:
    body = nal_unit[1:]
    step = -(-len(body) // pieces)
    chunks = [body[i : i + step] for i in range(0, len(body), step)]
    out = []
    for i, chunk in enumerate(chunks):
        header = (
            nal_unit[0] & 0x1F | (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0)
        )
        out.append(bytes((nal_unit[0] & 0xE0 | 28, header)) + chunk)
    return out


def stap_a(*nals: bytes) -> bytes:
    return b"\x78" + b"".join(len(n).to_bytes(2, "big") + n for n in nals)


def push_all(d: H264Depacketizer, packets: list[RtpPacket]) -> list[Frame]:
    return push_sequenced(d, packets)


def test_keyframe_gets_parameter_sets_from_sdp_and_aud_is_removed() -> None:
    track = h264_track(0, 90000, {"packetization-mode": "1", "sprop-parameter-sets": h264_sprop()})
    d = H264Depacketizer(track)
    (frame,) = push_all(d, [rtp(AUD, 1), rtp(IDR, 2, marker=True)])
    assert frame.key and frame.data == (SPS, PPS, IDR)
    assert frame.track is track


def h264_sprop() -> str:
    return ",".join(base64.b64encode(x).decode() for x in (SPS, PPS))


def test_frames_before_first_keyframe_are_dropped_and_counted() -> None:
    d = H264Depacketizer(TRACK)
    assert push_all(d, [rtp(P_SLICE, 1, 0, True), rtp(IDR, 2, 3000, True)]) == []
    assert d.waiting_for_keyframe == 2  # the keyframe too: no parameter sets known yet
    frames = push_all(d, [rtp(stap_a(SPS, PPS), 3, 6000), rtp(IDR, 4, 6000, True)])
    assert [f.key for f in frames] == [True]
    assert d.track.parameter_sets == (SPS, PPS)
    assert (d.track.width, d.track.height) == (640, 360)
    (p,) = push_all(d, [rtp(P_SLICE, 5, 9000, True)])
    assert not p.key and p.data == (P_SLICE,) and p.track is d.track


def test_in_band_parameter_set_change_makes_a_new_track() -> None:
    d = H264Depacketizer(
        dataclasses.replace(TRACK, parameter_sets=(SPS, PPS), width=640, height=360)
    )
    first = d.track
    push_all(d, [rtp(stap_a(SPS, PPS, IDR), 1, 0, True)])
    assert d.track is first  # same parameter sets: same track
    (frame,) = push_all(d, [rtp(stap_a(SPS_1080P_HIGH, PPS, IDR), 2, 3000, True)])
    assert d.track.parameter_sets == (SPS_1080P_HIGH, PPS) and d.track.width == 1920
    assert frame.track is d.track and d.track.index == first.index


def test_access_unit_ends_on_timestamp_change_without_marker() -> None:
    d = H264Depacketizer(dataclasses.replace(TRACK, parameter_sets=(SPS, PPS)))
    assert push_all(d, [rtp(IDR, 1, 0)]) == []
    (frame,) = push_all(d, [rtp(P_SLICE, 2, 3000)])
    assert frame.key and frame.pts == 0
    frames = push_all(d, [rtp(P_SLICE, 3, 6000, True)])  # ends the AU at 3000 and its own
    assert [f.pts for f in frames] == [3000, 6000]


def test_fu_a_reassembly_in_several_pieces() -> None:
    big = nal(5, b"\x88" + bytes(range(200)) * 30)
    d = H264Depacketizer(dataclasses.replace(TRACK, parameter_sets=(SPS, PPS)))
    pieces = fu_a(big, 7)
    packets = [rtp(p, i, marker=i == len(pieces) - 1) for i, p in enumerate(pieces)]
    (frame,) = push_all(d, packets)
    assert frame.data == (SPS, PPS, big)


def keyed() -> H264Depacketizer:
    d = H264Depacketizer(dataclasses.replace(TRACK, parameter_sets=(SPS, PPS)))
    assert len(push_all(d, [rtp(IDR, 0, 0, True)])) == 1
    return d


def test_gap_inside_a_fragmented_slice_keeps_it_cut_at_the_loss() -> None:
    d = keyed()
    slice_ = nal(1, b"\x9a" + bytes(range(250)) * 4)
    pieces = fu_a(slice_, 4)
    packets = [rtp(p, 1 + i, 3000, i == 3) for i, p in enumerate(pieces)]
    del packets[2]
    (damaged,) = push_all(d, packets)
    # the header and the first two fragments, for the decoder to conceal the rest
    kept = len(slice_) - sum(len(p) - 2 for p in pieces[2:])
    assert damaged.data == (slice_[:kept],) and not damaged.key
    assert (d.damaged, d.dropped) == (1, 0)
    (frame,) = push_all(d, [rtp(P_SLICE, 5, 6000, True)])  # starts cleanly after the loss
    assert frame.pts == 6000 and (d.damaged, d.dropped) == (1, 0)


@given(st.sets(st.integers(0, 7), max_size=8))
def test_any_loss_in_a_fragmented_slice_passes_a_prefix_or_nothing(lost: set[int]) -> None:
    d = keyed()
    slice_ = nal(1, b"\x9a" + bytes(range(1, 200)) * 5)
    pieces = fu_a(slice_, 8)
    packets = [rtp(p, 1 + i, 3000, i == 7) for i, p in enumerate(pieces) if i not in lost]
    frames = push_all(d, [*packets, rtp(P_SLICE, 9, 6000, True)])
    assert frames[-1].pts == 6000
    for frame in frames[:-1]:  # the cut slice: its start, up to the first loss
        (cut,) = frame.data
        assert slice_.startswith(cut) and cut
    assert len(frames) == 2 - (0 in lost)
    # a picture none of whose packets arrived is in packets_lost only: nothing was seen of it
    dropped = 0 in lost and len(lost) < len(pieces)
    assert (d.damaged, d.dropped) == (int(bool(lost) and 0 not in lost), int(dropped))


def test_lost_first_fragment_drops_the_frame_when_no_slice_is_left() -> None:
    d = keyed()
    pieces = fu_a(nal(1, b"\x9a" + bytes(range(250)) * 4), 4)
    packets = [rtp(p, 1 + i, 3000, i == 3) for i, p in enumerate(pieces)]
    assert push_all(d, packets[1:]) == []  # a slice without its header is no use
    assert (d.damaged, d.dropped) == (0, 1)
    assert len(push_all(d, [rtp(P_SLICE, 5, 6000, True)])) == 1


def test_lost_fragment_of_a_parameter_set_is_not_kept_cut() -> None:
    d = keyed()
    pieces = fu_a(nal(8, bytes(range(1, 200))), 3)  # a long PPS, fragmented
    packets = [rtp(p, 1 + i, 3000) for i, p in enumerate(pieces)]
    del packets[1]
    (frame,) = push_all(d, [*packets, rtp(P_SLICE, 4, 3000, True)])
    assert frame.data == (P_SLICE,) and d.damaged == 1


def test_loss_of_an_access_unit_start_keeps_the_slices_that_arrived() -> None:
    d = keyed()
    # seq 1 (first slice of the AU at 3000) is lost; the second slice is the decoder's to use
    (damaged,) = push_all(d, [rtp(P_SLICE_2ND, 2, 3000, True)])
    assert damaged.data == (P_SLICE_2ND,)
    assert (d.damaged, d.dropped) == (1, 0)
    assert len(push_all(d, [rtp(P_SLICE, 3, 6000, True)])) == 1


def test_missing_marker_and_loss_keeps_the_open_access_unit_as_damaged() -> None:
    d = keyed()
    assert push_all(d, [rtp(P_SLICE, 1, 3000)]) == []  # its marker packet (2) is lost
    assert [f.pts for f in push_all(d, [rtp(P_SLICE, 3, 6000, True)])] == [3000, 6000]
    assert (d.damaged, d.dropped) == (1, 0)


def test_fu_a_without_start_or_end_is_dropped() -> None:
    d = keyed()
    pieces = fu_a(nal(1, b"\x9a" + bytes(100)), 3)
    assert push_all(d, [rtp(pieces[1], 1, 3000), rtp(pieces[2], 2, 3000, True)]) == []
    assert d.dropped == 1
    assert push_all(d, [rtp(pieces[0], 3, 6000), rtp(pieces[1], 4, 6000, True)]) == []
    assert d.dropped == 2
    assert push_all(d, [rtp(pieces[0], 5, 9000), rtp(P_SLICE, 6, 9000, True)]) == []
    assert d.dropped == 3
    assert len(push_all(d, [rtp(P_SLICE, 7, 12000, True)])) == 1


def test_malformed_stap_a_and_interleaved_types() -> None:
    d = keyed()
    assert push_all(d, [rtp(b"\x78\x00\x09\x67", 1, 3000, True)]) == []  # size past the end
    assert push_all(d, [rtp(b"\x78\x00\x00", 2, 6000, True)]) == []  # zero size
    assert d.dropped == 2
    for i, kind in enumerate((25, 26, 27, 29)):
        assert push_all(d, [rtp(bytes((0x60 | kind, 0x80, 1, 2, 3)), 3 + i, 9000 + i, True)]) == []
    assert d.unsupported == 4 and d.dropped == 6
    assert push_all(d, [rtp(b"\x1e\x01", 7, 20000), rtp(P_SLICE, 8, 20000, True)])  # 30: ignored


def test_bad_in_band_sps_drops_the_access_unit() -> None:
    d = keyed()
    assert push_all(d, [rtp(stap_a(b"\x67\x64", PPS, IDR), 1, 3000, True)]) == []
    assert d.dropped == 1 and d.track.parameter_sets == (SPS, PPS)


def test_parameter_sets_alone_are_kept_for_the_next_keyframe() -> None:
    d = H264Depacketizer(TRACK)
    assert push_all(d, [rtp(stap_a(SPS, PPS), 1, 0, True)]) == []  # a marker after SPS/PPS
    (frame,) = push_all(d, [rtp(IDR, 2, 0, True)])
    assert frame.key and frame.data == (SPS, PPS, IDR)
    assert d.dropped == 0 and d.waiting_for_keyframe == 0


def test_stale_and_duplicate_packets_are_ignored() -> None:
    d = keyed()
    assert len(push_all(d, [rtp(P_SLICE, 1, 3000, True), rtp(P_SLICE, 1, 3000, True)])) == 1
    assert check_of(d).late == 1 and d.dropped == 0


def test_access_unit_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtp_h264, "MAX_ACCESS_UNIT_SIZE", 1000)
    d = keyed()
    big = nal(1, b"\x9a" + bytes(range(200)) * 6)
    packets = H264Packetizer(96, 1, sequence=1).packetize([big], 3000)
    assert push_all(d, packets) == [] and d.dropped == 1
    packets = H264Packetizer(96, 1, mtu=200, sequence=1 + len(packets)).packetize(
        [big], 6000
    )
    assert push_all(d, packets) == [] and d.dropped == 2
    assert len(push_all(d, [rtp(P_SLICE, packets[-1].sequence + 1, 9000, True)])) == 1


def test_first_packet_mid_access_unit_is_not_trusted() -> None:
    d = H264Depacketizer(dataclasses.replace(TRACK, parameter_sets=(SPS, PPS)))
    idr_2nd = nal(5, b"\x40" + bytes(30))
    assert push_all(d, [rtp(idr_2nd, 10, 0, True)]) == []
    assert d.dropped == 1
    assert len(push_all(d, [rtp(IDR, 11, 3000, True)])) == 1


# ---- round trips ------------------------------------------------------------------------------


def nal_units(kinds: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 19, 20, 21)):
    return st.builds(
        lambda kind, nri, body: nal(kind, body, nri),
        st.sampled_from(kinds),
        st.integers(0, 3),
        st.binary(min_size=0, max_size=20000),
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(nal_units(), max_size=6), st.integers(100, 1500), st.integers(0, 2**32 - 1))
def test_any_access_unit_survives_packetize_depacketize(nals, mtu, timestamp) -> None:
    au = [SPS, PPS, IDR, *nals]
    packetizer = H264Packetizer(96, 7, mtu=mtu, sequence=timestamp % 65536)
    packets = packetizer.packetize(au, timestamp)
    assert all(len(bytes(p)) <= mtu for p in packets)
    d = H264Depacketizer(TRACK)
    frames = [f for p in packets for f in d.push(RtpPacket.parse(bytes(p)))]
    assert len(frames) == 1 and frames[0].key
    assert frames[0].data == tuple(au) and frames[0].pts == timestamp


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.lists(nal_units((1, 6, 12)), max_size=3), min_size=1, max_size=5),
    st.integers(100, 1500),
)
def test_a_stream_of_access_units_round_trips(aus, mtu) -> None:
    packetizer = H264Packetizer(96, 7, mtu=mtu, sequence=65530)
    d = H264Depacketizer(TRACK)
    stream = [[SPS, PPS, IDR, *aus[0]]] + [[P_SLICE, *au] for au in aus[1:]]
    got = []
    for i, au in enumerate(stream):
        got += [f for p in packetizer.packetize(au, i * 3000) for f in d.push(p)]
    assert [f.data for f in got] == [tuple(au) for au in stream]
    assert [f.pts for f in got] == [i * 3000 for i in range(len(stream))]


# ---- real streams -----------------------------------------------------------------------------


def decode(units: list[bytes]) -> list[bytes]:
    """Decodes Annex B access units with FFmpeg; each picture's planes, failing on errors."""
    ctx = av.CodecContext.create("h264", "r")
    pictures = []
    with av.logging.Capture() as logs:
        for unit in [*units, None]:
            for frame in ctx.decode(av.Packet(unit) if unit is not None else None):
                pictures.append(b"".join(bytes(p) for p in frame.planes))
    errors = [line for line in logs if line[0] <= av.logging.ERROR]
    assert errors == []
    return pictures


@pytest.mark.parametrize(
    "width, height, options",
    [
        (640, 360, (("x264-params", "keyint=25"),)),
        (640, 360, (("x264-params", "keyint=10:slices=4:bframes=2"),)),
        (1920, 1080, (("x264-params", "keyint=25"), ("preset", "ultrafast"))),
    ],
)
def test_libx264_stream_through_rtp_decodes_identically(width, height, options) -> None:
    units = encode(width, height, 30, options)
    aus = [tuple(map(bytes, split_annexb(u))) for u in units]  # the camera's Annex B, split once
    sps = next(n for n in aus[0] if h264.nal_type(n) == h264.SPS)
    info = parse_sps(sps)
    assert (info.width, info.height) == (width, height)
    packetizer = H264Packetizer(96, 1, mtu=1200)
    d = H264Depacketizer(TRACK)
    frames = []
    for i, au in enumerate(aus):
        frames += [f for p in packetizer.packetize(au, i * 3600) for f in d.push(p)]
    assert len(frames) == len(units) and frames[0].key
    assert sum(f.key for f in frames) == sum(
        any(h264.nal_type(n) == h264.IDR for n in au) for au in aus
    )
    assert (d.track.width, d.track.height) == (width, height)
    assert decode([to_annexb(f.data) for f in frames]) == decode(units)
    assert len(decode(units)) == 30


# ---- SDP --------------------------------------------------------------------------------------


def test_h264_track_and_fmtp_round_trip() -> None:
    fmtp = {
        "Packetization-Mode": "1",
        "sprop-parameter-sets": h264_sprop(),
        "profile-level-id": "64001E",
    }
    track = h264_track(2, 90000, fmtp)
    assert track.index == 2 and track.codec is Codec.H264 and track.clock_rate == 90000
    assert track.parameter_sets == (SPS, PPS) and (track.width, track.height) == (640, 360)
    text = h264_fmtp(track)
    assert "profile-level-id=64001E" in text
    again = h264_track(2, 90000, dict(item.split("=", 1) for item in text.split(";")))
    assert again == track
    assert h264_fmtp(TRACK) == "packetization-mode=1"


def test_h264_track_tolerates_bad_sprop_and_refuses_interleaving() -> None:
    assert h264_track(0, 90000, {"sprop-parameter-sets": "!!!,???"}).parameter_sets == ()
    assert h264_track(0, 90000, {"sprop-parameter-sets": "Z2QA,aOvjyyLA"}).parameter_sets == ()
    assert h264_track(0, 90000, {}) == TRACK
    with pytest.raises(UnsupportedError, match="packetization-mode 2"):
        h264_track(0, 90000, {"packetization-mode": "2"})
