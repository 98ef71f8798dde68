"""The benchmark's real peers as subprocesses: the GStreamer source, nginx, the RTMP reader.

Nothing here is pytest: a peer that does not come up raises ``BenchError`` with its log.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
HERE = Path(__file__).resolve().parent
NGINX = "/usr/sbin/nginx"
RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


class BenchError(Exception):
    """A peer or a relay under test failed; the message says which and why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:].strip() or "(empty)"
    except OSError:
        return "(no log)"


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Signal one process we started and wait for it; kill it if it hangs."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path,
              timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited ({proc.returncode}): {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{what} did not listen on {port} within {timeout} s: {_tail(log)}")


@dataclass
class Source:
    """The GStreamer RTSP server serving the clip at ``url``; departures logged to a file."""

    proc: subprocess.Popen[bytes]
    url: str
    departures: Path
    log: Path


def start_source(clip: Path, work: Path) -> Source:
    departures = work / "departures.txt"
    log = work / "source.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(HERE / "gst_source.py"), "--clip", str(clip),
             "--departures", str(departures)],
            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
        )
    assert proc.stdout is not None
    line = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 20
        while b"\n" not in line:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                stop(proc)
                raise BenchError(f"source not READY in 20 s: {_tail(log)}")
            chunk = os.read(proc.stdout.fileno(), 256)
            if not chunk:
                raise BenchError(f"source exited ({proc.wait()}): {_tail(log)}")
            line += chunk
    text = line.split(b"\n")[0].decode()
    if not text.startswith("READY port="):
        stop(proc)
        raise BenchError(f"source said {text!r}: {_tail(log)}")
    port = int(text.removeprefix("READY port="))
    return Source(proc, f"rtsp://127.0.0.1:{port}/clip", departures, log)


@dataclass
class Nginx:
    """nginx: RTMP on ``rtmp_port`` (app ``live``, ``record all`` to ``record_dir``), and HTTP on
    ``http_port`` serving ``hls_dir`` under ``/hls/`` (the serving benchmark's reference)."""

    proc: subprocess.Popen[bytes]
    rtmp_port: int
    http_port: int
    record_dir: Path
    log: Path

    def rtmp_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def recording(self, key: str) -> Path:
        return self.record_dir / f"{key}.flv"


def start_nginx(work: Path, hls_dir: Path, connections: int = 4096) -> Nginx:
    prefix = work / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    record = work / "record"
    record.mkdir(exist_ok=True)
    rtmp_port, http_port = free_port(), free_port()
    log = prefix / "error.log"
    conf = prefix / "nginx.conf"
    # One process (master_process off) as the current user; nothing outside `work`.
    conf.write_text(f"""load_module {RTMP_MODULE};
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {log} warn;
worker_rlimit_nofile {connections * 2 + 256};
events {{ worker_connections {connections + 256}; }}
rtmp {{
    server {{
        listen 127.0.0.1:{rtmp_port};
        chunk_size 4096;
        application live {{
            live on;
            record all;
            record_path {record};
            record_unique off;
        }}
    }}
}}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
    }}
    sendfile on;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{http_port};
        location /hls/ {{ alias {hls_dir}/; }}
    }}
}}
""")
    with open(prefix / "stderr.log", "wb") as err:
        proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(log)],
                                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    wait_port(rtmp_port, proc, "nginx", log)
    wait_port(http_port, proc, "nginx", log)
    return Nginx(proc, rtmp_port, http_port, record, log)


@dataclass
class Reader:
    """RTMP players (GStreamer rtmp2src) logging each video tag's arrival to ``arrivals``."""

    proc: subprocess.Popen[bytes]
    arrivals: Path
    log: Path


def start_reader(urls: dict[str, str], work: Path) -> Reader:
    arrivals = work / "arrivals.txt"
    log = work / "reader.log"
    args = [SYSTEM_PYTHON, str(HERE / "gst_reader.py"), "--arrivals", str(arrivals)]
    for name, url in urls.items():
        args += ["--play", f"{name}={url}"]
    with open(log, "wb") as err:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    return Reader(proc, arrivals, log)
