"""Config keys of rtsps:// sources and redirects: tls_fingerprint, redirect_credentials."""

from pathlib import Path

import pytest

from relay.config import SourceUrl, load_config
from relay.errors import ConfigError
from tests.unit.test_config import write

PIN = "sha256:" + ":".join(f"{b:02X}" for b in range(32))
SRC = "[streams.cam]\nsource = 'rtsps://cam.local:7441/AbC'\n"


def test_rtsps_source_default_port() -> None:
    url = SourceUrl.parse("rtsps://u:p@cam.local/s", "x")
    assert (url.url, url.port, url.password) == ("rtsps://cam.local/s", 322, "p")


def test_keys_load(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, SRC + f"tls_fingerprint = '{PIN.lower()}'\n"
                               "redirect_credentials = ['Cam2.Local:554', '[::1]:8554']\n"))
    (cam,) = config.streams
    assert cam.tls_fingerprint == bytes(range(32))
    assert cam.redirect_credentials == {"cam2.local:554", "[::1]:8554"}
    bare = load_config(write(tmp_path, SRC + f"tls_fingerprint = '{PIN[7:].replace(':', '')}'"))
    assert bare.streams[0].tls_fingerprint == bytes(range(32))


@pytest.mark.parametrize("body, message", [
    (SRC + "tls_fingerprint = 'sha256:AB:CD'", r"streams.cam.tls_fingerprint: expected \"sha256:"),
    (SRC + "tls_fingerprint = 5", r"streams.cam.tls_fingerprint: expected \"sha256:"),
    (SRC + f"tls_fingerprint = '{PIN[:-1]}G'", r"streams.cam.tls_fingerprint: expected"),
    (SRC.replace("rtsps", "rtsp") + f"tls_fingerprint = '{PIN}'",
     r"streams.cam.tls_fingerprint: expected an rtsps:// source"),
    (SRC + "redirect_credentials = 'h:554'", r"streams.cam.redirect_credentials: expected a list"),
    (SRC + "redirect_credentials = ['h']", r"streams.cam.redirect_credentials: expected HOST:PORT"),
    (SRC + "redirect_credentials = ['h:0']", r"streams.cam.redirect_credentials: expected HOST"),
])
def test_bad_keys_name_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(info.value).startswith(str(path))
