import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.errors import LocalProtocolError, RemoteProtocolError
from relay.rtmp.chunk import (
    MAX_PARTIAL_MESSAGES,
    MAX_PENDING_BYTES,
    ChunkReader,
    ChunkWriter,
    RtmpMessage,
)


def read_all(reader: ChunkReader) -> list[RtmpMessage]:
    out = []
    while (message := reader.next_message()) is not None:
        out.append(message)
    return out


messages = st.lists(
    st.builds(
        RtmpMessage,
        csid=st.sampled_from([2, 3, 4, 63, 64, 319, 320, 65599]) | st.integers(2, 65599),
        timestamp=st.sampled_from([0, 1, 40, 0xFFFFFE, 0xFFFFFF, 0x1000000, 0xFFFFFFFF])
        | st.integers(0, 0xFFFFFFFF),
        type_id=st.sampled_from([8, 9, 18, 20]),
        stream_id=st.sampled_from([0, 1, 0xFFFFFFFF]),
        payload=st.sampled_from([b"", b"x"]) | st.binary(max_size=300)
        | st.integers(0, 200_000).map(lambda n: bytes([n % 251]) * n),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(messages, st.integers(128, 65536), st.lists(st.integers(0, 400_000), max_size=8))
def test_round_trip_with_any_chunk_size_and_splits(
    items: list[RtmpMessage], chunk_size: int, cuts: list[int]
) -> None:
    writer = ChunkWriter(chunk_size)
    data = b"".join(writer.write(m) for m in items)
    reader = ChunkReader()
    reader.set_chunk_size(chunk_size)
    got: list[RtmpMessage] = []
    start = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]:
        reader.receive_data(data[start:cut])
        got += read_all(reader)
        start = cut
    assert got == items
    assert reader.buffered == 0


def test_header_types() -> None:
    writer = ChunkWriter()
    first = writer.write(RtmpMessage(4, 1000, 8, 1, b"a" * 10))
    assert first == bytes([0x04]) + bytes.fromhex("0003e8 00000a 08 01000000") + b"a" * 10
    # Same length and type, new delta: type 2; then same delta again: still type 2.
    assert writer.write(RtmpMessage(4, 1020, 8, 1, b"b" * 10)) == b"\x84\x00\x00\x14" + b"b" * 10
    assert writer.write(RtmpMessage(4, 1040, 8, 1, b"c" * 10))[:4] == b"\x84\x00\x00\x14"
    # New length: type 1 with the delta.
    assert writer.write(RtmpMessage(4, 1050, 8, 1, b"d" * 3)) == (
        b"\x44" + bytes.fromhex("00000a 000003 08") + b"ddd"
    )
    # New message stream or a timestamp going back: type 0.
    assert writer.write(RtmpMessage(4, 1060, 8, 2, b"e"))[0] == 0x04
    assert writer.write(RtmpMessage(4, 5, 8, 2, b"e"))[0] == 0x04


def test_continuations_and_basic_header_forms() -> None:
    writer = ChunkWriter(128)
    data = writer.write(RtmpMessage(400, 0, 9, 1, bytes(300)))
    # 3-byte basic header for csid 400 (1 + 2 bytes), 11-byte message header, 128 bytes,
    # then two type 3 continuations with a 3-byte basic header each.
    assert data[:3] == bytes([0x01, (400 - 64) & 0xFF, (400 - 64) >> 8])
    assert data[3 + 11 + 128 : 3 + 11 + 128 + 3] == bytes([0xC1, 0x50, 0x01])
    assert len(data) == 3 + 11 + 300 + 2 * 3
    assert ChunkWriter().write(RtmpMessage(64, 0, 9, 1, b""))[:2] == b"\x00\x00"
    assert ChunkWriter().write(RtmpMessage(319, 0, 9, 1, b""))[:2] == b"\x00\xff"


def test_extended_timestamp_is_repeated_in_continuations() -> None:
    writer = ChunkWriter(128)
    data = writer.write(RtmpMessage(6, 0x01020304, 9, 1, bytes(200)))
    assert data[1:4] == b"\xff\xff\xff"
    assert data[12:16] == b"\x01\x02\x03\x04"
    cont = 1 + 11 + 4 + 128
    assert data[cont : cont + 5] == b"\xc6\x01\x02\x03\x04"
    reader = ChunkReader()
    reader.receive_data(data)
    assert read_all(reader) == [RtmpMessage(6, 0x01020304, 9, 1, bytes(200))]


def test_reader_follows_set_chunk_size_and_abort() -> None:
    writer = ChunkWriter()
    data = writer.write(RtmpMessage(2, 0, 1, 0, (4096).to_bytes(4, "big")))
    writer.set_chunk_size(4096)
    data += writer.write(RtmpMessage(3, 0, 20, 0, bytes(3000)))
    # A partial message on csid 7, then an Abort for it, then a fresh message on csid 7.
    partial = ChunkWriter(4096).write(RtmpMessage(7, 0, 9, 1, bytes(5000)))
    data += partial[: 12 + 4096]
    data += writer.write(RtmpMessage(2, 0, 2, 0, (7).to_bytes(4, "big")))
    data += writer.write(RtmpMessage(7, 50, 9, 1, b"fresh"))
    reader = ChunkReader()
    reader.receive_data(data)
    got = read_all(reader)
    assert [(m.csid, m.type_id, len(m.payload)) for m in got] == [
        (2, 1, 4), (3, 20, 3000), (2, 2, 4), (7, 9, 5)
    ]
    assert reader.chunk_size == 4096


def test_interleaved_chunk_streams() -> None:
    # Chunks of two messages alternate on the wire (5.3.2.2).
    a = ChunkWriter(128).write(RtmpMessage(4, 10, 8, 1, b"A" * 200))
    v = ChunkWriter(128).write(RtmpMessage(6, 20, 9, 1, b"V" * 200))
    a1, a2 = a[: 12 + 128], a[12 + 128 :]
    v1, v2 = v[: 12 + 128], v[12 + 128 :]
    reader = ChunkReader()
    reader.receive_data(a1 + v1 + a2 + v2)
    assert [(m.csid, m.payload[:1]) for m in read_all(reader)] == [(4, b"A"), (6, b"V")]


def test_type3_new_message_reuses_delta() -> None:
    writer = ChunkWriter()
    data = writer.write(RtmpMessage(4, 100, 8, 1, b"ab"))
    data += writer.write(RtmpMessage(4, 120, 8, 1, b"cd"))
    data += b"\xc4ef"  # type 3 at a message start: same length, type, stream and delta
    reader = ChunkReader()
    reader.receive_data(data)
    assert [m.timestamp for m in read_all(reader)] == [100, 120, 140]


@pytest.mark.parametrize("data,why", [
    (b"\x44\x00\x00\x00\x00\x00\x01\x08", "before a type 0"),
    (b"\x04\x00\x00\x00\xff\xff\xff\x09\x01\x00\x00\x00", "over the limit"),
    (b"\x02\x00\x00\x00\x00\x00\x04\x01\x00\x00\x00\x00\x00\x00\x00\x00", "Set Chunk Size"),
    (b"\x04\x00\x00\x00\x00\x00\xc8\x09\x01\x00\x00\x00" + bytes(128)
     + b"\x44\x00\x00\x00\x00\x00\x01\x08", "inside a message"),
])
def test_garbage(data: bytes, why: str) -> None:
    reader = ChunkReader(max_message_size=1 << 20)
    reader.receive_data(data)
    with pytest.raises(RemoteProtocolError, match=why):
        read_all(reader)


def test_writer_limits() -> None:
    with pytest.raises(LocalProtocolError):
        ChunkWriter().write(RtmpMessage(1, 0, 9, 1, b""))
    with pytest.raises(LocalProtocolError):
        ChunkWriter().write(RtmpMessage(65600, 0, 9, 1, b""))
    with pytest.raises(LocalProtocolError):
        ChunkWriter(0)


def _open_partial(csid: int, chunk: int) -> bytes:
    """A type 0 header announcing the largest message on ``csid``, then ``chunk`` bytes of it."""
    basic = bytes((csid,)) if csid < 64 else bytes((0, csid - 64))
    return basic + bytes.fromhex("000000 ffffff 09 01000000") + bytes(chunk)


def test_pending_bytes_over_all_chunk_streams_are_bounded_at_every_chunk() -> None:
    # A peer opens a 16 MiB message on each of 40 chunk streams with one small chunk (each
    # start is within limits), raises the chunk size to 1 MiB, then feeds them all in turn.
    streams = range(3, 43)
    reader = ChunkReader()
    reader.receive_data(b"".join(_open_partial(csid, 128) for csid in streams))
    chunk = 1 << 20
    reader.receive_data(ChunkWriter().write(RtmpMessage(2, 0, 1, 0, chunk.to_bytes(4, "big"))))
    assert len(read_all(reader)) == 1
    with pytest.raises(RemoteProtocolError, match=f"over the limit of {MAX_PENDING_BYTES}"):
        for _ in range(16):
            for csid in streams:
                reader.receive_data(bytes((0xC0 | csid,)) + bytes(chunk))
                assert read_all(reader) == []
                assert reader.pending <= MAX_PENDING_BYTES
    assert MAX_PENDING_BYTES - chunk < reader.pending <= MAX_PENDING_BYTES


def test_unfinished_messages_are_bounded_in_number() -> None:
    reader = ChunkReader()
    data = b"".join(_open_partial(csid, 128) for csid in range(3, 4 + MAX_PARTIAL_MESSAGES))
    reader.receive_data(data)
    with pytest.raises(RemoteProtocolError, match="MAX_PARTIAL_MESSAGES"):
        read_all(reader)
    assert reader.pending == 128 * MAX_PARTIAL_MESSAGES


def test_finished_and_aborted_messages_free_their_share() -> None:
    # Many more partial messages than the limits allow in total, but never too many at once.
    writer = ChunkWriter(128)
    reader = ChunkReader()
    for round_ in range(3 * MAX_PARTIAL_MESSAGES):
        csid = 3 + round_ % MAX_PARTIAL_MESSAGES
        if round_ >= MAX_PARTIAL_MESSAGES:
            reader.receive_data(writer.write(RtmpMessage(2, 0, 2, 0, csid.to_bytes(4, "big"))))
            assert [m.type_id for m in read_all(reader)] == [2]
        reader.receive_data(_open_partial(csid, 128))
        assert read_all(reader) == []
    assert reader.pending == 128 * MAX_PARTIAL_MESSAGES
    reader.receive_data(writer.write(RtmpMessage(3, 0, 9, 1, bytes(300))))
    with pytest.raises(RemoteProtocolError, match="inside a message"):
        read_all(reader)


def _chunks(message: RtmpMessage) -> list[bytes]:
    """The chunks ChunkWriter(128) makes of ``message``, one by one."""
    raw = ChunkWriter(128).write(message)
    basic = 1 if message.csid < 64 else 2
    first = basic + 11 + min(128, len(message.payload))
    return [raw[:first]] + [raw[i : i + basic + 128] for i in range(first, len(raw), basic + 128)]


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.integers(3, 80), st.tuples(st.integers(0, 3000), st.integers(0, 30))),
    st.integers(64, 4096),
)
def test_pending_bytes_never_pass_their_limit(
    messages: dict[int, tuple[int, int]], max_pending: int
) -> None:
    # Messages on several chunk streams, their chunks interleaved, each cut short at random.
    streams = [
        _chunks(RtmpMessage(csid, 0, 9, 1, bytes(length)))[:cut]
        for csid, (length, cut) in messages.items()
    ]
    data = b"".join(
        chunks[i] for i in range(max(map(len, streams), default=0)) for chunks in streams
        if i < len(chunks)
    )
    reader = ChunkReader(max_pending=max_pending)
    for start in range(0, len(data), 100):
        reader.receive_data(data[start : start + 100])
        try:
            read_all(reader)
        except RemoteProtocolError:
            break
        finally:
            assert reader.pending <= max_pending
