"""LL-HLS settings: ``ll_hls`` and ``part_seconds`` per stream, and the same on ``relay pull``."""

from pathlib import Path

import pytest

from relay.cli import _config, _parser
from relay.config import load_config
from relay.errors import ConfigError

BASE = '[streams.cam1]\nsource = "rtsp://192.0.2.10/s"\n'


def test_defaults_and_values(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(BASE + '[streams.cam2]\nsource = "rtsp://192.0.2.11/s"\n'
                    'll_hls = "always"\npart_seconds = 0.5\n')
    first, second = load_config(path).streams
    assert (first.ll_hls, first.part_seconds) == ("on-demand", 0.2)
    assert (second.ll_hls, second.part_seconds) == ("always", 0.5)


@pytest.mark.parametrize(("line", "message"), [
    ('ll_hls = "sometimes"', "streams.cam1.ll_hls: expected one of on-demand, always, off"),
    ("part_seconds = 0.05", "streams.cam1.part_seconds: expected a number of seconds from 0.1"),
    ("part_seconds = 3", "streams.cam1.part_seconds: expected a number of seconds from 0.1"),
    ("part_seconds = true", "streams.cam1.part_seconds"),
])
def test_bad_values_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(BASE + line + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_pull_flags() -> None:
    args = _parser().parse_args(["pull", "rtsp://192.0.2.10/s", "--name", "cam",
                                 "--ll-hls", "always", "--part-seconds", "0.25"])
    (stream,) = _config(args).streams
    assert (stream.ll_hls, stream.part_seconds) == ("always", 0.25)
    args = _parser().parse_args(["pull", "rtsp://192.0.2.10/s", "--name", "cam",
                                 "--part-seconds", "5"])
    with pytest.raises(ConfigError, match="--part-seconds"):
        _config(args)
