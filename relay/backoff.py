"""Retry delays shared by both processes' supervisors (trio's in relay/, asyncio's in web/).

Pure: no event loop, so web/ may import it beside the status schema.
"""

import random

HEALTHY_AFTER = 30.0
"""A run this long (the longest backoff delay) was healthy: its failure waits the first delay."""


class Backoff:
    """1 s, 2 s, 4 s ... up to ``maximum``, each +-20 %, so many retries never move in lockstep;
    ``reset()`` after a healthy run."""

    def __init__(self, initial: float = 1.0, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next(self) -> float:
        delay = self._next * random.uniform(0.8, 1.2)
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial
