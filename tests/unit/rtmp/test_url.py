import pytest

from relay.errors import ConfigError
from relay.rtmp.url import RtmpUrl

CASES = [
    ("rtmp://a.rtmp.youtube.com/live2/abcd-efgh", "rtmp", "a.rtmp.youtube.com", 1935, "live2",
     "abcd-efgh", "rtmp://a.rtmp.youtube.com/live2"),
    ("rtmp://host/app/inst/key?x=y", "rtmp", "host", 1935, "app/inst", "key?x=y",
     "rtmp://host/app/inst"),
    ("rtmps://live.example.com:8443/app/KEY/", "rtmps", "live.example.com", 8443, "app", "KEY",
     "rtmps://live.example.com:8443/app"),
    ("rtmps://live.example.com/app/KEY", "rtmps", "live.example.com", 443, "app", "KEY",
     "rtmps://live.example.com/app"),
    ("RTMP://[::1]:1936/live/s", "rtmp", "::1", 1936, "live", "s", "rtmp://[::1]:1936/live"),
]


@pytest.mark.parametrize("text,scheme,host,port,app,key,tc_url", CASES)
def test_parse(text: str, scheme: str, host: str, port: int, app: str, key: str,
               tc_url: str) -> None:
    url = RtmpUrl.parse(text)
    assert (url.scheme, url.host, url.port, url.app, url.stream_key, url.tc_url) == (
        scheme, host, port, app, key, tc_url)
    assert key not in url.redacted and key not in repr(url) and key not in str(url)
    assert url.redacted == tc_url + "/***"


@pytest.mark.parametrize("text", [
    "http://host/app/SECRETKEY", "rtmp://host/SECRETKEY", "rtmp:///app/SECRETKEY",
    "rtmp://host:99999/app/SECRETKEY", "rtmp://host:x/app/SECRETKEY", "rtmp://host/",
    "rtmp://u:p@host/app/SECRETKEY", "rtmp://host/app/SECRET KEY", "rtmp://[::1/app/SECRETKEY",
    "SECRETKEY",
])
def test_errors_never_show_the_key(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        RtmpUrl.parse(text)
    assert "SECRET" not in str(info.value)
    assert "RTMP URL" in str(info.value)
