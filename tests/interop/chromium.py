"""Debian's headless Chromium under Playwright, launched in one place.

Every browser test and bench/glass.py need the same binary and flags (headless, no sandbox,
no GPU or QUIC, autoplay without a click); here they are written once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from playwright.sync_api import Browser, sync_playwright

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
