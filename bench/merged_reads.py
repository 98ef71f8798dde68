"""What reading costs per camera, by read design, with nothing parsed: CPU of the reading process.

    .venv/bin/python -m bench.merged_reads [--n 16] [--seconds 10] [--rate 240] [--size 1000]

A sender process writes ``--rate`` packets of ``--size`` bytes a second on each of ``--n`` TCP
connections over loopback (a 2 Mbit/s camera is about 240 RTP packets a second); the reader,
this process, reads them in one of three ways and only counts the bytes:

- ``per-packet``: one task per connection awaiting ``receive_some`` (the relay before merged
  reads): a trio wakeup per TCP segment.
- ``per-session``: one task per connection that waits until readable, reads until it would
  block, then sleeps one tick: one timer and one wakeup per connection per tick.
- ``ticker``: the relay's ``ReadTicker``: one task wakes each tick and reads every connection
  until it would block.

Printed: the reader's CPU seconds per connection per second, per design.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

import trio

from relay.drivers.ticker import DEFAULT_TICK, ReadTicker

SENDER = """
import socket, sys, time
port, n, rate, size, seconds = map(float, sys.argv[1:])
conns = [socket.create_connection(("127.0.0.1", int(port))) for _ in range(int(n))]
packet = b"$" + bytes(int(size) - 1)
period, start, sent = 1 / rate, time.monotonic(), 0
while time.monotonic() - start < seconds:
    for c in conns:
        c.sendall(packet)
    sent += 1
    time.sleep(max(0.0, start + sent * period - time.monotonic()))
"""


async def measure(design: str, n: int, seconds: float, rate: int, size: int) -> float:
    """The reader's CPU seconds per connection per second for one design."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    sender = subprocess.Popen([sys.executable, "-c", SENDER, str(port), str(n), str(rate),
                               str(size), str(seconds + 2)])
    conns = [listener.accept()[0] for _ in range(n)]
    listener.close()
    received = [0]
    try:
        async with trio.open_nursery() as nursery:
            for conn in conns:
                conn.setblocking(False)
                nursery.start_soon(READERS[design], conn, received)
            await trio.sleep(1)  # warm-up
            c0, r0 = time.process_time(), received[0]
            await trio.sleep(seconds)
            cpu, got = time.process_time() - c0, received[0] - r0
            nursery.cancel_scope.cancel()
    finally:
        sender.wait()
        for conn in conns:
            conn.close()
    expected = n * rate * size * seconds
    if got < 0.9 * expected:
        print(f"  {design}: read {got / expected:.0%} of what was sent (the machine is busy)")
    return cpu / n / seconds


def _drain(conn: socket.socket, received: list[int]) -> None:
    while True:
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        if not data:
            return
        received[0] += len(data)


async def per_packet(conn: socket.socket, received: list[int]) -> None:
    sock = trio.socket.from_stdlib_socket(conn)
    while data := await sock.recv(65536):
        received[0] += len(data)


async def per_session(conn: socket.socket, received: list[int]) -> None:
    while True:
        await trio.lowlevel.wait_readable(conn)
        _drain(conn, received)
        await trio.sleep(DEFAULT_TICK)


async def ticker(conn: socket.socket, received: list[int]) -> None:
    def drain(now: float) -> bool:
        _drain(conn, received)
        return False

    await ReadTicker.current().read(drain)


READERS = {"per-packet": per_packet, "per-session": per_session, "ticker": ticker}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.merged_reads",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=240, help="packets a second a connection")
    parser.add_argument("--size", type=int, default=1000, help="bytes a packet")
    args = parser.parse_args(argv)
    print(f"{args.n} connections, {args.rate} packets/s of {args.size} B each, "
          f"tick {DEFAULT_TICK * 1000:g} ms, load {os.getloadavg()[0]:.1f}")
    for design in READERS:
        cost = trio.run(measure, design, args.n, args.seconds, args.rate, args.size)
        print(f"{design:12s} {cost:.5f} CPU s per connection per second")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
