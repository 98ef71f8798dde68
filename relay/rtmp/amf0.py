"""AMF0 encoding and decoding (Adobe AMF0 specification, 2006, section 2).

Python values map to AMF0 types: float/int -> number (2.2), bool -> boolean (2.3), str -> string
or long string (2.4, 2.14), dict -> anonymous object (2.5), None -> null (2.7), ``UNDEFINED`` ->
undefined (2.8), ``EcmaArray`` -> ECMA array (2.10), list/tuple -> strict array (2.12), ``Date``
-> date (2.13). Numbers decode as float. Decoding enforces a nesting depth and an element count.
A type marker this decoder does not read (reference 2.9, AVM+ 2.17 switching to AMF3, reserved or
undefined markers) raises ``UnknownTypeError``; ``decode_prefix`` stops there instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from relay.errors import LocalProtocolError, RemoteProtocolError

NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
NULL = 0x05
UNDEFINED_MARKER = 0x06
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C
UNSUPPORTED = 0x0D
XML_DOCUMENT = 0x0F
TYPED_OBJECT = 0x10

MAX_DEPTH = 32
MAX_ELEMENTS = 100_000

_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_DATE = struct.Struct(">dh")  # milliseconds since the epoch (UTC), time zone (reserved, 0)


class UnknownTypeError(RemoteProtocolError):
    """A value whose type marker this decoder does not read: its length, and so everything
    after it, cannot be known."""


class Undefined:
    """Type of ``UNDEFINED``, AMF0's undefined (distinct from null/None)."""

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED = Undefined()


class EcmaArray(dict[str, Any]):
    """A dict that encodes as an AMF0 ECMA array (``onMetaData`` uses one)."""


@dataclass(frozen=True, slots=True)
class Date:
    """An AMF0 date: milliseconds since 1970-01-01 UTC and the (unused) time zone field."""

    milliseconds: float
    timezone: int = 0


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"AMF0 encode: string not valid Unicode: {exc.reason}") from None


def _encode_string_body(text: str, out: list[bytes]) -> None:
    raw = _utf8(text)
    if len(raw) > 0xFFFF:
        raise LocalProtocolError("AMF0 encode: object key longer than 65535 bytes")
    out.append(_U16.pack(len(raw)))
    out.append(raw)


def _encode_value(value: Any, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise LocalProtocolError(f"AMF0 encode: nesting deeper than {MAX_DEPTH}")
    if value is None:
        out.append(b"\x05")
    elif value is UNDEFINED:
        out.append(b"\x06")
    elif isinstance(value, bool):
        out.append(b"\x01\x01" if value else b"\x01\x00")
    elif isinstance(value, (int, float)):
        out.append(b"\x00" + _DOUBLE.pack(float(value)))
    elif isinstance(value, str):
        raw = _utf8(value)
        if len(raw) <= 0xFFFF:
            out.append(b"\x02" + _U16.pack(len(raw)))
        elif len(raw) <= 0xFFFFFFFF:
            out.append(b"\x0c" + _U32.pack(len(raw)))
        else:
            raise LocalProtocolError("AMF0 encode: string longer than 4 GiB")
        out.append(raw)
    elif isinstance(value, dict):
        if isinstance(value, EcmaArray):
            out.append(b"\x08" + _U32.pack(len(value)))
        else:
            out.append(b"\x03")
        for key, item in value.items():
            if not isinstance(key, str):
                raise LocalProtocolError(f"AMF0 encode: object key {key!r} is not a string")
            _encode_string_body(key, out)
            _encode_value(item, out, depth + 1)
        out.append(b"\x00\x00\x09")
    elif isinstance(value, (list, tuple)):
        out.append(b"\x0a" + _U32.pack(len(value)))
        for item in value:
            _encode_value(item, out, depth + 1)
    elif isinstance(value, Date):
        out.append(b"\x0b" + _DATE.pack(value.milliseconds, value.timezone))
    else:
        raise LocalProtocolError(f"AMF0 encode: cannot encode {type(value).__name__}")


def encode(*values: Any) -> bytes:
    """Encode values one after another (a command: name, transaction id, object, args...).

    Raises:
        LocalProtocolError: a value has no AMF0 form, or a length or depth limit is exceeded.
    """
    out: list[bytes] = []
    for value in values:
        _encode_value(value, out, 0)
    return b"".join(out)


class _Decoder:
    __slots__ = ("data", "pos", "start", "elements", "max_depth", "max_elements")

    def __init__(self, data: bytes | bytearray | memoryview, max_depth: int, max_elements: int):
        self.data = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        self.pos = 0
        self.start = 0  # where the top-level value being decoded began
        self.elements = 0
        self.max_depth = max_depth
        self.max_elements = max_elements

    def take(self, n: int, what: str) -> bytes | memoryview:
        end = self.pos + n
        if end > len(self.data):
            raise RemoteProtocolError(f"AMF0: truncated {what}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def text(self, n: int, what: str) -> str:
        try:
            return bytes(self.take(n, what)).decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError(f"AMF0: {what} is not UTF-8") from None

    def short_string(self, what: str) -> str:
        (n,) = _U16.unpack(self.take(2, what))
        return self.text(n, what)

    def count(self, n: int = 1) -> None:
        self.elements += n
        if self.elements > self.max_elements:
            raise RemoteProtocolError(f"AMF0: more than {self.max_elements} elements")

    def properties(self, into: dict[str, Any], depth: int) -> dict[str, Any]:
        while True:
            key = self.short_string("object key")
            if not key and self.pos < len(self.data) and self.data[self.pos] == OBJECT_END:
                self.pos += 1
                return into
            self.count()
            into[key] = self.value(depth + 1)

    def top_level(self, values: list[Any]) -> None:
        while self.pos < len(self.data):
            self.start = self.pos
            self.count()
            values.append(self.value())

    def value(self, depth: int = 0) -> Any:
        if depth > self.max_depth:
            raise RemoteProtocolError(f"AMF0: nesting deeper than {self.max_depth}")
        marker = self.take(1, "type marker")[0]
        if marker == NUMBER:
            return _DOUBLE.unpack(self.take(8, "number"))[0]
        if marker == BOOLEAN:
            return self.take(1, "boolean")[0] != 0
        if marker == STRING:
            return self.short_string("string")
        if marker == OBJECT:
            return self.properties({}, depth)
        if marker == NULL:
            return None
        if marker in (UNDEFINED_MARKER, UNSUPPORTED):
            return UNDEFINED
        if marker == ECMA_ARRAY:
            # The count is advisory (encoders get it wrong); the end marker is authoritative.
            self.take(4, "ECMA array count")
            return self.properties(EcmaArray(), depth)
        if marker == STRICT_ARRAY:
            (n,) = _U32.unpack(self.take(4, "strict array count"))
            # Each element takes at least one byte: a count beyond what is left is garbage.
            if n > len(self.data) - self.pos:
                raise RemoteProtocolError(f"AMF0: strict array count {n} exceeds the data")
            self.count(n)
            return [self.value(depth + 1) for _ in range(n)]
        if marker == DATE:
            ms, tz = _DATE.unpack(self.take(10, "date"))
            return Date(ms, tz)
        if marker in (LONG_STRING, XML_DOCUMENT):
            (n,) = _U32.unpack(self.take(4, "long string length"))
            if n > len(self.data) - self.pos:
                raise RemoteProtocolError("AMF0: truncated long string")
            return self.text(n, "long string")
        if marker == TYPED_OBJECT:
            self.short_string("class name")
            return self.properties({}, depth)
        if marker == OBJECT_END:
            raise RemoteProtocolError("AMF0: object end outside an object")
        raise UnknownTypeError(f"AMF0: unsupported type marker 0x{marker:02x}")


def decode_all(
    data: bytes | bytearray | memoryview,
    *,
    max_depth: int = MAX_DEPTH,
    max_elements: int = MAX_ELEMENTS,
) -> list[Any]:
    """Decode every value in ``data`` (a whole command or data message payload).

    Raises:
        RemoteProtocolError: truncated or malformed data, bad UTF-8, limits exceeded, or
            ``UnknownTypeError`` for a type this decoder does not read.
    """
    values: list[Any] = []
    _Decoder(data, max_depth, max_elements).top_level(values)
    return values


def decode_prefix(
    data: bytes | bytearray | memoryview,
    *,
    max_depth: int = MAX_DEPTH,
    max_elements: int = MAX_ELEMENTS,
) -> tuple[list[Any], int]:
    """Decode values up to the first one of a type this decoder does not read.

    A command from a server may end in values of types AMF0 readers differ on; the values
    before one still name the command and carry what a client needs.

    Returns:
        The values decoded whole, and the number of bytes left undecoded from the first
        value of an unknown type on (0 when every value decoded).

    Raises:
        RemoteProtocolError: truncated or malformed data, bad UTF-8, limits exceeded.
    """
    decoder = _Decoder(data, max_depth, max_elements)
    values: list[Any] = []
    try:
        decoder.top_level(values)
    except UnknownTypeError:
        return values, len(decoder.data) - decoder.start
    return values, 0
