"""The publisher against a scripted server built from our own chunk stream and AMF0 code."""

from __future__ import annotations

from typing import Any

import pytest

from relay.errors import LocalProtocolError, RemoteProtocolError
from relay.rtmp import amf0
from relay.rtmp.chunk import ChunkReader, ChunkWriter, RtmpMessage
from relay.rtmp.message import (
    Acknowledgement,
    Command,
    MessageType,
    SetChunkSize,
    SetPeerBandwidth,
    UserControl,
    UserControlEvent,
    WindowAckSize,
    parse_message,
)
from relay.rtmp.publish import (
    Connected,
    Event,
    MessageSkipped,
    PeerClosed,
    PublishFailed,
    PublishStarted,
    RtmpPublisher,
    State,
    StatusReceived,
)
from relay.rtmp.url import RtmpUrl
from relay.sansio import NEED_DATA

KEY = "sekrit-key?token=abc"
URL = RtmpUrl.parse(f"rtmp://ingest.example/live/{KEY}")


class ScriptedServer:
    """Answers like nginx-rtmp; ``publish_status`` picks the onStatus answer to publish."""

    def __init__(self, publish_status: tuple[str, str, str] = (
        "status", "NetStream.Publish.Start", "Start publishing"), connect_error: bool = False,
        window: int = 5000, create_error: bool = False) -> None:
        self.create_error = create_error
        self.reader = ChunkReader()
        self.writer = ChunkWriter()
        self.handshake = bytearray()
        self.shook = False
        self.received: list[Any] = []
        self.publish_status = publish_status
        self.connect_error = connect_error
        self.window = window

    def send(self, *items: Any) -> bytes:
        out = b""
        for item in items:
            message = item if isinstance(item, RtmpMessage) else item.to_message()
            out += self.writer.write(message)
            if isinstance(item, SetChunkSize):
                self.writer.set_chunk_size(item.size)
        return out

    def feed(self, data: bytes) -> bytes:
        if not self.shook:
            self.handshake += data
            if len(self.handshake) < 1537 + 1536:
                out = b""
                if len(self.handshake) >= 1537 and not getattr(self, "_s012", False):
                    self._s012 = True
                    c1 = bytes(self.handshake[1:1537])
                    out = b"\x03" + bytes(8) + b"\x5a" * 1528 + c1
                return out
            self.shook = True
            data = bytes(self.handshake[1537 + 1536:])
        self.reader.receive_data(data)
        out = b""
        while (message := self.reader.next_message()) is not None:
            parsed = parse_message(message)
            self.received.append((message, parsed))
            if isinstance(parsed, Command):
                out += self.answer(parsed, message.stream_id)
        return out

    def answer(self, cmd: Command, stream_id: int) -> bytes:
        if cmd.name == "connect":
            if self.connect_error:
                return self.send(Command("_error", 1.0, None, (
                    {"level": "error", "code": "NetConnection.Connect.Rejected",
                     "description": f"no app for {KEY}"},)))
            return self.send(
                WindowAckSize(self.window), SetPeerBandwidth(5_000_000, 2), SetChunkSize(4096),
                Command("_result", cmd.transaction_id, {"fmsVer": "FMS/3,0,1,123"},
                        ({"level": "status", "code": "NetConnection.Connect.Success"},)),
                Command("onBWDone", 0.0, None, (8192.0,)),
            )
        if cmd.name == "releaseStream":
            return self.send(Command("_result", cmd.transaction_id, None, (amf0.UNDEFINED,)))
        if cmd.name == "FCPublish":
            return self.send(Command("onFCPublish", 0.0, None, ({"code": "x"},)))
        if cmd.name == "createStream" and self.create_error:
            return self.send(Command("_error", cmd.transaction_id, None, ({"level": "error"},)))
        if cmd.name == "createStream":
            return self.send(Command("_result", cmd.transaction_id, None, (1.0,)))
        if cmd.name == "publish":
            level, code, description = self.publish_status
            return self.send(
                UserControl(UserControlEvent.STREAM_BEGIN, 1),
                RtmpMessage(5, 0, MessageType.COMMAND_AMF0, stream_id, bytes(Command(
                    "onStatus", 0.0, None,
                    ({"level": level, "code": code, "description": description},)))),
            )
        return b""

    def commands(self) -> list[Command]:
        return [p for _, p in self.received if isinstance(p, Command)]


def pump(publisher: RtmpPublisher, server: ScriptedServer, step: int = 0) -> list[Event]:
    """Exchange bytes until both sides are quiet; feed the publisher ``step`` bytes at a time."""
    events: list[Event] = []
    while True:
        reply = server.feed(publisher.data_to_send())
        if not reply:
            return events
        chunks = [reply[i:i + step] for i in range(0, len(reply), step)] if step else [reply]
        for chunk in chunks:
            publisher.receive_data(chunk)
            while (event := publisher.next_event()) is not NEED_DATA:
                events.append(event)


def new_publisher(**kw: Any) -> RtmpPublisher:
    return RtmpPublisher(URL, bytes(range(256)) * 5 + bytes(248), **kw)


@pytest.mark.parametrize("step", [0, 1, 7, 1000])
def test_full_session(step: int) -> None:
    server = ScriptedServer()
    publisher = new_publisher(fourcc_list=("hvc1", "avc1"))
    assert publisher.state is State.HANDSHAKE
    with pytest.raises(LocalProtocolError, match="handshake"):
        publisher.send_video(b"\x17", 0)
    events = pump(publisher, server, step)
    assert [e for e in events if not isinstance(e, MessageSkipped)] == [
        Connected({"fmsVer": "FMS/3,0,1,123"},
                  {"level": "status", "code": "NetConnection.Connect.Success"}),
        PublishStarted(1),
    ]
    # What nginx-rtmp sends beside the sequence is skipped, not acted on.
    assert [e for e in events if isinstance(e, MessageSkipped)] == [
        MessageSkipped("command 'onBWDone' in state creating stream"),
        MessageSkipped("command '_result' in state creating stream"),
        MessageSkipped("command 'onFCPublish' in state creating stream"),
    ]
    assert publisher.skipped == 3
    assert publisher.state is State.PUBLISHING
    names = [(c.name, c.args) for c in server.commands()]
    assert names == [
        ("connect", ()), ("releaseStream", (KEY,)), ("FCPublish", (KEY,)),
        ("createStream", ()), ("publish", (KEY, "live")),
    ]
    connect = server.commands()[0]
    assert connect.transaction_id == 1
    assert connect.command_object == {
        "app": "live", "type": "nonprivate", "flashVer": "FMLE/3.0 (compatible; Relay)",
        "swfUrl": "rtmp://ingest.example/live", "tcUrl": "rtmp://ingest.example/live",
        "fpad": False, "capabilities": 15.0, "audioCodecs": 3575.0, "videoCodecs": 252.0,
        "videoFunction": 1.0, "fourCcList": ["hvc1", "avc1"],
    }
    first = server.received[0][1]
    assert first == SetChunkSize(4096)
    # Set Peer Bandwidth was answered with Window Acknowledgement Size.
    assert WindowAckSize(5_000_000) in [p for _, p in server.received]
    publish_msg = next(
        m for m, p in server.received if isinstance(p, Command) and p.name == "publish"
    )
    assert publish_msg.stream_id == 1
    assert publisher.peer_chunk_size == 4096 and publisher.peer_window == 5000

    # Ping is answered; crossing the acknowledgement window sends an Acknowledgement.
    ping = server.send(UserControl(UserControlEvent.PING_REQUEST, 1234))
    filler = server.send(*[Command("onStatus", 0.0, None, ({"level": "status", "code": "x" * 600,
                                                            "description": ""},))] * 10)
    publisher.receive_data(ping + filler)
    events = []
    while (event := publisher.next_event()) is not NEED_DATA:
        events.append(event)
    assert events == [StatusReceived("status", "x" * 600, "")] * 10
    server.feed(publisher.data_to_send())
    controls = [p for _, p in server.received]
    assert UserControl(UserControlEvent.PING_RESPONSE, 1234) in controls
    acks = [p for p in controls if isinstance(p, Acknowledgement)]
    assert acks and acks[0].sequence_number >= 5000

    # Media goes out on the created stream, on its own chunk streams.
    publisher.send_metadata({"width": 640.0})
    publisher.send_video(b"\x17\x00\x00\x00\x00avcC", 0)
    publisher.send_audio(b"\xaf\x00\x11\x90", 0)
    publisher.send_video(b"\x27\x01\x00\x00\x28" + bytes(9000), 0x1000000)
    publisher.send_audio(b"\xaf\x01" + bytes(300), 0x1000000 + 21)
    server.feed(publisher.data_to_send())
    media = [m for m, _ in server.received if m.type_id in (8, 9, 18)]
    assert [(m.csid, m.type_id, m.stream_id, m.timestamp, len(m.payload)) for m in media] == [
        (5, 18, 1, 0, len(media[0].payload)),
        (6, 9, 1, 0, 9), (4, 8, 1, 0, 4),
        (6, 9, 1, 0x1000000, 9005), (4, 8, 1, 0x1000015, 302),
    ]
    assert amf0.decode_all(media[0].payload) == ["@setDataFrame", "onMetaData", {"width": 640.0}]
    assert isinstance(amf0.decode_all(media[0].payload)[2], amf0.EcmaArray)

    publisher.close()
    assert publisher.state is State.CLOSED
    server.feed(publisher.data_to_send())
    tail = server.commands()[-2:]
    assert [(c.name, c.args) for c in tail] == [("FCUnpublish", (KEY,)), ("deleteStream", (1.0,))]
    publisher.close()  # idempotent
    with pytest.raises(LocalProtocolError):
        publisher.send_audio(b"", 0)
    publisher.receive_data(b"")
    assert publisher.next_event() == PeerClosed(State.CLOSED)
    assert publisher.next_event() is NEED_DATA


def test_publish_refused_masks_the_key() -> None:
    server = ScriptedServer(("error", "NetStream.Publish.BadName", f"Stream {KEY} already used"))
    publisher = new_publisher()
    events = pump(publisher, server)
    assert events[-1] == PublishFailed("NetStream.Publish.BadName", "Stream *** already used")
    assert publisher.state is State.CLOSED
    assert "sekrit" not in repr(events)


def test_connect_error() -> None:
    publisher = new_publisher()
    events = pump(publisher, ScriptedServer(connect_error=True))
    assert events == [PublishFailed("NetConnection.Connect.Rejected", "no app for ***")]
    with pytest.raises(LocalProtocolError):
        publisher.send_metadata({})


def test_create_stream_error() -> None:
    publisher = new_publisher()
    events = pump(publisher, ScriptedServer(create_error=True))
    assert events[-1] == PublishFailed("createStream refused", "server refused createStream")
    assert publisher.state is State.CLOSED and publisher.stream_id is None


def test_peer_closes_while_connecting() -> None:
    publisher = new_publisher()
    server = ScriptedServer()
    publisher.receive_data(server.feed(publisher.data_to_send()))
    assert publisher.state is State.CONNECTING
    publisher.receive_data(b"")
    assert publisher.next_event() == PeerClosed(State.CONNECTING)
    assert publisher.state is State.CLOSED
    assert publisher.next_event() is NEED_DATA


def test_close_before_stream_sends_nothing() -> None:
    publisher = new_publisher()
    publisher.data_to_send()
    publisher.close()
    assert publisher.data_to_send() == b""
    assert publisher.state is State.CLOSED


def _skipped(events: list[Event]) -> list[str]:
    return [e.what for e in events if isinstance(e, MessageSkipped)]


def _acted_on(events: list[Event]) -> list[Event]:
    return [e for e in events if not isinstance(e, MessageSkipped)]


class FfmpegLikeServer(ScriptedServer):
    """Answers as FFmpeg 8's listener (``av.open(..., options={"listen": "1"})``) did when
    probed: Stream Begin and chunk size 128 before ``_result``, ``releaseStream``'s ``_result``
    with no values, and ``onFCPublish`` as a bare name with no transaction id."""

    def answer(self, cmd: Command, stream_id: int) -> bytes:
        if cmd.name == "connect":
            return self.send(
                WindowAckSize(2_500_000), SetPeerBandwidth(2_500_000, 2),
                UserControl(UserControlEvent.STREAM_BEGIN, 0), SetChunkSize(128),
                Command("_result", cmd.transaction_id,
                        {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
                        ({"level": "status", "code": "NetConnection.Connect.Success",
                          "description": "Connection succeeded.", "objectEncoding": 0.0},)),
                Command("onBWDone", 0.0, None, (8192.0,)),
            )
        if cmd.name == "releaseStream":
            return self.send(RtmpMessage(3, 0, MessageType.COMMAND_AMF0, 0,
                                         amf0.encode("_result", cmd.transaction_id)))
        if cmd.name == "FCPublish":
            return self.send(Command("onFCPublish", None))
        return super().answer(cmd, stream_id)


@pytest.mark.parametrize("step", [0, 1, 13])
def test_ffmpeg_onfcpublish_without_transaction_id_is_skipped(step: int) -> None:
    publisher = new_publisher(fourcc_list=("hvc1", "avc1"))
    events = pump(publisher, FfmpegLikeServer(), step)
    assert _acted_on(events) == [
        Connected({"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
                  {"level": "status", "code": "NetConnection.Connect.Success",
                   "description": "Connection succeeded.", "objectEncoding": 0.0}),
        PublishStarted(1),
    ]
    assert "command 'onFCPublish' (no transaction id) in state creating stream" in _skipped(
        events)
    assert publisher.state is State.PUBLISHING
    # FFmpeg 8 announces no Enhanced RTMP codecs, though it demuxes hvc1.
    assert _acted_on(events)[0].maybe_video_fourccs() is None  # type: ignore[union-attr]


class NoisyServer(ScriptedServer):
    """Sends, before each answer, commands and messages no publisher needs."""

    NOISE = (
        Command("onCustomEvent", 9.0, None, ("x", {"y": 1.0})),
        Command("onNoTransaction", None, None, ({"z": "w"},)),
        Command(f"on{KEY}", 1.0),  # a name carrying the stream key is masked
        Command("x" * 1000, 0.0),
        RtmpMessage(5, 0, 99, 0, b"\xde\xad"),  # no such message type
        RtmpMessage(5, 0, MessageType.DATA_AMF0, 1, amf0.encode("|RtmpSampleAccess", True, True)),
        RtmpMessage(5, 0, MessageType.DATA_AMF3, 1, b"\x00" + amf0.encode("onMetaData", {})),
        RtmpMessage(5, 0, MessageType.AGGREGATE, 1, bytes(20)),
        RtmpMessage(6, 0, MessageType.VIDEO, 1, b"\x17\x01"),
        UserControl(31, 1),  # a buffer-empty event some servers send
    )

    def answer(self, cmd: Command, stream_id: int) -> bytes:
        noise = self.send(*self.NOISE)
        if cmd.name == "publish":  # a status that is not Publish.Start, while starting
            noise += self.send(Command("onStatus", 0.0, None, (
                {"level": "status", "code": "NetStream.Play.Reset", "description": ""},)))
        return noise + super().answer(cmd, stream_id)


@pytest.mark.parametrize("step", [0, 1, 97])
def test_unknown_commands_and_messages_are_skipped_in_every_state(step: int) -> None:
    publisher = new_publisher()
    server = NoisyServer()
    events = pump(publisher, server, step)
    publisher.receive_data(server.send(*NoisyServer.NOISE))
    while (event := publisher.next_event()) is not NEED_DATA:
        events.append(event)
    assert _acted_on(events) == [
        Connected({"fmsVer": "FMS/3,0,1,123"},
                  {"level": "status", "code": "NetConnection.Connect.Success"}),
        PublishStarted(1),
    ]
    assert publisher.state is State.PUBLISHING
    skipped = _skipped(events)
    assert publisher.skipped == len(skipped)
    for state in ("connecting", "creating stream", "starting publish", "publishing"):
        assert f"command 'onCustomEvent' in state {state}" in skipped
        assert f"command 'onNoTransaction' (no transaction id) in state {state}" in skipped
        assert f"command 'on***' in state {state}" in skipped
        assert f"command '{'x' * 64}' in state {state}" in skipped
    assert "command 'onStatus' in state starting publish" in skipped
    for m in NoisyServer.NOISE:
        if isinstance(m, RtmpMessage):
            what = f"message type {m.type_id} ({len(m.payload)} bytes)"
            assert skipped.count(what) == 6, what  # before each of five answers, and after
    assert "sekrit" not in repr(events)


def _with_unknown_value(command: Command, stream_id: int = 0, csid: int = 3) -> RtmpMessage:
    """``command`` followed by an AVM+ marker switching to an AMF3 integer (AMF0 2.17)."""
    return RtmpMessage(csid, 0, MessageType.COMMAND_AMF0, stream_id,
                       bytes(command) + b"\x11\x04\x05")


class ExtraValuesServer(ScriptedServer):
    """Answers with more values than the spec lists, ending in one of an AMF type AMF0
    readers differ on."""

    def answer(self, cmd: Command, stream_id: int) -> bytes:
        if cmd.name == "connect":
            return self.send(_with_unknown_value(Command(
                "_result", cmd.transaction_id, {"fmsVer": "FMS/3,5,7,7009", "mode": 1.0},
                ({"code": "NetConnection.Connect.Success", "data": {"version": "3,5,7"}},
                 "extra", 42.0, [1.0, 2.0]))))
        if cmd.name == "createStream":
            return self.send(_with_unknown_value(Command(
                "_result", cmd.transaction_id, None, (1.0, "extra", {"k": 1.0}))))
        if cmd.name == "publish":
            return self.send(RtmpMessage(
                5, 0, MessageType.COMMAND_AMF0, stream_id,
                bytes(Command("onStatus", 0.0, None, (
                    {"level": "status", "code": "NetStream.Publish.Start"}, "extra")))
                # an object whose last property is of an unknown type: the whole object goes
                + b"\x03\x00\x01a\x07\x00\x01\x00\x00\x09"))
        return super().answer(cmd, stream_id)


def test_extra_and_unknown_amf_values_are_skipped() -> None:
    publisher = new_publisher()
    events = pump(publisher, ExtraValuesServer())
    assert _acted_on(events) == [
        Connected({"fmsVer": "FMS/3,5,7,7009", "mode": 1.0},
                  {"code": "NetConnection.Connect.Success", "data": {"version": "3,5,7"}}),
        PublishStarted(1),
    ]
    unread = "a value of an AMF type this client does not read"
    assert _skipped(events) == [
        f"the last 3 bytes of command '_result': {unread}",
        "command '_result' in state creating stream",
        "command 'onFCPublish' in state creating stream",
        f"the last 3 bytes of command '_result': {unread}",
        f"the last 10 bytes of command 'onStatus': {unread}",
    ]


def test_a_needed_value_of_unknown_type_still_fails() -> None:
    """createStream's stream id is needed: lost to an unknown type, the session ends."""

    class Server(ScriptedServer):
        def answer(self, cmd: Command, stream_id: int) -> bytes:
            if cmd.name == "createStream":
                return self.send(_with_unknown_value(Command("_result", cmd.transaction_id)))
            return super().answer(cmd, stream_id)

    with pytest.raises(RemoteProtocolError, match="bad stream id None"):
        pump(new_publisher(), Server())


@pytest.mark.parametrize("properties,info,fourccs", [
    ({"fmsVer": "FMS/3,0,1,123"}, {"code": "NetConnection.Connect.Success"}, None),
    ({"fourCcList": ["hvc1", "av01", 3.0]}, {}, frozenset({"hvc1", "av01"})),
    ({}, {"fourCcList": ["*"]}, frozenset({"*"})),
    ({"videoFourCcInfoMap": {"hvc1": 4.0, "vp09": 7.0}}, {}, frozenset({"hvc1", "vp09"})),
    ({"fourCcList": "hvc1"}, {}, None),  # not a strict array: not an announcement
])
def test_enhanced_rtmp_codecs_from_the_connect_reply(
    properties: dict[str, Any], info: dict[str, Any], fourccs: frozenset[str] | None
) -> None:
    assert Connected(properties, info).maybe_video_fourccs() == fourccs
