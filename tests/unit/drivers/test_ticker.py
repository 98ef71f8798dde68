"""The read ticker on trio's autojump clock, and a real socket pair: one wakeup runs every
reader; a reader's failure is raised in its own task and the others keep running."""

from __future__ import annotations

import ctypes
import math
import os
import socket

import pytest
import trio
import trio.testing

from relay.config import MAX_TICK, MIN_TICK
from relay.drivers import ticker as ticker_module
from relay.drivers.ticker import GUARD_SECONDS, Drain, ReadTicker
from tests.unit.drivers.deadlines import assert_no_deadline_within


async def test_every_reader_runs_once_a_tick_at_the_same_now(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ticker = ReadTicker(0.02)
    calls: dict[str, list[float]] = {"a": [], "b": []}

    def reader(name: str, ticks: int) -> Drain:
        def drain(now: float) -> bool:
            calls[name].append(now)
            return len(calls[name]) == ticks
        return drain

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker.run)
            async with trio.open_nursery() as readers:
                readers.start_soon(ticker.read, reader("a", 5))
                readers.start_soon(ticker.read, reader("b", 3))
            nursery.cancel_scope.cancel()
    assert calls["b"] == calls["a"][:3]  # both read in the same wakeups
    assert all(b - a == pytest.approx(0.02) for a, b in zip(calls["a"], calls["a"][1:],
                                                            strict=False))


async def test_a_failing_reader_raises_in_its_own_task_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ticker = ReadTicker()
    healthy: list[float] = []

    def failing(now: float) -> bool:
        raise OSError("connection reset")

    def counting(now: float) -> bool:
        healthy.append(now)
        return len(healthy) == 10

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker.run)
            with pytest.raises(OSError, match="connection reset"):
                await ticker.read(failing)
            await ticker.read(counting)
            nursery.cancel_scope.cancel()
    assert len(healthy) == 10


async def test_reads_a_socket_until_it_would_block() -> None:
    """A socket with three datagrams waiting gives all three in one tick."""
    ticker = ReadTicker.current()
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        b.setblocking(False)
        for n in range(3):
            a.send(bytes([n]) * 10)
        reads: list[list[bytes]] = []

        def drain(now: float) -> bool:
            batch = []
            while True:
                try:
                    batch.append(b.recv(100))
                except BlockingIOError:
                    break
            reads.append(batch)
            return True

        with trio.fail_after(5):
            await ticker.read(drain)
    assert reads == [[bytes([n]) * 10 for n in range(3)]]
    assert ReadTicker.current() is ticker  # one per process (trio run)


@pytest.mark.parametrize("interval", [MIN_TICK / 2, MAX_TICK * 2])
def test_tick_outside_its_bounds_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="read tick"):
        ReadTicker(interval)


async def test_configured_tick_applies_to_the_running_ticker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """``[server] tick_ms`` (and its reload) sets the process's ticker, started or not."""
    ReadTicker.configure(0.010)
    ticker = ReadTicker.current()
    assert ticker.interval == 0.010
    calls: list[float] = []

    def drain(now: float) -> bool:
        calls.append(now)
        if len(calls) == 3:
            ReadTicker.configure(0.015)
        return len(calls) == 6

    with trio.fail_after(5):
        await ticker.read(drain)
    steps = [round(b - a, 6) for a, b in zip(calls, calls[1:], strict=False)]
    assert steps == [0.010, 0.010, 0.015, 0.015, 0.015]
    with pytest.raises(ValueError, match="read tick"):
        ReadTicker.configure(0.5)


async def test_on_the_system_clock_a_tick_sets_no_trio_deadline() -> None:
    """Between ticks the ticker waits on a timerfd: no cancel scope's deadline (whose expiry
    costs a cancellation a tick) is pending but the test's own and the guard's, seconds away."""
    ticker = ReadTicker.current()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker.read, lambda now: False)
            # a sleeping ticker's deadline would be under 20 ms away
            await assert_no_deadline_within(1)
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize(("break_timer", "expected"), [
    ("close while waited on", "closed behind the ticker's back"),
    ("disarm", "the timer stopped"),
    ("close between waits", "its timer failed"),
])
async def test_a_timer_that_stops_waking_the_ticker_is_replaced(
    break_timer: str, expected: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """The ticker's timerfd closed behind its back while it waits (epoll forgets a closed
    descriptor: no wakeup ever comes), stopped, or closed between two waits: within
    GUARD_SECONDS the ticker is woken, one line names what was found, and the ticks go on by
    trio's clock."""
    ticker = ReadTicker.current()
    calls: list[float] = []

    def drain(now: float) -> bool:
        calls.append(now)
        return len(calls) >= 3 and trio.current_time() - broken > 0.5

    broken = math.inf
    with trio.fail_after(GUARD_SECONDS * 2 + 2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker.read, drain)
            while len(calls) < 2:
                await trio.sleep(0.01)
            timer = ticker._timer
            assert timer is not None
            if break_timer == "close between waits":
                # the ticker is between two waits only inside a drain: break it from there
                fd = timer.fd
                calls.clear()
                ticker._readers[1] = ticker_module._Reader(lambda now: os.close(fd) or True)
            else:
                await trio.testing.wait_all_tasks_blocked()  # the ticker waits on the timer
                if break_timer == "close while waited on":
                    os.close(timer.fd)
                else:
                    zero = ticker_module._Timespec(0, 0)
                    ticker_module._libc.timerfd_settime(
                        timer.fd, 0, ctypes.byref(ticker_module._Itimerspec(zero, zero)), None)
            broken = trio.current_time()
            calls.clear()
    steps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert steps and max(steps) < 0.2  # by trio's clock, a tick apart again
    assert ticker._timer is None
    lines = [r.getMessage() for r in caplog.records if r.name == "relay.ticker"]
    assert len(lines) == 1 and expected in lines[0], lines


async def test_a_lost_wakeup_of_an_idle_ticker_is_found_by_the_guard(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    """A reader registered without waking the idle ticker (the other way a ticker can stop):
    the guard wakes it."""
    ticker = ReadTicker()
    calls: list[float] = []

    def drain(now: float) -> bool:
        calls.append(now)
        return False

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker.run)
            nursery.start_soon(ticker.guard)
            await trio.testing.wait_all_tasks_blocked()
            ticker._readers[0] = ticker_module._Reader(drain)  # no wake
            await trio.sleep(GUARD_SECONDS * 1.5)
            nursery.cancel_scope.cancel()
    assert calls, "the ticker was never woken"
    lines = [r.getMessage() for r in caplog.records if r.name == "relay.ticker"]
    assert len(lines) == 1 and "on a reader" in lines[0], lines
