"""bench.merged_reads runs and prints a cost for each read design (no timed assertion)."""

from __future__ import annotations

import subprocess
import sys


def test_merged_reads_prints_each_design() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.merged_reads", "--n", "2", "--seconds", "1"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    costs = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()[1:]
             if "CPU s per connection" in line}
    assert set(costs) == {"per-packet", "per-session", "ticker"}
    assert all(cost > 0 for cost in costs.values())
