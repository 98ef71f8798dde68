"""``relay demo``'s camera: the built-in test camera served over real RTSP on loopback.

The camera (relay.demo.camera) encodes a moving pattern with a burned-in clock and a tone; this
driver packetizes it once and sends it, interleaved over TCP, to every client that PLAYs, with
RTCP sender reports so clients can align audio and video. ``relay.app.run_demo`` then pulls it like
any other camera, so the demo exercises the same path a real camera does.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial

import trio

from relay.demo.camera import TestCamera
from relay.errors import RelayError
from relay.media import Frame, Kind
from relay.rtp.aac import AacPacketizer, aac_fmtp
from relay.rtp.h264 import H264Packetizer, h264_fmtp
from relay.rtp.rtcp import SenderReport
from relay.rtsp.message import ConnectionClosed
from relay.rtsp.server import PlayRequested, RtspServerConnection, TornDown, interleave
from relay.sansio import NEED_DATA

log = logging.getLogger("relay.demo")

PATH = "/demo"
TICK = 0.010
CLIENT_QUEUE = 1024
"""Chunks of RTP queued per client; a client this far behind is disconnected."""
NTP_EPOCH_OFFSET = 2208988800


@dataclass(slots=True, eq=False)
class _Client:
    send: trio.MemorySendChannel[bytes]
    channels: dict[int, tuple[int, int]] = field(default_factory=dict)  # track -> (rtp, rtcp)


class _Broadcast:
    """Packetizes the camera once and hands the RTP to every playing client."""

    def __init__(self, camera: TestCamera) -> None:
        self.camera = camera
        self.clients: set[_Client] = set()
        ssrc = secrets.randbits(32)
        self.tracks = [camera.video_track, camera.audio_track]
        self.video_packetizer = H264Packetizer(96, ssrc, sequence=secrets.randbits(16))
        self.audio_packetizer = AacPacketizer(97, ssrc + 1 & 0xFFFFFFFF,
                                              sequence=secrets.randbits(16))
        self.ssrcs = {0: ssrc, 1: ssrc + 1 & 0xFFFFFFFF}
        self.offsets = {0: secrets.randbits(32), 1: secrets.randbits(32)}
        self.counts = {0: [0, 0], 1: [0, 0]}  # packets, octets for sender reports

    def sdp(self) -> str:
        video, audio = self.tracks
        return (
            "v=0\r\n"
            f"o=- {secrets.randbits(31)} 1 IN IP4 127.0.0.1\r\n"
            "s=Relay test camera\r\n"
            "c=IN IP4 127.0.0.1\r\n"
            "t=0 0\r\n"
            "a=control:*\r\n"
            "m=video 0 RTP/AVP 96\r\n"
            "a=rtpmap:96 H264/90000\r\n"
            f"a=fmtp:96 {h264_fmtp(video)}\r\n"
            "a=control:track0\r\n"
            "m=audio 0 RTP/AVP 97\r\n"
            f"a=rtpmap:97 MPEG4-GENERIC/{audio.clock_rate}/{audio.channels}\r\n"
            f"a=fmtp:97 {aac_fmtp(audio)}\r\n"
            "a=control:track1\r\n"
        )

    def rtp_timestamp(self, index: int, pts: int) -> int:
        return (pts + self.offsets[index]) & 0xFFFFFFFF

    def send(self, frames: list[Frame]) -> None:
        for frame in frames:
            index = frame.track.index
            ts = self.rtp_timestamp(index, frame.pts)
            data = frame.data
            if isinstance(data, tuple):  # video: NAL units
                packets = self.video_packetizer.packetize(data, ts)
            else:
                packets = self.audio_packetizer.packetize([data], ts)
            wires = [bytes(p) for p in packets]
            self.counts[index][0] += len(wires)
            self.counts[index][1] += sum(len(p.payload) for p in packets)
            self._fan_out(index, wires, rtcp=False)

    def sender_reports(self, media_time: float, wall: float) -> None:
        ntp = int((wall + NTP_EPOCH_OFFSET) * (1 << 32))
        for index, track in enumerate(self.tracks):
            packets, octets = self.counts[index]
            report = SenderReport(
                ssrc=self.ssrcs[index],
                ntp_timestamp=ntp,
                rtp_timestamp=self.rtp_timestamp(index, round(media_time * track.clock_rate)),
                packet_count=packets & 0xFFFFFFFF,
                octet_count=octets & 0xFFFFFFFF,
                reports=(),
            )
            self._fan_out(index, [bytes(report)], rtcp=True)

    def _fan_out(self, index: int, wires: list[bytes], rtcp: bool) -> None:
        for client in tuple(self.clients):
            channels = client.channels.get(index)
            if channels is None:
                continue
            channel = channels[1] if rtcp else channels[0]
            try:
                for wire in wires:
                    client.send.send_nowait(interleave(channel, wire))
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self.clients.discard(client)
                client.send.close()


async def serve_test_camera(
    camera: TestCamera,
    listeners: list[trio.SocketListener],
    *,
    audio_delay: float = 0.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the camera at PATH on the given listeners until cancelled.

    ``audio_delay`` sends audio that many seconds late (its timestamps unchanged), as cameras
    with a buffering audio path do: only the sender reports then tell how the tracks line up.
    """
    broadcast = _Broadcast(camera)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_pace, broadcast, audio_delay)
        nursery.start_soon(partial(trio.serve_listeners, partial(_serve_client, broadcast),
                                   listeners))
        task_status.started()


async def _pace(broadcast: _Broadcast, audio_delay: float) -> None:
    """Encode against the clock; the encoder runs in a thread so the relay's loop stays free."""
    start = trio.current_time()
    next_report = 0.0
    held: deque[tuple[float, Frame]] = deque()  # audio waiting out audio_delay
    while True:
        now = trio.current_time()
        media_time = now - start
        frames = await trio.to_thread.run_sync(broadcast.camera.encode_until, media_time)
        if audio_delay:
            held.extend((now + audio_delay, f) for f in frames if f.track.kind is Kind.AUDIO)
            frames = [f for f in frames if f.track.kind is Kind.VIDEO]
            while held and held[0][0] <= now:
                frames.append(held.popleft()[1])
        broadcast.send(frames)
        if media_time >= next_report:
            broadcast.sender_reports(media_time, time.time())
            next_report = media_time + 1.0
        await trio.sleep(TICK)


async def _serve_client(broadcast: _Broadcast, sock: trio.SocketStream) -> None:
    send, receive = trio.open_memory_channel[bytes](CLIENT_QUEUE)
    client = _Client(send)
    connection = RtspServerConnection(lambda path: broadcast.sdp() if path == PATH else None)
    try:
        async with sock, trio.open_nursery() as nursery:
            nursery.start_soon(_write, sock, receive)
            while True:
                data = await sock.receive_some(65536)
                connection.receive_data(data)
                while (event := connection.next_event()) is not NEED_DATA:
                    if isinstance(event, ConnectionClosed):
                        break
                    if isinstance(event, PlayRequested):
                        client.channels = {
                            int(key[-1]) if isinstance(key, str) else key: channels
                            for key, channels in event.channels.items()
                        }
                        broadcast.clients.add(client)
                    elif isinstance(event, TornDown):
                        broadcast.clients.discard(client)
                reply = connection.data_to_send()
                if reply:
                    await send.send(reply)
                if not data:
                    break
            nursery.cancel_scope.cancel()
    except* (RelayError, trio.BrokenResourceError, OSError) as group:
        # one client's reset or garbage ends that client only, never the camera
        log.debug("demo camera client closed: %s", group.exceptions[0])
    finally:
        broadcast.clients.discard(client)


async def _write(sock: trio.SocketStream, receive: trio.MemoryReceiveChannel[bytes]) -> None:
    async for chunk in receive:
        await sock.send_all(chunk)
    await sock.aclose()
