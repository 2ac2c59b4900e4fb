"""Who the digest goes to: add, remove, import, list; and the signed tokens in links."""

from __future__ import annotations

import csv
import itertools
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import IO

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from itsdangerous import BadSignature, Signer, TimestampSigner
from sqlalchemy.engine import Connection, Engine

from digest import store
from digest.errors import (
    ConfigError,
    DigestError,
    InvalidAddress,
    InvalidInput,
    InvalidName,
    NotFound,
)
from digest.models import LISTS, Subscriber
from digest.settings import KEY_ADVICE, MIN_SECRET_BYTES, Settings

STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
PURGED_DOMAIN = "@purged.invalid"  # what a purged subscriber's address becomes
_COLUMNS = {
    "email": {"email", "e-mail", "email address", "e-mail address", "mail", "address"},
    "name": {"name", "full name", "fullname", "display name"},
    "topics": {"topics", "topic", "tags"},
    "status": {"status", "state"},
    "lists": {"lists", "list"},
}


# Addresses so plain that email-validator is sure to accept them as they are: ASCII dot-atom
# local part, ordinary host labels, an alphabetic top-level domain that is not special-use.
# They skip the full check, which is most of the cost of importing a large list; anything
# else goes through email-validator, which stays the authority (tests compare the two).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"^({_ATOM}(?:\.{_ATOM})*)@((?:{_LABEL}\.)+[A-Za-z]{{2,24}})$")
_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def _plain(address: str) -> str | None:
    match = _PLAIN_ADDRESS.match(address)
    if match is None or len(match.group(1)) > 64 or len(match.group(2)) > 253:
        return None
    if match.group(2).rsplit(".", 1)[-1].lower() in _SPECIAL_USE:
        return None
    return f"{match.group(1).lower()}@{match.group(2).lower()}"


def normalize_email(raw: str) -> str:
    """A valid, normalized address (lower-cased domain), or DigestError saying why not."""
    plain = _plain(raw.strip())
    if plain is not None:
        return plain
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"{raw.strip()!r} is not a valid email address: {exc}") from None
    local, _, domain = result.normalized.rpartition("@")
    # Addresses are unique case-insensitively: almost every mail server treats them so.
    return f"{local.lower()}@{domain.lower()}"


_LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def clean_name(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    joined = " ".join(raw.split())  # any run of spaces (tabs, no-break) becomes one
    if any(ch in _LINE_BREAKS for ch in raw) or not joined.isprintable():
        raise InvalidName(f"The name {raw!r} contains control characters or line breaks.")
    return joined[:200]


def parse_topics(raw: str | Sequence[str] | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = raw.replace(";", ",").split(",") if isinstance(raw, str) else raw
    return tuple(sorted({t.strip().lower() for t in items if t.strip()}))


def parse_lists(raw: str | Sequence[str]) -> tuple[str, ...]:
    """List names from "daily,weekly" (or a sequence); at least one, each a known list."""
    items = raw.replace(";", ",").split(",") if isinstance(raw, str) else raw
    chosen = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(chosen - set(LISTS))
    if unknown:
        raise InvalidInput(f"Unknown list {unknown[0]!r}; use {' or '.join(LISTS)} (or both).")
    if not chosen:
        raise InvalidInput(f"Name at least one list: {', '.join(LISTS)}.")
    return tuple(name for name in LISTS if name in chosen)


def add_subscriber(
    engine: Engine,
    email: str,
    name: str | None = None,
    topics: str | Sequence[str] | None = None,
    status: str = "active",
    lists: str | Sequence[str] | None = None,
) -> tuple[Subscriber, bool]:
    """Add someone, or update their name/topics/lists; returns (subscriber, created)."""
    if status not in STATUSES:
        raise InvalidInput(f"Unknown status {status!r}; use one of {', '.join(STATUSES)}.")
    address, clean = normalize_email(email), clean_name(name)
    chosen = parse_lists(lists) if lists is not None else None
    with store.transaction(engine) as conn:
        existing = store.find_subscriber(conn, address)
        if existing is None:
            new_id = store.insert_subscriber(conn, address, clean, parse_topics(topics), status)
            if chosen is not None:
                store.update_subscriber(conn, new_id, **store.list_columns(chosen))
            created = store.get_subscriber(conn, new_id)
            assert created is not None
            return created, True
        changes: dict[str, object] = {}
        if clean is not None:
            changes["name"] = clean
        if topics is not None:
            changes["topics"] = list(parse_topics(topics))
        if status != existing.status:
            changes["status"] = status
        if chosen is not None and chosen != existing.lists:
            changes.update(store.list_columns(chosen))
        if changes:
            store.update_subscriber(conn, existing.id, **changes)
        updated = store.get_subscriber(conn, existing.id)
        assert updated is not None
        return updated, False


def remove_subscriber(engine: Engine, email: str) -> Subscriber:
    """Mark someone unsubscribed; they receive nothing not yet delivered to them."""
    address = normalize_email(email)
    with store.transaction(engine) as conn:
        existing = store.find_subscriber(conn, address)
        if existing is None:
            raise not_found(address)
        if existing.status != "unsubscribed":
            store.update_subscriber(conn, existing.id, status="unsubscribed")
        updated = store.get_subscriber(conn, existing.id)
        assert updated is not None
        return updated


def not_found(address: str) -> NotFound:
    return NotFound(f"No subscriber {address}; check the address with `subscribers list`.")


def purge_subscriber(engine: Engine, email: str) -> int:
    """Forget someone: unsubscribe them and erase their address, name and topics.

    The row stays, anonymised, so the delivery ledger keeps its history without anyone's
    personal data. Returns the subscriber's id.
    """
    address = normalize_email(email)
    with store.transaction(engine) as conn:
        existing = store.find_subscriber(conn, address)
        if existing is None:
            raise not_found(address)
        store.update_subscriber(
            conn,
            existing.id,
            email=f"purged-{existing.id}{PURGED_DOMAIN}",
            name=None,
            topics=[],
            status="unsubscribed",
        )
        return existing.id


def each_subscriber(
    engine: Engine, status: str | None = None, topic: str | None = None
) -> Iterator[Subscriber]:
    """Every subscriber (of a status, or who chose a topic), streamed in one transaction."""
    with store.transaction(engine) as conn:
        yield from store.iter_subscribers(conn, status, topic)


def subscriber_details(engine: Engine, email: str) -> tuple[Subscriber, dict[str, int]]:
    """One subscriber and how many deliveries of theirs are in each status."""
    address = normalize_email(email)
    with store.transaction(engine) as conn:
        subscriber = store.find_subscriber(conn, address)
        if subscriber is None:
            raise not_found(address)
        return subscriber, store.subscriber_delivery_counts(conn, subscriber.id)


@dataclass(frozen=True, slots=True)
class Stats:
    by_status: dict[str, int]
    by_topic: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def subscriber_stats(engine: Engine) -> Stats:
    """How many people in each status, and how many active ones follow each topic."""
    topics: dict[str, int] = {}
    with store.transaction(engine) as conn:
        by_status = store.subscriber_counts(conn)
        for subscriber in store.iter_subscribers(conn, status="active"):
            for topic in subscriber.topics or ("(all topics)",):
                topics[topic] = topics.get(topic, 0) + 1
    return Stats({s: by_status.get(s, 0) for s in STATUSES}, dict(sorted(topics.items())))


@dataclass(slots=True)
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_unsubscribed: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    email: str
    name: str | None
    topics: tuple[str, ...] | None
    status: str
    lists: tuple[str, ...] | None  # None: the file has no lists column, or the cell is empty


def _header_map(header: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, column in enumerate(header):
        key = column.strip().lower().replace("_", " ")
        for field_name, aliases in _COLUMNS.items():
            if key in aliases and field_name not in found:
                found[field_name] = index
    if "email" not in found:
        raise InvalidInput(
            "The CSV has no email column; its first row must name the columns, e.g. email,name."
        )
    return found


def _parse_rows(
    lines: Iterable[list[str]], columns: dict[str, int]
) -> Iterator[_Row | tuple[int, str]]:
    """Each row of the file as a `_Row`, or as (line, reason) when it is bad; lazily."""
    # Hashes of the addresses so far, to find one listed twice: a set of ints stays small
    # for a million rows where the addresses themselves would not.
    seen: set[int] = set()

    def cell(values: list[str], name: str) -> str | None:
        index = columns.get(name)
        if index is None or index >= len(values):
            return None
        return _cell_in(values[index].strip())

    for line, values in enumerate(lines, start=2):
        if not any(v.strip() for v in values):
            continue
        try:
            email = normalize_email(cell(values, "email") or "")
            name = clean_name(cell(values, "name"))
            status = (cell(values, "status") or "active").lower()
            if status not in STATUSES:
                raise InvalidInput(f"unknown status {status!r} (use {', '.join(STATUSES)})")
            raw_lists = cell(values, "lists")
            lists = parse_lists(raw_lists) if raw_lists else None
            if hash(email) in seen:
                raise InvalidInput(f"{email} appears twice in the file")
        except DigestError as exc:
            yield (line, str(exc))
            continue
        seen.add(hash(email))
        raw_topics = cell(values, "topics")
        topics = parse_topics(raw_topics) if "topics" in columns else None
        yield _Row(line, email, name, topics, status, lists)


class _Abandon(Exception):
    """Roll the import back: --strict found a bad row, or this was a dry run."""


def import_csv(
    engine: Engine,
    path: Path,
    *,
    strict: bool = False,
    dry_run: bool = False,
    resubscribe: bool = False,
) -> ImportReport:
    """Import subscribers from a CSV in one transaction; bad rows are listed by line.

    By default the good rows are imported and the bad ones reported; with `strict`,
    nothing is imported when any row is bad. Someone who unsubscribed stays unsubscribed
    unless `resubscribe` is given. The file is read as it goes, a chunk of rows at a
    time, so memory does not grow with the list; a strict import that meets a bad row
    late rolls back what it wrote.
    """
    report = ImportReport()
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            try:
                with store.transaction(engine) as conn:
                    for chunk in _chunks(_read_csv(handle, path), report):
                        _import_chunk(conn, chunk, report, resubscribe)
                    if dry_run or (strict and report.errors):
                        raise _Abandon
            except _Abandon:
                if strict and report.errors:
                    report.added = report.updated = report.unchanged = 0
                    report.kept_unsubscribed = 0
    except FileNotFoundError:
        raise InvalidInput(f"The file {path} does not exist.") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"The file {path} is not UTF-8 text; save it as UTF-8 CSV.") from None
    return report


def _chunks(parsed: Iterator[_Row | tuple[int, str]], report: ImportReport) -> Iterator[list[_Row]]:
    """Good rows in chunks of `_CHUNK`; bad ones go straight into the report."""
    chunk: list[_Row] = []
    for item in parsed:
        if isinstance(item, _Row):
            chunk.append(item)
            if len(chunk) == _CHUNK:
                yield chunk
                chunk = []
        else:
            report.errors.append(item)
    if chunk:
        yield chunk


def _import_chunk(
    conn: Connection, chunk: list[_Row], report: ImportReport, resubscribe: bool
) -> None:
    """One query to look a chunk up, one to insert its new people, one for the changes."""
    known = store.subscribers_by_email(conn, [row.email for row in chunk])
    inserts: list[dict[str, object]] = []
    updates: list[tuple[int, dict[str, object]]] = []
    for row in chunk:
        existing = known.get(row.email)
        if existing is None:
            report.added += 1
            inserts.append(
                {
                    "email": row.email,
                    "name": row.name,
                    "topics": list(row.topics or ()),
                    "status": row.status,
                    **store.list_columns(row.lists or LISTS),
                }
            )
            continue
        changes = _changes(existing, row, resubscribe, report)
        if changes:
            report.updated += 1
            updates.append((existing.id, changes))
        else:
            report.unchanged += 1
    store.insert_subscribers(conn, inserts)
    store.update_subscribers(conn, updates)


_CHUNK = 500
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _read_csv(handle: IO[str], path: Path) -> Iterator[_Row | tuple[int, str]]:
    """The rows of a subscriber CSV, comma- or semicolon-separated, and the bad ones."""
    # The header row tells the separator: spreadsheets in many locales save with ";".
    # (csv.Sniffer guesses from the data too, and a name with a comma can fool it.)
    header_line = handle.readline()
    if not header_line.strip():
        raise InvalidInput(f"The file {path} is empty.")
    delimiter = max(",;\t", key=header_line.count) if header_line.strip() else ","
    reader = csv.reader(itertools.chain([header_line], handle), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            raise InvalidInput(f"The file {path} is empty.")
        yield from _parse_rows(reader, _header_map(header))
    except csv.Error as exc:
        raise InvalidInput(
            f"The file {path} is not a CSV digest can read (line {reader.line_num}: {exc}); "
            "save it as CSV with one subscriber a line."
        ) from None


def _cell_in(value: str) -> str:
    """A cell as `export_csv` wrote it, without the quote that disarms a formula."""
    if value.startswith("'") and value[1:2] and value[1] in _FORMULA_START:
        return value[1:]
    return value


def _cell_out(value: str) -> str:
    """A cell a spreadsheet will show as text, never run as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _changes(
    existing: Subscriber, row: _Row, resubscribe: bool, report: ImportReport
) -> dict[str, object]:
    """What a CSV row changes about someone already on the list."""
    changes: dict[str, object] = {}
    if row.name is not None and row.name != existing.name:
        changes["name"] = row.name
    if row.topics is not None and row.topics != existing.topics:
        changes["topics"] = list(row.topics)
    if row.lists is not None and row.lists != existing.lists:
        changes.update(store.list_columns(row.lists))
    if row.status != existing.status:
        if existing.status in ("unsubscribed", "complained") and not resubscribe:
            report.kept_unsubscribed += 1
        else:
            changes["status"] = row.status
    return changes


def export_csv(subscribers: Iterable[Subscriber], out: IO[str]) -> int:
    """Write subscribers as CSV in the import format; returns how many rows."""
    writer = csv.writer(out)
    writer.writerow(["email", "name", "topics", "status", "lists"])
    count = 0
    for s in subscribers:
        writer.writerow(
            [
                _cell_out(s.email),
                _cell_out(s.name or ""),
                _cell_out(",".join(s.topics)),
                s.status,
                ",".join(s.lists),
            ]
        )
        count += 1
    return count


# -- signed tokens ---------------------------------------------------------------------


def secret_key(settings: Settings) -> tuple[str, bool]:
    """The signing key: from settings, or generated once into the data directory.

    Returns (key, created_now) so the caller can tell the user a key was made. The file is
    written in full under a temporary name and then linked into place, so processes racing
    on a fresh folder all end up with the one key, and none ever reads half of it.
    """
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value(), False
    path = settings.data_dir / "secret_key"
    created = False
    if not path.exists():
        ensure_data_dir(settings.data_dir)
        created = _write_new_key(path)
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the signing key {path} ({exc}); {KEY_ADVICE}.") from None
    if len(key.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"The signing key in {path} is empty or shorter than {MIN_SECRET_BYTES} bytes; "
            f"delete the file to have a new one generated, or {KEY_ADVICE}."
        )
    return key, created


def _write_new_key(path: Path) -> bool:
    """Create `path` holding a new key unless another process got there first."""
    tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # atomic: fails if the key already exists
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def ensure_data_dir(folder: Path) -> None:
    """Create the data folder readable by its owner only: it holds tokens and addresses."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the data folder {folder} ({exc.strerror}); set data_dir to a "
            "folder you can write."
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            f"The data folder {folder} is not writable; set data_dir to a folder you can write."
        )


class _Signer(Signer):
    """itsdangerous' Signer, deriving its key once instead of at every signature."""

    @cached_property
    def _derived(self) -> bytes:
        return super().derive_key()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        return self._derived if secret_key is None else super().derive_key(secret_key)


@lru_cache(maxsize=8)
def _signer(key: str, purpose: str) -> Signer:
    # A bare signed id ("42.<signature>"): URL-safe, short, and a third of the cost of a
    # serialized payload -- it is made once per message sent.
    return _Signer(key, salt=f"digest.{purpose}")


def make_token(key: str, subscriber_id: int, purpose: str) -> str:
    """A URL-safe token naming the subscriber, signed for one purpose (e.g. unsubscribe)."""
    return _signer(key, purpose).sign(str(subscriber_id)).decode("ascii")


@lru_cache(maxsize=8)
def _timed_signer(key: str, purpose: str) -> TimestampSigner:
    return TimestampSigner(key, salt=f"digest.{purpose}")


def make_timed_token(key: str, subscriber_id: int, purpose: str) -> str:
    """Like `make_token`, with the time it was made, for links that must expire."""
    return _timed_signer(key, purpose).sign(str(subscriber_id)).decode("ascii")


def read_timed_token(
    key: str, token: str, purpose: str, max_age: int
) -> tuple[int, datetime] | None:
    """(subscriber id, when the token was made), or None: forged, misused or too old."""
    try:
        value, signed_at = _timed_signer(key, purpose).unsign(
            token, max_age=max_age, return_timestamp=True
        )
    except (BadSignature, UnicodeError):  # SignatureExpired is a BadSignature
        return None
    text = value.decode("ascii", errors="replace")
    return (int(text), signed_at) if text.isdigit() else None


def read_token(key: str, token: str, purpose: str) -> int | None:
    """The subscriber id in a token, or None when it was forged, altered or misused."""
    try:
        value = _signer(key, purpose).unsign(token).decode("ascii")
    except (BadSignature, UnicodeError):
        return None
    return int(value) if value.isdigit() else None
