from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from digest import store
from digest.deliver import deliver_digest
from digest.mail.message import MessageTemplate
from digest.mail.outbox import OutboxTransport
from digest.models import Article, RenderedDigest
from digest.store.schema import (
    _v8_reader_preferences,
    _v10_signin_failures,
    _v11_ledger_for_bulk_compose,
)
from digest.subscribers import add_subscriber

pytestmark = pytest.mark.both_stores


def _blank(database_url: str) -> str:
    """The test's database emptied, so migrations start from nothing (PostgreSQL's is a copy
    of a migrated template)."""
    if database_url.startswith("postgresql"):
        engine = sa.create_engine(database_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        engine.dispose()
    return database_url


def test_schema_is_created_once_and_migration_is_idempotent(database_url):
    engine = store.connect(_blank(database_url))
    assert store.migrate(engine) == len(store.MIGRATIONS)
    with engine.connect() as conn:
        versions = conn.execute(sa.select(store.schema_version.c.version)).scalars().all()
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert versions == [len(store.MIGRATIONS)]
    tables = set(sa.inspect(engine).get_table_names())
    assert {"sources", "articles", "digests", "digest_items", "subscribers", "deliveries"} <= tables


def test_hosts_starting_together_on_a_new_database_migrate_it_once(database_url):
    # On PostgreSQL two CREATE TABLEs of one name in parallel fail on the catalog's unique
    # index, IF NOT EXISTS or not; the schema lock serializes them.
    url = _blank(database_url)
    engines = [store.open_engine(url) for _ in range(4)]
    with ThreadPoolExecutor(len(engines)) as pool:
        versions = list(pool.map(store.migrate, engines))
    assert versions == [len(store.MIGRATIONS)] * len(engines)
    with engines[0].connect() as conn:
        assert conn.execute(sa.select(store.schema_version.c.version)).scalars().all() == [
            len(store.MIGRATIONS)
        ]
    for engine in engines:
        engine.dispose()


def _article(title: str, url: str | None = None, **more: Any) -> Article:
    return Article(
        title=title, paragraphs=(f"{title} happened today.",), source="s", url=url, **more
    )


def test_the_same_article_is_stored_once(database_url):
    engine = store.connect(database_url)
    with store.transaction(engine) as conn:
        sid = store.ensure_source(conn, "s", "folder", "/x")
        assert store.add_article(conn, sid, _article("A", "https://e.org/a"), "f1")
        assert not store.add_article(conn, sid, _article("A2", "https://e.org/a"), "f2")  # url
        assert not store.add_article(conn, sid, _article("B"), "f1")  # fingerprint
        assert len(store.unsent_articles(conn, "daily", 10)) == 1


def _make_digest(conn, key: str) -> int | None:
    return store.create_digest(
        conn,
        key=key,
        list_name="daily",
        day=date(2026, 11, 28),
        subject="s",
        html="<p>h</p>",
        text="t",
        items=[],
    )


def test_one_digest_per_key(database_url):
    engine = store.connect(database_url)
    with store.transaction(engine) as conn:
        first = _make_digest(conn, "daily/2026-11-28")
    with store.transaction(engine) as conn:
        second = _make_digest(conn, "daily/2026-11-28")
        other = _make_digest(conn, "daily/2026-11-29")
    assert first is not None and second is None and other is not None
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(store.digests)) == 2


class _CrashingTransport(OutboxTransport):
    """Accepts `limit` messages, then the process 'dies' (an exception escapes)."""

    def __init__(self, folder, limit: int) -> None:
        super().__init__(folder)
        self.limit = limit

    def send(self, digest_key, envelopes):
        if self.limit <= 0:
            raise KeyboardInterrupt
        self.limit -= len(envelopes)
        return super().send(digest_key, envelopes)


def test_an_interrupted_delivery_resumes_without_resending(tmp_path, settings):
    engine = store.connect(settings.db_url)
    for n in range(7):
        add_subscriber(engine, f"p{n}@example.org")
    with store.transaction(engine) as conn:
        digest_id = _make_digest(conn, "daily/2026-11-28")
    template = MessageTemplate(
        RenderedDigest("s", "<p>x</p>", "x"),
        sender_name="D",
        sender_address="d@example.org",
        list_id="D <d.example.org>",
        unsubscribe_url="https://e.org/u/{token}",
        unsubscribe_mailto="mailto:d@example.org",
        digest_key="daily/2026-11-28",
        sent_at=datetime.now(UTC),
    )
    args = {
        "engine": engine,
        "digest_id": digest_id,
        "digest_key": "daily/2026-11-28",
        "template": template,
        "token_for": str,
        "batch_size": 3,
    }
    crashing = _CrashingTransport(tmp_path / "out", limit=3)
    with contextlib.suppress(KeyboardInterrupt):
        deliver_digest(transport=crashing, **args)
    with store.transaction(engine) as conn:
        assert store.delivery_counts(conn, digest_id) == {"sent": 3, "pending": 4}
    written = []

    class Recording(OutboxTransport):
        def send(self, digest_key, envelopes):
            written.extend(e.recipient for e in envelopes)
            return super().send(digest_key, envelopes)

    report = deliver_digest(transport=Recording(tmp_path / "out"), **args)
    assert report.sent == 4 and sorted(written) == [f"p{n}@example.org" for n in range(3, 7)]
    assert len(list((tmp_path / "out").rglob("*.eml"))) == 7


def test_a_moment_comes_back_as_the_same_instant_in_utc(database_url):
    # SQLite dropped the offset (09:00 in Seoul came back as 09:00, naive); PostgreSQL
    # reads timestamptz back in the server's zone (the test cluster's is not UTC).
    engine = store.connect(database_url)
    in_seoul = datetime(2026, 11, 28, 9, 0, tzinfo=ZoneInfo("Asia/Seoul"))
    with store.transaction(engine) as conn:
        sid = store.ensure_source(conn, "s", "folder", "/x")
        store.add_article(conn, sid, _article("A", published_at=in_seoul), "f1")
    with store.transaction(engine) as conn:
        row = conn.execute(sa.select(store.articles)).one()
        later = conn.scalar(
            sa.select(sa.func.count())
            .select_from(store.articles)
            .where(store.articles.c.published_at > datetime(2026, 11, 28, 0, 30, tzinfo=UTC))
        )
    assert row.published_at == in_seoul and row.published_at.tzinfo is UTC
    assert row.collected_at.tzinfo is UTC
    assert later == 0  # 09:00 in Seoul is 00:00 UTC, before 00:30 UTC


def test_a_nul_in_scraped_text_is_dropped_not_refused(database_url):
    # PostgreSQL's text cannot hold NUL at all; SQLite stored it.
    engine = store.connect(database_url)
    article = Article(title="Ti\x00tle", paragraphs=("One\x00 two.",), source="s", byline="\x00")
    with store.transaction(engine) as conn:
        sid = store.ensure_source(conn, "s", "folder", "/x")
        assert store.add_articles(conn, sid, [(article, "f1")]).new == 1
        [stored] = store.unsent_articles(conn, "daily", 10)
    assert (stored.title, stored.paragraphs, stored.byline) == ("Title", ("One two.",), "")


def test_two_hosts_composing_one_key_at_once_make_one_digest(database_url):
    # The second composer's INSERT waits for the first transaction, then inserts nothing:
    # on PostgreSQL for the unique index, on SQLite for the file's write lock.
    first, second = store.connect(database_url), store.connect(database_url)
    inserted, composing = threading.Event(), threading.Event()
    results: list[int | None] = []

    def compose_and_wait() -> None:
        with store.transaction(first) as conn:
            results.append(_make_digest(conn, "daily/2026-11-28"))
            inserted.set()
            composing.wait(10)

    holder = threading.Thread(target=compose_and_wait)
    holder.start()
    inserted.wait(10)
    timer = threading.Timer(0.3, composing.set)  # commit while the second one waits
    timer.start()
    with store.transaction(second) as conn:
        late = _make_digest(conn, "daily/2026-11-28")
    holder.join()
    assert results[0] is not None and late is None
    with second.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(store.digests)) == 1


def test_hosts_taking_one_lease_at_once_agree_on_one_holder(database_url):
    engine = store.connect(database_url)
    start = threading.Barrier(6)

    def take(n: int) -> str:
        start.wait()
        with store.transaction(engine) as conn:
            return str(store.acquire_lease(conn, "pipeline", f"host{n}", ttl=60)["owner"])

    with ThreadPoolExecutor(6) as pool:
        holders = set(pool.map(take, range(6)))
    assert len(holders) == 1
    with store.transaction(engine) as conn:
        assert store.acquire_lease(conn, "pipeline", "late", ttl=60)["owner"] in holders
        store.ensure_source(conn, "s", "feed", "https://e.org/a")
        assert store.ensure_source(conn, "s", "feed", "https://e.org/b") == 1
        assert conn.scalar(sa.select(store.sources.c.location)) == "https://e.org/b"


def _ledger_of(engine, people: int) -> int:
    for n in range(people):
        add_subscriber(engine, f"p{n:02d}@example.org")
    with store.transaction(engine) as conn:
        digest_id = _make_digest(conn, "daily/2026-11-28")
    assert digest_id is not None
    return digest_id


def test_two_workers_claiming_at_once_never_share_a_row(database_url):
    # PostgreSQL: the second claim skips the rows the first holds locked and returns while
    # the first transaction is still open (SKIP LOCKED). SQLite: one statement at a time.
    first, second = store.connect(database_url), store.connect(database_url)
    digest_id = _ledger_of(first, 30)
    claimed, release = threading.Event(), threading.Event()
    taken: dict[str, list[int]] = {}

    def claim_and_hold() -> None:
        with store.transaction(first) as conn:
            taken["a"] = [s.id for s in store.claim_deliveries(conn, digest_id, "a", 10, 60)]
            claimed.set()
            release.wait(10)

    holder = threading.Thread(target=claim_and_hold)
    holder.start()
    claimed.wait(10)
    if first.dialect.name == "sqlite":
        threading.Timer(0.3, release.set).start()  # in case the second waits for the file
    with store.transaction(second) as conn:
        taken["b"] = [s.id for s in store.claim_deliveries(conn, digest_id, "b", 10, 60)]
    waited = release.is_set()
    release.set()
    holder.join()
    if first.dialect.name == "postgresql":
        assert not waited
    assert len(taken["a"]) == len(taken["b"]) == 10 and not set(taken["a"]) & set(taken["b"])
    with store.transaction(second) as conn:
        rest = store.claim_deliveries(conn, digest_id, "c", 100, 60)
        assert store.claim_deliveries(conn, digest_id, "d", 100, 60) == []
    assert sorted(taken["a"] + taken["b"] + [s.id for s in rest]) == list(range(1, 31))


def test_an_expired_claim_is_taken_over_and_a_live_one_is_not(database_url):
    engine = store.connect(database_url)
    digest_id = _ledger_of(engine, 6)
    with store.transaction(engine) as conn:
        live = store.claim_deliveries(conn, digest_id, "live", 3, ttl=60)
        dead = store.claim_deliveries(conn, digest_id, "dead", 3, ttl=-1)  # expired at once
        assert [s.id for s in live] == [1, 2, 3] and [s.id for s in dead] == [4, 5, 6]
        taken_over = store.claim_deliveries(conn, digest_id, "next", 10, ttl=60)
        assert [s.id for s in taken_over] == [4, 5, 6]
        assert (
            store.renew_claims(conn, "dead", 60) == 0 and store.renew_claims(conn, "live", 60) == 3
        )
        store.record_deliveries(conn, digest_id, [(1, "sent", "<m1>", None)])
        assert store.release_claims(conn, "live") == 2  # the sent row is done, not released
        assert [s.id for s in store.claim_deliveries(conn, digest_id, "x", 10, 60)] == [2, 3]


def test_a_ledger_from_before_claims_gains_its_columns(database_url):
    engine = store.connect(database_url)
    digest_id = _ledger_of(engine, 2)
    with engine.begin() as conn:  # make it look like version 4: no claim columns yet
        conn.exec_driver_sql("DROP INDEX ix_deliveries_claimed")
        for column in ("claimed_by", "claimed_until"):
            conn.exec_driver_sql(f"ALTER TABLE deliveries DROP COLUMN {column}")
        conn.execute(store.schema_version.update().values(version=4))
    engine.dispose()
    engine = store.connect(database_url)
    with store.transaction(engine) as conn:
        assert [s.id for s in store.claim_deliveries(conn, digest_id, "w", 5, 60)] == [1, 2]


def test_readers_from_before_lists_keep_both_lists_and_no_pause(database_url):
    engine = store.connect(database_url)
    with store.transaction(engine) as conn:
        reader = store.insert_subscriber(conn, "ana@example.org", "Ana", [], "active")
    before = store.MIGRATIONS.index(_v8_reader_preferences)
    with engine.begin() as conn:  # as a version 7 database had it: no preference columns
        for column in ("wants_daily", "wants_weekly", "paused_until"):
            conn.exec_driver_sql(f"ALTER TABLE subscribers DROP COLUMN {column}")
        conn.execute(store.schema_version.update().values(version=before))
    engine.dispose()
    engine = store.connect(database_url)
    with store.transaction(engine) as conn:
        upgraded = store.get_subscriber(conn, reader)
    assert upgraded is not None
    assert (upgraded.lists, upgraded.paused_until) == (("daily", "weekly"), None)
    engine.dispose()


def test_a_database_from_before_sign_in_failures_gains_their_table(database_url):
    engine = store.connect(database_url)
    before = store.MIGRATIONS.index(_v10_signin_failures)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE signin_failures")
        conn.execute(store.schema_version.update().values(version=before))
    engine.dispose()
    engine = store.connect(database_url)
    moment = datetime(2026, 12, 1, 9, tzinfo=UTC)
    with store.transaction(engine) as conn:
        store.record_signin_failure(conn, "203.0.113.9", timedelta(minutes=15), moment)
        assert store.signin_locked(conn, "203.0.113.9", 1, timedelta(minutes=15), moment)
    engine.dispose()


def test_sign_in_failures_count_within_their_window_and_older_ones_go(database_url):
    engine = store.connect(database_url)
    window = timedelta(minutes=15)
    then = datetime(2026, 12, 1, 9, tzinfo=UTC)
    later = then + window + timedelta(seconds=1)
    with store.transaction(engine) as conn:
        for _ in range(3):
            store.record_signin_failure(conn, "203.0.113.9", window, then)
        store.record_signin_failure(conn, "198.51.100.1", window, then)
        assert store.signin_locked(conn, "203.0.113.9", 3, window, then)
        assert not store.signin_locked(conn, "198.51.100.1", 3, window, then)
        assert not store.signin_locked(conn, "203.0.113.9", 3, window, later)
        store.record_signin_failure(conn, "192.0.2.1", window, later)
        # One client's failure prunes every client's expired rows: the table stays small.
        left = conn.execute(sa.select(store.signin_failures.c.client)).scalars().all()
    assert left == ["192.0.2.1"]
    engine.dispose()


def test_a_ledger_from_before_bulk_compose_loses_its_per_row_checks(database_url):
    engine = store.connect(database_url)
    with engine.begin() as conn:  # as it was before: checked keys, every Message-ID indexed
        conn.exec_driver_sql("DROP INDEX ix_deliveries_message_id")
        conn.exec_driver_sql("CREATE INDEX ix_deliveries_message_id ON deliveries (message_id)")
        if engine.dialect.name == "postgresql":
            for target in ("digests", "subscribers"):
                column = "digest_id" if target == "digests" else "subscriber_id"
                conn.exec_driver_sql(
                    f"ALTER TABLE deliveries ADD FOREIGN KEY ({column}) REFERENCES {target} (id)"
                )
        before = store.MIGRATIONS.index(_v11_ledger_for_bulk_compose)
        conn.execute(store.schema_version.update().values(version=before))
    engine.dispose()
    engine = store.connect(database_url)
    inspector = sa.inspect(engine)
    keys = inspector.get_foreign_keys("deliveries")
    assert (keys == []) if engine.dialect.name == "postgresql" else len(keys) == 2
    [index] = [i for i in inspector.get_indexes("deliveries") if i["name"].endswith("message_id")]
    where = index["dialect_options"].get(f"{engine.dialect.name}_where")
    assert "message_id IS NOT NULL" in str(where)
    digest_id = _ledger_of(engine, 2)  # composing still works
    with store.transaction(engine) as conn:
        assert store.delivery_counts(conn, digest_id) == {"pending": 2}
    engine.dispose()


def test_a_claim_starts_past_the_last_subscriber_its_sender_took(database_url):
    engine = store.connect(database_url)
    digest_id = _ledger_of(engine, 5)
    with store.transaction(engine) as conn:
        assert [s.id for s in store.claim_deliveries(conn, digest_id, "w", 2, 60, after=3)] == [
            4,
            5,
        ]
        assert store.claim_deliveries(conn, digest_id, "w", 2, 60, after=5) == []
        # From the start again: what is left before it.
        assert [s.id for s in store.claim_deliveries(conn, digest_id, "w", 5, 60)] == [1, 2, 3]
    engine.dispose()


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_renewing_claims_passes_over_rows_being_recorded(database_url):
    # Renewal waiting for a row the sender is recording, which takes its rows in another
    # order, deadlocked the two at 1,000,000. SQLite has one writer: nothing to pass over,
    # so this runs on PostgreSQL only.
    engine = store.connect(database_url)
    digest_id = _ledger_of(engine, 3)
    with store.transaction(engine) as conn:
        store.claim_deliveries(conn, digest_id, "w", 3, 60)
    with engine.connect() as recording:
        recording.begin()
        store.record_deliveries(recording, digest_id, [(1, "sent", "<m1@example.org>", None)])
        with engine.connect() as renewal, renewal.begin():
            renewal.exec_driver_sql("SET LOCAL lock_timeout = '2s'")  # an error, not a hang
            assert store.renew_claims(renewal, "w", 60) == 2
    engine.dispose()
