"""Pulls one RTSP source onto a Stream and keeps it there: the trio side of ``RtspClient``.

Media is read in merged reads (``relay.drivers.ticker``): once PLAY is answered, the process's
read ticker reads the connection (or each UDP socket) every tick until it would block and pushes
each read through the ingest in one synchronous call, which parses every interleaved frame of it
without copying (``MessageReader.take_interleaved``): no coroutine, channel operation or timer
per packet. The session's own task reads only until PLAY, and after it handles what is not
media (RTSP replies, the end of the connection), which the ticker hands back. rtsps:// and other
non-socket streams keep one ``receive_some`` loop, each read still parsed in one call. Beside
them: keepalives before the session times out, RTCP receiver reports every
few seconds, and a watchdog that ends the session when media stops. Any error ends the session
with one log line; ``run_rtsp_source`` reconnects with backoff (``supervise``), continuing the
same timeline.

RTP over UDP: each RTP socket asks for a large receive buffer (what the kernel granted is
logged and in /api), and with ``transport = "auto"`` a session whose loss stays above
``AUTO_TCP_LOSS`` for ``AUTO_TCP_SECONDS`` moves to TCP for good (docs/loss.md).

rtsps:// sources run the same session inside TLS (``relay.drivers.net``), RTP interleaved in it.
Credentials go only to the origin they were configured for, or to a HOST:PORT the stream's
``redirect_credentials`` lists: a redirect elsewhere is followed without them.
"""

from __future__ import annotations

import logging
import secrets
import socket
from dataclasses import dataclass, field
from functools import partial

import trio

from relay.audio.policy import AudioStage
from relay.bus import Stream
from relay.config import StreamConfig, redact_url
from relay.drivers.net import open_stream, plain_socket
from relay.drivers.supervise import EXPECTED, error_text, first_error, supervise
from relay.drivers.ticker import ReadTicker
from relay.errors import AuthError, RelayError, RemoteProtocolError, UnsupportedError
from relay.ingest import SourceIngest
from relay.media import Frame
from relay.rtp.registry import Depacketizer, make_depacketizer
from relay.rtp.rtcp import receiver_report_compound
from relay.rtp.sync import Timeline
from relay.rtp.timing import LossWindow
from relay.rtsp.client import (
    ClientEvent,
    Described,
    Origin,
    Playing,
    Redirected,
    RtspClient,
    UnsupportedTransport,
)
from relay.rtsp.message import ConnectionClosed
from relay.sansio import NEED_DATA
from relay.status import StreamStatus, TrackCounters

log = logging.getLogger("relay.rtsp")

CONNECT_TIMEOUT = 10.0
SETUP_TIMEOUT = 15.0
"""A server that accepts TCP but does not get to PLAY within this long is given up on."""
RTP_TIMEOUT = 10.0
"""A session whose media stops this long (camera hung, network gone) is reconnected."""
UDP_PROBE_TIMEOUT = 3.0
"""With --transport auto, UDP that brings no RTP in this long falls back to TCP."""
AUTO_TCP_LOSS = 0.01
AUTO_TCP_SECONDS = 10.0
"""With --transport auto, UDP losing more than AUTO_TCP_LOSS of a track's packets over the
last AUTO_TCP_SECONDS moves the stream to TCP (interleaved RTP is never lost)."""
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024
"""SO_RCVBUF asked for each RTP socket: about 3 s of 10 Mbit/s, so a burst (a keyframe) or a
busy event loop does not overflow the default ~200 KB. Linux doubles what it grants and caps
it at net.core.rmem_max; the grant is read back and reported."""
RR_INTERVAL = 5.0
MAX_REDIRECTS = 5
RECEIVE_SIZE = 65536
"""One read: a TCP read of this many bytes is parsed in one call; no datagram is larger."""
MAX_READS_PER_TICK = 64
"""TCP reads of one session per tick (4 MiB, 200 MB/s at 20 ms): a flood cannot hold the ticker
from the other streams; what is left waits in the kernel for the next tick."""
MAX_DATAGRAMS_PER_TICK = 1024
"""Likewise per UDP socket (51k packets a second at 20 ms)."""


class _NoUdpMedia(RelayError):
    pass


class _LossyUdp(RelayError):
    pass


class _Redirect(Exception):
    def __init__(self, url: str) -> None:
        self.url = url


@dataclass(slots=True)
class _Track:
    """A track's transport: what the driver needs to move its bytes (the rest is the ingest's)."""

    index: int
    rtcp_channel: int | None = None  # TCP interleaved
    rtcp_socket: trio.socket.SocketType | None = None  # UDP
    rtcp_address: tuple[str, int] | None = None
    sockets: list[trio.socket.SocketType] = field(default_factory=list)
    raw: list[socket.socket] = field(default_factory=list)  # the same, read by the ticker
    receive_buffer: int | None = None  # UDP: bytes the kernel granted the RTP socket
    loss: LossWindow = field(default_factory=lambda: LossWindow(AUTO_TCP_SECONDS))


async def run_rtsp_source(
    config: StreamConfig,
    stream: Stream,
    status: StreamStatus,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep ``config.source`` playing into ``stream`` until cancelled.

    ``task_status.started()`` at once: the sinks need not wait for the camera. Each try is one
    run of ``supervise()``, which retries with backoff and keeps the status's state.
    """
    timeline = Timeline()
    epoch = trio.current_time()
    tls = Origin.of(config.source.url).scheme == "rtsps"
    use_tcp = config.transport == "tcp" or tls
    if tls and config.transport == "udp":
        log.warning("stream=%s rtsps:// carries RTP inside its TLS connection: using TCP, "
                    "not UDP", config.name)

    async def connect(*, task_status: trio.TaskStatus[None]) -> None:
        """One try from the configured URL, until its session ends (it raises why). Redirects
        and the move to TCP are followed within the try: neither is a failure."""
        nonlocal use_tcp
        url = config.source.url
        redirects = 0
        try:
            while True:
                session = _Session(config, stream, status, timeline, epoch, url,
                                   "tcp" if use_tcp else "udp", task_status=task_status)
                try:
                    await session.run()
                    raise RelayError("the server closed the connection")
                except _Redirect as redirect:
                    redirects += 1
                    if redirects > MAX_REDIRECTS:
                        raise RelayError(f"more than {MAX_REDIRECTS} redirects") from None
                    url = redirect.url
                    log.info("stream=%s redirected to %s", config.name, redact_url(url))
                except (UnsupportedTransport, _NoUdpMedia, _LossyUdp) as exc:
                    if config.transport != "auto":
                        raise
                    log.warning("stream=%s %s; falling back to TCP", config.name, exc)
                    use_tcp = True
                    status.transport_fallbacks += isinstance(exc, _LossyUdp)
                except AuthError:
                    withheld = session.withheld_error()
                    if withheld is None:
                        raise
                    raise RelayError(withheld) from None
        except EXPECTED as exc:
            if not redirects:
                raise
            raise RelayError(f"{error_text(exc)} (redirected to {url})") from None

    task_status.started()
    await supervise(f"stream={config.name}", connect, status=status)


class _Session:
    """One RTSP connection from connect to teardown."""

    def __init__(
        self,
        config: StreamConfig,
        stream: Stream,
        status: StreamStatus,
        timeline: Timeline,
        epoch: float,
        url: str,
        transport: str,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        self.config = config
        self.task_status = task_status  # started() once playing: supervise() keeps the state
        self.stream = stream
        self.status = status
        self.timeline = timeline
        self.epoch = epoch
        self.url = url
        self.transport = transport
        self.origin = Origin.of(url)
        configured = Origin.of(config.source.url)
        trusted = self.origin == configured or self.origin.hostport in config.redirect_credentials
        self.withheld = config.source.username is not None and not trusted
        self.client = RtspClient(
            url, transport,
            config.source.username if trusted else None,
            config.source.password if trusted else None,
        )
        self.tracks: list[_Track] = []
        self.depacketizers: list[Depacketizer] = []
        self.ingest: SourceIngest | None = None  # from PLAY on
        self.sock: trio.abc.Stream | None = None
        self.raw: socket.socket | None = None  # a TCP connection's own socket, for the ticker
        self.ticker = ReadTicker.current()
        self.stashed: ClientEvent | None = None  # an event the ticker read, for this task
        self.write_lock = trio.Lock()
        self.played = False
        self.local_ssrc = secrets.randbits(32)
        self.audio = AudioStage(config.audio, needs_audio=bool(config.rtmp))
        # received, garbled, lost, dropped, damaged: the ingest's counts already in the status
        self.reported = (0, 0, 0, 0, 0)
        self.warned_oversized = False  # one line a session for oversized parameter sets

    def withheld_error(self) -> str | None:
        """The error for a host that asked for the credentials this session did not send."""
        if not self.withheld:
            return None
        return (f"the redirect target {self.origin} asks for credentials, which go only to "
                f"{Origin.of(self.config.source.url)} (to allow this host: "
                f'redirect_credentials = ["{self.origin.hostport}"])')

    async def run(self) -> None:
        host, port = self.origin.host, self.origin.port
        log.info("stream=%s connecting to %s over %s%s", self.config.name,
                 redact_url(self.url), self.transport.upper(),
                 " in TLS" if self.origin.scheme == "rtsps" else "")
        with trio.move_on_after(CONNECT_TIMEOUT) as scope:
            self.sock = await open_stream(host, port, tls=self.origin.scheme == "rtsps",
                                          fingerprint=self.config.tls_fingerprint)
        if scope.cancelled_caught or self.sock is None:
            raise RelayError(f"no answer from {host}:{port} within {CONNECT_TIMEOUT:.0f} s")
        try:
            async with self.sock, trio.open_nursery() as nursery:
                self.client.connect()
                await self._flush()
                nursery.start_soon(self._setup_deadline)
                await self._read(nursery)
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        finally:
            if self.ingest is not None:
                self._update_counters(self.ingest)
            if self.raw is not None:
                self.raw.close()
            for track in self.tracks:
                for sock in track.sockets:
                    sock.close()

    async def _flush(self) -> None:
        data = self.client.data_to_send()
        if data and self.sock is not None:
            async with self.write_lock:
                await self.sock.send_all(data)

    async def _read(self, nursery: trio.Nursery) -> None:
        assert self.sock is not None
        try:
            while True:
                if self.raw is not None:
                    await self.ticker.read(self._drain_tcp)
                else:
                    self.client.receive_data(await self.sock.receive_some(RECEIVE_SIZE))
                if await self._events(nursery):
                    return
                await self._flush()
        finally:
            if self.played:
                with trio.move_on_after(1) as scope:
                    scope.shield = True
                    try:
                        self.client.teardown()
                        await self._flush()
                    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError,
                            RelayError):
                        pass

    async def _events(self, nursery: trio.Nursery) -> bool:
        """Handles what the client has buffered, media in one pass; True once the connection
        is closed."""
        while True:
            event, self.stashed = self.stashed, None
            if event is None:
                if not self._pump(trio.current_time()):
                    break
                continue
            if isinstance(event, ConnectionClosed):
                return True
            await self._handle(event, nursery)
        if self.ingest is not None:
            self._update_counters(self.ingest)
            if self.raw is None and self.sock is not None:
                # playing over plain TCP: from now on the ticker reads the connection
                self.raw = plain_socket(self.sock)
        return False

    def _pump(self, now: float) -> bool:
        """Pushes the client's buffered media through the ingest and publishes the frames;
        True when an event that is not media waits in ``stashed``."""
        frames = self.client.take_interleaved()
        if frames and self.ingest is not None:
            self._publish(self.ingest.receive_interleaved(frames, now))
        event = self.client.next_event()
        if event is NEED_DATA:
            return False
        self.stashed = event  # not media: take_interleaved took all there was
        return True

    def _drain_tcp(self, now: float) -> bool:
        """The ticker's reader of the connection: reads until it would block; True when this
        session's task has something to do (an event, the end, an answer to send)."""
        assert self.raw is not None and self.ingest is not None
        for _ in range(MAX_READS_PER_TICK):
            try:
                data = self.raw.recv(RECEIVE_SIZE)
            except BlockingIOError:
                break
            self.client.receive_data(data)
            if self._pump(now):
                return True
        self._update_counters(self.ingest)
        return self.client.has_data_to_send

    async def _handle(self, event: object, nursery: trio.Nursery) -> None:
        if isinstance(event, Described):
            await self._setup(event)
        elif isinstance(event, Playing):
            self._playing(event, nursery)
        elif isinstance(event, Redirected):
            raise _Redirect(event.url)

    async def _setup(self, event: Described) -> None:
        chosen: list[int] = []
        skipped: list[str] = []
        for media_index, media in enumerate(event.sdp.media):
            if media.kind not in ("video", "audio"):
                continue
            try:
                depacketizer = make_depacketizer(
                    len(chosen), media.encoding or "", media.clock_rate or 90000,
                    media.channels or 1, media.fmtp_params,
                )
            except UnsupportedError as exc:
                skipped.append(f"{media.kind} {media.encoding or media.payload_type}")
                log.warning("stream=%s skipping %s track: %s", self.config.name, media.kind, exc)
                continue
            except RemoteProtocolError as exc:
                skipped.append(f"{media.kind} {media.encoding}")
                log.warning("stream=%s skipping %s track: %s", self.config.name, media.kind, exc)
                continue
            self.tracks.append(_Track(depacketizer.track.index))
            self.depacketizers.append(depacketizer)
            chosen.append(media_index)
        self.status.skipped_tracks = skipped
        if not chosen:
            raise RelayError("the source offers no track the relay can carry: "
                             + ", ".join(skipped))
        udp_ports = None
        if self.transport == "udp":
            udp_ports = [await self._bind_udp(track) for track in self.tracks]
        self.client.setup(chosen, udp_ports)

    async def _bind_udp(self, track: _Track) -> tuple[int, int]:
        """An RTP/RTCP socket pair on an even/odd port pair (RFC 3550 11)."""
        assert isinstance(self.sock, trio.SocketStream)  # UDP never goes with TLS
        family = self.sock.socket.family
        for _ in range(50):
            # stdlib sockets first: the ticker reads them, trio's wrappers bind and send
            raw = [socket.socket(family, socket.SOCK_DGRAM) for _ in range(2)]
            for sock in raw:
                sock.setblocking(False)
            rtp, rtcp = map(trio.socket.from_stdlib_socket, raw)
            try:
                await rtp.bind(("", 0))
                port = rtp.getsockname()[1]
                if port % 2:
                    raise OSError("odd port")
                await rtcp.bind(("", port + 1))
            except OSError:
                rtp.close()
                rtcp.close()
                continue
            rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
            track.receive_buffer = rtp.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            track.sockets = [rtp, rtcp]
            track.raw = raw
            return port, port + 1
        raise RelayError("no free UDP port pair for RTP")

    def _playing(self, event: Playing, nursery: trio.Nursery) -> None:
        channels: dict[int, tuple[int, bool]] = {}  # channel: track index, is RTCP
        for setup, track in zip(event.tracks, self.tracks, strict=True):
            if setup.interleaved is not None:
                rtp_channel, rtcp_channel = setup.interleaved
                channels[rtp_channel] = (track.index, False)
                channels[rtcp_channel] = (track.index, True)
                track.rtcp_channel = rtcp_channel
        ingest = self.ingest = SourceIngest(
            self.depacketizers, self.timeline, self.audio, epoch=self.epoch,
            reorder=self.transport == "udp", ssrcs=[setup.ssrc or 0 for setup in event.tracks],
            discontinuity=self.status.reconnects > 0, name=self.config.name, channels=channels,
        )
        self.stream.set_tracks(ingest.output_tracks)
        sock = self.sock
        server_ip = sock.socket.getpeername()[0] if isinstance(sock, trio.SocketStream) else ""
        for setup, track in zip(event.tracks, self.tracks, strict=True):
            if setup.interleaved is None:
                track.rtcp_socket = track.sockets[1]
                if setup.server_ports and setup.server_ports[1]:
                    track.rtcp_address = (server_ip, setup.server_ports[1])
                rtp, rtcp = track.raw
                for drain, raw in ((self._drain_udp_rtp, rtp), (self._drain_udp_rtcp, rtcp)):
                    nursery.start_soon(self.ticker.read,
                                       partial(drain, ingest, track.index, raw, server_ip))
        self._report_receive_buffers()
        self.played = True
        self.status.transport = self.transport
        self.task_status.started()
        log.info("stream=%s playing over %s: %s", self.config.name, self.transport.upper(),
                 ", ".join(f"{d.track.codec}" for d in self.depacketizers))
        nursery.start_soon(self._keepalive, self.client.session_timeout)
        nursery.start_soon(self._receiver_reports, ingest)
        nursery.start_soon(self._watchdog, ingest)

    def _report_receive_buffers(self) -> None:
        """Puts each track's granted UDP receive buffer (None over TCP) in the status, and
        logs the grant when it is new to this stream (once, not at every reconnect)."""
        granted = []
        for track in self.tracks:
            counters = self.status.tracks.setdefault(track.index, TrackCounters())
            if track.receive_buffer is not None and counters.udp_receive_buffer is None:
                granted.append(track.receive_buffer)
            counters.udp_receive_buffer = track.receive_buffer
        if granted:
            log.info("stream=%s UDP receive buffer: %s bytes granted of %d asked (Linux grants "
                     "twice the request, capped at net.core.rmem_max)", self.config.name,
                     ", ".join(map(str, granted)), UDP_RECEIVE_BUFFER)

    def _publish(self, frames: list[Frame]) -> None:
        for frame in frames:
            self.status.count(frame.track, frame.size)
            self.stream.publish(frame)

    def _drain_udp_rtp(self, ingest: SourceIngest, index: int, sock: socket.socket,
                       server_ip: str, now: float) -> bool:
        """The ticker's reader of a track's RTP socket: every datagram waiting, then the
        packets the reorder buffer gave up waiting for; their frames published in one pass."""
        frames: list[Frame] = []
        for _ in range(MAX_DATAGRAMS_PER_TICK):
            try:
                data, address = sock.recvfrom(RECEIVE_SIZE)
            except BlockingIOError:
                break
            if address[0] == server_ip:
                ready = ingest.receive_rtp(index, data, now)
                if ready:
                    frames += ready
        deadline = ingest.deadline(index)
        if deadline is not None and deadline <= now:
            frames += ingest.release_due(index, now)
        self._publish(frames)
        return False

    def _drain_udp_rtcp(self, ingest: SourceIngest, index: int, sock: socket.socket,
                        server_ip: str, now: float) -> bool:
        """The ticker's reader of a track's RTCP socket."""
        for _ in range(MAX_DATAGRAMS_PER_TICK):
            try:
                data, address = sock.recvfrom(RECEIVE_SIZE)
            except BlockingIOError:
                break
            if address[0] == server_ip:
                ingest.receive_rtcp(index, data, now)
        return False

    async def _keepalive(self, timeout: float) -> None:
        interval = max(1.0, timeout * 0.5)
        while True:
            await trio.sleep(interval)
            self.client.keepalive()
            await self._flush()

    async def _receiver_reports(self, ingest: SourceIngest) -> None:
        """RTCP receiver reports (RFC 3550 6.4.2), so the camera knows we are still there."""
        while True:
            await trio.sleep(RR_INTERVAL)
            blocks = ingest.report_blocks(trio.current_time())
            for track, block in zip(self.tracks, blocks, strict=True):
                report = receiver_report_compound(self.local_ssrc, [block], "relay")
                if track.rtcp_channel is not None:
                    self.client.send_interleaved(track.rtcp_channel, report)
                elif track.rtcp_socket is not None and track.rtcp_address is not None:
                    await track.rtcp_socket.sendto(report, track.rtcp_address)
            await self._flush()

    async def _setup_deadline(self) -> None:
        await trio.sleep(SETUP_TIMEOUT)
        if not self.played:
            raise RelayError(f"the server did not get to PLAY within {SETUP_TIMEOUT:.0f} s "
                             f"(stuck in {self.client.state.name})")

    async def _watchdog(self, ingest: SourceIngest) -> None:
        """Once a second, ends a session whose media stopped (or never came) and folds the
        counters into the status. Run by the read ticker, like the reads: a timer of its own
        per stream would cost a deadline's expiry (a cancellation) each second."""
        started = trio.current_time()
        due = started + 1

        def check(now: float) -> bool:
            nonlocal due
            if now < due:
                return False
            due = now + 1
            if ingest.last_media is None:
                auto = self.config.transport == "auto"
                if auto and self.transport == "udp" and now - started > UDP_PROBE_TIMEOUT:
                    raise _NoUdpMedia(f"no RTP over UDP within {UDP_PROBE_TIMEOUT:.0f} s")
                if now - started > RTP_TIMEOUT:
                    raise RelayError(f"no media within {RTP_TIMEOUT:.0f} s of PLAY")
            elif now - ingest.last_media > RTP_TIMEOUT:
                raise RelayError(f"media stopped for {RTP_TIMEOUT:.0f} s")
            self._update_counters(ingest)
            if self.config.transport == "auto" and self.transport == "udp":
                self._check_loss(ingest, now)
            return False

        await self.ticker.read(check)

    def _check_loss(self, ingest: SourceIngest, now: float) -> None:
        """Ends a UDP session (``run_rtsp_source`` moves it to TCP) whose loss stayed high."""
        for track, counted in zip(self.tracks, ingest.tracks, strict=True):
            fraction = track.loss.sample(counted.stats, now)
            if fraction is not None and fraction > AUTO_TCP_LOSS:
                raise _LossyUdp(
                    f"track {track.index} lost {fraction:.1%} of its RTP packets over UDP in "
                    f"the last {AUTO_TCP_SECONDS:.0f} s (more than {AUTO_TCP_LOSS:.0%})")

    def _update_counters(self, ingest: SourceIngest) -> None:
        """Fold what the ingest counted since the last call into the status: after each TCP
        read, each second (the watchdog) and at the end of the session."""
        counts = (ingest.packets_received, ingest.packets_garbled + ingest.payloads_bad,
                  ingest.packets_lost, ingest.frames_dropped, ingest.frames_damaged)
        if counts == self.reported:
            return
        received, garbled, lost, dropped, damaged = self.reported
        self.status.packets_received += counts[0] - received
        self.status.packets_garbled += counts[1] - garbled
        self.status.packets_lost += counts[2] - lost
        self.status.frames_dropped += counts[3] - dropped
        self.status.frames_damaged += counts[4] - damaged
        self.reported = counts
        if not self.warned_oversized and ingest.oversized_parameter_sets:
            self.warned_oversized = True
            log.warning("stream=%s in-band parameter sets over the size limit "
                        "(MAX_PARAMETER_SET_SIZE): their access units are dropped",
                        self.config.name)
