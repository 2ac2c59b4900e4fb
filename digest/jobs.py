"""The scheduled jobs: a list's digest, a collection, bounces, and finishing half-sent digests.

Each job logs one line when it starts and one when it ends, with counts. A stop (SIGTERM,
Ctrl+C) is honoured at the next safe point: after a source is collected or a batch of
deliveries is recorded; what is left stays pending in the ledger and goes out at the next
start. Jobs of different processes take turns through the pipeline lease (lease.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

from digest import store
from digest.collect import collect_sources
from digest.compose import digest_key
from digest.cron import latest_fire_time, parse_cron
from digest.errors import ConfigError, DigestError
from digest.joblog import emit, fields, log
from digest.lease import LeaseHeld, hold_lease
from digest.pipeline import RunReport, run_digest
from digest.settings import Settings

LEASE_POLL = 1.0  # seconds between tries while another process holds the pipeline lease
LATE_SLACK = 60  # seconds a job may take to start beyond its grace time and still be on time


class StopRequested(Exception):
    """Raised at a safe point (a source collected, a batch recorded) once a stop is asked."""


@dataclass(frozen=True, slots=True)
class Cadence:
    """One digest list on its own schedule: the daily one, or the optional weekly one."""

    list_name: str
    cron: str
    trigger: Any
    settings: Settings  # as run_digest must see them for this list


def schedule_zone(settings: Settings) -> str:
    return settings.schedule.timezone or settings.digest.timezone


def cadences(settings: Settings) -> list[Cadence]:
    """The daily digest, and the weekly one if configured, with their own settings."""
    zone = schedule_zone(settings)
    daily = settings.digest.list_name
    cron = settings.schedule.cron
    found = [Cadence(daily, cron, parse_cron(cron, zone), settings)]
    weekly = settings.schedule.weekly
    if weekly is not None:
        if weekly.list_name == daily:
            raise ConfigError(
                f"schedule.weekly.list_name is {daily!r}, the same as digest.list_name; "
                "give the weekly digest its own name."
            )
        section = settings.digest.model_copy(
            update={
                "list_name": weekly.list_name,
                "max_articles": weekly.max_articles,
                "subject": weekly.subject,
            }
        )
        own = settings.model_copy(update={"digest": section})
        found.append(Cadence(weekly.list_name, weekly.cron, parse_cron(weekly.cron, zone), own))
    return found


# The job store keeps a reference to the module-level functions below, never to an object;
# they find the settings of this process here.
_runner: Runner | None = None


def digest_job(list_name: str) -> None:
    """Scheduled: compose and deliver one list's digest."""
    _current().run_cadence(list_name)


def collect_job() -> None:
    """Scheduled: collect every source so articles accumulate between digests."""
    _current().collect()


def bounces_job() -> None:
    """Scheduled: read the bounce mailbox and record what came back."""
    _current().read_bounces()


def resume_job() -> None:
    """At start: deliver what a stopped or crashed run left pending."""
    _current().resume()


def activate(runner: Runner) -> None:
    """Make the job functions of this process run with this runner."""
    global _runner
    if _runner is not None:
        raise RuntimeError("a digest scheduler is already running in this process")
    _runner = runner


def deactivate() -> None:
    global _runner
    _runner = None


def _current() -> Runner:
    if _runner is None:
        raise RuntimeError("no digest scheduler is running in this process")
    return _runner


class Runner:
    """What the jobs of one process run with: the settings and the stop flag."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.cadences = {c.list_name: c for c in cadences(settings)}

    def checkpoint(self, *_: object) -> None:
        """Called after each source and each recorded batch: the places it is safe to stop."""
        if self.stop.is_set():
            raise StopRequested

    def run_cadence(self, list_name: str) -> None:
        cadence = self.cadences[list_name]
        now = datetime.now(UTC)
        window = timedelta(seconds=self.settings.schedule.misfire_grace_time + LATE_SLACK)
        scheduled = latest_fire_time(cadence.trigger, now, window)
        # A late start within the grace time keeps the scheduled day; a catch-up after a
        # longer outage goes out under today's date, so two days never go out together.
        moment = scheduled or now
        key, _ = digest_key(list_name, moment, self.settings.digest.timezone)
        if self._resume(cadence, skip_key=key):
            self.deliver(f"digest:{list_name}", cadence, moment, scheduled=scheduled)

    def resume(self) -> None:
        for cadence in self.cadences.values():
            if not self._resume(cadence):
                return

    def _resume(self, cadence: Cadence, skip_key: str | None = None) -> bool:
        """Finish older digests of the list first; False if a stop cut it short."""
        with _engine(self.settings) as engine, store.transaction(engine) as conn:
            unfinished = store.unfinished_digests(conn, cadence.list_name)
        zone = ZoneInfo(self.settings.digest.timezone)
        for row in unfinished:
            if row["key"] == skip_key:
                continue
            midday = datetime.combine(_as_date(row["day"]), clock(12), zone)
            if not self.deliver("resume", cadence, midday):
                return False
        return True

    def deliver(
        self, job: str, cadence: Cadence, moment: datetime, scheduled: datetime | None = None
    ) -> bool:
        """Run the digest for the moment's key; log one line at start and one at end."""
        key, _ = digest_key(cadence.list_name, moment, self.settings.digest.timezone)
        emit("job.start", job=job, key=key, scheduled=scheduled)
        started = time.monotonic()
        try:
            report = self._when_free(
                job,
                lambda: run_digest(
                    cadence.settings,
                    moment=moment,
                    on_source=self.checkpoint,
                    on_deliveries=lambda n: emit("job.deliver", job=job, key=key, pending=n),
                    on_batch=self.checkpoint,
                ),
            )
        except StopRequested:
            emit("job.stopped", job=job, key=key, **self._ledger(key), resume="at next start")
            return False
        except DigestError as exc:  # a problem the user can fix: one line says which
            log.error(fields("job.error", job=job, key=key, error=str(exc)))
            return True
        except Exception as exc:
            log.exception(fields("job.error", job=job, key=key, error=_one_line(exc)))
            return True
        emit("job.end", job=job, **_report_fields(report), seconds=_since(started))
        return True

    def _ledger(self, key: str) -> dict[str, int]:
        with _engine(self.settings) as engine, store.transaction(engine) as conn:
            row = store.find_digest(conn, key)
            return store.delivery_counts(conn, row.id) if row else {}

    def collect(self) -> None:
        emit("job.start", job="collect")
        started = time.monotonic()
        with _engine(self.settings) as engine:
            try:
                with hold_lease(engine):
                    reports = collect_sources(self.settings, engine, on_source=self.checkpoint)
            except LeaseHeld as exc:
                # Whoever holds the lease is collecting (every digest run collects first).
                emit("job.skip", job="collect", reason="busy", holder=exc.holder)
                return
            except StopRequested:
                emit("job.stopped", job="collect")
                return
        emit(
            "job.end",
            job="collect",
            sources=len(reports),
            new=sum(r.new for r in reports),
            seen=sum(r.seen for r in reports),
            broken=sum(r.error is not None for r in reports),
            seconds=_since(started),
        )

    def read_bounces(self) -> None:
        from digest.bounces import process_bounces  # imaplib and the detectors, only when set

        emit("job.start", job="bounces")
        started = time.monotonic()
        with _engine(self.settings) as engine:
            try:
                report = process_bounces(self.settings, engine)
            except DigestError as exc:  # a wrong password, an unreachable server: one line
                log.error(fields("job.error", job="bounces", error=str(exc)))
                return
        emit(
            "job.end",
            job="bounces",
            read=report.read,
            hard=report.hard,
            soft=report.soft,
            marked_bounced=report.marked_bounced,
            already_recorded=report.already_recorded,
            left=len(report.left),
            seconds=_since(started),
        )

    def _when_free(self, job: str, run: Callable[[], RunReport]) -> RunReport:
        """Run, waiting while another process holds the pipeline lease (or until a stop)."""
        waiting = False
        while True:
            try:
                return run()
            except LeaseHeld as exc:
                if not waiting:
                    emit("job.wait", job=job, reason="busy", holder=exc.holder)
                    waiting = True
            if self.stop.wait(LEASE_POLL):
                raise StopRequested


def _report_fields(report: RunReport) -> dict[str, object]:
    delivery = report.delivery
    if delivery is None:
        outcome = "empty"  # skip_when_empty: nothing new, nothing composed, nothing sent
    elif report.created:
        outcome = "sent"
    else:
        outcome = "resumed" if delivery.sent + delivery.failed else "already-sent"
    return {
        "key": report.key,
        "outcome": outcome,
        "articles": report.articles,
        "sent": delivery.sent if delivery else 0,
        "failed": delivery.failed if delivery else 0,
        "pending": report.counts.get("pending", 0),
        "broken_sources": sum(s.error is not None for s in report.sources),
    }


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.2f}"


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


@contextmanager
def _engine(settings: Settings) -> Iterator[Any]:
    engine = store.connect(settings.db_url)
    try:
        yield engine
    finally:
        engine.dispose()
