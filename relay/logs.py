"""One line per event, key=value (logfmt) or JSON, chosen by ``--log-format`` or ``[server]
log_format``.

Drivers write messages as ``stream=cam1 rtmp=rtmp://host/app/*** error: refused; retrying in 4 s``:
the leading ``key=value`` words become fields and the rest the ``msg``, so log tools can filter on
the stream. As a last line of defence every configured secret (passwords, stream keys, the API
token) is replaced by ``***`` in whatever reaches the output, tracebacks included, and so is
anything that looks like a credential in a URL (``redact_url``): a config that never loaded, such
as a reload's broken file, registered no secrets, but its URLs are still scrubbed.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from relay.config import redact_url

FORMATS = ("text", "json")
_FIELD = re.compile(r"([a-z_]+)=(\S+)\s*")
_BARE = re.compile(r"^[^\s\"=\\]+$")
_secrets: set[str] = set()


def set_secrets(secrets: list[str]) -> None:
    """Replace the strings redacted from every log line (call again after a reload)."""
    _secrets.clear()
    _secrets.update(s for s in secrets if len(s) >= 3)  # a 1-2 char "secret" would eat the log


def redact(text: str) -> str:
    """``text`` with every registered secret (longest first) and every URL credential replaced
    by ``***``."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return redact_url(text)


def split_fields(message: str) -> tuple[dict[str, str], str]:
    """Leading ``key=value`` words of a message, and the rest."""
    fields: dict[str, str] = {}
    pos = 0
    while match := _FIELD.match(message, pos):
        fields[match.group(1)] = match.group(2)
        pos = match.end()
    return fields, message[pos:]


def _record_fields(record: logging.LogRecord) -> tuple[dict[str, Any], str]:
    message = redact(record.getMessage())
    fields, rest = split_fields(message)
    stream = getattr(record, "stream", None)  # logging's extra={"stream": name}
    if stream is not None and "stream" not in fields:
        fields = {"stream": stream, **fields}
    entry: dict[str, Any] = {"level": record.levelname.lower(), "logger": record.name}
    entry.update(fields)
    return entry, rest


def _quote(value: object) -> str:
    text = str(value)
    return text if text and _BARE.match(text) else json.dumps(text)


class LogfmtFormatter(logging.Formatter):
    """``time=... level=info logger=relay.rtsp stream=cam1 msg="playing over TCP"``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        entry, rest = _record_fields(record)
        line = f"time={stamp} " + " ".join(f"{k}={_quote(v)}" for k, v in entry.items())
        if rest:
            line += f" msg={_quote(rest)}"
        if record.exc_info:
            # one event, one line: the traceback rides along as a quoted field
            line += f" exc={_quote(redact(self.formatException(record.exc_info)))}"
        return line


class JsonFormatter(logging.Formatter):
    """``{"time": 1700000000.1, "level": "info", "stream": "cam1", "msg": "..."}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry, rest = _record_fields(record)
        out: dict[str, Any] = {"time": round(record.created, 3), **entry, "msg": rest}
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out)


_pinned = False


def setup_logging(fmt: str = "text", verbose: bool = False, *, pinned: bool = False) -> None:
    """Send every logger's records to stderr, one line each, in ``fmt`` ("text" or "json").

    Args:
        fmt: "text" (logfmt) or "json".
        verbose: debug lines too.
        pinned: the format was chosen on the command line; a config file cannot change it.
    """
    global _pinned
    _pinned = pinned
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def use_config_format(fmt: str) -> None:
    """Switch to a config file's ``log_format``, unless the command line pinned one."""
    if not _pinned:
        setup_logging(fmt, logging.getLogger().level <= logging.DEBUG)
