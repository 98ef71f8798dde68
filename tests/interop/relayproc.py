"""Runs the real ``relay`` command line as a subprocess, as a user would, and reads its output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def http_get(url: str, token: str | None = None) -> tuple[int, bytes]:
    """Status and body of a GET, with a bearer token if given (errors are answers too)."""
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class RelayProcess:
    """``python -m relay ARGS`` with its stderr captured to a file (read with ``.log()``)."""

    def __init__(self, args: list[str], http_port: int, cwd: Path,
                 env: dict[str, str] | None = None) -> None:
        self.http_port = http_port
        self._log = tempfile.NamedTemporaryFile(prefix="relay-log-", suffix=".txt", delete=False)
        env = dict(env or os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relay", *args],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=cwd, env=env,
        )

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def api(self, path: str = "/api/streams") -> Any:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"relay exited early ({self.process.returncode}) while "
                                     f"waiting for {what}:\n{self.log()}")
            try:
                if predicate():
                    return
            except (OSError, ValueError, LookupError, TypeError):
                pass  # not up yet, or not that far yet
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n{self.log()}")

    def stop(self, timeout: float = 20) -> int:
        """SIGINT, as Ctrl-C does; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(
                    f"relay did not stop within {timeout} s:\n{self.log()}") from None
        return self.process.returncode

    def __enter__(self) -> RelayProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.unlink(self._log.name)
