from __future__ import annotations

import os
import stat

import pytest
import sqlalchemy as sa

from digest import store
from digest.errors import DigestError
from digest.pipeline import open_store
from digest.settings import load_settings
from digest.subscribers import (
    add_subscriber,
    import_csv,
    make_token,
    normalize_email,
    read_token,
    remove_subscriber,
    secret_key,
)
from tests.conftest import write_config

pytestmark = pytest.mark.both_stores


@pytest.fixture
def engine(settings):
    return open_store(settings)


def _people(engine):
    with store.transaction(engine) as conn:
        return {s.email: s for s in store.list_subscribers(conn)}


def test_addresses_are_validated_and_case_insensitive(engine):
    first, created = add_subscriber(engine, "  Ana.Lindgren@Example.ORG ", name="Ana")
    assert created and first.email == "ana.lindgren@example.org"
    again, created = add_subscriber(engine, "ANA.LINDGREN@example.org")
    assert not created and again.id == first.id
    with pytest.raises(DigestError, match="not a valid email"):
        add_subscriber(engine, "not-an-address")
    with pytest.raises(DigestError, match="control characters"):
        add_subscriber(engine, "x@example.org", name="Eve\r\nBcc: all@example.org")


def test_import_reports_bad_rows_by_line_and_keeps_the_good(engine, tmp_path):
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "E-mail,Full Name,Topics,Status\n"
        "ana@example.org,Ana,Local; Science,active\n"
        "broken-address,Bob,,active\n"
        "cy@example.com,Cy,,paused\n"
        "ANA@example.org,Ana again,,active\n"
        "dee@example.com,Dee,,\n",
        encoding="utf-8",
    )
    report = import_csv(engine, csv_file)
    assert report.added == 2
    assert [line for line, _ in report.errors] == [3, 4, 5]
    assert "not a valid email" in report.errors[0][1]
    assert "unknown status" in report.errors[1][1]
    assert "twice" in report.errors[2][1]
    people = _people(engine)
    assert set(people) == {"ana@example.org", "dee@example.com"}
    assert people["ana@example.org"].topics == ("local", "science")
    assert people["dee@example.com"].status == "active"


def test_strict_import_writes_nothing_when_a_row_is_bad(engine, tmp_path):
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email\nok@example.org\nnope\n", encoding="utf-8")
    report = import_csv(engine, csv_file, strict=True)
    assert report.errors and report.added == 0
    assert _people(engine) == {}


def test_reimport_changes_nothing_and_never_resubscribes(engine, tmp_path):
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email,name\nana@example.org,Ana\nbo@example.org,Bo\n", encoding="utf-8")
    import_csv(engine, csv_file)
    remove_subscriber(engine, "bo@example.org")
    report = import_csv(engine, csv_file)
    assert (report.added, report.updated, report.unchanged) == (0, 0, 2)
    assert _people(engine)["bo@example.org"].status == "unsubscribed"
    csv_file.write_text("email,status\nbo@example.org,active\n", encoding="utf-8")
    assert import_csv(engine, csv_file).kept_unsubscribed == 1
    assert _people(engine)["bo@example.org"].status == "unsubscribed"
    import_csv(engine, csv_file, resubscribe=True)
    assert _people(engine)["bo@example.org"].status == "active"


def test_import_carries_list_membership_on_both_stores(engine, tmp_path):
    """New rows (COPY on PostgreSQL) and changed rows (one array UPDATE) keep their lists."""
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(
        "email,lists\nana@example.org,weekly\nbo@example.org,daily\ncy@example.org,\n",
        encoding="utf-8",
    )
    import_csv(engine, csv_file)
    people = _people(engine)
    assert {a: p.lists for a, p in people.items()} == {
        "ana@example.org": ("weekly",),
        "bo@example.org": ("daily",),
        "cy@example.org": ("daily", "weekly"),
    }
    csv_file.write_text("email,lists\nana@example.org,daily\nbo@example.org,daily\n")
    report = import_csv(engine, csv_file)
    assert (report.updated, report.unchanged) == (1, 1)
    assert _people(engine)["ana@example.org"].lists == ("daily",)


def _statements_while(engine, action) -> int:
    """How many statements the database received while `action` ran (an executemany is one)."""
    count = 0

    def counted(*_args: object) -> None:
        nonlocal count
        count += 1

    sa.event.listen(engine, "before_cursor_execute", counted)
    try:
        action()
    finally:
        sa.event.remove(engine, "before_cursor_execute", counted)
    return count


def test_import_sends_a_few_statements_per_chunk_not_one_per_row(engine, tmp_path):
    # Each statement is a network round trip on PostgreSQL: a row-at-a-time import of
    # 100,000 people took minutes there against seconds on SQLite.
    people, renamed = tmp_path / "people.csv", tmp_path / "renamed.csv"
    rows = range(1200)
    people.write_text("email,name\n" + "".join(f"p{n}@example.org,P{n}\n" for n in rows))
    renamed.write_text(  # rows of two shapes: name and status; name, status and topics
        "email,name,status,topics\n"
        + "".join(f"p{n}@example.org,Q{n},unsubscribed,{'Ünï' * (n % 2)}\n" for n in rows)
    )
    added = _statements_while(engine, lambda: import_csv(engine, people))
    updated = _statements_while(engine, lambda: import_csv(engine, renamed))
    assert added <= 3 * 4 + 2 and updated <= 3 * 4 + 2  # 3 chunks of 500, begin and commit
    people_now = _people(engine)
    assert len(people_now) == 1200 and people_now["p7@example.org"].name == "Q7"
    assert people_now["p7@example.org"].status == "unsubscribed"
    assert (
        people_now["p7@example.org"].topics == ("ünï",)
        and people_now["p8@example.org"].topics == ()
    )
    with store.transaction(engine) as conn:
        history = [
            event for event, _ in store.subscriber_history(conn, people_now["p7@example.org"].id)
        ]
    assert history == ["active", "unsubscribed"]


def test_missing_email_column_is_a_clear_error(engine, tmp_path):
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("name,topics\nAna,\n", encoding="utf-8")
    with pytest.raises(DigestError, match="no email column"):
        import_csv(engine, csv_file)


def test_tokens_round_trip_and_reject_forgery():
    token = make_token("k1", 42, "unsubscribe")
    assert read_token("k1", token, "unsubscribe") == 42
    assert read_token("k2", token, "unsubscribe") is None  # other key
    assert read_token("k1", token, "confirm") is None  # other purpose
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert read_token("k1", forged, "unsubscribe") is None
    assert read_token("k1", "42.abc", "unsubscribe") is None
    assert all(ch.isalnum() or ch in "-_." for ch in token)


def test_secret_key_is_generated_once_with_private_permissions(tmp_path, monkeypatch):
    # SQLite only: with a shared database the key must come from the environment.
    monkeypatch.delenv("DIGEST_SECRET_KEY", raising=False)
    settings = load_settings(write_config(tmp_path))
    key, created = secret_key(settings)
    assert created and len(key) >= 32
    path = settings.data_dir / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert secret_key(settings) == (key, False)


@pytest.mark.parametrize(
    "address",
    [
        "ana@example.org",
        "Ana.Lindgren+news@Example.ORG",
        "o'brien@example.co.uk",
        "x@sub-domain.example.com",
        "a..b@example.org",
        ".a@example.org",
        "a@-example.org",
        "a@example",
        "a@example.test",
        "a@example.local",
        "a@localhost",
        "a@123.456",
        "josé@example.org",
        "a@exämple.org",
        '"quoted local"@example.org',
        "a@example.org.",
        "toolong" + "x" * 60 + "@example.org",
        "a@" + "b" * 64 + ".org",
    ],
)
def test_fast_path_agrees_with_email_validator(address):
    """Plain addresses skip email-validator on import; both must always agree."""
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        expected = None
    else:
        local, _, domain = result.normalized.rpartition("@")
        expected = f"{local.lower()}@{domain.lower()}"
    try:
        got: str | None = normalize_email(address)
    except DigestError:
        got = None
    assert got == expected
