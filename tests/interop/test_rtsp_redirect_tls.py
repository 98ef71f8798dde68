"""Redirects and rtsps:// against real peers, through ``relay run``: a camera that redirects to
GStreamer's RTSP server on another port (credentials sent there only when the config allows it),
and GStreamer behind nginx terminating TLS, pulled to HLS with the certificate verified (refused,
then trusted through SSL_CERT_FILE) or pinned by its SHA-256 fingerprint (a wrong pin refused)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from relay.rtsp.headers import Headers
from relay.rtsp.message import ConnectionClosed, MessageReader, Request, Response
from relay.sansio import NEED_DATA
from tests.interop.certs import fingerprint, make_ca
from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.hlscheck import check_segments
from tests.interop.nginx import start_tls_proxy
from tests.interop.relayproc import RelayProcess

SEGMENT = 2.0
WRONG_PIN = "sha256:" + ":".join(["AB"] * 32)
USER, PASSWORD = "operator", "Redirect-Pa55-9917"


class Redirector:
    """A camera on 127.0.0.1 that asks for Basic credentials and, given any, answers 302 to
    ``location`` (served from a thread, one connection at a time)."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.authorized = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed: the test is over
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        reader = MessageReader()
        while True:
            try:
                reader.receive_data(conn.recv(65536))
            except OSError:
                return
            while (event := reader.next_event()) is not NEED_DATA:
                if isinstance(event, ConnectionClosed):
                    return
                assert isinstance(event, Request)
                headers = Headers([("CSeq", event.headers.get("CSeq") or "0")])
                if "Authorization" in event.headers:
                    self.authorized += 1
                    headers["Location"] = self.location
                    conn.sendall(bytes(Response(302, "Found", headers)))
                else:
                    headers["WWW-Authenticate"] = 'Basic realm="redirector"'
                    conn.sendall(bytes(Response(401, "Unauthorized", headers)))

    def close(self) -> None:
        self.listener.close()


def _config(http: int, hls: Path, streams: dict[str, tuple[str, str]]) -> str:
    """Streams as name -> (source, extra TOML lines)."""
    text = f'[server]\nhttp = "127.0.0.1:{http}"\nhls_dir = "{hls}"\n'
    for name, (source, extra) in streams.items():
        text += (f'\n[streams.{name}]\nsource = "{source}"\nsegment_seconds = {SEGMENT:g}\n'
                 f"{extra}")
    return text


def _run(tmp_path: Path, streams: dict[str, tuple[str, str]],
         env: dict[str, str] | None = None) -> RelayProcess:
    http = free_port()
    config = tmp_path / "relay.toml"
    config.write_text(_config(http, tmp_path / "hls", streams))
    return RelayProcess(["run", "--config", str(config)], http, tmp_path, env=env)


def _segments(hls: Path, name: str) -> int:
    path = hls / name / "index.m3u8"
    return path.read_text().count("#EXTINF") if path.exists() else 0


def test_redirect_to_another_port_gets_credentials_only_when_allowed(tmp_path: Path) -> None:
    hls = tmp_path / "hls"
    with start_gst_server({"/cam": "h264aac"}, user=USER, password=PASSWORD) as gst:
        target = f"rtsp://127.0.0.1:{gst}/cam"
        redirector = Redirector(target)
        try:
            source = f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{redirector.port}/cam"
            streams = {
                "allowed": (source, f'redirect_credentials = ["127.0.0.1:{gst}"]\n'),
                "withheld": (source, ""),
            }
            with _run(tmp_path, streams) as relay:
                def settled() -> bool:
                    s = {x["name"]: x for x in relay.api()}
                    return (s["allowed"]["state"] == "playing" and _segments(hls, "allowed") >= 2
                            and s["withheld"]["reconnects"] >= 2)

                relay.wait_for(settled, 40, "the allowed stream to play, the other to retry")
                withheld = {x["name"]: x for x in relay.api()}["withheld"]
                assert relay.stop() == 0
                log = relay.log()
        finally:
            redirector.close()
    expected = (f"the redirect target rtsp://127.0.0.1:{gst} asks for credentials, which go "
                f"only to rtsp://127.0.0.1:{redirector.port} (to allow this host: "
                f'redirect_credentials = ["127.0.0.1:{gst}"]) (redirected to {target})')
    assert withheld["state"] == "retrying" and withheld["last_error"] == expected
    quoted = expected.replace('"', '\\"')  # as the key=value log line quotes it
    warnings = [line for line in log.splitlines()
                if "level=warning" in line and "stream=withheld" in line]
    assert warnings and all(f'msg="error: {quoted}; retrying in' in w for w in warnings)
    assert redirector.authorized >= 3  # both streams' credentials went to their own camera
    assert PASSWORD not in log and "Traceback" not in log
    check_segments(hls / "allowed" / "index.m3u8", SEGMENT)


def test_rtsps_verified_pinned_and_refused(tmp_path: Path) -> None:
    ca, cert, key = make_ca(tmp_path)
    hls = tmp_path / "hls"
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    with start_gst_server({"/cam": "h264aac"}) as port, \
            start_tls_proxy(tmp_path, port, cert, key) as tls_port:
        source = f"rtsps://localhost:{tls_port}/cam"
        streams = {
            "untrusted": (source, ""),
            "pinned": (source, f'tls_fingerprint = "{fingerprint(cert)}"\n'),
            "wrongpin": (source, f'tls_fingerprint = "{WRONG_PIN}"\n'),
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
        with _run(tmp_path, {"untrusted": (source, "")}, dict(env, SSL_CERT_FILE=str(ca))) \
                as relay:
            relay.wait_for(lambda: _segments(hls, "untrusted") >= 2, 40, "HLS over rtsps")
            assert relay.api()[0]["state"] == "playing"
            assert relay.stop() == 0
    check_segments(hls / "untrusted" / "index.m3u8", SEGMENT)
