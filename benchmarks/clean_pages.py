"""How much of the true article body the cleaner keeps, on real news pages.

The pages are the 90 development pages in ../shared/corpus/pages (HTML plus the body a
person marked). Three ways to the body are scored with the benchmark's own measure
(4-token shingles, multiset precision and recall per page, means over pages, then F1):

- html: digest's page path (`extract_page`, what a `pages` source or a full-text fetch uses);
- text: the same page flattened to plain text by html-text with its layout kept, then
  digest's plain-text cleaner (`clean_text`), the shape scrapers hand over;
- trafilatura alone, the reference.

The pages are split by a hash of their key into a dev part (tune on it) and a held-back part
(do not look at its pages while tuning); figures are printed for both and for all.

    .venv/bin/python benchmarks/clean_pages.py [--pages DIR] [--worst N]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import html_text
import trafilatura

from digest.collect.pages import extract_page
from digest.collect.textclean import clean_text

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT.parent / "shared" / "corpus" / "pages"
_TOKEN = re.compile(r"\w+")


def part_of(key: str) -> str:
    """'held' for about a third of the pages, chosen by hash so the split never drifts."""
    digest = hashlib.sha256(f"clean-pages-split:{key}".encode()).digest()
    return "held" if digest[0] % 3 == 0 else "dev"


def shingles(text: str, n: int = 4) -> Counter[tuple[str, ...]]:
    tokens = _TOKEN.findall(text)
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def precision_recall(true: str, predicted: str) -> tuple[float, float]:
    """One page's shingle precision and recall; an empty side scores 0 against a full one."""
    want, got = shingles(true), shingles(predicted)
    hits = sum((want & got).values())
    got_total, want_total = sum(got.values()), sum(want.values())
    if not got_total and not want_total:
        return 1.0, 1.0
    precision = hits / got_total if got_total else 0.0
    recall = hits / want_total if want_total else 0.0
    return precision, recall


def digest_html(html: str, url: str) -> str:
    page = extract_page(html, url)
    return "\n".join(page.paragraphs) if page else ""


def digest_text(html: str, url: str) -> str:
    flat = html_text.extract_text(html, guess_layout=True)
    return "\n".join(clean_text(flat).paragraphs)


def trafilatura_alone(html: str, url: str) -> str:
    return trafilatura.extract(html, url=url) or ""


METHODS: dict[str, Callable[[str, str], str]] = {
    "text": digest_text,
    "html": digest_html,
    "trafilatura": trafilatura_alone,
}


def f1(scores: list[tuple[float, float]]) -> tuple[float, float, float]:
    if not scores:
        return 0.0, 0.0, 0.0
    p = statistics.mean(s[0] for s in scores)
    r = statistics.mean(s[1] for s in scores)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=Path, default=PAGES)
    parser.add_argument("--worst", type=int, default=0, help="list the N worst dev pages")
    args = parser.parse_args()
    truth = json.loads((args.pages / "ground-truth.json").read_text(encoding="utf-8"))
    scores: dict[str, dict[str, list[tuple[float, float]]]] = {
        m: {"dev": [], "held": []} for m in METHODS
    }
    worst: list[tuple[float, str, str]] = []
    for key in sorted(truth):
        raw = gzip.decompress((args.pages / "html" / f"{key}.html.gz").read_bytes())
        html = raw.decode("utf-8", errors="replace")
        body, url = truth[key]["articleBody"], truth[key]["url"]
        part = part_of(key)
        for name, method in METHODS.items():
            score = precision_recall(body, method(html, url))
            scores[name][part].append(score)
            if part == "dev" and name != "trafilatura":
                worst.append((min(score), name, f"{key[:12]} p={score[0]:.2f} r={score[1]:.2f}"))
    counts = {part: len(scores["text"][part]) for part in ("dev", "held")}
    print(f"pages: {sum(counts.values())} (dev {counts['dev']}, held back {counts['held']})")
    print(f"{'':14}{'dev P/R/F1':>22}{'held P/R/F1':>22}{'all P/R/F1':>22}")
    for name in METHODS:
        cells = []
        for part in ("dev", "held", "all"):
            values = (
                scores[name]["dev"] + scores[name]["held"] if part == "all" else scores[name][part]
            )
            p, r, score = f1(values)
            cells.append(f"{p:.3f}/{r:.3f}/{score:.3f}")
        label = {"text": "digest text", "html": "digest html"}.get(name, name)
        print(f"{label:14}" + "".join(f"{c:>22}" for c in cells))
    for _, name, line in sorted(worst)[: args.worst]:
        print(f"  worst dev {name:5} {line}")


if __name__ == "__main__":
    main()
