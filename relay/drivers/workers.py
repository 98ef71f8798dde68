"""``relay run --workers N``: N media processes supervised by one parent, which also runs the web
process that serves them all.

Each worker is ``relay run`` again with hidden flags naming its index, the parent's runtime folder
and a pipe: it runs the streams its ``Assignment`` owns (relay/shards.py) and writes its status
snapshot into ``RUNTIME/worker-I/`` (the web process merges them). A worker that exits (killed,
crashed) is started again by ``supervise()`` with backoff, on the config file as it is then; the
others are never touched. SIGHUP is checked once here, then forwarded; stopping is SIGTERM to
every worker, each closing its streams cleanly (SIGKILL only after ``STOP_TIMEOUT``).

Workers run in their own session, so a terminal's Ctrl-C reaches the parent alone and the stop
happens once, in order. A worker learns that its parent is gone (even by SIGKILL) from the pipe:
the parent holds its only write end, so the worker's read end reads as end-of-file.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from relay.drivers.supervise import supervise
from relay.errors import RelayError

log = logging.getLogger("relay.workers")

STOP_TIMEOUT = 15.0
"""How long a worker may take to close its streams after SIGTERM before it is killed."""


def worker_folder(runtime: Path, index: int) -> Path:
    """A worker's own runtime folder (its status snapshot, its control socket)."""
    return runtime / f"worker-{index}"


@dataclass(frozen=True, slots=True)
class WorkerCommand:
    """How to start the workers: how many, and the command line they share."""

    count: int
    base: tuple[str, ...]

    def argv(self, index: int, runtime: Path, parent_fd: int) -> list[str]:
        return [*self.base, "--worker", str(index), "--runtime", str(runtime),
                "--parent-fd", str(parent_fd)]


class WorkerPool:
    """Runs ``command.count`` worker processes, each restarted on its own when it exits.

    Args:
        command: the workers' command line.
        runtime: the parent's private runtime folder (workers use a subfolder each).
    """

    def __init__(self, command: WorkerCommand, runtime: Path) -> None:
        self._command = command
        self._runtime = runtime
        self._processes: dict[int, trio.Process] = {}
        self.status_files = [worker_folder(runtime, i) / "status.json"
                             for i in range(command.count)]
        """Every worker's status snapshot, for the web process."""

    async def run(self) -> None:
        """Run the workers until cancelled; then stop them all (SIGTERM) and wait for them."""
        read, write = os.pipe()  # not inherited: only pass_fds hands the read end on
        try:
            async with trio.open_nursery() as nursery:
                for index in range(self._command.count):
                    nursery.start_soon(supervise, f"worker={index}",
                                       partial(self._run_once, index, read))
        finally:
            os.close(read)
            os.close(write)

    def reload(self, check: Callable[[], bool]) -> None:
        """SIGHUP every running worker, if ``check()`` (the parent's look at the file) passes."""
        if check():
            for process in self._processes.values():
                process.send_signal(signal.SIGHUP)

    async def _run_once(self, index: int, parent_fd: int, *,
                        task_status: trio.TaskStatus[object]) -> None:
        folder = worker_folder(self._runtime, index)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            async with trio.open_nursery() as nursery:
                process: trio.Process = await nursery.start(partial(
                    trio.run_process, self._command.argv(index, self._runtime, parent_fd),
                    check=False, stdin=subprocess.DEVNULL, pass_fds=(parent_fd,),
                    start_new_session=True, deliver_cancel=_stop))
                self._processes[index] = process
                task_status.started()
                code = await process.wait()
        finally:
            self._processes.pop(index, None)
            # a dead worker's snapshot goes with it: its streams are not shown as they were
            shutil.rmtree(folder, ignore_errors=True)
        reason = f"exited with code {code}"
        if code < 0:
            try:
                reason = f"killed by {signal.Signals(-code).name}"
            except ValueError:  # a signal Python has no name for
                reason = f"killed by signal {-code}"
        raise RelayError(reason)


async def _stop(process: trio.Process) -> None:
    process.terminate()
    with trio.move_on_after(STOP_TIMEOUT):
        await process.wait()
        return
    log.warning("worker pid=%d did not stop within %.0f s; killing it", process.pid, STOP_TIMEOUT)
    process.kill()
