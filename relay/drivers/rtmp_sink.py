"""Publishes one Stream to one RTMP destination and keeps it published: the trio side of
``RtmpPublisher``.

Each destination is its own bus subscriber, so a dead or slow destination never touches HLS or
the other destinations: its bounded queue drops frames up to the next keyframe (counted). A broken
connection ends ``run_rtmp_sink``; the stream's ``supervise()`` reconnects with backoff, and the
new session resumes from a keyframe (the bus's GOP cache). Timestamps sent within one publish
session never go backwards.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from relay.bus import Stream
from relay.codecs.h265 import hevc_decoder_configuration
from relay.drivers.net import open_stream, plain_socket
from relay.drivers.supervise import first_error
from relay.errors import ProtocolError, RelayError
from relay.media import Codec, Frame, Kind, Track
from relay.rtmp import flv
from relay.rtmp.ingest import Observed, check, check_enhanced_rtmp, rules_for
from relay.rtmp.publish import (
    Connected,
    MessageSkipped,
    PeerClosed,
    PublishFailed,
    PublishStarted,
    RtmpPublisher,
    State,
)
from relay.rtmp.url import RtmpUrl
from relay.sansio import NEED_DATA

log = logging.getLogger("relay.rtmp")

CONNECT_TIMEOUT = 10.0
QUEUE_FRAMES = 300
"""About 5 s of 25 fps video plus audio; a destination further behind drops to a keyframe."""
MAX_BATCH_BYTES = 1 << 20
"""Chunk bytes gathered for one write: more frames queued wait for the next, so a destination
that fell behind catches up in writes of bounded size."""

Opener = Callable[..., Awaitable[trio.abc.Stream]]
"""``open_stream``'s shape: (host, port, *, tls) to a connected stream; tests pass a memory one."""


@dataclass(slots=True)
class RtmpStats:
    """A destination's state for /api/streams (the URL kept redacted)."""

    destination: str
    state: str = "connecting"  # connecting | publishing | retrying | stopped (by supervise)
    last_error: str | None = None
    bytes_sent: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0
    reconnects: int = 0
    warnings: list[str] = field(default_factory=list)


async def run_rtmp_sink(
    stream: Stream,
    url: RtmpUrl,
    stats: RtmpStats,
    *,
    opener: Opener = open_stream,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Publish ``stream`` to ``url`` over one connection, until the stream closes.

    A refused publish or a broken connection raises (``RelayError``, ``OSError``); run under
    ``supervise()``, which reconnects. ``task_status.started()`` once the server publishes.
    """
    if not stream.tracks:
        # Sinks start before the source plays; connect must already say whether H.265
        # (Enhanced RTMP, fourCcList) is coming, so wait for the source's first frame. The
        # queue holds a tick's frames: a bound of 1 counted the rest as lost, and logged it.
        with stream.subscribe(name="rtmp first frame") as first:
            try:
                await first.receive()
            except trio.EndOfChannel:
                return
    await _Publish(stream, url, stats, task_status).run(opener)


class _Publish:
    """One connection: connect, publish, then send frames until something breaks."""

    def __init__(self, stream: Stream, url: RtmpUrl, stats: RtmpStats,
                 task_status: trio.TaskStatus[None]) -> None:
        self.stream = stream
        self.url = url
        self.stats = stats
        self.task_status = task_status
        hevc = any(t.codec is Codec.H265 for t in stream.tracks.values())
        self.publisher = RtmpPublisher(url, os.urandom(1528),
                                       fourcc_list=("hvc1", "avc1") if hevc else ())
        self.sock: trio.abc.Stream | None = None
        self.raw: socket.socket | None = None  # plain TCP: the batches' synchronous writes
        self.published = False
        self.started = trio.Event()
        self.failure: str | None = None
        self.sent_config: dict[int, Track] = {}
        self.base_ms: int | None = None
        self.last_key_ms: int | None = None
        self.longest_gop: float = 0.0
        self.rules = rules_for(url.host)
        self.connect_warnings: list[str] = []

    async def run(self, opener: Opener) -> None:
        with trio.move_on_after(CONNECT_TIMEOUT) as scope:
            sock = await opener(self.url.host, self.url.port, tls=self.url.scheme == "rtmps")
        if scope.cancelled_caught:
            raise RelayError(f"no answer from {self.url.host}:{self.url.port} within "
                             f"{CONNECT_TIMEOUT:.0f} s")
        self.sock = sock
        self.raw = plain_socket(sock)
        try:
            async with sock, trio.open_nursery() as nursery:
                nursery.start_soon(self._read)
                await self._flush()
                with trio.move_on_after(CONNECT_TIMEOUT) as scope:
                    await self.started.wait()
                if self.failure is not None:
                    raise RelayError(self.failure)
                if scope.cancelled_caught:
                    raise RelayError("the server did not start the publish within "
                                     f"{CONNECT_TIMEOUT:.0f} s")
                self.published = True
                self.task_status.started()
                log.info("stream=%s rtmp=%s publishing", self.stream.name, self.url.redacted)
                self._preflight()
                await self._send_frames()
                nursery.cancel_scope.cancel()  # the stream ended: stop reading, hang up
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        finally:
            if self.raw is not None:
                self.raw.close()

    async def _flush(self) -> None:
        """Sends what the publisher has: over plain TCP what the kernel takes at once is written
        without a schedule point (a batch per tick and stream, and trio's send would add a
        reschedule to each); the rest, and all over TLS, through the stream."""
        data = self.publisher.data_to_send()
        if data and self.sock is not None:
            sent = 0
            if self.raw is not None:
                try:
                    sent = self.raw.send(data)
                except OSError:
                    pass  # full (BlockingIOError), or broken: the stream's send raises why
            if sent < len(data):
                await self.sock.send_all(memoryview(data)[sent:])
            self.stats.bytes_sent += len(data)

    async def _read(self) -> None:
        assert self.sock is not None
        while True:
            data = await self.sock.receive_some(65536)
            self.publisher.receive_data(data)
            while (event := self.publisher.next_event()) is not NEED_DATA:
                if isinstance(event, PublishStarted):
                    self.started.set()
                elif isinstance(event, Connected):
                    self._connected(event)
                elif isinstance(event, MessageSkipped):
                    log.debug("stream=%s rtmp=%s skipped %s", self.stream.name,
                              self.url.redacted, event.what)
                elif isinstance(event, PublishFailed):
                    self.failure = f"publish refused: {event.code} {event.description}".strip()
                    self.started.set()
                    raise RelayError(self.failure)
                elif isinstance(event, PeerClosed):
                    if event.state is State.CONNECTING:
                        self.failure = ("the server closed the connection during connect "
                                        "(wrong application name?)")
                    else:
                        self.failure = "the server closed the connection"
                    self.started.set()
                    raise RelayError(self.failure)
            if not self.published:
                await self._flush()
            if not data:
                raise RelayError("the server closed the connection")

    async def _send_frames(self) -> None:
        with self.stream.subscribe(QUEUE_FRAMES, name="rtmp") as sub:
            try:
                async for frame in sub:
                    # Merged write (SRS, ZLMediaKit): one wakeup takes every frame already
                    # queued, and their chunks leave in one send_all.
                    self._frame(frame)
                    try:
                        while self.publisher.buffered < MAX_BATCH_BYTES:
                            self._frame(sub.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        pass  # the batch is complete; the stream's end ends the loop
                    self.stats.frames_dropped = sub.dropped
                    await self._flush()
            finally:
                self.stats.frames_dropped = sub.dropped
                with trio.move_on_after(1) as scope:
                    scope.shield = True
                    try:
                        self.publisher.close()
                        await self._flush()
                    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError,
                            ProtocolError):
                        pass

    def _frame(self, frame: Frame) -> None:
        track = frame.track
        clock = track.clock_rate
        dts_ms = frame.dts * 1000 // clock
        if self.base_ms is None:
            self.base_ms = dts_ms
        ms = dts_ms - self.base_ms
        if ms < 0:
            return  # from before the keyframe this publish starts at (audio lags in the bus)
        if track.kind is Kind.VIDEO:
            if self.sent_config.get(track.index) != track:
                self._video_config(track, ms)
            composition = (frame.pts - frame.dts) * 1000 // clock
            nals = frame.data
            assert isinstance(nals, tuple), "a video Frame carries NAL units"
            if track.codec is Codec.H265:
                body = flv.hevc_coded_frames(nals, frame.key, composition)
            else:
                body = flv.avc_nalus(nals, frame.key, composition)
            self.publisher.send_video(body, ms)
            if frame.key:
                self._keyframe(ms)
        elif track.codec is Codec.AAC:
            if self.sent_config.get(track.index) != track:
                self.publisher.send_audio(flv.aac_sequence_header(track.audio_config), ms)
                self.sent_config[track.index] = track
            aac = frame.data
            assert isinstance(aac, bytes), "an audio Frame carries bytes"
            self.publisher.send_audio(flv.aac_raw(aac), ms)
        else:
            return  # other audio needs transcoding first
        self.stats.frames_sent += 1

    def _video_config(self, track: Track, ms: int) -> None:
        if not self.sent_config:
            self.publisher.send_metadata(self._metadata(), ms)
        sets = track.parameter_sets
        if track.codec is Codec.H265 and len(sets) == 3:
            self.publisher.send_video(flv.hevc_sequence_start(hevc_decoder_configuration(*sets)),
                                      ms)
        elif track.codec is Codec.H264 and len(sets) == 2:
            self.publisher.send_video(flv.avc_sequence_header(*sets), ms)
        self.sent_config[track.index] = track

    def _metadata(self) -> dict[str, object]:
        video = next((t for t in self.stream.tracks.values() if t.kind is Kind.VIDEO), None)
        audio = next((t for t in self.stream.tracks.values() if t.codec is Codec.AAC), None)
        return flv.metadata(
            width=video.width if video else 0,
            height=video.height if video else 0,
            videocodecid=("hvc1" if video.codec is Codec.H265 else 7) if video else None,
            audiocodecid=10 if audio else None,
            audiosamplerate=audio.sample_rate if audio else 0,
            audiochannels=audio.channels if audio else 0,
        )

    def _keyframe(self, ms: int) -> None:
        if self.last_key_ms is not None:
            gop = (ms - self.last_key_ms) / 1000
            if gop > self.longest_gop + 0.5:
                self.longest_gop = gop
                self._preflight()
        self.last_key_ms = ms

    def _connected(self, event: Connected) -> None:
        """Say (once per session) what the server's connect reply means for the video."""
        video = next((t for t in self.stream.tracks.values() if t.kind is Kind.VIDEO), None)
        self.connect_warnings = check_enhanced_rtmp(video.codec if video else None,
                                                    event.maybe_video_fourccs())
        for problem in self.connect_warnings:
            log.warning("stream=%s rtmp=%s %s", self.stream.name, self.url.redacted, problem)
            if problem not in self.stats.warnings:
                self.stats.warnings.append(problem)

    def _preflight(self) -> None:
        """Check the stream against the destination's published rules; log what breaks."""
        tracks = list(self.stream.tracks.values())
        video = next((t for t in tracks if t.kind is Kind.VIDEO), None)
        audio = next((t for t in tracks if t.kind is Kind.AUDIO), None)
        problems = self.connect_warnings + check(self.rules, Observed(
            video_codec=video.codec if video else None,
            audio_codec=audio.codec if audio else None,
            audio_sample_rate=(audio.sample_rate or audio.clock_rate) if audio else None,
            keyframe_interval=self.longest_gop or None,
            height=video.height if video else None,
        ))
        for problem in problems:
            if problem not in self.stats.warnings:
                log.warning("stream=%s rtmp=%s ingest rule: %s", self.stream.name,
                            self.url.redacted, problem)
        self.stats.warnings = problems

