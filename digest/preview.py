"""The editor's preview: the draft digest exactly as a given subscriber would receive it.

Same path as a real send -- draft, render, the MIME message personalized for one reader --
but nothing is written: no digest row, no ledger entry, nothing marked as sent.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from digest import store
from digest.compose import for_topics
from digest.models import Digest, RenderedDigest, Subscriber
from digest.pipeline import draft_digest, message_template, render, stored_digest
from digest.render import CLIP_LIMIT_BYTES, builtin_templates, html_part_size
from digest.settings import Settings
from digest.subscribers import make_token, secret_key

SAMPLE_READER = Subscriber(id=0, email="reader@example.org", name="Sample Reader")


@dataclass(frozen=True, slots=True)
class Preview:
    digest: Digest
    rendered: RenderedDigest
    reader: Subscriber
    message: bytes  # the .eml exactly as this reader would receive it
    # Nothing new to send: this is the last digest, as it went out (e.g. right after
    # `make run`), so a new user sees what readers got instead of an empty draft.
    already_sent: bool = False

    @property
    def size(self) -> int:
        return html_part_size(self.rendered.html)  # as it travels, the way the limit counts

    @property
    def limit(self) -> int:
        return CLIP_LIMIT_BYTES

    def parsed(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.message, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def headers(self) -> list[tuple[str, str]]:
        return [(name, str(value)) for name, value in self.parsed().items()]

    def part(self, kind: str) -> str:
        body = self.parsed().get_body((kind,))
        return str(body.get_content()) if body is not None else ""


def reader(engine: Engine, subscriber_id: int | None) -> Subscriber:
    """The subscriber to preview as, or a sample reader with no topics."""
    if subscriber_id:
        with store.transaction(engine) as conn:
            found = store.get_subscriber(conn, subscriber_id)
        if found is not None:
            return found
    return SAMPLE_READER


def build_preview(settings: Settings, engine: Engine, subscriber_id: int | None = None) -> Preview:
    """Draft, render and personalize the next digest for one reader; write nothing."""
    who = reader(engine, subscriber_id)
    draft = draft_digest(settings, engine)
    already_sent = False
    if not draft.items:
        with store.transaction(engine) as conn:
            latest = store.latest_digest(conn, settings.digest.list_name)
        if latest is not None:
            draft, already_sent = stored_digest(settings, engine, latest), True
    digest = for_topics(draft, who.topics)
    rendered = render(settings, digest)
    template = message_template(settings, digest.key, rendered)
    key, _ = secret_key(settings)
    token = make_token(key, who.id, "unsubscribe") if who.id else "preview-token"
    return Preview(digest, rendered, who, template.personalize(who, token).data, already_sent)


def dark_variant(html: str) -> str:
    """The HTML with its dark-mode rules always on, for the preview's dark toggle."""
    return html.replace("(prefers-color-scheme: dark)", "all").replace(
        "(prefers-color-scheme:dark)", "all"
    )


def draft_version(settings: Settings, engine: Engine, extra: Iterable[Path] = ()) -> str:
    """Changes when templates, the config or the pool of unsent articles change."""
    stamp = hashlib.sha256()
    folders = [builtin_templates(), *([settings.templates_dir] if settings.templates_dir else [])]
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                stamp.update(f"{path}:{path.stat().st_mtime_ns}".encode())
    for path in extra:
        if path.is_file():
            stamp.update(f"{path}:{path.stat().st_mtime_ns}".encode())
    with store.transaction(engine) as conn:
        articles = store.unsent_articles(conn, settings.digest.list_name, 10_000)
    stamp.update(",".join(str(a.id) for a in articles).encode())
    return stamp.hexdigest()[:16]


def article_details(preview: Preview) -> list[dict[str, Any]]:
    """Each article's cleaned text beside the lead and quotes chosen from it."""
    details = []
    for item in preview.digest.items:
        quotes = [q.text for q in item.summary.quotes]
        details.append(
            {
                "article": item.article,
                "summary": item.summary,
                "paragraphs": [
                    {
                        "text": p,
                        "is_lead": bool(item.summary.lead) and p.startswith(item.summary.lead[:60]),
                        "has_quote": any(q in p for q in quotes),
                    }
                    for p in item.article.paragraphs
                ],
            }
        )
    return details


def now_text(settings: Settings) -> str:
    from zoneinfo import ZoneInfo

    return datetime.now(UTC).astimezone(ZoneInfo(settings.digest.timezone)).strftime("%H:%M")
