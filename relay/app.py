"""The relay process: one nursery holding the supervisor's streams and the web process.

A ``Supervisor`` runs each enabled stream in a cancel scope of its own and restarts it with
backoff (``supervise()``, relay/drivers/supervise.py) when it fails; inside a stream
(``run_stream``) the source and each sink are tasks of one nursery, and a sink that fails is
restarted the same way without touching the source or the other sinks. ``Supervisor.apply``
takes a new config (SIGHUP): added streams start, removed ones are cancelled (the HLS playlist
gets ENDLIST, RTSP is torn down), changed ones restart once the old run has finished, unchanged
ones are not touched. SIGINT/SIGTERM cancel everything; drivers close cleanly under shields and
the process exits 0.
"""

from __future__ import annotations

import gc
import logging
import math
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import trio

from relay.backoff import HEALTHY_AFTER, Backoff
from relay.bus import Stream
from relay.config import Config, SourceUrl, StreamConfig, load_config
from relay.demo.camera import TestCamera
from relay.drivers.control import SOCKET_NAME, Wants, serve_control
from relay.drivers.demo_camera import PATH, serve_test_camera
from relay.drivers.hls_sink import HlsStats, run_hls_sink
from relay.drivers.ll_hls_sink import LlStats, run_ll_hls
from relay.drivers.rtmp_sink import RtmpStats, run_rtmp_sink
from relay.drivers.rtsp_source import run_rtsp_source
from relay.drivers.supervise import supervise
from relay.drivers.thumbnails import run_thumbnails
from relay.drivers.ticker import ReadTicker
from relay.drivers.web_process import run_web
from relay.drivers.workers import WorkerCommand, WorkerPool, worker_folder
from relay.errors import ConfigError, RelayError
from relay.files import DiskErrors
from relay.logs import LogOutput, Redactor
from relay.shards import EVERY_STREAM, Assignment
from relay.status import Snapshotter, StreamStatus
from relay.status_schema import Snapshot, encode_snapshot

log = logging.getLogger("relay")

STATUS_INTERVAL = 1.0
"""How often the status snapshot is built and, if it changed, rewritten (seconds)."""
STATUS_HEARTBEAT = 5.0
"""The longest an unchanged snapshot goes unwritten: well within the web process's
FRESH_SECONDS, after which it calls the relay stale."""

GC_YOUNG_THRESHOLD = 7000
"""Allocations (less deallocations) of tracked objects between young-generation collections:
CPython's default is 700."""

StreamRunner = Callable[[StreamConfig, StreamStatus, Path], Awaitable[None]]


def run(config: Config, logs: LogOutput, demo_segment_seconds: float | None = None,
        config_path: Path | None = None, assignment: Assignment = EVERY_STREAM,
        workers: WorkerCommand | None = None) -> None:
    """Run the relay (or, with ``demo_segment_seconds``, the demo) until SIGINT/SIGTERM.

    Args:
        config: what to relay.
        logs: the process's log output (its secrets are set from the config).
        demo_segment_seconds: run the built-in demo camera instead, with this segment target.
        config_path: the file ``config`` came from; SIGHUP reloads it.
        assignment: the streams of ``config`` this process runs (``--shard``).
        workers: run the streams in these worker processes instead (``--workers`` over 1).
    """
    settle_gc()
    if demo_segment_seconds is not None:
        trio.run(run_demo, config, logs, demo_segment_seconds)
    else:
        trio.run(partial(run_relay, config, logs, started=_announce, config_path=config_path,
                         assignment=assignment, workers=workers))


def run_worker(config: Config, logs: LogOutput, config_path: Path, assignment: Assignment,
               runtime: Path, parent_fd: int) -> None:
    """One worker process of ``relay run --workers N`` (``run_worker_process``)."""
    settle_gc()
    trio.run(run_worker_process, config, logs, config_path, assignment, runtime, parent_fd)


def settle_gc() -> None:
    """Readies the collector for a media process, once its modules are loaded.

    What start-up allocated (modules, trio, PyAV, the config) is frozen out of every collection,
    and the youngest generation is collected a tenth as often: media objects (frames, packets)
    hold no cycles and are freed by their reference counts, so frequent collections would only
    walk the long-lived objects again.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _announce(address: str) -> None:
    print(f"relay: open {address} to watch", flush=True)


async def run_demo(config: Config, logs: LogOutput, segment_seconds: float) -> None:
    """Start the test camera on a free loopback port and relay it as the stream 'demo'."""
    camera = TestCamera()
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    source = SourceUrl.parse(f"rtsp://127.0.0.1:{port}{PATH}", "demo")
    stream = StreamConfig(name="demo", source=source, transport="tcp",
                          segment_seconds=segment_seconds)
    log.info("demo camera serving %s", source)

    async def before(nursery: trio.Nursery) -> None:
        await nursery.start(serve_test_camera, camera, listeners)

    def announce(address: str) -> None:
        print(f"relay demo: open {address} to watch the test camera", flush=True)

    await run_relay(replace(config, streams=(stream,)), logs, before=before, started=announce)


async def run_relay(
    config: Config,
    logs: LogOutput,
    *,
    before: Callable[[trio.Nursery], Awaitable[None]] | None = None,
    started: Callable[[str], None] | None = None,
    config_path: Path | None = None,
    assignment: Assignment = EVERY_STREAM,
    workers: WorkerCommand | None = None,
) -> None:
    """Run every enabled stream of ``config`` until SIGINT/SIGTERM.

    Args:
        config: what to relay.
        logs: the process's log output; its secrets are set from the config.
        before: started first in the main nursery (the demo camera), awaited until it is up.
        started: called with the page's address once the web process is listening.
        config_path: reloaded on SIGHUP (without it SIGHUP is ignored).
        assignment: the streams of ``config`` this process runs (``--shard``).
        workers: run the streams in worker processes instead (each its part of
            ``assignment``'s shard); this process then only supervises them and the web process.
    """
    runtime = Path(tempfile.mkdtemp(prefix="relay-"))
    hls_dir = config.server.hls_dir
    hls_dir.mkdir(parents=True, exist_ok=True)
    logs.redact.set_secrets(_log_secrets(config))
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            async with trio.open_nursery() as nursery:
                if before is not None:
                    await before(nursery)
                thumbnails = runtime / "thumbnails"
                thumbnails.mkdir()
                token_file = None
                if config.server.token:
                    token_file = runtime / "api-token"
                    token_file.touch(mode=0o600)
                    token_file.write_text(config.server.token)
                on_hup: Callable[[], None] | None = None
                if workers is None:
                    status_files = [runtime / "status.json"]
                    supervisor = _serve_streams(nursery, config, logs, assignment, thumbnails,
                                                status_files[0])
                    if config_path is not None:
                        on_hup = partial(reload, supervisor, config_path, logs)
                else:
                    pool = WorkerPool(workers, runtime)
                    status_files = pool.status_files
                    nursery.start_soon(pool.run)
                    if config_path is not None:
                        on_hup = partial(pool.reload, _parent_reload(config, config_path, logs))
                nursery.start_soon(_on_signals, signals, nursery.cancel_scope, on_hup)
                await nursery.start(partial(run_web, thumbnails=thumbnails, token_file=token_file),
                                    config.server.http, hls_dir, status_files)
                host, port = config.server.http
                if started is not None:
                    started(f"http://{host}:{port}/")
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def _serve_streams(nursery: trio.Nursery, config: Config, logs: LogOutput,
                   assignment: Assignment, thumbnails: Path, status_file: Path) -> Supervisor:
    """Start this process's streams of ``config`` and the status snapshot that reports them."""
    ReadTicker.configure(config.server.tick)
    thumbnail_wants = Wants()
    ll_wants = Wants()
    # the control socket beside the snapshot: the web process asks the process that lists a stream
    nursery.start_soon(serve_control, status_file.parent / SOCKET_NAME,
                       {"thumb": thumbnail_wants.want, "ll-want": ll_wants.want})
    supervisor = Supervisor(nursery, config.server.hls_dir, partial(
        run_stream, thumbnails=thumbnails, thumbnail_wants=thumbnail_wants, ll_wants=ll_wants),
        owns=assignment.owns)
    supervisor.apply(config)
    nursery.start_soon(publish_status, supervisor, status_file, logs.redact)
    return supervisor


async def run_worker_process(config: Config, logs: LogOutput, config_path: Path,
                             assignment: Assignment, runtime: Path, parent_fd: int) -> None:
    """Run one worker's streams until SIGTERM, or until its parent is gone.

    The parent (``WorkerPool``) holds the write end of the pipe ``parent_fd`` reads: it reads as
    end-of-file once the parent has exited, however it ended (SIGKILL included), so a worker
    never outlives its relay and nothing polls for it.
    """
    config.server.hls_dir.mkdir(parents=True, exist_ok=True)
    logs.redact.set_secrets(_log_secrets(config))
    folder = worker_folder(runtime, assignment.worker)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            supervisor = _serve_streams(nursery, config, logs, assignment, runtime / "thumbnails",
                                        folder / "status.json")
            nursery.start_soon(_on_signals, signals, nursery.cancel_scope,
                               partial(reload, supervisor, config_path, logs))
            await trio.lowlevel.wait_readable(parent_fd)
            log.warning("worker=%d the relay that started it is gone; stopping",
                        assignment.worker)
            nursery.cancel_scope.cancel()


def _parent_reload(config: Config, path: Path, logs: LogOutput) -> Callable[[], bool]:
    """The supervising process's part of a reload: check the file once (one error line, not one
    per worker) and follow its log settings; the check returns True if the workers should
    reload the file."""
    current = config

    def check() -> bool:
        nonlocal current
        try:
            new = load_config(path)
        except ConfigError as exc:
            log.error("reload failed, still running the previous config: %s", exc)
            return False
        logs.redact.set_secrets(_log_secrets(new) + _log_secrets(current))
        if new.server.log_format != current.server.log_format:
            logs.use_config_format(new.server.log_format)
        current = new
        return True

    return check


async def _on_signals(
    signals: AsyncIterator[int],
    scope: trio.CancelScope,
    on_hup: Callable[[], None] | None,
) -> None:
    async for signum in signals:
        if signum == signal.SIGHUP:
            if on_hup is None:
                log.info("received SIGHUP; no config file to reload")
            else:
                on_hup()
            continue
        log.info("received %s; stopping", signal.Signals(signum).name)
        scope.cancel()
        return


def reload(supervisor: Supervisor, path: Path, logs: LogOutput) -> None:
    """Load ``path`` again and apply it; a file that does not load leaves everything running."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        log.error("reload failed, still running the previous config: %s", exc)
        return
    old = supervisor.config
    logs.redact.set_secrets(_log_secrets(config) + (_log_secrets(old) if old else []))
    if old is not None:
        for key in ("http", "hls_dir", "token"):
            if getattr(old.server, key) != getattr(config.server, key):
                log.warning("reload: server.%s changed; restart the relay to apply it", key)
        if old.server.log_format != config.server.log_format:
            logs.use_config_format(config.server.log_format)
    ReadTicker.configure(config.server.tick)
    changes = supervisor.apply(config)
    log.info("reloaded %s: %s", path, ", ".join(
        f"{what} {' '.join(names) or '-'}" for what, names in changes.items()))


def _log_secrets(config: Config) -> list[str]:
    """The config's credentials to scrub from log lines; one that is also a stream name (a demo
    stream key such as "camera1") is left alone, or every line about that stream would be
    scrubbed."""
    names = {s.name for s in config.streams}
    return [s for s in config.secrets() if s not in names]


@dataclass(eq=False, slots=True)
class _Entry:
    config: StreamConfig
    status: StreamStatus
    scope: trio.CancelScope
    done: trio.Event


class Supervisor:
    """Runs one task per enabled stream, each restarted on its own with backoff.

    Args:
        nursery: where the stream tasks live.
        hls_dir: the HLS root handed to each run.
        runner: runs one stream until cancelled (``run_stream``; tests pass fakes).
        backoff: makes each stream's retry schedule.
        healthy_after: a run this long resets the stream's backoff.
        owns: whether a stream (by name) is this process's to run (``--shard``, ``--workers``);
            the others of the config are left to their own process.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        hls_dir: Path,
        runner: StreamRunner | None = None,
        *,
        backoff: Callable[[], Backoff] = Backoff,
        healthy_after: float = HEALTHY_AFTER,
        owns: Callable[[str], bool] = EVERY_STREAM.owns,
    ) -> None:
        self._nursery = nursery
        self._owns = owns
        self._hls_dir = hls_dir
        self._runner = runner or run_stream
        self._backoff = backoff
        self._healthy_after = healthy_after
        self._entries: dict[str, _Entry] = {}
        self._last_run: dict[str, trio.Event] = {}
        self.config: Config | None = None
        self.statuses: list[StreamStatus] = []
        """The running streams' statuses in config order; updated in place by ``apply``."""

    def stream_config(self, name: str) -> StreamConfig | None:
        entry = self._entries.get(name)
        return entry.config if entry is not None else None

    def apply(self, config: Config) -> dict[str, list[str]]:
        """Make the running set match ``config``'s enabled streams.

        Returns:
            The names ``started``, ``stopped``, ``restarted`` and ``unchanged``.
        """
        positions = {s.name: i for i, s in enumerate(config.streams)}
        wanted = {s.name: s for s in config.streams if s.enabled and self._owns(s.name)}
        changes: dict[str, list[str]] = {
            "started": [], "stopped": [], "restarted": [], "unchanged": []}
        for name in list(self._entries):
            if name not in wanted:
                log.info("stream=%s stopping (removed or disabled in the config)", name)
                self._entries.pop(name).scope.cancel()
                changes["stopped"].append(name)
        for name, stream_config in wanted.items():
            running = self._entries.get(name)
            if running is None:
                status = StreamStatus(name, str(stream_config.source), Stream(name))
                self._start(stream_config, status)
                changes["started"].append(name)
            elif running.config != stream_config:
                log.info("stream=%s restarting: its config changed", name)
                running.scope.cancel()
                # The same status object: counters and the page's card carry on.
                running.status.source = str(stream_config.source)
                self._start(stream_config, running.status)
                changes["restarted"].append(name)
            else:
                changes["unchanged"].append(name)
            self._entries[name].status.position = positions[name]
        self.statuses[:] = [self._entries[name].status for name in wanted]
        self.config = config
        return changes

    def _start(self, config: StreamConfig, status: StreamStatus) -> None:
        entry = _Entry(config, status, trio.CancelScope(), trio.Event())
        previous = self._last_run.get(config.name)
        self._entries[config.name] = entry
        self._last_run[config.name] = entry.done
        self._nursery.start_soon(self._run, entry, previous, name=f"stream {config.name}")

    async def _run(self, entry: _Entry, previous: trio.Event | None) -> None:
        name = entry.config.name
        try:
            with entry.scope:
                if previous is not None:
                    # one writer per HLS folder: the old run must finish its ENDLIST first
                    await previous.wait()
                await supervise(f"stream={name}", partial(self._run_once, entry),
                                status=entry.status, final_state="stopped",
                                backoff=self._backoff(),
                                healthy_after=self._healthy_after)
        finally:
            entry.done.set()
            if self._last_run.get(name) is entry.done:
                del self._last_run[name]

    async def _run_once(self, entry: _Entry, *, task_status: trio.TaskStatus[object]) -> None:
        """One run of the stream: an end without an error is a failure too (it is restarted)."""
        entry.status.stream = Stream(entry.config.name)  # a run closes its stream when it ends
        await self._runner(entry.config, entry.status, self._hls_dir)
        raise RelayError("the stream's tasks ended")


async def run_stream(config: StreamConfig, status: StreamStatus, hls_dir: Path, *,
                     thumbnails: Path | None = None,
                     thumbnail_wants: Wants | None = None,
                     ll_wants: Wants | None = None) -> None:
    """One stream: its source and its sinks, in a nursery of their own.

    Args:
        config: the stream.
        status: its live state, kept across restarts.
        hls_dir: the HLS root; the stream writes ``hls_dir/NAME``.
        thumbnails: where the web process finds ``NAME.jpg`` (the page's live thumbnail).
        thumbnail_wants: the web process's requests for thumbnails (with ``thumbnails``).
        ll_wants: the web process's ``ll-want`` requests, which start an on-demand LL-HLS muxer
            (without them only ``ll_hls = "always"`` runs one).
    """
    status.hls = None
    status.rtmp = []
    if status.ll_hls is None or status.ll_hls.mode != config.ll_hls:  # kept across restarts
        status.ll_hls = LlStats(mode=config.ll_hls)
    name = config.name
    sinks: list[Callable[[], Awaitable[None]]] = []
    if config.hls:
        status.hls = HlsStats()
        sinks.append(partial(supervise, f"stream={name} hls", partial(
            run_hls_sink, status.stream, hls_dir / name, config.segment_seconds, config.window,
            status.hls, disk=status.disk)))
    if config.ll_hls == "always" or (config.ll_hls == "on-demand" and ll_wants is not None):
        sinks.append(partial(supervise, f"stream={name} ll-hls", partial(
            run_ll_hls, status.stream, hls_dir / name, config.ll_hls, config.part_seconds,
            ll_wants or Wants(), disk=status.disk, stats=status.ll_hls)))
    for url in config.rtmp:
        stats = RtmpStats(url.redacted)
        status.rtmp.append(stats)
        sinks.append(partial(supervise, f"stream={name} rtmp={url.redacted}",
                             partial(run_rtmp_sink, status.stream, url, stats),
                             status=stats, up_state="publishing"))
    if thumbnails is not None and thumbnail_wants is not None:
        sinks.append(partial(supervise, f"stream={name} thumbnails", partial(
            run_thumbnails, status.stream, thumbnails / f"{name}.jpg", thumbnail_wants,
            config.thumbnail_seconds, disk=status.disk)))
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_rtsp_source, config, status.stream, status)
            for sink in sinks:
                nursery.start_soon(sink)
    finally:
        status.stream.close()


async def publish_status(supervisor: Supervisor, path: Path, redact: Redactor,
                         disk: DiskErrors | None = None) -> None:
    """Keep the web process's snapshot current (the running set's); write it only on a change.

    Once a second the snapshot (the typed ``Snapshot`` of relay/status_schema.py) is built and
    compared with the last one written, its time aside: only a changed snapshot is encoded and
    written, so streams that do nothing (stopped, retrying, a relay with none) cost no write.
    Every ``STATUS_HEARTBEAT`` it is written anyway: its ``updated`` tells the web process the
    relay is alive. Each stream entry also carries ``hls_push``: the origin URL (credentials
    included; the file is private to the relay and its web process) that the web process PUTs
    HLS to. A write the disk refuses (a full TMPDIR) is recorded in ``disk`` and tried again a
    second later; the web process serves the previous snapshot meanwhile. The write runs in a
    worker thread: a hung disk never stalls the loop that carries the media. Error texts leave
    the process here, so ``redact`` scrubs the configured secrets from them.
    """
    disk = disk if disk is not None else DiskErrors("relay")
    snapshotter = Snapshotter(redact)

    def hls_push(name: str) -> str | None:
        config = supervisor.stream_config(name)
        return config.hls_push if config is not None else None

    written: Snapshot | None = None
    written_at = -math.inf
    while True:
        now = trio.current_time()
        snapshot = snapshotter.snapshot(supervisor.statuses, now, time.time(), disk, hls_push)
        if (written is None or now - written_at >= STATUS_HEARTBEAT
                or snapshot.streams != written.streams
                or (snapshot.disk_errors, snapshot.disk_error)
                != (written.disk_errors, written.disk_error)):
            if await trio.to_thread.run_sync(disk.write, "status snapshot", path,
                                             encode_snapshot(snapshot)):
                written, written_at = snapshot, now
        await trio.sleep(STATUS_INTERVAL)


def run_camera(listen: tuple[str, int]) -> None:
    """``relay camera``: serve the built-in test camera over RTSP until SIGINT/SIGTERM."""
    trio.run(serve_camera, listen)


async def serve_camera(
    listen: tuple[str, int],
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the test camera at ``rtsp://HOST:PORT/demo``; ``started()`` with the bound port."""
    host, port = listen
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]

    current = listeners

    async def serve(*, task_status: trio.TaskStatus[object]) -> None:
        """One run of the camera server: an error escaping it restarts it (``supervise``)."""
        nonlocal current
        if not current:  # serving closes its listeners when it ends
            current = await trio.open_tcp_listeners(bound, host=host)
        try:
            async with trio.open_nursery() as inner:
                await inner.start(serve_test_camera, TestCamera(), current)
                task_status.started()
        finally:
            current = []

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(supervise, "camera server", serve)
            log.info("camera serving rtsp://%s:%d%s", host, bound, PATH)
            print(f"relay camera: serving rtsp://{host}:{bound}{PATH}", flush=True)
            task_status.started(bound)
            async for signum in signals:
                log.info("received %s; stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
