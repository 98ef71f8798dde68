"""Memory of one ``relay pull``, its media process and its web process apart; and what an import
costs. The side-by-side run (bench/run.py) gives only the sum of the peaks.

    .venv/bin/python -m bench.rss_split [--seconds 12] [--transport tcp]
    .venv/bin/python -m bench.rss_split --imports av trio     # RSS of a fresh interpreter after

Per process: RSS and PSS from /proc/PID/smaps_rollup (PSS counts a page shared by N processes as
1/N of it), USS (its private pages: what ending it would free) and VmHWM (the peak, what
bench/run.py sums).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import measure as m
from bench.clip import SECONDS as CLIP_SECONDS
from bench.clip import ensure_clip
from bench.peers import free_port, start_nginx, start_source, stop, wait_port

_IMPORT_RSS = """import sys, importlib
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
for name in sys.argv[1:]:
    importlib.import_module(name)
print(rss() / 1024)
"""


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS, USS and VmHWM of ``pid``, in MiB."""
    kib: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                kib[parts[0].rstrip(":")] = int(parts[1])
    return {"rss": kib["Rss"] / 1024, "pss": kib["Pss"] / 1024,
            "uss": (kib["Private_Clean"] + kib["Private_Dirty"]) / 1024,
            "hwm": m.peak_rss_mb([pid])}


def import_rss(modules: list[str]) -> float:
    """RSS in MiB of a fresh interpreter (this one's executable) after importing ``modules``."""
    out = subprocess.run([sys.executable, "-c", _IMPORT_RSS, *modules], capture_output=True,
                         text=True, check=True)
    return float(out.stdout)


def pull_split(seconds: float, transport: str, clip_seconds: int = CLIP_SECONDS
               ) -> list[tuple[str, dict[str, float]]]:
    """Run one ``relay pull`` against the bench's source and nginx for ``seconds`` after its web
    port opens; each of its processes' memory, named by its command line."""
    work = Path(tempfile.mkdtemp(prefix="rss-split-"))
    hls = work / "hls"
    hls.mkdir()
    source = start_source(ensure_clip(clip_seconds), work)
    nginx = start_nginx(work, hls)
    http = free_port()
    with open(work / "pull.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "relay", "pull", source.url, "--name", "cam",
             "--rtmp", nginx.rtmp_url("cam"), "--hls-dir", str(hls), "--segment-seconds", "2",
             "--http", f"127.0.0.1:{http}", "--transport", transport],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        wait_port(http, proc, "relay pull", work / "pull.log", timeout=30)
        time.sleep(seconds)
        rows = []
        for pid in m.descendants(proc.pid):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            rows.append(("web" if b"web" in argv[1:3] else "media", memory(pid)))
        return rows
    finally:
        stop(proc, signal.SIGINT, timeout=20)
        stop(source.proc)
        stop(nginx.proc, signal.SIGQUIT)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--transport", choices=("tcp", "udp"), default="tcp")
    parser.add_argument("--imports", nargs="*", help="only measure these imports")
    parser.add_argument("--clip-seconds", type=int, default=CLIP_SECONDS,
                        help="length of the looped source clip (encoded once, cached)")
    args = parser.parse_args()
    if args.imports is not None:
        print(f"{' '.join(args.imports) or '(nothing)'}: {import_rss(args.imports):.1f} MiB RSS")
        return
    print("| process | RSS MiB | PSS MiB | USS MiB | VmHWM MiB |\n|---|---:|---:|---:|---:|")
    for name, mib in pull_split(args.seconds, args.transport, args.clip_seconds):
        print(f"| {name} | {mib['rss']:.1f} | {mib['pss']:.1f} | {mib['uss']:.1f} | "
              f"{mib['hwm']:.1f} |")


if __name__ == "__main__":
    main()
