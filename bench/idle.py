"""What one unwatched camera costs: ``relay pull`` (its media and web processes), nobody watching.

    .venv/bin/python -m bench.idle [--seconds 60] [--warmup 10] [--transport tcp] [--repo DIR]

The clip (bench/clip.py, 720p25 H.264 + AAC) is served by the GStreamer RTSP source
(bench/gst_source.py); ``relay pull`` writes HLS (2-second segments) and no RTMP, and no HTTP
request is made during the window. After the warm-up, the user+system CPU of the relay's media
process and of its web process are read from /proc over ``--seconds`` and printed per
media-second, as one JSON line. ``--repo`` runs another checkout of the relay (a before/after
comparison with this machine's venv).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import measure as m
from bench.clip import ensure_clip
from bench.peers import free_port, start_source, stop, wait_port

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--transport", default="tcp", choices=("tcp", "udp", "auto"))
    parser.add_argument("--repo", type=Path, default=REPO, help="the relay checkout to run")
    args = parser.parse_args(argv)
    clip = ensure_clip()
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        work = Path(tmp)
        source = start_source(clip, work)
        http = free_port()
        log = work / "relay.log"
        try:
            with open(log, "wb") as out:
                relay = subprocess.Popen(
                    [sys.executable, "-m", "relay", "pull", source.url, "--name", "cam",
                     "--hls-dir", str(work / "hls"), "--segment-seconds", "2",
                     "--http", f"127.0.0.1:{http}", "--transport", args.transport],
                    cwd=args.repo, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                    env=dict(os.environ, PYTHONPATH=str(args.repo)))
            try:
                wait_port(http, relay, "relay", log, timeout=30)
                time.sleep(args.warmup)
                pids = m.descendants(relay.pid)
                web = [p for p in pids if p != relay.pid]
                before = m.cpu_seconds([relay.pid]), m.cpu_seconds(web)
                start = time.monotonic()
                time.sleep(args.seconds)
                after = m.cpu_seconds([relay.pid]), m.cpu_seconds(web)
                elapsed = time.monotonic() - start
            finally:
                stop(relay)
        finally:
            stop(source.proc)
    media, web_cpu = ((a - b) / elapsed for a, b in zip(after, before, strict=True))
    print(json.dumps({"repo": str(args.repo), "transport": args.transport,
                      "seconds": round(elapsed, 1), "media_cpu": round(media, 4),
                      "web_cpu": round(web_cpu, 4), "total_cpu": round(media + web_cpu, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
