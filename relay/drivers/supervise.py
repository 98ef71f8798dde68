"""Retry delays: exponential with jitter, so many streams retrying never move in lockstep."""

import random


class Backoff:
    """1 s, 2 s, 4 s ... up to ``maximum``, each +-20 %; ``reset()`` after a success."""

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
