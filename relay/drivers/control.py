"""Driver: the relay's control socket, where the web process asks for work only a viewer needs.

``relay.sock`` is a unix datagram socket in the runtime folder, beside the status snapshot (the
folder is the relay's own, mode 0700). Each datagram is one request, ``KIND NAME`` in UTF-8:

- ``thumb NAME``: a dashboard card shows stream NAME; its thumbnail driver encodes a fresh JPEG.
- ``ll-want NAME``: someone reads NAME's LL-HLS playlist (the LL-HLS muxer's kind: its handler is
  added to the same table passed to ``serve_control``).

Handlers are plain calls (``Wants.want`` for both kinds): a request is cheap and never awaits.
Datagrams are hostile input: one longer than ``MAX_DATAGRAM_BYTES``, not UTF-8, of an unknown
kind or naming something that is not a stream name is dropped with one warning (debug lines
after that: only this user can reach the socket, but a broken sender must not flood the log).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path

import trio

from relay.config import NAME_RE

log = logging.getLogger("relay.control")

SOCKET_NAME = "relay.sock"
"""The socket's file name in the runtime folder (beside the status snapshot)."""
MAX_DATAGRAM_BYTES = 256


class Wants:
    """Requests by stream name: ``want(name)`` wakes whoever is in ``wait(name)``.

    A want that finds nobody waiting is dropped: the waiter is busy serving the previous one,
    whose result the asker gets as well.
    """

    def __init__(self) -> None:
        self._events: dict[str, trio.Event] = {}

    def want(self, name: str) -> None:
        event = self._events.pop(name, None)
        if event is not None:
            event.set()

    async def wait(self, name: str, timeout: float = math.inf) -> bool:
        """Wait for a want of ``name``; False if ``timeout`` seconds passed first."""
        event = self._events.get(name)
        if event is None:
            event = self._events[name] = trio.Event()
        with trio.move_on_after(timeout):
            await event.wait()
            return True
        return False


def parse_request(data: bytes, kinds: Mapping[str, object]) -> tuple[str, str]:
    """Split a datagram into (kind, stream name).

    Raises:
        ValueError: why the datagram is refused (too long, not UTF-8, unknown kind, bad name).
    """
    if len(data) > MAX_DATAGRAM_BYTES:
        raise ValueError(f"datagram over {MAX_DATAGRAM_BYTES} bytes")
    try:
        kind, _, name = data.decode("utf-8").partition(" ")
    except UnicodeDecodeError:
        raise ValueError("datagram not UTF-8") from None
    if kind not in kinds:
        raise ValueError(f"unknown request kind {kind[:32]!r}")
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"{kind}: not a stream name: {name[:64]!r}")
    return kind, name


async def serve_control(
    path: Path,
    handlers: Mapping[str, Callable[[str], None]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Bind ``path`` and hand each request's stream name to its kind's handler, until cancelled.

    ``started()`` once bound, so a request sent after it is never lost.
    """
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM)
    with sock:
        path.unlink(missing_ok=True)  # left by a relay that was killed
        await sock.bind(str(path))
        task_status.started()
        warned = False
        while True:
            data = await sock.recv(MAX_DATAGRAM_BYTES + 1)
            try:
                kind, name = parse_request(data, handlers)
            except ValueError as exc:
                (log.debug if warned else log.warning)("control socket %s: %s", path.name, exc)
                warned = True
                continue
            handlers[kind](name)
