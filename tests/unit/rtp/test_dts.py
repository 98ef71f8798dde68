"""DTS from presentation times: libx264 / libx265 packets with their DTS taken away, the DTS
extracted, then muxed into MPEG-TS by FFmpeg, demuxed and decoded with its log watched."""

from __future__ import annotations

import dataclasses
import io
import random
from fractions import Fraction

import av
import av.logging
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.codecs import h264
from relay.codecs.bits import BitReader
from relay.errors import RemoteProtocolError
from relay.media import Codec, Frame, Track
from relay.rtp.dts import DtsExtractor
from tests.unit.codecs.test_poc import Packet, encode, parameter_sets

OFFSET = (1 << 40) + random.Random(7).randrange(1 << 32)  # a timeline far from zero
TB = Fraction(1, 90000)


def track_for(codec: str, packets: tuple[Packet, ...] | list[Packet]) -> Track:
    return Track(
        0, Codec.H264 if codec == "libx264" else Codec.H265, 90000,
        parameter_sets(codec, packets[0][0]), width=160, height=96,
    )


def extract_all(
    codec: str, packets: tuple[Packet, ...] | list[Packet], track: Track | None = None
) -> tuple[list[int | None], DtsExtractor]:
    """The extracted DTS of each packet (None when refused), fed PTS + OFFSET."""
    track = track or track_for(codec, packets)
    extractor = DtsExtractor()
    out: list[int | None] = []
    for data, pts, _, key in packets:
        try:
            out.append(extractor.extract(Frame(track, pts + OFFSET, 0, key, data)) - OFFSET)
        except RemoteProtocolError:
            out.append(None)
    return out, extractor


def assert_valid(packets: tuple[Packet, ...] | list[Packet], dts: list[int | None]) -> None:
    given_dts = [(d, p[1]) for d, p in zip(dts, packets) if d is not None]
    assert all(d <= pts for d, pts in given_dts)
    assert all(a < b for (a, _), (b, _) in zip(given_dts, given_dts[1:]))


def mux_and_decode(codec: str, packets: list[Packet]) -> tuple[int, list[str]]:
    """Muxes (data, pts, dts, key) into MPEG-TS with PyAV, demuxes and decodes it; returns the
    decoded picture count and FFmpeg's warnings and errors."""
    buf = io.BytesIO()
    av.logging.set_level(av.logging.VERBOSE)
    try:
        with av.logging.Capture(True) as logs:
            out = av.open(buf, "w", format="mpegts")
            stream = out.add_stream("h264" if codec == "libx264" else "hevc")
            stream.width, stream.height, stream.time_base = 160, 96, TB
            for data, pts, dts, key in packets:
                packet = av.Packet(h264.to_annexb(data))
                packet.pts, packet.dts, packet.time_base = pts, dts, TB
                packet.stream, packet.is_keyframe = stream, key
                out.mux(packet)
            out.close()
            buf.seek(0)
            decoded, last_dts = 0, None
            with av.open(buf, format="mpegts") as inp:
                for packet in inp.demux(video=0):
                    if packet.dts is not None:
                        assert last_dts is None or packet.dts > last_dts
                        last_dts = packet.dts
                    decoded += len(packet.decode())
    finally:
        av.logging.set_level(None)
    return decoded, [f"{name}: {msg}" for level, name, msg in logs if level <= av.logging.WARNING]


def rebased(packets: tuple[Packet, ...] | list[Packet], dts: list[int | None]) -> list[Packet]:
    base = 900_000  # TS timestamps are 33-bit: keep them near zero
    return [(p[0], p[1] + base, d + base, p[3]) for p, d in zip(packets, dts) if d is not None]


def bumping_dts(packets: tuple[Packet, ...] | list[Packet], depth: int) -> list[int]:
    """DTS by definition for pictures depth.. : the PTS of the (i - depth)-th in output order."""
    ordered = sorted(p[1] for p in packets)
    return [ordered[i - depth] for i in range(depth, len(packets))]


CASES = [
    ("libx264", "bf2-pyramid", 2),
    ("libx264", "bf3-strict", 2),
    ("libx264", "bf3-none", 1),
    ("libx264", "mbaff-bf2", 2),
    ("libx265", "bf4", 2),
    ("libx265", "bf4-closed", 2),
]


@pytest.mark.parametrize(("codec", "case", "depth"), CASES)
def test_reordered_streams_get_the_encoders_dts_and_mux_cleanly(
    codec: str, case: str, depth: int
) -> None:
    packets = encode(codec, case)
    dts, extractor = extract_all(codec, packets)
    assert None not in dts
    assert_valid(packets, dts)
    assert extractor.depth == depth and not extractor.fast_path
    # From the D-th picture on, the DTS is exactly what the encoder chose (x264 and x265 use the
    # same rule); before, it is spread below the first PTS.
    assert dts[depth:] == [p[2] for p in packets[depth:]] == bumping_dts(packets, depth)
    assert any(b[1] < a[1] for a, b in zip(packets, packets[1:]))  # the PTS do go back
    decoded, problems = mux_and_decode(codec, rebased(packets, dts))
    assert problems == []
    assert decoded == len(packets)


def test_the_mux_check_catches_dts_equal_to_pts() -> None:
    packets = encode("libx264", "bf3-strict")
    with pytest.raises(av.error.FFmpegError, match="non monotonically increasing dts"):
        mux_and_decode("libx264", rebased(packets, [p[1] for p in packets]))


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_fast_path_gives_pts_as_dts(codec: str) -> None:
    packets = encode(codec, "zerolatency")
    dts, extractor = extract_all(codec, packets)
    assert extractor.fast_path
    assert dts == [p[1] for p in packets]
    decoded, problems = mux_and_decode(codec, rebased(packets, dts))
    assert (decoded, problems) == (len(packets), [])


def tail_is_restriction(tail: str, want: tuple[int | None, int | None]) -> bool:
    """Whether the bits ``tail`` are exactly a bitstream restriction (after its flag) with the
    reorder fields ``want``."""
    padded = tail + "1"
    padded += "0" * (-len(padded) % 8)
    r = BitReader(int(padded, 2).to_bytes(len(padded) // 8, "big"), "tail")
    try:
        r.skip(1)  # motion_vectors_over_pic_boundaries_flag
        for _ in range(4):
            r.ue()
        got = (r.ue(), r.ue())
    except RemoteProtocolError:
        return False
    return got == want and r.bits_left == len(padded) - len(tail)


def without_restriction(sps: bytes) -> bytes:
    """The SPS with the VUI's bitstream restriction taken out: the reorder depth undeclared."""
    rbsp = h264.unescape_rbsp(sps[1:])
    bits = bin(int.from_bytes(rbsp, "big"))[2:].zfill(len(rbsp) * 8).rstrip("0")[:-1]
    original = h264.parse_sps_order(sps)
    want = (original.max_num_reorder_frames, original.max_dec_frame_buffering)
    for cut in range(len(bits) - 1, 0, -1):
        if bits[cut] == "1" and tail_is_restriction(bits[cut + 1 :], want):
            break
    else:
        raise AssertionError("no bitstream restriction found")
    new_bits = bits[:cut] + "01"  # bitstream_restriction_flag 0, rbsp_stop_one_bit
    new_bits += "0" * (-len(new_bits) % 8)
    escaped = bytearray()
    for byte in int(new_bits, 2).to_bytes(len(new_bits) // 8, "big"):  # 7.4.1
        if escaped[-2:] == b"\x00\x00" and byte <= 3:
            escaped.append(3)
        escaped.append(byte)
    bare = sps[:1] + bytes(escaped)
    info = h264.parse_sps_order(bare)
    assert info.max_num_reorder_frames is None
    assert info == dataclasses.replace(
        original, max_num_reorder_frames=None, max_dec_frame_buffering=None
    )
    return bare


@pytest.mark.parametrize("case", ["bf2-pyramid", "bf3-strict", "bf3-none", "mbaff-bf2", "mbaff-p"])
def test_undeclared_h264_learns_the_depth_from_the_poc(case: str) -> None:
    original = encode("libx264", case)
    sps = parameter_sets("libx264", original[0][0])[0]
    bare = without_restriction(sps)
    packets = [(tuple(bare if n == sps else n for n in d), pts, dts, key)
               for d, pts, dts, key in original]
    dts, extractor = extract_all("libx264", packets)
    assert None not in dts
    assert_valid(packets, dts)
    # The depth actually used (x264 declares 2 for any b-pyramid, even with 2 B-frames where
    # one suffices); after the first GOP the DTS is the bumping rule's for that depth.
    depth = {"bf3-strict": 2, "mbaff-p": 0}.get(case, 1)
    assert extractor.depth == depth and not extractor.fast_path
    if depth == 0:  # POC increasing: nothing to reorder
        assert dts == [p[1] for p in packets]
    second_gop = next(i for i, p in enumerate(packets) if i and p[3])
    assert dts[second_gop:] == bumping_dts(packets, depth)[second_gop - depth :]
    decoded, problems = mux_and_decode("libx264", rebased(packets, dts))
    # FFmpeg's decoder notices the reordering that the SPS does not declare, as it should.
    problems = [p for p in problems if "Increasing reorder buffer" not in p]
    assert (decoded, problems) == (len(packets), [])


def test_in_band_parameter_sets_take_precedence() -> None:
    packets = encode("libx264", "bf3-strict")
    stale = track_for("libx264", encode("libx264", "zerolatency"))  # declares no reordering
    dts, extractor = extract_all("libx264", packets, stale)
    assert None not in dts
    assert_valid(packets, dts)
    assert extractor.depth == 2


def test_lost_frames_keep_the_dts_valid() -> None:
    for codec, case in (("libx264", "bf3-strict"), ("libx265", "bf4")):
        packets = [p for i, p in enumerate(encode(codec, case)) if p[3] or i % 7 != 3]
        dts, _ = extract_all(codec, packets)
        assert None not in dts
        assert_valid(packets, dts)


def test_starting_at_an_open_gop_cra_refuses_its_rasl_pictures() -> None:
    full = encode("libx265", "bf4")
    start = next(i for i, p in enumerate(full) if i and p[3])
    packets = full[start:]
    dts, _ = extract_all("libx265", packets)
    refused = [i for i, d in enumerate(dts) if d is None]
    assert refused and all(packets[i][1] < packets[0][1] for i in refused)
    assert_valid(packets, dts)
    kept = rebased(packets, dts)
    decoded, problems = mux_and_decode("libx265", kept)
    assert (decoded, problems) == (len(kept), [])


def test_garbled_frames_are_refused_without_disturbing_the_rest() -> None:
    packets = encode("libx264", "bf2-pyramid")
    clean, _ = extract_all("libx264", packets)
    track = track_for("libx264", packets)
    extractor = DtsExtractor()
    bad = [
        (b"\x06\x05\x01\x00",),  # SEI only: no slice
        (b"\x01",),  # slice NAL header, no slice header
        (b"\x41\x80" + bytes(6) + b"\x01",),  # exp-Golomb code too long
        (b"\x41\xcd\xff",),  # names PPS 5, unknown
        (b"\x41\x8b\xff",),  # slice_type 10
        (b"\x05\xff",),  # IDR with nal_ref_idc 0
    ]
    got = []
    for i, (data, pts, _, key) in enumerate(packets):
        if i % 9 == 4:
            for garbage in bad:
                with pytest.raises(RemoteProtocolError):
                    extractor.extract(Frame(track, pts + OFFSET, 0, False, garbage))
        got.append(extractor.extract(Frame(track, pts + OFFSET, 0, key, data)) - OFFSET)
    assert got == clean
    assert extractor.refused == len(bad) * len(range(4, len(packets), 9))


def test_fast_path_refuses_a_pts_going_back_then_tracks_the_poc() -> None:
    packets = list(encode("libx264", "zerolatency"))
    packets[5], packets[6] = packets[6], packets[5]  # the SPS says no reordering
    dts, extractor = extract_all("libx264", packets)
    assert dts[6] is None and not extractor.fast_path
    assert_valid(packets, dts)


def test_only_video_codecs() -> None:
    with pytest.raises(RemoteProtocolError, match="not H.264"):
        DtsExtractor().extract(Frame(Track(1, Codec.AAC, 48000), 0, 0, True, b"\x21"))


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([("libx264", "bf3-strict"), ("libx265", "bf4"), ("libx264", "zerolatency")]),
    st.lists(st.integers(-5000, 20000), min_size=1, max_size=60),
    st.lists(st.tuples(st.integers(0, 59), st.binary(max_size=40)), max_size=5),
)
def test_fuzz_any_timestamps_and_garbage_give_valid_dts_or_protocol_errors(
    source: tuple[str, str], steps: list[int], garbage: list[tuple[int, bytes]]
) -> None:
    codec, case = source
    packets = encode(codec, case)
    track = track_for(codec, packets)
    inserts = dict(garbage)
    extractor = DtsExtractor()
    pts = 1 << 62
    results: list[tuple[int, int]] = []
    for i, step in enumerate(steps):
        data, _, _, key = packets[i]
        pts += step
        frames = [Frame(track, pts, 0, key, data)]
        if i in inserts:
            frames.insert(0, Frame(track, pts, 0, False, (inserts[i],)))
        for frame in frames:
            try:
                results.append((extractor.extract(frame), frame.pts))
            except RemoteProtocolError:
                pass
    assert all(d <= p for d, p in results)
    assert all(a < b for (a, _), (b, _) in zip(results, results[1:]))
