"""A fake relay for the LL-HLS serving tests: it writes a stream's LL-HLS folder as the relay's
muxer does (the shared contract: parts, then both playlists, then ``ll.json`` last, each
renamed into place) and receives ``ll-want`` datagrams on ``relay.sock``."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from web.ll import RELAY_SOCKET


def replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class FakeLlRelay:
    """Parts of ``parts_per_segment`` parts each; ``part()`` writes the next one."""

    def __init__(self, folder: Path, *, part_target: float = 0.333, target_duration: int = 2,
                 parts_per_segment: int = 6) -> None:
        self.folder = folder
        self.part_target = part_target
        self.target_duration = target_duration
        self.parts_per_segment = parts_per_segment
        self.segments: list[list[bytes]] = [[]]
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def msn(self) -> int:
        return len(self.segments) - 1

    def start(self) -> None:
        replace(self.folder / "init.mp4", b"ftyp-moov")

    def part(self) -> str:
        """Write the next part (closing the segment when full); its file name."""
        open_parts = self.segments[-1]
        data = f"part {self.msn}.{len(open_parts)}".encode()
        name = f"p{self.msn}.{len(open_parts)}.m4s"
        replace(self.folder / name, data)
        open_parts.append(data)
        if len(open_parts) == self.parts_per_segment:
            replace(self.folder / f"s{self.msn}.m4s", b"".join(open_parts))
            self.segments.append([])
        self._publish()
        return name

    def _publish(self) -> None:
        replace(self.folder / "ll.m3u8", self.playlist(skip=0).encode())
        if self.msn >= 2:
            replace(self.folder / "ll_skip.m3u8", self.playlist(skip=self.msn - 1).encode())
        msn, part = (self.msn - 1, self.parts_per_segment - 1) if not self.segments[-1] else (
            self.msn, len(self.segments[-1]) - 1)
        replace(self.folder / "ll.json", json.dumps({
            "msn": msn, "part": part, "part_target": self.part_target,
            "target_duration": self.target_duration, "version": 1}).encode())

    def playlist(self, skip: int) -> str:
        lines = ["#EXTM3U", "#EXT-X-VERSION:9", f"#EXT-X-TARGETDURATION:{self.target_duration}",
                 f"#EXT-X-PART-INF:PART-TARGET={self.part_target}",
                 f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
                 f"PART-HOLD-BACK={3 * self.part_target:.3f},"
                 f"CAN-SKIP-UNTIL={6 * self.target_duration}",
                 "#EXT-X-MEDIA-SEQUENCE:0", '#EXT-X-MAP:URI="init.mp4"']
        if skip:
            lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skip}")
        for msn, parts in enumerate(self.segments):
            if msn < skip:
                continue
            lines += [f'#EXT-X-PART:DURATION={self.part_target},URI="p{msn}.{i}.m4s"'
                      for i in range(len(parts))]
            if len(parts) == self.parts_per_segment:
                lines += [f"#EXTINF:{self.part_target * len(parts):.3f},", f"s{msn}.m4s"]
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p{self.msn}.'
                     f'{len(self.segments[-1])}.m4s"')
        return "\n".join(lines) + "\n"


class WantReceiver:
    """The relay's ``relay.sock``: the datagrams the web process sent, in order."""

    def __init__(self, folder: Path) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(os.fsencode(folder / RELAY_SOCKET))
        self.socket.setblocking(False)

    def received(self) -> list[bytes]:
        """Everything sent so far (a local datagram is queued before sendto returns)."""
        out = []
        while True:
            try:
                out.append(self.socket.recv(4096))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.socket.close()
