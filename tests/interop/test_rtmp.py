"""Relay publishes to a real nginx-rtmp, fed from GStreamer's RTSP server, through faults."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests.interop.certs import make_ca
from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.nginx import start_nginx_rtmp
from tests.interop.relayproc import RelayProcess

KEY = "cam-Secret-Key-123"


def _pull(source: str, tmp_path: Path, rtmp: list[str], env: dict[str, str] | None = None
          ) -> RelayProcess:
    http = free_port()
    args = ["pull", source, "--name", "cam", "--hls-dir", str(tmp_path / "hls"),
            "--segment-seconds", "2", "--http", f"127.0.0.1:{http}", "--transport", "tcp"]
    for url in rtmp:
        args += ["--rtmp", url]
    return RelayProcess(args, http, tmp_path, env=env)


def _destinations(relay: RelayProcess) -> list[dict]:
    return relay.api()[0]["rtmp"]


def _packets(path: Path) -> tuple[list[dict], list[dict]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_packets", str(path)],
        check=True, capture_output=True, text=True, timeout=60,
    )
    info = json.loads(out.stdout)
    return info["streams"], info["packets"]


def test_publish_and_faulty_destinations(tmp_path: Path) -> None:
    """One good destination, one dead, one with a wrong app: the good one is clean and gapless."""
    with start_gst_server({"/cam": "h264aac"}) as port, start_nginx_rtmp(tmp_path) as nginx:
        dead = f"rtmp://127.0.0.1:{free_port()}/live/{KEY}"
        wrong_app = f"rtmp://127.0.0.1:{nginx.port}/nope/{KEY}"
        with _pull(f"rtsp://127.0.0.1:{port}/cam", tmp_path,
                   [nginx.url("live", KEY), dead, wrong_app]) as relay:
            relay.wait_for(lambda: _destinations(relay)[0]["frames_sent"] > 300, 40,
                           "300 frames published")
            # a live pull from nginx, as a viewer of the ingest would see it
            live = subprocess.run(
                ["ffprobe", "-v", "error", "-of", "json", "-show_streams",
                 nginx.url("live", KEY)],
                capture_output=True, text=True, timeout=30,
            )
            good, down, wrong = _destinations(relay)
            assert good["state"] == "publishing", good
            assert down["state"] == "retrying" and "connection" in down["last_error"], down
            assert wrong["state"] == "retrying", wrong
            assert "application" in wrong["last_error"], wrong
            assert relay.stop() == 0
            log = relay.log()
    assert KEY not in log and KEY not in json.dumps([good, down, wrong])
    assert "***" in good["destination"]
    live_streams = {s["codec_type"]: s for s in json.loads(live.stdout)["streams"]}
    assert live_streams["video"]["codec_name"] == "h264"
    assert live_streams["audio"]["codec_name"] == "aac"

    streams, packets = _packets(nginx.recording(KEY))
    by_type = {s["codec_type"]: s for s in streams}
    video, audio = by_type["video"], by_type["audio"]
    assert video["codec_name"] == "h264" and (video["width"], video["height"]) == (640, 360)
    assert audio["codec_name"] == "aac" and int(audio["sample_rate"]) == 48000
    for stream in (video, audio):
        dts = [float(p["dts_time"]) for p in packets if p["stream_index"] == stream["index"]]
        assert all(b >= a for a, b in zip(dts, dts[1:])), "DTS goes backwards"
        gaps = [b - a for a, b in zip(dts, dts[1:])]
        assert max(gaps) < 0.5, f"{stream['codec_type']} has a {max(gaps):.2f} s gap"
    first = {s["codec_type"]: min(float(p["pts_time"]) for p in packets
                                  if p["stream_index"] == s["index"]) for s in streams}
    assert abs(first["video"] - first["audio"]) < 0.1, first
    video_dts = [float(p["dts_time"]) for p in packets if p["stream_index"] == video["index"]]
    duration = video_dts[-1] - video_dts[0]
    assert abs(len(video_dts) - 1 - duration * 25) <= 3, (len(video_dts), duration)
    decode = subprocess.run(["ffmpeg", "-v", "error", "-i", str(nginx.recording(KEY)),
                             "-f", "null", "-"], capture_output=True, text=True, timeout=60)
    assert decode.returncode == 0 and not decode.stderr.strip(), decode.stderr


def test_republishes_after_nginx_restart(tmp_path: Path) -> None:
    with start_gst_server({"/cam": "h264aac"}) as port:
        rtmp_port = free_port()
        with start_nginx_rtmp(tmp_path / "first", port=rtmp_port) as nginx:
            relay = _pull(f"rtsp://127.0.0.1:{port}/cam", tmp_path, [nginx.url("live", KEY)])
            relay.wait_for(lambda: _destinations(relay)[0]["state"] == "publishing", 30,
                           "publishing")
        with relay:
            relay.wait_for(lambda: _destinations(relay)[0]["state"] == "retrying", 15,
                           "the relay to notice nginx is gone")
            restarted = time.monotonic()
            with start_nginx_rtmp(tmp_path / "second", port=rtmp_port) as nginx:
                relay.wait_for(lambda: _destinations(relay)[0]["state"] == "publishing", 20,
                               "republishing")
                recording = nginx.recording(KEY)
                relay.wait_for(lambda: recording.exists() and recording.stat().st_size > 50_000,
                               20, "the new recording to grow")
                assert time.monotonic() - restarted < 12
                assert _destinations(relay)[0]["reconnects"] >= 1
                assert relay.stop() == 0
    streams, _ = _packets(recording)
    assert {s["codec_name"] for s in streams} == {"h264", "aac"}


def test_rtmps_with_certificate_verification(tmp_path: Path) -> None:
    ca, cert, key = make_ca(tmp_path)
    with start_gst_server({"/cam": "h264aac"}) as port, \
            start_nginx_rtmp(tmp_path, tls=(cert, key)) as nginx:
        source = f"rtsp://127.0.0.1:{port}/cam"
        # without the CA the certificate must be refused
        with _pull(source, tmp_path, [nginx.tls_url("live", "untrusted")]) as relay:
            relay.wait_for(lambda: _destinations(relay)[0]["last_error"], 20, "a TLS error")
            assert "certificate" in _destinations(relay)[0]["last_error"].lower()
            assert relay.stop() == 0
        env = dict(os.environ, SSL_CERT_FILE=str(ca))
        with _pull(source, tmp_path, [nginx.tls_url("live", KEY)], env=env) as relay:
            relay.wait_for(lambda: _destinations(relay)[0]["frames_sent"] > 100, 30,
                           "publishing over TLS")
            assert relay.stop() == 0
    streams, _ = _packets(nginx.recording(KEY))
    assert {s["codec_name"] for s in streams} == {"h264", "aac"}
