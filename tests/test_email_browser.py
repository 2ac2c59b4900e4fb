"""What a reader sees: the personalized email in real headless Chromium.

At phone (375 px), column (600 px) and desktop (800 px) widths, light and dark: no sideways
scrolling, every image has alt text, the unsubscribe link is visible, and every piece of
text keeps a readable contrast. Screenshots land in test-artifacts/email/ (git-ignored);
with UPDATE_GOLDEN=1 the README's screenshots in docs/ are refreshed too.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Route, sync_playwright

from digest.mail.message import MessageTemplate
from digest.models import Digest, Subscriber
from digest.render import render_digest
from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.golden.sample import BRAND, golden_digest, long_digest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "email"
DOCS = REPO / "docs"
EMAIL_URL = "https://mail.example.net/message/1"  # a webmail page, as far as Chromium knows
PLAIN_URL = "https://mail.example.net/message/2"  # the same email without a logo
LONG_URL = "https://mail.example.net/message/3"  # a 30-story digest
LOGO_URL = "https://digest.example.org/static/logo.png"
LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="36" viewBox="0 0 200 36">'
    '<rect width="200" height="36" rx="4" fill="#a0361e"/>'
    '<text x="12" y="24" font-family="Georgia" font-size="18" fill="#fff">Harbour Digest</text>'
    "</svg>"
)
UNSUBSCRIBE_URL = "https://digest.example.org/unsubscribe/tok-1"

# Every visible piece of text: its colour against the first opaque background behind it,
# as a WCAG contrast ratio, and what WCAG AA requires at its size.
CONTRAST_JS = """
() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(',').map(parseFloat);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const channel = (v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const lum = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) return c;
    }
    return null;
  };
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent.replace(/\\u00a0/g, ' ').trim();
    const el = walker.currentNode.parentElement;
    if (!text || !el.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
    const style = getComputedStyle(el);
    const fg = parse(style.color), bg = background(el);
    const l1 = lum(fg), l2 = bg ? lum(bg) : NaN;
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
    out.push({
      text: text.slice(0, 40), size,
      ratio: (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05),
      required: size >= 24 || (bold && size >= 18.66) ? 3 : 4.5,
      color: style.color, background: bg ? `rgb(${bg.r}, ${bg.g}, ${bg.b})` : 'none',
    });
  }
  return out;
}
"""


def _email_html(logo: bool, digest: Digest | None = None) -> str:
    """The HTML part exactly as one subscriber receives it."""
    brand = dataclasses.replace(BRAND, logo_url=LOGO_URL if logo else "")
    rendered = render_digest(digest or golden_digest(), brand)
    template = MessageTemplate(
        rendered,
        sender_name=brand.sender_name,
        sender_address="digest@example.org",
        list_id="The Harbour Digest <daily.example.org>",
        unsubscribe_url="https://digest.example.org/unsubscribe/{token}",
        unsubscribe_mailto="mailto:digest@example.org?subject=unsubscribe",
        digest_key="daily/2026-11-28",
        sent_at=datetime(2026, 11, 28, 7, 0, tzinfo=UTC),
    )
    data = template.personalize(Subscriber(1, "zoe@example.org", "Zoë Ørsted"), "tok-1").data
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Chromium with a fresh profile; the email and its logo are served from memory."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    pages = {
        EMAIL_URL: _email_html(logo=True),
        PLAIN_URL: _email_html(logo=False),
        LONG_URL: _email_html(logo=False, digest=long_digest(30)),
    }

    def serve(route: Route) -> None:
        if route.request.url in pages:
            html = pages[route.request.url]
            route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html)
        elif route.request.url == LOGO_URL:
            route.fulfill(status=200, content_type="image/svg+xml", body=LOGO_SVG)
        else:
            route.abort()  # nothing else may leave the machine

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context.set_default_timeout(30_000)
        context.route("**/*", serve)
        yield context
        context.close()


def _open(browser: BrowserContext, width: int, scheme: Any, url: str = EMAIL_URL) -> Page:
    page = browser.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    page.emulate_media(color_scheme=scheme)
    page.goto(url)
    page.wait_for_load_state("load")
    return page


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [320, 375, 600, 800])
def test_the_email_fits_reads_and_offers_unsubscribe(browser, width, scheme):
    page = _open(browser, width, scheme)
    try:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"email-{width}-{scheme}.png"
        page.screenshot(path=str(shot), full_page=True)

        scroll_width, inner_width = page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert scroll_width <= inner_width, f"sideways scrolling at {width}px: {scroll_width}"

        images = page.evaluate(
            "[...document.images].map(i => [i.getAttribute('alt'), i.naturalWidth])"
        )
        assert images == [["The Harbour Digest", 200]]

        unsubscribe = page.get_by_role("link", name="Unsubscribe")
        assert unsubscribe.get_attribute("href") == UNSUBSCRIBE_URL
        unsubscribe.scroll_into_view_if_needed()
        assert unsubscribe.is_visible()
        box = unsubscribe.bounding_box()
        assert box is not None and box["width"] > 0 and box["x"] + box["width"] <= inner_width
        # "View in browser" at the top, and again in the footer.
        assert page.get_by_role("link", name="View in browser").first.is_visible()
        assert page.get_by_role("link", name="View in browser").count() == 2
        assert not page.locator(".preheader").is_visible()

        samples = page.evaluate(CONTRAST_JS)
        assert len(samples) > 30
        unreadable = [s for s in samples if not s["ratio"] >= s["required"] or s["size"] < 12]
        assert unreadable == [], unreadable

        container = page.evaluate(
            "getComputedStyle(document.querySelector('.container')).backgroundColor"
        )
        assert container == ("rgb(30, 30, 28)" if scheme == "dark" else "rgb(255, 255, 255)")
        # The phone rules apply below 600px: narrower side padding, smaller headlines; a
        # 600px window shows the whole 600px column, so it gets the desktop layout.
        padding, headline = page.evaluate(
            "[getComputedStyle(document.querySelector('.story')).paddingLeft,"
            " getComputedStyle(document.querySelector('.headline')).fontSize]"
        )
        assert (padding, headline) == (("16px", "20px") if width < 600 else ("24px", "22px"))
        assert page.locator(".more-link").count() == 4
        for link in page.locator(".more-link").all():
            box = link.bounding_box()
            assert box is not None and box["height"] >= 44  # a tap target, not a 30 px chip
        if width == 600:
            assert page.evaluate("document.querySelector('.container').offsetWidth") == 600
    finally:
        page.close()


def test_docs_screenshots_are_refreshed_on_request(browser):
    """The README shows a phone and a desktop view; UPDATE_GOLDEN=1 refreshes them."""
    shots = {"email-mobile.png": (375, "light"), "email-desktop.png": (800, "light")}
    shots["email-dark.png"] = (375, "dark")
    for name, (width, scheme) in shots.items():
        page = _open(browser, width, scheme, PLAIN_URL)
        try:
            page.set_viewport_size({"width": width, "height": 1000 if width > 600 else 812})
            target = ARTIFACTS / name
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(target))
            assert target.stat().st_size > 10_000
            if os.environ.get("UPDATE_GOLDEN") == "1":
                DOCS.mkdir(exist_ok=True)
                shutil.copyfile(target, DOCS / name)
        finally:
            page.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [320, 375, 600])
def test_a_long_digest_opens_with_its_contents_and_fits(browser, width, scheme):
    """30 stories: no sideways scrolling, a contents list whose links reach their story."""
    page = _open(browser, width, scheme, LONG_URL)
    try:
        page.set_viewport_size({"width": width, "height": 1000 if width >= 600 else 812})
        scroll_width, inner_width = page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert scroll_width <= inner_width, f"sideways scrolling at {width}px: {scroll_width}"
        assert page.get_by_role("heading", name="In this issue").is_visible()
        assert page.get_by_role("heading", level=3).count() == 30
        samples = page.evaluate(CONTRAST_JS)
        unreadable = [s for s in samples if not s["ratio"] >= s["required"] or s["size"] < 12]
        assert unreadable == [], unreadable[:3]
        name = f"email-long-{width}-{scheme}.png"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / name))
        if os.environ.get("UPDATE_GOLDEN") == "1" and width in (375, 600):
            shutil.copyfile(ARTIFACTS / name, DOCS / name)
        tenth = page.locator(".contents-list a").nth(9)
        title = tenth.inner_text()
        tenth.click()
        page.wait_for_function("location.hash === '#story-10'")
        story = page.locator("#story-10 h3")
        assert story.inner_text() == title
        box = story.bounding_box()
        assert box is not None and 0 <= box["y"] < 812  # scrolled into view
    finally:
        page.close()
