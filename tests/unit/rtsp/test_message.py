"""RTSP framing: requests, responses and interleaved frames, whole, byte by byte, split anywhere."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.errors import LocalProtocolError, RemoteProtocolError
from relay.rtsp.headers import Headers
from relay.rtsp.message import (
    ConnectionClosed,
    InterleavedFrame,
    MessageReader,
    Request,
    Response,
    interleave,
)
from relay.sansio import NEED_DATA
from tests.unit.rtsp import _fixtures as fx


def events_of(chunks: list[bytes], eof: bool = True, **limits: int) -> list:
    reader = MessageReader(**limits)
    out = []
    for chunk in chunks + ([b""] if eof else []):
        reader.receive_data(chunk)
        while True:
            event = reader.next_event()
            if event is NEED_DATA:
                break
            out.append(event)
            if isinstance(event, ConnectionClosed):
                return out
    return out


def all_splits(data: bytes) -> list[list[bytes]]:
    """The whole input, byte by byte, and split in two at every offset."""
    splits = [[data], [data[i : i + 1] for i in range(len(data))]]
    splits += [[data[:i], data[i:]] for i in range(1, len(data))]
    return splits


STREAM = (
    fx.LIVE555_DESCRIBE.format(cseq=2).encode()
    + interleave(0, b"\x80\x60" + bytes(100))
    + b"\r\n"  # a stray line end between messages
    + b"GET_PARAMETER rtsp://cam/x RTSP/1.0\r\nCSeq: 7\r\n\r\n"
    + interleave(1, b"")
    + fx.CHEAP_SETUP.format(cseq=3).encode()
)


def check_stream(events: list) -> None:
    assert [type(e) for e in events] == [
        Response, InterleavedFrame, Request, InterleavedFrame, Response, ConnectionClosed
    ]
    describe, rtp, req, rtcp, cheap, _ = events
    assert describe.status == 200 and describe.reason == "OK" and describe.cseq == 2
    assert describe.headers.get("content-base") == "rtsp://192.0.2.10:8554/stream/"
    assert describe.body == fx.LIVE555_SDP.replace("\n", "\r\n").encode()
    assert (rtp.channel, bytes(rtp.data)) == (0, b"\x80\x60" + bytes(100))
    assert (req.method, req.uri, req.cseq) == ("GET_PARAMETER", "rtsp://cam/x", 7)
    assert (rtcp.channel, bytes(rtcp.data)) == (1, b"")
    assert (cheap.status, cheap.reason, cheap.cseq) == (200, "", 3)
    assert cheap.headers.get("Session") == "ABCDEF;timeout=30;foo=bar"


def test_stream_whole_bytewise_and_every_split() -> None:
    for chunks in all_splits(STREAM):
        check_stream(events_of(chunks))


@pytest.mark.parametrize(
    "raw",
    [fx.LIVE555_OPTIONS, fx.HIK_401, fx.HIK_SETUP, fx.DAHUA_401, fx.DAHUA_DESCRIBE, fx.AXIS_401],
)
def test_fixtures_parse_at_every_split(raw: str) -> None:
    data = raw.format(cseq=5, ch="0-1").encode()
    expected = events_of([data])
    assert isinstance(expected[0], Response) and expected[0].cseq == 5
    for chunks in all_splits(data):
        assert events_of(chunks) == expected


def test_tolerates_camera_quirks() -> None:
    data = (
        b"Rtsp/1.0   200   OK  \r\nCSeq:3\r\nX-Long: first\r\n  second\r\n"
        b"Content-Length: 2 \r\n\r\nhi"
    )
    [resp, _] = events_of([data])
    assert (resp.status, resp.reason, resp.body) == (200, "OK", b"hi")
    assert resp.headers["x-long"] == "first second"
    [resp, _] = events_of([b"RTSP/1.0 454 Session Not Found\n\n"])
    assert resp.reason == "Session Not Found"


def test_multi_valued_headers_kept_in_order() -> None:
    [resp, _] = events_of([fx.AXIS_401.format(cseq=1).encode()])
    values = resp.headers.get_all("www-authenticate")
    assert len(values) == 2 and values[0].startswith("Digest") and values[1].startswith("Basic")


@given(
    st.sampled_from(["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "GET_PARAMETER"]),
    st.lists(st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}", fullmatch=True),
                       st.from_regex(r"[ -~]{0,20}", fullmatch=True).map(str.strip))),
    st.binary(max_size=200),
)
def test_request_round_trip(method: str, items: list, body: bytes) -> None:
    items = [(n, v) for n, v in items if n.lower() != "content-length"]
    req = Request(method, "rtsp://h/p?q=1", Headers(items), body)
    [parsed, _] = events_of([bytes(req)])
    assert (parsed.method, parsed.uri, parsed.body) == (method, req.uri, body)
    assert list(parsed.headers)[: len(items)] == items


@given(st.integers(100, 999), st.from_regex(r"[A-Za-z][ -~]{0,30}", fullmatch=True),
       st.binary(max_size=100))
def test_response_round_trip(status: int, reason: str, body: bytes) -> None:
    resp = Response(status, reason.strip(), Headers([("CSeq", "9")]), body)
    [parsed, _] = events_of([bytes(resp)])
    assert (parsed.status, parsed.reason, parsed.body, parsed.cseq) == (
        status, reason.strip(), body, 9
    )
    assert bytes(parsed) == bytes(resp)


@given(st.integers(0, 255), st.binary(max_size=2000))
def test_interleaved_round_trip(channel: int, data: bytes) -> None:
    frame = bytes(InterleavedFrame(channel, data))
    assert frame[:4] == bytes([0x24, channel, len(data) >> 8, len(data) & 0xFF])
    [parsed, _] = events_of([frame])
    assert (parsed.channel, bytes(parsed.data)) == (channel, data)


def test_interleaved_max_length_is_fine() -> None:
    data = bytes(range(256)) * 256  # 65536 bytes: one too many
    with pytest.raises(LocalProtocolError):
        interleave(0, data)
    [frame, _] = events_of([interleave(3, data[:65535])])
    assert len(frame.data) == 65535


def test_limits() -> None:
    with pytest.raises(RemoteProtocolError, match="max_body"):
        events_of([b"RTSP/1.0 200 OK\r\nContent-Length: 99999999999\r\n\r\n"])
    with pytest.raises(RemoteProtocolError, match="max_headers"):
        events_of([b"RTSP/1.0 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n"])
    with pytest.raises(RemoteProtocolError, match="max_header_bytes"):
        events_of([b"RTSP/1.0 200 OK\r\nX: " + b"y" * 70000], eof=False)
    with pytest.raises(RemoteProtocolError, match="max_header_bytes"):
        events_of([b"RTSP/1.0 200 OK\r\nX: " + b"y" * 2000 + b"\r\n\r\n"], max_header_bytes=1000)
    # A header flood fed in small pieces fails as soon as the limit is crossed.
    reader = MessageReader()
    reader.receive_data(b"RTSP/1.0 200 OK\r\n")
    with pytest.raises(RemoteProtocolError):
        for _ in range(10000):
            reader.receive_data(b"X-Flood: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")
            assert reader.next_event() is NEED_DATA


@pytest.mark.parametrize(
    "data, match",
    [
        (b"\x00\x01garbage\r\n\r\n", "lost framing"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "HTTP"),
        (b"RTSP/1.0 OK\r\n\r\n", "start line"),
        (b"RTSP/1.0 200 OK\r\nno colon here\r\n\r\n", "header line"),
        (b"RTSP/1.0 200 OK\r\n folded first\r\n\r\n", "continuation"),
        (b"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"RTSP/1.0 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "conflicting"),
        (b"RTSP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nabc", "closed inside"),
        (b"$\x00\x00\x10abc", "closed inside"),
        (b"RTSP/1.0 000 Zero\r\n\r\n", "start line"),
    ],
)
def test_garbage(data: bytes, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        events_of([data])


def test_data_after_eof_is_local_error() -> None:
    reader = MessageReader()
    reader.receive_data(b"")
    assert isinstance(reader.next_event(), ConnectionClosed)
    with pytest.raises(LocalProtocolError):
        reader.receive_data(b"x")


def test_many_small_frames_are_linear() -> None:
    """100k frames in one buffer: each event is O(frame), the buffer is compacted."""
    frame = interleave(0, bytes(20))
    reader = MessageReader()
    count = 0
    for _ in range(10):
        reader.receive_data(frame * 10000)
        while reader.next_event() is not NEED_DATA:
            count += 1
    assert count == 100000
    assert reader.buffered == 0 and len(reader._buf) <= len(frame) * 10000


def test_status_line_blanks_before_the_line_end() -> None:
    """The reason phrase loses its trailing blanks; 60 KB of them parse in one pass (a lazy
    reason took 20 s of backtracking on such a line)."""
    response, _ = events_of([b"RTSP/1.0 200 All good \t \r\n\r\n"])
    assert isinstance(response, Response) and response.reason == "All good"
    response, _ = events_of([b"RTSP/1.0 200 x" + b" " * 60000 + b"y \r\n\r\n"])
    assert isinstance(response, Response) and response.reason == "x" + " " * 60000 + "y"


def test_bad_local_messages_refused() -> None:
    with pytest.raises(LocalProtocolError):
        Request("BAD METHOD", "rtsp://h/", Headers())
    with pytest.raises(LocalProtocolError):
        Response(200, "OK\r\nInjected: 1", Headers())
