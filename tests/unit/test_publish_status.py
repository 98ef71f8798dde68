"""The status snapshot is written when it changes (and as a heartbeat), not every second."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from relay import app
from relay.app import Supervisor, publish_status
from relay.config import Config, ServerConfig, SourceUrl, StreamConfig
from relay.logs import Redactor
from relay.status import StreamStatus


async def idle(config: StreamConfig, status: StreamStatus, hls_dir: Path) -> None:
    status.state = "retrying"  # a stream doing nothing: its counters stay as they are
    await trio.sleep_forever()


async def test_unchanged_snapshot_is_not_rewritten(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "STATUS_INTERVAL", 0.01)
    monkeypatch.setattr(app, "STATUS_HEARTBEAT", 0.25)
    path = tmp_path / "status.json"
    source = SourceUrl.parse("rtsp://cam.example/x", "cam")
    writes: list[tuple[int, dict[str, object]]] = []  # (inode, snapshot) of each file seen

    def seen() -> None:
        try:
            inode = path.stat().st_ino
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return
        if not writes or writes[-1][0] != inode:
            writes.append((inode, data))

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery, tmp_path, idle)
            supervisor.apply(Config(server=ServerConfig(),
                                    streams=(StreamConfig(name="cam", source=source),)))
            nursery.start_soon(publish_status, supervisor, path, Redactor())
            start = trio.current_time()
            while trio.current_time() - start < 1.0:  # about 100 snapshots built
                seen()
                await trio.sleep(0.002)
            idle_writes = len(writes)
            supervisor.statuses[0].packets_received += 1  # a change: written at the next tick
            while writes[-1][1]["streams"][0]["packets_received"] == 0:  # type: ignore[index]
                seen()
                await trio.sleep(0.002)
            nursery.cancel_scope.cancel()
    # the first write, its state settling to "retrying", then only heartbeats (every 0.25 s)
    assert 2 <= idle_writes <= 7, writes
    updated = [w[1]["updated"] for w in writes[:idle_writes]]
    assert updated == sorted(updated)
