"""supervise(): the one restart loop, on trio's autojump clock (no network)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import pytest
import trio
import trio.testing

from relay.backoff import Backoff
from relay.drivers.supervise import error_text, supervise
from relay.errors import RelayError


@dataclass
class Status:
    state: str = "new"
    last_error: str | None = None
    reconnects: int = 0


class Flaky:
    """Runs for ``run_for`` seconds (``up`` after ``up_after``), then raises ``errors`` in turn."""

    def __init__(self, *errors: BaseException, run_for: float = 0.0,
                 up_after: float | None = None) -> None:
        self.errors = list(errors)
        self.run_for = run_for
        self.up_after = up_after
        self.starts: list[float] = []

    async def __call__(self, *, task_status: trio.TaskStatus[None]) -> None:
        self.starts.append(trio.current_time())
        if self.up_after is not None:
            await trio.sleep(self.up_after)
            task_status.started()
        await trio.sleep(self.run_for)
        if not self.errors:
            await trio.sleep_forever()
        error = self.errors.pop(0) if len(self.errors) > 1 else self.errors[0]
        raise error

    def gaps(self) -> list[float]:
        """Time between one run's failure and the next run's start."""
        return [b - a - self.run_for - (self.up_after or 0)
                for a, b in zip(self.starts, self.starts[1:])]


def retry_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "retrying in" in r.getMessage()]


def test_backoff_jitter_stays_within_twenty_percent() -> None:
    backoff = Backoff(1.0, 8.0)
    nominal = [1, 2, 4, 8, 8, 8]
    for _ in range(200):
        delays = [backoff.next() for _ in nominal]
        assert all(0.8 * n <= d <= 1.2 * n for n, d in zip(nominal, delays)), delays
        backoff.reset()
    assert len({round(Backoff().next(), 6) for _ in range(20)}) > 1  # jittered, not lockstep


async def test_backoff_grows_to_its_maximum(autojump_clock: trio.testing.MockClock) -> None:
    task = Flaky(OSError("refused"))
    with trio.move_on_after(200):
        await supervise("cam", task, backoff=Backoff(1.0, 16.0))
    gaps = task.gaps()
    nominal = [1, 2, 4, 8, 16, 16, 16]
    assert len(gaps) >= len(nominal)
    assert all(0.8 * n <= g <= 1.2 * n for n, g in zip(nominal, gaps)), gaps


async def test_backoff_resets_after_a_healthy_run(autojump_clock: trio.testing.MockClock) -> None:
    healthy = Flaky(RelayError("dropped"), run_for=31.0)
    with trio.move_on_after(400):
        await supervise("cam", healthy, healthy_after=30.0)
    assert len(healthy.gaps()) >= 5 and all(0.8 <= g <= 1.2 for g in healthy.gaps())

    short = Flaky(RelayError("dropped"), run_for=29.0)
    with trio.move_on_after(400):
        await supervise("cam", short, healthy_after=30.0)
    gaps = short.gaps()
    assert all(later > earlier for earlier, later in zip(gaps[:4], gaps[1:4])), gaps


async def test_status_is_written_by_supervise_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    status = Status()
    task = Flaky(RelayError("no media within 10 s of PLAY"), run_for=5.0, up_after=2.0)
    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(supervise, "cam", task, status=status,
                                       final_state="stopped"))
            await trio.sleep(1)
            assert (status.state, status.reconnects) == ("connecting", 0)
            await trio.sleep(2)  # up at 2 s
            assert (status.state, status.last_error) == ("playing", None)
            await trio.sleep(4.5)  # failed at 7 s, retrying after about 1 s
            assert (status.state, status.reconnects) == ("retrying", 1)
            assert status.last_error == "no media within 10 s of PLAY"
            await trio.sleep(3.5)  # the second run is up: the error is cleared, the count stays
            assert (status.state, status.reconnects) == ("playing", 1)
            assert status.last_error is None
            nursery.cancel_scope.cancel()
    assert status.state == "stopped"


async def test_up_state_names_what_up_means(autojump_clock: trio.testing.MockClock) -> None:
    status = Status()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(supervise, "rtmp", Flaky(up_after=1.0), status=status,
                                       up_state="publishing"))
            await trio.sleep(2)
            assert status.state == "publishing"
            nursery.cancel_scope.cancel()
    assert status.state == "publishing"  # no final_state: the last one stays


async def test_expected_errors_are_one_line_each(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    status = Status()
    task = Flaky(RelayError("RTSP DESCRIBE: 401 Unauthorized rtsp://user:pw@cam/x"),
                 ConnectionRefusedError(111, "Connection refused"),
                 trio.BrokenResourceError(), RelayError("again"))
    with trio.move_on_after(20):
        await supervise("stream=cam", task, status=status)
    lines = retry_lines(caplog)
    assert len(lines) >= 4
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in lines)
    messages = [r.getMessage() for r in lines]
    assert messages[0].startswith("stream=cam error: RTSP DESCRIBE: 401 Unauthorized "
                                  "rtsp://***@cam/x; retrying in ")
    assert messages[1].startswith("stream=cam error: connection failed: Connection refused; ")
    assert messages[2].startswith("stream=cam error: connection failed: BrokenResourceError; ")
    assert len(caplog.records) == len(lines)  # nothing else said
    assert not any("pw@" in m for m in messages)
    assert status.reconnects == len(lines)


async def test_a_bug_logs_its_traceback_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    task = Flaky(KeyError("track"), KeyError("track"), KeyError("track"), ValueError("other"),
                 KeyError("track"))
    with trio.move_on_after(40):
        await supervise("stream=cam", task)
    lines = retry_lines(caplog)
    assert len(lines) >= 5 and all(r.levelno == logging.ERROR for r in lines)
    traced = [r.exc_info is not None for r in lines]
    # one traceback per new bug; the same bug again is one line
    assert traced[:5] == [True, False, False, True, True], traced


async def test_cancel_stops_at_once_while_running_or_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    task = Flaky(OSError("refused"))
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervise, "cam", task)
            await trio.sleep(0.5)  # inside the first backoff delay
            scope.cancel()
            cancelled_at = trio.current_time()
    assert trio.current_time() == cancelled_at and len(task.starts) == 1

    running = Flaky()
    with trio.move_on_after(3):
        await supervise("cam", running)
    assert trio.current_time() == cancelled_at + 3 and len(running.starts) == 1


async def test_an_error_while_stopping_is_logged_and_not_restarted(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0

    async def messy(*, task_status: trio.TaskStatus[None]) -> None:
        nonlocal runs
        runs += 1
        try:
            await trio.sleep_forever()
        finally:
            raise OSError(28, "No space left on device", "/hls/cam/index.m3u8")

    async def messy_nursery(*, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await messy(task_status=task_status)

    for task in (messy, messy_nursery):  # a plain error, and one in a group beside Cancelled
        caplog.clear()
        status = Status()
        with trio.move_on_after(5) as scope:
            await supervise("stream=cam", task, status=status, final_state="stopped")
        assert scope.cancelled_caught
        messages = [r.getMessage() for r in caplog.records]
        assert messages == ["stream=cam failed while stopping: "
                            "[Errno 28] No space left on device: '/hls/cam/index.m3u8'"]
        assert (status.state, status.reconnects) == ("stopped", 0)
    assert runs == 2


async def test_the_first_error_of_a_nursery_is_the_one_reported(
    autojump_clock: trio.testing.MockClock,
) -> None:
    status = Status()

    async def source(*, task_status: trio.TaskStatus[None]) -> None:
        async def fail() -> None:
            raise RelayError("media stopped for 10 s")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(fail)

    with trio.move_on_after(10):
        await supervise("stream=cam", source, status=status)
    assert status.reconnects >= 3
    assert status.last_error == "media stopped for 10 s"


async def test_a_task_that_returns_is_done(autojump_clock: trio.testing.MockClock) -> None:
    status = Status()
    runs = []

    async def sink(*, task_status: trio.TaskStatus[None]) -> None:
        runs.append(trio.current_time())  # the stream closed: nothing more to do

    with trio.fail_after(1):
        await supervise("stream=cam hls", sink, status=status, final_state="stopped")
    assert len(runs) == 1 and status.state == "stopped" and status.reconnects == 0


async def test_nursery_start_returns_once_the_first_run_is_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    task = Flaky(RelayError("not listening yet"), RelayError("not yet"), run_for=1.0)

    async def listening_third_time(*, task_status: trio.TaskStatus[None]) -> None:
        if len(task.starts) == 2:
            task_status.started()
            task_status.started()  # up again later: the caller was told once
        await task(task_status=task_status)

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            await nursery.start(supervise, "web process", listening_third_time)
            assert len(task.starts) == 3  # two failed runs, then the one that listens
            nursery.cancel_scope.cancel()


def _caused(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize("error, text", [
    (RelayError("publish refused: NetStream.Publish.BadName"),
     "publish refused: NetStream.Publish.BadName"),
    (ConnectionResetError(104, "Connection reset by peer"),
     "connection failed: Connection reset by peer"),
    (PermissionError(13, "Permission denied", "/hls/cam"), "[Errno 13] Permission denied: "
     "'/hls/cam'"),
    (ValueError("rtsp://admin:secret@cam/x"), "rtsp://***@cam/x"),
    (RelayError(), "RelayError"),
    (_caused(trio.BrokenResourceError(), ExceptionGroup(
        "Exceptions from Trio nursery", [ConnectionResetError(104, "Connection reset by peer")])),
     "connection failed: Connection reset by peer"),  # not "Exceptions from Trio nursery"
])
def test_error_text(error: BaseException, text: str) -> None:
    assert error_text(error) == text
