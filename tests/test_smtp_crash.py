"""Kill `digest run` with SIGKILL in the middle of a send, run it again, count at the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from digest import store
from digest.settings import load_settings
from tests.conftest import write_config
from tests.mailservers import smtp_server

READERS = 2000
BATCH, WORKERS = 50, 2
WINDOW = BATCH * WORKERS  # messages the server may hold that the ledger does not know yet


def _digest(config: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "digest.cli", "--config", str(config), *args],
        env=env,
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ledger(engine: sa.Engine) -> dict[str, str]:
    query = sa.select(store.subscribers.c.email, store.deliveries.c.status).join(
        store.deliveries, store.deliveries.c.subscriber_id == store.subscribers.c.id
    )
    with engine.connect() as conn:
        return {row.email: row.status for row in conn.execute(query)}


def test_a_killed_run_resumes_and_each_reader_gets_the_digest_once(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    engine = store.connect(load_settings(config).db_url)
    with store.transaction(engine) as conn:
        conn.execute(
            store.subscribers.insert(),
            [
                {
                    "email": f"r{n:05d}@example.org",
                    "name": f"Reader {n}",
                    "topics": [],
                    "status": "active",
                    "created_at": store.now(),
                    "status_changed_at": store.now(),
                }
                for n in range(READERS)
            ],
        )
    with smtp_server() as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        env |= srv.settings_env() | {
            "DIGEST_DELIVERY__BATCH_SIZE": str(BATCH),
            "DIGEST_DELIVERY__CONCURRENCY": str(WORKERS),
        }
        first = _digest(config, env, "run")
        deadline = time.monotonic() + 120
        while len(srv.handler.received) < READERS // 3:
            assert first.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        first.send_signal(signal.SIGKILL)
        first.communicate()
        # Let the server finish with whatever the dead process had already written.
        settled = -1
        while settled != len(srv.handler.received):
            settled = len(srv.handler.received)
            time.sleep(0.3)
        at_kill = srv.handler.counts()
        ledger = _ledger(engine)
        assert 0 < sum(s == "sent" for s in ledger.values()) < READERS  # killed midway
        assert set(at_kill.values()) == {1}  # nothing twice before the crash
        recorded = {email for email, status in ledger.items() if status == "sent"}
        assert recorded <= set(at_kill)  # the ledger never claims a message not received
        in_flight = set(at_kill) - recorded  # received, but the ledger write never came
        assert len(in_flight) <= WINDOW
        assert all(ledger[email] == "pending" for email in in_flight)

        # SIGKILL left the run's lease and its claims on the ledger to expire on their own
        # (a minute); do not wait for them.
        with store.transaction(engine) as conn:
            conn.execute(store.leases.delete())
            conn.execute(store.deliveries.update().values(claimed_by=None, claimed_until=None))
        second = _digest(config, env, "send")
        _, err = second.communicate(timeout=300)
        assert second.returncode == 0, err

    final = srv.handler.counts()
    # Exactly once for everyone, except the in-flight window, which went exactly twice.
    assert final == {
        f"r{n:05d}@example.org": 2 if f"r{n:05d}@example.org" in in_flight else 1
        for n in range(READERS)
    }
    assert set(_ledger(engine).values()) == {"sent"}
