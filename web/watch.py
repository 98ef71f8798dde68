"""File notices for the web process: one inotify instance (asyncinotify), callbacks per folder.

The relay replaces its files atomically (write a temporary file, rename it in place), so a file
is watched through its folder: a rename into it (IN_MOVED_TO), a write closed in it
(IN_CLOSE_WRITE), a removal (IN_DELETE, IN_MOVED_FROM). A folder that does not exist yet is
watched through its nearest existing parent until it appears. Callbacks get the name of the file
that changed, or None when anything in the folder may have changed (the kernel's queue
overflowed, or the folder's watch was just set up and files may have come before it): they
re-read what they care about. Nothing here polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from asyncinotify import Event, Inotify, Mask, Watch

FILE_MASK = Mask.MOVED_TO | Mask.CLOSE_WRITE | Mask.DELETE | Mask.MOVED_FROM | Mask.CREATE
"""What a folder is watched for: files written, renamed in or out, removed, folders made."""
GONE_MASK = Mask.DELETE_SELF | Mask.MOVE_SELF | Mask.IGNORED

Callback = Callable[[str | None], None]
log = logging.getLogger("web.watch")


@dataclass(eq=False, slots=True)
class _Folder:
    path: Path
    callbacks: list[Callback] = field(default_factory=list)
    watch: Watch | None = None
    """None while the folder does not exist; its nearest existing parent is watched then."""


class Watcher:
    """Folder notices by inotify, for any code in the web process (LL-HLS, push, status).

    ``run()`` must be running (a task of the web app's cleanup context) for callbacks to fire.
    """

    def __init__(self) -> None:
        self._inotify = Inotify()
        self._folders: dict[Path, _Folder] = {}
        self._by_watch: dict[int, list[_Folder]] = {}
        """Watch descriptor -> the folders waiting on it (itself, or children yet to appear)."""

    def subscribe(self, folder: Path, callback: Callback) -> Callable[[], None]:
        """Call ``callback(name)`` on each change in ``folder``; returns the unsubscribe call.

        The folder need not exist yet: when it appears, the callback gets None.
        """
        folder = Path(os.path.abspath(folder))
        entry = self._folders.get(folder)
        if entry is None:
            entry = self._folders[folder] = _Folder(folder)
            self._arm(entry)
        entry.callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                entry.callbacks.remove(callback)
            if not entry.callbacks and self._folders.get(folder) is entry:
                del self._folders[folder]
                self._disarm(entry)

        return unsubscribe

    async def wait_for(self, path: Path, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` is true, checked now and after each notice about ``path``.

        Returns:
            The predicate's last value: False if ``timeout`` seconds passed first.
        """
        changed = asyncio.Event()
        name = path.name

        def notice(changed_name: str | None) -> None:
            if changed_name is None or changed_name == name:
                changed.set()

        unsubscribe = self.subscribe(path.parent, notice)
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await changed.wait()
                    changed.clear()
                return True
        except TimeoutError:
            return predicate()
        finally:
            unsubscribe()

    async def run(self) -> None:
        """Read inotify events and call the callbacks, until cancelled."""
        async for event in self._inotify:
            self._dispatch(event)

    def close(self) -> None:
        """Close the inotify descriptor (after ``run()`` has ended)."""
        self._inotify.close()

    def _arm(self, entry: _Folder) -> None:
        """Watch the folder, or its nearest existing parent while it does not exist."""
        target = entry.path
        while True:
            try:
                watch = self._inotify.add_watch(target, FILE_MASK | Mask.ONLYDIR)
            except (FileNotFoundError, NotADirectoryError):
                if target.parent == target:
                    raise
                target = target.parent
                continue
            if target == entry.path or not entry.path.is_dir():
                break
            # it appeared while the parent's watch was being set up
            if watch.wd not in self._by_watch:
                with contextlib.suppress(OSError):
                    self._inotify.rm_watch(watch)
            target = entry.path
        self._by_watch.setdefault(watch.wd, []).append(entry)
        entry.watch = watch if target == entry.path else None

    def _disarm(self, entry: _Folder) -> None:
        for wd, entries in list(self._by_watch.items()):
            if entry in entries:
                entries.remove(entry)
                if not entries:
                    del self._by_watch[wd]
                    watch = next((w for w in self._inotify.watches if w.wd == wd), None)
                    if watch is not None:
                        with contextlib.suppress(OSError):
                            self._inotify.rm_watch(watch)

    def _dispatch(self, event: Event) -> None:
        if Mask.Q_OVERFLOW in event.mask:
            log.warning("inotify queue overflowed: every watched folder re-read")
            for entry in list(self._folders.values()):
                self._notify(entry, None)
            return
        watch = event.watch
        if watch is None:
            return
        entries = self._by_watch.get(watch.wd, [])
        if event.mask & GONE_MASK:
            # the folder itself went away: wait for it again through its parent
            self._by_watch.pop(watch.wd, None)
            for entry in entries:
                if self._folders.get(entry.path) is entry:
                    self._arm(entry)
                    self._notify(entry, None)
            return
        if event.mask & (Mask.CREATE | Mask.ISDIR) == Mask.CREATE:
            return  # a file just made is empty: its CLOSE_WRITE or MOVED_TO follows
        name = str(event.name) if event.name is not None else None
        for entry in list(entries):
            if entry.watch is not None and entry.watch.wd == watch.wd:
                self._notify(entry, name)
            elif Mask.ISDIR in event.mask:  # perhaps the folder (or a parent of it) appeared
                entries.remove(entry)
                if not entries:
                    self._by_watch.pop(watch.wd, None)
                    with contextlib.suppress(OSError):
                        self._inotify.rm_watch(watch)
                self._arm(entry)
                if entry.watch is not None:
                    self._notify(entry, None)

    @staticmethod
    def _notify(entry: _Folder, name: str | None) -> None:
        for callback in list(entry.callbacks):
            try:
                callback(name)
            except Exception:  # one subscriber's bug must not silence the others
                log.exception("watch callback for %s failed", entry.path)
