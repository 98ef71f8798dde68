"""RTSP/1.0 framing (RFC 2326 sections 4, 6, 7 and 10.12), sans-IO.

One TCP stream carries requests, responses and '$'-prefixed interleaved binary frames (RTP/RTCP).
``MessageReader`` turns received bytes into those three kinds of events. It accepts what cameras
send (LF-only line ends, folded header lines, a missing reason phrase, any case of 'RTSP/1.0')
and checks every length against an explicit limit before buffering it.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from relay.errors import LocalProtocolError, RemoteProtocolError
from relay.rtsp.headers import Headers, parse_cseq
from relay.sansio import NEED_DATA, NeedData

INTERLEAVED_HEADER = struct.Struct("!BBH")  # '$' (0x24), channel id, payload length
_CHANNEL_LENGTH = struct.Struct("!BH")  # the header after its '$'
MAX_INTERLEAVED_LENGTH = 0xFFFF
_DOLLAR = 0x24
_COMPACT_AT = 1 << 16

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_SPLIT = re.compile(r"\r?\n")
# The reason phrase is greedy and stripped after: a lazy one against trailing blanks is
# quadratic in the line (64 KB of blanks took 20 s).
_STATUS_LINE = re.compile(r"RTSP/(\d{1,3})\.(\d{1,3})[ \t]+(\d{3})(?:[ \t]+(.*))?[ \t\r]*", re.I)
_REQUEST_LINE = re.compile(
    r"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,64})[ \t]+(\S{1,8192})[ \t]+RTSP/(\d{1,3})\.(\d{1,3})[ \t\r]*",
    re.I,
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _serialize(start: str, headers: Headers, body: bytes) -> bytes:
    lines = [start]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if body and "Content-Length" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body


@dataclass(frozen=True, slots=True)
class Request:
    """An RTSP request (RFC 2326 6). ``__bytes__`` adds Content-Length for a body if missing."""

    method: str
    uri: str
    headers: Headers
    body: bytes = b""

    def __post_init__(self) -> None:
        if not _TOKEN.fullmatch(self.method) or not self.uri or any(
            c.isspace() for c in self.uri
        ):
            raise LocalProtocolError(f"RTSP request: bad method or URI for {self.method[:20]!r}")

    @property
    def cseq(self) -> int | None:
        """The CSeq header as an int, or None."""
        return parse_cseq(self.headers)

    def __bytes__(self) -> bytes:
        return _serialize(f"{self.method} {self.uri} RTSP/1.0", self.headers, self.body)


@dataclass(frozen=True, slots=True)
class Response:
    """An RTSP response (RFC 2326 7)."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 999 or "\r" in self.reason or "\n" in self.reason:
            raise LocalProtocolError(f"RTSP response: bad status line {self.status}")

    @property
    def cseq(self) -> int | None:
        """The CSeq header as an int, or None."""
        return parse_cseq(self.headers)

    def __bytes__(self) -> bytes:
        start = f"RTSP/1.0 {self.status} {self.reason}".rstrip()
        return _serialize(start, self.headers, self.body)


@dataclass(frozen=True, slots=True)
class InterleavedFrame:
    """A binary frame on the RTSP connection (RFC 2326 10.12): '$', channel, 16-bit length."""

    channel: int
    data: memoryview | bytes

    def __bytes__(self) -> bytes:
        return interleave(self.channel, self.data)


def interleave(channel: int, data: bytes | memoryview) -> bytes:
    """Frame ``data`` for ``channel`` (RFC 2326 10.12): one header pack and one concatenation.

    Raises:
        LocalProtocolError: channel not in 0..255 or data longer than 65535 bytes.
    """
    if not 0 <= channel <= 255 or len(data) > MAX_INTERLEAVED_LENGTH:
        raise LocalProtocolError(f"RTSP interleaved: channel {channel} / {len(data)} bytes")
    return INTERLEAVED_HEADER.pack(_DOLLAR, channel, len(data)) + data


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the connection (``receive_data(b"")``) between messages."""


Event = Request | Response | InterleavedFrame | NeedData | ConnectionClosed


class MessageReader:
    """Incremental parser of one direction of an RTSP connection.

    Interleaved frames are not copied: each is a ``memoryview`` of the ``bytes`` passed to
    ``receive_data`` (immutable, so a view may be held as long as needed). Only a frame split
    across two reads is copied, once, into a bytes of its own; input that arrives while an
    RTSP message or a large frame is incomplete is gathered in a bytearray (linear in its
    size) and what is parsed from that is copied out.

    Args:
        max_header_bytes: limit of a start line plus headers.
        max_headers: limit of the number of header lines.
        max_body: limit of a Content-Length.
    """

    def __init__(
        self, max_header_bytes: int = 65536, max_headers: int = 100, max_body: int = 1_048_576
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.max_body = max_body
        self._buf: bytes | bytearray = b""
        self._view: memoryview | None = memoryview(b"")  # of _buf while it is bytes
        self._off = 0  # start of unconsumed bytes in _buf
        self._head: bytes | None = None  # a whole interleaved frame, '$' on, due before _buf
        self._scanned = 0  # where the search for the end of the current head resumes
        self._eof = False

    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed received bytes; ``b""`` means the peer closed its side.

        Raises:
            LocalProtocolError: data after EOF.
        """
        if self._eof:
            if data:
                raise LocalProtocolError("RTSP reader: data after EOF")
            return
        if not data:
            self._eof = True
            return
        off, buf = self._off, self._buf
        if off == len(buf):
            self._take(data, 0)
            return
        if self._head is None and buf[off] == _DOLLAR:
            need = self._frame_rest(buf, off, data)
            if need is not None and 0 < need <= len(data):
                # the frame split by the read: its two parts joined, the only copy made
                self._head = b"".join((memoryview(buf)[off:], memoryview(data)[:need]))
                self._take(data, need)
                return
        if isinstance(buf, bytes):
            gathered = bytearray(self._head or b"")
            gathered += memoryview(buf)[off:]
            self._scanned = max(0, self._scanned - off) if self._head is None else 0
            self._buf, self._view, self._off, self._head = gathered, None, 0, None
            buf, off = gathered, 0
        elif off >= _COMPACT_AT:
            del buf[:off]
            self._scanned = max(0, self._scanned - off)
            self._off = 0
        buf += data

    def _take(self, data: bytes | bytearray, off: int) -> None:
        """Parse from ``data`` itself from ``off`` on (nothing else is left over)."""
        buf = data if type(data) is bytes else bytes(data)
        self._buf, self._view, self._off, self._scanned = buf, memoryview(buf), off, 0

    @staticmethod
    def _frame_rest(buf: bytes | bytearray, off: int, data: bytes | bytearray) -> int | None:
        """How many bytes of ``data`` complete the interleaved frame begun at ``buf[off:]``
        (None while its header is incomplete)."""
        header = buf[off : off + 4]
        if len(header) < 4:
            header += data[: 4 - len(header)]
            if len(header) < 4:
                return None
        length: int = INTERLEAVED_HEADER.unpack(header)[2]
        return 4 + length - (len(buf) - off)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as events."""
        return len(self._buf) - self._off + (len(self._head) if self._head is not None else 0)

    def take_interleaved(self) -> list[tuple[int, bytes | memoryview]]:
        """Every whole interleaved frame at the front of the input, as (channel, data) in order
        (stray line ends between them skipped): a read's media in one call, with no event
        object per frame. Stops at an RTSP message or an incomplete frame, so ``next_event``
        then gives no interleaved frame until more data arrives."""
        out: list[tuple[int, bytes | memoryview]] = []
        head = self._head
        if head is not None:
            self._head = None
            out.append((head[1], memoryview(head)[4:]))
        buf, off, view = self._buf, self._off, self._view
        end = len(buf)
        unpack = _CHANNEL_LENGTH.unpack_from
        while off + 4 <= end:
            first = buf[off]
            if first != _DOLLAR:
                if first not in (0x0D, 0x0A):
                    break
                off += 1
                continue
            channel, length = unpack(buf, off + 1)
            stop = off + 4 + length
            if stop > end:
                break
            out.append((channel, view[off + 4 : stop] if view is not None
                        else bytes(buf[off + 4 : stop])))
            off = stop
        self._off = off
        return out

    def next_event(self) -> Event:
        """The next complete event, ``NEED_DATA``, or ``ConnectionClosed`` after EOF.

        Raises:
            RemoteProtocolError: malformed or oversized input, or EOF inside a message.
        """
        head = self._head
        if head is not None:
            self._head = None
            return InterleavedFrame(head[1], memoryview(head)[4:])
        buf = self._buf
        off = self._off
        end = len(buf)
        # Stray line ends between messages are common (keepalive CRLFs, trailing newlines).
        while off < end and buf[off] in (0x0D, 0x0A):
            off += 1
        self._off = off
        if off == end:
            return ConnectionClosed() if self._eof else NEED_DATA
        first = buf[off]
        if first == _DOLLAR:
            if end - off < 4:
                return self._need()
            _, channel, length = INTERLEAVED_HEADER.unpack_from(buf, off)
            stop = off + 4 + length
            if stop > end:
                return self._need()
            self._off = stop
            view = self._view
            return InterleavedFrame(
                channel, view[off + 4 : stop] if view is not None else bytes(buf[off + 4 : stop])
            )
        if not (0x41 <= first <= 0x5A or 0x61 <= first <= 0x7A):
            raise RemoteProtocolError(f"RTSP stream: unexpected byte 0x{first:02x} (lost framing)")
        match = _HEAD_END.search(buf, max(off, self._scanned - 3))
        if match is None:
            self._scanned = end
            if end - off > self.max_header_bytes:
                raise RemoteProtocolError(
                    f"RTSP message: headers exceed max_header_bytes={self.max_header_bytes}"
                )
            return self._need()
        head_end = match.end()
        if head_end - off > self.max_header_bytes:
            raise RemoteProtocolError(
                f"RTSP message: headers exceed max_header_bytes={self.max_header_bytes}"
            )
        text = bytes(buf[off : match.start()]).decode("utf-8", "surrogateescape")
        lines = _LINE_SPLIT.split(text)
        headers = self._parse_headers(lines[1:])
        length = self._content_length(headers)
        if head_end + length > end:
            return self._need()
        body = bytes(buf[head_end : head_end + length])
        self._off = head_end + length
        self._scanned = 0
        return self._start_line(lines[0], headers, body)

    def _need(self) -> NeedData:
        if self._eof:
            raise RemoteProtocolError("RTSP stream: connection closed inside a message")
        return NEED_DATA

    def _parse_headers(self, lines: list[str]) -> Headers:
        headers = Headers()
        items: list[list[str]] = []
        for line in lines:
            if line[:1] in (" ", "\t"):
                if not items:
                    raise RemoteProtocolError("RTSP message: continuation line before any header")
                items[-1].append(line.strip())  # joined once below: linear in the header
                continue
            name, colon, value = line.partition(":")
            name = name.strip()
            if not colon or not _TOKEN.fullmatch(name):
                raise RemoteProtocolError(f"RTSP message: bad header line {line[:60]!r}")
            items.append([name, value.strip()])
            if len(items) > self.max_headers:
                raise RemoteProtocolError(
                    f"RTSP message: more than max_headers={self.max_headers} headers"
                )
        for name, *parts in items:
            headers._append_unchecked(name, " ".join(parts))
        return headers

    def _content_length(self, headers: Headers) -> int:
        values = {v.strip() for v in headers.get_all("Content-Length")}
        if not values:
            return 0
        if len(values) > 1:
            raise RemoteProtocolError("RTSP message: conflicting Content-Length headers")
        value = values.pop()
        if not (value.isascii() and value.isdigit()) or len(value) > 18:
            raise RemoteProtocolError(f"RTSP message: bad Content-Length {value[:30]!r}")
        length = int(value)
        if length > self.max_body:
            raise RemoteProtocolError(
                f"RTSP message: Content-Length {length} exceeds max_body={self.max_body}"
            )
        return length

    @staticmethod
    def _start_line(line: str, headers: Headers, body: bytes) -> Request | Response:
        try:
            m = _STATUS_LINE.fullmatch(line)
            if m:
                reason = (m.group(4) or "").rstrip(" \t\r")
                return Response(int(m.group(3)), reason, headers, body)
            m = _REQUEST_LINE.fullmatch(line)
            if m:
                return Request(m.group(1).upper(), m.group(2), headers, body)
        except LocalProtocolError:
            pass
        if line[:5].upper() == "HTTP/":
            raise RemoteProtocolError("RTSP stream: the peer speaks HTTP, not RTSP")
        raise RemoteProtocolError(f"RTSP message: bad start line {line[:60]!r}")
