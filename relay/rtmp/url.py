"""RTMP publish URLs: ``rtmp[s]://host[:port]/app[/instance]/stream_key[?query]``.

The last path segment (with any query) is the stream key, everything before it the application,
as FFmpeg and OBS split them. The key is a secret: ``redacted`` and ``repr`` never show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.errors import ConfigError

DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443}


def _redact(url: str) -> str:
    """Best-effort redaction of a URL that may not parse: userinfo, a "user:password" with no
    "@host" (it reads as host:port), any query and everything after the app are dropped."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<unparsable RTMP URL>"
    head, _, path = rest.partition("?")[0].partition("/")
    if "@" in head:
        head = "***@" + head.rpartition("@")[2]
    elif ":" in head and not head.startswith("[") and not head.partition(":")[2].isdigit():
        head = "***"
    app, slash, _ = path.rpartition("/")
    return f"{scheme}://{head}/{app}/***" if slash else f"{scheme}://{head}/***"


@dataclass(frozen=True, slots=True)
class RtmpUrl:
    """A parsed RTMP publish URL.

    Attributes:
        scheme: ``"rtmp"`` or ``"rtmps"`` (TLS).
        host: host name or address (IPv6 without brackets).
        port: TCP port, 1935 / 443 by default.
        app: application name sent in ``connect``; may hold an instance (``"app/inst"``).
        stream_key: the name sent in ``publish``, query included. Secret.
        tc_url: the ``tcUrl`` of ``connect``: ``scheme://host[:port]/app``.
    """

    scheme: str
    host: str
    port: int
    app: str
    stream_key: str = field(repr=False)
    tc_url: str

    @classmethod
    def parse(cls, url: str) -> RtmpUrl:
        """Parse ``url``.

        Raises:
            ConfigError: not an rtmp/rtmps URL with a host, an app and a stream key; the
                message shows the URL redacted.
        """

        def fail(why: str) -> ConfigError:
            return ConfigError(f"RTMP URL {_redact(url)!r}: {why}")

        scheme, sep, rest = url.strip().partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in DEFAULT_PORTS:
            raise fail("expected rtmp://host[:port]/app/stream_key or rtmps://...")
        netloc, _, path = rest.partition("/")
        if "@" in netloc:
            raise fail("user:password@ is not supported; put credentials in the stream key query")
        if netloc.startswith("["):
            host, bracket, port_text = netloc[1:].partition("]")
            if not bracket or (port_text and not port_text.startswith(":")):
                raise fail("bad IPv6 host")
            port_text = port_text[1:]
        else:
            host, _, port_text = netloc.partition(":")
        if not host or any(c.isspace() or c in "?#" for c in host):
            raise fail("missing or bad host")
        port = DEFAULT_PORTS[scheme]
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise fail("bad port (expected a number from 1 to 65535)")  # never echoed
            port = int(port_text)
        path, query_sep, query = path.partition("?")
        # A trailing slash after the key ("/live/KEY/") is tolerated; an empty app or key is not.
        app, _, key = path.removesuffix("/").rpartition("/")
        if not app or not key:
            raise fail("expected both an application and a stream key in the path")
        if any(c.isspace() for c in app + key + query):
            raise fail("whitespace in the path")
        stream_key = key + query_sep + query
        host_part = f"[{host}]" if ":" in host else host
        if port_text:
            host_part += f":{port}"
        return cls(scheme, host, port, app, stream_key, f"{scheme}://{host_part}/{app}")

    @property
    def redacted(self) -> str:
        """The URL with the stream key replaced by ``***``: safe for logs and the status API."""
        return f"{self.tc_url}/***"

    def __repr__(self) -> str:
        return f"RtmpUrl({self.redacted!r})"

    def __str__(self) -> str:
        return self.redacted
