"""Links inside feeds are someone else's: they never reach private addresses, and
passwords in source URLs and tricks in titles never reach the reader or the operator's
screen."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

from digest import store
from digest.collect import collect_sources
from digest.collect.collector import source_health
from digest.models import Article, Digest, DigestItem, Summary
from digest.pipeline import open_store
from digest.render import SUBJECT_MAX, subject_line
from digest.safetext import without_password
from digest.settings import Settings, load_settings
from tests.httpserver import LocalServer

pytest_plugins = ["tests.httpserver"]  # the http_server fixture

SECRET = "internal-only: the admin token is 0451"


def _settings(
    tmp_path: Path, feed_url: str, collect: str = "", full_text: str = "always"
) -> Settings:
    path = tmp_path / "digest.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "var"}"\n\n[collect]\ntimeout = 3\n{collect}\n\n'
        f'[[sources]]\nname = "Wire"\nkind = "feed"\nlocation = "{feed_url}"\n'
        f'full_text = "{full_text}"\n',
        encoding="utf-8",
    )
    return load_settings(path)


def _feed(*links: str) -> str:
    items = "".join(
        f"<item><title>Story {n}</title><link>{link}</link>"
        f"<description>A teaser for story {n}…</description></item>"
        for n, link in enumerate(links)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>W</title>{items}</channel></rss>'
    )


def _page(text: str) -> str:
    body = "".join(f"<p>{text} Paragraph {n} has enough words to be a story.</p>" for n in range(4))
    return f"<html><head><title>Page</title></head><body><article>{body}</article></body></html>"


def _stored_text(settings: Settings) -> str:
    with store.transaction(open_store(settings)) as conn:
        return " ".join(" ".join(a.paragraphs) for a in store.unsent_articles(conn, "daily", 50))


def test_a_feed_link_to_a_private_address_is_not_fetched(tmp_path, http_server: LocalServer):
    secret = http_server.serve("/secret", _page(SECRET), "text/html")
    # The same internal page behind a redirect from a host the operator allowed.
    hop = http_server.redirect("/hop", secret).replace("127.0.0.1", "localhost")
    http_server.serve("/feed.xml", _feed(secret, hop))
    settings = _settings(
        tmp_path, http_server.url("/feed.xml"), 'allow_private_hosts = ["localhost"]'
    )
    [report] = collect_sources(settings, open_store(settings))
    assert report.status == "partial"
    assert "private or reserved address" in (report.error or "")
    assert "collect.allow_private_hosts" in (report.error or "")
    assert http_server.hits()["/secret"] == 0  # never even asked
    assert http_server.hits()["/hop"] == 1  # the allowed host was asked; its redirect refused
    assert "0451" not in _stored_text(settings)


def test_allow_private_hosts_lets_the_operator_name_exceptions(tmp_path, http_server: LocalServer):
    secret = http_server.serve("/intranet", _page("Intranet news for staff."), "text/html")
    http_server.serve("/feed.xml", _feed(secret))
    settings = _settings(
        tmp_path, http_server.url("/feed.xml"), 'allow_private_hosts = ["127.0.0.0/8"]'
    )
    [report] = collect_sources(settings, open_store(settings))
    assert report.status == "ok" and report.error is None
    assert "Intranet news for staff." in _stored_text(settings)


def test_a_password_in_a_source_url_is_never_shown(tmp_path, http_server: LocalServer):
    url = http_server.url("/missing.xml").replace("http://", "http://editor:hunter2@")
    settings = _settings(tmp_path, url)
    [report] = collect_sources(settings, open_store(settings))
    assert report.status == "error" and "hunter2" not in (report.error or "")
    [health] = source_health(settings, open_store(settings))
    assert "hunter2" not in health.location and "editor:***@" in health.location
    assert "hunter2" not in (health.last_error or "")
    assert without_password("https://a:b@x.example/f?q=1") == "https://a:***@x.example/f?q=1"


def test_titles_lose_bidi_overrides_and_subjects_are_capped(tmp_path, http_server: LocalServer):
    tricky = "Invoice \u202eexe.pdf\u202c and a hidden\u200bword"
    body = "Body text of a story. " * 30
    entry = f"<item><title>{tricky}</title><link>https://example.org/a</link>"
    entry += f"<description>{body}</description></item>"
    http_server.serve("/feed.xml", _feed().replace("</channel>", entry + "</channel>"))
    settings = _settings(tmp_path, http_server.url("/feed.xml"), full_text="never")
    collect_sources(settings, open_store(settings))
    with store.transaction(open_store(settings)) as conn:
        [article] = store.unsent_articles(conn, "daily", 50)
    assert article.title == "Invoice exe.pdf and a hiddenword"

    huge = Article(title="word " * 7000, paragraphs=("x",), source="Wire")
    digest = Digest(
        "daily/2026-12-02", "Wire", date(2026, 12, 2), (DigestItem(huge, Summary("", ())),)
    )
    subject = subject_line(digest, "{name}: {headline}")
    assert len(subject) <= SUBJECT_MAX and subject.endswith("word…")
    assert (
        subject_line(
            replace(digest, items=(DigestItem(replace(huge, title=tricky), Summary("", ())),)),
            "{headline}",
        )
        == "Invoice exe.pdf and a hiddenword"
    )
