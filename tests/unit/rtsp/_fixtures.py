"""Real-world-style RTSP replies (live555, Hikvision, Dahua, Axis) used by several test modules.

Hand-written after the shape of what those servers send; each reply has a `{cseq}` placeholder.
"""


def body_reply(head: str, sdp: str) -> str:
    """A reply with an SDP body and its Content-Length (head ends before the blank line)."""
    data = sdp.replace("\n", "\r\n")
    return f"{head}Content-Length: {len(data.encode())}\r\n\r\n{data}"


LIVE555_OPTIONS = (
    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nDate: Sat, Jan 01 2022 00:00:00 GMT\r\n"
    "Public: OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY, PAUSE, GET_PARAMETER, SET_PARAMETER\r\n\r\n"
)
LIVE555_SDP = """v=0
o=- 1672531200000000 1 IN IP4 192.0.2.10
s=Session streamed by "testOnDemandRTSPServer"
i=stream
t=0 0
a=tool:LIVE555 Streaming Media v2022.01.01
a=type:broadcast
a=control:*
a=range:npt=0-
m=video 0 RTP/AVP 96
c=IN IP4 0.0.0.0
b=AS:500
a=rtpmap:96 H264/90000
a=fmtp:96 packetization-mode=1;profile-level-id=42C01F;sprop-parameter-sets=Z0LAH9kAUAW7ARAAAAMAEAAAAwPA8YMkgA==,aMuMsg==
a=control:track1
m=audio 0 RTP/AVP 97
c=IN IP4 0.0.0.0
a=rtpmap:97 MPEG4-GENERIC/44100/2
a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210
a=control:track2
"""
LIVE555_DESCRIBE = body_reply(
    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nDate: Sat, Jan 01 2022 00:00:00 GMT\r\n"
    "Content-Base: rtsp://192.0.2.10:8554/stream/\r\nContent-Type: application/sdp\r\n",
    LIVE555_SDP,
)
LIVE555_SETUP = (
    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nDate: Sat, Jan 01 2022 00:00:00 GMT\r\n"
    "Transport: RTP/AVP/TCP;unicast;destination=192.0.2.1;source=192.0.2.10;interleaved={ch}\r\n"
    "Session: 9A4F6C2B;timeout=65\r\n\r\n"
)
LIVE555_PLAY = (
    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nDate: Sat, Jan 01 2022 00:00:00 GMT\r\n"
    "Range: npt=0.000-\r\nSession: 9A4F6C2B\r\n"
    "RTP-Info: url=rtsp://192.0.2.10:8554/stream/track1;seq=22917;rtptime=2875348162,"
    "url=rtsp://192.0.2.10:8554/stream/track2;seq=1234;rtptime=99\r\n\r\n"
)

HIK_401 = (
    "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n"
    'WWW-Authenticate: Digest realm="IP Camera(C6160)", nonce="a2b5c3d4e5f60718293a4b5c6d7e8f90", '
    'stale="FALSE"\r\nDate:  Mon, Jan 01 2024 10:00:00 GMT\r\n\r\n'
)
HIK_SDP = """v=0
o=- 1109162014219182 1109162014219192 IN IP4 0.0.0.0
s=Media Presentation
e=NONE
b=AS:5050
t=0 0
a=control:rtsp://192.0.2.64:554/Streaming/Channels/101/?transportmode=unicast
m=video 0 RTP/AVP 96
c=IN IP4 0.0.0.0
b=AS:5000
a=recvonly
a=x-dimensions:1920,1080
a=control:rtsp://192.0.2.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z00AKp2oHgCJ+WbgICAgQA==,aO48gA==
m=audio 0 RTP/AVP 8
c=IN IP4 0.0.0.0
b=AS:50
a=recvonly
a=control:rtsp://192.0.2.64:554/Streaming/Channels/101/trackID=2?transportmode=unicast
a=Media_header:MEDIAINFO=494D4B48010100000400010010710110401F000000FA000000000000000000;
a=appversion:1.0
"""
HIK_DESCRIBE = body_reply(
    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n"
    "Content-Base: rtsp://192.0.2.64:554/Streaming/Channels/101/\r\n",
    HIK_SDP,
)
HIK_SETUP = (
    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession:       1273125837;timeout=60\r\n"
    'Transport: RTP/AVP/TCP;unicast;interleaved={ch};ssrc=3a1b2c4d;mode="play"\r\n'
    "Date:  Mon, Jan 01 2024 10:00:00 GMT\r\n\r\n"
)

# Dahua: RFC 2069 digest (no qop) next to Basic; Content-Base after a query string.
DAHUA_401 = (
    "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n"
    'WWW-Authenticate: Digest realm="Login to 4K05DAAPAZ8D5A6", nonce="1548364735"\r\n'
    'WWW-Authenticate: Basic realm="Login to 4K05DAAPAZ8D5A6"\r\n\r\n'
)
DAHUA_SDP = """v=0
o=- 2252188224 2252188224 IN IP4 0.0.0.0
s=Media Server
c=IN IP4 0.0.0.0
t=0 0
a=control:*
a=packetization-supported:DH
a=rtppayload-supported:DH
a=range:npt=now-
m=video 0 RTP/AVP 96
a=control:trackID=0
a=framerate:25.000000
a=rtpmap:96 H265/90000
a=fmtp:96 profile-id=1;sprop-sps=QgEBAWAAAAMAsAAAAwAAAwB7oAPAgBDlja5JMvTcBAQEAg==;sprop-pps=RAHA8vA8kAA=;sprop-vps=QAEMAf//AWAAAAMAsAAAAwAAAwB7rAk=
a=recvonly
m=audio 0 RTP/AVP 0
a=control:trackID=1
a=recvonly
"""
DAHUA_DESCRIBE = body_reply(
    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: "
    "rtsp://192.0.2.108:554/cam/realmonitor?channel=1&subtype=0/\r\n"
    "Content-Type: application/sdp\r\nCache-Control: must-revalidate\r\nx-Accept-Dynamic-Rate: 1\r\n",
    DAHUA_SDP,
)
DAHUA_SETUP = (
    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 12345678;timeout=60\r\n"
    "Transport: RTP/AVP/TCP;unicast;interleaved={ch};ssrc=5C6D7E8F\r\n"
    "x-Dynamic-Rate: 1\r\n\r\n"
)

AXIS_401 = (
    "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n"
    'WWW-Authenticate: Digest realm="AXIS_ACCC8E000000", '
    'nonce="0024e47aY398109708de9ccd8056c58a068a59540a99d3", stale=FALSE\r\n'
    'WWW-Authenticate: Basic realm="AXIS_ACCC8E000000"\r\n'
    "Date: Mon, 01 Jan 2024 10:00:00 GMT\r\n\r\n"
)

# A cheap camera: LF-only line ends, no reason phrase, no interleaved ids, server_port=0-1.
CHEAP_SETUP = (
    "rtsp/1.0 200\nCSeq: {cseq}\nSession: ABCDEF;timeout=30;foo=bar\n"
    "Transport: RTP/AVP/TCP;unicast;server_port=0-1\n\n"
)
