"""SourceIngest driven as the RTSP driver drives it: a camera session (libx264 with B-frames and
AAC, packetized as cameras do) replayed as RTP bytes with arrival times, over TCP (in order) and
UDP (reordered, duplicated, lost)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from fractions import Fraction

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.audio.policy import AudioPolicy, AudioStage
from relay.codecs.h264 import split_annexb
from relay.ingest import SourceIngest
from relay.media import Codec, Frame, Kind
from relay.rtp.aac import AacPacketizer
from relay.rtp.g711 import G711Packetizer
from relay.rtp.packet import RtpPacket
from relay.rtp.registry import Depacketizer, make_depacketizer
from relay.rtp.rtcp import SenderReport, middle_ntp, seconds_to_ntp
from relay.rtp.sync import Timeline

FPS = 25
MTU_PAYLOAD = 500
AAC_CONFIG = "1190"  # AAC-LC, 48 kHz, stereo

Arrival = tuple[int, bytes, float]  # track index, RTP packet, arrival time


def _encode(frames: int) -> list[tuple[int, list[bytes]]]:
    """(pts in 90 kHz, NAL units) of libx264 access units with B-frames, in decoding order."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 320, 180, "yuv420p"
    ctx.time_base = Fraction(1, FPS)
    ctx.options = {"x264-params": "keyint=10:bframes=2", "preset": "ultrafast"}
    out = []
    for i in range(frames + 1):
        picture = None
        if i < frames:
            picture = av.VideoFrame(320, 180, "yuv420p")
            for n, plane in enumerate(picture.planes):
                row = bytes((x * 3 + 7 * i + 50 * n) % 256 for x in range(plane.line_size))
                plane.update(row * (plane.buffer_size // plane.line_size))
            picture.pts = i
        for packet in ctx.encode(picture):
            assert packet.pts is not None
            out.append((packet.pts * 90000 // FPS, [bytes(n) for n in split_annexb(bytes(packet))]))
    return out


def _h264_packets(nals: Sequence[bytes], timestamp: int, sequence: int) -> list[RtpPacket]:
    """Single NAL unit packets, FU-A for the large ones (RFC 6184 5.6, 5.8), marker last."""
    payloads: list[bytes] = []
    for nal in nals:
        if len(nal) <= MTU_PAYLOAD:
            payloads.append(nal)
            continue
        body = nal[1:]
        for at in range(0, len(body), MTU_PAYLOAD):
            header = nal[0] & 0x1F | (0x80 if at == 0 else 0)
            header |= 0x40 if at + MTU_PAYLOAD >= len(body) else 0
            payloads.append(bytes((nal[0] & 0xE0 | 28, header)) + body[at : at + MTU_PAYLOAD])
    return [
        RtpPacket(n == len(payloads) - 1, 96, (sequence + n) % 65536, timestamp, 0x1111, p)
        for n, p in enumerate(payloads)
    ]


def camera_session(frames: int = 30) -> list[Arrival]:
    """A camera's RTP as it arrives: video on track 0, AAC on track 1, by arrival time."""
    arrivals: list[Arrival] = []
    sequence = 65500  # wraps within the session
    for n, (pts, nals) in enumerate(_encode(frames)):
        packets = _h264_packets(nals, (1_000_000 + pts) & 0xFFFFFFFF, sequence)
        sequence += len(packets)
        arrivals += [(0, bytes(p), n / FPS) for p in packets]
    aac = AacPacketizer(97, 0x2222, sequence=100)
    rng = random.Random(1)
    for n in range(frames * 48000 // 1024 // FPS):
        au = bytes(rng.randrange(256) for _ in range(200))
        for packet in aac.packetize([au], 5000 + n * 1024):
            arrivals.append((1, bytes(packet), n * 1024 / 48000 + 0.001))
    arrivals.sort(key=lambda a: a[2])
    return arrivals


SESSION = camera_session()


def depacketizers() -> list[Depacketizer]:
    return [
        make_depacketizer(0, "H264", 90000, 1, {"packetization-mode": "1"}),
        make_depacketizer(1, "MPEG4-GENERIC", 48000, 2,
                          {"mode": "AAC-hbr", "sizelength": "13", "indexlength": "3",
                           "indexdeltalength": "3", "config": AAC_CONFIG}),
    ]


def make_ingest(*, reorder: bool, discontinuity: bool = False) -> SourceIngest:
    return SourceIngest(depacketizers(), Timeline(), AudioStage(AudioPolicy.COPY, False),
                        reorder=reorder, discontinuity=discontinuity, name="cam")


def replay(ingest: SourceIngest, arrivals: Sequence[Arrival]) -> list[Frame]:
    """Everything the ingest hands on, the reorder buffer's waits run out at the end."""
    out: list[Frame] = []
    now = 0.0
    for index, data, now in arrivals:
        out += ingest.receive_rtp(index, data, now)
    for index in range(len(ingest.tracks)):
        out += ingest.release_due(index, now + 1)
    return out


def by_track(frames: list[Frame], kind: Kind) -> list[Frame]:
    return [f for f in frames if f.track.kind is kind]


VIDEO_FRAMES = sum(1 for index, data, _ in SESSION if index == 0 and data[1] & 0x80)
AUDIO_FRAMES = sum(1 for index, _, _ in SESSION if index == 1)


def assert_valid_timeline(frames: list[Frame]) -> None:
    for kind in Kind:
        track = by_track(frames, kind)
        assert all(b.dts > a.dts for a, b in zip(track, track[1:], strict=False))
        assert all(f.pts >= f.dts for f in track)


def test_tcp_session_gives_every_frame_on_a_rising_timeline() -> None:
    ingest = make_ingest(reorder=False)
    frames = replay(ingest, SESSION)
    video, audio = by_track(frames, Kind.VIDEO), by_track(frames, Kind.AUDIO)
    assert (len(video), len(audio)) == (VIDEO_FRAMES, AUDIO_FRAMES)
    assert video[0].key and sum(f.key for f in video) == 3  # keyint=10 over 30 pictures
    assert any(f.pts > f.dts for f in video)  # B-frames: decode times from the POCs
    assert_valid_timeline(frames)
    assert ingest.packets_received == len(SESSION)
    assert (ingest.packets_lost, ingest.frames_dropped, ingest.frames_damaged) == (0, 0, 0)
    assert [t.codec for t in ingest.output_tracks] == [Codec.H264, Codec.AAC]


def swapped(arrivals: Sequence[Arrival], positions: Sequence[int]) -> list[Arrival]:
    """``arrivals`` with the packets at each position and the next swapped, arrival times kept.
    A track's first packet stays first: a receiver cannot know what came before it."""
    out = list(arrivals)
    firsts = {next(n for n, a in enumerate(arrivals) if a[0] == i) for i in (0, 1)}
    for i in positions:
        if i not in firsts and i + 1 not in firsts:
            (a, x, t), (b, y, u) = out[i], out[i + 1]
            out[i], out[i + 1] = (b, y, t), (a, x, u)
    return out


def frame_lists(frames: list[Frame]) -> list[list[tuple[int, int, object]]]:
    return [[(f.pts, f.dts, f.data) for f in by_track(frames, kind)] for kind in Kind]


def test_udp_reordered_and_duplicated_packets_give_the_same_frames() -> None:
    in_order = replay(make_ingest(reorder=True), SESSION)
    shuffled = swapped(SESSION, range(0, len(SESSION) - 1, 3))
    shuffled[40:40] = [shuffled[42], shuffled[35]]  # a duplicate ahead, a stale one
    ingest = make_ingest(reorder=True)
    frames = replay(ingest, shuffled)
    assert frame_lists(frames) == frame_lists(in_order)
    assert ingest.packets_lost == 0 and ingest.frames_dropped == 0
    reorders = [t.reorder for t in ingest.tracks]
    assert sum(r.duplicates + r.late for r in reorders if r is not None) == 2


def test_tcp_duplicate_is_refused_once_by_the_sequence_check() -> None:
    ingest = make_ingest(reorder=False)
    frames = replay(ingest, [*SESSION[:20], SESSION[15], *SESSION[20:]])
    assert len(by_track(frames, Kind.VIDEO)) == VIDEO_FRAMES
    assert sum(t.sequence.late for t in ingest.tracks) == 1
    assert ingest.frames_dropped == 0


def _fragment_in_middle(arrivals: Sequence[Arrival], after: int) -> int:
    """Position of a video FU-A packet that is neither first nor last of its NAL unit."""
    for n, (index, data, _) in enumerate(arrivals):
        payload = data[12:]
        if n > after and index == 0 and payload[0] & 0x1F == 28 and not payload[1] & 0xC0:
            return n
    raise AssertionError("no middle fragment")


@pytest.mark.parametrize("reorder", [False, True], ids=["tcp", "udp"])
def test_a_lost_fragment_damages_its_picture_only(reorder: bool) -> None:
    lost = _fragment_in_middle(SESSION, len(SESSION) // 2)
    ingest = make_ingest(reorder=reorder)
    frames = replay(ingest, [a for n, a in enumerate(SESSION) if n != lost])
    assert ingest.packets_lost == 1
    assert ingest.frames_damaged == 1 and ingest.frames_dropped == 0  # kept, cut at the loss
    assert len(by_track(frames, Kind.VIDEO)) == VIDEO_FRAMES
    assert_valid_timeline(frames)
    video_block = ingest.report_blocks(5.0)[0]
    assert video_block.cumulative_lost == 1 and video_block.fraction_lost > 0


def test_garbage_is_counted_never_raised() -> None:
    pcma = make_depacketizer(0, "PCMA", 8000, 2, {})
    ingest = SourceIngest([pcma], Timeline(), AudioStage(AudioPolicy.COPY, False))
    packets = G711Packetizer(pcma.track, 8, 5).push(bytes(320))
    assert ingest.receive_rtp(0, b"\x80", 0.0) == []  # not RTP
    odd = RtpPacket(True, 8, 65535, 0, 5, b"\xd5" * 3)  # half a stereo sample frame
    assert ingest.receive_rtp(0, bytes(odd), 0.0) == []
    ingest.receive_rtcp(0, b"\x81\xc9", 0.0)  # a truncated RTCP header
    frames = [f for p in packets for f in ingest.receive_rtp(0, bytes(p), 0.02)]
    assert len(frames) == len(packets) == 1
    assert (ingest.packets_garbled, ingest.payloads_bad, ingest.packets_received) == (1, 1, 2)


def test_reconnect_marks_the_first_frame_and_continues_the_timeline() -> None:
    timeline = Timeline()
    stage = AudioStage(AudioPolicy.COPY, False)
    first = SourceIngest(depacketizers(), timeline, stage)
    before = replay(first, SESSION)
    second = SourceIngest(depacketizers(), timeline, stage, discontinuity=True)
    after = replay(second, [(i, d, t + 0.01) for i, d, t in SESSION])  # new session, same RTP
    assert after[0].discontinuity and not any(f.discontinuity for f in after[1:])
    assert not any(f.discontinuity for f in before)
    assert_valid_timeline(before + after)


class Recorded:
    """A real depacketizer whose returned frames are kept, to see what the ingest publishes."""

    def __init__(self, depacketizer: Depacketizer) -> None:
        self.inner = depacketizer
        self.track = depacketizer.track
        self.frames: list[Frame] = []

    @property
    def dropped(self) -> int:
        return self.inner.dropped

    @property
    def bad(self) -> int:
        return self.inner.bad

    def push(self, packet: RtpPacket, lost: int = 0) -> list[Frame]:
        frames = self.inner.push(packet, lost)
        self.frames += frames
        return frames


@pytest.mark.parametrize("reorder", [False, True], ids=["tcp", "udp"])
def test_each_frame_is_built_once_by_its_depacketizer(reorder: bool) -> None:
    # the ingest gives the depacketizer's own frame its stream times, not a copy of it
    recorded = [Recorded(d) for d in depacketizers()]
    ingest = SourceIngest(recorded, Timeline(), AudioStage(AudioPolicy.COPY, False),
                          reorder=reorder)
    frames = replay(ingest, SESSION)
    built = {id(f) for r in recorded for f in r.frames}
    assert len(frames) == VIDEO_FRAMES + AUDIO_FRAMES
    assert all(id(f) in built for f in frames)
    assert_valid_timeline(frames)


def test_sender_report_goes_into_the_receiver_report() -> None:
    ingest = make_ingest(reorder=False)
    replay(ingest, SESSION[:5])
    ntp = seconds_to_ntp(3_900_000_000.5)
    report = SenderReport(0x1111, ntp, 1_000_000, 5, 5000)
    ingest.receive_rtcp(0, bytes(report), 2.0)
    block = ingest.report_blocks(2.5)[0]
    assert block.last_sr == middle_ntp(ntp) and block.delay_since_last_sr == 65536 // 2


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, len(SESSION) - 2), max_size=40),
       st.lists(st.integers(0, len(SESSION) - 1), max_size=5))
def test_udp_any_local_reordering_and_duplication_is_undone(
    swaps: list[int], duplicates: list[int]
) -> None:
    arrivals = swapped(SESSION, swaps)
    for i in duplicates:
        arrivals.insert(i + 1, (*arrivals[i][:2], arrivals[i][2]))
    ingest = make_ingest(reorder=True)
    frames = replay(ingest, arrivals)
    assert ingest.packets_lost == 0 and ingest.frames_dropped == 0
    assert len(by_track(frames, Kind.VIDEO)) == VIDEO_FRAMES
    assert len(by_track(frames, Kind.AUDIO)) == AUDIO_FRAMES
    assert_valid_timeline(frames)
