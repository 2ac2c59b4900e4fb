"""Subscribers, their status history, and bulk reads and writes for imports."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from digest.models import LISTS, Subscriber
from digest.store.schema import (
    _new_id,
    deliveries,
    now,
    signin_failures,
    signup_attempts,
    subscriber_events,
    subscribers,
)

# -- subscribers -----------------------------------------------------------------------


def _subscriber_from_row(row: Any) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        topics=tuple(row.topics),
        status=row.status,
        lists=lists_of(row.wants_daily, row.wants_weekly),
        paused_until=row.paused_until,
    )


def lists_of(daily: bool, weekly: bool) -> tuple[str, ...]:
    return tuple(name for name, wanted in zip(LISTS, (daily, weekly), strict=True) if wanted)


def list_columns(lists: Sequence[str]) -> dict[str, bool]:
    """The columns that hold list membership, for these list names."""
    return {"wants_daily": "daily" in lists, "wants_weekly": "weekly" in lists}


def find_subscriber(conn: Connection, email: str) -> Subscriber | None:
    row = conn.execute(sa.select(subscribers).where(subscribers.c.email == email)).first()
    return _subscriber_from_row(row) if row else None


def get_subscriber(conn: Connection, subscriber_id: int) -> Subscriber | None:
    row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
    return _subscriber_from_row(row) if row else None


def insert_subscriber(
    conn: Connection, email: str, name: str | None, topics: Sequence[str], status: str
) -> int:
    stamp = now()
    result = conn.execute(
        subscribers.insert().values(
            email=email,
            name=name,
            topics=list(topics),
            status=status,
            created_at=stamp,
            status_changed_at=stamp,
        )
    )
    subscriber_id = _new_id(result)
    record_event(conn, subscriber_id, status)
    return subscriber_id


def update_subscriber(conn: Connection, subscriber_id: int, **values: Any) -> None:
    if "status" in values:
        values["status_changed_at"] = now()
        record_event(conn, subscriber_id, values["status"])
    conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id).values(**values))


def record_event(conn: Connection, subscriber_id: int, event: str) -> None:
    conn.execute(
        subscriber_events.insert().values(subscriber_id=subscriber_id, event=event, at=now())
    )


def subscriber_history(conn: Connection, subscriber_id: int) -> list[tuple[str, datetime]]:
    """(event, when) for one subscriber, oldest first."""
    query = (
        sa.select(subscriber_events.c.event, subscriber_events.c.at)
        .where(subscriber_events.c.subscriber_id == subscriber_id)
        .order_by(subscriber_events.c.at, subscriber_events.c.id)
    )
    return [(row.event, row.at) for row in conn.execute(query)]


def last_event_at(conn: Connection, subscriber_id: int, event: str) -> datetime | None:
    query = sa.select(sa.func.max(subscriber_events.c.at)).where(
        subscriber_events.c.subscriber_id == subscriber_id, subscriber_events.c.event == event
    )
    value = conn.scalar(query)
    return value if isinstance(value, datetime) else None


def list_subscribers(conn: Connection, status: str | None = None) -> list[Subscriber]:
    query = sa.select(subscribers).order_by(subscribers.c.email)
    if status:
        query = query.where(subscribers.c.status == status)
    return [_subscriber_from_row(row) for row in conn.execute(query)]


def subscribers_by_email(conn: Connection, emails: Sequence[str]) -> dict[str, Subscriber]:
    """The subscribers among these addresses, by address: one query for a whole chunk."""
    if not emails:
        return {}
    wanted: sa.ColumnElement[bool] = subscribers.c.email.in_(list(emails))
    if conn.dialect.name == "postgresql":
        # One array parameter instead of one per address: PostgreSQL parses and plans a
        # statement with 500 parameters for longer than it takes to find the 500 rows.
        addresses = sa.bindparam("emails", list(emails), type_=postgresql.ARRAY(sa.String))
        wanted = subscribers.c.email == sa.any_(addresses)
    rows = conn.execute(sa.select(subscribers).where(wanted))
    found = (_subscriber_from_row(row) for row in rows)
    return {s.email: s for s in found}


def insert_subscribers(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Add many subscribers (email, name, topics, status per row) and their first events.

    A few statements for many rows, never one per row: on PostgreSQL each statement is a
    network round trip, and a statement with thousands of parameters costs more to parse
    than its rows to write, so there the rows travel by COPY.
    """
    if not rows:
        return
    stamp = now()
    if conn.dialect.name == "postgresql":
        _copy_subscribers(conn, rows, stamp)
        return
    # SQLite runs in this process: one executemany, then the events by address.
    conn.execute(
        subscribers.insert(),
        [{**row, "created_at": stamp, "status_changed_at": stamp} for row in rows],
    )
    conn.execute(
        subscriber_events.insert().from_select(
            ["subscriber_id", "event", "at"],
            sa.select(subscribers.c.id, subscribers.c.status, subscribers.c.created_at).where(
                subscribers.c.email.in_([row["email"] for row in rows])
            ),
        )
    )


def _copy_subscribers(conn: Connection, rows: Sequence[dict[str, Any]], stamp: datetime) -> None:
    # COPY returns no ids, so they are taken from the table's sequence first: the events
    # need them, and a concurrent insert elsewhere still gets ids of its own.
    ids = conn.scalars(
        sa.select(sa.func.nextval(sa.func.pg_get_serial_sequence("subscribers", "id"))).select_from(
            sa.func.generate_series(1, len(rows))
        )
    ).all()
    # The DB-API connection of this same transaction; psycopg's COPY is not in SQLAlchemy.
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    columns = (
        "id, email, name, topics, status, created_at, status_changed_at, wants_daily, wants_weekly"
    )
    with cursor.copy(f"COPY subscribers ({columns}) FROM STDIN") as copy:
        for sid, row in zip(ids, rows, strict=True):
            topics = json.dumps(list(row["topics"]))
            daily, weekly = row.get("wants_daily", True), row.get("wants_weekly", True)
            copy.write_row(
                (sid, row["email"], row["name"], topics, row["status"], stamp, stamp, daily, weekly)
            )
    with cursor.copy("COPY subscriber_events (subscriber_id, event, at) FROM STDIN") as copy:
        for sid, row in zip(ids, rows, strict=True):
            copy.write_row((sid, row["status"], stamp))
    cursor.close()


def update_subscribers(conn: Connection, changes: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """Apply (subscriber id, {column: new value}) to many subscribers, a batch per shape.

    Rows that change the same columns share one executemany UPDATE (psycopg pipelines it:
    no round trip per row); a status change also stamps the time and records the event.
    """
    stamp = now()
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for subscriber_id, values in changes:
        shapes.setdefault(tuple(sorted(values)), []).append(
            {"sid": subscriber_id, **{f"new_{k}": v for k, v in values.items()}}
        )
    for columns, params in shapes.items():
        if conn.dialect.name == "postgresql":
            _update_from_arrays(conn, columns, params, stamp)
            continue
        setting: dict[str, Any] = {
            c: sa.bindparam(f"new_{c}", type_=subscribers.c[c].type) for c in columns
        }
        if "status" in columns:
            setting["status_changed_at"] = stamp
        statement = subscribers.update().where(subscribers.c.id == sa.bindparam("sid"))
        conn.execute(statement.values(setting), params)
    events = [
        {"subscriber_id": sid, "event": values["status"], "at": stamp}
        for sid, values in changes
        if "status" in values
    ]
    if events:
        conn.execute(subscriber_events.insert(), events)


def _update_from_arrays(
    conn: Connection, columns: tuple[str, ...], params: list[dict[str, Any]], stamp: datetime
) -> None:
    # One UPDATE ... FROM unnest(ids, names, ...) per shape: one statement and one array
    # parameter per column, however many rows (executemany still runs one per row).
    keys = ("sid", *columns)
    values = {k: [p[k if k == "sid" else f"new_{k}"] for p in params] for k in keys}
    values["topics"] = [json.dumps(list(t)) for t in values.get("topics", [])]
    arrays = [
        sa.bindparam(f"all_{k}", values[k], type_=postgresql.ARRAY(_array_type(k))) for k in keys
    ]
    changed = sa.func.unnest(*arrays).table_valued(*keys).render_derived("changed")
    setting: dict[str, Any] = {
        c: sa.cast(changed.c[c], sa.JSON) if c == "topics" else changed.c[c] for c in columns
    }
    if "status" in columns:
        setting["status_changed_at"] = stamp
    conn.execute(subscribers.update().where(subscribers.c.id == changed.c.sid).values(setting))


def _array_type(column: str) -> Any:
    if column == "sid":
        return sa.Integer
    if isinstance(subscribers.c[column].type, sa.Boolean):
        return sa.Boolean
    return sa.Text


def iter_subscribers(
    conn: Connection, status: str | None = None, topic: str | None = None, batch: int = 1000
) -> Iterator[Subscriber]:
    """Subscribers by address, streamed in batches so a long list never sits in memory."""
    after = ""
    while True:
        query = sa.select(subscribers).where(subscribers.c.email > after)
        if status:
            query = query.where(subscribers.c.status == status)
        rows = conn.execute(query.order_by(subscribers.c.email).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            subscriber = _subscriber_from_row(row)
            if topic is None or topic.lower() in subscriber.topics:
                yield subscriber
        after = rows[-1].email


def subscriber_counts(conn: Connection) -> dict[str, int]:
    query = sa.select(subscribers.c.status, sa.func.count()).group_by(subscribers.c.status)
    return {status: int(count) for status, count in conn.execute(query)}


def subscriber_delivery_counts(conn: Connection, subscriber_id: int) -> dict[str, int]:
    query = (
        sa.select(deliveries.c.status, sa.func.count())
        .where(deliveries.c.subscriber_id == subscriber_id)
        .group_by(deliveries.c.status)
    )
    return {status: int(count) for status, count in conn.execute(query)}


def allow_signup(
    conn: Connection, client: str, limit: int, window: timedelta, moment: datetime
) -> bool:
    """Count one sign-up request from `client`; False once it made `limit` in `window`.

    Kept in the database so that every web host counts the same requests; rows older than
    a day are dropped on the way.
    """
    conn.execute(signup_attempts.delete().where(signup_attempts.c.at < moment - timedelta(days=1)))
    if _recent(conn, signup_attempts, client, moment - window) >= limit:
        return False
    conn.execute(signup_attempts.insert().values(client=client[:64], at=moment))
    return True


def signin_locked(
    conn: Connection, client: str, limit: int, window: timedelta, moment: datetime
) -> bool:
    """True when `client` failed to sign in `limit` times within `window` before `moment`.

    Counted in the database, so failures on one web host lock the client out on all.
    """
    return _recent(conn, signin_failures, client, moment - window) >= limit


def record_signin_failure(
    conn: Connection, client: str, window: timedelta, moment: datetime
) -> None:
    """Count one failed sign-in; failures older than `window` count for nobody and go."""
    conn.execute(signin_failures.delete().where(signin_failures.c.at <= moment - window))
    conn.execute(signin_failures.insert().values(client=client[:64], at=moment))


def _recent(conn: Connection, attempts: sa.Table, client: str, since: datetime) -> int:
    """How many rows of a per-client table (client, at) this client has after `since`."""
    query = (
        sa.select(sa.func.count())
        .select_from(attempts)
        .where(attempts.c.client == client[:64], attempts.c.at > since)
    )
    return int(conn.scalar(query) or 0)
