"""Log lines: one per event, parseable as logfmt or JSON, the stream a field, secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import shlex

import pytest

from relay.logs import JsonFormatter, LogfmtFormatter, set_secrets, split_fields


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


@pytest.fixture(autouse=True)
def secrets() -> None:
    set_secrets(["hunter2", "streamkey123"])
    yield
    set_secrets([])


def parse_logfmt(line: str) -> dict[str, str]:
    return dict(tok.split("=", 1) for tok in shlex.split(line))


def test_split_fields() -> None:
    assert split_fields("stream=cam1 rtmp=rtmp://h/app/*** error: x=1; retrying in 2 s") == (
        {"stream": "cam1", "rtmp": "rtmp://h/app/***"}, "error: x=1; retrying in 2 s")
    assert split_fields("no fields here") == ({}, "no fields here")


def test_logfmt_line_is_one_parseable_line() -> None:
    line = LogfmtFormatter().format(
        record("stream=%s error: %s; retrying in %.0f s", "cam1", 'bad "quote"', 4.0, exc=True))
    assert "\n" not in line
    fields = parse_logfmt(line)
    assert fields["stream"] == "cam1" and fields["level"] == "warning"
    assert fields["msg"] == 'error: bad "quote"; retrying in 4 s'
    assert re.match(r"\d{4}-\d\d-\d\dT", fields["time"])
    assert "ValueError" in fields["exc"] and "hunter2" not in line


def test_json_line() -> None:
    line = JsonFormatter().format(record("connecting to %s", "rtsp://h/x", stream="cam2"))
    entry = json.loads(line)
    assert entry["stream"] == "cam2" and entry["msg"] == "connecting to rtsp://h/x"
    assert entry["logger"] == "relay.rtsp" and isinstance(entry["time"], float)


@pytest.mark.parametrize("formatter", [LogfmtFormatter(), JsonFormatter()])
def test_secrets_are_redacted_everywhere(formatter: logging.Formatter) -> None:
    line = formatter.format(record("stream=c key %s and pw %s", "streamkey123", "hunter2",
                                   exc=True))
    assert "streamkey123" not in line and "hunter2" not in line and "***" in line


def test_command_line_format_wins_over_the_config() -> None:
    from relay.logs import setup_logging, use_config_format

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("text", pinned=True)
        use_config_format("json")
        assert isinstance(root.handlers[0].formatter, LogfmtFormatter)
        setup_logging("text")
        use_config_format("json")
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
