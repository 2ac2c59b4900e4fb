"""One pipeline run at a time, across processes: a named lease in the database.

The digest key already guarantees one digest per day. The lease covers what the key
cannot: two processes delivering the same pending rows at the same moment (two schedulers
by mistake, or `digest run` while the scheduler sends). It lives in the database so it
works for SQLite and for PostgreSQL shared by several hosts. A heartbeat thread renews it
while the run lasts; a process that dies stops renewing, and the lease expires after
`LEASE_TTL` seconds, so a crash never blocks the next run for long.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.engine import Engine

from digest import store
from digest.errors import DigestError
from digest.settings import Settings

PIPELINE = "pipeline"  # collection and every digest list share it: they write the same rows
LEASE_TTL = 60.0
HEARTBEAT = LEASE_TTL / 4

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class LeaseHeld(DigestError):
    """Another process holds the lease."""

    def __init__(self, name: str, holder: dict[str, Any]) -> None:
        self.holder = str(holder["owner"])
        since: datetime = holder["acquired_at"]  # the store reads moments back in UTC
        super().__init__(
            f"Another digest process ({self.holder}) has been running since "
            f"{since:%Y-%m-%d %H:%M:%S} UTC; wait for it to finish "
            f"(its {name} lease expires {LEASE_TTL:.0f} s after it stops)."
        )


def owner_name() -> str:
    """Who holds a lease: host, process and a nonce, so two threads never share one."""
    return f"{socket.gethostname()} pid {os.getpid()} #{uuid.uuid4().hex[:6]}"


@contextmanager
def hold_lease(engine: Engine, name: str = PIPELINE) -> Iterator[str]:
    """Hold the named lease for the block; raise LeaseHeld if another process has it."""
    owner = owner_name()
    with store.transaction(engine) as conn:
        holder = store.acquire_lease(conn, name, owner, LEASE_TTL)
    if holder["owner"] != owner:
        raise LeaseHeld(name, holder)
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat, args=(engine, name, owner, stop), name=f"lease-{name}", daemon=True
    )
    beat.start()
    try:
        yield owner
    finally:
        stop.set()
        beat.join()
        with store.transaction(engine) as conn:
            store.release_lease(conn, name, owner)


def _heartbeat(engine: Engine, name: str, owner: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT):
        try:
            with store.transaction(engine) as conn:
                if not store.renew_lease(conn, name, owner, LEASE_TTL):
                    log.error("lost the %s lease (held by %s); another run may start", name, owner)
                    return
        except Exception as exc:  # a busy database now and then must not end the run
            log.warning("could not renew the %s lease: %s", name, exc)


def with_pipeline_lease(
    run: Callable[Concatenate[Settings, P], R],
) -> Callable[Concatenate[Settings, P], R]:
    """Decorate a pipeline entry point so it runs only while holding the pipeline lease."""

    @functools.wraps(run)
    def locked(settings: Settings, /, *args: P.args, **kwargs: P.kwargs) -> R:
        engine = store.connect(settings.db_url)
        try:
            with hold_lease(engine):
                return run(settings, *args, **kwargs)
        finally:
            engine.dispose()

    return locked
