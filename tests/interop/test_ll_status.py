"""/api/streams and /metrics report a stream's LL-HLS muxer, filled by a real relay: its
configured mode, whether it runs (on demand: not until someone reads ll.m3u8) and its parts."""

from __future__ import annotations

from pathlib import Path

from tests.interop.gstserver import free_port, start_gst_server
from tests.interop.relayproc import RelayProcess, http_get


def test_ll_hls_mode_running_and_parts_in_the_status(tmp_path: Path) -> None:
    http = free_port()
    with start_gst_server({"/cam": "h264aac"}) as port, RelayProcess(
            ["pull", f"rtsp://127.0.0.1:{port}/cam", "--name", "cam", "--hls-dir",
             str(tmp_path / "hls"), "--segment-seconds", "2", "--http", f"127.0.0.1:{http}"],
            http, tmp_path) as relay:
        relay.wait_for(lambda: relay.api()[0]["state"] == "playing", 45, "the stream playing")
        (idle,) = relay.api()
        assert idle["ll_hls"] == {"mode": "on-demand", "running": False, "parts_written": 0,
                                  "restarts": 0, "overlong_parts": 0,
                                  "cuts_without_keyframe": 0, "short_parts": 0}, idle["ll_hls"]
        status, body = http_get(f"http://127.0.0.1:{http}/hls/cam/ll.m3u8")  # starts it
        assert status == 200, body
        relay.wait_for(lambda: relay.api()[0]["ll_hls"]["parts_written"] > 0, 20,
                       "parts counted in /api")
        assert relay.api()[0]["ll_hls"]["running"] is True
        metrics = http_get(f"http://127.0.0.1:{http}/metrics")[1].decode()
        assert 'relay_ll_hls_running{stream="cam"} 1.0' in metrics
        assert 'relay_ll_hls_mode{mode="on-demand",stream="cam"} 1.0' in metrics
        assert relay.stop() == 0
