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
from collections.abc import Iterable
from typing import Any

from relay.config import redact_url

FORMATS = ("text", "json")
_FIELD = re.compile(r"([a-z_]+)=(\S+)\s*")
_BARE = re.compile(r"^[^\s\"=\\]+$")


class Redactor:
    """The configured secrets, each replaced by ``***`` wherever text leaves the process.

    One per process, made by ``setup_logging`` and handed to what needs it (the log formatters,
    the status snapshot, a config reload), so no module holds the secrets.
    """

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()

    def set_secrets(self, secrets: Iterable[str]) -> None:
        """Replace the strings redacted (call again after a reload)."""
        # longest first, so a secret containing another is replaced whole; a 1-2 character
        # "secret" would eat the log
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        """``text`` with every secret and every URL credential replaced by ``***``."""
        for secret in self._secrets:
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


def _record_fields(record: logging.LogRecord, redact: Redactor
                   ) -> tuple[dict[str, Any], str]:
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

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        redact = self.redact
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        entry, rest = _record_fields(record, redact)
        line = f"time={stamp} " + " ".join(f"{k}={_quote(v)}" for k, v in entry.items())
        if rest:
            line += f" msg={_quote(rest)}"
        if record.exc_info:
            # one event, one line: the traceback rides along as a quoted field
            line += f" exc={_quote(redact(self.formatException(record.exc_info)))}"
        return line


class JsonFormatter(logging.Formatter):
    """``{"time": 1700000000.1, "level": "info", "stream": "cam1", "msg": "..."}``."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        redact = self.redact
        entry, rest = _record_fields(record, redact)
        out: dict[str, Any] = {"time": round(record.created, 3), **entry, "msg": rest}
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out)


class LogOutput:
    """The process's log output: stderr, one line per record, in a format that a config file may
    change unless the command line chose it.

    Attributes:
        redact: the secrets scrubbed from every line.
    """

    def __init__(self, verbose: bool = False, *, pinned: bool = False) -> None:
        self.redact = Redactor()
        self._verbose = verbose
        self._pinned = pinned

    def install(self, fmt: str) -> None:
        """Send every logger's records to stderr in ``fmt`` ("text" or "json")."""
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter(self.redact) if fmt == "json"
                             else LogfmtFormatter(self.redact))
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(logging.DEBUG if self._verbose else logging.INFO)

    def use_config_format(self, fmt: str) -> None:
        """Switch to a config file's ``log_format``, unless the command line pinned one."""
        if not self._pinned:
            self.install(fmt)


def setup_logging(fmt: str = "text", verbose: bool = False, *, pinned: bool = False
                  ) -> LogOutput:
    """The process's log output, installed once at start.

    Args:
        fmt: "text" (logfmt) or "json".
        verbose: debug lines too.
        pinned: the format was chosen on the command line; a config file cannot change it.
    """
    output = LogOutput(verbose, pinned=pinned)
    output.install(fmt)
    return output
