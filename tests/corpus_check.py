"""Parse every feed of a real-world corpus through digest's feed parser; never crash.

    .venv/bin/python tests/corpus_check.py [FOLDER]   (default: ../shared/corpus/feeds)

Prints how many files yielded entries, how many were ill-formed (bozo, parsed anyway),
how many were cleanly rejected as not a feed, and every exception with its file. Exits
non-zero only when parsing raised an exception: a rejected file is the expected answer.
Not collected by pytest (the name does not start with test_); .ci/run calls it when the
corpus folder exists.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.collect.dedupe import fingerprint  # noqa: E402  (after the path is set)
from digest.collect.feeds import parse_feed_document  # noqa: E402
from digest.errors import DigestError  # noqa: E402

SUFFIXES = {".xml", ".json", ".rdf", ".rss", ".atom"}


def check(folder: Path) -> int:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    with_entries = entries = bozo = rejected = 0
    failures: list[tuple[Path, str]] = []
    for path in files:
        try:
            feed = parse_feed_document(path.read_bytes())
            # Everything collection does with an entry after parsing, short of storing it.
            for entry in feed.entries:
                article = entry.article("corpus")
                fingerprint(article.title, article.paragraphs)
        except DigestError:
            rejected += 1
            continue
        except Exception:
            failures.append((path, traceback.format_exc(limit=-3)))
            continue
        entries += len(feed.entries)
        with_entries += bool(feed.entries)
        bozo += feed.problem is not None
    print(f"corpus: {folder}")
    print(
        f"files: {len(files)}  with entries: {with_entries}  entries: {entries}  "
        f"bozo (kept what parsed): {bozo}  rejected as not a feed: {rejected}  "
        f"exceptions: {len(failures)}"
    )
    for path, trace in failures:
        print(f"\nEXCEPTION in {path.relative_to(folder)}:\n{trace}")
    return 1 if failures else 0


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared/corpus/feeds"
    if not folder.is_dir():
        print(f"No corpus at {folder}; pass the folder of feeds as the first argument.")
        return 2
    return check(folder)


if __name__ == "__main__":
    raise SystemExit(main())
