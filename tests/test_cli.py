"""End-to-end tests through the real `digest` entry point."""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import re
from pathlib import Path

import pytest

from tests.conftest import SAMPLES


def _messages(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "var" / "outbox").rglob("*.eml"))


def test_run_twice_writes_each_active_subscriber_once(cli_process, tmp_path):
    # The installed command in its own process, as a user runs it.
    cli = cli_process
    assert cli("subscribers", "import", str(SAMPLES / "subscribers.csv")).returncode == 0
    pending = cli("subscribers", "add", "later@example.com", "--status", "pending")
    assert pending.returncode == 0

    first = cli("run")
    assert first.returncode == 0, first.stderr
    files = _messages(tmp_path)
    assert [f.name for f in files] == [
        "ana.lindgren@example.org.eml",
        "jose.nunez@example.com.eml",
        "zoe.park@example.org.eml",
    ]  # three active subscribers; the pending one gets nothing
    assert re.search(r"Messages written now\s*│\s*3", first.stdout)
    assert "digest preview" in first.stdout

    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message.get_content_type() == "multipart/alternative"
        parts = [part.get_content_type() for part in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        assert message["To"].addresses[0].addr_spec == path.stem
        # The subject is the lead story's headline, which opens the email too.
        html = message.get_body(("html",)).get_content()
        assert message["Subject"] and f">{message['Subject']}<" in html
        assert "<html" in message.get_body(("html",)).get_content()

    stamps = [f.stat().st_mtime_ns for f in files]
    second = cli("run")
    assert second.returncode == 0, second.stderr
    assert re.search(r"Messages written now\s*│\s*0", second.stdout)
    assert "already delivered" in second.stdout
    assert [f.stat().st_mtime_ns for f in _messages(tmp_path)] == stamps


def _expected_shape(path: Path) -> dict[str, object]:
    """Read the bundled sample's documented shape independently of the cleaner.

    Line 1 is the headline; a "By ..." line is the byline; the block after the byline is
    the lead; captions are the lines printed twice in a row; chrome is every line after the
    last paragraph of a dozen words or more that is not a caption.
    """
    blocks = [b.strip() for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    lines = [line for block in blocks for line in block.splitlines()]
    byline_at = next(i for i, line in enumerate(lines) if line.startswith("By "))
    captions = {a for a, b in itertools.pairwise(lines) if a == b}
    last_sentence = max(
        i for i, line in enumerate(lines) if len(line.split()) >= 12 and line not in captions
    )
    return {
        "title": lines[0],
        "byline": lines[byline_at].removeprefix("By "),
        "lead": lines[byline_at + 1],
        "captions": captions,
        "chrome": set(lines[last_sentence + 1 :]),
    }


@pytest.mark.parametrize(
    "sample", sorted((SAMPLES / "articles").glob("*.txt")), ids=lambda p: p.stem
)
def test_summarize_json_on_each_bundled_sample(cli, sample):
    result = cli("summarize", str(sample), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    shape = _expected_shape(sample)
    assert set(data) == {"title", "subtitle", "byline", "lead", "quotes", "paragraphs"}
    assert data["title"] == shape["title"]
    assert data["byline"] == shape["byline"]
    assert data["lead"] == shape["lead"] == data["paragraphs"][0]
    assert shape["captions"] and shape["chrome"]
    leaked = set(data["paragraphs"]) & (shape["captions"] | shape["chrome"])  # type: ignore[operator]
    assert not leaked
    assert data["quotes"] and all(q["speaker"] for q in data["quotes"])
    assert all(q["text"] in " ".join(data["paragraphs"]) for q in data["quotes"])


def test_summarize_reads_standard_input(cli):
    text = (SAMPLES / "articles" / "01-harbor-ferry.txt").read_text(encoding="utf-8")
    result = cli("summarize", "-", "--json", stdin=text)
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"].startswith("Portvale")


def test_user_errors_are_one_sentence_without_traceback(cli_process, tmp_path):
    # The installed command in its own process, as a user runs it.
    cli = cli_process
    missing = cli("summarize", str(tmp_path / "nope.txt"))
    assert missing.returncode == 1
    assert "Cannot read" in missing.stderr and "Traceback" not in missing.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text('[digest]\ntimezone = "Nowhere/Land"\n')
    result = cli("--config", str(bad), "run", config=False)
    assert result.returncode == 1
    assert "digest.timezone" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _commands(help_text: str) -> list[str]:
    section = help_text.split("Commands")[1]
    return re.findall(r"^[│| ]\s+([a-z][a-z-]+)\s{2,}", section, re.MULTILINE)


def test_every_command_has_help_with_an_example(cli):
    top = cli("--help")
    groups = {"": _commands(top.stdout)}
    assert {"run", "collect", "summarize", "preview", "subscribers"} <= set(groups[""])
    groups["subscribers"] = _commands(cli("subscribers", "--help").stdout)
    assert {"add", "list", "remove", "import"} <= set(groups["subscribers"])
    for group, names in groups.items():
        for name in names:
            if name == "subscribers" and not group:
                continue
            args = [group, name, "--help"] if group else [name, "--help"]
            result = cli(*args)
            assert result.returncode == 0
            assert "Example: digest " in result.stdout, f"{group} {name} has no example"


ARTICLE_PAGE = """<!DOCTYPE html><html><head><title>Harbor plan approved | Example News</title>
<meta name="author" content="Jane Doe"></head><body>
<nav><a href="/">Home</a> <a href="/news">News</a> <a href="/sport">Sport</a></nav>
<article><h1>Harbor plan approved</h1>
<p>The Portvale council approved the harbor plan on Monday after a long debate about costs,
the ferry timetable and the fishing fleet's moorings.</p>
<p>"We did it. It took three years, but the harbor will finally pay its own way," said Mayor
Ann Lee after the vote.</p>
<p>The vote was 7-2, with two members saying the cost was too high for the city this year.</p>
</article>
<aside><h3>Related</h3><ul><li><a href="/x">Bakers pool money for shared ovens</a></li></ul></aside>
<footer>Copyright 2026 Example News. All rights reserved.</footer></body></html>"""


def test_summarize_an_article_url_from_a_local_server(cli):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = ARTICLE_PAGE.encode()
            self.send_response(200 if self.path == "/harbor" else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = cli("summarize", f"{url}/harbor", "--json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["title"] == "Harbor plan approved"
        assert data["byline"] == "Jane Doe"
        assert data["lead"].startswith("The Portvale council approved the harbor plan")
        assert data["quotes"][0]["speaker"] == "Mayor Ann Lee"
        assert not any("Related" in p or "Copyright" in p for p in data["paragraphs"])
        missing = cli("summarize", f"{url}/gone")
        assert missing.returncode == 1 and "404" in missing.stderr
        assert "Traceback" not in missing.stderr
    finally:
        server.shutdown()


def test_run_without_subscribers_composes_nothing_and_says_what_to_do(cli, tmp_path):
    first = cli("run")
    assert first.returncode == 0
    assert "No active subscribers" in first.stdout and "subscribers import" in first.stdout
    # The articles are still there for the first real digest.
    assert cli("subscribers", "import", str(SAMPLES / "subscribers.csv")).returncode == 0
    second = cli("run")
    assert re.search(r"Messages written now\s*│\s*3", second.stdout)
    assert re.search(r"Articles in digest\s*│\s*10", second.stdout)


def test_summarize_many_paths_prints_json_lines_in_order(cli):
    samples = sorted((SAMPLES / "articles").glob("*.txt"))[:3]
    result = cli("summarize", *map(str, samples), "--json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(samples)
    titles = [json.loads(line)["title"] for line in lines]
    assert titles == [_expected_shape(sample)["title"] for sample in samples]


def test_summarize_many_paths_reports_an_unreadable_one_and_goes_on(cli, tmp_path):
    samples = sorted((SAMPLES / "articles").glob("*.txt"))[:2]
    missing = str(tmp_path / "nope.txt")
    result = cli("summarize", str(samples[0]), missing, str(samples[1]), "--json")
    assert result.returncode == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(samples[0]), missing, str(samples[1])]
    assert "Cannot read" in records[1]["error"] and "title" not in records[1]
    assert [r["title"] for r in (records[0], records[2])] == [
        _expected_shape(sample)["title"] for sample in samples
    ]
    errors = result.stderr.strip().splitlines()
    assert missing in errors[0] and "1 of 3 articles" in errors[-1]
    assert "Traceback" not in result.stderr

    # Without --json the other articles are printed and the failure still ends in exit 1.
    plain = cli("summarize", missing, str(samples[0]))
    assert plain.returncode == 1
    assert _expected_shape(samples[0])["title"] in plain.stdout
