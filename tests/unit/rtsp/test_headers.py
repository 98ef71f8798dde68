"""Header collection and structured RTSP headers, with camera-style values."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.errors import LocalProtocolError, RemoteProtocolError
from relay.rtsp.headers import (
    Headers,
    NptRange,
    RtpInfo,
    SessionHeader,
    Transport,
    parse_public,
    parse_range,
    parse_rtp_info,
)


def test_headers_case_insensitive_ordered_multi() -> None:
    h = Headers([("CSeq", "1"), ("WWW-Authenticate", "Digest a"), ("www-authenticate", "Basic")])
    assert h.get("cseq") == "1" and h["CSEQ"] == "1" and "Cseq" in h
    assert h.get_all("Www-Authenticate") == ["Digest a", "Basic"]
    h.add("X", "2")
    h["www-authenticate"] = "Only"
    assert list(h) == [("CSeq", "1"), ("www-authenticate", "Only"), ("X", "2")]
    del h["x"]
    assert len(h) == 2 and h.get("x") is None and h.get("x", "d") == "d"
    assert h == Headers({"cseq": "1", "WWW-AUTHENTICATE": "Only"})
    with pytest.raises(KeyError):
        h["missing"]
    with pytest.raises(LocalProtocolError):
        h["X"] = "a\r\nInjected: yes"
    with pytest.raises(LocalProtocolError):
        h.add("Bad Name", "v")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("RTP/AVP/TCP;unicast;interleaved=0-1",
         Transport("RTP/AVP/TCP", interleaved=(0, 1))),
        ("RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=3A1B2C4D;mode=play",
         Transport(client_port=(5000, 5001), server_port=(6970, 6971), ssrc=0x3A1B2C4D,
                   mode="PLAY")),
        ('RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=3a1b2c4d;mode="play"',
         Transport("RTP/AVP/TCP", interleaved=(0, 1), ssrc=0x3A1B2C4D, mode="PLAY")),
        # Broken replies: server_port=0-1, a single port, no interleaved ids, junk ssrc.
        ("RTP/AVP/TCP;unicast;server_port=0-1;interleaved",
         Transport("RTP/AVP/TCP", server_port=(0, 1))),
        ("RTP/AVP;unicast;client_port=5000;server_port=7000",
         Transport(client_port=(5000, 5001), server_port=(7000, 7001))),
        ("RTP/AVP;unicast;ssrc=zz;x-foo=bar;append",
         Transport(extra=(("x-foo", "bar"), ("append", None)))),
        ("RTP/AVP;multicast;destination=232.0.0.1;port=5000-5001;ttl=16",
         Transport(multicast=True, destination="232.0.0.1", port=(5000, 5001), ttl=16)),
        ("RTP/AVP/TCP;unicast;destination=192.0.2.1;source=192.0.2.10;interleaved=2-3",
         Transport("RTP/AVP/TCP", destination="192.0.2.1", source="192.0.2.10",
                   interleaved=(2, 3))),
    ],
)
def test_transport_parse(value: str, expected: Transport) -> None:
    got = Transport.parse(value)
    assert got == expected
    assert Transport.parse(str(got)) == got


def test_transport_several_specs() -> None:
    specs = Transport.parse_all(
        "RTP/AVP;unicast;client_port=5000-5001, RTP/AVP/TCP;unicast;interleaved=0-1"
    )
    assert [s.is_tcp for s in specs] == [False, True]
    assert str(specs[1]) == "RTP/AVP/TCP;unicast;interleaved=0-1"


@pytest.mark.parametrize(
    "value", ["", "  ,  ", "HTTP/1.1", "RTP/AVP;client_port=70000-70001", "RTP/AVP;interleaved=x"]
)
def test_transport_garbage(value: str) -> None:
    with pytest.raises(RemoteProtocolError, match="RTSP Transport"):
        Transport.parse(value)


pairs = st.tuples(st.integers(0, 65535), st.integers(0, 65535))


@given(
    st.sampled_from(["RTP/AVP", "RTP/AVP/TCP", "RTP/AVP/UDP"]),
    st.booleans(),
    st.none() | st.tuples(st.integers(0, 255), st.integers(0, 255)),
    st.none() | pairs,
    st.none() | pairs,
    st.none() | st.integers(0, 2**32 - 1),
    st.none() | st.sampled_from(["PLAY", "RECORD"]),
)
def test_transport_round_trip(proto, multicast, inter, cport, sport, ssrc, mode) -> None:
    t = Transport(proto, multicast, inter, cport, sport, ssrc, mode)
    assert Transport.parse(str(t)) == t


@pytest.mark.parametrize(
    "value, sid, timeout",
    [
        ("12345678;timeout=60", "12345678", 60),
        ("9A4F6C2B;timeout=65", "9A4F6C2B", 65),
        ("      1273125837;timeout=60", "1273125837", 60),
        ("ABCDEF;timeout=30;foo=bar", "ABCDEF", 30),
        ("ABCDEF", "ABCDEF", 60),
        ("ABCDEF; timeout = 0", "ABCDEF", 60),
        ("ABCDEF;timeout=abc", "ABCDEF", 60),
    ],
)
def test_session_header(value: str, sid: str, timeout: int) -> None:
    parsed = SessionHeader.parse(value)
    assert (parsed.id, parsed.timeout) == (sid, timeout)
    assert SessionHeader.parse(str(parsed)) == parsed


@pytest.mark.parametrize("value", ["", ";timeout=60", "a b", "x" * 300])
def test_session_header_garbage(value: str) -> None:
    with pytest.raises(RemoteProtocolError, match="RTSP Session"):
        SessionHeader.parse(value)


def test_public_rtp_info_range() -> None:
    assert parse_public("OPTIONS, DESCRIBE,SETUP, teardown, PLAY, GET_PARAMETER") == {
        "OPTIONS", "DESCRIBE", "SETUP", "TEARDOWN", "PLAY", "GET_PARAMETER"
    }
    assert parse_public(None) == set()
    assert parse_rtp_info(
        "url=rtsp://h/s/track1;seq=22917;rtptime=2875348162, url=rtsp://h/s/track2;seq=x"
    ) == [RtpInfo("rtsp://h/s/track1", 22917, 2875348162), RtpInfo("rtsp://h/s/track2")]
    assert parse_rtp_info("url=rtsp://h/a?x=1,2;seq=5") == [RtpInfo("rtsp://h/a?x=1,2", 5)]
    assert parse_range("npt=0.000-") == NptRange(0.0, None)
    assert parse_range("npt=now-") == NptRange(None, None)
    assert parse_range("npt=00:01:02.5-10") == NptRange(62.5, 10.0)
    assert parse_range("clock=19961108T143720.25Z-") is None
    assert parse_range("npt=nan-") is None
    assert str(NptRange()) == "npt=0.000-"
