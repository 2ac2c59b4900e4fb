"""Send over SMTP: digest's ledger loop and SMTP transport against Postfix's smtp-sink.

    .venv/bin/python benchmarks/send_smtp.py [--messages 10000] [--connections 1 4] [--runs 5]
                                             [--clicks]

Needs Postfix's test tools (Debian: `apt-get install postfix`; only smtp-sink and
smtp-source are used, no Postfix daemon). The script starts smtp-sink on a free local
port, then for each connection count alternates two measurements on the same sink:

- digest: `deliver_digest` over a fresh ledger of N subscribers in SQLite -- the whole
  path `digest send` runs: paging, personalizing each ~20 KB copy, SMTP with
  PIPELINING (and, for comparison, in lock step as smtplib would), ledger writes;
- reference: `smtp-source -d -s C -m N -l SIZE`, Postfix's C load generator, with the
  same count, the same size (that of digest's messages) and number of connections.

With --clicks, every story link is the reader's own signed click link (tracking.clicks),
as when click tracking is on; without it, the story's own URL.

It prints the median rate of each, their ratio, the CPU time each spends per message
(which, unlike the rates, does not depend on what else the machine is doing), and the
peak memory of this process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import sqlalchemy as sa  # noqa: E402

from digest import store  # noqa: E402
from digest.clicks import ClickLinks  # noqa: E402
from digest.deliver import DeliveryPolicy, deliver_digest  # noqa: E402
from digest.mail.message import MessageTemplate  # noqa: E402
from digest.mail.smtp import SmtpConfig, SmtpTransport  # noqa: E402
from digest.mail.transport import Mailing  # noqa: E402
from digest.models import Article, Digest, DigestItem, Quote, Subscriber, Summary  # noqa: E402
from digest.render import Branding, render_digest  # noqa: E402
from digest.subscribers import make_token  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "summaries"
BRAND = Branding("The Daily Digest", "1 Example Street, Example City", "https://digest.example.org")
NAMES = ("Ana Lindgren", "José Núñez", "Zoë Park", "Tom O'Brien", "", "山田 太郎", "Priya Shah")
KEY = "daily/2026-11-28"
SECRET = "benchmark-secret"  # noqa: S105 (signs made-up unsubscribe links)


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise SystemExit(f"{name} not found; install Postfix's tools: apt-get install postfix")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def template_of_size(size: int, clicks: bool = False) -> tuple[MessageTemplate, int]:
    """A digest of real stories (the summarizer's fixtures), as many as make ~`size` bytes."""
    paths = sorted(FIXTURES.glob("*.json"))
    for count in range(1, len(paths) + 1):
        items = []
        for number, path in enumerate(paths[:count], start=1):
            data = json.loads(path.read_text(encoding="utf-8"))
            article = Article(
                title=data["title"],
                paragraphs=(data["lead"],),
                source="Local Desk",
                url=f"https://news.example.org/{path.stem}",
                byline=data.get("byline"),
                id=number,
            )
            quotes = tuple(Quote(q["text"], q.get("speaker")) for q in data["quotes"][:2])
            items.append(DigestItem(article, Summary(data["lead"], quotes)))
        rendered = render_digest(
            Digest(KEY, "The Daily Digest", date(2026, 11, 28), tuple(items)),
            BRAND,
            subject_pattern="{name} — {date}: {headline}",
            track_clicks=clicks,
        )
        template = MessageTemplate(
            rendered,
            sender_name="The Daily Digest",
            sender_address="digest@example.org",
            list_id="The Daily Digest <daily.example.org>",
            unsubscribe_url="https://digest.example.org/unsubscribe/{token}",
            unsubscribe_mailto="mailto:digest@example.org?subject=unsubscribe",
            digest_key=KEY,
            sent_at=datetime.now(UTC),
            clicks=ClickLinks(SECRET, 1, BRAND.base_url) if clicks else None,
        )
        copy = template.personalize(Subscriber(1, "ana.lindgren@example.org", "Ana"), "t" * 40)
        if len(copy.data) >= size:
            return template, len(copy.data)
    return template, len(copy.data)


def make_ledger(folder: Path, messages: int) -> tuple[sa.Engine, int]:
    engine = store.connect(f"sqlite:///{folder / 'digest.db'}")
    stamp = store.now()
    with store.transaction(engine) as conn:
        conn.execute(
            store.subscribers.insert(),
            [
                {
                    "email": f"reader{n:06d}@example.org",
                    "name": NAMES[n % len(NAMES)] or None,
                    "topics": [],
                    "status": "active",
                    "created_at": stamp,
                    "status_changed_at": stamp,
                }
                for n in range(messages)
            ],
        )
        digest_id = store.create_digest(
            conn, key=KEY, list_name="daily", day=date(2026, 11, 28), subject="s",
            html="h", text="t", items=[],
        )  # fmt: skip
    assert digest_id is not None
    return engine, digest_id


def reset(engine: sa.Engine, digest_id: int) -> None:
    with store.transaction(engine) as conn:
        conn.execute(
            store.deliveries.update()
            .where(store.deliveries.c.digest_id == digest_id)
            # A sent row keeps its claim until it expires; a reset row must be free to claim.
            .values(
                status="pending",
                attempts=0,
                message_id=None,
                error=None,
                claimed_by=None,
                claimed_until=None,
            )
        )


def run_digest(
    engine: sa.Engine, digest_id: int, template: MessageTemplate, port: int, c: int, pipe: bool
) -> tuple[float, float]:
    """Seconds of wall-clock and of this process's CPU time to send every message."""
    reset(engine, digest_id)
    config = SmtpConfig(
        host="127.0.0.1", port=port, security="none", sender="digest@example.org",
        ehlo_name="bench.example.org", pipelining=pipe, max_per_connection=100_000,
        connections=c,
    )  # fmt: skip
    transport = SmtpTransport(config)
    started, cpu = time.perf_counter(), time.process_time()
    report = deliver_digest(
        engine,
        digest_id=digest_id,
        digest_key=KEY,
        template=template,
        transport=transport,
        token_for=lambda sid: make_token(SECRET, sid, "unsubscribe"),
        policy=DeliveryPolicy(batch_size=100, concurrency=c),
    )
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    transport.close()
    with store.transaction(engine) as conn:
        counts = store.delivery_counts(conn, digest_id)
    if counts != {"sent": report.sent}:
        raise SystemExit(f"not all sent: {counts}; {report.errors[:3]}")
    return elapsed, cpu


def run_reference(source: str, port: int, messages: int, size: int, c: int) -> tuple[float, float]:
    """Seconds of wall-clock and of smtp-source's CPU time to send every message."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [source, "-d", "-s", str(c), "-m", str(messages), "-l", str(size), f"127.0.0.1:{port}"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=20_000, help="about this many bytes each")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clicks", action="store_true", help="click tracking on")
    args = parser.parse_args()
    sink, source = tool("smtp-sink"), tool("smtp-source")
    template, size = template_of_size(args.size, args.clicks)
    mailing = Mailing(KEY, template, lambda sid: make_token(SECRET, sid, "unsubscribe"))
    sample = mailing.envelope(Subscriber(7, "reader000007@example.org", "Zoë Park"))
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    print(f"{args.messages} messages of {size} bytes each, from digest and from smtp-source")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"Message-ID sample {sample.message_id}, {len(sample.data)} bytes")
    links = sample.data.count(b"/c/")
    print(f"click tracking {'on' if args.clicks else 'off'}: {links} click links per copy")

    port = free_port()
    user = ["-u", "postfix"] if os.geteuid() == 0 else []
    sink_process = subprocess.Popen(
        [sink, *user, "-c", f"127.0.0.1:{port}", "1000"], stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with tempfile.TemporaryDirectory() as folder:
            engine, digest_id = make_ledger(Path(folder), args.messages)
            for c in args.connections:
                piped: list[tuple[float, float]] = []
                lockstep: list[tuple[float, float]] = []
                reference: list[tuple[float, float]] = []
                for _ in range(args.runs):
                    piped.append(run_digest(engine, digest_id, template, port, c, True))
                    reference.append(run_reference(source, port, args.messages, size, c))
                    lockstep.append(run_digest(engine, digest_id, template, port, c, False))
                runs = {"piped": piped, "lock": lockstep, "ref": reference}
                n = args.messages
                rate = {k: n / statistics.median(wall for wall, _ in v) for k, v in runs.items()}
                cpu = {k: statistics.median(used for _, used in v) / n for k, v in runs.items()}
                print(f"\n{c} connection(s), median of {args.runs} runs:")
                print(f"  digest, pipelined      {rate['piped']:8,.0f} messages/s")
                print(f"  digest, lock step      {rate['lock']:8,.0f} messages/s")
                print(f"  smtp-source reference  {rate['ref']:8,.0f} messages/s")
                print(f"  ratio pipelined/reference {rate['piped'] / rate['ref']:.2f}x")
                print(f"  ratio lock step/reference {rate['lock'] / rate['ref']:.2f}x")
                print(
                    f"  CPU per message: digest pipelined {cpu['piped'] * 1e6:.0f} us, "
                    f"lock step {cpu['lock'] * 1e6:.0f} us, smtp-source {cpu['ref'] * 1e6:.0f} us"
                )
            engine.dispose()
    finally:
        sink_process.terminate()
        sink_process.wait()
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process, ledger and all: {peak:.0f} MB")


if __name__ == "__main__":
    main()
