"""Config and URL checks: every error names the file, the key and what was expected."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.cli import main
from relay.config import SourceUrl, check_name, load_config, redact_url
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
    ("[streams.'bad name']\nsource = 'rtsp://h/x'", r"\[streams\]: stream name 'bad name'"),
    ("[streams.cam]\nsource = 5", r"streams.cam.source: expected an rtsp:// URL string, got int"),
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


SECRET = "Zq7-Secr3t-Xw"


@pytest.mark.parametrize("body", [
    # "user:password" without "@host" parses as host:port; the port's text is the password
    f"[streams.cam]\nsource = 'rtsp://admin:{SECRET}/stream1'",
    f"[streams.cam]\nsource = ['rtsp://admin:{SECRET}@h/stream1']",
    f"[streams.cam]\nsource = {{ url = 'rtsp://admin:{SECRET}@h/x' }}",
    "[server]\ntoken = 98765432109876543210\n" + SRC,
    f"[server]\ntoken = ['{SECRET}-long-enough']\n" + SRC,
    f"[server]\ntoken = '{SECRET}-long-enough\\n'\n" + SRC,
    SRC + f"hls_push = ['http://u:{SECRET}@o/x/']",
    SRC + f"hls_push = 'http://u:{SECRET}/x/'",
    SRC + f"rtmp = ['rtmp://h:{SECRET}/live/key']",
    SRC + f"rtmp = ['rtmp://h/live?sig={SECRET}']",
])
def test_config_errors_name_the_key_not_the_secret(tmp_path: Path, body: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, body))
    message = str(info.value)
    assert SECRET not in message and "98765432109876543210" not in message
    assert "Secr3t" not in message and ".source" in message or ".token" in message \
        or ".hls_push" in message or ".rtmp" in message


@pytest.mark.parametrize("body, message", [
    ("[streams.\"cam1\\n\"]\nsource = 'rtsp://h/x'", r"stream name 'cam1\\n' must be"),
    ("[server]\ntoken = 'abcdefghijklmnop1234\\n'\n" + SRC, r"server.token: expected at least 16"),
])
def test_names_and_tokens_are_matched_whole(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, body))
    with pytest.raises(ConfigError, match="--name: stream name"):
        check_name("cam1\n", "--name")


@pytest.mark.parametrize("text, redacted", [
    ("rtsp://admin:Secret/stream1", "rtsp://***/stream1"),
    ("failed: rtsp://u:p@ss@h:554/x", "failed: rtsp://***@h:554/x"),
    ("rtsp://h:554/x?token=abc&ch=1", "rtsp://h:554/x?token=***&ch=1"),
    ("http://o/x?Password=a&SIG=b&X-Amz-Signature=c&auth=d&pass=e&api_key=f&n=1",
     "http://o/x?Password=***&SIG=***&X-Amz-Signature=***&auth=***&pass=***&api_key=***&n=1"),
    ("rtsp://[::1]:8554/x and rtsp://h:8554/y", "rtsp://[::1]:8554/x and rtsp://h:8554/y"),
])
def test_redact_url_cases(text: str, redacted: str) -> None:
    assert redact_url(text) == redacted


USERINFO = st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%", min_size=6, max_size=40)
QUERY_VALUE = st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-._~!$'()*+,;=%:@/?", min_size=6,
                      max_size=40)
"""Characters a URL allows unencoded there (RFC 3986 section 3.2.1 and 3.4; in a query value,
not the "&" and "#" that would end it)."""


@given(user=USERINFO, password=USERINFO, value=QUERY_VALUE,
       name=st.sampled_from(["token", "password", "pass", "key", "sig", "signature", "auth",
                             "Access_Token", "X-Amz-Signature", "streamKEY"]))
def test_redact_url_never_shows_a_credential(user: str, password: str, value: str,
                                             name: str) -> None:
    for url, secret in [(f"rtsp://{user}:{password}@cam.local/s?ch=1", password),
                        (f"rtsp://{user}:{password}/s", password),
                        (f"rtsp://cam.local/s?{name}={value}&ch=1", value),
                        (f"see http://o/x?n=1&{name}={value} then", value)]:
        assert secret not in redact_url(url), url


def test_urls_shown_anywhere_are_redacted(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``run --check`` and str(source) (what /api shows) hide credential query parameters;
    the source URL itself keeps them for the camera, and secrets() lists them for the logs."""
    monkeypatch.setenv("SIG", "sig-9Kq2")
    path = write(tmp_path, f"""
[server]
hls_dir = "{tmp_path / 'hls'}"
[streams.cam]
source = "rtsp://u:cam-pw-5Rt@h/s?ch=1&token=tok-7Lm"
rtmp = ["rtmp://h/live/k?sig=${{SIG}}"]
hls_push = "http://p:push-pw-3Vb@o/x/?password=push-q-4Nc&Sig=push-s-8Hd"
""")
    secrets = ["cam-pw-5Rt", "tok-7Lm", "sig-9Kq2", "push-pw-3Vb", "push-q-4Nc", "push-s-8Hd"]
    assert main(["run", "--config", str(path), "--check"]) == 0
    out = capsys.readouterr()
    assert "stream cam: rtsp://h/s?ch=1&token=*** -> hls" in out.out
    assert [s for s in secrets if s in out.out + out.err] == []
    config = load_config(path)
    assert str(config.streams[0].source) == "rtsp://h/s?ch=1&token=***"
    assert config.streams[0].source.url.endswith("token=tok-7Lm")
    assert set(secrets) <= set(config.secrets())


@pytest.mark.parametrize("deep", ["a = " + "[" * 20000 + "]" * 20000,
                                  "a = " + "{b = " * 20000 + "1" + "}" * 20000])
def test_pathological_toml_is_one_clear_error(tmp_path: Path, deep: str) -> None:
    with pytest.raises(ConfigError, match=r"relay.toml: not valid TOML \(arrays or tables "
                                          r"nested too deeply\)"):
        load_config(write(tmp_path, deep))


def test_oversized_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"larger than 1048576 bytes \(MAX_CONFIG_BYTES\)"):
        load_config(write(tmp_path, SRC + "#" * (1 << 20)))


@pytest.mark.parametrize("check", [True, False])
def test_hls_dir_that_is_not_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         check: bool) -> None:
    """Caught by ``run --check`` and, before anything starts, by ``run``: one line each."""
    (tmp_path / "afile").write_text("")
    for hls_dir, message in [
        (tmp_path / "afile", f"server.hls_dir: {tmp_path / 'afile'} is not a directory\n"),
        (tmp_path / "afile" / "hls", (f"server.hls_dir: {tmp_path / 'afile' / 'hls'} is not a "
                                      f"directory ({tmp_path / 'afile'} is not a directory)\n")),
    ]:
        path = write(tmp_path, f"[server]\nhls_dir = '{hls_dir}'\n" + SRC)
        assert main(["run", "--config", str(path)] + ["--check"] * check) == 2
        out = capsys.readouterr()
        assert out.out == "" and out.err == f"relay: {path}: {message}"
    assert main(["pull", "rtsp://h/x", "--name", "cam", "--hls-dir",
                 str(tmp_path / "afile")]) == 2
    assert capsys.readouterr().err.startswith("relay: --hls-dir: ")


def test_errors_never_show_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY", "sekretkey")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, SRC + "rtmp = ['rtmpx://h/live/${KEY}']"))
    assert "sekretkey" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[server]\ntoken = 'abc def sekretkey'\n" + SRC))
    assert "sekretkey" not in str(info.value)
