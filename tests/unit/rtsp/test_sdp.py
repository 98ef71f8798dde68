"""SDP parsing of camera descriptions, static payload types, control URL resolution."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.errors import RemoteProtocolError
from relay.rtsp.sdp import MediaDescription, RtpMap, SessionDescription, resolve_control
from tests.unit.rtsp import _fixtures as fx


def test_live555() -> None:
    sdp = SessionDescription.parse(fx.LIVE555_SDP)
    assert sdp.control == "*" and len(sdp.media) == 2
    video, audio = sdp.media
    assert (video.kind, video.port, video.protocol, video.formats) == ("video", 0, "RTP/AVP", [96])
    assert (video.encoding, video.clock_rate, video.channels) == ("H264", 90000, None)
    assert video.fmtp_params["sprop-parameter-sets"] == (
        "Z0LAH9kAUAW7ARAAAAMAEAAAAwPA8YMkgA==,aMuMsg=="
    )
    assert video.fmtp_params["profile-level-id"] == "42C01F"
    assert video.control == "track1"
    assert (audio.encoding, audio.clock_rate, audio.channels) == ("MPEG4-GENERIC", 44100, 2)
    assert audio.fmtp_params["config"] == "1210" and audio.fmtp_params["mode"] == "AAC-hbr"
    assert ("tool", "LIVE555 Streaming Media v2022.01.01") in sdp.attributes


def test_hikvision_spaces_in_fmtp_and_static_pcma() -> None:
    sdp = SessionDescription.parse(fx.HIK_SDP)
    assert sdp.control == "rtsp://192.0.2.64:554/Streaming/Channels/101/?transportmode=unicast"
    video, audio = sdp.media
    assert video.fmtp_params == {
        "profile-level-id": "420029",
        "packetization-mode": "1",
        "sprop-parameter-sets": "Z00AKp2oHgCJ+WbgICAgQA==,aO48gA==",
    }
    assert audio.payload_type == 8 and audio.rtpmap[8] == RtpMap("PCMA", 8000, 1)
    assert ("Media_header",
            "MEDIAINFO=494D4B48010100000400010010710110401F000000FA000000000000000000;"
            ) in audio.attributes


def test_dahua_h265_and_static_pcmu_without_rtpmap() -> None:
    sdp = SessionDescription.parse(fx.DAHUA_SDP)
    video, audio = sdp.media
    assert video.encoding == "H265" and video.fmtp_params["sprop-pps"] == "RAHA8vA8kAA="
    assert (audio.encoding, audio.clock_rate, audio.control) == ("PCMU", 8000, "trackID=1")


def test_odd_but_readable() -> None:
    text = (
        "v=0\no=- 0 0 IN IP4 1.2.3.4\ns=x\nm=video 5000/2 RTP/AVP 96 26 xyz\n"
        "a=rtpmap:96 h264/90000 \na=rtpmap:junk\na=fmtp:96 packetization-mode=1;;x=a=b; flag\n"
        "junk line\x00\nm=application 0 RTP/AVP 107\na=rtpmap:107 vnd.onvif.metadata/90000\n"
    )
    sdp = SessionDescription.parse(text)
    video, meta = sdp.media
    assert video.port == 5000 and video.formats == [96, 26] and video.encoding == "H264"
    assert video.rtpmap[26] == RtpMap("JPEG", 90000)
    assert video.fmtp[96] == {"packetization-mode": "1", "x": "a=b", "flag": ""}
    assert meta.kind == "application" and meta.encoding == "VND.ONVIF.METADATA"
    assert sdp.control is None


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("\r\n\r\n", "empty"),
        ("<html>404</html>", "not a description"),
        ("v=0\nm=video\n", "bad m= line"),
        ("v=0\nm=video x RTP/AVP 96\n", "bad port"),
        ("v=0\n" + "m=audio 0 RTP/AVP 0\n" * 17, "more than 16"),
        ("v=0\n" + "a=x\n" * 20000, "larger than"),
    ],
)
def test_garbage(text: str, match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=f"SDP: .*{match}"):
        SessionDescription.parse(text)


@pytest.mark.parametrize(
    "base, control, expected",
    [
        ("rtsp://h/path", None, "rtsp://h/path"),
        ("rtsp://h/path", "*", "rtsp://h/path"),
        ("rtsp://h/path", "trackID=1", "rtsp://h/path/trackID=1"),
        ("rtsp://h/path/", "trackID=1", "rtsp://h/path/trackID=1"),
        ("rtsp://h:554/path/", "rtsp://other/x/trackID=1", "rtsp://other/x/trackID=1"),
        ("rtsp://h:554/path/", "RTSP://other/x", "RTSP://other/x"),
        ("rtsp://h:554/a/b", "/c/track2", "rtsp://h:554/c/track2"),
        (
            "rtsp://h/cam/realmonitor?channel=1&subtype=0/",
            "trackID=0",
            "rtsp://h/cam/realmonitor?channel=1&subtype=0/trackID=0",
        ),
    ],
)
def test_resolve_control(base: str, control: str | None, expected: str) -> None:
    assert resolve_control(base, control) == expected


fmtp_values = st.from_regex(r"[A-Za-z0-9+/=,.-]{1,20}", fullmatch=True)
media = st.builds(
    MediaDescription.make,
    st.sampled_from(["video", "audio", "application"]),
    st.integers(96, 127),
    st.from_regex(r"[A-Z][A-Z0-9-]{0,12}", fullmatch=True),
    st.integers(1, 10**6),
    st.none() | st.integers(1, 8),
    st.dictionaries(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), fmtp_values,
                    max_size=4),
    st.none() | st.from_regex(r"trackID=[0-9]{1,2}", fullmatch=True),
)


@given(st.lists(media, max_size=16), st.none() | st.just("*"))
def test_round_trip(medias: list[MediaDescription], control: str | None) -> None:
    sdp = SessionDescription(medias, control=control, session_name="Relay demo")
    assert SessionDescription.parse(sdp.serialize()) == sdp
