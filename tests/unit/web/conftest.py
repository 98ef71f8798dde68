"""Shared fixtures of the web tests."""

from pathlib import Path

import pytest

from tests.unit.web.test_app import PLAYLIST


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    hls = tmp_path / "hls"
    (hls / "cam1").mkdir(parents=True)
    (hls / "cam1" / "index.m3u8").write_text(PLAYLIST)
    (hls / "cam1" / "seg00000.ts").write_bytes(b"\x47" * 188 * 10)
    (tmp_path / "secret.ts").write_bytes(b"secret")
    (tmp_path / "index.m3u8").write_text("secret")
    status = tmp_path / "run" / "status.json"
    status.parent.mkdir()
    return hls, status
