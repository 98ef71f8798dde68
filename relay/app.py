"""The relay process: one nursery holding every stream, its sinks and the web process.

Each stream gets its own nursery (a source task and a task per sink); a sink that fails is
restarted with backoff without touching the source or the other sinks, and a stream that fails
never touches another. SIGINT/SIGTERM cancel everything; drivers close cleanly under shields
(the open HLS segment is listed, RTSP sessions are torn down) and the process exits 0.
"""

from __future__ import annotations

import logging
import shutil
import signal
import tempfile
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import trio

from relay.bus import Stream
from relay.config import Config, StreamConfig
from relay.drivers.supervise import Backoff
from relay.drivers.hls_sink import HlsStats, run_hls_sink
from relay.drivers.rtmp_sink import RtmpStats, run_rtmp_sink
from relay.drivers.rtsp_source import run_rtsp_source
from relay.drivers.web_process import publish_status, run_web
from relay.errors import RelayError
from relay.status import StreamStatus

log = logging.getLogger("relay")


def run(config: Config, demo_segment_seconds: float | None = None) -> None:
    """Run the relay (or, with ``demo_segment_seconds``, the demo) until SIGINT/SIGTERM."""
    if demo_segment_seconds is not None:
        from relay.drivers.demo_camera import run_demo

        trio.run(run_demo, config, demo_segment_seconds)
    else:
        trio.run(partial(run_relay, config, started=_announce))


def _announce(address: str) -> None:
    print(f"relay: open {address} to watch", flush=True)


async def run_relay(
    config: Config,
    *,
    before: Callable[[trio.Nursery], Awaitable[None]] | None = None,
    started: Callable[[str], None] | None = None,
) -> None:
    """Run every configured stream until SIGINT/SIGTERM.

    Args:
        config: what to relay.
        before: started first in the main nursery (the demo camera), awaited until it is up.
        started: called with the page's address once the web process is listening.
    """
    runtime = Path(tempfile.mkdtemp(prefix="relay-"))
    hls_dir = config.server.hls_dir
    hls_dir.mkdir(parents=True, exist_ok=True)
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_stop_on_signal, signals, nursery.cancel_scope)
                if before is not None:
                    await before(nursery)
                statuses = []
                for stream_config in config.streams:
                    status = StreamStatus(
                        stream_config.name, str(stream_config.source), Stream(stream_config.name)
                    )
                    statuses.append(status)
                    nursery.start_soon(run_stream, stream_config, status, hls_dir)
                status_file = runtime / "status.json"
                nursery.start_soon(publish_status, statuses, status_file)
                await nursery.start(run_web, config.server.http, hls_dir, status_file)
                host, port = config.server.http
                if started is not None:
                    started(f"http://{host}:{port}/")
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


async def _stop_on_signal(signals: trio.abc.ReceiveChannel[int], scope: trio.CancelScope) -> None:
    async for signum in signals:
        log.info("received %s; stopping", signal.Signals(signum).name)
        scope.cancel()
        return


async def run_stream(config: StreamConfig, status: StreamStatus, hls_dir: Path) -> None:
    """One stream: its source and its sinks, in a nursery of their own."""
    try:
        async with trio.open_nursery() as nursery:
            sinks = []
            if config.hls:
                status.hls = HlsStats()
                sinks.append((f"stream={config.name} hls", run_hls_sink, status.stream,
                              hls_dir / config.name, config.segment_seconds, config.window,
                              status.hls))
            for url in config.rtmp:
                stats = RtmpStats(url.redacted)
                status.rtmp.append(stats)
                sinks.append((f"stream={config.name} rtmp={url.redacted}", run_rtmp_sink,
                              status.stream, url, stats))
            await nursery.start(run_rtsp_source, config, status.stream, status)
            for what, sink, *args in sinks:
                nursery.start_soon(_supervise, what, sink, *args)
    finally:
        status.state = "stopped"
        status.stream.close()


async def _supervise(what: str, task: Callable[..., Awaitable[None]], *args: object) -> None:
    """Run a sink, restarting it with backoff when it fails; Cancelled passes through."""
    backoff = Backoff()
    while True:
        try:
            await task(*args)
            return
        except Exception as exc:  # a sink's bug must not take the stream down
            delay = backoff.next()
            log.error("%s failed: %s; restarting in %.0f s", what, exc, delay,
                      exc_info=not isinstance(exc, RelayError | OSError))
            await trio.sleep(delay)
