"""A memory bound for tests of parsers: what a block allocates at its peak, by tracemalloc."""

from __future__ import annotations

import functools
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

FUZZ_MEMORY_LIMIT = 1 << 20
"""Peak bytes a parser may allocate on one fuzz input of a few KB: enough for its own state
and output, far below what a length field read from the input could make it reserve."""


@contextmanager
def allocates_at_most(limit: int) -> Iterator[None]:
    """Asserts that what the block allocates, at its peak, is at most ``limit`` bytes
    (an exception from the block passes through unchecked)."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= limit, f"allocated {peak} bytes at the peak, over {limit}"


@contextmanager
def transient_at_most(limit: int) -> Iterator[None]:
    """Asserts that the block's peak is at most ``limit`` bytes over what it leaves allocated:
    the temporary copies it made, not its output."""
    tracemalloc.start()
    try:
        yield
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - current <= limit, f"{peak - current} bytes of temporaries, over {limit}"


def memory_bounded(test: Callable[P, R]) -> Callable[P, R]:
    """Runs each call of a fuzz test (each hypothesis example: put it under ``@given``) within
    ``FUZZ_MEMORY_LIMIT``; the data hypothesis draws is made outside the bound."""

    @functools.wraps(test)
    def bounded(*args: P.args, **kwargs: P.kwargs) -> R:
        with allocates_at_most(FUZZ_MEMORY_LIMIT):
            return test(*args, **kwargs)

    return bounded
