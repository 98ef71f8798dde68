"""LL-HLS under many viewers: blocking playlist reloads and hinted parts, as hls.js asks for them.

    .venv/bin/python -m bench.ll_viewers [--viewers 500] [--seconds 20] [--processes 2]
                                         [--web-tree OTHER_CHECKOUT]
    .venv/bin/python -m bench.ll_viewers --url http://127.0.0.1:PORT --name NAME --folder DIR

Each viewer reads ``ll.m3u8``, then loops: a blocking reload for the part its PRELOAD-HINT names
(``_HLS_msn``/``_HLS_part``) and, at the same time, that part itself; the next hint comes from the
answered playlist. The delay of an answer is the blocking playlist's arrival minus the part
file's mtime (the relay wrote it; mtimes are kernel-tick coarse, a few ms early at most, so
delays read a little long). The viewers are spread over ``--processes`` client processes: one
Python client saturates its core near 500 viewers, and then measures itself, not the server.
Without ``--url`` the web process (``python -m web``, from ``--web-tree`` if given: an old
checkout, for a before/after in one run) serves a fake relay's folder that gets a part every
``--part-seconds`` (the tests' fake relay, the files of the shared contract); with it, the
viewers read a running relay's stream (bench/serve.py does, while ingest is checked).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

HINT = re.compile(rb'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p([0-9]+)\.([0-9]+)\.m4s"')


class Tally:
    """One client process's counts; merged across processes by ``add``."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.last_by_part: dict[tuple[int, int], float] = {}
        self.first_by_part: dict[tuple[int, int], float] = {}
        self.playlists = 0
        self.parts = 0
        self.errors: dict[str, int] = {}
        self.written: dict[tuple[int, int], float | None] = {}
        """Each part's mtime, read once per process (not once per viewer)."""

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def add(self, other: Tally) -> None:
        self.delays += other.delays
        for key, delay in other.last_by_part.items():
            self.last_by_part[key] = max(delay, self.last_by_part.get(key, 0.0))
        for key, delay in other.first_by_part.items():
            self.first_by_part[key] = min(delay, self.first_by_part.get(key, delay))
        self.playlists += other.playlists
        self.parts += other.parts
        for what, n in other.errors.items():
            self.errors[what] = self.errors.get(what, 0) + n

    def part_written(self, folder: Path, key: tuple[int, int]) -> float | None:
        if key not in self.written:
            try:
                self.written[key] = os.stat(folder / f"p{key[0]}.{key[1]}.m4s").st_mtime
            except FileNotFoundError:
                self.written[key] = None
        return self.written[key]


class Connection:
    """One keep-alive HTTP/1.1 connection, as small as a client gets: the viewers' own cost
    must stay well below the server's (aiohttp's client took 0.75 ms a request here)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, host)

    async def get(self, path: str) -> tuple[int, bytes, float]:
        """Status, body and the Unix time the head arrived."""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        arrived = time.time()
        status = int(head[9:12])
        length = re.search(rb"(?i)\r\ncontent-length: *([0-9]+)", head)
        body = await self.reader.readexactly(int(length[1])) if length else b""
        return status, body, arrived

    def close(self) -> None:
        self.writer.close()


async def viewer(host: str, port: int, base: str, folder: Path, stop_at: float,
                 tally: Tally) -> None:
    playlists, parts = await Connection.open(host, port), await Connection.open(host, port)
    try:
        status, body, _ = await playlists.get(f"{base}/ll.m3u8")
        while time.monotonic() < stop_at:
            hint = HINT.search(body)
            if hint is None:
                tally.error(f"playlist {status} without a preload hint")
                return
            msn, part = int(hint[1]), int(hint[2])
            (status, body, arrived), (part_status, _, _) = await asyncio.gather(
                playlists.get(f"{base}/ll.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
                parts.get(f"{base}/p{msn}.{part}.m4s"))
            if status != 200:
                tally.error(f"playlist {status}")
                return
            tally.playlists += 1
            if part_status == 200:
                tally.parts += 1
            elif part_status != 404:  # 404: the segment ended before the hinted part
                tally.error(f"part {part_status}")
            key = (msn, part)
            written = tally.part_written(folder, key)
            if written is None:
                continue
            delay = arrived - written
            tally.delays.append(delay)
            tally.last_by_part[key] = max(delay, tally.last_by_part.get(key, 0.0))
            tally.first_by_part[key] = min(delay, tally.first_by_part.get(key, delay))
    finally:
        playlists.close()
        parts.close()


async def _viewers(url: str, name: str, folder: Path, viewers: int, seconds: float) -> Tally:
    tally = Tally()
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    stop_at = time.monotonic() + seconds
    await asyncio.gather(*(viewer(host, port, f"/hls/{name}", folder, stop_at, tally)
                           for _ in range(viewers)))
    tally.written.clear()
    return tally


def _client(url: str, name: str, folder: Path, viewers: int, seconds: float) -> Tally:
    """One client process's viewers."""
    _raise_nofile()
    return asyncio.run(_viewers(url, name, folder, viewers, seconds))


def run_viewers(url: str, name: str, folder: Path, viewers: int, seconds: float,
                processes: int = 2) -> dict:
    """Run ``viewers`` blocking viewers of stream ``name`` at ``url`` (``http://HOST:PORT``),
    spread over ``processes`` client processes."""
    tally = Tally()
    shares = [viewers // processes + (i < viewers % processes) for i in range(processes)]
    with concurrent.futures.ProcessPoolExecutor(processes) as pool:
        for part in pool.map(_client, *zip(*((url, name, folder, n, seconds)
                                              for n in shares if n))):
            tally.add(part)

    def ms(values: list[float], q: int) -> float | None:
        if len(values) < 2:
            return None
        if q == 100:
            return max(values) * 1000
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000

    last = list(tally.last_by_part.values())
    first = list(tally.first_by_part.values())
    return {"viewers": viewers, "processes": processes, "seconds": seconds,
            "playlists": tally.playlists,
            "parts": tally.parts, "errors": tally.errors,
            "delay_ms": {"p50": ms(tally.delays, 50), "p95": ms(tally.delays, 95),
                         "p99": ms(tally.delays, 99), "max": ms(tally.delays, 100)},
            "first_viewer_ms": {"p50": ms(first, 50), "p95": ms(first, 95),
                                "max": ms(first, 100)},
            "last_viewer_ms": {"p50": ms(last, 50), "p99": ms(last, 99), "max": ms(last, 100)}}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def fake_relay_run(viewers: int, seconds: float, part_seconds: float, processes: int = 2,
                   web_tree: Path | None = None) -> dict:
    """The web process (from ``web_tree`` if given) over a fake relay's folder; the viewers;
    the web process's CPU."""
    from relay.status_schema import Snapshot, StreamSnapshot, encode_snapshot
    from tests.unit.web.ll_relay import FakeLlRelay

    work = Path(tempfile.mkdtemp(prefix="bench-ll-", dir="/dev/shm"))
    status = work / "status.json"
    status.write_bytes(encode_snapshot(Snapshot(updated=time.time(), streams=(
        StreamSnapshot(name="cam1", state="playing", source="rtsp://192.0.2.1/x"),))))
    relay = FakeLlRelay(work / "hls" / "cam1", part_target=part_seconds,
                        parts_per_segment=round(2 / part_seconds))
    relay.start()
    relay.part()
    done = threading.Event()

    def write_parts() -> None:
        while not done.wait(part_seconds):
            relay.part()

    port = _free_port()
    web = subprocess.Popen([sys.executable, "-m", "web", "--http", f"127.0.0.1:{port}",
                            "--hls-dir", str(work / "hls"), "--status", str(status)],
                           cwd=web_tree)
    writer = threading.Thread(target=write_parts, daemon=True)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        writer.start()
        cpu0, t0 = _cpu_seconds(web.pid), time.monotonic()
        results = run_viewers(f"http://127.0.0.1:{port}", "cam1", relay.folder, viewers,
                              seconds, processes)
        cpu = _cpu_seconds(web.pid) - cpu0
        results["web_cpu_percent"] = 100 * cpu / (time.monotonic() - t0)
        answered = results["playlists"] + results["parts"]
        results["web_cpu_us_per_answer"] = 1e6 * cpu / answered if answered else None
        results["part_seconds"] = part_seconds
        results["web_tree"] = str(web_tree or Path.cwd())
        return results
    finally:
        done.set()
        web.terminate()
        web.wait(10)
        subprocess.run(["rm", "-rf", str(work)], check=False)


def report(r: dict) -> str:
    d, first, last = r["delay_ms"], r["first_viewer_ms"], r["last_viewer_ms"]

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}"

    cpu = (f"; web process CPU {r['web_cpu_percent']:.0f} %, "
           f"{f(r['web_cpu_us_per_answer'])} us per answer" if "web_cpu_percent" in r else "")
    return (f"LL-HLS, {r['viewers']} blocking viewers ({r['processes']} client processes) "
            f"for {r['seconds']:.0f} s: "
            f"{r['playlists']} blocking playlists and {r['parts']} parts answered{cpu}; "
            f"part written -> playlist answered: p50 {f(d['p50'])} ms, p95 {f(d['p95'])} ms, "
            f"p99 {f(d['p99'])} ms, "
            f"max {f(d['max'])} ms; the first viewer of each part (answerable): p50 "
            f"{f(first['p50'])} ms, p95 {f(first['p95'])} ms; the last: p50 {f(last['p50'])} ms, "
            f"p99 {f(last['p99'])} ms; errors: {r['errors'] or 'none'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ll_viewers",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--part-seconds", type=float, default=0.333,
                        help="the fake relay's part interval")
    parser.add_argument("--url", help="http://HOST:PORT of a running relay's web process")
    parser.add_argument("--name", help="with --url: the stream")
    parser.add_argument("--folder", type=Path, help="with --url: the stream's HLS folder")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--web-tree", type=Path,
                        help="without --url: run the web process of this checkout instead")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    _raise_nofile()
    if args.url:
        if not args.name or not args.folder:
            parser.error("--url needs --name and --folder")
        results = run_viewers(args.url, args.name, args.folder, args.viewers, args.seconds,
                              args.processes)
    else:
        results = fake_relay_run(args.viewers, args.seconds, args.part_seconds,
                                 args.processes, args.web_tree)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if not results["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
