"""The whole flow: collect -> summarize -> compose -> render -> deliver.

`run_digest` is what the daily schedule and `digest run` call; `draft_digest` is the same
path up to the rendered digest, for the preview, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from digest import store
from digest.clicks import CLICK_PREFIX, ClickLinks
from digest.collect import SourceReport, collect_sources
from digest.compose import compose_digest, digest_key, for_topics
from digest.deliver import DeliveryPolicy, DeliveryReport, deliver_digest, send_test
from digest.errors import DeliveryError, NotFound
from digest.lease import with_pipeline_lease
from digest.mail import open_transport
from digest.mail.dkim import DkimSigner, load_signer
from digest.mail.message import MessageTemplate
from digest.mail.transport import Mailing
from digest.models import Digest, DigestItem, RenderedDigest, StoredDigest, Subscriber
from digest.render import HTML_BUDGET_BYTES, Branding, render_digest
from digest.settings import Settings
from digest.subscribers import make_token, normalize_email, secret_key
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
        logo_url=settings.sender.logo_url,
        logo_width=settings.sender.logo_width,
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


def render(
    settings: Settings, digest: Digest, *, whole: bool = False, tracked: bool = False
) -> RenderedDigest:
    """The email; `whole=True` skips the size budget, for the web version of a digest.

    `tracked=True` (for a digest that is stored, so its links can be signed) leaves click
    markers in the story links when `tracking.clicks` is on.
    """
    return render_digest(
        digest,
        branding(settings),
        subject_pattern=settings.digest.subject,
        templates_dir=settings.templates_dir,
        preheader=settings.digest.preheader,
        group_by=settings.digest.group_by,
        size_budget=None if whole else HTML_BUDGET_BYTES,
        language=settings.digest.language,
        track_clicks=tracked and settings.tracking.clicks,
    )


def message_template(
    settings: Settings, digest_key: str, rendered: RenderedDigest, digest_id: int | None = None
) -> MessageTemplate:
    """The message of a rendered digest; `digest_id` signs its click links, if it has any."""
    base = settings.web.base_url.rstrip("/")
    key = secret_key(settings)[0]
    clicks = None
    if digest_id is not None and CLICK_PREFIX in rendered.html + rendered.text:
        clicks = ClickLinks(key, digest_id, base)
    domain = settings.sender.address.rpartition("@")[2]
    return MessageTemplate(
        rendered,
        sender_name=settings.sender.name,
        sender_address=settings.sender.address,
        list_id=f"{settings.sender.name} <{settings.digest.list_name}.{domain}>",
        unsubscribe_url=base + "/unsubscribe/{token}",
        preferences_url=base + "/preferences/{token}",
        unsubscribe_mailto=f"mailto:{settings.sender.address}?subject=unsubscribe",
        digest_key=digest_key,
        sent_at=datetime.now(UTC),
        reply_to=settings.sender.reply_to,
        feedback_id=settings.delivery.feedback_id,
        dkim=dkim_signer(settings),
        id_key=key,
        clicks=clicks,
    )


def dkim_signer(settings: Settings) -> DkimSigner | None:
    """The DKIM signer when a key is configured; signing costs ~10 ms per message."""
    if settings.dkim.key_file is None:
        return None
    domain = settings.dkim.domain or settings.sender.address.rpartition("@")[2]
    return load_signer(settings.dkim.key_file, settings.dkim.selector, domain)


@with_pipeline_lease  # two processes must never deliver the same pending rows at once
def run_digest(
    settings: Settings,
    *,
    moment: datetime | None = None,
    on_source: Callable[[SourceReport], None] | None = None,
    on_batch: Callable[[DeliveryReport], None] | None = None,
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
        if not digest.items and settings.schedule.skip_when_empty:
            report.notes.append("No new articles since the last digest; nothing to send.")
            return report
        with store.transaction(engine) as conn:
            readers = store.subscriber_counts(conn).get("active", 0)
        if readers == 0:
            # Composing now would use up today's articles on a digest nobody receives.
            report.notes.append(
                "No active subscribers, so nothing was composed: add some with "
                "`digest subscribers add` or `digest subscribers import FILE.csv`."
            )
            return report
        rendered = render(settings, digest, tracked=True)
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
                audience=settings.audience,
            )
            report.created = digest_id is not None
            row = store.find_digest(conn, key)
        assert row is not None
    else:
        with store.transaction(engine) as conn:
            report.articles = len(store.digest_articles(conn, row.id))

    return _deliver_into(report, settings, engine, row, key_secret, on_batch, on_deliveries)


def _deliver_into(
    report: RunReport,
    settings: Settings,
    engine: Engine,
    row: StoredDigest,
    key_secret: str,
    on_batch: Callable[[DeliveryReport], None] | None,
    on_deliveries: Callable[[int], None] | None,
) -> RunReport:
    """Deliver what is pending of a stored digest and fill in the run's report."""
    with store.transaction(engine) as conn:
        pending = store.delivery_counts(conn, row.id).get("pending", 0)
    if on_deliveries:
        on_deliveries(pending)
    if pending == 0:
        report.notes.append(f"Digest {row.key} was already delivered; nothing new to send.")
    if settings.delivery.backend == "outbox":
        report.outbox = settings.outbox_path
    report.delivery = deliver_pending(settings, engine, row, key_secret, on_batch=on_batch)
    with store.transaction(engine) as conn:
        report.counts = store.delivery_counts(conn, row.id)
    return report


def deliver_pending(
    settings: Settings,
    engine: Engine,
    row: StoredDigest,
    key_secret: str,
    *,
    on_batch: Callable[[DeliveryReport], bool | None] | None = None,
) -> DeliveryReport:
    """Send the stored digest's pending deliveries through the configured transport."""
    transport = open_transport(settings)
    try:
        return deliver_digest(
            engine,
            digest_id=row.id,
            digest_key=row.key,
            template=message_template(settings, row.key, row.rendered, row.id),
            transport=transport,
            token_for=lambda sid: make_token(key_secret, sid, "unsubscribe"),
            for_topics=topic_variant(settings, engine, row),
            policy=DeliveryPolicy.from_settings(settings.delivery),
            on_batch=on_batch,
        )
    finally:
        transport.close()


def stored_digest(settings: Settings, engine: Engine, row: StoredDigest) -> Digest:
    """A composed digest as stored: its key, day and items with their summaries."""
    with store.transaction(engine) as conn:
        stored = store.digest_articles(conn, row.id)
    return Digest(
        key=row.key,
        name=settings.sender.name,
        day=row.day,
        items=tuple(DigestItem(article, summary) for article, summary in stored),
        intro=settings.digest.intro,
    )


def topic_variant(
    settings: Settings, engine: Engine, row: StoredDigest
) -> Callable[[tuple[str, ...]], MessageTemplate | None]:
    """The stored digest cut down to a set of topics, rendered once per set asked for."""

    whole: list[Digest] = []  # read from the store once, on the first topic set

    def build(topics: tuple[str, ...]) -> MessageTemplate | None:
        if not whole:
            whole.append(stored_digest(settings, engine, row))
        chosen = for_topics(whole[0], topics)
        if not chosen.items:
            return None  # nothing in their topics today: no email rather than an empty one
        return message_template(settings, row.key, render(settings, chosen, tracked=True), row.id)

    return build


@with_pipeline_lease  # the same pending rows must never go out from two processes
def send_digest(
    settings: Settings,
    *,
    key: str | None = None,
    on_batch: Callable[[DeliveryReport], None] | None = None,
    on_deliveries: Callable[[int], None] | None = None,
) -> RunReport:
    """Deliver the pending messages of digest `key` (default: the latest); compose nothing."""
    engine = open_store(settings)
    with store.transaction(engine) as conn:
        if key:
            row = store.find_digest(conn, key)
        else:
            row = store.latest_digest(conn, settings.digest.list_name)
    if row is None:
        raise NotFound(
            f"There is no digest {key!r}; see `digest run`, which composes one."
            if key
            else "No digest has been composed yet; run `digest run` first."
        )
    report = RunReport(key=row.key)
    with store.transaction(engine) as conn:
        report.articles = len(store.digest_articles(conn, row.id))
    key_secret, _ = secret_key(settings)
    return _deliver_into(report, settings, engine, row, key_secret, on_batch, on_deliveries)


def send_test_copy(settings: Settings, address: str, key: str | None = None) -> str:
    """Send one copy to `address`, recorded nowhere; return one line saying what went.

    The copy is of digest `key` when given; else of the draft the preview shows; else,
    when there is nothing new, of the latest digest. An address on the list gets their
    own name and links, as in the real send.
    """
    address = normalize_email(address)
    engine = open_store(settings)
    with store.transaction(engine) as conn:
        row = store.find_digest(conn, key) if key else None
        reader = store.find_subscriber(conn, address)
    if key and row is None:
        raise NotFound(f"There is no digest {key!r}; see `digest run`, which composes one.")
    digest_id = None  # a stored digest's click links count nothing for a test address
    if row is not None:
        what, test_key, rendered, digest_id = f"digest {row.key}", row.key, row.rendered, row.id
    else:
        draft = draft_digest(settings, engine)
        if draft.items:
            what, test_key, rendered = (
                f"the draft of {draft.key}",
                draft.key,
                render(settings, draft),
            )
        else:
            with store.transaction(engine) as conn:
                latest = store.latest_digest(conn, settings.digest.list_name)
            if latest is None:
                raise NotFound("Nothing to send yet: no new articles; run `digest collect`.")
            what, test_key, rendered = f"digest {latest.key}", latest.key, latest.rendered
            digest_id = latest.id
    key_secret, _ = secret_key(settings)
    # The outbox writes test copies to a folder of their own, never over a real copy.
    mailing = Mailing(
        f"test/{test_key}",
        message_template(settings, test_key, rendered, digest_id),
        lambda sid: make_token(key_secret, sid, "unsubscribe"),
    )
    transport = open_transport(settings)
    try:
        outcome = send_test(
            transport,
            mailing,
            reader or Subscriber(id=0, email=address),
            DeliveryPolicy.from_settings(settings.delivery),
        )
    finally:
        transport.close()
    if outcome.status != "sent":
        raise DeliveryError(f"The test copy to {address} was not sent: {outcome.detail}.")
    return f"Sent a test copy of {what} to {address} ({transport.name}); nothing was recorded."
