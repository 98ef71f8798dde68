"""Log lines: one per event, parseable as logfmt or JSON, the stream a field, secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import shlex
from pathlib import Path

import pytest

from relay.config import load_config
from relay.errors import ConfigError
from relay.logs import JsonFormatter, LogfmtFormatter, Redactor, split_fields


def record(msg: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("inner rtsp://u:hunter2@h/x")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    rec = logging.LogRecord("relay.rtsp", logging.WARNING, __file__, 1, msg, args, exc_info)
    rec.__dict__.update(extra)
    return rec


REDACT = Redactor()
REDACT.set_secrets(["hunter2", "streamkey123"])


def parse_logfmt(line: str) -> dict[str, str]:
    return dict(tok.split("=", 1) for tok in shlex.split(line))


def test_split_fields() -> None:
    assert split_fields("stream=cam1 rtmp=rtmp://h/app/*** error: x=1; retrying in 2 s") == (
        {"stream": "cam1", "rtmp": "rtmp://h/app/***"}, "error: x=1; retrying in 2 s")
    assert split_fields("no fields here") == ({}, "no fields here")


def test_logfmt_line_is_one_parseable_line() -> None:
    line = LogfmtFormatter(REDACT).format(
        record("stream=%s error: %s; retrying in %.0f s", "cam1", 'bad "quote"', 4.0, exc=True))
    assert "\n" not in line
    fields = parse_logfmt(line)
    assert fields["stream"] == "cam1" and fields["level"] == "warning"
    assert fields["msg"] == 'error: bad "quote"; retrying in 4 s'
    assert re.match(r"\d{4}-\d\d-\d\dT", fields["time"])
    assert "ValueError" in fields["exc"] and "hunter2" not in line


def test_json_line() -> None:
    line = JsonFormatter(REDACT).format(record("connecting to %s", "rtsp://h/x", stream="cam2"))
    entry = json.loads(line)
    assert entry["stream"] == "cam2" and entry["msg"] == "connecting to rtsp://h/x"
    assert entry["logger"] == "relay.rtsp" and isinstance(entry["time"], float)


@pytest.mark.parametrize("formatter", [LogfmtFormatter(REDACT), JsonFormatter(REDACT)])
def test_secrets_are_redacted_everywhere(formatter: logging.Formatter) -> None:
    line = formatter.format(record("stream=c key %s and pw %s", "streamkey123", "hunter2",
                                   exc=True))
    assert "streamkey123" not in line and "hunter2" not in line and "***" in line


def test_command_line_format_wins_over_the_config() -> None:
    from relay.logs import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("text", pinned=True).use_config_format("json")
        assert isinstance(root.handlers[0].formatter, LogfmtFormatter)
        setup_logging("text").use_config_format("json")
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.mark.parametrize("formatter", [LogfmtFormatter(REDACT), JsonFormatter(REDACT)])
def test_url_credentials_are_redacted_without_registration(formatter: logging.Formatter) -> None:
    """A reload whose new file fails to load registers no secrets: its URLs (in the error
    line, which may quote them) are still scrubbed."""
    line = formatter.format(record(
        "reload failed, still running the previous config: %s, %s and %s",
        "rtsp://admin:N3w-Pw@cam/x?token=N3w-Tok", "rtsp://admin:N3w-Pw2/stream1",
        "http://o/live/?Signature=N3w-Sig", exc=True))
    assert "N3w" not in line and "hunter2" not in line
    assert "rtsp://***@cam/x?token=***" in line


def test_reload_error_line_never_shows_the_new_config_secrets(tmp_path: Path) -> None:
    """What ``reload`` logs when the new file does not load: no value from that file."""
    path = tmp_path / "relay.toml"
    for body in ["[streams.cam]\nsource = 'rtsp://admin:N3w-Pw/stream1'\n",
                 "[streams.cam]\nsource = ['rtsp://admin:N3w-Pw@h/x']\n",
                 "[server]\ntoken = 987654321098765432\n[streams.cam]\nsource = 'rtsp://h/x'\n"]:
        path.write_text(body)
        with pytest.raises(ConfigError) as info:
            load_config(path)
        line = LogfmtFormatter(REDACT).format(
            record("reload failed, still running the previous config: %s", str(info.value)))
        assert "N3w" not in line and "98765" not in line and "streams.cam" in line or \
            "server.token" in line


def test_two_redactors_hold_their_own_secrets() -> None:
    """No module state: a second relay in the process (a test) does not share the secrets."""
    other = Redactor()
    other.set_secrets(["0ther-secret"])
    assert REDACT("hunter2 0ther-secret") == "*** 0ther-secret"
    assert other("hunter2 0ther-secret") == "hunter2 ***"
