#!/usr/bin/python3
"""Benchmark source: GStreamer's RTSP server (RFC 2326) as a live camera playing a pre-encoded
clip, with no encoder.

Run by Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-rtsp-server-1.0):

    gst_source.py --clip clip.mkv [--port 0] [--departures FILE]

A "camera" pipeline reads the clip (H.264 + AAC in Matroska, see bench/clip.py) and releases each
frame at its real time (clocksync) to appsinks; from there every frame is pushed into the live
appsrc of the one *shared* media of the mount ``/clip``, so any number of RTSP clients get the
same RTP from one payloader per track and the sources' cost hardly grows with N. Live, as a
camera is: a new client's PLAY does not seek (a file-backed shared media would rewind for
everyone), and it joins the stream where it is. h264parse re-sends SPS/PPS before every IDR.

Departures: for every video access unit, ``<key hex> <monotonic seconds>`` is appended to
``--departures`` at the moment it is pushed to the payloader; the key is the unit's last 16
bytes (the tail of its last slice: what every relay copies unchanged into FLV and TS). What
follows (appsrc's queue, payloading, the server's TCP send) is the method's error: well under a
millisecond on an idle machine.

Prints ``READY port=N`` once listening; SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

KEY_BYTES = 16

CAMERA = (
    "filesrc location={clip} ! matroskademux name=d"
    " d.video_0 ! queue ! h264parse config-interval=-1"
    " ! video/x-h264,stream-format=byte-stream,alignment=au ! clocksync"
    " ! appsink name=video emit-signals=true sync=false max-buffers=100"
    " d.audio_0 ! queue ! aacparse ! clocksync"
    " ! appsink name=audio emit-signals=true sync=false max-buffers=100"
)
MEDIA = (
    "( appsrc name=vsrc is-live=true format=time do-timestamp=true ! rtph264pay name=pay0 pt=96"
    "  appsrc name=asrc is-live=true format=time do-timestamp=true ! rtpmp4gpay name=pay1 pt=97 )"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--clip", required=True, help="Matroska file: H.264 + AAC")
    parser.add_argument("--departures", help="file to append '<key> <monotonic>' lines to")
    args = parser.parse_args()

    Gst.init(None)
    out = open(args.departures, "a", buffering=1) if args.departures else None
    camera = Gst.parse_launch(CAMERA.format(clip=args.clip))
    caps: dict[str, Gst.Caps] = {}
    targets: dict[str, list[Gst.Element]] = {"video": [], "audio": []}
    lock = threading.Lock()

    def on_sample(sink: Gst.Element, kind: str) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        buffer = sample.get_buffer()
        data = buffer.extract_dup(0, buffer.get_size())
        with lock:
            srcs = list(targets[kind])
        if kind == "video" and out is not None and len(data) >= KEY_BYTES:
            out.write(f"{data[-KEY_BYTES:].hex()} {time.monotonic():.6f}\n")
        for src in srcs:
            copy = Gst.Buffer.new_wrapped(data)
            if buffer.has_flags(Gst.BufferFlags.DELTA_UNIT):
                copy.set_flags(Gst.BufferFlags.DELTA_UNIT)
            src.emit("push-buffer", copy)
        return Gst.FlowReturn.OK

    for kind in ("video", "audio"):
        camera.get_by_name(kind).connect("new-sample", on_sample, kind)

    # Preroll once to learn the caps (SPS/PPS, AudioSpecificConfig) the payloaders need.
    # (clocksync makes the camera live: PAUSED does not wait, so poll for the caps.)
    camera.set_state(Gst.State.PAUSED)
    deadline = time.monotonic() + 10
    while len(caps) < 2 and time.monotonic() < deadline:
        for kind in ("video", "audio"):
            found = camera.get_by_name(kind).get_static_pad("sink").get_current_caps()
            if found is not None:
                caps[kind] = found
        time.sleep(0.02)
    if len(caps) < 2:
        print("gst_source: cannot read the clip's caps", file=sys.stderr)
        return 1

    def on_media(factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        bin_ = media.get_element()
        pairs = [("video", bin_.get_by_name("vsrc")), ("audio", bin_.get_by_name("asrc"))]
        for kind, src in pairs:
            src.set_property("caps", caps[kind])
        with lock:
            for kind, src in pairs:
                targets[kind].append(src)

        def forget(media: GstRtspServer.RTSPMedia) -> None:
            with lock:
                for kind, src in pairs:
                    if src in targets[kind]:
                        targets[kind].remove(src)

        media.connect("unprepared", forget)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    server.set_backlog(256)  # many clients connect at once
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(MEDIA)
    factory.set_shared(True)
    # UDP too: relay pull --transport udp is measured against the same source
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
    factory.connect("media-constructed", on_media)
    server.get_mount_points().add_factory("/clip", factory)

    loop = GLib.MainLoop()
    bus = camera.get_bus()
    bus.add_signal_watch()
    bus.connect("message::error", lambda *_: loop.quit())
    bus.connect("message::eos", lambda *_: loop.quit())
    if server.attach(None) == 0:
        print(f"gst_source: cannot listen on port {args.port}", file=sys.stderr)
        return 1
    for signum in (2, 15):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    camera.set_state(Gst.State.PLAYING)
    print(f"READY port={server.get_bound_port()}", flush=True)
    loop.run()
    camera.set_state(Gst.State.NULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
