#!/usr/bin/python3
"""Benchmark RTMP reader: plays streams from nginx-rtmp with GStreamer's rtmp2src, logs arrivals.

Run by Debian's /usr/bin/python3 (python3-gi):

    gst_reader.py --arrivals FILE --play NAME=rtmp://127.0.0.1:PORT/live/KEY [--play ...]

rtmp2src hands out the FLV stream as it receives RTMP messages; a pad probe on its output parses
the FLV tags (video tag: 11-byte header, then AVCPacketType 1 = coded frames, E.4.3.1 of the FLV
spec) and writes ``<name> <key hex> <monotonic seconds>`` for each coded video frame, the key
being the frame's last 16 bytes (as bench/gst_source.py logs at departure). A player that fails
(the stream not published yet) is restarted after half a second.
"""

from __future__ import annotations

import argparse
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

KEY_BYTES = 16
MAX_TAG = 16 * 1024 * 1024


class FlvTags:
    """Incremental FLV tag reader: feed bytes, get (type, data) per complete tag."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.header_done = False

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        if not self.header_done:
            if len(self.buf) < 13:
                return out
            if self.buf[:3] != b"FLV":
                raise ValueError("not FLV")
            del self.buf[: int.from_bytes(self.buf[5:9], "big") + 4]
            self.header_done = True
        while len(self.buf) >= 11:
            size = int.from_bytes(self.buf[1:4], "big")
            if size > MAX_TAG:
                raise ValueError("FLV tag too large")
            if len(self.buf) < 11 + size + 4:
                break
            out.append((self.buf[0] & 0x1F, bytes(self.buf[11:11 + size])))
            del self.buf[: 11 + size + 4]
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arrivals", required=True)
    parser.add_argument("--play", action="append", default=[], metavar="NAME=URL")
    args = parser.parse_args()
    Gst.init(None)
    out = open(args.arrivals, "a", buffering=1)
    loop = GLib.MainLoop()

    def start(name: str, url: str) -> bool:
        pipeline = Gst.parse_launch(f"rtmp2src name=src location={url} ! fakesink sync=false")
        tags = FlvTags()

        def on_buffer(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            now = time.monotonic()
            buffer = info.get_buffer()
            for kind, data in tags.feed(buffer.extract_dup(0, buffer.get_size())):
                if kind == 9 and len(data) > 5 + KEY_BYTES and data[1] == 1:
                    out.write(f"{name} {data[-KEY_BYTES:].hex()} {now:.6f}\n")
            return Gst.PadProbeReturn.OK

        pipeline.get_by_name("src").get_static_pad("src").add_probe(
            Gst.PadProbeType.BUFFER, on_buffer)
        bus = pipeline.get_bus()
        bus.add_signal_watch()

        def on_message(bus: Gst.Bus, message: Gst.Message) -> None:
            if message.type in (Gst.MessageType.ERROR, Gst.MessageType.EOS):
                bus.remove_signal_watch()
                pipeline.set_state(Gst.State.NULL)
                GLib.timeout_add(500, start, name, url)

        bus.connect("message", on_message)
        pipeline.set_state(Gst.State.PLAYING)
        return False  # as a GLib timeout: once

    for spec in args.play:
        name, _, url = spec.partition("=")
        start(name, url)
    for signum in (2, 15):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
