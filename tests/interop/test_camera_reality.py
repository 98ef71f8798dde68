"""Cameras as they really are (issue 4): H.265, G.711, LATM, B-frames, 1080p at 8 Mbit/s, a
camera that reboots and one that freezes. Each test runs the real ``relay pull`` command line
against GStreamer's RTSP server, checks /api/streams while it runs, stops it with SIGINT, then
probes and fully decodes every HLS segment it wrote (RFC 8216 3, 4.3.2.3).

The sources themselves are decode-checked first (``test_sources_decode_cleanly``): a relay
test failing beside a clean source check points at the relay.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import m3u8
import pytest

from tests.interop.gstserver import free_port, run_gst_server, start_gst_server
from tests.interop.hlscheck import assert_decode_times_increase, check_playlist, ffprobe
from tests.interop.nginx import start_nginx_rtmp
from tests.interop.relayproc import RelayProcess

pytestmark = pytest.mark.interop

SEGMENT = 2.0
RTP_TIMEOUT = 10.0  # relay.drivers.rtsp_source.RTP_TIMEOUT


def pull(url: str, tmp_path: Path, transport: str = "tcp", rtmp: str | None = None
         ) -> RelayProcess:
    """``relay pull URL --name cam`` with 2 s segments and its own HTTP port."""
    http = free_port()
    return RelayProcess(
        ["pull", url, "--name", "cam", "--hls-dir", str(tmp_path / "hls"),
         "--segment-seconds", str(SEGMENT), "--http", f"127.0.0.1:{http}",
         "--transport", transport, *(["--rtmp", rtmp] if rtmp else [])],
        http, tmp_path,
    )  # fmt: skip


def playlist_of(tmp_path: Path) -> Path:
    return tmp_path / "hls" / "cam" / "index.m3u8"


def segment_count(playlist: Path) -> int:
    return playlist.read_text().count("#EXTINF") if playlist.exists() else 0


def cam(relay: RelayProcess) -> dict[str, Any]:
    (stream,) = [s for s in relay.api() if s["name"] == "cam"]
    return stream


def listed_segments(playlist: Path) -> list[Path]:
    parsed = m3u8.loads(playlist.read_text())
    files = [playlist.parent / s.uri for s in parsed.segments]
    assert files, f"{playlist}: no segments listed"
    return files


def assert_decodes_cleanly(segment: Path) -> None:
    """A full decode with FFmpeg's decoders prints nothing at level error."""
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(segment), "-f", "null",
                           "-"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not done.stderr.strip(), f"{segment.name}: {done.stderr}"


def streams_by_kind(segment: Path) -> dict[str, dict[str, Any]]:
    return {s["codec_type"]: s for s in ffprobe(segment, "-show_streams")["streams"]}


def video_packets(segment: Path) -> list[dict[str, Any]]:
    info = ffprobe(segment, "-select_streams", "v:0", "-show_packets")
    return list(info["packets"])


def check_program_date_times(playlist: Path) -> None:
    """EXT-X-PROGRAM-DATE-TIME (RFC 8216 4.3.2.6) follows the media: without a discontinuity
    between them, a segment starts when the one before it ends."""
    text = playlist.read_text()
    segments = m3u8.loads(text).segments
    for before, after in zip(segments, segments[1:]):
        if after.discontinuity:
            continue
        assert before.program_date_time and after.program_date_time, text
        gap = (after.program_date_time - before.program_date_time).total_seconds()
        assert abs(gap - before.duration) < 0.5, (
            f"{after.uri}: EXT-X-PROGRAM-DATE-TIME {gap - before.duration:+.3f} s off the end "
            f"of {before.uri}, with no EXT-X-DISCONTINUITY between them:\n{text}"
        )


def check_every_segment(playlist: Path) -> list[dict[str, dict[str, Any]]]:
    """Each listed segment: probes, starts on a keyframe, decodes without one error; and the
    playlist's date-times follow the media."""
    check_program_date_times(playlist)
    result = []
    for segment in listed_segments(playlist):
        assert_decodes_cleanly(segment)
        packets = video_packets(segment)
        assert packets, f"{segment.name}: no video"
        assert "K" in packets[0]["flags"], f"{segment.name}: does not start with a keyframe"
        result.append(streams_by_kind(segment))
    return result


class PlaylistWatch:
    """Remembers every media sequence number seen for every URI (RFC 8216 6.2.2: a URI keeps
    its number, and EXT-X-MEDIA-SEQUENCE never decreases)."""

    def __init__(self, playlist: Path) -> None:
        self.playlist = playlist
        self.sequences: list[int] = []
        self.numbers: dict[str, int] = {}

    def look(self) -> None:
        if not self.playlist.exists():
            return
        parsed = m3u8.loads(self.playlist.read_text())
        first = parsed.media_sequence or 0
        if self.sequences:
            assert first >= self.sequences[-1], (
                f"EXT-X-MEDIA-SEQUENCE went back from {self.sequences[-1]} to {first}"
            )
        self.sequences.append(first)
        for offset, segment in enumerate(parsed.segments):
            number = self.numbers.setdefault(segment.uri, first + offset)
            assert number == first + offset, (
                f"{segment.uri} was number {number}, now {first + offset}"
            )


SOURCES = {
    "h265aac": ("hevc", 640, 360, "aac"),
    "h264pcma": ("h264", 640, 360, "pcm_alaw"),
    "h264latm": ("h264", 640, 360, "aac"),
    "h264bframes": ("h264", 640, 360, None),
    "h264_1080p": ("h264", 1920, 1080, None),
    "h264aac_busy": ("h264", 640, 360, "aac"),
}


def test_sources_decode_cleanly() -> None:
    """Each camera as FFmpeg sees it straight from GStreamer: right codecs, 3 s decoded
    without one decoder error."""
    with start_gst_server({f"/{name}": name for name in SOURCES}) as port:
        decodes = {
            name: subprocess.Popen(
                ["ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp",
                 "-i", f"rtsp://127.0.0.1:{port}/{name}", "-t", "3", "-f", "null", "-"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            for name in SOURCES
        }
        for name, (video, width, height, audio) in SOURCES.items():
            url = f"rtsp://127.0.0.1:{port}/{name}"
            info = ffprobe(Path(url), "-rtsp_transport", "tcp", "-show_streams")
            kinds = {s["codec_type"]: s for s in info["streams"]}
            assert kinds["video"]["codec_name"] == video, (name, kinds)
            assert (kinds["video"]["width"], kinds["video"]["height"]) == (width, height), name
            assert (kinds["audio"]["codec_name"] if "audio" in kinds else None) == audio, name
        for name, decode in decodes.items():
            _, errors = decode.communicate(timeout=60)
            # Decoders' complaints count; the null muxer's about FFmpeg's own RTSP timestamps
            # (bursty while six encoders start at once on two cores) do not.
            bad = [line for line in errors.splitlines() if not line.startswith("[null @")]
            assert decode.returncode == 0 and not bad, f"{name}: {errors}"


@pytest.mark.parametrize(
    ("pipeline", "video", "source_audio"),
    [("h265aac", "hevc", "aac"), ("h264pcma", "h264", "pcm_alaw"), ("h264latm", "h264", "aac")],
)
def test_codecs_to_hls(tmp_path: Path, pipeline: str, video: str, source_audio: str) -> None:
    """H.265+AAC stays H.265+AAC; G.711 A-law and LATM AAC come out as AAC (audio 'auto')."""
    playlist = playlist_of(tmp_path)
    with start_gst_server({"/cam": pipeline}) as port, \
            pull(f"rtsp://127.0.0.1:{port}/cam", tmp_path) as relay:
        relay.wait_for(lambda: segment_count(playlist) >= 3, 45, "three HLS segments")
        stream = cam(relay)
        assert stream["state"] == "playing", stream
        tracks = {t["kind"]: t for t in stream["tracks"]}
        assert tracks["video"]["codec"] == video, stream
        assert (tracks["video"]["width"], tracks["video"]["height"]) == (640, 360), stream
        assert tracks["audio"]["codec"] == "aac", f"{source_audio} source: {stream}"
        assert stream["skipped_tracks"] == [], stream
        assert relay.stop() == 0
    check_playlist(playlist, SEGMENT)
    probed = check_every_segment(playlist)
    last_extinf = float(playlist.read_text().rsplit("#EXTINF:", 1)[1].split(",", 1)[0])
    for index, streams in enumerate(probed):
        assert streams["video"]["codec_name"] == video
        assert (streams["video"]["width"], streams["video"]["height"]) == (640, 360)
        if "audio" not in streams and index == len(probed) - 1 and last_extinf < 0.5:
            continue  # the stop cut the last segment just after its keyframe: no audio yet
        assert streams["audio"]["codec_name"] == "aac", streams
        # the transcoder's output (relay.audio.transcode): 48 kHz stereo whatever came in
        assert int(streams["audio"]["sample_rate"]) == 48000, streams["audio"]
    assert_decode_times_increase(listed_segments(playlist))


@pytest.mark.parametrize("pipeline", ["h264pcma", "h264bframes"])
def test_decode_times_strictly_increase_in_flv_and_ts(tmp_path: Path, pipeline: str) -> None:
    """Per track, every decode time after the one before, in the FLV nginx-rtmp recorded and
    across the HLS segments: G.711 through the AAC transcoder from its first frame, B-frames'
    decode order, and the silent AAC made for RTMP."""
    playlist = playlist_of(tmp_path)
    with start_gst_server({"/cam": pipeline}) as port, start_nginx_rtmp(tmp_path) as nginx, \
            pull(f"rtsp://127.0.0.1:{port}/cam", tmp_path,
                 rtmp=nginx.url("live", "cam")) as relay:
        relay.wait_for(lambda: segment_count(playlist) >= 3, 45, "three HLS segments")
        assert cam(relay)["rtmp"][0]["state"] == "publishing", cam(relay)
        assert relay.stop() == 0
    flv = assert_decode_times_increase([nginx.recording("cam")])
    ts = assert_decode_times_increase(listed_segments(playlist))
    for counts in (flv, ts):
        assert counts.get("video", 0) > 50 and counts.get("audio", 0) > 100, (flv, ts)


def test_b_frames_keep_dts_apart_from_pts(tmp_path: Path) -> None:
    """x264 with two B-frames: HLS must carry decode order (DTS < PTS, DTS rising)."""
    playlist = playlist_of(tmp_path)
    with start_gst_server({"/cam": "h264bframes"}) as port, \
            pull(f"rtsp://127.0.0.1:{port}/cam", tmp_path) as relay:
        relay.wait_for(lambda: segment_count(playlist) >= 3, 45, "three HLS segments")
        assert cam(relay)["state"] == "playing"
        assert relay.stop() == 0
    reordered = 0
    previous_dts: int | None = None
    for segment in listed_segments(playlist):
        for packet in video_packets(segment):
            assert "dts" in packet and "pts" in packet, f"{segment.name}: {packet}"
            dts, pts = int(packet["dts"]), int(packet["pts"])
            assert dts <= pts, f"{segment.name}: dts {dts} after pts {pts}"
            reordered += dts < pts
            if previous_dts is not None:
                assert dts > previous_dts, f"{segment.name}: DTS {previous_dts} then {dts}"
            previous_dts = dts
        remux = subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "warning", "-i", str(segment), "-c", "copy",
             "-f", "mpegts", "-y", os.devnull],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        bad = [line for line in remux.stderr.splitlines()
               if re.search(r"(?i)non[- ]?monoton", line)]
        assert not bad, f"{segment.name}: {bad}"
    assert reordered > 0, "no frame has DTS < PTS: the B-frames lost their decode order"
    check_every_segment(playlist)


def test_1080p_8_mbit(tmp_path: Path) -> None:
    """1920x1080 at ~8 Mbit/s over TCP: nothing lost, nothing dropped, every frame there."""
    playlist = playlist_of(tmp_path)
    with start_gst_server({"/cam": "h264_1080p"}) as port, \
            pull(f"rtsp://127.0.0.1:{port}/cam", tmp_path) as relay:
        relay.wait_for(lambda: segment_count(playlist) >= 3, 45, "three HLS segments")
        time.sleep(1.5)  # one more status snapshot after the last segment
        stream = cam(relay)
        assert stream["state"] == "playing", stream
        (video,) = [t for t in stream["tracks"] if t["kind"] == "video"]
        assert (video["width"], video["height"]) == (1920, 1080), stream
        assert stream["packets_lost"] == 0, stream
        assert stream["frames_dropped"] == 0, stream
        assert stream["packets_garbled"] == 0, stream
        assert relay.stop() == 0
    previous: float | None = None
    for streams, segment in zip(check_every_segment(playlist), listed_segments(playlist),
                                strict=True):
        assert (streams["video"]["width"], streams["video"]["height"]) == (1920, 1080)
        for packet in video_packets(segment):
            pts = float(packet["pts_time"])
            if previous is not None:  # 25 fps: one frame every 40 ms, no gap anywhere
                assert 0.03 < pts - previous < 0.05, f"{segment.name}: {previous} -> {pts}"
            previous = pts
    size = sum(f.stat().st_size for f in listed_segments(playlist))
    duration = sum(s.duration for s in m3u8.loads(playlist.read_text()).segments)
    assert size * 8 / duration > 6e6, f"only {size * 8 / duration / 1e6:.1f} Mbit/s arrived"


def test_source_restart_recovers(tmp_path: Path) -> None:
    """The camera dies and comes back on the same port: the relay reconnects by itself and
    marks the break with EXT-X-DISCONTINUITY; numbering never goes back."""
    playlist = playlist_of(tmp_path)
    watch = PlaylistWatch(playlist)
    port = free_port()

    def watching(condition: bool) -> bool:
        watch.look()
        return condition

    with start_nginx_rtmp(tmp_path) as nginx, \
            pull(f"rtsp://127.0.0.1:{port}/cam", tmp_path, rtmp=nginx.url("live", "cam")) as relay:
        with run_gst_server({"/cam": "h264aac"}, port=port) as server:
            relay.wait_for(lambda: watching(segment_count(playlist) >= 2), 45, "two segments")
            assert cam(relay)["state"] == "playing"
            server.process.kill()  # a crash: no TEARDOWN, no goodbye
            server.process.wait()
        down_until = time.monotonic() + 3
        while time.monotonic() < down_until:
            watch.look()
            time.sleep(0.2)
        with start_gst_server({"/cam": "h264aac"}, port=port):
            relay.wait_for(
                lambda: watching(cam(relay)["state"] == "playing" and cam(relay)["reconnects"]),
                30, "the relay to reconnect",
            )
            listed = segment_count(playlist)
            relay.wait_for(lambda: watching(segment_count(playlist) >= listed + 2), 30,
                           "two segments after the restart")
            stream = cam(relay)
            assert stream["state"] == "playing" and stream["reconnects"] >= 1, stream
            assert relay.stop() == 0
        log = relay.log()
    watch.look()
    text = playlist.read_text()
    assert "#EXT-X-ENDLIST" in text
    # the break is marked, after the segments from before the crash
    flags = [s.discontinuity for s in m3u8.loads(text).segments]
    assert True in flags[1:], f"no EXT-X-DISCONTINUITY after the restart:\n{text}"
    assert "retrying in" in log, log
    check_every_segment(playlist)
    # one timeline across the restart: nothing goes back, in HLS or in the one RTMP publish
    assert_decode_times_increase(listed_segments(playlist))
    assert_decode_times_increase([nginx.recording("cam")])


def test_stalled_source_times_out_and_recovers(tmp_path: Path) -> None:
    """RTP stops while the TCP connection stays up (camera frozen, SIGSTOP): after the RTP
    timeout the relay reports it in last_error, reconnects, and plays again."""
    playlist = playlist_of(tmp_path)
    stall = RTP_TIMEOUT + 3
    with run_gst_server({"/cam": "h264aac"}) as server, \
            pull(f"rtsp://127.0.0.1:{server.port}/cam", tmp_path) as relay:
        relay.wait_for(lambda: segment_count(playlist) >= 1, 45, "an HLS segment")
        assert cam(relay)["state"] == "playing"
        server.process.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        seen_error: str | None = None
        reported_after = 0.0
        try:
            while time.monotonic() - frozen_at < stall:
                error = cam(relay)["last_error"]
                if error and seen_error is None:
                    seen_error = error
                    reported_after = time.monotonic() - frozen_at
                time.sleep(0.2)
        finally:
            server.process.send_signal(signal.SIGCONT)
        assert seen_error is not None, f"nothing in last_error after {stall} s:\n{relay.log()}"
        assert re.search(r"(?i)media stopped|timed? ?out|no (rtp|media)", seen_error), seen_error
        assert RTP_TIMEOUT - 1 <= reported_after <= stall, reported_after
        relay.wait_for(lambda: cam(relay)["state"] == "playing" and cam(relay)["reconnects"],
                       30, "the relay to play again after the stall")
        listed = segment_count(playlist)
        relay.wait_for(lambda: segment_count(playlist) >= listed + 2, 30,
                       "two segments after the stall")
        assert cam(relay)["last_error"] is None
        assert relay.stop() == 0
    text = playlist.read_text()
    flags = [s.discontinuity for s in m3u8.loads(text).segments]
    assert True in flags[1:], f"no EXT-X-DISCONTINUITY after the stall:\n{text}"
    check_every_segment(playlist)
