"""The RTMP publishing client, sans-IO (Adobe RTMP 1.0, sections 5.2-5.4 and 7.2).

Bytes in (``receive_data``), events out (``next_event``), bytes to send (``data_to_send``).
After the handshake the client sends Set Chunk Size and ``connect``; on its ``_result``,
``releaseStream``, ``FCPublish`` and ``createStream`` (the sequence FFmpeg and OBS use, which
ingests such as YouTube and Twitch expect); on that ``_result``, ``publish``; on
``onStatus NetStream.Publish.Start`` the stream is live and media may be sent. Along the way it
answers Window Acknowledgement Size, Set Peer Bandwidth and Ping requests.

State table (trigger -> next state); anything else raises ``LocalProtocolError``:

    HANDSHAKE        handshake_done -> CONNECTING
    CONNECTING       connect_result -> CREATING_STREAM
    CREATING_STREAM  stream_created -> STARTING       (publish sent)
    STARTING         publish_start  -> PUBLISHING     (send_video/send_audio/send_metadata legal)
    any open state   failed / peer_closed / close -> CLOSED

Servers add commands, statuses and messages of their own, or leave out parts (FFmpeg's
``onFCPublish`` has no transaction id). Whatever the table does not need (a command or status
not above, a value of an AMF type this client does not read, a message type other than the
control messages) leaves the state as it is: ``MessageSkipped`` says what, ``skipped`` counts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from relay.errors import LocalProtocolError, RemoteProtocolError
from relay.rtmp import amf0
from relay.rtmp.chunk import ChunkReader, ChunkWriter, RtmpMessage
from relay.rtmp.handshake import ClientHandshake
from relay.rtmp.message import (
    Acknowledgement,
    Command,
    MessageType,
    SetChunkSize,
    SetPeerBandwidth,
    UserControl,
    UserControlEvent,
    WindowAckSize,
    data_message,
    parse_message,
)
from relay.rtmp.url import RtmpUrl
from relay.sansio import NEED_DATA, NeedData


class State(Enum):
    HANDSHAKE = "handshake"
    CONNECTING = "connecting"
    CREATING_STREAM = "creating stream"
    STARTING = "starting publish"
    PUBLISHING = "publishing"
    CLOSED = "closed"


_OPEN = (State.HANDSHAKE, State.CONNECTING, State.CREATING_STREAM, State.STARTING, State.PUBLISHING)
TRANSITIONS: dict[tuple[State, str], State] = {
    (State.HANDSHAKE, "handshake_done"): State.CONNECTING,
    (State.CONNECTING, "connect_result"): State.CREATING_STREAM,
    (State.CREATING_STREAM, "stream_created"): State.STARTING,
    (State.STARTING, "publish_start"): State.PUBLISHING,
    **{(s, trigger): State.CLOSED for s in _OPEN for trigger in ("failed", "peer_closed", "close")},
}

# Chunk stream ids: 2 control and 3 connection commands are fixed by the spec (5.4, 7.1);
# the others follow FFmpeg's choice so that each kind keeps its own header state.
AUDIO_CSID = 4
DATA_CSID = 5
VIDEO_CSID = 6
STREAM_COMMAND_CSID = 8

FLASH_VERSION = "FMLE/3.0 (compatible; Relay)"
DEFAULT_CHUNK_SIZE = 4096
MAX_INCOMING_MESSAGE = 1 << 20  # a publisher receives only control messages and commands
MAX_NAME_SHOWN = 64  # characters of a skipped command's name in MessageSkipped

# connect's audioCodecs / videoCodecs as Flash Player sends them (7.2.1.1): every codec flag.
AUDIO_CODECS = 3575.0
VIDEO_CODECS = 252.0

_TXN_CONNECT = 1.0
_TXN_RELEASE = 2.0
_TXN_FCPUBLISH = 3.0
_TXN_CREATE_STREAM = 4.0


@dataclass(frozen=True, slots=True)
class Connected:
    """``connect`` succeeded: the server's properties (fmsVer...) and information object."""

    properties: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def maybe_video_fourccs(self) -> frozenset[str] | None:
        """The codecs the server announced for Enhanced RTMP, or None if it announced none.

        Enhanced RTMP v2 ("Enhancing NetConnection connect Command") has the server state them
        in an object of its ``_result``: a ``fourCcList`` strict array or the keys of a
        ``videoFourCcInfoMap``; ``"*"`` stands for any codec.
        """
        for obj in (self.properties, self.info):
            listed = obj.get("fourCcList")
            if isinstance(listed, list):
                return frozenset(c for c in listed if isinstance(c, str))
            mapped = obj.get("videoFourCcInfoMap")
            if isinstance(mapped, dict):
                return frozenset(mapped)
        return None


@dataclass(frozen=True, slots=True)
class PublishStarted:
    """``NetStream.Publish.Start``: media may be sent on message stream ``stream_id``."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PublishFailed:
    """The server refused ``connect``, ``createStream`` or ``publish``, or reported an error.

    ``description`` has the stream key masked.
    """

    code: str
    description: str


@dataclass(frozen=True, slots=True)
class StatusReceived:
    """A non-error ``onStatus`` while publishing (e.g. ``NetStream.Unpublish.Success``)."""

    level: str
    code: str
    description: str


@dataclass(frozen=True, slots=True)
class PeerClosed:
    """The server closed the connection; ``state`` says how far the session had got."""

    state: State


@dataclass(frozen=True, slots=True)
class MessageSkipped:
    """Something from the server this client does not need, skipped (``what``, key masked)."""

    what: str


Event = (
    Connected | PublishStarted | PublishFailed | StatusReceived | PeerClosed | MessageSkipped
    | NeedData
)


class RtmpPublisher:
    """One RTMP publishing session.

    Args:
        url: where to publish.
        random_bytes: 1528 bytes for the handshake's C1 (e.g. ``os.urandom(1528)``).
        epoch: C1 timestamp in milliseconds.
        chunk_size: our outgoing chunk size. 4096 is what OBS sends: header overhead is already
            0.03 %, and some ingests mishandle very large chunks.
        fourcc_list: for Enhanced RTMP, codecs to announce in ``connect`` (``("hvc1", "avc1")``).
    """

    def __init__(
        self,
        url: RtmpUrl,
        random_bytes: bytes,
        epoch: int = 0,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        fourcc_list: tuple[str, ...] = (),
    ) -> None:
        self.url = url
        self.state = State.HANDSHAKE
        self.stream_id: int | None = None
        self.peer_chunk_size = 128
        self.peer_window = 0
        self._chunk_size = chunk_size
        self._fourcc_list = fourcc_list
        self._handshake = ClientHandshake(random_bytes, epoch)
        self._reader = ChunkReader(max_message_size=MAX_INCOMING_MESSAGE)
        self._writer = ChunkWriter()
        self._out = bytearray(self._handshake.initial())
        self._events: deque[Event] = deque()
        self._acked = 0
        self._told_window = 0
        self._eof = False
        self._eof_reported = False
        self._txn = _TXN_CREATE_STREAM
        self.skipped = 0

    # -- state -------------------------------------------------------------------------------

    def _fire(self, trigger: str) -> None:
        try:
            self.state = TRANSITIONS[(self.state, trigger)]
        except KeyError:
            raise LocalProtocolError(
                f"RTMP publisher: {trigger} is not allowed in state {self.state.value}"
            ) from None

    def _send(self, message: RtmpMessage) -> None:
        self._writer.write_into(self._out, message.csid, message.timestamp, message.type_id,
                                message.stream_id, message.payload)

    def _command(self, name: str, txn: float, *args: Any, stream_id: int = 0) -> None:
        csid = STREAM_COMMAND_CSID if stream_id else 3
        self._send(Command(name, txn, None, args).to_message(stream_id, csid))

    def _mask(self, text: str) -> str:
        key = self.url.stream_key
        for secret in (key, key.partition("?")[0]):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _skip(self, what: str) -> None:
        self.skipped += 1
        self._events.append(MessageSkipped(what))

    def _fail(self, code: str, description: str) -> None:
        self._fire("failed")
        self._events.append(PublishFailed(self._mask(code), self._mask(description)))

    # -- bytes in and out --------------------------------------------------------------------

    def initial(self) -> bytearray:
        """C0 + C1 (the same as the first ``data_to_send()``)."""
        return self.data_to_send()

    def data_to_send(self) -> bytearray:
        """Everything queued for the server since the last call (possibly empty), in one buffer
        that is the caller's from now on: every message sent since is already chunked into it,
        so a sender writes a whole batch of frames with one call and nothing is joined."""
        out = self._out
        self._out = bytearray()
        return out

    @property
    def buffered(self) -> int:
        """Bytes queued for the server, not yet taken by ``data_to_send``."""
        return len(self._out)

    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes from the server; ``b""`` means it closed the connection.

        Raises:
            RemoteProtocolError: a bad handshake.
        """
        if not data:
            self._eof = True
            return
        if self._eof or self.state is State.CLOSED:
            return
        if self.state is State.HANDSHAKE:
            c2 = self._handshake.receive_data(data)
            if c2 is not None:
                self._out += c2
            if not self._handshake.done:
                return
            self._fire("handshake_done")
            self._send(SetChunkSize(self._chunk_size).to_message())
            self._writer.set_chunk_size(self._chunk_size)
            self._send_connect()
            data = self._handshake.unused
        self._reader.receive_data(data)
        received = self._reader.bytes_received
        if self.peer_window and received - self._acked >= self.peer_window:
            self._acked = received
            self._send(Acknowledgement(received).to_message())

    def _send_connect(self) -> None:
        props: dict[str, Any] = {
            "app": self.url.app,
            "type": "nonprivate",
            "flashVer": FLASH_VERSION,
            "swfUrl": self.url.tc_url,
            "tcUrl": self.url.tc_url,
            "fpad": False,
            "capabilities": 15.0,
            "audioCodecs": AUDIO_CODECS,
            "videoCodecs": VIDEO_CODECS,
            "videoFunction": 1.0,
        }
        if self._fourcc_list:
            props["fourCcList"] = list(self._fourcc_list)
        self._send(Command("connect", _TXN_CONNECT, props).to_message())

    def next_event(self) -> Event:
        """The next event, or ``NEED_DATA``.

        Raises:
            RemoteProtocolError: the server broke the chunk stream or sent a malformed message.
        """
        while not self._events and self.state is not State.CLOSED:
            message = self._reader.next_message()
            if message is None:
                break
            self._handle(message)
        if self._events:
            return self._events.popleft()
        if self._eof and not self._eof_reported:
            self._eof_reported = True
            closed_in = self.state
            if self.state is not State.CLOSED:
                self._fire("peer_closed")
            return PeerClosed(closed_in)
        return NEED_DATA

    # -- incoming messages -------------------------------------------------------------------

    def _handle(self, message: RtmpMessage) -> None:
        parsed = parse_message(message)
        if isinstance(parsed, Command):
            name = self._mask(parsed.name)[:MAX_NAME_SHOWN]
            if parsed.undecoded:
                self._skip(f"the last {parsed.undecoded} bytes of command {name!r}: "
                           "a value of an AMF type this client does not read")
            if not self._on_command(parsed):
                no_txn = " (no transaction id)" if parsed.transaction_id is None else ""
                self._skip(f"command {name!r}{no_txn} in state {self.state.value}")
        elif isinstance(parsed, SetChunkSize):
            self.peer_chunk_size = parsed.size  # the reader has applied it already
        elif isinstance(parsed, WindowAckSize):
            self.peer_window = parsed.size
        elif isinstance(parsed, SetPeerBandwidth):
            if parsed.size != self._told_window:
                self._told_window = parsed.size
                self._send(WindowAckSize(parsed.size).to_message())
        elif isinstance(parsed, UserControl):
            if parsed.event == UserControlEvent.PING_REQUEST:
                self._send(UserControl(UserControlEvent.PING_RESPONSE, parsed.value).to_message())
        elif isinstance(parsed, RtmpMessage):
            self._skip(f"message type {parsed.type_id} ({len(parsed.payload)} bytes)")
        # Acknowledgements and Abort (applied by the reader) need nothing more.

    def _on_command(self, command: Command) -> bool:
        """Act on a command the table needs; False for any other (the caller skips it)."""
        name, txn = command.name, command.transaction_id
        info = command.args[0] if command.args and isinstance(command.args[0], dict) else {}
        code = str(info.get("code", ""))
        description = str(info.get("description", ""))
        if name == "_error" and txn in (_TXN_CONNECT, _TXN_CREATE_STREAM):
            what = "connect" if txn == _TXN_CONNECT else "createStream"
            self._fail(code or f"{what} refused", description or f"server refused {what}")
            return True
        if name == "_result" and txn == _TXN_CONNECT and self.state is State.CONNECTING:
            self._fire("connect_result")
            props = command.command_object if isinstance(command.command_object, dict) else {}
            self._events.append(Connected(props, info))
            key = self.url.stream_key
            self._command("releaseStream", _TXN_RELEASE, key)
            self._command("FCPublish", _TXN_FCPUBLISH, key)
            self._command("createStream", _TXN_CREATE_STREAM)
            return True
        if name == "_result" and txn == _TXN_CREATE_STREAM and self.state is State.CREATING_STREAM:
            stream_id = command.args[0] if command.args else None
            if not isinstance(stream_id, float) or not 0 < stream_id <= 0xFFFFFFFF:
                raise RemoteProtocolError(f"RTMP createStream: bad stream id {stream_id!r}")
            self.stream_id = int(stream_id)
            self._fire("stream_created")
            # publish carries transaction id 0 (7.2.2.6) on the new message stream.
            self._command("publish", 0.0, self.url.stream_key, "live", stream_id=self.stream_id)
            return True
        if name != "onStatus":
            # _result/_error of releaseStream and FCPublish, onFCPublish, onBWDone, _checkbw:
            # servers differ in whether they send them; none changes what we do.
            return False
        level = str(info.get("level", ""))
        if level == "error":
            self._fail(code or "onStatus error", description)
        elif code == "NetStream.Publish.Start" and self.state is State.STARTING:
            self._fire("publish_start")
            assert self.stream_id is not None
            self._events.append(PublishStarted(self.stream_id))
        elif self.state is State.PUBLISHING:
            self._events.append(StatusReceived(level, code, self._mask(description)))
        else:
            return False
        return True

    # -- media and teardown ------------------------------------------------------------------

    def _media(self, csid: int, type_id: int, timestamp_ms: int, body: bytes) -> None:
        if self.state is not State.PUBLISHING:
            raise LocalProtocolError(
                f"RTMP publisher: media not allowed in state {self.state.value}"
            )
        assert self.stream_id is not None
        self._writer.write_into(self._out, csid, timestamp_ms, type_id, self.stream_id, body)

    def send_metadata(self, properties: dict[str, Any], timestamp_ms: int = 0) -> None:
        """Queue ``@setDataFrame onMetaData {properties}`` (FLV E.5) as an ECMA array."""
        if self.state is not State.PUBLISHING:
            raise LocalProtocolError(
                f"RTMP publisher: metadata not allowed in state {self.state.value}"
            )
        assert self.stream_id is not None
        values = ("@setDataFrame", "onMetaData", amf0.EcmaArray(properties))
        self._send(data_message(values, self.stream_id, DATA_CSID, timestamp_ms))

    def send_video(self, tag_body: bytes, timestamp_ms: int) -> None:
        """Queue a video message (an FLV VIDEODATA body from ``relay.rtmp.flv``) at its DTS."""
        self._media(VIDEO_CSID, MessageType.VIDEO, timestamp_ms, tag_body)

    def send_audio(self, tag_body: bytes, timestamp_ms: int) -> None:
        """Queue an audio message (an FLV AUDIODATA body from ``relay.rtmp.flv``)."""
        self._media(AUDIO_CSID, MessageType.AUDIO, timestamp_ms, tag_body)

    def close(self) -> None:
        """Queue ``FCUnpublish`` and ``deleteStream`` if a stream exists, and go to CLOSED.

        Idempotent: a no-op once CLOSED, so a driver can call it on every exit path.
        """
        if self.state is State.CLOSED:
            return
        if self.stream_id is not None and self.state in (State.STARTING, State.PUBLISHING):
            self._txn += 1
            self._command("FCUnpublish", self._txn, self.url.stream_key)
            self._txn += 1
            self._command("deleteStream", self._txn, float(self.stream_id))
        self._fire("close")
