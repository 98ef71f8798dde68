"""Atomic file replacement, and failed writes counted so that no disk error stops the relay.

Readers (the web process, browsers, CDNs) never see half a file: data goes to a temp file beside
the target, which is then renamed over it. A write that fails (ENOSPC, EIO, EACCES, EROFS...)
removes its temp file and raises; the writer records it in its ``DiskErrors`` (shown in /api and
/metrics, logged once per outage) and simply tries again with its next write.
"""

import contextlib
import errno
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, then rename it over ``path``.

    No fsync: readers need only the rename's atomicity, and a live stream's files are not worth
    a disk flush each; errors a filesystem reports late (NFS) still surface at close.

    Raises:
        OSError: the open, write, close or rename failed; the temp file is gone and ``path``
            is untouched.
    """
    tmp = path.with_name(path.name + TEMP_SUFFIX)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a read-only or vanished folder: nothing to remove
            os.unlink(tmp)
        raise


def describe_os_error(exc: OSError) -> str:
    """``No space left on device (ENOSPC)``: the reason alone, without the temp file's path."""
    code = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno is not None else None
    return f"{exc.strerror} ({code})" if exc.strerror and code else str(exc)


class DiskErrors:
    """The failed disk operations of one owner (a stream, or the relay's status snapshot).

    Every failure is counted and the last one kept for /api and /metrics. An outage is logged
    once, by one warning when the first kind of operation ("hls segment", "thumbnail"...) fails
    and one line when every kind that failed has worked again, never a line per attempt: a full
    disk fails every write for as long as it lasts. Kinds are tracked apart so that a small
    playlist that still fits does not end the outage of the segments that do not. Thread-safe:
    the writes run in worker threads.

    Args:
        owner: how log lines name the owner (``stream=cam1``, ``relay``).
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.count = 0
        self.last: str | None = None
        """The last failure, ``KIND FILE: REASON`` (the file's name only: /api is public)."""
        self._failing: set[str] = set()  # kinds whose last attempt failed
        self._outage = 0  # failures since the outage began
        self._lock = threading.Lock()

    def failed(self, kind: str, path: Path, exc: OSError) -> None:
        """Record that a ``kind`` operation on ``path`` failed with ``exc``."""
        reason = describe_os_error(exc)
        with self._lock:
            self.count += 1
            self.last = f"{kind} {path.name}: {reason}"
            began = not self._failing
            self._failing.add(kind)
            self._outage += 1
        if began:
            log.warning("%s disk: %s %s failed: %s; each new write retries, one line when "
                        "writes work again", self.owner, kind, path, reason)

    def ok(self, kind: str) -> None:
        """Record that a ``kind`` operation worked; the outage ends when no kind is failing."""
        with self._lock:
            if kind not in self._failing:
                return
            self._failing.discard(kind)
            if self._failing:
                return
            failures, self._outage = self._outage, 0
        log.info("%s disk: writes work again (%d failed during the outage)", self.owner,
                 failures)

    def write(self, kind: str, path: Path, data: bytes) -> bool:
        """``write_atomically``, recorded: False if the disk refused it (nothing raised)."""
        try:
            write_atomically(path, data)
        except OSError as exc:
            self.failed(kind, path, exc)
            return False
        self.ok(kind)
        return True
