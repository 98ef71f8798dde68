"""Smoke run of bench/glass.py: the page's LL-HLS in Chromium, the demo camera's burned-in clock
read back from the shown picture. Prints the glass-to-glass delay (a figure, not an assertion);
checks only that the clock was read (all but one sample in twenty) and that the page played."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_glass_to_glass_of_the_page_is_read_from_the_picture() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.glass", "--modes", "ll-page", "--seconds", "6",
         "--warmup", "3"], cwd=REPO, capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, f"bench failed:\n{done.stdout}\n{done.stderr}"
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    print(f"\nLL-HLS glass-to-glass in Chromium (median/p95 s): {result['glass']}, hls.js "
          f"latency {result['hls_latency']} against target {result['target_latency']}, "
          f"stalls {result['stalls']} (+{result['seek_waits']} after the page's own seek)")
    assert result["samples"] >= 10 and result["unread"] <= result["samples"] // 20, result
    assert result["errors"] == [], result
