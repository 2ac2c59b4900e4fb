"""`digest status`: the next scheduled runs, the last digest of each list, source health.

Read-only: jobs are looked up in APScheduler's job store one by one (never listed, since
listing deletes a job it cannot read), and nothing is started.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from digest import store
from digest.jobs import cadences, schedule_zone
from digest.lease import PIPELINE
from digest.schedule import job_specs
from digest.settings import Settings


@dataclass(frozen=True, slots=True)
class JobStatus:
    id: str
    when: str
    next_run: datetime | None
    # "scheduled" (in the job store), "not started" (no scheduler has run yet), or
    # "changed" (the settings differ from the stored job; applies at the next start).
    state: str


@dataclass(frozen=True, slots=True)
class ListStatus:
    list_name: str
    last_key: str | None
    composed_at: datetime | None
    deliveries: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Status:
    zone: str
    jobs: list[JobStatus]
    lists: list[ListStatus]
    running: str | None  # who holds the pipeline lease right now, if anyone
    sources: list[dict[str, Any]]
    # Processes sending right now (workers, the scheduler, `digest send`): owner, digest
    # key, rows claimed, rows sent in the last minute.
    senders: list[dict[str, Any]] = field(default_factory=list)


def schedule_status(settings: Settings, now: datetime | None = None) -> Status:
    """Everything `digest status` prints, from the database and the settings."""
    now = now or datetime.now(UTC)
    zone = schedule_zone(settings)
    engine = store.connect(settings.db_url)
    try:
        jobstore = SQLAlchemyJobStore(engine=engine)
        jobstore.start(BackgroundScheduler(timezone=ZoneInfo(zone)), "default")
        jobs = []
        for spec in job_specs(settings):
            stored = _lookup(jobstore, spec.id)
            if stored is not None and stored.name == spec.name:
                jobs.append(JobStatus(spec.id, spec.when, stored.next_run_time, "scheduled"))
            else:
                upcoming = spec.trigger.get_next_fire_time(None, now)
                state = "not started" if stored is None else "changed"
                jobs.append(JobStatus(spec.id, spec.when, upcoming, state))
        with store.transaction(engine) as conn:
            lists = [_list_status(conn, c.list_name) for c in cadences(settings)]
            holder = store.lease_holder(conn, PIPELINE)
            sources = store.source_health(conn)
            senders = store.live_senders(conn)
    finally:
        engine.dispose()
    running = None
    if holder is not None:
        running = f"{holder['owner']} since {holder['acquired_at']:%Y-%m-%d %H:%M:%S} UTC"
    return Status(zone, jobs, lists, running, sources, senders)


def _lookup(jobstore: SQLAlchemyJobStore, job_id: str) -> Any:
    try:
        return jobstore.lookup_job(job_id)
    except Exception:  # a job this version cannot read counts as not scheduled
        return None


def _list_status(conn: Any, list_name: str) -> ListStatus:
    row = store.latest_digest(conn, list_name)
    if row is None:
        return ListStatus(list_name, None, None)
    counts = store.delivery_counts(conn, row.id)
    return ListStatus(list_name, row.key, row.created_at, counts)
