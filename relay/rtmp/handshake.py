"""Client side of the simple (unsigned) RTMP handshake (Adobe RTMP 1.0, section 5.2).

C0 (version 3) + C1 (time, zero, 1528 random bytes) go out first; C2 echoes S1 once S0+S1 are
in; the handshake is done when S2 has arrived too. Servers that need the digest handshake
(Flash-era ``FMS``) are out of scope: every modern ingest accepts the simple one.
"""

from __future__ import annotations

import struct

from relay.errors import LocalProtocolError, RemoteProtocolError

RTMP_VERSION = 3
HANDSHAKE_SIZE = 1536
RANDOM_SIZE = HANDSHAKE_SIZE - 8
_TIMES = struct.Struct(">II")  # time, time2 (zero in C1/S1, peer-read time in C2/S2)


class ClientHandshake:
    """The client's half of the handshake as a small state machine.

    Args:
        random_bytes: the 1528 random bytes of C1 (passed in: the core draws no randomness).
        epoch: the C1 timestamp in milliseconds (any value; 0 is common).
    """

    __slots__ = ("_c1", "_buf", "_c2_sent", "done", "unused", "epoch")

    def __init__(self, random_bytes: bytes, epoch: int = 0) -> None:
        if len(random_bytes) != RANDOM_SIZE:
            raise LocalProtocolError(f"RTMP handshake: need {RANDOM_SIZE} random bytes")
        self.epoch = epoch & 0xFFFFFFFF
        self._c1 = _TIMES.pack(self.epoch, 0) + bytes(random_bytes)
        self._buf = bytearray()
        self._c2_sent = False
        self.done = False
        self.unused = b""
        """Bytes received after S2: the start of the chunk stream."""

    def initial(self) -> bytes:
        """C0 + C1, to send first."""
        return bytes([RTMP_VERSION]) + self._c1

    def receive_data(self, data: bytes | bytearray) -> bytes | None:
        """Feed bytes from the server.

        Returns:
            C2 to send, once, as soon as S0 + S1 are in; otherwise None.

        Raises:
            RemoteProtocolError: S0 names a version other than 3.
            LocalProtocolError: data after the handshake finished (feed ``unused`` onwards).
        """
        if self.done:
            raise LocalProtocolError("RTMP handshake: already done")
        self._buf += data
        buf = self._buf
        if buf and buf[0] != RTMP_VERSION:
            raise RemoteProtocolError(f"RTMP handshake: server version {buf[0]}, expected 3")
        reply = None
        if not self._c2_sent and len(buf) >= 1 + HANDSHAKE_SIZE:
            s1 = buf[1 : 1 + HANDSHAKE_SIZE]
            s1_time = _TIMES.unpack_from(s1)[0]
            # C2 echoes S1's time and random bytes; time2 is when we read S1 (our epoch).
            reply = _TIMES.pack(s1_time, self.epoch) + bytes(s1[8:])
            self._c2_sent = True
        if len(buf) >= 1 + 2 * HANDSHAKE_SIZE:
            # S2 should echo C1; servers differ (nginx does, others send random), so it is
            # not checked, as FFmpeg and OBS do not check it either.
            self.unused = bytes(buf[1 + 2 * HANDSHAKE_SIZE :])
            self.done = True
            self._buf = bytearray()
        return reply
