"""Pacing for delivery: a clock that can be told not to sleep, and a token bucket.

In test mode nothing sleeps: time is virtual (it moves only by the waits, which are
added up), so a test can check what would have been waited without ever waiting.
"""

from __future__ import annotations

import threading
import time


class Pacer:
    """Tells the time and sleeps; `stop()` wakes every sleeper (Ctrl+C, a fatal error)."""

    def __init__(self, *, test_mode: bool = False) -> None:
        self.test_mode = test_mode
        self.waited = 0.0
        self._offset = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def now(self) -> float:
        # In test mode only waits move the clock, so what is computed is deterministic.
        return self._offset if self.test_mode else time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            self.waited += seconds
            if self.test_mode:
                self._offset += seconds
                return
        self._stop.wait(seconds)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()


class TokenBucket:
    """At most `rate` messages a second on average, in bursts of up to one second's worth.

    A batch takes all its tokens at once and may run the bucket into debt; the taker then
    sleeps until the debt is paid, so the average holds whatever the batch size.
    """

    def __init__(self, rate: float, pacer: Pacer) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self._pacer = pacer
        self._tokens = self.capacity
        self._stamp = pacer.now()
        self._lock = threading.Lock()

    def take(self, count: int) -> float:
        """Take `count` tokens, sleeping as long as the rate requires; return the wait."""
        with self._lock:
            now = self._pacer.now()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= count
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        self._pacer.sleep(wait)
        return wait
