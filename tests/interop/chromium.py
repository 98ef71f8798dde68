"""Debian's headless Chromium under Playwright, launched in one place.

Every browser test and bench/glass.py need the same binary and flags (headless, no sandbox,
no GPU or QUIC, autoplay without a click); here they are written once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium (Debian's /usr/bin/chromium) under Playwright, closed on exit."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_for_the_shown_delay(page: Page) -> float:
    """Once the page's open player has played a second past its first half second: the live
    delay it shows (``#delay``'s data-seconds; NaN if absent)."""
    page.wait_for_function(
        "() => document.getElementById('player').currentTime > 0.5", timeout=30000)
    first = page.evaluate("document.getElementById('player').currentTime")
    page.wait_for_function(
        "(t) => document.getElementById('player').currentTime > t + 1", arg=first, timeout=15000)
    page.wait_for_function(
        "() => document.getElementById('delay').dataset.seconds !== undefined", timeout=15000)
    return float(page.get_attribute("#delay", "data-seconds") or "nan")
