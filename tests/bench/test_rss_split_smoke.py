"""Smoke run of bench/rss_split.py: one real ``relay pull`` (source, nginx), its media and web
processes measured apart; and an import's cost. Not timed, no bound on the numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "bench.rss_split", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=True).stdout


def test_media_and_web_measured_apart() -> None:
    # the smoke tests' short clip (bench.run's smoke encodes the same), not the 300 s one
    rows = [line.split("|")[1:-1]
            for line in run("--seconds", "1", "--clip-seconds", "45").splitlines()[2:]]
    assert sorted(row[0].strip() for row in rows) == ["media", "web"]
    for _, rss, pss, uss, hwm in rows:
        assert 0 < float(uss) <= float(pss) <= float(rss) <= float(hwm), rows


def test_an_import_costs_what_the_interpreter_holds_after_it() -> None:
    bare = float(run("--imports").split(": ")[1].split()[0])
    with_av = float(run("--imports", "av").split(": ")[1].split()[0])
    assert bare < with_av
