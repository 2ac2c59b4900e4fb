"""What every endpoint shares, kept on `app.state`: settings, store, key, pages.

Nothing here counts requests: limits live in the database, shared by every web host.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse

from digest.errors import DigestError
from digest.render import template_environment
from digest.settings import Settings, load_settings


class LiveSettings:
    """The settings, reloaded when the config file changes, so a preview stays current."""

    def __init__(self, settings: Settings, config_file: Path | None) -> None:
        self.settings = settings
        self.config_file = config_file
        self.error: str | None = None
        self._stamp = self._mtime()

    def _mtime(self) -> int:
        if self.config_file is None or not self.config_file.is_file():
            return 0
        return self.config_file.stat().st_mtime_ns

    def current(self) -> Settings:
        stamp = self._mtime()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.settings = load_settings(self.config_file)
                self.error = None
            except DigestError as exc:  # keep the last good settings, and say why
                self.error = str(exc)
        return self.settings


@dataclass(frozen=True, slots=True)
class WebState:
    live: LiveSettings
    engine: Engine
    key: str  # signs unsubscribe and confirmation links
    local_operator: bool  # `digest preview` on a loopback address

    def settings(self) -> Settings:
        return self.live.current()

    def config_paths(self) -> list[Path]:
        return [self.live.config_file] if self.live.config_file else []

    def topics(self) -> list[str]:
        """Every topic a reader can choose, from the sources' tags."""
        return sorted({tag for source in self.settings().sources for tag in source.tags})


def state(request: Request) -> WebState:
    shared: WebState = request.app.state.digest
    return shared


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """One of the web templates, with the current settings and any config error."""
    shared = state(request)
    current = shared.settings()
    pages = template_environment(current.templates_dir)
    html = pages.get_template(f"web/{name}").render(
        settings=current, config_error=shared.live.error, **context
    )
    return HTMLResponse(html, status_code=status_code)


def message(request: Request, title: str, text: str, status_code: int = 200) -> HTMLResponse:
    """A page with one heading and one sentence or two."""
    return page(request, "message.html.j2", status_code, title=title, text=text)
