"""A token bucket (pure; the clock is a parameter): at most ``rate`` items per second on
average, bursts up to ``burst``."""

from __future__ import annotations


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be more than 0")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        self.tokens = self.burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float, want: int) -> int:
        """Up to ``want`` tokens, as many as there are now."""
        self._refill(now)
        got = min(want, int(self.tokens))
        self.tokens -= got
        return got

    def wait(self, now: float, want: int = 1) -> float:
        """Seconds until ``want`` tokens are there (0: now)."""
        self._refill(now)
        missing = min(want, self.burst) - self.tokens
        return max(0.0, missing / self.rate)
