"""Cron expressions with crontab's meaning, in a time zone, safe across DST changes.

APScheduler 3 reads a crontab line almost like cron does, with two differences that would
send a digest on the wrong day: its weekday 0 is Monday (cron's is Sunday), and when both
the day of the month and the weekday are restricted it wants both (cron wants either).
`parse_cron` translates weekdays and refuses the ambiguous form.

On the night clocks go back, a wall-clock time such as 01:30 happens twice; cron fires once,
and so does `WallClockCronTrigger`. On the night clocks go forward, 02:30 does not exist;
APScheduler fires at the same instant an hour later by the new clock (03:30), as cron does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class WallClockCronTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler is untyped
    """A cron trigger that fires once per local wall-clock time, even in a repeated hour."""

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        fire: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        # fold=1 marks the second pass through a repeated hour; its first pass already fired.
        while fire is not None and fire.fold == 1 and _is_repeated(fire):
            fire = super().get_next_fire_time(fire, fire)
        # A time the clocks skip (02:30 that night) comes back as that wall time with the old
        # offset; through UTC it reads as the instant it really is (03:30 by the new clock).
        return fire.astimezone(UTC).astimezone(fire.tzinfo) if fire is not None else None


def _is_repeated(moment: datetime) -> bool:
    return moment.replace(fold=0).utcoffset() != moment.replace(fold=1).utcoffset()


def parse_cron(expression: str, timezone: str) -> WallClockCronTrigger:
    """A trigger for a five-field crontab line (minute hour day month weekday) in a zone.

    Raises ValueError with one sentence when the line is not valid.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {expression!r} needs five fields: minute hour day-of-month month weekday"
        )
    minute, hour, day, month, weekday = fields
    if day != "*" and weekday != "*":
        raise ValueError(
            f"cron {expression!r} restricts both the day of the month and the weekday; "
            "restrict only one"
        )
    try:
        return WallClockCronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_weekdays(weekday),
            timezone=ZoneInfo(timezone),
        )
    except ValueError as exc:
        raise ValueError(f"cron {expression!r} is not valid: {exc}") from None


def _weekdays(field: str) -> str:
    """Cron's weekday field (0 or 7 = Sunday, names, ranges, steps) as APScheduler names."""
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.lower().split(","):
        base, _, step_text = part.partition("/")
        step = _number(step_text, 1, 7, part) if step_text else 1
        if base == "*":
            first, last = 0, 6
        else:
            start, _, end = base.partition("-")
            first = _day(start, part)
            last = _day(end, part) if end else (6 if step_text else first)
            if last < first and end in ("0", "sun"):
                last = 7  # "5-0" and "fri-sun" end on Sunday, cron's day 7
            if last < first:
                raise ValueError(f"weekday range {part!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))
    # Monday first, the order APScheduler counts in; the names mean the same to both.
    return ",".join(_DAYS[day] for day in sorted(days, key=lambda d: (d + 6) % 7))


def _day(text: str, part: str) -> int:
    if text in _DAYS:
        return _DAYS.index(text)
    return _number(text, 0, 7, part)


def _number(text: str, low: int, high: int, part: str) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"weekday {part!r} is not a day; use 0-7 or sun-sat")
    return int(text)


def latest_fire_time(trigger: Any, now: datetime, window: timedelta) -> datetime | None:
    """The trigger's last fire time in the `window` up to `now`, or None if it has none there.

    A run that starts late (after a restart, within the grace time) belongs to the day it
    was scheduled for, not the day it happens to start on: 23:55 run at 00:10 is yesterday's.
    """
    latest = None
    fire: datetime | None = trigger.get_next_fire_time(None, now - window)
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire)
    return latest
