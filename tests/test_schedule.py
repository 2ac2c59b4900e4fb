"""The scheduled digest in one process: cron meaning, DST, and the real APScheduler.

Every scheduler here is the real one (BackgroundScheduler, the SQLAlchemy job store in a
temp SQLite file, the thread pool); a "machine that was off" is a stored next run time in
the past, set through APScheduler's own API.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from digest import store
from digest.compose import digest_key
from digest.cron import latest_fire_time, parse_cron
from digest.errors import DigestError
from digest.jobs import cadences, digest_job
from digest.lease import LeaseHeld, hold_lease
from digest.pipeline import run_digest
from digest.schedule import DigestScheduler
from digest.settings import Settings, load_settings
from digest.status import schedule_status
from digest.subscribers import import_csv
from tests.conftest import SAMPLES, write_config

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")

# -- cron and time zones (pure) ---------------------------------------------------------

pytestmark = pytest.mark.both_stores


def fire_times(trigger: object, start: datetime, end: datetime) -> list[datetime]:
    found, previous, now = [], None, start
    while True:
        fire = trigger.get_next_fire_time(previous, now)  # type: ignore[attr-defined]
        if fire is None or fire >= end:
            return found
        found.append(fire)
        previous = now = fire


@pytest.mark.parametrize(
    ("weekday", "expected"),
    [
        ("1", {"Monday"}),
        ("0", {"Sunday"}),
        ("7", {"Sunday"}),
        ("1-5", {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}),
        ("*/2", {"Sunday", "Tuesday", "Thursday", "Saturday"}),
        ("fri-sun", {"Friday", "Saturday", "Sunday"}),
        ("mon,wed", {"Monday", "Wednesday"}),
    ],
)
def test_weekday_numbers_mean_what_they_mean_in_crontab(weekday, expected):
    # APScheduler 3 on its own counts 0 as Monday: "0 8 * * 1" would go out on Tuesdays.
    trigger = parse_cron(f"0 8 * * {weekday}", "UTC")
    start = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
    fired = fire_times(trigger, start, start + timedelta(days=14))
    assert {f.strftime("%A") for f in fired} == expected
    assert len(fired) == 2 * len(expected)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 7 * *", "five fields"),
        ("0 25 * * *", "not valid"),
        ("0 7 * * 8", "not a day"),
        ("0 7 1 * 1", "restrict only one"),
    ],
)
def test_a_bad_cron_is_one_sentence_naming_the_key(tmp_path, cron, message):
    path = write_config(tmp_path, f'\n[schedule]\ncron = "{cron}"\n')
    with pytest.raises(DigestError, match=rf"schedule\.cron: .*{message}") as caught:
        load_settings(path)
    assert "\n" not in str(caught.value)


def test_an_unknown_schedule_zone_is_refused(tmp_path):
    path = write_config(tmp_path, '\n[schedule]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(DigestError, match=r"schedule\.timezone.*Mars/Olympus"):
        load_settings(path)


@pytest.mark.parametrize(
    ("zone", "first_day"),
    [
        (NEW_YORK, date(2026, 3, 6)),  # clocks go forward on Sunday 8 March
        (NEW_YORK, date(2026, 10, 30)),  # and back on Sunday 1 November
        (BERLIN, date(2026, 3, 27)),  # forward on 29 March
        (BERLIN, date(2026, 10, 23)),  # back on 25 October
    ],
    ids=["new-york-spring", "new-york-fall", "berlin-spring", "berlin-fall"],
)
def test_daily_digest_stays_at_seven_local_across_a_dst_change(zone, first_day):
    trigger = parse_cron("0 7 * * *", zone.key)
    start = datetime.combine(first_day, datetime.min.time(), zone)
    fired = fire_times(trigger, start, start + timedelta(days=5))
    local = [f.astimezone(zone) for f in fired]
    assert [(t.hour, t.minute) for t in local] == [(7, 0)] * 5
    keys = [digest_key("daily", f, zone.key)[0] for f in fired]
    assert keys == [f"daily/{first_day + timedelta(days=n)}" for n in range(5)]
    offsets = {t.utcoffset() for t in local}
    assert len(offsets) == 2  # the same local time is a different UTC time after the change


@pytest.mark.parametrize(
    ("zone", "cron", "day", "utc_fire"),
    [
        # 02:30 does not exist that night; it goes out once, at 03:30 by the new clock.
        (NEW_YORK, "30 2 * * *", date(2026, 3, 8), datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),
        (BERLIN, "30 2 * * *", date(2026, 3, 29), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        # 01:30 (New York) and 02:30 (Berlin) happen twice that night; the first one counts.
        (NEW_YORK, "30 1 * * *", date(2026, 11, 1), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
        (BERLIN, "30 2 * * *", date(2026, 10, 25), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
    ],
    ids=["new-york-skipped", "berlin-skipped", "new-york-repeated", "berlin-repeated"],
)
def test_a_time_the_dst_change_skips_or_repeats_fires_exactly_once(zone, cron, day, utc_fire):
    start = datetime.combine(day - timedelta(days=1), datetime.min.time(), zone)
    end = start + timedelta(days=3)
    fired = fire_times(parse_cron(cron, zone.key), start, end)
    on_the_day = [f.astimezone(UTC) for f in fired if f.astimezone(zone).date() == day]
    assert on_the_day == [utc_fire]
    assert len(fired) == 3  # one a day, no gap and no double
    assert len({digest_key("daily", f, zone.key)[0] for f in fired}) == 3


def test_plain_apscheduler_would_fire_twice_in_the_repeated_hour():
    # Why WallClockCronTrigger exists: the plain trigger fires at both 01:30s.
    start = datetime(2026, 10, 31, 12, tzinfo=NEW_YORK)
    plain = CronTrigger(hour=1, minute=30, timezone=NEW_YORK)
    assert len(fire_times(plain, start, start + timedelta(days=1))) == 2
    ours = parse_cron("30 1 * * *", "America/New_York")
    assert len(fire_times(ours, start, start + timedelta(days=1))) == 1


def test_a_late_start_keeps_the_day_it_was_scheduled_for():
    trigger = parse_cron("55 23 * * *", "America/New_York")
    # The night clocks go back: the 23:55 run of 31 October starts 75 minutes late.
    scheduled = datetime(2026, 10, 31, 23, 55, tzinfo=NEW_YORK)
    late = scheduled + timedelta(minutes=75)
    assert late.astimezone(NEW_YORK).date() == date(2026, 11, 1)
    found = latest_fire_time(trigger, late, timedelta(hours=2))
    assert found == scheduled
    assert digest_key("daily", found, "America/New_York")[0] == "daily/2026-10-31"
    assert latest_fire_time(trigger, late, timedelta(minutes=30)) is None


# -- the real scheduler, in this process -------------------------------------------------


@pytest.fixture
def make_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> Callable[..., Settings]:
    for name in list(os.environ):
        if name.startswith("DIGEST_"):
            monkeypatch.delenv(name)

    def make(schedule: str = "", extra: str = "") -> Settings:
        schedule_part = f"\n{extra}\n[schedule]\n{schedule}\n"
        return load_settings(write_config(tmp_path, schedule_part, database_url=database_url))

    return make


def just_passed(zone: ZoneInfo = UTC_ZONE) -> tuple[str, datetime]:
    """A daily cron line whose fire time was a few seconds ago."""
    fire = (datetime.now(zone) - timedelta(seconds=5)).replace(second=0, microsecond=0)
    return f"{fire.minute} {fire.hour} * * *", fire


def far_off() -> str:
    """A daily cron line twelve hours away: never due while a test runs."""
    later = datetime.now(UTC) + timedelta(hours=12)
    return f"{later.minute} {later.hour} * * *"


def with_subscribers(settings: Settings) -> Settings:
    import_csv(store.connect(settings.db_url), SAMPLES / "subscribers.csv")
    return settings


def add_people(settings: Settings, count: int) -> None:
    with store.transaction(store.connect(settings.db_url)) as conn:
        for n in range(count):
            store.insert_subscriber(conn, f"reader{n:05}@example.org", None, (), "active")


def digests(settings: Settings) -> list[str]:
    with store.transaction(store.connect(settings.db_url)) as conn:
        return list(conn.scalars(sa.select(store.digests.c.key).order_by(store.digests.c.id)))


def ledger(settings: Settings) -> list[tuple[str, str, int]]:
    """(digest key, status, attempts) of every delivery."""
    query = sa.select(
        store.digests.c.key, store.deliveries.c.status, store.deliveries.c.attempts
    ).join(store.digests, store.digests.c.id == store.deliveries.c.digest_id)
    with store.transaction(store.connect(settings.db_url)) as conn:
        return [tuple(row) for row in conn.execute(query)]


def set_next_run(settings: Settings, job_id: str, when: datetime) -> None:
    """Pretend the machine was off: the stored job's next run time lies in the past."""
    scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=settings.db_url)})
    scheduler.start(paused=True)
    scheduler.modify_job(job_id, next_run_time=when)
    scheduler.remove_jobstore("default")  # else its last round after shutdown takes the job
    scheduler.shutdown()


def stored_next_run(settings: Settings, job_id: str) -> datetime:
    jobstore = SQLAlchemyJobStore(url=settings.db_url)
    jobstore.start(BackgroundScheduler(), "default")
    job = jobstore.lookup_job(job_id)
    jobstore.shutdown()
    assert job is not None
    return job.next_run_time  # type: ignore[no-any-return]


def once(settings: Settings) -> list[tuple[str, str]]:
    scheduler = DigestScheduler(settings)
    scheduler.run_once()
    return scheduler.history


def events(caplog: pytest.LogCaptureFixture, event: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"event={event}")]


def test_a_due_job_runs_once_and_a_restart_does_not_run_it_again(make_settings, caplog):
    caplog.set_level(logging.INFO, logger="digest")
    cron, fire = just_passed()
    settings = with_subscribers(make_settings(f'cron = "{cron}"\nmisfire_grace_time = 600'))

    assert once(settings) == [("digest:daily", "executed")]
    assert digests(settings) == [f"daily/{fire.date()}"]
    assert sorted(ledger(settings)) == [(f"daily/{fire.date()}", "sent", 1)] * 3
    [start] = events(caplog, "job.start")
    assert f"key=daily/{fire.date()}" in start and f"scheduled={fire.isoformat()}" in start
    [end] = events(caplog, "job.end")
    assert re.search(r"outcome=sent articles=[1-9]\d* sent=3 failed=0 pending=0 ", end), end

    # A restart: the stored job's next run is tomorrow, so nothing is due and nothing runs.
    assert once(settings) == []
    assert stored_next_run(settings, "digest:daily") == fire + timedelta(days=1)
    assert digests(settings) == [f"daily/{fire.date()}"]
    assert all(attempts == 1 for _, _, attempts in ledger(settings))


def test_a_running_scheduler_fires_on_a_short_interval_and_never_sends_twice(make_settings, caplog):
    caplog.set_level(logging.INFO, logger="digest")
    settings = with_subscribers(make_settings(f'cron = "{far_off()}"'))
    service = DigestScheduler(settings)
    assert service.start() == []
    # The configured job, rescheduled every second through APScheduler itself.
    service.scheduler.add_job(
        digest_job, "interval", seconds=1, id="digest:daily", kwargs={"list_name": "daily"},
        jobstore="default", replace_existing=True, misfire_grace_time=60,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while service.history.count(("digest:daily", "executed")) < 3:
        assert time.monotonic() < deadline, service.history
        time.sleep(0.05)
    service.shutdown()

    assert len(digests(settings)) == 1
    assert [e.split("outcome=")[1].split()[0] for e in events(caplog, "job.end")][:3] == [
        "sent",
        "already-sent",
        "already-sent",
    ]
    assert all(attempts == 1 for _, _, attempts in ledger(settings))


def test_a_run_missed_within_the_grace_time_runs_once_coalesced(make_settings, caplog):
    caplog.set_level(logging.INFO, logger="digest")
    settings = with_subscribers(make_settings('cron = "* * * * *"\nmisfire_grace_time = 3600'))
    assert once(settings) == [("digest:daily", "executed")]  # the minute that just began
    # Off for ten minutes: ten runs were missed; they become one.
    set_next_run(settings, "digest:daily", datetime.now(UTC) - timedelta(minutes=10))
    assert once(settings) == [("digest:daily", "executed")]
    assert len(digests(settings)) == 1
    assert events(caplog, "job.end")[-1].count("outcome=already-sent") == 1


def test_a_run_missed_beyond_the_grace_time_is_skipped(make_settings, caplog):
    caplog.set_level(logging.INFO, logger="digest")
    settings = with_subscribers(make_settings(f'cron = "{far_off()}"\nmisfire_grace_time = 600'))
    assert once(settings) == []
    set_next_run(settings, "digest:daily", datetime.now(UTC) - timedelta(seconds=20))
    assert once(settings) == [("digest:daily", "executed")]  # 20 s late: within grace
    assert len(digests(settings)) == 1

    set_next_run(settings, "digest:daily", datetime.now(UTC) - timedelta(hours=2))
    assert once(settings) == [("digest:daily", "missed")]  # 2 h late: outside grace
    assert len(digests(settings)) == 1
    assert stored_next_run(settings, "digest:daily") > datetime.now(UTC)
    [missed] = events(caplog, "job.missed")
    assert "job=digest:daily" in missed and "catch_up is skip" in missed


def test_a_missed_day_with_catch_up_send_goes_out_once_under_todays_date(make_settings):
    settings = with_subscribers(
        make_settings(f'cron = "{far_off()}"\nmisfire_grace_time = 600\ncatch_up = "send"')
    )
    assert once(settings) == []
    # Off for three days: three runs missed, all far beyond the grace time.
    set_next_run(settings, "digest:daily", datetime.now(UTC) - timedelta(days=3))
    assert once(settings) == [("digest:daily", "executed")]
    assert digests(settings) == [digest_key("daily", datetime.now(UTC), "UTC")[0]]
    assert once(settings) == []


def quiet_settings(tmp_path: Path, schedule: str) -> Settings:
    """A config whose only source is an empty folder: nothing new, ever."""
    (tmp_path / "empty").mkdir()
    path = tmp_path / "quiet.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "var"}"\n\n[schedule]\n{schedule}\n\n'
        f'[[sources]]\nname = "Quiet Desk"\nkind = "folder"\nlocation = "{tmp_path / "empty"}"\n'
    )
    return with_subscribers(load_settings(path))


@pytest.mark.usefixtures("make_settings")  # a clean DIGEST_* environment
def test_no_new_articles_sends_nothing_and_says_so(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="digest")
    cron, _ = just_passed()
    settings = quiet_settings(tmp_path, f'cron = "{cron}"\nmisfire_grace_time = 600')
    assert once(settings) == [("digest:daily", "executed")]
    assert digests(settings) == []
    [end] = events(caplog, "job.end")
    assert "outcome=empty articles=0 sent=0" in end


@pytest.mark.usefixtures("make_settings")
def test_with_skip_when_empty_off_an_empty_digest_still_goes_out(tmp_path):
    cron, fire = just_passed()
    settings = quiet_settings(
        tmp_path, f'cron = "{cron}"\nmisfire_grace_time = 600\nskip_when_empty = false'
    )
    assert once(settings) == [("digest:daily", "executed")]
    assert digests(settings) == [f"daily/{fire.date()}"]
    assert sorted(ledger(settings)) == [(f"daily/{fire.date()}", "sent", 1)] * 3
    [path] = (tmp_path / "var" / "outbox").rglob("ana*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert "no new stories" in message["Subject"]


def test_the_weekly_digest_has_its_own_key_from_the_same_articles(make_settings):
    cron, fire = just_passed()
    settings = with_subscribers(
        make_settings(
            f'cron = "{cron}"\nmisfire_grace_time = 600\n'
            f'[schedule.weekly]\ncron = "{cron.rsplit(" ", 1)[0]} {fire.isoweekday() % 7}"\n'
        )
    )
    assert sorted(once(settings)) == [("digest:daily", "executed"), ("digest:weekly", "executed")]
    assert sorted(digests(settings)) == [f"daily/{fire.date()}", f"weekly/{fire.date()}"]
    with store.transaction(store.connect(settings.db_url)) as conn:
        weekly = store.find_digest(conn, f"weekly/{fire.date()}")
        daily = store.find_digest(conn, f"daily/{fire.date()}")
        assert weekly is not None and daily is not None
        in_weekly = [a.id for a, _ in store.digest_articles(conn, weekly.id)]
        in_daily = [a.id for a, _ in store.digest_articles(conn, daily.id)]
    assert in_weekly and sorted(in_weekly) == sorted(in_daily)  # the same pool, both lists
    assert weekly.subject.startswith("The week to")
    assert len(ledger(settings)) == 6 and all(a == 1 for _, _, a in ledger(settings))


def test_weekly_and_daily_need_different_list_names(make_settings):
    settings = make_settings('[schedule.weekly]\nlist_name = "daily"')
    with pytest.raises(DigestError, match=r"schedule\.weekly\.list_name"):
        cadences(settings)


def test_a_changed_cron_replaces_the_stored_job_and_a_dropped_job_goes(make_settings):
    cron = far_off()
    settings = make_settings(f'cron = "{cron}"\ncollect_every = 30\n[schedule.weekly]')
    assert once(settings) == []
    before = stored_next_run(settings, "digest:daily")
    later = (before + timedelta(hours=1)).astimezone(UTC)
    changed = make_settings(f'cron = "{later.minute} {later.hour} * * *"')
    assert once(changed) == []
    assert stored_next_run(changed, "digest:daily") == later
    jobstore = SQLAlchemyJobStore(url=changed.db_url)
    jobstore.start(BackgroundScheduler(), "default")
    assert [job.id for job in jobstore.get_all_jobs()] == ["digest:daily"]
    jobstore.shutdown()


def test_a_digest_cut_off_mid_send_is_finished_at_the_next_start(make_settings, caplog):
    caplog.set_level(logging.INFO, logger="digest")
    settings = make_settings(f'cron = "{far_off()}"', "[delivery]\nbatch_size = 1")
    add_people(settings, 20)  # many more batches than are ever in flight at once

    def crash(_progress: object) -> None:
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):  # the crash lands after the first batch is recorded
        run_digest(settings, on_batch=crash)
    statuses = sorted(status for _, status, _ in ledger(settings))
    assert "pending" in statuses and "sent" in statuses

    assert once(settings) == [("resume", "executed")]
    assert sorted(ledger(settings)) == [(digests(settings)[0], "sent", 1)] * 20
    [end] = events(caplog, "job.end")
    assert "job=resume" in end and "outcome=resumed" in end and "pending=0" in end


def test_status_shows_next_run_last_digest_and_source_health(make_settings):
    cron, fire = just_passed(BERLIN)
    settings = with_subscribers(
        make_settings(f'cron = "{cron}"\ntimezone = "Europe/Berlin"\nmisfire_grace_time = 600')
    )
    before = schedule_status(settings)
    assert [(j.id, j.state) for j in before.jobs] == [("digest:daily", "not started")]
    assert before.lists[0].last_key is None and before.running is None

    once(settings)
    after = schedule_status(settings)
    [job] = after.jobs
    assert (job.id, job.state, job.when) == ("digest:daily", "scheduled", cron)
    assert job.next_run == fire + timedelta(days=1)
    assert after.zone == "Europe/Berlin"
    [daily] = after.lists
    assert daily.last_key == digest_key("daily", fire, "UTC")[0]
    assert daily.deliveries == {"sent": 3}
    assert {(s["name"], s["last_status"]) for s in after.sources} == {
        ("Local Desk", "ok"),
        ("Example Science Wire", "ok"),
    }
    with hold_lease(store.connect(settings.db_url)) as owner:
        assert schedule_status(settings).running.startswith(owner)  # type: ignore[union-attr]


def test_a_second_run_while_one_holds_the_lease_is_refused_in_one_sentence(make_settings):
    settings = make_settings()
    engine = store.connect(settings.db_url)
    with hold_lease(engine) as owner, pytest.raises(LeaseHeld) as caught:
        run_digest(settings)
    assert caught.value.holder == owner
    assert "Another digest process" in str(caught.value) and "\n" not in str(caught.value)
    run_digest(settings)  # released on the way out


def test_an_expired_lease_is_taken_over(make_settings):
    engine = store.connect(make_settings().db_url)
    with store.transaction(engine) as conn:
        assert store.acquire_lease(conn, "pipeline", "crashed", ttl=-1)["owner"] == "crashed"
        assert store.acquire_lease(conn, "pipeline", "next", ttl=60)["owner"] == "next"
        assert store.acquire_lease(conn, "pipeline", "third", ttl=60)["owner"] == "next"
        assert not store.renew_lease(conn, "pipeline", "crashed", ttl=60)


def test_schedulers_starting_together_on_a_new_database_create_the_job_table_once(
    make_settings,
):
    # APScheduler's table is created at start; on PostgreSQL even CREATE TABLE IF NOT
    # EXISTS fails when two run at once, so it is created under the schema lock.
    settings = make_settings(f'cron = "{far_off()}"')
    with ThreadPoolExecutor(4) as pool:
        schedulers = list(pool.map(lambda _: DigestScheduler(settings), range(4)))
    for scheduler in schedulers:
        scheduler.engine.dispose()
    assert once(settings) == []
    assert stored_next_run(settings, "digest:daily") > datetime.now(UTC)
