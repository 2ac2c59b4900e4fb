"""One-click unsubscribe against a real `digest serve` process, as a mailbox provider does it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from digest.subscribers import make_token


def test_one_click_post_to_a_real_server_stops_the_next_digest(cli, server: str, tmp_path: Path):
    assert cli("subscribers", "add", "ana@example.org").returncode == 0
    assert cli("subscribers", "add", "bo@example.org").returncode == 0
    people = json.loads(cli("subscribers", "list", "--format", "json").stdout)
    ana = next(p for p in people if p["email"] == "ana@example.org")
    # The running server made the signing key on its first start; links are signed with it.
    key = (tmp_path / "var" / "secret_key").read_text().strip()
    path = f"/unsubscribe/{make_token(key, ana['id'], 'unsubscribe')}"

    assert httpx.get(server + path).status_code == 200  # a link scanner's GET changes nothing
    assert "active" in cli("subscribers", "show", "ana@example.org").stdout

    # RFC 8058: a POST with exactly this body, no cookies, no login.
    response = httpx.post(
        server + path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "unsubscribed" in cli("subscribers", "show", "ana@example.org").stdout

    assert cli("run").returncode == 0
    written = sorted(p.name for p in (tmp_path / "var" / "outbox").rglob("*.eml"))
    assert written == ["bo@example.org.eml"]

    forged = httpx.post(server + path[:-3] + "abc", content=b"List-Unsubscribe=One-Click")
    assert forged.status_code == 400
