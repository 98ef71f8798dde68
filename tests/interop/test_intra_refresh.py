"""A camera without IDR frames (x264 periodic intra refresh, recovery point SEIs) to HLS.

The GStreamer camera sends one IDR when its pipeline starts and from then on only recovery
points. The relay must cut, list and serve segments at those as for any camera: each one starting
on a recovery point that FFmpeg decodes from. (Today's main listed none: it waited for a second
IDR that never comes, holding every frame.)
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import av

from relay.codecs import h264
from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.hlscheck import check_playlist, check_segments, segments
from tests.interop.relayproc import RelayProcess

SEGMENT = 2.0


def _pull(url: str, tmp_path: Path) -> RelayProcess:
    http = free_port()
    return RelayProcess(
        ["pull", url, "--name", "cam", "--hls-dir", str(tmp_path / "hls"),
         "--segment-seconds", str(SEGMENT), "--http", f"127.0.0.1:{http}",
         "--transport", "tcp"],
        http, tmp_path,
    )


def _segment_count(playlist: Path) -> int:
    return playlist.read_text().count("#EXTINF") if playlist.exists() else 0


def _nal_types(segment: Path) -> set[int]:
    with av.open(io.BytesIO(segment.read_bytes()), format="mpegts") as container:
        return {h264.nal_type(nal) for packet in container.demux(video=0) if packet.size
                for nal in h264.split_annexb(bytes(packet))}


def test_intra_refresh_camera_keeps_hls_moving(tmp_path: Path) -> None:
    playlist = tmp_path / "hls" / "cam" / "index.m3u8"
    with start_gst_server({"/cam": "h264intrarefresh"}) as port, \
            _pull(f"rtsp://127.0.0.1:{port}/cam", tmp_path) as relay:
        relay.wait_for(lambda: _segment_count(playlist) >= 4, 60,
                       "four HLS segments of a camera without IDR frames")
        check_playlist(playlist, SEGMENT)
        (status,) = relay.api()
        assert status["state"] == "playing"
        assert relay.stop() == 0
    _, files = segments(playlist)
    assert len(files) >= 4
    # after the camera's one IDR, every cut is at a recovery point
    assert all(h264.IDR not in _nal_types(f) for f in files[1:])
    codecs = check_segments(playlist, SEGMENT)  # each starts on a keyframe, PTS continuous
    assert codecs["video"]["codec_name"] == "h264"
    for segment in files:
        result = subprocess.run(["ffmpeg", "-v", "error", "-i", str(segment), "-f", "null", "-"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    for segment in files[:-1]:  # the last one, cut short by the stop, may end mid-refresh
        with av.open(str(segment)) as container:
            assert any(True for _ in container.decode(video=0)), f"{segment.name}: no picture"
