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

Reported per mode: median and p95 of the delay, stalls (``waiting`` events, and samples where
currentTime did not advance), hls.js ``latency`` and ``targetLatency``, time to the first frame.
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
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from relay.demo.camera import _CELL_W, _CLOCK_CHARS, _FONT, _GLYPH_H, _GLYPH_W, TestCamera
from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.relayproc import RelayProcess
from tests.interop.test_browser import CHROMIUM_ARGS
from web.app import HLS_JS

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
           waiting: window.__glassWaiting || 0, pdt,
           latency: player ? player.latency : null,
           target: player ? player.targetLatency : null };
}"""

WATCH = """() => { const v = document.querySelector('video');
  if (v && !window.__glassWatched) { window.__glassWatched = true; window.__glassWaiting = 0;
    v.addEventListener('waiting', () => { window.__glassWaiting += 1; }); }
  return !!v; }"""

BARE_PAGE = string.Template("""<!doctype html><meta charset="utf-8"><title>glass</title>
<video id="player" muted autoplay playsinline></video>
<script src="$script"></script>
<script>
var hls = new Hls(Object.assign({ liveDurationInfinity: true }, $config));
hls.loadSource($url); hls.attachMedia(document.getElementById('player'));
document.getElementById('player').play().catch(() => {});
if ($jump) {  // once playing, seek forward to hls.js's live sync position when it is buffered
  const v = document.getElementById('player');
  const timer = setInterval(() => {
    const sync = hls.liveSyncPosition, b = v.buffered;
    if (sync && b.length && hls.latency > hls.targetLatency + 0.3 &&
        b.end(b.length - 1) > sync + 0.1 && v.currentTime > 0) {
      v.currentTime = sync; clearInterval(timer);
    }
  }, 250);
}
</script>""")


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


def measure(page: Page, reader: ClockReader | None, seconds: float, interval: float,
            joined: float) -> dict[str, object]:
    """Sample the playing page every ``interval`` for ``seconds`` from its first frame."""
    page.wait_for_function(WATCH, timeout=20000)
    page.wait_for_function("() => document.querySelector('video').currentTime > 0",
                           timeout=60000, polling=50)
    first_frame = time.monotonic() - joined
    glass: list[float] = []
    pdt: list[float] = []
    latency: list[float] = []
    target: list[float] = []
    unread = frozen = 0
    last_t = -1.0
    last: dict[str, object] = {}
    end = time.monotonic() + seconds
    xs, ys = (reader.xs, reader.ys) if reader else ([0], [0])
    while time.monotonic() < end:
        tick = time.monotonic()
        sample = page.evaluate(SAMPLE, [xs, ys, INK_THRESHOLD])
        if sample:
            last = sample
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
            frozen += sample["t"] <= last_t and not sample["paused"]
            last_t = sample["t"]
        time.sleep(max(0.0, interval - (time.monotonic() - tick)))

    def summary(values: list[float]) -> str:
        if not values:
            return "-"
        return f"{statistics.median(values):.2f}/{percentile(values, 0.95):.2f}"

    return {"glass": summary(glass), "samples": len(glass), "unread": unread,
            "page_pdt": summary(pdt), "hls_latency": summary(latency),
            "target_latency": f"{statistics.median(target):.2f}" if target else "-",
            "waiting": last.get("waiting", "-"), "frozen_samples": frozen,
            "first_frame_s": round(first_frame, 2)}


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
    try:
        if mode == "ll-page":
            page.goto(f"http://127.0.0.1:{http}/?stream=cam", wait_until="load")
        elif mode == "ffmpeg":
            page.goto(f"http://127.0.0.1:{ff_port}/glass.html", wait_until="load")
        else:
            url = f"/hls/cam/{'ll' if mode == 'll' else 'index'}.m3u8"
            cfg = config if mode == "ll" else "{}"
            html = BARE_PAGE.substitute(script="/static/hls.min.js", config=cfg,
                                        url=json.dumps(url),
                                        jump=json.dumps(args.jump and mode == "ll"))
            page.route(f"http://127.0.0.1:{http}/glass.html",
                       lambda route: route.fulfill(body=html, content_type="text/html"))
            page.goto(f"http://127.0.0.1:{http}/glass.html", wait_until="load")
        result = measure(page, reader, args.seconds, args.interval, joined)
    finally:
        page.close()
    result["errors"] = errors[:3]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=("demo", "gst"), default="demo")
    parser.add_argument("--modes", default="ll-page,hls,ffmpeg")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--warmup", type=float, default=10.0, help="stream age when joined")
    parser.add_argument("--part-seconds", default=None, help="relay --part-seconds")
    parser.add_argument("--hls-config", action="append",
                        help="hls.js config (JSON) of the 'll' mode; repeat to compare several "
                             '(default {"lowLatencyMode": true})')
    parser.add_argument("--jump", action="store_true",
                        help="'ll' mode: once playing, seek to hls.js's live sync position")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the modes")
    parser.add_argument("--tree", type=Path, default=None,
                        help="run the relay (and its page) from this checkout, e.g. a worktree "
                             "of an older commit, to compare before and after")
    args = parser.parse_args()
    modes = args.modes.split(",")
    configs = args.hls_config or ['{"lowLatencyMode": true}']
    runs = [(mode, config) for mode in modes for config in (configs if mode == "ll" else [""])]
    work = Path(tempfile.mkdtemp(prefix="glass-"))
    http = free_port()
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        if args.source == "demo":
            rtsp_port = free_port()
            camera = subprocess.Popen(
                [sys.executable, "-m", "relay", "camera", "--listen", f"127.0.0.1:{rtsp_port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stack.callback(camera.wait, 10)
            stack.callback(camera.terminate)
            rtsp = f"rtsp://127.0.0.1:{rtsp_port}/demo"
            reader: ClockReader | None = ClockReader()
            time.sleep(1.0)
        else:
            rtsp_port = stack.enter_context(start_gst_server({"/cam": "h264"}))
            rtsp = f"rtsp://127.0.0.1:{rtsp_port}/cam"
            reader = None
        pull = ["pull", rtsp, "--name", "cam", "--hls-dir", str(work / "hls"), "--http",
                f"127.0.0.1:{http}", "--transport", "tcp", "--segment-seconds", "2"]
        if args.part_seconds:
            pull += ["--part-seconds", args.part_seconds]
        env = dict(os.environ, PYTHONPATH=str(args.tree)) if args.tree else None
        relay = stack.enter_context(RelayProcess(pull, http, work, env))
        relay.wait_for(lambda: relay.api()[0]["state"] == "playing", 40, "the camera")
        ff_port = None
        if "ffmpeg" in modes:
            ff = work / "ffmpeg"
            stack.enter_context(ffmpeg_hls(rtsp, ff))
            (ff / "hls.min.js").symlink_to(HLS_JS)
            (ff / "glass.html").write_text(BARE_PAGE.substitute(
                script="hls.min.js", config="{}", url='"index.m3u8"', jump="false"))
            ff_port = stack.enter_context(static_server(ff))
        time.sleep(args.warmup)
        wait_until(lambda: "#EXTINF" in (work / "hls" / "cam" / "index.m3u8").read_text(), 30,
                   "the relay's first segment")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                 args=CHROMIUM_ARGS)
            try:
                for round_ in range(args.repeat):
                    for mode, config in runs:
                        result = play(browser, mode, http, ff_port, config, reader, args)
                        shown = {"config": config} if mode == "ll" else {}
                        print(json.dumps({"tree": str(args.tree or "."),
                                          "source": args.source, "round": round_,
                                          "mode": mode, **shown, **result}), flush=True)
            finally:
                browser.close()
        relay.stop()


if __name__ == "__main__":
    main()
