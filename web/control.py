"""Requests from the web process to the relay's control socket (relay/drivers/control.py).

A request is one datagram ``KIND NAME`` to the ``relay.sock`` beside the snapshot that lists
stream NAME, sent at most once per ``REQUEST_INTERVAL`` per kind and stream however many viewers
ask; the socket never blocks (a full or absent socket drops the request: the asker waits for
the file it wants and gives up after its own timeout).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("web.control")

REQUEST_INTERVAL = 1.0


class RelayRequests:
    """Sends ``KIND NAME`` requests to the relay process that runs stream NAME.

    Args:
        relay_socket: the ``relay.sock`` of the relay that has a stream, or None if none has it.
        clock: monotonic seconds, for the rate limit.
    """

    def __init__(self, relay_socket: Callable[[str], Path | None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.relay_socket = relay_socket
        self.clock = clock
        self._sent: dict[tuple[str, str], float] = {}
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def close(self) -> None:
        self._socket.close()

    def request(self, kind: str, name: str) -> bool:
        """Ask for ``kind`` of stream ``name``; False if no relay has the stream."""
        now = self.clock()
        last = self._sent.get((kind, name))
        if last is not None and now - last < REQUEST_INTERVAL:
            return True
        path = self.relay_socket(name)
        if path is None:
            return False
        self._sent[kind, name] = now
        try:
            self._socket.sendto(f"{kind} {name}".encode(), os.fsencode(path))
        except OSError as exc:  # the relay is restarting: the asker's wait times out
            log.debug("%s %s to %s: %s", kind, name, path, exc.strerror or exc)
        return True
