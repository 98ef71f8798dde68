"""Server side of one RTSP 1.0 connection (RFC 2326 section 10), sans-IO, for the demo camera
and for scripted-peer tests of the client.

Serves OPTIONS, DESCRIBE (SDP from a callback, with Content-Base), SETUP over TCP interleaved only
(a UDP-only request gets 461), PLAY, TEARDOWN and GET_PARAMETER/SET_PARAMETER keepalives, with
optional Digest/Basic auth. One session per connection. RTP goes out with ``interleave``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from relay.errors import RemoteProtocolError
from relay.rtsp.auth import DigestServer
from relay.rtsp.headers import Headers, SessionHeader, Transport
from relay.rtsp.message import (
    ConnectionClosed,
    InterleavedFrame,
    MessageReader,
    Request,
    Response,
    interleave,
)
from relay.rtsp.sdp import SessionDescription, resolve_control
from relay.sansio import NEED_DATA, NeedData

__all__ = ["PlayRequested", "RtspServerConnection", "TornDown", "interleave"]

PUBLIC = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER, SET_PARAMETER"


@dataclass(frozen=True, slots=True)
class PlayRequested:
    """PLAY accepted (its reply is already queued): start sending RTP.

    ``channels`` maps the media index in the SDP to its (RTP, RTCP) interleaved channels.
    """

    path: str
    channels: dict[int, tuple[int, int]]
    session_id: str


@dataclass(frozen=True, slots=True)
class TornDown:
    """The client tore the session down (its reply is already queued): stop sending."""

    session_id: str


ServerEvent = PlayRequested | TornDown | InterleavedFrame | ConnectionClosed | NeedData


class RtspServerConnection:
    """One client connection to the demo RTSP server.

    Args:
        describe: URL path -> SDP text, or None for 404.
        auth: when set, every method but OPTIONS needs valid credentials.
        session_id_factory: new session ids (random hex by default).
        server_name: Server header.
        session_timeout: seconds announced in the Session header.
    """

    def __init__(
        self,
        describe: Callable[[str], str | None],
        auth: DigestServer | None = None,
        session_id_factory: Callable[[], str] = lambda: secrets.token_hex(8).upper(),
        server_name: str = "Relay demo",
        session_timeout: int = 60,
    ) -> None:
        self._describe = describe
        self._auth = auth
        self._session_id_factory = session_id_factory
        self.server_name = server_name
        self.session_timeout = session_timeout
        self._reader = MessageReader()
        self._out = bytearray()
        self._events: list[ServerEvent] = []
        self._presentations: dict[str, SessionDescription] = {}
        self.session_id: str | None = None
        self.path: str | None = None
        self.channels: dict[int, tuple[int, int]] = {}
        self.playing = False

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the socket (``b""`` at EOF)."""
        self._reader.receive_data(data)

    def data_to_send(self) -> bytes:
        """Responses (and frames queued with ``send_interleaved``) since the last call."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def send_interleaved(self, channel: int, data: bytes | memoryview) -> None:
        """Queue an interleaved frame behind any queued response."""
        self._out += interleave(channel, data)

    def next_event(self) -> ServerEvent:
        """The next event or ``NEED_DATA``; requests are answered as they are read.

        Raises:
            RemoteProtocolError: malformed input from the client.
        """
        while not self._events:
            event = self._reader.next_event()
            if event is NEED_DATA or type(event) is InterleavedFrame:
                return event
            if isinstance(event, ConnectionClosed):
                return event
            if isinstance(event, Request):
                self._on_request(event)
            # A Response from the client answers nothing we sent: ignore it.
        return self._events.pop(0)

    # -- requests -------------------------------------------------------------------------------

    def _reply(
        self,
        req: Request,
        status: int,
        reason: str,
        extra: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        headers = Headers()
        cseq = req.headers.get("CSeq")
        if cseq is not None and cseq.strip().isdigit() and len(cseq.strip()) < 19:
            headers["CSeq"] = cseq.strip()
        headers["Server"] = self.server_name
        if self.session_id is not None and req.method not in ("OPTIONS", "DESCRIBE"):
            headers["Session"] = str(SessionHeader(self.session_id, self.session_timeout))
        for name, value in extra or ():
            headers.add(name, value)
        self._out += bytes(Response(status, reason, headers, body))

    def _on_request(self, req: Request) -> None:
        if req.cseq is None:
            self._reply(req, 400, "Bad Request")
            return
        if self._auth is not None and req.method != "OPTIONS":
            user = self._auth.verify(req.method, req.uri, req.headers.get("Authorization"))
            if user is None:
                self._reply(
                    req,
                    401,
                    "Unauthorized",
                    [("WWW-Authenticate", c) for c in self._auth.challenges()],
                )
                return
        handler = {
            "OPTIONS": self._options,
            "DESCRIBE": self._describe_request,
            "SETUP": self._setup,
            "PLAY": self._play,
            "TEARDOWN": self._teardown,
            "GET_PARAMETER": self._keepalive,
            "SET_PARAMETER": self._keepalive,
        }.get(req.method)
        if handler is None:
            self._reply(req, 501, "Not Implemented", [("Public", PUBLIC)])
            return
        if req.method not in ("OPTIONS", "DESCRIBE", "SETUP") and not self._session_ok(req):
            self._reply(req, 454, "Session Not Found")
            return
        handler(req)

    def _session_ok(self, req: Request) -> bool:
        value = req.headers.get("Session")
        if value is None:
            return req.method in ("GET_PARAMETER", "SET_PARAMETER") and self.session_id is None
        try:
            return SessionHeader.parse(value).id == self.session_id
        except RemoteProtocolError:
            return False

    def _options(self, req: Request) -> None:
        self._reply(req, 200, "OK", [("Public", PUBLIC)])

    def _describe_request(self, req: Request) -> None:
        path = urlsplit(req.uri).path.rstrip("/") or "/"
        found = self._presentation(path)
        if found is None:
            self._reply(req, 404, "Not Found")
            return
        body = found.serialize().encode()
        base = req.uri.rstrip("/") + "/"
        headers = [("Content-Base", base), ("Content-Type", "application/sdp")]
        self._reply(req, 200, "OK", headers, body)

    def _presentation(self, path: str) -> SessionDescription | None:
        if path not in self._presentations:
            text = self._describe(path)
            if text is None:
                return None
            self._presentations[path] = SessionDescription.parse(text)
        return self._presentations[path]

    def _find_track(self, uri: str) -> tuple[str, int] | None:
        parts = urlsplit(uri)
        origin = f"{parts.scheme}://{parts.netloc}"
        path = parts.path.rstrip("/")
        candidates = [path.rpartition("/")[0] or "/", path or "/"]
        for candidate in candidates:
            found = self._presentation(candidate)
            if found is None:
                continue
            base = origin + candidate.rstrip("/") + "/"
            for index, media in enumerate(found.media):
                if resolve_control(base, media.control).rstrip("/") == uri.rstrip("/"):
                    return candidate, index
            if len(found.media) == 1 and candidate == (path or "/"):
                return candidate, 0  # SETUP on the presentation URL of a single-track stream
        return None

    def _setup(self, req: Request) -> None:
        if self.session_id is not None and not self._session_ok(req):
            self._reply(req, 454, "Session Not Found")
            return
        track = self._find_track(req.uri)
        if track is None:
            self._reply(req, 404, "Not Found")
            return
        path, index = track
        if self.path is not None and path != self.path:
            self._reply(req, 459, "Aggregate Operation Not Allowed")
            return
        try:
            specs = Transport.parse_all(req.headers.get("Transport") or "")
        except RemoteProtocolError:
            self._reply(req, 400, "Bad Request")
            return
        tcp = next((s for s in specs if s.is_tcp and not s.multicast), None)
        if tcp is None:
            self._reply(req, 461, "Unsupported Transport")
            return
        used = {ch for pair in self.channels.values() for ch in pair}
        pair = tcp.interleaved
        if pair is None or pair[0] in used or pair[1] in used:
            first = next(c for c in range(0, 256, 2) if c not in used and c + 1 not in used)
            pair = (first, first + 1)
        if self.session_id is None:
            self.session_id = self._session_id_factory()
        self.path = path
        self.channels[index] = pair
        reply = Transport("RTP/AVP/TCP", interleaved=pair, mode="PLAY")
        self._reply(req, 200, "OK", [("Transport", str(reply))])

    def _play(self, req: Request) -> None:
        if not self.channels or self.path is None or self.session_id is None:
            self._reply(req, 455, "Method Not Valid in This State")
            return
        self._reply(req, 200, "OK", [("Range", "npt=0.000-")])
        if not self.playing:
            self.playing = True
            self._events.append(PlayRequested(self.path, dict(self.channels), self.session_id))

    def _teardown(self, req: Request) -> None:
        self._reply(req, 200, "OK")
        assert self.session_id is not None
        self._events.append(TornDown(self.session_id))
        self.session_id, self.path, self.channels, self.playing = None, None, {}, False

    def _keepalive(self, req: Request) -> None:
        self._reply(req, 200, "OK")
