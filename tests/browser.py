"""Headless Chromium for the tests that need a real browser: Debian's ``chromium`` driven by
selenium through Debian's ``chromedriver`` (``chromium-driver``), both given by path, so that
selenium never looks for or fetches a driver of its own.

`chromium(profile)` yields a WebDriver running with a fresh profile in `profile`. The browser
resolves no host name but 127.0.0.1's own, so a page that would load anything from the
internet (a CDN) fails to. The test using it must be marked ``e2e``: the programs are found by
`tools.require_program`, which skips (or fails under CI) naming what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools import require_extra, require_program

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Only the loopback test server is reachable: any other host name is not found.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """A selenium WebDriver for headless Chromium with a fresh profile; quit on leaving."""
    browser = require_program("chromium", "a real browser renders the page")
    driver_path = require_program("chromedriver", "selenium drives chromium through it")
    webdriver = require_extra("selenium.webdriver")
    Service = require_extra("selenium.webdriver.chrome.service").Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()
