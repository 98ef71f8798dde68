"""What a viewer gets from a camera behind a lossy UDP path: GStreamer's RTSP camera, the lossy
proxy of the interop tests (loss, reordering, duplicates), ``relay run`` (transport udp) to HLS.

    .venv/bin/python -m bench.lossy_udp [--seconds 40] [--loss 0.02] [--profile h264aac_busy]

Prints the video frames the relay published out of the frames the camera sent (marker bits the
proxy saw), the FFmpeg decode errors (``ffmpeg -v error``) of each HLS segment, and each
segment's duration against EXT-X-TARGETDURATION. ``--relay-path DIR`` runs the relay from
another checkout (PYTHONPATH), to compare versions on the same camera and seed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import m3u8

from tests.interop.gstserver import free_port, run_gst_server
from tests.interop.lossy_proxy import LossyRtspProxy
from tests.interop.relayproc import RelayProcess

SETTLE = 2.5  # the relay publishes its status each second
WINDOW = 100  # segments listed: all of a run


def decode_errors(segment: Path) -> int:
    """Lines FFmpeg's decoders print at level error for one segment."""
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(segment), "-f", "null",
                           "-"], capture_output=True, text=True, timeout=120)
    return len(done.stderr.strip().splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--segment-seconds", type=float, default=4.0)
    parser.add_argument("--loss", type=float, default=0.02)
    parser.add_argument("--reorder", type=float, default=0.01)
    parser.add_argument("--duplicate", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--profile", default="h264aac_busy")
    parser.add_argument("--relay-path", help="run the relay package found in this directory")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.relay_path:
        env["PYTHONPATH"] = args.relay_path
    with tempfile.TemporaryDirectory(prefix="lossy-udp-") as tmp, \
            run_gst_server({"/cam": args.profile}) as server, \
            LossyRtspProxy(server.port, loss=args.loss, reorder=args.reorder,
                           duplicate=args.duplicate, seed=args.seed) as proxy:
        http = free_port()
        hls = Path(tmp) / "hls"
        config = Path(tmp) / "relay.toml"
        config.write_text(
            f'[server]\nhttp = "127.0.0.1:{http}"\nhls_dir = "{hls}"\n'
            f'[streams.cam]\nsource = "rtsp://127.0.0.1:{proxy.port}/cam"\n'
            f'transport = "udp"\nsegment_seconds = {args.segment_seconds}\nwindow = {WINDOW}\n'
        )
        with RelayProcess(["run", "--config", str(config)], http, Path(tmp),
                          env) as relay:
            relay.wait_for(lambda: relay.api()[0]["state"] == "playing", 30, "play")
            time.sleep(args.seconds)
            server.process.send_signal(signal.SIGSTOP)  # no more frames: the counts settle
            time.sleep(SETTLE)
            (stream,) = relay.api()
            sent = proxy.stats(track=0)
            relay.stop()
            server.process.send_signal(signal.SIGCONT)
        playlist = m3u8.load(str(hls / "cam" / "index.m3u8"))
        target = playlist.target_duration
        video = next(t for t in stream["tracks"] if t["kind"] == "video")
        print(f"camera {args.profile}, {args.seconds:.0f} s, loss {args.loss:.1%} reorder "
              f"{args.reorder:.1%} duplicate {args.duplicate:.1%} seed {args.seed}")
        print(f"RTP packets: {sent.received} sent, {sent.dropped} dropped by the proxy")
        print(f"video frames: {video['frames']} published of {sent.frames} sent "
              f"({video['frames'] / max(1, sent.frames):.1%}); API: frames_dropped "
              f"{stream['frames_dropped']}, frames_damaged {stream.get('frames_damaged')}, "
              f"packets_lost {stream['packets_lost']}")
        errors = [decode_errors(hls / "cam" / s.uri) for s in playlist.segments]
        durations = [s.duration for s in playlist.segments]
        print(f"segments: {len(durations)}, EXT-X-TARGETDURATION {target}, longest "
              f"{max(durations):.3f} s, over target (rounded, RFC 8216 4.3.3.1): {sum(round(d) > target for d in durations)}")
        print(f"decode errors: {sum(errors)} lines in {sum(1 for e in errors if e)} of "
              f"{len(errors)} segments; per segment {errors}")


if __name__ == "__main__":
    main()
