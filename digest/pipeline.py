"""The whole flow: collect -> summarize -> compose -> render -> deliver.

`run_digest` is what the daily schedule and `digest run` call; `draft_digest` is the same
path up to the rendered digest, for the preview, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from digest import store
from digest.collect import SourceReport, collect_sources
from digest.compose import compose_digest, digest_key
from digest.deliver import DeliveryReport, deliver_digest
from digest.mail.message import MessageTemplate
from digest.mail.outbox import OutboxTransport
from digest.models import Digest, RenderedDigest
from digest.render import Branding, render_digest
from digest.settings import Settings
from digest.subscribers import make_token, secret_key
from digest.summarize import summarize


@dataclass(slots=True)
class RunReport:
    """What one run did, for the summary table."""

    key: str
    sources: list[SourceReport] = field(default_factory=list)
    articles: int = 0
    created: bool = False
    delivery: DeliveryReport | None = None
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    outbox: Path | None = None


def branding(settings: Settings) -> Branding:
    return Branding(
        sender_name=settings.sender.name,
        postal_address=settings.sender.postal_address,
        base_url=settings.web.base_url,
    )


def open_store(settings: Settings) -> Engine:
    return store.connect(settings.db_url)


def draft_digest(settings: Settings, engine: Engine, moment: datetime | None = None) -> Digest:
    """The digest that would go out now, from articles not yet in a digest of this list."""
    key, day = digest_key(
        settings.digest.list_name, moment or datetime.now(UTC), settings.digest.timezone
    )
    with store.transaction(engine) as conn:
        articles = store.unsent_articles(
            conn, settings.digest.list_name, settings.digest.max_articles
        )
    pairs = [
        (a, summarize(a, lead_words=settings.summary.lead_words, quotes=settings.summary.quotes))
        for a in articles
    ]
    return compose_digest(
        key=key,
        name=settings.sender.name,
        day=day,
        items=pairs,
        source_order=[s.name for s in settings.sources],
        intro=settings.digest.intro,
    )


def render(settings: Settings, digest: Digest) -> RenderedDigest:
    return render_digest(
        digest,
        branding(settings),
        subject_pattern=settings.digest.subject,
        templates_dir=settings.templates_dir,
    )


def message_template(
    settings: Settings, row: dict[str, Any], rendered: RenderedDigest
) -> MessageTemplate:
    base = settings.web.base_url.rstrip("/")
    domain = settings.sender.address.rpartition("@")[2]
    return MessageTemplate(
        rendered,
        sender_name=settings.sender.name,
        sender_address=settings.sender.address,
        list_id=f"{settings.sender.name} <{settings.digest.list_name}.{domain}>",
        unsubscribe_url=base + "/unsubscribe/{token}",
        unsubscribe_mailto=f"mailto:{settings.sender.address}?subject=unsubscribe",
        digest_key=row["key"],
        sent_at=datetime.now(UTC),
    )


def run_digest(
    settings: Settings,
    *,
    moment: datetime | None = None,
    on_source: Callable[[SourceReport], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    on_deliveries: Callable[[int], None] | None = None,
) -> RunReport:
    """Collect, compose today's digest once, and deliver every pending message."""
    engine = open_store(settings)
    moment = moment or datetime.now(UTC)
    key, day = digest_key(settings.digest.list_name, moment, settings.digest.timezone)
    report = RunReport(key=key)
    report.sources = collect_sources(settings, engine, on_source)
    key_secret, created_key = secret_key(settings)
    if created_key:
        report.notes.append(
            f"Generated a signing key for unsubscribe links in {settings.data_dir / 'secret_key'}."
        )

    with store.transaction(engine) as conn:
        row = store.find_digest(conn, key)
    if row is None:
        digest = draft_digest(settings, engine, moment)
        report.articles = len(digest.items)
        if not digest.items:
            report.notes.append("No new articles since the last digest; nothing to send.")
            return report
        rendered = render(settings, digest)
        report.warnings.extend(rendered.warnings)
        with store.transaction(engine) as conn:
            digest_id = store.create_digest(
                conn,
                key=key,
                list_name=settings.digest.list_name,
                day=day,
                subject=rendered.subject,
                html=rendered.html,
                text=rendered.text,
                items=[(item.article.id or 0, item.summary) for item in digest.items],
            )
            report.created = digest_id is not None
            row = store.find_digest(conn, key)
        assert row is not None
    else:
        with store.transaction(engine) as conn:
            report.articles = len(store.digest_articles(conn, row["id"]))

    with store.transaction(engine) as conn:
        pending = store.delivery_counts(conn, row["id"]).get("pending", 0)
    if on_deliveries:
        on_deliveries(pending)
    if pending == 0:
        report.notes.append(f"Digest {key} was already delivered; nothing new to write.")
    stored = RenderedDigest(subject=row["subject"], html=row["html"], text=row["text"])
    transport = OutboxTransport(settings.outbox_path)
    report.outbox = settings.outbox_path
    report.delivery = deliver_digest(
        engine,
        digest_id=row["id"],
        digest_key=key,
        template=message_template(settings, row, stored),
        transport=transport,
        token_for=lambda sid: make_token(key_secret, sid, "unsubscribe"),
        batch_size=settings.delivery.batch_size,
        on_batch=on_batch,
    )
    with store.transaction(engine) as conn:
        report.counts = store.delivery_counts(conn, row["id"])
    return report
