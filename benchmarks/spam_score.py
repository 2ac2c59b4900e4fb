"""SpamAssassin's score for the digest built from the bundled samples (local rules only).

SpamAssassin is not a dependency: when `spamassassin` is installed (Debian package
`spamassassin`), this builds today's digest from config/samples in a temporary folder,
as `make run` does, and runs `spamassassin -L -t` (local tests, no network) on the
message a subscriber gets. It prints the score and the rules that fired. Target: 0.0.

    .venv/bin/python benchmarks/spam_score.py
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def score(message: bytes) -> tuple[str, str]:
    """(score, rules that fired) from spamassassin's report header."""
    result = subprocess.run(
        ["spamassassin", "-L", "-t"], input=message, capture_output=True, check=False
    )
    status = re.search(
        rb"X-Spam-Status: \w+, score=(-?[\d.]+).*?tests=(.*?)(?:autolearn|version)",
        result.stdout,
        re.S,
    )
    if status is None:
        return "?", result.stderr.decode(errors="replace")[:200]
    rules = " ".join(status.group(2).decode().split()).rstrip(",")
    return status.group(1).decode(), rules


def sample_message() -> bytes:
    """The first subscriber's copy of today's digest from the bundled samples."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(ROOT / "config", Path(folder) / "config")
        digest = [sys.executable, "-m", "digest.cli"]
        subscribers = str(ROOT / "config" / "samples" / "subscribers.csv")
        for args in (["subscribers", "import", subscribers], ["run"]):
            subprocess.run([*digest, *args], cwd=folder, check=True, capture_output=True)
        first = sorted((Path(folder) / "var" / "outbox").rglob("*.eml"))[0]
        return first.read_bytes()


def main() -> None:
    if shutil.which("spamassassin") is None:
        print("spamassassin is not installed (Debian: apt-get install spamassassin); no score.")
        return
    value, rules = score(sample_message())
    print(f"sample digest (make run):  score {value}  rules: {rules or 'none'}")


if __name__ == "__main__":
    main()
