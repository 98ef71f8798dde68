"""Side-by-side benchmark: the relay vs FFmpeg vs GStreamer, RTSP in, RTMP (nginx) + HLS out.

    .venv/bin/python -m bench.run --n 1,4,16,64 [--relays relay,pull,ffmpeg,gstreamer]
                                  [--workers 1,2] [--transport tcp,udp]
                                  [--seconds 20] [--warmup 6] [--sample 4]
                                  [--json bench/results/latest.json] [--svg docs/bench-cpu.svg]

For each N and each relay under test, a fresh GStreamer RTSP server (bench/gst_source.py) serves
the clip to N clients from one shared pipeline and a fresh nginx takes the N RTMP publishes
(``record all``); the relay under test is (a) ``python -m relay run`` with N streams, once per
``--workers`` value (its media worker processes, the parent and one web process), (b) N ``relay
pull`` processes, once per ``--transport`` (one camera per container, as a compose file runs it:
each its media process and its web process; HLS frames are not counted, since ``relay pull``
keeps only a short window listed), (c) N ``ffmpeg -c copy -f tee`` processes (FLV + HLS, over
TCP), (d) N ``gst-launch-1.0`` pipelines (rtspsrc ! depay ! parse ! tee ! flvmux ! rtmp2sink, and
hlssink2). After the warm-up, a window of ``--seconds`` is measured:

- CPU: user+sys of every process of the relay under test (for the relay: the parent, each media
  worker and the web process, of which the web's share is shown apart; not the source, nginx or
  the readers), per stream per media-second, and as a ratio to FFmpeg's in the same run.
- Peak RSS: the sum of each of those processes' VmHWM.
- Frames delivered vs sent: every video frame that left the source during the window, looked up
  by content in each stream's nginx recording (RTMP) and in its listed HLS segments.
- RTSP->RTMP latency, on ``--sample`` streams: departure logged at the source vs arrival at an
  RTMP player pulling from nginx (bench/gst_reader.py), matched by content.
- RTSP->HLS: the time a segment appears in the playlist (polled every 5 ms) minus the departure
  of the frame that closes it (the next video frame after its last), and of its last frame.

The table is printed as Markdown; raw numbers go to ``--json`` and a plot to ``--svg``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import measure as m
from bench.clip import SECONDS as CLIP_SECONDS
from bench.clip import ensure_clip
from bench.peers import (
    BenchError,
    free_port,
    start_nginx,
    start_reader,
    start_source,
    stop,
    wait_port,
)

REPO = Path(__file__).resolve().parent.parent
RELAYS = ("relay", "pull", "ffmpeg", "gstreamer")
SEGMENT_SECONDS = 2
FPS = 25
POLL_SECONDS = 0.005


@dataclass
class Result:
    relay: str  # the kind, with its --workers or --transport: "relay w2", "pull udp", "ffmpeg"
    n: int
    seconds: float = 0.0
    cpu: float | None = None  # CPU seconds per stream per media-second
    web_cpu: float | None = None  # of which the relay's web process(es)
    rss_mb: float | None = None
    sent: int = 0  # video frames that left the source in the window (per stream)
    rtmp_delivered: list[int] = field(default_factory=list)  # per stream
    hls_delivered: list[int] = field(default_factory=list)
    rtmp_ms: list[float] = field(default_factory=list)
    hls_close_ms: list[float] = field(default_factory=list)
    hls_last_ms: list[float] = field(default_factory=list)
    source_cpu: float | None = None  # cores used by the source during the window
    source_fps: float | None = None
    machine_busy: float | None = None  # fraction of both cores busy
    load: str = ""
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # the relay's warning and error lines

    @property
    def source_saturated(self) -> bool:
        """The source could not keep its frame rate: larger N would measure the source."""
        return self.source_fps is not None and self.source_fps < FPS * 0.97

    @property
    def machine_saturated(self) -> bool:
        return (self.machine_busy or 0) > 0.97


class PlaylistPoller(threading.Thread):
    """Notes when each segment first appears in a playlist (polled every 5 ms)."""

    def __init__(self, playlists: list[Path]) -> None:
        super().__init__(daemon=True)
        self.playlists = playlists
        self.listed: dict[Path, float] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        mtimes: dict[Path, int] = {}
        while not self.halt.is_set():
            for playlist in self.playlists:
                try:
                    mtime = os.stat(playlist).st_mtime_ns
                except OSError:
                    continue
                if mtimes.get(playlist) == mtime:
                    continue
                now = time.monotonic()
                mtimes[playlist] = mtime
                for uri in m.playlist_segments(playlist):
                    self.listed.setdefault(playlist.parent / uri, now)
            time.sleep(POLL_SECONDS)


def stream_names(n: int) -> list[str]:
    return [f"s{i:02d}" for i in range(n)]


def start_relay_under_test(kind: str, option: str, n: int, source_url: str, nginx_rtmp,
                           hls_dir: Path, work: Path) -> list[subprocess.Popen[bytes]]:
    """Start what is measured; ``option`` is the relay's --workers or relay pull's --transport."""
    names = stream_names(n)
    log = open(work / f"{kind}.log", "wb")
    procs: list[subprocess.Popen[bytes]] = []
    relay_env = dict(os.environ, PYTHONUNBUFFERED="1")
    if kind == "pull":
        for name in names:
            http = free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "relay", "pull", source_url, "--name", name,
                 "--rtmp", nginx_rtmp(name), "--hls-dir", str(hls_dir),
                 "--segment-seconds", str(SEGMENT_SECONDS), "--http", f"127.0.0.1:{http}",
                 "--transport", option],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=relay_env))
            wait_port(http, procs[-1], "relay pull", work / f"{kind}.log", timeout=30)
        return procs
    if kind == "relay":
        http = free_port()
        toml = [f'[server]\nhttp = "127.0.0.1:{http}"\nhls_dir = "{hls_dir}"\n']
        for name in names:
            toml.append(
                f'[streams.{name}]\nsource = "{source_url}"\ntransport = "tcp"\n'
                f'rtmp = ["{nginx_rtmp(name)}"]\nhls = true\n'
                f"segment_seconds = {SEGMENT_SECONDS}\nwindow = 100\n"
            )
        config = work / "relay.toml"
        config.write_text("\n".join(toml))
        workers = ["--workers", option] if option else []
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "relay", "run", "--config", str(config), *workers],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=relay_env,
        ))
        wait_port(http, procs[0], "relay", work / f"{kind}.log", timeout=30)
        procs[0].http_port = http  # type: ignore[attr-defined]
        return procs
    for name in names:
        out = hls_dir / name
        out.mkdir(parents=True, exist_ok=True)
        if kind == "ffmpeg":
            args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
                    "-rtsp_transport", "tcp", "-i", source_url, "-map", "0", "-c", "copy",
                    "-f", "tee",
                    f"[f=flv]{nginx_rtmp(name)}|[f=hls:hls_time={SEGMENT_SECONDS}:"
                    f"hls_list_size=0:hls_segment_filename={out}/seg%05d.ts]{out}/index.m3u8"]
        else:
            args = ["gst-launch-1.0", "-q", "-e",
                    "rtspsrc", f"location={source_url}", "protocols=tcp", "latency=0", "name=src",
                    "src.", "!", "rtph264depay", "!", "tee", "name=v",
                    "src.", "!", "rtpmp4gdepay", "!", "aacparse", "!", "tee", "name=a",
                    "flvmux", "name=fm", "streamable=true", "!", "rtmp2sink",
                    f"location={nginx_rtmp(name)}",
                    "hlssink2", "name=h", f"location={out}/seg%05d.ts",
                    f"playlist-location={out}/index.m3u8",
                    f"target-duration={SEGMENT_SECONDS}", "max-files=0", "playlist-length=0",
                    # one h264parse per branch: FLV wants AVC, TS wants Annex B
                    "v.", "!", "queue", "!", "h264parse", "!", "fm.video",
                    "a.", "!", "queue", "!", "fm.audio",
                    "v.", "!", "queue", "!", "h264parse", "!", "h.video",
                    "a.", "!", "queue", "!", "h.audio"]
        procs.append(subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log))
    return procs


def wait_published(recordings: list[Path], procs: list[subprocess.Popen[bytes]], log: Path,
                   timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise BenchError(f"{len(dead)} process(es) under test exited early "
                             f"(code {dead[0].returncode}): {m_tail(log)}")
        if all(r.exists() and r.stat().st_size > 100_000 for r in recordings):
            return
        time.sleep(0.2)
    missing = sum(1 for r in recordings if not (r.exists() and r.stat().st_size > 100_000))
    raise BenchError(f"{missing} of {len(recordings)} streams not publishing after {timeout} s: "
                     f"{m_tail(log)}{stacks_of(procs)}")


def find_py_spy() -> str | None:
    """py-spy from the bench-only venv, this venv (a test dependency) or PATH."""
    return shutil.which("py-spy", path=os.pathsep.join(
        (str(REPO / "bench/.cache/venv/bin"), str(Path(sys.executable).parent),
         os.environ.get("PATH", ""))))


def stacks_of(procs: list[subprocess.Popen[bytes]]) -> str:
    """Where every process under test is, when it failed to publish (``py-spy dump``, if the
    test venv has it): a hang then explains itself in the bench's own error."""
    spy = find_py_spy()
    if spy is None:
        return ""
    dumps = []
    for pid in (p for proc in procs for p in m.descendants(proc.pid)):
        done = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True,
                              timeout=30, check=False)
        dumps.append(f"\n--- py-spy dump --pid {pid}\n{(done.stdout or done.stderr)[-3000:]}")
    return "".join(dumps)


def m_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:].strip() or "(empty log)"
    except OSError:
        return "(no log)"


def is_web(pid: int) -> bool:
    """Whether the process is the relay's web process (``python -m web``)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"\0-m\0web\0" in f.read()
    except OSError:
        return False


def run_one(kind: str, option: str, n: int, clip: Path, seconds: float, warmup: float,
            sample: int, keep: Path | None = None, profile: Path | None = None) -> Result:
    label = {"relay": f"relay w{option}" if option else "relay", "pull": f"pull {option}"}
    result = Result(label.get(kind, kind), n)
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    work = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-{n}-", dir=base))
    hls_dir = work / "hls"
    hls_dir.mkdir()
    names = stream_names(n)
    source = nginx = reader = None
    procs: list[subprocess.Popen[bytes]] = []
    try:
        source = start_source(clip, work)
        nginx = start_nginx(work, hls_dir)
        sampled = names[:sample]
        reader = start_reader({name: nginx.rtmp_url(name) for name in sampled}, work)
        procs = start_relay_under_test(kind, option, n, source.url, nginx.rtmp_url, hls_dir,
                                       work)
        poller = PlaylistPoller([hls_dir / name / "index.m3u8" for name in sampled])
        poller.start()
        wait_published([nginx.recording(name) for name in names], procs, work / f"{kind}.log",
                       timeout=30 + n)
        time.sleep(warmup)
        pids = [p for proc in procs for p in m.descendants(proc.pid)]
        web = [p for p in pids if is_web(p)]
        busy0 = m.machine_busy()
        src0 = m.cpu_seconds([source.proc.pid])
        web0 = m.cpu_seconds(web)
        cpu0, t0 = m.cpu_seconds(pids), time.monotonic()
        spies: list[subprocess.Popen[bytes]] = []
        if profile is not None and kind in ("relay", "pull"):
            name = result.relay.replace(" ", "-")
            spies = start_profilers(procs[0].pid, pids, seconds, profile / f"{name}-{n}")
        time.sleep(seconds)
        cpu1, t1 = m.cpu_seconds(pids), time.monotonic()
        web1 = m.cpu_seconds(web)
        src1 = m.cpu_seconds([source.proc.pid])
        busy1 = m.machine_busy()
        result.rss_mb = m.peak_rss_mb(pids)
        for spy in spies:
            spy.wait(30)
        result.load = Path("/proc/loadavg").read_text().split(" ")[0]
        result.seconds = t1 - t0
        result.cpu = (cpu1 - cpu0) / (n * (t1 - t0))
        if web:
            result.web_cpu = (web1 - web0) / (n * (t1 - t0))
        result.source_cpu = (src1 - src0) / (t1 - t0)
        result.machine_busy = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
        time.sleep(SEGMENT_SECONDS + 0.5)  # frames of the window reach nginx; segments close
        poller.halt.set()
        poller.join()
        for proc in procs:  # Ctrl-C for all three: the open segment is closed and listed
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            stop(proc, signal.SIGINT, timeout=20)
        stop(reader.proc)
        stop(source.proc)
        stop(nginx.proc, signal.SIGQUIT)  # finishes the recordings
        dep = m.Departures.load(source.departures)
        window = set(dep.in_window(t0, t1))
        result.sent = len(window)
        result.source_fps = len(window) / (t1 - t0)
        for name in names:
            result.rtmp_delivered.append(
                m.delivered_in_window(m.flv_video_keys(nginx.recording(name)), dep, window))
            if kind == "pull":
                continue
            playlist = hls_dir / name / "index.m3u8"
            keys: list[str] = []
            for uri in m.playlist_segments(playlist):
                keys += m.ts_video_keys(playlist.parent / uri)
            result.hls_delivered.append(m.delivered_in_window(keys, dep, window))
        result.rtmp_ms = m.rtmp_latencies(reader.arrivals, dep, t0, t1)
        result.hls_close_ms, result.hls_last_ms = m.hls_latencies(poller.listed, dep, t0, t1)
    except BenchError as exc:
        result.error = str(exc)
    finally:
        for proc in procs:
            stop(proc, signal.SIGINT, timeout=5)
        for peer in (reader, source):
            if peer is not None:
                stop(peer.proc)
        if nginx is not None:
            stop(nginx.proc, signal.SIGQUIT)
        if kind in ("relay", "pull"):
            result.warnings = logged_warnings(work / f"{kind}.log")
        if keep is not None:
            shutil.copytree(work, keep / work.name, ignore=shutil.ignore_patterns("*.flv", "*.ts"))
        shutil.rmtree(work, ignore_errors=True)
    return result


def logged_warnings(path: Path) -> list[str]:
    """The relay's warning and error lines: a run that needed them (a stalled read ticker, a
    restarted stream) is shown as such, even when its figures look right."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if "level=warning" in line or "level=error" in line]


def start_profilers(pid: int, pids: list[int], seconds: float, out: Path
                    ) -> list[subprocess.Popen[bytes]]:
    """py-spy (from the bench-only venv, see docs/benchmarks.md) sampling the relay's window,
    every process of it (media workers, parent, web), to ``out``.txt; and ``perf record`` of
    ``pids`` to ``out``.perf when perf is installed.

    py-spy runs with ``--gil``: only samples holding the GIL, so a thread waiting in epoll (or
    in any call that releases the GIL: send, recv, PyAV's mux) is not counted as busy, which it
    was without it. perf samples only what is on a CPU, kernel included, so it gives the split
    between the interpreter, PyAV and system calls (``bench.profile_summary --perf``)."""
    spy = find_py_spy()
    if spy is None:
        raise BenchError("--profile needs py-spy: python3 -m venv bench/.cache/venv && "
                         "bench/.cache/venv/bin/pip install py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    quiet: dict[str, int] = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL,
                   "stderr": subprocess.DEVNULL}
    spies = [subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                               "--rate", "250", "--nonblocking", "--subprocesses", "--gil",
                               "--format", "raw", "-o", f"{out}.txt"], **quiet)]
    perf = shutil.which("perf")
    if perf is not None:
        spies.append(subprocess.Popen(
            [perf, "record", "-F", "250", "-g", "-p", ",".join(map(str, pids)),
             "-o", f"{out}.perf", "--", "sleep", str(int(seconds))], **quiet))
    return spies


# --- output ------------------------------------------------------------------------------------

def summary(result: Result) -> dict:
    """The result as JSON-able data, latency samples reduced to count / p50 / p95 / max."""
    data = asdict(result)
    for key in ("rtmp_ms", "hls_close_ms", "hls_last_ms"):
        values = data[key]
        data[key] = {"n": len(values), "p50": m.median(values), "p95": m.pct(values, 95),
                     "max": max(values) if values else None}
    return data


def _ratio(value: float | None, ref: float | None) -> str:
    if value is None or not ref:
        return ""
    return f" ({value / ref:.2f}x)"


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{m.median(values):.0f} / {m.pct(values, 95):.0f}"


def _frames(delivered: list[int], sent: int) -> str:
    if not delivered:
        return "-"
    total = sum(delivered)
    return f"{total}/{sent * len(delivered)}"


def table(results: list[Result]) -> str:
    rows = [
        "| N | relay | CPU s/stream/media-s (x ffmpeg) [of which web] | "
        "peak RSS MiB (x ffmpeg) | "
        "RTMP frames delivered/sent | HLS frames delivered/sent | RTSP->RTMP ms p50 / p95 "
        "(x ffmpeg p50) | HLS listed after closing frame ms p50 / p95 | after last frame "
        "ms p50 / p95 | source fps, cores; machine busy; load |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    by = {(r.n, r.relay): r for r in results}
    for r in results:
        ref = by.get((r.n, "ffmpeg"))
        if r.error is not None:
            rows.append(f"| {r.n} | {r.relay} | failed: {r.error.splitlines()[0][:120]} "
                        "| | | | | | | |")
            continue
        cpu = f"{r.cpu:.4f}{_ratio(r.cpu, ref.cpu if ref else None)}"
        if r.web_cpu is not None:
            cpu += f" [{r.web_cpu:.4f}]"
        rss = f"{r.rss_mb:.0f}{_ratio(r.rss_mb, ref.rss_mb if ref else None)}"
        lat = _ms(r.rtmp_ms)
        if r.rtmp_ms and ref is not None and ref.rtmp_ms:
            lat += _ratio(m.median(r.rtmp_ms), m.median(ref.rtmp_ms))
        note = (f"{r.source_fps:.1f} fps, {r.source_cpu:.2f}; {r.machine_busy:.0%}; {r.load}"
                + (" (machine saturated)" if r.machine_saturated else "")
                + (" SOURCE SATURATED" if r.source_saturated else ""))
        rows.append(
            f"| {r.n} | {r.relay} | {cpu} | {rss} | {_frames(r.rtmp_delivered, r.sent)} | "
            f"{_frames(r.hls_delivered, r.sent)} | {lat} | {_ms(r.hls_close_ms)} | "
            f"{_ms(r.hls_last_ms)} | {note} |"
        )
    return "\n".join(rows)


COLORS = {"relay": "#d62728", "pull": "#9467bd", "ffmpeg": "#1f77b4", "gstreamer": "#2ca02c"}


def svg_plot(results: list[Result]) -> str:
    """CPU per stream against N (log2 x axis), one line per relay: a small hand-written SVG."""
    ok = [r for r in results if r.cpu is not None and r.error is None]
    if not ok:
        return ""
    width, height, left, right, top, bottom = 640, 380, 70, 130, 30, 50
    ns = sorted({r.n for r in ok})
    ymax = max(r.cpu for r in ok) * 1.15  # type: ignore[type-var]
    import math

    def x(n: int) -> float:
        if len(ns) == 1:
            return left + (width - left - right) / 2
        lo, hi = math.log2(ns[0]), math.log2(ns[-1])
        return left + (math.log2(n) - lo) / (hi - lo) * (width - left - right)

    def y(v: float) -> float:
        return top + (1 - v / ymax) * (height - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2 - 60}" y="18" font-size="14">CPU per stream vs N</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
        f'<text x="{(width - right + left) / 2 - 50}" y="{height - 12}">streams (N, log scale)'
        "</text>",
        f'<text x="14" y="{(height) / 2 + 60}" transform="rotate(-90 14,{height / 2 + 60})">'
        "CPU s per stream per media-s</text>",
    ]
    for n in ns:
        parts.append(f'<text x="{x(n) - 6}" y="{height - bottom + 18}">{n}</text>')
        parts.append(f'<line x1="{x(n)}" y1="{height - bottom}" x2="{x(n)}" '
                     f'y2="{height - bottom + 5}" stroke="black"/>')
    for i in range(6):
        v = ymax * i / 5
        parts.append(f'<text x="{left - 48}" y="{y(v) + 4}">{v:.3f}</text>')
        parts.append(f'<line x1="{left}" y1="{y(v)}" x2="{width - right}" y2="{y(v)}" '
                     'stroke="#ddd"/>')
    for j, label in enumerate(dict.fromkeys(r.relay for r in ok)):
        points = sorted((r.n, r.cpu) for r in ok if r.relay == label)
        color = COLORS[label.split(" ")[0]]
        path = " ".join(f"{x(n):.1f},{y(v):.1f}" for n, v in points)  # type: ignore[arg-type]
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for n, v in points:
            parts.append(f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="3.5" fill="{color}"/>')  # type: ignore[arg-type]
        ly = top + 20 + 20 * j
        parts.append(f'<line x1="{width - right + 15}" y1="{ly}" x2="{width - right + 40}" '
                     f'y2="{ly}" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{width - right + 45}" y="{ly + 4}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="1,4,16,64", help="stream counts, comma-separated")
    parser.add_argument("--relays", default="relay,ffmpeg,gstreamer", help="which to run")
    parser.add_argument("--workers", default="",
                        help="relay run's --workers, comma-separated: one relay run each "
                        "(default: the relay's own default, the number of cores)")
    parser.add_argument("--transport", default="tcp",
                        help="relay pull's --transport, comma-separated: one pull run each")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=6.0, help="seconds before the window")
    parser.add_argument("--sample", type=int, default=4, help="streams sampled for latency")
    parser.add_argument("--json", type=Path, help="write raw results here")
    parser.add_argument("--svg", type=Path, help="write the CPU plot here")
    parser.add_argument("--keep", type=Path, help="copy each run's logs (not media) here")
    parser.add_argument("--clip-seconds", type=int, default=CLIP_SECONDS,
                        help="length of the clip (a shorter one encodes faster)")
    parser.add_argument("--profile", type=Path,
                        help="py-spy the relay's window; collapsed stacks go to this folder")
    args = parser.parse_args(argv)
    counts = [int(v) for v in args.n.split(",")]
    kinds = [k for k in args.relays.split(",") if k]
    if unknown := set(kinds) - set(RELAYS):
        parser.error(f"--relays: unknown {sorted(unknown)}")
    longest = args.warmup + args.seconds + 30 + max(counts)
    if longest >= args.clip_seconds:
        parser.error(f"a run may last {longest:.0f} s; the clip is {args.clip_seconds} s")
    options = {"relay": args.workers.split(","), "pull": args.transport.split(",")}
    runs = [(kind, option) for kind in kinds for option in options.get(kind, [""])]
    clip = ensure_clip(args.clip_seconds)
    results: list[Result] = []
    for n in counts:
        saturated = False
        for kind, option in runs:
            print(f"bench: N={n} {kind} {option} "
                  f"(load {Path('/proc/loadavg').read_text().split()[0]})",
                  file=sys.stderr, flush=True)
            result = run_one(kind, option, n, clip, args.seconds, args.warmup, args.sample,
                             args.keep, args.profile)
            results.append(result)
            if result.error:
                print(f"bench: N={n} {kind} failed: {result.error}", file=sys.stderr)
            for line in result.warnings[:20]:
                print(f"bench: N={n} {kind} {option} logged: {line}", file=sys.stderr)
            saturated |= result.source_saturated
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps([summary(r) for r in results], indent=1))
        if saturated:
            print(f"bench: the source could not keep {FPS} fps at N={n}; larger N not run",
                  file=sys.stderr)
            break
    print(table(results))
    if args.svg:
        args.svg.parent.mkdir(parents=True, exist_ok=True)
        args.svg.write_text(svg_plot(results))
    return 0 if all(r.error is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
