"""Shared fixtures: a temp project (config + database) and the real `digest` command.

The database is a SQLite file, or for the modules marked `both_stores` a fresh PostgreSQL
database too: each of their tests runs once per store (ids `sqlite` and `postgresql`).
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from digest import store
from digest.settings import Settings, load_settings
from tests import services

REPO = Path(__file__).resolve().parent.parent
# Debian's Chromium, driven by Playwright (which never downloads a browser of its own here).
CHROMIUM = os.environ.get("DIGEST_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium phones home at start; tests must not
# touch the network at all.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SAMPLES = REPO / "config" / "samples"
TEST_SECRET_KEY = "a-test-key-shared-by-every-host-0123456789"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def write_config(folder: Path, extra: str = "", database_url: str = "") -> Path:
    """A config like the bundled one, with absolute sample paths and a temp data dir."""
    path = folder / "digest.toml"
    # SQLite stays the default (a file in data_dir); any other store is named by its URL,
    # and then needs a signing key shared by every host.
    database = ""
    if database_url and not database_url.startswith("sqlite"):
        database = f'database_url = "{database_url}"\nsecret_key = "{TEST_SECRET_KEY}"'
    path.write_text(
        f"""
data_dir = "{folder / "var"}"
{database}

[sender]
name = "Test Digest"
address = "digest@example.org"
postal_address = "Test Digest, 1 Test Street"

[web]
base_url = "https://digest.example.org"

[[sources]]
name = "Local Desk"
kind = "folder"
location = "{SAMPLES / "articles"}"
tags = ["local"]

[[sources]]
name = "Example Science Wire"
kind = "feed"
location = "{SAMPLES / "feed.xml"}"
tags = ["science"]
{extra}
""",
        encoding="utf-8",
    )
    return path


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # A test that names its own store (PostgreSQL only, say) keeps it.
    own = any(
        "database_url" in str(mark.args[0])
        for mark in metafunc.definition.iter_markers("parametrize")
    )
    if (
        "database_url" in metafunc.fixturenames
        and metafunc.definition.get_closest_marker("both_stores")
        and not own
    ):
        stores = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
        metafunc.parametrize("database_url", stores, indirect=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server: $DIGEST_TEST_POSTGRES_URL, or a throwaway cluster."""
    with services.postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> Iterator[sa.URL]:
    """A migrated database that each test's database is copied from (a file copy, fast)."""
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    # The pid keeps two test runs sharing one server (two worktrees) apart.
    name = f"digest_template_{os.getpid()}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    template = sa.make_url(postgres_server).set(database=name)
    store.connect(template.render_as_string(hide_password=False)).dispose()
    yield template
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store a test runs on: SQLite in the temp data dir, or a fresh PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'var' / 'digest.db'}"
        return
    template: sa.URL = request.getfixturevalue("postgres_template")
    name = f"{template.database}_{next(_databases)}"
    admin = sa.create_engine(template.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE {template.database}")
    try:
        yield template.set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE ends the connections the test's engines still hold in their pools.
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture
def config_file(tmp_path: Path, database_url: str) -> Path:
    return write_config(tmp_path, database_url=database_url)


@pytest.fixture
def settings(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.startswith("DIGEST_"):
            monkeypatch.delenv(name)
    return load_settings(config_file)


CLI = Callable[..., subprocess.CompletedProcess[str]]
# Rich reads the width once, when digest.cli makes its consoles: wide tables, no wrapping.
os.environ.setdefault("COLUMNS", "200")
os.environ.setdefault("NO_COLOR", "1")


@pytest.fixture
def cli(tmp_path: Path, config_file: Path, monkeypatch: pytest.MonkeyPatch) -> CLI:
    """Run a command in this process, as `digest ...` would in the project folder.

    The same entry point (`digest.cli.main`) with its own arguments, working folder,
    environment, standard streams and exit code, at a fraction of a new interpreter's
    start-up; `cli_process` runs the installed command for the few tests that need one.
    """
    from digest.cli import main

    def run(
        *args: str, stdin: str | None = None, env: dict[str, str] | None = None, config: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = ["digest", *(["--config", str(config_file)] if config else []), *args]
        out, err = io.StringIO(), io.StringIO()
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        with monkeypatch.context() as m:
            for name in [n for n in os.environ if n.startswith("DIGEST_")]:
                m.delenv(name)
            for name, value in (env or {}).items():
                m.setenv(name, value)
            m.chdir(tmp_path)
            m.setattr(sys, "argv", argv)
            m.setattr(sys, "stdin", io.StringIO(stdin or ""))
            m.setattr(sys, "stdout", out)
            m.setattr(sys, "stderr", err)
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except Exception:  # what a user would see as a traceback
                err.write(traceback.format_exc())
                code = 1
            finally:
                root.handlers[:] = handlers
                root.setLevel(level)
        return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def cli_process(tmp_path: Path, config_file: Path) -> CLI:
    """Run the installed entry point in a subprocess, exactly as a user would."""

    def run(
        *args: str, stdin: str | None = None, env: dict[str, str] | None = None, config: bool = True
    ) -> subprocess.CompletedProcess[str]:
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        clean_env.update({"COLUMNS": "200", "NO_COLOR": "1", **(env or {})})
        command = [sys.executable, "-m", "digest.cli"]
        if config:
            command += ["--config", str(config_file)]
        return subprocess.run(
            [*command, *args],
            cwd=tmp_path,
            env=clean_env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def start_digest(
    tmp_path: Path,
    config_file: Path,
    *command: str,
    env: dict[str, str] | None = None,
    before: Sequence[Sequence[str]] = (("collect",),),
) -> Iterator[str]:
    """Commands to set up (`collect` by default), then a web command in a subprocess on a
    free port, as an editor would run them; yields its URL and stops it afterwards."""
    from tests.mailservers import free_port

    environment = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    environment |= env or {}
    base = [sys.executable, "-m", "digest.cli", "--config", str(config_file)]
    for args in before:
        subprocess.run(
            [*base, *args], cwd=tmp_path, env=environment, check=True, capture_output=True
        )
    port = free_port()
    process = subprocess.Popen(
        [*base, *command, "--port", str(port)],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/robots.txt", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail(f"digest {command[0]} did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path, config_file: Path) -> Iterator[str]:
    """A real `digest serve`: public pages for anyone, operator pages behind a password."""
    yield from start_digest(tmp_path, config_file, "serve")


@pytest.fixture
def preview_server(tmp_path: Path, config_file: Path) -> Iterator[str]:
    """A real `digest preview` on 127.0.0.1: the operator pages answer this machine."""
    yield from start_digest(tmp_path, config_file, "preview", "--no-open")
