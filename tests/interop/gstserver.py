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
import threading
import time
import warnings
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
    restart: bool = False,
) -> Iterator[int]:
    """Run GStreamer's RTSP server with the named test pipelines.

    Args:
        mounts: mount path (``"/cam"``) to pipeline name (``"h264aac"``, ``"h264"``, ... see
            gst_rtsp_server.py).
        user: enables RTSP Digest authentication with ``password``.
        password: the password for ``user``.
        protocols: lower transports the server allows: ``"tcp"``, ``"udp"`` or ``"tcp,udp"``.
        port: TCP port to listen on; 0 lets the server pick one (no race).
        restart: start the server again on its port when it dies, with a warning (for tests
            of many clients whose subject is not the camera: gst-rtsp-server died once under
            14 clients of one shared mount joining at once).

    Yields:
        The port the server listens on at 127.0.0.1.
    """
    with run_gst_server(mounts, user, password, protocols=protocols, port=port,
                        restart=restart) as server:
        yield server.port


@contextmanager
def run_gst_server(
    mounts: dict[str, str],
    user: str | None = None,
    password: str | None = None,
    *,
    protocols: str = "tcp,udp",
    port: int = 0,
    restart: bool = False,
) -> Iterator[GstServer]:
    """``start_gst_server``, yielding the process too (for SIGSTOP/SIGCONT, kill); with
    ``restart``, the first process (a restarted one is not yielded)."""
    args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--protocols", protocols]
    for path, name in mounts.items():
        args += ["--mount", f"{path}={name}"]
    if user is not None or password is not None:
        args += ["--user", user or "", "--password", password or ""]
    with tempfile.NamedTemporaryFile(prefix="gst-rtsp-", suffix=".log") as log:
        procs = [_popen([*args, "--port", str(port)], log)]
        stop = threading.Event()
        keeper: threading.Thread | None = None
        try:
            bound = _wait_ready(procs[0], log)
            if restart:
                keeper = threading.Thread(target=_keep, daemon=True,
                                          args=(procs, [*args, "--port", str(bound)], log, stop))
                keeper.start()
            try:
                yield GstServer(bound, procs[0])
            except Exception as exc:  # a test that failed because its camera died says so
                if _died(procs[-1]):
                    raise AssertionError(f"{_death(procs[-1], log)}; the test then failed: "
                                         f"{str(exc)[:300]}") from exc
                raise
            finally:
                stop.set()
                if keeper is not None:
                    keeper.join()
            if len(procs) > 1:
                warnings.warn(f"GStreamer RTSP server restarted {len(procs) - 1} time(s) "
                              f"(exits {[p.returncode for p in procs[:-1]]}); stderr: "
                              f"{_stderr_of(log)[-2000:]}", stacklevel=3)
            if _died(procs[-1]):
                pytest.fail(_death(procs[-1], log))
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)  # a test may have left it frozen
                    proc.terminate()
                    try:
                        proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                assert proc.stdout is not None
                proc.stdout.close()


def _popen(args: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)


def _keep(procs: list[subprocess.Popen[bytes]], args: list[str], log: IO[bytes],
          stop: threading.Event) -> None:
    """Starts the server again on its port whenever the newest process has exited."""
    while not stop.wait(0.2):
        if procs[-1].poll() is not None:
            procs.append(_popen(args, log))
            _wait_ready(procs[-1], log)


def _died(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is not None and proc.returncode != -signal.SIGKILL  # a test's own kill


def _death(proc: subprocess.Popen[bytes], log: IO[bytes]) -> str:
    return (f"GStreamer RTSP server died during the test (exit {proc.returncode}); "
            f"stderr: {_stderr_of(log)[-2000:]}")


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
