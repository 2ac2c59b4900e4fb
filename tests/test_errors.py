"""Each kind of problem has its own error type, so callers catch by type, not by message."""

from __future__ import annotations

import pytest

from digest.collect.article import read_article
from digest.errors import (
    ConfigError,
    DigestError,
    InvalidAddress,
    InvalidName,
    NotFound,
    SourceError,
    StoreError,
)
from digest.pipeline import open_store, send_test_copy
from digest.settings import load_settings
from digest.subscribers import add_subscriber, remove_subscriber
from tests.conftest import write_config


def test_the_kinds_a_caller_tells_apart(settings, tmp_path):
    engine = open_store(settings)
    with pytest.raises(InvalidAddress):
        add_subscriber(engine, "not an address")
    with pytest.raises(InvalidName):
        add_subscriber(engine, "ann@example.org", name="Ann\r\nBcc: x@example.org")
    with pytest.raises(NotFound):
        remove_subscriber(engine, "nobody@example.org")
    with pytest.raises(NotFound):
        send_test_copy(settings, "ann@example.org", key="daily/1999-01-01")
    with pytest.raises(SourceError):
        read_article(str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError):
        load_settings(write_config(tmp_path, '\n[digest]\ntimezone = "Mars/Olympus"\n'))
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError):
        open_store(
            load_settings(write_config(tmp_path), database_url=f"sqlite:///{tmp_path / 'junk.db'}")
        )


def test_every_kind_is_still_one_sentence_for_the_cli():
    for kind in (ConfigError, InvalidAddress, NotFound, SourceError, StoreError):
        assert issubclass(kind, DigestError)
