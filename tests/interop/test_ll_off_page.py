"""The page reads each stream's ``ll_hls`` mode from /api: a stream with LL-HLS off plays
standard HLS at once, without first asking for ``ll.m3u8`` (and waiting for the probe); a stream
with it on demand is probed. A status snapshot the web process serves, no relay: only the page is
under test (Debian's headless Chromium)."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Page

from relay.status_schema import LlHlsSnapshot, Snapshot, StreamSnapshot, encode_snapshot
from tests.interop.chromium import chromium
from tests.interop.test_page_assets import web_app
from web.app import HLS_JS


def _open(page: Page, name: str) -> list[str]:
    """Open ``name``'s player; the /hls/ URLs it asked for until standard HLS was asked."""
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/hls/" in r.url else None)
    with page.expect_request(f"**/hls/{name}/index.m3u8", timeout=15000):
        page.click(f"[data-stream={name}]")
    page.keyboard.press("Escape")
    return [url.split("/hls/", 1)[1] for url in asked]


def test_a_stream_with_ll_hls_off_is_not_probed(tmp_path: Path) -> None:
    streams = tuple(
        StreamSnapshot(name=name, state="playing", source="rtsp://192.0.2.1/stream1",
                       hls=f"/hls/{name}/index.m3u8", ll_hls=LlHlsSnapshot(mode=mode))
        for name, mode in (("plain", "off"), ("low", "on-demand")))
    (tmp_path / "status.json").write_bytes(
        encode_snapshot(Snapshot(updated=time.time(), streams=streams)))
    with web_app(tmp_path, HLS_JS) as base, chromium() as browser:
        errors: list[str] = []
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{base}/", wait_until="load")
        page.wait_for_selector("[data-stream=low]", timeout=15000)
        plain = _open(page, "plain")
        low = _open(page, "low")
    assert plain[0] == "plain/index.m3u8" and "plain/ll.m3u8" not in plain, plain
    assert low[0] == "low/ll.m3u8", low  # probed first (no relay here: 404 after its wait)
    assert not errors, errors
