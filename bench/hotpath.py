"""The relay's per-packet hot path without sockets or trio: CPU per stream per media-second.

    .venv/bin/python -m bench.hotpath [--capture-seconds 10] [--repeat 5] [--latm-only]

Captures (once, into bench/.cache/capture.rtsp) a few seconds of the benchmark source's RTSP
interleaved byte stream with the relay's own sans-IO ``RtspClient``, then replays it through
the same cores the drivers use, stage by stage: RTSP framing (``MessageReader.take_interleaved``,
a whole read at a time, as the driver's read ticker does), the source's
``SourceIngest`` (the very object the RTSP driver feeds: RTP parse, reception statistics, loss
detection, depacketizers, timeline, DTS, audio stage), the bus with two subscribers, FLV tags +
RTMP chunks (``RtmpPublisher``, handshake skipped), and the HLS segmenter (PyAV TS muxing). The
number printed is process CPU per media-second of one stream: what the relay can at best cost
per stream once trio, sockets and the kernel are taken away; no trio.

Then the cost of hostile-sized input that a parser must handle in linear time: one 258 KB
MP4A-LATM element with ``cpresent=1`` (RFC 6416's default), pushed in 1400-byte fragments, as 64
large access units and as the same bytes in 5-byte elements (refused at MAX_UNITS_PER_PAYLOAD).
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from bench.clip import CACHE, ensure_clip
from bench.peers import start_source, stop

CAPTURE = CACHE / "capture.rtsp"


def capture(seconds: float) -> Path:
    from relay.rtsp.client import Described, Playing, RtspClient
    from relay.rtsp.message import interleave
    from relay.sansio import NEED_DATA

    work = CACHE / "capture-work"
    work.mkdir(parents=True, exist_ok=True)
    source = start_source(ensure_clip(), work)
    try:
        host, port = source.url.split("//")[1].split("/")[0].split(":")
        sock = socket.create_connection((host, int(port)))
        client = RtspClient(source.url, "tcp", None, None)
        client.connect()
        sock.sendall(client.data_to_send())
        playing = False
        chunks: list[bytes] = []
        start = 0.0
        while not playing or time.monotonic() - start < seconds:
            data = sock.recv(65536)
            if playing:
                chunks.append(data)
                continue
            client.receive_data(data)
            while (event := client.next_event()) is not NEED_DATA:
                if isinstance(event, Described):
                    media = [{"encoding": m.encoding, "clock_rate": m.clock_rate,
                              "channels": m.channels, "fmtp": m.fmtp_params}
                             for m in event.sdp.media]
                    client.setup(list(range(len(media))), None)
                elif isinstance(event, Playing):
                    playing, start = True, time.monotonic()
                    # what the client still buffers is RTP after the PLAY reply: keep it
                    chunks += [interleave(channel, data)
                               for channel, data in client.take_interleaved()]
                    rest = client._reader._buf[client._reader._off:]  # noqa: SLF001
                    chunks.append(bytes(rest))
            sock.sendall(client.data_to_send())
        sdp = json.dumps(media).encode()
        sock.close()
    finally:
        stop(source.proc)
    CAPTURE.write_bytes(len(sdp).to_bytes(4, "big") + sdp + b"".join(chunks))
    return CAPTURE


@dataclass(slots=True)
class HlsCost:
    """Where the HLS stage's CPU goes: the segmenter's push of a frame that cuts nothing, the
    push that cuts a segment (PyAV muxes all its frames then), and the segment's file write."""

    frames: int = 0
    frame_seconds: float = 0.0
    segments: int = 0
    segment_frames: int = 0
    cut_seconds: float = 0.0
    write_seconds: float = 0.0

    def lines(self) -> list[str]:
        per_frame = self.frame_seconds / max(self.frames, 1)
        mux = self.cut_seconds / max(self.segments, 1) - per_frame
        return [
            f"{'hls push, per frame':28s} {per_frame * 1e6:7.3f} µs CPU (no segment cut)",
            f"{'hls mux, per segment':28s} {mux * 1e3:7.3f} ms CPU "
            f"({self.segment_frames / max(self.segments, 1):.0f} frames a segment, "
            f"{mux / max(self.segment_frames / max(self.segments, 1), 1) * 1e6:.1f} µs a frame)",
            f"{'hls write, per segment':28s} "
            f"{self.write_seconds / max(self.segments, 1) * 1e3:7.3f} ms CPU",
        ]


def replay(data: bytes, media_seconds: float) -> tuple[dict[str, float], int, HlsCost]:
    """Run the captured stream through the cores; returns CPU seconds per stage per media
    second, the number of RTP packets, and the HLS stage's split."""
    import os
    import shutil
    import tempfile

    import trio

    from relay.audio.policy import AudioPolicy, AudioStage
    from relay.bus import Stream
    from relay.files import write_atomically
    from relay.hls.segmenter import Segmenter
    from relay.ingest import SourceIngest
    from relay.media import Codec
    from relay.rtmp import flv
    from relay.rtmp.publish import RtmpPublisher, State
    from relay.rtmp.url import RtmpUrl
    from relay.rtp.registry import make_depacketizer
    from relay.rtp.sync import Timeline
    from relay.rtsp.message import MessageReader

    size = int.from_bytes(data[:4], "big")
    medias = json.loads(data[4:4 + size])
    body = data[4 + size:]
    deps = [make_depacketizer(i, media["encoding"] or "", media["clock_rate"] or 90000,
                              media["channels"] or 1, media["fmtp"])
            for i, media in enumerate(medias)]
    # interleaved channels as SETUP gave them: RTP on 2i, RTCP on 2i + 1
    channels = {c: (c // 2, c % 2 == 1) for c in range(2 * len(deps))}
    ingest = SourceIngest(deps, Timeline(), AudioStage(AudioPolicy.AUTO, needs_audio=True),
                          channels=channels)
    stream = Stream("bench")
    stream.set_tracks(ingest.output_tracks)
    hls_sub = stream.subscribe(100000)
    rtmp_sub = stream.subscribe(100000)
    publisher = RtmpPublisher(RtmpUrl.parse("rtmp://127.0.0.1/live/bench"), os.urandom(1528))
    publisher.state = State.PUBLISHING  # the handshake and connect are not the hot path
    publisher.stream_id = 1
    publisher._writer.set_chunk_size(4096)  # noqa: SLF001
    segmenter = Segmenter(2.0, has_video=True)
    reader = MessageReader()
    t = {"rtsp+rtp+depacketize+bus": 0.0, "rtmp (flv+chunks)": 0.0}
    hls = HlsCost()
    out = Path(tempfile.mkdtemp(prefix="hotpath-hls-"))
    step = 65536 // 4  # about what one receive_some returns under load
    now = 0.0
    sent_config = False
    for offset in range(0, len(body), step):
        c0 = time.process_time()
        reader.receive_data(body[offset:offset + step])
        now += 0.01
        for frame in ingest.receive_interleaved(reader.take_interleaved(), now):
            stream.publish(frame)
        c1 = time.process_time()
        while True:
            try:
                frame = rtmp_sub.receive_nowait()
            except trio.WouldBlock:
                break
            ms = frame.dts * 1000 // frame.track.clock_rate
            payload = frame.data
            if isinstance(payload, tuple):  # video: its NAL units
                if not sent_config and len(frame.track.parameter_sets) == 2:
                    publisher.send_video(flv.avc_sequence_header(*frame.track.parameter_sets), ms)
                    sent_config = True
                publisher.send_video(flv.avc_nalus(payload, frame.key, 0), ms)
            elif frame.track.codec is Codec.AAC:
                publisher.send_audio(flv.aac_raw(payload), ms)
        publisher.data_to_send()  # one write per batch, as the sink does
        c2 = time.process_time()
        while True:
            try:
                frame = hls_sub.receive_nowait()
            except trio.WouldBlock:
                break
            p0 = time.process_time()
            segments = segmenter.push(frame)
            p1 = time.process_time()
            if not segments:
                hls.frames += 1
                hls.frame_seconds += p1 - p0
                continue
            hls.cut_seconds += p1 - p0  # the push that cut: PyAV muxed the segment's frames
            for segment in segments:
                hls.segments += 1
                hls.segment_frames += segment.frames
                write_atomically(out / "seg.ts", segment.data)
            hls.write_seconds += time.process_time() - p1
        t["rtsp+rtp+depacketize+bus"] += c1 - c0
        t["rtmp (flv+chunks)"] += c2 - c1
    t["hls (segmenter+mux)"] = hls.frame_seconds + hls.cut_seconds
    t["hls segment write"] = hls.write_seconds
    shutil.rmtree(out)
    return {k: v / media_seconds for k, v in t.items()}, ingest.packets_received, hls


def latm_elements() -> dict[str, float]:
    """CPU seconds to depacketize one 258 KB ``cpresent=1`` LATM payload, for each shape."""
    from dataclasses import replace

    from relay.rtp import latm
    from relay.rtp.packet import RtpPacket

    config = latm.StreamMuxConfig.from_hex("40002320adca00")  # GStreamer's: AAC-LC, 48 kHz
    big = replace(config, num_sub_frames=63)
    first = latm.audio_mux_element(config, [b"\x01"], mux_config_present=True)
    same = latm.audio_mux_element(config, [b"\x01\x02\x03"], True, send_config=False)
    shapes = {
        "latm 258 KB, 64 units": latm.audio_mux_element(
            big, [bytes((i,)) * 4016 for i in range(64)], mux_config_present=True),
        "latm 258 KB, 5-byte elements": first + same * (258_000 // len(same)),
    }
    cost = {}
    for name, element in shapes.items():
        depacketizer = latm.make(0, 48000, 2, {"cpresent": "1"})
        packets = [RtpPacket(offset + 1400 >= len(element), 96, seq, 0, 1,
                             element[offset:offset + 1400])
                   for seq, offset in enumerate(range(0, len(element), 1400))]
        c0 = time.process_time()
        for packet in packets:
            depacketizer.push(packet)  # a refused element is counted in .bad, never raised
        cost[name] = time.process_time() - c0
    return cost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--capture-seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=5, help="replays; the best is printed")
    parser.add_argument("--recapture", action="store_true")
    parser.add_argument("--latm-only", action="store_true",
                        help="only the large LATM elements (no capture needed)")
    args = parser.parse_args(argv)
    latm_best = min((latm_elements() for _ in range(args.repeat)), key=lambda r: sum(r.values()))
    for case, seconds in latm_best.items():
        print(f"{case:28s} {seconds * 1000:7.3f} ms CPU for one element")
    if args.latm_only:
        return 0
    if args.recapture or not CAPTURE.exists():
        capture(args.capture_seconds)
    data = CAPTURE.read_bytes()
    import trio  # noqa: F401  (the bus needs it imported; no event loop is run)

    best: dict[str, float] | None = None
    best_hls: HlsCost | None = None
    packets = 0
    for _ in range(args.repeat):
        result, packets, hls = replay(data, args.capture_seconds)
        if best is None or sum(result.values()) < sum(best.values()):
            best, best_hls = result, hls
    assert best is not None and best_hls is not None
    for stage, seconds in best.items():
        print(f"{stage:28s} {seconds * 1000:7.3f} ms CPU per stream per media-second")
    ingest = best["rtsp+rtp+depacketize+bus"] * args.capture_seconds / packets
    print(f"{'ingest+bus per RTP packet':28s} {ingest * 1e6:7.3f} µs CPU ({packets} packets)")
    for line in best_hls.lines():
        print(line)
    print(f"{'total':28s} {sum(best.values()) * 1000:7.3f} ms CPU per stream per media-second")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
