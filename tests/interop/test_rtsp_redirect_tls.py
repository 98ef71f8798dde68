"""rtsps:// sources for real: GStreamer's RTSP server behind nginx terminating TLS, pulled to HLS
by ``relay run``, with the certificate verified (refused, then trusted through SSL_CERT_FILE) or
pinned by its SHA-256 fingerprint (a wrong pin refused)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.interop.certs import fingerprint, make_ca
from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.hlscheck import check_segments
from tests.interop.nginx import start_tls_proxy
from tests.interop.relayproc import RelayProcess

SEGMENT = 2.0
WRONG_PIN = "sha256:" + ":".join(["AB"] * 32)


def _config(http: int, hls: Path, streams: dict[str, tuple[str, str | None]]) -> str:
    text = f'[server]\nhttp = "127.0.0.1:{http}"\nhls_dir = "{hls}"\n'
    for name, (source, pin) in streams.items():
        text += f'\n[streams.{name}]\nsource = "{source}"\nsegment_seconds = {SEGMENT:g}\n'
        if pin is not None:
            text += f'tls_fingerprint = "{pin}"\n'
    return text


def _run(tmp_path: Path, streams: dict[str, tuple[str, str | None]],
         env: dict[str, str] | None = None) -> RelayProcess:
    http = free_port()
    config = tmp_path / "relay.toml"
    config.write_text(_config(http, tmp_path / "hls", streams))
    return RelayProcess(["run", "--config", str(config)], http, tmp_path, env=env)


def _segments(hls: Path, name: str) -> int:
    path = hls / name / "index.m3u8"
    return path.read_text().count("#EXTINF") if path.exists() else 0


def test_rtsps_verified_pinned_and_refused(tmp_path: Path) -> None:
    ca, cert, key = make_ca(tmp_path)
    hls = tmp_path / "hls"
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    with start_gst_server({"/cam": "h264aac"}) as port, \
            start_tls_proxy(tmp_path, port, cert, key) as tls_port:
        source = f"rtsps://localhost:{tls_port}/cam"
        streams = {
            "untrusted": (source, None),
            "pinned": (source, fingerprint(cert)),
            "wrongpin": (source, WRONG_PIN),
        }
        with _run(tmp_path, streams, env) as relay:
            def settled() -> bool:
                s = {x["name"]: x for x in relay.api()}
                return (s["pinned"]["state"] == "playing" and _segments(hls, "pinned") >= 2
                        and bool(s["untrusted"]["last_error"])
                        and bool(s["wrongpin"]["last_error"]))

            relay.wait_for(settled, 40, "the pinned stream to play, the others to fail")
            status = {x["name"]: x for x in relay.api()}
            assert relay.stop() == 0
            log = relay.log()
        assert status["pinned"]["transport"] == "tcp"
        untrusted, wrongpin = status["untrusted"], status["wrongpin"]
        assert untrusted["state"] == "retrying", untrusted
        assert "TLS certificate rejected" in untrusted["last_error"], untrusted
        assert wrongpin["state"] == "retrying", wrongpin
        assert (f"is {fingerprint(cert)}, not the pinned tls_fingerprint {WRONG_PIN}"
                in wrongpin["last_error"]), wrongpin
        assert "Traceback" not in log
        assert untrusted["packets_received"] == wrongpin["packets_received"] == 0
        check_segments(hls / "pinned" / "index.m3u8", SEGMENT)

        # the same certificate, trusted through its CA as OpenSSL reads SSL_CERT_FILE
        with _run(tmp_path, {"untrusted": (source, None)}, dict(env, SSL_CERT_FILE=str(ca))) \
                as relay:
            relay.wait_for(lambda: _segments(hls, "untrusted") >= 2, 40, "HLS over rtsps")
            assert relay.api()[0]["state"] == "playing"
            assert relay.stop() == 0
    check_segments(hls / "untrusted" / "index.m3u8", SEGMENT)
