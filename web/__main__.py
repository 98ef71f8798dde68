"""``python -m web --http HOST:PORT --hls-dir DIR --status FILE...``: serve Relay over HTTP.

Optional: ``--thumbnails DIR`` (the relay's ``NAME.jpg`` thumbnails), ``--token-file PATH``
(or the ``RELAY_API_TOKEN`` environment variable) to require a bearer token on /api/ and
/metrics, and ``--protect-hls`` to require it on /hls/ too.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

from aiohttp import web

from web.app import make_app
from web.auth import TOKEN_ENV, TokenError, load_token


def parse_http(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) to a (host, port) pair."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--http: expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


PARENT_CHECK_SECONDS = 1.0


def exit_with_parent(parent: int) -> Callable[[web.Application], AsyncIterator[None]]:
    """Stop (as on SIGTERM) once ``parent`` is gone: never outlive the relay.

    The relay passes its pid (``--parent-pid``): a parent that died while this process was still
    starting would otherwise go unnoticed, the orphan's ``getppid()`` already being its reaper's.
    """
    return partial(_exit_with_parent, parent)


async def _exit_with_parent(parent: int, app: web.Application) -> AsyncIterator[None]:
    async def watch() -> None:
        while os.getppid() == parent:
            await asyncio.sleep(PARENT_CHECK_SECONDS)
        logging.warning("parent process %d is gone; stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    task = asyncio.create_task(watch())
    yield
    task.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m web", description=__doc__)
    parser.add_argument("--http", type=parse_http, default=("127.0.0.1", 8080),
                        help="address to listen on (default 127.0.0.1:8080)")
    parser.add_argument("--hls-dir", type=Path, required=True, help="the relay's HLS folder")
    parser.add_argument("--status", type=Path, required=True, action="append",
                        help="the JSON status snapshot the relay rewrites (repeated: one per "
                             "media process, merged)")
    parser.add_argument("--thumbnails", type=Path, default=None, metavar="DIR",
                        help="folder of NAME.jpg thumbnails the relay writes")
    parser.add_argument("--token-file", type=Path, default=None, metavar="PATH",
                        help=f"bearer token required on /api/ and /metrics (default: the "
                             f"{TOKEN_ENV} environment variable; neither: open)")
    parser.add_argument("--parent-pid", type=int, default=None, metavar="PID",
                        help="stop when this process is gone (default: the parent process)")
    parser.add_argument("--protect-hls", action="store_true",
                        help="require the token on /hls/ too (hls.js sends it; Safari's "
                             "native player cannot)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="web: %(message)s", stream=sys.stderr)
    try:
        token = load_token(args.token_file)
    except TokenError as exc:
        parser.exit(2, f"python -m web: {exc}\n")
    if args.protect_hls and token is None:
        parser.exit(2, f"python -m web: --protect-hls needs --token-file or {TOKEN_ENV}\n")
    host, port = args.http
    app = make_app(args.hls_dir, args.status, thumbnails_dir=args.thumbnails, token=token,
                   protect_hls=args.protect_hls)
    app.cleanup_ctx.append(exit_with_parent(args.parent_pid or os.getppid()))
    # no banner: the relay announces the address, and Ctrl-C goes to the relay, not here
    web.run_app(app, host=host, port=port, access_log=None, shutdown_timeout=2.0, print=None)


if __name__ == "__main__":
    main()
