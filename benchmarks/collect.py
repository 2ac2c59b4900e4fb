"""Collection throughput: 200 feeds × 20 entries from a local HTTP server, into SQLite.

The server runs in a separate process (threaded http.server, HTTP/1.1 keep-alive, an ETag
per feed) so it does not share this process's interpreter lock. Each entry carries a full
body (~150 words), so no article page is fetched: the figure is fetch + parse + sanitize
+ dedupe + store.

- cold: a fresh database each run, every feed fetched, parsed and stored;
- all 304: the same database again, every feed answers 304 Not Modified.

References in the same script: one plain sequential httpx GET of the same 200 URLs, and
feedparser's parse of the same 200 bodies with its default settings.

    .venv/bin/python benchmarks/collect.py [--runs 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import feedparser  # noqa: E402
import httpx  # noqa: E402

from digest.collect import collect_sources  # noqa: E402
from digest.collect.feeds import parse_feed_document  # noqa: E402
from digest.pipeline import open_store  # noqa: E402
from digest.settings import Settings  # noqa: E402

FEEDS = 200
ENTRIES = 20


def make_feed(n: int) -> bytes:
    items = []
    for e in range(ENTRIES):
        body = "".join(
            f"<p>Paragraph {p} of story {e} in feed {n}: the council met on Tuesday and agreed "
            "to spend more on the harbour wall, which storms had damaged last winter, said "
            f"officials who spoke after the meeting &amp; took questions {p * e}.</p>"
            for p in range(4)
        )
        items.append(
            f"<item><title>Story {e} of feed {n}: harbour wall vote</title>"
            f"<link>https://site{n}.example.org/{e}?utm_source=rss</link>"
            f"<guid>feed-{n}-story-{e}</guid><pubDate>Mon, 23 Nov 2026 08:{e:02d}:00 GMT</pubDate>"
            f"<author>desk@site{n}.example.org (Desk {n})</author>"
            f"<description><![CDATA[{body}]]></description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Feed {n}</title><link>https://site{n}.example.org/</link>"
        f"{''.join(items)}</channel></rss>"
    ).encode()


def serve(port_out: Any) -> None:
    feeds = {f"/feed/{n}.xml": make_feed(n) for n in range(FEEDS)}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, each response waits for
        # the client's delayed ACK (~40 ms) and the benchmark would measure that instead.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            body = feeds.get(self.path)
            tag = f'"{hash(self.path) & 0xFFFF:x}"'
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.headers.get("If-None-Match") == tag:
                self.send_response(304)
                self.send_header("ETag", tag)
                self.end_headers()
            else:
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("ETag", tag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    server = Server(("127.0.0.1", 0), Handler)
    port_out.send(server.server_address[1])
    server.serve_forever()


def parse_all(bodies: list[bytes]) -> float:
    """In a parse worker: parse every body as collection does; the worker's peak RSS in MB."""
    for body in bodies:
        parse_feed_document(body)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_peak_mb(bodies: list[bytes]) -> float:
    # The same kind of worker collection starts (forkserver, parser preloaded), given all
    # 200 feeds: an upper bound for any one worker, which gets a share of them.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", "digest.collect.feeds"])
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(parse_all, bodies).result()


def settings_for(base: str, data_dir: Path) -> Settings:
    sources = [
        {"name": f"Feed {n}", "kind": "feed", "location": f"{base}/feed/{n}.xml"}
        for n in range(FEEDS)
    ]
    return Settings(data_dir=data_dir, sources=sources)


def median_of(runs: int, work: Callable[[], float], best: list[float] | None = None) -> float:
    samples = [work() for _ in range(runs)]
    if best is not None:
        best.append(min(samples))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=serve, args=(send,), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{receive.recv()}"
    urls = [f"{base}/feed/{n}.xml" for n in range(FEEDS)]
    articles = FEEDS * ENTRIES
    try:
        with tempfile.TemporaryDirectory() as tmp:

            def cold() -> float:
                data = Path(tempfile.mkdtemp(dir=tmp))
                settings = settings_for(base, data)
                engine = open_store(settings)  # schema creation is not collection
                start = time.perf_counter()
                reports = collect_sources(settings, engine)
                took = time.perf_counter() - start
                assert sum(r.new for r in reports) == articles, [r for r in reports if r.error]
                engine.dispose()
                return took

            warm_settings = settings_for(base, Path(tmp) / "warm")
            warm_engine = open_store(warm_settings)
            collect_sources(warm_settings, warm_engine)

            def all_304() -> float:
                start = time.perf_counter()
                reports = collect_sources(warm_settings, warm_engine)
                took = time.perf_counter() - start
                assert all(r.status == "not modified" for r in reports)
                return took

            best: list[float] = []
            cold_s = median_of(runs, cold, best)
            warm_s = median_of(runs, all_304, best)
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        with httpx.Client() as client:
            bodies = [client.get(u).content for u in urls]

            def sequential() -> float:
                start = time.perf_counter()
                for url in urls:
                    client.get(url).raise_for_status()
                return time.perf_counter() - start

            fetch_s = median_of(runs, sequential)

        def parse_only() -> float:
            start = time.perf_counter()
            for body in bodies:
                feedparser.parse(body)
            return time.perf_counter() - start

        parse_s = median_of(runs, parse_only)
        worker_mb = worker_peak_mb(bodies)
    finally:
        server.terminate()

    print(f"{FEEDS} feeds x {ENTRIES} entries = {articles} articles, median of {runs} runs")
    print(
        f"cold (fetch, parse, store):  {cold_s:6.2f} s  {articles / cold_s:8.0f} articles/s"
        f"  (best {best[0]:.2f} s)"
    )
    print(
        f"all 304 (nothing changed):   {warm_s:6.2f} s  {FEEDS / warm_s:8.0f} feeds/s"
        f"  (best {best[1]:.2f} s)"
    )
    print(f"peak RSS, this process:      {peak_mb:6.0f} MB (after the collection runs)")
    print(f"peak RSS, one parse worker:  {worker_mb:6.0f} MB (given all {FEEDS} feeds)")
    print(f"reference: sequential httpx GET of the {FEEDS} URLs:  {fetch_s:6.2f} s")
    print(f"reference: feedparser.parse of the {FEEDS} bodies:    {parse_s:6.2f} s")
    print(
        f"ratio cold / (sequential fetch + feedparser parse): {cold_s / (fetch_s + parse_s):.2f}x; "
        f"all-304 / sequential fetch: {warm_s / fetch_s:.2f}x"
    )
    print("targets: cold < 3 s, all 304 < 1 s, peak RSS < 150 MB")


if __name__ == "__main__":
    main()
