"""RtspClient against scripted camera replies (live555, Hikvision, Dahua, cheap cameras)."""

from collections.abc import Callable

import pytest

from relay.errors import AuthError, LocalProtocolError, RemoteProtocolError
from relay.rtsp.auth import authorization, parse_challenges
from relay.rtsp.client import (
    Described,
    InterleavedData,
    Origin,
    Playing,
    Redirected,
    RtspClient,
    State,
    TornDown,
    TrackSetup,
    UnsupportedTransport,
)
from relay.rtsp.headers import RtpInfo
from relay.rtsp.message import ConnectionClosed, MessageReader, Request, interleave
from relay.sansio import NEED_DATA
from tests.unit.rtsp import _fixtures as fx

Reply = str | Callable[[Request], str]


def sent_requests(client: RtspClient) -> list[Request]:
    reader = MessageReader()
    reader.receive_data(client.data_to_send())
    out = []
    while (event := reader.next_event()) is not NEED_DATA:
        assert isinstance(event, Request)
        out.append(event)
    return out


def drain(client: RtspClient) -> list:
    """Events up to NEED_DATA or the first ConnectionClosed (which then repeats, as in h11)."""
    out = []
    while (event := client.next_event()) is not NEED_DATA:
        out.append(event)
        if isinstance(event, ConnectionClosed):
            assert client.next_event() == event
            break
    return out


def answer(client: RtspClient, reply: Reply, **fmt: str) -> tuple[Request, list]:
    """The one request the client queued, and the events after feeding ``reply`` to it."""
    [req] = sent_requests(client)
    text = reply(req) if callable(reply) else reply
    client.receive_data(text.format(cseq=req.cseq, **fmt).encode())
    return req, drain(client)


def new_client(**kw) -> RtspClient:
    kw.setdefault("transport", "tcp")
    kw.setdefault("cnonce_factory", lambda: "cafebabe")
    url = kw.pop("url", "rtsp://192.0.2.10:8554/stream")
    return RtspClient(url, **kw)


OK = "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n"


def test_live555_conversation() -> None:
    client = new_client(user_agent="Relay/0.1")
    client.connect()
    req, events = answer(client, fx.LIVE555_OPTIONS)
    assert (req.method, req.uri, req.headers["User-Agent"], req.cseq) == (
        "OPTIONS", "rtsp://192.0.2.10:8554/stream", "Relay/0.1", 1
    )
    assert events == [] and "GET_PARAMETER" in client.public
    req, [described] = answer(client, fx.LIVE555_DESCRIBE)
    assert (req.method, req.headers["Accept"], req.cseq) == ("DESCRIBE", "application/sdp", 2)
    assert isinstance(described, Described)
    assert described.base_url == "rtsp://192.0.2.10:8554/stream/"
    assert [m.encoding for m in described.sdp.media] == ["H264", "MPEG4-GENERIC"]
    client.setup([0, 1])
    req, events = answer(client, fx.LIVE555_SETUP, ch="0-1")
    assert req.uri == "rtsp://192.0.2.10:8554/stream/track1" and events == []
    assert req.headers["Transport"] == "RTP/AVP/TCP;unicast;interleaved=0-1"
    assert "Session" not in req.headers
    req, events = answer(client, fx.LIVE555_SETUP, ch="2-3")
    assert req.uri == "rtsp://192.0.2.10:8554/stream/track2"
    assert (req.headers["Transport"], req.headers["Session"]) == (
        "RTP/AVP/TCP;unicast;interleaved=2-3", "9A4F6C2B"
    )
    req, [playing] = answer(client, fx.LIVE555_PLAY)
    assert (req.method, req.uri, req.headers["Range"], req.headers["Session"]) == (
        "PLAY", "rtsp://192.0.2.10:8554/stream/", "npt=0.000-", "9A4F6C2B"
    )
    assert isinstance(playing, Playing) and playing.session_timeout == 65
    tracks = [(t.media_index, t.control_url, t.interleaved, t.server_ports) for t in playing.tracks]
    assert tracks == [
        (0, "rtsp://192.0.2.10:8554/stream/track1", (0, 1), None),
        (1, "rtsp://192.0.2.10:8554/stream/track2", (2, 3), None),
    ]
    assert playing.rtp_info[0] == RtpInfo("rtsp://192.0.2.10:8554/stream/track1", 22917, 2875348162)
    assert client.state is State.PLAYING

    stream = interleave(0, b"rtp-1") + interleave(1, b"rtcp") + interleave(2, b"audio")
    for i in range(len(stream)):
        client.receive_data(stream[i : i + 1])
    assert [(e.channel, bytes(e.data)) for e in drain(client)] == [
        (0, b"rtp-1"), (1, b"rtcp"), (2, b"audio")
    ]
    assert InterleavedData.__name__ == "InterleavedFrame"
    client.send_interleaved(1, b"RR")
    assert client.data_to_send() == b"$\x01\x00\x02RR"

    assert client.keepalive()
    req, events = answer(client, OK)
    assert (req.method, req.uri, req.headers["Session"]) == (
        "GET_PARAMETER", "rtsp://192.0.2.10:8554/stream/", "9A4F6C2B"
    )
    assert events == []
    client.teardown()
    req, events = answer(client, OK)
    assert (req.method, req.uri) == ("TEARDOWN", "rtsp://192.0.2.10:8554/stream/")
    assert events == [TornDown()] and client.state is State.CLOSED


def test_hikvision_digest_absolute_controls_options_keepalive() -> None:
    client = new_client(url="rtsp://192.0.2.64:554/Streaming/Channels/101", username="admin",
                        password="12345")
    client.connect()
    answer(client, "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, PLAY\r\n\r\n")
    req, events = answer(client, fx.HIK_401)
    assert req.method == "DESCRIBE" and "Authorization" not in req.headers and events == []
    req, [described] = answer(client, fx.HIK_DESCRIBE)
    assert req.method == "DESCRIBE" and req.cseq == 3
    [ch] = parse_challenges([fx.HIK_401.split("WWW-Authenticate: ")[1].split("\r\n")[0]])
    assert req.headers["Authorization"] == authorization(
        ch, "DESCRIBE", req.uri, "admin", "12345", "cafebabe", 1
    )
    client.setup([0])
    req, _ = answer(client, fx.HIK_SETUP, ch="0-1")
    assert req.uri == "rtsp://192.0.2.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast"
    assert req.headers["Authorization"] == authorization(  # RFC 2069 form: no qop offered
        ch, "SETUP", req.uri, "admin", "12345", "cafebabe", 2
    )
    assert "nc=" not in req.headers["Authorization"]
    req, [playing] = answer(client, OK)
    assert req.uri == "rtsp://192.0.2.64:554/Streaming/Channels/101/?transportmode=unicast"
    assert req.headers["Session"] == "1273125837"
    assert req.headers["Authorization"] == authorization(
        ch, "PLAY", req.uri, "admin", "12345", "cafebabe", 3
    )
    assert playing.tracks == [TrackSetup(
        0, req.uri.replace("/?", "/trackID=1?"), (0, 1), None, 0x3A1B2C4D,
        playing.tracks[0].transport,
    )]
    client.keepalive()
    req, events = answer(client, OK)
    assert req.method == "OPTIONS" and "Authorization" in req.headers and events == []


def test_dahua_rfc2069_digest_and_query_base() -> None:
    client = new_client(url="rtsp://192.0.2.108:554/cam/realmonitor?channel=1&subtype=0",
                        username="admin", password="pw")
    client.connect()
    answer(client, fx.DAHUA_401)
    req, events = answer(client, fx.LIVE555_OPTIONS)  # OPTIONS again, with credentials
    assert req.method == "OPTIONS" and "qop" not in req.headers["Authorization"]
    req, [described] = answer(client, fx.DAHUA_DESCRIBE)
    assert req.headers["Authorization"].startswith('Digest username="admin"')
    client.setup([0, 1])
    req, _ = answer(client, fx.DAHUA_SETUP, ch="0-1")
    assert req.uri == "rtsp://192.0.2.108:554/cam/realmonitor?channel=1&subtype=0/trackID=0"
    req, _ = answer(client, fx.DAHUA_SETUP, ch="2-3")
    req, [playing] = answer(client, OK)
    assert req.uri == "rtsp://192.0.2.108:554/cam/realmonitor?channel=1&subtype=0/"
    assert [t.ssrc for t in playing.tracks] == [0x5C6D7E8F] * 2


def test_cheap_camera_quirks() -> None:
    """LF-only, no reason, Transport without interleaved ids, server_port=0-1, no CSeq on PLAY."""
    client = new_client()
    client.connect()
    answer(client, "RTSP/1.0 404 Not Found\r\nCSeq: {cseq}\r\n\r\n")  # OPTIONS refused: fine
    sdp = "v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\na=control:trackID=1\n"
    no_base = f"RTSP/1.0 200 OK\nCSeq: {{cseq}}\nContent-Length: {len(sdp)}\n\n{sdp}"
    _, [described] = answer(client, no_base)
    assert described.base_url == "rtsp://192.0.2.10:8554/stream"
    client.setup([0])
    req, _ = answer(client, fx.CHEAP_SETUP)
    assert req.uri == "rtsp://192.0.2.10:8554/stream/trackID=1"
    req, [playing] = answer(client, "RTSP/1.0 200 OK\n\n")
    assert req.uri == "rtsp://192.0.2.10:8554/stream"
    assert playing.tracks[0].interleaved == (0, 1) and playing.tracks[0].server_ports is None
    assert playing.session_timeout == 30 and client.session_id == "ABCDEF"


def test_mangled_or_missing_setup_transport_means_what_was_asked() -> None:
    client = new_client()
    client.connect()
    answer(client, OK)
    answer(client, fx.LIVE555_DESCRIBE)
    client.setup([0, 1])
    answer(client, "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: S\r\n"
                   "Transport: RTP/AVP/TCP;interleaved=x-y\r\n\r\n")
    answer(client, "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: S\r\n\r\n")
    _, [playing] = answer(client, OK)
    assert [(t.interleaved, t.transport) for t in playing.tracks] == [
        ((0, 1), None), ((2, 3), None)
    ]


def test_udp_setup_and_461() -> None:
    client = new_client(transport="udp")
    client.connect()
    answer(client, fx.LIVE555_OPTIONS)
    answer(client, fx.LIVE555_DESCRIBE)
    with pytest.raises(LocalProtocolError):
        client.setup([0])  # udp needs ports
    client = new_client(transport="udp")
    client.connect()
    answer(client, fx.LIVE555_OPTIONS)
    answer(client, fx.LIVE555_DESCRIBE)
    client.setup([0, 1], [(5000, 5001), (5002, 5003)])
    reply = ("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: S1\r\nTransport: "
             "RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=0000ABCD\r\n\r\n")
    req, _ = answer(client, reply)
    assert req.headers["Transport"] == "RTP/AVP;unicast;client_port=5000-5001"
    with pytest.raises(UnsupportedTransport, match="RTSP SETUP: 461 Unsupported Transport"):
        answer(client, "RTSP/1.0 461 Unsupported Transport\r\nCSeq: {cseq}\r\n\r\n")
    assert client.state is State.CLOSED


def test_udp_server_ports() -> None:
    client = new_client(transport="udp")
    client.connect()
    answer(client, fx.LIVE555_OPTIONS)
    answer(client, fx.LIVE555_DESCRIBE)
    client.setup([1], [(5002, 5003)])
    answer(client, "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: S1\r\nTransport: "
                   "RTP/AVP;unicast;client_port=5002-5003;server_port=6972;ssrc=0000ABCD\r\n\r\n")
    _, [playing] = answer(client, OK)
    assert playing.tracks[0].server_ports == (6972, 6973) and playing.tracks[0].ssrc == 0xABCD
    assert playing.tracks[0].interleaved is None


def test_461_over_tcp_is_plain_error() -> None:
    client = new_client()
    client.connect()
    answer(client, OK)
    answer(client, fx.LIVE555_DESCRIBE)
    client.setup([0])
    with pytest.raises(RemoteProtocolError) as info:
        answer(client, "RTSP/1.0 461 Unsupported Transport\r\nCSeq: {cseq}\r\n\r\n")
    assert not isinstance(info.value, UnsupportedTransport)


def test_401_twice_is_auth_error_without_secrets() -> None:
    client = new_client(username="admin", password="hunter2")
    client.connect()
    answer(client, fx.AXIS_401)
    with pytest.raises(AuthError, match="wrong username or password") as info:
        answer(client, fx.AXIS_401)
    assert "hunter2" not in str(info.value)


def test_401_without_credentials() -> None:
    client = new_client()
    client.connect()
    with pytest.raises(AuthError, match="credentials required"):
        answer(client, fx.HIK_401)


def test_401_unsupported_scheme() -> None:
    client = new_client(username="a", password="b")
    client.connect()
    with pytest.raises(AuthError, match="unsupported authentication"):
        answer(client, "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n"
                       "WWW-Authenticate: Negotiate\r\n\r\n")


def test_digest_nc_counts_and_stale_nonce_gets_one_more_try() -> None:
    client = new_client(username="admin", password="pw")
    client.connect()
    with_qop = fx.HIK_401.replace('stale="FALSE"', 'qop="auth", stale="FALSE"')
    answer(client, with_qop)
    req, _ = answer(client, OK)
    assert "nc=00000001" in req.headers["Authorization"] and req.method == "OPTIONS"
    req, events = answer(client, with_qop.replace("a2b5", "eeee"))  # nonce expired, not stale
    assert "nc=00000002" in req.headers["Authorization"] and events == []
    stale = with_qop.replace('stale="FALSE"', 'stale="TRUE"').replace("a2b5", "ffff")
    req, events = answer(client, stale)
    assert 'nonce="eeee' in req.headers["Authorization"] and events == []
    req, [described] = answer(client, fx.HIK_DESCRIBE)
    assert 'nonce="ffff' in req.headers["Authorization"]
    assert "nc=00000001" in req.headers["Authorization"] and req.method == "DESCRIBE"
    client.setup([0])
    req, _ = answer(client, fx.HIK_SETUP, ch="0-1")
    assert "nc=00000002" in req.headers["Authorization"]


def test_redirect() -> None:
    client = new_client()
    client.connect()
    answer(client, OK)
    _, [event] = answer(client, "RTSP/1.0 302 Moved Temporarily\r\nCSeq: {cseq}\r\n"
                                "Location: rtsp://192.0.2.11/stream\r\n\r\n")
    assert event == Redirected("rtsp://192.0.2.11/stream") and client.state is State.CLOSED
    client = new_client()
    client.connect()
    with pytest.raises(RemoteProtocolError, match="without Location"):
        answer(client, "RTSP/1.0 301 Moved\r\nCSeq: {cseq}\r\n\r\n")


def test_server_redirect_request() -> None:
    client = new_client()
    client.connect()
    client.data_to_send()
    client.receive_data(b"REDIRECT rtsp://192.0.2.10:8554/stream RTSP/1.0\r\nCSeq: 1\r\n"
                        b"Location: rtsp://192.0.2.12/s\r\n\r\n")
    assert drain(client) == [Redirected("rtsp://192.0.2.12/s")]
    assert client.data_to_send() == b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"


def redirect_to(location: str, url: str = "rtsp://192.0.2.10:8554/stream") -> list:
    client = new_client(url=url)
    client.connect()
    answer(client, OK)
    return answer(client, "RTSP/1.0 302 Found\r\nCSeq: {cseq}\r\nLocation: " + location
                  + "\r\n\r\n")[1]


def test_relative_redirect_resolves_against_the_request_url() -> None:
    assert redirect_to("/other?x=1") == [Redirected("rtsp://192.0.2.10:8554/other?x=1")]


@pytest.mark.parametrize("url, location, match", [
    ("rtsp://192.0.2.10/s", "rtsp://192.0.2.11:99999/s", r"bad Location .*99999.*out of range"),
    ("rtsp://192.0.2.10/s", "rtsp://192.0.2.11:abc/s", r"bad Location"),
    ("rtsp://192.0.2.10/s", "rtsp://[::1/s", r"bad Location"),
    ("rtsp://192.0.2.10/s", "rtsp://192.0.2.11:0/s", r"port 0"),
    ("rtsp://192.0.2.10/s", "rtsp://:554/s", r"no host"),
    ("rtsp://192.0.2.10/s", "http://192.0.2.11/s", r"non-RTSP URL"),
    ("rtsp://192.0.2.10/s", "rtsp://admin:Secret@192.0.2.11/s", r"carries user:password@"),
    ("rtsps://192.0.2.10/s", "rtsp://192.0.2.11/s", r"from rtsps:// .* refused \(it would drop"),
    ("rtsp://192.0.2.10/s", "rtsps://192.0.2.11/s", r"from rtsp:// .* refused \(configure"),
    ("rtsp://192.0.2.10/s", "rtsp://192.0.2.11/s\x7fx", r"malformed Location"),
    ("rtsp://192.0.2.10/s", "rtsp://\u0441am.example/s", r"malformed Location"),
    ("rtsp://192.0.2.10/s", "rtsp://h/" + "a" * 3000, r"malformed Location"),
])
def test_unsafe_redirects_are_one_clear_error(url: str, location: str, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match) as info:
        redirect_to(location, url)
    assert "Secret" not in str(info.value) and "\n" not in str(info.value)


def test_server_redirect_request_is_checked_too() -> None:
    client = new_client(url="rtsps://192.0.2.10/stream")
    client.connect()
    client.data_to_send()
    client.receive_data(b"REDIRECT rtsps://192.0.2.10/stream RTSP/1.0\r\nCSeq: 1\r\n"
                        b"Location: rtsp://192.0.2.12/s\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="drop TLS"):
        drain(client)
    assert client.state is State.CLOSED


def test_rtsps_needs_interleaved_transport() -> None:
    with pytest.raises(LocalProtocolError, match="interleaved"):
        new_client(url="rtsps://192.0.2.10/stream", transport="udp")


@pytest.mark.parametrize("url, origin, hostport", [
    ("rtsp://Cam.Local/x", Origin("rtsp", "cam.local", 554), "cam.local:554"),
    ("rtsps://cam:7441/x", Origin("rtsps", "cam", 7441), "cam:7441"),
    ("rtsps://[::1]/x", Origin("rtsps", "::1", 322), "[::1]:322"),
])
def test_origin(url: str, origin: Origin, hostport: str) -> None:
    assert Origin.of(url) == origin and origin.hostport == hostport


def test_error_replies_name_method_and_status() -> None:
    client = new_client()
    client.connect()
    answer(client, OK)
    with pytest.raises(RemoteProtocolError, match=r"^RTSP DESCRIBE: 404 Not Found$"):
        answer(client, "RTSP/1.0 404 Not Found\r\nCSeq: {cseq}\r\n\r\n")
    with pytest.raises(LocalProtocolError, match="setup"):
        client.setup([0])


@pytest.mark.parametrize(
    "body, match",
    [("", "without SDP"), ("v=0\ns=no media\n", "without media"), ("<html>", "SDP: ")],
)
def test_bad_describe(body: str, match: str) -> None:
    client = new_client()
    client.connect()
    answer(client, OK)
    with pytest.raises(RemoteProtocolError, match=match):
        answer(client, fx.body_reply("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n", body))


def playing_client(public: str | None) -> RtspClient:
    client = new_client()
    client.connect()
    extra = f"Public: {public}\r\n" if public else ""
    answer(client, "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n" + extra + "\r\n")
    answer(client, fx.LIVE555_DESCRIBE)
    client.setup([0])
    answer(client, fx.LIVE555_SETUP, ch="0-1")
    answer(client, fx.LIVE555_PLAY)
    assert client.state is State.PLAYING
    return client


def test_keepalive_choice() -> None:
    client = playing_client("OPTIONS, GET_PARAMETER")
    client.keepalive()
    req, events = answer(client, "RTSP/1.0 501 Not Implemented\r\nCSeq: {cseq}\r\n\r\n")
    assert req.method == "GET_PARAMETER" and events == []
    client.keepalive()
    req, events = answer(client, "RTSP/1.0 405 Method Not Allowed\r\nCSeq: {cseq}\r\n\r\n")
    assert req.method == "OPTIONS" and events == []  # fell back for good
    client = playing_client(None)
    client.keepalive()
    req, _ = answer(client, OK)
    assert req.method == "OPTIONS"
    client.keepalive()
    with pytest.raises(RemoteProtocolError, match="RTSP OPTIONS: 454 Session Not Found"):
        answer(client, "RTSP/1.0 454 Session Not Found\r\nCSeq: {cseq}\r\n\r\n")


def test_server_requests_are_answered() -> None:
    client = playing_client("GET_PARAMETER")
    client.receive_data(b"GET_PARAMETER rtsp://h/ RTSP/1.0\r\nCSeq: 40\r\n\r\n"
                        b"ANNOUNCE rtsp://h/ RTSP/1.0\r\nCSeq: 41\r\n\r\n"
                        b"OPTIONS * RTSP/1.0\r\nCSeq: 42\r\n\r\n")
    assert drain(client) == []
    assert client.data_to_send() == (
        b"RTSP/1.0 200 OK\r\nCSeq: 40\r\nSession: 9A4F6C2B\r\n\r\n"
        b"RTSP/1.0 501 Not Implemented\r\nCSeq: 41\r\nSession: 9A4F6C2B\r\n\r\n"
        b"RTSP/1.0 200 OK\r\nCSeq: 42\r\nSession: 9A4F6C2B\r\n\r\n"
    )


def test_stray_reply_ignored_and_eof() -> None:
    client = playing_client(None)
    client.receive_data(b"RTSP/1.0 200 OK\r\nCSeq: 999\r\n\r\n")
    assert drain(client) == []
    client.receive_data(b"")
    assert drain(client) == [ConnectionClosed()] and client.state is State.CLOSED


def test_teardown_eof_and_without_session() -> None:
    client = playing_client(None)
    client.teardown()
    client.data_to_send()
    client.receive_data(b"")  # cameras often just close
    assert drain(client) == [TornDown(), ConnectionClosed()]
    client = new_client()
    client.connect()
    client.teardown()
    assert drain(client) == [TornDown()] and client.data_to_send() == (
        b"OPTIONS rtsp://192.0.2.10:8554/stream RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Relay\r\n\r\n"
    )


def test_state_table_enforced() -> None:
    client = new_client()
    calls = (client.keepalive, lambda: client.setup([0]), lambda: client.send_interleaved(0, b""))
    for call in calls:
        with pytest.raises(LocalProtocolError, match="not allowed in state IDLE"):
            call()
    client.connect()
    with pytest.raises(LocalProtocolError, match="connect"):
        client.connect()
    client = playing_client(None)
    with pytest.raises(LocalProtocolError):
        client.setup([0])


def test_url_with_credentials_refused_without_echo() -> None:
    with pytest.raises(LocalProtocolError) as info:
        RtspClient("rtsp://admin:s3cret@192.0.2.1/x", "tcp")
    assert "s3cret" not in str(info.value)
    with pytest.raises(LocalProtocolError):
        RtspClient("http://192.0.2.1/x", "tcp")
    with pytest.raises(LocalProtocolError):
        RtspClient("rtsp://192.0.2.1/x", "sctp")
