"""Collecting from local folders and feeds (a file, and a real local HTTP server)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from digest import store
from digest.collect import SourceReport, collect_sources
from digest.collect.collector import POOL_FROM_FEEDS
from digest.collect.dedupe import canonical_url, fingerprint
from digest.collect.feeds import ParsedFeed, body_paragraphs, parse_feed, parse_feed_document
from digest.collect.fetch import Fetcher
from digest.collect.files import read_folder
from digest.collect.readers import Reader
from digest.errors import DigestError
from digest.models import Article, Summary
from digest.pipeline import open_store
from digest.settings import CollectSettings, Settings, load_settings
from tests.conftest import FIXTURES, SAMPLES, write_config

pytest_plugins = ["tests.httpserver"]  # the http_server fixture


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


# -- formats and sanitizing ----------------------------------------------------------------

FEEDS = FIXTURES / "feeds"


@pytest.mark.parametrize(
    ("name", "version", "first_title"),
    [
        ("rss091.xml", "rss091n", "Café owners ask for longer terrace hours"),
        ("rss10.rdf", "rss10", "Dome shutter repaired before the winter viewing season"),
        ("atom.xml", "atom10", "Pilot boats get quieter engines"),
        ("feed.json", "json", "Volunteers count more hedgehogs in town gardens"),
    ],
)
def test_every_feed_format_is_read(name, version, first_title):
    feed = parse_feed_document((FEEDS / name).read_bytes())
    assert feed.version == version
    assert feed.entries[0].title == first_title
    assert all(e.paragraphs and e.link and e.guid for e in feed.entries)


def test_feed_details_are_read_as_plain_text():
    atom = parse_feed_document((FEEDS / "atom.xml").read_bytes())
    assert atom.title == "Harbour & Coast"
    entry = atom.entries[0]
    assert entry.byline == "Maren Holt"
    assert (
        entry.published_at is not None
        and entry.published_at.isoformat() == "2026-11-25T07:45:00+00:00"
    )
    assert entry.guid == "tag:coast.example.com,2026:pilot-boats"
    json_feed = parse_feed_document((FEEDS / "feed.json").read_bytes())
    assert json_feed.problem == "1 item(s) are not valid JSON Feed items and were skipped"
    hedgehogs, frost = json_feed.entries
    assert hedgehogs.link == "https://fieldnotes.example.org/hedgehog-census"  # no fbclid
    assert hedgehogs.guid == "101" and hedgehogs.byline == "Ola Nordby"
    assert frost.paragraphs == (
        "The first ground frost was recorded on 9 November.",
        "That is eleven days later than the thirty-year average.",
    )


def test_hostile_html_leaves_no_markup_behind():
    (entry,) = parse_feed_document((FEEDS / "hostile.xml").read_bytes()).entries
    assert entry.title == "Bold claims about the bridge"
    assert entry.link is None  # a javascript: link is no link
    assert entry.paragraphs == (
        "The bridge reopened on Monday after repairs.",
        "Escaped twice: the feed escaped its own markup.",
        "Click here for details.",
    )
    text = " ".join((entry.title, *entry.paragraphs))
    assert "<" not in text and ">" not in text and "alert" not in text and "display" not in text


def test_an_ill_formed_feed_keeps_what_was_parsed():
    feed = parse_feed_document((FEEDS / "illformed.xml").read_bytes())
    assert feed.problem is not None and "not well-formed" in feed.problem
    assert [e.title for e in feed.entries][:1] == ["First story survives the broken markup"]


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        (
            b"<html><body><p>Hello</p></body></html>",
            "text/html",
            "not a feed (served as text/html)",
        ),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png", "not a feed (served as image/png)"),
        (b'{"hello": "world"}', "application/json", "not a JSON Feed"),
        (b"", None, "not a feed"),
    ],
)
def test_what_is_not_a_feed_is_one_sentence(data, content_type, message):
    with pytest.raises(DigestError, match=re.escape(message)):
        parse_feed_document(data, content_type=content_type)


@pytest.mark.parametrize(
    ("markup", "teaser"),
    [
        ("<p>" + "word " * 120 + "</p>", False),
        ("<p>" + "word " * 30 + "</p>", True),  # short
        ("<p>" + "word " * 120 + "and then…</p>", True),  # cut
        ("<p>" + "word " * 120 + "</p><p><a href='/x'>Read more</a></p>", True),
        ("<p>" + "word " * 120 + "</p><p>The post Word appeared first on Site.</p>", True),
    ],
)
def test_teasers_are_recognised(markup, teaser):
    paragraphs, is_teaser = body_paragraphs(markup, "Title")
    assert is_teaser is teaser
    assert not any("Read more" in p or "appeared first" in p for p in paragraphs)


def test_a_last_paragraph_that_only_starts_like_chrome_is_kept():
    markup = "<p>" + "word " * 120 + "</p><p>More than 200 people came to the meeting.</p>"
    paragraphs, is_teaser = body_paragraphs(markup, "Title")
    assert paragraphs[-1] == "More than 200 people came to the meeting." and not is_teaser


def test_markdown_and_html_files_are_read(tmp_path):
    (tmp_path / "a.md").write_text(
        "# Ferry timetable changes\n\nBy Ana Berg\n\nThe *winter* timetable starts on Monday, "
        "with [two fewer crossings](https://x.example/) each evening, the operator said.\n\n"
        "- Passengers can still book the late boat.\n",
        encoding="utf-8",
    )
    (tmp_path / "b.html").write_text(_page("Market hall reopens", 4), encoding="utf-8")
    articles = {a.title: a for a in read_folder(tmp_path, "Desk")}
    ferry = articles["Ferry timetable changes"]
    assert ferry.byline == "Ana Berg"
    assert ferry.paragraphs[0].startswith("The winter timetable starts on Monday, with two fewer")
    assert articles["Market hall reopens"].paragraphs[0].startswith("Paragraph 0 of Market hall")


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://e.org/a?b=2&a=1&utm_medium=x&_hsenc=y", "https://e.org/a?b=2&a=1"),
        ("https://E.org", "https://e.org/"),
        ("https://e.org:bad/x", "https://e.org:bad/x"),  # unparseable port: left as is
        ("https://[2001:db8::1]:8443/x#frag", "https://[2001:db8::1]:8443/x"),
    ],
)
def test_more_canonical_urls(url, canonical):
    assert canonical_url(url) == canonical


def test_fingerprint_matches_a_story_with_or_without_its_dateline():
    body = [
        "The council agreed on Tuesday to rebuild the harbour wall before the winter storms, "
        "after engineers warned that another season of gales could breach it near the old "
        "ferry slip and flood the warehouses behind it."
    ]
    assert fingerprint("Harbour wall", body) == fingerprint(
        "Harbour Wall!", ["KIRKWALL — " + body[0] + " More text that differs later."]
    )
    assert fingerprint("Harbour wall", body) != fingerprint("Harbour wall", ["Another story."])


# -- collection from a real local server ----------------------------------------------------


def _words(n: int, seed: str) -> str:
    return " ".join(f"{seed}{i % 7}" for i in range(n))


def _paragraphs(title: str, n: int) -> list[str]:
    return [
        f"Paragraph {i} of {title} says the council met on Tuesday and agreed to spend more "
        "on the harbour wall, which storms had damaged, according to officials who spoke "
        "after the meeting."
        for i in range(n)
    ]


def _page(title: str, n: int) -> str:
    body = "".join(f"<p>{p}</p>" for p in _paragraphs(title, n))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title} | Coast News</title>"
        "</head><body><nav><a href='/'>Home</a> <a href='/news'>News</a></nav>"
        f"<article><h1>{title}</h1>{body}</article>"
        "<aside><h3>Related</h3><ul><li><a href='/x'>Other story</a></li></ul></aside>"
        "<footer>Copyright 2026 Coast News. All rights reserved.</footer></body></html>"
    )


def _rss(items: list[dict[str, str]], title: str = "Test Wire") -> bytes:
    parts = []
    for item in items:
        fields = "".join(
            f"<{k}>{v}</{k}>"
            if k != "content"
            else f"<content:encoded><![CDATA[{v}]]></content:encoded>"
            for k, v in item.items()
        )
        parts.append(f"<item>{fields}</item>")
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>{title}</title>{''.join(parts)}</channel></rss>"
    ).encode()


def _full(
    title: str, link: str, guid: str | None = None, date: str = "Mon, 23 Nov 2026 08:00:00 GMT"
) -> dict[str, str]:
    body = "".join(f"<p>{p}</p>" for p in _paragraphs(title, 3))
    return {"title": title, "link": link, "guid": guid or link, "pubDate": date, "content": body}


# Timeouts generous enough for a loaded CI machine; only the stalling server waits them out.
def _settings(
    tmp_path: Path,
    sources: str,
    # The local test server stands in for the web: links to it are allowed.
    collect: str = 'timeout = 2\nmax_bytes = 65536\nallow_private_hosts = ["127.0.0.1"]',
) -> Settings:
    path = tmp_path / "digest.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "var"}"\n\n[collect]\n{collect}\n\n{sources}', encoding="utf-8"
    )
    return load_settings(path)


def _feed_source(name: str, url: str, extra: str = "") -> str:
    return f'[[sources]]\nname = "{name}"\nkind = "feed"\nlocation = "{url}"\n{extra}\n'


def _collect(settings: Settings) -> dict[str, SourceReport]:
    engine = open_store(settings)
    return {r.name: r for r in collect_sources(settings, engine)}


def _stored(settings: Settings) -> list[Article]:
    engine = open_store(settings)
    with store.transaction(engine) as conn:
        return store.unsent_articles(conn, "daily", 1000)


def test_conditional_get_stores_validators_and_skips_an_unchanged_feed(tmp_path, http_server):
    items = [_full(f"Story {n}", http_server.url(f"/s{n}")) for n in range(3)]
    url = http_server.serve(
        "/feed.xml", _rss(items), etag='"abc"', last_modified="Mon, 23 Nov 2026 09:00:00 GMT"
    )
    settings = _settings(tmp_path, _feed_source("Wire", url, 'full_text = "never"'))
    first = _collect(settings)["Wire"]
    assert (first.status, first.new, first.seen) == ("ok", 3, 0)
    again = _collect(settings)["Wire"]
    assert (again.status, again.new, again.seen, again.error) == ("not modified", 0, 0, None)
    sent = http_server.requests[-1].headers
    assert (
        sent["If-None-Match"] == '"abc"'
        and sent["If-Modified-Since"] == "Mon, 23 Nov 2026 09:00:00 GMT"
    )
    with store.transaction(open_store(settings)) as conn:
        (row,) = store.source_health(conn)
    assert (row["etag"], row["last_status"], row["last_http_status"], row["articles"]) == (
        '"abc"',
        "not modified",
        304,
        3,
    )


def test_teasers_are_completed_from_their_pages_once(tmp_path, http_server):
    items = []
    for n in range(3):
        link = http_server.serve(f"/story/{n}", _page(f"Story {n}", 4), "text/html; charset=utf-8")
        items.append(
            {"title": f"Story {n}", "link": link, "description": f"A short teaser for story {n}…"}
        )
    full_link = http_server.url("/story/full")
    items.append(_full("Full story", full_link))
    http_server.serve("/teasers.xml", _rss(items))
    settings = _settings(tmp_path, _feed_source("Teasers", http_server.url("/teasers.xml")))
    report = _collect(settings)["Teasers"]
    assert (report.status, report.new, report.seen) == ("ok", 4, 0)
    stored = {a.title: a for a in _stored(settings)}
    assert stored["Story 1"].paragraphs == tuple(_paragraphs("Story 1", 4))
    assert stored["Full story"].paragraphs == tuple(_paragraphs("Full story", 3))
    hits = http_server.hits()
    assert hits["/story/0"] == 1 and hits["/story/full"] == 0  # a full entry needs no page
    again = _collect(settings)["Teasers"]
    assert (again.new, again.seen) == (0, 4)
    assert http_server.hits()["/story/0"] == 1  # a known entry's page is not fetched again
    assert _stored(settings)[0].paragraphs == tuple(_paragraphs("Story 0", 4))  # nor overwritten


def test_full_text_never_keeps_teasers_and_a_failed_page_keeps_its_teaser(tmp_path, http_server):
    good = http_server.serve("/story/ok", _page("Good", 3), "text/html")
    items = [
        {"title": "Good", "link": good, "description": "Teaser of the good one…"},
        {
            "title": "Missing",
            "link": http_server.url("/story/missing"),
            "description": "Teaser of a 404…",
        },
        {
            "title": "Image",
            "link": http_server.serve("/story/img", b"\x89PNG", "image/png"),
            "description": "Teaser…",
        },
    ]
    feed = http_server.serve("/t.xml", _rss(items))
    settings = _settings(
        tmp_path,
        _feed_source("Auto", feed) + _feed_source("Never", feed, 'full_text = "never"'),
    )
    reports = _collect(settings)
    auto = reports["Auto"]
    assert auto.status == "partial" and auto.new == 3
    assert auto.error is not None and auto.error.startswith(
        "2 of 3 article pages could not be read, so their feed teasers were kept (first: "
    )
    assert "answered 404 Not Found" in auto.error
    assert reports["Never"].new == 0 and reports["Never"].seen == 3  # same URLs as Auto
    stored = {a.title: a for a in _stored(settings)}
    assert stored["Good"].paragraphs == tuple(_paragraphs("Good", 3))
    assert stored["Missing"].paragraphs == ("Teaser of a 404…",)
    with store.transaction(open_store(settings)) as conn:
        health = {h["name"]: h for h in store.source_health(conn)}
    assert (
        health["Auto"]["last_status"] == "partial" and health["Auto"]["consecutive_failures"] == 0
    )


def test_full_text_always_replaces_even_a_full_feed_body(tmp_path, http_server):
    link = http_server.serve("/story/long", _page("Long", 5), "text/html")
    feed = http_server.serve("/f.xml", _rss([_full("Long", link)]))
    settings = _settings(tmp_path, _feed_source("Always", feed, 'full_text = "always"'))
    assert _collect(settings)["Always"].new == 1
    assert _stored(settings)[0].paragraphs == tuple(_paragraphs("Long", 5))


def test_a_pages_source_fetches_each_new_url_once(tmp_path, http_server):
    one = http_server.serve("/a/1", _page("Page one", 3), "text/html")
    two = http_server.redirect(
        "/a/2", http_server.serve("/a/2-moved", _page("Page two", 3), "text/html")
    )
    missing = http_server.url("/a/missing")
    settings = _settings(
        tmp_path,
        '[[sources]]\nname = "Pages"\nkind = "pages"\n'
        f'urls = ["{one}?utm_source=x", "{two}", "{missing}"]\n',
    )
    report = _collect(settings)["Pages"]
    assert (report.status, report.new, report.seen) == ("partial", 2, 0)
    assert report.error is not None and report.error.startswith(
        "1 of 3 pages could not be read (first: "
    )
    urls = sorted(a.url or "" for a in _stored(settings))
    assert urls == [one, http_server.url("/a/2-moved")]
    again = _collect(settings)["Pages"]
    assert (again.new, again.seen) == (0, 2)
    hits = http_server.hits()
    assert hits["/a/1?utm_source=x"] == 0 and hits["/a/1"] == 1 and hits["/a/missing"] == 2


def test_every_kind_of_failure_is_recorded_and_never_stops_the_rest(tmp_path, http_server):
    good = http_server.serve("/good.xml", _rss([_full("Good news", http_server.url("/g"))]))
    http_server.serve("/gone.xml", b"", status=410)
    http_server.serve("/boom.xml", b"", status=500)
    http_server.serve("/page.html", _page("Not a feed", 2), "text/html")
    http_server.serve("/img.png", b"\x89PNG\r\n\x1a\n", "image/png")
    http_server.serve("/bozo.xml", (FEEDS / "illformed.xml").read_bytes())
    failing = {
        "Stalls": (http_server.stall("/stall.xml"), "did not answer within 2 s"),
        "Missing": (http_server.url("/missing.xml"), "answered 404 Not Found; check the URL"),
        "Gone": (http_server.url("/gone.xml"), "answered 410 Gone; the site removed it"),
        "Broken": (http_server.url("/boom.xml"), "answered 500 Internal Server Error"),
        "No DNS": ("http://feeds.invalid/rss", "Could not find the host feeds.invalid"),
        "No TLS": (http_server.url("/good.xml").replace("http:", "https:"), "TLS handshake"),
        "HTML": (http_server.url("/page.html"), "not a feed (served as text/html)"),
        "Image": (http_server.url("/img.png"), "not a feed (served as image/png)"),
        "Huge": (http_server.endless("/huge.xml"), "sent more than 64 KB; cut off"),
        "No file": (str(tmp_path / "missing.xml"), "does not exist; fix its location"),
    }
    sources = _feed_source("Good", good) + _feed_source(
        "Bozo", http_server.url("/bozo.xml"), 'full_text = "never"'
    )
    sources += "".join(_feed_source(name, url) for name, (url, _) in failing.items())
    sources += (
        f'[[sources]]\nname = "No folder"\nkind = "folder"\nlocation = "{tmp_path / "nowhere"}"\n'
    )
    settings = _settings(tmp_path, sources)
    reports = _collect(settings)
    assert list(reports) == ["Good", "Bozo", *failing, "No folder"]  # config order
    assert (reports["Good"].status, reports["Good"].new) == ("ok", 1)
    bozo = reports["Bozo"]
    assert bozo.status == "partial" and bozo.new >= 1
    assert bozo.error is not None and "not well-formed" in bozo.error
    for name, (_, message) in failing.items():
        assert reports[name].status == "error", name
        assert message in (reports[name].error or ""), (name, reports[name].error)
        assert "\n" not in (reports[name].error or "") and "Traceback" not in (
            reports[name].error or ""
        )
    assert "does not exist" in (reports["No folder"].error or "")
    _collect(settings)
    with store.transaction(open_store(settings)) as conn:
        health = {h["name"]: h for h in store.source_health(conn)}
    assert (
        health["Missing"]["consecutive_failures"] == 2
        and health["Missing"]["last_http_status"] == 404
    )
    assert (
        health["Good"]["consecutive_failures"] == 0
        and health["Good"]["last_success_at"] is not None
    )


def test_the_same_story_from_two_feeds_is_stored_once(tmp_path, http_server):
    story = _full("Harbour wall funded", "https://coast.example.com/wall?utm_source=rss")
    syndicated = dict(story, link="https://wire.example.org/coast/wall", guid="wire-991")
    tracked = dict(story, link="https://coast.example.com/wall?fbclid=zzz", guid="other-guid")
    a = http_server.serve("/a.xml", _rss([story]))
    b = http_server.serve("/b.xml", _rss([syndicated, tracked]))
    settings = _settings(tmp_path, _feed_source("Coast", a) + _feed_source("Wire", b))
    reports = _collect(settings)
    assert (reports["Coast"].new, reports["Wire"].new, reports["Wire"].seen) == (1, 0, 2)
    (only,) = _stored(settings)
    assert only.url == "https://coast.example.com/wall" and only.source == "Coast"


def test_a_republished_story_is_not_new_and_an_edited_one_is_refreshed(tmp_path, http_server):
    link = "https://coast.example.com/wall"
    original = _full("Harbour wall funded", link, guid="wall-1")
    http_server.serve("/f.xml", _rss([original]))
    settings = _settings(tmp_path, _feed_source("Coast", http_server.url("/f.xml")))
    assert _collect(settings)["Coast"].new == 1
    engine = open_store(settings)
    with store.transaction(engine) as conn:
        (article,) = store.unsent_articles(conn, "daily", 10)
        store.create_digest(
            conn,
            key="daily/2026-11-28",
            list_name="daily",
            day=date(2026, 11, 28),
            subject="s",
            html="h",
            text="t",
            items=[(article.id or 0, Summary("lead", ()))],
        )
    republished = dict(original, pubDate="Sat, 28 Nov 2026 10:00:00 GMT")
    http_server.serve("/f.xml", _rss([republished]))
    report = _collect(settings)["Coast"]
    assert (report.new, report.seen, report.updated) == (0, 1, 0)
    edited = dict(
        original,
        title="Harbour wall funded after vote",
        content="<p>" + _words(100, "edit") + "</p>",
    )
    http_server.serve("/f.xml", _rss([edited]))
    report = _collect(settings)["Coast"]
    assert (report.new, report.seen, report.updated) == (0, 1, 1)
    assert _stored(settings) == []  # already in a sent digest of this list: never again
    with store.transaction(engine) as conn:
        (title,) = conn.execute(sa.select(store.articles.c.title)).scalars()
    assert title == "Harbour wall funded after vote"  # the stored copy is the latest version


def test_collect_and_sources_commands_print_health(tmp_path, http_server, cli, config_file):
    http_server.serve("/feed.xml", _rss([_full("Good news", http_server.url("/g"))]))
    with config_file.open("a", encoding="utf-8") as f:
        f.write("\n[collect]\ntimeout = 2\n\n")
        f.write(_feed_source("Remote", http_server.url("/feed.xml")))
        f.write(_feed_source("Dead", http_server.url("/dead.xml")))
    done = cli("collect")
    assert done.returncode == 0, done.stderr
    assert "Remote" in done.stdout and "answered 404 Not Found" in done.stdout
    assert "1 of 4 sources failed; the others were collected." in done.stdout
    listed = cli("sources")
    assert listed.returncode == 0, listed.stderr
    for text in ("Local Desk", "folder", "Remote", "feed", "ok", "error", "Failures in a row"):
        assert text in listed.stdout


def test_many_feeds_are_parsed_in_worker_processes_with_the_same_result(tmp_path, http_server):
    count = POOL_FROM_FEEDS + 1
    sources = ""
    for n in range(count):
        items = [_full(f"Feed {n} story {e}", http_server.url(f"/{n}/{e}")) for e in range(2)]
        sources += _feed_source(f"Feed {n}", http_server.serve(f"/{n}.xml", _rss(items)))
    sources += _feed_source(
        "Bozo", http_server.serve("/bozo.xml", (FEEDS / "illformed.xml").read_bytes())
    )
    sources += _feed_source("HTML", http_server.serve("/p.html", _page("Page", 2), "text/html"))
    reports = _collect(_settings(tmp_path, sources))
    assert [reports[f"Feed {n}"].new for n in range(count)] == [2] * count
    assert reports["Bozo"].status == "partial"
    assert "not a feed (served as text/html)" in (reports["HTML"].error or "")


def test_a_broken_worker_pool_falls_back_to_parsing_in_process():
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("forkserver"))
    pool.submit(os._exit, 1)  # the worker dies: the pool is broken from now on
    with pytest.raises(BrokenProcessPool):
        pool.submit(len, b"").result()

    async def parse() -> ParsedFeed:
        async with Fetcher(CollectSettings()) as fetcher:
            reader = Reader(fetcher, pool=pool)
            return await reader.parse((FEEDS / "atom.xml").read_bytes(), None, None)

    try:
        assert asyncio.run(parse()).entries[0].title == "Pilot boats get quieter engines"
    finally:
        pool.shutdown()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('kind = "pages"', "needs a list of urls"),
        ('kind = "pages"\nurls = ["ftp://x.example/a"]', "is not an http(s) URL"),
        ('kind = "feed"', "needs a location"),
        ('kind = "feed"\nlocation = "f.xml"\nfull_text = "sometimes"', "full_text"),
    ],
)
def test_source_settings_are_checked(tmp_path, source, message):
    with pytest.raises(DigestError, match=re.escape(message)):
        _settings(tmp_path, f'[[sources]]\nname = "S"\n{source}\n')


def test_extra_chrome_patterns_reach_the_cleaner(tmp_path):
    (tmp_path / "a.txt").write_text(
        "Harbour wall funded\n\nThe council agreed on Tuesday to rebuild the harbour wall.\n\n"
        "SPONSORED: buy a boat today.\n\nWork starts in March, officials said.\n",
        encoding="utf-8",
    )
    sources = f'[[sources]]\nname = "Desk"\nkind = "folder"\nlocation = "{tmp_path}"\n'
    settings = _settings(tmp_path, sources, 'extra_chrome_patterns = ["^SPONSORED:"]')
    assert _collect(settings)["Desk"].new == 1
    (article,) = _stored(settings)
    assert not any("SPONSORED" in p for p in article.paragraphs)
    with pytest.raises(DigestError, match="is not a regular expression"):
        _settings(tmp_path, sources, 'extra_chrome_patterns = ["(unclosed"]')


def test_a_database_from_before_source_health_gains_its_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = store.connect(url)
    health = ("last_http_status", "last_success_at", "last_new", "last_seen")
    with engine.begin() as conn:  # make it look like version 2: no health columns yet
        for column in health:
            conn.exec_driver_sql(f"ALTER TABLE sources DROP COLUMN {column}")
        conn.execute(store.schema_version.update().values(version=2))
    engine.dispose()
    engine = store.connect(url)
    with engine.begin() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("sources")}
        source_id = store.ensure_source(conn, "S", "feed", "x")
        store.record_source_health(conn, source_id, None, new=3, http_status=200)
        (row,) = store.source_health(conn)
    assert set(health) <= columns
    assert (row["last_new"], row["last_http_status"], row["last_status"]) == (3, 200, "ok")
