"""RTP over a lossy UDP path (issue 4, issue 10 item 3): GStreamer's camera behind
``LossyRtspProxy``, which drops RTP packets, holds some back behind later ones and sends a few
twice. The relay counts the losses (RFC 3550 6.4.1), keeps frames that lost a fragment for the
decoder to conceal (docs/loss.md), keeps every segment within EXT-X-TARGETDURATION, reports
the UDP receive buffer the kernel granted, and under ``transport = "auto"`` moves to TCP when
the loss stays above 1 % for 10 s.

The camera is ``h264aac_busy`` (2 Mbit/s, ~7 RTP packets a picture, keyframes tens): with the
plain ``h264aac`` ball (~1 packet a picture) a loss removes whole pictures and there would be
nothing to keep.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import m3u8
import pytest

from tests.interop.gstserver import run_gst_server, start_gst_server
from tests.interop.hlscheck import assert_extinf_within_target
from tests.interop.lossy_proxy import LossyRtspProxy
from tests.interop.test_camera_reality import cam, listed_segments, playlist_of, pull, video_packets

pytestmark = pytest.mark.interop

RUN_SECONDS = 15.0
STATUS_LAG = 2.5  # the relay counts losses each second and publishes its status each second
FRAMES_KEPT = 0.92
"""Floor on the video frames published out of those the camera sent at 2 % loss: measured
97.7 % with damaged frames kept (84.6 % when they were dropped; bench.lossy_udp, 40 s)."""


def segments_written(playlist: Path) -> int:
    """Segments listed so far, those that left the window included."""
    parsed = m3u8.loads(playlist.read_text())
    return (parsed.media_sequence or 0) + len(parsed.segments)


def test_lossy_udp_keeps_frames_and_segments_within_target(tmp_path: Path) -> None:
    playlist = playlist_of(tmp_path)
    with run_gst_server({"/cam": "h264aac_busy"}) as server, \
            LossyRtspProxy(server.port, loss=0.02, reorder=0.01, duplicate=0.005,
                           seed=4) as proxy, \
            pull(f"rtsp://127.0.0.1:{proxy.port}/cam", tmp_path, "udp") as relay:
        relay.wait_for(lambda: cam(relay)["state"] == "playing", 30, "the stream to play")
        stream = cam(relay)
        assert stream["transport"] == "udp"
        granted = [track["udp_receive_buffer"] for track in stream["tracks"]]
        assert len(granted) == 2 and all(isinstance(g, int) and g > 0 for g in granted), stream
        assert relay.log().count("UDP receive buffer:") == 1, relay.log()
        time.sleep(RUN_SECONDS)
        server.process.send_signal(signal.SIGSTOP)  # the camera stops: the counts settle
        time.sleep(STATUS_LAG)
        done, video_sent = proxy.stats(), proxy.stats(track=0)
        stream = cam(relay)
        server.process.send_signal(signal.SIGCONT)
        assert relay.stop() == 0
    assert done.dropped > 0 and done.reordered > 0 and done.duplicated > 0, done
    assert stream["packets_lost"] > 0, (stream, done)
    # duplicates hide losses in RFC 3550's count (expected - received), hence "half"
    assert stream["packets_lost"] >= done.dropped / 2, (stream, done)
    (video,) = [t for t in stream["tracks"] if t["kind"] == "video"]
    assert video["frames"] >= FRAMES_KEPT * video_sent.frames, (video, video_sent)
    assert stream["frames_damaged"] > 0, stream
    parsed = m3u8.loads(playlist.read_text())
    assert len(parsed.segments) >= 5, relay.log()
    assert_extinf_within_target(parsed)
    for path in listed_segments(playlist):
        packets = video_packets(path)
        assert packets and "K" in packets[0]["flags"], f"{path.name}: no keyframe first"


def test_auto_moves_to_tcp_when_loss_stays_above_one_percent(tmp_path: Path) -> None:
    with start_gst_server({"/cam": "h264aac_busy"}) as port, \
            LossyRtspProxy(port, loss=0.05, reorder=0.0, duplicate=0.0, seed=5) as proxy, \
            pull(f"rtsp://127.0.0.1:{proxy.port}/cam", tmp_path, "auto") as relay:
        relay.wait_for(lambda: cam(relay)["transport"] == "udp", 30, "playing over UDP")
        relay.wait_for(lambda: cam(relay)["transport"] == "tcp", 60, "the move to TCP")
        relay.wait_for(lambda: cam(relay)["state"] == "playing", 30, "playing over TCP")
        stream = cam(relay)
        lost_over_udp = proxy.stats().dropped
        assert stream["transport_fallbacks"] == 1 and stream["reconnects"] == 0, stream
        assert [t["udp_receive_buffer"] for t in stream["tracks"]] == [None, None], stream
        log = relay.log()
        assert log.count("falling back to TCP") == 1, log
        assert "of its RTP packets over UDP in the last 10 s (more than 1%)" in log, log
        written = segments_written(playlist_of(tmp_path))
        relay.wait_for(lambda: segments_written(playlist_of(tmp_path)) > written + 1, 30,
                       "segments over TCP")
        assert proxy.stats().dropped == lost_over_udp  # nothing more went over UDP
        assert relay.stop() == 0
