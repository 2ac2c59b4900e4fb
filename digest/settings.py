"""Settings: defaults here, then the TOML file, then DIGEST_* environment variables.

Every setting is declared once, with its default and a description; `config/digest.toml`
mirrors these defaults so a new user can see and change them. Relative paths are resolved
against the current working directory, like any other command-line tool.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from digest import __version__
from digest.errors import ConfigError

DEFAULT_CONFIG = Path("config/digest.toml")


class _Section(BaseModel):
    model_config = {"extra": "forbid"}


class SourceSettings(_Section):
    name: str = Field(description="Unique name shown in the digest and in the health table.")
    kind: Literal["folder", "feed", "pages"] = Field(
        description="'folder' of .txt/.md/.html files, 'feed' (RSS/Atom/JSON, a path or URL), "
        "or 'pages' (a list of article URLs)."
    )
    location: str = Field("", description="Folder path, feed file path, or feed URL.")
    urls: list[str] = Field(
        default_factory=list, description="Article page URLs of a 'pages' source."
    )
    full_text: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Fetch each feed entry's page for its full text: 'auto' when the feed "
        "gives only a teaser (under 80 words, or ending in '…' or 'Read more').",
    )
    tags: list[str] = Field(default_factory=list, description="Topics subscribers can pick.")

    @model_validator(mode="after")
    def _where_to_read(self) -> SourceSettings:
        if self.kind == "pages":
            if not self.urls:
                raise ValueError(f"source {self.name!r} of kind 'pages' needs a list of urls")
            bad = [u for u in self.urls if not u.startswith(("http://", "https://"))]
            if bad:
                raise ValueError(f"source {self.name!r}: {bad[0]!r} is not an http(s) URL")
        elif not self.location:
            raise ValueError(f"source {self.name!r} of kind {self.kind!r} needs a location")
        return self


class CollectSettings(_Section):
    timeout: float = Field(
        20.0, gt=0, le=600, description="Seconds one request may take, body included."
    )
    max_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest response read; a longer one is cut off."
    )
    concurrency: int = Field(16, ge=1, le=256, description="Requests in flight at once.")
    per_host: int = Field(4, ge=1, le=64, description="Requests in flight to one host at once.")
    user_agent: str = Field(
        f"digest/{__version__} (newsletter digest generator; +https://example.org/digest)",
        description="User-Agent sent with every request; name a contact URL.",
    )
    extra_chrome_patterns: list[str] = Field(
        default_factory=list,
        description="Regular expressions for site chrome lines the cleaner should drop.",
    )
    allow_private_hosts: list[str] = Field(
        default_factory=list,
        description="Host names or networks (10.0.0.0/8) that links found inside feeds may "
        "reach although they are loopback, private or reserved; by default none may.",
    )

    @field_validator("allow_private_hosts")
    @classmethod
    def _hosts_or_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            if "/" in entry:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"{entry!r} is not a network such as 10.0.0.0/8") from None
            elif not entry.strip() or any(ch in entry for ch in " /:@?#"):
                raise ValueError(f"{entry!r} is not a host name or an IP address")
        return value

    @field_validator("extra_chrome_patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {pattern!r} is not a regular expression ({exc})"
                ) from None
        return value

    @field_validator("user_agent")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("must not contain line breaks (it becomes an HTTP header)")
        return value

    @property
    def extra_chrome(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p) for p in self.extra_chrome_patterns)


# A plain address (no display name, no comments): what From and Reply-To are built from.
_ADDRESS = re.compile(r"[^\s@<>()\[\]\\,;:\"]+@[^\s@<>()\[\]\\,;:\"]+")

# Shortest signing key accepted: 32 bytes, what `secrets.token_urlsafe(32)` gives and more.
MIN_SECRET_BYTES = 32
KEY_ADVICE = (
    'generate one with `python3 -c "import secrets; print(secrets.token_urlsafe(32))"` '
    "and set DIGEST_SECRET_KEY"
)


class SenderSettings(_Section):
    name: str = Field("The Daily Digest", description="Display name in From and the masthead.")
    address: str = Field("digest@example.org", description="From address.")
    postal_address: str = Field(
        "Example Publishing, 1 Example Street, Example City",
        description="Sender identity printed in every footer.",
    )
    reply_to: str = Field("", description="Reply-To address; empty sends none.")
    logo_url: str = Field(
        "", description="https URL of a wordmark shown instead of the name; its alt is the name."
    )
    logo_width: int = Field(200, ge=16, le=600, description="Width of the logo in pixels.")

    @field_validator("name", "address", "postal_address", "reply_to")
    @classmethod
    def _no_line_breaks(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("must not contain line breaks (it becomes a mail header)")
        return value

    @field_validator("address", "reply_to")
    @classmethod
    def _an_address(cls, value: str) -> str:
        if value and not _ADDRESS.fullmatch(value):
            raise ValueError(f"{value!r} is not an email address such as news@example.org")
        return value


class SummarySettings(_Section):
    lead_words: int = Field(60, ge=10, le=400, description="Word budget of the lead.")
    quotes: int = Field(2, ge=0, le=10, description="Key quotes shown per article.")


class DigestSettings(_Section):
    list_name: str = Field("daily", pattern=r"^[a-z0-9-]+$", description="Digest key prefix.")
    timezone: str = Field("UTC", description="IANA zone for the digest date, e.g. Asia/Seoul.")
    max_articles: int = Field(30, ge=1, le=500, description="Most articles in one digest.")
    intro: str = Field("", description="Optional short intro under the masthead.")
    subject: str = Field(
        "{headline}",
        description="Subject pattern; fields: name, date, headline, count. The lead "
        "headline first: a phone shows only the start, and the sender's name is beside it.",
    )
    preheader: str = Field(
        "", description="Inbox preview text; default: 'Also: ' and the next two headlines."
    )
    language: str = Field(
        "en",
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        description="Language of the email (BCP 47, e.g. en, de, pt-BR), for screen readers.",
    )
    group_by: Literal["source", "topic"] = Field(
        "source", description="Sections of the email: by 'source' or by first 'topic' tag."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value


class DeliverySettings(_Section):
    backend: Literal["outbox", "smtp", "postmark", "sendgrid", "mailgun"] = Field(
        "outbox", description="Transport: 'outbox' writes .eml files; 'smtp'; or a provider API."
    )
    outbox_dir: Path | None = Field(None, description="Default: <data_dir>/outbox.")
    batch_size: int = Field(100, ge=1, le=10_000, description="Deliveries per ledger commit.")
    concurrency: int = Field(
        4, ge=1, le=64, description="SMTP connections, or API requests, in parallel."
    )
    rate_limit: float = Field(0, ge=0, description="Most messages per second; 0 for no limit.")
    retries: int = Field(5, ge=0, le=30, description="Retries of a temporary failure.")
    backoff: float = Field(1.0, ge=0, description="Seconds before the first retry; doubles.")
    backoff_max: float = Field(300.0, ge=0, description="Longest wait between two retries.")
    bounce_threshold: int = Field(
        3, ge=1, description="Permanent failures in a row that mark a subscriber bounced."
    )
    claim_seconds: float = Field(
        60.0, ge=1, description="Rows claimed by a sender that died go to another after this."
    )
    test_mode: bool = Field(
        False, description="Never sleep for backoff or the rate limit (for tests only)."
    )
    smtp_host: str = Field("localhost", description="SMTP server name or address.")
    smtp_port: int | None = Field(
        None, ge=1, le=65535, description="Default: 587 (starttls), 465 (tls), 25 (none)."
    )
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="'starttls', 'tls' (implicit, port 465) or 'none'."
    )
    smtp_username: str | None = Field(None, description="SMTP login; no login when unset.")
    smtp_password: SecretStr | None = Field(
        None, description="SMTP password; set DIGEST_DELIVERY__SMTP_PASSWORD, not the file."
    )
    smtp_verify: bool = Field(True, description="Verify the server's TLS certificate.")
    smtp_ca_file: Path | None = Field(None, description="CA bundle to trust, not the system's.")
    smtp_timeout: float = Field(30.0, gt=0, description="Seconds to wait for any SMTP reply.")
    smtp_max_per_connection: int = Field(
        1000, ge=1, description="Messages over one connection before reconnecting."
    )
    smtp_ehlo_name: str | None = Field(None, description="Name sent in EHLO; default: FQDN.")
    smtp_pipelining: bool = Field(
        True, description="Pipeline commands (RFC 2920) when the server offers it."
    )
    api_base_url: str | None = Field(
        None, description="Provider API root; default: the provider's public URL."
    )
    api_key: SecretStr | None = Field(
        None, description="Provider API key; set DIGEST_DELIVERY__API_KEY, not the file."
    )
    api_domain: str | None = Field(
        None, description="Mailgun sending domain; default: the sender address's domain."
    )
    api_timeout: float = Field(60.0, gt=0, description="Seconds to wait for a provider API.")
    postmark_stream: str = Field("broadcast", description="Postmark message stream ID.")
    feedback_id: str = Field(
        "",
        description="Feedback-ID header (e.g. 'daily:digest:example'), for Gmail's "
        "complaint reports; empty sends none.",
    )


class WebSettings(_Section):
    base_url: str = Field(
        "http://127.0.0.1:8000",
        description="Public URL of `digest serve`, used in unsubscribe and web-view links.",
    )
    description: str = Field(
        "One good email a day with the stories that matter.",
        description="A line about the publication, on the home page and in the Atom feed.",
    )
    signups_per_hour: int = Field(
        10, ge=1, le=10_000, description="Sign-up requests one address (IP) may make per hour."
    )
    admin_password: SecretStr | None = Field(
        None,
        description="Lets the operator pages (preview) answer to other machines, with "
        "HTTP basic auth; unset, they answer only to this machine. Set DIGEST_WEB__ADMIN_PASSWORD.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses of your reverse proxies, whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed (for sign-up limits per visitor); none by default.",
    )

    @field_validator("admin_password")
    @classmethod
    def _not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError(
                "is empty, which would let anyone in; set a real password or leave it unset"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or not urlsplit(value).hostname:
            raise ValueError(f"{value!r} is not an http(s) URL such as https://news.example.org")
        return value


class TrackingSettings(_Section):
    clicks: bool = Field(
        False,
        description="Send story links through /c/<token> on web.base_url and count one "
        "click per reader per story; off by default. SMTP and outbox delivery only.",
    )


class WebhookSettings(_Section):
    postmark_username: str = Field(
        "postmark", description="User name in the Postmark webhook URL's basic auth."
    )
    postmark_password: SecretStr | None = Field(
        None,
        description="Password in the Postmark webhook URL; set DIGEST_WEBHOOKS__POSTMARK_PASSWORD. "
        "Unset, /webhooks/postmark answers 404.",
    )
    mailgun_signing_key: SecretStr | None = Field(
        None,
        description="Mailgun's HTTP webhook signing key; set DIGEST_WEBHOOKS__MAILGUN_SIGNING_KEY.",
    )
    sendgrid_public_key: str = Field(
        "", description="SendGrid's signed event webhook verification key (base64), as shown."
    )
    max_age: int = Field(
        900, ge=60, le=86_400, description="Seconds a signed webhook stays valid (replays)."
    )

    @field_validator("postmark_password", "mailgun_signing_key")
    @classmethod
    def _not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 8:
            raise ValueError("is empty or too short to keep anyone out; set the real one")
        return value


def _check_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
    return value


def _check_cron(value: str) -> str:
    from digest.cron import parse_cron  # APScheduler is only imported when a cron is set

    parse_cron(value, "UTC")
    return value


class WeeklySettings(_Section):
    cron: str = Field("0 8 * * 1", description="When the weekly digest goes out (crontab).")
    list_name: str = Field("weekly", pattern=r"^[a-z0-9-]+$", description="Its digest key prefix.")
    max_articles: int = Field(50, ge=1, le=500, description="Most articles in one weekly digest.")
    subject: str = Field(
        "The week to {date}: {headline}",
        description="Subject pattern; fields: name, date, headline, count.",
    )

    _cron = field_validator("cron")(_check_cron)


class ScheduleSettings(_Section):
    cron: str = Field(
        "0 7 * * *", description="When the daily digest goes out: minute hour day month weekday."
    )
    timezone: str | None = Field(None, description="Zone of the cron; default: digest.timezone.")
    collect_every: int | None = Field(
        None, ge=1, le=1440, description="Minutes between collections; default: only at digests."
    )
    misfire_grace_time: int = Field(
        3600, ge=1, le=86_400, description="Seconds a run missed while down may still start."
    )
    catch_up: Literal["skip", "send"] = Field(
        "skip", description="A run missed by more than the grace time: skip it or send it once."
    )
    skip_when_empty: bool = Field(True, description="No new articles: send nothing.")
    weekly: WeeklySettings | None = Field(None, description="A second, weekly digest.")

    _cron = field_validator("cron")(_check_cron)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)


class DkimSettings(_Section):
    key_file: Path | None = Field(
        None, description="PEM RSA private key; when set, every message is DKIM-signed."
    )
    selector: str = Field("digest", description="DNS selector: <selector>._domainkey.<domain>.")
    domain: str = Field("", description="Signing domain (d=); default: the sender's domain.")


class BouncesSettings(_Section):
    host: str = Field(description="IMAP server of the mailbox that receives bounces.")
    port: int | None = Field(
        None, ge=1, le=65535, description="Default: 993 (ssl), 143 (starttls or none)."
    )
    security: Literal["ssl", "starttls", "none"] = Field(
        "ssl", description="'ssl' (implicit TLS, port 993), 'starttls' or 'none'."
    )
    username: str = Field(description="IMAP login.")
    password: SecretStr | None = Field(
        None, description="IMAP password; set DIGEST_BOUNCES__PASSWORD, not the file."
    )
    folder: str = Field("INBOX", description="Folder the bounces arrive in.")
    processed_folder: str = Field(
        "Processed", description="Folder recognized bounces are moved to (created if missing)."
    )
    soft_threshold: int = Field(
        3, ge=1, description="Soft bounces (mailbox full, …) that mark a subscriber bounced."
    )
    every: int = Field(
        30, ge=1, le=1440, description="Minutes between reads when `digest schedule` runs."
    )
    verify: bool = Field(True, description="Verify the server's TLS certificate.")
    ca_file: Path | None = Field(None, description="CA bundle to trust, not the system's.")
    timeout: float = Field(30.0, gt=0, description="Seconds to wait for any IMAP reply.")
    verp_address: str = Field(
        "",
        description="With SMTP, send each copy from its own signed bounce address, "
        "local+token@domain (VERP); the mailbox must accept local+anything. Empty: off.",
    )

    @field_validator("verp_address")
    @classmethod
    def _plain_address(cls, value: str) -> str:
        if value and (not _ADDRESS.fullmatch(value) or "+" in value):
            raise ValueError(
                f"{value!r} is not an email address without '+' such as bounces@example.org"
            )
        return value

    @field_validator("folder", "processed_folder", "username", "host")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value.strip() or any(ch in value for ch in "\r\n\x00"):
            raise ValueError("must be one line of text, not empty")
        return value

    @model_validator(mode="after")
    def _two_folders(self) -> BouncesSettings:
        if self.folder == self.processed_folder:
            raise ValueError("folder and processed_folder must differ")
        return self

    @property
    def imap_port(self) -> int:
        return self.port or (993 if self.security == "ssl" else 143)


class Settings(BaseSettings):
    """All of digest's settings."""

    model_config = SettingsConfigDict(
        env_prefix="DIGEST_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Field(Path("var"), description="Database, outbox and generated secrets.")
    database_url: str = Field("", description="SQLAlchemy URL; default SQLite in data_dir.")
    secret_key: SecretStr | None = Field(
        None, description="Signs unsubscribe links; generated into data_dir if unset."
    )
    templates_dir: Path | None = Field(None, description="Searched before built-in templates.")
    sender: SenderSettings = SenderSettings()
    summary: SummarySettings = SummarySettings()
    digest: DigestSettings = DigestSettings()
    delivery: DeliverySettings = DeliverySettings()
    web: WebSettings = WebSettings()
    webhooks: WebhookSettings = WebhookSettings()
    tracking: TrackingSettings = TrackingSettings()
    dkim: DkimSettings = DkimSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    bounces: BouncesSettings | None = Field(
        None, description="The IMAP mailbox that receives bounces; `digest bounces` reads it."
    )
    collect: CollectSettings = CollectSettings()
    sources: list[SourceSettings] = Field(default_factory=list)

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"is empty or shorter than {MIN_SECRET_BYTES} bytes, so anyone could forge "
                f"unsubscribe links; {KEY_ADVICE}"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init values; environment variables must win over it.
        return (env_settings, init_settings)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'digest.db'}"

    @model_validator(mode="after")
    def _shared_secret_for_a_shared_database(self) -> Settings:
        # Several hosts share a server database; a key generated into one host's data_dir
        # would sign links that every other host rejects.
        if self.secret_key is None and not self.db_url.startswith("sqlite"):
            raise ConfigError(
                "With a database other than SQLite, set DIGEST_SECRET_KEY, the same on every "
                "host, so that links signed on one host work on all of them."
            )
        return self

    @model_validator(mode="after")
    def _clicks_over_smtp(self) -> Settings:
        # A provider's batch API fills one marker per reader; click links need one per
        # story per reader, which only the SMTP and outbox paths make today.
        if self.tracking.clicks and self.delivery.backend not in ("smtp", "outbox"):
            raise ConfigError(
                f"tracking.clicks works with the smtp and outbox backends, not "
                f"{self.delivery.backend}; turn tracking.clicks off or deliver over SMTP."
            )
        return self

    @property
    def audience(self) -> str:
        """Which list these settings compose for: the weekly cadence renames the digest."""
        weekly = self.schedule.weekly
        if weekly is not None and self.digest.list_name == weekly.list_name:
            return "weekly"
        return "daily"

    @property
    def offered_lists(self) -> tuple[str, ...]:
        """The lists a reader can choose between: the weekly only when it is configured."""
        return ("daily", "weekly") if self.schedule.weekly is not None else ("daily",)

    @property
    def outbox_path(self) -> Path:
        return self.delivery.outbox_dir or self.data_dir / "outbox"


def config_path(explicit: Path | None = None) -> Path | None:
    """The config file to read: --config, then $DIGEST_CONFIG, then config/digest.toml."""
    if explicit is not None:
        return explicit
    env = os.environ.get("DIGEST_CONFIG")
    if env:
        return Path(env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from the config file and environment; raise DigestError when invalid."""
    path = config_path(path)
    values: dict[str, Any] = {}
    if path is not None:
        values = _read_toml(path)
        _refuse_secrets_in_file(values, path)
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, path)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"Config file {path} does not exist; create it or pass --config PATH."
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"Config path {path} is a folder; pass the .toml file in it.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"Config file {path} is not UTF-8 text; save it as UTF-8.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path} ({exc.strerror}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Config file {path} is not valid TOML ({exc}); fix it.") from None


# Secrets that the documentation says come from the environment only: a config file is
# copied, committed and shown far more often than an environment file.
_ENVIRONMENT_ONLY = {
    ("delivery", "smtp_password"): "DIGEST_DELIVERY__SMTP_PASSWORD",
    ("delivery", "api_key"): "DIGEST_DELIVERY__API_KEY",
    ("webhooks", "postmark_password"): "DIGEST_WEBHOOKS__POSTMARK_PASSWORD",
    ("webhooks", "mailgun_signing_key"): "DIGEST_WEBHOOKS__MAILGUN_SIGNING_KEY",
    ("bounces", "password"): "DIGEST_BOUNCES__PASSWORD",
}


def _refuse_secrets_in_file(values: dict[str, Any], path: Path) -> None:
    for (section, key), variable in _ENVIRONMENT_ONLY.items():
        table = values.get(section)
        if isinstance(table, dict) and key in table:
            raise ConfigError(
                f"{section}.{key} must not be written in {path}; remove it there and set "
                f"the environment variable {variable} instead."
            )


def _describe_validation_error(exc: ValidationError, path: Path | None) -> str:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    env = "DIGEST_" + "__".join(str(p) for p in first["loc"] if not isinstance(p, int)).upper()
    where = f"{path} or {env}" if path else env
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"Invalid setting {key}: {message}; fix it in {where}{more}."
