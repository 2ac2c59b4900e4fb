"""Reading bounces: `digest bounces` on a mailbox of N reports, against bare IMAP.

A Dovecot of its own (tests/imapserver.py) holds N Postfix reports for N subscribers of
one digest (SQLite). Printed, each the median of several runs: the whole
`process_bounces` (fetch, detect, record, move), the same fetch and move over IMAP with
nothing read or recorded (the reference: what the server and the protocol cost), their
ratio, and `read_bounce` alone per message.

    .venv/bin/python benchmarks/bounces.py [N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest import store  # noqa: E402
from digest.bounces import process_bounces  # noqa: E402
from digest.mail.dsn import read_bounce  # noqa: E402
from digest.mail.imap import BounceMailbox  # noqa: E402
from digest.settings import load_settings  # noqa: E402
from tests import dsn_samples  # noqa: E402
from tests.imapserver import ImapServer, dovecot  # noqa: E402

RUNS = 3


def fill(server: ImapServer, reports: list[bytes]) -> None:
    imap = server.connect()
    for report in reports:
        imap.append("INBOX", "", None, report)
    imap.logout()


def main(count: int) -> None:
    with dovecot() as server, tempfile.TemporaryDirectory() as folder:
        bounces = {
            "host": "127.0.0.1",
            "port": server.port,
            "security": "none",
            "username": server.user,
            "password": server.password,
        }
        settings = load_settings(
            Path("/dev/null"), data_dir=Path(folder), secret_key="k" * 32, bounces=bounces
        )
        reports = []
        whole, bare = [], []
        for run in range(RUNS):
            engine = store.connect(f"sqlite:///{folder}/run{run}.db")
            with store.transaction(engine) as conn:
                people = [f"reader{i}@example.com" for i in range(count)]
                store.insert_subscribers(
                    conn,
                    [{"email": e, "name": None, "topics": [], "status": "active"} for e in people],
                )
                digest_id = store.create_digest(
                    conn,
                    key="daily/2026-12-01",
                    list_name="daily",
                    day=date(2026, 12, 1),
                    subject="s",
                    html="h",
                    text="t",
                    items=[],
                )
                query = sa.select(store.subscribers.c.email, store.subscribers.c.id)
                ids = {row.email: row.id for row in conn.execute(query)}
                conn.execute(
                    store.deliveries.update()
                    .where(store.deliveries.c.digest_id == digest_id)
                    .where(store.deliveries.c.subscriber_id == sa.bindparam("sid"))
                    .values(status="sent", message_id=sa.bindparam("mid")),
                    [{"sid": i, "mid": f"<m.{i}@x>"} for i in ids.values()],
                )
            reports = [
                dsn_samples.postfix_hard(e, f"<m.{ids[e]}@x>", f"<r{run}.{i}@mx>")
                for i, e in enumerate(people)
            ]
            fill(server, reports)
            started = time.perf_counter()
            report = process_bounces(settings, engine)
            whole.append(time.perf_counter() - started)
            assert report.hard == count, report
            assert report.moved == count, report
            engine.dispose()

            # The reference: the same messages fetched and moved back, nothing else.
            assert settings.bounces is not None
            back = settings.bounces.model_copy(
                update={"folder": "Processed", "processed_folder": "INBOX"}
            )
            started = time.perf_counter()
            with BounceMailbox(back) as mailbox:
                for uid in mailbox.uids():
                    mailbox.fetch(uid)
                    mailbox.move(uid)
            bare.append(time.perf_counter() - started)
            # Empty INBOX again for the next run.
            with BounceMailbox(settings.bounces) as mailbox:
                for uid in mailbox.uids():
                    mailbox.move(uid)

        started = time.perf_counter()
        for data in reports:
            read_bounce(data)
        per_read = (time.perf_counter() - started) / len(reports)

    w, b = statistics.median(whole), statistics.median(bare)
    print(f"{count} reports, median of {RUNS} runs")
    print(f"digest bounces:     {count / w:8,.0f} reports/s ({w:.2f} s)")
    print(f"IMAP fetch + move:  {count / b:8,.0f} reports/s ({b:.2f} s)")
    print(f"ratio:              {b / w:.2f}×")
    print(f"read_bounce alone:  {per_read * 1e6:8,.0f} µs per report")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
