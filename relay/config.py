"""Configuration: frozen dataclasses built once from the command line or a TOML file.

Every error names where it comes from (the flag, or the file and key path) and what was expected,
before anything starts. Credentials are split out of URLs here so that nothing downstream ever
holds a URL that would leak them into a log line, the API or the page.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from relay.audio.policy import AudioPolicy
from relay.errors import ConfigError
from relay.rtmp.url import RtmpUrl
from relay.rtsp.client import DEFAULT_PORTS, Origin

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Matched whole (``fullmatch``): ``$`` would also accept a trailing newline."""
MAX_CONFIG_BYTES = 1 << 20
"""A relay.toml larger than this is refused before it is parsed."""
SECRET_PARAM = re.compile(r"(?i)([?&;][^=&;#\s]*(?:token|pass|key|sig|auth)[^=&;#\s]*=)([^&#\s]*)")
"""A query parameter whose value is a credential: token, password, pass, key, sig, signature,
auth, and any name holding one of them (access_token, X-Amz-Signature); group 2 is the value."""
_USERINFO = re.compile(r"(?<=://)[^/\s]*@")
_HOST_COLON = re.compile(r"(?<=://)[^\s/?#@\[\]:]+:([^\s/]*)")
TRANSPORTS = ("tcp", "udp", "auto")
DEFAULT_HTTP = "127.0.0.1:8080"
DEFAULT_TICK = 0.020
MIN_TICK = 0.010
MAX_TICK = 0.020
"""The merged-read tick's bounds (seconds; ``[server] tick_ms``): under 10 ms the wakeups cost
what merging saves, over 20 ms it takes more than half of one frame's delay budget (40 ms at
25 fps)."""


@dataclass(frozen=True, slots=True)
class SourceUrl:
    """An rtsp:// or rtsps:// URL split into the parts a client needs, credentials kept apart."""

    url: str  # without credentials
    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        """The URL for logs, ``run --check`` and /api: credential query parameters redacted."""
        return redact_url(self.url)

    @classmethod
    def parse(cls, text: str, where: str) -> SourceUrl:
        try:
            parts = urlsplit(text)
        except ValueError:  # its message quotes the host, which may hold a password
            raise ConfigError(f"{where}: not a valid URL (bad host)") from None
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            # never echoed: "user:password/path" without "@host" parses as host:port
            raise ConfigError(f"{where}: not a valid URL (the port is not a number from 1 to "
                              "65535; credentials go as user:password@host)")
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise ConfigError(f"{where}: expected an rtsp:// URL (or rtsps://), "
                              f"got scheme {parts.scheme!r}")
        if not parts.hostname:
            raise ConfigError(f"{where}: the URL has no host")
        host = parts.hostname
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
        clean = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(clean, host, port or DEFAULT_PORTS[scheme], username, password)


def redact_url(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``: user:password@,
    a "user:password" with no "@host" (it would parse as host:port), and the values of
    credential query parameters (``SECRET_PARAM``). RTMP URLs also redact their own key."""
    text = _USERINFO.sub("***@", text)
    text = _HOST_COLON.sub(
        lambda m: m.group(0) if re.fullmatch(r"\d{1,5}(?:[?#].*)?", m.group(1)) else "***", text)
    return SECRET_PARAM.sub(r"\1***", text)


def query_secrets(url: str) -> list[str]:
    """The values of ``url``'s credential query parameters, as written and percent-decoded."""
    values = [m.group(2) for m in SECRET_PARAM.finditer(url) if m.group(2)]
    return values + [unquote(v) for v in values if unquote(v) != v]


def parse_hostport(text: str, where: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: expected HOST:PORT such as 127.0.0.1:8080, got {text!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """One stream, as configured. Frozen and comparable: a reload restarts a stream only when
    its StreamConfig changed."""

    name: str
    source: SourceUrl
    transport: str = "auto"
    hls: bool = True
    segment_seconds: float = 10.0
    window: int = 6
    rtmp: tuple[RtmpUrl, ...] = ()
    audio: AudioPolicy = AudioPolicy.AUTO
    hls_push: str | None = field(default=None, repr=False)  # may hold user:password@
    enabled: bool = True
    redirect_credentials: frozenset[str] = frozenset()  # HOST:PORT a redirect may take them to
    tls_fingerprint: bytes | None = None  # rtsps: the camera's pinned leaf certificate (SHA-256)
    thumbnail_seconds: float = 0.0  # 0: a thumbnail only when the web process asks for one
    ll_hls: str = "on-demand"  # LL_HLS_MODES
    part_seconds: float = 0.2  # LL-HLS part target, PART_SECONDS_RANGE


@dataclass(frozen=True, slots=True)
class ServerConfig:
    http: tuple[str, int] = ("127.0.0.1", 8080)
    hls_dir: Path = Path("./hls")
    token: str | None = field(default=None, repr=False)
    log_format: str = "text"
    tick: float = DEFAULT_TICK  # seconds between merged reads (relay.drivers.ticker)


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    streams: tuple[StreamConfig, ...]

    def secrets(self) -> list[str]:
        """Every credential in the config: passwords, stream keys, push credentials, token."""
        found: list[str] = []
        if self.server.token:
            found.append(self.server.token)
        for stream in self.streams:
            found += [s for s in (stream.source.username, stream.source.password) if s]
            found += query_secrets(stream.source.url)
            for url in stream.rtmp:
                found += [url.stream_key, *query_secrets(url.stream_key)]
            if stream.hls_push:
                parts = urlsplit(stream.hls_push)
                found += [unquote(s) for s in (parts.username, parts.password) if s]
                found += query_secrets(stream.hls_push)
        return found


def check_name(name: str, where: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise ConfigError(
            f"{where}: stream name {name!r} must be 1-64 letters, digits, '-' or '_'"
        )
    return name


def check_tick_ms(value: Any, where: str) -> float:
    """The merged-read tick in milliseconds, MIN_TICK to MAX_TICK."""
    low, high = MIN_TICK * 1000, MAX_TICK * 1000
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{where}: expected {low:g} to {high:g} milliseconds, got {value!r}")
    return float(value)


def check_thumbnail_seconds(value: Any, where: str) -> float:
    """0 (a thumbnail only when someone looks) or 1 to 3600 seconds between thumbnails."""
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not (value == 0 or 1 <= value <= 3600)):
        raise ConfigError(f"{where}: expected 0 (on demand) or 1 to 3600 seconds, got {value!r}")
    return float(value)


LL_HLS_MODES = ("on-demand", "always", "off")
"""``ll_hls``: the LL-HLS muxer runs while someone reads ll.m3u8, always, or never."""
PART_SECONDS_RANGE = (0.1, 2.0)
"""Allowed ``part_seconds`` (LL-HLS part target duration)."""


def check_ll_hls(value: Any, where: str) -> str:
    if value not in LL_HLS_MODES:
        raise ConfigError(f"{where}: expected one of {', '.join(LL_HLS_MODES)}, got {value!r}")
    return str(value)


def check_part_seconds(value: Any, where: str) -> float:
    low, high = PART_SECONDS_RANGE
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{where}: expected a number of seconds from {low} to {high}, "
                          f"got {value!r}")
    return float(value)


def check_segment_seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 60:
        raise ConfigError(f"{where}: expected a number of seconds from 1 to 60, got {value!r}")
    return float(value)


def check_transport(value: Any, where: str) -> str:
    if value not in TRANSPORTS:
        raise ConfigError(f"{where}: expected one of tcp, udp, auto, got {value!r}")
    return str(value)


def check_audio(value: Any, where: str) -> AudioPolicy:
    try:
        return AudioPolicy(value)
    except ValueError:
        choices = ", ".join(p.value for p in AudioPolicy)
        raise ConfigError(f"{where}: expected one of {choices}, got {value!r}") from None


def _expand_env(value: str, where: str) -> str:
    """Replace ${VAR} with the environment's value, so secrets can stay out of the file."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return os.environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, value)


SERVER_KEYS = {"http", "hls_dir", "token", "log_format", "tick_ms"}
STREAM_KEYS = {"source", "transport", "hls", "segment_seconds", "window", "rtmp", "audio",
               "hls_push", "enabled", "redirect_credentials", "tls_fingerprint",
               "thumbnail_seconds", "ll_hls", "part_seconds"}
LOG_FORMATS = ("text", "json")
TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/-]{16,512}=*")
"""RFC 6750 section 2.1 b64token; at least 16 characters, so it cannot be guessed. Matched
whole (``fullmatch``): a trailing newline is refused, not sent in a header."""


def check_log_format(value: Any, where: str) -> str:
    if value not in LOG_FORMATS:
        raise ConfigError(f"{where}: expected \"text\" or \"json\", got {value!r}")
    return str(value)


def check_push_url(text: str, where: str) -> str:
    """An http(s):// origin URL (user:password@ allowed) that HLS files are PUT under."""
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:  # its message quotes the URL's text, which may hold a password
        raise ConfigError(f"{where}: not a valid URL (bad host or port; credentials go as "
                          "user:password@host)") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ConfigError(f"{where}: expected an http:// or https:// URL, "
                          f"got scheme {parts.scheme!r}")
    if not parts.hostname:
        raise ConfigError(f"{where}: expected an http:// or https:// URL with a host")
    if parts.fragment or any(c.isspace() for c in text):
        raise ConfigError(f"{where}: expected a URL without spaces or #fragment")
    return text


def check_redirect_credentials(value: Any, where: str) -> frozenset[str]:
    """HOST:PORT entries, normalised as ``Origin.hostport`` names a redirect's target."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of \"HOST:PORT\" strings")
    hostports = (parse_hostport(text, where) for text in value)
    return frozenset(Origin("rtsp", host.lower(), port).hostport for host, port in hostports)


def check_fingerprint(value: Any, where: str) -> bytes:
    """A SHA-256 certificate fingerprint as ``openssl x509 -fingerprint -sha256`` prints it."""
    text = value.strip() if isinstance(value, str) else ""
    if text.lower().startswith("sha256:"):
        text = text[7:]
    digits = text.replace(":", "")
    if len(digits) != 64 or not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise ConfigError(f"{where}: expected \"sha256:AB:CD:...\" (32 hex bytes), "
                          f"got {value!r}")
    return bytes.fromhex(digits)


def check_hls_dir(path: Path, where: str) -> Path:
    """``path`` if it is a folder the relay can write, or can create (it is not created here,
    so ``run --check`` changes nothing): checked before start, so that a file in its place or
    a read-only parent is one line rather than a traceback once streams run."""
    try:
        probe = path.absolute()
        while not os.path.lexists(probe) and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            blocker = "" if probe == path.absolute() else f" ({probe} is not a directory)"
            raise ConfigError(f"{where}: {path} is not a directory{blocker}")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise ConfigError(f"{where}: {path} cannot be written ({probe} is read-only "
                              "for this user)")
    except OSError as exc:
        raise ConfigError(f"{where}: {path} cannot be checked ({exc.strerror})") from None
    return path


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table, got {type(value).__name__}")
    return value


def _string(table: dict[str, Any], key: str, where: str, default: str | None = None, *,
            secret: bool = False) -> str | None:
    """``table[key]`` if it is a string; the error shows a secret-bearing value's type only."""
    value = table.get(key, default)
    if value is not None and not isinstance(value, str):
        got = type(value).__name__ if secret else repr(value)
        raise ConfigError(f"{where}: expected a string, got {got}")
    return value


def _bool(table: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def _unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    extra = sorted(set(table) - known)
    if extra:
        raise ConfigError(f"{where}.{extra[0]}: unknown key (expected one of "
                          f"{', '.join(sorted(known))})")


def _server(data: dict[str, Any], path: Path) -> ServerConfig:
    table = _table(data, "server", f"{path}: [server]")
    where = f"{path}: server"
    _unknown(table, SERVER_KEYS, where)
    http_text = _string(table, "http", f"{where}.http", DEFAULT_HTTP)
    hls_dir = _string(table, "hls_dir", f"{where}.hls_dir", "./hls")
    token = _string(table, "token", f"{where}.token", secret=True)
    if token is not None:
        token = _expand_env(token, f"{where}.token")
        if not TOKEN_RE.fullmatch(token):
            # never echo the token itself
            raise ConfigError(f"{where}.token: expected at least 16 characters of letters, "
                              "digits and -._~+/, no spaces or newlines (a bearer token, "
                              "RFC 6750)")
    assert http_text is not None and hls_dir is not None
    if not hls_dir:
        raise ConfigError(f"{where}.hls_dir: expected a directory path, got an empty string")
    return ServerConfig(
        http=parse_hostport(http_text, f"{where}.http"),
        hls_dir=Path(hls_dir),
        token=token,
        log_format=check_log_format(table.get("log_format", "text"), f"{where}.log_format"),
        tick=check_tick_ms(table.get("tick_ms", DEFAULT_TICK * 1000), f"{where}.tick_ms") / 1000,
    )


def _stream(name: str, table: Any, path: Path) -> StreamConfig:
    check_name(name, f"{path}: [streams]")
    where = f"{path}: streams.{name}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table [streams.{name}], "
                          f"got {type(table).__name__}")
    _unknown(table, STREAM_KEYS, where)
    if not isinstance(table.get("source"), str):
        got = "nothing" if "source" not in table else type(table["source"]).__name__
        raise ConfigError(f"{where}.source: expected an rtsp:// URL string, got {got}")
    source = SourceUrl.parse(_expand_env(table["source"], f"{where}.source"), f"{where}.source")
    window = table.get("window", 6)
    if isinstance(window, bool) or not isinstance(window, int) or not 2 <= window <= 100:
        raise ConfigError(f"{where}.window: expected an integer from 2 to 100, got {window!r}")
    rtmp_list = table.get("rtmp", [])
    if isinstance(rtmp_list, str):
        rtmp_list = [rtmp_list]
    if not isinstance(rtmp_list, list) or not all(isinstance(u, str) for u in rtmp_list):
        raise ConfigError(f"{where}.rtmp: expected a list of rtmp:// URL strings")
    rtmp = []
    for index, text in enumerate(rtmp_list):
        try:
            rtmp.append(RtmpUrl.parse(_expand_env(text, f"{where}.rtmp[{index}]")))
        except ConfigError as exc:
            message = str(exc)
            if message.startswith(str(path)):
                raise
            raise ConfigError(f"{where}.rtmp[{index}]: {message}") from None
    if len({(u.tc_url, u.stream_key) for u in rtmp}) != len(rtmp):
        raise ConfigError(f"{where}.rtmp: expected distinct destinations, got one twice")
    hls = _bool(table, "hls", f"{where}.hls", True)
    push = _string(table, "hls_push", f"{where}.hls_push", secret=True)
    if push is not None:
        push = check_push_url(_expand_env(push, f"{where}.hls_push"), f"{where}.hls_push")
        if not hls:
            raise ConfigError(f"{where}.hls_push: expected hls = true (the pushed files are "
                              "the local HLS output)")
    fingerprint = None
    if "tls_fingerprint" in table:
        fingerprint = check_fingerprint(table["tls_fingerprint"], f"{where}.tls_fingerprint")
        if not source.url.startswith("rtsps:"):
            raise ConfigError(f"{where}.tls_fingerprint: expected an rtsps:// source "
                              "(a fingerprint pins a TLS certificate)")
    return StreamConfig(
        name=name,
        source=source,
        transport=check_transport(table.get("transport", "auto"), f"{where}.transport"),
        hls=hls,
        segment_seconds=check_segment_seconds(
            table.get("segment_seconds", 10), f"{where}.segment_seconds"
        ),
        window=window,
        rtmp=tuple(rtmp),
        audio=check_audio(table.get("audio", "auto"), f"{where}.audio"),
        hls_push=push,
        enabled=_bool(table, "enabled", f"{where}.enabled", True),
        redirect_credentials=check_redirect_credentials(
            table.get("redirect_credentials", []), f"{where}.redirect_credentials"
        ),
        tls_fingerprint=fingerprint,
        thumbnail_seconds=check_thumbnail_seconds(
            table.get("thumbnail_seconds", 0), f"{where}.thumbnail_seconds"),
        ll_hls=check_ll_hls(table.get("ll_hls", "on-demand"), f"{where}.ll_hls"),
        part_seconds=check_part_seconds(table.get("part_seconds", 0.2),
                                        f"{where}.part_seconds"),
    )


def load_config(path: Path) -> Config:
    """Read and check a relay.toml.

    Raises:
        ConfigError: naming the file, the key path and what was expected; no secret is shown.
    """
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes (MAX_CONFIG_BYTES)")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML (not UTF-8 at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:  # names a position, never a value
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError(f"{path}: not valid TOML (arrays or tables nested too deeply)") from None
    unknown = sorted(set(data) - {"server", "streams"})
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r} (expected [server] and "
                          "[streams.NAME])")
    server = _server(data, path)
    streams_data = _table(data, "streams", f"{path}: [streams]")
    if not streams_data:
        raise ConfigError(f"{path}: expected at least one [streams.NAME] table")
    streams = tuple(_stream(name, table, path) for name, table in streams_data.items())
    return Config(server=server, streams=streams)
