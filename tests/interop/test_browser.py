"""`relay demo` played in a real browser: Debian's headless Chromium, driven by Playwright.

The page opens the only stream's player by itself (LL-HLS when the relay serves it, standard HLS
otherwise), asking for no thumbnail of the wall it covers; the test prints which player, and the
delay the page shows: a figure, not an assertion. An
H.265 camera plays where the browser decodes HEVC; where it does not (this Chromium), the page
says so instead of showing a black player.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from tests.interop.chromium import chromium, wait_for_the_shown_delay
from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.relayproc import RelayProcess

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
DELAY_SAMPLES = 15


def test_demo_plays_in_chromium(tmp_path: Path) -> None:
    port = free_port()
    with RelayProcess(["demo", "--http", f"127.0.0.1:{port}", "--hls-dir",
                       str(tmp_path / "hls")], port, tmp_path) as relay:
        playlist = tmp_path / "hls" / "demo" / "index.m3u8"
        relay.wait_for(lambda: playlist.exists() and "#EXTINF" in playlist.read_text(), 40,
                       "the demo's first segment")
        with chromium() as browser:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
            page.wait_for_selector("[data-stream=demo]", timeout=15000)
            page.wait_for_function("() => document.getElementById('viewer').open",
                                   timeout=15000)
            wait_for_the_shown_delay(page)
            delays = []
            for _ in range(DELAY_SAMPLES):  # the shown delay, once a second
                delays.append(float(page.get_attribute("#delay", "data-seconds") or "nan"))
                page.wait_for_timeout(1000)
            mode = page.text_content("#mode")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "demo-page.png"))
        print(f"\ndemo page: {mode}, delay shown at join {delays[0]:.2f} s, median of the "
              f"{DELAY_SAMPLES} s after {statistics.median(delays):.2f} s, last {delays[-1]:.2f} s")
        assert mode in ("HLS", "LL-HLS")
        # the player opened by itself: the wall it covers asked the relay for no thumbnail
        assert not [u for u in requests if "thumbnail" in u], requests
        assert not errors, errors
        assert relay.stop() == 0


HEVC_SUPPORTED = """() => MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L93.B0"')"""


def test_hevc_camera_page_says_whether_this_browser_decodes_it(tmp_path: Path) -> None:
    port = free_port()
    with start_gst_server({"/cam": "h265aac"}) as rtsp, \
            RelayProcess(["pull", f"rtsp://127.0.0.1:{rtsp}/cam", "--name", "hevc",
                          "--http", f"127.0.0.1:{port}", "--hls-dir", str(tmp_path / "hls"),
                          "--segment-seconds", "2"], port, tmp_path) as relay:
        relay.wait_for(lambda: relay.api()[0]["state"] == "playing", 40, "the H.265 camera")
        with chromium() as browser:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
            page.wait_for_function("() => document.getElementById('viewer').open",
                                   timeout=15000)
            supported = page.evaluate(HEVC_SUPPORTED)
            if supported:
                page.wait_for_function(
                    "() => document.getElementById('player').currentTime > 0.5",
                    timeout=30000)
            message = page.text_content("#now-playing") or ""
        assert ("H.265 (HEVC)" in message and "cannot decode" in message) != supported, message
        assert not errors, errors
        assert relay.stop() == 0
