"""What a run measured: CPU and peak RSS from /proc, frames matched by content, latencies.

Frames are keyed by their last 16 bytes (see bench/gst_source.py); a key is unique over the clip,
so a recorded or listed frame maps to exactly one departure.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

KEY_BYTES = 16
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- /proc ---------------------------------------------------------------------------------

def descendants(pid: int) -> list[int]:
    """``pid`` and all its live descendants (via /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU seconds of these processes (threads included)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return total / CLK_TCK


def peak_rss_mb(pids: list[int]) -> float:
    """Sum of each process's peak resident set (VmHWM), in MiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def machine_busy() -> tuple[float, float]:
    """(busy jiffies, total jiffies) of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# --- departures and content keys --------------------------------------------------------------

@dataclass
class Departures:
    keys: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Departures:
        d = cls()
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 2:
                continue
            d.index.setdefault(parts[0], len(d.keys))
            d.keys.append(parts[0])
            d.times.append(float(parts[1]))
        return d

    def in_window(self, t0: float, t1: float) -> list[int]:
        return [i for i, t in enumerate(self.times) if t0 <= t < t1]


def flv_video_keys(path: Path) -> list[str]:
    """Keys of the coded video frames of an FLV file, in order (FLV spec E.4.3.1)."""
    keys = []
    try:
        data = path.read_bytes()
    except OSError:
        return keys
    pos = 13 if data[:3] == b"FLV" else 0
    n = len(data)
    while pos + 11 <= n:
        kind = data[pos] & 0x1F
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        end = pos + 11 + size
        if end > n:
            break
        if kind == 9 and size > 5 + KEY_BYTES and data[pos + 12] == 1:
            keys.append(data[end - KEY_BYTES:end].hex())
        pos = end + 4
    return keys


def ts_video_keys(path: Path) -> list[str]:
    """Keys of the video access units of an MPEG-TS segment, in order (demuxed with PyAV)."""
    import av

    keys = []
    try:
        with av.open(str(path)) as container:
            video = [s for s in container.streams if s.type == "video"]
            if not video:
                return keys
            for packet in container.demux(video[0]):
                if packet.size >= KEY_BYTES:
                    keys.append(bytes(packet)[-KEY_BYTES:].hex())
    except (OSError, av.error.FFmpegError):
        pass
    return keys


def playlist_segments(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def delivered_in_window(keys: list[str], dep: Departures, window: set[int]) -> int:
    """How many distinct departures of the window appear among ``keys``."""
    seen = set()
    for key in keys:
        i = dep.index.get(key)
        if i is not None and i in window:
            seen.add(i)
    return len(seen)


# --- latencies ---------------------------------------------------------------------------------

def rtmp_latencies(arrivals: Path, dep: Departures, t0: float, t1: float) -> list[float]:
    """Arrival minus departure (ms) of every sampled frame that arrived within [t0, t1)."""
    out = []
    try:
        lines = arrivals.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        t = float(parts[2])
        i = dep.index.get(parts[1])
        if i is not None and t0 <= t < t1:
            out.append((t - dep.times[i]) * 1000)
    return out


def hls_latencies(listed: dict[Path, float], dep: Departures, t0: float, t1: float
                  ) -> tuple[list[float], list[float]]:
    """For segments listed within [t0, t1): (ms from the frame that closes the segment, i.e. the
    next video frame after its last, to the listing; ms from its own last frame to the listing)."""
    closing, last = [], []
    for segment, when in listed.items():
        if not t0 <= when < t1:
            continue
        keys = ts_video_keys(segment)
        if not keys or keys[-1] not in dep.index:
            continue
        i = dep.index[keys[-1]]
        last.append((when - dep.times[i]) * 1000)
        if i + 1 < len(dep.times):
            closing.append((when - dep.times[i + 1]) * 1000)
    return closing, last


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if q < 100 else \
        max(values)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
