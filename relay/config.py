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

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
TRANSPORTS = ("tcp", "udp", "auto")
DEFAULT_HTTP = "127.0.0.1:8080"


@dataclass(frozen=True, slots=True)
class SourceUrl:
    """An rtsp:// URL split into the parts a client needs, credentials kept apart."""

    url: str  # without credentials
    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return self.url

    @classmethod
    def parse(cls, text: str, where: str) -> SourceUrl:
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"{where}: not a valid URL ({exc})") from None
        if parts.scheme.lower() != "rtsp":
            raise ConfigError(f"{where}: expected an rtsp:// URL, got scheme {parts.scheme!r}")
        if not parts.hostname:
            raise ConfigError(f"{where}: the URL has no host")
        host = parts.hostname
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
        clean = urlunsplit(("rtsp", netloc, parts.path or "/", parts.query, ""))
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(clean, host, port or 554, username, password)


def redact_url(text: str) -> str:
    """The URL with any user:password@ replaced by ***@ (RTMP URLs redact their own key)."""
    return re.sub(r"(?<=://)[^/@\s]*@", "***@", text)


def parse_hostport(text: str, where: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: expected HOST:PORT such as 127.0.0.1:8080, got {text!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True)
class StreamConfig:
    name: str
    source: SourceUrl
    transport: str = "auto"
    hls: bool = True
    segment_seconds: float = 10.0
    window: int = 6
    rtmp: tuple[RtmpUrl, ...] = ()
    audio: AudioPolicy = AudioPolicy.AUTO


@dataclass(frozen=True, slots=True)
class ServerConfig:
    http: tuple[str, int] = ("127.0.0.1", 8080)
    hls_dir: Path = Path("./hls")


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    streams: tuple[StreamConfig, ...]


def check_name(name: str, where: str) -> str:
    if not NAME_RE.match(name):
        raise ConfigError(
            f"{where}: stream name {name!r} must be 1-64 letters, digits, '-' or '_'"
        )
    return name


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


def load_config(path: Path) -> Config:
    """Read and check a relay.toml; raises ConfigError naming the file and key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - {"server", "streams"}
    if unknown:
        raise ConfigError(f"{path}: unknown section {sorted(unknown)[0]!r}")
    server_data = data.get("server", {})
    if not isinstance(server_data, dict):
        raise ConfigError(f"{path}: [server] must be a table")
    http = parse_hostport(str(server_data.get("http", DEFAULT_HTTP)), f"{path}: server.http")
    server = ServerConfig(http=http, hls_dir=Path(str(server_data.get("hls_dir", "./hls"))))
    streams = []
    streams_data = data.get("streams", {})
    if not isinstance(streams_data, dict) or not streams_data:
        raise ConfigError(f"{path}: expected at least one [streams.NAME] table")
    known = {"source", "transport", "hls", "segment_seconds", "window", "rtmp", "audio"}
    for name, table in streams_data.items():
        where = f"{path}: streams.{name}"
        check_name(name, where)
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table")
        extra = set(table) - known
        if extra:
            raise ConfigError(f"{where}.{sorted(extra)[0]}: unknown key")
        if "source" not in table or not isinstance(table["source"], str):
            raise ConfigError(f"{where}.source: expected an rtsp:// URL string")
        window = table.get("window", 6)
        if isinstance(window, bool) or not isinstance(window, int) or not 2 <= window <= 100:
            raise ConfigError(f"{where}.window: expected an integer from 2 to 100, got {window!r}")
        rtmp = table.get("rtmp", [])
        if not isinstance(rtmp, list) or not all(isinstance(u, str) for u in rtmp):
            raise ConfigError(f"{where}.rtmp: expected a list of rtmp:// URLs")
        streams.append(
            StreamConfig(
                name=name,
                source=SourceUrl.parse(_expand_env(table["source"], f"{where}.source"),
                                       f"{where}.source"),
                transport=check_transport(table.get("transport", "auto"), f"{where}.transport"),
                hls=bool(table.get("hls", True)),
                segment_seconds=check_segment_seconds(
                    table.get("segment_seconds", 10), f"{where}.segment_seconds"
                ),
                window=window,
                rtmp=tuple(RtmpUrl.parse(_expand_env(u, f"{where}.rtmp")) for u in rtmp),
                audio=check_audio(table.get("audio", "auto"), f"{where}.audio"),
            )
        )
    return Config(server=server, streams=tuple(streams))
