"""Glass-to-glass delay in headless Chromium: the camera's burned-in clock read back from the shown
picture, against the browser's clock, while hls.js plays a stream it joined mid-run.

    .venv/bin/python -m bench.glass [--modes ll-page,ll,hls,ffmpeg] [--seconds 60]
    .venv/bin/python -m bench.glass --source gst --modes ll-page,hls

The demo camera (``relay camera``, the one ``relay demo`` runs) draws the wall clock into every
picture with its own 5x7 font (relay/demo/camera.py), so the digits read back exactly: one
``page.evaluate`` draws the <video> to a canvas, samples the luma at the centre of every glyph
pixel of the clock band, and takes ``Date.now()`` in the same call; Python matches each cell
against the font. delay = Date.now() - burned time (both this machine's clock).

Modes, all joining a stream that has run ``--warmup`` seconds (the same camera for all):
``ll-page`` the relay's own page (LL-HLS as it plays it: its hls.js config), ``ll`` ll.m3u8 in a
bare page with the hls.js config of ``--hls-config`` (for trying configs), ``hls`` the relay's
index.m3u8 at 2-second segments, ``ffmpeg`` FFmpeg's HLS muxer of the same camera (-c copy,
hls_time 2) served by a plain static server. A GStreamer camera (``--source gst``) has no clock we
can read (clockoverlay draws with system fonts): it reports hls.js ``latency`` and the page's delay
(now - the shown frame's EXT-X-PROGRAM-DATE-TIME, which misses capture and encode) instead.

``--source relay-demo`` runs ``relay demo`` itself (what ``make demo`` runs) and opens its page
at ``/`` as a new user would.

Reported per mode: median and p95 of the delay; ``stalls``, the video's ``waiting`` events after
the first frame except those within SEEK_WAIT_S of the page's own catch-up seek (``seek_waits``);
``frozen_samples`` where currentTime did not advance, and each freeze with what came around it
(the page's seeks, long tasks, hls.js errors such as a blocking reload's 503, the longest gap
between loaded parts, whether a keyframe part came: a GOP boundary); hls.js ``latency`` and
``targetLatency``; time to the first frame.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from relay.demo.camera import _CELL_W, _CLOCK_CHARS, _FONT, _GLYPH_H, _GLYPH_W, TestCamera
from tests.interop.chromium import chromium
from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.relayproc import RelayProcess
from web.app import HLS_JS, STATIC_DIR

INK_THRESHOLD = 128  # ink is Y 235, paper Y 16 (both BT.601 limited range): about 255 and 0 in RGB
GLYPHS = {"".join(rows).replace(" ", "0").replace("#", "1"): ch for ch, rows in _FONT.items()}

SAMPLE = """([xs, ys, threshold]) => {
  const v = document.querySelector('video');
  if (!v || v.readyState < 2 || !v.videoWidth) return null;
  const c = window.__glassCanvas || (window.__glassCanvas = document.createElement('canvas'));
  if (c.width !== v.videoWidth) { c.width = v.videoWidth; c.height = v.videoHeight; }
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(v, 0, 0);
  const y0 = ys[0], h = ys[ys.length - 1] - y0 + 1;
  const img = ctx.getImageData(0, y0, c.width, h).data;
  const now = Date.now();
  const ink = [];
  for (const y of ys) {
    for (const x of xs) ink.push(img[((y - y0) * c.width + x) * 4] > threshold ? 1 : 0);
  }
  const player = typeof hls !== 'undefined' ? hls : null;
  const pdt = player && player.playingDate ? player.playingDate.getTime() : null;
  return { now, ink, t: v.currentTime, paused: v.paused, width: v.videoWidth,
           pdt,
           latency: player ? player.latency : null,
           target: player ? player.targetLatency : null };
}"""

# Installed once the video exists, and again for each new hls.js instance: what the page and
# hls.js did, for the stalls' causes. The page's own seeks are told apart by wrapping the shared
# catchUp (web/static/catchup.js), which both the page and the bare page call by its global name.
WATCH = """() => { const v = document.querySelector('video');
  if (!v) return false;
  const log = window.__glass || (window.__glass = { waiting: [], seeks: [], tasks: [], hls: [] });
  if (!window.__glassWatched) {
    window.__glassWatched = true;
    v.addEventListener('waiting', () => log.waiting.push(Date.now()));
    if (typeof catchUp === 'function') {
      const own = catchUp;
      window.catchUp = (...args) => { const seeked = own(...args);
        if (seeked) log.seeks.push(Date.now()); return seeked; };
    }
    new PerformanceObserver((list) => { for (const e of list.getEntries())
      log.tasks.push([Math.round(performance.timeOrigin + e.startTime), Math.round(e.duration)]);
    }).observe({ type: 'longtask', buffered: true });
  }
  const player = typeof hls !== 'undefined' ? hls : null;
  if (player && window.__glassHls !== player) {
    window.__glassHls = player;
    const E = window.Hls.Events;
    const keep = (entry) => { if (log.hls.length < 5000) log.hls.push(entry); };
    player.on(E.ERROR, (_, d) => keep([Date.now(), 'error', d.details,
      d.response ? d.response.code : null, d.fatal]));
    player.on(E.FRAG_LOADED, (_, d) => { const st = (d.part || d.frag).stats.loading;
      keep([Date.now(), 'frag', d.frag.sn, d.part ? d.part.index : null,
            d.part ? d.part.independent : true, Math.round(st.end - st.start)]); });
    player.on(E.LEVEL_UPDATED, () => keep([Date.now(), 'level']));
  }
  return true; }"""

BARE_PAGE = string.Template("""<!doctype html><meta charset="utf-8"><title>glass</title>
<video id="player" muted autoplay playsinline></video>
<script src="$script"></script>
<script src="$catchup"></script>
<script>
var hls = new Hls(Object.assign({ liveDurationInfinity: true }, $config));
hls.loadSource($url); hls.attachMedia(document.getElementById('player'));
document.getElementById('player').play().catch(() => {});
if ($jump) {  // the page's catch-up (catchup.js), on the page's schedule
  const v = document.getElementById('player');
  let skipped = false;
  setInterval(() => { if (catchUp(hls, v, skipped)) skipped = true; }, 500);
}
</script>""")

SEEK_WAIT_S = 1.0  # a `waiting` this soon after the page's own seek is the seek, not a stall


class ClockReader:
    """Where the demo camera draws its clock in a ``width`` x ``height`` picture, and the reading
    of the sampled glyph pixels (geometry taken from the camera itself, not copied)."""

    def __init__(self, width: int = 640, height: int = 360) -> None:
        camera = TestCamera(width, height)
        s, x0, y0 = camera._scale, camera._clock_x, camera._band_y
        self.width = width
        self.xs = [x0 + (c * _CELL_W + g) * s + s // 2
                   for c in range(_CLOCK_CHARS) for g in range(_GLYPH_W)]
        self.ys = [y0 + s + r * s + s // 2 for r in range(_GLYPH_H)]

    def read(self, ink: list[int], now_ms: int) -> float | None:
        """Seconds the shown picture is behind ``now_ms``; None when a cell is not a glyph."""
        row_len = len(self.xs)
        text = ""
        for c in range(_CLOCK_CHARS):
            bits = "".join(str(ink[r * row_len + c * _GLYPH_W + g])
                           for r in range(_GLYPH_H) for g in range(_GLYPH_W))
            ch = GLYPHS.get(bits)
            if ch is None:
                return None
            text += ch
        try:
            clock = datetime.strptime(text, "%H:%M:%S.%f").time()
        except ValueError:
            return None
        now = datetime.fromtimestamp(now_ms / 1000)
        shown = datetime.combine(now.date(), clock)
        if shown > now + timedelta(hours=12):  # burned before midnight, read after it
            shown -= timedelta(days=1)
        return (now - shown).total_seconds()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class PartWatcher(threading.Thread):
    """When each LL-HLS part file first appears in the stream's folder (a listing every 5 ms,
    on the same clock as the page's ``Date.now()``): a part late in the browser but not on disk
    was held by the web process or the browser; one late on disk, by the relay or the camera."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.seen: dict[str, int] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.005):
            try:
                names = os.listdir(self.folder)
            except OSError:
                continue
            now = int(time.time() * 1000)
            for name in names:
                if name[:1] == "p" and name.endswith(".m4s") and name not in self.seen:
                    self.seen[name] = now

    def times(self) -> list[int]:
        return sorted(self.seen.values())


def longest_gap(times: list[int], lo: int, hi: int) -> int | None:
    inside = [t for t in times if lo <= t <= hi]
    return max((b - a for a, b in zip(inside, inside[1:], strict=False)), default=None)


def gaps_over(times: list[int], start_ms: int, limit_ms: int) -> int:
    inside = [t for t in times if t >= start_ms]
    return sum(b - a > limit_ms for a, b in zip(inside, inside[1:], strict=False))


def freezes_of(frozen: list[tuple[int, int]], log: dict[str, Any],
               start_ms: int, written: list[int]) -> list[dict[str, object]]:
    """Each run of frozen samples (``frozen``: the last advancing sample's and the next advancing
    sample's times, ms) with what happened around it: the page's seeks, long tasks, hls.js errors
    (a blocking reload's 503 among them), the longest gap between loaded parts and whether a
    keyframe (INDEPENDENT) part came in it, i.e. a GOP boundary, and the longest gap between
    parts appearing on disk (``written``, LL-HLS only)."""
    out = []
    for begin, until in frozen:
        lo, hi = begin - 1000, until + 500
        tasks = [d for t, d in log["tasks"] if lo <= t <= hi]
        events = [e for e in log["hls"] if lo <= e[0] <= hi]
        frags = [e for e in events if e[1] == "frag"]
        times = [e[0] for e in frags]
        out.append({
            "at_s": round((begin - start_ms) / 1000, 2), "for_s": round((until - begin) / 1000, 2),
            "page_seek": any(lo <= t <= hi for t in log["seeks"]),
            "longest_task_ms": max(tasks, default=0),
            "errors": sorted({f"{e[2]} {e[3] or ''}".strip() for e in events if e[1] == "error"}),
            "longest_part_gap_ms": max((b - a for a, b in zip(times, times[1:])), default=None),
            "longest_disk_gap_ms": longest_gap(written, lo, hi),
            "slowest_load_ms": max((e[5] for e in frags), default=None),
            "keyframe_part": any(e[4] for e in frags),
        })
    return out


def measure(page: Page, reader: ClockReader | None, seconds: float, interval: float,
            joined: float, parts: PartWatcher | None) -> dict[str, object]:
    """Sample the playing page every ``interval`` for ``seconds`` from its first frame."""
    page.wait_for_function(WATCH, timeout=20000)
    page.wait_for_function("() => document.querySelector('video').currentTime > 0",
                           timeout=60000, polling=50)
    first_frame = time.monotonic() - joined
    start_ms = page.evaluate("() => Date.now()")
    glass: list[float] = []
    pdt: list[float] = []
    latency: list[float] = []
    target: list[float] = []
    unread = still = 0
    frozen: list[tuple[int, int]] = []  # (last advancing sample, next advancing sample), ms
    freeze_from: int | None = None
    last_t, last_now = -1.0, start_ms
    end = time.monotonic() + seconds
    xs, ys = (reader.xs, reader.ys) if reader else ([0], [0])
    while time.monotonic() < end:
        tick = time.monotonic()
        page.evaluate(WATCH)  # a new hls.js instance (the page's fallback) is watched too
        sample = page.evaluate(SAMPLE, [xs, ys, INK_THRESHOLD])
        if sample:
            if reader is not None:
                delay = reader.read(sample["ink"], sample["now"])
                if delay is None:
                    unread += 1
                else:
                    glass.append(delay)
            if sample["pdt"]:
                pdt.append((sample["now"] - sample["pdt"]) / 1000)
            if sample["latency"]:
                latency.append(sample["latency"])
                target.append(sample["target"] or 0.0)
            if sample["t"] <= last_t and not sample["paused"]:
                freeze_from = last_now if freeze_from is None else freeze_from
                still += 1
            else:
                if freeze_from is not None:
                    frozen.append((freeze_from, sample["now"]))
                freeze_from = None
                last_now = sample["now"]
            last_t = sample["t"]
        time.sleep(max(0.0, interval - (time.monotonic() - tick)))
    if freeze_from is not None:
        frozen.append((freeze_from, last_now + int(interval * 1000)))
    log = page.evaluate("() => window.__glass")
    waits = [t for t in log["waiting"] if t >= start_ms]
    seek_waits = [t for t in waits
                  if any(0 <= t - s <= SEEK_WAIT_S * 1000 for s in log["seeks"])]

    def summary(values: list[float]) -> str:
        if not values:
            return "-"
        return f"{statistics.median(values):.2f}/{percentile(values, 0.95):.2f}"

    tasks = [d for t, d in log["tasks"] if t >= start_ms]
    written = parts.times() if parts else []
    loaded = sorted(e[0] for e in log["hls"] if e[1] == "frag")
    return {"glass": summary(glass), "samples": len(glass), "unread": unread,
            "page_pdt": summary(pdt), "hls_latency": summary(latency),
            "target_latency": f"{statistics.median(target):.2f}" if target else "-",
            "stalls": len(waits) - len(seek_waits), "seek_waits": len(seek_waits),
            "page_seeks": len(log["seeks"]),
            "frozen_samples": still,
            "freezes": freezes_of(frozen, log, start_ms, written),
            # parts 0.5 s or more after the one before: on disk (relay, camera) and as loaded
            "disk_gaps_500ms": gaps_over(written, start_ms, 500) if parts else None,
            "load_gaps_500ms": gaps_over(loaded, start_ms, 500),
            "long_tasks": f"{len(tasks)}, longest {max(tasks, default=0)} ms",
            "hls_errors": sorted({f"{e[2]} {e[3] or ''}".strip() for e in log["hls"]
                                  if e[1] == "error" and e[0] >= start_ms}),
            "first_frame_s": round(first_frame, 2), "log": {"start_ms": start_ms, **log}}


@contextlib.contextmanager
def ffmpeg_hls(rtsp: str, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """FFmpeg's own HLS of the camera: -c copy, 2-second segments, as a user would run it."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", rtsp,
         "-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_list_size", "6",
         "-hls_flags", "delete_segments", str(folder / "index.m3u8")],
        stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def static_server(folder: Path) -> Iterator[int]:
    """A plain static HTTP server (Python's http.server) of ``folder``."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                             "127.0.0.1", "--directory", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if predicate():  # type: ignore[operator]
                return
        time.sleep(0.2)
    raise SystemExit(f"glass: timed out waiting for {what}")


def play(browser: object, mode: str, http: int, ff_port: int | None, config: str,
         reader: ClockReader | None, args: argparse.Namespace) -> dict[str, object]:
    """One mode in a fresh page: join, then measure."""
    page = browser.new_page()  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    joined = time.monotonic()
    parts: PartWatcher | None = None
    try:
        if mode == "ll-page":
            # relay demo's page as a new user opens it; else the one stream by name
            query = "" if args.source == "relay-demo" else f"?stream={args.name}"
            page.goto(f"http://127.0.0.1:{http}/{query}", wait_until="load")
        elif mode == "ffmpeg":
            page.goto(f"http://127.0.0.1:{ff_port}/glass.html", wait_until="load")
        else:
            url = f"/hls/{args.name}/{'ll' if mode == 'll' else 'index'}.m3u8"
            cfg = config if mode == "ll" else "{}"
            html = BARE_PAGE.substitute(script="/static/hls.min.js", config=cfg,
                                        catchup="/static/catchup.js",
                                        url=json.dumps(url),
                                        jump=json.dumps(args.jump and mode == "ll"))
            page.route(f"http://127.0.0.1:{http}/glass.html",
                       lambda route: route.fulfill(body=html, content_type="text/html"))
            page.goto(f"http://127.0.0.1:{http}/glass.html", wait_until="load")
        if mode in ("ll-page", "ll"):
            parts = PartWatcher(args.hls_root / args.name)
            parts.start()
        result = measure(page, reader, args.seconds, args.interval, joined, parts)
    finally:
        if parts is not None:
            parts.halt.set()
            parts.join()
        page.close()
    result["errors"] = errors[:3]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=("demo", "gst", "relay-demo"), default="demo",
                        help="demo: relay camera + relay pull; gst: a GStreamer camera + relay "
                             "pull; relay-demo: `relay demo` itself (what `make demo` runs)")
    parser.add_argument("--modes", default="ll-page,hls,ffmpeg")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--warmup", type=float, default=10.0, help="stream age when joined")
    parser.add_argument("--part-seconds", default=None, help="relay --part-seconds")
    parser.add_argument("--hls-config", action="append",
                        help="hls.js config (JSON) of the 'll' mode; repeat to compare several "
                             '(default {"lowLatencyMode": true})')
    parser.add_argument("--jump", action="store_true",
                        help="'ll' mode: the page's catch-up (web/static/catchup.js) too")
    parser.add_argument("--events", type=Path, default=None,
                        help="append each run's raw log here (JSON lines: waiting, the page's "
                             "seeks, long tasks, hls.js errors, part loads, playlist updates)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the modes")
    parser.add_argument("--tree", type=Path, default=None,
                        help="run the relay (and its page) from this checkout, e.g. a worktree "
                             "of an older commit, to compare before and after")
    args = parser.parse_args()
    modes = args.modes.split(",")
    if args.source == "relay-demo" and ("ffmpeg" in modes or args.part_seconds):
        parser.error("--source relay-demo: its camera is inside the relay (no ffmpeg mode, "
                     "no --part-seconds)")
    args.name = "demo" if args.source == "relay-demo" else "cam"
    configs = args.hls_config or ['{"lowLatencyMode": true}']
    runs = [(mode, config) for mode in modes for config in (configs if mode == "ll" else [""])]
    work = Path(tempfile.mkdtemp(prefix="glass-"))
    args.hls_root = work / "hls"
    http = free_port()
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        env = dict(os.environ, PYTHONPATH=str(args.tree)) if args.tree else None
        reader: ClockReader | None = ClockReader()
        if args.source == "relay-demo":
            rtsp = ""
            command = ["demo", "--hls-dir", str(work / "hls"), "--http", f"127.0.0.1:{http}"]
        else:
            if args.source == "demo":
                rtsp_port = free_port()
                camera = subprocess.Popen(
                    [sys.executable, "-m", "relay", "camera", "--listen",
                     f"127.0.0.1:{rtsp_port}"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
                stack.callback(camera.wait, 10)
                stack.callback(camera.terminate)
                rtsp = f"rtsp://127.0.0.1:{rtsp_port}/demo"
                time.sleep(1.0)
            else:
                rtsp_port = stack.enter_context(start_gst_server({"/cam": "h264"}))
                rtsp = f"rtsp://127.0.0.1:{rtsp_port}/cam"
                reader = None
            command = ["pull", rtsp, "--name", "cam", "--hls-dir", str(work / "hls"), "--http",
                       f"127.0.0.1:{http}", "--transport", "tcp", "--segment-seconds", "2"]
            if args.part_seconds:
                command += ["--part-seconds", args.part_seconds]
        relay = stack.enter_context(RelayProcess(command, http, work, env))
        relay.wait_for(lambda: relay.api()[0]["state"] == "playing", 40, "the camera")
        ff_port = None
        if "ffmpeg" in modes:
            ff = work / "ffmpeg"
            stack.enter_context(ffmpeg_hls(rtsp, ff))
            (ff / "hls.min.js").symlink_to(HLS_JS)
            (ff / "catchup.js").symlink_to(STATIC_DIR / "catchup.js")
            (ff / "glass.html").write_text(BARE_PAGE.substitute(
                script="hls.min.js", catchup="catchup.js", config="{}", url='"index.m3u8"',
                jump="false"))
            ff_port = stack.enter_context(static_server(ff))
        time.sleep(args.warmup)
        wait_until(lambda: "#EXTINF" in (work / "hls" / args.name / "index.m3u8").read_text(), 30,
                   "the relay's first segment")
        with chromium() as browser:
            for round_ in range(args.repeat):
                for mode, config in runs:
                    result = play(browser, mode, http, ff_port, config, reader, args)
                    shown = {"config": config} if mode == "ll" else {}
                    events = result.pop("log")
                    if args.events:
                        with args.events.open("a") as out:
                            out.write(json.dumps({"mode": mode, "round": round_, **events})
                                      + "\n")
                    print(json.dumps({"tree": str(args.tree or "."),
                                      "source": args.source, "round": round_,
                                      "mode": mode, **shown, **result}), flush=True)
        relay.stop()


if __name__ == "__main__":
    main()
