"""Bit-level reading and writing for codec headers (H.264 exp-Golomb, ITU-T H.264 9.1; AAC configs).

The reader works on RBSP bytes (emulation prevention already removed) and raises
``RemoteProtocolError`` when a field runs past the end, so parsers need no bounds checks of their
own. Both sides work in proportion to each field's bits, never to the size of the whole structure:
the reader turns a small window of bytes at its offset into an integer at a time, the writer
appends octets as they fill. Reading or writing a structure is then linear in it (a 258 KB LATM
element has fields by the hundred thousand).
"""

from __future__ import annotations

from relay.errors import RemoteProtocolError

MAX_EXP_GOLOMB_ZEROS = 31
"""Longest exp-Golomb prefix accepted: values up to 2^32 - 2, more than any H.264 field needs."""


WINDOW_BYTES = 64
"""Bytes the reader turns into an integer at a time: fields are read from that window, so no
shift ever involves more than the window or the field being read."""


class BitReader:
    """Reads big-endian bit fields from a bytes-like object, a window at a time (by offset; the
    bytes are not copied).

    Args:
        data: the bytes to read.
        what: names the structure in error messages ("H.264 SPS").
    """

    __slots__ = ("_bits", "_data", "_pos", "_window", "_window_end", "what")

    def __init__(self, data: bytes | bytearray | memoryview, what: str) -> None:
        self._data = data
        self._bits = len(data) * 8
        self._pos = 0
        self._window = 0  # the bytes from the one holding _pos up to bit _window_end
        self._window_end = 0
        self.what = what

    @property
    def bits_left(self) -> int:
        return self._bits - self._pos

    @property
    def position(self) -> int:
        """Bits read so far."""
        return self._pos

    def _load(self, end: int) -> None:
        """Makes the window hold the bits from the reader's position to ``end``, or more."""
        if end > self._bits:
            raise RemoteProtocolError(f"{self.what}: truncated")
        first = self._pos >> 3
        last = min(len(self._data), max(first + WINDOW_BYTES, (end + 7) >> 3))
        self._window = int.from_bytes(self._data[first:last], "big")
        self._window_end = last << 3

    def u(self, n: int) -> int:
        """Reads an ``n``-bit unsigned integer (``n`` may be 0)."""
        end = self._pos + n
        if end > self._window_end:
            self._load(end)
        self._pos = end
        return (self._window >> (self._window_end - end)) & ((1 << n) - 1)

    def peek(self, n: int) -> int:
        """The next ``n`` bits, not consumed."""
        end = self._pos + n
        if end > self._window_end:
            self._load(end)
        return (self._window >> (self._window_end - end)) & ((1 << n) - 1)

    def octets(self, count: int) -> bytes:
        """Reads ``count`` whole octets from any bit position (a slice when byte aligned)."""
        pos = self._pos
        if pos & 7:
            return self.u(8 * count).to_bytes(count, "big")
        self.skip(8 * count)
        return bytes(self._data[pos >> 3 : (pos >> 3) + count])

    def flag(self) -> bool:
        return self.u(1) == 1

    def skip(self, n: int) -> None:
        if n < 0 or self._pos + n > self._bits:  # a length from the input never moves it back
            raise RemoteProtocolError(f"{self.what}: truncated")
        self._pos += n

    def ue(self, limit: int = (1 << 32) - 2) -> int:
        """Reads an unsigned exp-Golomb code ue(v) and checks it against ``limit``."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > MAX_EXP_GOLOMB_ZEROS:
                raise RemoteProtocolError(f"{self.what}: exp-Golomb code too long")
        value = (1 << zeros) - 1 + self.u(zeros)
        if value > limit:
            raise RemoteProtocolError(f"{self.what}: value {value} over limit {limit}")
        return value

    def se(self, limit: int = (1 << 31) - 1) -> int:
        """Reads a signed exp-Golomb code se(v) whose magnitude must be at most ``limit``."""
        code = self.ue(2 * limit)
        return (code + 1) // 2 if code & 1 else -(code // 2)


class BitWriter:
    """Collects big-endian bit fields; ``bytes()`` pads the last byte with zero bits.

    Whole octets go to a bytearray as they fill; only the last partial octet is held as an int.
    """

    __slots__ = ("_out", "_tail", "_tail_bits")

    def __init__(self) -> None:
        self._out = bytearray()
        self._tail = 0
        self._tail_bits = 0

    def u(self, n: int, value: int) -> None:
        if value < 0 or value >> n:
            raise ValueError(f"{value} does not fit in {n} bits")
        tail = (self._tail << n) | value
        bits = self._tail_bits + n
        rest = bits & 7
        if bits > 7:
            self._out += (tail >> rest).to_bytes(bits >> 3, "big")
            tail &= (1 << rest) - 1
        self._tail, self._tail_bits = tail, rest

    def octets(self, data: bytes | bytearray | memoryview) -> None:
        """Appends whole octets (copied as they are when the writer is byte aligned)."""
        if self._tail_bits:
            self.u(8 * len(data), int.from_bytes(data, "big"))
        else:
            self._out += data

    def __bytes__(self) -> bytes:
        if not self._tail_bits:
            return bytes(self._out)
        return bytes(self._out) + bytes((self._tail << (8 - self._tail_bits),))
