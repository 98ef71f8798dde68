"""A lossy network between an RTSP server and a client that takes RTP over UDP (loopback only).

RTSP over UDP negotiates its ports in SETUP (RFC 2326 12.39, the Transport header's
``client_port`` and ``server_port``), so a UDP impairment proxy must also carry the RTSP TCP
connection and rewrite those ports: the server is told to send to the proxy, the client is told
the server sits at the proxy. Per track, one thread relays

    server RTP  --(drop / hold back / duplicate)-->  client RTP
    server RTCP ---------------------------------->  client RTCP
    client RTCP ---------------------------------->  server RTCP

Impairments use a random generator seeded per track, so a run's choices are reproducible (the
packets they fall on depend on what the server sent). Counters say what was done::

    with LossyRtspProxy(server_port, loss=0.02, seed=7) as proxy:
        url = f"rtsp://127.0.0.1:{proxy.port}/cam"
        ...
        proxy.stats().dropped
        proxy.stats(track=0).frames  # access units the server sent on its first track
"""

from __future__ import annotations

import random
import re
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

HOST = "127.0.0.1"
MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
IDLE_FLUSH = 0.2  # seconds without RTP after which held-back packets are let go

_CLIENT_PORT = re.compile(rb"(?i)client_port=(\d+)(?:-(\d+))?")
_SERVER_PORT = re.compile(rb"(?i)server_port=(\d+)(?:-(\d+))?")
_CSEQ = re.compile(rb"(?im)^cseq:\s*(\d+)\s*$")
_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)\s*$")
_TRANSPORT = re.compile(rb"(?im)^transport:[^\r\n]*$")


@dataclass(slots=True)
class ProxyStats:
    """What the proxy did to RTP packets (RTCP passes untouched); ``frames`` counts the
    packets the server sent with the marker bit, which ends a video access unit (RFC 6184 5.1)."""

    received: int = 0
    frames: int = 0
    forwarded: int = 0
    dropped: int = 0
    reordered: int = 0
    duplicated: int = 0

    def add(self, other: ProxyStats) -> None:
        self.received += other.received
        self.frames += other.frames
        self.forwarded += other.forwarded
        self.dropped += other.dropped
        self.reordered += other.reordered
        self.duplicated += other.duplicated


def _udp_pair() -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on an even/odd port pair (RFC 3550 11) at 127.0.0.1."""
    for _ in range(100):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtp.bind((HOST, 0))
            port = rtp.getsockname()[1]
            if port % 2:
                raise OSError("odd port")
            rtcp.bind((HOST, port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        return rtp, rtcp
    raise OSError("no free UDP port pair")


class _TrackRelay(threading.Thread):
    """The UDP side of one SETUP: a socket pair facing the server, one facing the client."""

    def __init__(self, client_ports: tuple[int, int], rng: random.Random, loss: float,
                 reorder: float, duplicate: float) -> None:
        super().__init__(daemon=True, name="lossy-udp")
        self.client_ports = client_ports
        self.server_ports: tuple[int, int] | None = None
        self.up_rtp, self.up_rtcp = _udp_pair()  # the server sends here
        self.down_rtp, self.down_rtcp = _udp_pair()  # the client sees these as the server
        self.rng = rng
        self.loss = loss
        self.reorder = reorder
        self.duplicate = duplicate
        self.stats = ProxyStats()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._held: list[tuple[bytes, int]] = []  # (packet, packets still to pass it)

    @property
    def up_ports(self) -> tuple[int, int]:
        return self.up_rtp.getsockname()[1], self.up_rtcp.getsockname()[1]

    @property
    def down_ports(self) -> tuple[int, int]:
        return self.down_rtp.getsockname()[1], self.down_rtcp.getsockname()[1]

    def run(self) -> None:
        with selectors.DefaultSelector() as sel:
            for sock in (self.up_rtp, self.up_rtcp, self.down_rtp, self.down_rtcp):
                sel.register(sock, selectors.EVENT_READ)
            while not self.stopping.is_set():
                ready = sel.select(IDLE_FLUSH)
                if not ready:
                    self._flush_held()
                for key, _ in ready:
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        continue
                    self._route(sock, data)

    def _route(self, sock: socket.socket, data: bytes) -> None:
        client_rtp, client_rtcp = self.client_ports
        if sock is self.up_rtp:
            self._impair(data)
        elif sock is self.up_rtcp:
            self._send(self.down_rtcp, data, client_rtcp)
        elif sock is self.down_rtcp and self.server_ports is not None:
            self._send(self.up_rtcp, data, self.server_ports[1])
        elif sock is self.down_rtp and self.server_ports is not None:
            self._send(self.up_rtp, data, self.server_ports[0])

    def _impair(self, packet: bytes) -> None:
        port = self.client_ports[0]
        draw = self.rng.random()
        with self.lock:
            self.stats.received += 1
            self.stats.frames += packet[1] >> 7 if len(packet) > 1 else 0
            if draw < self.loss:
                self.stats.dropped += 1
                return
            if draw < self.loss + self.reorder:
                self.stats.reordered += 1
                self._held.append((packet, self.rng.randint(1, 3)))
                return
        self._forward(packet, port)
        if self.rng.random() < self.duplicate:
            with self.lock:
                self.stats.duplicated += 1
            self._forward(packet, port)
        held, self._held = self._held, []
        for late, behind in held:
            if behind <= 1:
                self._forward(late, port)
            else:
                self._held.append((late, behind - 1))

    def _flush_held(self) -> None:
        held, self._held = self._held, []
        for packet, _ in held:
            self._forward(packet, self.client_ports[0])

    def _forward(self, packet: bytes, port: int) -> None:
        with self.lock:
            self.stats.forwarded += 1
        self._send(self.down_rtp, packet, port)

    @staticmethod
    def _send(sock: socket.socket, data: bytes, port: int) -> None:
        try:
            sock.sendto(data, (HOST, port))
        except OSError:
            pass  # nobody listens there (yet / any more): as a network would, lose it

    def close(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(2)
        for sock in (self.up_rtp, self.up_rtcp, self.down_rtp, self.down_rtcp):
            sock.close()


def _ports(match: re.Match[bytes]) -> tuple[int, int]:
    first = int(match.group(1))
    return first, int(match.group(2)) if match.group(2) else first + 1


class _RtspConnection:
    """One client connection: two pumps that pass RTSP messages through, rewriting SETUP."""

    def __init__(self, proxy: LossyRtspProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = socket.create_connection((HOST, proxy.upstream_port), timeout=10)
        self.server.settimeout(None)
        self.pending: dict[bytes, _TrackRelay] = {}  # SETUP CSeq -> its track relay
        self.threads = [
            threading.Thread(target=self._pump, args=(client, self.server, self._request),
                             daemon=True, name="lossy-rtsp-up"),
            threading.Thread(target=self._pump, args=(self.server, client, self._response),
                             daemon=True, name="lossy-rtsp-down"),
        ]
        for thread in self.threads:
            thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket,
              rewrite: Callable[[bytes], bytes]) -> None:
        buffer = b""
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                buffer += data
                while (message := self._take(buffer)) is not None:
                    size, head, body = message
                    buffer = buffer[size:]
                    sink.sendall(rewrite(head) + body if head is not None else body)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    @staticmethod
    def _take(buffer: bytes) -> tuple[int, bytes | None, bytes] | None:
        """The next whole message: interleaved frame (RFC 2326 10.12) or head + body."""
        if buffer[:1] == b"$":
            if len(buffer) < 4:
                return None
            size = 4 + int.from_bytes(buffer[2:4], "big")
            return (size, None, buffer[:size]) if len(buffer) >= size else None
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise OSError("RTSP head too long")
            return None
        head = buffer[: end + 4]
        length = _LENGTH.search(head)
        body_size = int(length.group(1)) if length else 0
        if body_size > MAX_BODY:
            raise OSError("RTSP body too long")
        size = end + 4 + body_size
        if len(buffer) < size:
            return None
        return size, head, buffer[end + 4 : size]

    def _request(self, head: bytes) -> bytes:
        if not head.upper().startswith(b"SETUP ") or not _CLIENT_PORT.search(head):
            return head
        match = _CLIENT_PORT.search(head)
        assert match is not None
        relay = self.proxy._new_track(_ports(match))
        cseq = _CSEQ.search(head)
        self.pending[cseq.group(1) if cseq else b""] = relay
        up_rtp, up_rtcp = relay.up_ports
        return _CLIENT_PORT.sub(f"client_port={up_rtp}-{up_rtcp}".encode(), head)

    def _response(self, head: bytes) -> bytes:
        if not head.startswith(b"RTSP/"):
            return head
        cseq = _CSEQ.search(head)
        relay = self.pending.pop(cseq.group(1) if cseq else b"", None)
        if relay is None:
            return head

        def rewrite(line: re.Match[bytes]) -> bytes:
            text = line.group(0)
            server = _SERVER_PORT.search(text)
            if server is not None:
                relay.server_ports = _ports(server)
                down_rtp, down_rtcp = relay.down_ports
                text = _SERVER_PORT.sub(f"server_port={down_rtp}-{down_rtcp}".encode(), text)
            client_rtp, client_rtcp = relay.client_ports
            return _CLIENT_PORT.sub(f"client_port={client_rtp}-{client_rtcp}".encode(), text)

        return _TRANSPORT.sub(rewrite, head)

    def close(self) -> None:
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self.threads:
            thread.join(2)
        self.client.close()
        self.server.close()


class LossyRtspProxy:
    """An RTSP proxy on 127.0.0.1 whose RTP-over-UDP path loses, reorders and duplicates.

    Args:
        upstream_port: the RTSP server's TCP port on 127.0.0.1.
        loss: fraction of RTP packets dropped.
        reorder: fraction of RTP packets held back behind the next 1-3 packets.
        duplicate: fraction of forwarded RTP packets sent twice.
        seed: seeds the generator of each track (track n uses ``seed + n``).
    """

    def __init__(self, upstream_port: int, *, loss: float = 0.02, reorder: float = 0.01,
                 duplicate: float = 0.005, seed: int = 1) -> None:
        self.upstream_port = upstream_port
        self.loss = loss
        self.reorder = reorder
        self.duplicate = duplicate
        self.seed = seed
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._tracks: list[_TrackRelay] = []
        self._connections: list[_RtspConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, daemon=True, name="lossy-accept")
        self._acceptor.start()

    def _accept(self) -> None:
        self._listener.settimeout(0.2)  # a blocked accept() does not wake when closed
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            client.settimeout(None)
            try:
                connection = _RtspConnection(self, client)
            except OSError:
                client.close()  # the server is down: the client sees the connection close
                continue
            with self._lock:
                self._connections.append(connection)

    def _new_track(self, client_ports: tuple[int, int]) -> _TrackRelay:
        with self._lock:
            rng = random.Random(self.seed + len(self._tracks))
            relay = _TrackRelay(client_ports, rng, self.loss, self.reorder, self.duplicate)
            self._tracks.append(relay)
        relay.start()
        return relay

    def stats(self, track: int | None = None) -> ProxyStats:
        """What has been done so far to RTP, summed over every track of every session, or
        for the ``track``-th SETUP only (0: the first, usually video)."""
        total = ProxyStats()
        with self._lock:
            tracks = list(self._tracks) if track is None else self._tracks[track : track + 1]
        for track in tracks:
            with track.lock:
                total.add(track.stats)
        return total

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._acceptor.join(2)
        self._listener.close()
        with self._lock:
            connections, tracks = list(self._connections), list(self._tracks)
        for connection in connections:
            connection.close()
        for track in tracks:
            track.close()

    def __enter__(self) -> LossyRtspProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
