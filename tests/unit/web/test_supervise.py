"""web.supervise: the delays it asks for, their reset, how errors are told apart, cancelling."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
import pytest

from web.push import PushError, PushStats
from web.supervise import supervise


class Script:
    """A task that fails with each of ``errors`` in turn (a run taking ``durations[i]`` on the
    fake clock), then comes up and returns; records the delays supervise sleeps."""

    def __init__(self, errors: list[BaseException], durations: list[float] | None = None,
                 *, stop_after: int | None = None) -> None:
        self.errors = errors
        self.durations = durations or [0.0] * len(errors)
        self.now = 0.0
        self.runs = 0
        self.delays: list[float] = []
        self.stop_after = stop_after

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        if self.stop_after is not None and len(self.delays) >= self.stop_after:
            raise asyncio.CancelledError
        self.now += delay

    async def task(self, started: Callable[[], None]) -> None:
        run = self.runs
        self.runs += 1
        if run < len(self.errors):
            self.now += self.durations[run]
            raise self.errors[run]
        started()


def test_delays_double_to_30s_with_jitter_and_reset_after_a_healthy_run() -> None:
    script = Script([OSError("refused")] * 9, [0.0] * 7 + [30.0, 0.0])
    stats = PushStats("http://origin/")
    asyncio.run(supervise("push", script.task, status=stats, sleep=script.sleep,
                          clock=script.clock))
    nominal = [1, 2, 4, 8, 16, 30, 30, 1, 2]  # the 8th run lasted 30 s: back to 1 s
    assert len(script.delays) == len(nominal)
    for delay, base in zip(script.delays, nominal, strict=True):
        assert 0.8 * base <= delay <= 1.2 * base
    assert script.runs == 10
    assert stats.failures == 9 and stats.state == "ok" and stats.last_error is None


def test_status_while_retrying_and_once_up() -> None:
    seen: list[tuple[str, str | None, int]] = []
    stats = PushStats("http://origin/")

    async def task(started: Callable[[], None]) -> None:
        seen.append((stats.state, stats.last_error, stats.failures))
        if len(seen) < 3:
            raise PushError(f"PUT index.m3u8: HTTP 503 try {len(seen)}")
        started()

    async def no_sleep(delay: float) -> None:
        pass

    asyncio.run(supervise("push", task, status=stats, sleep=no_sleep))
    assert seen == [("starting", None, 0),
                    ("retrying", "PUT index.m3u8: HTTP 503 try 1", 1),
                    ("retrying", "PUT index.m3u8: HTTP 503 try 2", 2)]
    assert (stats.state, stats.last_error, stats.failures) == ("ok", None, 2)


@pytest.mark.parametrize("error", [aiohttp.ClientPayloadError("cut"),
                                   ConnectionResetError(104, "reset by peer"),
                                   TimeoutError("slow origin"),
                                   PushError("PUT a.ts: HTTP 500")])
def test_expected_errors_are_one_warning_line(error: Exception,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "web.supervise")
    script = Script([error, error])
    asyncio.run(supervise("stream=cam push", script.task, sleep=script.sleep,
                          clock=script.clock))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # the same error again is not repeated
    assert warnings[0].exc_info is None and "\n" not in warnings[0].getMessage()
    assert warnings[0].getMessage().startswith("stream=cam push failed: ")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "stream=cam push works again"]


def test_a_bug_logs_its_traceback_once_and_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "web.supervise")
    bug = KeyError("http://user:hunter2@origin/")
    script = Script([bug, bug, ValueError("other")])
    asyncio.run(supervise("push", script.task, sleep=script.sleep, clock=script.clock,
                          scrub=lambda text: text.replace("hunter2", "***")))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3
    assert "Traceback" in errors[0] and "Traceback" not in errors[1]
    assert "Traceback" in errors[2] and "ValueError: other" in errors[2]
    assert "hunter2" not in caplog.text and "user:***@origin" in errors[0]


def test_cancelling_goes_through_the_task_and_the_backoff() -> None:
    async def forever(started: Callable[[], None]) -> None:
        started()
        await asyncio.Event().wait()

    async def main() -> None:
        task = asyncio.create_task(supervise("push", forever))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    # cancelled while waiting out a backoff delay
    script = Script([OSError("down")] * 3, stop_after=2)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(supervise("push", script.task, sleep=script.sleep, clock=script.clock))
    assert script.runs == 2


def test_a_task_raising_cancelled_is_not_restarted() -> None:
    script = Script([asyncio.CancelledError()])
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(supervise("push", script.task, sleep=script.sleep, clock=script.clock))
    assert script.runs == 1 and script.delays == []
