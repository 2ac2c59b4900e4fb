"""Collecting from local folders and feeds (a file, and a real local HTTP server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from digest import store
from digest.collect import collect_sources
from digest.collect.dedupe import canonical_url
from digest.collect.feeds import parse_feed
from digest.pipeline import open_store
from digest.settings import load_settings
from tests.conftest import SAMPLES, write_config


def test_bundled_feed_is_parsed_and_sanitized():
    articles = list(parse_feed((SAMPLES / "feed.xml").read_bytes(), "Wire"))
    assert len(articles) == 4
    text = " ".join(p for a in articles for p in a.paragraphs)
    assert "alert(1)" not in text and "<script" not in text
    assert all(a.url and a.url.startswith("https://news.example.com/") for a in articles)
    assert all(a.published_at is not None and a.byline for a in articles)


@pytest.fixture
def feed_server() -> Iterator[str]:
    feed = (SAMPLES / "feed.xml").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/feed.xml":
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.end_headers()
                self.wfile.write(feed)
            else:
                self.send_response(500)
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_broken_source_is_recorded_and_the_rest_collected(tmp_path, feed_server):
    path = write_config(
        tmp_path,
        f"""
[[sources]]
name = "Over HTTP"
kind = "feed"
location = "{feed_server}/feed.xml"

[[sources]]
name = "Broken"
kind = "feed"
location = "{feed_server}/error"

[[sources]]
name = "Missing folder"
kind = "folder"
location = "{tmp_path / "nowhere"}"
""",
    )
    settings = load_settings(path)
    engine = open_store(settings)
    reports = {r.name: r for r in collect_sources(settings, engine)}
    assert reports["Local Desk"].new == 6
    assert reports["Example Science Wire"].new == 4
    assert reports["Over HTTP"].new == 0 and reports["Over HTTP"].seen == 4  # same URLs
    assert reports["Broken"].error and "500" in reports["Broken"].error
    assert reports["Missing folder"].error and "does not exist" in reports["Missing folder"].error
    with store.transaction(engine) as conn:
        health = {h["name"]: h for h in store.source_health(conn)}
    assert health["Broken"]["last_status"] == "error"
    assert health["Broken"]["consecutive_failures"] == 1
    assert health["Local Desk"]["last_status"] == "ok"
    again = {r.name: r for r in collect_sources(settings, engine)}
    assert again["Local Desk"].new == 0 and again["Local Desk"].seen == 6


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTPS://News.Example.COM/a/b?utm_source=x&id=7#top", "https://news.example.com/a/b?id=7"),
        ("https://example.com:443/x?fbclid=1&gclid=2", "https://example.com/x"),
        ("http://example.com:8080/x?page=2", "http://example.com:8080/x?page=2"),
    ],
)
def test_canonical_urls(url, canonical):
    assert canonical_url(url) == canonical
