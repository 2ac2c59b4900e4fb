"""A real local HTTP server for collection tests: feeds, pages and every way a site fails.

Routes are registered per test; the server records each request's path and headers so a
test can see what the client sent (User-Agent, If-None-Match) and how often it asked.
"""

from __future__ import annotations

import gzip
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

Handler = Callable[["_Handler"], None]


@dataclass
class Request:
    path: str
    headers: dict[str, str]


@dataclass
class LocalServer:
    base: str = ""
    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self) -> Counter[str]:
        return Counter(r.path for r in self.requests)

    def serve(
        self,
        path: str,
        body: bytes | str,
        content_type: str = "application/rss+xml; charset=utf-8",
        *,
        status: int = 200,
        etag: str | None = None,
        last_modified: str | None = None,
        compress: bool = False,
        delay: float = 0.0,
    ) -> str:
        """Serve a fixed body; with an ETag or Last-Modified it answers 304 when unchanged."""
        data = body.encode() if isinstance(body, str) else body

        def handle(h: _Handler) -> None:
            if delay:
                self.stop.wait(delay)
            fresh = (etag and h.headers.get("If-None-Match") == etag) or (
                last_modified and h.headers.get("If-Modified-Since") == last_modified
            )
            headers = {"ETag": etag, "Last-Modified": last_modified}
            if fresh:
                h.reply(304, b"", headers=headers)
                return
            payload = gzip.compress(data) if compress else data
            extra = {"Content-Encoding": "gzip"} if compress else {}
            h.reply(status, payload, content_type, headers={**headers, **extra})

        self.routes[path] = handle
        return self.url(path)

    def redirect(self, path: str, to: str, status: int = 301) -> str:
        self.routes[path] = lambda h: h.reply(status, b"", headers={"Location": to})
        return self.url(path)

    def stall(self, path: str) -> str:
        """Accept the request, then say nothing until the server stops."""

        def handle(h: _Handler) -> None:
            self.stop.wait(30)

        self.routes[path] = handle
        return self.url(path)

    def endless(self, path: str, content_type: str = "application/rss+xml") -> str:
        """Stream a body that never ends (no Content-Length), until the client hangs up."""

        def handle(h: _Handler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Connection", "close")
            h.end_headers()
            chunk = b"<rss><channel>" + b"x" * 65536
            try:
                while not self.stop.is_set():
                    h.wfile.write(chunk)
            except OSError:
                pass
            h.close_connection = True

        self.routes[path] = handle
        return self.url(path)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall between headers and body
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        state.requests.append(Request(self.path, dict(self.headers.items())))
        with state.lock:
            state.in_flight += 1
            state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            route = state.routes.get(self.path)
            if route is None:
                self.reply(404, b"not here", "text/plain")
            else:
                route(self)
        finally:
            with state.lock:
                state.in_flight -= 1

    def reply(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain",
        headers: dict[str, str | None] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Date", formatdate(usegmt=True))
        for name, value in (headers or {}).items():
            if value is not None:
                self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: LocalServer


@pytest.fixture
def http_server() -> Iterator[LocalServer]:
    """A threaded HTTP server on a free loopback port, stopped after the test."""
    server = _Server(("127.0.0.1", 0), _Handler)
    state = LocalServer(base=f"http://127.0.0.1:{server.server_address[1]}")
    server.state = state
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    state.stop.set()  # releases stalled and endless handlers
    server.shutdown()
    server.server_close()
