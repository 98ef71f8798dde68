"""What a viewer gets from a camera behind a lossy UDP path: GStreamer's RTSP camera, the lossy
proxy of the interop tests (loss, reordering, duplicates), ``relay run`` (transport udp) to HLS.

    .venv/bin/python -m bench.lossy_udp [--seconds 40] [--loss 0.02] [--profile h264aac_busy]

Prints the video frames the relay published out of the frames the camera sent (marker bits the
proxy saw), the FFmpeg decode errors (``ffmpeg -v error``) of each HLS segment, and each
segment's duration against EXT-X-TARGETDURATION, and what a viewer sees: the same relay pulls
the same camera over TCP too (GStreamer's shared media: the very same encoded frames, no loss),
and each reference picture is compared (PSNR of luma, FFmpeg's psnr filter) with the lossy
stream's picture on screen at that moment: the one of the same time, or the last one before it
when that frame never came. ``--relay-path DIR`` runs the relay from another checkout
(PYTHONPATH), to compare versions on the same camera and seed.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
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


def joined(folder: Path) -> Path:
    """A stream's listed segments as one TS file: a player decodes them in a row."""
    out = folder / "joined.ts"
    with out.open("wb") as sink:
        for segment in m3u8.load(str(folder / "index.m3u8")).segments:
            sink.write((folder / segment.uri).read_bytes())
    return out


def frame_hashes(video: Path) -> tuple[float, list[tuple[int, str]]]:
    """The time base and (pts, MD5) of every decoded picture."""
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "quiet", "-i", str(video), "-map", "0:v:0",
                           "-fps_mode", "passthrough", "-f", "framemd5", "-"],
                          capture_output=True, text=True, timeout=300, check=True)
    base = re.search(r"#tb 0: (\d+)/(\d+)", done.stdout)
    assert base is not None, done.stdout[:500]
    frames = []
    for line in done.stdout.splitlines():
        if line and not line.startswith("#"):
            fields = [f.strip() for f in line.split(",")]
            frames.append((int(fields[2]), fields[5]))
    return int(base.group(1)) / int(base.group(2)), frames


def viewer_psnr(reference: Path, lossy: Path, scratch: Path) -> list[float]:
    """Luma PSNR of each reference picture against the lossy picture shown at its time."""
    base, ref = frame_hashes(reference)
    lossy_base, seen = frame_hashes(lossy)
    assert base == lossy_base, (base, lossy_base)
    at = collections.defaultdict(list)
    for pts, digest in ref:
        at[digest].append(pts)
    # the two pulls stamp the same pictures with different times: the offset most equal
    # pictures agree on lines them up
    offsets = collections.Counter(r - pts for pts, digest in seen for r in at.get(digest, ()))
    offset = offsets.most_common(1)[0][0] * base
    stats = scratch / "psnr.log"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(reference), "-i", str(lossy),
                    "-lavfi", f"[1:v:0]setpts=PTS+{offset}/TB[shown];"
                    f"[0:v:0][shown]psnr=stats_file={stats}:shortest=1", "-f", "null", "-"],
                   capture_output=True, timeout=600, check=True)
    values = re.findall(r"psnr_y:(\S+)", stats.read_text())
    return [float(v) if v != "inf" else float("inf") for v in values]


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
            f'[streams.ref]\nsource = "rtsp://127.0.0.1:{server.port}/cam"\n'
            f'transport = "tcp"\nsegment_seconds = {args.segment_seconds}\nwindow = {WINDOW}\n'
        )
        with RelayProcess(["run", "--config", str(config)], http, Path(tmp),
                          env) as relay:
            relay.wait_for(lambda: all(s["state"] == "playing" for s in relay.api()), 30,
                           "play")
            time.sleep(args.seconds)
            server.process.send_signal(signal.SIGSTOP)  # no more frames: the counts settle
            time.sleep(SETTLE)
            (stream,) = [s for s in relay.api() if s["name"] == "cam"]
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
        over = sum(round(d) > target for d in durations)  # RFC 8216 4.3.3.1 rounds
        print(f"segments: {len(durations)}, EXT-X-TARGETDURATION {target}, longest "
              f"{max(durations):.3f} s, over target: {over}")
        print(f"decode errors: {sum(errors)} lines in {sum(1 for e in errors if e)} of "
              f"{len(errors)} segments; per segment {errors}")
        psnr = viewer_psnr(joined(hls / "ref"), joined(hls / "cam"), Path(tmp))
        n = len(psnr)
        identical = sum(p == float("inf") for p in psnr)
        print(f"what a viewer sees, {n} source pictures: identical {identical / n:.1%}, "
              f">= 35 dB {sum(p >= 35 for p in psnr) / n:.1%}, < 25 dB (visibly wrong) "
              f"{sum(p < 25 for p in psnr) / n:.1%}, median {sorted(psnr)[n // 2]:.1f} dB")


if __name__ == "__main__":
    main()
