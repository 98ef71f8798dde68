"""The relay's per-packet hot path without sockets or trio: CPU per packet, per frame, by stage.

    .venv/bin/python -m bench.hotpath [--capture-seconds 10] [--repeat 5] [--stages ...]
        [--segment-seconds 2] [--latm-only]

Captures (once, into bench/.cache/capture.rtsp) a few seconds of the benchmark source's RTSP
interleaved byte stream with the relay's own sans-IO ``RtspClient``, then replays it through
the same cores the drivers use, stage by stage: RTSP framing (``MessageReader.take_interleaved``,
a whole read at a time, as the driver's read ticker does), the source's
``SourceIngest`` (the very object the RTSP driver feeds: RTP parse, reception statistics, loss
detection, depacketizers, timeline, DTS, audio stage), the bus with two subscribers, FLV tags +
RTMP chunks (``RtmpPublisher``, handshake skipped), the HLS segmenter (PyAV TS muxing) and the
LL-HLS part cutter (PyAV fMP4). Each stage runs over the whole capture between one pair of
``process_time`` calls, its input made by the stage before it, and is printed as CPU
microseconds per RTP packet, per frame and milliseconds per media-second of one stream: what
the relay can at best cost per stream once trio, sockets and the kernel are taken away.

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


STAGES = ("framing", "ingest", "bus", "rtmp", "hls-setup", "hls", "hls-bookkeeping", "hls-write",
          "ll")
"""What ``replay`` can time, in pipeline order (``--stages`` picks some; each needs the ones
before it that feed it, which run untimed when not picked)."""

DESCRIBE = {
    "framing": "RTSP interleaved framing (MessageReader.take_interleaved, a read at a time)",
    "ingest": "SourceIngest: RTP parse, stats, sequence check, depacketize, timeline, DTS, "
              "stamp, audio stage",
    "bus": "Stream.publish to two subscribers + both drained (receive_nowait)",
    "rtmp": "FLV tags + RTMP chunks, one data_to_send per read",
    "hls-setup": "a Segmenter made, its PyAV stream templates too: once per sink start",
    "hls": "Segmenter.push of every frame + flush: bookkeeping and PyAV TS mux",
    "hls-bookkeeping": "the same pushes with mux_ts swapped for a stub: segmenter rules only",
    "hls-write": "each segment written atomically (temp + rename), the sink's worker thread",
    "ll": "LL-HLS PartCutter.push: fMP4 parts of 0.333 s (PyAV mp4 mux per part; its "
          "templates made before)",
}


@dataclass(slots=True)
class Replay:
    """One replay's CPU seconds per stage and what each stage handled."""

    seconds: dict[str, float]
    packets: int
    frames: int
    segments: int
    parts: int


class _Stopwatch:
    """CPU time of one stage over the whole capture: one ``process_time`` pair per stage, not
    per frame (a ``process_time`` call costs about a microsecond, as much as a frame's work in
    some stages)."""

    def __init__(self, stage: str, stages: tuple[str, ...], seconds: dict[str, float]) -> None:
        self.stage = stage if stage in stages else None  # run it untimed: it feeds the next
        self.seconds, self.start = seconds, 0.0

    def __enter__(self) -> None:
        self.start = time.process_time()

    def __exit__(self, *exc: object) -> None:
        if self.stage is not None:
            self.seconds[self.stage] = time.process_time() - self.start


def replay(data: bytes, stages: tuple[str, ...], segment_seconds: float = 2.0) -> Replay:
    """Run the captured stream through the cores, one stage at a time over the whole capture
    (each stage's input kept from the stage before, grouped by read as the driver sees it)."""
    import os
    import shutil
    import tempfile

    import trio

    from relay.audio.policy import AudioPolicy, AudioStage
    from relay.bus import Stream
    from relay.files import write_atomically
    from relay.hls import segmenter as segmenter_module
    from relay.ingest import SourceIngest
    from relay.media import Frame, Kind
    from relay.rtmp import flv
    from relay.rtmp.publish import RtmpPublisher, State
    from relay.rtmp.url import RtmpUrl
    from relay.rtp.registry import make_depacketizer
    from relay.rtp.sync import Timeline
    from relay.rtsp.message import MessageReader

    size = int.from_bytes(data[:4], "big")
    medias = json.loads(data[4:4 + size])
    body = data[4 + size:]
    step = 65536 // 4  # about what one read returns under load
    chunks = [body[offset:offset + step] for offset in range(0, len(body), step)]
    seconds: dict[str, float] = {}

    reader = MessageReader()
    with _Stopwatch("framing", stages, seconds):
        reads = []
        for chunk in chunks:
            reader.receive_data(chunk)
            reads.append(reader.take_interleaved())

    deps = [make_depacketizer(i, media["encoding"] or "", media["clock_rate"] or 90000,
                              media["channels"] or 1, media["fmtp"])
            for i, media in enumerate(medias)]
    # interleaved channels as SETUP gave them: RTP on 2i, RTCP on 2i + 1
    channels = {c: (c // 2, c % 2 == 1) for c in range(2 * len(deps))}
    ingest = SourceIngest(deps, Timeline(), AudioStage(AudioPolicy.AUTO, needs_audio=True),
                          channels=channels)
    with _Stopwatch("ingest", stages, seconds):
        batches = [ingest.receive_interleaved(read, 0.01 * (n + 1))
                   for n, read in enumerate(reads)]
    frames = sum(map(len, batches))

    stream = Stream("bench")
    stream.set_tracks(ingest.output_tracks)
    subscriptions = (stream.subscribe(100000), stream.subscribe(100000))
    rtmp_batches: list[list[Frame]] = []
    hls_batches: list[list[Frame]] = []
    with _Stopwatch("bus", stages, seconds):
        for batch in batches:
            for frame in batch:
                stream.publish(frame)
            for subscription, out in zip(subscriptions, (rtmp_batches, hls_batches),
                                         strict=True):
                taken = []
                while True:
                    try:
                        taken.append(subscription.receive_nowait())
                    except trio.WouldBlock:
                        break
                out.append(taken)

    publisher = RtmpPublisher(RtmpUrl.parse("rtmp://127.0.0.1/live/bench"), os.urandom(1528))
    publisher.state = State.PUBLISHING  # the handshake and connect are not the hot path
    publisher.stream_id = 1
    publisher._writer.set_chunk_size(4096)  # noqa: SLF001
    sent_config = False
    video = Kind.VIDEO
    with _Stopwatch("rtmp", stages, seconds):
        for batch in rtmp_batches:
            for frame in batch:
                track = frame.track
                ms = frame.dts * 1000 // track.clock_rate
                if track.kind is video:
                    if not sent_config and len(track.parameter_sets) == 2:
                        publisher.send_video(flv.avc_sequence_header(*track.parameter_sets), ms)
                        sent_config = True
                    publisher.send_video(flv.avc_nalus(frame.data, frame.key, 0), ms)
                else:
                    publisher.send_audio(flv.aac_raw(frame.data), ms)
            publisher.data_to_send()  # one write per batch, as the sink does

    segments = []
    codecs = {track.codec for track in stream.tracks.values()}
    if "hls" in stages or "hls-write" in stages or "hls-setup" in stages:
        with _Stopwatch("hls-setup", stages, seconds):
            segmenter = segmenter_module.Segmenter(segment_seconds, has_video=True)
            for codec in codecs:
                segmenter._templates.get(codec)  # noqa: SLF001  (else made by the first mux)
        with _Stopwatch("hls", stages, seconds):
            for batch in hls_batches:
                for frame in batch:
                    segments += segmenter.push(frame)
            segments += segmenter.flush()
    if "hls-bookkeeping" in stages:
        mux_ts = segmenter_module.mux_ts
        segmenter_module.mux_ts = lambda *args: b""  # type: ignore[assignment]
        try:
            segmenter = segmenter_module.Segmenter(segment_seconds, has_video=True)
            with _Stopwatch("hls-bookkeeping", stages, seconds):
                for batch in hls_batches:
                    for frame in batch:
                        segmenter.push(frame)
                segmenter.flush()
        finally:
            segmenter_module.mux_ts = mux_ts
    if "hls-write" in stages:
        out = Path(tempfile.mkdtemp(prefix="hotpath-hls-"))
        with _Stopwatch("hls-write", stages, seconds):
            for segment in segments:
                write_atomically(out / "seg.ts", segment.data)
        shutil.rmtree(out)

    parts = 0
    if "ll" in stages:
        from relay.hls.ll import PartCutter

        cutter = PartCutter(list(stream.tracks.values()), 0.333)
        for codec in codecs:
            cutter._templates.get(codec)  # noqa: SLF001  (a one-off, as hls-setup)
        with _Stopwatch("ll", stages, seconds):
            for batch in hls_batches:
                for frame in batch:
                    parts += len(cutter.push(frame))
    return Replay(seconds, ingest.packets_received, frames, len(segments), parts)


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
    parser.add_argument("--repeat", type=int, default=5,
                        help="replays; each stage's best is printed")
    parser.add_argument("--recapture", action="store_true")
    parser.add_argument("--stages", default=",".join(("latm", *STAGES)),
                        help=f"comma-separated, of: latm (the large LATM elements), "
                        f"{', '.join(STAGES)}")
    parser.add_argument("--segment-seconds", type=float, default=2.0)
    parser.add_argument("--latm-only", action="store_true",
                        help="only the large LATM elements (no capture needed)")
    args = parser.parse_args(argv)
    stages = tuple(args.stages.split(","))
    if unknown := set(stages) - {"latm", *STAGES}:
        parser.error(f"--stages: unknown {', '.join(sorted(unknown))}")
    if "latm" in stages or args.latm_only:
        latm_best = min((latm_elements() for _ in range(args.repeat)),
                        key=lambda r: sum(r.values()))
        for case, seconds in latm_best.items():
            print(f"{case:28s} {seconds * 1000:7.3f} ms CPU for one element")
    if args.latm_only or not set(stages) & set(STAGES):
        return 0
    if args.recapture or not CAPTURE.exists():
        capture(args.capture_seconds)
    data = CAPTURE.read_bytes()
    import trio  # noqa: F401  (the bus needs it imported; no event loop is run)

    runs = [replay(data, stages, args.segment_seconds) for _ in range(args.repeat)]
    first = runs[0]
    print(f"{first.packets} RTP packets, {first.frames} frames, {first.segments} TS segments, "
          f"{first.parts} LL parts in {args.capture_seconds:g} s; best of {args.repeat}, CPU:")
    print(f"{'stage':16s} {'us/packet':>9s} {'us/frame':>9s} {'ms/stream-s':>11s}")
    total = 0.0
    for stage in STAGES:
        if stage not in first.seconds:
            continue
        best = min(run.seconds[stage] for run in runs)
        if stage in ("framing", "ingest", "bus", "rtmp", "hls", "ll"):  # per frame, on the loop
            total += best
        print(f"{stage:16s} {best / first.packets * 1e6:9.3f} {best / first.frames * 1e6:9.3f} "
              f"{best / args.capture_seconds * 1e3:11.3f}  {DESCRIBE[stage]}")
    print(f"{'total':16s} {total / first.packets * 1e6:9.3f} {total / first.frames * 1e6:9.3f} "
          f"{total / args.capture_seconds * 1e3:11.3f}  (the stages above but "
          "hls-setup, once a stream, hls-bookkeeping, inside hls, and hls-write, off the "
          "event loop)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
