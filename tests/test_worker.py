"""`digest worker`: workers share the pending deliveries of composed digests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from digest import store
from digest.settings import load_settings
from digest.status import schedule_status
from digest.worker import run_worker
from tests.conftest import write_config
from tests.mailservers import make_ledger

pytestmark = pytest.mark.both_stores


def _project(
    tmp_path: Path, database_url: str, extra: str = "", people: int = 40, batch: int = 5
) -> Path:
    config = write_config(tmp_path, f"\n[delivery]\nbatch_size = {batch}\n{extra}", database_url)
    make_ledger(load_settings(config).db_url, people)
    return config


def _ledger(config: Path) -> list[tuple[str, int]]:
    engine = store.connect(load_settings(config).db_url)
    with store.transaction(engine) as conn:
        rows = conn.execute(sa.select(store.deliveries.c.status, store.deliveries.c.attempts))
        return sorted((row.status, row.attempts) for row in rows)


def test_a_worker_sends_what_is_pending_and_gives_back_no_claim(tmp_path, database_url):
    config = _project(tmp_path, database_url)
    report = run_worker(load_settings(config), once=True)
    assert (report.sent, report.failed, report.digests) == (40, 0, 1)
    assert _ledger(config) == [("sent", 1)] * 40
    assert len(list((tmp_path / "var" / "outbox").rglob("*.eml"))) == 40
    assert run_worker(load_settings(config), once=True).sent == 0  # nothing left


def test_two_worker_processes_share_a_digest_and_send_each_row_once(tmp_path, database_url):
    # Paced (4 a second, in batches of 2: the first holds at most 10 rows claimed), and
    # the second starts once the first has recorded a batch, so most rows are still
    # pending while it starts up. On SQLite one process delivers at a time (the pipeline
    # lease); on PostgreSQL both claim batches of the same digest.
    config = _project(tmp_path, database_url, "rate_limit = 4\n", people=40, batch=2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    command = [sys.executable, "-m", "digest.cli", "--config", str(config), "worker", "--once"]

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)

    first = start()
    deadline = time.monotonic() + 60
    while ("sent", 1) not in _ledger(config):
        assert time.monotonic() < deadline and first.poll() is None, "the first never sent"
        time.sleep(0.05)
    second = start()
    outputs = [worker.communicate(timeout=120)[0] for worker in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0]
    assert _ledger(config) == [("sent", 1)] * 40  # a row sent twice would count 2 attempts
    sent = [int(out.split("Worker stopped: ")[1].split(" sent")[0]) for out in outputs]
    assert sum(sent) == 40
    if database_url.startswith("postgresql"):
        assert sent[1] > 0, outputs  # the second worked on the same digest


def test_status_shows_who_is_sending_and_how_fast(tmp_path, database_url):
    settings = load_settings(_project(tmp_path, database_url))
    engine = store.connect(settings.db_url)
    with store.transaction(engine) as conn:
        found = store.find_digest(conn, "daily/2026-11-28")
        assert found is not None
        digest_id = found.id
        taken = store.claim_deliveries(conn, digest_id, "host-a pid 7", 10, 60)
        store.record_deliveries(conn, digest_id, [(s.id, "sent", None, None) for s in taken[:4]])
        store.claim_deliveries(conn, digest_id, "gone", 5, ttl=-1)  # expired: sends no more
    [sender] = schedule_status(settings).senders
    assert sender == {"owner": "host-a pid 7", "key": "daily/2026-11-28", "claimed": 6, "sent": 4}


def test_send_with_workers_shares_the_digest_between_processes(tmp_path, database_url):
    # Paced (4 a second a process) so the helper, a second or so to start, finds work;
    # SQLite sends alone, so a few readers show it.
    people = 40 if database_url.startswith("postgresql") else 8
    config = _project(tmp_path, database_url, "rate_limit = 4\n", people=people, batch=2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    command = [sys.executable, "-m", "digest.cli", "--config", str(config), "send"]
    done = subprocess.run(
        [*command, "--digest", "daily/2026-11-28", "--workers", "2"],
        cwd=tmp_path,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert _ledger(config) == [("sent", 1)] * people  # each reader once, whoever sent it
    if database_url.startswith("postgresql"):
        helped = int(done.stdout.split("The other 1 workers sent ")[1].split(" ")[0])
        assert 0 < helped < 40, done.stdout
    else:
        assert "one process sends at a time" in done.stderr


def test_a_stopped_worker_finishes_its_batches_and_reports_what_it_sent(tmp_path, database_url):
    config = _project(tmp_path, database_url, "rate_limit = 4\n", people=40, batch=2)
    stop = threading.Event()
    result: list = []
    worker = threading.Thread(
        target=lambda: result.append(run_worker(load_settings(config), once=True, stop=stop))
    )
    worker.start()
    deadline = time.monotonic() + 60
    while ("sent", 1) not in _ledger(config):
        assert time.monotonic() < deadline, "the worker never sent"
        time.sleep(0.05)
    stop.set()  # what SIGTERM does
    worker.join(timeout=60)
    [report] = result
    ledger = _ledger(config)
    sent = ledger.count(("sent", 1))
    assert report.sent == sent and 0 < sent < 40  # counted what went out, stopped early
    assert ledger.count(("pending", 0)) == 40 - sent  # the rest waits for another worker
