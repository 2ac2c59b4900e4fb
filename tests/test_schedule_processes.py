"""`digest schedule` and `digest status` as real processes sharing one database."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from digest import store
from digest.lease import hold_lease
from digest.pipeline import run_digest
from digest.settings import load_settings
from tests.conftest import SAMPLES, write_config

TIMEOUT = 120.0


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_scheduler_outlives_its_test() -> Iterator[None]:
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:  # a failed test left it running
            process.kill()
            process.wait(timeout=30)


class Scheduler:
    """One `digest schedule` process; its log lines are read as they come."""

    def __init__(self, folder: Path, config: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "digest.cli", "--config", str(config), "schedule", *args],
            cwd=folder,
            env={**env, "NO_COLOR": "1", "COLUMNS": "200"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _STARTED.append(self.process)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first line that matches, waiting for it; fail if the process ends first."""
        for line in self.lines:
            if found := re.search(pattern, line):
                return found
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"ended before {pattern!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if found := re.search(pattern, line):
                return found
        raise AssertionError(f"no {pattern!r} within {TIMEOUT} s:\n" + "\n".join(self.lines))

    def seen(self, pattern: str) -> re.Match[str] | None:
        """A line read so far that matches, without waiting."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)  # keep the end marker for finish()
                break
            self.lines.append(line)
        return next((m for line in self.lines if (m := re.search(pattern, line))), None)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        return self.finish()

    def finish(self) -> int:
        code = self.process.wait(timeout=TIMEOUT)
        while (line := self._queue.get(timeout=TIMEOUT)) is not None:
            self.lines.append(line)
        return code

    def log(self, event: str) -> list[str]:
        return [line for line in self.lines if f" event={event} " in f"{line} "]


def just_passed() -> datetime:
    return (datetime.now(UTC) - timedelta(seconds=5)).replace(second=0, microsecond=0)


def project(
    tmp_path: Path,
    people: int,
    schedule: str,
    fire: datetime | None = None,
    database_url: str = "",
) -> Path:
    """A config whose daily run was due a few seconds ago, and `people` active subscribers."""
    fire = fire or just_passed()
    config = write_config(
        tmp_path,
        f'\n[delivery]\nbatch_size = 5\n\n[schedule]\ncron = "{fire.minute} {fire.hour} * * *"'
        f"\nmisfire_grace_time = 600\n{schedule}\n",
        database_url=database_url,
    )
    engine = store.connect(load_settings(config).db_url)
    with store.transaction(engine) as conn:
        for n in range(people):
            store.insert_subscriber(conn, f"reader{n:05}@example.org", None, (), "active")
    return config


def ledger(config: Path) -> list[tuple[str, str, int]]:
    query = sa.select(
        store.digests.c.key, store.deliveries.c.status, store.deliveries.c.attempts
    ).join(store.digests, store.digests.c.id == store.deliveries.c.digest_id)
    with store.transaction(store.connect(load_settings(config).db_url)) as conn:
        return [tuple(row) for row in conn.execute(query)]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DIGEST_"):
            monkeypatch.delenv(name)


@pytest.mark.both_stores  # on PostgreSQL: two hosts, one digest per key, one job store
def test_two_scheduler_processes_on_one_database_send_one_digest_per_key(tmp_path, database_url):
    fire = just_passed()
    weekly = f'[schedule.weekly]\ncron = "{fire.minute} {fire.hour} * * {fire:%w}"'
    config = project(tmp_path, 300, weekly, fire, database_url)
    settings = load_settings(config)
    day = f"{fire:%Y-%m-%d}"

    def power_cut(_progress: object) -> None:
        raise RuntimeError("power cut")

    # Today's digest was cut off mid-send: both schedulers will find it and resume it.
    with pytest.raises(RuntimeError):
        run_digest(settings, moment=fire, on_batch=power_cut)
    assert {status for _, status, _ in ledger(config)} == {"sent", "pending"}

    # Hold the pipeline lease while both start, so each has to wait for it and then race
    # the other for the same pending rows.
    with hold_lease(store.connect(settings.db_url)):
        first, second = Scheduler(tmp_path, config), Scheduler(tmp_path, config)
        due = [p.wait_for(r"event=scheduler\.start .*due=(\S+)")[1] for p in (first, second)]
        for process in (first, second):
            process.wait_for(r"event=job\.wait job=resume ")
    # "resume" is each process's own; the stored jobs are shared, and whichever scheduler
    # reaches one first runs it (the other then finds it no longer due).
    for process, jobs in zip((first, second), due, strict=True):
        if "resume" in jobs.split(","):
            ended = process.wait_for(r"event=job\.(end|error) job=resume ")
            assert ended[1] == "end", "\n".join(process.lines)
    shared = {job for jobs in due for job in jobs.split(",") if job != "resume"}
    for job in shared:
        pattern = rf"event=job\.(end|error) job={job} "
        deadline = time.monotonic() + TIMEOUT
        while not any(p.seen(pattern) for p in (first, second)):
            assert time.monotonic() < deadline, f"{job} never ended"
            time.sleep(0.1)
        ends = [m for p in (first, second) if (m := p.seen(pattern))]
        assert all(m[1] == "end" for m in ends), "\n".join(first.lines + second.lines)
    assert first.stop(signal.SIGTERM) == 0
    assert second.stop(signal.SIGINT) == 0

    rows = ledger(config)
    assert sorted({key for key, _, _ in rows}) == [f"daily/{day}", f"weekly/{day}"]
    assert len(rows) == 2 * 300
    assert {(status, attempts) for _, status, attempts in rows} == {("sent", 1)}
    for process in (first, second):  # both worked on today's daily digest
        assert [line for line in process.log("job.start") if f"key=daily/{day}" in line]
        assert process.log("scheduler.stop"), process.lines
        assert not [line for line in process.lines if "level=error" in line]
    [composed] = [line for p in (first, second) for line in p.log("job.end") if "=sent " in line]
    assert f"key=weekly/{day}" in composed  # the daily one was composed before the cut


def test_sigterm_finishes_the_batch_and_the_next_start_sends_the_rest_once(tmp_path):
    config = project(tmp_path, 1500, "")
    running = Scheduler(tmp_path, config)
    running.wait_for(r"event=job\.deliver job=digest:daily .*pending=1500")
    assert running.stop(signal.SIGTERM) == 0
    assert running.log("scheduler.stopping") and running.log("scheduler.stop")
    [stopped] = running.log("job.stopped")
    rows = ledger(config)
    assert {status for _, status, _ in rows} == {"sent", "pending"}  # a ledger, no limbo
    sent = sum(status == "sent" for _, status, _ in rows)
    assert f"sent={sent}" in stopped and f"pending={1500 - sent}" in stopped
    assert sent % 5 == 0  # whole batches only

    resumed = Scheduler(tmp_path, config, "--once")
    assert resumed.finish() == 0
    assert "due=resume " in resumed.log("scheduler.start")[0]  # the daily job is not due
    [end] = resumed.log("job.end")
    assert "job=resume" in end and "outcome=resumed" in end and f"sent={1500 - sent}" in end
    assert {(status, attempts) for _, status, attempts in ledger(config)} == {("sent", 1)}
    assert len(list((tmp_path / "var" / "outbox").rglob("*.eml"))) == 1500

    again = Scheduler(tmp_path, config, "--once")
    assert again.finish() == 0
    assert "due=nothing" in again.log("scheduler.start")[0] and not again.log("job.start")


def test_schedule_once_then_status_through_the_cli(cli, tmp_path):
    config = project(tmp_path, 0, "collect_every = 30")
    assert cli("subscribers", "import", str(SAMPLES / "subscribers.csv")).returncode == 0
    before = cli("--config", str(config), "status", config=False)
    assert before.returncode == 0, before.stderr
    assert re.search(r"digest:daily .*not started", before.stdout)
    assert "none yet" in before.stdout

    ran = cli("--config", str(config), "schedule", "--once", config=False)
    assert ran.returncode == 0, ran.stderr
    assert re.search(r"event=job\.end job=digest:daily .*outcome=sent .*sent=3 ", ran.stderr)

    after = cli("--config", str(config), "status", config=False)
    assert after.returncode == 0, after.stderr
    key = re.search(r"key=(daily/\S+)", ran.stderr)[1]  # type: ignore[index]
    assert re.search(rf"daily .*{key} .*sent 3", after.stdout), after.stdout
    assert re.search(r"digest:daily .*scheduled", after.stdout)
    assert re.search(r"collect .*every 30 min .*scheduled", after.stdout)
    assert re.search(r"Local Desk .*ok", after.stdout)
    assert "Running now: nothing" in after.stdout


def test_digest_run_while_a_scheduler_sends_is_refused_in_one_sentence(cli, settings):
    with hold_lease(store.connect(settings.db_url)):
        result = cli("run")
    assert result.returncode == 1
    assert "Another digest process" in result.stderr and "Traceback" not in result.stderr
    assert cli("run").returncode == 0
