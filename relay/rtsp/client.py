"""RTSP 1.0 client state machine (RFC 2326 sections 10 and 12), sans-IO in the style of h2.

The driver feeds received bytes to ``receive_data``, drains events with ``next_event`` and, after
every call, writes ``data_to_send()`` to the socket. The client runs OPTIONS -> DESCRIBE on its own,
waits for ``setup()`` (the driver picks tracks from the SDP), then SETUPs each track and PLAYs.

State table (a call outside its row raises LocalProtocolError naming the call and the state;
any state goes to CLOSED on a 3xx redirect, EOF or a raised error):

    state       trigger                        next        emits
    IDLE        connect()                      OPTIONS
    OPTIONS     OPTIONS reply (any but 401/3xx) DESCRIBE
    DESCRIBE    DESCRIBE 2xx                   DESCRIBED   Described(sdp, base_url)
    DESCRIBED   setup(indices, udp_ports)      SETUP
    SETUP       SETUP 2xx, tracks left         SETUP
    SETUP       SETUP 2xx, last track          PLAY
    PLAY        PLAY 2xx                       PLAYING     Playing(tracks, session_timeout, ...)
    PLAYING     keepalive()                    PLAYING     (reply consumed)
    any open    teardown()                     TEARDOWN
    TEARDOWN    TEARDOWN reply / EOF           CLOSED      TornDown()
    any         3xx with Location              CLOSED      Redirected(url), url checked
    any         401                            same        (request re-sent once with credentials)

Interleaved frames become ``InterleavedData`` in any state; requests from the server are answered
(200 for OPTIONS/GET_PARAMETER, 501 otherwise) without an event.

A redirect's Location is checked here, before the driver connects anywhere: an rtsp(s) URL with a
host and a valid port, no user:password@, and the same scheme as the current URL (a redirect
never turns TLS off, and never turns it on with TLS settings meant for another source). Where
credentials may go is the driver's choice: ``Origin`` names the (scheme, host, port) they belong to.
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from relay.errors import AuthError, LocalProtocolError, RemoteProtocolError
from relay.rtsp.auth import Challenge, authorization, choose, parse_challenges
from relay.rtsp.headers import (
    DEFAULT_SESSION_TIMEOUT,
    Headers,
    NptRange,
    RtpInfo,
    SessionHeader,
    Transport,
    parse_public,
    parse_range,
    parse_rtp_info,
)
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

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
"""RFC 2326 section 3.2 (rtsp) and the IANA registration of rtsps (322)."""
MAX_LOCATION = 2048

InterleavedData = InterleavedFrame
"""Interleaved RTP/RTCP from the server: the reader's frame is passed on as is (no copy)."""


class UnsupportedTransport(RemoteProtocolError):
    """SETUP got 461 Unsupported Transport for UDP: the driver may retry over TCP."""


class State(enum.Enum):
    IDLE = "IDLE"
    OPTIONS = "OPTIONS"
    DESCRIBE = "DESCRIBE"
    DESCRIBED = "DESCRIBED"
    SETUP = "SETUP"
    PLAY = "PLAY"
    PLAYING = "PLAYING"
    TEARDOWN = "TEARDOWN"
    CLOSED = "CLOSED"


_OPEN = frozenset(State) - {State.TEARDOWN, State.CLOSED}
# The calls of the table above and the states that allow them.
_CALLS: dict[str, frozenset[State]] = {
    "connect": frozenset({State.IDLE}),
    "setup": frozenset({State.DESCRIBED}),
    "keepalive": frozenset({State.PLAYING}),
    "teardown": _OPEN,
    "send_interleaved": frozenset({State.SETUP, State.PLAY, State.PLAYING}),
}


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a URL connects to: credentials configured for one origin go to no other."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of an rtsp:// or rtsps:// URL already checked (a config or redirect URL)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        return cls(scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS[scheme])

    @property
    def hostport(self) -> str:
        """HOST:PORT as a config key lists it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.hostport}"


def check_redirect(current: str, location: str) -> str:
    """The absolute URL a redirect's Location names, refused unless it is safe to connect to.

    A relative Location (RFC 2326 wants an absolute one) is resolved against ``current``.

    Raises:
        RemoteProtocolError: naming what is wrong; the Location is shown without user:password@.
    """
    shown = re.sub(r"(?<=://)[^/@]*@", "***@", location[:100])
    if len(location) > MAX_LOCATION or not location.isascii() or any(
        c <= " " or c == "\x7f" for c in location
    ):
        raise RemoteProtocolError(f"RTSP redirect: malformed Location {shown!r}")
    try:
        url = urljoin(current, location)
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RemoteProtocolError(f"RTSP redirect: bad Location {shown!r} ({exc})") from None
    scheme, was = parts.scheme.lower(), urlsplit(current).scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise RemoteProtocolError(f"RTSP redirect to a non-RTSP URL {shown!r}")
    if not parts.hostname or port == 0:
        raise RemoteProtocolError(f"RTSP redirect: bad Location {shown!r} (no host or port 0)")
    if "@" in parts.netloc:
        raise RemoteProtocolError(f"RTSP redirect: Location {shown!r} carries user:password@, "
                                  "refused")
    if scheme != was:
        why = "it would drop TLS" if was == "rtsps" else "configure the source as rtsps:// instead"
        raise RemoteProtocolError(f"RTSP redirect from {was}:// to {shown!r} refused ({why})")
    return url


@dataclass(frozen=True, slots=True)
class Described:
    """DESCRIBE succeeded; the driver chooses tracks and calls ``setup``."""

    sdp: SessionDescription
    base_url: str


@dataclass(frozen=True, slots=True)
class TrackSetup:
    """One SETUP's outcome. ``server_ports`` is None when the server gave none (or 0-1)."""

    media_index: int
    control_url: str
    interleaved: tuple[int, int] | None
    server_ports: tuple[int, int] | None
    ssrc: int | None
    transport: Transport | None = None


@dataclass(frozen=True, slots=True)
class Playing:
    """PLAY succeeded: media flows. ``session_timeout`` is in seconds."""

    tracks: list[TrackSetup]
    session_timeout: int = DEFAULT_SESSION_TIMEOUT
    rtp_info: list[RtpInfo] = field(default_factory=list)
    range: NptRange | None = None


@dataclass(frozen=True, slots=True)
class Redirected:
    """The server sent a 3xx or REDIRECT: reconnect to ``url``."""

    url: str


@dataclass(frozen=True, slots=True)
class TornDown:
    """The session is over (TEARDOWN answered, or there was no session to tear down)."""


ClientEvent = (
    Described | Playing | Redirected | TornDown | InterleavedFrame | ConnectionClosed | NeedData
)


@dataclass(slots=True)
class _Sent:
    method: str
    uri: str
    extra: list[tuple[str, str]]
    purpose: str  # "flow", "keepalive" or "teardown"
    attempts: int = 1


_MAX_AUTH_ATTEMPTS = 3  # the first try, one with credentials, one more on stale=true


class RtspClient:
    """One RTSP session from OPTIONS to TEARDOWN over one connection.

    Args:
        url: the rtsp:// URL without credentials (the driver strips them).
        transport: 'tcp' (interleaved) or 'udp'.
        username: for Basic/Digest when the server asks.
        password: likewise.
        user_agent: User-Agent header.
        cnonce_factory: Digest client nonces (random hex by default).
    """

    def __init__(
        self,
        url: str,
        transport: str,
        username: str | None = None,
        password: str | None = None,
        user_agent: str = "Relay",
        cnonce_factory: Callable[[], str] = lambda: secrets.token_hex(8),
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("rtsp", "rtsps") or not parts.hostname:
            raise LocalProtocolError("RTSP client: URL must be rtsp://host[:port]/path")
        if "@" in parts.netloc:
            raise LocalProtocolError("RTSP client: pass credentials apart, not in the URL")
        if transport not in ("tcp", "udp"):
            raise LocalProtocolError(f"RTSP client: transport must be tcp or udp: {transport!r}")
        if parts.scheme.lower() == "rtsps" and transport != "tcp":
            raise LocalProtocolError("RTSP client: rtsps:// carries RTP interleaved in its TLS "
                                     "connection (transport tcp)")
        self.url = url
        self.transport = transport
        self.username = username
        self.password = password
        self.user_agent = user_agent
        self._cnonce_factory = cnonce_factory
        self.state = State.IDLE
        self.public: set[str] = set()
        self.session_id: str | None = None
        self.session_timeout = DEFAULT_SESSION_TIMEOUT
        self.sdp: SessionDescription | None = None
        self.base_url = url
        self.tracks: list[TrackSetup] = []
        self._reader = MessageReader()
        self._out = bytearray()
        self._events: list[ClientEvent] = []
        self._cseq = 1
        self._outstanding: dict[int, _Sent] = {}
        self._challenge: Challenge | None = None
        self._nc = 0
        self._use_get_parameter = True
        self._pending_setup: list[tuple[int, Transport]] = []

    # -- calls from the driver -------------------------------------------------------------

    def _check(self, call: str) -> None:
        if self.state not in _CALLS[call]:
            raise LocalProtocolError(f"RTSP: {call}() not allowed in state {self.state.name}")

    def connect(self) -> None:
        """Queue OPTIONS; DESCRIBE follows on its reply."""
        self._check("connect")
        self.state = State.OPTIONS
        self._send("OPTIONS", self.url)

    def setup(
        self, media_indices: list[int], udp_ports: list[tuple[int, int]] | None = None
    ) -> None:
        """Queue SETUP for the chosen media sections (PLAY follows the last reply).

        Args:
            media_indices: indices into ``Described.sdp.media``, in SETUP order.
            udp_ports: with transport 'udp', the client RTP/RTCP port pair per chosen media.
        """
        self._check("setup")
        assert self.sdp is not None
        n = len(self.sdp.media)
        if not media_indices or len(set(media_indices)) != len(media_indices) or any(
            not 0 <= i < n for i in media_indices
        ):
            raise LocalProtocolError(f"RTSP client: bad media indices {media_indices} ({n} media)")
        if self.transport == "udp" and (udp_ports is None or len(udp_ports) != len(media_indices)):
            raise LocalProtocolError("RTSP client: udp transport needs one port pair per media")
        self._pending_setup = []
        for k, index in enumerate(media_indices):
            if self.transport == "tcp":
                tr = Transport("RTP/AVP/TCP", interleaved=(2 * k, 2 * k + 1))
            else:
                assert udp_ports is not None
                tr = Transport("RTP/AVP", client_port=udp_ports[k])
            self._pending_setup.append((index, tr))
        self.state = State.SETUP
        self._next_setup()

    def keepalive(self) -> bool:
        """Queue GET_PARAMETER (if the server's Public lists it) or OPTIONS.

        Returns:
            True (a request was queued).
        """
        self._check("keepalive")
        if self._use_get_parameter and "GET_PARAMETER" in self.public:
            self._send("GET_PARAMETER", self._aggregate_url(), purpose="keepalive")
        else:
            self._send("OPTIONS", self._aggregate_url(), purpose="keepalive")
        return True

    def teardown(self) -> None:
        """Queue TEARDOWN; without a session, ``TornDown`` is queued at once instead."""
        self._check("teardown")
        if self.session_id is None:
            self.state = State.CLOSED
            self._events.append(TornDown())
            return
        self.state = State.TEARDOWN
        self._send("TEARDOWN", self._aggregate_url(), purpose="teardown")

    def send_interleaved(self, channel: int, data: bytes | memoryview) -> None:
        """Queue an interleaved frame (RTCP over TCP)."""
        self._check("send_interleaved")
        self._out += interleave(channel, data)

    def data_to_send(self) -> bytes:
        """Bytes queued for the socket since the last call."""
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def has_data_to_send(self) -> bool:
        """Whether ``data_to_send`` has bytes (an answer to a server's request, say)."""
        return bool(self._out)

    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes from the socket (``b""`` at EOF)."""
        self._reader.receive_data(data)

    def take_interleaved(self) -> list[tuple[int, bytes | memoryview]]:
        """The interleaved frames at the front of the input, as (channel, data), in any state:
        the media of a read in one call (``MessageReader.take_interleaved``); ``next_event``
        then gives the rest."""
        return self._reader.take_interleaved()

    def next_event(self) -> ClientEvent:
        """The next event, or ``NEED_DATA``; after EOF, ``ConnectionClosed`` on every call.

        Raises:
            AuthError: credentials missing or refused.
            UnsupportedTransport: UDP SETUP refused with 461.
            RemoteProtocolError: any other failure reply or malformed input.
        """
        while not self._events:
            try:
                event = self._reader.next_event()
            except Exception:
                self.state = State.CLOSED
                raise
            if event is NEED_DATA or isinstance(event, InterleavedFrame):
                return event
            try:
                self._handle(event)
            except Exception:
                self.state = State.CLOSED
                raise
        return self._events.pop(0)

    # -- internals ----------------------------------------------------------------------------

    def _aggregate_url(self) -> str:
        sdp_control = self.sdp.control if self.sdp is not None else None
        return resolve_control(self.base_url, sdp_control)

    def _send(
        self,
        method: str,
        uri: str,
        extra: list[tuple[str, str]] | None = None,
        purpose: str = "flow",
        attempts: int = 1,
    ) -> None:
        cseq = self._cseq
        self._cseq += 1
        headers = Headers([("CSeq", str(cseq)), ("User-Agent", self.user_agent)])
        if self._challenge is not None:
            headers["Authorization"] = self._authorization(method, uri)
        if self.session_id is not None and method != "DESCRIBE":
            headers["Session"] = self.session_id
        for name, value in extra or ():
            headers.add(name, value)
        self._out += bytes(Request(method, uri, headers))
        self._outstanding[cseq] = _Sent(method, uri, list(extra or ()), purpose, attempts)

    def _authorization(self, method: str, uri: str) -> str:
        assert self._challenge is not None
        self._nc += 1
        return authorization(
            self._challenge,
            method,
            uri,
            self.username or "",
            self.password or "",
            self._cnonce_factory(),
            self._nc,
        )

    def _handle(self, event: Request | Response | ConnectionClosed) -> None:
        if isinstance(event, ConnectionClosed):
            if self.state is State.TEARDOWN:
                self._events.append(TornDown())
            self.state = State.CLOSED
            self._events.append(event)
        elif isinstance(event, Request):
            self._answer_server(event)
        else:
            self._on_response(event)

    def _answer_server(self, req: Request) -> None:
        if req.method in ("OPTIONS", "GET_PARAMETER", "REDIRECT"):
            status, reason = 200, "OK"
        else:
            status, reason = 501, "Not Implemented"
        headers = Headers()
        if req.headers.get("CSeq") is not None:
            headers["CSeq"] = req.headers["CSeq"].strip()
        if self.session_id is not None:
            headers["Session"] = self.session_id
        self._out += bytes(Response(status, reason, headers))
        location = req.headers.get("Location")
        if req.method == "REDIRECT" and location:
            self._redirect(location)

    def _redirect(self, location: str) -> None:
        self.state = State.CLOSED
        self._events.append(Redirected(check_redirect(self.url, location.strip())))

    def _match(self, resp: Response) -> _Sent | None:
        cseq = resp.cseq
        if cseq is None and len(self._outstanding) == 1:
            # Some cameras drop CSeq; with one request in flight the match is unambiguous.
            cseq = next(iter(self._outstanding))
        return self._outstanding.pop(cseq, None) if cseq is not None else None

    def _fail(self, sent: _Sent, resp: Response) -> RemoteProtocolError:
        return RemoteProtocolError(f"RTSP {sent.method}: {resp.status} {resp.reason[:60]}".rstrip())

    def _on_response(self, resp: Response) -> None:
        sent = self._match(resp)
        if sent is None or self.state is State.CLOSED:
            return  # a stray or duplicate reply
        status = resp.status
        if status == 401:
            self._retry_with_auth(sent, resp)
            return
        if 300 <= status < 400 and sent.purpose != "teardown":
            location = resp.headers.get("Location")
            if not location:
                raise RemoteProtocolError(f"RTSP {sent.method}: {status} without Location")
            self._redirect(location)
            return
        if sent.purpose == "teardown":
            self.state = State.CLOSED
            self._events.append(TornDown())
        elif sent.purpose == "keepalive":
            if status in (405, 501) or 200 <= status < 300:
                if status >= 300 and sent.method == "GET_PARAMETER":
                    self._use_get_parameter = False
                return
            if status >= 400:
                raise self._fail(sent, resp)
        elif sent.method == "OPTIONS":
            if 200 <= status < 300:
                self.public = parse_public(resp.headers.get("Public"))
            # OPTIONS is advisory: DESCRIBE tells the real story.
            self.state = State.DESCRIBE
            self._send("DESCRIBE", self.url, [("Accept", "application/sdp")])
        elif not 200 <= status < 300:
            if status == 461 and sent.method == "SETUP" and self.transport == "udp":
                raise UnsupportedTransport(f"RTSP SETUP: {status} {resp.reason[:60]}".rstrip())
            raise self._fail(sent, resp)
        elif sent.method == "DESCRIBE":
            self._on_describe(resp)
        elif sent.method == "SETUP":
            self._on_setup(sent, resp)
        elif sent.method == "PLAY":
            self.state = State.PLAYING
            self._events.append(
                Playing(
                    list(self.tracks),
                    self.session_timeout,
                    parse_rtp_info(resp.headers.get("RTP-Info")),
                    parse_range(resp.headers.get("Range")),
                )
            )

    def _retry_with_auth(self, sent: _Sent, resp: Response) -> None:
        if self.username is None:
            raise AuthError("RTSP: credentials required")
        challenges = parse_challenges(resp.headers.get_all("WWW-Authenticate"))
        chosen = choose(challenges)
        stale = chosen is not None and chosen.params.get("stale", "").lower() == "true"
        if sent.attempts >= _MAX_AUTH_ATTEMPTS or (sent.attempts == 2 and not stale):
            raise AuthError("RTSP: wrong username or password")
        if chosen is None:
            schemes = sorted({c.scheme for c in challenges}) or ["none"]
            raise AuthError(f"RTSP: unsupported authentication ({', '.join(schemes)[:60]})")
        if self._challenge is None or chosen.params.get("nonce") != self._challenge.params.get(
            "nonce"
        ):
            self._nc = 0
        self._challenge = chosen
        self._send(sent.method, sent.uri, sent.extra, sent.purpose, sent.attempts + 1)

    def _on_describe(self, resp: Response) -> None:
        if not resp.body:
            raise RemoteProtocolError("RTSP DESCRIBE: reply without SDP")
        self.sdp = SessionDescription.parse(resp.body.decode("utf-8", "replace"))
        if not self.sdp.media:
            raise RemoteProtocolError("RTSP DESCRIBE: SDP without media")
        for name in ("Content-Base", "Content-Location"):
            value = (resp.headers.get(name) or "").strip()
            if value.lower().startswith(("rtsp://", "rtsps://")):
                self.base_url = value
                break
        self.state = State.DESCRIBED
        self._events.append(Described(self.sdp, self.base_url))

    def _next_setup(self) -> None:
        assert self.sdp is not None
        index, tr = self._pending_setup[0]
        url = resolve_control(self.base_url, self.sdp.media[index].control)
        self._send("SETUP", url, [("Transport", str(tr))])

    def _on_setup(self, sent: _Sent, resp: Response) -> None:
        index, asked = self._pending_setup.pop(0)
        session = resp.headers.get("Session")
        if session is not None and self.session_id is None:
            parsed = SessionHeader.parse(session)
            self.session_id, self.session_timeout = parsed.id, parsed.timeout
        got = None
        try:
            got = Transport.parse(resp.headers.get("Transport") or "")
        except RemoteProtocolError:
            pass  # missing or mangled: the server took what we asked for (as ffmpeg assumes)
        interleaved = None
        if self.transport == "tcp":
            # Missing interleaved ids in the reply: the server took the ones we asked for.
            interleaved = (got.interleaved if got else None) or asked.interleaved
        ports = got.server_port if got else None
        if ports is not None and ports[0] == 0:
            ports = None
        self.tracks.append(
            TrackSetup(index, sent.uri, interleaved, ports, got.ssrc if got else None, got)
        )
        if self._pending_setup:
            self._next_setup()
        else:
            self.state = State.PLAY
            self._send("PLAY", self._aggregate_url(), [("Range", "npt=0.000-")])
