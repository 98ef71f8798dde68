"""Supervision and reload, on trio's autojump clock with fake stream runners (no network)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import trio
import trio.testing

from relay.app import Supervisor, publish_status, reload
from relay.config import Config, ServerConfig, SourceUrl, StreamConfig
from relay.errors import RelayError
from relay.files import DiskErrors
from relay.logs import LogOutput, Redactor
from relay.status import StreamStatus
from tests.smalldisk import FILLER, small_disk


def stream(name: str, **kw: object) -> StreamConfig:
    return StreamConfig(name=name, source=SourceUrl.parse(f"rtsp://{name}.cam/x", name), **kw)


def config(*streams: StreamConfig) -> Config:
    return Config(server=ServerConfig(), streams=streams)


class FakeRunner:
    """Records every run of every stream; names in ``failing`` raise after ``fail_after`` s."""

    def __init__(self, failing: dict[str, float] | None = None) -> None:
        self.failing = failing or {}
        self.events: list[tuple[float, str, str, StreamConfig]] = []  # (time, what, name, cfg)

    def starts(self, name: str) -> list[float]:
        return [t for t, what, n, _ in self.events if what == "start" and n == name]

    def count(self, what: str, name: str) -> int:
        return sum(1 for _, w, n, _ in self.events if w == what and n == name)

    async def __call__(self, config: StreamConfig, status: StreamStatus, hls_dir: Path) -> None:
        name = config.name
        self.events.append((trio.current_time(), "start", name, config))
        status.state = "playing"
        try:
            if name in self.failing:
                await trio.sleep(self.failing[name])
                raise ValueError(f"boom in {name} rtsp://user:pw@{name}.cam/x")
            await trio.sleep_forever()
        finally:
            self.events.append((trio.current_time(), "end", name, config))
            status.state = "stopped"


async def test_apply_adds_removes_restarts_and_leaves_unchanged_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runner = FakeRunner()
    a, b, c, d = stream("a"), stream("b"), stream("c"), stream("d")
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, Path("/hls"), runner)
        assert sup.apply(config(a, b, c))["started"] == ["a", "b", "c"]
        await trio.sleep(5)
        status_a, status_b = sup.statuses[0], sup.statuses[1]
        statuses_list = sup.statuses
        assert [s.name for s in sup.statuses] == ["a", "b", "c"]
        assert all(s.state == "playing" for s in sup.statuses)

        b2 = replace(b, window=3)
        changes = sup.apply(config(d, b2, a))
        assert changes == {"started": ["d"], "stopped": ["c"], "restarted": ["b"],
                           "unchanged": ["a"]}
        await trio.sleep(5)
        # the list object the snapshot publisher holds follows the running set, in config order
        assert sup.statuses is statuses_list
        assert [s.name for s in sup.statuses] == ["d", "b", "a"]
        assert sup.statuses[2] is status_a and sup.statuses[1] is status_b
        assert (runner.count("start", "a"), runner.count("end", "a")) == (1, 0)
        assert (runner.count("start", "c"), runner.count("end", "c")) == (1, 1)
        assert runner.count("start", "d") == 1
        # b: the old run ended before the new one started, with the new config
        b_events = [(what, cfg.window) for _, what, n, cfg in runner.events if n == "b"]
        assert b_events == [("start", 6), ("end", 6), ("start", 3)]
        assert status_b.state == "playing" and status_a.state == "playing"
        assert sup.stream_config("b") == b2 and sup.stream_config("c") is None

        # applying the same config again touches nothing
        assert sup.apply(config(d, b2, a))["unchanged"] == ["d", "b", "a"]
        await trio.sleep(5)
        assert len(runner.events) == 7
        nursery.cancel_scope.cancel()
    assert runner.count("end", "a") == 1  # Cancelled reached every run


async def test_disabled_streams_do_not_run(autojump_clock: trio.testing.MockClock) -> None:
    runner = FakeRunner()
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, Path("/hls"), runner)
        sup.apply(config(stream("a"), stream("b", enabled=False)))
        await trio.sleep(1)
        assert [s.name for s in sup.statuses] == ["a"] and runner.count("start", "b") == 0
        sup.apply(config(stream("a"), stream("b")))
        await trio.sleep(1)
        assert [s.name for s in sup.statuses] == ["a", "b"] and runner.count("start", "b") == 1
        sup.apply(config(stream("a", enabled=False), stream("b")))
        await trio.sleep(1)
        assert [s.name for s in sup.statuses] == ["b"] and runner.count("end", "a") == 1
        nursery.cancel_scope.cancel()


async def test_failing_stream_restarts_with_growing_backoff_and_others_keep_running(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    runner = FakeRunner(failing={"bad": 0.5})
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, Path("/hls"), runner)
        sup.apply(config(stream("good"), stream("bad")))
        await trio.sleep(60)
        good, bad = sup.statuses
        starts = runner.starts("bad")
        gaps = [b - a - 0.5 for a, b in zip(starts, starts[1:], strict=False)]
        assert len(gaps) >= 4
        # 1, 2, 4, 8 ... s, each +-20 %: always growing, never a busy loop
        assert all(later > earlier for earlier, later in zip(gaps, gaps[1:], strict=False)), gaps
        assert 0.8 <= gaps[0] <= 1.2 and all(g <= 30 * 1.2 for g in gaps)
        assert runner.count("start", "good") == 1 and runner.count("end", "good") == 0
        assert good.state == "playing" and good.reconnects == 0
        # between runs it is retrying, with one reconnect per failed run so far
        assert (bad.state, bad.reconnects) in (("retrying", len(starts)),
                                               ("playing", len(starts) - 1))
        assert "boom in bad" in (bad.last_error or "") and "pw@" not in (bad.last_error or "")
        nursery.cancel_scope.cancel()
    lines = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert lines and all(line.startswith("stream=bad ") for line in lines)
    assert not any("pw@" in r.getMessage() for r in caplog.records)


async def test_backoff_resets_after_a_long_healthy_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runner = FakeRunner(failing={"flaky": 100.0})  # fails only after running 100 s
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, Path("/hls"), runner, healthy_after=60.0)
        sup.apply(config(stream("flaky")))
        await trio.sleep(420)
        nursery.cancel_scope.cancel()
    starts = runner.starts("flaky")
    gaps = [b - a - 100.0 for a, b in zip(starts, starts[1:], strict=False)]
    assert len(gaps) >= 3 and all(0.8 <= g <= 1.2 for g in gaps), gaps


async def test_exception_groups_from_a_stream_nursery_are_contained(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs = 0

    async def runner(config: StreamConfig, status: StreamStatus, hls_dir: Path) -> None:
        nonlocal runs
        runs += 1

        async def fail() -> None:
            raise RelayError("source exploded")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(fail)

    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, Path("/hls"), runner)
        sup.apply(config(stream("x")))
        await trio.sleep(10)
        assert runs >= 3 and sup.statuses[0].last_error == "source exploded"
        nursery.cancel_scope.cancel()


async def test_an_error_while_stopping_stays_in_its_stream(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    async def runner(config: StreamConfig, status: StreamStatus, hls_dir: Path) -> None:
        try:
            await trio.sleep_forever()
        finally:
            if config.name == "messy":
                raise OSError("disk full while closing")

    other = FakeRunner()

    async def both(config: StreamConfig, status: StreamStatus, hls_dir: Path) -> None:
        await (runner if config.name == "messy" else other)(config, status, hls_dir)

    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, Path("/hls"), both)
        sup.apply(config(stream("messy"), stream("calm")))
        await trio.sleep(1)
        sup.apply(config(stream("calm")))
        await trio.sleep(1)
        assert other.count("end", "calm") == 0
        nursery.cancel_scope.cancel()
    assert any("stream=messy failed while stopping" in r.getMessage() for r in caplog.records)


async def test_reload_keeps_running_on_a_bad_file(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "relay.toml"
    path.write_text("[streams.a]\nsource = 'rtsp://a.cam/x'\n"
                    "[streams.b]\nsource = 'rtsp://b.cam/x'\n")
    runner = FakeRunner()
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, Path("/hls"), runner)
        reload(sup, path, LogOutput())
        await trio.sleep(1)
        assert [s.name for s in sup.statuses] == ["a", "b"]

        path.write_text("[streams.a]\nsource = 'rtsp://a.cam/x'\nwindow = 'x'\n")
        caplog.clear()
        with caplog.at_level(logging.INFO):
            reload(sup, path, LogOutput())
        await trio.sleep(1)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert "reload failed, still running the previous config" in errors[0]
        assert "streams.a.window: expected an integer" in errors[0] and str(path) in errors[0]
        assert [s.name for s in sup.statuses] == ["a", "b"] and len(runner.events) == 2

        path.write_text("[streams.a]\nsource = 'rtsp://a.cam/x'\n"
                        "[streams.c]\nsource = 'rtsp://c.cam/x'\n")
        caplog.clear()
        with caplog.at_level(logging.INFO):
            reload(sup, path, LogOutput())
        await trio.sleep(1)
        assert [s.name for s in sup.statuses] == ["a", "c"]
        assert runner.count("end", "b") == 1 and runner.count("start", "a") == 1
        assert any("started c" in r.getMessage() and "stopped b" in r.getMessage()
                   for r in caplog.records)
        nursery.cancel_scope.cancel()


async def test_a_full_runtime_disk_never_stops_the_status_snapshot(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="relay.files")
    errors = DiskErrors("relay")

    async def wait_until(condition: Callable[[], bool]) -> None:
        while not condition():
            await trio.sleep(0.1)  # the writes run in threads, on the real clock

    with small_disk(tmp_path / "run", "1m") as disk:
        path = disk.path / "status.json"
        async with trio.open_nursery() as nursery:
            sup = Supervisor(nursery, Path("/hls"), FakeRunner())
            sup.apply(config(stream("a")))
            nursery.start_soon(publish_status, sup, path, Redactor(), errors)
            await wait_until(path.exists)
            last_good = path.read_bytes()
            disk.fill()
            await wait_until(lambda: errors.count >= 5)
            assert path.read_bytes() == last_good  # the web process keeps serving this one
            assert sorted(p.name for p in disk.path.iterdir()) == [FILLER, "status.json"]
            disk.free()
            await wait_until(lambda: path.read_bytes() != last_good)
            recovered = json.loads(path.read_bytes())
            nursery.cancel_scope.cancel()
    assert recovered["disk_errors"] == errors.count >= 5
    assert recovered["disk_error"] == "status snapshot status.json: No space left on device " \
        "(ENOSPC)"
    assert (recovered["streams"][0]["disk_errors"], recovered["streams"][0]["disk_error"]) == (
        0, None)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"relay disk: status snapshot {disk.path}/status.json failed: "
                               "No space left on device (ENOSPC)")
    assert lines[1] == f"relay disk: writes work again ({errors.count} failed during the outage)"


async def test_relay_camera_serves_the_test_camera_over_rtsp() -> None:
    """``relay camera``: DESCRIBE on /demo answers with the camera's H.264 and AAC tracks."""
    from relay.app import serve_camera

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_camera, ("127.0.0.1", 0))
            sock = await trio.open_tcp_stream("127.0.0.1", port)
            async with sock:
                await sock.send_all(f"DESCRIBE rtsp://127.0.0.1:{port}/demo RTSP/1.0\r\n"
                                    "CSeq: 1\r\nAccept: application/sdp\r\n\r\n".encode())
                reply = b""
                while b"a=control:track1" not in reply:
                    chunk = await sock.receive_some(65536)
                    assert chunk, reply
                    reply += chunk
            assert reply.startswith(b"RTSP/1.0 200")
            assert b"H264/90000" in reply and b"MPEG4-GENERIC" in reply
            nursery.cancel_scope.cancel()
