"""Pytest side of the GStreamer RTSP camera: start tests/interop/gst_rtsp_server.py, wait, stop.

The server runs under Debian's /usr/bin/python3 (GStreamer's introspection bindings live there,
not in the project's virtualenv). A server that does not come up fails the test, with its
stderr in the message: interop tests never skip.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("gst_rtsp_server.py")
READY_TIMEOUT = 20.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stderr_of(log: IO[bytes]) -> str:
    log.flush()
    return Path(log.name).read_text(errors="replace").strip() or "(empty)"


@dataclass(frozen=True, slots=True)
class GstServer:
    """A running GStreamer RTSP server: its port, and its process (to stop or freeze it)."""

    port: int
    process: subprocess.Popen[bytes]


@contextmanager
def start_gst_server(
    mounts: dict[str, str],
    user: str | None = None,
    password: str | None = None,
    *,
    protocols: str = "tcp,udp",
    port: int = 0,
) -> Iterator[int]:
    """Run GStreamer's RTSP server with the named test pipelines.

    Args:
        mounts: mount path (``"/cam"``) to pipeline name (``"h264aac"``, ``"h264"``, ... see
            gst_rtsp_server.py).
        user: enables RTSP Digest authentication with ``password``.
        password: the password for ``user``.
        protocols: lower transports the server allows: ``"tcp"``, ``"udp"`` or ``"tcp,udp"``.
        port: TCP port to listen on; 0 lets the server pick one (no race).

    Yields:
        The port the server listens on at 127.0.0.1.
    """
    with run_gst_server(mounts, user, password, protocols=protocols, port=port) as server:
        yield server.port


@contextmanager
def run_gst_server(
    mounts: dict[str, str],
    user: str | None = None,
    password: str | None = None,
    *,
    protocols: str = "tcp,udp",
    port: int = 0,
) -> Iterator[GstServer]:
    """``start_gst_server``, yielding the process too (for SIGSTOP/SIGCONT, kill)."""
    args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(port), "--protocols", protocols]
    for path, name in mounts.items():
        args += ["--mount", f"{path}={name}"]
    if user is not None or password is not None:
        args += ["--user", user or "", "--password", password or ""]
    with tempfile.NamedTemporaryFile(prefix="gst-rtsp-", suffix=".log") as log:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            bound = _wait_ready(proc, log)
            yield GstServer(bound, proc)
            if proc.poll() is not None and proc.returncode != -signal.SIGKILL:
                pytest.fail(
                    f"GStreamer RTSP server died during the test (exit {proc.returncode}); "
                    f"stderr: {_stderr_of(log)}"
                )
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a test may have left it frozen
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            proc.stdout.close()


def _wait_ready(proc: subprocess.Popen[bytes], log: IO[bytes]) -> int:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + READY_TIMEOUT
    seen = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                pytest.fail(
                    f"GStreamer RTSP server not READY after {READY_TIMEOUT} s; "
                    f"stderr: {_stderr_of(log)}"
                )
            chunk = os.read(fd, 4096)
            if not chunk:
                proc.wait()
                pytest.fail(
                    f"GStreamer RTSP server exited ({proc.returncode}) before READY; "
                    f"stderr: {_stderr_of(log)}"
                )
            seen += chunk
    line = seen.split(b"\n", 1)[0].decode(errors="replace")
    if not line.startswith("READY port="):
        pytest.fail(f"GStreamer RTSP server said {line!r}; stderr: {_stderr_of(log)}")
    return int(line.removeprefix("READY port="))
