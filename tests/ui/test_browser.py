"""`fastreg ui` in a real browser: the distribution's Chromium, headless, driven by Selenium through
the distribution's ChromeDriver (no browser download at run time), against the real command
serving the demo registry.

Without /usr/bin/chromium these tests are skipped, unless FASTREG_BROWSER_TESTS=required (CI sets
it; `make test` installs Chromium where it can). FASTREG_UI_SCREENSHOT=PATH keeps a screenshot
of the test registry (the README's picture is scripts/ui_screenshot.py's, of the demo)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import HOSTILE, Demo

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

if not (CHROMIUM.exists() and DRIVER.exists()):
    if os.environ.get("FASTREG_BROWSER_TESTS") == "required":
        raise RuntimeError(f"the browser tests need {CHROMIUM} and {DRIVER} (apt-get install chromium chromium-driver)")
    pytest.skip(f"no {CHROMIUM} (apt-get install chromium chromium-driver)", allow_module_level=True)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def server(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("ui-xdg"))}
    p = subprocess.Popen([sys.executable, "-m", "fastreg", "ui", "--port", "0"], cwd=demo.root, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", p.stdout.readline())
        assert m, p.stderr.read() if p.stderr else ""
        yield m.group(1)
    finally:
        p.terminate()
        p.communicate(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=str(DRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _images_decoded(driver: Any, selector: str) -> list[int]:
    """naturalWidth of every image the selector finds, once each has loaded (or failed)."""
    script = f"return Array.from(document.querySelectorAll({selector!r})).map(i => i.complete ? i.naturalWidth : -1)"
    WebDriverWait(driver, 30).until(lambda d: all(w >= 0 for w in d.execute_script(script)))
    widths: list[int] = driver.execute_script(script)
    return widths


def _no_alert(driver: Any) -> None:
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018


def test_versions_folders_thumbnails_and_a_file(browser: Any, server: str, demo: Demo) -> None:
    browser.get(server)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Versions"
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.commit")
    assert [r.find_element(By.CSS_SELECTOR, ".subject").text for r in rows] == [
        "a 100-megapixel image", "pets v2", "pets v1"]
    assert "+7" in rows[1].text and "−1" in rows[1].text and "~1" in rows[1].text
    browser.find_element(By.LINK_TEXT, "v1").click()  # the tag: the registry's root at v1
    browser.find_element(By.LINK_TEXT, "pets/").click()
    browser.find_element(By.LINK_TEXT, "cats/").click()
    assert browser.find_element(By.CSS_SELECTOR, ".crumbs .here").text == "cats"
    widths = _images_decoded(browser, ".grid img")
    assert len(widths) == 8 and all(w > 0 for w in widths), widths
    commands = [c.text for c in browser.find_elements(By.CSS_SELECTOR, ".commands code")]
    assert commands == [f"fastreg get {demo.root} pets/cats --rev v1", f"fastreg import {demo.root} pets/cats --rev v1"]
    browser.find_elements(By.CSS_SELECTOR, ".grid a")[1].click()
    assert browser.find_element(By.CSS_SELECTOR, ".meta .path").text == "pets/cats/cats.01.png"
    assert browser.find_element(By.CSS_SELECTOR, ".dimensions").text.startswith("48 × 32")
    assert _images_decoded(browser, "img.full") == [48]
    browser.find_element(By.TAG_NAME, "body").send_keys("\ue014")  # the right arrow: the next file
    WebDriverWait(browser, 10).until(lambda d: "cats.02.png" in d.current_url)


def test_the_diff_from_v1_to_v2_shows_the_added_images(browser: Any, server: str, demo: Demo,
                                                        tmp_path: Path) -> None:
    browser.get(server + "diff")
    browser.find_element(By.NAME, "a").send_keys("v1")
    browser.find_element(By.NAME, "b").send_keys("v2")
    browser.find_element(By.CSS_SELECTOR, ".diff-form button").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "summary"))
    added = browser.find_elements(By.CSS_SELECTOR, "tr.change.added")
    assert len(added) == len(demo.added) + 1  # and the text file
    assert all(w > 0 for w in _images_decoded(browser, "tr.change.added img"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.change.added img")) == len(demo.added)
    modified = browser.find_element(By.CSS_SELECTOR, "tr.change.modified")
    assert [f.text for f in modified.find_elements(By.TAG_NAME, "figcaption")] == ["before", "after"]
    assert all(w > 0 for w in _images_decoded(browser, "tr.change.modified img"))
    assert browser.find_element(By.ID, "summary").text.startswith("7 files added")
    shot = tmp_path / "ui.png"
    browser.get(server + "browse/pets/cats?rev=v2")
    _images_decoded(browser, ".grid img")
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("FASTREG_UI_SCREENSHOT"):
        shutil.copy(shot, os.environ["FASTREG_UI_SCREENSHOT"])


def test_a_hostile_name_is_text_and_a_traversal_is_not_found(browser: Any, server: str) -> None:
    browser.get(server + "browse/pets/dogs?rev=v2")
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".tile .name")]
    assert HOSTILE in names
    assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"], [onerror]').length") == 0
    time.sleep(0.5)
    _no_alert(browser)
    browser.find_element(By.XPATH, f"//span[@class='name'][text()={_xpath_literal(HOSTILE)}]").click()
    assert browser.find_element(By.CSS_SELECTOR, ".meta .path").text == f"pets/dogs/{HOSTILE}"
    _no_alert(browser)
    for bad, page in (("browse/%2e%2e/%2e%2e/etc/passwd", True), ("browse/pets/%00", True),
                      ("raw/pets/%2e%2e%2f%2e%2e%2fetc%2fpasswd", False)):
        browser.get(server + bad)
        if page:
            assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"
        else:
            assert "not a path inside the registry" in browser.find_element(By.TAG_NAME, "body").text
        assert "root:" not in browser.page_source


def _xpath_literal(s: str) -> str:
    return f'"{s}"' if '"' not in s else "concat('" + s.replace("'", "',\"'\",'") + "')"


def test_a_tile_that_cannot_be_previewed_says_so(browser: Any, server: str) -> None:
    browser.get(server + "browse/pets/huge?rev=huge")  # a 100-megapixel image: no thumbnail is made of it
    _images_decoded(browser, ".grid img")
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".grid img.broken"))
    mark = browser.find_element(By.CSS_SELECTOR, ".tile .nopreview")
    assert mark.is_displayed() and mark.text == "no preview"
