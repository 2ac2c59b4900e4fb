"""The daily scheduled digest: APScheduler wiring that survives restarts and never sends twice.

Jobs live in the digest database (APScheduler's SQLAlchemy job store, table
`apscheduler_jobs`), so a restart knows what was due while the process was down. Each
digest job runs with `coalesce` (many missed runs become one) and `misfire_grace_time`
(a run missed by longer is skipped, or with `catch_up = "send"` still sent once).

Three things keep a digest from going out twice, in this order of importance:
- the digest key (`daily/2026-11-28`) is unique in the store: whoever runs second finds the
  digest composed and only delivers what is still pending;
- the pipeline lease (digest/lease.py): one process at a time delivers, so two schedulers
  never send the same pending rows at once;
- a stored job keeps its next run time across restarts: a restart does not run it again.

The jobs themselves are in digest/jobs.py, their log lines in digest/joblog.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.schema import CreateIndex, CreateTable

from digest import jobs, store
from digest.joblog import emit, stamp, warn
from digest.jobs import (
    Runner,
    bounces_job,
    cadences,
    collect_job,
    digest_job,
    resume_job,
    schedule_zone,
)
from digest.settings import Settings


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job as the settings describe it. `name` doubles as its signature in the store."""

    id: str
    func: Callable[..., None]
    kwargs: dict[str, str]
    trigger: Any
    name: str
    when: str
    grace: int | None


def job_specs(settings: Settings) -> list[JobSpec]:
    rules = settings.schedule
    zone = schedule_zone(settings)
    # "send" lifts the grace limit: a run missed for days still goes out, once (coalesce).
    grace = None if rules.catch_up == "send" else rules.misfire_grace_time
    specs = [
        JobSpec(
            id=f"digest:{c.list_name}",
            func=digest_job,
            kwargs={"list_name": c.list_name},
            trigger=c.trigger,
            name=f"{c.list_name} digest at {c.cron} {zone}, grace {rules.misfire_grace_time} s, "
            f"catch-up {rules.catch_up}",
            when=c.cron,
            grace=grace,
        )
        for c in cadences(settings)
    ]
    if rules.collect_every:
        specs.append(
            JobSpec(
                id="collect",
                func=collect_job,
                kwargs={},
                trigger=IntervalTrigger(minutes=rules.collect_every, timezone=ZoneInfo(zone)),
                name=f"collect every {rules.collect_every} min",
                when=f"every {rules.collect_every} min",
                grace=None,  # a collection missed while down is simply done once on return
            )
        )
    if settings.bounces is not None:
        every = settings.bounces.every
        specs.append(
            JobSpec(
                id="bounces",
                func=bounces_job,
                kwargs={},
                trigger=IntervalTrigger(minutes=every, timezone=ZoneInfo(zone)),
                name=f"bounces every {every} min",
                when=f"every {every} min",
                grace=None,  # reports wait in the mailbox; reading them late loses nothing
            )
        )
    return specs


class DigestScheduler:
    """APScheduler with its jobs in the digest database, reconciled with the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runner = Runner(settings)
        self.engine = store.connect(settings.db_url)
        self.history: list[tuple[str, str]] = []  # (job id, executed|missed|error), in order
        jobstore = SQLAlchemyJobStore(engine=self.engine)
        # APScheduler creates its table with check-then-create; two schedulers starting
        # together on a new database would race. IF NOT EXISTS cannot on SQLite; PostgreSQL
        # also needs the schema lock (see store.lock_schema).
        with self.engine.begin() as conn:
            store.lock_schema(conn)
            conn.execute(CreateTable(jobstore.jobs_t, if_not_exists=True))
            for index in jobstore.jobs_t.indexes:
                conn.execute(CreateIndex(index, if_not_exists=True))
        self.scheduler = BackgroundScheduler(
            jobstores={
                "default": jobstore,
                "memory": MemoryJobStore(),  # the one-off resume job; nothing to keep
            },
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=ZoneInfo(schedule_zone(settings)),
        )
        self.scheduler.add_listener(
            self._on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
        )

    def start(self) -> list[str]:
        """Start processing jobs; return the ids of the jobs due right now."""
        jobs.activate(self.runner)
        self.scheduler.start(paused=True)
        now = datetime.now(UTC)
        try:
            self._sync_jobs(now)
        except BaseException:
            self.shutdown()
            raise
        due = [
            job.id
            for job in self.scheduler.get_jobs(jobstore="default")
            if job.next_run_time is not None and job.next_run_time <= now
        ]
        if self._has_unfinished():
            self.scheduler.add_job(
                resume_job,
                "date",
                run_date=now,
                id="resume",
                jobstore="memory",
                misfire_grace_time=None,
            )
            due.insert(0, "resume")
        emit(
            "scheduler.start",
            pid=os.getpid(),
            due=",".join(due) or "nothing",
            next=self.next_runs(),
        )
        self.scheduler.resume()
        return due

    def next_runs(self) -> str:
        """Each stored job's next run, e.g. "digest:daily@2026-11-29T07:00:00+09:00"."""
        stored = self.scheduler.get_jobs(jobstore="default")
        return ",".join(f"{job.id}@{stamp(job.next_run_time)}" for job in stored)

    def serve(self) -> None:
        """Run jobs until a stop is asked, then finish the current batch and shut down."""
        self.start()
        while not self.runner.stop.wait(1.0):
            pass
        self.shutdown()

    def run_once(self) -> None:
        """Run what is due now (missed runs by the usual rules), wait for it, shut down."""
        due = self.start()
        while any(self._still_due(job_id) for job_id in due):
            time.sleep(0.05)
        self.shutdown()  # waits for the submitted jobs to finish

    def shutdown(self) -> None:
        """Stop taking jobs, wait for the running ones, and close the job store."""
        # APScheduler 3 processes jobs once more after shutdown(), with its executor closed:
        # a job due in that round is marked done without running (a lost 07:00 digest).
        # Paused and with the stores detached, that round finds nothing; due jobs stay due.
        self.scheduler.pause()
        for alias in ("default", "memory"):
            self.scheduler.remove_jobstore(alias, shutdown=False)
        self.scheduler.shutdown(wait=True)
        self.engine.dispose()
        jobs.deactivate()
        emit("scheduler.stop", pid=os.getpid())

    def _still_due(self, job_id: str) -> bool:
        # A job stops being due once submitted (its next run moves on), whether by us or by
        # another scheduler sharing the store.
        job = self.scheduler.get_job(job_id)
        return (
            job is not None
            and job.next_run_time is not None
            and (job.next_run_time <= datetime.now(UTC))
        )

    def _sync_jobs(self, now: datetime) -> None:
        """Make the stored jobs match the settings, keeping next run times that still apply."""
        lookback = timedelta(seconds=self.settings.schedule.misfire_grace_time)
        stored = {job.id: job for job in self.scheduler.get_jobs(jobstore="default")}
        for spec in job_specs(self.settings):
            job = stored.pop(spec.id, None)
            if job is not None and job.name == spec.name:
                continue  # keep its next run time: a run missed while down is still due
            # New or changed: a fire time within the grace time just before now counts as
            # due, so a scheduler (or cron's --once) started at 07:00:01 still sends 07:00.
            first = spec.trigger.get_next_fire_time(None, now - lookback)
            self.scheduler.add_job(
                spec.func,
                spec.trigger,
                id=spec.id,
                name=spec.name,
                kwargs=spec.kwargs,
                misfire_grace_time=spec.grace,
                next_run_time=first,
                jobstore="default",
                replace_existing=True,
            )
            emit("job.scheduled", job=spec.id, when=spec.when, next=stamp(first))
        for job_id in stored:
            with suppress(JobLookupError):  # another scheduler may have removed it first
                self.scheduler.remove_job(job_id, jobstore="default")
            emit("job.removed", job=job_id, reason="no longer in the settings")

    def _has_unfinished(self) -> bool:
        with store.transaction(self.engine) as conn:
            return any(store.unfinished_digests(conn, name) for name in self.runner.cadences)

    def _on_event(self, event: Any) -> None:
        if event.code == EVENT_JOB_MISSED:
            warn(
                "job.missed",
                job=event.job_id,
                scheduled=event.scheduled_run_time,
                reason=f"missed by more than misfire_grace_time "
                f"({self.settings.schedule.misfire_grace_time} s); catch_up is skip",
            )
        outcome = {EVENT_JOB_EXECUTED: "executed", EVENT_JOB_MISSED: "missed"}
        self.history.append((event.job_id, outcome.get(event.code, "error")))


def run_schedule(settings: Settings, *, once: bool = False) -> None:
    """`digest schedule`: run until SIGTERM/SIGINT, or with once=True what is due now."""
    service = DigestScheduler(settings)
    with stop_on_signals(service.runner.stop):
        if once:
            service.run_once()
        else:
            service.serve()


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM or SIGINT asks for a clean stop; a second one ends the process at once."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            warn("scheduler.kill", signal=name)
            os._exit(1)  # the ledger is safe; at most the batch in flight is sent again
        emit("scheduler.stopping", signal=name, note="finishing the current batch")
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
