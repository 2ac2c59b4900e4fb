"""Subscriber CSV import: rows per second for 100,000 rows, on SQLite and on PostgreSQL.

For each store, prints the median of three imports (a fresh database each), a re-import of
the same file (everything unchanged) and a re-import where every row changes (a new name:
the update path); as the reference in the same script, the time the csv module alone takes
to read the file. PostgreSQL is $DIGEST_TEST_POSTGRES_URL, or a throwaway cluster started
as the tests start it. Target: 100,000 rows in under 10 s on both.

    .venv/bin/python benchmarks/import_subscribers.py [ROWS] [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from digest import store  # noqa: E402
from digest.subscribers import import_csv  # noqa: E402
from tests.services import postgres_server, scratch_database  # noqa: E402


def write_csv(path: Path, rows: int, name: str = "Reader") -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "topics", "status"])
        for n in range(rows):
            topics = "local,science" if n % 3 == 0 else ""
            writer.writerow([f"reader{n}@example{n % 50}.org", f"{name} Nº{n}", topics, "active"])


@contextlib.contextmanager
def fresh_database(kind: str, folder: Path, run: int, server: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / f'run{run}.db'}"
        return
    with scratch_database(server, f"import_bench_{os.getpid()}_{run}") as url:
        yield url


def measure(kind: str, rows: int, folder: Path, server: str) -> tuple[float, float, float]:
    source, renamed = folder / "people.csv", folder / "renamed.csv"
    fresh, again, changed = [], [], []
    for run in range(3):
        with fresh_database(kind, folder, run, server) as url:
            engine = store.connect(url)
            start = time.perf_counter()
            report = import_csv(engine, source)
            fresh.append(time.perf_counter() - start)
            assert report.added == rows, report
            start = time.perf_counter()
            report = import_csv(engine, source)
            again.append(time.perf_counter() - start)
            assert report.unchanged == rows, report
            start = time.perf_counter()
            report = import_csv(engine, renamed)
            changed.append(time.perf_counter() - start)
            assert report.updated == rows, report
            engine.dispose()
    return statistics.median(fresh), statistics.median(again), statistics.median(changed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", nargs="?", type=int, default=100_000)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args()
    rows, kinds = args.rows, args.store or ["sqlite", "postgresql"]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        write_csv(folder / "people.csv", rows)
        write_csv(folder / "renamed.csv", rows, name="Renamed")
        start = time.perf_counter()
        for _ in range(3):
            with (folder / "people.csv").open(newline="", encoding="utf-8") as handle:
                sum(1 for _ in csv.reader(handle))
        reference = (time.perf_counter() - start) / 3
        server = stack.enter_context(postgres_server()) if "postgresql" in kinds else ""
        print(f"rows: {rows:,}, runs: 3 (median); csv module alone: {reference:.3f} s")
        for kind in kinds:
            first, second, third = measure(kind, rows, folder, server)
            print(f"{kind}:")
            print(f"  import into an empty list: {first:6.2f} s  ({rows / first:,.0f} rows/s)")
            print(f"  re-import, all unchanged:  {second:6.2f} s  ({rows / second:,.0f} rows/s)")
            print(f"  re-import, all renamed:    {third:6.2f} s  ({rows / third:,.0f} rows/s)")
            print(f"  import/reference = {first / reference:.0f}x")
    print("target: 100,000 rows in under 10 s on both stores")


if __name__ == "__main__":
    main()
