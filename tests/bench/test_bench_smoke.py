"""Smoke run of the side-by-side benchmark (issue 6): N=2, a few seconds, all three relays.

Not a timed test: it checks that the command still runs end to end against the real peers
(GStreamer's RTSP server, nginx-rtmp, FFmpeg, gst-launch) and that its table holds sane numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.bench import relay_warnings

REPO = Path(__file__).resolve().parents[2]


def test_bench_command_produces_a_sane_table(tmp_path: Path) -> None:
    raw = tmp_path / "results.json"
    svg = tmp_path / "cpu.svg"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--n", "2", "--seconds", "3", "--warmup", "1",
         "--sample", "1", "--clip-seconds", "45", "--json", str(raw), "--svg", str(svg)],
        cwd=REPO, capture_output=True, text=True, timeout=170, check=False,
    )
    assert done.returncode == 0, f"bench failed:\n{done.stdout}\n{done.stderr}"
    table = [line for line in done.stdout.splitlines() if line.startswith("| 2 |")]
    assert [row.split("|")[2].strip() for row in table] == ["relay", "ffmpeg", "gstreamer"]
    results = json.loads(raw.read_text())
    relay_warnings.pass_on(results)
    assert {r["relay"] for r in results} == {"relay", "ffmpeg", "gstreamer"}
    for r in results:
        who = r["relay"]
        assert r["error"] is None, (who, r["error"])
        assert r["sent"] > 0, who
        assert len(r["rtmp_delivered"]) == 2 and min(r["rtmp_delivered"]) > 0, who
        assert len(r["hls_delivered"]) == 2, who
        # The relay must deliver every stream. FFmpeg's tee to HLS now and then leaves a
        # stream's short-run window unlisted (seen in full runs too, docs/benchmarks.md; both
        # streams once, on a busy machine): for FFmpeg the smoke run does not ask it.
        if who != "ffmpeg":
            delivered = min(r["hls_delivered"]) if who == "relay" else max(r["hls_delivered"])
            assert delivered > 0, (who, r["hls_delivered"])
        assert max(r["rtmp_delivered"] + r["hls_delivered"]) <= r["sent"], who
        assert 0 < r["cpu"] < 2, who  # CPU s per stream per media-second, on a 2-core machine
        assert 5 < r["rss_mb"] < 4096, who
        assert r["rtmp_ms"]["n"] > 0, f"{who}: no RTMP arrival matched a departure"
        assert -5 < r["rtmp_ms"]["p50"] <= r["rtmp_ms"]["max"] < 10_000, who
    assert svg.read_text().startswith("<svg")
