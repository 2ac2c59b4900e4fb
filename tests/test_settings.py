import os
from pathlib import Path

import pytest

from digest.errors import DigestError
from digest.settings import load_settings
from tests.conftest import write_config


def test_toml_values_are_read(settings):
    assert settings.sender.name == "Test Digest"
    assert [s.name for s in settings.sources] == ["Local Desk", "Example Science Wire"]
    assert settings.db_url.endswith("var/digest.db")
    assert settings.digest.list_name == "daily"  # default where the file is silent


def test_nested_environment_variable_overrides_the_file(config_file, monkeypatch):
    monkeypatch.setenv("DIGEST_DIGEST__TIMEZONE", "Asia/Seoul")
    monkeypatch.setenv("DIGEST_SENDER__NAME", "Morning Brief")
    settings = load_settings(config_file)
    assert settings.digest.timezone == "Asia/Seoul"
    assert settings.sender.name == "Morning Brief"
    assert settings.sender.address == "digest@example.org"  # the rest of the section stays


def test_digest_config_variable_selects_the_file(tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    path = write_config(other, '\n[digest]\nlist_name = "weekly"\n')
    monkeypatch.setenv("DIGEST_CONFIG", str(path))
    assert load_settings().digest.list_name == "weekly"


def test_invalid_value_names_the_key(tmp_path):
    path = write_config(tmp_path, '\n[digest]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(
        DigestError, match=r"digest\.timezone.*Mars/Olympus.*DIGEST_DIGEST__TIMEZONE"
    ):
        load_settings(path)


def test_unknown_key_is_an_error_not_ignored(tmp_path):
    path = write_config(tmp_path, '\n[delivery]\nbakend = "smtp"\n')
    with pytest.raises(DigestError, match=r"delivery\.bakend"):
        load_settings(path)


def test_broken_toml_and_missing_file_are_one_sentence(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("data_dir = \n")
    with pytest.raises(DigestError, match="not valid TOML"):
        load_settings(bad)
    with pytest.raises(DigestError, match="does not exist"):
        load_settings(Path(tmp_path / "missing.toml"))


def test_header_values_reject_line_breaks(tmp_path):
    path = write_config(tmp_path, '\n[digest]\nintro = "x"\n')
    text = path.read_text().replace('name = "Test Digest"', 'name = "Evil\\r\\nBcc: x@example.com"')
    path.write_text(text)
    with pytest.raises(DigestError, match=r"sender\.name"):
        load_settings(path)


def test_a_shared_database_needs_the_secret_key_from_the_environment(cli, tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("DIGEST_"):
            monkeypatch.delenv(name)
    url = "postgresql+psycopg://digest@db.example.org/digest"
    monkeypatch.setenv("DIGEST_DATABASE_URL", url)
    with pytest.raises(DigestError, match="set DIGEST_SECRET_KEY, the same on every host"):
        load_settings(write_config(tmp_path))
    monkeypatch.setenv("DIGEST_SECRET_KEY", "k" * 40)
    assert load_settings(write_config(tmp_path)).db_url == url
    result = cli("subscribers", "list", env={"DIGEST_DATABASE_URL": url})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "With a database other than SQLite, set DIGEST_SECRET_KEY" in result.stderr
    assert not (tmp_path / "var" / "secret_key").exists()  # no per-host key was made
