"""Supervision: the one restart loop of every long-lived task (streams, sources, sinks, the web
process, the test camera's server).

``supervise`` runs a task, and when it fails waits (exponential backoff with jitter, so many
streams retrying never move in lockstep) and runs it again. It is the one place that decides
which errors are expected (a network or protocol error: one line; anything else is a bug: its
traceback too) and the only writer of a status's ``state``, ``last_error`` and ``reconnects``.
Stopping is cancelling: ``Cancelled`` always goes through, and an error raised while the task
was being cancelled is logged once, never restarted.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from relay.backoff import HEALTHY_AFTER, Backoff
from relay.config import redact_url
from relay.errors import RelayError

log = logging.getLogger("relay.supervise")

EXPECTED: tuple[type[BaseException], ...] = (RelayError, OSError, trio.BrokenResourceError)
"""What a peer, the network or the disk can do to a task: one line, no traceback."""



class Supervised(Protocol):
    """A status ``supervise`` keeps (``StreamStatus``, ``RtmpStats``)."""

    state: str
    last_error: str | None
    reconnects: int


class _Up(trio.TaskStatus[object]):
    """Handed to each run as ``task_status``: ``started()`` means the task is up."""

    def __init__(self, status: Supervised | None, up_state: str,
                 outer: trio.TaskStatus[None]) -> None:
        self._status = status
        self._up_state = up_state
        self._outer: trio.TaskStatus[None] | None = outer

    def started(self, value: object = None) -> None:
        if self._status is not None:
            self._status.state = self._up_state
            self._status.last_error = None
        if self._outer is not None:  # supervise's own caller learns of the first start only
            self._outer.started()
            self._outer = None


async def supervise(
    what: str,
    task: Callable[..., Awaitable[None]],
    *,
    status: Supervised | None = None,
    up_state: str = "playing",
    final_state: str | None = None,
    backoff: Backoff | None = None,
    healthy_after: float = HEALTHY_AFTER,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``task(task_status=...)`` until it returns, restarting it with backoff when it fails.

    Args:
        what: names the task in each log line (``stream=cam1 rtmp=rtmp://host/app/***``).
        task: calls ``task_status.started()`` once it is up (playing, publishing, listening).
        status: kept here alone: ``connecting`` at each run, ``up_state`` once up (the last
            error cleared), ``retrying`` with ``last_error`` and one more ``reconnects`` after a
            failure.
        up_state: the state a run that is up shows.
        final_state: the state left when supervision ends (a stream's ``stopped``); None
            leaves the last one (a source sharing its stream's status).
        backoff: the retry delays (a fresh ``Backoff`` if None).
        healthy_after: a run that lasted this long resets the backoff.
        task_status: started when the first run is up (``nursery.start(supervise, ...)``).
    """
    backoff = backoff if backoff is not None else Backoff()
    up = _Up(status, up_state, task_status)
    traced: tuple[type[BaseException], str] | None = None  # the bug whose traceback was logged
    try:
        while True:
            if status is not None:
                status.state = "connecting"
            began = trio.current_time()
            try:
                await task(task_status=up)
                return
            except BaseException as exc:  # split below: Cancelled and KeyboardInterrupt go on
                error, passing = _split(exc)
                if error is None:
                    raise
            text = error_text(error)
            try:
                if passing is not None:
                    raise passing
                await trio.lowlevel.checkpoint_if_cancelled()
            except BaseException:
                log.error("%s failed while stopping: %s", what, text)
                raise
            if trio.current_time() - began >= healthy_after:
                backoff.reset()
            delay = backoff.next()
            if status is not None:
                status.state = "retrying"
                status.last_error = text
                status.reconnects += 1
            expected = isinstance(error, EXPECTED)
            trace = not expected and (type(error), text) != traced
            if trace:
                traced = (type(error), text)
            log.log(logging.WARNING if expected else logging.ERROR,
                    "%s error: %s; retrying in %.0f s", what, text, delay,
                    exc_info=error if trace else None)
            await trio.sleep(delay)
    finally:
        if status is not None and final_state is not None:
            status.state = final_state


def _split(exc: BaseException) -> tuple[Exception | None, BaseException | None]:
    """The error that ended a run, and what must propagate still (Cancelled, KeyboardInterrupt)."""
    if isinstance(exc, BaseExceptionGroup):
        errors, rest = exc.split(Exception)
        if errors is None:
            return None, exc
        error = first_error(errors)
        return (error if isinstance(error, Exception) else errors), rest
    if isinstance(exc, Exception):
        return exc, None
    return None, exc


def error_text(exc: BaseException) -> str:
    """One line for an error, URL credentials scrubbed (the log output and the status snapshot
    scrub the configured secrets).

    A socket error (an ``OSError`` without a file name) reads ``connection failed: <reason>``.
    """
    if isinstance(exc, RelayError):
        text = str(exc)
    elif isinstance(exc, trio.BrokenResourceError) or (
            isinstance(exc, OSError) and exc.filename is None):
        text = f"connection failed: {describe(exc)}"
    else:
        text = str(exc)
    return redact_url(text or type(exc).__name__)


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
    if isinstance(exc, BaseExceptionGroup):  # a nursery's error (an RTSP send, say)
        exc = first_error(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate rejected: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
