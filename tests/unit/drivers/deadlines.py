"""The check behind "no timer per stream": trio's nearest deadline, looked at while every task
waits, is not nearer than a bound, except the read ticker guard's one look for the process."""

from __future__ import annotations

import trio
import trio.testing

from relay.drivers.ticker import ReadTicker


async def assert_no_deadline_within(seconds: float, looks: int = 3) -> None:
    """Fails if, at any of ``looks`` moments all tasks are blocked, a deadline other than the
    guard's is due within ``seconds`` (a deadline hidden behind the guard's is not seen: run
    this early in a trio run, when the guard's look is still GUARD_SECONDS away)."""
    ticker = ReadTicker.current()
    for _ in range(looks):
        await trio.testing.wait_all_tasks_blocked()
        nearest = trio.lowlevel.current_statistics().seconds_to_next_deadline
        guard = ticker.guard_due - trio.current_time()
        assert nearest >= min(seconds, guard) - 1e-6, (
            f"a deadline {nearest:.3f} s away (the guard's look is {guard:.3f} s away)")
        await trio.sleep(0)
