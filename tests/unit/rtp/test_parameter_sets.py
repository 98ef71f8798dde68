"""In-band parameter sets too large for avcC/hvcC: the access unit carrying one is dropped and
counted, the Track keeps parameter sets that make a sequence header (RTMP, MP4)."""

from __future__ import annotations

from relay.codecs import h265
from relay.media import Codec, Track
from relay.rtmp import flv
from relay.rtp.h264 import H264Depacketizer, H264Packetizer
from relay.rtp.h265 import H265Depacketizer, H265Packetizer
from relay.rtp.nal import MAX_PARAMETER_SET_SIZE

from .h264_samples import PPS_360P_HIGH, SPS_360P_HIGH
from .test_h264 import IDR, P_SLICE
from .test_h265 import IDR as HEVC_IDR
from .test_h265 import PARAMS_360, nal


def pps(size: int) -> bytes:
    """An H.264 PPS NAL unit of ``size`` bytes (pic_parameter_set_id 0; the body is filler)."""
    return PPS_360P_HIGH + b"\x5a" * (size - len(PPS_360P_HIGH))


def test_h264_pps_over_what_avcc_carries_is_dropped_with_its_access_unit() -> None:
    track = Track(0, Codec.H264, 90000, parameter_sets=(SPS_360P_HIGH, PPS_360P_HIGH))
    dep = H264Depacketizer(track)
    pay = H264Packetizer(96, 1)
    frames = []
    for i, nals in enumerate([
        (SPS_360P_HIGH, PPS_360P_HIGH, IDR),
        (SPS_360P_HIGH, pps(MAX_PARAMETER_SET_SIZE + 1), IDR),
        (P_SLICE,),
        (SPS_360P_HIGH, pps(MAX_PARAMETER_SET_SIZE), IDR),  # the largest avcC carries
    ]):
        for packet in pay.packetize(nals, 3000 * i):
            frames += dep.push(packet)
    assert dep.oversized_parameter_sets == 1
    assert [(f.pts, f.key) for f in frames] == [(0, True), (6000, False), (9000, True)]
    assert frames[1].track.parameter_sets == (SPS_360P_HIGH, PPS_360P_HIGH)
    assert dep.track.parameter_sets == (SPS_360P_HIGH, pps(MAX_PARAMETER_SET_SIZE))
    flv.avc_sequence_header(*dep.track.parameter_sets)  # raised before for the oversized PPS


def test_h265_parameter_sets_are_held_to_what_hvcc_is_built_from() -> None:
    track = Track(0, Codec.H265, 90000, parameter_sets=PARAMS_360)
    dep = H265Depacketizer(track)
    pay = H265Packetizer(96, 1)
    vps, sps, _ = PARAMS_360
    big_pps = nal(h265.PPS, b"\xc1" + b"\x5a" * h265.MAX_PARAMETER_SET_SIZE)
    frames = []
    for packet in pay.packetize((vps, sps, big_pps, HEVC_IDR), 0):
        frames += dep.push(packet)
    assert frames == [] and dep.oversized_parameter_sets == 1
    assert dep.track.parameter_sets == PARAMS_360
