"""The media process's collector (issue 12): start-up objects frozen, young collections rarer."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

import relay.app
from relay.app import GC_YOUNG_THRESHOLD
from relay.config import Config, ServerConfig
from relay.logs import LogOutput, Redactor
from relay.shards import Assignment


@pytest.fixture
def gc_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.parametrize("entry", ["run", "run_worker"])
def test_the_loop_starts_with_the_heap_frozen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gc_restored: None, entry: str,
) -> None:
    seen: list[tuple[int, int]] = []

    def trio_run(*args: object) -> None:  # what the loop would start with
        seen.append((gc.get_freeze_count(), gc.get_threshold()[0]))

    monkeypatch.setattr(relay.app.trio, "run", trio_run)
    config = Config(ServerConfig(hls_dir=tmp_path), ())
    logs = LogOutput(Redactor())
    if entry == "run":
        relay.app.run(config, logs)
    else:
        relay.app.run_worker(config, logs, tmp_path / "relay.toml", Assignment(), tmp_path, 0)
    ((frozen, young),) = seen
    assert frozen > 1000
    assert young == GC_YOUNG_THRESHOLD
