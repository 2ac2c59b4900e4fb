"""The preview in real headless Chromium, against a real `digest preview` process."""

from __future__ import annotations

import httpx
from playwright.sync_api import sync_playwright

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, REPO

ARTIFACTS = REPO / "test-artifacts"


def test_real_server_answers_preview_and_public_pages(preview_server: str):
    assert httpx.get(f"{preview_server}/preview").status_code == 200
    assert "Portvale" in httpx.get(f"{preview_server}/preview/email.html").text
    assert httpx.get(f"{preview_server}/unsubscribe/forged-token").status_code == 400


def test_preview_in_chromium_switches_width_and_shows_text(preview_server: str):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto(f"{preview_server}/preview")
            frame = page.frame_locator("#email")
            # The first story's headline (its lead also sits, hidden, in the preheader).
            frame.locator("td:visible", has_text="Portvale replaces late-night").first.wait_for()
            page.screenshot(path=str(ARTIFACTS / "preview-desktop.png"), full_page=False)
            inner = page.frame(url=lambda u: "/preview/email.html" in u)
            assert inner is not None
            assert inner.evaluate("window.innerWidth") == 600

            page.click("#mobile")
            page.wait_for_function(
                "document.getElementById('email').getBoundingClientRect().width <= 377"
            )
            inner = page.frame(url=lambda u: "/preview/email.html" in u)
            assert inner is not None
            assert inner.evaluate("window.innerWidth") <= 375
            overflow = inner.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0
            page.screenshot(path=str(ARTIFACTS / "preview-mobile.png"), full_page=False)

            page.click("#dark")
            page.wait_for_function("document.getElementById('email').src.includes('scheme=dark')")
            page.frame_locator("#email").locator("td:visible", has_text="Portvale").first.wait_for()
            page.screenshot(path=str(ARTIFACTS / "preview-dark.png"), full_page=False)

            page.click("#text-link")
            page.wait_for_url("**/preview/email.txt*")
            assert "TEST DIGEST" in page.content()
        finally:
            browser.close()
