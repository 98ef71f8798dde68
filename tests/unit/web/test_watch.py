"""web/watch.py against the real kernel: notices by inotify, in order of events (no sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

from web.watch import Watcher


def run(body: Callable[[Watcher], Awaitable[None]]) -> None:
    async def main() -> None:
        watcher = Watcher()
        task = asyncio.create_task(watcher.run())
        try:
            await asyncio.wait_for(body(watcher), 20)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            watcher.close()

    asyncio.run(main())


def replace(path: Path, data: bytes) -> None:
    """Write as the relay does: a temporary file renamed in place."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


async def changed(names: asyncio.Queue[str | None]) -> str | None:
    """The next notice that is not about a temporary file."""
    while (name := await names.get()) is not None and name.endswith(".tmp"):
        pass
    return name


def test_rename_in_place_is_noticed(tmp_path: Path) -> None:
    async def body(watcher: Watcher) -> None:
        names: asyncio.Queue[str | None] = asyncio.Queue()
        watcher.subscribe(tmp_path, names.put_nowait)
        replace(tmp_path / "ll.json", b"{}")
        assert await names.get() == "ll.json.tmp"  # closed after writing
        assert await changed(names) == "ll.json"  # renamed in
        (tmp_path / "ll.json").unlink()
        assert await names.get() == "ll.json"

    run(body)


def test_wait_for_returns_on_the_write_and_times_out_without_it(tmp_path: Path) -> None:
    async def body(watcher: Watcher) -> None:
        target = tmp_path / "ll.json"
        waiter = asyncio.create_task(watcher.wait_for(target, target.exists, 30))
        await asyncio.sleep(0)  # the waiter has subscribed and found no file
        assert not waiter.done()
        replace(target, b"{}")
        assert await waiter
        assert await watcher.wait_for(target, target.exists, 0)  # already true: at once
        assert not await watcher.wait_for(tmp_path / "none", lambda: False, 0.01)

    run(body)


def test_a_folder_that_appears_later_and_is_removed_and_made_again(tmp_path: Path) -> None:
    async def body(watcher: Watcher) -> None:
        folder = tmp_path / "hls" / "cam1"
        names: asyncio.Queue[str | None] = asyncio.Queue()
        watcher.subscribe(folder, names.put_nowait)
        folder.mkdir(parents=True)
        assert await names.get() is None  # the folder appeared: re-read it
        replace(folder / "ll.json", b"{}")
        assert await changed(names) == "ll.json"
        shutil.rmtree(tmp_path / "hls")
        while await names.get() is not None:  # its files' removal, then the folder's
            pass
        folder.mkdir(parents=True)
        assert await names.get() is None
        replace(folder / "ll.json", b"{}")
        assert await changed(names) == "ll.json"

    run(body)


def test_unsubscribe_stops_notices_and_others_still_get_theirs(tmp_path: Path) -> None:
    async def body(watcher: Watcher) -> None:
        first: list[str | None] = []
        names: asyncio.Queue[str | None] = asyncio.Queue()
        unsubscribe = watcher.subscribe(tmp_path, first.append)
        watcher.subscribe(tmp_path, names.put_nowait)

        def broken(name: str | None) -> None:
            raise RuntimeError("a subscriber's bug")

        watcher.subscribe(tmp_path, broken)
        unsubscribe()
        replace(tmp_path / "a", b"")
        assert await names.get() == "a.tmp"
        assert first == []

    run(body)
