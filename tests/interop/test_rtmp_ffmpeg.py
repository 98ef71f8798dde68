"""Relay publishes to a second real RTMP server, FFmpeg's own (PyAV's FFmpeg 8 in listen mode),
fed from GStreamer's RTSP server: H.264 + AAC and, as Enhanced RTMP (hvc1), H.265 + AAC. The
listener demuxes and decodes every packet. The H.265 run also publishes to nginx-rtmp, which
drops Enhanced RTMP video silently: the relay must say so in its log and in /api.

FFmpeg's listener answers ``FCPublish`` with a bare ``onFCPublish`` (no transaction id), which
used to end the session.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.interop.ffmpeg_rtmp import start_ffmpeg_rtmp
from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.nginx import start_nginx_rtmp
from tests.interop.relayproc import RelayProcess

pytestmark = pytest.mark.interop

KEY = "cam-Secret-Key-123"
FRAMES = 400  # about 5.5 s of 25 fps video and 48 kHz AAC
NO_ENHANCED = "announces no Enhanced RTMP"


def _pull(source: str, tmp_path: Path, rtmp: list[str]) -> RelayProcess:
    http = free_port()
    args = ["pull", source, "--name", "cam", "--hls-dir", str(tmp_path / "hls"),
            "--http", f"127.0.0.1:{http}", "--transport", "tcp"]
    for url in rtmp:
        args += ["--rtmp", url]
    return RelayProcess(args, http, tmp_path)


def _destinations(relay: RelayProcess) -> list[dict[str, Any]]:
    return list(relay.api()[0]["rtmp"])


def _check_received(seen: dict[str, Any], video_codec: str) -> None:
    """Both tracks arrived, every packet decoded, DTS strictly increasing per stream."""
    assert seen["errors"] == [], seen["errors"]
    # The relay closed the connection (FFmpeg's listener ends every publish so).
    assert "Input/output error" in seen["end"], seen["end"]
    by_type = {s["type"]: s for s in seen["streams"]}
    assert set(by_type) == {"video", "audio"}, seen["streams"]
    assert by_type["video"]["codec"] == video_codec
    assert by_type["audio"]["codec"] == "aac"
    for kind, stream in by_type.items():
        dts = stream["dts"]
        assert len(dts) > 100, f"{kind}: only {len(dts)} packets"
        back = [(i, a, b) for i, (a, b) in enumerate(pairwise(dts)) if b <= a]
        assert not back, f"{kind}: DTS not strictly increasing at {back[:5]}"
        assert stream["frames"] == len(dts), f"{kind}: {stream['frames']} frames decoded " \
                                             f"from {len(dts)} packets"


def test_h264_aac_to_ffmpeg(tmp_path: Path) -> None:
    with start_gst_server({"/cam": "h264aac"}) as port, start_ffmpeg_rtmp(tmp_path) as ffmpeg:
        with _pull(f"rtsp://127.0.0.1:{port}/cam", tmp_path, [ffmpeg.url(KEY)]) as relay:
            relay.wait_for(lambda: _destinations(relay)[0]["frames_sent"] > FRAMES, 60,
                           f"{FRAMES} frames published to FFmpeg")
            (destination,) = _destinations(relay)
            assert relay.stop() == 0
            log = relay.log()
        seen = ffmpeg.result()
    # One session from start to stop: onFCPublish and the rest did not end it.
    assert destination["state"] == "publishing", destination
    assert destination["reconnects"] == 0 and destination["last_error"] is None, destination
    assert destination["warnings"] == [], destination
    assert KEY not in log and NO_ENHANCED not in log
    _check_received(seen, "h264")


def test_h265_aac_to_ffmpeg_and_nginx(tmp_path: Path) -> None:
    with start_gst_server({"/cam": "h265aac"}) as port, start_ffmpeg_rtmp(tmp_path) as ffmpeg, \
            start_nginx_rtmp(tmp_path) as nginx:
        urls = [ffmpeg.url(KEY), nginx.url("live", KEY)]
        with _pull(f"rtsp://127.0.0.1:{port}/cam", tmp_path, urls) as relay:
            relay.wait_for(lambda: min(d["frames_sent"] for d in _destinations(relay)) > FRAMES,
                           60, f"{FRAMES} frames published to FFmpeg and nginx")
            destinations = _destinations(relay)
            assert relay.stop() == 0
            log = relay.log()
        seen = ffmpeg.result()
    _check_received(seen, "hevc")
    for destination in destinations:
        assert destination["state"] == "publishing", destination
        assert destination["reconnects"] == 0, destination
        # nginx-rtmp's connect reply has no fourCcList, and neither has FFmpeg 8's (though it
        # demuxes hvc1): both get the warning, in /api and once in the log.
        (warning,) = [w for w in destination["warnings"] if NO_ENHANCED in w]
        assert "H.265" in warning
        lines = [line for line in log.splitlines()
                 if NO_ENHANCED in line and destination["destination"] in line]
        assert len(lines) == 1, lines
    assert KEY not in log and KEY not in json.dumps(destinations)
