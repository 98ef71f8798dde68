"""Runs the aiohttp web process beside the relay (app.publish_status writes what it serves).

HTTP lives in its own process (DESIGN.md: viewers' load never takes the GIL from ingest); it
learns the relay's state from a JSON file in a private runtime directory, replaced atomically
once a second. A web process that exits is started again by ``supervise()``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from relay.drivers.supervise import supervise
from relay.errors import RelayError

log = logging.getLogger("relay.web")

READY_TIMEOUT = 15.0


async def run_web(
    http: tuple[str, int],
    hls_dir: Path,
    status_files: Sequence[Path],
    *,
    thumbnails: Path | None = None,
    token_file: Path | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Start ``python -m web`` and restart it with backoff should it die.

    ``task_status.started()`` once the first web process listens; one that never does ends
    the relay (``SystemExit``): the page could never be served.
    """
    host, port = http
    command = [
        sys.executable, "-m", "web",
        "--http", f"{host}:{port}",
        "--hls-dir", str(hls_dir),
        "--parent-pid", str(os.getpid()),
    ]
    for status_file in status_files:  # one per worker process: the web process merges them
        command += ["--status", str(status_file)]
    if thumbnails is not None:
        command += ["--thumbnails", str(thumbnails)]
    if token_file is not None:
        command += ["--token-file", str(token_file)]
    listened = False

    async def serve(*, task_status: trio.TaskStatus[object]) -> None:
        nonlocal listened
        async with trio.open_nursery() as nursery:
            process = await nursery.start(_run, command)
            if not await _wait_listening(host, port, process):
                if not listened:
                    raise SystemExit(f"the web process did not start listening on {host}:{port}")
                raise RelayError(f"not listening on {host}:{port} within {READY_TIMEOUT:.0f} s")
            listened = True
            task_status.started()
            code = await process.wait()
        raise RelayError(f"exited with code {code}")

    await supervise("web process", serve, task_status=task_status)


async def _run(command: list[str], *, task_status: trio.TaskStatus[trio.Process]) -> None:
    await trio.run_process(command, check=False, task_status=task_status,
                           stdin=subprocess.DEVNULL)


async def _wait_listening(host: str, port: int, process: trio.Process) -> bool:
    """Whether ``process`` listens within ``READY_TIMEOUT`` (False: it exited or hangs)."""
    with trio.move_on_after(READY_TIMEOUT):
        while process.returncode is None:
            try:
                conn = await trio.open_tcp_stream(host, port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await conn.aclose()
            return True
    return False
