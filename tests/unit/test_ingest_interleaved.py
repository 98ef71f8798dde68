"""A camera session over TCP as the RTSP driver reads it: interleaved bytes cut into reads
anywhere, each read framed by ``MessageReader.take_interleaved`` and pushed through
``SourceIngest.receive_interleaved`` in one call. Whatever the cuts, the frames are those of
the packets pushed one by one; frames whole inside a read are views of it, not copies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.audio.policy import AudioPolicy, AudioStage
from relay.ingest import SourceIngest
from relay.media import Frame
from relay.rtp.rtcp import SenderReport, middle_ntp, seconds_to_ntp
from relay.rtp.sync import Timeline
from relay.rtsp.headers import Headers
from relay.rtsp.message import MessageReader, Response, interleave
from relay.sansio import NEED_DATA
from tests.unit.test_ingest import SESSION, depacketizers, make_ingest

NOW = 1.0  # one arrival time for every read: the frames then depend on the bytes alone
CHANNELS = {0: (0, False), 1: (0, True), 2: (1, False), 3: (1, True)}
REPORT = SenderReport(0x1111, seconds_to_ntp(3_900_000_000.5), 1_000_000, 5, 5000)
KEEPALIVE_REPLY = bytes(Response(200, "OK", Headers([("CSeq", "9")])))

# the session as a camera sends it over TCP: a sender report, a keepalive reply and a stray
# line end among the RTP packets
PACKETS = [interleave(2 * index, data) for index, data, _ in SESSION]
PACKETS[3:3] = [interleave(1, bytes(REPORT))]
PACKETS[40:40] = [KEEPALIVE_REPLY, b"\r\n"]
STREAM = b"".join(PACKETS)
BOUNDARIES = [sum(map(len, PACKETS[:n])) for n in range(len(PACKETS) + 1)]


def signature(frames: list[Frame]) -> list[tuple[int, int, int, bool, object]]:
    return [(f.track.index, f.pts, f.dts, f.key, f.data) for f in frames]


def expected() -> list[tuple[int, int, int, bool, object]]:
    """The packets pushed one by one, the sender report where the stream has it."""
    ingest = make_ingest(reorder=False)
    out: list[Frame] = []
    for n, (index, data, _) in enumerate(SESSION):
        if n == 3:
            ingest.receive_rtcp(0, bytes(REPORT), NOW)
        out += ingest.receive_rtp(index, data, NOW)
    return signature(out)


EXPECTED = expected()


def ingest_reads(reads: list[bytes]) -> tuple[SourceIngest, list[Frame], list[object]]:
    """The driver's loop (``_Session._pump``): per read, the media in one call, then the
    events that are not media."""
    ingest = SourceIngest(depacketizers(), Timeline(), AudioStage(AudioPolicy.COPY, False),
                          name="cam", channels=CHANNELS)
    reader = MessageReader()
    frames: list[Frame] = []
    events: list[object] = []
    for data in reads:
        reader.receive_data(data)
        while True:
            frames += ingest.receive_interleaved(reader.take_interleaved(), NOW)
            event = reader.next_event()
            if event is NEED_DATA:
                break
            events.append(event)
    assert reader.buffered == 0
    return ingest, frames, events


def check(reads: list[bytes]) -> None:
    ingest, frames, events = ingest_reads(reads)
    assert signature(frames) == EXPECTED
    # no receive buffer kept: video NAL units and audio payloads are bytes of their own
    assert all(type(part) is bytes for f in frames
               for part in (f.data if isinstance(f.data, tuple) else (f.data,)))
    assert [type(e) for e in events] == [Response]
    assert ingest.packets_received == len(SESSION) and ingest.packets_garbled == 0
    assert ingest.tracks[0].last_sr == middle_ntp(REPORT.ntp_timestamp)


def test_whole_stream_in_one_read() -> None:
    check([STREAM])


def cut(edges: list[int]) -> list[bytes]:
    edges = [0, *sorted({e for e in edges if 0 < e < len(STREAM)}), len(STREAM)]
    return [STREAM[a:b] for a, b in zip(edges, edges[1:], strict=False)]


@pytest.mark.parametrize("where", [-1, 0, 1, 2, 3, 4, 5, "middle"])
def test_every_frame_cut_at_the_same_place(where: int | str) -> None:
    """Each read ends at the same place of a frame: inside its header, at it, just after it,
    or in the middle of its payload."""
    if where == "middle":
        check(cut([(a + b) // 2 for a, b in zip(BOUNDARIES, BOUNDARIES[1:], strict=False)]))
    else:
        assert isinstance(where, int)
        check(cut([b + where for b in BOUNDARIES]))


def test_split_in_two_at_every_offset() -> None:
    """The first frames (a sender report among them), cut in two at every offset: the same
    frames out, each once, and nothing left over."""
    prefix = b"".join(PACKETS[:8])
    whole = [(channel, bytes(data)) for channel, data in framed([prefix])]
    assert whole == [(p[1], p[4:]) for p in PACKETS[:8]]
    for at in range(1, len(prefix)):
        assert [(c, bytes(d)) for c, d in framed([prefix[:at], prefix[at:]])] == whole


def framed(reads: list[bytes]) -> list[tuple[int, bytes | memoryview]]:
    reader = MessageReader()
    out = []
    for data in reads:
        reader.receive_data(data)
        out += reader.take_interleaved()
        assert reader.next_event() is NEED_DATA
    assert reader.buffered == 0
    return out


def test_byte_by_byte() -> None:
    check([STREAM[i : i + 1] for i in range(len(STREAM))])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, len(STREAM) - 1), max_size=30))
def test_any_cuts(cuts: list[int]) -> None:
    check(cut(cuts))


def test_frames_whole_in_a_read_are_views_of_it() -> None:
    """No copy on the way in: each frame inside the read is a view of the read's bytes; a
    frame cut by the read boundary is joined once, into bytes of its own."""
    reader = MessageReader()
    cut = BOUNDARIES[5] + 10
    first, second = STREAM[:cut], STREAM[cut:BOUNDARIES[9]]
    reader.receive_data(first)
    frames = reader.take_interleaved()
    assert len(frames) == 5 and all(isinstance(d, memoryview) and d.obj is first
                                     for _, d in frames)
    reader.receive_data(second)
    frames = reader.take_interleaved()
    joined = frames[0][1]
    assert isinstance(joined, memoryview) and joined.obj is not second
    assert bytes(joined) == PACKETS[5][4:]
    assert len(frames) == 4 and all(isinstance(d, memoryview) and d.obj is second
                                    for _, d in frames[1:])
