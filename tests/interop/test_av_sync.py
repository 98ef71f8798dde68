"""Audio stays in sync with video when it arrives late: the RTCP sender reports line them up.

The test camera beeps at the start of every second and makes a keyframe there too (GOP 1 s).
It sends its audio 300 ms late, as cameras with a buffering audio path do; placing audio by
arrival would put every beep 300 ms after its keyframe. Measured on what the relay wrote: the
beep onsets against the keyframes' times, which must agree within 40 ms. The correction is slewed,
never stepped back: each track's decode times strictly increase in the HLS segments and in the
FLV that nginx-rtmp recorded from the relay's publish.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av

from tests.interop.gstserver import free_port
from tests.interop.hlscheck import assert_decode_times_increase, segments
from tests.interop.nginx import start_nginx_rtmp
from tests.interop.relayproc import RelayProcess

AUDIO_DELAY = 0.3
CAMERA = """
import sys, trio
from relay.demo.camera import TestCamera
from relay.drivers.demo_camera import serve_test_camera
async def main():
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(listeners[0].socket.getsockname()[1], flush=True)
    await serve_test_camera(TestCamera(), listeners, audio_delay=float(sys.argv[1]))
trio.run(main)
"""


def _onsets(path: Path) -> tuple[list[float], list[float]]:
    """Keyframe times and beep onset times (seconds) in a TS file."""
    keyframes: list[float] = []
    onsets: list[float] = []
    quiet = 0
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        for packet in container.demux(video, audio):
            if packet.stream is video:
                if packet.is_keyframe and packet.pts is not None:
                    keyframes.append(float(packet.pts * video.time_base))
                continue
            for frame in packet.decode():
                data = memoryview(bytes(frame.planes[0])).cast("f")[: frame.samples]
                start = float(frame.pts * frame.time_base)
                for i, value in enumerate(data):
                    if abs(value) > 0.1:
                        if quiet > frame.sample_rate // 20:  # after 50 ms of quiet
                            onsets.append(start + i / frame.sample_rate)
                        quiet = 0
                    else:
                        quiet += 1
    return keyframes, onsets


def test_late_audio_is_realigned_by_sender_reports(tmp_path: Path) -> None:
    camera = subprocess.Popen([sys.executable, "-c", CAMERA, str(AUDIO_DELAY)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert camera.stdout is not None
        port = int(camera.stdout.readline())
        http = free_port()
        with start_nginx_rtmp(tmp_path) as nginx, \
                RelayProcess(["pull", f"rtsp://127.0.0.1:{port}/demo", "--name", "cam",
                              "--hls-dir", str(tmp_path / "hls"), "--segment-seconds", "2",
                              "--http", f"127.0.0.1:{http}", "--transport", "tcp",
                              "--rtmp", nginx.url("live", "cam")],
                             http, tmp_path) as relay:
            playlist = tmp_path / "hls" / "cam" / "index.m3u8"
            relay.wait_for(
                lambda: playlist.exists() and playlist.read_text().count("#EXTINF") >= 5, 40,
                "five segments",
            )
            assert relay.stop() == 0
    finally:
        camera.kill()
        camera.wait()
    _, files = segments(playlist)
    assert_decode_times_increase(files)
    assert_decode_times_increase([nginx.recording("cam")])
    # the first segments may predate the first sender reports; judge the settled stream
    joined = tmp_path / "settled.ts"
    joined.write_bytes(b"".join(f.read_bytes() for f in files[2:]))
    keyframes, onsets = _onsets(joined)
    assert len(keyframes) >= 3 and len(onsets) >= 3, (keyframes, onsets)
    offsets = [min((onset - key for key in keyframes), key=abs) for onset in onsets]
    assert all(abs(offset) < 0.040 for offset in offsets), offsets
