"""Supervision helpers: retry delays, and the error that really ended a nursery.

Delays are exponential with jitter, so many streams retrying never move in lockstep.
"""

import random
import ssl

import trio


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


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The error that ended a nursery, not the Cancelled it caused in the sibling tasks."""
    errors = [e for e in _leaves(group) if not isinstance(e, trio.Cancelled)]
    return errors[0] if errors else group


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for sub in error.exceptions for leaf in _leaves(sub)]
    return [error]


def describe(exc: BaseException) -> str:
    """One readable phrase for a network error (trio wraps TLS and socket errors)."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, trio.BrokenResourceError) and cause is not None:
        exc = cause
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate rejected: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
