"""Pytest side of nginx with the RTMP module: a private config in a temp dir, start, wait, stop.
Also nginx as a bare TLS terminator (stream module) in front of any TCP server.

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


def _tls_stream(tls_port: int, cert: Path, key: Path, upstream: int) -> str:
    """TLS terminated by nginx's stream module in front of a plain TCP server, as CDNs do."""
    return f"""
stream {{
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        proxy_pass 127.0.0.1:{upstream};
    }}
}}
"""


def _head(prefix: Path, modules: list[str]) -> str:
    loads = "".join(f"load_module {module};\n" for module in modules)
    return f"""{loads}daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{
    worker_connections 64;
}}
"""


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
    stream = _tls_stream(tls[0], tls[1], tls[2], port) if tls is not None else ""
    modules = [RTMP_MODULE] if tls is None else [RTMP_MODULE, STREAM_MODULE]
    return f"""{_head(prefix, modules)}rtmp {{
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
    record = record_dir or tmp_path / "record"
    record.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    tls_port = free_port() if tls is not None else None
    tls_conf = (tls_port, *tls) if tls is not None and tls_port is not None else None
    ports = [port] if tls_port is None else [port, tls_port]
    with _running(prefix, _config(prefix, port, apps, record, tls_conf), ports) as log:
        yield NginxRtmp(port, record, log, tls_port)


@contextmanager
def start_tls_proxy(tmp_path: Path, upstream: int, cert: Path, key: Path) -> Iterator[int]:
    """Run nginx terminating TLS on a free loopback port, forwarding to ``127.0.0.1:upstream``.

    Yields:
        The TLS port.
    """
    prefix = tmp_path / "nginx-tls"
    tls_port = free_port()
    conf = _head(prefix, [STREAM_MODULE]) + _tls_stream(tls_port, cert, key, upstream)
    with _running(prefix, conf, [tls_port]):
        yield tls_port


@contextmanager
def _running(prefix: Path, conf_text: str, ports: list[int]) -> Iterator[Path]:
    """nginx with ``conf_text`` until the block ends, once every port listens; yields its log."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "logs").mkdir(exist_ok=True)  # nginx opens prefix/logs/error.log before the config
    conf = prefix / "nginx.conf"
    conf.write_text(conf_text)
    log = prefix / "error.log"
    stderr = (prefix / "stderr.log").open("wb")
    proc = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(log)],
        stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
    )
    try:
        for port in ports:
            _wait_port(proc, port, log)
        yield log
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
