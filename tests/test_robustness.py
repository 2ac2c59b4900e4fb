"""Careless operators and odd subscribers: one sentence and nothing lost, never a crash."""

from __future__ import annotations

import csv
import email
import email.policy
import multiprocessing
import sqlite3
import stat
import tomllib
from pathlib import Path

import pytest

from digest import store
from digest.errors import DigestError
from digest.pipeline import open_store, run_digest
from digest.settings import load_settings
from digest.subscribers import add_subscriber, export_csv, import_csv, secret_key
from tests.conftest import REPO, write_config
from tests.mailservers import smtp_server


def _ledger(settings) -> dict[str, tuple[str, str | None]]:
    with store.transaction(open_store(settings)) as conn:
        rows = conn.execute(
            store.deliveries.join(store.subscribers)
            .select()
            .with_only_columns(
                store.subscribers.c.email, store.deliveries.c.status, store.deliveries.c.error
            )
        )
        return {row.email: (row.status, row.error) for row in rows}


# -- one subscriber never stops the run ------------------------------------------------


def test_an_international_address_is_written_and_everyone_after_it_too(settings):
    engine = open_store(settings)
    add_subscriber(engine, "ann@example.org")
    add_subscriber(engine, "josé@example.org", name="Jose Ascii")
    add_subscriber(engine, "zoe@example.org")
    report = run_digest(settings)
    assert report.delivery is not None and (report.delivery.sent, report.delivery.failed) == (3, 0)
    assert {status for status, _ in _ledger(settings).values()} == {"sent"}
    [copy] = [p for p in settings.outbox_path.rglob("*.eml") if p.name.startswith("jos")]
    message = email.message_from_bytes(copy.read_bytes(), policy=email.policy.default)
    assert str(message["To"]) == "Jose Ascii <josé@example.org>"


def test_a_copy_that_cannot_be_made_fails_that_reader_only(settings):
    engine = open_store(settings)
    add_subscriber(engine, "ann@example.org")
    with store.transaction(engine) as conn:  # a row written by an older version, say
        store.insert_subscriber(conn, "bad@example.org", "Line\nBreak", (), "active")
    add_subscriber(engine, "zoe@example.org")
    report = run_digest(settings)
    assert report.delivery is not None and (report.delivery.sent, report.delivery.failed) == (2, 1)
    ledger = _ledger(settings)
    assert ledger["bad@example.org"][0] == "failed" and "line break" in ledger["bad@example.org"][1]
    again = run_digest(settings)  # nothing pending, nothing sent twice
    assert again.delivery is None or again.delivery.sent == 0


@pytest.mark.parametrize("smtputf8", [True, False])
def test_smtp_sends_utf8_addresses_only_where_the_server_takes_them(
    tmp_path, monkeypatch, smtputf8
):
    with smtp_server(smtputf8=smtputf8) as server:
        for name, value in {
            "BACKEND": "smtp",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(server.port),
            "SMTP_SECURITY": "none",
            "TEST_MODE": "true",
        }.items():
            monkeypatch.setenv(f"DIGEST_DELIVERY__{name}", value)
        settings = load_settings(write_config(tmp_path))
        engine = open_store(settings)
        for address in ("ann@example.org", "ü@example.org", "zoe@example.org"):
            add_subscriber(engine, address)
        report = run_digest(settings)
    assert report.delivery is not None
    ledger = _ledger(settings)
    assert ledger["ann@example.org"][0] == ledger["zoe@example.org"][0] == "sent"
    if smtputf8:
        assert ledger["ü@example.org"][0] == "sent"
        assert server.handler.counts()["ü@example.org"] == 1
    else:
        assert ledger["ü@example.org"] == (
            "failed",
            "the address needs SMTPUTF8, which the server does not offer",
        )


def test_an_address_too_long_for_a_file_name_is_still_written(settings):
    engine = open_store(settings)
    local = ".".join(["a" * 60] * 4)[:64]
    domain = ".".join(["b" * 60] * 3) + ".org"
    add_subscriber(engine, f"{local}@{domain}")
    report = run_digest(settings)
    assert report.delivery is not None and report.delivery.sent == 1
    [path] = settings.outbox_path.rglob("*.eml")
    assert len(path.name) < 160


# -- secrets -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "short-key"])
def test_an_empty_or_short_signing_key_stops_every_command(cli, key):
    result = cli("run", env={"DIGEST_SECRET_KEY": key})
    assert result.returncode == 1
    assert "secret_key: is empty or shorter than 32 bytes" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_an_empty_key_file_is_refused(settings):
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "secret_key").write_text("\n")
    with pytest.raises(DigestError, match="empty or shorter than 32 bytes"):
        secret_key(settings)


def _key_of(config: Path) -> str:
    return secret_key(load_settings(config))[0]


def _open_store(config: Path) -> str:
    open_store(load_settings(config))
    return "ok"


def _racer(work, config: Path, barrier, results) -> None:
    barrier.wait()
    try:
        results.put(work(config))
    except BaseException as exc:  # report it; never leave the test waiting
        results.put(f"error: {exc!r}")


def _race(tmp_path: Path, work, processes: int, trials: int) -> list[list[str]]:
    """Start `processes` processes at once on a fresh folder, `trials` times over."""
    context = multiprocessing.get_context("fork")
    answers = []
    for trial in range(trials):
        folder = tmp_path / str(trial)
        folder.mkdir()
        config = write_config(folder)
        barrier, results = context.Barrier(processes), context.Queue()
        workers = [
            context.Process(target=_racer, args=(work, config, barrier, results))
            for _ in range(processes)
        ]
        for worker in workers:
            worker.start()
        answers.append([results.get(timeout=60) for _ in workers])
        for worker in workers:
            worker.join()
    return answers


def test_processes_racing_on_a_fresh_folder_share_one_key(tmp_path):
    for keys in _race(tmp_path, _key_of, processes=4, trials=25):
        assert len(set(keys)) == 1 and len(keys[0]) >= 32, keys


def test_the_data_folder_is_private(settings):
    run_digest(settings)
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700


def test_secrets_in_the_config_file_are_refused(tmp_path):
    config = write_config(tmp_path, '\n[delivery]\nsmtp_password = "hunter2"\n')
    with pytest.raises(DigestError, match="DIGEST_DELIVERY__SMTP_PASSWORD"):
        load_settings(config)


# -- one sentence instead of a traceback ---------------------------------------------------


def test_two_first_runs_on_a_fresh_folder_both_open_the_store(tmp_path):
    for outcomes in _race(tmp_path, _open_store, processes=3, trials=10):
        assert outcomes == ["ok"] * 3


def _one_sentence(cli, *args: str, config: bool = True, env: dict[str, str] | None = None) -> str:
    result = cli(*args, config=config, env=env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    return (result.stderr + result.stdout).strip()


def test_operator_mistakes_end_in_one_sentence(cli, tmp_path):
    assert "is a folder" in _one_sentence(cli, "--config", str(tmp_path), "sources", config=False)
    latin = tmp_path / "latin1.toml"
    latin.write_bytes('[sender]\nname = "Caf\xe9"\n'.encode("latin-1"))
    assert "not UTF-8" in _one_sentence(cli, "--config", str(latin), "sources", config=False)

    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "digest.db").write_bytes(b"this is not a database" * 100)
    message = _one_sentence(cli, "run", env={"DIGEST_DATA_DIR": str(junk)})
    assert "cannot be read" in message

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "digest.db") as other:  # another program's database
        other.execute("create table notes(x)")
    assert "not digest's" in _one_sentence(cli, "run", env={"DIGEST_DATA_DIR": str(foreign)})

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert "data folder" in _one_sentence(cli, "run", env={"DIGEST_DATA_DIR": str(a_file / "var")})

    assert "sender.address" in _one_sentence(
        cli, "run", env={"DIGEST_SENDER__ADDRESS": "not an address"}
    )

    broken = tmp_path / "templates" / "email"
    broken.mkdir(parents=True)
    (broken / "digest.html.j2").write_text("<p>{% if %}</p>")
    (tmp_path / "subs.csv").write_text("email\nann@example.org\n")
    assert cli("subscribers", "import", str(tmp_path / "subs.csv")).returncode == 0
    message = _one_sentence(cli, "run", env={"DIGEST_TEMPLATES_DIR": str(tmp_path / "templates")})
    assert "digest.html.j2, line 1" in message


def test_a_huge_csv_field_is_named_not_raised(settings, tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("email,name\nann@example.org," + "x" * 200_000 + "\n")
    with pytest.raises(DigestError, match="not a CSV digest can read"):
        import_csv(open_store(settings), path)


def test_a_semicolon_separated_csv_is_read(settings, tmp_path):
    path = tmp_path / "excel-de.csv"
    path.write_text(
        "E-Mail;Name;Topics\nann@example.org;Ann, Jr.;local,science\nbo@example.org;Bo;\n"
    )
    report = import_csv(open_store(settings), path)
    assert (report.added, report.errors) == (2, [])
    with store.transaction(open_store(settings)) as conn:
        ann = store.find_subscriber(conn, "ann@example.org")
    assert ann is not None and ann.name == "Ann, Jr." and ann.topics == ("local", "science")


def test_export_disarms_formulas_and_import_reads_them_back(settings, tmp_path):
    engine = open_store(settings)
    add_subscriber(engine, "ann@example.org", name='=HYPERLINK("https://evil.example","Click")')
    add_subscriber(engine, "bo@example.org", name="@SUM(A1)")
    path = tmp_path / "out.csv"
    with store.transaction(engine) as conn, path.open("w", newline="") as out:
        export_csv(store.iter_subscribers(conn), out)
    cells = [cell for row in csv.reader(path.open()) for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert '\'=HYPERLINK("https://evil.example","Click")' in cells

    (tmp_path / "copy").mkdir()
    copy = load_settings(write_config(tmp_path / "copy"))
    report = import_csv(open_store(copy), path)
    assert report.added == 2
    with store.transaction(open_store(copy)) as conn:
        ann = store.find_subscriber(conn, "ann@example.org")
    assert ann is not None and ann.name == '=HYPERLINK("https://evil.example","Click")'


def test_lxml_html_clean_is_a_declared_dependency():
    # trafilatura imports lxml.html.clean, which lxml 5.2 moved out into its own package.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert any(r.startswith("lxml_html_clean") for r in project["dependencies"])


def test_a_strict_import_with_a_bad_row_late_in_a_long_file_imports_nothing(settings, tmp_path):
    # The file is read a chunk at a time: 1,200 good rows are written before the bad one
    # is met, and the strict import must roll them back.
    path = tmp_path / "long.csv"
    lines = ["email,name"] + [f"r{n}@example.org,Reader {n}" for n in range(1200)]
    path.write_text("\n".join([*lines, "not-an-address,Bad"]) + "\n")
    report = import_csv(open_store(settings), path, strict=True)
    assert [line for line, _ in report.errors] == [1202] and report.added == 0
    with store.transaction(open_store(settings)) as conn:
        assert store.subscriber_counts(conn) == {}
    relaxed = import_csv(open_store(settings), path)
    assert relaxed.added == 1200 and len(relaxed.errors) == 1
