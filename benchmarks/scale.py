"""digest at list scale, as an operator runs it, on SQLite and on PostgreSQL.

    .venv/bin/python benchmarks/scale.py [--n 100000] [--store sqlite|postgresql|both]
                                         [--phases import,compose,send,workers,kill]

For each store, with N subscribers and the bundled sample articles, every phase is the real
command in its own process, and the script prints its wall time, its rate and the peak
RSS of each process:

1. import: `digest subscribers import` of an N-row CSV;
2. compose: `digest run` with delivery pointed at a closed port and no retries, so it
   composes today's digest (N ledger rows) and stops at the first send;
3. send, 1 worker: `digest send` to Postfix's smtp-sink (SMTP, 4 connections);
4. send, 2 workers: the same rows made pending again, `digest send --workers 2`
   (on SQLite one process sends: the second is refused the pipeline, as designed);
5. kill: pending again, two `digest worker --once`, one killed with SIGKILL at half-way,
   then `digest send` finishes.

The sink counts what it received; after each phase the script prints that count against
N (after the kill, the difference is what was sent twice: at most one batch per
connection of the killed worker). The reference, printed first, is the time the csv
module takes to read the same file. `--phases import,compose` stops after composing (to
time it alone at a large N); import and compose always run before any send phase. Needs
Postfix's smtp-sink (Debian: postfix).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from tests.services import postgres_server, scratch_database  # noqa: E402

DIGEST = [sys.executable, "-m", "digest.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sink:
    """smtp-sink on a free port, counting the messages it accepted (`-c`)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        tool = shutil.which("smtp-sink") or shutil.which("smtp-sink", path="/usr/sbin")
        if tool is None:
            raise SystemExit("smtp-sink is missing: apt-get install postfix")
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.log = (folder / "sink.out").open("w")
        self.process = subprocess.Popen(
            [tool, *user, "-c", f"127.0.0.1:{self.port}", "1000"], stdout=self.log
        )
        time.sleep(0.3)

    def received(self) -> int:
        self.log.flush()
        counts = re.findall(r"mesg=(\d+)", Path(self.log.name).read_text())
        return int(counts[-1]) if counts else 0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()
        self.log.close()


# Started by a small interpreter that reports its peak RSS. Linux keeps a process's peak
# RSS across exec, starting from the RSS of whatever it was forked from: measured straight
# from this script, every command read at least this script's own peak (339 MB once the
# SQLite phases had run in it), whatever it used itself.
_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit code) of one command in its own process."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    took = time.perf_counter() - start
    peak, code = done.stdout.split()
    return took, int(peak) / 1024, int(code)


def pending_again(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE deliveries SET status = 'pending', attempts = 0, claimed_by = NULL, "
            "claimed_until = NULL"
        )
    engine.dispose()


def sent_rows(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        count = conn.exec_driver_sql("SELECT count(*) FROM deliveries WHERE status = 'sent'")
        value = int(count.scalar() or 0)
    engine.dispose()
    return value


def line(phase: str, seconds: float, n: int, rss: str, extra: str = "") -> None:
    print(f"  {phase:<22} {seconds:7.1f} s  {n / seconds:9,.0f}/s  peak RSS {rss:<16} {extra}")


PHASES = ("import", "compose", "send", "workers", "kill")


def measure(kind: str, n: int, url: str, folder: Path, people: Path, phases: set[str]) -> None:
    print(f"{kind}, N = {n:,}")
    sink = Sink(folder)
    config = folder / f"{kind}.toml"
    config.write_text(
        f'data_dir = "{folder / kind}"\ndatabase_url = "{url}"\n'
        f'[sender]\naddress = "digest@example.org"\n'
        f'[[sources]]\nname = "Local Desk"\nkind = "folder"\n'
        f'location = "{ROOT / "config" / "samples" / "articles"}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env |= {
        "DIGEST_SECRET_KEY": "scale-benchmark-secret-key-0123456789abcdef",
        "DIGEST_DELIVERY__SMTP_HOST": "127.0.0.1",
        "DIGEST_DELIVERY__SMTP_SECURITY": "none",
        "DIGEST_DELIVERY__BACKEND": "smtp",
        "DIGEST_DELIVERY__CONCURRENCY": "4",
        "DIGEST_DELIVERY__BATCH_SIZE": "200",
    }
    base = [*DIGEST, "--config", str(config)]
    took, rss, _ = run([*base, "subscribers", "import", str(people)], folder, env)
    line("import", took, n, f"{rss:.0f} MB")

    if "compose" not in phases:
        sink.stop()
        return
    closed = env | {"DIGEST_DELIVERY__SMTP_PORT": str(free_port()), "DIGEST_DELIVERY__RETRIES": "0"}
    took, rss, _ = run([*base, "run"], folder, closed)
    line("compose", took, n, f"{rss:.0f} MB")

    sending = env | {"DIGEST_DELIVERY__SMTP_PORT": str(sink.port)}
    if "send" in phases:
        pending_again(url)  # the failed first batch of the compose step
        before = sink.received()
        took, rss, _ = run([*base, "send"], folder, sending)
        line("send, 1 worker", took, n, f"{rss:.0f} MB", f"sink {sink.received() - before:,}")

    if "workers" in phases:
        pending_again(url)
        before = sink.received()
        took, rss, _ = run([*base, "send", "--workers", "2"], folder, sending)
        sent = f"sink {sink.received() - before:,}"
        line("send, 2 workers", took, n, f"{rss:.0f} MB (sender)", sent)

    if "kill" not in phases:
        sink.stop()
        return
    pending_again(url)
    before = sink.received()
    start = time.perf_counter()
    workers = [
        subprocess.Popen(
            [*base, "worker", "--once"], cwd=folder, env=sending, stdout=subprocess.DEVNULL
        )
        for _ in range(2)
    ]
    while sent_rows(url) < n // 2 and workers[0].poll() is None:
        time.sleep(0.05)
    workers[0].send_signal(signal.SIGKILL)
    workers[1].wait()
    workers[0].wait()
    # The killed worker's claims expire (delivery.claim_seconds, 60 s by default): the
    # finishing send waits for them.
    finish = env | {"DIGEST_DELIVERY__SMTP_PORT": str(sink.port)}
    deadline = time.monotonic() + 180
    while sent_rows(url) < n and time.monotonic() < deadline:
        run([*base, "send"], folder, finish)
        if sent_rows(url) < n:
            time.sleep(5)
    took = time.perf_counter() - start
    got = sink.received() - before
    line(
        "kill 1 of 2, finish",
        took,
        n,
        "-",
        f"sink {got:,}: {got - n:,} sent twice, ledger {sent_rows(url):,} sent",
    )
    sink.stop()


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    with postgres_server() as server, scratch_database(server, f"scale_{os.getpid()}") as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help="comma-separated, from " + ", ".join(PHASES) + " (import always runs)",
    )
    args = parser.parse_args()
    phases = {phase.strip() for phase in args.phases.split(",") if phase.strip()}
    unknown = phases - set(PHASES)
    if unknown:
        known = ", ".join(PHASES)
        parser.error(f"unknown phase {', '.join(sorted(unknown))}; choose from {known}.")
    if phases - {"import", "compose"}:
        phases.add("compose")  # every send phase sends the digest that compose made
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        people = folder / "people.csv"
        with people.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["email", "name"])
            for n in range(args.n):
                writer.writerow([f"reader{n}@example{n % 50}.org", f"Reader {n}"])
        start = time.perf_counter()
        with people.open(newline="") as handle:
            rows = sum(1 for _ in csv.reader(handle))
        print(
            f"reference: csv module reads {rows - 1:,} rows in {time.perf_counter() - start:.2f} s"
        )
        if args.store in ("sqlite", "both"):
            measure("sqlite", args.n, f"sqlite:///{folder / 'scale.db'}", folder, people, phases)
        if args.store in ("postgresql", "both"):
            with postgres_database() as url:
                measure("postgresql", args.n, url, folder, people, phases)


if __name__ == "__main__":
    main()
