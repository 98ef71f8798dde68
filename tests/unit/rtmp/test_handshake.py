import struct

import pytest

from relay.errors import LocalProtocolError, RemoteProtocolError
from relay.rtmp.handshake import ClientHandshake

RANDOM = bytes(range(256)) * 5 + bytes(248)


def server_reply(c1: bytes, s1_time: int = 777, s1_random: bytes = b"\xab" * 1528) -> bytes:
    s1 = struct.pack(">II", s1_time, 0) + s1_random
    s2 = c1[:4] + struct.pack(">I", 5) + c1[8:]
    return b"\x03" + s1 + s2


def test_c0_c1() -> None:
    hs = ClientHandshake(RANDOM, epoch=0x01020304)
    first = hs.initial()
    assert len(first) == 1537
    assert first[:9] == b"\x03\x01\x02\x03\x04\x00\x00\x00\x00"
    assert first[9:] == RANDOM


@pytest.mark.parametrize("split", [1, 2, 1537, 1538, 3000, 3072])
def test_c2_echoes_s1_and_leftover_is_kept(split: int) -> None:
    hs = ClientHandshake(RANDOM, epoch=9)
    reply = server_reply(hs.initial()[1:]) + b"CHUNKS"
    out = [hs.receive_data(reply[:split]), hs.receive_data(reply[split:])]
    c2s = [c for c in out if c is not None]
    assert len(c2s) == 1
    assert c2s[0] == struct.pack(">II", 777, 9) + b"\xab" * 1528
    assert hs.done and hs.unused == b"CHUNKS"
    with pytest.raises(LocalProtocolError):
        hs.receive_data(b"x")


def test_byte_by_byte() -> None:
    hs = ClientHandshake(RANDOM)
    reply = server_reply(hs.initial()[1:])
    c2 = [hs.receive_data(reply[i:i + 1]) for i in range(len(reply))]
    assert [i for i, c in enumerate(c2) if c is not None] == [1536]
    assert hs.done and hs.unused == b""


def test_wrong_version_and_random_size() -> None:
    with pytest.raises(RemoteProtocolError, match="version 6"):
        ClientHandshake(RANDOM).receive_data(b"\x06")
    with pytest.raises(LocalProtocolError):
        ClientHandshake(b"short")
