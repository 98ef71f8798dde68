"""Merged reads: one task per process wakes every tick and reads every registered socket until
it would block, instead of one trio wakeup per TCP segment or datagram.

Why: a task awaiting ``receive_some`` per socket wakes at every segment (a camera at 2 Mbit/s
sends about 240 RTP packets a second); measured with 16 cameras (issue 12) that scheduling alone
cost 0.0055 CPU per camera per media-second, one 20 ms ticker reading every socket 0.0019. The
tick is half the delay budget of one frame (40 ms at 25 fps); SRS calls this merged read.

A reader is a synchronous ``drain(now) -> bool`` that reads its socket without blocking (until
``BlockingIOError``) and pushes what it read through its ingest in the same call. It runs at
every tick until it returns True (something for its task to do: an RTSP reply, the end of the
connection) or raises; ``read`` then returns, or raises what it raised, in the reader's own
task: a failing reader never stops the ticker or another stream.

A guard checks every ``GUARD_SECONDS`` that readers are being read. If the ticker has not ticked
for that long it logs one line saying what it was waiting on and wakes it; a timer that failed
is dropped for trio's clock. Why: twice in CI a media process's ticker never ticked after PLAY
(every stream of the process silent, no watchdog line, the process idle in epoll), and the cause
was not found; a stuck ticker now costs a stream two seconds and names itself.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import sys
from collections.abc import Callable

import trio

from relay.config import DEFAULT_TICK, MAX_TICK, MIN_TICK

Drain = Callable[[float], bool]

GUARD_SECONDS = 2.0  # a ticker silent this long with readers waiting is woken

log = logging.getLogger("relay.ticker")

_current: trio.lowlevel.RunVar[ReadTicker] = trio.lowlevel.RunVar("relay_read_ticker")
_interval: trio.lowlevel.RunVar[float] = trio.lowlevel.RunVar("relay_read_tick",
                                                              default=DEFAULT_TICK)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_CLOCK_MONOTONIC = 1
_libc = ctypes.CDLL(None, use_errno=True)


class _TimerFd:
    """A periodic Linux timerfd (timerfd_create(2)), awaited as a readable descriptor.

    Why: ``trio.sleep_until`` wakes by a cancel scope's deadline expiring, and the cancellation
    it delivers (a scope, a status recalculation, a Cancelled raised and caught) cost about a
    third of each tick's CPU: in a bare trio loop of 20 ms ticks, 320-400 us a tick against
    230-260 us waiting on a timerfd (issue 12). A readable descriptor wakes the task with a
    plain reschedule. Missed ticks are not made up for: a read takes every expiration since
    the last.
    """

    def __init__(self, interval: float) -> None:
        self.fd = _libc.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        stat = os.fstat(self.fd)
        self.identity = (stat.st_dev, stat.st_ino)  # to tell this timer from a reused number
        self.interval = 0.0
        self.set(interval)

    def set(self, interval: float) -> None:
        seconds, nanoseconds = divmod(round(interval * 1e9), 1_000_000_000)
        period = _Timespec(seconds, nanoseconds)
        if _libc.timerfd_settime(self.fd, 0, ctypes.byref(_Itimerspec(period, period)), None):
            raise OSError(ctypes.get_errno(), "timerfd_settime")
        self.interval = interval

    async def wait(self) -> None:
        await trio.lowlevel.wait_readable(self.fd)
        try:
            os.read(self.fd, 8)  # the expirations since the last read
        except BlockingIOError:
            pass

    def _number_holds(self) -> tuple[int, int] | None:
        """What the descriptor number refers to now: this timer (its identity), another file
        (another identity), or nothing (None, closed)."""
        try:
            stat = os.fstat(self.fd)
        except OSError:
            return None
        return (stat.st_dev, stat.st_ino)

    def state(self) -> str:
        """What the descriptor is now, for the guard's line: the evidence of a stuck ticker."""
        holds = self._number_holds()
        if holds is None:
            return f"timerfd {self.fd} closed behind the ticker's back"
        if holds != self.identity:
            return f"timerfd {self.fd} closed behind the ticker's back and the number reused"
        readable = select.select([self.fd], [], [], 0)[0]
        return (f"timerfd {self.fd} " + ("readable, its wakeup lost" if readable
                                          else "not readable: the timer stopped"))

    def close(self) -> None:
        """Closes the descriptor, unless the number is no longer this timer's."""
        if self._number_holds() == self.identity:
            os.close(self.fd)


def _tick_timer(interval: float) -> _TimerFd | None:
    """A timerfd on the system clock (Linux); None on a test's clock or without timerfd, where
    the ticker sleeps until each deadline instead. A MockClock exists only once trio.testing is
    imported; importing it here would cost the media process 9 MiB (pytest, when installed)."""
    testing = sys.modules.get("trio.testing")
    if testing is not None and isinstance(trio.lowlevel.current_clock(), testing.MockClock):
        return None
    try:
        return _TimerFd(interval)
    except (AttributeError, OSError):  # not Linux (no such function), or refused
        return None


def _checked(interval: float) -> float:
    if not MIN_TICK <= interval <= MAX_TICK:
        raise ValueError(f"read tick {interval * 1000:g} ms: allowed "
                         f"{MIN_TICK * 1000:g}-{MAX_TICK * 1000:g} ms")
    return interval


class _Reader:
    __slots__ = ("done", "drain", "error")

    def __init__(self, drain: Drain) -> None:
        self.drain = drain
        self.done = trio.Event()
        self.error: Exception | None = None


class ReadTicker:
    """Runs every registered reader once a tick, one wakeup for all of them.

    Args:
        interval: the tick in seconds, MIN_TICK to MAX_TICK.
    """

    def __init__(self, interval: float = DEFAULT_TICK) -> None:
        self.interval = _checked(interval)
        self._readers: dict[int, _Reader] = {}
        self._wake = trio.Event()
        self._timer: _TimerFd | None = None
        self._waiting_on = "nothing"  # what the ticker awaits, for the guard's line
        self.ticked = 0.0  # trio time of the latest tick (or wakeup from idle)
        self.guard_due = 0.0  # trio time of the guard's next look

    @staticmethod
    def current() -> ReadTicker:
        """The ticker of this trio run (the process), started as a system task on first use:
        every source of the process shares it."""
        try:
            return _current.get()
        except LookupError:
            ticker = ReadTicker(_interval.get())
            _current.set(ticker)
            trio.lowlevel.spawn_system_task(ticker.run, name="read ticker")
            trio.lowlevel.spawn_system_task(ticker.guard, name="read ticker guard")
            return ticker

    @staticmethod
    def configure(interval: float) -> None:
        """Sets this run's tick (``[server] tick_ms``): the ticker's next tick comes this long
        after its last one, so a reload applies it without restarting a stream."""
        _interval.set(_checked(interval))
        try:
            _current.get().interval = interval
        except LookupError:
            pass  # the first source starts it with this interval

    async def run(self) -> None:
        """Ticks while any reader is registered; sleeps without a timer while none is."""
        self._timer = _tick_timer(self.interval)
        try:
            await self._tick()
        finally:
            if self._timer is not None:
                self._timer.close()

    async def _tick(self) -> None:
        deadline = self.ticked = trio.current_time()
        while True:
            if not self._readers:
                self._wake = trio.Event()
                self._waiting_on = "a reader"
                await self._wake.wait()
                deadline = self.ticked = trio.current_time()
            timer = self._timer
            if timer is None:
                # a late tick is not made up for: the next one is a whole tick after this one
                deadline = max(deadline + self.interval, trio.current_time())
                self._waiting_on = "trio's clock"
                await trio.sleep_until(deadline)
            else:
                if timer.interval != self.interval:
                    timer.set(self.interval)
                self._waiting_on = "timer"
                try:
                    await timer.wait()
                except (trio.ClosedResourceError, OSError) as exc:
                    if self._timer is timer:  # not the guard's doing: say it here
                        log.warning("read ticker: its timer failed (%s); ticking by trio's "
                                    "clock from now on", exc)
                    self._timer = None
                    timer.close()
                    deadline = trio.current_time()
            now = self.ticked = trio.current_time()
            for key, reader in list(self._readers.items()):
                try:
                    done = reader.drain(now)
                except Exception as exc:  # the reader's failure: raised in its own task
                    reader.error = exc
                    done = True
                if done:
                    del self._readers[key]
                    reader.done.set()

    async def guard(self) -> None:
        """Wakes a ticker that stopped ticking while readers wait, once a ``GUARD_SECONDS``
        look (one timer for the process, not one per stream)."""
        while True:
            self.guard_due = trio.current_time() + GUARD_SECONDS
            await trio.sleep_until(self.guard_due)
            # a ticker woken in this same batch (after a stall of the whole process) runs first
            await trio.lowlevel.cancel_shielded_checkpoint()
            silent = trio.current_time() - self.ticked
            if not self._readers or silent < GUARD_SECONDS:
                continue
            timer, waiting = self._timer, self._waiting_on
            if waiting == "timer" and timer is not None:
                waiting = timer.state()
                self._timer = None  # trio's clock from now on
                # Wakes the ticker's wait on the number (no cancel scope around each wait:
                # one costs 80 us a tick). Should the number be another file's now, a task
                # waiting to write to it is woken with ClosedResourceError too.
                trio.lowlevel.notify_closing(timer.fd)
            self._wake.set()
            log.warning("read ticker: no tick for %.1f s with %d readers waiting (on %s); "
                        "woken, ticking by trio's clock from now on",
                        silent, len(self._readers), waiting)

    async def read(self, drain: Drain) -> None:
        """Runs ``drain(now)`` at every tick until it returns True.

        Raises:
            Exception: what ``drain`` raised.
        """
        reader = _Reader(drain)
        key = id(reader)
        self._readers[key] = reader
        self._wake.set()
        try:
            await reader.done.wait()
        finally:
            self._readers.pop(key, None)
        if reader.error is not None:
            raise reader.error
