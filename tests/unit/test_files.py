"""Atomic writes and DiskErrors on a real full (and read-only) tmpfs."""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.files import DiskErrors, write_atomically
from tests.smalldisk import FILLER, SmallDisk, small_disk


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "mnt", "1m") as mounted:
        yield mounted


def test_a_full_disk_leaves_the_old_file_and_no_temp_file(disk: SmallDisk) -> None:
    target = disk.path / "index.m3u8"
    write_atomically(target, b"old")
    disk.fill()
    with pytest.raises(OSError) as raised:
        write_atomically(target, b"x" * 100_000)
    assert raised.value.errno == errno.ENOSPC
    assert sorted(p.name for p in disk.path.iterdir()) == [FILLER, "index.m3u8"]
    assert target.read_bytes() == b"old"
    disk.free()
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"


def test_a_failed_rename_removes_the_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "seg00001.ts"
    (target / "in-the-way").mkdir(parents=True)  # a non-empty folder cannot be replaced
    with pytest.raises(OSError):
        write_atomically(target, b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg00001.ts"]


def test_a_read_only_disk_is_recorded_without_raising(disk: SmallDisk) -> None:
    errors = DiskErrors("stream=cam")
    disk.remount("ro")
    try:
        assert not errors.write("thumbnail", disk.path / "cam.jpg", b"jpeg")
    finally:
        disk.remount("rw")
    assert errors.count == 1
    assert errors.last == "thumbnail cam.jpg: Read-only file system (EROFS)"
    assert list(disk.path.iterdir()) == []
    assert errors.write("thumbnail", disk.path / "cam.jpg", b"jpeg")
    assert (disk.path / "cam.jpg").read_bytes() == b"jpeg"


def test_one_line_per_outage_not_per_attempt(disk: SmallDisk,
                                             caplog: pytest.LogCaptureFixture) -> None:
    errors = DiskErrors("stream=cam")
    caplog.set_level(logging.INFO, logger="relay.files")
    disk.fill()
    for n in range(5):
        assert not errors.write("hls segment", disk.path / f"seg{n:05d}.ts", b"x" * 8192)
        assert not errors.write("hls playlist", disk.path / "index.m3u8", b"y" * 8192)
    disk.free()
    assert errors.write("hls playlist", disk.path / "index.m3u8", b"#EXTM3U\n")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1  # the segments' outage is not over while only the playlist works
    assert lines[0].startswith(f"stream=cam disk: hls segment {disk.path}/seg00000.ts failed: "
                               "No space left on device (ENOSPC)")
    assert errors.write("hls segment", disk.path / "seg00005.ts", b"x")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[1:] == ["stream=cam disk: writes work again (10 failed during the outage)"]
    assert errors.count == 10
    assert errors.last == "hls playlist index.m3u8: No space left on device (ENOSPC)"
    assert sorted(p.name for p in disk.path.iterdir()) == ["index.m3u8", "seg00005.ts"]
    disk.fill()
    assert not errors.write("thumbnail", disk.path / "cam.jpg", b"z" * 8192)
    assert len(caplog.records) == 3  # a new outage, a new line
