"""The public site in real headless Chromium against a real `digest serve` and SMTP server.

At 390 px (a phone) and 1280 px: no sideways scrolling on any public page; and the whole
sign-up as a reader does it: the form, the confirmation email, its link, the confirmed page.
Screenshots land in test-artifacts/site/; with UPDATE_GOLDEN=1 the README's are refreshed.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, sync_playwright

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, start_digest, write_config
from tests.mailservers import SmtpServer, smtp_server

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "site"
PUBLIC_BASE = "https://digest.example.org"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def site(tmp_path: Path, smtp: SmtpServer) -> Iterator[str]:
    """`digest run` (one issue in the archive), then `digest serve` mailing through SMTP."""
    setup = (("subscribers", "add", "first@example.org"), ("run",))
    config = write_config(tmp_path)
    yield from start_digest(tmp_path, config, "serve", env=smtp.settings_env(), before=setup)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context.set_default_timeout(30_000)
        yield context
        context.close()


def test_public_pages_fit_a_phone_and_a_desktop(site: str, browser: BrowserContext):
    issue = re.search(r'href="(/archive/daily/[0-9-]+)"', httpx.get(site + "/archive").text)
    assert issue is not None
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in (390, 1280):
        for name, path in [
            ("home", "/"),
            ("subscribe", "/subscribe"),
            ("archive", "/archive"),
            ("issue", issue.group(1)),
        ]:
            page = browser.new_page()
            page.set_viewport_size({"width": width, "height": 844})
            page.goto(site + path)
            scroll, inner = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
            assert scroll <= inner, f"{path} scrolls sideways at {width}px ({scroll})"
            if name in ("home", "subscribe"):
                field = page.locator("#email").bounding_box()
                assert field is not None and field["height"] >= 44  # a tap target
                if width == 390:
                    assert field["width"] >= 300  # the whole column, not 175 px
            shot = ARTIFACTS / f"{name}-{width}.png"
            page.screenshot(path=str(shot), full_page=name != "issue")
            if os.environ.get("UPDATE_GOLDEN") == "1" and name == "home":
                shutil.copy(shot, REPO / "docs" / f"home-{width}.png")
            page.close()


def _confirmation_link(smtp: SmtpServer, address: str) -> str:
    for _ in range(100):  # the mail goes out after the page has answered
        for received in smtp.handler.received:
            if received.recipient == address:
                message = email.message_from_bytes(received.data, policy=email.policy.default)
                text = message.get_body(("plain",)).get_content()
                found = re.search(rf"{re.escape(PUBLIC_BASE)}(/confirm/\S+)", text)
                assert found is not None
                return found.group(1)
        time.sleep(0.1)
    pytest.fail(f"no confirmation email reached {address}")


def test_a_reader_signs_up_and_confirms_in_the_browser(
    site: str, smtp: SmtpServer, browser: BrowserContext
):
    page = browser.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(site + "/")
    page.get_by_label("Your email address").fill("not-an-address")
    page.get_by_role("button", name="Subscribe").click()
    error = page.get_by_role("alert")
    assert "does not look like an email address" in error.inner_text()
    assert page.evaluate("document.activeElement.id") == "email"  # focus on the bad field
    assert page.locator("#email").get_attribute("aria-describedby") == "email-error"

    page.get_by_label("Your email address").fill("New.Reader@Example.org")
    page.get_by_label("Your first name (optional)").fill("Noa")
    page.get_by_role("button", name="Subscribe").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Check your inbox"
    assert "new.reader@example.org" in page.content()

    page.goto(site + _confirmation_link(smtp, "new.reader@example.org"))
    assert page.get_by_role("heading", level=1).inner_text() == "You are subscribed"
    page.close()


def test_a_reader_changes_their_preferences_from_the_emails_footer(
    site: str, smtp: SmtpServer, browser: BrowserContext
):
    [digest] = [r for r in smtp.handler.received if r.recipient == "first@example.org"]
    message = email.message_from_bytes(digest.data, policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()
    found = re.search(rf"Preferences: {re.escape(PUBLIC_BASE)}(/preferences/\S+)", text)
    assert found is not None
    page = browser.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(site + found.group(1))
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert scroll <= inner, f"the preferences page scrolls sideways ({scroll})"
    page.get_by_label("science").check()
    page.get_by_label("Take a break").select_option(label="Pause for 2 weeks")
    page.get_by_role("button", name="Save").click()
    assert "Saved." in page.get_by_role("status").inner_text()
    assert page.get_by_label("science").is_checked()
    assert "Stay paused until" in page.get_by_label("Take a break").inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "preferences-390.png"), full_page=True)
    page.get_by_role("button", name="Unsubscribe").click()
    assert page.get_by_role("heading", level=1).inner_text() == "You are unsubscribed"
    page.close()
