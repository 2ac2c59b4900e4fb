"""`digest subscribers ...` through the real entry point."""

from __future__ import annotations

import csv
import json


def _csv(tmp_path, text: str):
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_import_lists_bad_rows_by_line_and_imports_the_rest(cli, tmp_path):
    path = _csv(
        tmp_path,
        "Email,Name,Topics\nana@example.org,Ana,science\nnot-an-address,Bo,\n"
        "cy@example.com,Cy,local\n",
    )
    result = cli("subscribers", "import", str(path))
    assert result.returncode == 0
    assert "line 3:" in result.stderr and "not a valid email" in result.stderr
    assert "2 added" in result.stdout and "1 bad rows" in result.stdout
    strict = cli("subscribers", "import", str(path), "--strict")
    assert strict.returncode == 1 and "nothing imported" in strict.stderr
    again = cli("subscribers", "import", str(path))
    assert "0 added, 0 updated, 2 unchanged" in again.stdout


def test_list_filters_show_export_and_stats(cli, tmp_path):
    path = _csv(tmp_path, "email,name,topics\nana@example.org,Ana,science\ncy@example.com,Cy,\n")
    cli("subscribers", "import", str(path))
    listed = cli("subscribers", "list", "--topic", "science", "--format", "json")
    science = json.loads(listed.stdout)
    assert [p["email"] for p in science] == ["ana@example.org"]
    as_csv = list(csv.reader(cli("subscribers", "list", "--format", "csv").stdout.splitlines()))
    assert as_csv[0] == ["email", "name", "topics", "status", "lists"] and len(as_csv) == 3

    shown = cli("subscribers", "show", "ANA@example.org")
    assert shown.returncode == 0 and "science" in shown.stdout and "active" in shown.stdout
    missing = cli("subscribers", "show", "nobody@example.org")
    assert missing.returncode == 1 and "No subscriber nobody@example.org" in missing.stderr

    out = tmp_path / "export.csv"
    exported = cli("subscribers", "export", str(out))
    assert exported.returncode == 0 and "Wrote 2 subscribers" in exported.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert {r["email"] for r in rows} == {"ana@example.org", "cy@example.com"}
    # What export writes, import reads back unchanged.
    assert "2 unchanged" in cli("subscribers", "import", str(out)).stdout

    stats = cli("subscribers", "stats")
    assert "2 subscribers" in stats.stdout and "science" in stats.stdout


def test_remove_and_purge(cli, tmp_path):
    cli("subscribers", "add", "ana@example.org", "--name", "Ana Lindgren")
    cli("subscribers", "add", "bo@example.org", "--name", "Bo")
    assert "now unsubscribed" in cli("subscribers", "remove", "ana@example.org").stdout
    purged = cli("subscribers", "remove", "bo@example.org", "--purge")
    assert purged.returncode == 0 and "erased" in purged.stdout
    listing = cli("subscribers", "list", "--format", "json").stdout
    assert "bo@example.org" not in listing and "Bo" not in listing
    people = {p["email"]: p for p in json.loads(listing)}
    assert people["ana@example.org"]["status"] == "unsubscribed"
    assert cli("subscribers", "remove", "zed@example.org").returncode == 1


def test_list_membership_is_shown_set_and_carried_by_export_and_import(cli, tmp_path):
    added = cli("subscribers", "add", "ana@example.org", "--lists", "weekly")
    assert added.returncode == 0 and "lists: weekly" in added.stdout
    shown = cli("subscribers", "show", "ana@example.org")
    assert "Lists" in shown.stdout and "weekly" in shown.stdout and "daily" not in shown.stdout
    bad = cli("subscribers", "add", "ana@example.org", "--lists", "monthly")
    assert bad.returncode == 1
    assert "Unknown list 'monthly'; use daily or weekly (or both)." in bad.stderr
    assert "Traceback" not in bad.stderr

    exported = tmp_path / "out.csv"
    cli("subscribers", "export", str(exported))
    rows = list(csv.DictReader(exported.open(encoding="utf-8")))
    assert [(r["email"], r["lists"]) for r in rows] == [("ana@example.org", "weekly")]

    # A file with a lists column: new people get theirs, a known one changes, a blank cell
    # means both lists for someone new and no change for someone known, a bad one is a bad row.
    path = _csv(
        tmp_path,
        "email,lists\nana@example.org,daily;weekly\nbo@example.org,weekly\n"
        "cy@example.org,\ndee@example.org,fortnightly\n",
    )
    imported = cli("subscribers", "import", str(path))
    assert "1 added" not in imported.stdout and "line 5:" in imported.stderr
    assert "Unknown list 'fortnightly'" in imported.stderr
    listed = json.loads(cli("subscribers", "list", "--format", "json").stdout)
    assert {p["email"]: p["lists"] for p in listed} == {
        "ana@example.org": ["daily", "weekly"],
        "bo@example.org": ["weekly"],
        "cy@example.org": ["daily", "weekly"],
    }
