"""Credentials never leak: a camera password, RTMP stream keys, HLS push credentials and the API
token are searched for in everything a user or an attacker can read: the log output, the
``run --check`` summary, /api/streams, /metrics, the page and its scripts, and the HLS folder."""

from __future__ import annotations

import base64
import json
import os
import re
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


def _leaks(where: str, data: bytes) -> list[str]:
    return [f"{where}: {secret!r}" for secret in SECRETS
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
