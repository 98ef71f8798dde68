"""A real full disk for tests: a small tmpfs mounted for one test, filled and freed on demand.

A full disk has no peer to stand in for it, but a tmpfs gives the kernel's own ENOSPC (and
EROFS, remounted read-only) without injecting anything. Mounting needs root (CAP_SYS_ADMIN),
which the tests have in CI and in the Docker image.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FILLER = ".filler"
_CHUNK = b"\0" * 65536


class SmallDisk:
    """A mounted tmpfs: ``fill()`` takes every free byte, ``free()`` gives them back."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self) -> None:
        with open(self.path / FILLER, "ab", buffering=0) as f:
            for chunk in (_CHUNK, b"\0" * 4096, b"\0"):  # to the last page
                try:
                    while True:
                        f.write(chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc

    def free(self) -> None:
        (self.path / FILLER).unlink()

    def remount(self, *options: str) -> None:
        """``remount("ro")`` makes every write fail with EROFS; ``remount("rw")`` undoes it."""
        _mount("-o", ",".join(("remount", *options)), "tmpfs", str(self.path))


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    assert result.returncode == 0, (
        f"mount {' '.join(args)} failed ({result.stderr.strip()}): the disk-full tests mount a "
        f"small tmpfs and need root (CAP_SYS_ADMIN), as in CI")


@contextmanager
def small_disk(path: Path, size: str = "16m") -> Iterator[SmallDisk]:
    """Mount a tmpfs of ``size`` at ``path`` (created) for the ``with`` block."""
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)
        os.rmdir(path)
