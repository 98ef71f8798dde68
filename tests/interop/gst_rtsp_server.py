#!/usr/bin/python3
"""A real RTSP camera for interop tests: GStreamer's RTSP server (RFC 2326) with test sources.

Run by Debian's /usr/bin/python3 (it needs python3-gi and gir1.2-gst-rtsp-server-1.0, not the
project's virtualenv):

    gst_rtsp_server.py --port 0 --mount /cam=h264aac [--mount /v=h264] [--user U --password P]
                       [--protocols tcp,udp]

Prints ``READY port=N`` on stdout once listening; SIGTERM/SIGINT stop it. Each mount has its own
shared factory, so any number of clients of one mount share one encoder. Pipelines:

- ``h264aac``: 640x360 25 fps H.264 (x264, baseline-like: no B-frames, one slice per picture,
  IDR every second) as RTP/H264 pt 96 (RFC 6184), and 48 kHz stereo AAC-LC as RTP
  mpeg4-generic AAC-hbr pt 97 (RFC 3640).
- ``h264``: the video alone.
- ``h265aac``: 640x360 25 fps H.265 (x265 ultrafast, zerolatency, one slice, IRAP every second)
  as RTP/H265 pt 96 (RFC 7798), with the same AAC.
- ``h264pcma``: the H.264 video with 8 kHz mono G.711 A-law as RTP/PCMA pt 8 (RFC 3551 4.5.14).
- ``h264bframes``: 640x360 H.264 main profile with two B-frames between references (no
  zerolatency, fixed B pattern), so DTS != PTS; video only.
- ``h264_1080p``: 1920x1080 25 fps H.264 at 8 Mbit/s (a moving SMPTE pattern, so the bitrate is
  really spent); video only.
- ``h264aac_busy``: like ``h264aac`` but 2 Mbit/s of scrolling SMPTE bars, so each picture
  takes several RTP packets (for loss tests: a loss cuts frames in the middle).
- ``h264latm``: the H.264 video with the AAC as MP4A-LATM pt 97 (RFC 6416), via rtpmp4apay.
- ``h264intrarefresh``: the H.264 video with periodic intra refresh instead of IDR frames:
  x264 sends one IDR when the pipeline starts, then only a recovery point SEI (with SPS/PPS)
  every second. (A client joining a running pipeline still gets an IDR: GStreamer's flushing
  seek for it re-opens the encoder.) Video only.

rtph264pay's config-interval is left unset on purpose: with it set, GStreamer 1.22 split
keyframes and corrupted GOPs (see DESIGN.md); SPS/PPS still travel in the SDP and in-band
at each IDR, as x264 writes them there.
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

RAW_360P = (
    "videotestsrc is-live=true pattern=ball"
    " ! video/x-raw,width=640,height=360,framerate=25/1,format=I420"
)
VIDEO = (
    f"{RAW_360P}"
    # threads=1 + sliced-threads=false: one slice per picture (zerolatency slices per thread).
    " ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bframes=0"
    " threads=1 sliced-threads=false"
    " ! video/x-h264,profile=constrained-baseline"
    " ! rtph264pay name=pay0 pt=96"
)
VIDEO_H265 = (
    f"{RAW_360P}"
    " ! x265enc speed-preset=ultrafast tune=zerolatency key-int-max=25"
    " ! video/x-h265,profile=main"
    " ! rtph265pay name=pay0 pt=96"
)
VIDEO_BFRAMES = (
    f"{RAW_360P}"
    # No zerolatency: it would turn B-frames off. b-adapt=false keeps the I/P B B pattern fixed.
    " ! x264enc speed-preset=ultrafast key-int-max=25 bframes=2 b-adapt=false"
    " threads=1 sliced-threads=false"
    " ! video/x-h264,profile=main"
    " ! rtph264pay name=pay0 pt=96"
)
VIDEO_1080P = (
    # A scrolling SMPTE pattern costs little to draw yet makes x264 spend the full 8 Mbit/s
    # (the ball pattern compresses to ~0.2 Mbit/s). Measured on the 2-core CI box: x264 at
    # ultrafast, one thread, encodes it at ~4x real time.
    "videotestsrc is-live=true pattern=smpte horizontal-speed=4"
    " ! video/x-raw,width=1920,height=1080,framerate=25/1,format=I420"
    " ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bframes=0 bitrate=8000"
    " threads=1 sliced-threads=false"
    " ! video/x-h264,profile=constrained-baseline"
    " ! rtph264pay name=pay0 pt=96"
)
VIDEO_BUSY = (
    # 640x360 at 2 Mbit/s of scrolling SMPTE bars: every picture spans several RTP packets
    # (FU-A fragments), so a lost packet truncates a frame instead of removing a whole one.
    "videotestsrc is-live=true pattern=smpte horizontal-speed=4"
    " ! video/x-raw,width=640,height=360,framerate=25/1,format=I420"
    " ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bframes=0 bitrate=2000"
    " threads=1 sliced-threads=false"
    " ! video/x-h264,profile=constrained-baseline"
    " ! rtph264pay name=pay0 pt=96"
)
VIDEO_INTRA_REFRESH = (
    f"{RAW_360P}"
    " ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25"
    " intra-refresh=true bframes=0 threads=1 sliced-threads=false"
    " ! video/x-h264,profile=constrained-baseline"
    " ! rtph264pay name=pay0 pt=96"
)
PCMA = (
    "audiotestsrc is-live=true wave=sine freq=1000 volume=0.3"
    " ! audio/x-raw,rate=8000,channels=1"
    " ! alawenc ! rtppcmapay name=pay1 pt=8"
)


def _aac(encoder: str) -> str:
    return (
        "audiotestsrc is-live=true wave=sine freq=1000 volume=0.3"
        " ! audio/x-raw,rate=48000,channels=2"
        f" ! audioconvert ! {encoder} bitrate=128000"
    )


def pipelines() -> dict[str, str]:
    """The named test pipelines, with the AAC encoder this GStreamer has."""
    encoder = next(
        (e for e in ("avenc_aac", "voaacenc") if Gst.ElementFactory.find(e) is not None), None
    )
    named = {
        "h264": VIDEO,
        "h264pcma": f"{VIDEO} {PCMA}",
        "h264bframes": VIDEO_BFRAMES,
        "h264_1080p": VIDEO_1080P,
        "h264intrarefresh": VIDEO_INTRA_REFRESH,
    }
    if encoder is not None:
        aac = _aac(encoder)
        named["h264aac"] = f"{VIDEO} {aac} ! rtpmp4gpay name=pay1 pt=97"
        named["h264aac_busy"] = f"{VIDEO_BUSY} {aac} ! rtpmp4gpay name=pay1 pt=97"
        named["h265aac"] = f"{VIDEO_H265} {aac} ! rtpmp4gpay name=pay1 pt=97"
        if Gst.ElementFactory.find("rtpmp4apay") is not None:
            named["h264latm"] = f"{VIDEO} {aac} ! rtpmp4apay name=pay1 pt=97"
    return named


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--mount", action="append", default=[], metavar="/PATH=PIPELINE")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--protocols", default="tcp,udp", help="tcp, udp or tcp,udp")
    args = parser.parse_args()

    Gst.init(None)
    named = pipelines()
    if not args.mount:
        parser.error("at least one --mount is needed")
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    protocols = GstRtsp.RTSPLowerTrans(0)
    for name in args.protocols.split(","):
        if name not in ("tcp", "udp"):
            parser.error(f"--protocols: unknown {name!r}")
        protocols |= GstRtsp.RTSPLowerTrans.TCP if name == "tcp" else GstRtsp.RTSPLowerTrans.UDP

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for spec in args.mount:
        path, sep, name = spec.partition("=")
        if not sep or not path.startswith("/") or name not in named:
            parser.error(f"--mount {spec!r}: want /PATH=NAME with NAME in {sorted(named)}")
        launch = named[name]
        # Build it once now, so a missing element fails here and not at the first client.
        try:
            Gst.parse_launch(launch)
        except GLib.Error as exc:
            print(f"gst_rtsp_server: pipeline {name!r}: {exc.message}", file=sys.stderr)
            return 1
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(f"( {launch} )")
        factory.set_shared(True)
        factory.set_protocols(protocols)
        if args.user is not None:
            role = Gst.Structure.new_from_string(
                "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
            factory.add_role_from_structure(role)
        mounts.add_factory(path, factory)

    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.add_digest(args.user, args.password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"gst_rtsp_server: cannot listen on port {args.port}", file=sys.stderr)
        return 1
    for signum in (2, 15):  # SIGINT, SIGTERM
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print(f"READY port={server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
