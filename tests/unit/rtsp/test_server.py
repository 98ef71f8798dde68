"""RtspServerConnection: scripted requests, and whole conversations with RtspClient in memory."""

import pytest

from relay.errors import AuthError, RemoteProtocolError
from relay.rtsp.auth import DigestServer
from relay.rtsp.client import Described, Playing, RtspClient, TornDown, UnsupportedTransport
from relay.rtsp.message import ConnectionClosed, InterleavedFrame, MessageReader, Response
from relay.rtsp.sdp import MediaDescription, SessionDescription
from relay.rtsp.server import PlayRequested, RtspServerConnection, interleave
from relay.rtsp.server import TornDown as ServerTornDown
from relay.sansio import NEED_DATA

SDP = SessionDescription(
    [
        MediaDescription.make("video", 96, "H264", 90000, fmtp={"packetization-mode": "1"},
                              control="trackID=0"),
        MediaDescription.make("audio", 97, "MPEG4-GENERIC", 48000, 2,
                              fmtp={"config": "1190", "mode": "AAC-hbr"}, control="trackID=1"),
    ],
    control="*",
    session_name="Relay demo",
).serialize()


def describe(path: str) -> str | None:
    return SDP if path == "/demo" else None


def new_server(**kw) -> RtspServerConnection:
    ids = iter(["SESSION1", "SESSION2"])
    kw.setdefault("session_id_factory", lambda: next(ids))
    return RtspServerConnection(describe, **kw)


def pump(client: RtspClient, server: RtspServerConnection) -> tuple[list, list]:
    """Move bytes both ways until both sides are idle; the events each side saw."""
    client_events, server_events = [], []
    while True:
        moved = False
        if data := client.data_to_send():
            server.receive_data(data)
            moved = True
        while (event := server.next_event()) is not NEED_DATA:
            server_events.append(event)
        if data := server.data_to_send():
            client.receive_data(data)
            moved = True
        while (event := client.next_event()) is not NEED_DATA:
            client_events.append(event)
        if not moved:
            return client_events, server_events


@pytest.mark.parametrize("algorithm, qop", [("MD5", True), ("SHA-256", True), ("MD5", False)])
def test_conversation_with_digest_and_interleaved(algorithm: str, qop: bool) -> None:
    auth = DigestServer("Relay demo", {"viewer": "pa55"}, algorithm=algorithm, qop=qop)
    server = new_server(auth=auth)
    client = RtspClient("rtsp://127.0.0.1:8554/demo", "tcp", "viewer", "pa55")
    client.connect()
    [described], [] = pump(client, server)
    assert isinstance(described, Described)
    assert described.base_url == "rtsp://127.0.0.1:8554/demo/"
    assert described.sdp == SessionDescription.parse(SDP)
    client.setup([0, 1])
    [playing], [play] = pump(client, server)
    assert isinstance(playing, Playing)
    assert [t.interleaved for t in playing.tracks] == [(0, 1), (2, 3)]
    assert play == PlayRequested("/demo", {0: (0, 1), 1: (2, 3)}, "SESSION1")
    assert client.session_id == "SESSION1" and client.session_timeout == 60

    # RTP out through the helper, RTCP back through the client.
    rtp = [bytes([0x80, 96]) + bytes(range(i, i + 50)) for i in range(5)]
    client.receive_data(b"".join(interleave(0, p) for p in rtp) + interleave(2, b"aac"))
    got = []
    while (event := client.next_event()) is not NEED_DATA:
        got.append((event.channel, bytes(event.data)))
    assert got == [(0, p) for p in rtp] + [(2, b"aac")]
    client.send_interleaved(1, b"\x81\xc9rr")
    [], [rtcp] = pump(client, server)
    assert rtcp == InterleavedFrame(1, b"\x81\xc9rr")

    client.keepalive()
    assert pump(client, server) == ([], [])
    client.teardown()
    [torn], [server_torn] = pump(client, server)
    assert torn == TornDown() and server_torn == ServerTornDown("SESSION1")
    server.receive_data(b"")
    assert isinstance(server.next_event(), ConnectionClosed)


def test_wrong_password_against_server() -> None:
    server = new_server(auth=DigestServer("Relay demo", {"viewer": "pa55"}))
    client = RtspClient("rtsp://127.0.0.1:8554/demo", "tcp", "viewer", "nope")
    client.connect()
    with pytest.raises(AuthError, match="wrong username or password"):
        pump(client, server)


def test_udp_client_gets_unsupported_transport() -> None:
    server = new_server()
    client = RtspClient("rtsp://127.0.0.1:8554/demo", "udp")
    client.connect()
    pump(client, server)
    client.setup([0], [(5000, 5001)])
    with pytest.raises(UnsupportedTransport):
        pump(client, server)


def test_unknown_path_is_404() -> None:
    server = new_server()
    client = RtspClient("rtsp://127.0.0.1:8554/nothing", "tcp")
    client.connect()
    with pytest.raises(RemoteProtocolError, match="RTSP DESCRIBE: 404 Not Found"):
        pump(client, server)


def ask(server: RtspServerConnection, text: str) -> Response:
    server.receive_data(text.encode())
    assert server.next_event() is NEED_DATA
    reader = MessageReader()
    reader.receive_data(server.data_to_send())
    resp = reader.next_event()
    assert isinstance(resp, Response) and reader.next_event() is NEED_DATA
    return resp


def test_scripted_requests() -> None:
    server = new_server(auth=DigestServer("r", {"u": "p"}))
    resp = ask(server, "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
    assert resp.status == 200 and "GET_PARAMETER" in resp.headers["Public"]
    resp = ask(server, "DESCRIBE rtsp://h/demo RTSP/1.0\r\nCSeq: 2\r\n\r\n")
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Digest realm=\"r\"")
    assert resp.cseq == 2
    resp = ask(server, "PLAY rtsp://h/demo RTSP/1.0\r\nCSeq: 3\r\n\r\n")
    assert resp.status == 401
    resp = ask(server, "DESCRIBE rtsp://h/demo RTSP/1.0\r\n\r\n")
    assert resp.status == 400 and resp.cseq is None


def test_setup_play_rules() -> None:
    server = new_server()
    resp = ask(server, "PLAY rtsp://h/demo RTSP/1.0\r\nCSeq: 1\r\n\r\n")
    assert resp.status == 454
    resp = ask(server, "SETUP rtsp://h/demo/trackID=9 RTSP/1.0\r\nCSeq: 2\r\n"
                       "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n")
    assert resp.status == 404
    resp = ask(server, "SETUP rtsp://h/demo/trackID=1 RTSP/1.0\r\nCSeq: 3\r\nTransport: "
                       "RTP/AVP;unicast;client_port=5000-5001, RTP/AVP/TCP;unicast\r\n\r\n")
    assert resp.status == 200 and resp.headers["Session"] == "SESSION1;timeout=60"
    assert resp.headers["Transport"] == "RTP/AVP/TCP;unicast;interleaved=0-1;mode=PLAY"
    resp = ask(server, "SETUP rtsp://h/demo/trackID=0 RTSP/1.0\r\nCSeq: 4\r\nSession: WRONG\r\n"
                       "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n")
    assert resp.status == 454
    resp = ask(server, "SETUP rtsp://h/demo/trackID=0 RTSP/1.0\r\nCSeq: 5\r\nSession: SESSION1\r\n"
                       "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n")
    assert resp.headers["Transport"].startswith("RTP/AVP/TCP;unicast;interleaved=2-3")
    resp = ask(server, "SETUP rtsp://h/demo/trackID=0 RTSP/1.0\r\nCSeq: 6\r\nSession: SESSION1\r\n"
                       "Transport: nonsense\r\n\r\n")
    assert resp.status == 400
    resp = ask(server, "RECORD rtsp://h/demo RTSP/1.0\r\nCSeq: 7\r\nSession: SESSION1\r\n\r\n")
    assert resp.status == 501
    resp = ask(server,
               "GET_PARAMETER rtsp://h/demo RTSP/1.0\r\nCSeq: 8\r\nSession: SESSION1\r\n\r\n")
    assert resp.status == 200
    server.receive_data(b"PLAY rtsp://h/demo RTSP/1.0\r\nCSeq: 9\r\nSession: SESSION1\r\n\r\n")
    assert server.next_event() == PlayRequested("/demo", {1: (0, 1), 0: (2, 3)}, "SESSION1")
    assert b"RTSP/1.0 200 OK" in server.data_to_send()


def test_interleave_helper() -> None:
    payload = memoryview(b"xxhello")[2:]
    assert interleave(4, payload) == b"$\x04\x00\x05hello"
    server = new_server()
    server.send_interleaved(0, b"ab")
    assert server.data_to_send() == b"$\x00\x00\x02ab"
