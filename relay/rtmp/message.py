"""RTMP messages carried by the chunk stream (Adobe RTMP 1.0, sections 5.4, 6.2, 7.1, 7.2).

Protocol control messages (5.4: Set Chunk Size, Abort, Acknowledgement, Window Acknowledgement
Size, Set Peer Bandwidth), User Control events (6.2, 7.1.7) and AMF0 command messages (7.1.1,
7.2) as frozen dataclasses with ``parse(payload)`` and ``__bytes__``; ``to_message`` wraps one in
an ``RtmpMessage`` on the chunk stream the spec reserves for it (2 for control, 3 for commands).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from relay.errors import RemoteProtocolError
from relay.rtmp import amf0
from relay.rtmp.chunk import RtmpMessage

CONTROL_CSID = 2
COMMAND_CSID = 3

_U32 = struct.Struct(">I")
_USER_CONTROL = struct.Struct(">HI")
_PEER_BANDWIDTH = struct.Struct(">IB")


class MessageType(IntEnum):
    """Message type ids (5.4, 7.1)."""

    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACKNOWLEDGEMENT = 3
    USER_CONTROL = 4
    WINDOW_ACK_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    DATA_AMF3 = 15
    SHARED_OBJECT_AMF3 = 16
    COMMAND_AMF3 = 17
    DATA_AMF0 = 18
    SHARED_OBJECT_AMF0 = 19
    COMMAND_AMF0 = 20
    AGGREGATE = 22


class UserControlEvent(IntEnum):
    """User Control event types (7.1.7)."""

    STREAM_BEGIN = 0
    STREAM_EOF = 1
    STREAM_DRY = 2
    SET_BUFFER_LENGTH = 3
    STREAM_IS_RECORDED = 4
    PING_REQUEST = 6
    PING_RESPONSE = 7


def _u32(payload: bytes, what: str) -> int:
    if len(payload) < 4:
        raise RemoteProtocolError(f"RTMP {what}: payload of {len(payload)} bytes, need 4")
    return int(_U32.unpack_from(payload)[0])


@dataclass(frozen=True, slots=True)
class SetChunkSize:
    """Set Chunk Size (5.4.1): the sender's chunks from now on carry up to ``size`` bytes."""

    size: int

    @classmethod
    def parse(cls, payload: bytes) -> SetChunkSize:
        return cls(_u32(payload, "Set Chunk Size") & 0x7FFFFFFF)

    def __bytes__(self) -> bytes:
        return _U32.pack(self.size & 0x7FFFFFFF)

    def to_message(self) -> RtmpMessage:
        return RtmpMessage(CONTROL_CSID, 0, MessageType.SET_CHUNK_SIZE, 0, bytes(self))


@dataclass(frozen=True, slots=True)
class Abort:
    """Abort Message (5.4.2): drop the partly received message on chunk stream ``csid``."""

    csid: int

    @classmethod
    def parse(cls, payload: bytes) -> Abort:
        return cls(_u32(payload, "Abort Message"))

    def __bytes__(self) -> bytes:
        return _U32.pack(self.csid)

    def to_message(self) -> RtmpMessage:
        return RtmpMessage(CONTROL_CSID, 0, MessageType.ABORT, 0, bytes(self))


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Acknowledgement (5.4.3): ``sequence_number`` bytes received so far (mod 2^32)."""

    sequence_number: int

    @classmethod
    def parse(cls, payload: bytes) -> Acknowledgement:
        return cls(_u32(payload, "Acknowledgement"))

    def __bytes__(self) -> bytes:
        return _U32.pack(self.sequence_number & 0xFFFFFFFF)

    def to_message(self) -> RtmpMessage:
        return RtmpMessage(CONTROL_CSID, 0, MessageType.ACKNOWLEDGEMENT, 0, bytes(self))


@dataclass(frozen=True, slots=True)
class WindowAckSize:
    """Window Acknowledgement Size (5.4.4): acknowledge every ``size`` bytes received."""

    size: int

    @classmethod
    def parse(cls, payload: bytes) -> WindowAckSize:
        return cls(_u32(payload, "Window Acknowledgement Size"))

    def __bytes__(self) -> bytes:
        return _U32.pack(self.size)

    def to_message(self) -> RtmpMessage:
        return RtmpMessage(CONTROL_CSID, 0, MessageType.WINDOW_ACK_SIZE, 0, bytes(self))


@dataclass(frozen=True, slots=True)
class SetPeerBandwidth:
    """Set Peer Bandwidth (5.4.5): limit type 0 hard, 1 soft, 2 dynamic."""

    size: int
    limit_type: int

    @classmethod
    def parse(cls, payload: bytes) -> SetPeerBandwidth:
        if len(payload) < 5:
            raise RemoteProtocolError(f"RTMP Set Peer Bandwidth: {len(payload)} bytes, need 5")
        size, limit_type = _PEER_BANDWIDTH.unpack_from(payload)
        return cls(size, limit_type)

    def __bytes__(self) -> bytes:
        return _PEER_BANDWIDTH.pack(self.size, self.limit_type)

    def to_message(self) -> RtmpMessage:
        return RtmpMessage(CONTROL_CSID, 0, MessageType.SET_PEER_BANDWIDTH, 0, bytes(self))


@dataclass(frozen=True, slots=True)
class UserControl:
    """User Control message (6.2, 7.1.7): an event type and its first 32-bit value.

    ``value`` is the stream id (Stream Begin/EOF/Dry/Is Recorded) or the timestamp (Ping);
    ``extra`` holds the buffer length of Set Buffer Length.
    """

    event: int
    value: int
    extra: int | None = None

    @classmethod
    def parse(cls, payload: bytes) -> UserControl:
        if len(payload) < 6:
            raise RemoteProtocolError(f"RTMP User Control: {len(payload)} bytes, need 6")
        event, value = _USER_CONTROL.unpack_from(payload)
        extra = None
        if event == UserControlEvent.SET_BUFFER_LENGTH and len(payload) >= 10:
            extra = int(_U32.unpack_from(payload, 6)[0])
        return cls(event, value, extra)

    def __bytes__(self) -> bytes:
        data = _USER_CONTROL.pack(self.event, self.value & 0xFFFFFFFF)
        return data + _U32.pack(self.extra) if self.extra is not None else data

    def to_message(self) -> RtmpMessage:
        return RtmpMessage(CONTROL_CSID, 0, MessageType.USER_CONTROL, 0, bytes(self))


@dataclass(frozen=True, slots=True)
class Command:
    """An AMF0 command message (7.1.1, 7.2): name, transaction id, command object, arguments.

    Servers differ past the name: ``transaction_id`` is None when there is none (FFmpeg's
    ``onFCPublish`` is a bare name), and ``undecoded`` counts the trailing payload bytes left
    unread from the first value of a type AMF0 readers differ on (``amf0.decode_prefix``).
    """

    name: str
    transaction_id: float | None
    command_object: Any = None
    args: tuple[Any, ...] = field(default=())
    undecoded: int = 0

    @classmethod
    def parse(cls, payload: bytes, type_id: int = MessageType.COMMAND_AMF0) -> Command:
        """Parse a type 20 payload, or a type 17 one (a zero byte, then AMF0 values).

        Raises:
            RemoteProtocolError: bad AMF0, or no name up front.
        """
        data = memoryview(payload)
        if type_id == MessageType.COMMAND_AMF3 and data[:1].tobytes() == b"\x00":
            data = data[1:]
        values, undecoded = amf0.decode_prefix(data)
        if not values or not isinstance(values[0], str):
            raise RemoteProtocolError("RTMP command: no command name")
        rest = values[1:]
        txn = None
        if rest and isinstance(rest[0], float):  # AMF0 numbers decode as float, never bool
            txn, rest = rest[0], rest[1:]
        return cls(values[0], txn, rest[0] if rest else None, tuple(rest[1:]), undecoded)

    def __bytes__(self) -> bytes:
        if self.transaction_id is not None:
            return amf0.encode(self.name, self.transaction_id, self.command_object, *self.args)
        if self.command_object is None and not self.args:
            return amf0.encode(self.name)
        return amf0.encode(self.name, self.command_object, *self.args)

    def to_message(self, stream_id: int = 0, csid: int = COMMAND_CSID) -> RtmpMessage:
        return RtmpMessage(csid, 0, MessageType.COMMAND_AMF0, stream_id, bytes(self))


ControlMessage = (
    SetChunkSize | Abort | Acknowledgement | WindowAckSize | SetPeerBandwidth | UserControl
)

_CONTROL_PARSERS: dict[int, Any] = {
    MessageType.SET_CHUNK_SIZE: SetChunkSize,
    MessageType.ABORT: Abort,
    MessageType.ACKNOWLEDGEMENT: Acknowledgement,
    MessageType.WINDOW_ACK_SIZE: WindowAckSize,
    MessageType.SET_PEER_BANDWIDTH: SetPeerBandwidth,
    MessageType.USER_CONTROL: UserControl,
}


def parse_message(message: RtmpMessage) -> ControlMessage | Command | RtmpMessage:
    """The control message or command that ``message`` carries; other types come back as is.

    Raises:
        RemoteProtocolError: a control or command payload that does not parse.
    """
    parser = _CONTROL_PARSERS.get(message.type_id)
    if parser is not None:
        return parser.parse(message.payload)  # type: ignore[no-any-return]
    if message.type_id in (MessageType.COMMAND_AMF0, MessageType.COMMAND_AMF3):
        return Command.parse(message.payload, message.type_id)
    return message


def data_message(
    values: tuple[Any, ...], stream_id: int, csid: int, timestamp: int = 0
) -> RtmpMessage:
    """An AMF0 data message (type 18, 7.1.2), such as ``@setDataFrame onMetaData {...}``."""
    return RtmpMessage(csid, timestamp, MessageType.DATA_AMF0, stream_id, amf0.encode(*values))
