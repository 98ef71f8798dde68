"""H.265 over RTP (RFC 7798): packetizer and depacketizer, against each other and libx265/FFmpeg."""

from __future__ import annotations

import base64
from dataclasses import replace

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.codecs import h265
from relay.errors import RemoteProtocolError
from relay.media import Codec, Frame, Track
from relay.rtp import h265 as rtp_h265
from relay.rtp.h265 import H265Depacketizer, H265Packetizer, h265_fmtp, h265_track, make
from relay.rtp.packet import RtpPacket
from tests.unit.codecs.test_h265_codec import (
    PPS_X265,
    SPS_360,
    SPS_1080,
    VPS_360,
    VPS_1080,
    encode_hevc,
    escape,
    nals_of,
)
from tests.unit.memory import memory_bounded
from tests.unit.rtp.sequenced import check_of, push_sequenced

PARAMS_360 = (VPS_360, SPS_360, PPS_X265)
PARAMS_1080 = (VPS_1080, SPS_1080, PPS_X265)
TRACK = Track(index=0, codec=Codec.H265, clock_rate=90000, parameter_sets=PARAMS_360,
              width=640, height=360)
BARE_TRACK = Track(index=0, codec=Codec.H265, clock_rate=90000)


def nal(kind: int, body: bytes = b"\x80", layer: int = 0, tid: int = 1) -> bytes:
    """A NAL unit with a valid 2-byte header (F=0) and an escaped body."""
    header = bytes((kind << 1 | layer >> 5, (layer & 31) << 3 | tid))
    return escape(header + body) + b"\x80"


IDR = nal(h265.IDR_W_RADL, b"\xaf" * 40)  # first_slice_segment_in_pic_flag set
TRAIL = nal(h265.TRAIL_R, b"\x9f" * 40)


def units(nals: list[bytes] | tuple[bytes, ...]) -> tuple[bytes, ...]:
    return tuple(nals)


def payload_type_of(packet: RtpPacket) -> int:
    return (packet.payload[0] >> 1) & 0x3F


def run(depacketizer: H265Depacketizer, packets: list[RtpPacket]) -> list[Frame]:
    return push_sequenced(depacketizer, packets)


# --- one table of cases for packetizer and depacketizer --------------------------------------

CASES = [
    # name, NAL units, MTU, payload types of the packets
    ("single NAL unit", [TRAIL], 1200, [1]),
    ("parameter sets and a slice in one AP", [*PARAMS_360, IDR], 1200, [48]),
    ("AP then single", [*PARAMS_360, nal(19, b"\xaa" * 1150)], 1200, [48, 19]),
    ("fragmented slice", [nal(1, b"\x81" * 3000, layer=5, tid=3)], 1200, [49, 49, 49]),
    ("AP, FUs, AP", [*PARAMS_360, nal(19, b"\xa1" * 2000), nal(39), nal(1)], 1200,
     [48, 49, 49, 48]),
]


@pytest.mark.parametrize("name,nals,mtu,types", CASES, ids=[c[0] for c in CASES])
def test_case_table(name: str, nals: list[bytes], mtu: int, types: list[int]) -> None:
    packetizer = H265Packetizer(96, 0x1234, mtu=mtu)
    opener = packetizer.packetize(units([*PARAMS_360, IDR]), 0)
    packets = packetizer.packetize(units(nals), 3000)
    assert [payload_type_of(p) for p in packets] == types
    assert [p.marker for p in packets] == [False] * (len(types) - 1) + [True]
    assert all(len(bytes(p)) <= mtu for p in packets)
    depacketizer = H265Depacketizer(TRACK)
    frames = run(depacketizer, [RtpPacket.parse(bytes(p)) for p in opener + packets])
    assert len(frames) == 2 and frames[1].pts == frames[1].dts == 3000
    key = any(h265.is_irap(h265.nal_type(n)) for n in nals)
    expected = [*PARAMS_360, *nals] if key and nals[0] != VPS_360 else nals
    assert frames[1].key == key and frames[1].data == units(expected)


def test_fragmentation_unit_layout() -> None:
    big = nal(h265.TRAIL_R, bytes(range(256)) * 10, layer=37, tid=5)
    packets = H265Packetizer(96, 1, mtu=500).packetize(units([big]), 0)
    headers = [bytes(p.payload[:3]) for p in packets]
    # PayloadHdr keeps F, LayerId and TID, with type 49; FU header S/E + the NAL's type
    assert {h[:2] for h in headers} == {bytes((49 << 1 | big[0] & 0x81, big[1]))}
    assert [h[2] for h in headers] == [0x80 | 1] + [1] * (len(packets) - 2) + [0x40 | 1]
    assert b"".join(bytes(p.payload[3:]) for p in packets) == big[2:]


def test_aggregation_packet_header_takes_lowest_layer_and_tid() -> None:
    nals = [nal(39, layer=3, tid=4), nal(1, b"\x90", layer=2, tid=6), nal(40, layer=9, tid=2)]
    (packet,) = H265Packetizer(96, 1).packetize(units(nals), 0)
    assert bytes(packet.payload[:2]) == bytes((48 << 1, 2 << 3 | 2))
    assert bytes(packet.payload[2:4]) == len(nals[0]).to_bytes(2, "big")


def rtp(seq: int, payload: bytes, ts: int = 0, marker: bool = True) -> RtpPacket:
    return RtpPacket(marker=marker, payload_type=96, sequence=seq, timestamp=ts, ssrc=1,
                     payload=payload)


def test_donl_and_dond_fields_are_skipped() -> None:
    sei, idr = nal(39), IDR
    ap = b"\x60\x01" + b"\x00\x07" + len(sei).to_bytes(2, "big") + sei
    ap += b"\x00" + len(idr).to_bytes(2, "big") + idr
    single = TRAIL[:2] + b"\x00\x09" + TRAIL[2:]
    fu = [
        bytes((49 << 1, 1, 0x80 | 1)) + b"\x00\x0a" + TRAIL[2:20],
        bytes((49 << 1, 1, 0x40 | 1)) + TRAIL[20:],
    ]
    depacketizer = H265Depacketizer(TRACK, donl=True)
    frames = run(depacketizer, [rtp(0, ap, 0), rtp(1, single, 1), rtp(2, fu[0], 2, False),
                                rtp(3, fu[1], 2)])
    assert [f.data for f in frames] == [units([*PARAMS_360, sei, idr]), units([TRAIL]),
                                        units([TRAIL])]
    assert depacketizer.dropped == 0


# --- hypothesis round trip -------------------------------------------------------------------

NON_PARAMETER_TYPES = [t for t in range(48) if t not in (32, 33, 34, 35)]


@st.composite
def nal_units(draw: st.DrawFn, kinds: list[int]) -> bytes:
    return nal(
        draw(st.sampled_from(kinds)),
        draw(st.binary(max_size=draw(st.sampled_from([8, 200, 4000])))),
        layer=draw(st.integers(0, 63)),
        tid=draw(st.integers(1, 7)),
    )


@st.composite
def access_units(draw: st.DrawFn) -> list[bytes]:
    nals = draw(st.lists(nal_units(NON_PARAMETER_TYPES), max_size=6))
    nals.insert(draw(st.integers(0, len(nals))), draw(nal_units(list(range(32)))))  # a slice
    if draw(st.booleans()):
        nals = [*PARAMS_360, *nals]
    return nals


@settings(max_examples=200, deadline=None)
@given(
    st.lists(access_units(), min_size=1, max_size=5),
    st.integers(100, 1500),
    st.integers(0, 65535),
    st.booleans(),
)
def test_round_trip(aus: list[list[bytes]], mtu: int, first_seq: int, donl: bool) -> None:
    packetizer = H265Packetizer(96, 7, mtu=mtu, sequence=first_seq, donl=donl)
    depacketizer = H265Depacketizer(TRACK, donl=donl)
    opener = [nal(h265.CRA_NUT, b"\x80\x01")]
    frames = run(depacketizer, packetizer.packetize(units(opener), 0))
    assert [f.data for f in frames] == [units([*PARAMS_360, *opener])]
    for n, au in enumerate(aus, start=1):
        packets = packetizer.packetize(units(au), n * 3000)
        assert all(len(bytes(p)) <= mtu for p in packets)
        frames = run(depacketizer, [RtpPacket.parse(bytes(p)) for p in packets])
        key = any(h265.is_irap(h265.nal_type(x)) for x in au)
        expected = [*PARAMS_360, *au] if key and au[0] != VPS_360 else au
        assert len(frames) == 1
        assert (frames[0].data, frames[0].key, frames[0].pts) == (units(expected), key, n * 3000)
    assert (depacketizer.dropped, check_of(depacketizer).late) == (0, 0)


# --- loss and malformed input ----------------------------------------------------------------


def three_aus(mtu: int = 500) -> tuple[list[list[RtpPacket]], list[bytes]]:
    packetizer = H265Packetizer(96, 1, mtu=mtu)
    aus = [units([*PARAMS_360, IDR]), units([nal(1, b"\x81" * 3000)]), units([TRAIL])]
    return [packetizer.packetize(au, 3000 * i) for i, au in enumerate(aus)], aus


@pytest.mark.parametrize("lost", ["first", "middle", "last"])
def test_lost_fragment_cuts_only_that_access_unit(lost: str) -> None:
    packets, aus = three_aus()
    second = packets[1]
    assert len(second) > 3 and all(payload_type_of(p) == h265.FU for p in second)
    index = {"first": 0, "middle": len(second) // 2, "last": len(second) - 1}[lost]
    del second[index]
    depacketizer = H265Depacketizer(TRACK)
    frames = run(depacketizer, [p for au in packets for p in au])
    if lost == "first":  # no slice header left: nothing to conceal with
        assert [f.data for f in frames] == [aus[0], aus[2]]
        assert (depacketizer.dropped, depacketizer.damaged) == (1, 0)
    else:  # the slice up to the loss, for the decoder to conceal the rest
        assert [f.data for f in frames[::2]] == [aus[0], aus[2]]
        ((whole,), (cut,)) = aus[1], frames[1].data
        assert whole.startswith(cut) and len(cut) < len(whole)
        assert (depacketizer.dropped, depacketizer.damaged) == (0, 1)


def test_access_unit_ends_on_timestamp_change_without_marker() -> None:
    packets, aus = three_aus()
    unmarked = [replace(p, marker=False) for au in packets for p in au]
    frames = run(H265Depacketizer(TRACK), unmarked)
    assert [f.data for f in frames] == aus[:2]


def test_stream_joined_mid_access_unit_waits_for_the_next_one() -> None:
    packetizer = H265Packetizer(96, 1, mtu=500)
    big = packetizer.packetize(units([nal(1, b"\x81" * 3000)]), 0)
    trail = packetizer.packetize(units([TRAIL]), 1)
    idr = packetizer.packetize(units([IDR]), 2)
    depacketizer = H265Depacketizer(TRACK)
    frames = run(depacketizer, [*big[2:], *trail, *idr])
    assert [f.data for f in frames] == [units([*PARAMS_360, IDR])]
    assert depacketizer.dropped == 1  # the tail of the first access unit
    assert depacketizer.waiting_for_keyframe == 1  # TRAIL before any keyframe


def test_keyframe_without_any_parameter_sets_is_held_back() -> None:
    depacketizer = H265Depacketizer(BARE_TRACK)
    assert run(depacketizer, [rtp(0, IDR)]) == []
    assert depacketizer.waiting_for_keyframe == 1
    frames = run(depacketizer, [rtp(1, p.payload, 1, p.marker) for p in
                                H265Packetizer(96, 1).packetize(units([*PARAMS_360, IDR]), 1)])
    assert frames[0].key and frames[0].track.parameter_sets == PARAMS_360


def test_late_duplicate_is_counted_not_used() -> None:
    packets, aus = three_aus(mtu=1500)
    flat = [p for au in packets for p in au]
    depacketizer = H265Depacketizer(TRACK)
    frames = run(depacketizer, [*flat[:3], flat[1], *flat[3:]])
    assert [f.data for f in frames] == aus and check_of(depacketizer).late == 1


FU_START = bytes((49 << 1, 1, 0x80 | 1)) + b"\x81" * 10
FU_MIDDLE = bytes((49 << 1, 1, 1)) + b"\x22" * 10
FU_END = bytes((49 << 1, 1, 0x40 | 1)) + b"\x33" * 10


@pytest.mark.parametrize(
    "payloads",
    [
        [FU_START, FU_START, FU_END],  # a new start before the end
        [bytes((49 << 1, 1, 0xC0 | 1)) + b"\x81"],  # S and E together
        [FU_START, FU_MIDDLE],  # marker inside a fragmented NAL unit
        [FU_START, TRAIL],  # single NAL unit inside a fragmented one
        [FU_START, b"\x60\x01\x00\x03" + TRAIL[:3] + b"\x00\x03" + TRAIL[:3]],  # AP inside FU
        [b"\x60\x01\x00\x03" + TRAIL[:3]],  # AP with one NAL unit
        [b"\x60\x01\x00\x30" + TRAIL[:3] + b"\x00\x03" + TRAIL[:3]],  # size past the end
        [b"\x60\x01\x00\x01\x02\x00\x03" + TRAIL[:3]],  # NAL unit shorter than its header
        [b"\x60\x01\x00\x03" + TRAIL[:3] + b"\x00"],  # truncated size field
        [b"\x02"],  # shorter than the payload header
        [b"\x62\x01"],  # FU without its FU header
        [b"\x60\x01"],  # empty AP
        [b"\x64\x01\x00\x00" + TRAIL],  # PACI
    ],
)
def test_malformed_access_unit_is_dropped_and_counted(payloads: list[bytes]) -> None:
    depacketizer = H265Depacketizer(TRACK)
    packets = [rtp(0, IDR)]
    packets += [rtp(i + 1, p, 1, i == len(payloads) - 1) for i, p in enumerate(payloads)]
    packets.append(rtp(len(payloads) + 1, TRAIL, 2))
    frames = run(depacketizer, packets)
    assert [f.pts for f in frames] == [0, 2]
    assert depacketizer.dropped == 1


def test_header_only_nal_units_pass() -> None:
    eos = bytes((h265.EOS << 1, 1))  # end of sequence: a NAL unit that is all header
    depacketizer = H265Depacketizer(TRACK)
    frames = run(depacketizer, [rtp(0, IDR, 0, False), rtp(1, eos, 0)])
    assert frames[0].data == units([*PARAMS_360, IDR, eos])
    frames = run(H265Depacketizer(TRACK, donl=True), [rtp(0, IDR[:2] + b"\x00\x00" + IDR[2:], 0,
                                                            False), rtp(1, eos + b"\x00\x01", 0)])
    assert frames[0].data == units([*PARAMS_360, IDR, eos])
    packets = H265Packetizer(96, 1).packetize(units([eos]), 0)
    assert [bytes(p.payload) for p in packets] == [eos]


def test_paci_is_counted_as_unsupported() -> None:
    depacketizer = H265Depacketizer(TRACK)
    run(depacketizer, [rtp(0, IDR), rtp(1, b"\x64\x01\x00\x00" + TRAIL, 1)])
    assert depacketizer.unsupported == 1 and depacketizer.dropped == 1


def test_oversized_access_unit_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtp_h265, "MAX_ACCESS_UNIT_SIZE", 2000)
    packets, aus = three_aus()
    depacketizer = H265Depacketizer(TRACK)
    frames = run(depacketizer, [p for au in packets for p in au])
    assert [f.data for f in frames] == [aus[0], aus[2]] and depacketizer.dropped == 1


# --- in-band parameter sets ------------------------------------------------------------------


def test_in_band_parameter_set_change_updates_the_track() -> None:
    packetizer = H265Packetizer(96, 1)
    depacketizer = H265Depacketizer(TRACK)
    frames = run(depacketizer, [
        *packetizer.packetize(units([IDR]), 0),
        *packetizer.packetize(units([*PARAMS_1080, IDR]), 1),
        *packetizer.packetize(units([TRAIL]), 2),
        *packetizer.packetize(units([IDR]), 3),
    ])
    assert [(f.track.width, f.track.height) for f in frames] == [(640, 360)] + [(1920, 1080)] * 3
    assert frames[0].track is TRACK
    assert depacketizer.track.parameter_sets == PARAMS_1080
    assert depacketizer.track.index == TRACK.index and depacketizer.track.codec is Codec.H265
    assert frames[3].data == units([*PARAMS_1080, IDR])


@pytest.mark.parametrize(
    "bad",
    [
        (VPS_1080, SPS_1080[:12], PPS_X265),  # truncated SPS
        (VPS_1080[:10], SPS_1080, PPS_X265),  # truncated VPS: no hvcC could be built
        (VPS_1080, SPS_1080, PPS_X265[:2] + b"\xff" * 5000),  # oversized PPS
    ],
)
def test_bad_in_band_parameter_set_drops_the_access_unit_and_keeps_the_track(
    bad: tuple[bytes, bytes, bytes],
) -> None:
    packetizer = H265Packetizer(96, 1)
    depacketizer = H265Depacketizer(TRACK)
    assert run(depacketizer, packetizer.packetize(units([*bad, IDR]), 0)) == []
    assert depacketizer.dropped == 1 and depacketizer.track is TRACK
    frames = run(depacketizer, packetizer.packetize(units([IDR]), 1))
    assert frames[0].data == units([*PARAMS_360, IDR])  # the old sets, none of the bad ones


# --- fuzz ------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 20),
            st.integers(0, 3),
            st.booleans(),
            st.one_of(
                st.binary(max_size=64),
                st.builds(lambda t, b: bytes((t << 1, 1)) + b,
                          st.sampled_from([1, 19, 32, 33, 34, 48, 49, 50]), st.binary(max_size=64)),
            ),
        ),
        max_size=30,
    ),
    st.booleans(),
    st.sampled_from([TRACK, BARE_TRACK]),
)
def test_fuzz_depacketizer_never_raises(
    packets: list[tuple[int, int, bool, bytes]], donl: bool, track: Track
) -> None:
    depacketizer = H265Depacketizer(track, donl=donl)
    for seq, ts, marker, payload in packets:
        for frame in depacketizer.push(rtp(seq, payload, ts, marker)):
            assert isinstance(frame.data, tuple) and all(frame.data)
    if depacketizer.track.parameter_sets:
        h265.hevc_decoder_configuration(*depacketizer.track.parameter_sets)


@settings(max_examples=300)
@given(st.binary(max_size=200))
@memory_bounded
def test_fuzz_wire_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    depacketizer = H265Depacketizer(TRACK)
    try:
        depacketizer.push(RtpPacket.parse(b"\x80\x60\x00\x01" + bytes(8) + data))
        depacketizer.push(RtpPacket.parse(data))
    except RemoteProtocolError:
        pass


# --- SDP fmtp --------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_track_from_fmtp() -> None:
    fmtp = {"Sprop-VPS": b64(VPS_1080), "sprop-sps": b64(SPS_1080), "sprop-pps": b64(PPS_X265),
            "profile-id": "1"}
    track = h265_track(2, 90000, fmtp)
    assert (track.index, track.codec, track.clock_rate) == (2, Codec.H265, 90000)
    assert track.parameter_sets == PARAMS_1080
    assert (track.width, track.height) == (1920, 1080)


@pytest.mark.parametrize(
    "fmtp",
    [
        {},
        {"sprop-vps": b64(VPS_360), "sprop-sps": b64(SPS_360)},  # no PPS
        {"sprop-vps": b64(VPS_360), "sprop-sps": "!!notbase64", "sprop-pps": b64(PPS_X265)},
        {"sprop-vps": b64(VPS_360), "sprop-sps": b64(PPS_X265), "sprop-pps": b64(PPS_X265)},
        {"sprop-vps": b64(VPS_360), "sprop-sps": b64(SPS_360[:10]), "sprop-pps": b64(PPS_X265)},
        {"sprop-vps": b64(VPS_360[:8]), "sprop-sps": b64(SPS_360), "sprop-pps": b64(PPS_X265)},
    ],
)
def test_track_from_incomplete_or_bad_fmtp_has_no_parameter_sets(fmtp: dict[str, str]) -> None:
    track = h265_track(0, 90000, fmtp)
    assert track.parameter_sets == () and (track.width, track.height) == (0, 0)


def parse_fmtp(text: str) -> dict[str, str]:
    return dict(part.partition("=")[::2] for part in text.split(";"))


def test_fmtp_round_trip() -> None:
    text = h265_fmtp(TRACK)
    params = parse_fmtp(text)
    assert params["profile-id"] == "1" and params["level-id"] == "63"
    assert params["tier-flag"] == "0" and params["profile-space"] == "0"
    assert h265_track(0, 90000, params) == TRACK
    assert h265_fmtp(BARE_TRACK) == ""


def test_make_reads_sprop_max_don_diff() -> None:
    fmtp = {**parse_fmtp(h265_fmtp(TRACK)), "sprop-max-don-diff": "2"}
    depacketizer = make(0, 90000, 1, fmtp)
    assert depacketizer.track == TRACK
    packets = H265Packetizer(96, 1, donl=True).packetize(units([*PARAMS_360, IDR]), 0)
    assert [f.data for f in run(depacketizer, packets)] == [units([*PARAMS_360, IDR])]
    plain = make(0, 90000, 1, {"sprop-max-don-diff": "0"})
    assert run(plain, packets) == []  # DONL read as NAL data: the first AU member looks bogus
    for bad in ("-1", "32768", "x", "1" * 40):
        with pytest.raises(RemoteProtocolError, match="sprop-max-don-diff"):
            make(0, 90000, 1, {"sprop-max-don-diff": bad})


# --- real codec ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080)])
@pytest.mark.parametrize("mtu,donl", [(1200, False), (400, True)])
def test_libx265_through_rtp_decodes_in_ffmpeg(size: tuple[int, int], mtu: int, donl: bool) -> None:
    aus = [(tuple(nals_of(data)), pts, key) for data, pts, key in encode_hevc(*size)]
    packetizer = H265Packetizer(96, 0xBEEF, mtu=mtu, sequence=65500, donl=donl)
    packets = [p for data, pts, _ in aus for p in packetizer.packetize(data, pts * 3600)]
    assert {payload_type_of(p) for p in packets} >= {h265.AP, h265.FU}
    depacketizer = H265Depacketizer(BARE_TRACK, donl=donl)
    frames = run(depacketizer, [RtpPacket.parse(bytes(p)) for p in packets])
    assert depacketizer.dropped == 0
    assert [(f.pts, f.key) for f in frames] == [(pts * 3600, key) for _, pts, key in aus]
    assert [f.data for f in frames] == [data for data, _, _ in aus]
    track = depacketizer.track
    assert (track.width, track.height) == size
    assert track.parameter_sets == aus[0][0][:3]
    decoder = av.CodecContext.create("hevc", "r")
    decoded = []
    for frame in frames:
        decoded += decoder.decode(av.Packet(h265.to_annexb(frame.data)))
    decoded += decoder.decode(None)
    assert len(decoded) == len(aus)
    assert {(f.width, f.height) for f in decoded} == {size}


def test_libx265_joined_mid_stream_starts_at_the_next_keyframe() -> None:
    aus = [(tuple(nals_of(data)), pts, key) for data, pts, key in encode_hevc(640, 360)]
    packetizer = H265Packetizer(96, 1)
    packets = [p for data, pts, _ in aus for p in packetizer.packetize(data, pts * 3600)]
    first_key = next(i for i, (_, _, key) in enumerate(aus) if key and i > 0)
    skip = sum(len(packetizer.packetize(data, 0)) for data, _, _ in aus[:first_key]) - 1
    depacketizer = H265Depacketizer(h265_track(0, 90000, parse_fmtp(h265_fmtp(TRACK))))
    frames = run(depacketizer, packets[skip:])
    assert frames[0].key and len(frames) == len(aus) - first_key
    decoder = av.CodecContext.create("hevc", "r")
    decoded = [d for f in frames for d in decoder.decode(av.Packet(h265.to_annexb(f.data)))]
    decoded += decoder.decode(None)
    assert len(decoded) >= len(frames) - 4  # RASL pictures after a CRA may be skipped
