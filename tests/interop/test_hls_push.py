"""HLS push into a real origin: Debian's nginx with ``dav_methods PUT DELETE`` behind Basic auth.

The relay demo writes live HLS to a folder; a ``python -m web`` process reads a snapshot that
names an ``hls_push`` URL (with credentials) for the stream and pushes that folder to nginx.
(Once the relay writes ``hls_push`` into its own snapshot from the config, its own web process
does exactly this; the push code path is the same.) Checked: the playlist ffprobe reads from
nginx decodes, segments the relay expired are DELETEd from the origin, an origin outage is
retried without touching local serving, and the credentials appear in no log and no API.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from relay.status_schema import Snapshot, StreamSnapshot, encode_snapshot
from tests.interop.gstserver import free_port
from tests.interop.nginx import NGINX, _read, _wait_port
from tests.interop.relayproc import RelayProcess

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "origin-user", "pUsh-s3cret-42"


def _config(prefix: Path, port: int, root: Path) -> str:
    temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{
    worker_connections 64;
}}
http {{
    access_log {prefix}/access.log;
{temp}
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
    }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        client_max_body_size 64m;
        location /live/ {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
            limit_except GET HEAD {{
                auth_basic "origin";
                auth_basic_user_file {prefix}/htpasswd;
            }}
        }}
    }}
}}
"""


@contextmanager
def nginx_origin(tmp_path: Path, port: int) -> Iterator[Path]:
    """nginx as an HLS origin on ``port``; yields the folder it stores and serves."""
    prefix = tmp_path / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    root = tmp_path / "origin"
    root.mkdir(exist_ok=True)
    (prefix / "htpasswd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    conf = prefix / "nginx.conf"
    conf.write_text(_config(prefix, port, root))
    log = prefix / "error.log"
    with (prefix / "stderr.log").open("ab") as stderr:
        proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(log)],
                                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        try:
            _wait_port(proc, port, log)
            yield root
            assert proc.poll() is None, f"nginx died: {_read(log)}"
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, ValueError, LookupError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def segments(playlist: str) -> list[str]:
    return re.findall(r"^(seg\d+\.ts)$", playlist, re.M)


def test_hls_push_to_nginx(tmp_path: Path) -> None:
    relay_port, web_port, origin_port = free_port(), free_port(), free_port()
    hls = tmp_path / "hls"
    local = hls / "demo"
    status = tmp_path / "run" / "status.json"
    status.parent.mkdir()
    push_url = f"http://{USER}:{PASSWORD}@127.0.0.1:{origin_port}/live/demo/"
    origin_playlist = f"http://127.0.0.1:{origin_port}/live/demo/index.m3u8"
    api = f"http://127.0.0.1:{web_port}/api/streams"

    def write_snapshot() -> None:
        tmp = status.with_suffix(".tmp")
        tmp.write_bytes(encode_snapshot(Snapshot(updated=time.time(), streams=(
            StreamSnapshot(name="demo", state="playing", source="rtsp://127.0.0.1/demo",
                           hls="/hls/demo/index.m3u8", hls_push=push_url),))))
        os.replace(tmp, status)

    def push_state() -> dict:
        return json.loads(fetch(api))[0]["hls_push"]

    write_snapshot()
    web_log = tmp_path / "web.log"
    with RelayProcess(["demo", "--http", f"127.0.0.1:{relay_port}", "--hls-dir", str(hls)],
                      relay_port, tmp_path) as relay, web_log.open("wb") as web_err:
        web = subprocess.Popen(
            [sys.executable, "-m", "web", "--http", f"127.0.0.1:{web_port}", "--hls-dir",
             str(hls), "--status", str(status)],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=web_err, stderr=web_err)
        try:
            with nginx_origin(tmp_path, origin_port) as origin:
                pushed = origin / "live" / "demo"
                wait(lambda: len(segments((pushed / "index.m3u8").read_text())) >= 3, 60,
                     "three segments pushed to nginx")
                first = segments((pushed / "index.m3u8").read_text())[0]
                assert (pushed / first).is_file()
                probe = subprocess.run(
                    ["ffprobe", "-v", "error", "-read_intervals", "%+3", "-count_frames",
                     "-select_streams", "v:0", "-show_entries",
                     "stream=codec_name,width,height,nb_read_frames", "-of", "json",
                     origin_playlist], capture_output=True, text=True, timeout=60)
                assert probe.returncode == 0, probe.stderr
                stream = json.loads(probe.stdout)["streams"][0]
                assert stream["codec_name"] == "h264" and stream["width"] == 640
                assert int(stream["nb_read_frames"]) >= 25, stream
                assert probe.stderr.strip() == "", probe.stderr  # decoded without errors
                state = push_state()
                assert state["state"] == "ok" and state["url"] == \
                    f"http://127.0.0.1:{origin_port}/live/demo/"
                latencies = []
                for _ in range(3):  # a few playlist updates: local write -> PUT done
                    before = state["playlists_pushed"]
                    wait(lambda before=before: push_state()["playlists_pushed"] > before, 10,
                         "next push")
                    state = push_state()
                    latencies.append(state["latency_ms"])
                print(f"push latency (local write -> origin has it), ms: {latencies}")
                assert max(latencies) < 1000, latencies
                # expired segments: deleted locally by the relay, then from the origin
                wait(lambda: not (local / first).exists(), 60, f"the relay expiring {first}")
                wait(lambda: not (pushed / first).exists(), 5, f"DELETE of {first} on nginx")
                assert push_state()["segments_deleted"] >= 1
            # the origin is down: the push retries, local HLS is served as before
            wait(lambda: push_state()["state"] == "retrying", 15, "the push noticing")
            started = time.monotonic()
            assert b"#EXTINF" in fetch(f"http://127.0.0.1:{web_port}/hls/demo/index.m3u8")
            assert time.monotonic() - started < 0.5
            error = push_state()["last_error"]
            assert f"127.0.0.1:{origin_port}" in error and PASSWORD not in error
            with nginx_origin(tmp_path, origin_port) as origin:
                wait(lambda: push_state()["state"] == "ok", 45, "the push resuming")
                listed = segments((origin / "live/demo/index.m3u8").read_text())
                assert all((origin / "live/demo" / name).is_file() for name in listed)
                api_text = fetch(api).decode()
                metrics = fetch(f"http://127.0.0.1:{web_port}/metrics").decode()
        finally:
            web.send_signal(signal.SIGTERM)
            web.wait(10)
        assert relay.stop() == 0
    access = (tmp_path / "nginx" / "access.log").read_text()
    assert f'"PUT /live/demo/{first}' in access and f'"DELETE /live/demo/{first}' in access
    logs = web_log.read_text()
    for text in (logs, api_text, metrics):
        assert PASSWORD not in text and USER not in text
    assert "hls push to http://127.0.0.1" in logs and "works again" in logs
