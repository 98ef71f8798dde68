"""Credentials never leak: a camera password, RTMP stream keys, HLS push credentials and the API
token are searched for in everything a user or an attacker can read: the log output, the
``run --check`` summary, /api/streams, /metrics, the page and its scripts, and the HLS folder."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.nginx import start_nginx_rtmp
from tests.interop.relayproc import RelayProcess, http_get

USER = "admin"
PASSWORD = "Cam-Pa55-q7Zx"
WRONG_PASSWORD = "Not-The-Pa55-k3Wy"
KEY = "live-key-9f8e7d6c"
BAD_APP_KEY = "other-key-1a2b3c4d"
PUSH_PASSWORD = "Push-Pa55-m4Nv"
TOKEN = "api-token-5ZrQ8wXc2LpT"
SECRETS = [PASSWORD, WRONG_PASSWORD, KEY, BAD_APP_KEY, PUSH_PASSWORD, TOKEN]


def _forms(secret: str) -> list[bytes]:
    """The ways a secret could show up: as is, percent-encoded, in a Basic auth header."""
    forms = {secret, quote(secret, safe=""), base64.b64encode(f"{USER}:{secret}".encode()).decode()}
    return [f.encode() for f in forms]


def _leaks(where: str, data: bytes, secrets: list[str] = SECRETS) -> list[str]:
    return [f"{where}: {secret!r}" for secret in secrets
            for form in _forms(secret) if form in data]


def _get(port: int, path: str, token: str | None = TOKEN) -> tuple[int, bytes]:
    return http_get(f"http://127.0.0.1:{port}{path}", token)


def test_no_secret_reaches_logs_api_metrics_page_or_hls(tmp_path: Path) -> None:
    http = free_port()
    closed = free_port()  # the push origin: nothing listens, so pushes fail and are retried
    hls = tmp_path / "hls"
    config = tmp_path / "relay.toml"
    env = dict(os.environ, RELAY_API_TOKEN=TOKEN, CAM_PASSWORD=PASSWORD, RTMP_KEY=KEY)
    with start_gst_server({"/cam": "h264aac"}, user=USER, password=PASSWORD) as cam_port, \
            start_nginx_rtmp(tmp_path) as nginx:
        config.write_text(f"""
[server]
http = "127.0.0.1:{http}"
hls_dir = "{hls}"
token = "${{RELAY_API_TOKEN}}"

[streams.cam]
source = "rtsp://{USER}:${{CAM_PASSWORD}}@127.0.0.1:{cam_port}/cam"
transport = "tcp"
segment_seconds = 2
rtmp = ["{nginx.url('live', '${RTMP_KEY}')}", "{nginx.url('nope', BAD_APP_KEY)}"]
hls_push = "http://pusher:{PUSH_PASSWORD}@127.0.0.1:{closed}/live/cam/"

[streams.wrong]
source = "rtsp://{USER}:{WRONG_PASSWORD}@127.0.0.1:{cam_port}/cam"
transport = "tcp"
""")
        check = subprocess.run([sys.executable, "-m", "relay", "run", "--config", str(config),
                                "--check"], capture_output=True, timeout=60, env=env)
        assert check.returncode == 0, check.stderr
        assert b"stream cam:" in check.stdout
        leaks = _leaks("run --check", check.stdout + check.stderr)

        with RelayProcess(["run", "--config", str(config)], http, tmp_path, env=env) as relay:
            def ready() -> bool:
                status, body = _get(http, "/api/streams")
                streams = {s["name"]: s for s in json.loads(body)}
                cam, wrong = streams["cam"], streams["wrong"]
                return (status == 200 and cam["state"] == "playing"
                        and [r["state"] for r in cam["rtmp"]] == ["publishing", "retrying"]
                        and wrong["state"] == "retrying" and wrong["reconnects"] >= 2
                        and len(list((hls / "cam").glob("*.ts"))) >= 2)

            relay.wait_for(ready, 60, "the stream playing, publishing and failing as set up")
            assert nginx.recording(KEY).exists()  # the key really was used, where it belongs

            # the token really guards the API
            assert _get(http, "/api/streams", token=None)[0] == 401
            assert _get(http, "/api/streams", token="wrong-token-0000000000")[0] == 401

            status, api = _get(http, "/api/streams")
            assert status == 200
            leaks += _leaks("/api/streams", api)
            status, metrics = _get(http, "/metrics")
            if status != 404:  # /metrics is served when the web side has it
                assert status == 200
                leaks += _leaks("/metrics", metrics)
            status, page = _get(http, "/", token=None)
            assert status == 200
            leaks += _leaks("/", page)
            assets = set(re.findall(rb'(?:src|href)="(/[^"]+)"', page))
            assert assets, page[:500]
            for asset in assets:
                status, body = _get(http, asset.decode())
                leaks += _leaks(asset.decode(), body)
            leaks += _leaks("/healthz", _get(http, "/healthz", token=None)[1])
            leaks += _leaks("/hls/cam/index.m3u8", _get(http, "/hls/cam/index.m3u8")[1])
            assert relay.stop() == 0
            log = relay.log()

    leaks += _leaks("log", log.encode())
    assert "stream=wrong" in log or '"stream": "wrong"' in log  # the failures were logged...
    assert "***" in log  # ...with the stream key redacted
    for path in sorted(hls.rglob("*")):
        if path.is_file():
            leaks += _leaks(str(path.relative_to(tmp_path)), path.read_bytes())
            leaks += _leaks(f"file name {path.name}", path.name.encode())
    assert leaks == [], "\n".join(leaks)


CAM_TOKEN = "cam-query-tok-4Hs9"
PUSH_QUERY_PASSWORD = "push-query-pw-2Kx8"
PUSH_SIG = "push-query-sig-7Jd2"
RTMP_SIG = "rtmp-query-sig-5Ty3"
NEW_PASSWORD = "New-Pa55-after-HUP-8Qw"
NEW_TOKEN = 918273645546372819
NEW_CAM_TOKEN = "new-cam-tok-3Zp6"
RELOAD_SECRETS = [PASSWORD, CAM_TOKEN, PUSH_QUERY_PASSWORD, PUSH_SIG, RTMP_SIG, NEW_PASSWORD,
                  str(NEW_TOKEN), NEW_CAM_TOKEN]


def test_query_credentials_and_a_reloaded_config_never_leak(tmp_path: Path) -> None:
    """Credentials in query strings (camera, HLS push, RTMP) and the secrets of a config that is
    only seen at a SIGHUP reload (files that do not load, then one that does): never in
    ``run --check``, /api/streams, /metrics, the page or any log line."""
    http = free_port()
    closed = free_port()  # nothing listens: the camera, the origin and RTMP all fail and retry
    config = tmp_path / "relay.toml"
    hls = tmp_path / "hls"
    server = f'[server]\nhttp = "127.0.0.1:{http}"\nhls_dir = "{hls}"\n'

    def stream(password: str, token: str) -> str:
        return f"""
[streams.cam]
source = "rtsp://{USER}:{password}@127.0.0.1:{closed}/cam?token={token}&channel=1"
transport = "tcp"
rtmp = ["rtmp://127.0.0.1:{closed}/live/key?sig={RTMP_SIG}"]
hls_push = "http://127.0.0.1:{closed}/live/cam/?password={PUSH_QUERY_PASSWORD}&sig={PUSH_SIG}"
"""

    config.write_text(server + stream(PASSWORD, CAM_TOKEN))
    check = subprocess.run([sys.executable, "-m", "relay", "run", "--config", str(config),
                            "--check"], capture_output=True, timeout=60, check=False)
    assert check.returncode == 0, check.stderr
    assert f"rtsp://127.0.0.1:{closed}/cam?token=***&channel=1" in check.stdout.decode()
    leaks = _leaks("run --check", check.stdout + check.stderr, RELOAD_SECRETS)

    with RelayProcess(["run", "--config", str(config)], http, tmp_path) as relay:
        relay.wait_for(lambda: relay.api()[0]["reconnects"] >= 1, 30, "the camera retrying")
        cam = relay.api()[0]
        assert cam["source"] == f"rtsp://127.0.0.1:{closed}/cam?token=***&channel=1"
        for path in ("/api/streams", "/metrics", "/", "/static/app.js"):
            leaks += _leaks(path, _get(http, path, token=None)[1], RELOAD_SECRETS)

        # each fails to load; the error line must not quote the new file
        for failed, broken in enumerate([
            f'[streams.cam]\nsource = "rtsp://{USER}:{NEW_PASSWORD}/stream1"\n',
            f'[streams.cam]\nsource = ["rtsp://{USER}:{NEW_PASSWORD}@h/x"]\n',
            f"[server]\ntoken = {NEW_TOKEN}\n" + stream(PASSWORD, CAM_TOKEN),
            server + stream(NEW_PASSWORD, NEW_CAM_TOKEN) + "window = 1\n",
        ], start=1):
            config.write_text(broken)
            relay.process.send_signal(signal.SIGHUP)
            relay.wait_for(lambda n=failed: relay.log().count("reload failed") == n, 10,
                           f"reload failure {failed}")
        # and one that loads: the camera restarts with the new password and token
        config.write_text(server + stream(NEW_PASSWORD, NEW_CAM_TOKEN))
        before = relay.log().count("connecting to")
        relay.process.send_signal(signal.SIGHUP)
        relay.wait_for(lambda: "reloaded " in relay.log()
                       and relay.log().count("connecting to") >= before + 2, 30,
                       "the reloaded camera retrying")
        cam = relay.api()[0]
        assert cam["source"] == f"rtsp://127.0.0.1:{closed}/cam?token=***&channel=1"
        for path in ("/api/streams", "/metrics"):
            leaks += _leaks(path, _get(http, path, token=None)[1], RELOAD_SECRETS)
        assert relay.stop() == 0
        log = relay.log()

    assert log.count("reload failed") == 4
    leaks += _leaks("log", log.encode(), RELOAD_SECRETS)
    assert leaks == [], "\n".join(leaks) + "\n" + log
