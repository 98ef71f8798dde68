"""``relay run --workers 2`` with four GStreamer cameras: one web process serves every worker's
streams; SIGHUP reaches the worker that owns a new stream; a worker killed with SIGKILL comes
back with its streams while the other worker's streams never notice; SIGTERM stops all."""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import suppress
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from relay.shards import Assignment
from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.relayproc import RelayProcess, http_get
from tests.interop.test_run_config import _config, _playlist

WORKERS = 2


def _names(worker: int, count: int, prefix: str) -> list[str]:
    """The first ``count`` names ``prefix``N that the hash gives to ``worker`` of 2."""
    owner = Assignment(worker=worker, workers=WORKERS)
    return [n for n in (f"{prefix}{i}" for i in range(100)) if owner.owns(n)][:count]


def _workers(parent: int) -> dict[int, tuple[int, Path]]:
    """Worker index -> (pid, its runtime folder), from the parent's children's command lines."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"--worker" in argv:
            index = int(argv[argv.index(b"--worker") + 1])
            runtime = Path(os.fsdecode(argv[argv.index(b"--runtime") + 1]))
            found[index] = (int(proc.name), runtime / f"worker-{index}")
    return found


def _snapshot_names(folder: Path) -> list[str]:
    return [s["name"] for s in json.loads((folder / "status.json").read_bytes())["streams"]]


def _playing_in_metrics(relay: RelayProcess) -> set[str]:
    body = http_get(f"http://127.0.0.1:{relay.http_port}/metrics")[1].decode()
    return {sample.labels["stream"] for family in text_string_to_metric_families(body)
            if family.name == "relay_stream_state" for sample in family.samples
            if sample.labels["state"] == "playing" and sample.value == 1}


def test_two_workers_one_web_reload_and_a_killed_worker(tmp_path: Path) -> None:
    hls = tmp_path / "hls"
    http = free_port()
    config = tmp_path / "relay.toml"
    first, second = _names(0, 2, "front"), _names(1, 2, "back")
    order = [first[0], second[0], first[1], second[1]]  # config order interleaves the workers
    # one encoder per worker: a client joining a GStreamer shared media re-opens its encoder,
    # so worker 0's streams coming back would disturb worker 1's had they shared one
    with start_gst_server({"/cam0": "h264aac", "/cam1": "h264aac"}) as port:
        def source(name: str) -> str:
            return f"rtsp://127.0.0.1:{port}/cam{0 if name in first else 1}"

        config.write_text(_config(http, hls, {n: source(n) for n in order}))
        with RelayProcess(["run", "--config", str(config), "--workers", str(WORKERS)], http,
                          tmp_path) as relay:
            def all_playing(names: list[str]) -> bool:
                states = {s["name"]: s["state"] for s in relay.api()}
                return (all(states.get(n) == "playing" for n in names)
                        and all(_playlist(hls, n).count("#EXTINF") >= 1 for n in names))

            relay.wait_for(lambda: all_playing(order), 60, "four streams playing across workers")
            assert [s["name"] for s in relay.api()] == order
            relay.wait_for(lambda: _playing_in_metrics(relay) == set(order), 10,
                           "all four playing in /metrics")
            assert http_get(f"http://127.0.0.1:{http}/healthz")[0] == 200
            workers = _workers(relay.process.pid)
            assert sorted(workers) == [0, 1]
            assert sorted(_snapshot_names(workers[0][1])) == sorted(first)
            assert sorted(_snapshot_names(workers[1][1])) == sorted(second)

            # SIGHUP: a stream of worker 1 added; worker 1 starts it, worker 0 is not touched
            added = _names(1, 3, "back")[2]
            config.write_text(_config(http, hls, {n: source(n) for n in [*order, added]}))
            relay.process.send_signal(signal.SIGHUP)
            relay.wait_for(lambda: all_playing([added]), 40, "the added stream playing")
            assert added in _snapshot_names(workers[1][1])
            assert added not in _snapshot_names(workers[0][1])
            survivors = [*second, added]
            before = {s["name"]: s for s in relay.api()}

            # SIGKILL worker 0: its streams come back; worker 1's never change
            os.kill(workers[0][0], signal.SIGKILL)
            seen_states: set[str] = set()

            def back() -> bool:
                streams = {s["name"]: s for s in relay.api()}
                seen_states.update(streams[n]["state"] for n in survivors)
                for name in survivors:
                    assert streams[name]["reconnects"] == before[name]["reconnects"], name
                now = _workers(relay.process.pid)
                return (now.get(0, (workers[0][0],))[0] != workers[0][0]
                        and all(streams.get(n, {}).get("state") == "playing" for n in first))

            relay.wait_for(back, 60, "the killed worker's streams back")
            assert seen_states == {"playing"}
            assert _workers(relay.process.pid)[1][0] == workers[1][0]  # never restarted
            assert [s["name"] for s in relay.api()] == [*order, added]
            for name in survivors:
                playlist = _playlist(hls, name)
                assert "#EXT-X-DISCONTINUITY" not in playlist and "#EXT-X-ENDLIST" not in playlist
            lines = [json.loads(line) for line in relay.log().splitlines() if line[:1] == "{"]
            assert any(line.get("worker") == "0" and "killed by SIGKILL" in line["msg"]
                       for line in lines), relay.log()

            # a file that no longer loads: one line from the parent, no worker disturbed
            config.write_text(config.read_text() + "\n[streams.bad]\nsource = 7\n")
            relay.process.send_signal(signal.SIGHUP)
            relay.wait_for(lambda: "reload failed" in relay.log(), 10, "the reload error")
            assert relay.log().count("reload failed") == 1
            assert all_playing([*order, added])

            pids = [pid for pid, _ in _workers(relay.process.pid).values()]
            relay.process.send_signal(signal.SIGTERM)
            assert relay.process.wait(30) == 0
            for pid in pids:
                assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
                    f"/proc/{pid}/status").read_text()
    for name in [*order, added]:
        assert "#EXT-X-ENDLIST" in _playlist(hls, name), name  # every worker closed cleanly


def test_workers_never_outlive_a_killed_parent(tmp_path: Path) -> None:
    """SIGKILL leaves no handler to stop the workers: the pipe they hold tells them."""
    http = free_port()
    config = tmp_path / "relay.toml"
    nowhere = f"rtsp://127.0.0.1:{free_port()}/cam"
    config.write_text(_config(http, tmp_path / "hls", {"a": nowhere, "b": nowhere}))
    with RelayProcess(["run", "--config", str(config), "--workers", str(WORKERS)], http,
                      tmp_path) as relay:
        relay.wait_for(lambda: len(_workers(relay.process.pid)) == WORKERS
                       and all((folder / "status.json").exists()
                               for _, folder in _workers(relay.process.pid).values()),
                       30, "both workers up")
        pids = [pid for pid, _ in _workers(relay.process.pid).values()]
        relay.process.kill()
        relay.process.wait()
        for pid in pids:
            status = Path(f"/proc/{pid}/status")
            with suppress(FileNotFoundError):
                for _ in range(100):
                    if "zombie" in status.read_text():
                        break
                    time.sleep(0.1)
                else:
                    os.kill(pid, signal.SIGKILL)
                    raise AssertionError(f"worker {pid} outlived its parent:\n{relay.log()}")
        assert relay.log().count("the relay that started it is gone; stopping") == WORKERS
