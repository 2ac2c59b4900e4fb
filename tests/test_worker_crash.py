"""Two `digest worker` processes on PostgreSQL; one is killed mid-send, the other finishes.

PostgreSQL only: on SQLite one process delivers at a time, so there is no second worker to
take over (test_smtp_crash.py covers a killed run there).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from digest import store
from digest.settings import load_settings
from tests.conftest import write_config
from tests.mailservers import make_ledger, smtp_server

READERS = 600
BATCH, CONNECTIONS = 20, 2
WINDOW = BATCH * CONNECTIONS  # what a killed worker may have sent but not yet recorded


def _worker(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "--config", str(config), "worker", "--poll", "0.2"],
        env=env,
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ledger(engine: sa.Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.deliveries.c.status, store.deliveries.c.attempts))
        return sorted((row.status, row.attempts) for row in rows)


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_a_killed_worker_s_rows_are_taken_over_and_each_reader_gets_the_digest(
    tmp_path: Path, database_url: str
) -> None:
    config = write_config(tmp_path, database_url=database_url)
    ledger = make_ledger(load_settings(config).db_url, READERS)
    with smtp_server() as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        env |= srv.settings_env() | {
            "DIGEST_DELIVERY__BATCH_SIZE": str(BATCH),
            "DIGEST_DELIVERY__CONCURRENCY": str(CONNECTIONS),
            "DIGEST_DELIVERY__RATE_LIMIT": "100",  # so the kill lands mid-send
            "DIGEST_DELIVERY__CLAIM_SECONDS": "2",
        }
        doomed, survivor = _worker(config, env), None
        deadline = time.monotonic() + 120
        while len(srv.handler.received) < READERS // 4:
            assert doomed.poll() is None, doomed.communicate()
            assert time.monotonic() < deadline
            if survivor is None and srv.handler.received:
                survivor = _worker(config, env)
            time.sleep(0.005)
        doomed.send_signal(signal.SIGKILL)
        doomed.communicate()
        assert survivor is not None
        while _ledger(ledger.engine) != [("sent", 1)] * READERS:
            assert survivor.poll() is None, survivor.communicate()
            assert time.monotonic() < deadline, "the survivor never finished"
            time.sleep(0.1)
        survivor.send_signal(signal.SIGTERM)
        out, err = survivor.communicate(timeout=60)
        assert survivor.returncode == 0, err
    counts = srv.handler.counts()
    assert set(counts) == {f"r{n:04d}@example.org" for n in range(READERS)}
    twice = [address for address, times in counts.items() if times > 1]
    # Only what the killed worker had in flight can go twice: one batch per connection.
    assert len(twice) <= WINDOW and set(counts.values()) <= {1, 2}
    assert int(out.split("Worker stopped: ")[1].split(" sent")[0]) > 0
