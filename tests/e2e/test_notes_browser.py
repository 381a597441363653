"""examples/notes/ in a real browser: Debian's chromium, headless, driven by selenium through
the chromedriver of Debian's chromium-driver package.

The site is served by microwsgi's development server on 127.0.0.1, its notes kept in a
temporary SQLite file. The browser signs up, signs out, signs in, adds a note and sees it
listed; then a page on another origin (another port: the same site, so the SameSite=Lax
session cookie goes along) makes it post a form to the notes site, which must be refused for
its missing CSRF token. The browser is tests/browser.py's: nothing is downloaded, selenium gets
the driver's and the browser's paths, and the browser a fresh profile and the flags that keep
it off the network.
"""

from __future__ import annotations

import importlib.util
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from browser import chromium

from microwsgi import Server
from microwsgi.server import DevServer

pytestmark = pytest.mark.e2e

NOTES = Path(__file__).resolve().parents[2] / "examples" / "notes" / "app.py"
WAIT = 20  # seconds any one page may take to appear (a bound, not a measurement)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    """Headless chromium (tests/browser.py), quit at the end whatever the test did."""
    with chromium(tmp_path / "profile") as browser:
        browser.set_page_load_timeout(WAIT)
        yield browser


@pytest.fixture
def notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, str]]:
    """The notes example on the development server: (its module, its base URL)."""
    monkeypatch.setenv("NOTES_DB", str(tmp_path / "notes.sqlite3"))
    monkeypatch.setenv("NOTES_SECRET", "the browser test's secret, 32 bytes or more")
    spec = importlib.util.spec_from_file_location("_notes_browser", NOTES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with DevServer(module.server, "127.0.0.1", 0, threads=4, access_log=False) as served:
        yield module, served.url


@pytest.fixture
def attacker(notes: tuple[ModuleType, str]) -> Iterator[str]:
    """Another origin whose page posts a form to the notes site as soon as it loads."""
    _, target = notes
    evil = Server()

    @evil.get("/")
    def forge(request: dict[str, Any]) -> Any:
        page = (
            f'<form method="post" action="{target}/notes">'
            '<input name="text" value="forged by another site"></form>'
            "<script>document.forms[0].submit()</script>"
        )
        return page, 200, {"Content-Type": "text/html; charset=utf-8"}

    with DevServer(evil, "127.0.0.1", 0, threads=2, access_log=False) as served:
        yield served.url


def wait_for(driver: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(condition)


def fill_and_submit(driver: Any, **fields: str) -> None:
    from selenium.webdriver.common.by import By

    for name, value in fields.items():
        element = driver.find_element(By.ID, name)
        element.clear()
        element.send_keys(value)
    driver.find_element(By.ID, "submit").click()


def test_sign_up_sign_in_add_a_note_and_a_forged_post_refused(
    driver: Any, notes: tuple[ModuleType, str], attacker: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown

    module, site = notes

    driver.get(f"{site}/")  # not signed in: sent to the sign-in page
    wait_for(driver, shown.url_to_be(f"{site}/signin"))
    driver.get(f"{site}/signup")
    fill_and_submit(driver, username="ada", password="correct horse battery")
    wait_for(driver, shown.url_to_be(f"{site}/notes"))
    assert driver.find_element(By.ID, "who").text == "Signed in as ada"
    session = driver.get_cookie("session")
    assert session is not None and session["httpOnly"] and session["sameSite"] == "Lax"

    driver.find_element(By.ID, "signout").click()
    wait_for(driver, shown.url_to_be(f"{site}/signin"))
    assert driver.find_elements(By.ID, "who") == []
    fill_and_submit(driver, username="ada", password="not the password")
    assert wait_for(driver, shown.presence_of_element_located((By.ID, "error"))).text == (
        "Wrong user name or password."
    )
    fill_and_submit(driver, username="ada", password="correct horse battery")
    wait_for(driver, shown.url_to_be(f"{site}/notes"))

    driver.find_element(By.ID, "text").send_keys("buy <milk> & bread")
    driver.find_element(By.ID, "add").click()
    wait_for(driver, shown.text_to_be_present_in_element((By.ID, "notes"), "buy <milk>"))
    listed = [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#notes li")]
    assert listed == ["buy <milk> & bread"]

    # Another origin's page posts to /notes with the session cookie but without the token.
    driver.get(f"{attacker}/")
    wait_for(driver, shown.url_to_be(f"{site}/notes"))
    refusal = wait_for(driver, shown.presence_of_element_located((By.TAG_NAME, "body"))).text
    assert '"status":403' in refusal.replace(" ", "")
    assert "CSRF token missing" in refusal
    driver.get(f"{site}/notes")
    listed = [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#notes li")]
    assert listed == ["buy <milk> & bread"]
    with sqlite3.connect(module.DATABASE) as db:
        assert db.execute("SELECT text FROM notes").fetchall() == [("buy <milk> & bread",)]
