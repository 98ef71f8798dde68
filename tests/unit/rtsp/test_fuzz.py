"""Hypothesis fuzz of every RTSP parser of network input: only project errors may escape."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.errors import AuthError, RemoteProtocolError
from relay.rtsp.auth import DigestServer, authorization, choose, parse_challenges
from relay.rtsp.client import Origin, RtspClient, check_redirect
from relay.rtsp.headers import SessionHeader, Transport, parse_public, parse_range, parse_rtp_info
from relay.rtsp.message import ConnectionClosed, MessageReader
from relay.rtsp.sdp import SessionDescription, resolve_control
from relay.rtsp.server import RtspServerConnection
from relay.sansio import NEED_DATA
from tests.unit.memory import memory_bounded
from tests.unit.rtsp import _fixtures as fx

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

FIXTURE_BYTES = [
    t.format(cseq=1, ch="0-1").encode()
    for t in (fx.LIVE555_OPTIONS, fx.LIVE555_DESCRIBE, fx.LIVE555_SETUP, fx.LIVE555_PLAY,
              fx.HIK_401, fx.HIK_DESCRIBE, fx.HIK_SETUP, fx.DAHUA_401, fx.DAHUA_DESCRIBE,
              fx.DAHUA_SETUP, fx.AXIS_401, fx.CHEAP_SETUP)
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A fixture with a few bytes flipped, inserted or cut, or plain random bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    data = bytearray(draw(st.sampled_from(FIXTURE_BYTES)))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "insert", "cut"]))
        if op == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from([b"$", b"\r\n", b":", b"\x00", b" ", b"=", b";",
                                                  b",", b"\n\n", b"-", b'"', b"999999999999"]))
        else:
            del data[pos : pos + draw(st.integers(1, 20))]
    return bytes(data)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


@FUZZ
@given(st.lists(mutated(), min_size=1, max_size=4), st.lists(st.integers(0, 10**6), max_size=8))
@memory_bounded
def test_message_reader(messages: list[bytes], cuts: list[int]) -> None:
    reader = MessageReader(max_header_bytes=4096, max_headers=20, max_body=2048)
    try:
        for chunk in chunked(b"".join(messages), cuts) + [b""]:
            reader.receive_data(chunk)
            while (event := reader.next_event()) is not NEED_DATA:
                bytes(event) if not isinstance(event, ConnectionClosed) else None
                if isinstance(event, ConnectionClosed):
                    return
    except RemoteProtocolError:
        pass


sdp_lines = st.lists(
    st.one_of(
        st.sampled_from((fx.LIVE555_SDP + fx.HIK_SDP + fx.DAHUA_SDP).splitlines()),
        st.from_regex(r"[a-z]=[ -~]{0,40}", fullmatch=True),
        st.from_regex(r"a=(rtpmap|fmtp|control):[0-9]{0,4}[ -~]{0,30}", fullmatch=True),
        st.from_regex(r"m=[a-z]{0,6} [0-9/]{0,7} [A-Z/]{0,12}( [0-9a-z]{0,4}){0,4}",
                      fullmatch=True),
        st.text(max_size=30),
    ),
    max_size=40,
)


@FUZZ
@given(sdp_lines, st.sampled_from(["\n", "\r\n", "\r"]))
@memory_bounded
def test_sdp(lines: list[str], sep: str) -> None:
    try:
        sdp = SessionDescription.parse(sep.join(lines))
    except RemoteProtocolError as exc:
        assert str(exc).startswith("SDP: ")
        return
    for media in sdp.media:
        _ = media.encoding, media.clock_rate, media.channels, media.fmtp_params  # none raises
        resolve_control("rtsp://h/p", media.control)
    SessionDescription.parse(sdp.serialize())


header_text = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"[ -~]{0,80}", fullmatch=True),
    st.lists(st.sampled_from(["RTP/AVP", "RTP/AVP/TCP", "unicast", "multicast", "interleaved=",
                              "0", "-", "1", "65536", "client_port=", "server_port=", "ssrc=",
                              "mode=", '"', ";", ",", "=", "ttl=", "port=", "timeout=", " ",
                              "url=", "seq=", "rtptime=", "npt=", "now", ":", "."]),
             max_size=20).map("".join),
)


@FUZZ
@given(header_text)
@memory_bounded
def test_structured_headers(value: str) -> None:
    for parse in (Transport.parse_all, SessionHeader.parse):
        try:
            result = parse(value)
        except RemoteProtocolError:
            continue
        for item in result if isinstance(result, list) else [result]:
            assert type(item).parse(str(item)) == item if isinstance(item, SessionHeader) else True
            str(item)
    parse_rtp_info(value), parse_range(value), parse_public(value)


auth_text = st.one_of(
    st.text(max_size=100),
    st.lists(st.sampled_from(["Digest", "Basic", "Negotiate", " ", ",", "=", '"', "\\", "realm",
                              "nonce", "qop", "auth", "auth-int", "algorithm", "SHA-256", "MD5",
                              "MD5-sess", "SHA-512-256", "opaque", "stale", "abc==", "x"]),
             max_size=30).map("".join),
)


@FUZZ
@given(st.lists(auth_text, max_size=3))
@memory_bounded
def test_auth_parsing(values: list[str]) -> None:
    try:
        challenges = parse_challenges(values)
    except RemoteProtocolError:
        return
    chosen = choose(challenges)
    if chosen is not None:
        value = authorization(chosen, "DESCRIBE", "rtsp://h/p", "u", "p", "c", 1)
        assert parse_challenges([value])
    server = DigestServer("r", {"u": "p"})
    server.challenges()
    for value in values:
        assert server.verify("DESCRIBE", "rtsp://h/p", value) is None


@FUZZ
@given(st.lists(mutated(), min_size=1, max_size=6), st.booleans())
@memory_bounded
def test_client_with_hostile_server(replies: list[bytes], udp: bool) -> None:
    client = RtspClient("rtsp://192.0.2.1/stream", "udp" if udp else "tcp", "u", "p")
    client.connect()
    try:
        for reply in replies:
            client.data_to_send()
            client.receive_data(reply)
            while (event := client.next_event()) is not NEED_DATA:
                if isinstance(event, ConnectionClosed):
                    return
                if type(event).__name__ == "Described":
                    n = len(event.sdp.media)
                    client.setup(list(range(n)), [(5000 + 2 * i, 5001 + 2 * i) for i in range(n)])
                if type(event).__name__ == "Playing":
                    client.keepalive()
    except (RemoteProtocolError, AuthError):
        pass


@FUZZ
@given(st.lists(mutated(), min_size=1, max_size=4))
@memory_bounded
def test_server_with_hostile_client(requests: list[bytes]) -> None:
    server = RtspServerConnection(lambda path: fx.LIVE555_SDP if path == "/stream" else None,
                                  auth=DigestServer("r", {"u": "p"}) if len(requests) % 2 else None)
    try:
        for data in requests:
            server.receive_data(
                data.replace(b"RTSP/1.0 200 OK", b"SETUP rtsp://h/stream/track1 RTSP/1.0"))
            while (event := server.next_event()) is not NEED_DATA:
                if isinstance(event, ConnectionClosed):
                    return
            server.data_to_send()
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.sampled_from(["rtsp://192.0.2.10:8554/s", "rtsps://cam.local/s"]), st.one_of(
    st.text(max_size=80),
    st.builds(lambda scheme, host, port, path: f"{scheme}://{host}:{port}{path}",
              st.sampled_from(["rtsp", "rtsps", "RTSP", "http", ""]),
              st.text(max_size=12), st.integers(-5, 10**6), st.text(max_size=12)),
))
@memory_bounded
def test_redirect_check(current: str, location: str) -> None:
    """Any Location is a checked URL of the same scheme, or RemoteProtocolError."""
    try:
        url = check_redirect(current, location)
    except RemoteProtocolError:
        return
    target = Origin.of(url)
    assert target.scheme == Origin.of(current).scheme and 0 < target.port < 65536
    assert target.host and url.isascii() and not any(c <= " " for c in url)
