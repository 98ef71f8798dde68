"""The RTMP sink's merged write over a real TCP socket pair: a batch the kernel takes at once
is written without a schedule point (issue 12: trio's send adds a reschedule to every batch);
what it does not take goes through the stream, in order."""

from __future__ import annotations

import socket

import trio

from relay.bus import Stream
from relay.drivers.net import plain_socket
from relay.drivers.rtmp_sink import RtmpStats, _Publish
from relay.rtmp.url import RtmpUrl

URL = RtmpUrl.parse("rtmp://127.0.0.1/live/key")


def publish_over(sock: socket.socket) -> _Publish:
    publish = _Publish(Stream("cam"), URL, RtmpStats(URL.redacted), trio.TASK_STATUS_IGNORED)
    publish.sock = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
    publish.raw = plain_socket(publish.sock)
    return publish


def read_all(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


async def test_a_batch_the_kernel_takes_is_written_without_a_schedule_point() -> None:
    ours, theirs = socket.socketpair()
    with theirs:
        publish = publish_over(ours)
        expected = bytes(publish.publisher._out)  # the handshake's C0+C1
        assert expected
        with trio.CancelScope() as scope:
            scope.cancel()  # any schedule point would raise Cancelled before the write
            await publish._flush()
        assert not scope.cancelled_caught
        assert read_all(theirs, len(expected)) == expected
        assert publish.stats.bytes_sent == len(expected)
        assert publish.raw is not None
        publish.raw.close()
        await publish.sock.aclose()


async def test_what_the_kernel_does_not_take_follows_through_the_stream() -> None:
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    batch = bytes(range(256)) * 8192  # 2 MiB: far more than the socket buffers hold
    with theirs:
        theirs.setblocking(False)
        publish = publish_over(ours)
        publish.publisher.data_to_send()  # the handshake, not part of this test
        publish.publisher._out += batch
        received = bytearray()

        async def reader() -> None:
            while len(received) < len(batch):
                await trio.lowlevel.wait_readable(theirs)
                received.extend(theirs.recv(65536))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await publish._flush()
        assert received == batch
        assert publish.stats.bytes_sent == len(batch)
        assert publish.raw is not None
        publish.raw.close()
        await publish.sock.aclose()
