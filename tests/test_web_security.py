"""Who may reach what on the web app: operator pages, Host, Origin, sign-in and sign-up."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import time

import httpx
import pytest
from itsdangerous import TimestampSigner
from starlette.testclient import TestClient

from digest import store
from digest.pipeline import open_store
from digest.settings import load_settings
from digest.subscribers import add_subscriber, purge_subscriber, remove_subscriber
from digest.web import create_app
from tests.conftest import write_config
from tests.mailservers import free_port

LOCAL = ("127.0.0.1", 50000)
HERE = "http://127.0.0.1:8000"
PUBLIC = "https://digest.example.org"


def _preview_client(settings, **kwargs):
    """This machine's browser under `digest preview`."""
    return TestClient(
        create_app(settings, local_operator=True), base_url=HERE, client=LOCAL, **kwargs
    )


def test_serve_never_opens_operator_pages_without_a_password(settings):
    # `digest serve` behind a proxy: every visitor arrives from 127.0.0.1.
    proxied = TestClient(create_app(settings), base_url=PUBLIC, client=LOCAL)
    page = proxied.get("/preview")
    assert page.status_code == 403 and "web.admin_password" in page.text
    assert proxied.get("/", follow_redirects=False).status_code == 200  # the home page


@pytest.mark.parametrize(
    ("client_host", "headers"),
    [
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}),  # a proxy on this machine
        ("127.0.0.1", {"Forwarded": "for=203.0.113.9"}),
        ("127.attacker.example", {}),  # not an address at all, though it starts with 127.
        ("203.0.113.9", {}),
    ],
)
def test_preview_answers_only_a_browser_on_this_machine(settings, client_host, headers):
    client = TestClient(
        create_app(settings, local_operator=True), base_url=HERE, client=(client_host, 4000)
    )
    assert client.get("/preview", headers=headers).status_code == 403
    assert _preview_client(settings).get("/preview").status_code == 200


def test_a_foreign_host_header_is_refused_everywhere(settings):
    client = TestClient(create_app(settings, local_operator=True), client=LOCAL)
    for path in ("/preview", "/archive", "/subscribe"):
        response = client.get(path, headers={"Host": "rebound.attacker.example:8000"})
        assert response.status_code == 400
        assert "web.base_url" in response.text
    assert client.get("/archive", headers={"Host": "digest.example.org"}).status_code == 200
    assert client.get("/archive", headers={"Host": "[::1]:8000"}).status_code == 200


def test_operator_posts_need_an_origin_of_this_site(settings):
    client = _preview_client(settings)
    assert client.post("/preview/collect", follow_redirects=False).status_code == 403
    cross = client.post(
        "/preview/collect", headers={"Origin": "https://evil.example"}, follow_redirects=False
    )
    assert cross.status_code == 403
    same = client.post("/preview/collect", headers={"Origin": HERE}, follow_redirects=False)
    assert same.status_code == 303 and "Collected" in same.headers["location"]
    # Public forms have no such rule: a mailbox provider's one-click POST has no Origin.
    assert client.post("/unsubscribe/x.y", content="List-Unsubscribe=One-Click").status_code == 400


@pytest.mark.both_stores
def test_failed_sign_ins_lock_the_client_out_on_every_web_host(tmp_path, monkeypatch, database_url):
    monkeypatch.setenv("DIGEST_WEB__ADMIN_PASSWORD", "correct horse battery")
    settings = load_settings(write_config(tmp_path, database_url=database_url))
    # Two web hosts behind one proxy, on one database, each with its own memory.
    hosts = [
        TestClient(create_app(settings), base_url=PUBLIC, client=("203.0.113.9", 1))
        for _ in range(2)
    ]
    wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:guess").decode()}
    right = {"Authorization": "Basic " + base64.b64encode(b"admin:correct horse battery").decode()}
    assert hosts[1].get("/preview", headers=right).status_code == 200
    codes = [hosts[n % 2].get("/preview", headers=wrong).status_code for n in range(10)]
    assert codes == [401] * 10  # five failures on each host
    for host in hosts:
        locked = host.get("/preview", headers=right)  # wait, even with the right password
        assert locked.status_code == 429 and locked.headers["retry-after"] == "900"
    assert hosts[0].get("/preview").status_code == 429  # no password: still locked out
    other = TestClient(create_app(settings), base_url=PUBLIC, client=("203.0.113.10", 1))
    assert other.get("/preview", headers=right).status_code == 200
    # A visit without credentials (the browser's first request) is no failed sign-in.
    assert [other.get("/preview").status_code for _ in range(12)] == [401] * 12


def test_an_empty_admin_password_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGEST_WEB__ADMIN_PASSWORD", "")
    with pytest.raises(Exception, match=r"web.admin_password: is empty"):
        load_settings(write_config(tmp_path))


# -- sign-up -----------------------------------------------------------------------------


def _confirm_link(settings, address: str) -> str:
    [message] = [
        m
        for m in (
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in settings.outbox_path.glob("confirm-*/*.eml")
        )
        if str(m["To"]).endswith(f"<{address}>") or str(m["To"]) == address
    ]
    found = re.search(
        r"https://digest\.example\.org(/confirm/\S+)", message.get_body(("plain",)).get_content()
    )
    assert found is not None
    return found.group(1)


def _status(settings, address: str) -> str | None:
    with store.transaction(open_store(settings)) as conn:
        found = store.find_subscriber(conn, address)
        return None if found is None else found.status


def test_an_international_address_signs_up_without_an_error(settings):
    client = TestClient(create_app(settings), base_url=PUBLIC, client=("198.51.100.1", 1))
    response = client.post("/subscribe", data={"email": "ü@example.org", "name": "Üwe"})
    assert response.status_code == 200 and "Check your inbox" in response.text
    assert _status(settings, "ü@example.org") == "pending"
    assert client.get(_confirm_link(settings, "ü@example.org")).status_code == 200
    assert _status(settings, "ü@example.org") == "active"


def test_the_answer_is_the_same_when_the_mail_server_is_down(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGEST_DELIVERY__BACKEND", "smtp")
    monkeypatch.setenv("DIGEST_DELIVERY__SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DIGEST_DELIVERY__SMTP_PORT", str(free_port()))  # nobody listens
    monkeypatch.setenv("DIGEST_DELIVERY__SMTP_SECURITY", "none")
    monkeypatch.setenv("DIGEST_DELIVERY__TEST_MODE", "true")
    settings = load_settings(write_config(tmp_path))
    add_subscriber(open_store(settings), "known@example.org")
    client = TestClient(
        create_app(settings),
        base_url=PUBLIC,
        client=("198.51.100.2", 1),
        raise_server_exceptions=True,
    )
    new = client.post("/subscribe", data={"email": "new@example.org"})
    known = client.post("/subscribe", data={"email": "known@example.org"})
    assert new.status_code == known.status_code == 200
    assert new.text.replace("new@", "X@") == known.text.replace("known@", "X@")


def _old_token(monkeypatch, seconds_ago: float) -> None:
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(
        TimestampSigner, "get_timestamp", lambda self: int(real(self) - seconds_ago)
    )


def test_a_confirmation_link_expires_after_a_week(settings, monkeypatch):
    client = TestClient(create_app(settings), base_url=PUBLIC, client=("198.51.100.3", 1))
    with monkeypatch.context() as m:
        _old_token(m, 8 * 86400)
        client.post("/subscribe", data={"email": "late@example.org"})
    assert client.get(_confirm_link(settings, "late@example.org")).status_code == 400
    assert _status(settings, "late@example.org") == "pending"


def test_an_old_confirmation_never_undoes_an_unsubscribe_or_a_purge(settings):
    client = TestClient(create_app(settings), base_url=PUBLIC, client=("198.51.100.4", 1))
    engine = open_store(settings)
    for address in ("left@example.org", "gone@example.org"):
        client.post("/subscribe", data={"email": address})
        link = _confirm_link(settings, address)
        assert client.get(link).status_code == 200
        time.sleep(1.1)  # token times have whole seconds
        if address.startswith("left"):
            remove_subscriber(engine, address)
        else:
            purge_subscriber(engine, address)
        assert client.get(link).status_code == 400
    assert _status(settings, "left@example.org") == "unsubscribed"
    with store.transaction(engine) as conn:
        assert {s.status for s in store.iter_subscribers(conn)} == {"unsubscribed"}


# -- real processes ----------------------------------------------------------------------


def test_real_serve_and_preview_processes_guard_the_operator_pages(server, preview_server):
    assert httpx.get(f"{server}/preview").status_code == 403
    assert httpx.get(f"{server}/archive").status_code == 200
    assert httpx.get(f"{preview_server}/preview").status_code == 200
    proxied = httpx.get(f"{preview_server}/preview", headers={"X-Forwarded-For": "1.2.3.4"})
    assert proxied.status_code == 403
    rebound = httpx.get(f"{preview_server}/preview", headers={"Host": "attacker.example"})
    assert rebound.status_code == 400
    assert httpx.post(f"{preview_server}/preview/collect").status_code == 403
    same_site = httpx.post(f"{preview_server}/preview/collect", headers={"Origin": preview_server})
    assert same_site.status_code == 303


def test_the_sign_up_limit_is_shared_by_every_web_host(tmp_path):
    # Two web hosts on one database: a visitor cannot double the limit by switching host.
    config = write_config(tmp_path, "")
    config.write_text(config.read_text().replace("[web]\n", "[web]\nsignups_per_hour = 2\n"))
    settings = load_settings(config)
    hosts = [
        TestClient(create_app(settings), base_url=PUBLIC, client=("198.51.100.77", 1))
        for _ in range(2)
    ]
    codes = [
        hosts[n % 2].post("/subscribe", data={"email": f"v{n}@example.org"}).status_code
        for n in range(3)
    ]
    assert codes == [200, 200, 429]
    other = TestClient(create_app(settings), base_url=PUBLIC, client=("198.51.100.78", 1))
    assert other.post("/subscribe", data={"email": "w@example.org"}).status_code == 200
