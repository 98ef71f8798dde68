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


@pytest.mark.parametrize("body, message", [
    ("[streams.cam]\nsource = 5", r"streams.cam.source: expected an rtsp:// URL"),
    ("[streams.cam]\nsource = 'rtsp://h/x'\ntransport = 'quic'", r"streams.cam.transport: expected one of"),
    ("[streams.cam]\nsource = 'rtsp://h/x'\nsegment_seconds = 0", r"streams.cam.segment_seconds"),
    ("[streams.cam]\nsource = 'rtsp://h/x'\nbogus = 1", r"streams.cam.bogus: unknown key"),
    ("[streams.'bad name']\nsource = 'rtsp://h/x'", r"stream name 'bad name'"),
    ("[streams.cam]\nsource = 'rtsp://u:${NOPE_UNSET}@h/x'", r"NOPE_UNSET is not set"),
    ("[server]\nhttp = 'nope'\n[streams.cam]\nsource = 'rtsp://h/x'", r"server.http: expected HOST:PORT"),
    ("this is = not toml [", "not valid TOML"),
    ("[server]\n", "at least one"),
])
def test_config_errors_name_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)
