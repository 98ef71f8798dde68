"""``relay demo`` with its HLS folder, then its runtime folder (TMPDIR), on a tmpfs that fills up.

The relay keeps running through both outages: each is one log line (and one when writes work
again), counted in /api and /metrics, with no temp file left behind; the web process serves the
last snapshot meanwhile, and once space returns the playlist moves on, valid, with a
discontinuity where the segments that did not fit would have been.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import m3u8
import pytest

from tests.interop.gstserver import free_port
from tests.interop.hlscheck import check_playlist
from tests.interop.relayproc import RelayProcess, http_get
from tests.smalldisk import SmallDisk, small_disk

pytestmark = pytest.mark.interop


def temp_files(disk: SmallDisk) -> list[Path]:
    return [p for p in disk.path.rglob("*") if p.name.endswith(".tmp")]


def metric(base: str, name: str) -> float:
    body = http_get(f"{base}/metrics")[1].decode()
    return float(re.search(rf"^{re.escape(name)} (\S+)$", body, re.M)[1])  # type: ignore[index]


def test_full_disks_never_stop_the_relay(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with small_disk(tmp_path / "hls", "64m") as hls, small_disk(tmp_path / "run") as run:
        env = dict(os.environ, TMPDIR=str(run.path))
        with RelayProcess(["demo", "--http", f"127.0.0.1:{port}", "--hls-dir", str(hls.path),
                           "--segment-seconds", "1"], port, tmp_path, env=env) as relay:
            index = hls.path / "demo" / "index.m3u8"

            def listed() -> m3u8.M3U8:
                return m3u8.loads(index.read_text())

            relay.wait_for(lambda: len(listed().segments) >= 2, 40, "the first segments")
            relay.wait_for(lambda: relay.api()[0]["state"] == "playing", 20, "the API")

            hls.fill()
            relay.wait_for(lambda: relay.api()[0]["disk_errors"] >= 6, 30,
                           "failed HLS writes in /api")
            stream = relay.api()[0]
            assert "No space left on device (ENOSPC)" in stream["disk_error"]
            assert temp_files(hls) == []
            before = listed()
            hls.free()
            relay.wait_for(lambda: any(s.discontinuity for s in listed().segments), 30,
                           "segments after the outage")
            after = check_playlist(index, 1)
            assert after.media_sequence >= before.media_sequence
            gap = next(i for i, s in enumerate(after.segments) if s.discontinuity)
            assert int(after.segments[gap].uri[3:8]) > int(before.segments[-1].uri[3:8]) + 1
            assert 'stream=demo msg="disk: writes work again' in relay.log()

            run.fill()
            relay.wait_for(lambda: "relay disk: status snapshot" in relay.log(), 20,
                           "the status snapshot's outage line")
            relay.wait_for(lambda: metric(base, "relay_status_age_seconds") >= 3, 20,
                           "a few failed snapshots")
            status, _ = http_get(f"{base}/api/streams")
            assert status == 200  # the last snapshot, still served
            assert temp_files(run) == []
            run.free()
            relay.wait_for(lambda: "relay disk: writes work again" in relay.log(), 20,
                           "the status snapshot's recovery")
            relay.wait_for(lambda: metric(base, "relay_status_disk_errors_total") >= 3, 20,
                           "the snapshot's failures in /metrics")
            assert metric(base, 'relay_stream_disk_errors_total{stream="demo"}') >= 6
            errors = relay.api()[0]["disk_errors"]
            assert relay.stop() == 0
            log = relay.log()
    outages = re.findall(r"^.*logger=relay.files .*disk: .* failed: .*$", log, re.M)
    recoveries = re.findall(r"^.*logger=relay.files .*disk: writes work again.*$", log, re.M)
    # HLS full: one outage; runtime full: the snapshot's, and perhaps the thumbnail's
    assert 2 <= len(outages) <= 3 < errors, log
    assert len(recoveries) == len(outages), log
    assert "Traceback" not in log
