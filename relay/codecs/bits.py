"""Bit-level reading and writing for codec headers (H.264 exp-Golomb, ITU-T H.264 9.1; AAC configs).

The reader works on RBSP bytes (emulation prevention already removed) and raises
``RemoteProtocolError`` when a field runs past the end, so parsers need no bounds checks of their own.
"""

from __future__ import annotations

from relay.errors import RemoteProtocolError

MAX_EXP_GOLOMB_ZEROS = 31
"""Longest exp-Golomb prefix accepted: values up to 2^32 - 2, more than any H.264 field needs."""


class BitReader:
    """Reads big-endian bit fields from a bytes-like object.

    Args:
        data: the bytes to read.
        what: names the structure in error messages ("H.264 SPS").
    """

    __slots__ = ("_bits", "_pos", "_value", "what")

    def __init__(self, data: bytes | bytearray | memoryview, what: str) -> None:
        self._value = int.from_bytes(data, "big")
        self._bits = len(data) * 8
        self._pos = 0
        self.what = what

    @property
    def bits_left(self) -> int:
        return self._bits - self._pos

    def u(self, n: int) -> int:
        """Reads an ``n``-bit unsigned integer (``n`` may be 0)."""
        end = self._pos + n
        if end > self._bits:
            raise RemoteProtocolError(f"{self.what}: truncated")
        self._pos = end
        return (self._value >> (self._bits - end)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def skip(self, n: int) -> None:
        if self._pos + n > self._bits:
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
    """Collects big-endian bit fields; ``bytes()`` pads the last byte with zero bits."""

    __slots__ = ("_bits", "_value")

    def __init__(self) -> None:
        self._value = 0
        self._bits = 0

    def u(self, n: int, value: int) -> None:
        if value < 0 or value >> n:
            raise ValueError(f"{value} does not fit in {n} bits")
        self._value = (self._value << n) | value
        self._bits += n

    def __bytes__(self) -> bytes:
        pad = -self._bits % 8
        return (self._value << pad).to_bytes((self._bits + pad) // 8, "big")
