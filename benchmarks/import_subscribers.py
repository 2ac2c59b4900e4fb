"""Subscriber CSV import: rows per second for 100,000 rows into a fresh SQLite file.

Prints the median of three imports (fresh database each), a re-import of the same file
(everything unchanged), and, as the reference in the same script, the time the csv module
alone takes to read the file. Target: 100,000 rows in under 10 s.

    .venv/bin/python benchmarks/import_subscribers.py [ROWS]
"""

from __future__ import annotations

import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

from digest import store
from digest.subscribers import import_csv


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "topics", "status"])
        for n in range(rows):
            topics = "local,science" if n % 3 == 0 else ""
            writer.writerow([f"reader{n}@example{n % 50}.org", f"Reader Nº{n}", topics, "active"])


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = folder / "people.csv"
        write_csv(source, rows)
        start = time.perf_counter()
        for _ in range(3):
            with source.open(newline="", encoding="utf-8") as handle:
                sum(1 for _ in csv.reader(handle))
        reference = (time.perf_counter() - start) / 3
        fresh, again = [], []
        for run in range(3):
            engine = store.connect(f"sqlite:///{folder / f'run{run}.db'}")
            start = time.perf_counter()
            report = import_csv(engine, source)
            fresh.append(time.perf_counter() - start)
            assert report.added == rows, report
            start = time.perf_counter()
            report = import_csv(engine, source)
            again.append(time.perf_counter() - start)
            assert report.unchanged == rows, report
            engine.dispose()
    first, second = statistics.median(fresh), statistics.median(again)
    print(f"rows: {rows:,}, runs: 3 (median)")
    print(f"import into an empty list: {first:6.2f} s  ({rows / first:,.0f} rows/s)")
    print(f"re-import, all unchanged:  {second:6.2f} s  ({rows / second:,.0f} rows/s)")
    ratio = first / reference
    print(f"csv module alone (reference): {reference:.3f} s; import/reference = {ratio:.0f}x")
    print("target: 100,000 rows in under 10 s")


if __name__ == "__main__":
    main()
