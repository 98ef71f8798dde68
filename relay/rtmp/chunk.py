"""The RTMP chunk stream (Adobe RTMP 1.0, section 5.3), sans-IO.

``ChunkWriter`` splits messages into chunks and picks the smallest header per chunk stream
(5.3.1.2): type 0 for a new stream id or a timestamp going back, type 1 for a new length or
message type, type 2 for a new timestamp delta, type 3 for continuation chunks. Timestamps (or
deltas) of 0xFFFFFF and more go in an extended timestamp (5.3.1.3), repeated in the type 3
continuation chunks of that message as FFmpeg, librtmp and nginx-rtmp write and expect it.
``ChunkReader`` reassembles interleaved chunk streams and applies Set Chunk Size and Abort
Message (5.4.1, 5.4.2) itself, at the exact point in the byte stream where they take effect.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from relay.errors import LocalProtocolError, RemoteProtocolError

DEFAULT_CHUNK_SIZE = 128
MAX_CHUNK_SIZE = 0x7FFFFFFF  # 31 bits (5.4.1)
MIN_CSID = 2
MAX_CSID = 65599
EXTENDED = 0xFFFFFF
MAX_MESSAGE_LENGTH = 0xFFFFFF  # 24-bit length field
MAX_PENDING_BYTES = 1 << 25
"""Bytes of unfinished messages a reader holds at once over all its chunk streams (two of the
largest messages): checked at every chunk, so a peer interleaving partial messages is refused
before it holds more."""
MAX_PARTIAL_MESSAGES = 64
"""Chunk streams with an unfinished message at once. Peers interleave a handful (audio, video,
data, control); each partial one costs a buffer, however small."""
MAX_CHUNK_STREAMS = 4096
"""Chunk streams a reader keeps header state for."""

SET_CHUNK_SIZE = 1
ABORT = 2

_U32 = struct.Struct(">I")
_U32LE = struct.Struct("<I")  # the message stream id is little-endian (5.3.1.2.1)
_HEADER_1 = struct.Struct(">BHBHB")  # 24-bit timestamp (delta), 24-bit length, type id
_HEADER_2 = struct.Struct(">BH")  # 24-bit timestamp delta
_COMPACT_AT = 1 << 16


@dataclass(frozen=True, slots=True)
class RtmpMessage:
    """One RTMP message (5.3.1; chunk headers carry it).

    Attributes:
        csid: chunk stream id it travels on (2..65599).
        timestamp: absolute timestamp in milliseconds, 32 bits.
        type_id: message type id (see ``relay.rtmp.message.MessageType``).
        stream_id: message stream id (0 for control and connection commands).
        payload: the message body.
    """

    csid: int
    timestamp: int
    type_id: int
    stream_id: int
    payload: bytes


def _basic_headers(csid: int) -> tuple[bytes, bytes, bytes, bytes]:
    """The basic header (5.3.1.1) of ``csid`` for each fmt 0..3."""
    if csid < 64:
        low, tail = csid, b""
    elif csid < 320:
        low, tail = 0, bytes([csid - 64])
    else:
        low, tail = 1, (csid - 64).to_bytes(2, "little")
    h0, h1, h2, h3 = (bytes([(fmt << 6) | low]) + tail for fmt in range(4))
    return h0, h1, h2, h3


class _WriteState:
    __slots__ = ("basic", "timestamp", "length", "type_id", "stream_id")

    def __init__(self, basic: tuple[bytes, bytes, bytes, bytes]) -> None:
        self.basic = basic
        self.timestamp = 0
        self.length = 0
        self.type_id = 0
        self.stream_id = -1  # none sent yet: the first message takes a type 0 header


class ChunkWriter:
    """Serializes messages into chunks, appended to the caller's buffer.

    A sender collects every message of a batch in one ``bytearray`` (``write_into``) and writes
    it with one call: the payload is copied once, into that buffer, and nothing is joined.

    Args:
        chunk_size: maximum chunk payload; change it with ``set_chunk_size`` right after
            sending a Set Chunk Size message.
    """

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.set_chunk_size(chunk_size)
        self._streams: dict[int, _WriteState] = {}

    def set_chunk_size(self, size: int) -> None:
        """Use ``size`` for the chunks of every later message.

        Raises:
            LocalProtocolError: size outside 1..0x7FFFFFFF.
        """
        if not 1 <= size <= MAX_CHUNK_SIZE:
            raise LocalProtocolError(f"RTMP chunk size {size} outside 1..{MAX_CHUNK_SIZE}")
        self.chunk_size = size

    def write(self, message: RtmpMessage) -> bytes:
        """The chunks of ``message`` (``write_into`` a new buffer).

        Raises:
            LocalProtocolError: as ``write_into``.
        """
        out = bytearray()
        self.write_into(out, message.csid, message.timestamp, message.type_id,
                        message.stream_id, message.payload)
        return bytes(out)

    def write_into(self, out: bytearray, csid: int, timestamp: int, type_id: int,
                   stream_id: int, payload: bytes | bytearray) -> None:
        """Append the chunks of one message (the fields of ``RtmpMessage``) to ``out``.

        Raises:
            LocalProtocolError: csid outside 2..65599, payload over 16 MiB, bad field values.
        """
        state = self._streams.get(csid)
        if state is None:
            if not MIN_CSID <= csid <= MAX_CSID:
                raise LocalProtocolError(f"RTMP chunk stream id {csid} outside 2..65599")
            state = self._streams[csid] = _WriteState(_basic_headers(csid))
        length = len(payload)
        if length > MAX_MESSAGE_LENGTH:
            raise LocalProtocolError(f"RTMP message of {length} bytes over the 24-bit limit")
        if not 0 <= type_id <= 0xFF or not 0 <= stream_id <= 0xFFFFFFFF:
            raise LocalProtocolError("RTMP message: type id or stream id out of range")
        timestamp &= 0xFFFFFFFF
        basic = state.basic
        if state.stream_id != stream_id or timestamp < state.timestamp:
            field = timestamp
            stamp = EXTENDED if field >= EXTENDED else field
            out += basic[0]
            out += _HEADER_1.pack(stamp >> 16, stamp & 0xFFFF, length >> 16, length & 0xFFFF,
                                  type_id)
            out += _U32LE.pack(stream_id)
            state.stream_id = stream_id
        else:
            field = timestamp - state.timestamp
            stamp = EXTENDED if field >= EXTENDED else field
            # Type 3 is kept for continuation chunks: after a type 0 header peers disagree on
            # what delta a type 3 header implies, and it would save only 3 bytes.
            if state.length != length or state.type_id != type_id:
                out += basic[1]
                out += _HEADER_1.pack(stamp >> 16, stamp & 0xFFFF, length >> 16,
                                      length & 0xFFFF, type_id)
            else:
                out += basic[2]
                out += _HEADER_2.pack(stamp >> 16, stamp & 0xFFFF)
        state.timestamp, state.length, state.type_id = timestamp, length, type_id
        ext = _U32.pack(field) if field >= EXTENDED else b""
        out += ext
        size = self.chunk_size
        if length <= size:
            out += payload
            return
        continuation = basic[3] + ext
        with memoryview(payload) as view:  # released at once: a bytearray stays resizable
            out += view[:size]
            for start in range(size, length, size):
                out += continuation
                out += view[start : start + size]


class _ReadState:
    __slots__ = ("timestamp", "delta", "length", "type_id", "stream_id", "ext", "buf")

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.ext = False
        self.buf: bytearray | None = None  # the message being reassembled, None between them


class ChunkReader:
    """Reassembles messages from received chunks.

    Args:
        max_message_size: largest message accepted (the header's length is checked against
            it before any byte is buffered for it).
        max_chunk_size: largest Set Chunk Size accepted from the peer.
        max_pending: bytes of unfinished messages held at once over all chunk streams.
    """

    def __init__(
        self,
        max_message_size: int = MAX_MESSAGE_LENGTH,
        max_chunk_size: int = 1 << 24,
        max_pending: int = MAX_PENDING_BYTES,
    ) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.max_message_size = max_message_size
        self.max_chunk_size = max_chunk_size
        self.max_pending = max_pending
        self._streams: dict[int, _ReadState] = {}
        self._buf = bytearray()
        self._off = 0
        self._pending = 0
        self._partial = 0
        self.bytes_received = 0
        """Every byte fed so far (for Acknowledgement, 5.4.3)."""

    def set_chunk_size(self, size: int) -> None:
        """Apply a chunk size (the reader already does this for Set Chunk Size it reads).

        Raises:
            RemoteProtocolError: size outside 1..max_chunk_size.
        """
        if not 1 <= size <= self.max_chunk_size:
            raise RemoteProtocolError(
                f"RTMP Set Chunk Size: {size} outside 1..{self.max_chunk_size}"
            )
        self.chunk_size = size

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the peer."""
        off = self._off
        if off:
            if off == len(self._buf):
                self._buf.clear()
                self._off = 0
            elif off >= _COMPACT_AT:
                del self._buf[:off]
                self._off = 0
        self._buf += data
        self.bytes_received += len(data)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet parsed into chunks."""
        return len(self._buf) - self._off

    @property
    def pending(self) -> int:
        """Bytes held in unfinished messages, over all chunk streams (at most ``max_pending``)."""
        return self._pending

    def next_message(self) -> RtmpMessage | None:
        """The next complete message, or None while more bytes are needed.

        Raises:
            RemoteProtocolError: a header that breaks the chunk stream rules or a limit.
        """
        while True:
            result = self._next_chunk()
            if result is None:
                return None
            if result is not True:
                return result

    def _next_chunk(self) -> RtmpMessage | Literal[True] | None:
        """Parse one chunk: None if incomplete, True if consumed mid-message, else a message."""
        buf = self._buf
        pos = self._off
        end = len(buf)
        if pos >= end:
            return None
        first = buf[pos]
        fmt = first >> 6
        csid = first & 0x3F
        pos += 1
        if csid == 0:
            if pos + 1 > end:
                return None
            csid = 64 + buf[pos]
            pos += 1
        elif csid == 1:
            if pos + 2 > end:
                return None
            csid = 64 + buf[pos] + (buf[pos + 1] << 8)
            pos += 2
        header_len = (11, 7, 3, 0)[fmt]
        if pos + header_len > end:
            return None
        state = self._streams.get(csid)
        if state is None:
            if fmt != 0:
                raise RemoteProtocolError(
                    f"RTMP chunk: type {fmt} header on chunk stream {csid} before a type 0 one"
                )
            if len(self._streams) >= MAX_CHUNK_STREAMS:
                raise RemoteProtocolError(
                    f"RTMP chunk: over {MAX_CHUNK_STREAMS} chunk streams in use (MAX_CHUNK_STREAMS)"
                )
            state = _ReadState()
        new_message = state.buf is None
        if fmt == 3:
            ext = state.ext
            field = state.delta
        else:
            field = int.from_bytes(buf[pos : pos + 3], "big")
            ext = field == EXTENDED
        if ext:
            if pos + header_len + 4 > end:
                return None
            field_ext = int(_U32.unpack_from(buf, pos + header_len)[0])
        else:
            field_ext = field
        if fmt != 3 and not new_message:
            raise RemoteProtocolError(
                f"RTMP chunk: type {fmt} header on chunk stream {csid} inside a message"
            )
        length = state.length
        if fmt <= 1:
            length = int.from_bytes(buf[pos + 3 : pos + 6], "big")
            if length > self.max_message_size:
                raise RemoteProtocolError(
                    f"RTMP chunk: message of {length} bytes over the limit {self.max_message_size}"
                )
        take = min(self.chunk_size, length - (len(state.buf) if state.buf is not None else 0))
        data_start = pos + header_len + (4 if ext else 0)
        if data_start + take > end:
            return None
        # The whole chunk is here: commit the header.
        self._streams[csid] = state
        field = field_ext
        if fmt == 0:
            state.timestamp = field
            state.delta = field
            state.stream_id = _U32LE.unpack_from(buf, pos + 7)[0]
        elif new_message:
            state.delta = field
            state.timestamp = (state.timestamp + field) & 0xFFFFFFFF
        if fmt != 3:
            state.ext = ext
        if fmt <= 1:
            state.length = length
            state.type_id = buf[pos + 6]
        whole = new_message and take == length  # a message in one chunk: no reassembly
        if not whole:
            if self._pending + take > self.max_pending:
                raise RemoteProtocolError(
                    f"RTMP chunk: unfinished messages would hold {self._pending + take} bytes, "
                    f"over the limit of {self.max_pending} (max_pending)"
                )
            if new_message:
                if self._partial >= MAX_PARTIAL_MESSAGES:
                    raise RemoteProtocolError(
                        f"RTMP chunk: over {MAX_PARTIAL_MESSAGES} unfinished messages at once "
                        "(MAX_PARTIAL_MESSAGES)"
                    )
                self._partial += 1
                state.buf = bytearray()
        self._off = data_start + take
        with memoryview(buf) as view:  # released at once: the bytearray must stay resizable
            if whole:
                payload = bytes(view[data_start : data_start + take])
            else:
                assert state.buf is not None
                state.buf += view[data_start : data_start + take]
                self._pending += take
                if len(state.buf) < state.length:
                    return True
                payload = bytes(state.buf)
                self._pending -= len(payload)
                self._partial -= 1
                state.buf = None
        message = RtmpMessage(csid, state.timestamp, state.type_id, state.stream_id, payload)
        if message.type_id == SET_CHUNK_SIZE and len(payload) >= 4:
            # The top bit is reserved and must be zero; mask it as FFmpeg does.
            self.set_chunk_size(_U32.unpack_from(payload)[0] & 0x7FFFFFFF)
        elif message.type_id == ABORT and len(payload) >= 4:
            aborted = self._streams.get(_U32.unpack_from(payload)[0])
            if aborted is not None and aborted.buf is not None:
                self._pending -= len(aborted.buf)
                self._partial -= 1
                aborted.buf = None
        return message
