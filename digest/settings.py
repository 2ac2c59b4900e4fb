"""Settings: defaults here, then the TOML file, then DIGEST_* environment variables.

Every setting is declared once, with its default and a description; `config/digest.toml`
mirrors these defaults so a new user can see and change them. Relative paths are resolved
against the current working directory, like any other command-line tool.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from digest.errors import DigestError

DEFAULT_CONFIG = Path("config/digest.toml")


class _Section(BaseModel):
    model_config = {"extra": "forbid"}


class SourceSettings(_Section):
    name: str = Field(description="Unique name shown in the digest and in the health table.")
    kind: Literal["folder", "feed"] = Field(
        description="'folder' of scraped .txt files, or 'feed' (RSS/Atom/JSON, a path or URL)."
    )
    location: str = Field(description="Folder path, feed file path, or feed URL.")
    tags: list[str] = Field(default_factory=list, description="Topics subscribers can pick.")


class SenderSettings(_Section):
    name: str = Field("The Daily Digest", description="Display name in From and the masthead.")
    address: str = Field("digest@example.org", description="From address.")
    postal_address: str = Field(
        "Example Publishing, 1 Example Street, Example City",
        description="Sender identity printed in every footer.",
    )

    @field_validator("name", "address", "postal_address")
    @classmethod
    def _no_line_breaks(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("must not contain line breaks (it becomes a mail header)")
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
        "{name} — {date}: {headline}",
        description="Subject pattern; fields: name, date, headline, count.",
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
    backend: Literal["outbox"] = Field("outbox", description="Transport; 'outbox' writes .eml.")
    outbox_dir: Path | None = Field(None, description="Default: <data_dir>/outbox.")
    batch_size: int = Field(100, ge=1, le=10_000, description="Deliveries per ledger commit.")


class WebSettings(_Section):
    base_url: str = Field(
        "http://127.0.0.1:8000",
        description="Public URL of `digest serve`, used in unsubscribe and web-view links.",
    )


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
    sources: list[SourceSettings] = Field(default_factory=list)

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
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DigestError(
                f"Config file {path} does not exist; create it or pass --config PATH."
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise DigestError(f"Config file {path} is not valid TOML ({exc}); fix it.") from None
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise DigestError(_describe_validation_error(exc, path)) from None


def _describe_validation_error(exc: ValidationError, path: Path | None) -> str:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    env = "DIGEST_" + "__".join(str(p) for p in first["loc"] if not isinstance(p, int)).upper()
    where = f"{path} or {env}" if path else env
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"Invalid setting {key}: {message}; fix it in {where}{more}."
