"""The RTMP sink's publish session without a network: the driver over trio's memory streams, on
the autojump clock, against the scripted server of the publisher's unit tests (our own sans-IO
handshake, chunk, AMF0 and message code)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest
import trio
import trio.testing

from relay.bus import Stream
from relay.drivers.rtmp_sink import RtmpStats, run_rtmp_sink
from relay.errors import RelayError
from relay.media import Codec, Frame, Track
from relay.rtmp.chunk import ChunkWriter, RtmpMessage
from relay.rtmp.message import Command, MessageType
from tests.unit.rtmp.test_publish import KEY, URL, ScriptedServer

SPS = bytes.fromhex("6742c01ed900a047fec8")
PPS = bytes.fromhex("68ce3c80")
IDR = b"\x65\x88\x84\x00\x33"
VIDEO = Track(0, Codec.H264, 90000, (SPS, PPS), width=320, height=160)
AUDIO = Track(1, Codec.AAC, 48000, audio_config=b"\x11\x90", sample_rate=48000, channels=2)
MEDIA = (MessageType.DATA_AMF0, MessageType.VIDEO, MessageType.AUDIO)

CloseWhen = Callable[[ScriptedServer], bool]


def video(dts: int, key: bool = False, cts: int = 0) -> Frame:
    nals = (SPS, PPS, IDR) if key else (b"\x41\x9a\x02\x03",)
    return Frame(VIDEO, dts + cts, dts, key, nals)


def audio(dts: int) -> Frame:
    return Frame(AUDIO, dts, dts, True, b"\x21\x10\x04")


FRAMES = (
    video(0),  # before the first keyframe: the bus never hands it to the sink
    video(90000, key=True),  # 1 s: the session's time 0
    audio(47040),  # 0.98 s, lagging behind the keyframe: not sent
    audio(48960),  # 1.02 s
    video(93600, cts=3600),  # 1.04 s, shown 40 ms later
    audio(49920),  # 1.04 s
    video(97200),  # 1.08 s
)


def received(server: ScriptedServer) -> list[RtmpMessage]:
    return [m for m, _ in server.received if m.type_id in MEDIA]


def after_first_video(server: ScriptedServer) -> bool:
    return any(m.type_id == MessageType.VIDEO for m, _ in server.received)


def at_connect(server: ScriptedServer) -> bool:
    return any(isinstance(p, Command) and p.name == "connect" for _, p in server.received)


async def serve(sock: trio.StapledStream[trio.abc.SendStream, trio.abc.ReceiveStream],
                server: ScriptedServer, close_when: CloseWhen | None) -> None:
    """The server's side of the connection; ``close_when`` makes it hang up (its sending half,
    as a TCP FIN) once what it has received satisfies it; it reads on until the sink hangs up."""
    hung_up = False
    async with sock:
        while data := await sock.receive_some(65536):
            if hung_up:
                continue
            reply = server.feed(data)
            if close_when is not None and close_when(server):
                await sock.send_eof()
                hung_up = True
            elif reply:
                await sock.send_all(reply)


async def session(server: ScriptedServer, *, close_stream: bool = True,
                  close_when: CloseWhen | None = None,
                  batches: tuple[tuple[Frame, ...], ...] = (FRAMES,),
                  sends: list[bytes] | None = None) -> tuple[RtmpStats, RelayError | None]:
    """Run one publish session against ``server``: the sink's stats, and the error that ended
    it (None if it ended with the stream). Each of ``batches`` is published at once, a second
    apart; ``sends`` gets the bytes of each of the sink's writes."""
    stream = Stream("cam")
    stream.set_tracks([VIDEO, AUDIO])
    stats = RtmpStats(URL.redacted)
    client, far = trio.testing.memory_stream_pair()
    if sends is not None:
        async def record_and_pump() -> None:  # what memory_stream_pair's pump does, recorded
            data = client.send_stream.get_data_nowait()
            sends.append(data)
            far.receive_stream.put_data(data)

        client.send_stream.send_all_hook = record_and_pump

    async def opener(host: str, port: int, *, tls: bool) -> trio.abc.Stream:
        assert (host, port, tls) == ("ingest.example", 1935, False)
        return client

    async def feed() -> None:
        while not stream.statistics().subscribers:  # the sink subscribes once published
            await trio.sleep(0.01)
        for i, batch in enumerate(batches):
            if i:
                await trio.sleep(1)  # the sink has written the batch before
            for frame in batch:
                stream.publish(frame)
        if close_stream:
            stream.close()

    error = None
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, far, server, close_when)
            nursery.start_soon(feed)
            try:
                await run_rtmp_sink(stream, URL, stats, opener=opener)
            except RelayError as exc:
                error = exc
            nursery.cancel_scope.cancel()
    return stats, error


async def test_publish_sequence_then_keyframe_first_and_increasing_times(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = ScriptedServer()
    stats, error = await session(server)
    assert error is None
    assert [(c.name, c.args) for c in server.commands()] == [
        ("connect", ()), ("releaseStream", (KEY,)), ("FCPublish", (KEY,)),
        ("createStream", ()), ("publish", (KEY, "live")),
        ("FCUnpublish", (KEY,)), ("deleteStream", (1.0,)),
    ]
    assert "fourCcList" not in server.commands()[0].command_object  # H.264 needs no Enhanced
    media = received(server)
    assert all(m.stream_id == 1 for m in media)
    # (FLV tag type, its first two body bytes: codec/frame type and packet type, time in ms)
    assert [(m.type_id, m.payload[:2], m.timestamp) for m in media] == [
        (MessageType.DATA_AMF0, b"\x02\x00", 0),  # @setDataFrame onMetaData
        (MessageType.VIDEO, b"\x17\x00", 0),  # AVC sequence header
        (MessageType.VIDEO, b"\x17\x01", 0),  # the keyframe
        (MessageType.AUDIO, b"\xaf\x00", 20),  # AAC sequence header
        (MessageType.AUDIO, b"\xaf\x01", 20),
        (MessageType.VIDEO, b"\x27\x01", 40),
        (MessageType.AUDIO, b"\xaf\x01", 40),
        (MessageType.VIDEO, b"\x27\x01", 80),
    ]
    key, delta = media[2].payload, media[5].payload
    assert key[2:] == b"\x00\x00\x00" + len(IDR).to_bytes(4, "big") + IDR  # no SPS/PPS in band
    assert delta[2:5] == b"\x00\x00\x28"  # composition time 40 ms
    for kind in (MessageType.VIDEO, MessageType.AUDIO):
        times = [m.timestamp for m in media if m.type_id == kind and m.payload[1] == 1]
        assert times == sorted(set(times)), f"{kind.name} times not strictly increasing: {times}"
    assert stats.frames_sent == 5 and stats.frames_dropped == 1
    assert stats.bytes_sent > 1537 + 1536 + sum(len(m.payload) for m in media)


async def test_frames_ready_together_leave_in_one_write_of_their_exact_chunks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    big_key = Frame(VIDEO, 90000, 90000, True, (SPS, PPS, bytes([0x65]) + bytes(9999)))
    first = (video(0), big_key, audio(48960))
    second = FRAMES[4:]
    sends: list[bytes] = []
    server = ScriptedServer()
    stats, error = await session(server, batches=(first, second), sends=sends)
    assert error is None and stats.frames_sent == 5
    media = received(server)
    # metadata, AVC sequence header, keyframe, AAC sequence header, AAC | video, AAC, video
    assert [m.type_id for m in media] == [18, 9, 9, 8, 8, 9, 8, 9]
    writer = ChunkWriter(4096)  # the publisher's chunk size; csids 4-6 carry media only
    one = b"".join(writer.write(m) for m in media[:5])
    two = b"".join(writer.write(m) for m in media[5:])
    at = [i for i, data in enumerate(sends) if data == one]
    in_order = len(at) == 1 and sends[at[0] + 1:at[0] + 2] == [two]
    assert in_order, f"each batch should be one write of its exact chunks; writes: {len(sends)}"
    # the keyframe's 10009-byte body in chunks of 4096: type 3 continuations on csid 6
    key_at = one.index(media[2].payload[:4096])
    assert one[key_at + 4096] == one[key_at + 8193] == 0xC6
    # the first chunk of the second batch: type 1 header on csid 6, delta 40 ms, its length
    assert two[:8] == b"\x46\x00\x00\x28" + len(media[5].payload).to_bytes(3, "big") + b"\x09"


@pytest.mark.parametrize("server,close_when,message", [
    (ScriptedServer(connect_error=True), None,
     "publish refused: NetConnection.Connect.Rejected no app for ***"),
    (ScriptedServer(create_error=True), None,
     "publish refused: createStream refused server refused createStream"),
    (ScriptedServer(("error", "NetStream.Publish.BadName", f"Stream {KEY} already used")), None,
     "publish refused: NetStream.Publish.BadName Stream *** already used"),
    (ScriptedServer(), at_connect,
     "the server closed the connection during connect (wrong application name?)"),
    (ScriptedServer(), after_first_video, "the server closed the connection"),
], ids=["connect _error", "createStream _error", "publish refused", "close at connect",
        "close while publishing"])
async def test_server_error_or_close_ends_the_session_with_one_clear_error(
    autojump_clock: trio.testing.MockClock, server: ScriptedServer,
    close_when: CloseWhen | None, message: str,
) -> None:
    stats, error = await session(server, close_stream=False, close_when=close_when)
    assert error is not None and type(error) is RelayError
    assert str(error) == message
    assert "sekrit" not in str(error)


async def test_waiting_for_the_first_frame_loses_none_of_a_tick(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    """A sink started before its source sees a whole tick's frames published at once (merged
    reads) while it waits for the first: nothing is counted or logged as lost."""
    stream = Stream("cam")

    async def never(host: str, port: int, *, tls: bool = False) -> trio.abc.Stream:
        await trio.sleep_forever()
        raise AssertionError

    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(run_rtmp_sink, stream, URL, RtmpStats(URL.redacted),
                                   opener=never))
        await trio.testing.wait_all_tasks_blocked()
        for frame in FRAMES[1:]:
            stream.publish(frame)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert stream.subscriber_drops == 0
    assert not [r for r in caplog.records if "fell behind" in r.getMessage()]
