"""`digest worker`: deliver the pending messages of every composed digest, on any host.

Composing stays with `digest run` and the scheduler (one digest per key). Delivery fans
out: each worker claims batches of pending ledger rows (see store/claims.py), so workers
on one host or many share a digest and never send a row twice; a worker killed mid-batch
has its rows taken over once its claims expire. SQLite has one writer and lives on one
host: there a worker delivers only while holding the pipeline lease, one at a time.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from digest import store
from digest.deliver import DeliveryReport
from digest.jobs import cadences
from digest.lease import LeaseHeld, hold_lease
from digest.pipeline import deliver_pending, open_store
from digest.settings import Settings
from digest.subscribers import secret_key

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WorkerReport:
    sent: int = 0
    failed: int = 0
    digests: int = 0  # digests this worker sent to
    waited_for_lease: int = 0  # passes skipped on SQLite while another process delivered


def run_worker(
    settings: Settings,
    *,
    once: bool = False,
    poll: float = 5.0,
    stop: threading.Event | None = None,
    on_batch: Callable[[DeliveryReport], None] | None = None,
) -> WorkerReport:
    """Deliver what is pending of every digest, then look again every `poll` seconds.

    With `once`, one pass and return. `stop` ends the loop; a stop during a send lets the
    batches in flight finish and be recorded, and gives the rest back to other workers.
    """
    stop = stop or threading.Event()
    report = WorkerReport()
    engine = open_store(settings)
    key_secret, _ = secret_key(settings)

    def between_batches(progress: DeliveryReport) -> bool:
        if on_batch:
            on_batch(progress)
        return not stop.is_set()  # False: finish the batches in flight, take no more

    try:
        while not stop.is_set():
            for cadence in cadences(settings):
                with store.transaction(engine) as conn:
                    keys = [row["key"] for row in store.unfinished_digests(conn, cadence.list_name)]
                for key in keys:
                    with store.transaction(engine) as conn:
                        row = store.find_digest(conn, key)
                    assert row is not None
                    try:
                        with _one_at_a_time_on_sqlite(engine):
                            done = deliver_pending(
                                cadence.settings, engine, row, key_secret, on_batch=between_batches
                            )
                    except LeaseHeld:
                        report.waited_for_lease += 1
                        continue
                    report.sent += done.sent
                    report.failed += done.failed
                    report.digests += bool(done.sent or done.failed)
                    if stop.is_set():
                        return report
            if once or stop.wait(poll):
                break
    finally:
        engine.dispose()
    return report


def _one_at_a_time_on_sqlite(engine: Engine) -> contextlib.AbstractContextManager[object]:
    if engine.dialect.name == "sqlite":
        return hold_lease(engine)
    return contextlib.nullcontext()
