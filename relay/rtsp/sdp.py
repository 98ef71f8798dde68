"""SDP session descriptions (RFC 4566) as RTSP uses them (RFC 2326 appendix C).

Reads what DESCRIBE returns — media lines, a=rtpmap, a=fmtp, a=control at session and media level,
static RTP payload types (RFC 3551 table 4/5) — and writes the small SDP the demo camera serves.
``resolve_control`` turns an a=control value into the URL to SETUP/PLAY (RFC 2326 C.1.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from relay.errors import RemoteProtocolError

MAX_SDP_BYTES = 65536
MAX_MEDIA = 16


@dataclass(frozen=True, slots=True)
class RtpMap:
    """An a=rtpmap value; ``encoding`` is upper-cased (SDP encoding names are case-insensitive)."""

    encoding: str
    clock_rate: int
    channels: int | None = None

    def __str__(self) -> str:
        rate = f"{self.encoding}/{self.clock_rate}"
        return rate if self.channels is None else f"{rate}/{self.channels}"


# RFC 3551 section 6: payload types usable without an rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap("PCMU", 8000, 1),
    3: RtpMap("GSM", 8000, 1),
    4: RtpMap("G723", 8000, 1),
    8: RtpMap("PCMA", 8000, 1),
    9: RtpMap("G722", 8000, 1),
    10: RtpMap("L16", 44100, 2),
    11: RtpMap("L16", 44100, 1),
    14: RtpMap("MPA", 90000),
    18: RtpMap("G729", 8000, 1),
    26: RtpMap("JPEG", 90000),
    32: RtpMap("MPV", 90000),
    33: RtpMap("MP2T", 90000),
    34: RtpMap("H263", 90000),
}


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One m= section (RFC 4566 5.14) with the attributes RTSP needs.

    ``fmtp`` keys (parameter names) are lower-cased; values are kept as given.
    """

    kind: str
    port: int
    protocol: str
    formats: list[int]
    rtpmap: dict[int, RtpMap] = field(default_factory=dict)
    fmtp: dict[int, dict[str, str]] = field(default_factory=dict)
    control: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def payload_type(self) -> int | None:
        """The first (preferred) payload type, or None when the m= line lists none."""
        return self.formats[0] if self.formats else None

    @property
    def _map(self) -> RtpMap | None:
        pt = self.payload_type
        return None if pt is None else self.rtpmap.get(pt)

    @property
    def encoding(self) -> str | None:
        """Encoding name of the first payload type (upper case), or None."""
        m = self._map
        return None if m is None else m.encoding

    @property
    def clock_rate(self) -> int | None:
        """RTP clock rate of the first payload type, or None."""
        m = self._map
        return None if m is None else m.clock_rate

    @property
    def channels(self) -> int | None:
        """Audio channel count of the first payload type, or None."""
        m = self._map
        return None if m is None else m.channels

    @property
    def fmtp_params(self) -> dict[str, str]:
        """a=fmtp parameters of the first payload type (empty when none)."""
        pt = self.payload_type
        return {} if pt is None else self.fmtp.get(pt, {})

    @classmethod
    def make(
        cls,
        kind: str,
        payload_type: int,
        encoding: str,
        clock_rate: int,
        channels: int | None = None,
        fmtp: dict[str, str] | None = None,
        control: str | None = None,
    ) -> MediaDescription:
        """Build a single-format media section (for the demo server)."""
        return cls(
            kind,
            0,
            "RTP/AVP",
            [payload_type],
            {payload_type: RtpMap(encoding.upper(), clock_rate, channels)},
            {payload_type: dict(fmtp)} if fmtp else {},
            control,
        )

    def serialize(self) -> list[str]:
        """The section's SDP lines."""
        lines = [f"m={self.kind} {self.port} {self.protocol} {' '.join(map(str, self.formats))}"]
        for pt in self.formats:
            if pt in self.rtpmap:
                lines.append(f"a=rtpmap:{pt} {self.rtpmap[pt]}")
            if self.fmtp.get(pt):
                params = ";".join(f"{k}={v}" if v else k for k, v in self.fmtp[pt].items())
                lines.append(f"a=fmtp:{pt} {params}")
        if self.control is not None:
            lines.append(f"a=control:{self.control}")
        lines.extend(_attr_line(n, v) for n, v in self.attributes)
        return lines


def _attr_line(name: str, value: str | None) -> str:
    return f"a={name}" if value is None else f"a={name}:{value}"


_LINE = re.compile(r"([a-z])[ \t]*=(.*)")
_KNOWN_ATTRS = ("rtpmap", "fmtp", "control")


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A parsed SDP document; ``control`` is the session-level a=control, if any."""

    media: list[MediaDescription]
    control: str | None = None
    session_name: str = "-"
    origin: str = "- 0 0 IN IP4 0.0.0.0"
    connection: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> SessionDescription:
        """Parse an SDP document, skipping lines and attributes the relay does not use.

        Raises:
            RemoteProtocolError: "SDP: ..." for oversized or unreadable input.
        """
        if len(text) > MAX_SDP_BYTES:
            raise RemoteProtocolError(f"SDP: larger than {MAX_SDP_BYTES} bytes")
        session: dict[str, object] = {"attributes": []}
        media: list[dict[str, object]] = []
        seen_line = False
        for raw in re.split(r"\r\n|\r|\n", text):
            line = raw.strip().strip("\x00")
            if not line:
                continue
            m = _LINE.fullmatch(line)
            if m is None:
                if not seen_line:
                    raise RemoteProtocolError(f"SDP: not a description: {line[:40]!r}")
                continue  # one junk line inside a camera's SDP is not worth failing for
            seen_line = True
            kind, value = m.group(1), m.group(2).strip()
            target = media[-1] if media else session
            if kind == "m":
                if len(media) >= MAX_MEDIA:
                    raise RemoteProtocolError(f"SDP: more than {MAX_MEDIA} media sections")
                media.append(_media_line(value))
            elif kind == "a":
                _attribute(target, value)
            elif kind == "s" and not media:
                session["session_name"] = value
            elif kind == "o" and not media:
                session["origin"] = value
            elif kind == "c" and not media:
                session["connection"] = value
        if not seen_line:
            raise RemoteProtocolError("SDP: empty")
        attrs = session.pop("attributes")
        return cls(
            media=[MediaDescription(**md) for md in media],  # type: ignore[arg-type]
            attributes=attrs,  # type: ignore[arg-type]
            **session,  # type: ignore[arg-type]
        )

    def serialize(self) -> str:
        """The SDP text (CRLF line ends)."""
        lines = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines.append("t=0 0")
        if self.control is not None:
            lines.append(f"a=control:{self.control}")
        lines.extend(_attr_line(n, v) for n, v in self.attributes)
        for md in self.media:
            lines.extend(md.serialize())
        return "\r\n".join(lines) + "\r\n"


def _media_line(value: str) -> dict[str, object]:
    parts = value.split()
    if len(parts) < 3:
        raise RemoteProtocolError(f"SDP: bad m= line {value[:60]!r}")
    port_text = parts[1].split("/")[0]
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise RemoteProtocolError(f"SDP: bad port in m= line {value[:60]!r}")
    formats = [
        int(f) for f in parts[3:] if f.isascii() and f.isdigit() and len(f) <= 3 and int(f) <= 127
    ]
    return {
        "kind": parts[0].lower(),
        "port": int(port_text),
        "protocol": parts[2],
        "formats": formats,
        "rtpmap": {pt: STATIC_PAYLOAD_TYPES[pt] for pt in formats if pt in STATIC_PAYLOAD_TYPES},
        "fmtp": {},
        "control": None,
        "attributes": [],
    }


def _pt_and_rest(value: str) -> tuple[int, str] | None:
    pt_text, _, rest = value.strip().partition(" ")
    if not (pt_text.isascii() and pt_text.isdigit()) or len(pt_text) > 3 or int(pt_text) > 127:
        return None
    return int(pt_text), rest.strip()


def _attribute(target: dict[str, object], value: str) -> None:
    name, colon, rest = value.partition(":")
    name = name.strip()
    lname = name.lower()
    if lname == "control" and colon:
        target["control"] = rest.strip()
    elif lname == "rtpmap" and "rtpmap" in target:
        parsed = _pt_and_rest(rest)
        rtpmap = _rtpmap(parsed[1]) if parsed else None
        if parsed and rtpmap:
            target["rtpmap"][parsed[0]] = rtpmap  # type: ignore[index]
    elif lname == "fmtp" and "fmtp" in target:
        parsed = _pt_and_rest(rest)
        if parsed:
            target["fmtp"][parsed[0]] = _fmtp(parsed[1])  # type: ignore[index]
    else:
        attrs = target["attributes"]
        if len(attrs) < 256:  # type: ignore[arg-type]
            attrs.append((name, rest if colon else None))  # type: ignore[attr-defined]


def _rtpmap(text: str) -> RtpMap | None:
    """'H264/90000' or 'MPEG4-GENERIC/48000/2'; an unreadable one is ignored (None)."""
    parts = [p.strip() for p in text.split("/")]
    if len(parts) < 2 or not parts[0] or len(parts) > 3:
        return None
    rate, chans = parts[1], parts[2] if len(parts) == 3 else None
    if not (rate.isascii() and rate.isdigit()) or len(rate) > 9 or int(rate) == 0:
        return None
    channels = None
    if chans:
        if not (chans.isascii() and chans.isdigit()) or len(chans) > 3:
            return None
        channels = int(chans)
    return RtpMap(parts[0].upper(), int(rate), channels)


def _fmtp(text: str) -> dict[str, str]:
    """'key=value; key2=value2' (values may hold '='); a bare word maps to ''."""
    params: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, _, val = part.partition("=")
        if len(params) < 64:
            params[key.strip().lower()] = val.strip()
    return params


_ABSOLUTE = re.compile(r"rtsp[su]?://", re.I)


def resolve_control(base: str, control: str | None) -> str:
    """The URL an a=control value names (RFC 2326 C.1.1).

    '*' or no control means the base itself; an absolute rtsp URL is used as is; a relative one is
    appended to the base after a '/' unless the base ends with one — not RFC 3986 resolution,
    which would drop the base's last segment, but what cameras and live555 expect
    (rtsp://h/path + trackID=1 -> rtsp://h/path/trackID=1). A control starting with '/' replaces
    the base's path.

    Args:
        base: Content-Base, else Content-Location, else the DESCRIBE URL.
        control: the a=control value.
    """
    if control is None or control.strip() in ("", "*"):
        return base
    control = control.strip()
    if _ABSOLUTE.match(control):
        return control
    if control.startswith("/"):
        m = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*", base)
        if m:
            return m.group(0) + control
    return base + control if base.endswith("/") else f"{base}/{control}"
