"""Config and URL checks: every error names the file, the key and what was expected."""

from pathlib import Path

import pytest

from relay.config import SourceUrl, load_config, redact_url
from relay.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return path


def test_source_url_keeps_credentials_apart() -> None:
    url = SourceUrl.parse("rtsp://ad%40min:p%3Ass@cam.local:8554/live?ch=1", "x")
    assert url.url == "rtsp://cam.local:8554/live?ch=1"
    assert (url.username, url.password, url.port) == ("ad@min", "p:ss", 8554)
    assert "p:ss" not in repr(url) and "p%3Ass" not in str(url)


def test_default_port_and_ipv6() -> None:
    assert SourceUrl.parse("rtsp://[::1]/x", "x").url == "rtsp://[::1]/x"
    assert SourceUrl.parse("rtsp://[::1]/x", "x").port == 554


@pytest.mark.parametrize("text, message", [
    ("http://cam/x", "expected an rtsp:// URL"),
    ("rtsp:///x", "no host"),
    ("rtsp://cam:99999/x", "not a valid URL"),
])
def test_bad_source_urls(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SourceUrl.parse(text, "SOURCE_URL")


def test_redact() -> None:
    assert redact_url("failed rtsp://u:pw@h/x") == "failed rtsp://***@h/x"


def test_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PASSWORD", "hunter2")
    config = load_config(write(tmp_path, """
[server]
http = "0.0.0.0:9000"
hls_dir = "/tmp/h"
[streams.cam1]
source = "rtsp://admin:${CAM_PASSWORD}@192.0.2.10/stream1"
transport = "udp"
segment_seconds = 4
"""))
    (cam,) = config.streams
    assert config.server.http == ("0.0.0.0", 9000)
    assert cam.source.password == "hunter2" and cam.transport == "udp"
    assert cam.segment_seconds == 4.0


SRC = "[streams.cam]\nsource = 'rtsp://h/x'\n"


@pytest.mark.parametrize("body, message", [
    # file level
    ("this is = not toml [", "not valid TOML"),
    ("[server]\n", "expected at least one"),
    ("[extra]\n" + SRC, r"unknown section 'extra' \(expected"),
    ("server = 5\n" + SRC, r"\[server\]: expected a table"),
    ("streams = 5\n", r"\[streams\]: expected a table"),
    # [server]
    ("[server]\nhttp = 'nope'\n" + SRC, r"server.http: expected HOST:PORT"),
    ("[server]\nhttp = 8080\n" + SRC, r"server.http: expected a string"),
    ("[server]\nhttp = '0.0.0.0:70000'\n" + SRC, r"server.http: expected HOST:PORT"),
    ("[server]\nhls_dir = 3\n" + SRC, r"server.hls_dir: expected a string"),
    ("[server]\nhls_dir = ''\n" + SRC, r"server.hls_dir: expected a directory"),
    ("[server]\nport = 1\n" + SRC, r"server.port: unknown key \(expected one of"),
    ("[server]\nlog_format = 'xml'\n" + SRC, r"server.log_format: expected \"text\" or \"json\""),
    ("[server]\ntoken = 'short'\n" + SRC, r"server.token: expected at least 16 characters"),
    ("[server]\ntoken = 'has spaces in it, 1234567'\n" + SRC, r"server.token: expected at"),
    ("[server]\ntoken = '${NOPE_UNSET}'\n" + SRC, r"server.token: environment variable NOPE"),
    # [streams.NAME]
    ("[streams]\ncam = 5", r"streams.cam: expected a table"),
    ("[streams.'bad name']\nsource = 'rtsp://h/x'", r"streams.bad name: stream name 'bad name'"),
    ("[streams.cam]\nsource = 5", r"streams.cam.source: expected an rtsp:// URL string, got 5"),
    ("[streams.cam]\nhls = true", r"streams.cam.source: expected an rtsp:// URL string, got "
                                  "nothing"),
    ("[streams.cam]\nsource = 'http://h/x'", r"streams.cam.source: expected an rtsp:// URL"),
    ("[streams.cam]\nsource = 'rtsp:///x'", r"streams.cam.source: the URL has no host"),
    ("[streams.cam]\nsource = 'rtsp://u:${NOPE_UNSET}@h/x'",
     r"streams.cam.source: environment variable NOPE_UNSET is not set"),
    (SRC + "transport = 'quic'", r"streams.cam.transport: expected one of tcp, udp, auto"),
    (SRC + "segment_seconds = 0", r"streams.cam.segment_seconds: expected a number of seconds"),
    (SRC + "segment_seconds = '4'", r"streams.cam.segment_seconds: expected a number"),
    (SRC + "window = 1", r"streams.cam.window: expected an integer from 2 to 100"),
    (SRC + "window = true", r"streams.cam.window: expected an integer"),
    (SRC + "bogus = 1", r"streams.cam.bogus: unknown key"),
    (SRC + "hls = 'no'", r"streams.cam.hls: expected true or false, got 'no'"),
    (SRC + "enabled = 1", r"streams.cam.enabled: expected true or false, got 1"),
    (SRC + "audio = 'mp3'", r"streams.cam.audio: expected one of auto, copy"),
    (SRC + "rtmp = 5", r"streams.cam.rtmp: expected a list of rtmp:// URL strings"),
    (SRC + "rtmp = [5]", r"streams.cam.rtmp: expected a list"),
    (SRC + "rtmp = ['rtmp://h/live/k', 'http://x/a/b']",
     r"streams.cam.rtmp\[1\]: RTMP URL .*expected rtmp://host"),
    (SRC + "rtmp = ['rtmp://h/onlykey']", r"streams.cam.rtmp\[0\]: .*application and a stream"),
    (SRC + "rtmp = ['rtmp://h/live/k', 'rtmp://h/live/k']", r"streams.cam.rtmp: expected distinct"),
    (SRC + "rtmp = ['rtmp://h/live/${NOPE_UNSET}']", r"streams.cam.rtmp\[0\]: environment"),
    (SRC + "hls_push = 'ftp://origin/x'", r"streams.cam.hls_push: expected an http:// or https"),
    (SRC + "hls_push = 'http:///x'", r"streams.cam.hls_push: expected .* with a host"),
    (SRC + "hls_push = 'http://o:99999/x'", r"streams.cam.hls_push: not a valid URL"),
    (SRC + "hls_push = 5", r"streams.cam.hls_push: expected a string"),
    (SRC + "hls = false\nhls_push = 'http://o/x'", r"streams.cam.hls_push: expected hls = true"),
])
def test_config_errors_name_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(info.value).startswith(str(path))


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"relay.toml: cannot read"):
        load_config(tmp_path / "relay.toml")


def test_full_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_API_TOKEN", "t0ken-with-enough-chars")
    monkeypatch.setenv("KEY", "sekretkey")
    monkeypatch.setenv("PUSH_PW", "pushpw")
    config = load_config(write(tmp_path, """
[server]
token = "${RELAY_API_TOKEN}"
log_format = "json"
[streams.cam1]
source = "rtsp://u:camsecret@h/x"
rtmp = ["rtmp://ingest/live/${KEY}"]
hls_push = "https://pusher:${PUSH_PW}@origin.example/live/cam1/"
window = 4
audio = "off"
[streams.cam2]
source = "rtsp://h2/y"
hls = false
enabled = false
"""))
    assert config.server.token == "t0ken-with-enough-chars"
    assert config.server.log_format == "json"
    cam1, cam2 = config.streams
    assert cam1.hls_push == "https://pusher:pushpw@origin.example/live/cam1/"
    assert cam1.rtmp[0].stream_key == "sekretkey" and cam1.window == 4 and cam1.enabled
    assert (cam2.hls, cam2.enabled, cam2.hls_push) == (False, False, None)
    assert set(config.secrets()) >= {"t0ken-with-enough-chars", "sekretkey", "pushpw", "camsecret"}
    for secret in ("t0ken", "sekretkey", "pushpw", "camsecret"):
        assert secret not in repr(config)


def test_defaults_and_equality(tmp_path: Path) -> None:
    """A reload compares StreamConfigs: the same text gives equal configs, one change does not."""
    a = load_config(write(tmp_path, SRC))
    b = load_config(write(tmp_path, SRC))
    c = load_config(write(tmp_path, SRC + "window = 5"))
    assert a == b and a.streams[0] != c.streams[0]
    cam = a.streams[0]
    assert (cam.hls, cam.enabled, cam.window, cam.segment_seconds, cam.hls_push) == (
        True, True, 6, 10.0, None)
    assert (a.server.token, a.server.log_format) == (None, "text")


def test_errors_never_show_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY", "sekretkey")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, SRC + "rtmp = ['rtmpx://h/live/${KEY}']"))
    assert "sekretkey" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[server]\ntoken = 'abc def sekretkey'\n" + SRC))
    assert "sekretkey" not in str(info.value)
