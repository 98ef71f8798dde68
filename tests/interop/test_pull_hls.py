"""Relay pulls a real RTSP server (GStreamer) and writes HLS that ffprobe and RFC 8216 accept."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.hlscheck import check_playlist, check_segments
from tests.interop.relayproc import RelayProcess

SEGMENT = 2.0
USER, PASSWORD = "viewer", "s3cret-Pa55"


def _pull(url: str, tmp_path: Path, transport: str) -> RelayProcess:
    http = free_port()
    return RelayProcess(
        ["pull", url, "--name", "cam", "--hls-dir", str(tmp_path / "hls"),
         "--segment-seconds", str(SEGMENT), "--http", f"127.0.0.1:{http}",
         "--transport", transport],
        http, tmp_path,
    )


def _segment_count(playlist: Path) -> int:
    return playlist.read_text().count("#EXTINF") if playlist.exists() else 0


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_h264_aac_to_hls(tmp_path: Path, transport: str) -> None:
    with start_gst_server({"/cam": "h264aac"}) as port, \
            _pull(f"rtsp://127.0.0.1:{port}/cam", tmp_path, transport) as relay:
        playlist = tmp_path / "hls" / "cam" / "index.m3u8"
        relay.wait_for(lambda: _segment_count(playlist) >= 3, 45, "three HLS segments")
        check_playlist(playlist, SEGMENT)
        streams = relay.api()
        (cam,) = [s for s in streams if s["name"] == "cam"]
        assert cam["state"] == "playing"
        assert cam["transport"] == transport
        codecs = {t["kind"]: t for t in cam["tracks"]}
        assert codecs["video"]["codec"] == "h264"
        assert (codecs["video"]["width"], codecs["video"]["height"]) == (640, 360)
        assert codecs["audio"]["codec"] == "aac"
        assert relay.stop() == 0
    text = playlist.read_text()
    assert "#EXT-X-ENDLIST" in text
    codecs = check_segments(playlist, SEGMENT)
    assert codecs["video"]["codec_name"] == "h264"
    assert (codecs["video"]["width"], codecs["video"]["height"]) == (640, 360)
    assert codecs["audio"]["codec_name"] == "aac"
    assert int(codecs["audio"]["sample_rate"]) == 48000
    # a full decode of what was written: no errors from FFmpeg's decoders
    for segment in sorted(playlist.parent.glob("*.ts")):
        result = subprocess.run(["ffmpeg", "-v", "error", "-i", str(segment), "-f", "null", "-"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_digest_auth(tmp_path: Path) -> None:
    with start_gst_server({"/cam": "h264aac"}, user=USER, password=PASSWORD) as port, \
            _pull(f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{port}/cam", tmp_path, "tcp") as relay:
        playlist = tmp_path / "hls" / "cam" / "index.m3u8"
        relay.wait_for(lambda: _segment_count(playlist) >= 1, 45, "an HLS segment")
        assert relay.stop() == 0
        assert PASSWORD not in relay.log()
    check_segments(playlist, SEGMENT)


def test_wrong_password_is_one_clear_line_then_backoff(tmp_path: Path) -> None:
    with start_gst_server({"/cam": "h264aac"}, user=USER, password=PASSWORD) as port, \
            _pull(f"rtsp://{USER}:wrong-{PASSWORD}@127.0.0.1:{port}/cam", tmp_path,
                  "tcp") as relay:
        relay.wait_for(
            lambda: relay.api()[0]["state"] == "retrying" and relay.api()[0]["last_error"],
            30, "the stream to report its error",
        )
        (cam,) = relay.api()
        assert "password" in cam["last_error"].lower()
        assert PASSWORD not in str(cam)
        time.sleep(4)
        assert relay.stop() == 0
        log = relay.log()
    errors = [line for line in log.splitlines() if "retrying in" in line]
    # backoff (1 s, 2 s, 4 s ...): a handful of attempts in ~5 s, never a busy loop
    assert 1 <= len(errors) <= 5, log
    assert PASSWORD not in log


def test_unreachable_host_is_reported(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here
    with _pull(f"rtsp://127.0.0.1:{port}/cam", tmp_path, "tcp") as relay:
        relay.wait_for(lambda: relay.api()[0]["last_error"], 20, "the connection error")
        assert "connection" in relay.api()[0]["last_error"].lower()
        assert relay.stop() == 0


def test_auto_transport_falls_back_to_tcp(tmp_path: Path) -> None:
    """A server that refuses UDP (461): --transport auto ends up playing over TCP."""
    with start_gst_server({"/cam": "h264aac"}, protocols="tcp") as port, \
            _pull(f"rtsp://127.0.0.1:{port}/cam", tmp_path, "auto") as relay:
        relay.wait_for(lambda: relay.api()[0]["state"] == "playing", 30, "playing")
        assert relay.api()[0]["transport"] == "tcp"
        assert "falling back to TCP" in relay.log()
        assert relay.stop() == 0


def test_unsupported_track_is_skipped_and_named(tmp_path: Path) -> None:
    """The demo camera's SDP rewritten to offer an unsupported audio codec: video goes on."""
    script = tmp_path / "camera.py"
    script.write_text(
        "import trio, sys\n"
        "from relay.demo.camera import TestCamera\n"
        "import relay.drivers.demo_camera as d\n"
        "sdp = d._Broadcast.sdp\n"
        "d._Broadcast.sdp = lambda self: sdp(self).replace('MPEG4-GENERIC', 'X-NOPE')\n"
        "async def main():\n"
        "    listeners = await trio.open_tcp_listeners(0, host='127.0.0.1')\n"
        "    print(listeners[0].socket.getsockname()[1], flush=True)\n"
        "    await d.serve_test_camera(TestCamera(), listeners)\n"
        "trio.run(main)\n"
    )
    camera = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert camera.stdout is not None
        port = int(camera.stdout.readline())
        with _pull(f"rtsp://127.0.0.1:{port}/demo", tmp_path, "tcp") as relay:
            relay.wait_for(lambda: relay.api()[0]["state"] == "playing", 30, "playing")
            (cam,) = relay.api()
            assert [t["codec"] for t in cam["tracks"]] == ["h264"]
            assert cam["skipped_tracks"] == ["audio X-NOPE"]
            assert "skipping audio track: codec X-NOPE is not supported" in relay.log()
            assert relay.stop() == 0
    finally:
        camera.kill()
        camera.wait()
