"""Supervision in the web process: the one restart loop of its long-lived tasks (HLS pushers).

The asyncio twin of ``relay/drivers/supervise.py`` (trio, which web/ must not import): run a
task, and when it fails wait (exponential backoff with jitter, so pushers to one dead origin
never retry in lockstep) and run it again. It is the one place that decides which errors are
expected (the network or the origin: one warning line; anything else is a bug: its traceback
too, once per distinct error) and the only writer of a status's ``state``, ``last_error`` and
``failures``. Stopping is cancelling: ``asyncio.CancelledError`` always goes through.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiohttp

from relay.backoff import HEALTHY_AFTER, Backoff

log = logging.getLogger("web.supervise")

EXPECTED: tuple[type[BaseException], ...] = (aiohttp.ClientError, OSError, TimeoutError)
"""What an origin or the network can do to a task: one line, no traceback (``TimeoutError``
is also ``asyncio.TimeoutError``)."""



class Supervised(Protocol):
    """A status ``supervise`` keeps (``PushStats``)."""

    state: str
    last_error: str | None
    failures: int


def _same(text: str) -> str:
    return text


async def supervise(
    what: str,
    task: Callable[[Callable[[], None]], Awaitable[None]],
    *,
    status: Supervised | None = None,
    up_state: str = "ok",
    scrub: Callable[[str], str] = _same,
    backoff: Backoff | None = None,
    healthy_after: float = HEALTHY_AFTER,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``task(started)`` until it returns, restarting it with backoff when it fails.

    Args:
        what: names the task in each log line (``stream=cam hls push to http://origin/live/``).
        task: calls ``started()`` each time it is up (a sync went through).
        status: kept here alone: ``up_state`` (the last error cleared) on ``started()``,
            ``retrying`` with ``last_error`` and one more ``failures`` after a failure.
        up_state: the state a task that is up shows.
        scrub: removes the task's secrets (URL credentials) from every error text it logs or
            shows, tracebacks included.
        backoff: the retry delays (a fresh ``Backoff`` if None).
        healthy_after: a run that lasted this long resets the backoff.
        sleep, clock: asyncio's and the monotonic clock; tests pass their own.
    """
    backoff = backoff if backoff is not None else Backoff()
    failing: str | None = None  # the error last warned about, until the task is up again
    traced: tuple[type[BaseException], str] | None = None  # the bug whose traceback was logged

    def started() -> None:
        nonlocal failing
        if failing is not None:
            log.info("%s works again", what)
            failing = None
        if status is not None:
            status.state, status.last_error = up_state, None

    while True:
        began = clock()
        try:
            await task(started)
            return
        except Exception as error:  # CancelledError is a BaseException: it always goes on
            text = scrub(str(error) or type(error).__name__)
            if clock() - began >= healthy_after:
                backoff.reset()
            delay = backoff.next()
            if status is not None:
                status.state, status.last_error = "retrying", text
                status.failures += 1
            if isinstance(error, EXPECTED):
                if text != failing:
                    log.warning("%s failed: %s; retrying in %.1f s", what, text, delay)
            elif (type(error), text) == traced:
                log.error("%s failed: %s; retrying in %.1f s", what, text, delay)
            else:
                traced = (type(error), text)
                trace = scrub("".join(traceback.format_exception(error)).rstrip())
                log.error("%s failed: %s; retrying in %.1f s\n%s", what, text, delay, trace)
            failing = text
        await sleep(delay)
