"""FFmpeg's own RTMP server for interop tests: libavformat's ``rtmp`` protocol in listen mode, as
PyAV bundles it (FFmpeg 8), beside nginx-rtmp. Unlike nginx-rtmp it demuxes Enhanced RTMP (H.265).

As a script (the project's virtualenv, which has PyAV)::

    python -m tests.interop.ffmpeg_rtmp PORT OUT.json

takes one publish on ``rtmp://127.0.0.1:PORT/live/KEY``, demuxes it until the publisher leaves,
decodes every packet and writes what it saw to OUT.json: the streams, each packet's DTS, the
frames each decoder gave, every error FFmpeg logged or raised, and how the demux ended. FFmpeg's
listener ignores ``FCUnpublish`` and ``deleteStream`` (libavformat/rtmpproto.c), so a publish
always ends in "Input/output error" when the publisher closes the connection. The pytest side,
``start_ffmpeg_rtmp``, runs it on a free loopback port and waits until it listens.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.interop.gstserver import free_port

APP = "live"
LISTEN_TIMEOUT = 60  # seconds for the publisher to come
READ_TIMEOUT_US = 20_000_000  # a publisher silent this long ends the demux (rw_timeout)
READY_TIMEOUT = 20.0
RESULT_TIMEOUT = 60.0
_LISTEN_STATE = "0A"  # TCP_LISTEN in /proc/net/tcp


@dataclass(frozen=True)
class FfmpegRtmp:
    """A running listener; ``result()`` waits for the publish to end and reads what it saw."""

    port: int
    process: subprocess.Popen[bytes]
    out: Path
    log: Path

    def url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/{APP}/{key}"

    def result(self) -> dict[str, Any]:
        try:
            self.process.wait(RESULT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"FFmpeg's RTMP listener still running after {RESULT_TIMEOUT} s: "
                        f"{self.log.read_text(errors='replace')[-4000:]}")
        if self.process.returncode != 0 or not self.out.exists():
            pytest.fail(f"FFmpeg's RTMP listener exited with {self.process.returncode}: "
                        f"{self.log.read_text(errors='replace')[-4000:]}")
        return json.loads(self.out.read_text())  # type: ignore[no-any-return]


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, read from /proc so no connection is used
    up (the listener takes exactly one)."""
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == _LISTEN_STATE:
            return True
    return False


@contextmanager
def start_ffmpeg_rtmp(tmp_path: Path) -> Iterator[FfmpegRtmp]:
    """Run the listener on a free loopback port for the duration of the block."""
    port = free_port()
    out, log = tmp_path / "ffmpeg-rtmp.json", tmp_path / "ffmpeg-rtmp.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.interop.ffmpeg_rtmp", str(port), str(out)],
            stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
            cwd=Path(__file__).parents[2],
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"FFmpeg's RTMP listener did not listen on 127.0.0.1:{port}: "
                            f"{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.05)
        yield FfmpegRtmp(port, process, out, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _listen(port: int, out: Path) -> None:
    import av
    import av.logging

    streams: dict[int, dict[str, Any]] = {}
    errors: list[str] = []
    end = "end of stream"
    av.logging.set_level(av.logging.ERROR)
    with av.logging.Capture() as logged:
        try:
            with av.open(f"rtmp://127.0.0.1:{port}/{APP}/any",
                         options={"listen": "1", "timeout": str(LISTEN_TIMEOUT),
                                  "rw_timeout": str(READ_TIMEOUT_US)}) as container:
                for packet in container.demux():
                    stream = packet.stream
                    seen = streams.setdefault(stream.index, {
                        "type": stream.type, "codec": stream.codec_context.name,
                        "dts": [], "frames": 0,
                    })
                    if packet.dts is not None:  # None: the end-of-stream flush packet
                        seen["dts"].append(float(packet.dts * packet.time_base))
                    try:
                        seen["frames"] += len(packet.decode())
                    except av.FFmpegError as exc:
                        errors.append(f"stream {stream.index} packet {len(seen['dts'])}: {exc}")
        except av.FFmpegError as exc:
            end = str(exc)
    errors += [f"{name}: {message.strip()}" for level, name, message in logged
               if level <= av.logging.ERROR]
    out.write_text(json.dumps({"streams": list(streams.values()), "errors": errors,
                               "end": end}))


if __name__ == "__main__":
    _listen(int(sys.argv[1]), Path(sys.argv[2]))
