"""The GStreamer RTSP camera itself, checked with ffprobe/ffmpeg and PyAV before any relay test
relies on it: what it serves, that it decodes cleanly, that Digest auth and transports hold."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Iterator

import av
import pytest

from relay.codecs.h264 import split_annexb
from tests.interop.gstserver import free_port, start_gst_server

pytestmark = pytest.mark.interop

FFPROBE = "/usr/bin/ffprobe"
FFMPEG = "/usr/bin/ffmpeg"


def probe(url: str, transport: str = "tcp") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FFPROBE, "-v", "error", "-rtsp_transport", transport, "-timeout", "10000000",
         "-show_streams", "-of", "json", url],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def streams(url: str) -> list[dict[str, object]]:
    done = probe(url)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout)["streams"])


def describe(port: int, path: str) -> str:
    """Send one bare RTSP DESCRIBE (RFC 2326 10.2) and return the response head and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        url = f"rtsp://127.0.0.1:{port}{path}"
        request = f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        while length and len(body) < int(length.group(1)):
            chunk = sock.recv(65536)
            assert chunk
            body += chunk
        return (head + b"\r\n\r\n" + body).decode()


@pytest.fixture(scope="module")
def camera() -> Iterator[int]:
    with start_gst_server({"/h264aac": "h264aac", "/h264": "h264"}) as port:
        yield port


def test_serves_h264_640x360_and_aac_48k(camera: int) -> None:
    video, audio = streams(f"rtsp://127.0.0.1:{camera}/h264aac")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 360)
    assert video["r_frame_rate"] == "25/1"
    assert (audio["codec_name"], audio["profile"], audio["sample_rate"]) == ("aac", "LC", "48000")
    assert audio["channels"] == 2
    (only,) = streams(f"rtsp://127.0.0.1:{camera}/h264")
    assert only["codec_name"] == "h264"


def test_sdp_is_h264_and_aac_hbr(camera: int) -> None:
    reply = describe(camera, "/h264aac")
    assert reply.startswith("RTSP/1.0 200 ")
    assert "a=rtpmap:96 H264/90000" in reply
    assert "packetization-mode=1" in reply and "sprop-parameter-sets=" in reply
    assert "a=rtpmap:97 MPEG4-GENERIC/48000/2" in reply
    assert "mode=AAC-hbr" in reply and "sizelength=13;indexlength=3;indexdeltalength=3" in reply


def test_source_decodes_without_errors(camera: int) -> None:
    """A TCP client, then a UDP client, of the shared mount: each decodes 3 s without errors.

    One after the other: two ffmpeg clients joining at the same moment now and then left one
    waiting forever in GStreamer 1.22's shared media, and one joining while the other plays
    restarts the first one's timestamps (GStreamer re-opens the encoder for the newcomer).
    The relay's own interop tests have several clients of one mount at once.
    """
    for transport in ("tcp", "udp"):
        client = subprocess.run(
            [FFMPEG, "-nostdin", "-v", "error", "-rtsp_transport", transport,
             "-i", f"rtsp://127.0.0.1:{camera}/h264aac", "-t", "3", "-f", "null", "-",
             "-progress", "pipe:1"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr
        assert client.stderr.strip() == "", client.stderr
        frames = [int(m) for m in re.findall(r"^frame=(\d+)$", client.stdout, re.M)]
        # A client joining the shared stream mid-GOP starts at the next IDR: >= 2 s of 3.
        assert frames and frames[-1] >= 50, client.stdout[-500:]


def test_one_slice_per_picture_and_keyframe_every_second(camera: int) -> None:
    url = f"rtsp://127.0.0.1:{camera}/h264"
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=10) as container:
        pictures: list[list[int]] = []
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                pictures.append([nal[0] & 0x1F for nal in split_annexb(bytes(packet))])
            if len(pictures) == 80:
                break
    for types in pictures:
        assert len([t for t in types if t in (1, 5)]) == 1, types
    idr = [n for n, types in enumerate(pictures) if 5 in types]
    assert len(idr) >= 3 and all(b - a == 25 for a, b in zip(idr, idr[1:])), idr
    assert all({7, 8} <= set(pictures[n]) for n in idr)  # SPS/PPS in-band at each IDR


def test_digest_auth_refuses_without_and_accepts_with_password() -> None:
    with start_gst_server({"/cam": "h264"}, user="alice", password="s3cret") as port:
        reply = describe(port, "/cam")
        assert reply.startswith("RTSP/1.0 401 "), reply
        assert re.search(r"(?im)^WWW-Authenticate: Digest .*nonce=", reply), reply
        assert not re.search(r"(?im)^WWW-Authenticate: Basic", reply), reply
        for bad in (f"rtsp://127.0.0.1:{port}/cam", f"rtsp://alice:wrong@127.0.0.1:{port}/cam"):
            done = probe(bad)
            assert done.returncode != 0 and "401" in done.stderr, done.stderr
        (video,) = streams(f"rtsp://alice:s3cret@127.0.0.1:{port}/cam")
        assert video["codec_name"] == "h264"


def test_tcp_only_server_refuses_udp() -> None:
    port = free_port()
    with start_gst_server({"/cam": "h264"}, protocols="tcp", port=port) as bound:
        assert bound == port
        assert probe(f"rtsp://127.0.0.1:{port}/cam", "udp").returncode != 0
        (video,) = streams(f"rtsp://127.0.0.1:{port}/cam")
        assert video["codec_name"] == "h264"
