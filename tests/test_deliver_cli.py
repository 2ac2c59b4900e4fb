"""Delivery through the real `digest` command: run and send over SMTP, test copies, errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest import store
from digest.settings import load_settings
from tests.conftest import CLI, SAMPLES
from tests.mailservers import (
    PASSWORD,
    USER,
    Certificates,
    SmtpServer,
    make_certificates,
    smtp_server,
)


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server() as running:
        yield running


def smtp_env(server: SmtpServer) -> dict[str, str]:
    return server.settings_env() | {
        "DIGEST_DELIVERY__TEST_MODE": "true",
    }


def ledger_counts(config_file: Path) -> dict[str, int]:
    engine = store.connect(load_settings(config_file).db_url)
    with engine.connect() as conn:
        rows = conn.execute(store.deliveries.select()).mappings().all()
    engine.dispose()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def test_send_has_help_with_an_example(cli: CLI) -> None:
    result = cli("send", "--help")
    assert result.returncode == 0
    assert "Example: digest send" in result.stdout
    assert "--to" in result.stdout and "--digest" in result.stdout


def test_run_delivers_over_smtp_and_send_then_has_nothing_left(
    cli: CLI, server: SmtpServer, config_file: Path
) -> None:
    env = smtp_env(server)
    assert cli("subscribers", "import", str(SAMPLES / "subscribers.csv")).returncode == 0
    first = cli("run", env=env)
    assert first.returncode == 0, first.stderr
    assert re.search(r"Messages sent now\s*│\s*3", first.stdout)
    assert re.search(r"Ledger\s*│\s*sent 3", first.stdout)
    assert sorted(server.handler.counts().values()) == [1, 1, 1]
    again = cli("send", env=env)
    assert again.returncode == 0, again.stderr
    assert "already delivered" in again.stdout
    assert re.search(r"Messages sent now\s*│\s*0", again.stdout)
    assert sum(server.handler.counts().values()) == 3


def test_send_to_is_a_test_copy_and_records_nothing(
    cli: CLI, server: SmtpServer, config_file: Path
) -> None:
    env = smtp_env(server)
    assert cli("subscribers", "import", str(SAMPLES / "subscribers.csv")).returncode == 0
    nothing = cli("send", "--to", "editor@example.org", env=env)
    assert nothing.returncode == 1
    assert "Nothing to send yet: no new articles; run `digest collect`." in nothing.stderr
    # Before any digest: the draft the preview shows.
    assert cli("collect").returncode == 0
    draft = cli("send", "--to", "Editor@Example.org", env=env)
    assert draft.returncode == 0, draft.stderr
    assert "Sent a test copy of the draft of daily/" in draft.stdout
    assert server.handler.counts() == {"editor@example.org": 1}
    assert ledger_counts(config_file) == {}
    # After the run: the composed digest; the ledger does not change.
    assert cli("run", env=env).returncode == 0
    before = ledger_counts(config_file)
    copy = cli("send", "--to", "editor@example.org", env=env)
    assert copy.returncode == 0, copy.stderr
    assert "Sent a test copy of digest daily/" in copy.stdout
    assert server.handler.counts()["editor@example.org"] == 2
    assert ledger_counts(config_file) == before == {"sent": 3}


def test_send_to_a_bad_address_is_one_sentence(cli: CLI, server: SmtpServer) -> None:
    result = cli("send", "--to", "not-an-address", env=smtp_env(server))
    assert result.returncode == 1
    assert "is not a valid email address" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_wrong_smtp_password_ends_in_one_sentence_and_nothing_sent(
    cli: CLI, config_file: Path, tmp_path: Path
) -> None:
    certificates: Certificates = make_certificates(tmp_path)
    assert cli("subscribers", "import", str(SAMPLES / "subscribers.csv")).returncode == 0
    with smtp_server(certificates, security="starttls", auth=True) as srv:
        env = {
            "DIGEST_DELIVERY__BACKEND": "smtp",
            "DIGEST_DELIVERY__SMTP_HOST": "localhost",
            "DIGEST_DELIVERY__SMTP_PORT": str(srv.port),
            "DIGEST_DELIVERY__SMTP_CA_FILE": str(certificates.ca),
            "DIGEST_DELIVERY__SMTP_USERNAME": USER,
            "DIGEST_DELIVERY__SMTP_PASSWORD": PASSWORD + "-typo",
        }
        result = cli("run", env=env)
        assert srv.handler.received == []
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith(f"Error: The SMTP server localhost:{srv.port} refused the login")
    assert ledger_counts(config_file) == {"pending": 3}
