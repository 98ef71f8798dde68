"""Random and mutated bytes into every parser of network input: only RemoteProtocolError escapes."""

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.errors import RemoteProtocolError
from relay.rtmp import amf0
from relay.rtmp.chunk import ChunkReader, ChunkWriter, RtmpMessage
from relay.rtmp.handshake import ClientHandshake
from relay.rtmp.message import parse_message
from relay.rtmp.publish import RtmpPublisher
from relay.rtmp.url import RtmpUrl
from relay.sansio import NEED_DATA
from tests.unit.memory import memory_bounded

VALID = ChunkWriter(128).write(RtmpMessage(3, 0, 20, 0, amf0.encode("_result", 1, None, {})))


def mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        if out:
            out[pos % len(out)] = value
    return bytes(out)


@settings(max_examples=400)
@given(st.binary(max_size=600) | st.builds(
    mutate, st.just(VALID), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)))))
@memory_bounded
def test_chunk_reader_and_message_parsers(data: bytes) -> None:
    reader = ChunkReader(max_message_size=1 << 16)
    reader.receive_data(data)
    try:
        while (message := reader.next_message()) is not None:
            parse_message(message)
    except RemoteProtocolError:
        pass


@settings(max_examples=400)
@given(st.binary(max_size=300) | st.builds(
    mutate, st.just(amf0.encode("connect", 1, {"a": [1, "b", None], "c": amf0.EcmaArray(d=True)})),
    st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 255)))))
@memory_bounded
def test_amf0_decode(data: bytes) -> None:
    try:
        amf0.decode_all(data)
    except RemoteProtocolError:
        pass
    try:
        _, undecoded = amf0.decode_prefix(data)
    except RemoteProtocolError:
        return
    assert 0 <= undecoded <= len(data)


@settings(max_examples=200)
@given(st.binary(min_size=12, max_size=12))
def test_huge_lengths_allocate_nothing(header: bytes) -> None:
    # A type 0 header announcing up to 16 MiB, with only the header fed: nothing is reserved.
    tracemalloc.start()
    try:
        reader = ChunkReader()
        reader.receive_data(bytes([3]) + header[1:])
        try:
            reader.next_message()
        except RemoteProtocolError:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000
    # Counts and lengths in AMF0 beyond the data are refused before allocation.
    tracemalloc.start()
    try:
        for data in (b"\x0a" + header[:4], b"\x0c" + header[:4], b"\x08" + header[:4]):
            try:
                amf0.decode_all(data)
            except RemoteProtocolError:
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000


@settings(max_examples=200)
@given(st.binary(max_size=4000), st.integers(1, 4000))
@memory_bounded
def test_publisher_with_garbage_after_handshake(data: bytes, step: int) -> None:
    publisher = RtmpPublisher(RtmpUrl.parse("rtmp://h/app/key"), bytes(1528))
    publisher.receive_data(b"\x03" + bytes(3072))
    try:
        for i in range(0, len(data), step):
            publisher.receive_data(data[i : i + step])
            while publisher.next_event() is not NEED_DATA:
                pass
    except RemoteProtocolError:
        pass


@given(st.binary(max_size=4000))
@memory_bounded
def test_handshake(data: bytes) -> None:
    try:
        ClientHandshake(bytes(1528)).receive_data(data)
    except RemoteProtocolError:
        pass
