"""The reader's preferences page, and what their choices do to the next digests."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from digest import store
from digest.jobs import cadences
from digest.models import Subscriber
from digest.pipeline import open_store, run_digest
from digest.settings import Settings, load_settings
from digest.subscribers import add_subscriber, make_token, secret_key
from digest.web import create_app
from tests.conftest import write_config

PUBLIC = "https://digest.example.org"
WEEKLY = '\n[schedule]\nskip_when_empty = false\n[schedule.weekly]\ncron = "0 8 * * 1"\n'

pytestmark = pytest.mark.both_stores


@pytest.fixture
def weekly_settings(tmp_path: Path, database_url: str, settings: Settings) -> Settings:
    """The test config with a weekly digest beside the daily one."""
    return load_settings(write_config(tmp_path, WEEKLY, database_url=database_url))


def _client(settings: Settings, origin: str | None = PUBLIC) -> TestClient:
    headers = {"Origin": origin} if origin else {}
    return TestClient(create_app(settings), base_url=PUBLIC, headers=headers)


def _token(settings: Settings, subscriber_id: int) -> str:
    return make_token(secret_key(settings)[0], subscriber_id, "unsubscribe")


def _reader(settings: Settings, address: str) -> Subscriber:
    with store.transaction(open_store(settings)) as conn:
        found = store.find_subscriber(conn, address)
    assert found is not None
    return found


def _received(settings: Settings, key: str) -> list[str]:
    folder = settings.outbox_path / key.replace("/", "-")
    return sorted(p.name.removesuffix(".eml") for p in folder.glob("*.eml"))


def test_the_page_shows_the_readers_choices_and_a_get_changes_nothing(weekly_settings):
    engine = open_store(weekly_settings)
    ana, _ = add_subscriber(engine, "ana@example.org", topics="science", lists="weekly")
    page = _client(weekly_settings).get(f"/preferences/{_token(weekly_settings, ana.id)}")
    assert page.status_code == 200
    assert 'name="lists" value="weekly" checked' in page.text
    assert 'name="lists" value="daily">' in page.text  # offered, not ticked
    assert 'value="science" checked' in page.text and 'value="local">' in page.text
    assert "ana@example.org" not in page.text  # the page never shows whose it is
    assert '<meta name="robots" content="noindex">' in page.text
    assert _reader(weekly_settings, "ana@example.org") == ana


def test_a_forged_or_damaged_token_changes_nothing(weekly_settings):
    engine = open_store(weekly_settings)
    ana, _ = add_subscriber(engine, "ana@example.org")
    forged = make_token("another-key-that-is-long-enough-to-sign", ana.id, "unsubscribe")
    confirm_purpose = make_token(secret_key(weekly_settings)[0], ana.id, "confirm")
    client = _client(weekly_settings)
    for token in (forged, confirm_purpose, "garbage", _token(weekly_settings, ana.id)[:-3]):
        page = client.post(f"/preferences/{token}", data={"action": "unsubscribe"})
        assert page.status_code == 400 and "not valid" in page.text
    assert _reader(weekly_settings, "ana@example.org").status == "active"


def test_a_weekly_only_reader_gets_the_weekly_and_no_daily(weekly_settings):
    engine = open_store(weekly_settings)
    ana, _ = add_subscriber(engine, "ana@example.org")
    add_subscriber(engine, "bo@example.org")
    saved = _client(weekly_settings).post(
        f"/preferences/{_token(weekly_settings, ana.id)}",
        data={"lists": ["weekly"], "topics": ["science", "not-a-topic"], "pause": ""},
    )
    assert saved.status_code == 200 and "Saved." in saved.text
    ana = _reader(weekly_settings, "ana@example.org")
    assert ana.lists == ("weekly",) and ana.topics == ("science",)

    daily, weekly = cadences(weekly_settings)
    moment = datetime.now(UTC)
    first = run_digest(daily.settings, moment=moment)
    second = run_digest(weekly.settings, moment=moment)
    assert _received(weekly_settings, first.key) == ["bo@example.org"]
    assert _received(weekly_settings, second.key) == ["ana@example.org", "bo@example.org"]


def test_a_pause_skips_digests_until_it_ends(weekly_settings):
    engine = open_store(weekly_settings)
    ana, _ = add_subscriber(engine, "ana@example.org")
    add_subscriber(engine, "bo@example.org")
    client = _client(weekly_settings)
    token = _token(weekly_settings, ana.id)
    client.post(f"/preferences/{token}", data={"lists": ["daily", "weekly"], "pause": "2"})
    paused = _reader(weekly_settings, "ana@example.org").paused_until
    assert paused is not None
    assert timedelta(days=13) < paused - datetime.now(UTC) <= timedelta(days=14)
    page = client.get(f"/preferences/{token}")
    assert "Stay paused until" in page.text and "Resume now" in page.text

    today = datetime.now(UTC)
    assert _received(weekly_settings, run_digest(weekly_settings, moment=today).key) == [
        "bo@example.org"
    ]
    # Two weeks later the pause is over by itself.
    with store.transaction(engine) as conn:
        store.update_subscriber(conn, ana.id, paused_until=today - timedelta(seconds=1))
    later = run_digest(weekly_settings, moment=today + timedelta(days=15))
    assert _received(weekly_settings, later.key) == ["ana@example.org", "bo@example.org"]


def test_resume_now_ends_a_pause_and_keep_leaves_it(weekly_settings):
    engine = open_store(weekly_settings)
    ana, _ = add_subscriber(engine, "ana@example.org")
    client = _client(weekly_settings)
    token = _token(weekly_settings, ana.id)
    client.post(f"/preferences/{token}", data={"lists": ["daily"], "pause": "1"})
    until = _reader(weekly_settings, "ana@example.org").paused_until
    client.post(f"/preferences/{token}", data={"lists": ["daily"], "pause": "keep"})
    assert _reader(weekly_settings, "ana@example.org").paused_until == until
    client.post(f"/preferences/{token}", data={"lists": ["daily"], "pause": ""})
    assert _reader(weekly_settings, "ana@example.org").paused_until is None


def test_no_list_chosen_is_refused_with_a_sentence_and_changes_nothing(weekly_settings):
    engine = open_store(weekly_settings)
    ana, _ = add_subscriber(engine, "ana@example.org", topics="local")
    token = _token(weekly_settings, ana.id)
    client = _client(weekly_settings)
    page = client.post(f"/preferences/{token}", data={"topics": ["science"], "pause": ""})
    assert page.status_code == 400
    assert "Choose at least one list, or unsubscribe below." in page.text
    bad_pause = client.post(f"/preferences/{token}", data={"lists": ["daily"], "pause": "52"})
    assert bad_pause.status_code == 400
    assert _reader(weekly_settings, "ana@example.org") == ana


def test_with_only_the_daily_offered_the_list_choice_is_not_asked(settings):
    engine = open_store(settings)
    ana, _ = add_subscriber(engine, "ana@example.org", lists="weekly,daily")
    token = _token(settings, ana.id)
    client = _client(settings)
    assert 'name="lists"' not in client.get(f"/preferences/{token}").text
    saved = client.post(f"/preferences/{token}", data={"topics": ["local"], "pause": ""})
    assert saved.status_code == 200
    reader = _reader(settings, "ana@example.org")
    assert reader.topics == ("local",) and reader.lists == ("daily", "weekly")


def test_unsubscribe_from_the_page_and_the_page_afterwards(weekly_settings):
    engine = open_store(weekly_settings)
    ana, _ = add_subscriber(engine, "ana@example.org")
    token = _token(weekly_settings, ana.id)
    client = _client(weekly_settings)
    done = client.post(f"/preferences/{token}", data={"action": "unsubscribe"})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert _reader(weekly_settings, "ana@example.org").status == "unsubscribed"
    after = client.get(f"/preferences/{token}")
    assert "You are not subscribed" in after.text and "<form" not in after.text.split("<main")[1]
    # A stale tab cannot quietly subscribe them again.
    client.post(f"/preferences/{token}", data={"lists": ["daily"], "pause": ""})
    assert _reader(weekly_settings, "ana@example.org").status == "unsubscribed"


def test_a_form_posted_from_another_site_is_refused(weekly_settings):
    engine = open_store(weekly_settings)
    ana, _ = add_subscriber(engine, "ana@example.org")
    token = _token(weekly_settings, ana.id)
    other = _client(weekly_settings, origin="https://attacker.example")
    response = other.post(f"/preferences/{token}", data={"action": "unsubscribe"})
    assert response.status_code == 403
    assert _reader(weekly_settings, "ana@example.org").status == "active"
    # Without an Origin (an older browser), the signed token is what counts.
    plain = _client(weekly_settings, origin=None)
    assert plain.post(f"/preferences/{token}", data={"action": "unsubscribe"}).status_code == 200


def test_every_email_links_the_readers_own_preferences_page(weekly_settings):
    engine = open_store(weekly_settings)
    add_subscriber(engine, "ana@example.org")
    report = run_digest(weekly_settings)
    [path] = (weekly_settings.outbox_path / report.key.replace("/", "-")).glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    [url] = re.findall(r"Preferences: (\S+)", text)
    assert f'href="{url}"' in html
    assert url.startswith(f"{PUBLIC}/preferences/")
    page = _client(weekly_settings).get(url.removeprefix(PUBLIC))
    assert page.status_code == 200 and "Your Test Digest" in page.text
