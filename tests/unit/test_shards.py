"""Stream assignment to shards (machines) and workers (processes): stable, balanced, disjoint."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import trio

from relay.app import Supervisor
from relay.cli import main
from relay.errors import ConfigError
from relay.shards import MAX_SHARDS, Assignment, check_workers, parse_shard
from tests.unit.test_app import FakeRunner, config, stream

NAMES = [f"cam{i}" for i in range(2000)] + [f"site-{i:03d}_door" for i in range(1000)]


def test_the_assignment_is_stable_across_processes() -> None:
    """CRC-32 of the name, not Python's salted hash(): another process, another hash seed,
    another machine agree."""
    here = [Assignment(shards=3, workers=4).place(n) for n in NAMES[:50]]
    code = ("from relay.shards import Assignment; import sys; "
            "print([Assignment(shards=3, workers=4).place(f'cam{i}') for i in range(50)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONHASHSEED="12345"),
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == str(here)
    # pinned (crc32: cam1 3226415926, lobby 3437516279, garage 2670092555): a changed rule
    # would move the cameras of a running site to other processes
    assert [Assignment(shards=4, workers=2).place(n) for n in ("cam1", "lobby", "garage")] == [
        (2, 1), (3, 1), (3, 0)]


@pytest.mark.parametrize(("shards", "workers"), [(1, 2), (1, 3), (1, 8), (2, 1), (4, 1),
                                                 (2, 2), (3, 4), (4, 8)])
def test_every_stream_has_exactly_one_place_and_places_are_balanced(shards: int,
                                                                    workers: int) -> None:
    cells = [Assignment(s, shards, w, workers) for s in range(shards) for w in range(workers)]
    owners = Counter()
    for name in NAMES:
        owning = [cell for cell in cells if cell.owns(name)]
        assert len(owning) == 1, name
        assert owning[0].place(name) == (owning[0].shard, owning[0].worker)
        owners[owning[0]] += 1
    # the worker hash is independent of the shard hash: every cell gets its share (+-20 %)
    fair = len(NAMES) / len(cells)
    assert len(owners) == len(cells)
    assert all(0.8 * fair <= count <= 1.2 * fair for count in owners.values()), owners


def test_select_keeps_the_owned_streams_in_config_order() -> None:
    full = config(*(stream(n) for n in NAMES[:40]))
    parts = [Assignment(worker=w, workers=3).select(full) for w in range(3)]
    assert sorted(s.name for p in parts for s in p.streams) == sorted(NAMES[:40])
    for part in parts:
        positions = [NAMES.index(s.name) for s in part.streams]
        assert positions == sorted(positions)


@pytest.mark.parametrize(("text", "expected"), [("0/1", (0, 1)), ("3/4", (3, 4)),
                                                ("relay-2/4", (2, 4)), ("my-relay-0/2", (0, 2))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize(("text", "error"), [
    ("4/4", "--shard: I must be 0-3 for N=4, got 4"),
    ("0/0", f"--shard: N must be 1-{MAX_SHARDS}, got 0"),
    ("1", "--shard: expected I/N"), ("-1/4", "--shard: expected I/N"),
    ("relay/4", "--shard: expected I/N"), ("1/4\n", "--shard: expected I/N"),
])
def test_bad_shard_is_one_line_naming_the_flag(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_shard(text)
    assert str(info.value).startswith(error) and "\n" not in str(info.value)


def test_workers_range() -> None:
    assert check_workers(1) == 1
    for bad in (0, -2, 257):
        with pytest.raises(ConfigError, match="--workers: must be 1-256"):
            check_workers(bad)


async def test_supervisor_runs_only_its_streams_and_keeps_config_positions(
        autojump_clock: trio.testing.MockClock) -> None:
    mine = Assignment(worker=1, workers=2)
    names = NAMES[:12]
    runner = FakeRunner()
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, Path("/hls"), runner, owns=mine.owns)
        changes = sup.apply(config(*(stream(n) for n in names)))
        await trio.sleep(1)
        owned = [n for n in names if mine.owns(n)]
        assert 0 < len(owned) < len(names)
        assert changes["started"] == owned
        assert [s.name for s in sup.statuses] == owned
        assert [s.position for s in sup.statuses] == [names.index(n) for n in owned]
        assert {n for _, what, n, _ in runner.events if what == "start"} == set(owned)
        # a reload that adds one stream in front moves every position, starts only ours
        changes = sup.apply(config(stream("zz-new"), *(stream(n) for n in names)))
        assert changes["started"] == (["zz-new"] if mine.owns("zz-new") else [])
        assert [s.position for s in sup.statuses if s.name != "zz-new"] == [
            names.index(n) + 1 for n in owned]
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(("flags", "error"), [
    (["--workers", "0"], "relay: --workers: must be 1-256, got 0"),
    (["--shard", "4/4"], "relay: --shard: I must be 0-3 for N=4, got 4"),
    (["--worker", "0"], "relay: --worker is started by relay run --workers"),
])
def test_bad_scale_flags_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             flags: list[str], error: str) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(f'[server]\nhls_dir = "{tmp_path}/hls"\n[streams.a]\nsource = "rtsp://h/a"\n')
    assert main(["run", "--config", str(path), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(error) and err.count("\n") == 1


def test_check_prints_each_streams_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    path = tmp_path / "relay.toml"
    path.write_text("[streams.cam1]\nsource = \"rtsp://h/a\"\n"
                    "[streams.lobby]\nsource = \"rtsp://h/b\"\n")
    assert main(["run", "--config", str(path), "--check", "--workers", "2",
                 "--shard", "relay-2/4"]) == 0
    out = capsys.readouterr().out
    assert "stream cam1: rtsp://h/a -> hls (shard 2/4, worker 1/2)" in out
    assert "stream lobby: rtsp://h/b -> hls (shard 3/4, worker 1/2)" in out
