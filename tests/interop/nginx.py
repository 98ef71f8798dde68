"""Pytest side of nginx with the RTMP module: a private config in a temp dir, start, wait, stop.

Runs Debian's /usr/sbin/nginx as the current user with ``master_process off`` (one process, so
no worker user switch and no lock file), its prefix, pid and logs in ``tmp_path``, listening on
a free loopback port only. The system nginx config and port 80 are never touched. Each
application has ``record all`` so a test can probe what arrived. A server that does not come up
fails the test with its error log: interop tests never skip.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.interop.gstserver import free_port

NGINX = "/usr/sbin/nginx"
RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
READY_TIMEOUT = 10.0


@dataclass(frozen=True)
class NginxRtmp:
    """A running nginx-rtmp: ``rtmp://127.0.0.1:{port}/{app}/{key}`` records to
    ``record_dir/{key}.flv`` (written as the publisher goes, complete once it disconnects)."""

    port: int
    record_dir: Path
    error_log: Path
    tls_port: int | None = None

    def url(self, app: str, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/{app}/{key}"

    def tls_url(self, app: str, key: str) -> str:
        return f"rtmps://localhost:{self.tls_port}/{app}/{key}"

    def recording(self, key: str) -> Path:
        return self.record_dir / f"{key}.flv"


def _config(
    prefix: Path, port: int, apps: tuple[str, ...], record_dir: Path,
    tls: tuple[int, Path, Path] | None = None,
) -> str:
    applications = "\n".join(
        f"""            application {app} {{
                live on;
                record all;
                record_path {record_dir};
                record_unique off;
            }}"""
        for app in apps
    )
    stream = ""
    if tls is not None:
        tls_port, cert, key = tls
        # TLS terminated by nginx's stream module in front of the RTMP module, as CDNs do
        stream = f"""
stream {{
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        proxy_pass 127.0.0.1:{port};
    }}
}}
"""
    modules = f"load_module {RTMP_MODULE};\n"
    if tls is not None:
        modules += f"load_module {STREAM_MODULE};\n"
    return f"""{modules}daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{
    worker_connections 64;
}}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
{applications}
    }}
}}
{stream}"""


def _wait_port(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"nginx exited with {proc.returncode}: {_read(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nginx did not listen on 127.0.0.1:{port} in {READY_TIMEOUT} s: {_read(log)}")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()[-4000:] or "(empty log)"
    except OSError:
        return "(no log)"


@contextmanager
def start_nginx_rtmp(
    tmp_path: Path,
    apps: tuple[str, ...] = ("live",),
    record_dir: Path | None = None,
    *,
    port: int | None = None,
    tls: tuple[Path, Path] | None = None,
) -> Iterator[NginxRtmp]:
    """Run nginx-rtmp on a free loopback port for the duration of the block.

    Args:
        tmp_path: a private directory for the config, pid, logs (and recordings by default).
        apps: RTMP application names to configure.
        record_dir: where ``record all`` writes ``KEY.flv``; default ``tmp_path/record``.
        port: the RTMP port (to restart a server where publishers expect it); default free.
        tls: (certificate, key) to also accept rtmps:// on ``tls_port``.

    Yields:
        The running server's port and paths.
    """
    prefix = tmp_path / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "logs").mkdir(exist_ok=True)  # nginx opens prefix/logs/error.log before the config
    record = record_dir or tmp_path / "record"
    record.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    tls_port = free_port() if tls is not None else None
    tls_conf = (tls_port, *tls) if tls is not None and tls_port is not None else None
    conf = prefix / "nginx.conf"
    conf.write_text(_config(prefix, port, apps, record, tls_conf))
    log = prefix / "error.log"
    stderr = (prefix / "stderr.log").open("wb")
    proc = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(log)],
        stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
    )
    try:
        _wait_port(proc, port, log)
        if tls_port is not None:
            _wait_port(proc, tls_port, log)
        yield NginxRtmp(port, record, log, tls_port)
        if proc.poll() is not None:
            pytest.fail(f"nginx died during the test (exit {proc.returncode}): {_read(log)}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # graceful: finishes recordings
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stderr.close()
