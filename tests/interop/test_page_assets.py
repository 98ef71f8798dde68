"""The page in Debian's headless Chromium when hls.js is not installed (a ``pip install`` from a
checkout without ``make web``): /static/hls.min.js is a plain 404 that says what to do, nothing on
the page fails to parse or run, and the page itself says so: that the browser's own HLS player is
used (this Chromium has one), or, in a browser without one (canPlayType answering "", as Firefox
does), that it cannot play. With hls.js present the same page has no such message."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web

from tests.interop.chromium import chromium
from tests.interop.gstserver import free_port
from web.app import HLS_JS, make_app


@contextmanager
def web_app(tmp_path: Path, hls_js: Path) -> Iterator[str]:
    """The web app (no relay: its status is simply not there yet) on 127.0.0.1, in a thread."""
    (tmp_path / "hls").mkdir(exist_ok=True)
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner = web.AppRunner(make_app(tmp_path / "hls", tmp_path / "status.json",
                                    hls_js_path=hls_js, push=False))

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(10), "the web app did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


NO_NATIVE_HLS = "HTMLMediaElement.prototype.canPlayType = () => '';"


@pytest.mark.parametrize("installed, native", [(False, True), (False, False), (True, True)])
def test_page_says_why_it_cannot_play_without_hls_js(tmp_path: Path, installed: bool,
                                                     native: bool) -> None:
    hls_js = HLS_JS if installed else tmp_path / "node_modules" / "hls.js" / "dist" / "hls.min.js"
    assert hls_js.is_file() == installed, "make web installs hls.js for the tests"
    with web_app(tmp_path, hls_js) as base, chromium() as browser:
        page = browser.new_page()
        if not native:
            page.add_init_script(NO_NATIVE_HLS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        statuses: dict[str, int] = {}
        page.on("response", lambda r: statuses.__setitem__(r.url.removeprefix(base), r.status))
        page.goto(f"{base}/", wait_until="load")
        # the status line is written by app.js once /api/streams answered (503: no relay)
        page.wait_for_function("() => document.getElementById('streams-error').textContent"
                               ".includes('not published its status')", timeout=15000)
        message = page.text_content("#now-playing") or ""
        has_hls = page.evaluate("() => typeof window.Hls")
    assert errors == []  # nothing failed to parse or threw
    assert statuses["/static/app.js"] == 200
    if installed:
        assert statuses["/static/hls.min.js"] == 200 and has_hls == "function"
        assert message.startswith("No stream selected")
    else:
        assert statuses["/static/hls.min.js"] == 404 and has_hls == "undefined"
        assert "hls.js did not load" in message and "make web" in message
        assert ("own HLS player is used" in message) == native
        assert message.startswith("The player did not load") != native
