"""The HTTP client of collection against a real local server: every failure is one sentence."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from digest.collect.fetch import Fetched, Fetcher
from digest.settings import CollectSettings

if TYPE_CHECKING:
    from tests.httpserver import LocalServer

pytest_plugins = ["tests.httpserver"]  # the http_server fixture

# The local test server stands in for the web: links to it are allowed.
LOCAL_WEB = ["127.0.0.1"]
FAST = CollectSettings(
    timeout=1, max_bytes=64 * 1024, concurrency=8, per_host=4, allow_private_hosts=LOCAL_WEB
)
FEED = b"<?xml version='1.0'?><rss version='2.0'><channel><title>T</title></channel></rss>"


def fetch(url: str, settings: CollectSettings = FAST, **kwargs: Any) -> Fetched:
    async def go() -> Fetched:
        async with Fetcher(settings) as fetcher:
            return await fetcher.get(url, **kwargs)

    return asyncio.run(go())


def test_a_feed_is_fetched_with_a_real_user_agent_and_its_validators(http_server: LocalServer):
    url = http_server.serve(
        "/feed.xml", FEED, etag='"v1"', last_modified="Tue, 01 Dec 2026 08:00:00 GMT"
    )
    got = fetch(url)
    assert got.error is None and got.status == 200 and got.body == FEED
    assert got.etag == '"v1"' and got.last_modified == "Tue, 01 Dec 2026 08:00:00 GMT"
    sent = http_server.requests[0].headers
    assert sent["User-Agent"].startswith("digest/") and "gzip" in sent["Accept-Encoding"]
    assert "application/rss+xml" in sent["Accept"]


def test_conditional_get_answers_304_without_a_body(http_server: LocalServer):
    url = http_server.serve("/feed.xml", FEED, etag='"v1"')
    got = fetch(url, etag='"v1"', last_modified="Tue, 01 Dec 2026 08:00:00 GMT")
    assert got.not_modified and got.body == b""
    assert got.etag == '"v1"' and got.last_modified == "Tue, 01 Dec 2026 08:00:00 GMT"
    assert http_server.requests[0].headers["If-None-Match"] == '"v1"'


def test_http_errors_become_one_sentence_with_the_fix(http_server: LocalServer):
    http_server.serve("/gone", b"", status=410)
    http_server.serve("/broken", b"oops", status=500)
    missing = fetch(http_server.url("/missing"))
    assert missing.status == 404 and missing.error is not None
    assert missing.error.startswith(http_server.url("/missing") + " answered 404 Not Found;")
    assert "check the URL" in missing.error
    gone = fetch(http_server.url("/gone")).error or ""
    assert "410 Gone" in gone and "remove it from the config" in gone
    broken = fetch(http_server.url("/broken")).error or ""
    assert "500 Internal Server Error" in broken and "tried again next run" in broken


def test_a_server_that_stalls_is_given_up_after_the_timeout(http_server: LocalServer):
    got = fetch(http_server.stall("/slow"))
    assert got.status is None
    assert (
        got.error
        == f"{http_server.url('/slow')} did not answer within 1 s; it is tried again next run."
    )


def test_redirects_are_followed_and_a_loop_is_reported(http_server: LocalServer):
    target = http_server.serve("/new.xml", FEED)
    http_server.redirect("/old.xml", "/moved.xml")
    http_server.redirect("/moved.xml", target, status=302)
    got = fetch(http_server.url("/old.xml"))
    assert got.error is None and got.body == FEED and got.final_url == target
    http_server.redirect("/loop", "/loop")
    assert "redirects too many times" in (fetch(http_server.url("/loop")).error or "")


def test_an_endless_body_is_cut_off_at_the_size_cap(http_server: LocalServer):
    got = fetch(http_server.endless("/huge.xml"))
    assert got.body == b""
    assert got.error is not None and "sent more than 64 KB; cut off" in got.error


def test_a_declared_oversized_body_is_refused_before_reading(http_server: LocalServer):
    url = http_server.serve("/big.xml", b"x" * (65 * 1024))
    assert "sent more than 64 KB" in (fetch(url).error or "")


def test_gzip_is_decoded_and_the_cap_applies_to_the_decoded_size(http_server: LocalServer):
    url = http_server.serve("/gz.xml", FEED, compress=True)
    assert fetch(url).body == FEED
    bomb = http_server.serve("/bomb.xml", b"\0" * (1024 * 1024), compress=True)
    assert "cut off" in (fetch(bomb).error or "")


def test_tls_dns_and_refused_connections_are_named(http_server: LocalServer):
    tls = fetch(http_server.url("/feed.xml").replace("http://", "https://"))
    assert tls.error is not None and tls.error.startswith("The TLS handshake with 127.0.0.1 failed")
    dns = fetch("http://no-such-host.invalid/feed.xml")
    assert (
        dns.error
        == "Could not find the host no-such-host.invalid (DNS lookup failed); check the URL."
    )
    refused = fetch("http://127.0.0.1:1/feed.xml")
    assert refused.error is not None and "refused the connection" in refused.error


def test_a_bad_url_is_an_error_not_an_exception():
    assert "is not a valid http(s) URL" in (fetch("ftp://example.org/feed.xml").error or "")


def test_requests_to_one_host_are_limited(http_server: LocalServer):
    for n in range(8):
        http_server.serve(f"/f{n}.xml", FEED, delay=0.05)
    settings = CollectSettings(timeout=5, concurrency=8, per_host=2, allow_private_hosts=LOCAL_WEB)

    async def go() -> list[Fetched]:
        async with Fetcher(settings) as fetcher:
            return await asyncio.gather(
                *(fetcher.get(http_server.url(f"/f{n}.xml")) for n in range(8))
            )

    assert all(r.error is None for r in asyncio.run(go()))
    assert http_server.most_in_flight <= 2


def test_page_text_is_decoded_by_header_or_meta_charset():
    page = "<html><head><meta charset='iso-8859-1'></head><body>café</body></html>"
    assert "café" in Fetched("u", 200, page.encode("latin-1")).text()
    assert (
        "café"
        in Fetched(
            "u", 200, "café".encode("cp1252"), content_type="text/html; charset=cp1252"
        ).text()
    )
    assert "café" in Fetched("u", 200, "café".encode()).text()
