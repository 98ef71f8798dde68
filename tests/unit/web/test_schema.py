"""The web process serves the relay's typed snapshot: /api/streams and /metrics from it alone."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import types
from collections.abc import Awaitable, Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from relay.files import DiskErrors
from relay.status import Snapshotter
from relay.status_schema import (
    SCHEMA_VERSION,
    LlHlsSnapshot,
    RtmpSnapshot,
    Snapshot,
    StreamSnapshot,
    TrackSnapshot,
    encode_snapshot,
)
from tests.unit.test_status import live_status
from tests.unit.web.test_metrics import samples
from web.app import make_app

NOW = 1_700_000_000.0

NOT_IN_METRICS = {
    (Snapshot, "updated"): "as relay_status_age_seconds",
    (Snapshot, "schema_version"): "checked on read",
    (StreamSnapshot, "position"): "the order /api lists streams in, across workers",
    (TrackSnapshot, "index"): "the track label",
    (TrackSnapshot, "width"): "a property of the picture, in /api only",
    (TrackSnapshot, "height"): "a property of the picture, in /api only",
    (TrackSnapshot, "sample_rate"): "a property of the audio, in /api only",
    (TrackSnapshot, "channels"): "a property of the audio, in /api only",
}
"""Numeric schema fields /metrics does not report as a sample value, and why."""


def write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def serve(folders: tuple[Path, Path], body: Callable[[TestClient], Awaitable[None]]) -> None:
    async def main() -> None:
        app = make_app(folders[0], folders[1], push=False, clock=lambda: NOW)
        async with TestClient(TestServer(app)) as client:
            await asyncio.wait_for(body(client), 20)

    asyncio.run(main())


def as_json(value: object) -> Any:
    """``value`` as a JSON reader sees it (tuples become lists)."""
    return json.loads(msgspec.json.encode(value))


def every_field(tp: Any, values: Iterator[int]) -> Any:
    """A value of ``tp`` with every field set, each number distinct (never a default)."""
    if tp is bool:
        return True  # False is every bool's default
    if tp is int:
        return next(values)
    if tp is float:
        return next(values) + 0.5
    if tp is str:
        return f"v{next(values)}"
    if get_origin(tp) in (Union, types.UnionType):
        return every_field(next(a for a in get_args(tp) if a is not type(None)), values)
    if get_origin(tp) is tuple:
        return (every_field(get_args(tp)[0], values),)
    hints = get_type_hints(tp)
    return tp(**{name: every_field(hints[name], values) for name in tp.__struct_fields__
                 if name != "schema_version"})


def test_the_relays_snapshot_is_what_the_api_serves(folders: tuple[Path, Path]) -> None:
    status = live_status()
    push = {"cam1": "http://user:hunter2hunter2@origin.example/live/"}.get
    snapshot = Snapshotter(str).snapshot([status], 5.0, NOW, DiskErrors("relay"), push)
    write(folders[1], encode_snapshot(snapshot))  # as relay/app.py's publish_status does

    async def body(client: TestClient) -> None:
        text = await (await client.get("/api/streams")).text()
        assert "hunter2" not in text
        (api,) = json.loads(text)
        expected = as_json(snapshot.streams[0])
        assert {key: api[key] for key in expected} == dict(expected, hls_push=None)
        assert api["tracks"][0]["width"] == 640 and api["rtmp"][0]["warnings"] == [
            "G.711 is sent as AAC"]

    serve(folders, body)


def test_every_schema_field_is_in_the_api_and_every_figure_in_the_metrics(
        folders: tuple[Path, Path]) -> None:
    snapshot = every_field(Snapshot, count(1000))
    snapshot = msgspec.structs.replace(snapshot, updated=NOW - 3)
    write(folders[1], encode_snapshot(snapshot))
    stream = snapshot.streams[0]

    async def body(client: TestClient) -> None:
        (api,) = await (await client.get("/api/streams")).json()
        for name in StreamSnapshot.__struct_fields__:
            if name != "hls_push":  # replaced by the push's redacted state
                assert api[name] == as_json(getattr(stream, name)), name
        found = samples(await (await client.get("/metrics")).text())
        reported = {(value, labels.get("stream")) for (_, frozen), value in found.items()
                    for labels in [dict(frozen)]}
        for struct, owner, label in ((Snapshot, snapshot, None),
                                     (StreamSnapshot, stream, stream.name),
                                     (TrackSnapshot, stream.tracks[0], stream.name),
                                     (RtmpSnapshot, stream.rtmp[0], stream.name),
                                     (LlHlsSnapshot, stream.ll_hls, stream.name)):
            hints = get_type_hints(struct)
            for name in struct.__struct_fields__:
                if (struct, name) in NOT_IN_METRICS:
                    continue
                value = getattr(owner, name)
                if hints[name] in (int, float, int | None, float | None):
                    assert (value, label) in reported, f"{struct.__name__}.{name} not in /metrics"
        track = dict(stream=stream.name, track=str(stream.tracks[0].index),
                     kind=stream.tracks[0].kind, codec=stream.tracks[0].codec)
        assert found[("relay_stream_fps", frozenset(track.items()))] == stream.tracks[0].fps
        assert found[("relay_status_age_seconds", frozenset())] == 3
        assert stream.ll_hls is not None
        ll = dict(stream=stream.name)
        assert found[("relay_ll_hls_running", frozenset(ll.items()))] == 1
        assert found[("relay_ll_hls_mode", frozenset(dict(ll, mode=stream.ll_hls.mode).items()))
                     ] == 1

    serve(folders, body)
    for struct, name in NOT_IN_METRICS:  # a renamed field is not silently excused
        assert name in struct.__struct_fields__, (struct, name)


def test_a_snapshot_of_another_schema_version_is_refused_with_one_line(
        folders: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    good = encode_snapshot(Snapshot(updated=NOW, streams=(
        StreamSnapshot(name="cam1", state="playing", source="rtsp://192.0.2.10/s"),)))
    other = json.loads(good)
    other["schema_version"] = SCHEMA_VERSION + 1
    line = (f"schema version {SCHEMA_VERSION + 1}, this web process reads version "
            f"{SCHEMA_VERSION}: the relay and its web process come from different installs")

    async def body(client: TestClient) -> None:
        for updated in (NOW, NOW + 1):  # rewritten every second: still one line
            write(folders[1], json.dumps(dict(other, updated=updated)).encode())
            r = await client.get("/api/streams")
            assert r.status == 503 and await r.json() == []
            r = await client.get("/healthz")
            assert r.status == 503 and await r.text() == f"unusable status snapshot: {line}"
            found = samples(await (await client.get("/metrics")).text())
            assert found[("relay_status_up", frozenset())] == 0
        write(folders[1], good)
        assert [s["name"] for s in await (await client.get("/api/streams")).json()] == ["cam1"]
        assert await (await client.get("/healthz")).text() == "ok"

    with caplog.at_level(logging.ERROR, logger="web"):
        serve(folders, body)
    assert [r.getMessage() for r in caplog.records] == [
        f"status snapshot {folders[1]}: {line}"]
