"""The camera wall in Debian's headless Chromium at 1440x900: 16 cameras under ``relay run``.

Fourteen streams pull one GStreamer mount (one shared encoder) and two point where nothing
listens, so they retry: the wall shows at least 12 tiles whole on the screen, the two with
problems first; the name and state filters narrow it; a smaller window pages it (each page
whole on the screen, every camera on one page); the keyboard alone (Tab, Enter) opens a
camera's live player, which plays, shows its delay (printed: a figure, not an assertion) and
closes on Escape; no thumbnail is asked for while it covers the wall. Screenshots:
``artifacts/wall.png`` and ``artifacts/wall-player.png``.

A hundred cameras (a status snapshot the web process serves, no relay: only the page is under
test there) make pages of whole screens from the first one shown, problems first.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from relay.status_schema import Snapshot, StreamSnapshot, encode_snapshot
from tests.interop.chromium import chromium, wait_for_the_shown_delay
from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.relayproc import RelayProcess
from tests.interop.test_browser import ARTIFACTS
from tests.interop.test_page_assets import web_app
from web.app import HLS_JS

GOOD = [f"cam{i:02d}" for i in range(1, 15)]
BAD = ["dock-east", "dock-west"]
WIDTH, HEIGHT = 1440, 900

TILES_INSIDE = """([width, height]) => [...document.querySelectorAll('#streams .tile')]
  .filter((t) => { const r = t.getBoundingClientRect();
                   return r.top >= 0 && r.left >= 0 && r.bottom <= height && r.right <= width; })
  .map((t) => t.dataset.stream)"""
SHOWN = "() => [...document.querySelectorAll('#streams .tile')].map((t) => t.dataset.stream)"
THUMBNAILS_LOADED = """(least) => [...document.querySelectorAll('#streams .tile img')]
  .filter((img) => !img.hidden && img.complete && img.naturalWidth > 0).length >= least"""


def _config(http: int, hls: Path, sources: dict[str, str]) -> str:
    text = f'[server]\nhttp = "127.0.0.1:{http}"\nhls_dir = "{hls}"\n'
    for name, source in sources.items():
        text += f'\n[streams.{name}]\nsource = "{source}"\ntransport = "tcp"\nsegment_seconds = 2\n'
    return text


def _shown(page: Page) -> list[str]:
    return list(page.evaluate(SHOWN))


def test_wall_of_16_cameras(tmp_path: Path) -> None:
    hls = tmp_path / "hls"
    http = free_port()
    nowhere = free_port()
    with start_gst_server({"/cam": "h264"}, restart=True) as rtsp:
        sources = {name: f"rtsp://127.0.0.1:{rtsp}/cam" for name in GOOD}
        sources |= {name: f"rtsp://127.0.0.1:{nowhere}/cam" for name in BAD}
        config = tmp_path / "relay.toml"
        config.write_text(_config(http, hls, sources))
        with RelayProcess(["run", "--config", str(config)], http, tmp_path) as relay:
            relay.wait_for(lambda: sum(s["state"] == "playing" for s in relay.api()) == len(GOOD)
                           and "#EXTINF" in (hls / "cam03" / "index.m3u8").read_text(), 60,
                           "14 cameras playing and cam03's first segment")
            with chromium() as browser:
                errors: list[str] = []
                page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                requests: list[str] = []
                page.on("request", lambda r: requests.append(r.url))
                page.goto(f"http://127.0.0.1:{http}/", wait_until="load")
                page.wait_for_function(f"() => document.querySelectorAll('#streams .tile')"
                                       f".length === {len(sources)}", timeout=15000)
                page.wait_for_function(THUMBNAILS_LOADED, arg=12, timeout=40000)
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "wall.png"))
                inside = page.evaluate(TILES_INSIDE, [WIDTH, HEIGHT])
                order = _shown(page)
                paging = page.text_content("#page-info")
                cam01 = page.get_attribute("[data-stream=cam01] img", "src")
                page.wait_for_function(
                    "(before) => document.querySelector('[data-stream=cam01] img').src"
                    " !== before", arg=cam01, timeout=20000)  # thumbnails are refreshed

                page.fill("#name-filter", "CAM1")
                by_name = _shown(page)
                page.fill("#name-filter", "")
                page.select_option("#state-filter", "problem")
                by_state = _shown(page)
                page.select_option("#state-filter", "all")

                page.set_viewport_size({"width": 800, "height": 600})  # too small for 16
                page.wait_for_function(
                    "() => !document.getElementById('page-next').disabled", timeout=5000)
                pages = []
                for _ in sources:
                    pages.append((_shown(page), page.evaluate(TILES_INSIDE, [800, 600])))
                    if page.is_disabled("#page-next"):
                        break
                    page.click("#page-next")
                page.set_viewport_size({"width": WIDTH, "height": HEIGHT})

                page.focus("#name-filter")
                for _ in range(len(sources) + 4):  # to the first playing camera
                    page.keyboard.press("Tab")
                    focused = page.evaluate("document.activeElement.dataset.stream")
                    if focused in GOOD:
                        break
                label = page.evaluate("document.activeElement.getAttribute('aria-label')")
                page.keyboard.press("Enter")
                opened = len(requests)
                page.wait_for_function("() => document.getElementById('viewer').open",
                                       timeout=5000)
                delay = wait_for_the_shown_delay(page)
                mode = page.text_content("#mode")
                title = page.text_content("#viewer-title")
                page.screenshot(path=str(ARTIFACTS / "wall-player.png"))
                for _ in range(4):  # 6 s or more: any thumbnail would be asked for anew
                    with page.expect_request(lambda r: r.url.endswith("/api/streams")):
                        pass
                while_open = requests[opened:]
                page.keyboard.press("Escape")
                page.wait_for_function("() => !document.getElementById('viewer').open",
                                       timeout=5000)
                refocused = page.evaluate("document.activeElement.dataset.stream")
                # closed, the player stops: in the dialog's close event, a task after it closes
                # (a look right away raced it once in CI)
                page.wait_for_function(
                    "() => document.getElementById('player').readyState === 0", timeout=5000)
            print(f"\nwall: {len(inside)} tiles inside {WIDTH}x{HEIGHT}; {focused} played "
                  f"by {mode}, delay {delay:.2f} s")
            assert len(inside) >= 12, (inside, order)
            assert paging == f"1–{len(sources)} of {len(sources)}"
            assert sorted(order[:2]) == BAD and sorted(order[2:]) == GOOD, order
            assert sorted(by_name) == ["cam10", "cam11", "cam12", "cam13", "cam14"], by_name
            assert sorted(by_state) == BAD, by_state
            assert len(pages) > 1 and [n for shown, _ in pages for n in shown] == order, pages
            assert all(shown == inside for shown, inside in pages), pages  # no scrolling
            assert focused in GOOD and label is not None and label.startswith(f"{focused}, ")
            assert title == focused and mode in ("HLS", "LL-HLS")
            assert refocused == focused
            assert not [u for u in while_open if "thumbnail" in u], while_open  # wall hidden
            assert not errors, errors
            assert relay.stop() == 0


@pytest.mark.parametrize("width, height, least", [(WIDTH, HEIGHT, 12), (800, 600, 4)])
def test_wall_pages_100_cameras(tmp_path: Path, width: int, height: int, least: int) -> None:
    names = [f"cam{i:03d}" for i in range(100)]
    streams = tuple(StreamSnapshot(name=name, state="retrying" if i % 10 == 7 else "playing",
                                   source=f"rtsp://192.0.2.{i}/stream1",
                                   last_error="connection failed" if i % 10 == 7 else None)
                    for i, name in enumerate(names))
    (tmp_path / "status.json").write_bytes(
        encode_snapshot(Snapshot(updated=time.time(), streams=streams)))
    problems = [n for n in names if n.endswith("7")]
    with web_app(tmp_path, HLS_JS) as base, chromium() as browser:
        errors: list[str] = []
        page = browser.new_page(viewport={"width": width, "height": height})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{base}/", wait_until="load")
        page.wait_for_selector(".tile", timeout=15000)
        pages = []
        for _ in names:
            pages.append((_shown(page), page.evaluate(TILES_INSIDE, [width, height]),
                          page.text_content("#page-info")))
            if page.is_disabled("#page-next"):
                break
            page.click("#page-next")
        page.fill("#name-filter", "cam05")
        by_name = _shown(page), page.text_content("#page-info")
        page.fill("#name-filter", "")
        page.select_option("#state-filter", "problem")
        by_state = _shown(page), page.text_content("#page-info")
    first, inside, info = pages[0]
    assert len(first) >= least and first == inside and info == f"1–{len(first)} of 100", pages
    paged = [n for shown, _, _ in pages for n in shown]  # every camera once, problems first
    assert paged == problems + [n for n in names if n not in problems], [i for _, _, i in pages]
    assert all(shown == inside for shown, inside, _ in pages)
    assert by_name[1] == f"1–{len(by_name[0])} of 10" and by_name[0] == [
        "cam057", "cam050", "cam051", "cam052", "cam053", "cam054", "cam055", "cam056",
        "cam058", "cam059"][:len(by_name[0])], by_name
    assert by_state[1] == f"1–{len(by_state[0])} of 10", by_state
    assert by_state[0] == problems[:len(by_state[0])], by_state
    assert not errors, errors
