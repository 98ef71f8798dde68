"""The merged-read tick, ``[server] tick_ms`` (issue 12: configurable, 10-20 ms)."""

from pathlib import Path

import pytest

from relay.config import load_config
from relay.errors import ConfigError

BASE = '[streams.cam1]\nsource = "rtsp://192.0.2.10/s"\n'


@pytest.mark.parametrize(("server", "tick"), [("", 0.020), ("tick_ms = 10\n", 0.010),
                                              ("tick_ms = 12.5\n", 0.0125)])
def test_tick_ms(tmp_path: Path, server: str, tick: float) -> None:
    path = tmp_path / "relay.toml"
    path.write_text("[server]\n" + server + BASE)
    assert load_config(path).server.tick == pytest.approx(tick)


@pytest.mark.parametrize("value", ["5", "25", "true", '"20"'])
def test_tick_ms_out_of_bounds_is_named(tmp_path: Path, value: str) -> None:
    path = tmp_path / "relay.toml"
    path.write_text(f"[server]\ntick_ms = {value}\n" + BASE)
    with pytest.raises(ConfigError, match=r"server.tick_ms: expected 10 to 20 milliseconds"):
        load_config(path)
