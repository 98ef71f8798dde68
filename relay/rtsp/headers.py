"""RTSP header fields (RFC 2326 section 12): the header collection and the structured headers
the relay reads or writes — Transport (12.39), Session (12.37), Public (12.28), RTP-Info (12.33),
Range (12.29, npt only), CSeq (12.17).

Parsers are tolerant of what cameras actually send and raise ``RemoteProtocolError`` only when a
value cannot be understood at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from relay.errors import LocalProtocolError, RemoteProtocolError

_MAX_INT_DIGITS = 18
_SESSION_ID_MAX = 256
DEFAULT_SESSION_TIMEOUT = 60


class Headers:
    """Ordered, multi-valued header fields with case-insensitive names.

    Iterating yields ``(name, value)`` pairs in wire order with the names as given.
    """

    __slots__ = ("_items",)

    def __init__(
        self, items: Iterable[tuple[str, str]] | Mapping[str, str] | None = None
    ) -> None:
        self._items: list[tuple[str, str]] = []
        if isinstance(items, Mapping):
            items = items.items()
        for name, value in items or ():
            self.add(name, value)

    @staticmethod
    def _check(name: str, value: str) -> None:
        if not name or any(c in name for c in ":\r\n \t") or "\r" in value or "\n" in value:
            raise LocalProtocolError(f"RTSP header: illegal name or value for {name!r}")

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping any earlier field of the same name."""
        value = str(value)
        self._check(name, value)
        self._items.append((name, value))

    def _append_unchecked(self, name: str, value: str) -> None:
        self._items.append((name, value))

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        key = name.lower()
        for n, v in self._items:
            if n.lower() == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in wire order."""
        key = name.lower()
        return [v for n, v in self._items if n.lower() == key]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        value = str(value)
        self._check(name, value)
        key = name.lower()
        for i, (n, _) in enumerate(self._items):
            if n.lower() == key:
                self._items[i] = (name, value)
                self._items[i + 1 :] = [it for it in self._items[i + 1 :] if it[0].lower() != key]
                return
        self._items.append((name, value))

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        self._items = [it for it in self._items if it[0].lower() != key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(n.lower(), v) for n, v in self._items] == [
            (n.lower(), v) for n, v in other._items
        ]

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> Headers:
        """A shallow copy."""
        new = Headers()
        new._items = list(self._items)
        return new

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def _int(text: str, what: str, lo: int, hi: int) -> int:
    text = text.strip()
    if not text.isdigit() or not text.isascii() or len(text) > _MAX_INT_DIGITS:
        raise RemoteProtocolError(f"{what}: not a number: {text[:40]!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise RemoteProtocolError(f"{what}: {value} out of range {lo}..{hi}")
    return value


def parse_cseq(headers: Headers) -> int | None:
    """The CSeq of a message (RFC 2326 12.17), or None when missing or unreadable."""
    value = headers.get("CSeq")
    if value is None:
        return None
    try:
        return _int(value, "RTSP CSeq", 0, 2**63)
    except RemoteProtocolError:
        return None


def _pair(text: str, what: str, hi: int) -> tuple[int, int]:
    """'a-b' or a lone 'a' (taken as a, a+1: some cameras send one port)."""
    first, sep, second = text.partition("-")
    a = _int(first, what, 0, hi)
    if not sep or not second.strip():
        return (a, min(a + 1, hi))
    return (a, _int(second, what, 0, hi))


@dataclass(frozen=True, slots=True)
class Transport:
    """One transport spec of a Transport header (RFC 2326 12.39).

    ``protocol`` is the transport/profile/lower-transport triple as sent ('RTP/AVP',
    'RTP/AVP/TCP'); parameters the relay does not use are kept in ``extra`` in wire order.
    """

    protocol: str = "RTP/AVP"
    multicast: bool = False
    interleaved: tuple[int, int] | None = None
    client_port: tuple[int, int] | None = None
    server_port: tuple[int, int] | None = None
    ssrc: int | None = None
    mode: str | None = None
    destination: str | None = None
    source: str | None = None
    ttl: int | None = None
    port: tuple[int, int] | None = None
    extra: tuple[tuple[str, str | None], ...] = ()

    @property
    def is_tcp(self) -> bool:
        """True for interleaved delivery on the RTSP connection."""
        return self.protocol.upper().endswith("/TCP")

    @classmethod
    def parse(cls, value: str) -> Transport:
        """The first transport spec of a header value."""
        return cls.parse_all(value)[0]

    @classmethod
    def parse_all(cls, value: str) -> list[Transport]:
        """Every comma-separated transport spec of a header value, in preference order.

        Raises:
            RemoteProtocolError: the value holds no spec or a number is malformed.
        """
        specs = [s for s in (p.strip() for p in value.split(",")) if s]
        if not specs:
            raise RemoteProtocolError("RTSP Transport: empty")
        if len(specs) > 16:
            raise RemoteProtocolError("RTSP Transport: more than 16 specs")
        return [cls._parse_one(s) for s in specs]

    @classmethod
    def _parse_one(cls, spec: str) -> Transport:
        parts = [p.strip() for p in spec.split(";")]
        protocol = parts[0]
        if not protocol or not protocol.upper().startswith("RTP/"):
            raise RemoteProtocolError(f"RTSP Transport: unknown protocol {protocol[:40]!r}")
        fields: dict[str, object] = {"protocol": protocol}
        extra: list[tuple[str, str | None]] = []
        for part in parts[1:]:
            if not part:
                continue
            name, eq, raw = part.partition("=")
            name = name.strip().lower()
            val = raw.strip().strip('"') if eq else None
            if name in ("unicast", "multicast") and val is None:
                fields["multicast"] = name == "multicast"
            elif name == "interleaved":
                # A bare "interleaved" (no ids) is seen in replies: leave it unknown.
                ids = _pair(val, "RTSP Transport interleaved", 255) if val else None
                fields["interleaved"] = ids
            elif name in ("client_port", "server_port", "port") and val:
                fields[name] = _pair(val, f"RTSP Transport {name}", 65535)
            elif name == "ssrc" and val is not None:
                fields["ssrc"] = _maybe_ssrc(val)
            elif name == "mode" and val:
                fields["mode"] = val.upper()
            elif name in ("destination", "source") and val:
                fields[name] = val
            elif name == "ttl" and val:
                fields["ttl"] = _int(val, "RTSP Transport ttl", 0, 255)
            else:
                extra.append((part.partition("=")[0].strip(), val))
        fields["extra"] = tuple(extra)
        return cls(**fields)  # type: ignore[arg-type]

    def __str__(self) -> str:
        out = [self.protocol, "multicast" if self.multicast else "unicast"]
        for name in ("destination", "source"):
            if getattr(self, name) is not None:
                out.append(f"{name}={getattr(self, name)}")
        for name in ("interleaved", "client_port", "server_port", "port"):
            pair = getattr(self, name)
            if pair is not None:
                out.append(f"{name}={pair[0]}-{pair[1]}")
        if self.ttl is not None:
            out.append(f"ttl={self.ttl}")
        if self.ssrc is not None:
            out.append(f"ssrc={self.ssrc:08X}")
        if self.mode is not None:
            out.append(f"mode={self.mode}")
        out.extend(n if v is None else f"{n}={v}" for n, v in self.extra)
        return ";".join(out)


def _maybe_ssrc(text: str) -> int | None:
    """Hex SSRC; cameras pad it or send junk, so an unreadable one is simply unknown."""
    text = text.strip()
    if not text or len(text) > 16:
        return None
    try:
        return int(text, 16) & 0xFFFFFFFF
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class SessionHeader:
    """A Session header (RFC 2326 12.37): 'id;timeout=60'. ``timeout`` is in seconds."""

    id: str
    timeout: int = DEFAULT_SESSION_TIMEOUT

    @classmethod
    def parse(cls, value: str) -> SessionHeader:
        """Parse a Session value; a missing, zero or unreadable timeout means 60 s.

        Raises:
            RemoteProtocolError: the id is empty, too long or holds whitespace.
        """
        parts = value.split(";")
        sid = parts[0].strip()
        if not sid or len(sid) > _SESSION_ID_MAX or any(c.isspace() or ord(c) < 32 for c in sid):
            raise RemoteProtocolError(f"RTSP Session: bad id {sid[:40]!r}")
        timeout = DEFAULT_SESSION_TIMEOUT
        for part in parts[1:]:
            name, _, val = part.partition("=")
            if name.strip().lower() == "timeout":
                val = val.strip()
                if val.isascii() and val.isdigit() and 0 < len(val) <= 6 and int(val) > 0:
                    timeout = int(val)
        return cls(sid, timeout)

    def __str__(self) -> str:
        return f"{self.id};timeout={self.timeout}"


def parse_public(value: str | None) -> set[str]:
    """Method names of a Public header (RFC 2326 12.28), upper-cased."""
    if not value:
        return set()
    return {m.strip().upper() for m in value.split(",") if m.strip()}


@dataclass(frozen=True, slots=True)
class RtpInfo:
    """One stream's entry of an RTP-Info header (RFC 2326 12.33)."""

    url: str
    seq: int | None = None
    rtptime: int | None = None


_RTP_INFO_SPLIT = re.compile(r",\s*(?=url=)", re.IGNORECASE)


def parse_rtp_info(value: str | None) -> list[RtpInfo]:
    """Entries of an RTP-Info header; unreadable numbers become None (it is advisory)."""
    if not value:
        return []
    out = []
    for entry in _RTP_INFO_SPLIT.split(value.strip())[:64]:
        url, seq, rtptime = "", None, None
        for part in entry.split(";"):
            name, _, val = part.partition("=")
            name, val = name.strip().lower(), val.strip()
            if name == "url":
                url = val
            elif name in ("seq", "rtptime") and val.isascii() and val.isdigit() and len(val) < 12:
                if name == "seq":
                    seq = int(val) & 0xFFFF
                else:
                    rtptime = int(val) & 0xFFFFFFFF
        if url:
            out.append(RtpInfo(url, seq, rtptime))
    return out


@dataclass(frozen=True, slots=True)
class NptRange:
    """A Range header in npt (RFC 2326 3.6, 12.29); None start means 'now'."""

    start: float | None = 0.0
    end: float | None = None

    @classmethod
    def parse(cls, value: str) -> NptRange:
        """Parse 'npt=0.000-', 'npt=now-', 'npt=10-20.5' (other units raise).

        Raises:
            RemoteProtocolError: not an npt range.
        """
        unit, eq, spec = value.split(";")[0].strip().partition("=")
        if unit.strip().lower() != "npt" or not eq or "-" not in spec:
            raise RemoteProtocolError(f"RTSP Range: unsupported {value[:40]!r}")
        first, _, second = spec.partition("-")
        return cls(_npt(first), _npt(second) if second.strip() else None)

    def __str__(self) -> str:
        start = "now" if self.start is None else f"{self.start:.3f}"
        end = "" if self.end is None else f"{self.end:.3f}"
        return f"npt={start}-{end}"


def _npt(text: str) -> float | None:
    text = text.strip()
    if text.lower() == "now":
        return None
    try:
        if ":" in text:
            h, m, s = text.split(":")
            seconds = int(h) * 3600 + int(m) * 60 + float(s)
        else:
            seconds = float(text)
    except ValueError:
        raise RemoteProtocolError(f"RTSP Range: bad time {text[:40]!r}") from None
    if not 0 <= seconds < 1e12:
        raise RemoteProtocolError(f"RTSP Range: bad time {text[:40]!r}")
    return seconds


def parse_range(value: str | None) -> NptRange | None:
    """A Range header as npt, or None when absent or in another unit."""
    if not value:
        return None
    try:
        return NptRange.parse(value)
    except RemoteProtocolError:
        return None
