"""The benchmark clip: 720p25 H.264 (~2 Mbit/s, 1 s GOP, no B-frames) + 48 kHz stereo AAC.

Encoded once with ffmpeg into ``bench/.cache/clip.mkv`` (git-ignored) and reused: the sources then
only read and packetize it. Every frame is distinct for the clip's whole length (a running
counter and noise), so a frame's last bytes identify it across the whole run, which is how
departures and arrivals are matched. No B-frames: FFmpeg 5.1 drops RTSP packets without DTS.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
CLIP = CACHE / "clip.mkv"
SECONDS = 300
"""A run (warm-up + window + drain) must stay shorter than this: the source does not loop."""


def ensure_clip(seconds: int = SECONDS) -> Path:
    """Return the clip's path, encoding it first if it is missing (about 0.4 s per second of
    clip on 2 cores, once). A clip of another length (the smoke test's) has a name of its own."""
    clip = CLIP if seconds == SECONDS else CACHE / f"clip-{seconds}s.mkv"
    if clip.exists():
        return clip
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = clip.with_suffix(".part.mkv")
    # progress on stderr: stdout carries the benchmarks' tables
    print(f"bench: encoding the {seconds} s benchmark clip once into {clip} ...",
          file=sys.stderr, flush=True)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25,noise=alls=12:allf=t",
         "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
         "-t", str(seconds), "-map", "0:v", "-map", "1:a",
         "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main", "-bf", "0",
         "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
         "-b:v", "2M", "-maxrate", "2.4M", "-bufsize", "4M", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "128k", "-ac", "2", str(tmp)],
        check=True,
    )
    tmp.rename(clip)
    return clip


if __name__ == "__main__":
    print(ensure_clip())
