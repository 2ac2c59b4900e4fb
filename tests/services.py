"""The servers the tests need, on a fresh Debian machine: packages, and a throwaway PostgreSQL.

`make test` runs `python -m tests.services pytest ...`: it installs Debian's `chromium`,
`chromium-driver`, `postgresql` and `dovecot-imapd` (the bounce mailbox's IMAP server,
which tests/imapserver.py starts per test) when they are missing, starts a PostgreSQL cluster in a
temporary folder on a free port, runs the command with `DIGEST_TEST_POSTGRES_URL` set, and
stops and removes the cluster afterwards, whatever the command's outcome. Plain `pytest`
starts the same cluster itself (tests/conftest.py) when the variable is not set.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

URL_VARIABLE = "DIGEST_TEST_POSTGRES_URL"
PACKAGES = {
    # Debian package: a file that is there once it is installed.
    "chromium": "/usr/bin/chromium",
    "chromium-driver": "/usr/bin/chromedriver",
    "postgresql": "/usr/lib/postgresql/*/bin/initdb",
    "dovecot-imapd": "/usr/lib/dovecot/imap",
}
# initdb refuses to run as root; Debian's package creates this user, else we create one.
CLUSTER_USER = "postgres"
# Not UTC on purpose: a query or a conversion that leans on the server's zone shows up.
CLUSTER_TIMEZONE = "Pacific/Chatham"
# Durability is worth nothing in a cluster deleted after the run; speed is.
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class ServiceError(RuntimeError):
    """A server the tests need could not be installed or started."""


def missing_packages() -> list[str]:
    return [name for name, probe in PACKAGES.items() if not _present(probe)]


def _present(probe: str) -> bool:
    if "*" in probe:
        return any(Path("/").glob(probe.lstrip("/")))
    return Path(probe).exists()


def install_packages(names: list[str]) -> None:
    """apt-get the named Debian packages (as root, or through sudo)."""
    if not names:
        return
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    if prefix and shutil.which("sudo") is None:
        raise ServiceError(
            f"The tests need the Debian packages {' '.join(names)}; install them as root."
        )
    print(f"tests: installing {' '.join(names)}", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*prefix, "apt-get", "update"], check=True, env=env)
    subprocess.run([*prefix, "apt-get", "install", "-y", *names], check=True, env=env)


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian keeps one per major version)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    on_path = shutil.which("initdb")
    if found:
        return found[-1].parent
    if on_path:
        return Path(on_path).parent
    raise ServiceError(
        "PostgreSQL is not installed; run `make test` (it installs Debian's postgresql) "
        f"or set {URL_VARIABLE} to a server's URL."
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cluster_user() -> str | None:
    """The user that runs the cluster: ourselves, unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(CLUSTER_USER)
    except KeyError:
        shell = "/usr/sbin/nologin"
        subprocess.run(["useradd", "--system", "--shell", shell, CLUSTER_USER], check=True)
    return CLUSTER_USER


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A new cluster in a temporary folder on a free port; yields its SQLAlchemy URL."""
    bindir = postgres_bindir()
    user = _cluster_user()
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    ):
        # A plain SIGTERM would end Python without running the `finally` that stops the
        # cluster; as SystemExit it does.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    as_user = ["runuser", "-u", user, "--"] if user else []
    folder = Path(tempfile.mkdtemp(prefix="digest-pg-"))
    data = folder / "data"
    if user:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    try:
        init = ["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"]
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(data), *init, "--no-sync"],
            check=True,
            capture_output=True,
        )
        options = [f"-c {s}" for s in FAST_SETTINGS]
        options += [
            f"-p {port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={folder}",
            f"-c timezone={CLUSTER_TIMEZONE}",
        ]
        pg_ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
        started = subprocess.run(
            [
                *pg_ctl,
                "-l",
                str(folder / "log"),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(options),
                "start",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if started.returncode != 0:
            log = (folder / "log").read_text(errors="replace")[-2000:]
            raise ServiceError(f"PostgreSQL did not start: {started.stderr.strip()}\n{log}")
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, check=False)
    except subprocess.CalledProcessError as exc:
        raise ServiceError(f"{exc.cmd[len(as_user)]} failed: {exc.stderr!r}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server: $DIGEST_TEST_POSTGRES_URL, or a throwaway cluster."""
    given = os.environ.get(URL_VARIABLE)
    if given:
        yield given
        return
    with postgres_cluster() as url:
        yield url


@contextlib.contextmanager
def scratch_database(server: str, name: str) -> Iterator[str]:
    """A new, empty database `name` on `server`; dropped afterwards, connections or not."""
    import sqlalchemy as sa

    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def main(command: list[str]) -> int:
    """Install what is missing, start the cluster, run `command`, stop the cluster."""
    if not command:
        print("usage: python -m tests.services COMMAND [ARG ...]", file=sys.stderr)
        return 2
    install_packages(missing_packages())
    with postgres_cluster() as url:
        started = time.monotonic()
        code = subprocess.run(command, env={**os.environ, URL_VARIABLE: url}, check=False)
        print(f"tests: {time.monotonic() - started:.0f} s", file=sys.stderr)
        return code.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
