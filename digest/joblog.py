"""Scheduler logs: one line per event, as key=value pairs a person and a log tool can read.

time=2026-11-28T07:00:00.410+00:00 level=info event=job.end job=digest:daily sent=3 ...
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

log = logging.getLogger("digest.schedule")


def fields(event: str, **values: object) -> str:
    parts = [f"event={event}"]
    for name, value in values.items():
        if value is None:
            continue
        text = stamp(value) if isinstance(value, datetime) else str(value)
        if not text or any(ch in text for ch in ' ="\\') or not text.isprintable():
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{name}={text}")
    return " ".join(parts)


def emit(event: str, **values: object) -> None:
    log.info(fields(event, **values))


def warn(event: str, **values: object) -> None:
    log.warning(fields(event, **values))


class LineFormatter(logging.Formatter):
    """time=... level=... then the event's fields; other libraries' lines become msg=..."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        text = record.getMessage()
        if not record.name.startswith("digest."):
            text = fields("log", logger=record.name, msg=text)
        line = f"time={stamp} level={record.levelname.lower()} {text}"
        if record.exc_info:  # only for a bug: the traceback is worth the extra lines
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(LineFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # APScheduler's own lines repeat ours (job.start, job.missed); keep only its warnings.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("apscheduler.executors").setLevel(logging.ERROR)


def stamp(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return "never" if value is None else str(value)
