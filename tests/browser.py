"""Headless Chromium for tests (selenium + Debian's chromium and chromium-driver).

``browser_fixture`` is a pytest fixture body shared by the tests that look at real pages; it
skips with the reason when the browser, the driver or selenium is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
DRIVER = shutil.which("chromedriver")
SKIP_REASON = "headless browser test needs Debian packages chromium and chromium-driver"


def chromium(profile: Path, window: str = "1200,1000") -> Iterator[Any]:
    """Start headless Chromium with a fresh profile; yield the selenium driver; quit after."""
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="pip package selenium not installed")
    if CHROMIUM is None or DRIVER is None:
        pytest.skip(SKIP_REASON)
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                f"--window-size={window}"):
        opts.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    except WebDriverException as e:  # a broken browser install is not a failure of this code
        pytest.skip(f"chromium could not be started: {e.msg}")
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
