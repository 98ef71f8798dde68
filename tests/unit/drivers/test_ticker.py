"""The read ticker on trio's autojump clock, and a real socket pair: one wakeup runs every
reader; a reader's failure is raised in its own task and the others keep running."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

from relay.config import MAX_TICK, MIN_TICK
from relay.drivers.ticker import Drain, ReadTicker


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
    costs a cancellation a tick) is pending but the test's own, seconds away."""
    ticker = ReadTicker.current()
    waiting: list[float] = []

    def drain(now: float) -> bool:
        return len(waiting) == 3

    async def look() -> None:
        while len(waiting) < 3:
            await trio.testing.wait_all_tasks_blocked()
            waiting.append(trio.lowlevel.current_statistics().seconds_to_next_deadline)
            await trio.sleep(0)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker.read, drain)
            nursery.start_soon(look)
    assert min(waiting) > 1  # the fail_after; a sleeping ticker's deadline is under 20 ms away
