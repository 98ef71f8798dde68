"""The dashboard in Debian's headless Chromium: a tile with a live thumbnail; its player with facts
and a drawn chart.

``relay demo`` runs with an API token (RELAY_API_TOKEN, inherited by its web process), so the
page's token path is exercised too: without ``#token=`` it explains what is missing; with it
the wall fills in (the only stream's player opens by itself), and the token leaves the address
bar. A screenshot is kept as ``artifacts/dashboard.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.interop.chromium import chromium
from tests.interop.gstserver import free_port
from tests.interop.relayproc import RelayProcess, http_get
from tests.interop.test_browser import ARTIFACTS

TOKEN = "dashboard-test-token-0123456789"

THUMBNAIL_LOADED = """() => {
  const img = document.querySelector('[data-stream=demo] .thumb img');
  return img && !img.hidden && img.complete && img.naturalWidth > 0;
}"""
CHART_DRAWN = """() => {
  const c = document.getElementById('chart');
  return c && c.dataset.drawn === '1' && Number(c.dataset.points) >= 2;
}"""


def test_dashboard_tiles_thumbnails_and_charts(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, RELAY_API_TOKEN=TOKEN)
    with RelayProcess(["demo", "--http", f"127.0.0.1:{port}", "--hls-dir",
                       str(tmp_path / "hls")], port, tmp_path, env=env) as relay:
        playlist = tmp_path / "hls" / "demo" / "index.m3u8"
        relay.wait_for(lambda: playlist.exists() and "#EXTINF" in playlist.read_text(), 40,
                       "the demo's first segment")
        relay.wait_for(lambda: http_get(f"{base}/healthz")[0] == 200, 20, "the web process")
        assert http_get(f"{base}/api/streams")[0] == 401
        assert http_get(f"{base}/metrics")[0] == 401
        status, body = http_get(f"{base}/metrics", TOKEN)
        assert status == 200 and b'relay_stream_state{state="playing",stream="demo"} 1.0' in body
        with chromium() as browser:
            errors: list[str] = []
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{base}/", wait_until="load")
            page.wait_for_function(
                "() => document.getElementById('streams-error').textContent"
                ".includes('#token=')", timeout=15000)
            page.close()

            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{base}/#token={TOKEN}", wait_until="load")
            page.wait_for_selector("[data-stream=demo]", timeout=15000)
            assert TOKEN not in page.url
            page.wait_for_function(CHART_DRAWN, timeout=30000)
            state = page.text_content("[data-stream=demo] .tile-head .pill")
            video = page.text_content('#facts [data-fact="video"]')
            page.wait_for_function(
                "() => document.getElementById('player').currentTime > 0.5", timeout=30000)
            # the page asks for no thumbnail while its player covers the wall: close it
            page.keyboard.press("Escape")
            page.wait_for_function("() => !document.getElementById('viewer').open",
                                   timeout=15000)
            thumbnail_error = None
            try:
                page.wait_for_function(THUMBNAIL_LOADED, timeout=30000)
            except Exception as exc:  # screenshot first, then fail
                thumbnail_error = exc
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            html = page.content()
        assert state == "playing"
        assert video is not None and "H.264" in video and "fps" in video
        assert TOKEN not in html
        assert not errors, errors
        if thumbnail_error is not None:
            pytest.fail("the demo card's thumbnail never loaded (is run_thumbnails started per "
                        f"stream and --thumbnails passed to the web process?): {thumbnail_error}")
        assert relay.stop() == 0
        assert TOKEN not in relay.log()
