"""One web process for ``relay run --workers N``: every worker's snapshot merged into /api,
/metrics and /healthz."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from relay.status_schema import Snapshot, StreamSnapshot, encode_snapshot
from web.app import make_app

NOW = 1_700_000_000.0


def _stream(name: str, position: int) -> StreamSnapshot:
    return StreamSnapshot(name=name, position=position, state="playing",
                          source=f"rtsp://192.0.2.1/{name}", packets_received=position + 1)


def _write(path: Path, snapshot: Snapshot | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(snapshot if isinstance(snapshot, bytes) else encode_snapshot(snapshot))
    tmp.replace(path)


def test_snapshots_of_every_worker_merge(tmp_path: Path) -> None:
    first, second = tmp_path / "worker-0" / "status.json", tmp_path / "worker-1" / "status.json"
    now = [NOW]

    async def body(client: TestClient) -> None:
        assert (await client.get("/api/streams")).status == 503
        _write(first, Snapshot(updated=NOW - 1, streams=(_stream("c", 2), _stream("a", 0)),
                               disk_errors=2, disk_error="status snapshot x: ENOSPC"))
        # one worker reports: its streams are served, but the relay is not whole yet
        assert [s["name"] for s in await (await client.get("/api/streams")).json()] == ["a", "c"]
        assert (await client.get("/healthz")).status == 503
        _write(second, Snapshot(updated=NOW - 3, streams=(_stream("d", 3), _stream("b", 1)),
                                disk_errors=3))
        r = await client.get("/api/streams")
        assert [s["name"] for s in await r.json()] == ["a", "b", "c", "d"]  # config order
        assert (await client.get("/healthz")).status == 200
        families = {f.name: f for f in text_string_to_metric_families(
            await (await client.get("/metrics")).text())}
        received = {s.labels["stream"]: s.value
                    for s in families["relay_stream_packets_received"].samples
                    if s.name.endswith("_total")}
        assert received == {"a": 1, "b": 2, "c": 3, "d": 4}
        assert families["relay_status_disk_errors"].samples[0].value == 5
        assert families["relay_status_age_seconds"].samples[0].value == 3  # the oldest counts

        now[0] = NOW + 8  # the second worker's snapshot is 11 s old: stale, the first is not
        assert (await client.get("/healthz")).status == 503
        now[0] = NOW
        _write(second, b"{not json")
        r = await client.get("/healthz")
        assert r.status == 503 and str(second) in await r.text()
        assert [s["name"] for s in await (await client.get("/api/streams")).json()] == ["a", "c"]

    async def main() -> None:
        app = make_app(tmp_path / "hls", [first, second], push=False, clock=lambda: now[0])
        async with TestClient(TestServer(app)) as client:
            await asyncio.wait_for(body(client), 20)

    asyncio.run(main())
