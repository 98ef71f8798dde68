"""Smoke run of the side-by-side benchmark's one-camera rows (issue 12): ``relay run`` with a
given ``--workers``, ``relay pull`` over UDP (its web process counted apart), FFmpeg beside them.

Not a timed test: it checks that each row runs end to end against the real peers and that the
relay's rows count their web process and are given as ratios to FFmpeg's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.bench import relay_warnings

REPO = Path(__file__).resolve().parents[2]


def test_pull_and_workers_rows_beside_ffmpeg(tmp_path: Path) -> None:
    raw = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--n", "1", "--relays", "relay,pull,ffmpeg",
         "--workers", "1", "--transport", "udp", "--seconds", "3", "--warmup", "1",
         "--sample", "1", "--clip-seconds", "45", "--json", str(raw)],
        cwd=REPO, capture_output=True, text=True, timeout=170, check=False,
    )
    assert done.returncode == 0, f"bench failed:\n{done.stdout}\n{done.stderr}"
    rows = [line.split("|") for line in done.stdout.splitlines() if line.startswith("| 1 |")]
    assert [row[2].strip() for row in rows] == ["relay w1", "pull udp", "ffmpeg"]
    assert all("x)" in row[3] for row in rows[:2]), rows  # CPU as a ratio to FFmpeg's
    results = {r["relay"]: r for r in json.loads(raw.read_text())}
    relay_warnings.pass_on(results.values())
    for who in ("relay w1", "pull udp"):
        r = results[who]
        assert r["error"] is None, (who, r["error"])
        assert r["web_cpu"] is not None and 0 <= r["web_cpu"] <= r["cpu"], who
        assert r["rtmp_delivered"] and min(r["rtmp_delivered"]) > 0, who
        assert r["rtmp_ms"]["n"] > 0, who
    assert results["pull udp"]["hls_delivered"] == []  # a pull keeps a short window: not counted
    assert results["ffmpeg"]["web_cpu"] is None
