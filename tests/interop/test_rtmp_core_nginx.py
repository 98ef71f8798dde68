"""The sans-IO RTMP publisher against nginx-rtmp, driven by a tiny blocking-socket loop.

Publishes about 3 s of PyAV-encoded H.264 + AAC as FLV tags from relay.rtmp.flv, unpublishes,
then checks nginx's recording with ffprobe and PyAV. Refusals must end in an event, not a hang.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import av
import pytest

from relay.rtmp import flv
from relay.rtmp.publish import (
    Event,
    PeerClosed,
    PublishFailed,
    PublishStarted,
    RtmpPublisher,
    State,
)
from relay.rtmp.url import RtmpUrl
from relay.sansio import NEED_DATA
from tests.interop.nginx import start_nginx_rtmp
from tests.unit.rtmp.encoded import HEIGHT, SAMPLE_RATE, WIDTH, encode, metadata

pytestmark = pytest.mark.interop
TIMEOUT = 10.0


class Session:
    """Blocking driver: a socket and an RtmpPublisher."""

    def __init__(self, url: str) -> None:
        self.url = RtmpUrl.parse(url)
        self.sock = socket.create_connection((self.url.host, self.url.port), timeout=TIMEOUT)
        self.publisher = RtmpPublisher(self.url, os.urandom(1528))
        self.flush()

    def flush(self) -> None:
        data = self.publisher.data_to_send()
        if data:
            self.sock.sendall(data)

    def wait_event(self) -> Event:
        """Read until the publisher yields an event (answers acks and pings on the way)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            event = self.publisher.next_event()
            self.flush()
            if event is not NEED_DATA:
                return event
            if time.monotonic() > deadline:
                pytest.fail(f"no event from nginx in {TIMEOUT} s (state {self.publisher.state})")
            try:
                self.publisher.receive_data(self.sock.recv(65536))
            except ConnectionResetError:
                self.publisher.receive_data(b"")

    def start(self) -> Event:
        while True:
            event = self.wait_event()
            if isinstance(event, (PublishStarted, PublishFailed, PeerClosed)):
                return event

    def close(self) -> None:
        self.sock.close()


def probe(path: Path) -> tuple[dict[str, dict[str, object]], list[dict[str, object]]]:
    out = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_packets", "-of", "json", str(path)],
        check=True, capture_output=True, text=True, timeout=30).stdout)
    return {s["codec_type"]: s for s in out["streams"]}, out["packets"]


def test_publish_to_nginx_and_probe_recording(tmp_path: Path) -> None:
    tags, _, _ = encode(3.0)
    with start_nginx_rtmp(tmp_path) as nginx:
        session = Session(nginx.url("live", "cam1?token=s3cret"))
        event = session.start()
        assert event == PublishStarted(session.publisher.stream_id), event
        publisher = session.publisher
        publisher.send_metadata(metadata())
        for tag in tags:
            if tag.kind == flv.TAG_VIDEO:
                publisher.send_video(tag.body, tag.timestamp_ms)
            else:
                publisher.send_audio(tag.body, tag.timestamp_ms)
            session.flush()
        publisher.close()
        session.flush()
        session.sock.shutdown(socket.SHUT_WR)
        # nginx closes the recording when the publisher goes, before it closes the connection:
        # once recv() sees EOF the file is complete.
        session.sock.settimeout(TIMEOUT)
        while session.sock.recv(65536):
            pass
        session.close()
        recording = nginx.recording("cam1")
    assert recording.exists(), sorted(p.name for p in nginx.record_dir.iterdir())

    streams, packets = probe(recording)
    assert streams["video"]["codec_name"] == "h264"
    assert (streams["video"]["width"], streams["video"]["height"]) == (WIDTH, HEIGHT)
    assert streams["audio"]["codec_name"] == "aac"
    assert int(streams["audio"]["sample_rate"]) == SAMPLE_RATE
    sent_video = sum(1 for t in tags if t.kind == flv.TAG_VIDEO) - 1  # minus sequence header
    for kind in ("video", "audio"):
        index = streams[kind]["index"]
        dts = [int(p["dts"]) for p in packets if p["stream_index"] == index]
        assert dts == sorted(dts), f"{kind} DTS not monotonic"
    video_packets = [p for p in packets if p["stream_index"] == streams["video"]["index"]]
    audio_packets = [p for p in packets if p["stream_index"] == streams["audio"]["index"]]
    assert len(video_packets) == sent_video
    assert len(audio_packets) == sum(1 for t in tags if t.kind == flv.TAG_AUDIO) - 1
    # Composition times survived: some video packets have pts != dts (B-frames).
    assert any(p["pts"] != p["dts"] for p in video_packets)
    # The pictures decode, in presentation order, at the size sent.
    with av.open(str(recording)) as container:
        frames = list(container.decode(video=0))
    with av.open(str(recording)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    assert len(frames) == sent_video == 75
    assert {(f.width, f.height) for f in frames} == {(WIDTH, HEIGHT)}
    assert samples >= 2.9 * SAMPLE_RATE


def test_wrong_app_ends_with_an_event_not_a_hang(tmp_path: Path) -> None:
    with start_nginx_rtmp(tmp_path) as nginx:
        session = Session(nginx.url("nope", "key"))
        event = session.start()
        session.close()
    # nginx-rtmp drops the connection when connect names an unknown application.
    assert isinstance(event, (PeerClosed, PublishFailed)), event
    if isinstance(event, PeerClosed):
        assert event.state is State.CONNECTING


def test_second_publisher_on_same_key_is_refused(tmp_path: Path) -> None:
    with start_nginx_rtmp(tmp_path) as nginx:
        first = Session(nginx.url("live", "dup"))
        assert isinstance(first.start(), PublishStarted)
        second = Session(nginx.url("live", "dup"))
        event = second.start()
        first.close()
        second.close()
    assert isinstance(event, PublishFailed), event
    assert event.code == "NetStream.Publish.BadName"
