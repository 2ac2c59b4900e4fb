"""Command start-up: how long `digest --help` and `digest subscribers stats` take.

Each command runs as a user runs it, in a new process, on a fresh project folder with
the bundled sample subscribers; the median of several runs is printed beside the
reference: a Python interpreter that starts and does nothing (`python -c pass`).
Target: under 0.4 s for both on the 2-core machine.

    .venv/bin/python benchmarks/cli.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 7


def timed(command: list[str], cwd: Path) -> float:
    """Median wall time of `command`, in seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    digest = [sys.executable, "-m", "digest.cli", "--config", str(ROOT / "config" / "digest.toml")]
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        samples = str(ROOT / "config" / "samples" / "subscribers.csv")
        subprocess.run(
            [*digest, "subscribers", "import", samples], cwd=cwd, check=True, capture_output=True
        )
        reference = timed([sys.executable, "-c", "pass"], cwd)
        print(f"python -c pass            {reference:6.3f} s (reference)")
        for args in (["--help"], ["subscribers", "stats"]):
            took = timed([*digest, *args], cwd)
            label = "digest " + " ".join(args)
            print(f"{label:<25} {took:6.3f} s  {took / reference:5.1f}x the reference")


if __name__ == "__main__":
    main()
